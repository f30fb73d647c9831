//! Leases on a shared PostgreSQL database: two stores stand for two
//! servers on one database.

use super::tests::{Fixture, event, insert, sample_node, sample_run, test_claim};
use super::*;
use crate::error::EngineError;
use std::collections::{BTreeMap, BTreeSet};

/// The fixture's store (server "test") and a second server's on the same
/// database; None when PostgreSQL is not installed (and CI is not set).
async fn two_servers() -> Option<(Fixture, Store)> {
    let fx = Fixture::postgres().await?;
    let url = fx.postgres.as_ref().expect("on PostgreSQL").url();
    let other = Store::open_postgres(&url, &StoreOptions::default(), test_claim("other"))
        .await
        .unwrap();
    Some((fx, other))
}

async fn new_run(store: &Store, id: &str, claimed: bool) -> Run {
    let run = sample_run(id, BTreeMap::new());
    let nodes = vec![sample_node(id, "a", 0)];
    store
        .insert_run(NewRun {
            run,
            workflow: "name: sample\n".into(),
            nodes,
            then: WriteBatch::default(),
            claimed,
            request: None,
        })
        .await
        .unwrap()
        .run
}

fn started(run: &Run, sequence: i64) -> WriteBatch {
    let mut batch = WriteBatch::default();
    batch
        .events
        .push(event(run, sequence, EventKind::NodeStarted, Some("a")));
    batch
}

#[tokio::test]
async fn a_run_is_claimed_by_one_server_while_its_lease_holds() {
    let Some((fx, other)) = two_servers().await else {
        return;
    };
    // The fixture's run was claimed by "test" as it was stored.
    assert!(other.claim_runs(10).await.unwrap().is_empty());
    assert_eq!(
        fx.store.run_owner(fx.run.pk).await.unwrap(),
        Some(("test".into(), true))
    );
    // Runs stored unclaimed go to whoever claims first, each to one.
    let mut left = BTreeSet::new();
    for i in 0..20 {
        left.insert(new_run(&fx.store, &format!("run_free{i}"), false).await.pk);
    }
    let (mine, theirs) = tokio::join!(fx.store.claim_runs(15), other.claim_runs(15));
    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    let all: Vec<i64> = mine.iter().chain(&theirs).map(|r| r.pk).collect();
    assert_eq!(all.len(), 20, "every run claimed once");
    assert_eq!(all.iter().copied().collect::<BTreeSet<_>>(), left);
    assert!(fx.store.claim_runs(10).await.unwrap().is_empty());
    for run in &theirs {
        assert_eq!(
            other.run_owner(run.pk).await.unwrap(),
            Some(("other".into(), true))
        );
    }
}

#[tokio::test]
async fn a_write_for_a_run_another_server_took_over_stores_nothing() {
    let Some((fx, other)) = two_servers().await else {
        return;
    };
    // "test" stalls past its lease; "other" takes the run over.
    fx.raw("UPDATE runs SET lease_expires_at = 0").await;
    let taken = other.claim_runs(10).await.unwrap();
    assert_eq!(
        taken.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [fx.run.id.as_str()]
    );
    match fx.store.commit(started(&fx.run, 3)).await {
        Err(EngineError::Moved(message)) => {
            assert!(message.contains("another server"), "{message}")
        }
        Err(e) => panic!("expected the write to be refused as moved, got {e:?}"),
        Ok(_) => panic!("expected the write to be refused as moved, it was stored"),
    }
    assert_eq!(fx.store.last_event_sequence(fx.run.pk).await.unwrap(), 2);
    // A node row alone is fenced by its run too.
    let mut nodes = fx.store.nodes_of_run(fx.run.pk).await.unwrap();
    nodes[1].status = NodeStatus::Running;
    let batch = WriteBatch {
        nodes: vec![nodes[1].clone()],
        ..Default::default()
    };
    assert!(matches!(
        fx.store.commit(batch).await,
        Err(EngineError::Moved(_))
    ));
    assert_eq!(
        fx.store.nodes_of_run(fx.run.pk).await.unwrap()[1].status,
        NodeStatus::Pending
    );
    // The new owner writes on.
    other.commit(started(&fx.run, 3)).await.unwrap();
    assert_eq!(other.last_event_sequence(fx.run.pk).await.unwrap(), 3);
    // A refused write does not fail the writes beside it.
    let (run_mine, _) = insert(
        &fx.store,
        sample_run("run_mine", BTreeMap::new()),
        "name: sample\n",
        vec![sample_node("run_mine", "a", 0)],
    )
    .await;
    let (refused, stored) = tokio::join!(
        fx.store.commit(started(&fx.run, 4)),
        fx.store.commit(started(&run_mine, 1)),
    );
    assert!(matches!(refused, Err(EngineError::Moved(_))));
    stored.unwrap();
}

#[tokio::test]
async fn renewal_reports_the_runs_another_server_holds() {
    let Some((fx, other)) = two_servers().await else {
        return;
    };
    let second = new_run(&fx.store, "run_second", true).await;
    assert!(
        fx.store
            .renew_leases(&[fx.run.pk, second.pk])
            .await
            .unwrap()
            .is_empty()
    );
    fx.raw(&format!(
        "UPDATE runs SET lease_expires_at = 0 WHERE pk = {}",
        second.pk
    ))
    .await;
    assert_eq!(other.claim_runs(10).await.unwrap().len(), 1);
    assert_eq!(
        fx.store
            .renew_leases(&[fx.run.pk, second.pk])
            .await
            .unwrap(),
        [second.pk]
    );
    // Released runs go to the next server that claims.
    fx.store.release_runs(&[fx.run.pk]).await.unwrap();
    assert_eq!(
        other
            .claim_runs(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.pk)
            .collect::<Vec<_>>(),
        [fx.run.pk]
    );
}

#[tokio::test]
async fn a_command_is_carried_out_once_and_its_outcome_kept() {
    let Some((fx, other)) = two_servers().await else {
        return;
    };
    let target = Target::Run(fx.run.pk);
    let pk = other.send_command(&target, r#""cancel""#).await.unwrap();
    assert_eq!(other.command_outcome(pk).await.unwrap(), None);
    assert!(
        other
            .pending_commands(&[fx.run.pk + 1], &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        fx.store.pending_commands(&[fx.run.pk], &[]).await.unwrap(),
        [(pk, target, r#""cancel""#.to_string())]
    );
    assert!(
        fx.store
            .finish_command(pk, r#"{"error":null}"#)
            .await
            .unwrap()
    );
    assert!(!fx.store.finish_command(pk, "{}").await.unwrap());
    assert!(
        fx.store
            .pending_commands(&[fx.run.pk], &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        other.command_outcome(pk).await.unwrap().as_deref(),
        Some(r#"{"error":null}"#)
    );
}
