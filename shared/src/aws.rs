//! Loading the AWS SDK configuration once per process, with bounds on every call, and one
//! HTTPS client for all of the process's SDK clients ([`https`]).

mod connector;
mod https;
mod roots;

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Bounds on each AWS SDK call of one function: a hung DynamoDB, S3 or SNS call fails after
/// `operation` (retries included) instead of running the function into its own timeout, so
/// the updater fails that record only, and the query answers a problem+json 503.
///
/// Each function's worst case (calls made one after another, each at its `operation` bound)
/// stays inside its timeout in template.yaml; the figures are worked out on each constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkBudget {
    /// Opening a connection (TCP and TLS).
    pub connect: Duration,
    /// One attempt, from sending the request to reading the whole response.
    pub attempt: Duration,
    /// The whole call, every attempt and the back-off between them.
    pub operation: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
}

impl SdkBudget {
    /// The query (6 s timeout): one DynamoDB read per request (receipt links are presigned
    /// locally), at most 4 s; 2 s are left for the rest.
    pub const QUERY: Self = Self {
        connect: Duration::from_millis(1000),
        attempt: Duration::from_secs(2),
        operation: Duration::from_secs(4),
        max_attempts: 3,
    };
    /// The updater (30 s timeout, batches of 10, 8 records at a time): a record makes 2
    /// calls in turn (view, then its document), and a batch at most 2 rounds of records:
    /// 4 calls of at most 3.5 s is 14 s, well inside the timeout.
    pub const UPDATER: Self = Self {
        connect: Duration::from_millis(1000),
        attempt: Duration::from_secs(2),
        operation: Duration::from_millis(3500),
        max_attempts: 3,
    };
    /// The write side (command 15 s, relay 60 s, migrate): SNS publishes are also cut off by
    /// `PUBLISH_TIMEOUT_MS` (2 s); the SDK gives up at the same point.
    pub const WRITE: Self = Self {
        connect: Duration::from_millis(1000),
        attempt: Duration::from_millis(1500),
        operation: Duration::from_secs(2),
        max_attempts: 3,
    };

    /// Operator tools (`orders-admin`), run by hand with no function timeout: SQS long polls
    /// and full-table scans need attempts longer than a request's.
    pub const OPERATOR: Self = Self {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(30),
        operation: Duration::from_secs(60),
        max_attempts: 3,
    };

    fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    fn retries(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_millis(500))
    }
}

/// A function's SDK configuration from the standard environment (region, `AWS_ENDPOINT_URL`
/// for local stand-ins such as moto), with the function's bounds and one HTTPS client that
/// every SDK client made from it shares (the root store parsed once). Credentials come from
/// [`function_credentials`] only.
pub async fn load(budget: SdkBudget) -> SdkConfig {
    let https = https::Https::default();
    let container = ProviderConfig::without_region().with_http_client(https.shared());
    loader(budget, https)
        .credentials_provider(function_credentials(&container))
        .load()
        .await
}

/// The configuration of a function that calls no AWS service and only signs (IAM database
/// tokens, the migrate function): the region from `AWS_REGION` (else `AWS_DEFAULT_REGION`), as
/// Lambda sets it, and [`function_credentials`]. Unlike [`load`] it leaves out the SDK's
/// configuration loader (profile files, the region and credential chains, the STS client), which
/// such a function would otherwise link and run at init for nothing.
#[cfg(feature = "postgres")]
pub fn signing_config() -> SdkConfig {
    let region = region_from(|name| std::env::var(name).ok());
    let https = https::Https::default();
    let container = ProviderConfig::without_region().with_http_client(https.shared());
    SdkConfig::builder()
        .region(region)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(function_credentials(
                &container,
            )),
        )
        .behavior_version(BehaviorVersion::latest())
        .build()
}

/// `AWS_REGION`, else `AWS_DEFAULT_REGION` (blank counts as unset).
#[cfg(feature = "postgres")]
fn region_from(var: impl Fn(&str) -> Option<String>) -> Option<aws_config::Region> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| var(name).filter(|v| !v.trim().is_empty()))
        .map(aws_config::Region::new)
}

