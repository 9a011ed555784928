//! The audit log in PostgreSQL: append-only (triggers refuse UPDATE, DELETE and TRUNCATE),
//! hash-chained in one total order across replicas (every append moves the single `audit_head`
//! row from the head it was chained to, in the same statement), write-ahead (the gateway commits
//! the intent before calling a cluster and fails closed), batched (concurrent appends share one
//! statement), queryable, and verifiable. All audit SQL lives in this module.

pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use ring::digest;
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::metrics::Metrics;

/// One audit entry, as written. The field order is the canonical form that is hashed.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct Entry {
    pub audit_id: Uuid,
    /// `intent`, `outcome`, `rejected`, `outcome_unknown` or `read`.
    pub stage: String,
    /// `pending`, `succeeded`, `failed`, `denied`, `unauthenticated`, `invalid` or `unknown`.
    pub outcome: String,
    pub received_at_us: i64,
    pub completed_at_us: Option<i64>,
    pub request_id: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub groups: Vec<String>,
    /// The grant that allowed it, or why it was denied.
    pub decision: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: Option<String>,
    pub http_method: Option<String>,
    pub http_path: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub resource_kind: Option<String>,
    pub resource_name: Option<String>,
    /// The request, redacted (env values and secret-looking annotations masked), as JSON text.
    pub request_summary: Option<String>,
    pub http_status: Option<i32>,
    pub problem_type: Option<String>,
    pub upstream_error: Option<String>,
    /// What changed (revision before/after, replicas before/after, ...), as JSON text.
    pub result: Option<String>,
    pub dry_run: bool,
    pub replay: bool,
    pub idempotency_key: Option<String>,
    /// The subject of the bot that acted for `subject`, when one did. Left out of the
    /// canonical form when absent, so entries from before delegation existed hash as they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated_by: Option<String>,
}

impl Entry {
    /// PostgreSQL's text cannot hold NUL: one in any field (a name decoded from a URL, say)
    /// would fail the statement, and with it every entry batched with this one. Each NUL becomes
    /// U+FFFD before the entry is hashed and written.
    fn scrub(&mut self) {
        let fields = [
            &mut self.request_id,
            &mut self.subject,
            &mut self.issuer,
            &mut self.decision,
            &mut self.source_ip,
            &mut self.user_agent,
            &mut self.action,
            &mut self.http_method,
            &mut self.http_path,
            &mut self.cluster,
            &mut self.namespace,
            &mut self.resource_kind,
            &mut self.resource_name,
            &mut self.request_summary,
            &mut self.problem_type,
            &mut self.upstream_error,
            &mut self.result,
            &mut self.idempotency_key,
            &mut self.delegated_by,
        ];
        for s in fields.into_iter().flatten() {
            scrub(s);
        }
        self.groups.iter_mut().for_each(scrub);
    }
}

