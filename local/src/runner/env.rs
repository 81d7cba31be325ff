//! The functions' environment: the template's variables with local values, the database
//! settings, and where their AWS calls go (and with which credentials).

use crate::iam::Principal;
use crate::output::warn;
use crate::provision;
use crate::runtime_api::FunctionSpec;
use crate::template::{FunctionDef, Resolver};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use orders::config::{vars, DbConfig, SslMode};
use std::path::Path;

pub(super) fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

/// The region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1.
pub(super) fn region() -> String {
    env_var("AWS_REGION")
        .or_else(|| env_var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into())
}

pub(super) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The database the functions use.
pub(super) struct Db {
    pub config: DbConfig,
    pub password: String,
    pub managed: bool,
}

/// Where the functions' AWS calls go.
#[derive(Debug, Clone)]
pub(super) enum AwsTarget {
    /// moto (or another emulator).
    Endpoint(String),
    /// Real AWS, with the caller's credentials.
    Real,
}

/// What a function needs from the caller's environment to reach real AWS.
pub(super) const AWS_PASS_THROUGH: &[&str] = &[
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "HOME",
];

/// A function's environment: the template's variables with local values (or the caller's,
/// when set), the database settings, and the AWS endpoint and credentials. Also returns the
/// names taken from the caller's environment.
pub(super) fn function_env(
    def: &FunctionDef,
    resolver: &Resolver<'_>,
    db: &Db,
    aws: &AwsTarget,
    secrets: &std::collections::HashMap<String, String>,
    role: Option<&Principal>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let mut overridden = Vec::new();
    let uses_db = def.env.contains_key(vars::DB_HOST);
    for (name, value) in &def.env {
        // The database connection is the runner's own (set below).
        if vars::DB_CONNECTION.contains(&name.as_str()) {
            continue;
        }
        if let Some(v) = env_var(name) {
            env.push((name.clone(), v));
            overridden.push(name.clone());
            continue;
        }
        match resolver
            .string(value)
            .and_then(|v| provision::resolve_dynamic(&v, secrets))
        {
            Ok(v) => env.push((name.clone(), v)),
            Err(e) => warn(format!(
                "{}: {name} is not set locally ({e})",
                def.logical_id
            )),
        }
    }
    if uses_db {
        let sslmode = match db.config.sslmode {
            SslMode::Disable => "disable",
            SslMode::VerifyFull => "verify-full",
        };
        env.extend([
            (vars::DB_HOST.to_string(), db.config.host.clone()),
            (vars::DB_PORT.to_string(), db.config.port.to_string()),
            (vars::DB_NAME.to_string(), db.config.dbname.clone()),
            (vars::DB_USER.to_string(), db.config.user.clone()),
            (vars::DB_SSLMODE.to_string(), sslmode.to_string()),
        ]);
        if let Some(ca) = db.config.ca_file.clone() {
            env.push((vars::DB_CA_FILE.into(), ca));
        }
        // With moto, a secret the template points the function at holds the credentials, as
        // Secrets Manager does when deployed; otherwise the password is given directly. That
        // includes DB_AUTH=iam: a local PostgreSQL cannot check IAM tokens as RDS Proxy does.
        let secret = match aws {
            AwsTarget::Endpoint(_) => def
                .env
                .get(vars::DB_SECRET_ARN)
                .and_then(|v| resolver.string(v).ok()),
            AwsTarget::Real => None,
        };
        match secret {
            Some(arn) => env.push((vars::DB_SECRET_ARN.into(), arn)),
            None => env.push((vars::DB_PASSWORD.into(), db.password.clone())),
        }
    }
    if let Some(format) = env_var("LOCAL_LOG_FORMAT").or_else(|| def.log_format.clone()) {
        env.push(("AWS_LAMBDA_LOG_FORMAT".into(), format));
    }
    if let Some(level) = &def.log_level {
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), level.clone()));
    }
    match aws {
        AwsTarget::Endpoint(endpoint) => {
            env.extend([
                ("AWS_ENDPOINT_URL".to_string(), endpoint.clone()),
                ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
            ]);
            match role {
                // The role's session, as Lambda gives it.
                Some(role) => env.extend(role.env()),
                None => {
                    let (key, secret) = aws_credentials();
                    env.extend([
                        ("AWS_ACCESS_KEY_ID".to_string(), key),
                        ("AWS_SECRET_ACCESS_KEY".to_string(), secret),
                    ]);
                }
            }
        }
        AwsTarget::Real => {
            for name in AWS_PASS_THROUGH {
                if let Some(v) = env_var(name) {
                    env.push((name.to_string(), v));
                }
            }
        }
    }
    (env, overridden)
}

