//! The limits themselves: which requests AWS refuses that moto accepts, and the error AWS
//! answers with. Pure functions of one request's headers and body, so each limit is unit-tested
//! just under and just over.

use super::item_size::item_bytes;
use base64::Engine;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// SNS: one message with its attributes, and a whole `PublishBatch` (the default
/// `MaximumMessageSize` of a topic; the template sets none).
pub const SNS_MAX_MESSAGE_BYTES: usize = 262_144;
/// SNS and SQS: entries in one batch call.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// SQS: one message with its attributes, and a whole `SendMessageBatch` (the default
/// `MaximumMessageSize` of a queue; the template sets none).
pub const SQS_MAX_MESSAGE_BYTES: usize = 262_144;
/// DynamoDB: one item, names and values together.
pub const DYNAMODB_MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB: actions in one `TransactWriteItems` (and `TransactGetItems`).
pub const DYNAMODB_MAX_TRANSACT_ITEMS: usize = 100;
/// DynamoDB: aggregate size of the items in one `TransactWriteItems`.
pub const DYNAMODB_MAX_TRANSACT_BYTES: usize = 4 * 1024 * 1024;
/// DynamoDB: put and delete requests in one `BatchWriteItem`.
pub const DYNAMODB_MAX_BATCH_WRITE: usize = 25;
/// DynamoDB: aggregate size of one `BatchWriteItem`.
pub const DYNAMODB_MAX_BATCH_WRITE_BYTES: usize = 16 * 1024 * 1024;
/// DynamoDB: keys in one `BatchGetItem`.
pub const DYNAMODB_MAX_BATCH_GET: usize = 100;

/// The service whose error format a refusal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// AWS query protocol: an XML `ErrorResponse`.
    Sns,
    /// AWS JSON 1.0 with the query-compatible `x-amzn-query-error` header.
    Sqs,
    /// AWS JSON 1.0.
    DynamoDb,
}

