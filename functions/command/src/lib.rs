//! The write side's HTTP commands: `POST /orders` and `POST /orders/{id}/status`.
//! Each stores its change and its event in one transaction, then publishes the event.

mod status;

use lambda_http::http::{header, HeaderValue, Method};
use lambda_http::{Body, Request, RequestExt, Response};
use orders::domain::access::{AccessPolicy, Caller};
use orders::domain::validation::decode_request;
use orders::http::{body_bytes, caller, json_response, problem_response};
use orders::metrics::MetricSet;
use orders::postgres::{CreateOutcome, DbError, IdempotencyClaim, OrderStore};
use orders::problem::Problem;
use orders::sns::EventPublisher;
use orders::{Order, OrderEvent};
use serde::Serialize;
use std::time::Duration;
use tracing::Instrument;

/// The header that carries one id from the HTTP request to every log line of the order.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// The header with which a client makes a retried command safe.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on a response that replays the one stored with the idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The command side's dependencies, built once per process.
#[derive(Clone)]
pub struct CommandApp {
    orders: OrderStore,
    publisher: EventPublisher,
    idempotency_ttl: Duration,
    access: AccessPolicy,
}

/// An order as the write side returns it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderResponse<'a> {
    order_id: String,
    status: &'static str,
    version: i64,
    currency: &'a str,
    total: i64,
    lines: &'a [orders::OrderLine],
    #[serde(with = "orders::domain::timestamp")]
    created_at: time::OffsetDateTime,
    #[serde(with = "orders::domain::timestamp")]
    updated_at: time::OffsetDateTime,
    history: &'a [orders::domain::order::StatusChange],
}

/// The routes this function serves.
enum Route {
    CreateOrder,
    ChangeStatus(String),
}

impl CommandApp {
    pub fn new(orders: OrderStore, publisher: EventPublisher, idempotency_ttl: Duration) -> Self {
        Self {
            orders,
            publisher,
            idempotency_ttl,
            access: AccessPolicy::default(),
        }
    }

    /// Reads callers from the token claims with `access` instead of the defaults.
    pub fn with_access(mut self, access: AccessPolicy) -> Self {
        self.access = access;
        self
    }

    /// Handles one API Gateway request. Every outcome is an HTTP response: errors are
    /// `application/problem+json`.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let correlation_id = correlation_id(&request);
        let span = orders::telemetry::invocation_span(&request_id(&request));
        span.record("correlation_id", correlation_id.as_str());
        let result = async {
            let route = route(&request)?;
            let caller = caller(&request, &self.access)?;
            match route {
                Route::CreateOrder => self.create_order(&request, &caller, &correlation_id).await,
                Route::ChangeStatus(id) => {
                    self.change_status(&request, &caller, &id, &correlation_id)
                        .await
                }
            }
        }
        .instrument(span)
        .await;
        let mut response = result.unwrap_or_else(|problem| problem_response(&problem));
        record_outcome(&response);
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response.headers_mut().insert(CORRELATION_HEADER, value);
        }
        response
    }

    async fn create_order(
        &self,
        request: &Request,
        caller: &Caller,
        correlation_id: &str,
    ) -> Result<Response<Body>, Problem> {
        check_content_type(request)?;
        let key = idempotency_key(request)?;
        let input = decode_request(body_bytes(request.body())).map_err(Problem::undecodable)?;
        // The canonical form of the request: a retry must send the same order, whatever its
        // whitespace or field order.
        let canonical = serde_json::to_string(&input).map_err(|_| Problem::internal())?;
        let order = input.validate().map_err(|errors| {
            tracing::info!(fields = ?errors.iter().map(|e| &e.field).collect::<Vec<_>>(), "order rejected");
            Problem::validation(errors)
        })?;
        caller.may_order_for(&order.customer.id).map_err(|denied| {
            tracing::info!(reason = %denied, "order refused");
            Problem::forbidden(denied)
        })?;
        tracing::Span::current().record("order_id", order.id.to_string());
        let event = OrderEvent::created(&order, Some(correlation_id.to_string()));
        let body = order_body(&order);
        let scope = key_scope("POST /orders", caller);
        let claim = key.as_deref().map(|key| IdempotencyClaim {
            scope: &scope,
            key,
            request: &canonical,
            ttl: self.idempotency_ttl,
        });
        let outcome = self
            .orders
            .create(&order, &event, claim.as_ref().map(|c| (c, &body)))
            .await
            .map_err(|err| storage_problem(&err))?;
        match outcome {
            CreateOutcome::Created => {
                tracing::info!(order_id = %order.id, event_id = %event.event_id, total = order.total, "order created");
                self.publish(&event).await;
                Ok(order_response(201, &body, true, false))
            }
            CreateOutcome::Replayed(stored) => {
                tracing::info!(order_id = %stored.order_id, "idempotent replay");
                Ok(order_response(stored.status, &stored.body, true, true))
            }
            CreateOutcome::KeyReused => Err(key_reused()),
        }
    }

    /// Publishes after commit. A failure leaves the event in the outbox, unpublished, for the
    /// relay; the change is stored either way, so the client still gets its success response.
    async fn publish(&self, event: &OrderEvent) {
        match self.publisher.publish(event).await {
            Ok(message_id) => {
                if let Err(err) = self.orders.mark_published(event.event_id).await {
                    // Harmless: the relay republishes and the projection ignores duplicates.
                    tracing::warn!(order_id = %event.order_id, error = %err, "published but not marked in the outbox");
                } else {
                    tracing::info!(order_id = %event.order_id, %message_id, "event published");
                }
            }
            Err(err) => {
                tracing::warn!(order_id = %event.order_id, error = %err, "publish failed; event left in the outbox");
                MetricSet::new().count("PublishFailures", 1).emit();
                if let Err(db) = self
                    .orders
                    .record_publish_failure(event.event_id, &err.to_string())
                    .await
                {
                    tracing::warn!(order_id = %event.order_id, error = %db, "publish failure not recorded");
                }
            }
        }
    }
}

