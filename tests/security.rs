//! Auth, secrets and limits.

mod common;

use common::*;
use retake::v1 as pb;
use tonic::Code;

#[tokio::test]
async fn every_rpc_but_health_needs_the_token() {
    let mut s = start_with(|settings| settings.auth_token = Some("s3cret-token".into())).await;
    let err = s
        .runs
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let ok = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ok.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let token: tonic::metadata::MetadataValue<_> = "Bearer s3cret-token".parse().unwrap();
    let mut authed = retake::v1::run_service_client::RunServiceClient::with_interceptor(
        channel.clone(),
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", token.clone());
            Ok(req)
        },
    );
    authed
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap();
    let wrong: tonic::metadata::MetadataValue<_> = "Bearer nope".parse().unwrap();
    let mut bad = retake::v1::run_service_client::RunServiceClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", wrong.clone());
            Ok(req)
        },
    );
    assert_eq!(
        bad.list_runs(pb::ListRunsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn secrets_never_reach_the_database_or_responses() {
    let mut s = start().await;
    // SAFETY: set before any node runs; the variable name is unique to this test.
    unsafe { std::env::set_var("RETAKE_TEST_SECRET_VALUE", "env-secret-9f8e7d6c") };
    let yaml = r#"
name: secrets
nodes:
  a:
    agent: local://fail
    retry_policy: {max_retries: 2, backoff: fixed, initial_delay_ms: 1}
    config: {api_key: "literal-secret-1a2b3c4d", token: "${env.RETAKE_TEST_SECRET_VALUE}", message: "failed on purpose", times: 5}
    outputs: [o]
"#;
    let run = s.start_run(yaml).await;
    let events = s.events(&run.id, 0).await;
    let (run, nodes) = s.get(&run.id).await;
    let everything = format!("{run:?}{nodes:?}{events:?}");
    assert!(!everything.contains("env-secret-9f8e7d6c"), "{everything}");
    assert!(!everything.contains("literal-secret-1a2b3c4d"));
    assert!(
        node(&nodes, "a")
            .config_json
            .contains(r#""token":"[redacted]""#)
    );
    let db = s.db.clone();
    let dir = s.stop().await;
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            bytes.extend(b);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("env-secret-9f8e7d6c"));
    // Literal keys are redacted from the stored workflow snapshot too.
    assert!(!text.contains("literal-secret-1a2b3c4d"));
    drop(dir);
}

#[tokio::test]
async fn over_limit_requests_are_resource_exhausted() {
    let mut s = start_with(|settings| {
        settings.max_concurrent_runs = 1;
        settings.max_nodes = 50;
        settings.max_artifact_bytes = 1000;
    })
    .await;
    let many: String = (0..51)
        .map(|i| format!("  n{i}: {{agent: local://echo, outputs: [o]}}\n"))
        .collect();
    let err = s
        .runs
        .start_run(pb::StartRunRequest {
            workflow: format!("name: big\nnodes:\n{many}"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("the limit is 50"),
        "{}",
        err.message()
    );

    let huge_output = format!(
        "name: out\nnodes:\n  a: {{agent: local://mock, config: {{response: \"{}\"}}, outputs: [o]}}\n",
        "x".repeat(5000)
    );
    let run = s.start_run(&huge_output).await;
    let (run, nodes) = s.finish(&run.id).await;
    assert_eq!(run_status(&run), pb::RunStatus::Failed);
    assert!(
        node(&nodes, "a").error.contains("artifact limit"),
        "{}",
        node(&nodes, "a").error
    );

    let slow = s
        .start_run(
            "name: slow\nnodes:\n  s: {agent: local://sleep, config: {ms: 600000}, outputs: [o]}\n",
        )
        .await;
    let err = s
        .runs
        .start_run(pb::StartRunRequest {
            workflow: "name: x\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    s.runs
        .cancel_run(pb::CancelRunRequest { run_id: slow.id })
        .await
        .unwrap();

    let big = format!("name: big\n# {}\nnodes: {{}}\n", "x".repeat(60 << 20));
    let err = s
        .runs
        .start_run(pb::StartRunRequest {
            workflow: big,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains("the limit for all three together is 8388608 bytes"),
        "{}",
        err.message()
    );
    // Past the transport limit the message is refused before it is decoded.
    let oversized = "x".repeat(70 << 20);
    let err = s
        .runs
        .start_run(pb::StartRunRequest {
            workflow: oversized,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 67108864 bytes"), "{err:?}");
}
