//! The handle every request uses: `append` (waits for the commit: intents, refusals), `record`
//! (queued behind them: outcomes), `pending` (an intent whose outcome is still to come), and the
//! flush and drain of the queue for audit reads and shutdown.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::entry::{AuditError, Entry, outcome_unknown};
use super::writer::{Batch, RETRY_QUEUED_EVERY, give_up, write_batches};
use crate::metrics::Metrics;

/// The appender: requests hand entries to one task that writes whatever is waiting as one batch
/// chained to the head (see `write`).
#[derive(Clone)]
pub struct AuditLog {
    pub(super) tx: mpsc::Sender<Batch>,
    pub(super) pool: PgPool,
    /// Append latencies and failures (the writer records those of `record`ed entries).
    pub(super) metrics: Option<Arc<Metrics>>,
    /// Actions under way: intent written, outcome not yet queued (see `Pending`).
    pub(super) under_way: Arc<std::sync::atomic::AtomicUsize>,
    /// Outcomes committed before answers (`with_sync_outcomes`).
    pub(super) sync_outcomes: bool,
}

/// An action whose intent is written and whose outcome is not queued yet (`AuditLog::pending`).
/// Dropped before `finish` (its request was dropped: the server stopped before the action ended,
/// or the handler panicked), it queues an `outcome_unknown` entry, so that the intent is closed
/// at once rather than left open until a later start-up's recovery.
pub struct Pending<'a> {
    pub(super) log: std::borrow::Cow<'a, AuditLog>,
    pub(super) intent: Option<Entry>,
}

impl Pending<'_> {
    /// The same pending action, no longer tied to the request's borrow of the log: for an
    /// action that outlives its handler (a connection spliced through after the answer).
    pub fn into_owned(mut self) -> Pending<'static> {
        let log = self.log.clone().into_owned();
        log.under_way
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Pending {
            log: std::borrow::Cow::Owned(log),
            intent: self.intent.take(),
        }
    }

    /// Record the action's outcome, made from its intent (see `AuditLog::record`). With
    /// synchronous outcomes (the default) this waits for its commit, so the answer that follows
    /// is already in the log; the writer commits it together with whatever else is waiting. If
    /// the log cannot be written at that moment the outcome stays queued (tried again every
    /// second) and this returns anyway: the change has been made, and its answer must not claim
    /// otherwise.
    pub async fn finish(mut self, outcome_of: impl FnOnce(Entry) -> Entry) {
        let intent = self.intent.take().expect("finished once");
        let audit_id = intent.audit_id;
        // Dropped while waiting for room in a full queue, the outcome is lost and the intent left
        // open, for recovery (`keep_recovering`) to close.
        let outcome = vec![outcome_of(intent)];
        if !self.log.sync_outcomes {
            self.log.record(outcome).await;
        } else if let Err(e) = self.log.record_and_wait(outcome).await {
            tracing::warn!(error = %e.0, %audit_id, "the outcome's commit is not confirmed (it stays queued until written); answering anyway");
        }
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

impl AuditLog {
    pub fn start(pool: PgPool, metrics: Option<Arc<Metrics>>) -> Self {
        let (tx, rx) = mpsc::channel::<Batch>(4096);
        tokio::spawn(write_batches(rx, pool.clone(), metrics.clone()));
        Self {
            tx,
            pool,
            metrics,
            under_way: Arc::default(),
            sync_outcomes: true,
        }
    }

    /// Whether an action's outcome is committed before its answer (`true`, the default) or
    /// queued while the answer goes out (`false`: less latency, and a crash in between leaves
    /// the intent to be closed as `outcome_unknown`).
    pub fn with_sync_outcomes(mut self, sync: bool) -> Self {
        self.sync_outcomes = sync;
        self
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
    pub async fn record(&self, entries: Vec<Entry>) {
        self.queue(entries, None).await;
    }

    /// `record`, and wait for the entries' commit (Ok), or for the write they went with to fail
    /// (Err: they stay queued, as with `record`). One hand-over to the writer, where `record`
    /// and then `flush` would take two.
    async fn record_and_wait(&self, entries: Vec<Entry>) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        if !self.queue(entries, Some(reply)).await {
            return Err(AuditError("the audit writer stopped".into()));
        }
        wait_for(rx).await.map(|_| ())
    }

    /// Hand `entries` to the writer as a record (kept and tried again when their write fails);
    /// false when the writer has stopped (they are logged as lost).
    async fn queue(
        &self,
        mut entries: Vec<Entry>,
        reply: Option<oneshot::Sender<Result<Vec<i64>, String>>>,
    ) -> bool {
        entries.iter_mut().for_each(Entry::scrub);
        let batch = Batch {
            entries,
            reply,
            kept: true,
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
            return false;
        }
        true
    }

    /// `record` without waiting for room in the queue (for `Pending`'s drop, which cannot wait): an
    /// entry that finds the queue full is logged as lost (false).
    fn record_now(&self, mut entry: Entry) -> bool {
        entry.scrub();
        let batch = Batch {
            entries: vec![entry],
            reply: None,
            kept: true,
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
            log: std::borrow::Cow::Borrowed(self),
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
                kept: false,
                queued: std::time::Instant::now(),
            })
            .await
            .map_err(|_| AuditError("the audit writer stopped".into()))?;
        wait_for(rx).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The writer's answer for a batch (at most 10 s).
async fn wait_for(rx: oneshot::Receiver<Result<Vec<i64>, String>>) -> Result<Vec<i64>, AuditError> {
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(Ok(seqs))) => Ok(seqs),
        Ok(Ok(Err(e))) => Err(AuditError(e)),
        Ok(Err(_)) => Err(AuditError("the audit writer stopped".into())),
        Err(_) => Err(AuditError("timed out".into())),
    }
}
