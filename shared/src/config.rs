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

/// Every environment variable a function reads, each named once here; the per-function lists
/// are built from shared groups, and `template.yaml` (scripts/lint-template, through
/// `scripts/lint/functions.json`), the local runner and the benchmarks use these lists.
pub mod vars {
    /// A set of variables that belong together (a database connection, the read model, ...).
    pub type Group = &'static [&'static str];

    pub const DB_HOST: &str = "DB_HOST";
    pub const DB_PORT: &str = "DB_PORT";
    pub const DB_NAME: &str = "DB_NAME";
    pub const DB_USER: &str = "DB_USER";
    pub const DB_AUTH: &str = "DB_AUTH";
    pub const DB_SECRET_ARN: &str = "DB_SECRET_ARN";
    pub const DB_PASSWORD: &str = "DB_PASSWORD";
    pub const DB_SSLMODE: &str = "DB_SSLMODE";
    pub const DB_CA_FILE: &str = "DB_CA_FILE";
    pub const DB_POOL_SIZE: &str = "DB_POOL_SIZE";
    pub const DB_CONNECT_TIMEOUT_MS: &str = "DB_CONNECT_TIMEOUT_MS";
    pub const DB_STATEMENT_TIMEOUT_MS: &str = "DB_STATEMENT_TIMEOUT_MS";
    pub const ORDER_EVENTS_TOPIC_ARN: &str = "ORDER_EVENTS_TOPIC_ARN";
    pub const PUBLISH_TIMEOUT_MS: &str = "PUBLISH_TIMEOUT_MS";
    pub const IDEMPOTENCY_TTL_SECONDS: &str = "IDEMPOTENCY_TTL_SECONDS";
    pub const AUTH_CUSTOMER_CLAIM: &str = "AUTH_CUSTOMER_CLAIM";
    pub const AUTH_STAFF_SCOPE: &str = "AUTH_STAFF_SCOPE";
    pub const ORDERS_TABLE: &str = "ORDERS_TABLE";
    pub const RECEIPTS_BUCKET: &str = "RECEIPTS_BUCKET";
    pub const PROJECTION_CONCURRENCY: &str = "PROJECTION_CONCURRENCY";
    pub const RECEIPT_URL_TTL_SECONDS: &str = "RECEIPT_URL_TTL_SECONDS";
    pub const CURSOR_SIGNING_KEY: &str = "CURSOR_SIGNING_KEY";
    pub const RELAY_GRACE_SECONDS: &str = "RELAY_GRACE_SECONDS";
    pub const RELAY_BATCH_SIZE: &str = "RELAY_BATCH_SIZE";
    pub const RELAY_MAX_BATCHES: &str = "RELAY_MAX_BATCHES";
    pub const RELAY_MAX_SECONDS: &str = "RELAY_MAX_SECONDS";
    pub const LOG_LEVEL: &str = "LOG_LEVEL";
    pub const STAGE: &str = "STAGE";
    pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
    /// Set by Lambda itself, never by the template: how many invocations one execution
    /// environment runs at once on Lambda Managed Instances (the capacity provider
    /// configuration's `PerExecutionEnvironmentMaxConcurrency`); unset on Lambda (one).
    pub const AWS_LAMBDA_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";

    /// Where and as whom to connect to PostgreSQL ([`super::DbConfig`]): what a local runner
    /// replaces with its own database. The password comes from `DB_AUTH=iam`, `DB_SECRET_ARN`
    /// or `DB_PASSWORD` (local development only; never set by the template).
    pub const DB_CONNECTION: Group = &[
        DB_HOST,
        DB_PORT,
        DB_NAME,
        DB_USER,
        DB_AUTH,
        DB_SECRET_ARN,
        DB_PASSWORD,
        DB_SSLMODE,
        DB_CA_FILE,
    ];
    /// The connection pool's size and time limits.
    pub const DB_POOL: Group = &[DB_POOL_SIZE, DB_CONNECT_TIMEOUT_MS, DB_STATEMENT_TIMEOUT_MS];
    /// Publishing order events to SNS.
    pub const PUBLISH: Group = &[ORDER_EVENTS_TOPIC_ARN, PUBLISH_TIMEOUT_MS];
    /// How callers are read from the JWT claims ([`super::access_policy`]).
    pub const AUTH: Group = &[AUTH_CUSTOMER_CLAIM, AUTH_STAFF_SCOPE];
    /// The read model: the DynamoDB table and the receipts bucket.
    pub const READ_MODEL: Group = &[ORDERS_TABLE, RECEIPTS_BUCKET];
    /// Read by every function: the log filter and the metric dimensions (`crate::metrics`).
    pub const COMMON: Group = &[LOG_LEVEL, STAGE, METRICS_NAMESPACE];

    /// The variables one function reads, and those it cannot start without.
    #[derive(Debug, Clone, Copy)]
    pub struct FunctionVars {
        pub groups: &'static [Group],
        /// Without a default: the template must set them. `DB_AUTH` stands for "DB_AUTH=iam,
        /// DB_SECRET_ARN or DB_PASSWORD"; the template uses IAM.
        pub required: &'static [&'static str],
    }

    impl FunctionVars {
        /// Every variable the function reads, in group order.
        pub fn names(&self) -> Vec<&'static str> {
            self.groups.iter().flat_map(|g| g.iter().copied()).collect()
        }
    }

    pub const COMMAND: FunctionVars = FunctionVars {
        groups: &[
            DB_CONNECTION,
            DB_POOL,
            PUBLISH,
            AUTH,
            &[IDEMPOTENCY_TTL_SECONDS],
            COMMON,
        ],
        required: &[DB_HOST, DB_AUTH, ORDER_EVENTS_TOPIC_ARN],
    };
    pub const QUERY: FunctionVars = FunctionVars {
        groups: &[
            READ_MODEL,
            AUTH,
            &[RECEIPT_URL_TTL_SECONDS, CURSOR_SIGNING_KEY],
            COMMON,
        ],
        required: &[ORDERS_TABLE, RECEIPTS_BUCKET, CURSOR_SIGNING_KEY],
    };
    pub const UPDATER: FunctionVars = FunctionVars {
        groups: &[READ_MODEL, &[PROJECTION_CONCURRENCY], COMMON],
        required: &[ORDERS_TABLE, RECEIPTS_BUCKET],
    };
    pub const RELAY: FunctionVars = FunctionVars {
        groups: &[
            DB_CONNECTION,
            DB_POOL,
            PUBLISH,
            &[
                RELAY_GRACE_SECONDS,
                RELAY_BATCH_SIZE,
                RELAY_MAX_BATCHES,
                RELAY_MAX_SECONDS,
            ],
            COMMON,
        ],
        required: &[DB_HOST, DB_AUTH, ORDER_EVENTS_TOPIC_ARN],
    };
    pub const MIGRATE: FunctionVars = FunctionVars {
        groups: &[DB_CONNECTION, DB_POOL, COMMON],
        required: &[DB_HOST, DB_AUTH],
    };
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
            name: vars::DB_SSLMODE,
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
            name: vars::DB_AUTH,
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
        let sslmode = parsed(vars::DB_SSLMODE, SslMode::VerifyFull)?;
        let password = db_password(
            optional(vars::DB_AUTH),
            optional(vars::DB_SECRET_ARN),
            optional(vars::DB_PASSWORD),
            sslmode,
        )?;
        Ok(Self {
            host: required(vars::DB_HOST)?,
            port: parsed(vars::DB_PORT, 5432)?,
            dbname: optional(vars::DB_NAME).unwrap_or_else(|| "orders".into()),
            user: optional(vars::DB_USER).unwrap_or_else(|| "orders".into()),
            password,
            sslmode,
            ca_file: optional(vars::DB_CA_FILE),
            pool_size: parsed(vars::DB_POOL_SIZE, default_pool_size(max_concurrency()))?,
            connect_timeout: millis(vars::DB_CONNECT_TIMEOUT_MS, 3000)?,
            statement_timeout: millis(vars::DB_STATEMENT_TIMEOUT_MS, 5000)?,
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
            topic_arn: required(vars::ORDER_EVENTS_TOPIC_ARN)?,
            publish_timeout: millis(vars::PUBLISH_TIMEOUT_MS, 2000)?,
            idempotency_ttl: Duration::from_secs(parsed(vars::IDEMPOTENCY_TTL_SECONDS, 86_400)?),
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
            topic_arn: required(vars::ORDER_EVENTS_TOPIC_ARN)?,
            publish_timeout: millis(vars::PUBLISH_TIMEOUT_MS, 2000)?,
            grace: Duration::from_secs(parsed(vars::RELAY_GRACE_SECONDS, 10)?),
            batch_size: parsed(vars::RELAY_BATCH_SIZE, 100i64)?.clamp(1, 1000),
            max_batches: parsed(vars::RELAY_MAX_BATCHES, 20usize)?.max(1),
            max_duration: Duration::from_secs(parsed(vars::RELAY_MAX_SECONDS, 40)?),
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
        let concurrency = parsed(vars::PROJECTION_CONCURRENCY, 8usize)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: vars::PROJECTION_CONCURRENCY,
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            table: required(vars::ORDERS_TABLE)?,
            bucket: required(vars::RECEIPTS_BUCKET)?,
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
        let cursor_key = cursor_key(optional(vars::CURSOR_SIGNING_KEY), optional(vars::STAGE))?;
        Ok(Self {
            table: required(vars::ORDERS_TABLE)?,
            bucket: required(vars::RECEIPTS_BUCKET)?,
            receipt_url_ttl: Duration::from_secs(parsed(vars::RECEIPT_URL_TTL_SECONDS, 900)?),
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
        customer_claim: optional(vars::AUTH_CUSTOMER_CLAIM)
            .map(|v| v.trim().to_string())
            .unwrap_or(defaults.customer_claim),
        staff_scope: optional(vars::AUTH_STAFF_SCOPE)
            .map(|v| v.trim().to_string())
            .unwrap_or(defaults.staff_scope),
    }
}

/// How many invocations this process runs at once: `AWS_LAMBDA_MAX_CONCURRENCY` when it is a
/// positive integer (Lambda Managed Instances), else 1, as `lambda_runtime::run_concurrent`
/// reads it.
pub fn max_concurrency() -> usize {
    optional(vars::AWS_LAMBDA_MAX_CONCURRENCY)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .map_or(1, |n| n as usize)
}

/// The PostgreSQL pool size when `DB_POOL_SIZE` is unset: one connection per concurrent
/// invocation (each holds one for its transaction), and never fewer than 2 (one spare for a
/// connection being replaced).
pub fn default_pool_size(max_concurrency: usize) -> usize {
    max_concurrency.max(2)
}

/// The log filter: `LOG_LEVEL`, else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn log_level() -> String {
    optional(vars::LOG_LEVEL)
        .or_else(|| optional("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|| "info".into())
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::vars::*;
    use super::{
        cursor_key, db_password, default_pool_size, DbPassword, SslMode, DEVELOPMENT_CURSOR_KEY,
    };

    #[test]
    fn the_default_pool_holds_a_connection_per_concurrent_invocation() {
        assert_eq!(default_pool_size(1), 2, "Lambda: one at a time, one spare");
        assert_eq!(default_pool_size(2), 2);
        assert_eq!(default_pool_size(16), 16, "Managed Instances, 16 at once");
    }

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
        for function in [COMMAND, RELAY, MIGRATE, UPDATER, QUERY] {
            let names = function.names();
            for name in function.required {
                assert!(names.contains(name), "{name}");
            }
        }
    }

    #[test]
    fn each_function_lists_each_variable_once() {
        for function in [COMMAND, RELAY, MIGRATE, UPDATER, QUERY] {
            let mut names = function.names();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), count, "{names:?}");
        }
    }
}