/// The caller's credentials as Lambda hands a function its role's: in the three variables,
/// resolved once through the SDK's whole default chain (`AWS_PROFILE`, SSO, ...), since the
/// functions read those variables only (`orders::aws::function_credentials`). Temporary
/// credentials last as long as the caller's session; restart the runner after it ends.
pub(super) async fn caller_credentials(region: &str) -> Result<Vec<(String, String)>, String> {
    use aws_credential_types::provider::ProvideCredentials;
    let config = sdk_config(&AwsTarget::Real, region).await;
    let provider = config
        .credentials_provider()
        .ok_or("--real-aws: the AWS SDK found no credentials provider")?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| format!("--real-aws: no AWS credentials for the functions: {e}"))?;
    let [key, secret, token] = CREDENTIAL_VARIABLES;
    let mut env = vec![
        (key.to_string(), credentials.access_key_id().to_string()),
        (
            secret.to_string(),
            credentials.secret_access_key().to_string(),
        ),
    ];
    if let Some(session) = credentials.session_token() {
        env.push((token.to_string(), session.to_string()));
    }
    Ok(env)
}

/// The variables Lambda hands a function its role's credentials in.
pub(super) const CREDENTIAL_VARIABLES: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

pub(super) fn aws_credentials() -> (String, String) {
    (
        env_var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".into()),
        env_var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into()),
    )
}

pub(super) async fn sdk_config(aws: &AwsTarget, region: &str) -> SdkConfig {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_string()));
    match aws {
        AwsTarget::Endpoint(endpoint) => {
            let (key, secret) = aws_credentials();
            loader
                .endpoint_url(endpoint)
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    key,
                    secret,
                    None,
                    None,
                    "orders-local",
                ))
                .load()
                .await
        }
        AwsTarget::Real => loader.load().await,
    }
}

/// The value one of the functions' template variables resolves to (before anything exists).
pub(super) fn template_value(
    functions: &[FunctionDef],
    resolver: &Resolver<'_>,
    name: &str,
) -> Option<String> {
    functions
        .iter()
        .filter_map(|f| f.env.get(name))
        .find_map(|v| resolver.string(v).ok())
}

/// Writes a file only its owner can read.
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The env file for `cargo lambda watch --env-file`: every function's variables.
/// (The region too, which Lambda sets and cargo lambda does not.)
/// Under IAM enforcement it holds the admin's credentials: cargo lambda runs every function
/// with the one file, so no single function's role fits.
pub(super) fn write_env_file(
    path: &Path,
    specs: &[FunctionSpec],
    region: &str,
    admin: Option<&Principal>,
) -> Result<(), String> {
    let mut seen = std::collections::BTreeMap::new();
    seen.insert("AWS_REGION".to_string(), region.to_string());
    seen.insert("AWS_DEFAULT_REGION".to_string(), region.to_string());
    for spec in specs {
        for (k, v) in &spec.env {
            seen.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(admin) = admin {
        seen.remove("AWS_SESSION_TOKEN");
        seen.extend(admin.env());
    }
    let mut text = String::new();
    for (k, v) in seen {
        text.push_str(&format!("{k}={v}\n"));
    }
    write_private(path, &text)
}
