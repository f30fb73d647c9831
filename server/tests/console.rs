//! The web console's address: the same port serves the console's files
//! over HTTP/1.1 and the services over gRPC-Web (what a browser speaks),
//! besides gRPC. Requests are written by hand the way a browser sends
//! them, so the wire format itself is what is tested.

use prost::Message;
use retake::v1 as pb;
use retake_server::api::ConsoleFiles;
use retake_test_support::in_process::InProcessServer;
use retake_test_support::workflows;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("an HTTP client")
}

/// A gRPC-Web call's outcome: the messages, then the trailers'
/// `grpc-status` and `grpc-message` (or the headers', for an answer with
/// no messages).
struct WebReply {
    messages: Vec<Vec<u8>>,
    status: String,
    message: String,
}

async fn grpc_web(url: &str, method: &str, request: impl Message, token: Option<&str>) -> WebReply {
    let payload = request.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let mut req = http()
        .post(format!("{url}/{method}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("gRPC-Web request");
    assert_eq!(resp.status(), 200, "gRPC-Web answers over HTTP 200");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (mut status, mut message) = (header("grpc-status"), header("grpc-message"));
    let bytes = resp.bytes().await.unwrap();
    let mut messages = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 5 {
        let flags = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let frame = &rest[5..5 + len];
        if flags & 0x80 != 0 {
            for line in String::from_utf8_lossy(frame).split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    match k.trim() {
                        "grpc-status" => status = Some(v.trim().to_string()),
                        "grpc-message" => message = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
            }
        } else {
            messages.push(frame.to_vec());
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "frames end where the body does");
    WebReply {
        messages,
        status: status.expect("a grpc-status"),
        message: message.unwrap_or_default(),
    }
}

#[tokio::test]
async fn the_console_and_grpc_web_share_the_api_port() {
    let server = InProcessServer::start(|_| {}).await;
    let url = &server.url;

    let page = http().get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    // Every asset the page names is served, with its type.
    for (asset, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        assert!(html.contains(asset), "the page loads {asset}");
        let resp = http().get(format!("{url}{asset}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(kind), "{asset}: {ct}");
        let etag = resp.headers()["etag"].clone();
        assert!(!resp.bytes().await.unwrap().is_empty());
        // Revalidated, not sent again.
        let again = http()
            .get(format!("{url}{asset}"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{asset}");
    }
    // The app routes in the browser: every path under /runs is its page.
    for path in ["/runs/latest", "/runs/run_x/diff/run_y"] {
        let resp = http().get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.text().await.unwrap(), html, "{path}");
    }
    for path in ["/assets/missing.js", "/assets/..%2fsecret", "/elsewhere"] {
        let resp = http().get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }

    // The services over gRPC-Web, on the same port.
    let mut client = retake_test_support::Client::connect(url).await;
    let run = client
        .start_run_vars(workflows::PIPELINE, &[("topic", "tides")])
        .await;
    client.watch_to_end(&run.id).await;
    let reply = grpc_web(
        url,
        "retake.v1.RunService/GetRun",
        pb::GetRunRequest {
            run_id: run.id.clone(),
            ..Default::default()
        },
        None,
    )
    .await;
    assert_eq!(reply.status, "0", "{}", reply.message);
    let got = pb::GetRunResponse::decode(&reply.messages[0][..]).unwrap();
    assert_eq!(got.run.unwrap().id, run.id);
    // Server streaming too: WatchRun of a finished run sends its events
    // and ends.
    let reply = grpc_web(
        url,
        "retake.v1.RunService/WatchRun",
        pb::WatchRunRequest {
            run_id: run.id.clone(),
            ..Default::default()
        },
        None,
    )
    .await;
    assert_eq!(reply.status, "0", "{}", reply.message);
    assert!(reply.messages.len() > 2, "events of the run arrive");
    let missing = grpc_web(
        url,
        "retake.v1.RunService/GetRun",
        pb::GetRunRequest {
            run_id: "run_nope".into(),
            ..Default::default()
        },
        None,
    )
    .await;
    assert_eq!(missing.status, "5", "NOT_FOUND reaches the browser");
    assert!(missing.message.contains("run_nope"), "{}", missing.message);

    // No cross-origin access unless a deployment adds it.
    let preflight = http()
        .request(
            reqwest::Method::OPTIONS,
            format!("{url}/retake.v1.RunService/GetRun"),
        )
        .header("origin", "https://elsewhere.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn with_a_token_the_files_are_public_and_the_data_is_not() {
    let server = InProcessServer::start(|s| s.auth_token = Some("s3cret".into())).await;
    let url = &server.url;
    let page = http()
        .get(format!("{url}/runs/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let list = pb::ListRunsRequest::default();
    let refused = grpc_web(url, "retake.v1.RunService/ListRuns", list.clone(), None).await;
    assert_eq!(refused.status, "16", "UNAUTHENTICATED without the token");
    let wrong = grpc_web(
        url,
        "retake.v1.RunService/ListRuns",
        list.clone(),
        Some("nope"),
    )
    .await;
    assert_eq!(wrong.status, "16");
    let ok = grpc_web(url, "retake.v1.RunService/ListRuns", list, Some("s3cret")).await;
    assert_eq!(ok.status, "0", "{}", ok.message);
}

#[tokio::test]
async fn the_console_can_be_turned_off_or_served_from_a_directory() {
    let off = InProcessServer::start(|s| s.console = ConsoleFiles::Off).await;
    let resp = http().get(format!("{}/", off.url)).send().await.unwrap();
    assert_ne!(
        resp.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("text/html; charset=utf-8"),
        "no page is served"
    );
    // gRPC-Web stays on: it is the API, not the console.
    let reply = grpc_web(
        &off.url,
        "retake.v1.RunService/ListRuns",
        pb::ListRunsRequest::default(),
        None,
    )
    .await;
    assert_eq!(reply.status, "0", "{}", reply.message);

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>dev build</p>").unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    let path = dir.path().to_path_buf();
    let dev = InProcessServer::start(|s| s.console = ConsoleFiles::Dir(path)).await;
    let page = http()
        .get(format!("{}/runs/x", dev.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.text().await.unwrap(), "<p>dev build</p>");
    // Read on every request: an edit shows without a restart.
    std::fs::write(dir.path().join("assets/app.js"), "console.log(2)").unwrap();
    let js = http()
        .get(format!("{}/assets/app.js", dev.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.text().await.unwrap(), "console.log(2)");
}
