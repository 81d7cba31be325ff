//! Moving dead-lettered messages back to the queue once their cause is fixed.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};

/// Moves up to `max` messages from `dlq_url` to `queue_url`, bodies and attributes intact.
/// A message is deleted from the DLQ only after the queue accepted it.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    max: usize,
) -> Result<usize, String> {
    let mut moved = 0;
    while moved < max {
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10.min((max - moved) as i32))
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let entries: Vec<SendMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body.clone().unwrap_or_default())
                    .set_message_attributes(m.message_attributes.clone())
                    .build()
                    .ok()
            })
            .collect();
        let sent = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        let deletes: Vec<DeleteMessageBatchRequestEntry> = sent
            .successful
            .iter()
            .filter_map(|ok| {
                let i: usize = ok.id.parse().ok()?;
                DeleteMessageBatchRequestEntry::builder()
                    .id(ok.id.clone())
                    .receipt_handle(messages.get(i)?.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        let count = deletes.len();
        if count > 0 {
            sqs.delete_message_batch()
                .queue_url(dlq_url)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| DisplayErrorContext(e).to_string())?;
        }
        for failed in &sent.failed {
            eprintln!(
                "redrive: message {} not sent: {}",
                failed.id,
                failed.message.as_deref().unwrap_or("")
            );
        }
        moved += count;
        if count == 0 {
            break;
        }
    }
    Ok(moved)
}
