//! TLS for the cold-start measurements: a throwaway CA and server certificate (made with the
//! `openssl` command), and an HTTPS front for moto, so that a function's first invocation pays
//! for TLS handshakes to "AWS" and to PostgreSQL, as it does when deployed.

use crate::error::{BenchError, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// The generated files.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The CA certificate (PEM): `DB_CA_FILE` for PostgreSQL.
    pub ca_cert: PathBuf,
    /// The system's trusted roots plus the CA: `SSL_CERT_FILE` for the AWS SDK, so that it
    /// loads a full root store, as on Lambda.
    pub bundle: PathBuf,
    /// A certificate directory holding a link to that bundle alone: `SSL_CERT_DIR`. Lambda's
    /// provided.al2023 keeps its roots in one bundle, which its certificate directory links to
    /// (read once); Debian's directory has a file per root, each of which the SDK would parse
    /// again after the bundle.
    pub bundle_dir: PathBuf,
    /// Server certificate for `127.0.0.1` and `localhost`, signed by the CA (RSA 2048).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// The system's root bundle, when there is one.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

async fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let output = tokio::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .map_err(|e| BenchError::msg(format!("cannot run openssl: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BenchError::msg(format!(
            "openssl {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// Generates a CA and a server certificate in `dir`.
pub async fn generate(dir: &Path) -> Result<TlsFiles> {
    std::fs::create_dir_all(dir)?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=orders-bench CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )
    .await?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )
    .await?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )
    .await?;
    let ca = std::fs::read_to_string(dir.join("ca.pem"))?;
    let system = SYSTEM_BUNDLES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    std::fs::write(dir.join("bundle.pem"), format!("{system}\n{ca}"))?;
    std::fs::create_dir_all(dir.join("certs"))?;
    let link = dir.join("certs/ca-bundle.crt");
    if !link.exists() {
        std::os::unix::fs::symlink("../bundle.pem", link)?;
    }
    Ok(TlsFiles {
        ca_cert: dir.join("ca.pem"),
        bundle: dir.join("bundle.pem"),
        bundle_dir: dir.join("certs"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    })
}

/// An HTTPS listener on 127.0.0.1 that forwards each connection to a plain-TCP port.
#[derive(Default)]
pub struct TlsProxy {
    pub port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TlsProxy {
    /// Terminates TLS with the server certificate and forwards to `127.0.0.1:target`.
    pub async fn start(files: &TlsFiles, target: u16) -> Result<Self> {
        let certs = rustls_pemfile::certs(&mut std::fs::read(&files.server_cert)?.as_slice())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut std::fs::read(&files.server_key)?.as_slice())?
            .ok_or_else(|| BenchError::msg("server.key holds no private key"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BenchError::msg(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| BenchError::msg(format!("TLS proxy certificate: {e}")))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        Ok(Self {
            port,
            task: Some(task),
        })
    }

    /// The HTTPS endpoint.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
