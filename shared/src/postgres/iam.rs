//! IAM database authentication (RDS Proxy, RDS): instead of a password read from Secrets
//! Manager at start, every new connection presents a short-lived token, a SigV4-presigned
//! `connect` request signed locally with the function's own credentials. No network call, no
//! secret in the function, and nothing to refresh when the database password rotates.

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation};
use aws_sigv4::http_request::{SigningError, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use deadpool_postgres::Connect;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

/// How long a token is accepted: the longest RDS allows. It is only checked when a connection
/// is opened; an open connection outlives it.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Characters left as they are in a query value (RFC 3986 unreserved), as SigV4 encodes.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no AWS region is configured (AWS_REGION)")]
    NoRegion,
    #[error("no AWS credentials provider is configured")]
    NoCredentialsProvider,
    #[error("AWS credentials are unavailable: {0}")]
    Credentials(String),
    #[error("signing the database token: {0}")]
    Signing(String),
}

impl From<SigningError> for TokenError {
    fn from(e: SigningError) -> Self {
        Self::Signing(e.to_string())
    }
}

/// The database endpoint and user a token is for.
#[derive(Debug, Clone)]
pub struct TokenScope {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub region: String,
}

/// The token for `scope`, signed with `credentials` at `now`: the presigned URL
/// `https://host:port/?Action=connect&DBUser=user&X-Amz-...` without its scheme.
pub fn auth_token(
    scope: &TokenScope,
    credentials: Credentials,
    now: SystemTime,
) -> Result<String, TokenError> {
    let url = format!(
        "https://{}:{}/?Action=connect&DBUser={}",
        scope.host,
        scope.port,
        utf8_percent_encode(&scope.user, QUERY_VALUE)
    );
    let identity: Identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&scope.region)
        .name("rds-db")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| TokenError::Signing(e.to_string()))?
        .into();
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::empty())?;
    let (instructions, _signature) = sign(request, &params)?.into_parts();
    let mut token = url.trim_start_matches("https://").to_string();
    for (name, value) in instructions.params() {
        token.push('&');
        token.push_str(name);
        token.push('=');
        token.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    Ok(token)
}

/// Signs tokens for one database user with the SDK's credentials chain (on Lambda: the
/// function role's credentials from the environment).
#[derive(Clone)]
pub struct TokenSigner {
    scope: TokenScope,
    credentials: SharedCredentialsProvider,
}

impl TokenSigner {
    /// A signer for `host:port` and `user` in the SDK configuration's region.
    pub fn new(
        aws: &aws_config::SdkConfig,
        host: &str,
        port: u16,
        user: &str,
    ) -> Result<Self, TokenError> {
        let region = aws.region().ok_or(TokenError::NoRegion)?.to_string();
        let credentials = aws
            .credentials_provider()
            .ok_or(TokenError::NoCredentialsProvider)?;
        Ok(Self {
            scope: TokenScope {
                host: host.to_string(),
                port,
                user: user.to_string(),
                region,
            },
            credentials,
        })
    }

    /// A fresh token (valid for 15 minutes).
    pub async fn token(&self) -> Result<String, TokenError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| TokenError::Credentials(e.to_string()))?;
        auth_token(&self.scope, credentials, SystemTime::now())
    }
}

/// Opens each pooled connection with a fresh token as its password (over TLS: the token must
/// not travel in clear).
pub struct IamConnect<T> {
    pub signer: TokenSigner,
    pub tls: T,
}

type Connected = (tokio_postgres::Client, JoinHandle<()>);

