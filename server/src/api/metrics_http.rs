//! `GET /metrics` on the API's own address (HTTP/1.1 or HTTP/2): the
//! process's metrics (crate::metrics) in the OpenMetrics text format that
//! Prometheus scrapes, with the gauges read from the engine at that moment.
//! Behind the API's bearer token when one is set (Prometheus sends it with
//! `authorization` in its scrape config).

use super::Auth;
use crate::engine::Engine;
use crate::metrics::metrics;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use std::task::{Context, Poll};
use tonic::body::Body;

const PATH: &str = "/metrics";
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct MetricsLayer {
    engine: Engine,
    auth: Auth,
}

impl MetricsLayer {
    pub fn new(engine: Engine, token: Option<&str>) -> Self {
        Self {
            engine,
            auth: Auth::new(token),
        }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    layer: MetricsLayer,
}

impl<S, ReqBody> tower::Service<Request<ReqBody>> for MetricsService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if req.uri().path() != PATH || !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Box::pin(self.inner.call(req));
        }
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !self.layer.auth.allows(authorization) {
            return Box::pin(async {
                Ok(plain(
                    StatusCode::UNAUTHORIZED,
                    "a valid bearer token is required (authorization: Bearer TOKEN)\n",
                ))
            });
        }
        let engine = self.layer.engine.clone();
        let head = req.method() == Method::HEAD;
        Box::pin(async move {
            let m = metrics();
            m.runs_in_flight.set(engine.runs_in_flight() as i64);
            let (workers, queued) = engine.workers().load();
            m.workers_connected.set(workers as i64);
            m.worker_tasks_queued.set(queued as i64);
            match engine.store().size_bytes().await {
                Ok(size) => {
                    m.database_size.set(size);
                }
                // A scrape still answers; the size keeps its last value.
                Err(e) => tracing::warn!(error = %e, "cannot read the database size for /metrics"),
            }
            let text = m.encode();
            let response = Response::builder()
                .header(header::CONTENT_TYPE, CONTENT_TYPE)
                .header(header::CONTENT_LENGTH, text.len())
                .header(header::CACHE_CONTROL, "no-store");
            let body = if head {
                Body::empty()
            } else {
                Body::new(Full::new(Bytes::from(text)))
            };
            Ok(response.body(body).expect("a metrics response is valid"))
        })
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::WWW_AUTHENTICATE, "Bearer")
        .body(Body::new(Full::new(Bytes::from_static(text.as_bytes()))))
        .expect("a static response is valid")
}
