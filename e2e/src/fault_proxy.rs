//! An HTTP proxy in front of moto that fails chosen requests with a 500, so tests can make
//! DynamoDB or S3 fail for some records only: real failures on the wire, no mocked clients.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex};

/// A running proxy; requests whose path or body contains a blocked marker get HTTP 500.
#[derive(Clone)]
pub struct FaultProxy {
    pub port: u16,
    blocked: Arc<Mutex<Vec<String>>>,
    failures: Arc<Mutex<usize>>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
}

/// A check on each request body: the error body to answer with HTTP 400, or `None` to pass.
pub type Refusal = fn(&[u8]) -> Option<String>;

impl FaultProxy {
    /// Starts forwarding 127.0.0.1:<port> to `upstream` (e.g. `http://127.0.0.1:5000`).
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Self {
            port,
            blocked: Arc::default(),
            failures: Arc::default(),
            refusals: Arc::default(),
        };
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let state = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, state, upstream) = (client.clone(), state.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (client, state, upstream) =
                            (client.clone(), state.clone(), upstream.clone());
                        async move { state.forward(&client, &upstream, request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Fails every request that mentions `marker` (for example an order id) until cleared.
    pub fn block(&self, marker: &str) {
        self.blocked.lock().expect("lock").push(marker.to_string());
    }

    /// Answers HTTP 400 with the refusal's body to every request it refuses (for example a
    /// service limit moto does not enforce, see [`crate::sns_limits`]), counted in
    /// [`FaultProxy::failures`].
    pub fn refuse_when(&self, refusal: Refusal) {
        self.refusals.lock().expect("lock").push(refusal);
    }

    pub fn clear(&self) {
        self.blocked.lock().expect("lock").clear();
    }

    /// How many requests were failed on purpose.
    pub fn failures(&self) -> usize {
        *self.failures.lock().expect("lock")
    }

    async fn forward(
        &self,
        client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
        upstream: &str,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let text = String::from_utf8_lossy(&body);
        let blocked = self
            .blocked
            .lock()
            .expect("lock")
            .iter()
            .any(|m| path.contains(m.as_str()) || text.contains(m.as_str()));
        if blocked {
            *self.failures.lock().expect("lock") += 1;
            let mut response = Response::new(Full::new(Bytes::from_static(
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault"}"#,
            )));
            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(response);
        }
        let refused = self
            .refusals
            .lock()
            .expect("lock")
            .iter()
            .find_map(|refusal| refusal(&body));
        if let Some(error) = refused {
            *self.failures.lock().expect("lock") += 1;
            let mut response = Response::new(Full::new(Bytes::from(error)));
            *response.status_mut() = hyper::StatusCode::BAD_REQUEST;
            return Ok(response);
        }
        let mut forwarded = Request::from_parts(parts, Full::new(body));
        let uri = format!("{upstream}{path}");
        *forwarded.uri_mut() = uri.parse().expect("upstream uri");
        match client.request(forwarded).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await?.to_bytes();
                Ok(Response::from_parts(parts, Full::new(bytes)))
            }
            Err(err) => {
                let mut response = Response::new(Full::new(Bytes::from(err.to_string())));
                *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                Ok(response)
            }
        }
    }
}

/// A TCP server that accepts connections and never answers: a dependency that hangs.
pub async fn black_hole() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    port
}
