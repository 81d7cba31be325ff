use super::*;
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CA: &[u8] = include_bytes!("../../../tests/fixtures/tls/ca.pem");
const SERVER_CERT: &[u8] = include_bytes!("../../../tests/fixtures/tls/server.pem");
const SERVER_KEY: &[u8] = include_bytes!("../../../tests/fixtures/tls/server.key");
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello";

/// A client trusting the test CA only.
fn trusting_the_test_ca(connect: Duration, read: Option<Duration>) -> Connector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA) {
        roots.add(cert.expect("test CA")).expect("a usable root");
    }
    let tls = crate::aws::roots::client_config(roots).expect("a configuration");
    Connector::new(tls, Some(connect), read)
}

fn get(url: String) -> HttpRequest {
    let request = hyper::Request::get(url)
        .body(SdkBody::empty())
        .expect("request");
    HttpRequest::try_from(request).expect("smithy request")
}

/// A TLS server with the test certificate that answers `answer` to one request per
/// connection, for `connections` connections.
async fn tls_server(answer: &'static [u8], connections: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("port").port();
    let certs = CertificateDer::pem_slice_iter(SERVER_CERT)
        .collect::<Result<Vec<_>, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY).expect("key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut tls = acceptor.accept(tcp).await.expect("handshake");
            let mut buf = vec![0u8; 4096];
            let _ = tls.read(&mut buf).await;
            tls.write_all(answer).await.expect("answer");
            tls.flush().await.expect("flush");
        }
    });
    port
}

/// A server that accepts TCP connections and never says anything.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("port").port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    (port, held)
}

#[tokio::test]
async fn speaks_https_with_the_roots_it_is_given() {
    let port = tls_server(OK, 1).await;
    let connector = trusting_the_test_ca(Duration::from_secs(5), None);
    let response = connector
        .call(get(format!("https://localhost:{port}/")))
        .await
        .expect("a response");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.into_body().collect().await.expect("body");
    assert_eq!(&body.to_bytes()[..], b"hello");
}

#[tokio::test]
async fn a_server_outside_the_roots_is_refused_as_a_retryable_io_error() {
    let port = tls_server(OK, 1).await;
    // The system's roots do not include the test CA (no roots at all: nothing to check).
    let Some(system) = crate::aws::roots::tls_config() else {
        return;
    };
    let connector = Connector::new(system, Some(Duration::from_secs(5)), None);
    let error = connector
        .call(get(format!("https://localhost:{port}/")))
        .await
        .expect_err("an untrusted certificate");
    assert!(error.is_io(), "{error:?}");
    assert!(
        format!("{:?}", error).contains("UnknownIssuer"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_handshake_that_never_comes_is_a_connect_timeout() {
    let (port, held) = silent_server().await;
    let connector = trusting_the_test_ca(Duration::from_millis(200), None);
    let error = connector
        .call(get(format!("https://localhost:{port}/")))
        .await
        .expect_err("no handshake");
    assert!(error.is_timeout(), "{error:?}");
    held.abort();
}

#[tokio::test]
async fn a_response_that_never_comes_is_a_read_timeout() {
    let (port, held) = silent_server().await;
    let connector = trusting_the_test_ca(Duration::from_secs(5), Some(Duration::from_millis(200)));
    let error = connector
        .call(get(format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("no response");
    assert!(error.is_timeout(), "{error:?}");
    held.abort();
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_io_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("port").port()
    };
    let connector = trusting_the_test_ca(Duration::from_secs(5), None);
    let error = connector
        .call(get(format!("http://127.0.0.1:{port}/")))
        .await
        .expect_err("nobody listens");
    assert!(error.is_io(), "{error:?}");
}

#[tokio::test]
async fn a_response_cut_short_is_transient() {
    let port = tls_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", 1).await;
    let connector = trusting_the_test_ca(Duration::from_secs(5), None);
    let response = connector
        .call(get(format!("https://localhost:{port}/")))
        .await
        .expect("the head arrives");
    assert!(
        response.into_body().collect().await.is_err(),
        "the body ends early"
    );

    let port = tls_server(b"HTTP/1.1 200 O", 1).await;
    let error = connector
        .call(get(format!("https://localhost:{port}/")))
        .await
        .expect_err("the head is cut");
    assert!(
        error.as_other() == Some(ErrorKind::TransientError) || error.is_io(),
        "{error:?}"
    );
}
