//! What a failed AWS call means for its caller: retry later (throttling, timeouts, 5xx), or
//! fix something (a denied permission, a missing resource, an invalid request). Kept as a kind,
//! not flattened into text, so that a handler answers 503 only when a retry can help.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// How a failed call should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Throttled, timed out, unreachable or a 5xx: retry later.
    Transient,
    /// IAM refused the action: the deployment is wrong.
    Denied,
    /// Anything else the service refused (validation, missing table or bucket): a bug or a
    /// misconfiguration that a retry will not fix.
    Permanent,
}

/// A failed AWS call: which action, what kind of failure, and the SDK's full description.
#[derive(Debug, thiserror::Error)]
#[error("{action} failed ({kind:?}): {detail}")]
pub struct ServiceError {
    /// The IAM action, for example `dynamodb:GetItem`.
    pub action: &'static str,
    pub kind: FaultKind,
    pub detail: String,
}

/// Error codes that mean "retry later", across DynamoDB and S3.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "LimitExceededException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Error codes that mean IAM or the credentials refused the call.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
];

impl ServiceError {
    /// Classifies an SDK error. A denial is logged here, as an error naming the action, so
    /// that a missing permission is plain in the logs whatever the caller does next.
    pub fn from_sdk<E>(action: &'static str, err: SdkError<E, Response>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kind = match &err {
            SdkError::ConstructionFailure(_) => FaultKind::Permanent,
            SdkError::ServiceError(service) => kind_of(err.code(), service.raw().status().as_u16()),
            // Timeouts, dispatch failures (connection refused or reset) and unreadable
            // responses.
            _ => FaultKind::Transient,
        };
        let detail = DisplayErrorContext(err).to_string();
        if kind == FaultKind::Denied {
            tracing::error!(action, error = %detail, "{action} denied");
        }
        Self {
            action,
            kind,
            detail,
        }
    }

    /// True when a retry may succeed (answer 503 with `Retry-After`).
    pub fn is_transient(&self) -> bool {
        self.kind == FaultKind::Transient
    }
}

fn kind_of(code: Option<&str>, status: u16) -> FaultKind {
    match code {
        Some(code) if DENIED_CODES.contains(&code) => FaultKind::Denied,
        Some(code) if TRANSIENT_CODES.contains(&code) => FaultKind::Transient,
        _ if status == 429 || status >= 500 => FaultKind::Transient,
        _ if status == 403 => FaultKind::Denied,
        _ => FaultKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for (code, status) in [
            (Some("ThrottlingException"), 400),
            (Some("ProvisionedThroughputExceededException"), 400),
            (Some("SlowDown"), 503),
            (None, 500),
            (None, 429),
        ] {
            assert_eq!(kind_of(code, status), FaultKind::Transient, "{code:?}");
        }
    }

    #[test]
    fn denials_and_client_errors_are_not() {
        assert_eq!(
            kind_of(Some("AccessDeniedException"), 400),
            FaultKind::Denied
        );
        assert_eq!(kind_of(Some("AccessDenied"), 403), FaultKind::Denied);
        assert_eq!(kind_of(None, 403), FaultKind::Denied);
        for code in [
            "ResourceNotFoundException",
            "ValidationException",
            "NoSuchBucket",
        ] {
            assert_eq!(kind_of(Some(code), 400), FaultKind::Permanent, "{code}");
        }
    }
}
