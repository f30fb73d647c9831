//! Variables stored as a content: a run with the same variables as another
//! stores no copy, and databases of the first schema are converted.

use super::tests::{sample_node, sample_run};
use super::*;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::collections::BTreeMap;

async fn connect(path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true);
    SqliteConnection::connect_with(&options).await.unwrap()
}

/// Bytes the database holds, committed WAL frames included.
/// Bytes of the pages in use (a free page is reused before the file grows).
async fn db_bytes(path: &Path) -> i64 {
    let mut conn = connect(path).await;
    let pages: i64 = sqlx::query_scalar(
        "SELECT (SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM pragma_freelist_count)",
    )
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    pages * size
}

async fn insert(store: &Store, id: &str, variables: &BTreeMap<String, String>) -> i64 {
    let run = sample_run(id, variables.clone());
    let nodes = vec![sample_node(id, "a", 0), sample_node(id, "b", 1)];
    super::tests::insert(store, run, "name: sample\n", nodes)
        .await
        .0
        .pk
}

async fn count(path: &Path, sql: &str) -> i64 {
    let mut conn = connect(path).await;
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

#[tokio::test]
async fn a_run_with_the_same_variables_stores_no_second_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retake.db");
    let store = Store::open(&path, &StoreOptions::default()).await.unwrap();
    let variables: BTreeMap<String, String> = [("doc".to_string(), "v".repeat(100_000))].into();
    let empty = db_bytes(&path).await;
    insert(&store, "run_first", &variables).await;
    let first = db_bytes(&path).await;
    insert(&store, "run_second", &variables).await;
    let second = db_bytes(&path).await;
    assert!(
        first - empty >= 90_000,
        "the first run stored its variables: {}",
        first - empty
    );
    assert!(
        second - first < 10_000,
        "the second run grew the database by {} bytes",
        second - first
    );
    for id in ["run_first", "run_second"] {
        let run = store.find_run(RunRef(id)).await.unwrap();
        assert_eq!(run.variables, variables);
    }
}

