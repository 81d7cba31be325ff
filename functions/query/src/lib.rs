//! The read side's HTTP queries, served from DynamoDB only: `GET /orders/{id}` and
//! `GET /customers/{customerId}/orders`.

pub mod cursor;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use orders::domain::access::{AccessPolicy, Caller};
use orders::domain::validation::is_valid_customer_id;
use orders::dynamodb::{OrderViewStore, ViewStoreError};
use orders::http::{caller, json_response, problem_response};
use orders::problem::Problem;
use orders::s3::ReceiptStore;
use orders::{OrderId, OrderStatus, OrderView};
use serde::Serialize;
use std::time::Duration;
use tracing::Instrument;

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

/// The query side's dependencies, built once per process.
#[derive(Clone)]
pub struct QueryApp {
    views: OrderViewStore,
    receipts: ReceiptStore,
    receipt_url_ttl: Duration,
    cursor_key: Vec<u8>,
    access: AccessPolicy,
}

/// `GET /orders/{id}`: the view, plus a short-lived link to its receipt.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderResource<'a> {
    #[serde(flatten)]
    view: &'a OrderView,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancellation_url: Option<String>,
}

/// `GET /customers/{customerId}/orders`: one page, newest first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderPage {
    items: Vec<OrderView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

impl QueryApp {
    pub fn new(
        views: OrderViewStore,
        receipts: ReceiptStore,
        receipt_url_ttl: Duration,
        cursor_key: Vec<u8>,
    ) -> Self {
        Self {
            views,
            receipts,
            receipt_url_ttl,
            cursor_key,
            access: AccessPolicy::default(),
        }
    }

    /// Reads callers from the token claims with `access` instead of the defaults.
    pub fn with_access(mut self, access: AccessPolicy) -> Self {
        self.access = access;
        self
    }

    /// Handles one API Gateway request.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let path = request.uri().path().trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let param = |name: &str, fallback: &str| -> String {
            request
                .path_parameters_ref()
                .and_then(|p| p.first(name))
                .unwrap_or(fallback)
                .to_string()
        };
        let request_id = request
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        let span = orders::telemetry::invocation_span(&request_id);
        let result = async {
            match segments.as_slice() {
                _ if request.method() != Method::GET && request.method() != Method::HEAD => {
                    Err(Problem::method_not_allowed(request.method().as_str()))
                }
                ["orders", id] => {
                    let caller = caller(&request, &self.access)?;
                    self.get_order(&request, &caller, &param("id", id)).await
                }
                ["customers", customer, "orders"] => {
                    let caller = caller(&request, &self.access)?;
                    self.list_orders(&request, &caller, &param("customerId", customer))
                        .await
                }
                _ => Err(Problem::not_found(format!("No route for {path}"))),
            }
        }
        .instrument(span)
        .await;
        result.unwrap_or_else(|problem| problem_response(&problem))
    }

    async fn get_order(
        &self,
        request: &Request,
        caller: &Caller,
        raw_id: &str,
    ) -> Result<Response<Body>, Problem> {
        let id: OrderId = raw_id.parse()?;
        tracing::Span::current().record("order_id", id.to_string());
        let view = self.views.get(id).await.map_err(read_problem)?;
        // Another customer's order answers exactly like a missing one: ids cannot be probed.
        let view = view
            .filter(|view| caller.may_read(&view.customer.id).is_ok())
            .ok_or_else(|| Problem::not_found(format!("Order {id} does not exist")))?;
        let etag = format!("\"{}\"", view.version);
        if if_none_match(request, &etag) {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            insert_etag(&mut response, &etag);
            return Ok(response);
        }
        let resource = OrderResource {
            receipt_url: self.presign(&view.receipt_key).await,
            cancellation_url: match &view.cancellation_key {
                Some(key) => self.presign(key).await,
                None => None,
            },
            view: &view,
        };
        let mut response = json_response(200, &resource);
        insert_etag(&mut response, &etag);
        Ok(response)
    }

    /// A link is a convenience: when it cannot be made the order is still served, without it.
    async fn presign(&self, key: &str) -> Option<String> {
        match self.receipts.presigned_get(key, self.receipt_url_ttl).await {
            Ok(url) => Some(url),
            Err(err) => {
                tracing::warn!(key, error = %err, "receipt link not made");
                None
            }
        }
    }

    async fn list_orders(
        &self,
        request: &Request,
        caller: &Caller,
        customer_id: &str,
    ) -> Result<Response<Body>, Problem> {
        caller.may_list(customer_id).map_err(|denied| {
            tracing::info!(reason = %denied, "listing refused");
            Problem::forbidden(denied)
        })?;
        if !is_valid_customer_id(customer_id) {
            return Err(Problem::bad_request(
                "invalid-customer-id",
                "customerId must be 1 to 64 characters",
            ));
        }
        let params = request.query_string_parameters();
        let limit = match params.first("limit") {
            None => DEFAULT_PAGE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    Problem::bad_request(
                        "invalid-limit",
                        format!("limit must be an integer from 1 to {MAX_PAGE}"),
                    )
                })?,
        };
        let status = params
            .first("status")
            .map(|s| s.parse::<OrderStatus>())
            .transpose()
            .map_err(|_| {
                Problem::bad_request(
                    "invalid-status",
                    "status must be one of PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED",
                )
            })?;
        let start = params
            .first("cursor")
            .map(|c| cursor::decode(&self.cursor_key, c, customer_id))
            .transpose()
            .map_err(|e| {
                Problem::bad_request(
                    "invalid-cursor",
                    format!("{e}; start again without a cursor"),
                )
            })?;
        let (items, next) = self
            .views
            .list_by_customer(customer_id, limit, start, status)
            .await
            .map_err(read_problem)?;
        let page = OrderPage {
            items,
            next_cursor: next.map(|key| cursor::encode(&self.cursor_key, &key)),
        };
        Ok(json_response(200, &page))
    }
}

fn read_problem(err: ViewStoreError) -> Problem {
    match err {
        ViewStoreError::Dynamo(_) => {
            tracing::warn!(error = %err, "read failed");
            Problem::unavailable("The order store is unavailable; retry shortly")
        }
        _ => {
            tracing::error!(error = %err, "stored view unreadable");
            Problem::internal()
        }
    }
}

fn insert_etag(response: &mut Response<Body>, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// True when `If-None-Match` lists this ETag (or `*`).
fn if_none_match(request: &Request, etag: &str) -> bool {
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}
