//! Building Lambda HTTP responses.

use crate::problem::{Problem, CONTENT_TYPE};
use lambda_http::http::{header, HeaderValue, Response, StatusCode};
use lambda_http::Body;
use serde::Serialize;

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

/// An `application/problem+json` response.
pub fn problem_response(problem: &Problem) -> Response<Body> {
    let text = serde_json::to_string(problem).unwrap_or_else(|_| "{}".into());
    with_body(problem.status, CONTENT_TYPE, text)
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
