//! The read-model table: one item per order, written only forward in version.

use crate::domain::order::OrderId;
use crate::domain::view::OrderView;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

/// Name of the table's partition key attribute.
pub const KEY: &str = "orderId";

#[derive(Debug, thiserror::Error)]
pub enum ViewStoreError {
    #[error("DynamoDB request failed: {0}")]
    Dynamo(String),
    #[error("stored item could not be read as an order view: {0}")]
    Corrupt(String),
    #[error("view could not be converted to an item: {0}")]
    Encode(String),
}

/// The result of a versioned write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The item now holds this version.
    Applied,
    /// A newer version was already stored; nothing changed.
    Stale,
}

/// DynamoDB access for order views.
#[derive(Debug, Clone)]
pub struct OrderViewStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl OrderViewStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            table,
        }
    }

    /// Writes the view unless a newer version is stored. The same version is written again
    /// (identical content), so a redelivered event that failed half-way can complete.
    pub async fn put_if_not_older(&self, view: &OrderView) -> Result<WriteOutcome, ViewStoreError> {
        let item =
            serde_dynamo::to_item(view).map_err(|e| ViewStoreError::Encode(e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key) OR #version <= :version")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", AttributeValue::N(view.version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Applied),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(WriteOutcome::Stale)
            }
            Err(err) => Err(ViewStoreError::Dynamo(DisplayErrorContext(err).to_string())),
        }
    }

    /// Reads one view with a strongly consistent read.
    pub async fn get(&self, id: OrderId) -> Result<Option<OrderView>, ViewStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ViewStoreError::Dynamo(DisplayErrorContext(e).to_string()))?;
        match output.item {
            None => Ok(None),
            Some(item) => serde_dynamo::from_item(item)
                .map(Some)
                .map_err(|e| ViewStoreError::Corrupt(e.to_string())),
        }
    }
}
