//! The order store: orders, their lines and the outbox, written together in one transaction.

use super::{bounded, DbError};
use crate::domain::event::OrderEvent;
use crate::domain::order::Order;
use deadpool_postgres::Pool;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_postgres::types::Json;
use uuid::Uuid;

/// One outbox row, as the relay and the tests see it.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub event_type: String,
    pub order_version: i64,
    pub payload: serde_json::Value,
    pub published_at: Option<OffsetDateTime>,
}

/// PostgreSQL access for the write side. Every operation is bounded by `op_timeout`.
#[derive(Clone)]
pub struct OrderStore {
    pool: Pool,
    op_timeout: Duration,
}

impl OrderStore {
    pub fn new(pool: Pool, op_timeout: Duration) -> Self {
        Self { pool, op_timeout }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Inserts a new order, its lines and its `OrderCreated` outbox row atomically.
    pub async fn create(&self, order: &Order, event: &OrderEvent) -> Result<(), DbError> {
        bounded(self.op_timeout, async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO orders (id, customer_id, customer_name, customer_email, currency,
                                     total, status, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &order.id.as_uuid(),
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
                &[&order.id.as_uuid(), &line_nos, &skus, &names, &quantities, &prices, &totals],
            )
            .await?;
            insert_outbox(&tx, event).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Records that an event reached SNS.
    pub async fn mark_published(&self, event_id: Uuid) -> Result<(), DbError> {
        bounded(self.op_timeout, async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
                     WHERE event_id = $1 AND published_at IS NULL",
                    &[&event_id],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Records a failed publish attempt, for the relay and for operators.
    pub async fn record_publish_failure(&self, event_id: Uuid, error: &str) -> Result<(), DbError> {
        bounded(self.op_timeout, async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE event_id = $1",
                    &[&event_id, &error],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// The outbox rows of one order, oldest first.
    pub async fn outbox_for(&self, order_id: Uuid) -> Result<Vec<OutboxEntry>, DbError> {
        bounded(self.op_timeout, async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT event_id, order_id, event_type, order_version, payload, published_at
                     FROM outbox WHERE order_id = $1 ORDER BY order_version",
                    &[&order_id],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| OutboxEntry {
                    event_id: r.get(0),
                    order_id: r.get(1),
                    event_type: r.get(2),
                    order_version: r.get(3),
                    payload: r.get::<_, Json<serde_json::Value>>(4).0,
                    published_at: r.get(5),
                })
                .collect())
        })
        .await
    }
}

async fn insert_outbox(
    tx: &deadpool_postgres::Transaction<'_>,
    event: &OrderEvent,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO outbox (event_id, order_id, event_type, order_version, occurred_at, payload)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &event.event_id,
            &event.order_id.as_uuid(),
            &event.event_type.as_str(),
            &event.order_version,
            &event.occurred_at,
            &Json(event),
        ],
    )
    .await?;
    Ok(())
}
