//! Walking the chain: every entry's `prev_hash` is the hash before it, its `hash` recomputes from
//! its content, sequence numbers have no gap, the head agrees, and signed checkpoints match the
//! chain at their position, and every exec session's recording still has the digest its outcome
//! entry holds. Reports the first entry where it breaks, and why.

use futures::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::chain::{chain_hash, hex};
use super::checkpoint::{checkpoint_message, checkpoints};
use super::entry::Stored;

/// The result of a verification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"intact": false, "checked": 16, "fromSeq": 1, "toSeq": 16, "headHash": "9a7e0c…", "checkpointsVerified": 1, "firstBreak": {"seq": 17, "reason": "entry 17 is missing (next present is 18)"}}))]
pub struct Verification {
    /// True when the whole range is intact.
    pub intact: bool,
    /// Entries checked.
    pub checked: i64,
    pub from_seq: i64,
    /// The last entry checked.
    pub to_seq: i64,
    /// The chain head's hash (hex) as stored in `audit_head`.
    pub head_hash: String,
    /// Checkpoints whose signature and position were verified.
    pub checkpoints_verified: usize,
    /// Session recordings whose chunks match the digest in their outcome entry.
    pub recordings_verified: usize,
    /// The first break, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_break: Option<Break>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seq": 17, "reason": "the entry's content does not match its hash (it was edited)"}))]
pub struct Break {
    /// Sequence number of the first entry that does not verify.
    pub seq: i64,
    pub reason: String,
}

/// Verify entries `from..=to` (defaults: the whole chain). `public_key`: Ed25519 key to check
/// checkpoints with, when configured.
pub async fn verify(
    pool: &PgPool,
    from: Option<i64>,
    to: Option<i64>,
    public_key: Option<&[u8]>,
) -> Result<Verification, sqlx::Error> {
    let (head_seq, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(pool)
            .await?;
    let from = from.unwrap_or(1).max(1);
    let to = to.unwrap_or(head_seq).min(head_seq);
    let mut result = Verification {
        intact: true,
        checked: 0,
        from_seq: from,
        to_seq: from - 1,
        head_hash: hex(&head_hash),
        checkpoints_verified: 0,
        recordings_verified: 0,
        first_break: None,
    };
    let fail = |r: &mut Verification, seq: i64, reason: String| {
        if r.first_break.is_none() {
            r.intact = false;
            r.first_break = Some(Break { seq, reason });
        }
    };
    // The hash before `from`: the previous entry's, or zeros at the start.
    let mut prev: Vec<u8> = if from == 1 {
        vec![0u8; 32]
    } else {
        match sqlx::query_scalar::<_, Vec<u8>>("SELECT hash FROM audit_event WHERE seq = $1")
            .bind(from - 1)
            .fetch_optional(pool)
            .await?
        {
            Some(h) => h,
            None => {
                fail(
                    &mut result,
                    from - 1,
                    "the entry before the range is missing".into(),
                );
                return Ok(result);
            }
        }
    };
    let mut expected = from;
    let mut rows = sqlx::query_as::<_, Stored>(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM audit_event WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
        super::entry::COLUMNS
    )))
    .bind(from)
    .bind(to)
    .fetch(pool);
    let mut hashes = std::collections::HashMap::new();
    // (seq, session, digest) of the outcome entries that carry a recording's digest.
    let mut recordings = Vec::new();
    while let Some(row) = rows.try_next().await? {
        if row.seq != expected {
            fail(
                &mut result,
                expected,
                format!("entry {expected} is missing (next present is {})", row.seq),
            );
            break;
        }
        if row.prev_hash != prev {
            fail(&mut result, row.seq, "prev_hash does not match the previous entry's hash (an entry was changed, removed or reordered)".into());
            break;
        }
        if chain_hash(&row.prev_hash, row.seq, &row.entry) != row.hash {
            fail(
                &mut result,
                row.seq,
                "the entry's content does not match its hash (it was edited)".into(),
            );
            break;
        }
        if row.entry.stage == "outcome"
            && let Some(digest) = row
                .entry
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                .and_then(|r| r["recording"].as_object().cloned())
        {
            recordings.push((row.seq, row.entry.audit_id, digest));
        }
        hashes.insert(row.seq, row.hash.clone());
        prev = row.hash;
        result.checked += 1;
        result.to_seq = row.seq;
        expected += 1;
    }
    if result.intact && expected <= to {
        fail(
            &mut result,
            expected,
            format!("entry {expected} is missing (the head says {head_seq})"),
        );
    }
    if result.intact && to == head_seq && head_seq > 0 && prev != head_hash {
        fail(
            &mut result,
            head_seq,
            "the head's hash does not match the last entry".into(),
        );
    }
    drop(rows);
    for (seq, session, expected) in recordings {
        let (chunks, digest) = super::recording::stored_digest(pool, session).await?;
        if expected.get("sha256").and_then(|d| d.as_str()) != Some(digest.as_str())
            || expected.get("chunks").and_then(|c| c.as_u64()) != Some(chunks)
        {
            fail(
                &mut result,
                seq,
                format!(
                    "the recording of session {session} does not match the digest in its outcome entry (a chunk was edited, added or removed)"
                ),
            );
            continue;
        }
        result.recordings_verified += 1;
    }
    for cp in checkpoints(pool).await? {
        if cp.seq < from || cp.seq > to {
            continue;
        }
        if hashes.get(&cp.seq).is_some_and(|h| *h != cp.hash) {
            fail(
                &mut result,
                cp.seq,
                format!("signed checkpoint {} disagrees with the chain", cp.key_id),
            );
            continue;
        }
        if let Some(pk) = public_key {
            let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk);
            if key
                .verify(
                    &checkpoint_message(cp.seq, &cp.hash, cp.signed_at_us),
                    &cp.signature,
                )
                .is_err()
            {
                fail(
                    &mut result,
                    cp.seq,
                    "a checkpoint's signature does not verify".into(),
                );
                continue;
            }
            result.checkpoints_verified += 1;
        }
    }
    Ok(result)
}
