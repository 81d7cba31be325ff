//! An emulation of Lambda's SQS event source mapping for standard queues, as AWS documents it
//! ("Configuring scaling behavior for SQS event source mappings"):
//! * pollers long-poll the queue: five to start with, one more (up to 5 a second, AWS's 300 a
//!   minute) while batches come back full, back to five when the queue runs dry;
//! * each poller gathers a batch — up to `BatchSize`, for at most
//!   `MaximumBatchingWindowInSeconds`, and never over Lambda's 6 MB synchronous payload — and
//!   invokes the function with it; batches run concurrently, never more at once than
//!   `ScalingConfig.MaximumConcurrency` (and the function's own concurrency): a poller receives
//!   nothing while that many batches are in flight;
//! * with `ReportBatchItemFailures` only the records the function names in
//!   `batchItemFailures` stay on the queue; a function error (or an unusable batch response)
//!   keeps the whole batch. Records left on the queue come back after its visibility timeout,
//!   and the queue's redrive policy (here: moto's) moves a message to the dead-letter queue
//!   after `maxReceiveCount` receives.

mod poller;

pub use poller::Polled;

use crate::runtime_api::Function;
use aws_sdk_sqs::types::Message;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Pollers a mapping starts with (Lambda: "five batches at a time").
pub const INITIAL_POLLERS: usize = 5;

/// One mapping, resolved to the local queue.
#[derive(Clone)]
pub struct SqsSource {
    /// The mapping's name in the template (for messages).
    pub name: String,
    pub function: Function,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub batch_size: i32,
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
    /// The most batches invoked at once: `ScalingConfig.MaximumConcurrency`, at most the
    /// function's concurrency (its reserved concurrency locally).
    pub max_concurrency: usize,
}

/// What Lambda makes of a function's answer to a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// Delete every record.
    AllSucceeded,
    /// Keep these message ids, delete the rest.
    Partial(HashSet<String>),
    /// Keep everything (function error, or a response Lambda cannot use).
    AllFailed(String),
}

/// Reads a batch response. With ReportBatchItemFailures, an empty or null response means
/// success; an `itemIdentifier` that is empty or not in the batch fails the whole batch.
pub fn batch_result(
    response: &[u8],
    report_failures: bool,
    batch_ids: &HashSet<String>,
) -> BatchResult {
    if !report_failures {
        return BatchResult::AllSucceeded;
    }
    let value: Value = match serde_json::from_slice(response) {
        Ok(v) => v,
        Err(_) if response.is_empty() => return BatchResult::AllSucceeded,
        Err(e) => return BatchResult::AllFailed(format!("the batch response is not JSON: {e}")),
    };
    let failures = match &value {
        Value::Null => return BatchResult::AllSucceeded,
        Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchResult::AllSucceeded,
            Some(Value::Array(items)) => items,
            Some(other) => return BatchResult::AllFailed(format!("batchItemFailures is {other}")),
        },
        _ => return BatchResult::AllSucceeded,
    };
    let mut keep = HashSet::new();
    for failure in failures {
        match failure["itemIdentifier"].as_str() {
            Some(id) if batch_ids.contains(id) => {
                keep.insert(id.to_string());
            }
            other => {
                return BatchResult::AllFailed(format!(
                    "batchItemFailures names {other:?}, which is not a message of the batch"
                ))
            }
        }
    }
    if keep.is_empty() {
        BatchResult::AllSucceeded
    } else {
        BatchResult::Partial(keep)
    }
}

/// One received message as a record of Lambda's SQS event.
pub fn to_record(message: &Message, queue_arn: &str, region: &str) -> Value {
    let mut attributes = Map::new();
    for (name, value) in message.attributes.iter().flatten() {
        attributes.insert(name.as_str().to_string(), Value::String(value.clone()));
    }
    let b64 = |blob: &aws_sdk_sqs::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
    };
    let mut message_attributes = Map::new();
    for (name, value) in message.message_attributes.iter().flatten() {
        let mut attribute = json!({
            "stringListValues": value.string_list_values.clone().unwrap_or_default(),
            "binaryListValues": value
                .binary_list_values
                .iter()
                .flatten()
                .map(b64)
                .collect::<Vec<_>>(),
            "dataType": value.data_type.clone(),
        });
        if let Some(s) = &value.string_value {
            attribute["stringValue"] = Value::String(s.clone());
        }
        if let Some(b) = &value.binary_value {
            attribute["binaryValue"] = Value::String(b64(b));
        }
        message_attributes.insert(name.clone(), attribute);
    }
    let mut record = json!({
        "messageId": message.message_id.clone().unwrap_or_default(),
        "receiptHandle": message.receipt_handle.clone().unwrap_or_default(),
        "body": message.body.clone().unwrap_or_default(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body.clone().unwrap_or_default(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    });
    if let Some(md5) = &message.md5_of_message_attributes {
        record["md5OfMessageAttributes"] = Value::String(md5.clone());
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageSystemAttributeName;

    fn ids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn batch_responses_are_read_like_lambda() {
        let batch = ids(&["a", "b", "c"]);
        assert_eq!(
            batch_result(br#"{"batchItemFailures":[]}"#, true, &batch),
            BatchResult::AllSucceeded
        );
        assert_eq!(
            batch_result(b"null", true, &batch),
            BatchResult::AllSucceeded
        );
        assert_eq!(batch_result(b"{}", true, &batch), BatchResult::AllSucceeded);
        assert_eq!(
            batch_result(
                br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#,
                true,
                &batch
            ),
            BatchResult::Partial(ids(&["b"]))
        );
        assert!(matches!(
            batch_result(
                br#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
                true,
                &batch
            ),
            BatchResult::AllFailed(_)
        ));
        assert!(matches!(
            batch_result(
                br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
                true,
                &batch
            ),
            BatchResult::AllFailed(_)
        ));
        // Without ReportBatchItemFailures a successful invocation deletes everything.
        assert_eq!(
            batch_result(
                br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#,
                false,
                &batch
            ),
            BatchResult::AllSucceeded
        );
    }

    #[test]
    fn records_have_the_lambda_shape() {
        use aws_sdk_sqs::types::MessageAttributeValue;
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body(r#"{"x":1}"#)
            .md5_of_body("md5")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1795342530250")
            .message_attributes(
                "eventType",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("OrderCreated")
                    .build()
                    .unwrap(),
            )
            .build();
        let record = to_record(
            &message,
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(
            record["messageAttributes"]["eventType"]["stringValue"],
            "OrderCreated"
        );
        assert_eq!(
            record["messageAttributes"]["eventType"]["dataType"],
            "String"
        );
        let event: aws_lambda_events::sqs::SqsEvent =
            serde_json::from_value(json!({ "Records": [record] })).unwrap();
        let typed = &event.records[0];
        assert_eq!(typed.message_id.as_deref(), Some("m-1"));
        assert_eq!(typed.receipt_handle.as_deref(), Some("rh-1"));
        assert_eq!(typed.body.as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(
            typed.message_attributes["eventType"]
                .string_value
                .as_deref(),
            Some("OrderCreated")
        );
    }
}
