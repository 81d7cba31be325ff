//! Loading the AWS SDK configuration once per process.

use aws_config::{BehaviorVersion, SdkConfig};

/// The shared SDK configuration from the standard environment (region, credentials,
/// `AWS_ENDPOINT_URL` for local stand-ins such as moto).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// True when requests go to a custom endpoint (a local emulator), which for S3 needs
/// path-style addressing.
pub fn uses_custom_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}
