//! The store against real SQLite files: corrupt values are reported, not
//! read as defaults.

use super::*;
use crate::error::EngineError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::collections::BTreeMap;

/// A store holding one run of two nodes with one output artifact and two
/// events: in a SQLite file of its own directory, or in a fresh database of
/// the test PostgreSQL cluster.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    /// The SQLite file (unused on PostgreSQL).
    pub path: std::path::PathBuf,
    /// The PostgreSQL database, when on one.
    pub postgres: Option<retake_test_support::postgres::PgDatabase>,
    pub store: Store,
    pub run: Run,
    pub artifact_id: String,
}

/// A store test run on SQLite and again on PostgreSQL: one suite, so the
/// two backends cannot drift apart. Each name is an `async fn(Fixture)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Fixture::new().await).await
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(fx) = super::Fixture::postgres().await {
                    super::$name(fx).await
                }
            }
        }
    )*};
}
pub(super) use on_both_backends;

/// The claim of the server a PostgreSQL fixture stands for.
pub(super) fn test_claim(owner: &str) -> Claim {
    Claim {
        owner: owner.into(),
        lease: std::time::Duration::from_secs(30),
    }
}

pub(super) fn sample_run(id: &str, variables: BTreeMap<String, String>) -> Run {
    let workflow = "name: sample\n";
    Run {
        pk: 0,
        id: id.into(),
        workflow_name: "sample".into(),
        workflow_description: String::new(),
        workflow_sha256: sha256_hex(workflow.as_bytes()),
        files: BTreeMap::new(),
        variables,
        status: RunStatus::Pending,
        created_at: 1,
        started_at: None,
        finished_at: None,
        counts: NodeCounts {
            total: 2,
            ..Default::default()
        },
        usage: Usage::default(),
        failure: None,
        replay: None,
    }
}

pub(super) fn sample_node(run_id: &str, node_id: &str, position: i32) -> NodeExecution {
    NodeExecution {
        id: new_id("nex"),
        run_id: run_id.into(),
        node_id: node_id.into(),
        position,
        agent: "local://echo".into(),
        config_json: "{}".into(),
        ..Default::default()
    }
}

pub(super) fn event(run: &Run, sequence: i64, kind: EventKind, node: Option<&str>) -> (i64, Event) {
    (
        run.pk,
        Event {
            run_id: run.id.clone(),
            sequence,
            kind,
            time: sequence,
            node_id: node.map(str::to_string),
            detail: EventDetail {
                message: format!("event {sequence}"),
                ..Default::default()
            },
        },
    )
}

/// Stores a new run with `nodes` and nothing decided; returns them with
/// their keys.
pub(super) async fn insert(
    store: &Store,
    run: Run,
    workflow: &str,
    nodes: Vec<NodeExecution>,
) -> (Run, Vec<NodeExecution>) {
    let stored = store
        .insert_run(NewRun {
            run,
            workflow: workflow.into(),
            nodes,
            then: WriteBatch::default(),
            claimed: true,
            request: None,
        })
        .await
        .unwrap();
    (stored.run, stored.nodes)
}

impl Fixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retake.db");
        let store = Store::open(&path, &StoreOptions::default()).await.unwrap();
        Self::holding_the_sample(store, dir, path, None).await
    }

    /// On a fresh PostgreSQL database; None when PostgreSQL is not
    /// installed (and CI is not set: then it fails).
    pub async fn postgres() -> Option<Self> {
        let db = retake_test_support::postgres::database().await?;
        let store = Store::open_postgres(&db.url(), &StoreOptions::default(), test_claim("test"))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unused.db");
        Some(Self::holding_the_sample(store, dir, path, Some(db)).await)
    }

    async fn holding_the_sample(
        store: Store,
        dir: tempfile::TempDir,
        path: std::path::PathBuf,
        postgres: Option<retake_test_support::postgres::PgDatabase>,
    ) -> Self {
        let run = sample_run("run_sample", BTreeMap::new());
        let nodes = vec![sample_node(&run.id, "a", 0), sample_node(&run.id, "b", 1)];
        let (run, mut nodes) = insert(&store, run, "name: sample\n", nodes).await;
        let mut batch = WriteBatch::default();
        let a = &mut nodes[0];
        a.status = NodeStatus::Completed;
        a.attempt_count = 1;
        a.attempts = vec![AttemptRecord {
            number: 1,
            started_at: 2,
            finished_at: Some(3),
            worker: Some("w-1".into()),
            ..Default::default()
        }];
        let artifact_id = batch.add_output(
            run.pk,
            a,
            "result",
            "hello",
            "text/plain",
            ArtifactOrigin::Executed,
            Vec::new(),
            3,
        );
        a.output_artifacts = vec![artifact_id.clone()];
        batch.nodes.push(a.clone());
        batch
            .events
            .push(event(&run, 1, EventKind::RunStarted, None));
        batch
            .events
            .push(event(&run, 2, EventKind::NodeCompleted, Some("a")));
        store.commit(batch).await.unwrap();
        Self {
            _dir: dir,
            path,
            postgres,
            store,
            run,
            artifact_id,
        }
    }

    /// Runs SQL on a connection of its own, as a damaged file or a hand
    /// edit would change the database.
    pub async fn raw(&self, sql: &str) {
        if let Some(db) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            return;
        }
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .foreign_keys(false);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: EngineResult<T>, table: &str, column: &str) {
    match result {
        Err(EngineError::Corrupt {
            table: t,
            column: c,
            row,
            problem,
        }) => {
            assert_eq!((t, c), (table, column), "{row}: {problem}");
            assert!(!row.is_empty() && !problem.is_empty());
        }
        other => panic!("expected {table}.{column} to be reported corrupt, got {other:?}"),
    }
}

