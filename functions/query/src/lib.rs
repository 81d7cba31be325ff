//! `GET /orders/{id}`: serve the read model from DynamoDB.

use lambda_http::http::{header, HeaderValue, Method};
use lambda_http::{Body, Request, RequestExt, Response};
use orders::dynamodb::{OrderViewStore, ViewStoreError};
use orders::http::{json_response, problem_response};
use orders::problem::Problem;
use orders::OrderId;

/// The query side's dependencies, built once per process.
#[derive(Clone)]
pub struct QueryApp {
    views: OrderViewStore,
}

impl QueryApp {
    pub fn new(views: OrderViewStore) -> Self {
        Self { views }
    }

    /// Handles one API Gateway request.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        match self.get_order(&request).await {
            Ok(response) => response,
            Err(problem) => problem_response(&problem),
        }
    }

    async fn get_order(&self, request: &Request) -> Result<Response<Body>, Problem> {
        if request.method() != Method::GET {
            return Err(Problem::method_not_allowed(request.method().as_str()));
        }
        let raw_id = order_id_param(request)
            .ok_or_else(|| Problem::not_found("No such route; use GET /orders/{id}"))?;
        let id: OrderId = raw_id
            .parse()
            .map_err(|e: orders::domain::order::InvalidOrderId| {
                Problem::bad_request("invalid-order-id", e.to_string())
            })?;
        let view = self.views.get(id).await.map_err(|err| {
            match &err {
                ViewStoreError::Dynamo(_) => {
                    tracing::warn!(order_id = %id, error = %err, "read failed")
                }
                _ => tracing::error!(order_id = %id, error = %err, "stored view unreadable"),
            }
            match err {
                ViewStoreError::Dynamo(_) => {
                    Problem::unavailable("The order store is unavailable; retry shortly")
                }
                _ => Problem::internal(),
            }
        })?;
        let view = view.ok_or_else(|| Problem::not_found(format!("Order {id} does not exist")))?;
        let mut response = json_response(200, &view);
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", view.version)) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        Ok(response)
    }
}

/// The `{id}` path parameter, or the last segment of `/orders/{id}` when the gateway did not
/// extract it.
fn order_id_param(request: &Request) -> Option<String> {
    if let Some(id) = request.path_parameters_ref().and_then(|p| p.first("id")) {
        return Some(id.to_string());
    }
    let path = request.uri().path().trim_end_matches('/');
    let rest = path.strip_prefix("/orders/")?;
    (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
}
