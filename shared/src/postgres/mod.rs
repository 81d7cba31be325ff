//! The write model in PostgreSQL: connection pool, schema migrations and the order store.

mod iam;
pub mod idempotency;
mod migrations;
mod orders;
#[cfg(feature = "sns")]
pub mod outbox;

pub use migrations::{migrate, Migration, MIGRATIONS};
pub use orders::{Change, IdempotencyClaim, Keyed, OrderStore, Outcome, StoredOrder};

use crate::config::{DbConfig, DbPassword, SslMode};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
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
                // 08: connection exception; 57P0x: server shutting down or starting up;
                // 57014: cancelled by statement_timeout; 55P03: lock_timeout; 25P03: the
                // session was ended by idle_in_transaction_session_timeout.
                code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(code, "57014" | "55P03" | "25P03")
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

tokio::task_local! {
    /// Set by [`bounded`] when it gives up on its operation: every connection checked out
    /// inside that operation is then discarded, never handed out again.
    static ABANDONED: Arc<AtomicBool>;
}

/// A pooled connection that is discarded instead of returned to the pool when the operation
/// using it was abandoned by a timeout: its statement may still be running or waiting on a
/// lock on the server, and the next request would queue behind it.
pub struct Connection {
    object: Option<Object>,
    abandoned: Arc<AtomicBool>,
}

impl Connection {
    /// A handle that discards this connection after a client-side timeout of an operation
    /// run outside the [`bounded`] call that checked it out (a transaction spanning several
    /// bounded steps). It does not borrow the connection, so it works while a transaction does.
    pub fn timeout_guard(&self) -> TimeoutGuard {
        TimeoutGuard(Arc::clone(&self.abandoned))
    }
}

/// See [`Connection::timeout_guard`].
pub struct TimeoutGuard(Arc<AtomicBool>);

impl TimeoutGuard {
    /// Passes `result` through, marking the connection for discarding on a timeout.
    pub fn check<T>(&self, result: Result<T, DbError>) -> Result<T, DbError> {
        if matches!(result, Err(DbError::Timeout(_))) {
            self.0.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl std::ops::Deref for Connection {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.object
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Object {
        self.object
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            if self.abandoned.load(Ordering::Relaxed) {
                tracing::warn!("discarding a database connection whose operation timed out");
                drop(Object::take(object));
            }
        }
    }
}

/// Takes a connection from the pool; see [`Connection`] for what happens after a timeout.
pub async fn checkout(pool: &Pool) -> Result<Connection, DbError> {
    let object = pool.get().await?;
    let abandoned = ABANDONED
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(AtomicBool::new(false)));
    Ok(Connection {
        object: Some(object),
        abandoned,
    })
}

/// Runs a database operation with an upper bound on its duration. When the bound is hit, the
/// connections the operation checked out (with [`checkout`]) are discarded: the server-side
/// `statement_timeout` and `lock_timeout` (migrations/0005) end the abandoned statement there.
pub async fn bounded<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    let abandoned = Arc::new(AtomicBool::new(false));
    let mut operation = Box::pin(ABANDONED.scope(abandoned.clone(), operation));
    match tokio::time::timeout(limit, operation.as_mut()).await {
        Ok(result) => result,
        Err(_) => {
            abandoned.store(true, Ordering::Relaxed);
            drop(operation);
            Err(DbError::Timeout(limit))
        }
    }
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