async fn the_fixture_reads_back(fx: Fixture) {
    let run = fx.store.find_run(RunRef(&fx.run.id)).await.unwrap();
    assert_eq!(run.status, RunStatus::Pending);
    let nodes = fx.store.nodes_of_run(run.pk).await.unwrap();
    assert_eq!(nodes[0].attempts.len(), 1);
    assert_eq!(nodes[0].attempts[0].worker.as_deref(), Some("w-1"));
    assert_eq!(nodes[0].output_artifacts, vec![fx.artifact_id.clone()]);
    let events = fx.store.events_after(&run, 0, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].detail.message, "event 2");
    let artifact = fx.store.artifact(&fx.artifact_id).await.unwrap();
    assert_eq!(fx.store.content(&artifact.sha256).await.unwrap(), b"hello");
}

#[tokio::test]
async fn corrupt_run_columns_are_reported() {
    let cases = [
        ("UPDATE runs SET status = 99", "status"),
        ("UPDATE runs SET status = 'running'", "status"),
        ("UPDATE runs SET files = 'not json'", "files"),
        (
            "UPDATE runs SET variables_sha256 = NULL",
            "variables_sha256",
        ),
        (
            "UPDATE runs SET variables_sha256 = 'none'",
            "variables_sha256",
        ),
        ("UPDATE runs SET replay = '{\"forked_from\":'", "replay"),
        (
            "UPDATE runs SET failure_message = 'boom', failure_node = 'a', failure_origin = NULL",
            "failure_origin",
        ),
        (
            "UPDATE runs SET failure_message = 'boom', failure_node = NULL, failure_origin = 5",
            "failure_node",
        ),
        (
            "UPDATE runs SET failure_message = 'boom', failure_node = 'a', failure_origin = 0",
            "failure_origin",
        ),
    ];
    for (sql, column) in cases {
        let fx = Fixture::new().await;
        fx.raw(sql).await;
        assert_corrupt(fx.store.find_run(RunRef(&fx.run.id)).await, "runs", column);
        assert_corrupt(fx.store.find_run(RunRef("latest")).await, "runs", column);
        if column != "status" {
            // A status that is no status is not among the unfinished ones.
            assert_corrupt(fx.store.unfinished_runs().await, "runs", column);
        }
        assert_corrupt(
            fx.store.list_runs(&RunFilter::default(), 10, None).await,
            "runs",
            column,
        );
    }
}

#[tokio::test]
async fn corrupt_variables_content_is_reported() {
    let fx = Fixture::new().await;
    fx.raw("UPDATE contents SET data = CAST('[1]' AS BLOB) WHERE sha256 = (SELECT variables_sha256 FROM runs)")
        .await;
    assert_corrupt(
        fx.store.find_run(RunRef(&fx.run.id)).await,
        "contents",
        "data",
    );
}

