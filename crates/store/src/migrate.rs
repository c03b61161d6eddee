//! Schema migrations, embedded in the binary: one list per backend, applied in
//! order and recorded in `schema_migrations`.

use sqlx::{AnyPool, Executor};

use crate::sql::Dialect;
use crate::{Result, sql::db_error};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_outbox.sql")),
    (3, include_str!("../migrations/sqlite/0003_directory.sql")),
    (4, include_str!("../migrations/sqlite/0004_sfu_node.sql")),
    (
        5,
        include_str!("../migrations/sqlite/0005_call_version.sql"),
    ),
    (
        6,
        include_str!("../migrations/sqlite/0006_message_bodies.sql"),
    ),
];
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_outbox.sql")),
    (3, include_str!("../migrations/postgres/0003_directory.sql")),
    (4, include_str!("../migrations/postgres/0004_sfu_node.sql")),
    (
        5,
        include_str!("../migrations/postgres/0005_call_version.sql"),
    ),
    (
        6,
        include_str!("../migrations/postgres/0006_message_bodies.sql"),
    ),
];

/// Brings the schema up to date. On PostgreSQL an advisory lock keeps nodes that
/// start together from migrating twice.
pub async fn run(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    run_until(pool, dialect, i64::MAX).await
}

/// Applies the migrations up to version `last` (a test of a migration starts from
/// the schema before it).
pub async fn run_until(pool: &AnyPool, dialect: Dialect, last: i64) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    let steps = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => {
            conn.execute("SELECT pg_advisory_lock(7031990)")
                .await
                .map_err(db_error)?;
            POSTGRES
        }
    };
    let steps: Vec<_> = steps.iter().filter(|(v, _)| *v <= last).copied().collect();
    let result = apply(&mut conn, &steps).await;
    if dialect == Dialect::Postgres {
        conn.execute("SELECT pg_advisory_unlock(7031990)")
            .await
            .map_err(db_error)?;
    }
    result
}

async fn apply(conn: &mut sqlx::AnyConnection, steps: &[(i64, &'static str)]) -> Result<()> {
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .await
        .map_err(db_error)?;
    let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    for &(version, script) in steps.iter().filter(|(v, _)| !done.contains(v)) {
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(db_error)?;
        sqlx::raw_sql(script)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}
