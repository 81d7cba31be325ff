//! Configuration of every function, read from environment variables in this one place.
//!
//! AWS SDK settings (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials) are read by the SDK itself
//! and are not repeated here.

use crate::domain::access::AccessPolicy;
use std::time::Duration;
use thiserror::Error;

/// A missing or unusable environment variable.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// The environment variables each function reads, so that tests can hold `template.yaml`
/// and the code together.
pub mod vars {
    pub const COMMAND: &[&str] = &[
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_AUTH",
        "DB_PASSWORD",
        "DB_SSLMODE",
        "DB_CA_FILE",
        "DB_POOL_SIZE",
        "DB_CONNECT_TIMEOUT_MS",
        "DB_STATEMENT_TIMEOUT_MS",
        "ORDER_EVENTS_TOPIC_ARN",
        "PUBLISH_TIMEOUT_MS",
        "IDEMPOTENCY_TTL_SECONDS",
        "AUTH_CUSTOMER_CLAIM",
        "AUTH_STAFF_SCOPE",
        "LOG_LEVEL",
    ];
    pub const UPDATER: &[&str] = &[
        "ORDERS_TABLE",
        "RECEIPTS_BUCKET",
        "PROJECTION_CONCURRENCY",
        "LOG_LEVEL",
    ];
    pub const QUERY: &[&str] = &[
        "ORDERS_TABLE",
        "RECEIPTS_BUCKET",
        "RECEIPT_URL_TTL_SECONDS",
        "CURSOR_SIGNING_KEY",
        "AUTH_CUSTOMER_CLAIM",
        "AUTH_STAFF_SCOPE",
        "LOG_LEVEL",
    ];
    pub const RELAY: &[&str] = &[
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_AUTH",
        "DB_PASSWORD",
        "DB_SSLMODE",
        "DB_CA_FILE",
        "DB_POOL_SIZE",
        "DB_CONNECT_TIMEOUT_MS",
        "DB_STATEMENT_TIMEOUT_MS",
        "ORDER_EVENTS_TOPIC_ARN",
        "PUBLISH_TIMEOUT_MS",
        "RELAY_GRACE_SECONDS",
        "RELAY_BATCH_SIZE",
        "RELAY_MAX_BATCHES",
        "RELAY_MAX_SECONDS",
        "LOG_LEVEL",
    ];
    // The variables without a default: each function's must be set by template.yaml
    // (DB_AUTH stands for "DB_AUTH=iam, DB_SECRET_ARN or DB_PASSWORD"; the template uses IAM).
    pub const COMMAND_REQUIRED: &[&str] = &["DB_HOST", "DB_AUTH", "ORDER_EVENTS_TOPIC_ARN"];
    pub const RELAY_REQUIRED: &[&str] = &["DB_HOST", "DB_AUTH", "ORDER_EVENTS_TOPIC_ARN"];
    pub const MIGRATE_REQUIRED: &[&str] = &["DB_HOST", "DB_AUTH"];
    pub const UPDATER_REQUIRED: &[&str] = &["ORDERS_TABLE", "RECEIPTS_BUCKET"];
    pub const QUERY_REQUIRED: &[&str] = &["ORDERS_TABLE", "RECEIPTS_BUCKET", "CURSOR_SIGNING_KEY"];
    pub const MIGRATE: &[&str] = &[
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_AUTH",
        "DB_PASSWORD",
        "DB_SSLMODE",
        "DB_CA_FILE",
        "DB_POOL_SIZE",
        "DB_CONNECT_TIMEOUT_MS",
        "DB_STATEMENT_TIMEOUT_MS",
        "LOG_LEVEL",
    ];
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

fn parsed<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                value,
                reason: e.to_string(),
            }),
    }
}

fn millis(name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
    parsed(name, default_ms).map(Duration::from_millis)
}

/// How the connection to PostgreSQL is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (local development only).
    Disable,
    /// TLS with the server certificate verified against the trusted roots and host name.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "disable" => Ok(Self::Disable),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!("expected disable or verify-full, got {other}")),
        }
    }
}

/// How the function authenticates to the database (`DB_AUTH`, then the password variables).
#[derive(Clone)]
pub enum DbPassword {
    /// Given directly (local development).
    Plain(String),
    /// A Secrets Manager secret (ARN or name) whose JSON holds `password` (and may hold
    /// `username`, `host`, `port`, `dbname`, as RDS-managed secrets do).
    Secret(String),
    /// `DB_AUTH=iam`: an IAM authentication token, signed for each new connection with the
    /// function's own credentials (RDS Proxy or RDS with IAM authentication). Needs TLS.
    Iam,
}

impl std::fmt::Debug for DbPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(***)"),
            Self::Secret(arn) => f.debug_tuple("Secret").field(arn).finish(),
            Self::Iam => f.write_str("Iam"),
        }
    }
}

