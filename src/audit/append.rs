//! The append statement: rows go in only where the chain head still is, and the head moves to
//! the last row in the same statement; the connection it runs on, and what is done when an attempt
//! fails half-way.

use std::sync::LazyLock;
use std::time::Duration;

use super::chain::{Head, Row, appended, chain, last_of};
use super::entry::{COLUMNS, Entry};
use sqlx::{PgPool, Postgres};

/// The most rows one statement carries. A batch of more goes as several statements in one
/// transaction. 32 covers what a busy replica batches (more than 8 entries per commit at 64
/// clients); against 8 rows per statement, PostgreSQL's CPU per change at 64 clients fell by
/// up to a tenth and throughput held (BENCHMARKS.md).
const ROWS_PER_STATEMENT: usize = 32;

/// The append statement for 2^i rows (1, 2, 4, ... ROWS_PER_STATEMENT, at index i): the rows go
/// in only if the head is still where the writer expects it ($3, $4), and the head moves to the
/// last row ($1, $2) in the same statement, one round trip for the batch. PostgreSQL serializes
/// concurrent writers on the head row; a writer whose head is stale (another replica appended)
/// inserts nothing. The rows travel as a VALUES list of plain parameters, each statement prepared
/// once per connection and cached: PostgreSQL then takes each value as it comes, where an
/// UNNEST of one array per column had it build and unpack 31 arrays (and materialize each
/// unnest) for every batch, about a tenth of its CPU per append. A batch is padded to the next
/// size with rows whose seq is NULL, which the statement leaves out: six prepared statements
/// held 2.0 MB of the writer's PostgreSQL backend, one for every size from 1 to 32 held 9.9 MB.
static INSERT_ROWS: LazyLock<Vec<String>> = LazyLock::new(|| {
    // A parameter per column of each row, in COLUMNS' order (insert_rows binds them so).
    let per_row = COLUMNS.split(',').count();
    std::iter::successors(Some(1), |rows| Some(rows * 2))
        .take_while(|rows| *rows <= ROWS_PER_STATEMENT)
        .map(|rows| {
            let values: Vec<String> = (0..rows)
                .map(|r| {
                    let row: Vec<String> = (0..per_row)
                        .map(|c| format!("${}", 5 + r * per_row + c))
                        .collect();
                    format!("({})", row.join(", "))
                })
                .collect();
            format!(
                "WITH moved AS (UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4 RETURNING 1) \
                 INSERT INTO audit_event ({COLUMNS}) SELECT {COLUMNS} FROM (VALUES {}) AS t({COLUMNS}) \
                 WHERE EXISTS (SELECT 1 FROM moved) AND t.seq IS NOT NULL",
                values.join(", ")
            )
        })
        .collect()
});

/// What a padding row binds besides its NULL seq (the statement leaves the row out).
static PADDING: LazyLock<Entry> = LazyLock::new(Entry::default);

/// How many times a writer retries with a fresh head before it takes the head row's lock first.
const OPTIMISTIC_ATTEMPTS: usize = 3;

/// The writer's own connection, kept between batches. A connection handed back to sqlx's pool is
/// pinged on the way (a second round trip per batch, and PostgreSQL wakes for it); the writer
/// keeps one instead and checks it only after it sat idle (as the pool does). After an error it is
/// closed, never pooled again, and the append is tried once more on a connection that works.
#[derive(Default)]
pub(super) struct Held {
    conn: Option<sqlx::pool::PoolConnection<Postgres>>,
    used: Option<std::time::Instant>,
    /// The PostgreSQL backend serving `conn` (`pg_backend_pid()`), to make sure after a lost
    /// answer that it is no longer working on the failed attempt.
    pid: Option<i32>,
}

/// Whether a backend may still be working on an audit append: not idle, and running (or, in a
/// transaction of a batch of more than ROWS_PER_STATEMENT rows, last ran) the append statement,
/// the head's read or a COMMIT. Judged by the statement too, not the pid alone, so that behind a
/// pooler whose server connections change hands, only an audit write is ever ended.
const STILL_APPENDING: &str = "pid = $1 AND state <> 'idle' AND (\
    query LIKE 'WITH moved AS (UPDATE audit_head %' \
    OR query LIKE 'SELECT seq, hash FROM audit_head %' OR query ILIKE 'commit%')";

