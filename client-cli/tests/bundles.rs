//! `retake export` and `retake import` as a user runs them: a run (a
//! replay, so its source travels with it) exported from a real server
//! process, imported into an embedded database on another path and
//! replayed there from a middle step; a second import changes nothing; a
//! damaged or cut bundle is refused with nothing stored.

use retake_test_support::db_dir::DbDir;
use retake_test_support::process::ServerCommand;
use std::path::Path;
use std::process::{Command, Output};

const CHAIN: &str = "name: chain\nnodes:\n  a: {agent: local://echo, inputs: {x: \"${user.x}\"}, outputs: [o]}\n  b: {agent: local://mock, config: {response: \"b\"}, inputs: {x: \"${a.o}\"}, outputs: [o], depends_on: [a]}\n  c: {agent: local://echo, inputs: {x: \"${b.o}\"}, outputs: [o], depends_on: [b]}\n";

fn retake(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retake"))
        .current_dir(dir)
        .env_remove("RETAKE_SERVER")
        .env_remove("RETAKE_DB")
        .env_remove("RETAKE_TOKEN")
        .env_remove("RETAKE_TOKEN_FILE")
        .env_remove("RETAKE_PROFILE")
        .env("RETAKE_CONFIG", dir.join("config.toml"))
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("retake runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn runs_in(dir: &Path, db: &str) -> usize {
    let out = ok(&retake(dir, &["--db", db, "runs", "--json"]));
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_exported_from_a_server_replays_in_another_database() {
    let server_dir = DbDir::new();
    let mut server = ServerCommand::new(server_dir.db())
        .log(server_dir.log())
        .spawn();
    let mut client = server.client().await;
    let source = client.start_run_vars(CHAIN, &[("x", "exported")]).await;
    client.finish(&source.id).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let url = server.url();
    let replay = client
        .runs
        .replay_run(retake::v1::ReplayRunRequest {
            run_id: source.id.clone(),
            from_node: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    client.finish(&replay.id).await;
    let replay_id = replay.id;

    let out = ok(&retake(
        dir,
        &["--server", &url, "export", &replay_id, "-o", "run.retake"],
    ));
    assert!(
        out.contains(&format!("Exported run {replay_id} to run.retake")),
        "{out}"
    );
    let bundle = std::fs::read(dir.join("run.retake")).unwrap();
    server.kill9();

    // Into an embedded database elsewhere: the replay and its source.
    let other = "elsewhere/retake.db";
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    let out = ok(&retake(dir, &["--db", other, "import", "run.retake"]));
    assert!(
        out.contains(&format!("Imported run {}", source.id)),
        "{out}"
    );
    assert!(out.contains(&format!("Imported run {replay_id}")), "{out}");
    assert_eq!(runs_in(dir, other), 2);
    // The same ids, the same outputs.
    let shown = ok(&retake(
        dir,
        &["--db", other, "--json", "debug", &replay_id],
    ));
    assert!(
        shown.contains(&replay_id) && shown.contains("exported"),
        "{shown}"
    );

    // Replayed there from a middle step, reusing the imported records.
    let again = ok(&retake(
        dir,
        &["--db", other, "replay", &replay_id, "--from", "b"],
    ));
    assert!(again.contains("completed"), "{again}");
    assert_eq!(runs_in(dir, other), 3);

    // A second import changes nothing.
    let out = ok(&retake(dir, &["--db", other, "import", "run.retake"]));
    assert!(out.contains("here already"), "{out}");
    assert_eq!(runs_in(dir, other), 3);

    // Damaged or cut short: refused, nothing stored.
    let fresh = "fresh/retake.db";
    std::fs::create_dir_all(dir.join("fresh")).unwrap();
    let mut damaged = bundle.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x20;
    std::fs::write(dir.join("damaged.retake"), &damaged).unwrap();
    std::fs::write(dir.join("cut.retake"), &bundle[..bundle.len() * 2 / 3]).unwrap();
    std::fs::write(dir.join("other.retake"), b"{\"hello\": 1}\n").unwrap();
    for file in ["damaged.retake", "cut.retake", "other.retake"] {
        let out = retake(dir, &["--db", fresh, "import", file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a usable run bundle") && err.contains("nothing was stored"),
            "{file}: {err}"
        );
    }
    assert_eq!(runs_in(dir, fresh), 0);
}

#[test]
fn export_refuses_an_unknown_run_and_leaves_no_file() {
    let work = tempfile::tempdir().unwrap();
    let out = retake(work.path(), &["export", "run_nope", "-o", "x.retake"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    assert!(!work.path().join("x.retake").exists());
}
