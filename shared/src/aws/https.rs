//! One HTTPS client for every AWS SDK client of a process.
//!
//! Left to itself, each SDK client (DynamoDB, S3, SNS) gets its own default HTTPS client, and
//! each of those builds its TLS connector twice: once when the client is constructed (to load
//! the root store at init), thrown away, and again on the client's first request; every build
//! turns the system's roots into a rustls root store again. This client builds one connector
//! per timeout setting, when the first SDK client is constructed (init), and shares it: the
//! query's DynamoDB and S3 clients use one TLS configuration, built once from roots read and
//! decoded once ([`super::roots`]), and the first request finds the connector ready.

use aws_smithy_async::rt::sleep::{default_async_sleep, SharedAsyncSleep};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;
use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Connect and read timeouts: what a connector is built for.
type Key = (Option<Duration>, Option<Duration>);

/// The shared client: one connector (with its connection pool) per timeout setting.
#[derive(Debug, Clone, Default)]
pub(crate) struct Https {
    connectors: Arc<RwLock<Vec<(Key, SharedHttpConnector)>>>,
}

impl Https {
    /// The client, to give to the SDK configuration.
    pub(crate) fn shared(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }

    /// How many connectors were built (one per timeout setting in use).
    #[cfg(all(test, feature = "dynamodb"))]
    pub(crate) fn built(&self) -> usize {
        self.connectors.read().map(|c| c.len()).unwrap_or_default()
    }

    /// How each connector built so far describes itself (its `Debug`).
    #[cfg(all(test, feature = "dynamodb"))]
    pub(crate) fn descriptions(&self) -> Vec<String> {
        self.connectors
            .read()
            .map(|c| c.iter().map(|(_, c)| format!("{c:?}")).collect())
            .unwrap_or_default()
    }

    fn connector(
        &self,
        settings: &HttpConnectorSettings,
        sleep: Option<SharedAsyncSleep>,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let find = |list: &[(Key, SharedHttpConnector)]| {
            list.iter().find(|(k, _)| *k == key).map(|(_, c)| c.clone())
        };
        if let Some(found) = self.connectors.read().ok().and_then(|list| find(&list)) {
            return found;
        }
        // A poisoned lock only means another thread panicked while building: build anew.
        let mut list = self
            .connectors
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = find(&list) {
            return found;
        }
        let connector = build(settings, sleep);
        list.push((key, connector.clone()));
        connector
    }
}

/// The proxy variables the SDK's connector honours (`ProxyConfig::from_env`).
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// True when the environment names a proxy.
pub(crate) fn proxy_configured() -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// Our connector ([`super::connector`]) with the process's one TLS configuration; the SDK's
/// default one (aws-smithy-runtime's `default_https_client`) when a proxy is configured in the
/// environment, which ours does not support, or when no root certificate could be read.
fn build(settings: &HttpConnectorSettings, sleep: Option<SharedAsyncSleep>) -> SharedHttpConnector {
    if !proxy_configured() {
        if let Some(tls) = super::roots::tls_config() {
            return SharedHttpConnector::new(super::connector::Connector::new(
                tls,
                settings.connect_timeout(),
                settings.read_timeout(),
            ));
        }
    }
    let mut builder = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    builder.set_connector_settings(Some(settings.clone()));
    builder.set_sleep_impl(sleep.or_else(default_async_sleep));
    builder.set_proxy_config(Some(ProxyConfig::from_env()));
    SharedHttpConnector::new(builder.build())
}

/// The settings the orchestrator asks a connector for, from the client's timeouts.
fn settings_of(timeouts: &TimeoutConfig) -> HttpConnectorSettings {
    let mut builder = HttpConnectorSettings::builder();
    builder.set_connect_timeout(timeouts.connect_timeout());
    builder.set_read_timeout(timeouts.read_timeout());
    builder.build()
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector(settings, components.sleep_impl())
    }

    /// Builds the client's connector when the SDK client is constructed (init), as the SDK's
    /// own client loads its roots then; the first request finds it built.
    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(timeouts) = cfg.load::<TimeoutConfig>() {
            self.connector(&settings_of(timeouts), components.sleep_impl());
        }
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}
