//! RFC 9457 problem details: the body of every error response.

use crate::domain::validation::{DecodeError, FieldError};
use serde::{Serialize, Serializer};

/// The media type of every error response.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The kind of problem, serialized as the relative URI `/problems/{kind}` (documented in
    /// the README).
    #[serde(rename = "type", serialize_with = "problem_type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The fields at fault, for validation problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members specific to the problem type (for example `currentStatus`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

fn problem_type<S: Serializer>(kind: &&'static str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("/problems/{kind}"))
}

impl From<crate::domain::order::InvalidOrderId> for Problem {
    fn from(err: crate::domain::order::InvalidOrderId) -> Self {
        Self::bad_request("invalid-order-id", err.to_string())
    }
}

impl From<crate::domain::access::Unauthenticated> for Problem {
    fn from(err: crate::domain::access::Unauthenticated) -> Self {
        Self::new(
            401,
            "unauthenticated",
            "Unauthenticated",
            format!("A valid bearer token is required: {err}"),
        )
    }
}

impl Problem {
    /// 403 for a caller who may not do this (the `NotVisible` denial is a 404: see
    /// [`Problem::not_found`]; the handler words it as its own "not found").
    pub fn forbidden(denied: crate::domain::access::Denied) -> Self {
        Self::new(403, "forbidden", "Forbidden", denied.to_string())
    }

    pub fn new(
        status: u16,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            title,
            status,
            detail: detail.into(),
            errors: Vec::new(),
            extensions: None,
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.into());
        self
    }

    /// 422: the body was well-formed but broke the rules listed in `errors`.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut p = Self::new(
            422,
            "validation-error",
            "The order is not valid",
            format!("Invalid fields: {}", fields.join(", ")),
        );
        p.errors = errors;
        p
    }

    /// 400, 413: the body could not be read as an order.
    pub fn undecodable(err: DecodeError) -> Self {
        match err {
            DecodeError::TooLarge(_) => Self::new(
                413,
                "body-too-large",
                "Request body too large",
                err.to_string(),
            ),
            DecodeError::Empty | DecodeError::Syntax(_) => Self::new(
                400,
                "malformed-json",
                "Request body is not valid JSON",
                err.to_string(),
            ),
            DecodeError::Field(field) => {
                let detail = if field.field.is_empty() {
                    field.message.clone()
                } else {
                    format!("{}: {}", field.field, field.message)
                };
                let mut p = Self::new(
                    400,
                    "malformed-request",
                    "Request body has the wrong shape",
                    detail,
                );
                p.errors = vec![field];
                p
            }
        }
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, kind, "Bad request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "not-found", "Not found", detail)
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            format!("{method} is not supported here"),
        )
    }

    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            format!("Content-Type must be application/json, got {got:?}"),
        )
    }

    /// 503: a dependency is down; the client may retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, "service-unavailable", "Service unavailable", detail)
    }

    /// 500: our fault. The detail never carries internal error text.
    pub fn internal() -> Self {
        Self::new(
            500,
            "internal-error",
            "Internal error",
            "The request failed; it has been logged",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_lists_fields() {
        let p = Problem::validation(vec![FieldError::new("currency", "bad")]);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["status"], 422);
        assert_eq!(json["type"], "/problems/validation-error");
        assert_eq!(json["errors"][0]["field"], "currency");
        assert!(json["detail"].as_str().unwrap().contains("currency"));
    }

    #[test]
    fn plain_problems_omit_errors() {
        let json = serde_json::to_value(Problem::not_found("x")).unwrap();
        assert!(json.get("errors").is_none());
    }
}
