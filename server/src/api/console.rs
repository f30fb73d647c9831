//! The web console's static files, served on the API's own address.
//!
//! The console is one more client of the gRPC contract: a browser calls
//! the services over gRPC-Web on this same port, so this layer only hands
//! out files. It answers GET and HEAD requests for the console's paths
//! and passes everything else (gRPC, gRPC-Web: always POST) through.
//! The files are public; the data they fetch is behind the token.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;

/// Where the console's files come from.
#[derive(Clone, Debug, Default)]
pub enum ConsoleFiles {
    /// Not served: the port answers gRPC only.
    Off,
    /// The bundle built into this binary (`console/dist`).
    #[default]
    Embedded,
    /// A directory laid out like `console/dist`, read on every request:
    /// for working on the console without rebuilding the server.
    Dir(PathBuf),
}

/// The built bundle, committed with the sources it was built from.
const EMBEDDED: &[(&str, &[u8])] = &[
    (
        "index.html",
        include_bytes!("../../../console/dist/index.html"),
    ),
    (
        "assets/app.js",
        include_bytes!("../../../console/dist/assets/app.js"),
    ),
    (
        "assets/app.css",
        include_bytes!("../../../console/dist/assets/app.css"),
    ),
];

/// A file ready to send, with the validator browsers revalidate it by.
#[derive(Clone)]
struct File {
    content: Bytes,
    content_type: &'static str,
    etag: HeaderValue,
}

impl File {
    fn new(name: &str, content: Bytes) -> Self {
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&content)[..12]));
        Self {
            content,
            content_type: content_type(name),
            etag: HeaderValue::from_str(&etag).expect("hex is a valid header value"),
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[derive(Clone)]
enum Source {
    Embedded(Arc<Vec<(&'static str, File)>>),
    Dir(Arc<PathBuf>),
}

impl Source {
    async fn file(&self, name: &str) -> Option<File> {
        match self {
            Self::Embedded(files) => files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| f.clone()),
            Self::Dir(dir) => {
                let content = tokio::fs::read(dir.join(name)).await.ok()?;
                Some(File::new(name, content.into()))
            }
        }
    }
}

/// Which file a path names: the app's page for every route it handles
/// (it routes in the browser), an asset by name, or none.
fn file_of(path: &str) -> Option<&str> {
    let app_route = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if path == "/" || path == "/index.html" || app_route("/runs") || app_route("/experiments") {
        return Some("index.html");
    }
    let name = path.strip_prefix("/assets/")?;
    // Names are flat: nothing climbs out of the directory.
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with('.');
    plain.then_some(path.trim_start_matches('/'))
}

#[derive(Clone)]
pub struct ConsoleLayer {
    source: Option<Source>,
}

impl ConsoleLayer {
    pub fn new(files: &ConsoleFiles) -> Self {
        let source = match files {
            ConsoleFiles::Off => None,
            ConsoleFiles::Embedded => Some(Source::Embedded(Arc::new(
                EMBEDDED
                    .iter()
                    .map(|(name, content)| (*name, File::new(name, Bytes::from_static(content))))
                    .collect(),
            ))),
            ConsoleFiles::Dir(dir) => Some(Source::Dir(Arc::new(dir.clone()))),
        };
        Self { source }
    }
}

impl<S> tower::Layer<S> for ConsoleLayer {
    type Service = ConsoleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsoleService {
            inner,
            source: self.source.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ConsoleService<S> {
    inner: S,
    source: Option<Source>,
}

impl<S, ReqBody> tower::Service<Request<ReqBody>> for ConsoleService<S>
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
        let page = matches!(*req.method(), Method::GET | Method::HEAD);
        let (Some(source), true) = (self.source.clone(), page) else {
            return Box::pin(self.inner.call(req));
        };
        let head = req.method() == Method::HEAD;
        let name = file_of(req.uri().path()).map(str::to_string);
        let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
        Box::pin(async move {
            let file = match name {
                Some(name) => source.file(&name).await,
                None => None,
            };
            Ok(respond(file, if_none_match, head))
        })
    }
}

fn respond(file: Option<File>, if_none_match: Option<HeaderValue>, head: bool) -> Response<Body> {
    let Some(file) = file else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::new(Full::new(Bytes::from_static(b"not found\n"))))
            .expect("a static response is valid");
    };
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, file.content_type)
        .header(header::ETAG, file.etag.clone())
        // File names carry no version: browsers ask again each time and
        // get 304 while the file is the same.
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if if_none_match.as_ref() == Some(&file.etag) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("a static response is valid");
    }
    let builder = builder.header(header::CONTENT_LENGTH, file.content.len());
    let body = if head {
        Body::empty()
    } else {
        Body::new(Full::new(file.content))
    };
    builder.body(body).expect("a static response is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_page_an_asset_or_nothing() {
        assert_eq!(file_of("/"), Some("index.html"));
        assert_eq!(file_of("/runs"), Some("index.html"));
        assert_eq!(file_of("/runs/run_1/diff/run_2"), Some("index.html"));
        assert_eq!(file_of("/assets/app.js"), Some("assets/app.js"));
        assert_eq!(file_of("/assets/../secret"), None);
        assert_eq!(file_of("/assets/.env"), None);
        assert_eq!(file_of("/assets/a/b.js"), None);
        assert_eq!(file_of("/assets/"), None);
        assert_eq!(file_of("/retake.v1.RunService/GetRun"), None);
        assert_eq!(file_of("/runsX"), None);
        assert_eq!(file_of("/experiments"), Some("index.html"));
        assert_eq!(file_of("/experiments/exp_1"), Some("index.html"));
    }
}
