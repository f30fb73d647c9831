//! Deleting runs through real gRPC on a real SQLite file: DeleteRun refuses
//! a run others use (naming them) unless cascading, removes contents no row
//! names any more and keeps shared ones; retention prunes 1,000 old runs
//! while a kept replay of an old run still replays; freed pages go back to
//! the file system.

mod common;

use common::*;
use retake::v1 as pb;
use retake::v1::experiment_service_client::ExperimentServiceClient;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

const CHAIN: &str = "name: chain\nnodes:\n  a: {agent: local://echo, inputs: {x: \"${user.x}\"}, outputs: [o]}\n  b: {agent: local://mock, config: {response: \"b\"}, inputs: {x: \"${a.o}\"}, outputs: [o], depends_on: [a]}\n  c: {agent: local://echo, inputs: {x: \"${b.o}\"}, outputs: [o], depends_on: [b]}\n";

async fn replay_from(s: &mut TestServer, run: &str, step: &str) -> pb::Run {
    let replay = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: run.into(),
            from_node: step.into(),
            ..Default::default()
        })
        .await
        .expect("ReplayRun")
        .into_inner()
        .run
        .unwrap();
    s.finish(&replay.id).await;
    replay
}

async fn delete(
    s: &mut TestServer,
    run: &str,
    cascade: bool,
) -> Result<pb::DeleteRunResponse, tonic::Status> {
    s.runs
        .delete_run(pb::DeleteRunRequest {
            run_id: run.into(),
            cascade,
        })
        .await
        .map(|r| r.into_inner())
}

