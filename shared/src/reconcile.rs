//! Keeping the read model honest: `rebuild` re-projects it from PostgreSQL, `verify` reports
//! where it differs from PostgreSQL. Both page through the write model in bounded pages and
//! run beside the live updater.

use crate::domain::order::OrderId;
use crate::domain::view::project_order;
use crate::dynamodb::{OrderViewStore, ViewStoreError};
use crate::postgres::{DbError, OrderStore, StoredOrder};
use crate::projection::{ApplyError, ProjectionOutcome, ReadModel};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::HashSet;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Views(#[from] ViewStoreError),
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub applied: usize,
    /// Already at a newer version (the live updater got there first): left alone.
    pub stale: usize,
    pub failed: usize,
}

/// Re-projects every order (or one) from PostgreSQL. The versioned write means an old
/// snapshot read here can never overwrite a newer view the live updater wrote meanwhile.
pub async fn rebuild(
    store: &OrderStore,
    read_model: &ReadModel,
    only: Option<OrderId>,
    page_size: i64,
) -> Result<RebuildReport, ReconcileError> {
    let mut report = RebuildReport::default();
    if let Some(id) = only {
        if let Some(order) = store.load(id).await? {
            tally(&mut report, id, apply(read_model, &order).await);
        }
        return Ok(report);
    }
    let mut after = None;
    loop {
        let page = store.page(after, page_size.max(1)).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.order.id.as_uuid());
        let results: Vec<_> = stream::iter(&page)
            .map(|order| async move { (order.order.id, apply(read_model, order).await) })
            .buffer_unordered(8)
            .collect()
            .await;
        for (id, result) in results {
            tally(&mut report, id, result);
        }
        if (page.len() as i64) < page_size {
            break;
        }
    }
    Ok(report)
}

async fn apply(
    read_model: &ReadModel,
    stored: &StoredOrder,
) -> Result<ProjectionOutcome, ApplyError> {
    let event_id = stored.last_event_id.unwrap_or(Uuid::nil());
    let projection = project_order(&stored.order, event_id, time::OffsetDateTime::now_utc());
    read_model.apply(&projection).await
}

fn tally(report: &mut RebuildReport, id: OrderId, result: Result<ProjectionOutcome, ApplyError>) {
    match result {
        Ok(ProjectionOutcome::Applied) => report.applied += 1,
        Ok(ProjectionOutcome::Stale) => report.stale += 1,
        Err(err) => {
            tracing::warn!(order_id = %id, error = %err, "rebuild failed for order");
            report.failed += 1;
        }
    }
}

/// One difference between the write and the read model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Drift {
    /// In PostgreSQL, not in the read model.
    Missing { order_id: String, version: i64 },
    /// The read model holds another version.
    Version {
        order_id: String,
        write: i64,
        read: i64,
    },
    /// Same version, different content (a field of the order: total, status, lines, customer,
    /// currency, timestamps or status history).
    Content { order_id: String, field: String },
    /// In the read model, not in PostgreSQL.
    Orphan { order_id: String },
}

/// The outcome of a verify pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    pub orders_checked: usize,
    pub views_checked: usize,
    pub drift: Vec<Drift>,
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.drift.is_empty()
    }
}

/// Compares every order in PostgreSQL with its view, and every view with PostgreSQL.
pub async fn verify(
    store: &OrderStore,
    views: &OrderViewStore,
    page_size: i64,
) -> Result<DriftReport, ReconcileError> {
    let mut report = DriftReport::default();
    let mut known = HashSet::new();
    let mut after = None;
    loop {
        let page = store.page(after, page_size.max(1)).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.order.id.as_uuid());
        let ids: Vec<OrderId> = page.iter().map(|o| o.order.id).collect();
        let found = views.get_many(&ids).await?;
        for StoredOrder { order, .. } in &page {
            report.orders_checked += 1;
            known.insert(order.id.to_string());
            let order_id = order.id.to_string();
            let Some(view) = found.get(&order.id) else {
                report.drift.push(Drift::Missing {
                    order_id,
                    version: order.version,
                });
                continue;
            };
            if view.version != order.version {
                report.drift.push(Drift::Version {
                    order_id,
                    write: order.version,
                    read: view.version,
                });
                continue;
            }
            let differs = [
                ("total", view.total != order.total),
                ("status", view.status != order.status),
                ("lines", view.lines != order.lines),
                ("customer", view.customer != order.customer),
                ("currency", view.currency != order.currency),
                ("createdAt", view.created_at != order.created_at),
                ("updatedAt", view.updated_at != order.updated_at),
                ("history", view.history != order.history),
            ];
            for (field, different) in differs {
                if different {
                    report.drift.push(Drift::Content {
                        order_id: order_id.clone(),
                        field: field.into(),
                    });
                }
            }
        }
        if (page.len() as i64) < page_size {
            break;
        }
    }
    let mut cursor = None;
    loop {
        let (items, next) = views.scan_versions(cursor).await?;
        for (order_id, _) in items {
            report.views_checked += 1;
            if !known.contains(&order_id) {
                report.drift.push(Drift::Orphan { order_id });
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(report)
}