#[tokio::test]
async fn corrupt_node_columns_are_reported() {
    let cases = [
        ("UPDATE node_executions SET status = 0", "status"),
        ("UPDATE node_executions SET status = 'done'", "status"),
        ("UPDATE node_executions SET attempts = 'x'", "attempts"),
        ("UPDATE node_executions SET attempts = '[{}]'", "attempts"),
        (
            "UPDATE node_executions SET output_artifacts = '{}'",
            "output_artifacts",
        ),
        (
            "UPDATE node_executions SET input_artifacts = ''",
            "input_artifacts",
        ),
        (
            "UPDATE node_executions SET blocked_by = '[1]'",
            "blocked_by",
        ),
        (
            "UPDATE node_executions SET error_origin = 42",
            "error_origin",
        ),
        ("UPDATE node_executions SET position = 'first'", "position"),
    ];
    for (sql, column) in cases {
        let fx = Fixture::new().await;
        fx.raw(sql).await;
        assert_corrupt(
            fx.store.nodes_of_run(fx.run.pk).await,
            "node_executions",
            column,
        );
        // The states read for planning a replay read fewer columns, each
        // as strictly.
        if column != "attempts" && column != "input_artifacts" {
            assert_corrupt(
                fx.store.node_states_of_run(fx.run.pk).await,
                "node_executions",
                column,
            );
        }
    }
    let fx = Fixture::new().await;
    fx.raw("UPDATE node_executions SET status = 99 WHERE node_id = 'b'")
        .await;
    assert_corrupt(
        fx.store.node_counts(fx.run.pk).await,
        "node_executions",
        "status",
    );
}

