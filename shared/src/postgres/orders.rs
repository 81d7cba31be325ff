//! The order store: an order's row, lines and history, its outbox event and the idempotency
//! key of the command that wrote it, all in one transaction. No HTTP here: the outcome kept
//! with a key is opaque to the store.

use super::{bounded, checkout, DbError};
use crate::domain::command::Decision;
use crate::domain::order::{Customer, Order, OrderId, OrderLine, ShippingAddress, StatusChange};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use uuid::Uuid;

type Param<'a> = &'a (dyn ToSql + Sync);

/// How often a keyed write starts over when a concurrent request with the same key won.
const CLAIM_ATTEMPTS: usize = 3;

/// A client's idempotency key for one command.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim<'a> {
    /// What the key is scoped to (the operation and the caller).
    pub scope: &'a str,
    pub key: &'a str,
    /// The canonical request text: a retry must match it exactly.
    pub request: &'a str,
    pub ttl: Duration,
}

/// What the caller keeps with a key and gets back on a replay. Opaque to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub code: i16,
    pub body: serde_json::Value,
}

/// What a write with an optional idempotency key did.
#[derive(Debug, Clone, PartialEq)]
pub enum Keyed<T> {
    /// The write ran (no key, or a fresh one).
    Fresh(T),
    /// The key was used before with the same request: the outcome kept with it.
    Replayed(Outcome),
    /// The key was used before with a different request.
    KeyReused,
}

/// What a change to an existing order did.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<R> {
    /// Stored: the new order and its event.
    Changed(Box<Decision>),
    /// The decision refused the change; nothing was written.
    Refused(R),
    /// No such order, or none this caller may see.
    NotFound,
}

/// An order read back from the write model, with the id of the event that produced its
/// current version (when the outbox still holds it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    pub order: Order,
    pub last_event_id: Option<Uuid>,
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

    /// Inserts a new order, its lines and its event atomically, together with the key and
    /// `outcome` when there is a key. Two concurrent requests with one key serialize on the
    /// key's primary key: exactly one creates, the other replays.
    pub async fn create(
        &self,
        placed: &Decision,
        claim: Option<(&IdempotencyClaim<'_>, &Outcome)>,
    ) -> Result<Keyed<()>, DbError> {
        let order = &placed.order;
        bounded(self.op_timeout, async {
            let mut client = checkout(&self.pool).await?;
            for _ in 0..CLAIM_ATTEMPTS {
                let tx = client.transaction().await?;
                if let Some((claim, outcome)) = claim {
                    if !claim_key(&tx, claim, order.id, outcome).await? {
                        tx.rollback().await?;
                        match kept_outcome(&*client, claim).await? {
                            Some(found) => return Ok(found),
                            // Expired and swept between the two statements: claim again.
                            None => continue,
                        }
                    }
                }
                write_order_row(&tx, order, None).await?;
                insert_lines(&tx, order).await?;
                insert_outbox(&tx, placed).await?;
                tx.commit().await?;
                return Ok(Keyed::Fresh(()));
            }
            Err(DbError::Unavailable(
                "idempotency key kept changing under this request".into(),
            ))
        })
        .await
    }

    /// Changes one order under a row lock. Only a row `visible_to` that owner (any row for
    /// `None`) is read or locked, so a caller can neither learn of nor block an order they may
    /// not see. `decide` sees the current order and returns the decision with the outcome to
    /// keep with the key, or a refusal. The whole row, the new history, the event and the key
    /// are written in one transaction.
    pub async fn change<R>(
        &self,
        id: OrderId,
        visible_to: Option<&str>,
        claim: Option<&IdempotencyClaim<'_>>,
        decide: impl Fn(&Order) -> Result<(Decision, Outcome), R>,
    ) -> Result<Keyed<Change<R>>, DbError> {
        bounded(self.op_timeout, async {
            let mut client = checkout(&self.pool).await?;
            for _ in 0..CLAIM_ATTEMPTS {
                let tx = client.transaction().await?;
                let clause = "WHERE o.id = $1 AND ($2::text IS NULL OR o.customer_id = $2)
                              FOR UPDATE OF o";
                let found = fetch_orders(&tx, clause, &[&id.as_uuid(), &visible_to]).await?;
                let Some(current) = found.into_iter().next() else {
                    return Ok(Keyed::Fresh(Change::NotFound));
                };
                // Checked under the row lock, so a concurrent request with the same key that
                // committed first is seen here and replayed.
                if let Some(claim) = claim {
                    if let Some(found) = kept_outcome(&tx, claim).await? {
                        return Ok(found);
                    }
                }
                let (decision, outcome) = match decide(&current.order) {
                    Ok(decided) => decided,
                    Err(refusal) => return Ok(Keyed::Fresh(Change::Refused(refusal))),
                };
                if let Some(claim) = claim {
                    if !claim_key(&tx, claim, id, &outcome).await? {
                        // A concurrent request with the same key won: replay its outcome.
                        tx.rollback().await?;
                        continue;
                    }
                }
                let previous = current.order.version;
                write_order_row(&tx, &decision.order, Some(previous)).await?;
                insert_history(&tx, &decision.order, previous).await?;
                insert_outbox(&tx, &decision).await?;
                tx.commit().await?;
                return Ok(Keyed::Fresh(Change::Changed(Box::new(decision))));
            }
            Err(DbError::Unavailable(
                "idempotency key kept changing under this request".into(),
            ))
        })
        .await
    }

    /// One order with its lines and history.
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
            let clause = "WHERE o.id > $1 ORDER BY o.id LIMIT $2";
            fetch_orders(&*client, clause, &[&after, &limit]).await
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
}

