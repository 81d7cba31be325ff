//! Schema migrations: the SQL files in `migrations/`, embedded at build time and applied in
//! order, each once, under an advisory lock so that concurrent runners cannot collide.

use super::DbError;
use deadpool_postgres::Pool;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in the order it must be applied: each `.sql` file in `migrations/`, listed
/// by `shared/build.rs`. A test checks the numbering.
pub const MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Any number of processes may call this at once: they serialize on a transaction-scoped
/// advisory lock. Returns the names of the migrations this call applied (empty when the
/// schema was current). A migration whose file changed after it was applied is an error.
pub async fn migrate(pool: &Pool) -> Result<Vec<String>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The role's server-side bounds (migrations/0005) are sized for requests; a migration may
    // wait for another runner's lock and rebuild an index, so this transaction lifts them and
    // relies on the caller's bound (DB_STATEMENT_TIMEOUT_MS of the migrate function).
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        .await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('orders-cqrs:migrations'))",
        &[],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let row = tx
            .query_opt(
                "SELECT checksum = md5($2), name FROM schema_migrations WHERE version = $1",
                &[&migration.version, &migration.sql],
            )
            .await?;
        match row {
            Some(row) if row.get::<_, bool>(0) => continue,
            Some(row) => {
                return Err(DbError::Migration {
                    name: migration.name.into(),
                    reason: format!(
                        "already applied as {} but its content has changed; add a new migration instead",
                        row.get::<_, String>(1)
                    ),
                })
            }
            None => {}
        }
        tx.batch_execute(migration.sql)
            .await
            .map_err(|e| DbError::Migration {
                name: migration.name.into(),
                reason: e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.to_string()),
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, md5($3))",
            &[&migration.version, &migration.name, &migration.sql],
        )
        .await?;
        applied.push(migration.name.to_string());
    }
    tx.commit().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_migrations_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