/// A request AWS would refuse: HTTP 400 with this error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub service: Service,
    /// The error code as the SDKs match it (`BatchRequestTooLong`, `ValidationException`, ...).
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(service: Service, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            service,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status, headers and body AWS answers with.
    pub fn response(&self) -> (u16, Vec<(&'static str, String)>, String) {
        let request_id = uuid::Uuid::new_v4().to_string();
        match self.service {
            Service::Sns => (
                400,
                vec![
                    ("content-type", "text/xml".into()),
                    ("x-amzn-requestid", request_id.clone()),
                ],
                format!(
                    "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
                     <Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error>\
                     <RequestId>{request_id}</RequestId></ErrorResponse>",
                    self.code,
                    xml_escape(&self.message)
                ),
            ),
            Service::Sqs => {
                let query_code = match self.code {
                    "BatchRequestTooLong" | "TooManyEntriesInBatchRequest" => {
                        format!("AWS.SimpleQueueService.{}", self.code)
                    }
                    other => other.to_string(),
                };
                (
                    400,
                    vec![
                        ("content-type", "application/x-amz-json-1.0".into()),
                        ("x-amzn-requestid", request_id),
                        ("x-amzn-query-error", format!("{query_code};Sender")),
                    ],
                    serde_json::json!({
                        "__type": format!("com.amazonaws.sqs#{}", self.code),
                        "message": self.message,
                    })
                    .to_string(),
                )
            }
            Service::DynamoDb => (
                400,
                vec![
                    ("content-type", "application/x-amz-json-1.0".into()),
                    ("x-amzn-requestid", request_id),
                ],
                serde_json::json!({
                    "__type": format!("com.amazon.coral.validate#{}", self.code),
                    "message": self.message,
                })
                .to_string(),
            ),
        }
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What AWS would refuse about this request, if anything. `target` is the `X-Amz-Target`
/// header of JSON-protocol calls; query-protocol calls (SNS) name their action in the body.
/// Requests this cannot read are passed on for moto to answer.
pub fn check(target: Option<&str>, body: &[u8]) -> Option<Refusal> {
    if let Some(target) = target {
        let json = || serde_json::from_slice::<Value>(body).ok();
        if let Some(operation) = target.strip_prefix("DynamoDB_20120810.") {
            return check_dynamodb(operation, &json()?);
        }
        if let Some(operation) = target.strip_prefix("AmazonSQS.") {
            return check_sqs(operation, &json()?);
        }
        return None;
    }
    let form = parse_form(body)?;
    check_sns(&form)
}

fn parse_form(body: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.starts_with("Action=") && !text.contains("&Action=") {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Some(
        text.split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect(),
    )
}

fn check_sns(form: &HashMap<String, String>) -> Option<Refusal> {
    let too_long = |what: &str, size: usize| {
        Refusal::new(
            Service::Sns,
            "InvalidParameter",
            format!(
                "Invalid parameter: {what} too long ({size} bytes; the limit is \
                 {SNS_MAX_MESSAGE_BYTES} bytes with attributes)"
            ),
        )
    };
    match form.get("Action").map(String::as_str) {
        Some("Publish") => {
            let size = sns_message_bytes(form, "");
            (size > SNS_MAX_MESSAGE_BYTES).then(|| too_long("Message", size))
        }
        Some("PublishBatch") => {
            let entries: BTreeSet<&str> = form
                .keys()
                .filter_map(|k| k.strip_prefix("PublishBatchRequestEntries.member."))
                .filter_map(|rest| rest.split('.').next())
                .collect();
            if entries.len() > MAX_BATCH_ENTRIES {
                return Some(Refusal::new(
                    Service::Sns,
                    "TooManyEntriesInBatchRequest",
                    format!(
                        "The batch request contains more entries than permissible ({} > {MAX_BATCH_ENTRIES}).",
                        entries.len()
                    ),
                ));
            }
            let total: usize = entries
                .iter()
                .map(|n| {
                    sns_message_bytes(form, &format!("PublishBatchRequestEntries.member.{n}."))
                })
                .sum();
            (total > SNS_MAX_MESSAGE_BYTES).then(|| {
                Refusal::new(
                    Service::Sns,
                    "BatchRequestTooLong",
                    format!(
                        "The length of all the batch messages put together is more than the \
                         limit ({total} > {SNS_MAX_MESSAGE_BYTES} bytes)."
                    ),
                )
            })
        }
        _ => None,
    }
}

/// The message and its attributes (names, data types and values) under `prefix`.
fn sns_message_bytes(form: &HashMap<String, String>, prefix: &str) -> usize {
    let message = form.get(&format!("{prefix}Message")).map_or(0, String::len);
    let attributes_prefix = format!("{prefix}MessageAttributes.entry.");
    let attributes: usize = form
        .iter()
        .filter_map(|(key, value)| {
            let rest = key.strip_prefix(&attributes_prefix)?;
            let (_, field) = rest.split_once('.')?;
            match field {
                "Name" | "Value.DataType" | "Value.StringValue" => Some(value.len()),
                "Value.BinaryValue" => Some(decoded_len(value)),
                _ => None,
            }
        })
        .sum();
    message + attributes
}

fn decoded_len(encoded: &str) -> usize {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(|b| b.len())
        .unwrap_or(encoded.len())
}

fn check_sqs(operation: &str, body: &Value) -> Option<Refusal> {
    match operation {
        "SendMessage" => {
            let size = sqs_message_bytes(body);
            (size > SQS_MAX_MESSAGE_BYTES).then(|| {
                Refusal::new(
                    Service::Sqs,
                    "InvalidParameterValue",
                    format!(
                        "One or more parameters are invalid. Reason: Message must be shorter \
                         than {SQS_MAX_MESSAGE_BYTES} bytes."
                    ),
                )
            })
        }
        "SendMessageBatch" => {
            let entries = body["Entries"].as_array()?;
            if entries.len() > MAX_BATCH_ENTRIES {
                return Some(Refusal::new(
                    Service::Sqs,
                    "TooManyEntriesInBatchRequest",
                    format!("Maximum number of entries per request are {MAX_BATCH_ENTRIES}. You have sent {}.", entries.len()),
                ));
            }
            let total: usize = entries.iter().map(sqs_message_bytes).sum();
            (total > SQS_MAX_MESSAGE_BYTES).then(|| {
                Refusal::new(
                    Service::Sqs,
                    "BatchRequestTooLong",
                    format!(
                        "Batch requests cannot be longer than {SQS_MAX_MESSAGE_BYTES} bytes. \
                         You have sent {total} bytes."
                    ),
                )
            })
        }
        _ => None,
    }
}

fn sqs_message_bytes(message: &Value) -> usize {
    let body = message["MessageBody"].as_str().map_or(0, str::len);
    let attributes: usize = message["MessageAttributes"]
        .as_object()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    name.len()
                        + value["DataType"].as_str().map_or(0, str::len)
                        + value["StringValue"].as_str().map_or(0, str::len)
                        + value["BinaryValue"].as_str().map_or(0, decoded_len)
                })
                .sum()
        })
        .unwrap_or(0);
    body + attributes
}

