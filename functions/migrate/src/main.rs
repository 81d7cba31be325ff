//! The schema-migration function: the handler of the `SchemaMigrations` CloudFormation custom
//! resource in template.yaml.
//!
//! On Create and Update it applies the migrations embedded in the binary (`migrations/*.sql`,
//! through `orders::postgres::migrate`, which is idempotent and serialized by an advisory lock);
//! on Delete it does nothing, as the schema lives and dies with the database. Either way it
//! reports SUCCESS or FAILED by PUTting a JSON document to the request's `ResponseURL` (a
//! presigned S3 URL), which is the only way CloudFormation learns the outcome: the function
//! answers before its own timeout, whatever happens, so a deploy never hangs on it.

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as Request, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus as Status,
};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The physical id reported on Create. Updates keep the id they are sent, so CloudFormation
/// never sees a replacement (which would send a Delete for the old id).
const PHYSICAL_RESOURCE_ID: &str = "orders-schema-migrations";
/// Time kept back from the function's deadline for sending the response.
const RESPONSE_MARGIN: Duration = Duration::from_secs(15);
/// A retry is not started unless this much time is left for it before the deadline.
const RETRY_RESERVE: Duration = Duration::from_secs(20);
/// CloudFormation rejects response bodies over 4096 bytes; the reason and the list of applied
/// migrations are cut well below that (in bytes, as JSON counts them).
const MAX_REASON_BYTES: usize = 1500;
const MAX_APPLIED_BYTES: usize = 1500;

/// Applies the embedded migrations, returning the names of those applied now. `deadline` is
/// when it must have answered; it may retry transient failures until then.
trait Migrator {
    fn migrate(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;
}

/// Delivers the response document to CloudFormation.
trait Responder {
    fn respond(&self, url: &str, body: Vec<u8>) -> impl Future<Output = Result<(), String>> + Send;
}

/// What every request carries and every response echoes.
#[derive(Debug, Clone, PartialEq)]
struct Envelope {
    kind: Kind,
    response_url: String,
    stack_id: String,
    request_id: String,
    logical_resource_id: String,
    physical_resource_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Create,
    Update,
    Delete,
    /// A request that could not be read (its RequestType, if any); answered with FAILED.
    Unreadable(Option<String>),
}

/// Reads the request with the `aws_lambda_events` types; a request they do not accept but that
/// still names a response URL is kept as `Unreadable`, so that it can be answered.
fn envelope(event: &Value) -> Result<Envelope, String> {
    match serde_json::from_value::<Request>(event.clone()) {
        Ok(Request::Create(r)) => Ok(Envelope {
            kind: Kind::Create,
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
            physical_resource_id: None,
        }),
        Ok(Request::Update(r)) => Ok(Envelope {
            kind: Kind::Update,
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
            physical_resource_id: Some(r.physical_resource_id),
        }),
        Ok(Request::Delete(r)) => Ok(Envelope {
            kind: Kind::Delete,
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
            physical_resource_id: Some(r.physical_resource_id),
        }),
        Ok(_) | Err(_) => {
            let field = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
            let response_url = field("ResponseURL").ok_or(
                "the event is not a CloudFormation custom resource request (no ResponseURL)",
            )?;
            Ok(Envelope {
                kind: Kind::Unreadable(field("RequestType")),
                response_url,
                stack_id: field("StackId").unwrap_or_default(),
                request_id: field("RequestId").unwrap_or_default(),
                logical_resource_id: field("LogicalResourceId").unwrap_or_default(),
                physical_resource_id: field("PhysicalResourceId"),
            })
        }
    }
}

/// The outcome to report.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    success: bool,
    reason: String,
    applied: Vec<String>,
}

async fn run_request<M: Migrator>(
    envelope: &Envelope,
    time_left: Duration,
    migrator: &M,
) -> Outcome {
    let failed = |reason: String| Outcome {
        success: false,
        reason,
        applied: Vec::new(),
    };
    match envelope.kind {
        Kind::Delete => Outcome {
            success: true,
            reason: "nothing to do on delete: the schema stays with the database".into(),
            applied: Vec::new(),
        },
        Kind::Unreadable(ref request_type) => failed(format!(
            "unsupported or malformed request (RequestType {}); see the function's log",
            request_type.as_deref().unwrap_or("missing")
        )),
        Kind::Create | Kind::Update => {
            let budget = time_left.saturating_sub(RESPONSE_MARGIN);
            let deadline = Instant::now() + budget;
            match tokio::time::timeout_at(deadline, migrator.migrate(deadline)).await {
                Err(_) => failed(format!(
                    "migrations did not finish within {}s; the transaction was abandoned and \
                     rolls back; raise the migrate function's timeout",
                    budget.as_secs()
                )),
                Ok(Err(error)) => failed(format!("migrations failed: {error}")),
                Ok(Ok(applied)) => Outcome {
                    success: true,
                    reason: if applied.is_empty() {
                        "schema is current; no migration applied".into()
                    } else {
                        format!(
                            "applied {} migration(s): {}",
                            applied.len(),
                            applied.join(", ")
                        )
                    },
                    applied,
                },
            }
        }
    }
}

