//! The functions under test, each with its configuration and its invocation: how to run a
//! function binary behind the Lambda Runtime API emulator (`orders_local::runtime_api`), with
//! either the configuration it has when deployed (TLS everywhere) or the runner's (plain).

use crate::error::{BenchError, Result};
use crate::events::{self, Samples};
use crate::system::System;
use orders_local::runtime_api::{Function, FunctionSpec, InvokeError, Invoked};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a function reaches PostgreSQL and AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiring {
    /// As deployed: PostgreSQL over TLS (`verify-full` against a CA file) with an IAM token
    /// signed per connection (`DB_AUTH=iam`), and AWS over HTTPS (a TLS front for moto, whose CA
    /// is in the root bundle every wiring gets, see `function_env`).
    Deployed,
    /// As the local runner wires its functions: plain TCP to PostgreSQL and plain HTTP to moto.
    Local,
}

/// The query function again, trusting one root certificate instead of the system bundle: what
/// the root store costs at init (compiled-in roots of a few CAs would cost about as little).
pub const QUERY_ONE_ROOT: &str = "query, one root";

/// `case` (deployed wiring) with the bench CA alone as its root store.
pub fn with_one_root(case: &Case, system: &System) -> Result<Case> {
    let no_certs = system.tls.bundle_dir.with_file_name("no-certs");
    std::fs::create_dir_all(&no_certs)?;
    let mut env: Vec<(String, String)> = case
        .env
        .iter()
        .filter(|(k, _)| k != "SSL_CERT_FILE" && k != "SSL_CERT_DIR")
        .cloned()
        .collect();
    env.push((
        "SSL_CERT_FILE".into(),
        system.tls.ca_cert.display().to_string(),
    ));
    env.push(("SSL_CERT_DIR".into(), no_certs.display().to_string()));
    Ok(Case {
        name: QUERY_ONE_ROOT.into(),
        env,
        ..case.clone()
    })
}

/// Builds an event for invocation number `n`.
pub type PayloadFn = Arc<dyn Fn(u64) -> Result<Value> + Send + Sync>;
/// Checks that a response is a success.
pub type CheckFn = fn(&Value) -> Result<()>;

/// One function to measure.
#[derive(Clone)]
pub struct Case {
    pub name: String,
    pub program: PathBuf,
    pub env: Vec<(String, String)>,
    pub payload: PayloadFn,
    pub check: CheckFn,
}

impl Case {
    /// The emulator's specification: 128 MB, as `template.yaml`'s Globals; output discarded.
    pub fn spec(&self, region: &str) -> FunctionSpec {
        FunctionSpec {
            name: self.name.clone(),
            function_name: format!("orders-bench-{}", self.name),
            program: self.program.clone(),
            env: self.env.clone(),
            timeout: Duration::from_secs(60),
            init_timeout: Duration::from_secs(30),
            memory_mb: 128,
            region: region.to_string(),
            account_id: "123456789012".into(),
            show_output: false,
            report: false,
        }
    }

    /// Invokes `function` with event `n` and checks the answer.
    pub async fn invoke(&self, function: &Function, n: u64) -> Result<Invoked> {
        let payload = (self.payload)(n)?;
        let invoked = function
            .invoke(bytes::Bytes::from(serde_json::to_vec(&payload)?))
            .await
            .map_err(|e| invoke_error(&self.name, e))?;
        let body: Value = serde_json::from_slice(&invoked.body).unwrap_or(Value::Null);
        (self.check)(&body).map_err(|e| BenchError::msg(format!("{}: {e}", self.name)))?;
        Ok(invoked)
    }
}

fn invoke_error(name: &str, error: InvokeError) -> BenchError {
    BenchError::msg(format!("{name}: {error}"))
}