async fn node_states_read_what_planning_needs_in_position_order(fx: Fixture) {
    fx.raw("UPDATE node_executions SET status = 5, error = 'upstream failed', error_origin = 1, blocked_by = '[\"a\"]' WHERE node_id = 'b'")
        .await;
    // Positions swapped: the read follows positions, not insertion.
    fx.raw("UPDATE node_executions SET position = 1 - position")
        .await;
    let full = fx.store.nodes_of_run(fx.run.pk).await.unwrap();
    let states = fx.store.node_states_of_run(fx.run.pk).await.unwrap();
    assert_eq!(
        states
            .iter()
            .map(|n| n.node_id.as_str())
            .collect::<Vec<_>>(),
        ["b", "a"]
    );
    for (s, f) in states.iter().zip(&full) {
        assert_eq!(
            (&s.pk, &s.id, &s.run_id, &s.node_id, s.position, s.status),
            (&f.pk, &f.id, &f.run_id, &f.node_id, f.position, f.status)
        );
        assert_eq!(
            (
                &s.agent,
                &s.output_artifacts,
                &s.error,
                s.error_origin,
                &s.blocked_by
            ),
            (
                &f.agent,
                &f.output_artifacts,
                &f.error,
                f.error_origin,
                &f.blocked_by
            )
        );
        // What the node was given and how it ran are not read.
        assert!(s.attempts.is_empty() && s.config_json.is_empty());
    }
    assert_eq!(states[1].output_artifacts, vec![fx.artifact_id.clone()]);
    assert_eq!(states[0].blocked_by, vec!["a".to_string()]);
    assert!(
        fx.store
            .node_states_of_run(fx.run.pk + 1)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn corrupt_artifacts_events_and_contents_are_reported() {
    let cases = [
        ("UPDATE artifacts SET origin = 0", "artifacts", "origin"),
        (
            "UPDATE artifacts SET derived_from = 'nope'",
            "artifacts",
            "derived_from",
        ),
        ("UPDATE artifacts SET size = 'big'", "artifacts", "size"),
    ];
    for (sql, table, column) in cases {
        let fx = Fixture::new().await;
        fx.raw(sql).await;
        assert_corrupt(fx.store.artifact(&fx.artifact_id).await, table, column);
        assert_corrupt(
            fx.store.artifacts_of_run(fx.run.pk, None, 10).await,
            table,
            column,
        );
    }
    let cases = [
        ("UPDATE events SET kind = 77 WHERE sequence = 2", "kind"),
        (
            "UPDATE events SET payload = 'nope' WHERE sequence = 2",
            "payload",
        ),
        (
            "UPDATE events SET payload = '{\"attempt\":\"x\"}'",
            "payload",
        ),
        ("UPDATE events SET time = 'noon'", "time"),
    ];
    for (sql, column) in cases {
        let fx = Fixture::new().await;
        fx.raw(sql).await;
        assert_corrupt(
            fx.store.events_after(&fx.run, 0, 10).await,
            "events",
            column,
        );
    }
    let fx = Fixture::new().await;
    let artifact = fx.store.artifact(&fx.artifact_id).await.unwrap();
    fx.raw("DELETE FROM contents WHERE data = CAST('hello' AS BLOB)")
        .await;
    assert_corrupt(
        fx.store.content(&artifact.sha256).await,
        "contents",
        "sha256",
    );
}

#[tokio::test]
async fn corruption_reaches_clients_as_data_loss_naming_the_row() {
    let fx = Fixture::new().await;
    fx.raw("UPDATE runs SET status = 99").await;
    let err = fx.store.find_run(RunRef(&fx.run.id)).await.unwrap_err();
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::DataLoss);
    let message = status.message();
    assert!(message.contains("runs.status"), "{message}");
    assert!(message.contains(&format!("pk {}", fx.run.pk)), "{message}");
    assert!(message.contains("99 is not a run status"), "{message}");
}

#[test]
fn unfinished_statuses_are_exactly_the_unfinished_ones() {
    for n in 0..=10 {
        if let Some(status) = RunStatus::from_i64(n) {
            assert_eq!(
                read::UNFINISHED.contains(&status),
                !status.is_finished(),
                "{status}"
            );
        }
    }
}

/// What the write path carries as JSON comes back exactly: text with NUL
/// characters and any Unicode, contents that are not UTF-8, costs that
/// SQLite would misread as decimals.
async fn writes_round_trip_exactly(fx: Fixture) {
    let mut nodes = fx.store.nodes_of_run(fx.run.pk).await.unwrap();
    let b = &mut nodes[1];
    b.status = NodeStatus::Failed;
    b.prompt = Some("nul \0 inside, 🦀, \"quotes\", \\ and \u{7f}".into());
    b.error = Some("\0".into());
    b.error_origin = Some(FailureOrigin::Agent);
    b.usage = Usage {
        input_tokens: i64::MAX,
        output_tokens: -1,
        // SQLite parses the decimal 0.0018558127 one ulp off.
        cost_usd: 0.0018558127,
    };
    b.latency_ms = Some(0);
    let binary: std::sync::Arc<[u8]> = std::sync::Arc::from(&[0u8, 0xff, 0xfe, b'a', 0][..]);
    let with_nul: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"a\0b"[..]);
    let batch = WriteBatch {
        contents: vec![
            (sha256_hex(&binary), binary.clone()),
            (sha256_hex(&with_nul), with_nul.clone()),
        ],
        nodes: vec![b.clone()],
        ..Default::default()
    };
    fx.store.commit(batch).await.unwrap();
    let back = fx.store.nodes_of_run(fx.run.pk).await.unwrap();
    let got = &back[1];
    // PostgreSQL's text cannot hold NUL: it keeps U+2400 in its place.
    let stored = |text: &Option<String>| match &fx.postgres {
        Some(_) => text
            .as_ref()
            .map(|t| t.replace('\0', &db::NUL_IN_POSTGRES.to_string())),
        None => text.clone(),
    };
    assert_eq!(got.prompt, stored(&b.prompt));
    assert_eq!(got.error, stored(&b.error));
    assert_eq!(got.error_origin, b.error_origin);
    assert_eq!(got.usage, b.usage);
    assert_eq!(got.usage.cost_usd.to_bits(), b.usage.cost_usd.to_bits());
    assert_eq!(got.latency_ms, Some(0));
    for data in [binary, with_nul] {
        assert_eq!(
            fx.store.content(&sha256_hex(&data)).await.unwrap(),
            &data[..]
        );
    }

    // A cost back to zero is written too.
    let mut zero = got.clone();
    zero.usage.cost_usd = 0.0;
    fx.store
        .commit(WriteBatch {
            nodes: vec![zero],
            ..Default::default()
        })
        .await
        .unwrap();
    let back = fx.store.nodes_of_run(fx.run.pk).await.unwrap();
    assert_eq!(back[1].usage.cost_usd, 0.0);
}