/// How to authenticate, from `DB_AUTH`, `DB_SECRET_ARN` and `DB_PASSWORD`.
fn db_password(
    auth: Option<String>,
    secret_arn: Option<String>,
    password: Option<String>,
    sslmode: SslMode,
) -> Result<DbPassword, ConfigError> {
    let auth = auth.map(|v| v.trim().to_ascii_lowercase());
    match auth.as_deref() {
        Some("iam") if sslmode == SslMode::Disable => Err(ConfigError::Invalid {
            name: "DB_SSLMODE",
            value: "disable".into(),
            reason: "DB_AUTH=iam sends a signed token as the password, which needs TLS".into(),
        }),
        Some("iam") => Ok(DbPassword::Iam),
        None | Some("password") => match (secret_arn, password) {
            (Some(arn), _) => Ok(DbPassword::Secret(arn)),
            (None, Some(pw)) => Ok(DbPassword::Plain(pw)),
            (None, None) => Err(ConfigError::Missing(
                "DB_PASSWORD or DB_SECRET_ARN (or DB_AUTH=iam)",
            )),
        },
        Some(other) => Err(ConfigError::Invalid {
            name: "DB_AUTH",
            value: other.to_string(),
            reason: "expected iam or password".into(),
        }),
    }
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: DbPassword,
    pub sslmode: SslMode,
    /// PEM bundle of extra trusted roots (for example the RDS CA bundle); the public web
    /// roots are trusted otherwise, which covers RDS Proxy's certificates.
    pub ca_file: Option<String>,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl DbConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let sslmode = parsed("DB_SSLMODE", SslMode::VerifyFull)?;
        let password = db_password(
            optional("DB_AUTH"),
            optional("DB_SECRET_ARN"),
            optional("DB_PASSWORD"),
            sslmode,
        )?;
        Ok(Self {
            host: required("DB_HOST")?,
            port: parsed("DB_PORT", 5432)?,
            dbname: optional("DB_NAME").unwrap_or_else(|| "orders".into()),
            user: optional("DB_USER").unwrap_or_else(|| "orders".into()),
            password,
            sslmode,
            ca_file: optional("DB_CA_FILE"),
            pool_size: parsed("DB_POOL_SIZE", 2)?,
            connect_timeout: millis("DB_CONNECT_TIMEOUT_MS", 3000)?,
            statement_timeout: millis("DB_STATEMENT_TIMEOUT_MS", 5000)?,
        })
    }
}

/// Settings of the command function (`POST /orders`).
#[derive(Debug, Clone)]
pub struct CommandConfig {
    pub db: DbConfig,
    pub topic_arn: String,
    pub publish_timeout: Duration,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    pub access: AccessPolicy,
}

impl CommandConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            db: DbConfig::from_env()?,
            topic_arn: required("ORDER_EVENTS_TOPIC_ARN")?,
            publish_timeout: millis("PUBLISH_TIMEOUT_MS", 2000)?,
            idempotency_ttl: Duration::from_secs(parsed("IDEMPOTENCY_TTL_SECONDS", 86_400)?),
            access: access_policy(),
        })
    }
}

/// Settings of the outbox relay function (scheduled).
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub db: DbConfig,
    pub topic_arn: String,
    pub publish_timeout: Duration,
    /// Events younger than this are left to the command that wrote them.
    pub grace: Duration,
    pub batch_size: i64,
    pub max_batches: usize,
    /// Time budget of one run; keep it well under the function timeout.
    pub max_duration: Duration,
}

impl RelayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            db: DbConfig::from_env()?,
            topic_arn: required("ORDER_EVENTS_TOPIC_ARN")?,
            publish_timeout: millis("PUBLISH_TIMEOUT_MS", 2000)?,
            grace: Duration::from_secs(parsed("RELAY_GRACE_SECONDS", 10)?),
            batch_size: parsed("RELAY_BATCH_SIZE", 100i64)?.clamp(1, 1000),
            max_batches: parsed("RELAY_MAX_BATCHES", 20usize)?.max(1),
            max_duration: Duration::from_secs(parsed("RELAY_MAX_SECONDS", 40)?),
        })
    }
}

/// Settings of the updater function (SQS -> DynamoDB + S3).
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    pub table: String,
    pub bucket: String,
    /// How many records of one batch are projected at the same time.
    pub concurrency: usize,
}

impl UpdaterConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let concurrency = parsed("PROJECTION_CONCURRENCY", 8usize)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "PROJECTION_CONCURRENCY",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            table: required("ORDERS_TABLE")?,
            bucket: required("RECEIPTS_BUCKET")?,
            concurrency,
        })
    }
}

/// Settings of the query function (`GET /orders/{id}`, `GET /customers/{id}/orders`).
#[derive(Clone)]
pub struct QueryConfig {
    pub table: String,
    pub bucket: String,
    /// How long a presigned receipt URL stays valid.
    pub receipt_url_ttl: Duration,
    /// Key that signs listing cursors, so that a tampered cursor is refused. Unset, a fixed
    /// development key is used (with a warning) only when `STAGE=local`; any other stage
    /// refuses to start without one.
    pub cursor_key: Vec<u8>,
    pub access: AccessPolicy,
}

