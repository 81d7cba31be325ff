//! The baseline of the projection lag, measured in the same run: the same order events
//! published with the raw SDK to an SNS topic of the benchmark's own (on the same moto, so
//! that the updater does not also consume them), delivered (raw message delivery, as the
//! template subscribes its queue) to a queue of the benchmark's own, and received by raw
//! long-poll `ReceiveMessage` loops (as many as the mapping's pollers) — no function, no
//! database. What our path adds is the
//! ratio. Also here: the event source mapping's cost, counted from the runner's log.

use crate::error::{BenchError, Result};
use crate::events;
use crate::stats::Summary;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The raw path: topic -> the benchmark's queue -> a receive loop.
pub struct RawPath {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    topic_arn: String,
    queue_url: String,
}

/// The figures of one baseline load.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// Messages published per second (open loop).
    pub rate: f64,
    pub messages: usize,
    /// Publish answered -> received (ms).
    pub lag: Summary,
    /// The last publish answered -> every message received (ms).
    pub drain_ms: f64,
}

fn sdk<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::msg(format!("{what}: {e}"))
}

impl RawPath {
    /// Creates the benchmark's topic and queue and subscribes the queue to the topic.
    pub async fn create(aws: &aws_config::SdkConfig) -> Result<Self> {
        let sns = aws_sdk_sns::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let topic_arn = sns
            .create_topic()
            .name("orders-bench-raw-baseline")
            .send()
            .await
            .map_err(|e| BenchError::msg(aws_sdk_sns::error::DisplayErrorContext(e).to_string()))?
            .topic_arn
            .ok_or_else(|| BenchError::msg("CreateTopic without an ARN"))?;
        let topic_arn = topic_arn.as_str();
        let queue_url = sqs
            .create_queue()
            .queue_name("orders-bench-raw-baseline")
            .send()
            .await
            .map_err(|e| BenchError::msg(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?
            .queue_url
            .ok_or_else(|| BenchError::msg("CreateQueue without a URL"))?;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| BenchError::msg(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| BenchError::msg("the baseline queue has no ARN"))?;
        sns.subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .map_err(|e| BenchError::msg(aws_sdk_sns::error::DisplayErrorContext(e).to_string()))?;
        Ok(Self {
            sns,
            sqs,
            topic_arn: topic_arn.to_string(),
            queue_url,
        })
    }

    /// Publishes `rate` events a second for `duration` while one loop receives them.
    pub async fn measure(&self, rate: f64, duration: Duration, first: u64) -> Result<Baseline> {
        let published: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        // As many long-poll loops as the mapping starts pollers: one loop alone, waiting for
        // each round trip to moto, falls behind 20 messages a second on a busy machine.
        let mut receivers = tokio::task::JoinSet::new();
        for _ in 0..orders_local::sqs_source::INITIAL_POLLERS {
            receivers.spawn(receive_loop(
                self.sqs.clone(),
                self.queue_url.clone(),
                received.clone(),
            ));
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
        let started = Instant::now();
        let mut n = first;
        while started.elapsed() < duration {
            ticker.tick().await;
            let event = events::order_created(n)?;
            let body = serde_json::to_string(&event)?;
            let id = format!("baseline-{n}");
            let request = self
                .sns
                .publish()
                .topic_arn(&self.topic_arn)
                .message(body)
                .message_attributes("eventType", string_attribute("OrderCreated")?)
                .message_attributes("orderId", string_attribute(&id)?);
            let published = published.clone();
            tasks.spawn(async move {
                request.send().await.map_err(|e| {
                    BenchError::msg(aws_sdk_sns::error::DisplayErrorContext(e).to_string())
                })?;
                published
                    .lock()
                    .expect("published")
                    .insert(id, Instant::now());
                Ok::<_, BenchError>(())
            });
            n += 1;
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(sdk("publish task"))??;
        }
        let last_publish = published
            .lock()
            .expect("published")
            .values()
            .max()
            .copied()
            .unwrap_or_else(Instant::now);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = {
                let received = received.lock().expect("received");
                let published = published.lock().expect("published");
                published.keys().all(|id| received.contains_key(id))
            };
            if done {
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError::msg("baseline: messages never arrived"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        receivers.abort_all();
        let received = received.lock().expect("received");
        let published = published.lock().expect("published");
        let lags: Vec<Duration> = published
            .iter()
            .filter_map(|(id, at)| Some(received.get(id)?.saturating_duration_since(*at)))
            .collect();
        let last_received = published
            .keys()
            .filter_map(|id| received.get(id))
            .max()
            .copied()
            .unwrap_or(last_publish);
        Ok(Baseline {
            rate,
            messages: published.len(),
            lag: Summary::of_durations(&lags).unwrap_or_else(Summary::empty),
            drain_ms: last_received
                .saturating_duration_since(last_publish)
                .as_secs_f64()
                * 1000.0,
        })
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(sdk("message attribute"))
}

/// Long-polls, notes when each message arrived (by its `orderId` attribute), deletes it.
async fn receive_loop(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    received: Arc<Mutex<HashMap<String, Instant>>>,
) {
    loop {
        let output = match sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(20)
            .message_attribute_names("All")
            .send()
            .await
        {
            Ok(output) => output,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let at = Instant::now();
        let messages = output.messages.unwrap_or_default();
        let mut entries = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let id = message
                .message_attributes
                .as_ref()
                .and_then(|a| a.get("orderId"))
                .and_then(|v| v.string_value.clone());
            if let Some(id) = id {
                received.lock().expect("received").entry(id).or_insert(at);
            }
            if let Some(handle) = &message.receipt_handle {
                if let Ok(entry) = DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                {
                    entries.push(entry);
                }
            }
        }
        if !entries.is_empty() {
            // Deleted beside the next receive (the lag is taken at the receive).
            let request = sqs
                .delete_message_batch()
                .queue_url(&queue_url)
                .set_entries(Some(entries));
            tokio::spawn(async move {
                let _ = request.send().await;
            });
        }
    }
}

/// What the event source mapping did, read from the runner's log: the batch lines
/// (`... -> updater: N record(s) done (R receives)`); and what the functions logged meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MappingCost {
    pub invocations: usize,
    pub records: usize,
    pub receives: usize,
    /// Bytes the functions logged (their lines without the runner's `[name] ` prefix), as
    /// CloudWatch Logs would bill them: each line plus 26 bytes of event metadata.
    pub log_bytes: usize,
}

/// The functions whose output the runner prefixes with `[name] `.
const LOGGING_FUNCTIONS: [&str; 4] = ["command", "query", "updater", "relay"];
/// What CloudWatch Logs bills per log event besides its message.
const LOG_EVENT_OVERHEAD: usize = 26;

/// The log's length now (where a phase starts).
pub fn log_mark(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// The mapping's batches logged after `mark`.
pub fn mapping_cost(log: &Path, mark: u64) -> MappingCost {
    let text = std::fs::read(log).unwrap_or_default();
    let tail = String::from_utf8_lossy(text.get(mark as usize..).unwrap_or_default());
    count_batches(&tail)
}

fn count_batches(text: &str) -> MappingCost {
    let mut cost = MappingCost::default();
    for line in text.lines() {
        if let Some(message) = LOGGING_FUNCTIONS.iter().find_map(|name| {
            line.strip_prefix('[')
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix("] "))
        }) {
            cost.log_bytes += message.len() + LOG_EVENT_OVERHEAD;
            continue;
        }
        let Some(rest) = line.split("-> updater: ").nth(1) else {
            continue;
        };
        let number_before = |marker: &str| -> Option<usize> {
            let head = &rest[..rest.rfind(marker)?];
            head.rsplit(|c: char| !c.is_ascii_digit())
                .find(|w| !w.is_empty())?
                .parse()
                .ok()
        };
        let Some(receives) = number_before(" receives)") else {
            continue;
        };
        cost.invocations += 1;
        cost.receives += receives;
        let done = number_before(" record(s) done").unwrap_or(0);
        let failed = number_before(" reported failed").unwrap_or(0);
        let whole = number_before(" failed, nothing deleted").unwrap_or(0);
        cost.records += done + failed + whole;
    }
    cost
}

/// Where the updater's mapping sets its batching window in the template text.
fn window_line(template: &str) -> Option<(usize, usize)> {
    let mapping = template.find("UpdaterEventSourceMapping:")?;
    let key = "MaximumBatchingWindowInSeconds:";
    let start = mapping + template[mapping..].find(key)? + key.len();
    let end = start + template[start..].find('\n')?;
    Some((start, end))
}

/// The updater mapping's `MaximumBatchingWindowInSeconds` in the template text.
pub fn window_of(template: &str) -> Option<u64> {
    let (start, end) = window_line(template)?;
    template[start..end].trim().parse().ok()
}

/// The template text with the updater mapping's batching window set to `seconds`.
pub fn with_window(template: &str, seconds: u64) -> Option<String> {
    let (start, end) = window_line(template)?;
    Some(format!(
        "{} {seconds}{}",
        &template[..start],
        &template[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_read_and_replaced_in_the_updater_mapping() {
        let text = "A:\n  MaximumBatchingWindowInSeconds: 7\nUpdaterEventSourceMapping:\n  \
                    BatchSize: 10\n  MaximumBatchingWindowInSeconds: 0\n  X: 1\n";
        assert_eq!(window_of(text), Some(0));
        let changed = with_window(text, 1).unwrap();
        assert_eq!(window_of(&changed), Some(1));
        assert!(changed.starts_with("A:\n  MaximumBatchingWindowInSeconds: 7\n"));
        assert!(changed.ends_with("  X: 1\n"));
    }

    #[test]
    fn batch_lines_are_counted() {
        let log = "\
sqs: q -> updater: 3 record(s) done (2 receives)
sqs: q -> updater: 1 record(s) done, 1 reported failed (retried after the visibility timeout; the dead-letter queue takes it after maxReceiveCount receives) (1 receives)
other line
[updater] {\"level\":\"INFO\"}
[command] 12345
[commander] not a function of ours
sqs: q -> updater: batch of 4 failed, nothing deleted: boom (5 receives)
";
        assert_eq!(
            count_batches(log),
            MappingCost {
                invocations: 3,
                records: 9,
                receives: 8,
                log_bytes: 16 + 26 + 5 + 26,
            }
        );
    }
}
