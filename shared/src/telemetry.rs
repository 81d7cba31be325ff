//! Logging: JSON lines to stderr (CloudWatch captures both streams; stdout is kept for EMF
//! metrics and command output), or text when Lambda's advanced logging controls ask for it
//! (`AWS_LAMBDA_LOG_FORMAT=Text`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once per process. Later calls do nothing.
pub fn init() {
    let filter =
        EnvFilter::try_new(crate::config::log_level()).unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .map(|f| f.eq_ignore_ascii_case("text"))
        .unwrap_or(false);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr);
    let _ = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
}
