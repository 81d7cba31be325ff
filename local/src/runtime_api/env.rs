//! What a function process is given: its environment variables, as Lambda sets them, and the
//! X-Ray trace header of each invocation.

use super::FunctionSpec;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Root=1-<epoch hex>-<96 bits>;Parent=<64 bits>;Sampled=0`, as X-Ray formats trace ids.
pub(super) fn trace_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{now:08x}-{};Parent={};Sampled=0",
        &a[..24],
        &b[..16]
    )
}

/// The environment Lambda gives a `provided.al2023` function, for this process.
pub(super) fn lambda_env(
    spec: &FunctionSpec,
    runtime_api: SocketAddr,
    per_environment: usize,
) -> Vec<(String, String)> {
    let task_root = spec
        .program
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let date = time::OffsetDateTime::now_utc().date();
    let stream = format!(
        "{:04}/{:02}/{:02}/[$LATEST]{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        uuid::Uuid::new_v4().simple()
    );
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
        ("AWS_REGION".into(), spec.region.clone()),
        ("AWS_DEFAULT_REGION".into(), spec.region.clone()),
    ];
    if let Ok(backtrace) = std::env::var("RUST_BACKTRACE") {
        env.push(("RUST_BACKTRACE".into(), backtrace));
    }
    env.extend(spec.env.iter().cloned());
    env.extend([
        ("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.to_string()),
        (
            "AWS_LAMBDA_FUNCTION_NAME".into(),
            spec.function_name.clone(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            spec.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{}", spec.function_name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("LAMBDA_TASK_ROOT".into(), task_root.clone()),
        ("LAMBDA_RUNTIME_DIR".into(), task_root),
        ("_HANDLER".into(), "bootstrap".into()),
    ]);
    if per_environment > 1 {
        env.push((
            orders::config::vars::AWS_LAMBDA_MAX_CONCURRENCY.into(),
            per_environment.to_string(),
        ));
    }
    env
}