/// Replace each NUL of `s` with U+FFFD (as stored, and as filters must match it).
pub fn scrub(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

/// A stored entry with its place in the chain.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub seq: i64,
    #[sqlx(flatten)]
    pub entry: Entry,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// SHA-256(previous hash || canonical JSON of (seq, entry)).
pub fn chain_hash(prev: &[u8], seq: i64, entry: &Entry) -> Vec<u8> {
    let canonical = serde_json::to_vec(&(seq, entry)).expect("an entry serializes");
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(&canonical);
    ctx.finish().as_ref().to_vec()
}

pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Why the audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot be written: {0}")]
pub struct AuditError(pub String);

struct Batch {
    entries: Vec<Entry>,
    /// The caller waiting for the commit (`append`, `flush`), or nobody (`record`): the writer
    /// then logs and counts a failure itself.
    reply: Option<oneshot::Sender<Result<Vec<i64>, String>>>,
    /// When it was handed over: the writer times `record`ed entries itself.
    queued: std::time::Instant,
}

/// How often queued entries whose write failed are tried again when nothing else is written.
const RETRY_QUEUED_EVERY: Duration = Duration::from_secs(1);
/// How long queued entries that PostgreSQL refuses (it answers, with an error such as a missing
/// table or a constraint) are tried before they are given up. While PostgreSQL cannot be reached
/// they are kept for as long as the process runs: they are the outcomes of actions that were
/// under way when it went away (no new intent, so no new action, can be written meanwhile).
const REFUSED_FOR: Duration = Duration::from_secs(300);
/// While appends keep failing, how often the writer says so again.
const STILL_FAILING_EVERY: Duration = Duration::from_secs(30);

/// Why a write failed.
#[derive(Debug, Clone)]
struct WriteError {
    message: String,
    /// PostgreSQL answered and refused the statement for what it holds or where it writes (data,
    /// constraint, missing table or privilege, a trigger's exception), rather than could not be
    /// reached, shut down, failed over or ran out of something: trying again will not help
    /// until someone changes the database.
    refused: bool,
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

/// A queued entry whose write failed, and since when PostgreSQL has refused it (None while it
/// could not be reached).
struct Unwritten {
    entry: Entry,
    refused_since: Option<std::time::Instant>,
}

/// Leave out of `unwritten` the entries the log already holds (same audit id and stage).
async fn drop_written(pool: &PgPool, unwritten: &mut Vec<Unwritten>) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = unwritten.iter().map(|u| u.entry.audit_id).collect();
    let present: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT audit_id, stage FROM audit_event WHERE audit_id = ANY($1)")
            .bind(&ids)
            .fetch_all(pool)
            .await?;
    unwritten.retain(|u| {
        !present
            .iter()
            .any(|(id, st)| *id == u.entry.audit_id && *st == u.entry.stage)
    });
    Ok(())
}

/// Log (and count) each entry as lost.
fn give_up(lost: impl IntoIterator<Item = Entry>, why: &str, metrics: Option<&Metrics>) {
    for lost in lost {
        tracing::error!(error = %why, audit_id = %lost.audit_id, stage = %lost.stage, "a queued audit entry was not written");
        if let Some(m) = metrics {
            m.audit_entries_lost.inc();
        }
    }
}

/// Says when appends start failing, again at most every STILL_FAILING_EVERY while they go on
/// (the writer tries every second), and when they work again.
#[derive(Default)]
struct Failing {
    since: Option<std::time::Instant>,
    said: Option<std::time::Instant>,
    failures: u64,
}

impl Failing {
    fn failed(&mut self, error: &WriteError, kept: usize) {
        let now = std::time::Instant::now();
        self.failures += 1;
        let since = *self.since.get_or_insert(now);
        if self.said.is_some_and(|t| now - t < STILL_FAILING_EVERY) {
            return;
        }
        self.said = Some(now);
        if self.failures == 1 {
            tracing::error!(error = %error.message, refused = error.refused, kept, "audit append failed");
        } else {
            tracing::error!(
                error = %error.message,
                refused = error.refused,
                kept,
                failures = self.failures,
                failing_for_s = (now - since).as_secs(),
                "audit appends still failing"
            );
        }
    }

    fn worked(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                failures = self.failures,
                failed_for_ms = since.elapsed().as_millis() as u64,
                "audit appends work again"
            );
        }
        self.said = None;
        self.failures = 0;
    }
}

/// The appender: requests hand entries to one task that writes whatever is waiting as one batch
/// chained to the head (see `write`).
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Batch>,
    pool: PgPool,
    /// Append latencies and failures (the writer records those of `record`ed entries).
    metrics: Option<Arc<Metrics>>,
    /// Actions under way: intent written, outcome not yet queued (see `Pending`).
    under_way: Arc<std::sync::atomic::AtomicUsize>,
}

/// An action whose intent is written and whose outcome is not queued yet (`AuditLog::pending`).
/// Dropped before `finish` (its request was dropped: the server stopped before the action ended,
/// or the handler panicked), it queues an `outcome_unknown` entry, so that the intent is closed
/// at once rather than left open until a later start-up's recovery.
pub struct Pending<'a> {
    log: &'a AuditLog,
    intent: Option<Entry>,
}

