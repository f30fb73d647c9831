//! The writer task: runs' writes share transactions, and stay independent.

use super::tests::{Fixture, event, insert, on_both_backends, sample_node, sample_run};
use super::*;
use std::collections::BTreeMap;

fn started(run: &Run, sequence: i64) -> WriteBatch {
    let mut batch = WriteBatch::default();
    batch
        .events
        .push(event(run, sequence, EventKind::NodeStarted, Some("b")));
    batch
}

/// Writes queued together, from many runs, go in one transaction; each
/// caller hears of its own.
async fn writes_queued_together_share_one_transaction(fx: Fixture) {
    let mut runs = Vec::new();
    for i in 0..20 {
        let run = sample_run(&format!("run_{i}"), BTreeMap::new());
        let nodes = vec![sample_node(&run.id, "a", 0), sample_node(&run.id, "b", 1)];
        runs.push(insert(&fx.store, run, "name: sample\n", nodes).await.0);
    }
    let (transactions, requests) = fx.store.write_counts();
    // The test's runtime has one thread: every commit below is queued
    // before the writer task runs.
    let commits = runs.iter().map(|run| fx.store.commit(started(run, 1)));
    for result in futures::future::join_all(commits).await {
        result.unwrap();
    }
    assert_eq!(
        fx.store.write_counts(),
        (transactions + 1, requests + 20),
        "one transaction for the twenty commits"
    );
    for run in &runs {
        assert_eq!(fx.store.last_event_sequence(run.pk).await.unwrap(), 1);
    }
}

/// A write refused for its data (here an event sequence already taken)
/// fails alone: the writes it shared a transaction with are stored.
async fn a_refused_write_does_not_fail_the_writes_beside_it(fx: Fixture) {
    let other = sample_run("run_other", BTreeMap::new());
    let nodes = vec![sample_node(&other.id, "a", 0)];
    let (other, _) = insert(&fx.store, other, "name: sample\n", nodes).await;
    let (ok, duplicate, ok_too) = tokio::join!(
        fx.store.commit(started(&other, 1)),
        // The fixture's run has events 1 and 2 already.
        fx.store.commit(started(&fx.run, 2)),
        fx.store.commit(started(&fx.run, 3)),
    );
    ok.unwrap();
    assert!(duplicate.is_err());
    ok_too.unwrap();
    assert_eq!(fx.store.last_event_sequence(other.pk).await.unwrap(), 1);
    assert_eq!(fx.store.last_event_sequence(fx.run.pk).await.unwrap(), 3);
}

/// New runs stored in one transaction get keys of their own, and what is
/// decided of each lands on its own rows.
async fn new_runs_stored_together_get_their_own_keys(fx: Fixture) {
    let new = |id: &str| {
        let run = sample_run(id, BTreeMap::new());
        let nodes = vec![sample_node(id, "a", 0), sample_node(id, "b", 1)];
        let mut then = WriteBatch::default();
        let mut decided = nodes[1].clone();
        decided.status = NodeStatus::Skipped;
        then.nodes.push(decided);
        then.events
            .push(event(&run, 1, EventKind::RunStarted, None));
        NewRun {
            run,
            workflow: format!("name: {id}\n"),
            nodes,
            then,
            claimed: true,
            request: None,
        }
    };
    let (transactions, _) = fx.store.write_counts();
    let (x, y) = tokio::join!(
        fx.store.insert_run(new("run_x")),
        fx.store.insert_run(new("run_y"))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(fx.store.write_counts().0, transactions + 1);
    assert_eq!(y.run.pk, x.run.pk + 1);
    assert_eq!(y.nodes[0].pk, x.nodes[1].pk + 1);
    for stored in [&x, &y] {
        let nodes = fx.store.nodes_of_run(stored.run.pk).await.unwrap();
        assert_eq!(
            nodes.iter().map(|n| (n.pk, n.status)).collect::<Vec<_>>(),
            [
                (stored.nodes[0].pk, NodeStatus::Pending),
                (stored.nodes[1].pk, NodeStatus::Skipped)
            ]
        );
        assert_eq!(
            fx.store.last_event_sequence(stored.run.pk).await.unwrap(),
            1
        );
    }
}

/// A caller that stops waiting does not cut its write short: it is
/// stored whole.
async fn a_write_whose_caller_stopped_waiting_is_stored_whole(fx: Fixture) {
    let write = fx.store.commit(started(&fx.run, 3));
    // Polled once (the request is sent), then dropped.
    assert!(futures::poll!(Box::pin(write)).is_pending());
    fx.store.commit(started(&fx.run, 4)).await.unwrap();
    let after = fx.store.events_after(&fx.run, 2, 10).await.unwrap();
    assert_eq!(after.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3, 4]);
}

on_both_backends!(
    writes_queued_together_share_one_transaction,
    a_refused_write_does_not_fail_the_writes_beside_it,
    new_runs_stored_together_get_their_own_keys,
    a_write_whose_caller_stopped_waiting_is_stored_whole,
);
