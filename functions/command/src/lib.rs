//! The write side's HTTP commands: `POST /orders` and `POST /orders/{id}/{change}` (see
//! [`routes`]). Each stores its change and its event in one transaction, then publishes the
//! event.

mod headers;
mod pipeline;
mod routes;

use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, RequestExt, Response};
use orders::domain::access::AccessPolicy;
use orders::http::{caller, problem_response};
use orders::metrics::MetricSet;
use orders::postgres::OrderStore;
use orders::sns::EventPublisher;
use orders::OrderEvent;
use routes::{route, Route};
use std::time::Duration;
use tracing::Instrument;

/// The header that carries one id from the HTTP request to every log line of the order.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// The header with which a client makes a retried command safe.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on a response that replays the one stored with the idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The command side's dependencies, built once per process.
#[derive(Clone)]
pub struct CommandApp {
    orders: OrderStore,
    publisher: EventPublisher,
    idempotency_ttl: Duration,
    access: AccessPolicy,
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
                Route::Change { id, route } => {
                    self.change_order(&request, &caller, &id, route, &correlation_id)
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
