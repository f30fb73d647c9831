//! Experiments against a real server over gRPC: one change replayed over
//! many recorded runs, the comparison's counts, sources that cannot be
//! replayed, a restart in the middle, and a cancel.

use retake::v1 as pb;
use retake::v1::experiment_service_client::ExperimentServiceClient;
use retake_test_support::Client;
use retake_test_support::in_process::{self, TestServer};
use retake_test_support::process::ServerCommand;
use std::time::Duration;
use tonic::transport::Channel;

const WORKFLOW: &str = r#"name: exp
nodes:
  fetch: {agent: local://echo, inputs: {topic: "${user.topic}"}, outputs: [result]}
  summarize: {agent: local://mock, config: {response: "summary v1"}, inputs: {x: "${fetch.result}"}, outputs: [result], depends_on: [fetch]}
  score: {agent: local://mock, config: {response: "0.5"}, inputs: {s: "${summarize.result}"}, outputs: [result], depends_on: [summarize]}
"#;

async fn experiments(s: &TestServer) -> ExperimentServiceClient<Channel> {
    ExperimentServiceClient::connect(format!("http://{}", s.addr))
        .await
        .expect("connect")
}

/// Runs the workflow `n` times to completion; returns their ids.
async fn record(s: &mut Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let run = s
            .start_run_vars(WORKFLOW, &[("topic", &format!("t{i}"))])
            .await;
        assert_eq!(s.watch_to_end(&run.id).await, pb::RunStatus::Completed);
        ids.push(run.id);
    }
    ids
}

fn swap(node: &str, agent: &str) -> pb::ExperimentChange {
    pb::ExperimentChange {
        swaps: vec![pb::AgentSwap {
            node_id: node.into(),
            agent: agent.into(),
        }],
        ..Default::default()
    }
}

/// Follows WatchExperiment to its end; returns the last state.
async fn watch_to_end(c: &mut ExperimentServiceClient<Channel>, id: &str) -> pb::Experiment {
    let mut stream = c
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("the experiment progresses")
        .unwrap()
    {
        last = msg.experiment;
    }
    last.expect("at least one state")
}

/// Starts an experiment over every run of the workflow that swaps
/// summarize for `local://sleep` (a second each), one replay at a time.
async fn start_slow(c: &mut ExperimentServiceClient<Channel>) -> pb::Experiment {
    c.start_experiment(pb::StartExperimentRequest {
        selection: Some(pb::RunSelection {
            workflow_name: "exp".into(),
            ..Default::default()
        }),
        change: Some(swap("summarize", "local://sleep")),
        concurrency: 1,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .experiment
    .unwrap()
}

/// Follows the experiment until its progress satisfies `reached`.
async fn until_progress(
    c: &mut ExperimentServiceClient<Channel>,
    id: &str,
    reached: impl Fn(&pb::ExperimentProgress) -> bool,
) {
    let mut watch = c
        .watch_experiment(pb::WatchExperimentRequest {
            experiment_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(msg) = watch.message().await.unwrap() {
        if reached(&msg.experiment.unwrap().progress.unwrap()) {
            return;
        }
    }
    panic!("the experiment ended before reaching the expected progress");
}

async fn get(c: &mut ExperimentServiceClient<Channel>, id: &str) -> pb::GetExperimentResponse {
    c.get_experiment(pb::GetExperimentRequest {
        experiment_id: id.into(),
        include_comparison: true,
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn a_swap_over_twenty_runs_is_counted_node_by_node() {
    let mut s = in_process::start().await;
    let sources = record(&mut s, 20).await;
    let mut c = experiments(&s).await;
    let started = c
        .start_experiment(pb::StartExperimentRequest {
            name: "echo summaries".into(),
            selection: Some(pb::RunSelection {
                workflow_name: "exp".into(),
                limit: 20,
                ..Default::default()
            }),
            change: Some(swap("summarize", "local://echo")),
            score_node: "score".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    assert!(started.id.starts_with("exp_"));
    assert_eq!(started.progress.unwrap().total, 20);
    assert_eq!(started.concurrency, 4, "the server's default");

    let done = watch_to_end(&mut c, &started.id).await;
    assert_eq!(done.status(), pb::ExperimentStatus::Completed);
    let progress = done.progress.unwrap();
    assert_eq!((progress.completed, progress.total), (20, 20));
    // Every source replayed once, and the replays are of the sources.
    let mut replayed: Vec<_> = done.items.iter().map(|i| i.source_run_id.clone()).collect();
    replayed.sort();
    let mut expected = sources.clone();
    expected.sort();
    assert_eq!(replayed, expected);

    let got = get(&mut c, &started.id).await;
    let cmp = got.comparison.unwrap();
    let node = |id: &str| cmp.nodes.iter().find(|n| n.node_id == id).unwrap().clone();
    let counts = |n: pb::NodeAggregate| (n.changed, n.unchanged, n.failed, n.reused);
    assert_eq!(counts(node("fetch")), (0, 20, 0, 20), "fetch is reused");
    assert_eq!(counts(node("summarize")), (20, 0, 0, 0), "the swapped node");
    assert_eq!(
        counts(node("score")),
        (0, 20, 0, 0),
        "ran again, same output"
    );
    assert_eq!(cmp.pairs.len(), 20);
    for p in &cmp.pairs {
        assert_eq!(p.status_before(), pb::RunStatus::Completed);
        assert_eq!(p.status_after(), pb::RunStatus::Completed);
        assert_eq!(p.nodes_changed, 1, "{p:?}");
        assert_eq!(p.first_divergence, "summarize");
        assert_eq!(p.changed_nodes, ["summarize"]);
        assert_eq!(p.reused_nodes, ["fetch"]);
        assert!(p.failed_nodes.is_empty());
        assert_eq!((p.score_before, p.score_after), (Some(0.5), Some(0.5)));
    }
    let totals = cmp.totals.unwrap();
    assert_eq!(totals.reused_nodes, 20);
    let score = cmp.score.unwrap();
    assert_eq!(
        (score.pairs, score.mean_before, score.mean_after),
        (20, 0.5, 0.5)
    );

    assert_eq!(score.delta, 0.0);

    let listed = c
        .list_experiments(pb::ListExperimentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.experiments.len(), 1);
    assert_eq!(listed.experiments[0].id, started.id);

    // Named as runs are: `latest`, or a unique prefix with or without `exp_`.
    let uuid = started.id.strip_prefix("exp_").unwrap();
    for given in ["latest", &started.id[..20], &uuid[..16]] {
        let got = get(&mut c, given).await.experiment.unwrap();
        assert_eq!(got.id, started.id, "{given}");
    }
    let unknown = c
        .get_experiment(pb::GetExperimentRequest {
            experiment_id: "exp_ffff".into(),
            include_comparison: false,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn sources_that_cannot_be_replayed_are_skipped_with_the_reason() {
    // The server's default concurrency, for requests that leave it open.
    let mut s = in_process::start_with(|s| s.experiment_concurrency = 2).await;
    let finished = record(&mut s, 2).await;
    let running = s
        .start_run("name: slow\nnodes:\n  wait: {agent: local://sleep, config: {ms: 60000}, outputs: [result]}\n")
        .await;
    let mut c = experiments(&s).await;
    let ids = vec![finished[0].clone(), running.id.clone(), finished[1].clone()];
    let started = c
        .start_experiment(pb::StartExperimentRequest {
            selection: Some(pb::RunSelection {
                run_ids: ids.clone(),
                ..Default::default()
            }),
            change: Some(pb::ExperimentChange {
                from_node: "summarize".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    let done = watch_to_end(&mut c, &started.id).await;
    assert_eq!(
        done.status(),
        pb::ExperimentStatus::Completed,
        "a skip is not a failure"
    );
    let skipped = &done.items[1];
    assert_eq!(skipped.source_run_id, running.id);
    assert_eq!(skipped.status(), pb::ExperimentItemStatus::Skipped);
    assert!(
        skipped.reason.contains("only a finished run"),
        "{}",
        skipped.reason
    );
    assert!(skipped.replay_run_id.is_empty());
    for i in [0, 2] {
        assert_eq!(done.items[i].status(), pb::ExperimentItemStatus::Completed);
    }
    let p = done.progress.unwrap();
    assert_eq!((p.completed, p.skipped), (2, 1));

    // Both run ids and a filter: refused, naming why.
    let err = c
        .start_experiment(pb::StartExperimentRequest {
            selection: Some(pb::RunSelection {
                run_ids: ids,
                workflow_name: "exp".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("not both"), "{}", err.message());
    let none = c
        .start_experiment(pb::StartExperimentRequest {
            selection: Some(pb::RunSelection {
                workflow_name: "nothing-by-this-name".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        none.message().contains("no run matches"),
        "{}",
        none.message()
    );
}

#[tokio::test]
async fn a_drifted_source_is_skipped_unless_drift_is_allowed() {
    let mut s = in_process::start().await;
    record(&mut s, 2).await;
    let mut c = experiments(&s).await;
    // fetch's definition changed: reusing it is drift.
    let drifted = WORKFLOW.replace(
        "inputs: {topic: \"${user.topic}\"}",
        "inputs: {topic: \"${user.topic}!\"}",
    );
    let start = |allow_drift| pb::StartExperimentRequest {
        selection: Some(pb::RunSelection {
            workflow_name: "exp".into(),
            ..Default::default()
        }),
        change: Some(pb::ExperimentChange {
            workflow: drifted.clone(),
            from_node: "summarize".into(),
            allow_drift,
            ..Default::default()
        }),
        ..Default::default()
    };
    let refused = c
        .start_experiment(start(false))
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    let done = watch_to_end(&mut c, &refused.id).await;
    assert_eq!(done.progress.unwrap().skipped, 2);
    for item in &done.items {
        assert!(item.reason.contains("fetch"), "{}", item.reason);
        assert!(
            item.reason.to_lowercase().contains("drift"),
            "{}",
            item.reason
        );
    }
    let allowed = c
        .start_experiment(start(true))
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    let done = watch_to_end(&mut c, &allowed.id).await;
    assert_eq!(done.progress.unwrap().completed, 2);
}

#[tokio::test]
async fn a_failed_replay_fails_the_experiment() {
    let mut s = in_process::start().await;
    record(&mut s, 3).await;
    let mut c = experiments(&s).await;
    let started = c
        .start_experiment(pb::StartExperimentRequest {
            selection: Some(pb::RunSelection {
                workflow_name: "exp".into(),
                ..Default::default()
            }),
            change: Some(swap("summarize", "local://fail")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    let done = watch_to_end(&mut c, &started.id).await;
    assert_eq!(done.status(), pb::ExperimentStatus::Failed);
    let cmp = get(&mut c, &started.id).await.comparison.unwrap();
    let summarize = cmp.nodes.iter().find(|n| n.node_id == "summarize").unwrap();
    assert_eq!((summarize.failed, summarize.newly_failed), (3, 3));
    let score = cmp.nodes.iter().find(|n| n.node_id == "score").unwrap();
    assert_eq!(score.changed, 3, "skipped now: no output");
}

#[tokio::test]
async fn cancel_stops_the_replays_and_the_rest() {
    let mut s = in_process::start().await;
    record(&mut s, 4).await;
    let mut c = experiments(&s).await;
    let started = start_slow(&mut c).await;
    // The first replay is under way (local://sleep waits a second).
    until_progress(&mut c, &started.id, |p| p.running == 1).await;
    let cancelled = c
        .cancel_experiment(pb::CancelExperimentRequest {
            experiment_id: started.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    assert_eq!(cancelled.status(), pb::ExperimentStatus::Cancelled);
    let p = cancelled.progress.unwrap();
    assert_eq!(
        (p.cancelled, p.completed, p.pending, p.running),
        (4, 0, 0, 0),
        "{p:?}"
    );
    let replay = &cancelled
        .items
        .iter()
        .find(|i| !i.replay_run_id.is_empty())
        .unwrap()
        .replay_run_id;
    let (run, _) = s.get(replay).await;
    assert_eq!(run.status(), pb::RunStatus::Cancelled);
    let again = c
        .cancel_experiment(pb::CancelExperimentRequest {
            experiment_id: started.id,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_server_killed_in_the_middle_finishes_the_experiment_when_it_restarts() {
    let dir = retake_test_support::DbDir::new();
    let server = ServerCommand::new(dir.db());
    let mut process = server.spawn();
    let mut client = process.client().await;
    let sources = record(&mut client, 4).await;
    let mut c = ExperimentServiceClient::connect(process.url())
        .await
        .unwrap();
    let started = start_slow(&mut c).await;
    // Killed once the first replay has finished and the second started.
    until_progress(&mut c, &started.id, |p| p.completed == 1 && p.running == 1).await;
    process.kill9();
    let process = server.spawn();
    let mut client = process.client().await;
    let mut c = ExperimentServiceClient::connect(process.url())
        .await
        .unwrap();
    let done = watch_to_end(&mut c, &started.id).await;
    assert_eq!(
        done.status(),
        pb::ExperimentStatus::Completed,
        "{:?}",
        done.items
    );
    assert_eq!(done.progress.unwrap().completed, 4);
    for source in &sources {
        let replays = client
            .runs
            .list_runs(pb::ListRunsRequest {
                forked_from: source.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .runs;
        assert_eq!(replays.len(), 1, "source {source} replayed once");
    }
}

#[tokio::test]
async fn an_experiment_resumed_by_a_restart_can_be_cancelled() {
    let dir = retake_test_support::DbDir::new();
    let server = ServerCommand::new(dir.db());
    let mut process = server.spawn();
    let mut client = process.client().await;
    let sources = record(&mut client, 4).await;
    let mut c = ExperimentServiceClient::connect(process.url())
        .await
        .unwrap();
    let started = start_slow(&mut c).await;
    until_progress(&mut c, &started.id, |p| p.running == 1).await;
    process.kill9();

    // The next server resumes it: the replay under way carries on, and
    // the rest wait their turn until the cancel.
    let process = server.spawn();
    let mut client = process.client().await;
    let mut c = ExperimentServiceClient::connect(process.url())
        .await
        .unwrap();
    let cancelled = c
        .cancel_experiment(pb::CancelExperimentRequest {
            experiment_id: started.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .experiment
        .unwrap();
    assert_eq!(cancelled.status(), pb::ExperimentStatus::Cancelled);
    let p = cancelled.progress.unwrap();
    assert_eq!((p.pending, p.running), (0, 0), "{p:?}");
    assert_eq!(p.completed + p.cancelled, 4, "{p:?}");
    assert!(
        p.cancelled >= 3,
        "only the replay under way may complete: {p:?}"
    );
    for item in cancelled
        .items
        .iter()
        .filter(|i| !i.replay_run_id.is_empty())
    {
        let (run, _) = client.get(&item.replay_run_id).await;
        let expected = match item.status() {
            pb::ExperimentItemStatus::Completed => pb::RunStatus::Completed,
            _ => pb::RunStatus::Cancelled,
        };
        assert_eq!(run.status(), expected, "{item:?}");
    }
    for source in &sources {
        let replays = client
            .runs
            .list_runs(pb::ListRunsRequest {
                forked_from: source.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .runs;
        assert!(replays.len() <= 1, "source {source} replayed twice");
    }
}

#[tokio::test]
async fn an_embedded_engine_takes_over_an_experiment_a_killed_server_left_and_finishes_it() {
    let dir = retake_test_support::DbDir::new();
    let server = ServerCommand::new(dir.db());
    let mut process = server.spawn();
    let mut client = process.client().await;
    let sources = record(&mut client, 3).await;
    let mut c = ExperimentServiceClient::connect(process.url())
        .await
        .unwrap();
    let started = start_slow(&mut c).await;
    until_progress(&mut c, &started.id, |p| p.running == 1).await;
    process.kill9();

    // Nothing drives it now; an engine in this process takes it over (the
    // database's lock, then its replay under way, then the rest).
    let local = retake_server::embedded::start(retake_server::Settings::new(dir.db()))
        .await
        .unwrap();
    let (id, taken) = local.resume_experiment("latest", false).await.unwrap();
    assert_eq!((id.as_str(), taken), (started.id.as_str(), true));
    let (_, again) = local.resume_experiment(&id, false).await.unwrap();
    assert!(!again, "it runs here already");
    let mut c = ExperimentServiceClient::new(local.channel());
    let done = watch_to_end(&mut c, &id).await;
    assert_eq!(done.status(), pb::ExperimentStatus::Completed);
    assert_eq!(done.progress.unwrap().completed, 3);
    // A server cannot start on the database while this engine holds it.
    let refused = server.command().output().unwrap();
    assert!(!refused.status.success());
    drop(local);

    let process = server.spawn();
    let mut client = process.client().await;
    for source in &sources {
        let replays = client
            .runs
            .list_runs(pb::ListRunsRequest {
                forked_from: source.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .runs;
        assert_eq!(replays.len(), 1, "source {source} replayed once");
    }
}
