//! The read side's HTTP queries, served from DynamoDB only: `GET /orders/{id}` and
//! `GET /customers/{customerId}/orders`.

pub mod cursor;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use orders::domain::access::{AccessPolicy, Caller};
use orders::domain::validation::is_valid_customer_id;
use orders::dynamodb::{OrderViewStore, PageKey, ViewStoreError};
use orders::http::{caller, json_response, problem_response};
use orders::problem::Problem;
use orders::s3::ReceiptStore;
use orders::{OrderId, OrderStatus, OrderView};
use serde::Serialize;
use std::time::Duration;
use tracing::Instrument;

pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;
/// The most a listing's `items` may take, counted as they travel: escaped inside the body
/// string of the function's response to API Gateway. Lambda refuses responses over 6 MB
/// (6,291,456 bytes); the rest is left for the envelope, headers and the cursor.
pub const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;

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
            .filter(|view| caller.may_read(&view.customer_id).is_ok())
            .ok_or_else(|| Problem::not_found(format!("Order {id} does not exist")))?;
        let etag = format!("\"{}\"", view.order.version);
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
        let (items, next) = cap_page(items, next, MAX_PAGE_BYTES);
        let page = OrderPage {
            items,
            next_cursor: next.map(|key| cursor::encode(&self.cursor_key, &key)),
        };
        Ok(json_response(200, &page))
    }
}

/// Cuts a page at the last order that keeps it within `budget` bytes (at least one order), and
/// points the cursor just after that order; an uncut page keeps its cursor.
fn cap_page(
    items: Vec<OrderView>,
    next: Option<PageKey>,
    budget: usize,
) -> (Vec<OrderView>, Option<PageKey>) {
    let mut used = 0;
    let mut keep = 0;
    for item in &items {
        let size = serde_json::to_string(item).map_or(0, |json| escaped_len(&json)) + 1;
        if keep > 0 && used + size > budget {
            break;
        }
        used += size;
        keep += 1;
    }
    if keep == items.len() {
        return (items, next);
    }
    let mut items = items;
    items.truncate(keep);
    let next = items.last().map(page_key);
    (items, next)
}

/// The length of `json` once escaped as a JSON string (each `"` and `\` gains a backslash).
fn escaped_len(json: &str) -> usize {
    json.len() + json.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// The index key of a view, as the listing's query would return it after that item.
fn page_key(view: &OrderView) -> PageKey {
    let stored = serde_json::to_value(view).unwrap_or_default();
    let text = |name: &str| stored[name].as_str().unwrap_or_default().to_string();
    PageKey {
        order_id: text("orderId"),
        customer_id: text("customerId"),
        created_at: text("createdAt"),
    }
}

/// 503 (with `Retry-After`) only when a retry can help; a permanent fault (denied access, a
/// missing table, an unreadable item) is a 500 and an error in the log.
fn read_problem(err: ViewStoreError) -> Problem {
    if err.is_transient() {
        tracing::warn!(error = %err, "read failed");
        Problem::unavailable("The order store is unavailable; retry shortly")
    } else {
        tracing::error!(error = %err, "read failed on a permanent fault");
        Problem::internal()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A view whose one line carries a name of `name_bytes` bytes.
    fn view(n: u32, name_bytes: usize) -> OrderView {
        serde_json::from_value(serde_json::json!({
            "orderId": uuid::Uuid::from_u128(u128::from(n)).to_string(),
            "customerId": "c-1",
            "customer": {"id": "c-1", "name": "Ada \"the\" Countess", "email": "ada@example.com"},
            "currency": "USD",
            "lines": [{"sku": "S", "name": "n".repeat(name_bytes), "quantity": 1,
                       "unitPrice": 1, "lineTotal": 1}],
            "total": 1,
            "status": "PENDING",
            "version": 1,
            "createdAt": format!("2026-01-01T00:00:{:02}.000000Z", n % 60),
            "updatedAt": "2026-01-01T00:00:00.000000Z",
            "history": [],
            "receiptKey": "r",
            "lastEventId": uuid::Uuid::nil().to_string(),
            "projectedAt": "2026-01-01T00:00:00.000000Z",
        }))
        .expect("a valid view")
    }

    fn size(view: &OrderView) -> usize {
        escaped_len(&serde_json::to_string(view).expect("json")) + 1
    }

    #[test]
    fn a_page_within_the_budget_keeps_its_items_and_cursor() {
        let items: Vec<OrderView> = (1..=3).map(|n| view(n, 100)).collect();
        let budget: usize = items.iter().map(size).sum();
        let cursor = Some(page_key(&view(9, 1)));
        let (kept, next) = cap_page(items.clone(), cursor.clone(), budget);
        assert_eq!((kept, next), (items, cursor));
    }

    #[test]
    fn a_page_over_the_budget_stops_early_with_a_cursor_after_its_last_item() {
        let items: Vec<OrderView> = (1..=3).map(|n| view(n, 100)).collect();
        let budget: usize = items.iter().take(2).map(size).sum::<usize>() + size(&items[2]) - 1;
        let (kept, next) = cap_page(items.clone(), None, budget);
        assert_eq!(kept, items[..2].to_vec());
        let next = next.expect("a cursor for the rest");
        assert_eq!(next.order_id, items[1].order.id.to_string());
        assert_eq!(next.customer_id, "c-1");
        assert_eq!(
            next.created_at,
            serde_json::to_value(&items[1]).expect("json")["createdAt"]
        );
    }

    #[test]
    fn one_order_larger_than_the_budget_is_still_served_alone() {
        let items: Vec<OrderView> = (1..=2).map(|n| view(n, 1000)).collect();
        let (kept, next) = cap_page(items.clone(), None, 10);
        assert_eq!(kept, items[..1].to_vec());
        assert!(next.is_some());
    }

    #[test]
    fn escaping_counts_quotes_and_backslashes_twice() {
        assert_eq!(escaped_len(r#"{"a":"\\"}"#), 10 + 6);
    }
}