/// An operator tool's SDK configuration: as [`load`], with the SDK's whole default credentials
/// chain (profiles, SSO, web identity, instance metadata) for whoever runs it.
pub async fn load_with_default_credentials(budget: SdkBudget) -> SdkConfig {
    loader(budget, https::Https::default()).load().await
}

/// Where a function's credentials come from: the variables Lambda sets
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), else a container
/// credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), looked up only when asked.
/// The SDK's default chain would also read profile files and, at init, build an STS client
/// for web identity that no function uses (its endpoint rules, and the first build of the
/// HTTPS connector).
pub fn function_credentials(container: &ProviderConfig) -> CredentialsProviderChain {
    CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else(
        "Container",
        EcsCredentialsProvider::builder()
            .configure(container)
            .build(),
    )
}

fn loader(budget: SdkBudget, https: https::Https) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https.shared())
        .timeout_config(budget.timeouts())
        .retry_config(budget.retries())
}

/// The same bounds applied to a configuration built elsewhere (tests, local tools).
pub fn with_budget(config: &SdkConfig, budget: SdkBudget) -> SdkConfig {
    config
        .to_builder()
        .timeout_config(budget.timeouts())
        .retry_config(budget.retries())
        .build()
}

/// True when requests go to a custom endpoint (a local emulator), which for S3 needs
/// path-style addressing.
pub fn uses_custom_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

#[cfg(test)]
mod tests {
    use super::SdkBudget;
    use std::time::Duration;

    /// Two SDK clients made from one configuration, and a request through one of them, build
    /// one TLS connector between them (the SDK's default builds one per client, twice).
    #[cfg(feature = "dynamodb")]
    #[tokio::test]
    async fn clients_share_one_connector_built_at_construction() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("port").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}",
            );
        });
        let https = super::https::Https::default();
        let config = super::loader(SdkBudget::QUERY, https.clone())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .load()
            .await;
        assert_eq!(https.built(), 0, "nothing is built before a client is");
        let first = aws_sdk_dynamodb::Client::new(&config);
        let _second = aws_sdk_dynamodb::Client::new(&config);
        assert_eq!(
            https.built(),
            1,
            "one connector for both clients, at construction"
        );
        first
            .get_item()
            .table_name("t")
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .send()
            .await
            .expect("the stub answers an empty item");
        assert_eq!(https.built(), 1, "the first request finds it built");
        let ours = https.descriptions()[0].contains("orders::aws::Connector");
        assert_eq!(
            ours,
            !super::https::proxy_configured(),
            "our connector unless a proxy is configured: {:?}",
            https.descriptions()
        );
        server.join().expect("stub server");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_signing_region_is_lambdas_region_variable() {
        fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        }
        let region = |r: Option<aws_config::Region>| r.map(|r| r.to_string());
        let both = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ];
        assert_eq!(
            region(super::region_from(vars(&both))),
            Some("eu-west-1".into())
        );
        let fallback = [("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "us-east-1")];
        assert_eq!(
            region(super::region_from(vars(&fallback))),
            Some("us-east-1".into())
        );
        assert_eq!(region(super::region_from(vars(&[]))), None);
    }

    /// Function timeouts from template.yaml, and the SDK calls each makes one after another
    /// in the worst case (see the constants).
    #[test]
    fn each_budget_fits_its_function_timeout() {
        let template = include_str!("../../template.yaml");
        let timeout_of = |function: &str| -> Duration {
            let start = template
                .find(&format!("  {function}:\n"))
                .unwrap_or_else(|| panic!("{function} in template.yaml"));
            let line = template[start..]
                .lines()
                .find(|l| l.trim_start().starts_with("Timeout:"))
                .unwrap_or_else(|| panic!("{function} has a Timeout"));
            let seconds = line.trim().trim_start_matches("Timeout:").trim();
            Duration::from_secs(seconds.parse().unwrap_or_else(|_| panic!("{line}")))
        };
        for (function, budget, calls) in [
            ("QueryFunction", SdkBudget::QUERY, 1),
            ("UpdaterFunction", SdkBudget::UPDATER, 8),
            ("CommandFunction", SdkBudget::WRITE, 1),
        ] {
            assert!(budget.attempt <= budget.operation, "{function}");
            assert!(
                budget.operation * calls < timeout_of(function),
                "{function}: {calls} calls of {:?}",
                budget.operation
            );
        }
    }
}
