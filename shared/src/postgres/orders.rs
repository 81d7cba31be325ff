//! The order store: orders, their lines and the outbox, written together in one transaction.

use super::{bounded, checkout, DbError};
use crate::domain::event::OrderEvent;
use crate::domain::order::{Customer, Order, OrderId, OrderLine, OrderStatus, StatusChange};
use deadpool_postgres::{GenericClient, Pool};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_postgres::types::Json;
use uuid::Uuid;

/// A client's idempotency key for one command, and the response to keep with it.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim<'a> {
    /// What the key is scoped to (the operation, later also the caller).
    pub scope: &'a str,
    pub key: &'a str,
    /// The canonical request text: a retry must match it exactly.
    pub request: &'a str,
    pub ttl: Duration,
}

/// A response stored with an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
    pub order_id: Uuid,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome<R> {
    /// The order changed; here is the event recorded with it (carrying the new state).
    Updated(Box<OrderEvent>),
    /// The decision refused the change; nothing was written.
    Rejected(R),
    NotFound,
    /// The key was used before with the same request: here is the original response.
    Replayed(StoredResponse),
    /// The key was used before with a different request.
    KeyReused,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created,
    /// The key was used before with the same request: here is the original response.
    Replayed(StoredResponse),
    /// The key was used before with a different request.
    KeyReused,
}