fn route(request: &Request) -> Result<Route, Problem> {
    let path = request.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let route = match segments.as_slice() {
        ["orders"] => Route::CreateOrder,
        ["orders", id, "status"] => {
            let id = request
                .path_parameters_ref()
                .and_then(|p| p.first("id"))
                .unwrap_or(id);
            Route::ChangeStatus(id.to_string())
        }
        _ => return Err(Problem::not_found(format!("No route for {path}"))),
    };
    if request.method() != Method::POST {
        return Err(Problem::method_not_allowed(request.method().as_str()));
    }
    Ok(route)
}

/// One EMF line per request: created, replayed, rejected or failed.
fn record_outcome(response: &Response<Body>) {
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key(REPLAYED_HEADER);
    MetricSet::new()
        .count("OrdersCreated", usize::from(status == 201 && !replayed))
        .count("IdempotentReplays", usize::from(replayed))
        .count(
            "ValidationFailures",
            usize::from((400..500).contains(&status)),
        )
        .count("CommandErrors", usize::from(status >= 500))
        .emit();
}

fn check_content_type(request: &Request) -> Result<(), Problem> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let media_type = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/json" || media_type.ends_with("+json") {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(text))
    }
}

fn storage_problem(err: &DbError) -> Problem {
    if err.is_unavailable() {
        tracing::warn!(error = %err, "database unavailable");
        Problem::unavailable("The order database is unavailable; retry shortly")
    } else {
        tracing::error!(error = %err, "order could not be stored");
        Problem::internal()
    }
}

fn key_reused() -> Problem {
    Problem::new(
        422,
        "idempotency-key-reused",
        "Idempotency key reused",
        "This Idempotency-Key was already used with a different request",
    )
}

fn order_body(order: &Order) -> serde_json::Value {
    let body = OrderResponse {
        order_id: order.id.to_string(),
        status: order.status.as_str(),
        version: order.version,
        currency: &order.currency,
        total: order.total,
        lines: &order.lines,
        created_at: order.created_at,
        updated_at: order.updated_at,
        history: &order.history,
    };
    serde_json::to_value(body).unwrap_or_default()
}

/// A response carrying an order body: its ETag (the version), and a Location when created.
fn order_response(
    status: u16,
    body: &serde_json::Value,
    created: bool,
    replayed: bool,
) -> Response<Body> {
    let mut response = json_response(status, body);
    let headers = response.headers_mut();
    let id = body["orderId"].as_str().unwrap_or_default();
    if created {
        if let Ok(location) = HeaderValue::from_str(&format!("/orders/{id}")) {
            headers.insert(header::LOCATION, location);
        }
    }
    if let Some(version) = body["version"].as_i64() {
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
            headers.insert(header::ETAG, etag);
        }
    }
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// What an idempotency key is scoped to: the operation and the caller, so that one caller's
/// keys never meet another's (nor reveal that they exist).
fn key_scope(operation: &str, caller: &Caller) -> String {
    let kind = if caller.is_staff() {
        "staff"
    } else {
        "customer"
    };
    format!("{operation} {kind}:{}", caller.subject())
}

/// The `Idempotency-Key` header, when present: 1 to 255 visible ASCII characters.
fn idempotency_key(request: &Request) -> Result<Option<String>, Problem> {
    let Some(value) = request.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Problem::bad_request(
            "invalid-idempotency-key",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// The Lambda request id of this invocation (API Gateway's request id outside Lambda).
fn request_id(request: &Request) -> String {
    if let Some(context) = request.lambda_context_ref() {
        return context.request_id.clone();
    }
    match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            ctx.request_id.clone().unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The client's `X-Correlation-Id` when it is a sane token, else API Gateway's request id,
/// else a fresh id.
pub fn correlation_id(request: &Request) -> String {
    let from_header = request
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
        });
    if let Some(id) = from_header {
        return id.to_string();
    }
    let from_gateway = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    from_gateway.unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}
