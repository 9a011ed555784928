//! PostgreSQL: the pool and the embedded, forward-only migrations (`migrations/`). SQL lives here
//! and in the audit code only.

use std::collections::HashSet;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Config;

/// The migrations compiled into this binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections the pool keeps open (or the pool size, if smaller).
const MIN_CONNECTIONS: u32 = 4;

/// A pooled connection idle longer than this is checked (one round trip) before it is used.
pub(crate) const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

/// Open the pool without connecting yet; the first use connects.
pub fn pool(config: &Config) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = config
        .database_url
        .expose_secret()
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    let options = options.application_name("kubegate");
    Ok(PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        // Opening a connection took ~90 ms under load (PostgreSQL starts a backend for it): when
        // the pool grew on a request's path, that request waited for it (the bench's 100 ms
        // p99.9). The audit writer keeps one connection and reads take a few more, so a few are
        // opened at start (`warm`) and kept.
        .min_connections(config.database_max_connections.min(MIN_CONNECTIONS))
        .acquire_timeout(config.database_timeout)
        // sqlx pings every idle connection it hands out: a round trip before every statement
        // (two per audited mutation). Only a connection idle for a while is checked here; sqlx
        // still pings each one as it goes back to the pool (off the request's path) and drops a
        // broken one, so a connection that broke in between (PostgreSQL restarted under load)
        // fails one statement, whose request fails closed (503).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

/// Apply pending migrations. Several replicas starting together are safe: sqlx takes an advisory
/// lock around the run.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| anyhow::anyhow!("applying database migrations (DATABASE_URL): {e}"))
}

/// Open the connections the pool keeps now, not when a request finds none idle (sqlx's lazy pool
/// opens them on demand; the request waits for it).
pub async fn warm(pool: &PgPool) {
    let want = pool.options().get_min_connections() as usize;
    let opened = futures::future::join_all((0..want).map(|_| pool.acquire())).await;
    if let Some(Err(e)) = opened.iter().find(|c| c.is_err()) {
        tracing::warn!(error = %e, "could not open the pool's connections ahead of use");
    }
}

/// What `/readyz` reports about the database.
#[derive(Debug)]
pub struct DatabaseHealth {
    pub reachable: bool,
    pub pending_migrations: Vec<i64>,
    pub error: Option<String>,
}

/// Check that PostgreSQL answers and that every embedded migration is applied.
pub async fn health(pool: &PgPool) -> DatabaseHealth {
    let applied: Result<Vec<(i64, bool)>, sqlx::Error> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
            .fetch_all(pool)
            .await;
    match applied {
        Ok(rows) => {
            let done: HashSet<i64> = rows.into_iter().filter(|r| r.1).map(|r| r.0).collect();
            let pending = MIGRATOR
                .iter()
                .map(|m| m.version)
                .filter(|v| !done.contains(v))
                .collect();
            DatabaseHealth {
                reachable: true,
                pending_migrations: pending,
                error: None,
            }
        }
        Err(e) => DatabaseHealth {
            reachable: false,
            pending_migrations: Vec::new(),
            error: Some(short_db_error(&e)),
        },
    }
}

/// A one-line description of a database error that is safe to show (no URL, no password).
pub fn short_db_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".into(),
        sqlx::Error::Io(_) => "database unreachable".into(),
        sqlx::Error::Database(db) => format!("database error: {}", db.message()),
        other => format!("database error: {other}"),
    }
}