fn http_status(expected: u16) -> impl Fn(&Value) -> Result<()> {
    move |body: &Value| match body["statusCode"].as_u64() {
        Some(s) if s == u64::from(expected) => Ok(()),
        _ => Err(BenchError::msg(format!(
            "expected HTTP {expected}, got {}",
            truncate(&body.to_string())
        ))),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}

fn check_201(body: &Value) -> Result<()> {
    http_status(201)(body)
}

fn check_200(body: &Value) -> Result<()> {
    http_status(200)(body)
}

fn check_batch(body: &Value) -> Result<()> {
    match body["batchItemFailures"].as_array() {
        Some(failures) if failures.is_empty() => Ok(()),
        None if body.is_object() => Ok(()),
        _ => Err(BenchError::msg(format!(
            "batch failures: {}",
            truncate(&body.to_string())
        ))),
    }
}

fn check_migrate(body: &Value) -> Result<()> {
    if body["status"] == "SUCCESS" {
        Ok(())
    } else {
        Err(BenchError::msg(format!(
            "migrate reported {}",
            truncate(&body.to_string())
        )))
    }
}

fn check_any(_: &Value) -> Result<()> {
    Ok(())
}

/// The environment a function gets: its own variables (as its template entry declares them,
/// with the runner's local values), then the wiring.
pub fn function_env(system: &System, vars: &[&str], wiring: Wiring) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vars
        .iter()
        .filter_map(|name| system.var(name).map(|v| (name.to_string(), v.to_string())))
        .collect();
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_LAMBDA_LOG_FORMAT",
        "AWS_LAMBDA_LOG_LEVEL",
    ] {
        if let Some(v) = system.var(name) {
            env.push((name.into(), v.into()));
        }
    }
    let uses_db = vars.contains(&"DB_HOST");
    // The root store as on Lambda (see `TlsFiles::bundle_dir`), whatever this machine's
    // environment says; plain-HTTP functions build their HTTPS client at init all the same.
    env.push((
        "SSL_CERT_FILE".into(),
        system.tls.bundle.display().to_string(),
    ));
    env.push((
        "SSL_CERT_DIR".into(),
        system.tls.bundle_dir.display().to_string(),
    ));
    match wiring {
        Wiring::Local => {
            env.push(("AWS_ENDPOINT_URL".into(), system.moto_endpoint()));
        }
        Wiring::Deployed => {
            env.push(("AWS_ENDPOINT_URL".into(), system.tls_proxy.endpoint()));
            if uses_db {
                env.retain(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "DB_SSLMODE" | "DB_CA_FILE" | "DB_HOST" | "DB_PASSWORD" | "DB_AUTH"
                    )
                });
                env.push(("DB_HOST".into(), "127.0.0.1".into()));
                env.push(("DB_SSLMODE".into(), "verify-full".into()));
                // As the template: a token per connection (PostgreSQL trusts TLS connections
                // of this user here, standing in for RDS Proxy's check of the token).
                env.push(("DB_AUTH".into(), "iam".into()));
                env.push((
                    "DB_CA_FILE".into(),
                    system.tls.ca_cert.display().to_string(),
                ));
            }
        }
    }
    env
}

/// The SQS queue the updater's events come from (its ARN, for the records).
fn queue_arn(system: &System) -> String {
    format!(
        "arn:aws:sqs:{}:123456789012:orders-local-order-events",
        system.region()
    )
}

/// Every function of the system, and the hello-world baseline, with a real first event:
/// the command places an order, the query reads one, the updater projects a full batch (10),
/// the relay runs on its schedule, migrate answers an Update with a presigned-URL PUT.
pub struct Suite {
    pub hello: Case,
    pub functions: Vec<Case>,
}

/// Builds the cases. `order_id` is an order that exists in the read model;
/// `response_url` takes migrate's answer; `counter` makes every order unique.
pub fn suite(
    system: &System,
    wiring: Wiring,
    order_id: &str,
    response_url: &str,
    counter: Arc<AtomicU64>,
) -> Result<Suite> {
    use orders::config::vars;
    let bin = |name: &str| system.bin_dir.join(name);
    let samples = Samples::new(&system.root);
    let hello = Case {
        name: "hello".into(),
        program: bin("hello"),
        env: Vec::new(),
        payload: Arc::new(|_| Ok(serde_json::json!({"hello": "world"}))),
        check: check_any,
    };
    let command = {
        let samples = samples.clone();
        let counter = counter.clone();
        Case {
            name: "command".into(),
            program: bin("command"),
            env: function_env(system, &vars::COMMAND.names(), wiring),
            payload: Arc::new(move |_| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                samples.post_order(&events::order_body(n))
            }),
            check: check_201,
        }
    };
    let query = {
        let event = samples.get_order(order_id)?;
        Case {
            name: "query".into(),
            program: bin("query"),
            env: function_env(system, &vars::QUERY.names(), wiring),
            payload: Arc::new(move |_| Ok(event.clone())),
            check: check_200,
        }
    };
    let updater = {
        let arn = queue_arn(system);
        let region = system.region();
        let counter = counter.clone();
        Case {
            name: "updater".into(),
            program: bin("updater"),
            env: function_env(system, &vars::UPDATER.names(), wiring),
            payload: Arc::new(move |_| {
                let batch = (0..10)
                    .map(|_| events::order_created(counter.fetch_add(1, Ordering::Relaxed)))
                    .collect::<Result<Vec<_>>>()?;
                events::sqs_event(&batch, &arn, &region)
            }),
            check: check_batch,
        }
    };
    let relay = {
        let event = samples.relay_scheduled()?;
        Case {
            name: "relay".into(),
            program: bin("relay"),
            env: function_env(system, &vars::RELAY.names(), wiring),
            payload: Arc::new(move |_| Ok(event.clone())),
            check: check_any,
        }
    };
    let migrate = {
        let event = events::migrate_update(response_url);
        Case {
            name: "migrate".into(),
            program: bin("migrate"),
            env: function_env(system, &vars::MIGRATE.names(), wiring),
            payload: Arc::new(move |_| Ok(event.clone())),
            check: check_migrate,
        }
    };
    Ok(Suite {
        hello,
        functions: vec![command, query, updater, relay, migrate],
    })
}
