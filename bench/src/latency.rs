//! Warm latency through the local runner (HTTP -> API Gateway emulation -> Runtime API ->
//! function), against the raw calls the handler makes, on the same PostgreSQL and moto with
//! the same connection style as the runner's functions (plain TCP and plain HTTP):
//!
//! * `GET /orders/{id}` against a raw, strongly consistent DynamoDB `GetItem` of that order;
//! * `POST /orders` against a raw tokio-postgres transaction with the same statements (order,
//!   lines, outbox), a raw SNS `Publish` with the same attributes, and the same
//!   "mark published" `UPDATE`.
//!
//! A third row invokes the same function directly through the Runtime API emulator (wired as
//! the runner wires it), without HTTP and the API Gateway emulation, to show where the time
//! goes. Requests are sequential (one client, keep-alive), in blocks taking turns, after a
//! warm-up of each.

use crate::error::{BenchError, Result};
use crate::events;
use crate::functions::Case;
use crate::http::Api;
use crate::stats::Summary;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sns::types::MessageAttributeValue;
use orders::OrderEvent;
use orders_local::runtime_api::Function;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latencies (ms) and throughput (operations per second, sequential) of one workload.
#[derive(Debug, Clone)]
pub struct Measured {
    pub latency: Summary,
    pub per_second: f64,
}

/// A subject and its baseline, and the function invoked directly through the Runtime API
/// (no HTTP, no API Gateway emulation): where the subject's time goes.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub subject: Measured,
    pub direct: Measured,
    pub baseline: Measured,
}

type Op<'a> = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<()>> + 'a>> + 'a>;

/// Runs each op `count` times, in `blocks` blocks taking turns, after `warmup` of each.
async fn alternate(
    count: usize,
    blocks: usize,
    warmup: usize,
    mut ops: Vec<Op<'_>>,
) -> Result<Vec<Measured>> {
    for _ in 0..warmup {
        for op in ops.iter_mut() {
            op().await?;
        }
    }
    let blocks = blocks.max(1);
    let per_block = count.div_ceil(blocks);
    let mut latencies: Vec<Vec<Duration>> = ops.iter().map(|_| Vec::new()).collect();
    let mut totals = vec![Duration::ZERO; ops.len()];
    for _ in 0..blocks {
        for (i, op) in ops.iter_mut().enumerate() {
            let started = Instant::now();
            for _ in 0..per_block {
                let t = Instant::now();
                op().await?;
                latencies[i].push(t.elapsed());
            }
            totals[i] += started.elapsed();
        }
    }
    Ok(latencies
        .iter()
        .zip(totals)
        .map(|(lat, time)| Measured {
            latency: Summary::of_durations(lat).unwrap_or_else(Summary::empty),
            per_second: lat.len() as f64 / time.as_secs_f64().max(1e-9),
        })
        .collect())
}

fn comparison(mut measured: Vec<Measured>) -> Result<Comparison> {
    if measured.len() != 3 {
        return Err(BenchError::msg("three workloads expected"));
    }
    let baseline = measured.remove(2);
    let direct = measured.remove(1);
    let subject = measured.remove(0);
    Ok(Comparison {
        subject,
        direct,
        baseline,
    })
}

/// `GET /orders/{id}` against a raw `GetItem`.
pub async fn get_order(
    api: &Api,
    direct: (&Case, &Function),
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    order_id: &str,
    count: usize,
) -> Result<Comparison> {
    let path = &format!("/orders/{order_id}");
    let (case, function) = direct;
    let ops: Vec<Op<'_>> = vec![
        Box::new(move || {
            Box::pin(async move {
                let reply = api.get(path).await?;
                if reply.status != 200 {
                    return Err(BenchError::Http(format!("GET {path}: {}", reply.status)));
                }
                Ok(())
            })
        }),
        Box::new(move || Box::pin(async move { case.invoke(function, 0).await.map(|_| ()) })),
        Box::new(move || {
            Box::pin(async move {
                let output = dynamo
                    .get_item()
                    .table_name(table)
                    .key("orderId", AttributeValue::S(order_id.to_string()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| {
                        BenchError::msg(format!(
                            "GetItem: {}",
                            aws_sdk_dynamodb::error::DisplayErrorContext(e)
                        ))
                    })?;
                if output.item.is_none() {
                    return Err(BenchError::msg("GetItem: no item"));
                }
                Ok(())
            })
        }),
    ];
    comparison(alternate(count, 5, 20, ops).await?)
}