/// How long the writer waits for the backend of a failed attempt to end it.
const BACKEND_GONE_WITHIN: Duration = Duration::from_secs(5);

impl Held {
    async fn get(&mut self, pool: &PgPool) -> Result<&mut sqlx::PgConnection, String> {
        let idle = self
            .used
            .is_none_or(|t| t.elapsed() > crate::db::IDLE_BEFORE_PING);
        if let Some(c) = self.conn.as_mut()
            && idle
            && sqlx::Connection::ping(&mut **c).await.is_err()
        {
            self.discard();
        }
        if self.conn.is_none() {
            let mut c = pool.acquire().await.map_err(|e| e.to_string())?;
            self.pid = backend_pid(&mut c).await.ok();
            self.conn = Some(c);
        }
        self.used = Some(std::time::Instant::now());
        Ok(self.conn.as_mut().expect("just set"))
    }

    /// Close the connection (it failed, or is in an unknown state) instead of pooling it again.
    fn discard(&mut self) {
        self.pid = None;
        if let Some(c) = self.conn.take() {
            drop(c.detach());
        }
    }

    /// A connection that answers a ping: after PostgreSQL restarted (or a proxy in between
    /// dropped its connections), the pool's idle connections are all broken; each is closed.
    async fn fresh(&mut self, pool: &PgPool) -> Result<&mut sqlx::PgConnection, String> {
        self.discard();
        for _ in 0..=pool.options().get_max_connections() {
            let mut c = pool.acquire().await.map_err(|e| e.to_string())?;
            // The backend's pid doubles as the ping.
            if let Ok(pid) = backend_pid(&mut c).await {
                self.used = Some(std::time::Instant::now());
                self.pid = Some(pid);
                return Ok(&mut **self.conn.insert(c));
            }
            drop(c.detach());
        }
        Err("no working connection to PostgreSQL".into())
    }

    /// Append `entries` after the head, in order (see `write`). When that fails (other than by
    /// PostgreSQL refusing the statement), the connection is closed and the append tried once
    /// more on one that works, unless the failed attempt's rows turn out to be committed (the
    /// reply was lost, not the statement).
    pub(super) async fn write(
        &mut self,
        pool: &PgPool,
        head: &mut Option<Head>,
        entries: &[&Entry],
    ) -> Result<Vec<i64>, WriteError> {
        let result = self.write_once_or_twice(pool, head, entries).await;
        if pool.options().get_max_connections() < 2 {
            // A pool of one: keeping it would starve every other query.
            self.conn = None;
        }
        result
    }

    async fn write_once_or_twice(
        &mut self,
        pool: &PgPool,
        head: &mut Option<Head>,
        entries: &[&Entry],
    ) -> Result<Vec<i64>, WriteError> {
        let mut sent = None;
        // Without any connection (PostgreSQL unreachable for the pool's timeout) there is nothing
        // to try again on.
        let conn = self.get(pool).await?;
        let first = write(conn, head, entries, &mut sent).await;
        let Err(error) = first else { return first };
        *head = None;
        if error.refused {
            // PostgreSQL answered: the statement was rolled back, the connection works, and the
            // same statement would be refused again.
            return Err(error);
        }
        let failed_on = self.pid;
        let Ok(conn) = self.fresh(pool).await else {
            return Err(error);
        };
        // A statement whose answer was lost may have committed, or may still be running (its
        // backend waiting for the head row's lock, say, unaware that its client is gone): it is
        // ended first, so that what the check below finds is final and nothing is written twice.
        if let (Some(_), Some(pid)) = (&sent, failed_on)
            && let Err(e) = end_attempt(conn, pid).await
        {
            tracing::error!(error = %e, pid, "the failed audit write may still be running");
            self.discard();
            return Err(error);
        }
        if let Some((seq, hash)) = sent {
            let found: Result<Option<Vec<u8>>, _> =
                sqlx::query_scalar("SELECT hash FROM audit_event WHERE seq = $1")
                    .bind(seq)
                    .fetch_optional(&mut *conn)
                    .await;
            match found {
                // The rows are contiguous, ending at the last one sent.
                Ok(Some(h)) if h == hash => {
                    return Ok((seq + 1 - entries.len() as i64..=seq).collect());
                }
                Ok(_) => {}
                Err(_) => {
                    self.discard();
                    return Err(error);
                }
            }
        }
        let again = write(conn, head, entries, &mut None).await;
        if again.is_err() {
            self.discard();
            *head = None;
        }
        again
    }
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
}