impl<T> Connect for IamConnect<T>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + Sync,
    T::TlsConnect: Send + Sync,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> Pin<Box<dyn Future<Output = Result<Connected, tokio_postgres::Error>> + Send + '_>> {
        let mut config = pg_config.clone();
        Box::pin(async move {
            match self.signer.token().await {
                Ok(token) => {
                    config.password(token);
                }
                // The connection attempt then fails as unauthenticated ("password missing");
                // the cause is only known here.
                Err(e) => tracing::error!(error = %e, "no IAM token for the database"),
            }
            let (client, connection) = config.connect(self.tls.clone()).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "database connection closed with an error");
                }
            });
            Ok((client, task))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn params(token: &str) -> (String, BTreeMap<String, String>) {
        let (endpoint, query) = token.split_once("/?").expect("a query");
        let params = query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("name=value");
                (k.to_string(), v.to_string())
            })
            .collect();
        (endpoint.to_string(), params)
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    // Expected values computed with botocore's `generate_db_auth_token` (boto3's signer) at
    // the same instant; the query parameters' order is free, their values are not.
    #[test]
    fn matches_botocore_without_a_session_token() {
        let scope = TokenScope {
            host: "prod-instance.us-east-1.rds.amazonaws.com".into(),
            port: 3306,
            user: "peccy".into(),
            region: "us-east-1".into(),
        };
        let credentials = Credentials::new("akid", "secret", None, None, "test");
        let token = auth_token(&scope, credentials, at(1_724_709_600)).unwrap();
        let expected = "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&\
            DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2F\
            us-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-SignedHeaders=\
            host&X-Amz-Expires=900&X-Amz-Signature=\
            dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89";
        assert_eq!(params(&token), params(expected));
    }

    #[test]
    fn matches_botocore_with_a_session_token() {
        let scope = TokenScope {
            host: "orders-proxy.proxy-abc123.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            user: "orders".into(),
            region: "eu-west-1".into(),
        };
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("IQoJb3JpZ2luX2VjEXAMPLE/token+with=chars".into()),
            None,
            "test",
        );
        // 2026-11-22T12:00:00Z
        let token = auth_token(&scope, credentials, at(1_795_348_800)).unwrap();
        let expected = "orders-proxy.proxy-abc123.eu-west-1.rds.amazonaws.com:5432/?\
            Action=connect&DBUser=orders&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=\
            AKIDEXAMPLE%2F20261122%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=\
            20261122T120000Z&X-Amz-SignedHeaders=host&X-Amz-Expires=900&X-Amz-Security-Token=\
            IQoJb3JpZ2luX2VjEXAMPLE%2Ftoken%2Bwith%3Dchars&X-Amz-Signature=\
            401346e4cd12e301c81c66c1f2b7fa8156bba9dc1e150187c4f12f5f8b6bff45";
        assert_eq!(params(&token), params(expected));
    }

    #[test]
    fn a_token_depends_on_user_time_and_endpoint() {
        let scope = TokenScope {
            host: "db.example".into(),
            port: 5432,
            user: "orders".into(),
            region: "eu-west-1".into(),
        };
        let credentials = || Credentials::new("akid", "secret", None, None, "test");
        let base = auth_token(&scope, credentials(), at(1_795_348_800)).unwrap();
        let later = auth_token(&scope, credentials(), at(1_795_348_801)).unwrap();
        let other_user = TokenScope {
            user: "other user".into(),
            ..scope.clone()
        };
        let other = auth_token(&other_user, credentials(), at(1_795_348_800)).unwrap();
        assert_ne!(
            params(&base).1["X-Amz-Signature"],
            params(&later).1["X-Amz-Signature"]
        );
        assert_ne!(
            params(&base).1["X-Amz-Signature"],
            params(&other).1["X-Amz-Signature"]
        );
        assert_eq!(params(&other).1["DBUser"], "other%20user");
        assert!(base.starts_with("db.example:5432/?Action=connect&DBUser=orders&"));
    }

    #[tokio::test]
    async fn the_signer_needs_a_region_and_credentials() {
        let no_region = aws_config::SdkConfig::builder().build();
        assert!(matches!(
            TokenSigner::new(&no_region, "h", 5432, "u"),
            Err(TokenError::NoRegion)
        ));
        let no_credentials = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        assert!(matches!(
            TokenSigner::new(&no_credentials, "h", 5432, "u"),
            Err(TokenError::NoCredentialsProvider)
        ));
        let configured = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "akid", "secret", None, None, "test",
            )))
            .build();
        let token = TokenSigner::new(&configured, "h", 5432, "u")
            .unwrap()
            .token()
            .await
            .unwrap();
        assert!(token.starts_with("h:5432/?Action=connect&DBUser=u&"));
        assert!(token.contains("X-Amz-Credential=akid%2F"));
    }
}
