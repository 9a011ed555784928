//! The writer task: takes whatever appends are waiting, writes them as one batch, answers the
//! callers that wait, and keeps the queued outcomes whose write failed until the log is back.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::append::{Held, WriteError};
use super::chain::Head;
use super::entry::Entry;
use crate::metrics::Metrics;

pub(super) struct Batch {
    pub(super) entries: Vec<Entry>,
    /// The caller waiting for the commit (`append`, `flush`, `record_and_wait`), or nobody
    /// (`record`). The writer logs and counts the failures of kept entries itself.
    pub(super) reply: Option<oneshot::Sender<Result<Vec<i64>, String>>>,
    /// The entries are a record of what has happened (`record`, `record_and_wait`): when their
    /// write fails they are kept and tried again, and the writer times them itself.
    pub(super) kept: bool,
    /// When it was handed over: the writer times `record`ed entries itself.
    pub(super) queued: std::time::Instant,
}

/// How often queued entries whose write failed are tried again when nothing else is written.
pub(super) const RETRY_QUEUED_EVERY: Duration = Duration::from_secs(1);
/// How long queued entries that PostgreSQL refuses (it answers, with an error such as a missing
/// table or a constraint) are tried before they are given up. While PostgreSQL cannot be reached
/// they are kept for as long as the process runs: they are the outcomes of actions that were
/// under way when it went away (no new intent, so no new action, can be written meanwhile).
pub(super) const REFUSED_FOR: Duration = Duration::from_secs(300);
/// While appends keep failing, how often the writer says so again.
const STILL_FAILING_EVERY: Duration = Duration::from_secs(30);

/// A queued entry whose write failed, and since when PostgreSQL has refused it (None while it
/// could not be reached).
struct Unwritten {
    pub(super) entry: Entry,
    pub(super) refused_since: Option<std::time::Instant>,
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
pub(super) fn give_up(lost: impl IntoIterator<Item = Entry>, why: &str, metrics: Option<&Metrics>) {
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

/// The writer task: takes whatever is waiting, writes it as one batch chained to the head (see
/// `write`), answers the callers that wait, and keeps `record`ed entries whose write failed.
pub(super) async fn write_batches(
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
                    kept: false,
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
        let retry = due
            && match drop_written(&writer, &mut unwritten).await {
                Ok(()) => true,
                // The log cannot even be read: this retry failed before its append.
                Err(e) => {
                    failing.failed(&WriteError::from(e), unwritten.len());
                    if let Some(m) = &counts {
                        m.audit_append_failures.inc();
                    }
                    false
                }
            };
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
            for b in batches.iter().filter(|b| b.kept && !b.entries.is_empty()) {
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
                (Err(e), reply) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(e.message.clone()));
                    }
                    if b.kept {
                        failed_fresh = true;
                        let refused_since = e.refused.then(std::time::Instant::now);
                        unwritten.extend(b.entries.into_iter().map(|entry| Unwritten {
                            entry,
                            refused_since,
                        }));
                    }
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