/// End what backend `pid` may still be doing of a failed append (terminate it, as
/// `pg_terminate_backend` does for its own role's backends) and wait until it is done: its
/// transaction is then committed or rolled back for good.
async fn end_attempt(conn: &mut sqlx::PgConnection, pid: i32) -> Result<(), String> {
    let err = |e: sqlx::Error| e.to_string();
    let ended: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {STILL_APPENDING}"
    )))
    .bind(pid)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    if ended.is_some() {
        tracing::warn!(
            pid,
            "ended the PostgreSQL backend of a failed audit write that was still running"
        );
    }
    let still = format!("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE {STILL_APPENDING})");
    let deadline = tokio::time::Instant::now() + BACKEND_GONE_WITHIN;
    loop {
        let busy: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(still.as_str()))
            .bind(pid)
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
        if !busy {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "backend {pid} is still busy after {BACKEND_GONE_WITHIN:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Append `entries` after the head, in order. With a known head (this writer appended last, the
/// usual case) it is one round trip per ROWS_PER_STATEMENT entries; when another replica has
/// moved the head, the head is read again and the append retried, and under sustained contention
/// the writer locks the head row (`SELECT ... FOR UPDATE`) and always succeeds.
pub(super) async fn write(
    conn: &mut sqlx::PgConnection,
    head: &mut Option<Head>,
    entries: &[&Entry],
    sent: &mut Option<Head>,
) -> Result<Vec<i64>, WriteError> {
    for _ in 0..OPTIMISTIC_ATTEMPTS {
        let from = match head.take() {
            Some(h) => h,
            None => {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut *conn)
                    .await?
            }
        };
        if let Some((seqs, new_head)) = write_after(conn, Some(from), entries, sent).await? {
            *head = Some(new_head);
            return Ok(seqs);
        }
    }
    let (seqs, new_head) = write_after(conn, None, entries, sent)
        .await?
        .ok_or_else(|| WriteError::from("the audit head moved under its lock".to_owned()))?;
    *head = Some(new_head);
    Ok(seqs)
}

/// Append after `from`; `None` when the head is no longer `from` (nothing was written). Without
/// `from`, the head row is locked and read first. `sent`: the last row (seq, hash) whose commit
/// was asked for (when the answer is lost, the rows may or may not be in the log).
async fn write_after(
    conn: &mut sqlx::PgConnection,
    from: Option<Head>,
    entries: &[&Entry],
    sent: &mut Option<Head>,
) -> Result<Option<(Vec<i64>, Head)>, WriteError> {
    let from = match from {
        Some(from) if entries.len() <= ROWS_PER_STATEMENT => {
            // One statement, one implicit transaction, one round trip.
            let rows = chain(from, entries);
            *sent = Some(last_of(&rows));
            let written = insert_rows(conn, &rows).await?;
            return Ok((written == rows.len() as u64).then(|| appended(&rows)));
        }
        from => from,
    };
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let from = match from {
        Some(h) => h,
        None => {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?
        }
    };
    let rows = chain(from, entries);
    // One statement per ROWS_PER_STATEMENT rows. The first statement's update of the head row
    // holds its lock to COMMIT.
    for (i, chunk) in rows.chunks(ROWS_PER_STATEMENT).enumerate() {
        let written = insert_rows(&mut tx, chunk).await?;
        if written != chunk.len() as u64 {
            if i == 0 {
                // The head moved before this batch began: nothing of it exists (rolled back).
                return Ok(None);
            }
            return Err(WriteError::from(format!(
                "the audit head moved during a batch ({written} of {} rows written)",
                chunk.len()
            )));
        }
    }
    *sent = Some(last_of(&rows));
    tx.commit().await?;
    Ok(Some(appended(&rows)))
}