/// The cursor key used when `CURSOR_SIGNING_KEY` is not set (local development only).
pub const DEVELOPMENT_CURSOR_KEY: &str = "orders-cqrs-development-cursor-key";

/// The cursor key from `CURSOR_SIGNING_KEY`; without one, the development key when `STAGE` is
/// `local`, else an error: a deployed stage signing with a published key would accept cursors
/// anyone can forge.
fn cursor_key(key: Option<String>, stage: Option<String>) -> Result<Vec<u8>, ConfigError> {
    if let Some(key) = key {
        return Ok(key.into_bytes());
    }
    match stage.as_deref().map(str::trim) {
        Some("local") => {
            tracing::warn!(
                "CURSOR_SIGNING_KEY is not set; using the development key (STAGE=local)"
            );
            Ok(DEVELOPMENT_CURSOR_KEY.as_bytes().to_vec())
        }
        _ => Err(ConfigError::Missing(
            "CURSOR_SIGNING_KEY (only STAGE=local may go without one)",
        )),
    }
}

impl std::fmt::Debug for QueryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryConfig")
            .field("table", &self.table)
            .field("bucket", &self.bucket)
            .field("receipt_url_ttl", &self.receipt_url_ttl)
            .field("cursor_key", &"***")
            .field("access", &self.access)
            .finish()
    }
}

impl QueryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let cursor_key = cursor_key(optional("CURSOR_SIGNING_KEY"), optional("STAGE"))?;
        Ok(Self {
            table: required("ORDERS_TABLE")?,
            bucket: required("RECEIPTS_BUCKET")?,
            receipt_url_ttl: Duration::from_secs(parsed("RECEIPT_URL_TTL_SECONDS", 900)?),
            cursor_key,
            access: access_policy(),
        })
    }
}

/// How callers are read from the JWT claims: `AUTH_CUSTOMER_CLAIM` names the claim with the
/// customer id (default `sub`), `AUTH_STAFF_SCOPE` the scope of staff (default `orders/admin`).
pub fn access_policy() -> AccessPolicy {
    let defaults = AccessPolicy::default();
    AccessPolicy {
        customer_claim: optional("AUTH_CUSTOMER_CLAIM")
            .map(|v| v.trim().to_string())
            .unwrap_or(defaults.customer_claim),
        staff_scope: optional("AUTH_STAFF_SCOPE")
            .map(|v| v.trim().to_string())
            .unwrap_or(defaults.staff_scope),
    }
}

/// The log filter: `LOG_LEVEL`, else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn log_level() -> String {
    optional("LOG_LEVEL")
        .or_else(|| optional("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|| "info".into())
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::vars::*;
    use super::{cursor_key, db_password, DbPassword, SslMode, DEVELOPMENT_CURSOR_KEY};

    #[test]
    fn only_a_local_stage_may_sign_cursors_with_the_development_key() {
        let some = |v: &str| Some(v.to_string());
        assert_eq!(cursor_key(some("k"), some("prod")).unwrap(), b"k");
        assert_eq!(
            cursor_key(None, some("local")).unwrap(),
            DEVELOPMENT_CURSOR_KEY.as_bytes()
        );
        for stage in [some("dev"), some("prod"), None] {
            let refused = cursor_key(None, stage.clone()).unwrap_err();
            assert!(
                refused.to_string().contains("CURSOR_SIGNING_KEY"),
                "{stage:?}"
            );
        }
    }

    #[test]
    fn database_authentication_is_chosen_by_db_auth() {
        let some = |v: &str| Some(v.to_string());
        let iam = db_password(some(" IAM "), None, None, SslMode::VerifyFull);
        assert!(matches!(iam, Ok(DbPassword::Iam)));
        // A token is a password: never without TLS.
        let clear = db_password(some("iam"), None, None, SslMode::Disable);
        assert!(clear.unwrap_err().to_string().contains("DB_SSLMODE"));
        let secret = db_password(some("password"), some("arn"), some("pw"), SslMode::Disable);
        assert!(matches!(secret, Ok(DbPassword::Secret(arn)) if arn == "arn"));
        let plain = db_password(None, None, some("pw"), SslMode::Disable);
        assert!(matches!(plain, Ok(DbPassword::Plain(pw)) if pw == "pw"));
        let missing = db_password(None, None, None, SslMode::VerifyFull);
        assert!(missing.unwrap_err().to_string().contains("DB_PASSWORD"));
        let unknown = db_password(some("kerberos"), None, some("pw"), SslMode::VerifyFull);
        assert!(unknown.unwrap_err().to_string().contains("DB_AUTH"));
    }

    #[test]
    fn required_variables_are_listed_variables() {
        for (all, required) in [
            (COMMAND, COMMAND_REQUIRED),
            (RELAY, RELAY_REQUIRED),
            (MIGRATE, MIGRATE_REQUIRED),
            (UPDATER, UPDATER_REQUIRED),
            (QUERY, QUERY_REQUIRED),
        ] {
            for name in required {
                assert!(all.contains(name), "{name}");
            }
        }
    }
}