/// Cuts `text` to at most `max_bytes` bytes (UTF-8), marking the cut with "...".
fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The JSON document CloudFormation expects at the response URL.
fn response_body(envelope: &Envelope, outcome: &Outcome) -> Vec<u8> {
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = if outcome.success {
        Status::Success
    } else {
        Status::Failed
    };
    response.reason = Some(truncate(&outcome.reason, MAX_REASON_BYTES));
    response.physical_resource_id = envelope
        .physical_resource_id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| PHYSICAL_RESOURCE_ID.to_owned());
    response.stack_id = envelope.stack_id.clone();
    response.request_id = envelope.request_id.clone();
    response.logical_resource_id = envelope.logical_resource_id.clone();
    response.no_echo = false;
    response.data = HashMap::from([
        ("AppliedCount".to_owned(), outcome.applied.len().to_string()),
        (
            "Applied".to_owned(),
            truncate(&outcome.applied.join(","), MAX_APPLIED_BYTES),
        ),
    ]);
    serde_json::to_vec(&response).expect("a response of strings always serializes")
}

/// Handles one invocation: run, then report. Returns an error only when the report could not
/// be delivered (CloudFormation then fails the resource after its ServiceTimeout).
async fn handle<M: Migrator, R: Responder>(
    event: Value,
    time_left: Duration,
    migrator: &M,
    responder: &R,
) -> Result<Value, Error> {
    let envelope = envelope(&event)?;
    tracing::info!(
        request_type = ?envelope.kind,
        request_id = %envelope.request_id,
        logical_resource_id = %envelope.logical_resource_id,
        "custom resource request"
    );
    if matches!(envelope.kind, Kind::Unreadable(_)) {
        tracing::error!(event = %redacted(&event), "unreadable custom resource request");
    }
    let outcome = run_request(&envelope, time_left, migrator).await;
    if outcome.success {
        tracing::info!(applied = ?outcome.applied, reason = %outcome.reason, "reporting SUCCESS");
    } else {
        tracing::error!(reason = %outcome.reason, "reporting FAILED");
    }
    responder
        .respond(&envelope.response_url, response_body(&envelope, &outcome))
        .await
        .map_err(|e| format!("could not deliver the response to CloudFormation: {e}"))?;
    Ok(serde_json::json!({ "status": if outcome.success { "SUCCESS" } else { "FAILED" } }))
}

/// The event without its presigned URL, for logging.
fn redacted(event: &Value) -> Value {
    let mut event = event.clone();
    if let Some(url) = event.get_mut("ResponseURL") {
        *url = Value::String("(redacted)".into());
    }
    event
}

/// The real migrator: a short-lived pool through the RDS Proxy, from the DB_* variables.
struct Postgres {
    aws: aws_config::SdkConfig,
}

impl Migrator for Postgres {
    async fn migrate(&self, deadline: Instant) -> Result<Vec<String>, String> {
        let config = orders::config::DbConfig::from_env().map_err(|e| e.to_string())?;
        let pool = orders::postgres::connect(&config, &self.aws)
            .await
            .map_err(|e| e.to_string())?;
        // On the first deploy the proxy may still be registering its target when this runs:
        // connection failures are retried with backoff until shortly before the deadline.
        let mut delay = Duration::from_secs(1);
        let result = loop {
            match orders::postgres::migrate(&pool).await {
                Err(e)
                    if e.is_unavailable() && Instant::now() + delay + RETRY_RESERVE < deadline =>
                {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(15));
                }
                other => break other.map_err(|e| e.to_string()),
            }
        };
        pool.close();
        result
    }
}

/// HTTPS PUT with rustls (aws-lc-rs) and the bundled web roots, retried a few times.
struct Https {
    agent: ureq::Agent,
}

