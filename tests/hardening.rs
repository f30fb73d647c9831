//! What a hostile environment tries: reading the server's environment,
//! sending its secrets elsewhere, oversized variables, admission races,
//! undecodable requests, giant ids, auth spellings and agent panics.

mod common;

use common::*;
use retake::v1 as pb;
use retake_server::settings::EnvPolicy;
use tonic::Code;

/// A server configured as `retake-server` configures itself.
async fn operated() -> TestServer {
    start_with(|s| s.env_policy = Some(EnvPolicy::default().into())).await
}

fn start_request(yaml: &str) -> pb::StartRunRequest {
    pb::StartRunRequest {
        workflow: yaml.into(),
        ..Default::default()
    }
}

async fn run_count(s: &mut TestServer) -> usize {
    s.runs
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs
        .len()
}

#[tokio::test]
async fn env_references_outside_credential_keys_are_refused_and_nothing_is_stored() {
    let mut s = operated().await;
    // SAFETY: set before any node runs; the name is unique to this test.
    unsafe { std::env::set_var("RETAKE_SECRET_HARDEN_A", "server-secret-a1b2c3") };
    for (place, yaml) in [
        (
            "config.response",
            "name: leak\nnodes:\n  a: {agent: local://mock, config: {response: \"${env.RETAKE_SECRET_HARDEN_A}\"}, outputs: [o]}\n",
        ),
        (
            "config.api_base",
            "name: leak\nnodes:\n  a: {agent: llm://openai/gpt-4o, config: {api_base: \"http://${env.RETAKE_SECRET_HARDEN_A}\"}, outputs: [o]}\n",
        ),
        (
            "inputs",
            "name: leak\nnodes:\n  a: {agent: local://echo, inputs: {t: \"${env.RETAKE_SECRET_HARDEN_A}\"}, outputs: [o]}\n",
        ),
    ] {
        let err = s.runs.start_run(start_request(yaml)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{place}: {err:?}");
        assert!(
            err.message().contains("node 'a'"),
            "{place}: {}",
            err.message()
        );
        assert!(err.message().contains(place), "{place}: {}", err.message());
        assert!(!err.message().contains("server-secret-a1b2c3"));
    }
    assert_eq!(run_count(&mut s).await, 0);
}

#[tokio::test]
async fn workflows_may_name_only_the_variables_the_operator_allows() {
    let mut s = operated().await;
    unsafe { std::env::set_var("HARDEN_NOT_ALLOWED", "nope-nope-nope") };
    let yaml = "name: x\nnodes:\n  a: {agent: llm://openai/gpt-4o, config: {api_key: \"${env.HARDEN_NOT_ALLOWED}\"}, outputs: [o]}\n";
    let err = s.runs.start_run(start_request(yaml)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("config.api_key") && err.message().contains("HARDEN_NOT_ALLOWED"),
        "{}",
        err.message()
    );
    assert_eq!(run_count(&mut s).await, 0);
}

#[tokio::test]
async fn a_server_secret_is_not_sent_to_a_host_the_workflow_names() {
    let mut s = operated().await;
    unsafe { std::env::set_var("RETAKE_SECRET_HARDEN_B", "server-secret-b4d5e6") };
    // A listener that would see the key if it were sent.
    let catcher = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    catcher.set_nonblocking(true).unwrap();
    let port = catcher.local_addr().unwrap().port();
    let yaml = format!(
        "name: exfil\nnodes:\n  a: {{agent: llm://openai/gpt-4o, config: {{api_key: \"${{env.RETAKE_SECRET_HARDEN_B}}\", api_base: \"http://127.0.0.1:{port}/v1\"}}, outputs: [o]}}\n"
    );
    let run = s.start_run(&yaml).await;
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Failed);
    let error = &node(&nodes, "a").error;
    assert!(error.contains(&format!("'127.0.0.1:{port}'")), "{error}");
    assert_eq!(node(&nodes, "a").attempts.len(), 0, "never attempted");
    assert!(catcher.accept().is_err(), "nothing connected");

    // A replay cannot swap the node to an agent of the author's choosing.
    let source = s
        .start_run(
            "name: src\nnodes:\n  a: {agent: local://echo, config: {api_key: \"${env.RETAKE_SECRET_HARDEN_B}\"}, outputs: [o]}\n",
        )
        .await;
    s.finish(&source.id).await;
    let replay = s
        .runs
        .replay_run(pb::ReplayRunRequest {
            run_id: source.id.clone(),
            swaps: vec![pb::AgentSwap {
                node_id: "a".into(),
                agent: format!("a2a://http://127.0.0.1:{port}/"),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let (replay, nodes) = s.finish(&replay.id).await;
    assert_eq!(run_status(&replay), pb::RunStatus::Failed);
    assert!(node(&nodes, "a").error.contains("--allow-secret-host"));
    assert!(catcher.accept().is_err(), "nothing connected");
}

#[tokio::test]
async fn short_literal_keys_are_cut_from_the_stored_workflow() {
    let mut s = operated().await;
    let yaml = "name: short\nnodes:\n  a:\n    agent: local://echo\n    config: {api_key: k9x2}\n    inputs: {text: hello}\n    outputs: [o]\n";
    let run = s.start_run(yaml).await;
    s.finish(&run.id).await;
    let stored = s
        .runs
        .get_run(pb::GetRunRequest {
            run_id: run.id,
            include_workflow: true,
            include_nodes: false,
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap()
        .workflow_content;
    assert!(!stored.contains("k9x2"), "{stored}");
    assert!(
        stored.contains("text: hello"),
        "the rest is intact: {stored}"
    );
}

#[tokio::test]
async fn variables_count_toward_the_size_limit_and_lists_stay_small() {
    let mut s = start().await;
    let huge = "v".repeat(20 << 20);
    let err = s
        .runs
        .start_run(pb::StartRunRequest {
            workflow: "name: v\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n".into(),
            variables: [("big".to_string(), huge)].into(),
            files: Default::default(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("variables"), "{}", err.message());

    let large = "v".repeat(7 << 20);
    for _ in 0..4 {
        let run = s
            .start_run_vars(
                "name: v\nnodes:\n  a: {agent: local://echo, inputs: {x: \"${user.big}\"}, outputs: [o]}\n",
                &[("big", &large)],
            )
            .await;
        s.finish(&run.id).await;
    }
    // A client with the default 4 MiB limit can list them.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut plain = retake::v1::run_service_client::RunServiceClient::new(channel);
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let page = plain
            .list_runs(pb::ListRunsRequest {
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("ListRuns works whatever the runs hold")
            .into_inner();
        seen += page.runs.len();
        assert!(page.runs.iter().all(|r| r.variables["big"].len() < 2048));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, 4);
}

#[tokio::test]
async fn the_run_cap_holds_under_concurrent_starts() {
    let s = start_with(|s| s.max_concurrent_runs = 20).await;
    let yaml =
        "name: slow\nnodes:\n  a: {agent: local://sleep, config: {ms: 600000}, outputs: [o]}\n";
    let mut tasks = Vec::new();
    for _ in 0..120 {
        let mut runs = s.runs.clone();
        tasks.push(tokio::spawn(async move {
            runs.start_run(start_request(yaml)).await
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => accepted.push(r.into_inner().run.unwrap().id),
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("20 runs"), "{}", e.message());
            }
        }
    }
    assert_eq!(accepted.len(), 20);
    let mut runs = s.runs.clone();
    for id in accepted {
        runs.cancel_run(pb::CancelRunRequest { run_id: id })
            .await
            .unwrap();
    }
    // Slots come back when runs end.
    runs.start_run(start_request(yaml)).await.unwrap();
}

#[tokio::test]
async fn a_run_waiting_for_a_person_holds_no_slot() {
    let mut s = start_with(|s| s.max_concurrent_runs = 1).await;
    let waiting = s
        .start_run("name: gate\nnodes:\n  ok: {agent: \"human://approve\", outputs: [decision]}\n")
        .await;
    for _ in 0..100 {
        let (run, _) = s.get(&waiting.id).await;
        if run_status(&run) == pb::RunStatus::Waiting {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let run = s
        .start_run("name: x\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n")
        .await;
    s.finish(&run.id).await;
}

/// Sends raw bytes as the request body of `method`.
async fn raw_call(s: &TestServer, method: &str, body: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary::<Vec<u8>, Vec<u8>, RawCodec>(
        tonic::Request::new(body),
        method.parse().unwrap(),
        RawCodec,
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn undecodable_requests_are_invalid_arguments() {
    let s = start().await;
    let status = raw_call(&s, "/retake.v1.RunService/GetRun", vec![0xff, 0xff, 0xff]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // Field 1 (run_id, a string) holding bytes that are not UTF-8.
    let status = raw_call(
        &s,
        "/retake.v1.RunService/GetRun",
        vec![0x0a, 0x02, 0xff, 0xfe],
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = raw_call(
        &s,
        "/retake.v1.RunService/WatchRun",
        vec![0x0a, 0x02, 0xff, 0xfe],
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn not_found_messages_quote_only_the_start_of_a_giant_id() {
    let mut s = start().await;
    let id = "r".repeat(500 * 1024);
    let err = s
        .runs
        .get_run(pb::GetRunRequest {
            run_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().len() < 300, "{} bytes", err.message().len());
    let err = s
        .artifacts
        .get_artifact(pb::GetArtifactRequest { artifact_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().len() < 300, "{} bytes", err.message().len());
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_any_wrong_token_is_refused() {
    let s = start_with(|s| s.auth_token = Some("s3cret-token".into())).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for (header, ok) in [
        ("bearer s3cret-token", true),
        ("BEARER s3cret-token", true),
        ("Bearer s3cret-token", true),
        ("Bearer s3cret-toke", false),
        ("Bearer s3cret-token-and-more", false),
        ("Basic s3cret-token", false),
        ("s3cret-token", false),
    ] {
        let value: tonic::metadata::MetadataValue<_> = header.parse().unwrap();
        let mut client = retake::v1::run_service_client::RunServiceClient::with_interceptor(
            channel.clone(),
            move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", value.clone());
                Ok(req)
            },
        );
        let result = client.list_runs(pb::ListRunsRequest::default()).await;
        match (ok, result) {
            (true, Ok(_)) => {}
            (false, Err(e)) => assert_eq!(e.code(), Code::Unauthenticated, "{header}"),
            (ok, r) => panic!("{header}: expected ok={ok}, got {r:?}"),
        }
    }
}

#[tokio::test]
async fn a_panicking_agent_fails_the_run_and_cancel_does_not_hang() {
    let mut s = start().await;
    let yaml = "name: bug\nnodes:\n  a: {agent: local://panic, outputs: [o]}\n  b: {agent: local://sleep, config: {ms: 600000}, outputs: [o]}\n";
    let run = s.start_run(yaml).await;
    let (run, nodes) = tokio::time::timeout(std::time::Duration::from_secs(20), s.finish(&run.id))
        .await
        .expect("the run ends");
    assert_eq!(run_status(&run), pb::RunStatus::Failed);
    let failure = run.failure.unwrap().message;
    assert!(failure.contains("internal error"), "{failure}");
    assert!(nodes.iter().all(|n| status(n) != pb::NodeStatus::Running));
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.runs.cancel_run(pb::CancelRunRequest { run_id: run.id }),
    )
    .await
    .expect("cancel answers at once")
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}
