//! AWS's service limits, enforced in front of moto. moto accepts what AWS refuses (an SNS
//! batch over 256 KiB, a DynamoDB item over 400 KB, ...), so code that breaks only on AWS would
//! pass locally. [`LimitsProxy`] forwards every call to moto and answers the ones AWS would
//! refuse itself, with AWS's HTTP status, error code and error format ([`rules`]). The runner
//! and the e2e harness both put it in front of moto, always; docs/LOCAL.md lists the limits.

pub mod item_size;
pub mod rules;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A running proxy on its own thread and runtime (so sync and async callers can own it);
/// stopped when dropped.
pub struct LimitsProxy {
    pub port: u16,
    refused: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LimitsProxy {
    /// Listens on 127.0.0.1:`port` (0: any free port) and forwards to `upstream`
    /// (`http://127.0.0.1:<moto's port>`). With `report`, each refusal is printed.
    pub fn start(port: u16, upstream: String, report: bool) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let refused = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let state = Arc::new(State {
            upstream,
            report,
            refused: refused.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        std::thread::Builder::new()
            .name("aws-limits".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve(listener, state) => {}
                    }
                });
            })?;
        Ok(Self {
            port,
            refused,
            stop: Some(stop),
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many calls were refused for exceeding a limit.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for LimitsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct State {
    upstream: String,
    report: bool,
    refused: Arc<AtomicUsize>,
    client: HttpClient,
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                async move { state.handle(request).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl State {
    async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes();
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        if let Some(refusal) = rules::check(target, &body) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            if self.report {
                crate::output::prefixed(
                    "aws-limits",
                    &format!(
                        "refused as AWS would: {}: {}",
                        refusal.code, refusal.message
                    ),
                    true,
                );
            }
            let (status, headers, text) = refusal.response();
            let mut response = Response::new(Full::new(Bytes::from(text)));
            *response.status_mut() =
                hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
            for (name, value) in headers {
                if let Ok(value) = value.parse() {
                    response.headers_mut().insert(name, value);
                }
            }
            return Ok(response);
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let mut forwarded = Request::from_parts(parts, Full::new(body));
        match format!("{}{path}", self.upstream).parse() {
            Ok(uri) => *forwarded.uri_mut() = uri,
            Err(_) => return Ok(bad_gateway(format!("cannot forward {path}"))),
        }
        match self.client.request(forwarded).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await?.to_bytes();
                Ok(Response::from_parts(parts, Full::new(bytes)))
            }
            Err(err) => Ok(bad_gateway(format!("moto: {err}"))),
        }
    }
}

fn bad_gateway(text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}
