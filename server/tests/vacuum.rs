//! `retake-server --vacuum`: compacts a SQLite database offline, and is
//! refused while a server holds the database.

use retake_test_support::db_dir::DbDir;
use retake_test_support::process::ServerCommand;

#[tokio::test]
async fn vacuum_compacts_offline_and_never_under_a_server() {
    let dir = DbDir::new();
    let mut server = ServerCommand::new(dir.db()).log(dir.log()).spawn();
    let mut client = server.client().await;
    let run = client
        .start_run("name: v\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n")
        .await;
    client.finish(&run.id).await;

    let refused = ServerCommand::new(dir.db())
        .arg("--vacuum")
        .command()
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("stop the server"), "{err}");

    server.kill9();
    let done = ServerCommand::new(dir.db())
        .arg("--vacuum")
        .command()
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(
        out.starts_with("compacted ") && out.contains("bytes before"),
        "{out}"
    );

    // The runs are all there after it.
    let mut server = ServerCommand::new(dir.db()).log(dir.log()).spawn();
    let mut client = server.client().await;
    client.get(&run.id).await;
    server.kill9();
}