fn validation(message: impl Into<String>) -> Refusal {
    Refusal::new(Service::DynamoDb, "ValidationException", message)
}

fn item_too_large(size: usize) -> Refusal {
    validation(format!(
        "Item size has exceeded the maximum allowed size ({size} > {DYNAMODB_MAX_ITEM_BYTES} bytes)"
    ))
}

fn check_dynamodb(operation: &str, body: &Value) -> Option<Refusal> {
    let size_of = |item: &Value| item.as_object().map_or(0, item_bytes);
    match operation {
        "PutItem" => {
            let size = size_of(&body["Item"]);
            (size > DYNAMODB_MAX_ITEM_BYTES).then(|| item_too_large(size))
        }
        "BatchWriteItem" => {
            let requests: Vec<&Value> = body["RequestItems"]
                .as_object()?
                .values()
                .filter_map(Value::as_array)
                .flatten()
                .collect();
            if requests.len() > DYNAMODB_MAX_BATCH_WRITE {
                return Some(validation(format!(
                    "Too many items requested for the BatchWriteItem call ({} > {DYNAMODB_MAX_BATCH_WRITE})",
                    requests.len()
                )));
            }
            let sizes: Vec<usize> = requests
                .iter()
                .map(|r| size_of(&r["PutRequest"]["Item"]))
                .collect();
            if let Some(&size) = sizes.iter().find(|&&s| s > DYNAMODB_MAX_ITEM_BYTES) {
                return Some(item_too_large(size));
            }
            let total: usize = sizes.iter().sum();
            (total > DYNAMODB_MAX_BATCH_WRITE_BYTES).then(|| {
                validation(format!(
                    "Item collection in BatchWriteItem exceeds {DYNAMODB_MAX_BATCH_WRITE_BYTES} bytes ({total})"
                ))
            })
        }
        "BatchGetItem" => {
            let keys: usize = body["RequestItems"]
                .as_object()?
                .values()
                .filter_map(|t| t["Keys"].as_array())
                .map(Vec::len)
                .sum();
            (keys > DYNAMODB_MAX_BATCH_GET).then(|| {
                validation(format!(
                    "Too many items requested for the BatchGetItem call ({keys} > {DYNAMODB_MAX_BATCH_GET})"
                ))
            })
        }
        "TransactWriteItems" | "TransactGetItems" => {
            let actions = body["TransactItems"].as_array()?;
            if actions.len() > DYNAMODB_MAX_TRANSACT_ITEMS {
                return Some(validation(format!(
                    "1 validation error detected: Value at 'transactItems' failed to satisfy \
                     constraint: Member must have length less than or equal to \
                     {DYNAMODB_MAX_TRANSACT_ITEMS} (got {})",
                    actions.len()
                )));
            }
            let sizes: Vec<usize> = actions.iter().map(|a| size_of(&a["Put"]["Item"])).collect();
            if let Some(&size) = sizes.iter().find(|&&s| s > DYNAMODB_MAX_ITEM_BYTES) {
                return Some(item_too_large(size));
            }
            let total: usize = sizes.iter().sum();
            (total > DYNAMODB_MAX_TRANSACT_BYTES).then(|| {
                validation(format!(
                    "Transaction request cannot be larger than 4 MB ({total} > {DYNAMODB_MAX_TRANSACT_BYTES} bytes)"
                ))
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(pairs: &[(String, String)]) -> Vec<u8> {
        let encode = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    }

    fn pair(k: &str, v: impl Into<String>) -> (String, String) {
        (k.to_string(), v.into())
    }

    /// A `Publish` whose message and one string attribute total `size` bytes.
    fn publish(size: usize) -> Vec<u8> {
        // Attribute: "type" (4) + "String" (6) + "x" (1) = 11 bytes.
        form(&[
            pair("Action", "Publish"),
            pair("TopicArn", "arn:aws:sns:us-east-1:123456789012:t"),
            pair(
                "Message",
                "é".repeat((size - 11) / 2) + &"m".repeat((size - 11) % 2),
            ),
            pair("MessageAttributes.entry.1.Name", "type"),
            pair("MessageAttributes.entry.1.Value.DataType", "String"),
            pair("MessageAttributes.entry.1.Value.StringValue", "x"),
        ])
    }

    fn publish_batch(sizes: &[usize]) -> Vec<u8> {
        let mut pairs = vec![pair("Action", "PublishBatch")];
        for (i, size) in sizes.iter().enumerate() {
            let n = i + 1;
            pairs.push(pair(
                &format!("PublishBatchRequestEntries.member.{n}.Id"),
                n.to_string(),
            ));
            pairs.push(pair(
                &format!("PublishBatchRequestEntries.member.{n}.Message"),
                "m".repeat(*size),
            ));
        }
        form(&pairs)
    }

    fn code(refusal: Option<Refusal>) -> Option<&'static str> {
        refusal.map(|r| r.code)
    }

    #[test]
    fn sns_publish_counts_the_message_and_its_attributes() {
        assert_eq!(code(check(None, &publish(SNS_MAX_MESSAGE_BYTES))), None);
        let refused = check(None, &publish(SNS_MAX_MESSAGE_BYTES + 1)).expect("refused");
        assert_eq!(refused.code, "InvalidParameter");
        assert_eq!(refused.service, Service::Sns);
    }

    #[test]
    fn sns_publish_batch_is_limited_in_total_and_in_entries() {
        let half = SNS_MAX_MESSAGE_BYTES / 2;
        assert_eq!(code(check(None, &publish_batch(&[half, half]))), None);
        assert_eq!(
            code(check(None, &publish_batch(&[half, half + 1]))),
            Some("BatchRequestTooLong")
        );
        assert_eq!(code(check(None, &publish_batch(&[10; 10]))), None);
        assert_eq!(
            code(check(None, &publish_batch(&[10; 11]))),
            Some("TooManyEntriesInBatchRequest")
        );
    }

    #[test]
    fn sqs_messages_and_batches_are_limited() {
        let message = |size: usize| {
            json!({"QueueUrl": "q", "MessageBody": "b".repeat(size - 8),
                   "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}})
        };
        let send = |body: Value| check(Some("AmazonSQS.SendMessage"), body.to_string().as_bytes());
        assert_eq!(code(send(message(SQS_MAX_MESSAGE_BYTES))), None);
        assert_eq!(
            code(send(message(SQS_MAX_MESSAGE_BYTES + 1))),
            Some("InvalidParameterValue")
        );
        let batch = |sizes: &[usize]| {
            let entries: Vec<Value> = sizes
                .iter()
                .enumerate()
                .map(|(i, s)| json!({"Id": i.to_string(), "MessageBody": "b".repeat(*s)}))
                .collect();
            check(
                Some("AmazonSQS.SendMessageBatch"),
                json!({"QueueUrl": "q", "Entries": entries})
                    .to_string()
                    .as_bytes(),
            )
        };
        let half = SQS_MAX_MESSAGE_BYTES / 2;
        assert_eq!(code(batch(&[half, half])), None);
        assert_eq!(code(batch(&[half, half + 1])), Some("BatchRequestTooLong"));
        assert_eq!(code(batch(&[1; 11])), Some("TooManyEntriesInBatchRequest"));
    }

    #[test]
    fn sqs_refusals_carry_the_query_compatible_code() {
        let refusal = Refusal::new(Service::Sqs, "BatchRequestTooLong", "too long");
        let (status, headers, body) = refusal.response();
        assert_eq!(status, 400);
        assert!(headers.contains(&(
            "x-amzn-query-error",
            "AWS.SimpleQueueService.BatchRequestTooLong;Sender".to_string()
        )));
        assert!(body.contains("com.amazonaws.sqs#BatchRequestTooLong"));
    }

    /// An item of exactly `size` bytes: key "id" (2 + 1) and "data" (4 + the string).
    fn item(size: usize) -> Value {
        json!({"id": {"S": "k"}, "data": {"S": "d".repeat(size - 7)}})
    }

    fn dynamodb(operation: &str, body: Value) -> Option<&'static str> {
        code(check(
            Some(&format!("DynamoDB_20120810.{operation}")),
            body.to_string().as_bytes(),
        ))
    }

    #[test]
    fn dynamodb_items_are_limited_to_400_kb() {
        let put = |size| json!({"TableName": "t", "Item": item(size)});
        assert_eq!(dynamodb("PutItem", put(DYNAMODB_MAX_ITEM_BYTES)), None);
        assert_eq!(
            dynamodb("PutItem", put(DYNAMODB_MAX_ITEM_BYTES + 1)),
            Some("ValidationException")
        );
    }

    #[test]
    fn dynamodb_transactions_are_limited_in_actions_and_bytes() {
        let transact = |sizes: Vec<usize>| {
            let actions: Vec<Value> = sizes
                .into_iter()
                .map(|s| json!({"Put": {"TableName": "t", "Item": item(s)}}))
                .collect();
            dynamodb("TransactWriteItems", json!({"TransactItems": actions}))
        };
        assert_eq!(transact(vec![10; 100]), None);
        assert_eq!(transact(vec![10; 101]), Some("ValidationException"));
        // 400 KB items: ten fit in 4 MB (4,096,000 <= 4,194,304), eleven do not.
        assert_eq!(transact(vec![DYNAMODB_MAX_ITEM_BYTES; 10]), None);
        assert_eq!(
            transact(vec![DYNAMODB_MAX_ITEM_BYTES; 11]),
            Some("ValidationException")
        );
    }

    #[test]
    fn dynamodb_batch_writes_take_at_most_25_requests() {
        let batch = |n: usize| {
            let requests: Vec<Value> = (0..n)
                .map(|_| json!({"PutRequest": {"Item": item(10)}}))
                .collect();
            dynamodb("BatchWriteItem", json!({"RequestItems": {"t": requests}}))
        };
        assert_eq!(batch(25), None);
        assert_eq!(batch(26), Some("ValidationException"));
    }

    #[test]
    fn dynamodb_batch_gets_take_at_most_100_keys() {
        let batch = |n: usize| {
            let keys: Vec<Value> = (0..n)
                .map(|i| json!({"id": {"S": i.to_string()}}))
                .collect();
            dynamodb(
                "BatchGetItem",
                json!({"RequestItems": {"t": {"Keys": keys}}}),
            )
        };
        assert_eq!(batch(100), None);
        assert_eq!(batch(101), Some("ValidationException"));
    }

    #[test]
    fn what_cannot_be_read_is_passed_on() {
        assert_eq!(code(check(None, b"not a form")), None);
        assert_eq!(code(check(Some("DynamoDB_20120810.PutItem"), b"{")), None);
        assert_eq!(code(check(Some("AmazonS3.Whatever"), b"{}")), None);
    }
}