/// Batches committed together are written as if one after the other: the
/// last state of a node wins, a content shared by two is stored once.
async fn batches_committed_together_keep_their_order(fx: Fixture) {
    let nodes = fx.store.nodes_of_run(fx.run.pk).await.unwrap();
    let mut first = nodes[1].clone();
    first.status = NodeStatus::Running;
    first.attempt_count = 1;
    let mut second = first.clone();
    second.status = NodeStatus::Completed;
    second.attempt_count = 2;
    let mut batches = Vec::new();
    for (node, sequence) in [(first, 3), (second, 4)] {
        let mut batch = WriteBatch::default();
        batch.add_output(
            fx.run.pk,
            &node,
            "result",
            "shared",
            "text/plain",
            ArtifactOrigin::Executed,
            Vec::new(),
            5,
        );
        batch.nodes.push(node);
        batch
            .events
            .push(event(&fx.run, sequence, EventKind::NodeStarted, Some("b")));
        batches.push(batch);
    }
    fx.store.commit_all(batches).await.1.unwrap();
    let back = fx.store.nodes_of_run(fx.run.pk).await.unwrap();
    assert_eq!(back[1].status, NodeStatus::Completed);
    assert_eq!(back[1].attempt_count, 2);
    let events = fx.store.events_after(&fx.run, 0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        fx.store
            .artifacts_of_run(fx.run.pk, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}

/// A failed commit stores nothing of any batch in it, and the next commit
/// works: no transaction is left open.
async fn a_failed_commit_stores_nothing_and_the_next_one_works(fx: Fixture) {
    let mut ok = WriteBatch::default();
    ok.events
        .push(event(&fx.run, 3, EventKind::NodeStarted, Some("b")));
    let mut duplicate = WriteBatch::default();
    duplicate
        .events
        .push(event(&fx.run, 1, EventKind::RunStarted, None));
    assert!(fx.store.commit_all(vec![ok, duplicate]).await.1.is_err());
    assert_eq!(fx.store.last_event_sequence(fx.run.pk).await.unwrap(), 2);
    let mut next = WriteBatch::default();
    next.events
        .push(event(&fx.run, 3, EventKind::NodeStarted, Some("b")));
    fx.store.commit(next).await.unwrap();
    assert_eq!(fx.store.last_event_sequence(fx.run.pk).await.unwrap(), 3);
}

/// A commit larger than a chunk is written by several queries in one
/// transaction: whole, or (when one row is refused) not at all.
async fn a_large_commit_is_written_whole_or_not_at_all(fx: Fixture) {
    let store = &fx.store;
    let run = sample_run("run_large", BTreeMap::new());
    let nodes: Vec<NodeExecution> = (0..150)
        .map(|i| sample_node(&run.id, &format!("n{i}"), i))
        .collect();
    let (run, nodes) = insert(store, run, "name: large\n", nodes).await;
    let large = |with_duplicate: bool| {
        let mut batch = WriteBatch::default();
        for node in &nodes {
            let mut node = node.clone();
            node.status = NodeStatus::Completed;
            let id = batch.add_output(
                run.pk,
                &node,
                "result",
                &format!("output of {}", node.node_id),
                "text/plain",
                ArtifactOrigin::Executed,
                Vec::new(),
                2,
            );
            node.output_artifacts = vec![id];
            batch.nodes.push(node);
        }
        for sequence in 1..=300 {
            batch
                .events
                .push(event(&run, sequence, EventKind::NodeCompleted, None));
        }
        if with_duplicate {
            batch
                .events
                .push(event(&run, 300, EventKind::RunFinished, None));
        }
        batch
    };
    assert!(store.commit(large(true)).await.is_err());
    assert_eq!(store.last_event_sequence(run.pk).await.unwrap(), 0);
    assert!(
        store
            .artifacts_of_run(run.pk, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.node_counts(run.pk).await.unwrap(),
        vec![(NodeStatus::Pending, 150)]
    );

    store.commit(large(false)).await.unwrap();
    assert_eq!(store.last_event_sequence(run.pk).await.unwrap(), 300);
    assert_eq!(store.events_after(&run, 0, 1000).await.unwrap().len(), 300);
    assert_eq!(
        store
            .artifacts_of_run(run.pk, None, 1000)
            .await
            .unwrap()
            .len(),
        150
    );
    let back = store.nodes_of_run(run.pk).await.unwrap();
    assert_eq!(back.len(), 150);
    assert!(back.iter().all(|n| n.status == NodeStatus::Completed));
    let last = &back[149];
    let artifact = store.artifact(&last.output_artifacts[0]).await.unwrap();
    assert_eq!(
        store.content(&artifact.sha256).await.unwrap(),
        b"output of n149"
    );
}

on_both_backends!(
    the_fixture_reads_back,
    node_states_read_what_planning_needs_in_position_order,
    writes_round_trip_exactly,
    batches_committed_together_keep_their_order,
    a_failed_commit_stores_nothing_and_the_next_one_works,
    a_large_commit_is_written_whole_or_not_at_all,
);