impl Pending<'_> {
    /// Queue the action's outcome, made from its intent (see `AuditLog::record`).
    pub async fn finish(mut self, outcome_of: impl FnOnce(Entry) -> Entry) {
        let intent = self.intent.take().expect("finished once");
        // Dropped while waiting for room in a full queue, the outcome is lost and the intent left
        // open, for recovery (`keep_recovering`) to close.
        self.log.record(vec![outcome_of(intent)]).await;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(intent) = self.intent.take() {
            let unknown = outcome_unknown(
                intent,
                "kubegate stopped before the action ended (its request was dropped); the cluster may or may not have changed",
            );
            tracing::warn!(audit_id = %unknown.audit_id, "an action was dropped before it ended; its outcome is recorded as unknown");
            if self.log.record_now(unknown)
                && let Some(m) = &self.log.metrics
            {
                m.audit_outcomes_unknown
                    .with_label_values(&["shutdown"])
                    .inc();
            }
        }
        self.log
            .under_way
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The entry that closes `intent` when what became of its action is not known.
fn outcome_unknown(intent: Entry, why: &str) -> Entry {
    Entry {
        stage: "outcome_unknown".into(),
        outcome: "unknown".into(),
        completed_at_us: Some(now_us()),
        upstream_error: Some(why.into()),
        ..intent
    }
}

const COLUMNS: &str = "seq, audit_id, stage, outcome, received_at_us, completed_at_us, request_id, subject, issuer, groups, decision, source_ip, user_agent, action, http_method, http_path, cluster, namespace, resource_kind, resource_name, request_summary, http_status, problem_type, upstream_error, result, dry_run, replay, idempotency_key, delegated_by, prev_hash, hash";

/// The writer task: takes whatever is waiting, writes it as one batch chained to the head (see
/// `write`), answers the callers that wait, and keeps `record`ed entries whose write failed.
async fn write_batches(
    mut rx: mpsc::Receiver<Batch>,
    writer: PgPool,
    counts: Option<Arc<Metrics>>,
) {
    // The chain head as this writer last left it (None: read it from the database).
    let mut head: Option<Head> = None;
    let mut conn = Held::default();
    // Queued entries (`record`) whose write failed, in order: tried again every second, ahead of
    // the batch then due, until they are written (or, refused for REFUSED_FOR, given up).
    let mut unwritten: Vec<Unwritten> = Vec::new();
    let mut failing = Failing::default();
    // When `unwritten` is tried next: each second, not with every batch (a batch that carries
    // an entry PostgreSQL refuses costs a failed statement first).
    let mut retry_at = tokio::time::Instant::now();
    loop {
        let first = if unwritten.is_empty() {
            rx.recv().await
        } else {
            tokio::select! {
                b = rx.recv() => b,
                () = tokio::time::sleep_until(retry_at) => Some(Batch {
                    entries: Vec::new(),
                    reply: None,
                    queued: std::time::Instant::now(),
                }),
            }
        };
        let Some(first) = first else { break };
        let mut batches = vec![first];
        while batches.len() < 512 {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        let due = !unwritten.is_empty() && tokio::time::Instant::now() >= retry_at;
        if due {
            retry_at = tokio::time::Instant::now() + RETRY_QUEUED_EVERY;
        }
        // A write whose answer was lost may have been committed after all: entries are tried
        // again only once the log is known not to hold them.
        let retry = due && drop_written(&writer, &mut unwritten).await.is_ok();
        let retried = if retry { unwritten.len() } else { 0 };
        // The entries tried again, then those of this batch (`fresh`).
        let all: Vec<&Entry> = unwritten[..retried]
            .iter()
            .map(|u| &u.entry)
            .chain(batches.iter().flat_map(|b| b.entries.iter()))
            .collect();
        let fresh = &all[retried..];
        // Only flushes waiting: everything before them is written already.
        let together = if all.is_empty() {
            Ok(Vec::new())
        } else {
            conn.write(&writer, &mut head, &all).await
        };
        let (retried_result, fresh_result) = match together {
            Ok(mut seqs) => {
                seqs.drain(..retried);
                (Ok(()), Ok(seqs))
            }
            // Refused, perhaps because of an entry tried again: the entries of the requests
            // waiting now go on their own, so that one entry the log refuses holds up nobody.
            Err(e) if e.refused && retried > 0 && !fresh.is_empty() => {
                (Err(e), conn.write(&writer, &mut head, fresh).await)
            }
            Err(e) => (Err(e.clone()), Err(e)),
        };
        if let Some(m) = &counts {
            for b in batches
                .iter()
                .filter(|b| b.reply.is_none() && !b.entries.is_empty())
            {
                m.audit_appends.observe(b.queued.elapsed().as_secs_f64());
            }
        }
        match &retried_result {
            Ok(()) if retried > 0 => {
                tracing::info!(
                    count = retried,
                    "queued audit entries written after a failure"
                );
                unwritten.drain(..retried);
            }
            Ok(()) => {}
            Err(e) if e.refused => {
                let now = std::time::Instant::now();
                for u in &mut unwritten[..retried] {
                    u.refused_since.get_or_insert(now);
                }
            }
            Err(_) => {}
        }
        // What a flush waits for: everything queued before it, the entries tried again too.
        let everything = match (&retried_result, &fresh_result) {
            (Err(e), _) | (_, Err(e)) => Err(e.message.clone()),
            _ if !retry && !unwritten.is_empty() => {
                Err("queued audit entries not written yet; tried again every second".to_owned())
            }
            _ => Ok(Vec::new()),
        };
        let mut at = 0;
        let mut failed_fresh = false;
        for b in batches {
            let n = b.entries.len();
            match (&fresh_result, b.reply) {
                (_, Some(reply)) if n == 0 => {
                    let _ = reply.send(everything.clone());
                }
                (Ok(seqs), Some(reply)) => {
                    let _ = reply.send(Ok(seqs[at..at + n].to_vec()));
                }
                (Ok(_), None) => {}
                (Err(e), Some(reply)) => {
                    let _ = reply.send(Err(e.message.clone()));
                }
                (Err(e), None) => {
                    failed_fresh = true;
                    let refused_since = e.refused.then(std::time::Instant::now);
                    unwritten.extend(b.entries.into_iter().map(|entry| Unwritten {
                        entry,
                        refused_since,
                    }));
                }
            }
            at += n;
        }
        if failed_fresh {
            retry_at = retry_at.max(tokio::time::Instant::now() + RETRY_QUEUED_EVERY);
        }
        if (failed_fresh || (retried > 0 && retried_result.is_err()))
            && let Some(m) = &counts
        {
            m.audit_append_failures.inc();
        }
        // Refused for long enough: given up (recovery closes their intents, see `keep_recovering`).
        let lost: Vec<Unwritten> = unwritten
            .extract_if(.., |u| {
                u.refused_since.is_some_and(|t| t.elapsed() >= REFUSED_FOR)
            })
            .collect();
        if !lost.is_empty() {
            give_up(
                lost.into_iter().map(|u| u.entry),
                &format!("refused by PostgreSQL for {} s", REFUSED_FOR.as_secs()),
                counts.as_deref(),
            );
        }
        if let Some(e) = retried_result
            .as_ref()
            .err()
            .or(fresh_result.as_ref().err())
        {
            failing.failed(e, unwritten.len());
        } else if unwritten.is_empty() {
            failing.worked();
        }
    }
    give_up(
        unwritten.into_iter().map(|u| u.entry),
        "the audit writer stopped",
        counts.as_deref(),
    );
}

impl AuditLog {
    pub fn start(pool: PgPool, metrics: Option<Arc<Metrics>>) -> Self {
        let (tx, rx) = mpsc::channel::<Batch>(4096);
        tokio::spawn(write_batches(rx, pool.clone(), metrics.clone()));
        Self {
            tx,
            pool,
            metrics,
            under_way: Arc::default(),
        }
    }

    /// Append entries (in order); returns their sequence numbers once committed.
    pub async fn append(&self, entries: Vec<Entry>) -> Result<Vec<i64>, AuditError> {
        let started = std::time::Instant::now();
        let result = self.append_unmeasured(entries).await;
        if let Some(m) = &self.metrics {
            m.audit_appends.observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                m.audit_append_failures.inc();
            }
        }
        result
    }

    /// Queue entries (in order, after everything appended or queued before them) without waiting
    /// for their commit: for a record of what has already happened (an action's outcome), which
    /// nothing that follows depends on. The queue is bounded, so a slow database still slows the
    /// callers down. When their write fails (counted in `audit_append_failures_total`), the
    /// writer keeps them and tries them again every second, ahead of the batch then due,
    /// leaving out any a lost answer had committed after all: for as long as
    /// PostgreSQL cannot be reached, and for REFUSED_FOR while it refuses them (then they are
    /// logged as lost, and recovery, `close_orphaned_intents` and `keep_recovering`, closes their
    /// intents as `outcome_unknown`); a refused entry never holds up the entries queued after it.
    /// `flush` waits for what was queued.
    pub async fn record(&self, mut entries: Vec<Entry>) {
        entries.iter_mut().for_each(Entry::scrub);
        let batch = Batch {
            entries,
            reply: None,
            queued: std::time::Instant::now(),
        };
        if let Err(mpsc::error::SendError(lost)) = self.tx.send(batch).await {
            give_up(
                lost.entries,
                "the audit writer stopped",
                self.metrics.as_deref(),
            );
            if let Some(m) = &self.metrics {
                m.audit_append_failures.inc();
            }
        }
    }

    /// `record` without waiting for room in the queue (for `Pending`'s drop, which cannot wait): an
    /// entry that finds the queue full is logged as lost (false).
    fn record_now(&self, mut entry: Entry) -> bool {
        entry.scrub();
        let batch = Batch {
            entries: vec![entry],
            reply: None,
            queued: std::time::Instant::now(),
        };
        if let Err(e) = self.tx.try_send(batch) {
            let why = match &e {
                mpsc::error::TrySendError::Full(_) => "the audit queue is full",
                mpsc::error::TrySendError::Closed(_) => "the audit writer stopped",
            };
            give_up(e.into_inner().entries, why, self.metrics.as_deref());
            if let Some(m) = &self.metrics {
                m.audit_append_failures.inc();
            }
            return false;
        }
        true
    }

    /// An action is under way: its intent is written. Its outcome goes through `Pending::finish`.
    pub fn pending(&self, intent: Entry) -> Pending<'_> {
        self.under_way
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Pending {
            log: self,
            intent: Some(intent),
        }
    }

    /// Wait (at most `within`) until no action is under way: at shutdown, after the server has
    /// stopped, the requests it dropped have queued their `outcome_unknown` entries.
    pub async fn until_no_action_under_way(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.under_way.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Wait until everything appended or queued (`record`) before this call is written (Ok), or
    /// the batch it went with failed (Err; queued entries are then tried again, see `record`).
    /// Audit reads call it first, so that an answer's outcome is in what they read.
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.append_unmeasured(Vec::new()).await.map(|_| ())
    }

    /// `flush` until it succeeds, for at most `within` (at shutdown: the queue's last chance).
    pub async fn drain(&self, within: Duration) -> Result<(), AuditError> {
        let mut last = AuditError("timed out".into());
        let attempts = async {
            loop {
                match self.flush().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
                tokio::time::sleep(RETRY_QUEUED_EVERY).await;
            }
        };
        match tokio::time::timeout(within, attempts).await {
            Ok(done) => done,
            Err(_) => Err(last),
        }
    }

    async fn append_unmeasured(&self, mut entries: Vec<Entry>) -> Result<Vec<i64>, AuditError> {
        entries.iter_mut().for_each(Entry::scrub);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Batch {
                entries,
                reply: Some(reply),
                queued: std::time::Instant::now(),
            })
            .await
            .map_err(|_| AuditError("the audit writer stopped".into()))?;
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(Ok(seqs))) => Ok(seqs),
            Ok(Ok(Err(e))) => Err(AuditError(e)),
            Ok(Err(_)) => Err(AuditError("the audit writer stopped".into())),
            Err(_) => Err(AuditError("timed out".into())),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Close intents left without an outcome (an action cut short by a crash) with
    /// `outcome_unknown`: at start-up, those received more than `older_than` ago (another
    /// replica's actions may still be under way; `received_at_us` is by the clock of the replica
    /// that wrote them). The more recent ones are left to `keep_recovering`, which goes on from
    /// the returned `Recovery`.
    pub async fn close_orphaned_intents(
        &self,
        older_than: Duration,
    ) -> Result<(usize, Recovery), AuditError> {
        let err = |e: sqlx::Error| AuditError(e.to_string());
        let head: i64 = sqlx::query_scalar("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        let open = self.open_intents(0, head).await?;
        let cutoff = now_us() - older_than.as_micros() as i64;
        let (old, recent): (Vec<_>, Vec<_>) = open
            .into_iter()
            .partition(|(_, e)| e.received_at_us < cutoff);
        let n = self.close(old).await?;
        Ok((
            n,
            Recovery {
                checked: recent.first().map_or(head, |(seq, _)| seq - 1),
                seen: head,
                every: older_than.max(Duration::from_secs(1)),
            },
        ))
    }

    /// After start-up: every `older_than`, close the intents still without an outcome among those
    /// written before the previous round (so each has been in the log for at least that long, by
    /// this process's own clock). This closes the intents of a replica that crashed while this
    /// one runs (or of this one's start-up, shortly after a crash) without waiting for a restart.
    /// Two replicas whose rounds coincide may both close one intent (two `outcome_unknown`
    /// entries); rounds come at most once a second and usually minutes apart.
    pub async fn keep_recovering(self, mut r: Recovery) {
        loop {
            tokio::time::sleep(r.every).await;
            let round = async {
                let head: i64 = sqlx::query_scalar("SELECT seq FROM audit_head WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| AuditError(e.to_string()))?;
                let open = self.open_intents(r.checked, r.seen).await?;
                self.close(open).await?;
                Ok::<_, AuditError>(head)
            };
            match round.await {
                Ok(head) => {
                    r.checked = r.seen;
                    r.seen = head;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not check for audit intents left without an outcome; trying again later")
                }
            }
        }
    }

    /// The intents with `after < seq <= upto` that have no other entry (outcome, outcome_unknown).
    async fn open_intents(&self, after: i64, upto: i64) -> Result<Vec<(i64, Entry)>, AuditError> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let rows: Vec<OpenIntent> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM audit_event i WHERE i.seq > $1 AND i.seq <= $2 AND i.stage = 'intent' \
             AND NOT EXISTS (SELECT 1 FROM audit_event o WHERE o.audit_id = i.audit_id AND o.stage <> 'intent') ORDER BY seq",
            COLUMNS.replace(", prev_hash, hash", "")
        )))
        .bind(after)
        .bind(upto)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AuditError(e.to_string()))?;
        Ok(rows.into_iter().map(|r| (r.seq, r.entry)).collect())
    }

    async fn close(&self, orphans: Vec<(i64, Entry)>) -> Result<usize, AuditError> {
        let n = orphans.len();
        if n == 0 {
            return Ok(0);
        }
        let closing = orphans
            .into_iter()
            .map(|(_, i)| outcome_unknown(i, "kubegate stopped between the intent and the outcome; the cluster may or may not have changed"))
            .collect();
        self.append(closing).await?;
        tracing::warn!(count = n, "closed audit intents left without an outcome");
        if let Some(m) = &self.metrics {
            m.audit_outcomes_unknown
                .with_label_values(&["recovery"])
                .inc_by(n as u64);
        }
        Ok(n)
    }
}