/// The first schema's runs held their variables inline; 0002 makes them
/// contents. Rows of every shape read back as they were written.
#[tokio::test]
async fn a_database_of_the_first_schema_migrates_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retake.db");
    let first_schema = dir.path().join("migrations");
    std::fs::create_dir(&first_schema).unwrap();
    std::fs::write(
        first_schema.join("0001_init.sql"),
        include_str!("../../migrations/sqlite/0001_init.sql"),
    )
    .unwrap();
    let big: BTreeMap<String, String> = [("doc".to_string(), "v".repeat(100_000))].into();
    let big_text = serde_json::to_string(&big).unwrap();
    // Written by hand: not the text serde would write, read back all the same.
    let hand_text = r#"{ "b": "2",  "a": "ünï 🦀" }"#;
    let workflow = "name: sample\n";
    {
        let mut conn = connect(&path).await;
        sqlx::migrate::Migrator::new(first_schema.as_path())
            .await
            .unwrap()
            .run_direct(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO contents (sha256, size, data) VALUES (?, ?, ?)")
            .bind(sha256_hex(workflow.as_bytes()))
            .bind(workflow.len() as i64)
            .bind(workflow.as_bytes())
            .execute(&mut conn)
            .await
            .unwrap();
        for (id, text) in [
            ("run_a", Some(big_text.as_str())),
            ("run_b", Some(big_text.as_str())),
            ("run_c", Some(hand_text)),
            ("run_d", None),
        ] {
            let sql = match text {
                Some(_) => {
                    "INSERT INTO runs (id, workflow_name, workflow_sha256, status, created_at, variables) VALUES (?, 'sample', ?, 4, 1, ?)"
                }
                None => {
                    "INSERT INTO runs (id, workflow_name, workflow_sha256, status, created_at) VALUES (?, 'sample', ?, 4, 1)"
                }
            };
            sqlx::query(sql)
                .bind(id)
                .bind(sha256_hex(workflow.as_bytes()))
                .bind(text)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO node_executions (id, run_pk, node_id, position, status, agent, config, prompt, inputs, output_artifacts) VALUES ('nex_a', 1, 'a', 0, 4, 'local://echo', '{\"k\":1}', 'say', ?, '[\"art_a\"]')")
            .bind(&big_text)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO artifacts (id, run_pk, node_execution_pk, node_id, name, media_type, size, sha256, origin, created_at) VALUES ('art_a', 1, 1, 'a', 'result', 'text/plain', 13, ?, 1, 1)")
            .bind(sha256_hex(workflow.as_bytes()))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO events (run_pk, sequence, kind, time) VALUES (1, 1, 1, 1)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    let expected: [(&str, BTreeMap<String, String>); 4] = [
        ("run_a", big.clone()),
        ("run_b", big.clone()),
        (
            "run_c",
            [("a".into(), "ünï 🦀".into()), ("b".into(), "2".into())].into(),
        ),
        ("run_d", BTreeMap::new()),
    ];
    for _reopened in 0..2 {
        let store = Store::open(&path, &StoreOptions::default()).await.unwrap();
        for (id, variables) in &expected {
            let run = store.find_run(RunRef(id)).await.unwrap();
            assert_eq!(&run.variables, variables, "{id}");
        }
        let run_a = store.find_run(RunRef("run_a")).await.unwrap();
        let nodes = store.nodes_of_run(run_a.pk).await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].config_json, r#"{"k":1}"#);
        assert_eq!(nodes[0].prompt.as_deref(), Some("say"));
        assert_eq!(nodes[0].inputs_json.as_deref(), Some(big_text.as_str()));
        assert_eq!(nodes[0].output_artifacts, ["art_a"]);
        let states = store.node_states_of_run(run_a.pk).await.unwrap();
        assert_eq!(states[0].output_artifacts, ["art_a"]);
        assert_eq!(states[0].inputs_json, None);
        assert_eq!(store.artifact("art_a").await.unwrap().node_id, "a");
        assert_eq!(store.events_after(&run_a, 0, 10).await.unwrap().len(), 1);
    }
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM pragma_table_info('runs') WHERE name = 'variables'"
        )
        .await,
        0,
        "the inline column is gone"
    );
    // A node's large columns come last, and the artifacts still refer to
    // their nodes.
    assert_eq!(
        count(
            &path,
            "SELECT MIN(cid) FROM pragma_table_info('node_executions') WHERE name IN ('config', 'prompt', 'inputs')"
        )
        .await,
        count(&path, "SELECT COUNT(*) - 3 FROM pragma_table_info('node_executions')").await,
    );
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM pragma_foreign_key_check").await,
        0
    );
    // The big document is stored once, the hand-written text byte for byte.
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM contents WHERE size > 100000").await,
        1
    );
    let mut conn = connect(&path).await;
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT c.data FROM runs r JOIN contents c ON c.sha256 = r.variables_sha256 WHERE r.id = 'run_c'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(stored, hand_text.as_bytes());

    // A later run with the same variables shares the migrated content.
    let store = Store::open(&path, &StoreOptions::default()).await.unwrap();
    let contents = count(&path, "SELECT COUNT(*) FROM contents").await;
    insert(&store, "run_e", &big).await;
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM contents").await,
        contents
    );
}

/// Another tool applying 0002 without the digests this store computes
/// first fails, rather than dropping the variables.
#[tokio::test]
async fn the_conversion_refuses_runs_without_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retake.db");
    let first_schema = dir.path().join("first");
    let both = dir.path().join("both");
    for (dirs, name, text) in [
        (
            &[&first_schema, &both][..],
            "0001_init.sql",
            include_str!("../../migrations/sqlite/0001_init.sql"),
        ),
        (
            &[&both][..],
            "0002_variables_content.sql",
            include_str!("../../migrations/sqlite/0002_variables_content.sql"),
        ),
    ] {
        for dir in dirs {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut conn = connect(&path).await;
    sqlx::migrate::Migrator::new(first_schema.as_path())
        .await
        .unwrap()
        .run_direct(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO contents (sha256, size, data) VALUES ('w', 1, x'00')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO runs (id, workflow_name, workflow_sha256, status, created_at, variables) VALUES ('run_a', 's', 'w', 4, 1, '{\"k\":\"v\"}')")
        .execute(&mut conn)
        .await
        .unwrap();
    let migrator = sqlx::migrate::Migrator::new(both.as_path()).await.unwrap();
    assert!(migrator.run_direct(&mut conn).await.is_err());
    let text: String = sqlx::query_scalar("SELECT variables FROM runs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(text, r#"{"k":"v"}"#);
}