/// Insert rows (each: seq, entry, prev hash, hash) and move the head from the first row's
/// previous (seq - 1, prev hash) to the last row's, in one statement (the batch padded to the
/// next statement size). Returns the rows inserted: all, or none when the head was elsewhere.
async fn insert_rows(conn: &mut sqlx::PgConnection, rows: &[Row<'_>]) -> Result<u64, sqlx::Error> {
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    let size = rows.len().next_power_of_two();
    let statement: &'static str = &INSERT_ROWS[size.trailing_zeros() as usize];
    let mut query = sqlx::query(statement)
        .bind(last.0)
        .bind(last.3.as_slice())
        .bind(first.0 - 1)
        .bind(first.2.as_slice());
    for (seq, e, prev_hash, hash) in rows {
        query = bind_row(query, Some(*seq), e, prev_hash, hash);
    }
    for _ in rows.len()..size {
        query = bind_row(query, None, &PADDING, &[], &[]);
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// An append statement with (some of) its values bound.
type Append<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Bind one row's values in COLUMNS' order, as borrowed fields of the entry: nothing is copied
/// but into the statement's buffer. A row without `seq` is padding.
fn bind_row<'q>(
    query: Append<'q>,
    seq: Option<i64>,
    e: &'q Entry,
    prev_hash: &'q [u8],
    hash: &'q [u8],
) -> Append<'q> {
    query
        .bind(seq)
        .bind(e.audit_id)
        .bind(e.stage.as_str())
        .bind(e.outcome.as_str())
        .bind(e.received_at_us)
        .bind(e.completed_at_us)
        .bind(e.request_id.as_deref())
        .bind(e.subject.as_deref())
        .bind(e.issuer.as_deref())
        .bind(e.groups.as_slice())
        .bind(e.decision.as_deref())
        .bind(e.source_ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(e.action.as_deref())
        .bind(e.http_method.as_deref())
        .bind(e.http_path.as_deref())
        .bind(e.cluster.as_deref())
        .bind(e.namespace.as_deref())
        .bind(e.resource_kind.as_deref())
        .bind(e.resource_name.as_deref())
        .bind(e.request_summary.as_deref())
        .bind(e.http_status)
        .bind(e.problem_type.as_deref())
        .bind(e.upstream_error.as_deref())
        .bind(e.result.as_deref())
        .bind(e.dry_run)
        .bind(e.replay)
        .bind(e.idempotency_key.as_deref())
        .bind(e.delegated_by.as_deref())
        .bind(prev_hash)
        .bind(hash)
}

/// Why a write failed.
#[derive(Debug, Clone)]
pub(super) struct WriteError {
    pub(super) message: String,
    /// PostgreSQL answered and refused the statement for what it holds or where it writes (data,
    /// constraint, missing table or privilege, a trigger's exception), rather than could not be
    /// reached, shut down, failed over or ran out of something: trying again will not help
    /// until someone changes the database.
    pub(super) refused: bool,
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        let refused = match &e {
            // SQLSTATE classes: 22 data exception, 23 integrity constraint violation, 42 syntax
            // error or access rule violation, 44 WITH CHECK OPTION, P0 raised by PL/pgSQL.
            sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                ["22", "23", "42", "44", "P0"]
                    .iter()
                    .any(|k| c.starts_with(k))
            }),
            _ => false,
        };
        Self {
            message: e.to_string(),
            refused,
        }
    }
}

impl From<String> for WriteError {
    fn from(message: String) -> Self {
        Self {
            message,
            refused: false,
        }
    }
}
