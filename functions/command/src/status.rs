//! `POST /orders/{id}/status`: move an order through its lifecycle, with optimistic
//! concurrency (`If-Match`) and idempotency keys.

use crate::{
    check_content_type, idempotency_key, key_reused, key_scope, order_body, order_response,
    storage_problem, CommandApp,
};
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use orders::domain::access::Caller;
use orders::domain::order::{now_micros, IllegalTransition, OrderStatus};
use orders::domain::validation::{decode_body, ChangeStatusRequest};
use orders::http::body_bytes;
use orders::postgres::{IdempotencyClaim, UpdateOutcome};
use orders::problem::Problem;
use orders::{OrderEvent, OrderId};

/// Why a status change was refused.
enum Refusal {
    /// Another customer's order: to this caller it does not exist.
    NotVisible,
    /// `If-Match` named another version.
    StaleVersion { current: i64 },
    Illegal {
        current: OrderStatus,
        error: IllegalTransition,
    },
}

impl CommandApp {
    pub(crate) async fn change_status(
        &self,
        request: &Request,
        caller: &Caller,
        raw_id: &str,
        correlation_id: &str,
    ) -> Result<Response<Body>, Problem> {
        let id: OrderId = raw_id.parse()?;
        tracing::Span::current().record("order_id", id.to_string());
        let expected_version = if_match(request)?;
        check_content_type(request)?;
        let key = idempotency_key(request)?;
        let input: ChangeStatusRequest =
            decode_body(body_bytes(request.body())).map_err(Problem::undecodable)?;
        let (to, reason) = input.validate().map_err(Problem::validation)?;
        caller.may_request_status(to).map_err(|denied| {
            tracing::info!(reason = %denied, "status change refused");
            Problem::forbidden(denied)
        })?;
        let canonical = serde_json::json!({"orderId": id, "request": input}).to_string();
        let scope = key_scope("POST /orders/{id}/status", caller);
        let claim = key.as_deref().map(|key| IdempotencyClaim {
            scope: &scope,
            key,
            request: &canonical,
            ttl: self.idempotency_ttl,
        });
        let outcome = self
            .orders
            .update(id, claim.as_ref(), |order| {
                if caller.may_change_status_of(&order.customer.id).is_err() {
                    return Err(Refusal::NotVisible);
                }
                if let Some(expected) = expected_version {
                    if order.version != expected {
                        return Err(Refusal::StaleVersion {
                            current: order.version,
                        });
                    }
                }
                let next = order
                    .with_status(to, now_micros(), reason.clone())
                    .map_err(|error| Refusal::Illegal {
                        current: order.status,
                        error,
                    })?;
                let event = OrderEvent::status_changed(&next, Some(correlation_id.to_string()));
                let body = order_body(&next);
                Ok((next, event, 200, body))
            })
            .await
            .map_err(|err| storage_problem(&err))?;
        match outcome {
            UpdateOutcome::Updated(event) => {
                let order = &event.order;
                tracing::info!(order_id = %order.id, status = order.status.as_str(), version = order.version, "order status changed");
                self.publish(&event).await;
                Ok(order_response(200, &order_body(order), false, false))
            }
            UpdateOutcome::Replayed(stored) => {
                Ok(order_response(stored.status, &stored.body, false, true))
            }
            UpdateOutcome::KeyReused => Err(key_reused()),
            UpdateOutcome::NotFound | UpdateOutcome::Rejected(Refusal::NotVisible) => {
                Err(Problem::not_found(format!("Order {id} does not exist")))
            }
            UpdateOutcome::Rejected(Refusal::StaleVersion { current }) => Err(Problem::new(
                412,
                "version-mismatch",
                "Precondition failed",
                format!(
                    "If-Match names version {}, but the order is at version {current}",
                    expected_version.unwrap_or_default()
                ),
            )
            .with("currentVersion", current)),
            UpdateOutcome::Rejected(Refusal::Illegal { current, error }) => Err(Problem::new(
                409,
                "illegal-transition",
                "Illegal status change",
                error.to_string(),
            )
            .with("currentStatus", current.as_str())
            .with(
                "allowedStatuses",
                current
                    .next_statuses()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            )),
        }
    }
}

/// The version named by `If-Match` (`"3"`, `W/"3"`), or none for an absent header or `*`.
fn if_match(request: &Request) -> Result<Option<i64>, Problem> {
    let Some(value) = request.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .map(Some)
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid-if-match",
                "If-Match must be the ETag of the order, such as \"3\"",
            )
        })
}
