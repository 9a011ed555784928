//! One audit entry: its fields (in the canonical order that is hashed), what is masked before
//! it is written, a stored row, and the columns every query reads.

use serde::Serialize;
use uuid::Uuid;

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
    pub(super) fn scrub(&mut self) {
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

pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// A new id for an audited action (and for a request that came without one): a UUIDv7, whose
/// first 48 bits are the time in milliseconds, so that new ids land at the end of the indexes
/// that hold them (`audit_event`'s `audit_id` and `request_id`, `session_chunk`'s key) rather than
/// on a random page of each. On a log of three million rows, random ids made PostgreSQL write
/// five to seven times the WAL per append after a checkpoint (a full image of every index page
/// they touched first) and append fewer entries per second (BENCHMARKS.md).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Why the audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot be written: {0}")]
pub struct AuditError(pub String);

/// The entry that closes `intent` when what became of its action is not known.
pub(super) fn outcome_unknown(intent: Entry, why: &str) -> Entry {
    Entry {
        stage: "outcome_unknown".into(),
        outcome: "unknown".into(),
        completed_at_us: Some(now_us()),
        upstream_error: Some(why.into()),
        ..intent
    }
}

pub(super) const COLUMNS: &str = "seq, audit_id, stage, outcome, received_at_us, completed_at_us, request_id, subject, issuer, groups, decision, source_ip, user_agent, action, http_method, http_path, cluster, namespace, resource_kind, resource_name, request_summary, http_status, problem_type, upstream_error, result, dry_run, replay, idempotency_key, delegated_by, prev_hash, hash";