/// The one number `sql` answers, read (or written) on the database file
/// beside the server, as an operator's tool would.
async fn sqlite(db: &std::path::Path, sql: &str) -> i64 {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let mut last = 0;
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((n,)) = sqlx::query_as::<_, (i64,)>(statement)
            .fetch_optional(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
        {
            last = n;
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_use_is_refused_then_deleted_with_cascade() {
    let mut s = start().await;
    let source = s.start_run_vars(CHAIN, &[("x", "1")]).await;
    s.finish(&source.id).await;
    let replay = replay_from(&mut s, &source.id, "b").await;
    let replay_of_replay = replay_from(&mut s, &replay.id, "c").await;
    let mut experiments = ExperimentServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let experiment = experiments
        .start_experiment(pb::StartExperimentRequest {
            selection: Some(pb::RunSelection {
                run_ids: vec![source.id.clone()],
                ..Default::default()
            }),
            change: Some(pb::ExperimentChange {
                from_node: "c".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    let mut watch = experiments
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: experiment.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    while watch.message().await.unwrap().is_some() {}
    let other = s.start_run_vars(CHAIN, &[("x", "2")]).await;
    s.finish(&other.id).await;

    // In use: refused, naming every user; nothing deleted.
    let err = delete(&mut s, &source.id, false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let details = err.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "RUN_IN_USE");
    assert!(
        info.metadata["runIds"].contains(&replay.id),
        "{:?}",
        info.metadata
    );
    assert!(
        info.metadata["runIds"].contains(&replay_of_replay.id),
        "{:?}",
        info.metadata
    );
    assert_eq!(info.metadata["experimentIds"], experiment.id);
    assert!(
        err.message().contains(&replay.id) && err.message().contains("cascade"),
        "{}",
        err.message()
    );
    s.get(&source.id).await;

    // A leaf goes alone; its source stays and still replays.
    let gone = delete(&mut s, &replay_of_replay.id, false).await.unwrap();
    assert_eq!(
        gone.deleted_run_ids,
        std::slice::from_ref(&replay_of_replay.id)
    );
    replay_from(&mut s, &replay.id, "c").await;

    // With cascade, the source, every replay of it and the experiment.
    let gone = delete(&mut s, &source.id, true).await.unwrap();
    assert!(gone.deleted_run_ids.contains(&source.id) && gone.deleted_run_ids.contains(&replay.id));
    assert_eq!(
        gone.deleted_experiment_ids,
        std::slice::from_ref(&experiment.id)
    );
    for id in &gone.deleted_run_ids {
        let err = s
            .runs
            .get_run(pb::GetRunRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    // The other run shares the workflow (kept) but not its variables'
    // outputs: it reads and replays whole.
    let (_, nodes) = s.get(&other.id).await;
    assert_eq!(
        s.content(&node(&nodes, "a").output_artifact_ids[0]).await,
        "{\"x\":\"2\"}"
    );
    replay_from(&mut s, &other.id, "b").await;
    assert_eq!(
        sqlite(
            &s.db,
            "SELECT COUNT(*) FROM runs WHERE id LIKE 'run_%' AND forked_from IS NULL"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_go_with_the_last_run_that_names_them() {
    let mut s = start().await;
    let one = s.start_run_vars(CHAIN, &[("x", "shared")]).await;
    s.finish(&one.id).await;
    let two = s.start_run_vars(CHAIN, &[("x", "shared")]).await;
    s.finish(&two.id).await;
    let before = sqlite(&s.db, "SELECT COUNT(*) FROM contents").await;

    // Everything of `one` is named by `two` as well: nothing goes.
    let gone = delete(&mut s, &one.id, false).await.unwrap();
    assert_eq!(gone.deleted_contents, 0);
    assert_eq!(sqlite(&s.db, "SELECT COUNT(*) FROM contents").await, before);
    let (_, nodes) = s.get(&two.id).await;
    assert!(
        s.content(&node(&nodes, "c").output_artifact_ids[0])
            .await
            .contains("b")
    );

    // The last one takes them all.
    let gone = delete(&mut s, &two.id, false).await.unwrap();
    assert_eq!(gone.deleted_contents, before);
    assert!(gone.deleted_content_bytes > 0);
    assert_eq!(sqlite(&s.db, "SELECT COUNT(*) FROM contents").await, 0);
    assert_eq!(sqlite(&s.db, "SELECT COUNT(*) FROM artifacts").await, 0);
    assert_eq!(sqlite(&s.db, "SELECT COUNT(*) FROM events").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_and_unknown_runs_are_refused() {
    let mut s = start().await;
    let waiting = s
        .start_run("name: ask\nnodes:\n  q: {agent: human://input, outputs: [a]}\n")
        .await;
    let err = loop {
        let err = delete(&mut s, &waiting.id, false).await.unwrap_err();
        if err.get_error_details().error_info().unwrap().reason == "RUN_NOT_FINISHED" {
            break err;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = delete(&mut s, "run_nope", false).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = delete(&mut s, "", false).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_a_thousand_old_runs_and_keeps_what_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start_in(dir, |_| {}).await;
    let small = "name: small\nnodes:\n  a: {agent: local://echo, inputs: {x: \"${user.x}\"}, outputs: [o]}\n";
    let mut old = Vec::new();
    for i in 0..1000 {
        old.push(s.start_run_vars(small, &[("x", &i.to_string())]).await.id);
    }
    for id in &old {
        s.finish(id).await;
    }
    // An old source with a new replay: kept for the replay's sake.
    let source = s.start_run_vars(CHAIN, &[("x", "kept")]).await;
    s.finish(&source.id).await;
    let db = s.db.clone();
    let dir = s.stop().await;
    // Forty days older, as if they had finished then.
    let aged = sqlite(&db,
        "UPDATE runs SET finished_at = finished_at - 3456000000000, created_at = created_at - 3456000000000 RETURNING 0",
    ).await;
    let _ = aged;
    let mut s = start_in(dir, |_| {}).await;
    let replay = replay_from(&mut s, &source.id, "b").await;
    let recent = s.start_run_vars(small, &[("x", "recent")]).await;
    s.finish(&recent.id).await;
    let pages_before = sqlite(&db, "PRAGMA page_count").await;
    let dir = s.stop().await;

    let mut s = start_in(dir, |c| {
        c.retention = Some(Duration::from_secs(30 * 86_400))
    })
    .await;
    let kept = loop {
        let runs = s
            .runs
            .list_runs(pb::ListRunsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .runs;
        if runs.len() <= 3 {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kept: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    for id in [&source.id, &replay.id, &recent.id] {
        assert!(kept.contains(&id.as_str()), "{id} kept");
    }
    // The kept replay reuses the old source's records: it replays.
    let again = replay_from(&mut s, &replay.id, "c").await;
    let (run, _) = s.get(&again.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    // Freed pages went back to the file system.
    let shrunk = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if sqlite(&db, "PRAGMA freelist_count").await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        shrunk.is_ok(),
        "free pages left: {}",
        sqlite(&db, "PRAGMA freelist_count").await
    );
    assert!(sqlite(&db, "PRAGMA page_count").await < pages_before);
    assert_eq!(sqlite(&db, "PRAGMA auto_vacuum").await, 2, "incremental");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_works_the_same_on_postgresql() {
    let Some(db) = retake_test_support::postgres::database().await else {
        return;
    };
    let url = db.url();
    let mut s = start_with(|c| {
        c.postgres = Some(retake_server::settings::PostgresSettings::new(url.clone()))
    })
    .await;
    let source = s.start_run_vars(CHAIN, &[("x", "pg")]).await;
    s.finish(&source.id).await;
    let replay = replay_from(&mut s, &source.id, "b").await;
    let err = delete(&mut s, &source.id, false).await.unwrap_err();
    assert_eq!(
        err.get_error_details().error_info().unwrap().reason,
        "RUN_IN_USE"
    );
    let gone = delete(&mut s, &source.id, true).await.unwrap();
    assert_eq!(gone.deleted_run_ids.len(), 2);
    assert!(gone.deleted_run_ids.contains(&replay.id));
    assert!(gone.deleted_contents > 0);
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for table in ["runs", "node_executions", "artifacts", "events", "contents"] {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}
