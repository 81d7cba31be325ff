//! Updater throughput: records per second for full batches (10 records, the template's
//! `BatchSize`) through the updater function (a warm process behind the Runtime API, wired
//! as the runner wires it), against the raw calls it makes for the same records, made the same
//! way: per record a conditional `PutItem` of the view and then one `PutObject` per receipt
//! document, `PROJECTION_CONCURRENCY` (8) records at a time, one batch after another. The
//! baseline's items and documents are built before its timer starts.

use crate::error::{BenchError, Result};
use crate::events;
use crate::functions::Case;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, TryStreamExt};
use orders::domain::view::{project_event, Projection};
use orders::OrderEvent;
use orders_local::runtime_api::Function;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Records per batch (template.yaml: `BatchSize: 10`).
pub const BATCH: usize = 10;
/// Records projected at once (template.yaml: `PROJECTION_CONCURRENCY: "8"`).
pub const CONCURRENCY: usize = 8;

/// Records per second of the updater and of the raw writes.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub records: usize,
    pub updater: f64,
    pub raw: f64,
}

/// The raw read-side writes.
pub struct RawWrites {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub bucket: String,
}

struct Prepared {
    item: HashMap<String, AttributeValue>,
    version: i64,
    projection: Projection,
}

impl RawWrites {
    fn prepare(event: &OrderEvent) -> Result<Prepared> {
        let projection = project_event(event, time::OffsetDateTime::now_utc());
        let item = serde_dynamo::to_item(&projection.view)
            .map_err(|e| BenchError::msg(format!("view to item: {e}")))?;
        Ok(Prepared {
            item,
            version: projection.view.order.version,
            projection,
        })
    }

    async fn write(&self, p: &Prepared) -> Result<()> {
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(p.item.clone()))
            .condition_expression("attribute_not_exists(#key) OR #version <= :version")
            .expression_attribute_names("#key", "orderId")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", AttributeValue::N(p.version.to_string()))
            .send()
            .await
            .map_err(|e| {
                BenchError::msg(format!(
                    "PutItem: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                ))
            })?;
        for doc in &p.projection.documents {
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&doc.key)
                .content_type(doc.content_type)
                .body(aws_sdk_s3::primitives::ByteStream::from(doc.body.clone()))
                .send()
                .await
                .map_err(|e| {
                    BenchError::msg(format!(
                        "PutObject: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    ))
                })?;
        }
        Ok(())
    }

    async fn write_batch(&self, batch: &[Prepared]) -> Result<()> {
        stream::iter(batch.iter().map(Ok))
            .map_ok(|p| self.write(p))
            .try_buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}

/// Projects `batches` full batches each way, in alternating blocks.
pub async fn measure(
    updater: &Case,
    region: &str,
    raw: &RawWrites,
    queue_arn: &str,
    batches: usize,
    first_order: u64,
) -> Result<Throughput> {
    let mut n = first_order;
    let mut next_events = |count: usize| -> Result<Vec<OrderEvent>> {
        let events = (0..count)
            .map(|i| events::order_created(n + i as u64))
            .collect::<Result<Vec<_>>>()?;
        n += count as u64;
        Ok(events)
    };
    let function = Function::new(updater.spec(region));
    // Warm-up: the process starts and its connections open.
    for _ in 0..3 {
        let event = events::sqs_event(&next_events(BATCH)?, queue_arn, region)?;
        invoke(&function, bytes::Bytes::from(serde_json::to_vec(&event)?)).await?;
        let warm: Vec<Prepared> = next_events(BATCH)?
            .iter()
            .map(RawWrites::prepare)
            .collect::<Result<_>>()?;
        raw.write_batch(&warm).await?;
    }
    let blocks = 5usize;
    let per_block = batches.div_ceil(blocks);
    let (mut updater_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
    let mut records = 0;
    for _ in 0..blocks {
        // Serialized before the timer: Lambda hands the function bytes.
        let payloads = (0..per_block)
            .map(|_| {
                let event = events::sqs_event(&next_events(BATCH)?, queue_arn, region)?;
                Ok(bytes::Bytes::from(serde_json::to_vec(&event)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let started = Instant::now();
        for payload in &payloads {
            invoke(&function, payload.clone()).await?;
        }
        updater_time += started.elapsed();
        let prepared = (0..per_block)
            .map(|_| {
                next_events(BATCH)?
                    .iter()
                    .map(RawWrites::prepare)
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let started = Instant::now();
        for batch in &prepared {
            raw.write_batch(batch).await?;
        }
        raw_time += started.elapsed();
        records += per_block * BATCH;
    }
    function.stop(Duration::from_millis(500)).await;
    Ok(Throughput {
        records,
        updater: records as f64 / updater_time.as_secs_f64().max(1e-9),
        raw: records as f64 / raw_time.as_secs_f64().max(1e-9),
    })
}

async fn invoke(function: &Function, payload: bytes::Bytes) -> Result<()> {
    let invoked = function
        .invoke(payload)
        .await
        .map_err(|e| BenchError::msg(format!("updater: {e}")))?;
    let body: serde_json::Value = serde_json::from_slice(&invoked.body)?;
    match body["batchItemFailures"].as_array() {
        Some(f) if !f.is_empty() => Err(BenchError::msg(format!(
            "updater reported {} failed records",
            f.len()
        ))),
        _ => Ok(()),
    }
}
