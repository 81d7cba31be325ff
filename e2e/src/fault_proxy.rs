//! Faults on the wire, no mocked clients: an HTTP proxy in front of moto that fails chosen
//! requests with a 500 or never answers them (DynamoDB or S3 failing or hanging for some
//! records only), and a TCP proxy in front of PostgreSQL that can black-hole its traffic
//! (packets dropped, not refused).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex};

/// A running proxy; requests whose path or body contains a blocked marker get HTTP 500, those
/// that contain a hung marker get no answer at all.
#[derive(Clone)]
pub struct FaultProxy {
    pub port: u16,
    blocked: Arc<Mutex<Vec<String>>>,
    hung: Arc<Mutex<Vec<String>>>,
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
            hung: Arc::default(),
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

    /// Never answers a request that mentions `marker` (`""`: every request) until cleared;
    /// requests already held stay unanswered, as on a dead connection.
    pub fn hang(&self, marker: &str) {
        self.hung.lock().expect("lock").push(marker.to_string());
    }

    /// Answers HTTP 400 with the refusal's body to every request it refuses (for example a
    /// service limit moto does not enforce, see [`crate::sns_limits`]), counted in
    /// [`FaultProxy::failures`].
    pub fn refuse_when(&self, refusal: Refusal) {
        self.refusals.lock().expect("lock").push(refusal);
    }

    pub fn clear(&self) {
        self.blocked.lock().expect("lock").clear();
        self.hung.lock().expect("lock").clear();
    }

    /// How many requests were failed or hung on purpose.
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
        let matches = |markers: &Mutex<Vec<String>>| {
            markers
                .lock()
                .expect("lock")
                .iter()
                .any(|m| path.contains(m.as_str()) || text.contains(m.as_str()))
        };
        if matches(&self.hung) {
            *self.failures.lock().expect("lock") += 1;
            std::future::pending::<()>().await;
        }
        let blocked = matches(&self.blocked);
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

/// A TCP proxy in front of PostgreSQL that can black-hole the traffic: while on, nothing is
/// forwarded either way (open connections fall silent mid-stream, new ones are accepted and
/// never answered), as when packets are dropped rather than refused. Connections silenced
/// stay silent after [`TcpFaultProxy::restore`]; new ones work again.
#[derive(Clone)]
pub struct TcpFaultProxy {
    pub port: u16,
    dropping: Arc<std::sync::atomic::AtomicBool>,
}

impl TcpFaultProxy {
    /// Starts forwarding 127.0.0.1:<port> to 127.0.0.1:`upstream_port`.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let proxy = Self {
            port: listener.local_addr().expect("addr").port(),
            dropping: Arc::default(),
        };
        let dropping = proxy.dropping.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let dropping = dropping.clone();
                tokio::spawn(async move {
                    if dropping.load(std::sync::atomic::Ordering::SeqCst) {
                        return hold(client).await;
                    }
                    let Ok(server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pipe(client_read, server_write, dropping.clone()),
                        pipe(server_read, client_write, dropping),
                    );
                });
            }
        });
        proxy
    }

    /// Drops every byte from now on.
    pub fn black_hole(&self) {
        self.dropping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.dropping
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes; once `dropping` is set (even once), reads and
/// discards instead, keeping both sockets open.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dropping: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    let mut silenced = false;
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        silenced |= dropping.load(std::sync::atomic::Ordering::SeqCst);
        if silenced {
            // Keep the write half alive (no FIN): the peer sees silence, not a close.
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Reads what the client sends and never answers, until the client gives up.
async fn hold(mut client: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 16 * 1024];
    while matches!(client.read(&mut buffer).await, Ok(n) if n > 0) {}
}