/// The raw write path: what the command does for one order, without the handler. The
/// statements are written out here rather than taken from `OrderStore`, so that the baseline
/// shares no code with what it measures.
pub struct RawCommand {
    pub pg: tokio::sync::Mutex<tokio_postgres::Client>,
    pub sns: aws_sdk_sns::Client,
    pub topic_arn: String,
}

fn attribute(value: &str) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| BenchError::msg(e.to_string()))
}

impl RawCommand {
    /// One order: transaction (order, lines, outbox), publish, mark published.
    pub async fn place(&self, event: &OrderEvent) -> Result<()> {
        let order = &event.order;
        let id = order.id.as_uuid();
        {
            let mut client = self.pg.lock().await;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO orders (id, customer_id, customer_name, customer_email, currency,
                                     total, status, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &id,
                    &order.customer.id,
                    &order.customer.name,
                    &order.customer.email,
                    &order.currency,
                    &order.total,
                    &order.status.as_str(),
                    &order.version,
                    &order.created_at,
                    &order.updated_at,
                ],
            )
            .await?;
            let line_nos: Vec<i32> = (1..=order.lines.len() as i32).collect();
            let skus: Vec<&str> = order.lines.iter().map(|l| l.sku.as_str()).collect();
            let names: Vec<&str> = order.lines.iter().map(|l| l.name.as_str()).collect();
            let quantities: Vec<i32> = order.lines.iter().map(|l| l.quantity).collect();
            let prices: Vec<i64> = order.lines.iter().map(|l| l.unit_price).collect();
            let totals: Vec<i64> = order.lines.iter().map(|l| l.line_total).collect();
            tx.execute(
                "INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price, line_total)
                 SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[])",
                &[&id, &line_nos, &skus, &names, &quantities, &prices, &totals],
            )
            .await?;
            tx.execute(
                "INSERT INTO outbox (event_id, order_id, event_type, order_version, occurred_at, payload)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &event.event_id,
                    &id,
                    &event.event_type.as_str(),
                    &event.order_version,
                    &event.occurred_at,
                    &tokio_postgres::types::Json(event),
                ],
            )
            .await?;
            tx.commit().await?;
        }
        let mut publish = self
            .sns
            .publish()
            .topic_arn(&self.topic_arn)
            .message(serde_json::to_string(event)?)
            .message_attributes("eventType", attribute(event.event_type.as_str())?)
            .message_attributes("orderId", attribute(&id.to_string())?);
        if let Some(correlation_id) = &event.correlation_id {
            publish = publish.message_attributes("correlationId", attribute(correlation_id)?);
        }
        publish.send().await.map_err(|e| {
            BenchError::msg(format!(
                "Publish: {}",
                aws_sdk_sns::error::DisplayErrorContext(e)
            ))
        })?;
        self.pg
            .lock()
            .await
            .execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
                 WHERE event_id = $1 AND published_at IS NULL",
                &[&event.event_id],
            )
            .await?;
        Ok(())
    }
}

/// `POST /orders` against [`RawCommand::place`]. Each baseline order is built (validated,
/// its event created) before its timer starts.
pub async fn post_order(
    api: &Api,
    direct: (&Case, &Function),
    raw: &RawCommand,
    counter: Arc<AtomicU64>,
    count: usize,
) -> Result<Comparison> {
    let prepared: std::sync::Mutex<Vec<OrderEvent>> = std::sync::Mutex::new(Vec::new());
    let next_event = || -> Result<OrderEvent> {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        events::order_created(n)
    };
    // Built ahead, outside the timed region.
    {
        let mut list = prepared.lock().map_err(|_| BenchError::msg("lock"))?;
        for _ in 0..count + 40 {
            list.push(next_event()?);
        }
    }
    let (prepared, counter) = (&prepared, &counter);
    let (case, function) = direct;
    let ops: Vec<Op<'_>> = vec![
        Box::new(move || {
            Box::pin(async move {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                api.create_order(events::order_body(n)).await.map(|_| ())
            })
        }),
        Box::new(move || Box::pin(async move { case.invoke(function, 0).await.map(|_| ()) })),
        Box::new(move || {
            Box::pin(async move {
                let event = prepared
                    .lock()
                    .map_err(|_| BenchError::msg("lock"))?
                    .pop()
                    .ok_or_else(|| BenchError::msg("out of prepared orders"))?;
                raw.place(&event).await
            })
        }),
    ];
    comparison(alternate(count, 5, 20, ops).await?)
}
