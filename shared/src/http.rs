//! Building Lambda HTTP responses.

use crate::domain::access::{AccessPolicy, Caller};
use crate::problem::{Problem, CONTENT_TYPE};
use lambda_http::http::{header, HeaderValue, Response, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::Serialize;
use std::collections::HashMap;

/// A JSON response with the given status.
pub fn json_response<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => with_body(status, "application/json", text),
        Err(err) => {
            tracing::error!(error = %err, "response body could not be serialized");
            problem_response(&Problem::internal())
        }
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// An `application/problem+json` response (a 401 also says which scheme to use, a 503 when
/// to retry).
pub fn problem_response(problem: &Problem) -> Response<Body> {
    let text = serde_json::to_string(problem).unwrap_or_else(|_| "{}".into());
    let mut response = with_body(problem.status, CONTENT_TYPE, text);
    let headers = response.headers_mut();
    match problem.status {
        401 => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        503 => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        _ => {}
    }
    response
}

/// The caller, from the claims API Gateway's JWT authorizer verified
/// (`requestContext.authorizer.jwt`); 401 when there are none.
pub fn caller(request: &Request, policy: &AccessPolicy) -> Result<Caller, Problem> {
    let jwt = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|authorizer| authorizer.jwt.as_ref()),
        _ => None,
    };
    let empty = HashMap::new();
    let (claims, scopes) = match jwt {
        Some(jwt) => (&jwt.claims, jwt.scopes.as_deref().unwrap_or_default()),
        None => (&empty, &[][..]),
    };
    policy.caller(claims, scopes).map_err(|err| {
        tracing::info!(reason = %err, "request refused: unauthenticated");
        Problem::from(err)
    })
}

fn with_body(status: u16, content_type: &'static str, text: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The request body as bytes, whatever the gateway's encoding.
pub fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}
