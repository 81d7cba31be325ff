//! Expiring idempotency keys.

use super::{bounded, checkout, DbError};
use deadpool_postgres::Pool;
use std::time::{Duration, Instant};

/// How the sweep of expired keys paces itself.
#[derive(Debug, Clone, Copy)]
pub struct ExpirySettings {
    /// Keys deleted per statement: small enough that each statement is short (well inside
    /// the server's `statement_timeout`) and holds few locks.
    pub batch: i64,
    /// No new statement starts after this much time, whatever is left.
    pub budget: Duration,
    /// Upper bound on each statement.
    pub op_timeout: Duration,
}

/// Deletes expired keys in batches until none are left or the budget is spent; returns how
/// many it deleted. Rows another sweep holds are skipped, so concurrent sweeps share the work.
pub async fn expire_keys(pool: &Pool, settings: &ExpirySettings) -> Result<u64, DbError> {
    let started = Instant::now();
    let mut deleted = 0;
    loop {
        let n = bounded(settings.op_timeout, async {
            let client = checkout(pool).await?;
            Ok(client
                .execute(
                    "DELETE FROM idempotency_keys WHERE (scope, key) IN (
                         SELECT scope, key FROM idempotency_keys WHERE expires_at <= now()
                         LIMIT $1 FOR UPDATE SKIP LOCKED)",
                    &[&settings.batch],
                )
                .await?)
        })
        .await?;
        deleted += n;
        if n < settings.batch.max(1) as u64 || started.elapsed() >= settings.budget {
            return Ok(deleted);
        }
    }
}
