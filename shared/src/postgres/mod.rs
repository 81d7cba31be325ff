//! The write model in PostgreSQL: connection pool, schema migrations and the order store.

mod iam;
mod migrations;
mod orders;

pub use migrations::{migrate, Migration, MIGRATIONS};
pub use orders::{Change, IdempotencyClaim, Keyed, OrderStore, Outcome, StoredOrder};

use crate::config::{DbConfig, DbPassword, SslMode};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A failed database operation, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached now (down, restarting, pool exhausted): retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database operation timed out after {0:?}")]
    Timeout(Duration),
    #[error("database error: {0}")]
    Query(tokio_postgres::Error),
    /// The connection settings, TLS roots or credentials are unusable: fix the deployment.
    #[error("database configuration: {0}")]
    Config(String),
    /// A stored row cannot be read as the domain model (for example an unknown status).
    #[error("stored data is not a valid order: {0}")]
    Corrupt(String),
    /// A row changed although this transaction held its lock: a broken invariant.
    #[error("lost update: {0}")]
    LostUpdate(String),
    #[error("migration {name} failed: {reason}")]
    Migration { name: String, reason: String },
}

impl DbError {
    /// True when the failure is transient and the request may be retried (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(err: tokio_postgres::Error) -> Self {
        let connection_lost = err.is_closed()
            || err.as_db_error().is_some_and(|db| {
                let code = db.code().code();
                // 08: connection exception; 57P0x: server shutting down or starting up.
                code.starts_with("08") || code.starts_with("57P")
            })
            || (err.as_db_error().is_none() && err.code().is_none() && is_io(&err));
        if connection_lost {
            Self::Unavailable(with_causes(&err))
        } else {
            Self::Query(err)
        }
    }
}

/// The error and its causes, e.g. "error connecting to server: Connection refused (os error 111)".
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn is_io(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

impl From<PoolError> for DbError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Backend(e) => Self::Unavailable(with_causes(&e)),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Runs a database operation with an upper bound on its duration.
pub async fn bounded<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(limit, operation)
        .await
        .unwrap_or(Err(DbError::Timeout(limit)))
}

/// Builds the connection pool. No connection is opened here: the first request opens one, so
/// a function starts even while the database is down and answers 503 until it is back. With
/// `DB_AUTH=iam` nothing is fetched either: each connection signs its own token.
pub async fn connect(config: &DbConfig, aws: &aws_config::SdkConfig) -> Result<Pool, DbError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .dbname(&config.dbname)
        .connect_timeout(config.connect_timeout)
        .application_name("orders-cqrs");
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = if let DbPassword::Iam = config.password {
        let signer = iam::TokenSigner::new(aws, &config.host, config.port, &config.user)
            .map_err(|e| DbError::Config(e.to_string()))?;
        pg.user(&config.user)
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        let tls = tls_connector(config.ca_file.as_deref())?;
        Manager::from_connect(pg, iam::IamConnect { signer, tls }, manager_config)
    } else {
        let (user, password) = credentials(config, aws).await?;
        pg.user(&user).password(password);
        match config.sslmode {
            SslMode::Disable => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
            }
            SslMode::VerifyFull => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tls_connector(config.ca_file.as_deref())?;
                Manager::from_config(pg, tls, manager_config)
            }
        }
    };
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// A TLS connector that verifies the server certificate and host name against the public web
/// roots (which cover RDS Proxy) plus any roots in `ca_file` (for example the RDS CA bundle).
fn tls_connector(
    ca_file: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| DbError::Config(format!("DB_CA_FILE {path}: {e}")))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| DbError::Config(format!("DB_CA_FILE {path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| DbError::Config(format!("DB_CA_FILE {path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
}

async fn credentials(
    config: &DbConfig,
    #[allow(unused_variables)] aws: &aws_config::SdkConfig,
) -> Result<(String, String), DbError> {
    match &config.password {
        DbPassword::Plain(password) => Ok((config.user.clone(), password.clone())),
        DbPassword::Iam => Err(DbError::Config(
            "DB_AUTH=iam has no password to read".into(),
        )),
        #[cfg(feature = "secrets")]
        DbPassword::Secret(secret_id) => secret_credentials(aws, secret_id, &config.user).await,
        #[cfg(not(feature = "secrets"))]
        DbPassword::Secret(_) => Err(DbError::Config(
            "DB_SECRET_ARN needs the `secrets` feature".into(),
        )),
    }
}

/// Reads `username` and `password` from a Secrets Manager secret, as RDS writes them.
#[cfg(feature = "secrets")]
async fn secret_credentials(
    aws: &aws_config::SdkConfig,
    secret_id: &str,
    default_user: &str,
) -> Result<(String, String), DbError> {
    #[derive(serde::Deserialize)]
    struct RdsSecret {
        username: Option<String>,
        password: String,
    }
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            DbError::Config(format!(
                "reading secret {secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            ))
        })?;
    let text = output
        .secret_string
        .ok_or_else(|| DbError::Config(format!("secret {secret_id} has no string value")))?;
    let secret: RdsSecret = serde_json::from_str(&text)
        .map_err(|_| DbError::Config(format!("secret {secret_id} is not JSON with a password")))?;
    Ok((
        secret.username.unwrap_or_else(|| default_user.to_string()),
        secret.password,
    ))
}