/// Where recovery of intents left without an outcome stands (see `AuditLog::keep_recovering`).
#[derive(Debug)]
pub struct Recovery {
    /// Every intent up to this seq has an outcome or was closed.
    checked: i64,
    /// The head when the previous round began: the next round checks up to it.
    seen: i64,
    every: Duration,
}

#[derive(sqlx::FromRow)]
struct OpenIntent {
    seq: i64,
    #[sqlx(flatten)]
    entry: Entry,
}

const ROWS_PER_STATEMENT: usize = 8;

/// Rows go in only if the head is still where the writer expects it ($34, $35), and the head moves
/// to the last row ($32, $33) in the same statement: one round trip for a batch of up to
/// ROWS_PER_STATEMENT entries. PostgreSQL serializes concurrent writers on the head row; a writer
/// whose head is stale (another replica appended) inserts nothing.
const INSERT_BATCH: &str = "WITH moved AS (UPDATE audit_head SET seq = $32, hash = $33 WHERE id = 1 AND seq = $34 AND hash = $35 RETURNING 1) \
    INSERT INTO audit_event (seq, audit_id, stage, outcome, received_at_us, completed_at_us, request_id, subject, issuer, groups, decision, source_ip, user_agent, action, http_method, http_path, cluster, namespace, resource_kind, resource_name, request_summary, http_status, problem_type, upstream_error, result, dry_run, replay, idempotency_key, delegated_by, prev_hash, hash) \
    SELECT seq, audit_id, stage, outcome, received_at_us, completed_at_us, request_id, subject, issuer, ARRAY(SELECT jsonb_array_elements_text(groups::jsonb)), decision, source_ip, user_agent, action, http_method, http_path, cluster, namespace, resource_kind, resource_name, request_summary, http_status, problem_type, upstream_error, result, dry_run, replay, idempotency_key, delegated_by, prev_hash, hash \
    FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::int[], $23::text[], $24::text[], $25::text[], $26::bool[], $27::bool[], $28::text[], $29::text[], $30::bytea[], $31::bytea[]) \
    AS t(seq, audit_id, stage, outcome, received_at_us, completed_at_us, request_id, subject, issuer, groups, decision, source_ip, user_agent, action, http_method, http_path, cluster, namespace, resource_kind, resource_name, request_summary, http_status, problem_type, upstream_error, result, dry_run, replay, idempotency_key, delegated_by, prev_hash, hash) \
    WHERE EXISTS (SELECT 1 FROM moved)";

