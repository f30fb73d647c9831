//! Scripted HTTP services on 127.0.0.1:0 that record every request they
//! receive: the providers a remote agent talks to. What they answer comes
//! from the test's script, written with [`crate::openai`],
//! [`crate::anthropic`] and [`crate::a2a`] for the real wire formats.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a fake service received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body; `null` when there was none or it was not JSON.
    pub body: Value,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a fake service answers.
pub enum Reply {
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
    /// `text/event-stream`: each string is written as it is, `gap` apart.
    Sse { chunks: Vec<String>, gap: Duration },
    /// Waits, then answers.
    After(Duration, Box<Reply>),
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: Value) -> Reply {
        Reply::Json {
            status,
            headers: vec![],
            body,
        }
    }
}

type Script = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// A fake service; it stops with the test's runtime.
pub struct Fake {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Fake {
    /// `script(request, n)` answers the n-th request (0-based).
    pub async fn start(script: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let seen = requests.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let seen = seen.clone();
            let script = script.clone();
            async move {
                let (parts, body) = req.into_parts();
                // A request cut short is recorded with what arrived of it.
                let bytes = axum::body::to_bytes(body, 64 << 20)
                    .await
                    .unwrap_or_default();
                let rec = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    headers: parts.headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    at: Instant::now(),
                };
                let n = {
                    let mut all = seen.lock().unwrap();
                    all.push(rec.clone());
                    all.len() - 1
                };
                respond(script(&rec, n)).await
            }
        });
        let addr = serve(app).await;
        Fake { addr, requests }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves `app` on 127.0.0.1:0 until the runtime ends; returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A JSON answer.
pub fn json_response(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("an HTTP status"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("a response")
}

/// A `text/event-stream` answer of these pieces, as they come.
pub fn sse_response(pieces: impl futures::Stream<Item = Bytes> + Send + 'static) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(
            pieces.map(Ok::<_, std::convert::Infallible>),
        ))
        .expect("a response")
}

fn respond(reply: Reply) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Json {
                status,
                headers,
                body,
            } => {
                let mut response = json_response(status, &body);
                for (k, v) in headers {
                    response
                        .headers_mut()
                        .append(k, v.parse().expect("a header value"));
                }
                response
            }
            Reply::Sse { chunks, gap } => {
                sse_response(futures::stream::iter(chunks).then(move |c| async move {
                    tokio::time::sleep(gap).await;
                    Bytes::from(c)
                }))
            }
            Reply::After(wait, reply) => {
                tokio::time::sleep(wait).await;
                respond(*reply).await
            }
        }
    })
}