impl Https {
    fn new() -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::WebPki)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self { agent }
    }

    fn put_once(agent: &ureq::Agent, url: &str, body: &[u8]) -> Result<(), String> {
        // No Content-Type: the presigned URL was signed without one.
        let response = agent.put(url).send(body).map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

impl Responder for Https {
    async fn respond(&self, url: &str, body: Vec<u8>) -> Result<(), String> {
        let agent = self.agent.clone();
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut last_error = String::new();
            for attempt in 1..=3u64 {
                match Self::put_once(&agent, &url, &body) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(attempt, error = %e, "response PUT failed");
                        last_error = e;
                        std::thread::sleep(Duration::from_millis(500 * attempt));
                    }
                }
            }
            Err(last_error)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Time until the invocation's deadline.
fn time_left(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// On the runtime its environment calls for (`orders::runtime`): one thread unless it serves
/// several requests at once.
fn main() -> Result<(), Error> {
    orders::runtime::run(serve())?
}

async fn serve() -> Result<(), Error> {
    orders::telemetry::init();
    let migrator = Postgres {
        aws: orders::aws::signing_config(),
    };
    let responder = Https::new();
    let state = Arc::new((migrator, responder));
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| {
        let left = time_left(event.context.deadline);
        let state = state.clone();
        async move { handle(event.payload, left, &state.0, &state.1).await }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Mutex;

    struct FakeMigrator(Result<Vec<String>, String>, Duration);

    impl Migrator for FakeMigrator {
        async fn migrate(&self, _deadline: Instant) -> Result<Vec<String>, String> {
            tokio::time::sleep(self.1).await;
            self.0.clone()
        }
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, Value)>>);

    impl Responder for Recorder {
        async fn respond(&self, url: &str, body: Vec<u8>) -> Result<(), String> {
            let body = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            self.0.lock().unwrap().push((url.to_owned(), body));
            Ok(())
        }
    }

    fn request(kind: &str) -> Value {
        let mut event = serde_json::json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:migrate:live",
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?sig=1",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/orders/guid",
            "RequestId": "req-1",
            "ResourceType": "Custom::SchemaMigrations",
            "LogicalResourceId": "SchemaMigrations",
            "ResourceProperties": {"ServiceToken": "t", "FunctionVersion": "2"}
        });
        if kind != "Create" {
            event["PhysicalResourceId"] = "existing-id".into();
        }
        if kind == "Update" {
            event["OldResourceProperties"] =
                serde_json::json!({"ServiceToken": "t", "FunctionVersion": "1"});
        }
        event
    }

    async fn run(
        event: Value,
        migrator: FakeMigrator,
        left: Duration,
    ) -> (Result<Value, Error>, Vec<(String, Value)>) {
        let recorder = Recorder::default();
        let result = handle(event, left, &migrator, &recorder).await;
        (result, recorder.0.into_inner().unwrap())
    }

    fn applied(names: &[&str]) -> FakeMigrator {
        FakeMigrator(
            Ok(names.iter().map(|s| s.to_string()).collect()),
            Duration::ZERO,
        )
    }

    #[tokio::test]
    async fn create_applies_migrations_and_reports_success() {
        let (result, sent) = run(
            request("Create"),
            applied(&["0001_orders.sql"]),
            Duration::from_secs(60),
        )
        .await;
        result.unwrap();
        assert_eq!(sent.len(), 1);
        let (url, body) = &sent[0];
        assert!(url.starts_with("https://cloudformation-custom-resource-response"));
        assert_eq!(body["Status"], "SUCCESS");
        assert_eq!(body["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
        assert_eq!(
            body["StackId"],
            "arn:aws:cloudformation:us-east-1:123456789012:stack/orders/guid"
        );
        assert_eq!(body["RequestId"], "req-1");
        assert_eq!(body["LogicalResourceId"], "SchemaMigrations");
        assert_eq!(body["NoEcho"], false);
        assert_eq!(body["Data"]["AppliedCount"], "1");
        assert_eq!(body["Data"]["Applied"], "0001_orders.sql");
        assert!(body["Reason"].as_str().unwrap().contains("0001_orders.sql"));
    }

    #[tokio::test]
    async fn update_keeps_the_physical_id_and_reports_a_current_schema() {
        let (result, sent) = run(request("Update"), applied(&[]), Duration::from_secs(60)).await;
        result.unwrap();
        let body = &sent[0].1;
        assert_eq!(body["Status"], "SUCCESS");
        assert_eq!(body["PhysicalResourceId"], "existing-id");
        assert_eq!(body["Data"]["AppliedCount"], "0");
        assert!(body["Reason"].as_str().unwrap().contains("current"));
    }

    #[tokio::test]
    async fn delete_reports_success_without_migrating() {
        let migrator = FakeMigrator(Err("must not be called".into()), Duration::ZERO);
        let (result, sent) = run(request("Delete"), migrator, Duration::from_secs(60)).await;
        result.unwrap();
        let body = &sent[0].1;
        assert_eq!(body["Status"], "SUCCESS");
        assert_eq!(body["PhysicalResourceId"], "existing-id");
    }

    #[tokio::test]
    async fn a_failed_migration_is_reported_as_failed_with_its_reason() {
        let migrator = FakeMigrator(
            Err("migration 0002_x.sql failed: syntax error".into()),
            Duration::ZERO,
        );
        let (result, sent) = run(request("Create"), migrator, Duration::from_secs(60)).await;
        result.unwrap();
        let body = &sent[0].1;
        assert_eq!(body["Status"], "FAILED");
        assert_eq!(body["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
        assert!(body["Reason"]
            .as_str()
            .unwrap()
            .contains("0002_x.sql failed: syntax error"));
    }

    #[tokio::test]
    async fn a_migration_that_outlives_the_deadline_is_reported_as_failed_in_time() {
        let slow = FakeMigrator(Ok(vec![]), Duration::from_secs(60));
        // 200 ms left once the response margin is kept back.
        let left = RESPONSE_MARGIN + Duration::from_millis(200);
        let started = std::time::Instant::now();
        let (result, sent) = run(request("Update"), slow, left).await;
        result.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let body = &sent[0].1;
        assert_eq!(body["Status"], "FAILED");
        assert!(body["Reason"]
            .as_str()
            .unwrap()
            .contains("did not finish within 0s"));
    }

    #[tokio::test]
    async fn an_unknown_request_type_is_answered_with_failed() {
        let mut event = request("Update");
        event["RequestType"] = "Import".into();
        let (result, sent) = run(event, applied(&[]), Duration::from_secs(60)).await;
        result.unwrap();
        let body = &sent[0].1;
        assert_eq!(body["Status"], "FAILED");
        assert_eq!(body["PhysicalResourceId"], "existing-id");
        assert_eq!(body["RequestId"], "req-1");
        assert!(body["Reason"]
            .as_str()
            .unwrap()
            .contains("RequestType Import"));
    }

    #[tokio::test]
    async fn an_event_without_response_url_is_an_error() {
        let (result, sent) = run(
            serde_json::json!({"hello": "world"}),
            applied(&[]),
            Duration::from_secs(60),
        )
        .await;
        assert!(result.is_err());
        assert!(sent.is_empty());
    }

    #[test]
    fn long_reasons_keep_the_body_under_cloudformations_limit() {
        let envelope = envelope(&request("Create")).unwrap();
        let outcome = Outcome {
            success: false,
            reason: "é".repeat(10_000),
            applied: (0..1000).map(|i| format!("{i:04}_migration.sql")).collect(),
        };
        let body = response_body(&envelope, &outcome);
        assert!(body.len() < 4096, "{} bytes", body.len());
    }

    #[test]
    fn logged_events_hide_the_presigned_url() {
        let event = redacted(&request("Create"));
        assert_eq!(event["ResponseURL"], "(redacted)");
        assert_eq!(event["RequestId"], "req-1");
    }

    /// The real client against a one-shot HTTP server on the loopback interface: a PUT with the
    /// JSON body and no Content-Type header (the presigned URL was signed without one).
    #[tokio::test]
    async fn https_responder_puts_the_body_without_content_type() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/response?X-Amz-Signature=abc",
            listener.local_addr().unwrap()
        );
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push(line.trim_end().to_owned());
            }
            let length: usize = head
                .iter()
                .find_map(|h| {
                    h.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.parse().unwrap())
                })
                .unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            (head, body)
        });
        Https::new()
            .respond(&url, b"{\"Status\":\"SUCCESS\"}".to_vec())
            .await
            .unwrap();
        let (head, body) = server.join().unwrap();
        assert_eq!(head[0], "PUT /response?X-Amz-Signature=abc HTTP/1.1");
        assert!(
            !head
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("content-type")),
            "{head:?}"
        );
        assert_eq!(body, b"{\"Status\":\"SUCCESS\"}");
    }
}
