//! Recovery of intents left without an outcome (an action cut short by a crash): closed as
//! `outcome_unknown`, at start-up and while kubegate runs.

use super::entry::{AuditError, COLUMNS, Entry, now_us, outcome_unknown};
use super::log::AuditLog;
use std::time::Duration;

impl AuditLog {
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
