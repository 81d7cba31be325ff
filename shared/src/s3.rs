//! The receipts bucket.

use crate::service_error::ServiceError;
use aws_sdk_s3::primitives::ByteStream;

#[derive(Debug, thiserror::Error)]
pub enum ReceiptStoreError {
    /// S3 refused or failed the call; its kind says whether to retry.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A presigned URL could not be made (a bad expiry, or no credentials to sign with).
    #[error("presigning failed: {0}")]
    Presign(String),
}

impl ReceiptStoreError {
    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Service(err) if err.is_transient())
    }
}

/// S3 access for receipt documents.
#[derive(Debug, Clone)]
pub struct ReceiptStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl ReceiptStore {
    pub fn new(config: &aws_config::SdkConfig, bucket: String) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(crate::aws::uses_custom_endpoint(config))
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            bucket,
        }
    }

    /// Stores (or overwrites) one object.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ReceiptStoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ServiceError::from_sdk("s3:PutObject", e).into())
    }

    /// A time-limited URL that lets whoever holds it read one object.
    pub async fn presigned_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<String, ReceiptStoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| ReceiptStoreError::Presign(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| ReceiptStoreError::Presign(e.to_string()))?;
        Ok(request.uri().to_string())
    }
}
