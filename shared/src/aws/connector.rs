//! The HTTP(S) connector behind [`super::https::Https`]: hyper 1 over hyper-rustls, as the
//! SDK's default one, but with the process's one TLS configuration ([`super::roots`]), which the
//! SDK's connector cannot take (it accepts extra roots only as PEM, and decodes the system's
//! roots itself, slowly).
//!
//! Kept from the SDK's connector: a connect timeout that covers TCP and the TLS handshake, a
//! read timeout up to the response's head, TCP_NODELAY, hyper's connection pool, and the
//! classification of failures the retry strategy relies on (timeouts, I/O errors that are worth
//! a retry, user errors that are not). Not kept: HTTP/2 (no endpoint a function calls needs it),
//! proxies (when a proxy is configured, the SDK's connector is used instead) and the capture of
//! connection metadata for poisoning a pooled connection after a failed attempt (hyper drops a
//! connection that broke; one that answered a 5xx is healthy).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A pooled HTTP/1.1 client over TLS (or plain TCP for `http://` endpoints such as a local
/// emulator).
#[derive(Clone)]
pub(crate) struct Connector {
    client: Client<TimedConnect, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    pub(crate) fn new(
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = HttpsConnector::from((tcp, tls));
        let connect = TimedConnect {
            inner: https,
            limit: connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connect);
        Self {
            client,
            read_timeout,
        }
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("orders::aws::Connector")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let responding = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => responding.await,
                Some(limit) => match tokio::time::timeout(limit, responding).await {
                    Ok(response) => response,
                    Err(_) => return Err(ConnectorError::timeout(Box::new(TimedOut::Read(limit)))),
                },
            };
            let response = response.map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// A connect or read timeout that ran out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TimedOut {
    #[error("connecting (TCP and TLS) took longer than {0:?}")]
    Connect(Duration),
    #[error("no response within {0:?} of sending the request")]
    Read(Duration),
}

/// The TCP + TLS connector with the connect timeout around both.
#[derive(Debug, Clone)]
struct TimedConnect {
    inner: HttpsConnector<TcpConnector>,
    limit: Option<Duration>,
}

type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

impl tower_service::Service<hyper::Uri> for TimedConnect {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                None => connecting.await,
                Some(limit) => tokio::time::timeout(limit, connecting)
                    .await
                    .unwrap_or_else(|_| Err(Box::new(TimedOut::Connect(limit)))),
            }
        })
    }
}

/// Sorts a failed request the way the SDK's own connector does, so that its retry strategy
/// treats it alike: timeouts and broken or refused connections are retried, requests the
/// client got wrong are not, an incomplete response is a transient error.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let error: BoxError = Box::new(error);
    if find::<TimedOut>(error.as_ref()).is_some() {
        return ConnectorError::timeout(error);
    }
    if let Some(hyper) = find::<hyper::Error>(error.as_ref()) {
        if hyper.is_timeout() {
            return ConnectorError::timeout(error);
        }
        if hyper.is_user() {
            return ConnectorError::user(error);
        }
        if hyper.is_incomplete_message() {
            return ConnectorError::other(error, Some(ErrorKind::TransientError));
        }
        if hyper.is_closed() || hyper.is_canceled() || find::<std::io::Error>(hyper).is_some() {
            return ConnectorError::io(error);
        }
        return ConnectorError::other(error, None);
    }
    let connecting =
        find::<hyper_util::client::legacy::Error>(error.as_ref()).is_some_and(|e| e.is_connect());
    if connecting || find::<std::io::Error>(error.as_ref()).is_some() {
        return ConnectorError::io(error);
    }
    ConnectorError::other(error, None)
}

/// The first error of type `E` in `error`'s chain, `io::Error` payloads included.
fn find<'a, E: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<E>() {
            return Some(found);
        }
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
            None => current.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests;
