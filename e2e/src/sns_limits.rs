//! SNS's size limits, which moto does not enforce on a batch as a whole: checked here on the
//! wire (for [`crate::fault_proxy::FaultProxy::refuse_when`]) so that a test fails where AWS
//! would refuse the call.

use orders::sns::{MAX_BATCH, MAX_PAYLOAD_BYTES};
use std::collections::BTreeMap;

/// SNS's answer to a PublishBatch call over its limits, as AWS sends it (HTTP 400, query
/// protocol XML); `None` when the request is not such a call or is within the limits.
pub fn publish_batch_refusal(body: &[u8]) -> Option<String> {
    let form: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if form.get("Action").map(String::as_str) != Some("PublishBatch") {
        return None;
    }
    // Bytes per entry: the message and each attribute's name, data type and value.
    let mut entries: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, value) in &form {
        let Some(rest) = name.strip_prefix("PublishBatchRequestEntries.member.") else {
            continue;
        };
        let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
        let counted = field == "Message"
            || (field.starts_with("MessageAttributes.entry.")
                && [".Name", ".Value.DataType", ".Value.StringValue"]
                    .iter()
                    .any(|suffix| field.ends_with(suffix)));
        let size = entries.entry(index).or_default();
        if counted {
            *size += value.len();
        }
    }
    let total: usize = entries.values().sum();
    let (code, message) = if entries.len() > MAX_BATCH {
        (
            "TooManyEntriesInBatchRequest",
            format!("{} entries; at most {MAX_BATCH}", entries.len()),
        )
    } else if total > MAX_PAYLOAD_BYTES {
        (
            "BatchRequestTooLong",
            format!("the messages add up to {total} bytes; at most {MAX_PAYLOAD_BYTES}"),
        )
    } else {
        return None;
    };
    Some(refusal(code, &message))
}

/// An SNS error response (query protocol XML) for a request refused as the sender's fault.
pub fn refusal(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
         <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>limits-proxy</RequestId></ErrorResponse>"
    )
}
