//! The steps every command runs once: content type, idempotency key, `If-Match`, the caller
//! and the key's scope, the store's transaction with the domain decision inside it, and the
//! outcome as a response or a problem.

use crate::headers::{check_content_type, idempotency_key, if_match, key_scope};
use crate::routes::ChangeRoute;
use crate::{CommandApp, REPLAYED_HEADER};
use lambda_http::http::{header, HeaderValue};
use lambda_http::{Body, Request, Response};
use orders::domain::access::Caller;
use orders::domain::command::{decide, place, Context, Refusal};
use orders::domain::order::now_micros;
use orders::domain::validation::decode_request;
use orders::http::{body_bytes, json_response};
use orders::postgres::{Change, DbError, IdempotencyClaim, Keyed, Outcome};
use orders::problem::Problem;
use orders::{Order, OrderId};

impl CommandApp {
    /// `POST /orders`.
    pub(crate) async fn create_order(
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
        let placed = place(order, caller, Some(correlation_id.to_string())).map_err(|denied| {
            tracing::info!(reason = %denied, "order refused");
            Problem::forbidden(denied)
        })?;
        tracing::Span::current().record("order_id", placed.order.id.to_string());
        let outcome = Outcome {
            code: 201,
            body: order_body(&placed.order),
        };
        let scope = key_scope("POST /orders", caller);
        let claim = self.claim(&scope, key.as_deref(), &canonical);
        let written = self
            .orders
            .create(&placed, claim.as_ref().map(|c| (c, &outcome)))
            .await
            .map_err(|err| storage_problem(&err))?;
        match written {
            Keyed::Fresh(()) => {
                let (order, event) = (&placed.order, &placed.event);
                tracing::info!(order_id = %order.id, event_id = %event.event_id, total = order.total, "order created");
                self.publish(event).await;
                Ok(order_response(&outcome, true, false))
            }
            Keyed::Replayed(kept) => {
                tracing::info!("idempotent replay");
                Ok(order_response(&kept, true, true))
            }
            Keyed::KeyReused => Err(key_reused()),
        }
    }

    /// `POST /orders/{id}/{change}`: one command on an existing order, decided by the domain
    /// under the order's row lock.
    pub(crate) async fn change_order(
        &self,
        request: &Request,
        caller: &Caller,
        raw_id: &str,
        route: &ChangeRoute,
        correlation_id: &str,
    ) -> Result<Response<Body>, Problem> {
        let id: OrderId = raw_id.parse()?;
        tracing::Span::current().record("order_id", id.to_string());
        let expected_version = if_match(request)?;
        check_content_type(request)?;
        let key = idempotency_key(request)?;
        let (command, input) = (route.decode)(body_bytes(request.body()))?;
        command.permitted(caller).map_err(|denied| {
            tracing::info!(reason = %denied, "command refused");
            Problem::forbidden(denied)
        })?;
        let canonical = serde_json::json!({"orderId": id, "request": input}).to_string();
        let scope = key_scope(&route.operation(), caller);
        let claim = self.claim(&scope, key.as_deref(), &canonical);
        let context = Context {
            caller,
            expected_version,
            now: now_micros(),
            correlation_id: Some(correlation_id.to_string()),
        };
        let changed = self
            .orders
            .change(
                id,
                caller.visible_owner(),
                claim.as_ref(),
                |order| -> Result<_, Refusal> {
                    let decision = decide(order, &command, &context)?;
                    let body = order_body(&decision.order);
                    Ok((decision, Outcome { code: 200, body }))
                },
            )
            .await
            .map_err(|err| storage_problem(&err))?;
        match changed {
            Keyed::Fresh(Change::Changed(decision)) => {
                let (order, event) = (&decision.order, &decision.event);
                tracing::info!(order_id = %order.id, event_type = event.event_type.as_str(), version = order.version, "order changed");
                self.publish(event).await;
                let outcome = Outcome {
                    code: 200,
                    body: order_body(order),
                };
                Ok(order_response(&outcome, false, false))
            }
            Keyed::Fresh(Change::NotFound) => Err(not_found(id)),
            Keyed::Fresh(Change::Refused(refusal)) => Err(refusal_problem(id, refusal)),
            Keyed::Replayed(kept) => {
                tracing::info!("idempotent replay");
                Ok(order_response(&kept, false, true))
            }
            Keyed::KeyReused => Err(key_reused()),
        }
    }

    fn claim<'a>(
        &self,
        scope: &'a str,
        key: Option<&'a str>,
        request: &'a str,
    ) -> Option<IdempotencyClaim<'a>> {
        key.map(|key| IdempotencyClaim {
            scope,
            key,
            request,
            ttl: self.idempotency_ttl,
        })
    }
}

fn not_found(id: OrderId) -> Problem {
    Problem::not_found(format!("Order {id} does not exist"))
}

/// The problem for a refused command; another customer's order is exactly a missing one.
fn refusal_problem(id: OrderId, refusal: Refusal) -> Problem {
    tracing::info!(reason = %refusal, "command refused");
    let detail = refusal.to_string();
    let statuses = |list: &[orders::OrderStatus]| -> Vec<&'static str> {
        list.iter().map(|s| s.as_str()).collect()
    };
    match refusal {
        Refusal::NotVisible => not_found(id),
        Refusal::Forbidden(denied) => Problem::forbidden(denied),
        Refusal::StaleVersion { current, .. } => {
            Problem::new(412, "version-mismatch", "Precondition failed", detail)
                .with("currentVersion", current)
        }
        Refusal::IllegalTransition { current, .. } => {
            Problem::new(409, "illegal-transition", "Illegal status change", detail)
                .with("currentStatus", current.as_str())
                .with("allowedStatuses", statuses(&current.next_statuses()))
        }
        Refusal::WrongStatus { current, allowed } => {
            Problem::new(409, "wrong-status", "Not allowed in this status", detail)
                .with("currentStatus", current.as_str())
                .with("allowedStatuses", statuses(allowed))
        }
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

/// An order as every command returns it.
fn order_body(order: &Order) -> serde_json::Value {
    serde_json::to_value(order).unwrap_or_default()
}

/// A response carrying an order body: its ETag (the version), and a Location when created.
fn order_response(outcome: &Outcome, created: bool, replayed: bool) -> Response<Body> {
    let body = &outcome.body;
    let mut response = json_response(u16::try_from(outcome.code).unwrap_or(500), body);
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
