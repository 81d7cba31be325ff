//! The pollers of one mapping: gathering a batch, invoking the function with it, deleting what
//! succeeded, and adding or retiring pollers with the backlog.

use super::{batch_result, to_record, BatchResult, SqsSource, INITIAL_POLLERS};
use crate::output;
use crate::runtime_api::SYNC_PAYLOAD_LIMIT;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// `{"Records":[]}`: the event around the records.
const EVENT_OVERHEAD: usize = 14;
/// Lambda adds up to 300 pollers a minute.
const ADD_EVERY: Duration = Duration::from_millis(200);
/// The long poll of an idle poller (SQS's longest).
const LONG_POLL_SECONDS: i32 = 20;

/// A received message with its record, as it goes into the event.
struct Received {
    message: Message,
    record: String,
}

/// What one poll did.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled {
    /// The long poll found nothing.
    Empty,
    /// A batch was invoked; `full` when it reached `BatchSize` or the payload limit.
    Batch { records: usize, full: bool },
}

/// What the pollers of one mapping share.
struct Shared {
    source: SqsSource,
    sqs: aws_sdk_sqs::Client,
    /// One permit per batch being gathered or invoked.
    in_flight: Semaphore,
    pollers: AtomicUsize,
    /// The fewest pollers (they stay when the queue is empty) and the most.
    floor: usize,
    cap: usize,
    last_added: Mutex<Instant>,
    add: mpsc::UnboundedSender<()>,
}

impl Shared {
    /// One more poller, if the cap and the scaling rate allow.
    fn add_poller(&self) {
        let mut last = self.last_added.lock().expect("last_added lock");
        if self.pollers.load(Ordering::SeqCst) < self.cap && last.elapsed() >= ADD_EVERY {
            self.pollers.fetch_add(1, Ordering::SeqCst);
            *last = Instant::now();
            let _ = self.add.send(());
        }
    }

    /// True when the calling poller should stop (more pollers than the floor).
    fn retire(&self) -> bool {
        self.pollers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > self.floor).then(|| n - 1)
            })
            .is_ok()
    }
}

