//! Logging: JSON lines to stderr (CloudWatch captures both streams; stdout is kept for EMF
//! metrics and command output), or text when Lambda's advanced logging controls ask for it
//! (`AWS_LAMBDA_LOG_FORMAT=Text`). The level comes from `LOG_LEVEL` or `AWS_LAMBDA_LOG_LEVEL`.
//!
//! Every invocation runs in an [`invocation_span`], so each line carries the function name,
//! the Lambda request id, `cold_start`, and the order and correlation ids once known. No
//! personal data is logged: customer emails only ever appear through [`mask_email`].

use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Span;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

static COLD: AtomicBool = AtomicBool::new(true);

fn filter() -> EnvFilter {
    EnvFilter::try_new(crate::config::log_level()).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// A JSON subscriber writing to `writer` (tests capture logs with it).
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .finish()
}

/// Installs the global subscriber once per process. Later calls do nothing.
pub fn init() {
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .map(|f| f.eq_ignore_ascii_case("text"))
        .unwrap_or(false);
    let _ = if text {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_target(false)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        tracing::subscriber::set_global_default(json_subscriber(std::io::stderr))
            .map_err(Into::into)
    };
}

/// True for the first invocation of this process (the one that paid the cold start).
pub fn take_cold_start() -> bool {
    let cold = COLD.swap(false, Ordering::Relaxed);
    if cold {
        crate::metrics::MetricSet::new()
            .count("ColdStarts", 1)
            .emit();
    }
    cold
}

/// The function's name as Lambda reports it (`local` elsewhere).
pub fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into())
}

/// The span one invocation runs in. `order_id` and `correlation_id` start empty; record them
/// with `span.record(..)` once known.
pub fn invocation_span(request_id: &str) -> Span {
    tracing::info_span!(
        "invocation",
        function = %function_name(),
        request_id = %request_id,
        cold_start = take_cold_start(),
        order_id = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
    )
}

/// `ada@example.com` -> `a***@example.com`: enough to tell addresses apart, not to use them.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_masked() {
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }

    #[test]
    fn only_the_first_invocation_is_cold() {
        // Other tests in this process may have taken it already; after one take it is warm.
        let _ = take_cold_start();
        assert!(!take_cold_start());
    }
}