/// An order read back from the write model, with the id of the event that produced its
/// current version (when the outbox still holds it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    pub order: Order,
    pub last_event_id: Option<Uuid>,
}

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

    /// Inserts a new order, its lines and its `OrderCreated` outbox row atomically, together
    /// with the idempotency key when there is one. Two concurrent requests with one key
    /// serialize on the key's primary key: exactly one creates, the other replays.
    pub async fn create(
        &self,
        order: &Order,
        event: &OrderEvent,
        claim: Option<(&IdempotencyClaim<'_>, &serde_json::Value)>,
    ) -> Result<CreateOutcome, DbError> {
        bounded(self.op_timeout, async {
            let mut client = checkout(&self.pool).await?;
            for _ in 0..3 {
                let tx = client.transaction().await?;
                if let Some((claim, response)) = claim {
                    if !claim_key(&tx, claim, order.id.as_uuid(), 201, response).await? {
                        tx.rollback().await?;
                        match stored_response(&*client, claim).await? {
                            Some(outcome) => return Ok(outcome),
                            // Expired and swept between the two statements: claim again.
                            None => continue,
                        }
                    }
                }
                insert_order(&tx, order).await?;
                insert_outbox(&tx, event).await?;
                tx.commit().await?;
                return Ok(CreateOutcome::Created);
            }
            Err(DbError::Unavailable(
                "idempotency key kept changing under this request".into(),
            ))
        })
        .await
    }

    /// Changes one order under a row lock. `decide` sees the current order and returns the new
    /// state, its event and the response to keep with the idempotency key, or a refusal.
    /// The order row, its history, the outbox event and the key are written in one
    /// transaction.
    pub async fn update<R>(
        &self,
        id: OrderId,
        claim: Option<&IdempotencyClaim<'_>>,
        decide: impl Fn(&Order) -> Result<(Order, OrderEvent, u16, serde_json::Value), R>,
    ) -> Result<UpdateOutcome<R>, DbError> {
        bounded(self.op_timeout, async {
            let mut client = checkout(&self.pool).await?;
            for _ in 0..3 {
                let tx = client.transaction().await?;
                let current = fetch_orders(&tx, "WHERE o.id = $1 FOR UPDATE OF o", &[&id.as_uuid()]).await?;
                let Some(current) = current.into_iter().next() else {
                    return Ok(UpdateOutcome::NotFound);
                };
                // Checked under the row lock, so a concurrent request with the same key that
                // committed first is seen here and replayed.
                if let Some(claim) = claim {
                    match stored_response(&tx, claim).await? {
                        Some(CreateOutcome::Replayed(r)) => return Ok(UpdateOutcome::Replayed(r)),
                        Some(_) => return Ok(UpdateOutcome::KeyReused),
                        None => {}
                    }
                }
                let (next, event, status, response) = match decide(&current.order) {
                    Ok(decided) => decided,
                    Err(refusal) => return Ok(UpdateOutcome::Rejected(refusal)),
                };
                if let Some(claim) = claim {
                    if !claim_key(&tx, claim, id.as_uuid(), status, &response).await? {
                        // A concurrent request with the same key won: replay its response.
                        tx.rollback().await?;
                        continue;
                    }
                }
                let updated = tx
                    .execute(
                        "UPDATE orders SET status = $2, version = $3, updated_at = $4
                         WHERE id = $1 AND version = $5",
                        &[
                            &id.as_uuid(),
                            &next.status.as_str(),
                            &next.version,
                            &next.updated_at,
                            &current.order.version,
                        ],
                    )
                    .await?;
                if updated != 1 {
                    return Err(DbError::Config(format!("order {id} changed under its row lock")));
                }
                for change in next.history.iter().filter(|c| c.version > current.order.version) {
                    tx.execute(
                        "INSERT INTO order_status_history (order_id, version, from_status, to_status, changed_at, reason)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &id.as_uuid(),
                            &change.version,
                            &change.from.as_str(),
                            &change.to.as_str(),
                            &change.at,
                            &change.reason,
                        ],
                    )
                    .await?;
                }
                insert_outbox(&tx, &event).await?;
                tx.commit().await?;
                return Ok(UpdateOutcome::Updated(Box::new(event)));
            }
            Err(DbError::Unavailable("idempotency key kept changing under this request".into()))
        })
        .await
    }

    /// One order with its lines.
    pub async fn load(&self, id: OrderId) -> Result<Option<StoredOrder>, DbError> {
        bounded(self.op_timeout, async {
            let client = checkout(&self.pool).await?;
            let mut orders = fetch_orders(&*client, "WHERE o.id = $1", &[&id.as_uuid()]).await?;
            Ok(orders.pop())
        })
        .await
    }

    /// Up to `limit` orders with ids greater than `after`, in id order (keyset pagination,
    /// so a full pass stays cheap however many orders there are).
    pub async fn page(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<StoredOrder>, DbError> {
        bounded(self.op_timeout, async {
            let client = checkout(&self.pool).await?;
            let after = after.unwrap_or(Uuid::nil());
            fetch_orders(
                &*client,
                "WHERE o.id > $1 ORDER BY o.id LIMIT $2",
                &[&after, &limit as &(dyn tokio_postgres::types::ToSql + Sync)],
            )
            .await
        })
        .await
    }

    /// Records that an event reached SNS.
    pub async fn mark_published(&self, event_id: Uuid) -> Result<(), DbError> {
        bounded(self.op_timeout, async {
            let client = checkout(&self.pool).await?;
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
            let client = checkout(&self.pool).await?;
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
            let client = checkout(&self.pool).await?;
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

/// Inserts the key, or takes over an expired one. False when a live key already exists.
async fn claim_key(
    tx: &deadpool_postgres::Transaction<'_>,
    claim: &IdempotencyClaim<'_>,
    order_id: Uuid,
    status: u16,
    response: &serde_json::Value,
) -> Result<bool, DbError> {
    let row = tx
        .query_opt(
            "INSERT INTO idempotency_keys
                 (scope, key, request_hash, order_id, status_code, response_body, expires_at)
             VALUES ($1, $2, md5($3), $4, $5, $6, now() + make_interval(secs => $7))
             ON CONFLICT (scope, key) DO UPDATE SET
                 request_hash = EXCLUDED.request_hash, order_id = EXCLUDED.order_id,
                 status_code = EXCLUDED.status_code, response_body = EXCLUDED.response_body,
                 created_at = now(), expires_at = EXCLUDED.expires_at
             WHERE idempotency_keys.expires_at <= now()
             RETURNING 1",
            &[
                &claim.scope,
                &claim.key,
                &claim.request,
                &order_id,
                &(status as i16),
                &Json(response),
                &claim.ttl.as_secs_f64(),
            ],
        )
        .await?;
    Ok(row.is_some())
}

async fn stored_response(
    client: &impl GenericClient,
    claim: &IdempotencyClaim<'_>,
) -> Result<Option<CreateOutcome>, DbError> {
    let row = client
        .query_opt(
            "SELECT request_hash = md5($3), status_code, response_body, order_id
             FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > now()",
            &[&claim.scope, &claim.key, &claim.request],
        )
        .await?;
    Ok(row.map(|row| {
        if row.get::<_, bool>(0) {
            CreateOutcome::Replayed(StoredResponse {
                status: row.get::<_, i16>(1) as u16,
                body: row.get::<_, Json<serde_json::Value>>(2).0,
                order_id: row.get(3),
            })
        } else {
            CreateOutcome::KeyReused
        }
    }))
}

async fn insert_order(
    tx: &deadpool_postgres::Transaction<'_>,
    order: &Order,
) -> Result<(), DbError> {
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
    Ok(())
}

/// Orders (with lines and their latest event id) matching a clause over `orders o`.
async fn fetch_orders(
    client: &impl GenericClient,
    clause: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<StoredOrder>, DbError> {
    let rows = client
        .query(
            &format!(
                "SELECT o.id, o.customer_id, o.customer_name, o.customer_email, o.currency::text,
                        o.total, o.status, o.version, o.created_at, o.updated_at,
                        (SELECT e.event_id FROM outbox e
                          WHERE e.order_id = o.id AND e.order_version = o.version)
                 FROM orders o {clause}"
            ),
            params,
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let line_rows = client
        .query(
            "SELECT order_id, sku, name, quantity, unit_price, line_total
             FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, line_no",
            &[&ids],
        )
        .await?;
    let history_rows = client
        .query(
            "SELECT order_id, version, from_status, to_status, changed_at, reason
             FROM order_status_history WHERE order_id = ANY($1) ORDER BY order_id, version",
            &[&ids],
        )
        .await?;
    let mut history: HashMap<Uuid, Vec<StatusChange>> = HashMap::new();
    for r in &history_rows {
        let parse = |i: usize| {
            r.get::<_, String>(i)
                .parse::<OrderStatus>()
                .map_err(DbError::Config)
        };
        history.entry(r.get(0)).or_default().push(StatusChange {
            version: r.get(1),
            from: parse(2)?,
            to: parse(3)?,
            at: r.get(4),
            reason: r.get(5),
        });
    }
    let mut lines: HashMap<Uuid, Vec<OrderLine>> = HashMap::new();
    for r in &line_rows {
        lines.entry(r.get(0)).or_default().push(OrderLine {
            sku: r.get(1),
            name: r.get(2),
            quantity: r.get(3),
            unit_price: r.get(4),
            line_total: r.get(5),
        });
    }
    rows.iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            let status: String = r.get(6);
            Ok(StoredOrder {
                order: Order {
                    id: id.into(),
                    customer: Customer {
                        id: r.get(1),
                        name: r.get(2),
                        email: r.get(3),
                    },
                    currency: r.get(4),
                    lines: lines.remove(&id).unwrap_or_default(),
                    total: r.get(5),
                    status: status
                        .parse()
                        .map_err(|e: String| DbError::Config(format!("order {id}: {e}")))?,
                    version: r.get(7),
                    created_at: r.get(8),
                    updated_at: r.get(9),
                    history: history.remove(&id).unwrap_or_default(),
                },
                last_event_id: r.get(10),
            })
        })
        .collect()
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
