//! Every workflow in examples/ runs as documented, against a real
//! retake-server; the LLM example talks to a fake OpenAI-compatible
//! endpoint on loopback in place of Ollama.

mod agents_support;

use agents_support::{Fake, Reply, Server, node, status};
use retake::v1 as pb;
use retake_test_support::openai;
use tokio_stream::StreamExt;

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn run_with(
    s: &mut Server,
    yaml: &str,
    vars: &[(&str, &str)],
) -> (pb::Run, Vec<pb::NodeExecution>) {
    let run = s.start_run_vars(yaml, vars).await;
    s.finish(&run.id).await
}

#[tokio::test]
async fn local_examples_run_to_their_documented_outcome() {
    let mut s = Server::start(&[]).await;
    for (file, vars, expected) in [
        ("hello.yaml", vec![], pb::RunStatus::Completed),
        ("diamond.yaml", vec![], pb::RunStatus::Completed),
        ("retry.yaml", vec![], pb::RunStatus::Completed),
        ("when-skip.yaml", vec![], pb::RunStatus::Completed),
        (
            "report-pipeline.yaml",
            vec![("topic", "durable execution")],
            pb::RunStatus::Completed,
        ),
    ] {
        let (run, _) = run_with(&mut s, &example(file), &vars).await;
        assert_eq!(run.status, expected as i32, "{file}: {:?}", run.failure);
    }
}

#[tokio::test]
async fn the_llm_example_runs_against_an_openai_compatible_endpoint() {
    let fake = Fake::start(|req, n| {
        let model = req.body["model"].as_str().unwrap_or_default();
        Reply::ok(openai::completion(model, &format!("answer {n}"), 10, 3))
    })
    .await;
    let yaml = example("llm-pipeline.yaml")
        .replace("http://localhost:11434/v1", &format!("{}/v1", fake.url()));
    let mut s = Server::start(&[]).await;
    let (run, nodes) = run_with(&mut s, &yaml, &[("topic", "durable execution")]).await;
    assert_eq!(
        run.status,
        pb::RunStatus::Completed as i32,
        "{:?}",
        run.failure
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].body["model"], "llama3.2");
    assert_eq!(requests[0].body["temperature"], 0.2);
    assert!(
        requests[1].body["messages"]
            .to_string()
            .contains("answer 0"),
        "summarize sees the notes"
    );
    assert_eq!(
        s.content(&node(&nodes, "summarize").output_artifact_ids[0])
            .await,
        "answer 1"
    );
    assert_eq!(
        node(&nodes, "research")
            .usage
            .as_ref()
            .unwrap()
            .input_tokens,
        10
    );
}

#[tokio::test]
async fn the_approval_example_waits_then_publishes() {
    let mut s = Server::start(&[]).await;
    let run = s
        .runs
        .start_run(pb::StartRunRequest {
            workflow: example("approval.yaml"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let mut stream = s
        .runs
        .watch_run(pb::WatchRunRequest {
            run_id: run.id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(e) = stream.next().await {
        if e.unwrap().event.unwrap().kind == pb::EventKind::WaitStarted as i32 {
            break;
        }
    }
    let req = pb::ResolveWaitRequest {
        run_id: run.id.clone(),
        decision: pb::WaitDecision::Approve as i32,
        ..Default::default()
    };
    s.runs.resolve_wait(req).await.unwrap();
    s.events(&run.id, 0).await;
    let (run, nodes) = s.get(&run.id).await;
    assert_eq!(run.status, pb::RunStatus::Completed as i32);
    assert_eq!(status(node(&nodes, "publish")), pb::NodeStatus::Completed);
    assert_eq!(status(node(&nodes, "revise")), pb::NodeStatus::Skipped);
}
