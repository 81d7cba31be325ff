//! Re-projection at start-up. moto keeps the read model in memory, so after a restart it is
//! empty while PostgreSQL (the source of truth) still has every order. This sends each order's
//! latest event from the `outbox` table through the updater function, as SQS records, so the
//! read model converges. A future `rebuild` command will replace this module.

use crate::runtime_api::Function;
use crate::sqs_source::{batch_result, BatchResult};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashSet;
use uuid::Uuid;

/// How many orders were sent, and how many of them the updater reported failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub orders: usize,
    pub failed: usize,
}

/// Where the records claim to come from.
pub struct Target<'a> {
    pub function: &'a Function,
    pub queue_arn: &'a str,
    pub region: &'a str,
    pub batch_size: usize,
}

/// The latest event (highest `order_version`) of up to `limit` orders after `after`.
const PAGE: &str = "SELECT DISTINCT ON (order_id) order_id, event_id, occurred_at, payload
    FROM outbox WHERE order_id > $1 ORDER BY order_id, order_version DESC LIMIT $2";

pub async fn reproject(
    pool: &deadpool_postgres::Pool,
    target: &Target<'_>,
) -> Result<Summary, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let statement = client.prepare(PAGE).await.map_err(|e| e.to_string())?;
    let batch_size = target.batch_size.clamp(1, 10_000);
    let mut after = Uuid::nil();
    let mut summary = Summary::default();
    loop {
        let rows = client
            .query(&statement, &[&after, &(batch_size as i64)])
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.get("order_id");
        let records: Vec<Value> = rows
            .iter()
            .map(|row| {
                let event_id: Uuid = row.get("event_id");
                let occurred: time::OffsetDateTime = row.get("occurred_at");
                let payload: Value = row.get("payload");
                record(
                    &event_id.to_string(),
                    &payload.to_string(),
                    occurred,
                    target,
                )
            })
            .collect();
        let ids: HashSet<String> = records
            .iter()
            .filter_map(|r| r["messageId"].as_str().map(str::to_string))
            .collect();
        summary.orders += records.len();
        let event = json!({ "Records": records });
        let invoked = target
            .function
            .invoke(Bytes::from(event.to_string()))
            .await
            .map_err(|e| format!("{}: {e}", target.function.name()))?;
        match batch_result(&invoked.body, true, &ids) {
            BatchResult::AllSucceeded => {}
            BatchResult::Partial(failed) => summary.failed += failed.len(),
            BatchResult::AllFailed(why) => return Err(why),
        }
        if rows.len() < batch_size {
            break;
        }
    }
    Ok(summary)
}

fn record(
    event_id: &str,
    body: &str,
    occurred: time::OffsetDateTime,
    target: &Target<'_>,
) -> Value {
    let sent = (occurred.unix_timestamp_nanos() / 1_000_000).to_string();
    json!({
        "messageId": event_id,
        "receiptHandle": format!("reproject-{event_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent,
            "SenderId": "orders-local",
            "ApproximateFirstReceiveTimestamp": sent,
        },
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": target.queue_arn,
        "awsRegion": target.region,
    })
}
