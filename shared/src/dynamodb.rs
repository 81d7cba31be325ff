//! The read-model table: one item per order, written only forward in version, and the one
//! heartbeat item (see [`crate::domain::heartbeat`]), written only forward in time.

use crate::domain::heartbeat::{Heartbeat, HEARTBEAT_ITEM_KEY};
use crate::domain::order::OrderId;
use crate::domain::view::OrderView;
use crate::service_error::ServiceError;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use std::collections::HashMap;

/// The index that lists a customer's orders, newest first.
pub const CUSTOMER_INDEX: &str = "byCustomer";

/// Where a listing page ended: the index key of its last evaluated item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageKey {
    pub order_id: String,
    pub customer_id: String,
    pub created_at: String,
}

/// DynamoDB's limit on keys in one BatchGetItem call.
const MAX_BATCH_GET: usize = 100;

/// Name of the table's partition key attribute.
pub const KEY: &str = "orderId";

#[derive(Debug, thiserror::Error)]
pub enum ViewStoreError {
    /// DynamoDB refused or failed the call; its kind says whether to retry.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// DynamoDB kept some keys of a batch read unprocessed (throttling): retry later.
    #[error("BatchGetItem kept returning unprocessed keys")]
    Unprocessed,
    #[error("stored item could not be read as an order view: {0}")]
    Corrupt(String),
    #[error("view could not be converted to an item: {0}")]
    Encode(String),
}

impl ViewStoreError {
    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Service(err) => err.is_transient(),
            Self::Unprocessed => true,
            Self::Corrupt(_) | Self::Encode(_) => false,
        }
    }
}

/// The result of a versioned write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The item now holds this version.
    Applied,
    /// A newer version was already stored; nothing changed.
    Stale,
}

/// What a conditional `PutItem` did: a failed condition means a newer item is stored.
fn conditional_put_outcome<R>(
    result: Result<R, SdkError<PutItemError, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<WriteOutcome, ViewStoreError> {
    match result {
        Ok(_) => Ok(WriteOutcome::Applied),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
        {
            Ok(WriteOutcome::Stale)
        }
        Err(err) => Err(ServiceError::from_sdk("dynamodb:PutItem", err).into()),
    }
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
            .expression_attribute_values(
                ":version",
                AttributeValue::N(view.order.version.to_string()),
            )
            .send()
            .await;
        conditional_put_outcome(result)
    }

    /// Records a heartbeat in its one item unless a later one is stored (the timestamps are
    /// fixed-width text, so they compare in time order). The item has no `customerId`, so the
    /// customer index never holds it.
    pub async fn put_heartbeat(
        &self,
        heartbeat: &Heartbeat,
        lag_ms: f64,
        projected_at: time::OffsetDateTime,
    ) -> Result<WriteOutcome, ViewStoreError> {
        use crate::domain::timestamp::format;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(HEARTBEAT_ITEM_KEY.into()))
            .item("eventType", AttributeValue::S(heartbeat.event_type.clone()))
            .item("eventId", AttributeValue::S(heartbeat.event_id.to_string()))
            .item("source", AttributeValue::S(heartbeat.source.clone()))
            .item("emittedAt", AttributeValue::S(format(heartbeat.emitted_at)))
            .item("projectedAt", AttributeValue::S(format(projected_at)))
            .item("lagMs", AttributeValue::N(format!("{lag_ms:.3}")))
            .condition_expression("attribute_not_exists(#key) OR #emitted < :emitted")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#emitted", "emittedAt")
            .expression_attribute_values(
                ":emitted",
                AttributeValue::S(format(heartbeat.emitted_at)),
            )
            .send()
            .await;
        conditional_put_outcome(result)
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
            .map_err(|e| ServiceError::from_sdk("dynamodb:GetItem", e))?;
        match output.item {
            None => Ok(None),
            Some(item) => serde_dynamo::from_item(item)
                .map(Some)
                .map_err(|e| ViewStoreError::Corrupt(e.to_string())),
        }
    }

    /// Reads many views (any number of ids; batched and retried for unprocessed keys).
    pub async fn get_many(
        &self,
        ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderView>, ViewStoreError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(MAX_BATCH_GET) {
            let keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| HashMap::from([(KEY.to_string(), AttributeValue::S(id.to_string()))]))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| ViewStoreError::Encode(e.to_string()))?,
            );
            let mut attempts = 0;
            while let Some(keys) = request.take() {
                attempts += 1;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| ServiceError::from_sdk("dynamodb:BatchGetItem", e))?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let view: OrderView = serde_dynamo::from_item(item)
                        .map_err(|e| ViewStoreError::Corrupt(e.to_string()))?;
                    found.insert(view.order.id, view);
                }
                request = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
                if request.is_some() {
                    if attempts >= 8 {
                        return Err(ViewStoreError::Unprocessed);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempts)).await;
                }
            }
        }
        Ok(found)
    }

    /// One page of the ids and versions of all stored views (a Scan, which skips the
    /// heartbeat item); pass the returned cursor back for the next page, until it is `None`.
    pub async fn scan_versions(
        &self,
        cursor: Option<HashMap<String, AttributeValue>>,
    ) -> Result<(Vec<(String, i64)>, Option<HashMap<String, AttributeValue>>), ViewStoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("#key, #version")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#version", "version")
            .set_exclusive_start_key(cursor)
            .send()
            .await
            .map_err(|e| ServiceError::from_sdk("dynamodb:Scan", e))?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let id = item
                    .get(KEY)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let version = item
                    .get("version")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (id, version)
            })
            .filter(|(id, _)| id != HEARTBEAT_ITEM_KEY)
            .collect();
        Ok((items, output.last_evaluated_key))
    }

    /// Up to `limit` of a customer's orders, newest first, optionally only those in `status`,
    /// starting after `start`. Returns the page and where the next one starts (if any).
    pub async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        start: Option<PageKey>,
        status: Option<crate::OrderStatus>,
    ) -> Result<(Vec<OrderView>, Option<PageKey>), ViewStoreError> {
        let mut items = Vec::new();
        let mut start = start.map(|k| {
            HashMap::from([
                (KEY.to_string(), AttributeValue::S(k.order_id)),
                ("customerId".to_string(), AttributeValue::S(k.customer_id)),
                ("createdAt".to_string(), AttributeValue::S(k.created_at)),
            ])
        });
        // With a status filter a query may return fewer items than it read; a few more
        // queries fill the page, within a bound.
        for _ in 0..10 {
            let remaining = limit.saturating_sub(items.len());
            if remaining == 0 {
                break;
            }
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(CUSTOMER_INDEX)
                .key_condition_expression("customerId = :customer")
                .expression_attribute_values(
                    ":customer",
                    AttributeValue::S(customer_id.to_string()),
                )
                .scan_index_forward(false)
                .limit(remaining as i32)
                .set_exclusive_start_key(start.take());
            if let Some(status) = status {
                query = query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(
                        ":status",
                        AttributeValue::S(status.as_str().to_string()),
                    );
            }
            let output = query
                .send()
                .await
                .map_err(|e| ServiceError::from_sdk("dynamodb:Query", e))?;
            for item in output.items.unwrap_or_default() {
                items.push(
                    serde_dynamo::from_item(item)
                        .map_err(|e| ViewStoreError::Corrupt(e.to_string()))?,
                );
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let next = start.map(|key| {
            let text = |name: &str| {
                key.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            PageKey {
                order_id: text(KEY),
                customer_id: text("customerId"),
                created_at: text("createdAt"),
            }
        });
        Ok((items, next))
    }
}