/// Inserts the key, or takes over an expired one. False when a live key already exists.
async fn claim_key(
    tx: &Transaction<'_>,
    claim: &IdempotencyClaim<'_>,
    order_id: OrderId,
    outcome: &Outcome,
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
                &order_id.as_uuid(),
                &outcome.code,
                &Json(&outcome.body),
                &claim.ttl.as_secs_f64(),
            ],
        )
        .await?;
    Ok(row.is_some())
}

/// What a live key holds: the kept outcome when the request matches, else `KeyReused`.
async fn kept_outcome<T>(
    client: &impl GenericClient,
    claim: &IdempotencyClaim<'_>,
) -> Result<Option<Keyed<T>>, DbError> {
    let row = client
        .query_opt(
            "SELECT request_hash = md5($3) AS same_request, status_code, response_body
             FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > now()",
            &[&claim.scope, &claim.key, &claim.request],
        )
        .await?;
    Ok(row.map(|row| {
        if row.get("same_request") {
            Keyed::Replayed(Outcome {
                code: row.get("status_code"),
                body: row.get::<_, Json<serde_json::Value>>("response_body").0,
            })
        } else {
            Keyed::KeyReused
        }
    }))
}

/// The `orders` columns, in the order of the values [`write_order_row`] binds.
const ORDER_COLUMNS: &str = "id, customer_id, customer_name, customer_email, currency, total, \
                             status, version, created_at, updated_at, shipping_address";

/// Writes the whole row of `order`: inserted when `replaces` is `None`, else updated from the
/// version `replaces` (which the caller holds locked).
async fn write_order_row(
    tx: &Transaction<'_>,
    order: &Order,
    replaces: Option<i64>,
) -> Result<(), DbError> {
    let id = order.id.as_uuid();
    let status = order.status.as_str();
    let shipping_address = order.shipping_address.as_ref().map(Json);
    let row: [Param; 11] = [
        &id,
        &order.customer.id,
        &order.customer.name,
        &order.customer.email,
        &order.currency,
        &order.total,
        &status,
        &order.version,
        &order.created_at,
        &order.updated_at,
        &shipping_address,
    ];
    let mut values = row.to_vec();
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
    let placeholders = placeholders.join(", ");
    let Some(previous) = replaces.as_ref() else {
        let sql = format!("INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({placeholders})");
        tx.execute(&sql, &values).await?;
        return Ok(());
    };
    values.push(previous);
    let sql = format!(
        "UPDATE orders SET ({ORDER_COLUMNS}) = ({placeholders}) WHERE id = $1 AND version = ${}",
        values.len()
    );
    if tx.execute(&sql, &values).await? != 1 {
        return Err(DbError::LostUpdate(format!(
            "order {} changed under its row lock",
            order.id
        )));
    }
    Ok(())
}

async fn insert_lines(tx: &Transaction<'_>, order: &Order) -> Result<(), DbError> {
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

/// The status changes `order` gained after version `previous`.
async fn insert_history(tx: &Transaction<'_>, order: &Order, previous: i64) -> Result<(), DbError> {
    for change in order.history.iter().filter(|c| c.version > previous) {
        tx.execute(
            "INSERT INTO order_status_history (order_id, version, from_status, to_status, changed_at, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &order.id.as_uuid(),
                &change.version,
                &change.from.as_str(),
                &change.to.as_str(),
                &change.at,
                &change.reason,
            ],
        )
        .await?;
    }
    Ok(())
}

async fn insert_outbox(tx: &Transaction<'_>, decision: &Decision) -> Result<(), DbError> {
    let event = &decision.event;
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

/// Orders (with lines, history and their latest event id) matching a clause over `orders o`.
async fn fetch_orders(
    client: &impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<StoredOrder>, DbError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS},
                (SELECT e.event_id FROM outbox e
                  WHERE e.order_id = o.id AND e.order_version = o.version) AS last_event_id
         FROM orders o {clause}"
    );
    let rows = client.query(&sql, params).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect();
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
    let mut lines: HashMap<Uuid, Vec<OrderLine>> = HashMap::new();
    for r in &line_rows {
        lines.entry(r.get("order_id")).or_default().push(OrderLine {
            sku: r.get("sku"),
            name: r.get("name"),
            quantity: r.get("quantity"),
            unit_price: r.get("unit_price"),
            line_total: r.get("line_total"),
        });
    }
    let mut history: HashMap<Uuid, Vec<StatusChange>> = HashMap::new();
    for r in &history_rows {
        history
            .entry(r.get("order_id"))
            .or_default()
            .push(StatusChange {
                version: r.get("version"),
                from: status_of(r, "from_status")?,
                to: status_of(r, "to_status")?,
                at: r.get("changed_at"),
                reason: r.get("reason"),
            });
    }
    rows.iter()
        .map(|r| {
            let id: Uuid = r.get("id");
            let address: Option<Json<ShippingAddress>> = r.get("shipping_address");
            Ok(StoredOrder {
                order: Order {
                    id: id.into(),
                    customer: Customer {
                        id: r.get("customer_id"),
                        name: r.get("customer_name"),
                        email: r.get("customer_email"),
                    },
                    currency: r.get("currency"),
                    lines: lines.remove(&id).unwrap_or_default(),
                    total: r.get("total"),
                    status: status_of(r, "status")?,
                    version: r.get("version"),
                    created_at: r.get("created_at"),
                    updated_at: r.get("updated_at"),
                    history: history.remove(&id).unwrap_or_default(),
                    shipping_address: address.map(|a| a.0),
                },
                last_event_id: r.get("last_event_id"),
            })
        })
        .collect()
}

/// A status column, which the domain must know.
fn status_of(row: &Row, column: &str) -> Result<crate::OrderStatus, DbError> {
    let text: String = row.get(column);
    text.parse()
        .map_err(|e: String| DbError::Corrupt(format!("{column}: {e}")))
}