/// The head of the chain: the last sequence number and its hash.
type Head = (i64, Vec<u8>);

/// How many times a writer retries with a fresh head before it takes the head row's lock first.
const OPTIMISTIC_ATTEMPTS: usize = 3;

/// The writer's own connection, kept between batches. A connection handed back to sqlx's pool is
/// pinged on the way (a second round trip per batch, and PostgreSQL wakes for it); the writer
/// keeps one instead and checks it only after it sat idle (as the pool does). After an error it is
/// closed, never pooled again, and the append is tried once more on a connection that works.
#[derive(Default)]
struct Held {
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
    async fn write(
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
async fn write(
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

/// One audit row: its sequence number, the entry, the previous hash and its hash.
type Row<'a> = (i64, &'a Entry, Vec<u8>, Vec<u8>);

fn chain<'a>((mut seq, mut hash): Head, entries: &[&'a Entry]) -> Vec<Row<'a>> {
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let next = chain_hash(&hash, seq, e);
        rows.push((seq, *e, hash.clone(), next.clone()));
        hash = next;
    }
    rows
}

fn appended(rows: &[Row<'_>]) -> (Vec<i64>, Head) {
    (rows.iter().map(|r| r.0).collect(), last_of(rows))
}

/// The head a batch leaves: its last row's seq and hash.
fn last_of(rows: &[Row<'_>]) -> Head {
    let last = rows.last().expect("a batch has entries");
    (last.0, last.3.clone())
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
    // Several statements of a few rows each: one big Bind message meets Nagle's algorithm and
    // the server's delayed ACK on the socket (sqlx does not set TCP_NODELAY; a 40 ms stall per
    // batch, measured). The first statement's update of the head row holds its lock to COMMIT.
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
/// previous (seq - 1, prev hash) to the last row's, in one statement. Returns the rows inserted:
/// all, or none when the head was elsewhere.
async fn insert_rows(conn: &mut sqlx::PgConnection, rows: &[Row<'_>]) -> Result<u64, sqlx::Error> {
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    macro_rules! col {
        ($f:expr) => {
            rows.iter().map($f).collect::<Vec<_>>()
        };
    }
    // One statement whatever the batch size (UNNEST of one array per column), so it is prepared
    // once and cached; groups travel as JSON text because PostgreSQL arrays cannot be ragged.
    let groups: Vec<String> =
        col!(|r| serde_json::to_string(&r.1.groups).unwrap_or_else(|_| "[]".into()));
    let done = sqlx::query(INSERT_BATCH)
        .bind(col!(|r| r.0))
        .bind(col!(|r| r.1.audit_id))
        .bind(col!(|r| r.1.stage.clone()))
        .bind(col!(|r| r.1.outcome.clone()))
        .bind(col!(|r| r.1.received_at_us))
        .bind(col!(|r| r.1.completed_at_us))
        .bind(col!(|r| r.1.request_id.clone()))
        .bind(col!(|r| r.1.subject.clone()))
        .bind(col!(|r| r.1.issuer.clone()))
        .bind(groups)
        .bind(col!(|r| r.1.decision.clone()))
        .bind(col!(|r| r.1.source_ip.clone()))
        .bind(col!(|r| r.1.user_agent.clone()))
        .bind(col!(|r| r.1.action.clone()))
        .bind(col!(|r| r.1.http_method.clone()))
        .bind(col!(|r| r.1.http_path.clone()))
        .bind(col!(|r| r.1.cluster.clone()))
        .bind(col!(|r| r.1.namespace.clone()))
        .bind(col!(|r| r.1.resource_kind.clone()))
        .bind(col!(|r| r.1.resource_name.clone()))
        .bind(col!(|r| r.1.request_summary.clone()))
        .bind(col!(|r| r.1.http_status))
        .bind(col!(|r| r.1.problem_type.clone()))
        .bind(col!(|r| r.1.upstream_error.clone()))
        .bind(col!(|r| r.1.result.clone()))
        .bind(col!(|r| r.1.dry_run))
        .bind(col!(|r| r.1.replay))
        .bind(col!(|r| r.1.idempotency_key.clone()))
        .bind(col!(|r| r.1.delegated_by.clone()))
        .bind(col!(|r| r.2.clone()))
        .bind(col!(|r| r.3.clone()))
        .bind(last.0)
        .bind(&last.3)
        .bind(first.0 - 1)
        .bind(&first.2)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub subject: Option<String>,
    pub delegated_by: Option<String>,
    pub action: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<String>,
    pub request_id: Option<String>,
    pub audit_id: Option<Uuid>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Entries strictly older (lower seq) than this, for cursor pagination.
    pub before_seq: Option<i64>,
}

fn filtered(f: &Filter) -> QueryBuilder<Postgres> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_event WHERE true"));
    let mut eq = |col: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {col} = ")).push_bind(v.clone());
        }
    };
    eq("subject", &f.subject);
    eq("delegated_by", &f.delegated_by);
    eq("action", &f.action);
    eq("cluster", &f.cluster);
    eq("namespace", &f.namespace);
    eq("resource_name", &f.resource);
    eq("outcome", &f.outcome);
    eq("request_id", &f.request_id);
    if let Some(id) = f.audit_id {
        q.push(" AND audit_id = ").push_bind(id);
    }
    if let Some(t) = f.from_us {
        q.push(" AND received_at_us >= ").push_bind(t);
    }
    if let Some(t) = f.to_us {
        q.push(" AND received_at_us < ").push_bind(t);
    }
    if let Some(s) = f.before_seq {
        q.push(" AND seq < ").push_bind(s);
    }
    q.push(" ORDER BY seq DESC");
    q
}

/// Newest first, at most `limit`.
pub async fn query(pool: &PgPool, f: &Filter, limit: i64) -> Result<Vec<Stored>, sqlx::Error> {
    let mut q = filtered(f);
    q.push(" LIMIT ").push_bind(limit);
    q.build_query_as::<Stored>().fetch_all(pool).await
}

/// Every matching entry, newest first, as a stream (export without loading it all): pages of
/// 500 by sequence number, so no long-lived cursor or transaction is held.
pub fn stream(pool: PgPool, f: Filter) -> impl futures::Stream<Item = Result<Stored, sqlx::Error>> {
    type State = (PgPool, Filter, Vec<Stored>, bool);
    futures::stream::unfold(
        (pool, f, Vec::new(), false),
        |(pool, mut f, mut buf, done): State| async move {
            if buf.is_empty() && !done {
                match query(&pool, &f, 500).await {
                    Ok(rows) => {
                        let finished = rows.len() < 500;
                        if let Some(last) = rows.last() {
                            f.before_seq = Some(last.seq);
                        }
                        buf = rows.into_iter().rev().collect();
                        return buf.pop().map(|row| (Ok(row), (pool, f, buf, finished)));
                    }
                    Err(e) => return Some((Err(e), (pool, f, Vec::new(), true))),
                }
            }
            buf.pop().map(|row| (Ok(row), (pool, f, buf, done)))
        },
    )
}

/// A signed statement of the chain head, publishable outside the database.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub signed_at_us: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// The signed message: `kubegate-audit-checkpoint:v1:<seq>:<hex hash>:<signed_at_us>`.
pub fn checkpoint_message(seq: i64, hash: &[u8], signed_at_us: i64) -> Vec<u8> {
    format!(
        "kubegate-audit-checkpoint:v1:{seq}:{}:{signed_at_us}",
        hex(hash)
    )
    .into_bytes()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An Ed25519 key for checkpoints, from a PKCS#8 PEM file.
pub struct CheckpointKey {
    pair: ring::signature::Ed25519KeyPair,
    pub key_id: String,
}

impl CheckpointKey {
    pub fn from_pem_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "KUBEGATE_AUDIT_SIGNING_KEY: cannot read {}: {e}",
                path.display()
            )
        })?;
        let der = pem::parse(text)
            .map_err(|e| anyhow::anyhow!("KUBEGATE_AUDIT_SIGNING_KEY: not PEM: {e}"))?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.contents())
            .map_err(|e| {
                anyhow::anyhow!("KUBEGATE_AUDIT_SIGNING_KEY: not an Ed25519 PKCS#8 key: {e}")
            })?;
        use ring::signature::KeyPair;
        let key_id =
            hex(&digest::digest(&digest::SHA256, pair.public_key().as_ref()).as_ref()[..8]);
        Ok(Self { pair, key_id })
    }

    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref().to_vec()
    }

    /// Sign the current head and store the checkpoint.
    pub async fn sign_head(&self, pool: &PgPool) -> Result<Checkpoint, sqlx::Error> {
        let (seq, hash): (i64, Vec<u8>) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?;
        let signed_at_us = now_us();
        let signature = self
            .pair
            .sign(&checkpoint_message(seq, &hash, signed_at_us))
            .as_ref()
            .to_vec();
        let cp = Checkpoint {
            seq,
            hash,
            signed_at_us,
            key_id: self.key_id.clone(),
            signature,
        };
        sqlx::query("INSERT INTO audit_checkpoint (seq, hash, signed_at_us, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq, key_id) DO NOTHING")
            .bind(cp.seq)
            .bind(&cp.hash)
            .bind(cp.signed_at_us)
            .bind(&cp.key_id)
            .bind(&cp.signature)
            .execute(pool)
            .await?;
        Ok(cp)
    }
}

pub async fn checkpoints(pool: &PgPool) -> Result<Vec<Checkpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, hash, signed_at_us, key_id, signature FROM audit_checkpoint ORDER BY seq",
    )
    .fetch_all(pool)
    .await
}

/// The raw Ed25519 public key from an SPKI PEM (`openssl pkey -pubout`).
pub fn public_key_from_pem(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let der =
        pem::parse(text).map_err(|e| anyhow::anyhow!("{} is not PEM: {e}", path.display()))?;
    // An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte prefix and the 32-byte key.
    let bytes = der.contents();
    if bytes.len() != 44 {
        anyhow::bail!("{} is not an Ed25519 public key", path.display());
    }
    Ok(bytes[12..].to_vec())
}
