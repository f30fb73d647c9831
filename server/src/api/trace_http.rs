//! A server span for every gRPC call when traces are exported
//! (crate::telemetry): the caller's W3C `traceparent` is its parent, and
//! the call's handler runs in its context, so a run the call starts
//! continues the caller's trace.

use crate::telemetry;
use http::{Method, Request, Response};
use opentelemetry::context::FutureExt;
use std::task::{Context, Poll};
use tonic::body::Body;

#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, ReqBody> tower::Service<Request<ReqBody>> for TraceService<S>
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
        // gRPC calls are POSTs; pages, assets and scrapes are not traced.
        let span = (req.method() == Method::POST)
            .then(|| telemetry::rpc_span(req.uri().path(), &telemetry::extract(req.headers())))
            .flatten();
        let Some(cx) = span else {
            return Box::pin(self.inner.call(req));
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.with_context(cx.clone()).await;
            let status = response
                .as_ref()
                .ok()
                .and_then(|r| r.headers().get("grpc-status"))
                .and_then(|v| v.to_str().ok());
            telemetry::end_rpc(&cx, status);
            response
        })
    }
}