impl SqsSource {
    /// Polls and invokes until the task is aborted (which stops every poller).
    pub async fn run(self, sqs: aws_sdk_sqs::Client) {
        let cap = self.max_concurrency.max(1);
        let floor = INITIAL_POLLERS.min(cap);
        let (add, mut wanted) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            source: self,
            sqs,
            in_flight: Semaphore::new(cap),
            pollers: AtomicUsize::new(floor),
            floor,
            cap,
            last_added: Mutex::new(Instant::now()),
            add,
        });
        let mut pollers = tokio::task::JoinSet::new();
        for _ in 0..floor {
            pollers.spawn(poller(shared.clone()));
        }
        while wanted.recv().await.is_some() {
            pollers.spawn(poller(shared.clone()));
            while pollers.try_join_next().is_some() {}
        }
    }

    /// Gathers one batch (starting with `carried`, the messages a previous batch had no room
    /// for) and invokes the function with it. `receives` counts the ReceiveMessage calls since
    /// the last batch (reported with it, then reset).
    pub async fn poll_once(
        &self,
        sqs: &aws_sdk_sqs::Client,
        carried: &mut Vec<Message>,
        receives: &mut u32,
    ) -> Result<Polled, String> {
        let limit = self.batch_size.max(1) as usize;
        let mut batch = Vec::new();
        let mut size = EVENT_OVERHEAD;
        let waiting = std::mem::take(carried);
        if waiting.is_empty() {
            *receives += 1;
            let first = self.receive(sqs, limit.min(10), LONG_POLL_SECONDS).await?;
            if first.is_empty() {
                return Ok(Polled::Empty);
            }
            self.admit(first, &mut batch, &mut size, carried);
        } else {
            self.admit(waiting, &mut batch, &mut size, carried);
        }
        // The batching window: keep gathering until the batch is full (records or payload) or
        // the window ends.
        let window_end = Instant::now() + self.batching_window;
        while batch.len() < limit && carried.is_empty() {
            let left = window_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = left.as_secs().min(20) as i32;
            *receives += 1;
            let more = self
                .receive(sqs, (limit - batch.len()).min(10), wait)
                .await?;
            if more.is_empty() && wait == 0 {
                tokio::time::sleep(left.min(Duration::from_millis(200))).await;
            }
            self.admit(more, &mut batch, &mut size, carried);
        }
        let full = batch.len() >= limit || !carried.is_empty();
        let records = batch.len();
        let calls = std::mem::take(receives);
        self.invoke(sqs, batch, size, calls).await?;
        Ok(Polled::Batch { records, full })
    }

    /// Adds messages to the batch while the event stays within Lambda's payload limit; the
    /// rest wait for the next batch.
    fn admit(
        &self,
        messages: Vec<Message>,
        batch: &mut Vec<Received>,
        size: &mut usize,
        carried: &mut Vec<Message>,
    ) {
        for message in messages {
            if !carried.is_empty() {
                carried.push(message);
                continue;
            }
            let record = to_record(&message, &self.queue_arn, &self.region).to_string();
            let added = record.len() + usize::from(!batch.is_empty());
            if !batch.is_empty() && *size + added > SYNC_PAYLOAD_LIMIT {
                carried.push(message);
            } else {
                *size += added;
                batch.push(Received { message, record });
            }
        }
    }

    async fn invoke(
        &self,
        sqs: &aws_sdk_sqs::Client,
        batch: Vec<Received>,
        size: usize,
        receives: u32,
    ) -> Result<(), String> {
        let mut event = String::with_capacity(size);
        event.push_str(r#"{"Records":["#);
        for (i, received) in batch.iter().enumerate() {
            if i > 0 {
                event.push(',');
            }
            event.push_str(&received.record);
        }
        event.push_str("]}");
        let ids: HashSet<String> = batch
            .iter()
            .filter_map(|r| r.message.message_id.clone())
            .collect();
        let result = match self.function.invoke(Bytes::from(event)).await {
            Ok(invoked) => batch_result(&invoked.body, self.report_batch_item_failures, &ids),
            Err(e) => BatchResult::AllFailed(e.to_string()),
        };
        let keep = match &result {
            BatchResult::AllSucceeded => HashSet::new(),
            BatchResult::Partial(keep) => keep.clone(),
            BatchResult::AllFailed(_) => ids.clone(),
        };
        let delete: Vec<&Message> = batch
            .iter()
            .map(|r| &r.message)
            .filter(|m| !m.message_id.as_ref().is_some_and(|id| keep.contains(id)))
            .collect();
        self.delete(sqs, &delete).await?;
        let summary = match &result {
            BatchResult::AllSucceeded => format!("{} record(s) done", batch.len()),
            BatchResult::Partial(keep) => format!(
                "{} record(s) done, {} reported failed (retried after the visibility timeout; \
                 the dead-letter queue takes it after maxReceiveCount receives)",
                batch.len() - keep.len(),
                keep.len()
            ),
            BatchResult::AllFailed(why) => {
                format!("batch of {} failed, nothing deleted: {why}", batch.len())
            }
        };
        output::prefixed(
            "sqs",
            &format!(
                "{} -> {}: {summary} ({receives} receives)",
                self.name,
                self.function.name()
            ),
            !matches!(result, BatchResult::AllSucceeded),
        );
        Ok(())
    }

    async fn receive(
        &self,
        sqs: &aws_sdk_sqs::Client,
        max: usize,
        wait_seconds: i32,
    ) -> Result<Vec<Message>, String> {
        let output = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ReceiveMessage failed: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn delete(&self, sqs: &aws_sdk_sqs::Client, messages: &[&Message]) -> Result<(), String> {
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone()?)
                        .build()
                        .ok()
                })
                .collect::<Vec<_>>();
            if entries.is_empty() {
                continue;
            }
            let output = sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "DeleteMessageBatch failed: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
            if !output.failed.is_empty() {
                return Err(format!(
                    "DeleteMessageBatch: {} not deleted",
                    output.failed.len()
                ));
            }
        }
        Ok(())
    }
}

/// One poller: a batch at a time, while a concurrency permit is free.
async fn poller(shared: Arc<Shared>) {
    let mut carried = Vec::new();
    let mut receives = 0u32;
    let mut failures_in_a_row = 0u32;
    loop {
        let polled = {
            let Ok(_permit) = shared.in_flight.acquire().await else {
                return;
            };
            shared
                .source
                .poll_once(&shared.sqs, &mut carried, &mut receives)
                .await
        };
        match polled {
            Ok(Polled::Empty) => {
                failures_in_a_row = 0;
                if carried.is_empty() && shared.retire() {
                    return;
                }
            }
            Ok(Polled::Batch { full, .. }) => {
                failures_in_a_row = 0;
                if full {
                    shared.add_poller();
                }
            }
            Err(e) => {
                failures_in_a_row += 1;
                if failures_in_a_row == 1 || failures_in_a_row % 30 == 0 {
                    output::prefixed("sqs", &format!("{}: {e}", shared.source.name), true);
                }
                let backoff = Duration::from_millis(500 * u64::from(failures_in_a_row.min(10)));
                tokio::time::sleep(backoff).await;
            }
        }
    }
}
