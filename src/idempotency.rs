//! Idempotency keys in PostgreSQL (IETF httpapi `Idempotency-Key`): the first request with a key
//! claims it (one row per caller and key, so a race of identical retries, on any replica, has one
//! winner); retries get the stored answer, a different request with the same key is refused, and
//! one still running answers 409. Keys expire; an `in_progress` claim older than the lease is
//! taken over (its first holder died).

use std::time::Duration;

use sqlx::PgPool;

use crate::audit::now_us;

/// What a request finds when it presents a key.
#[derive(Debug)]
pub enum Claim {
    /// This request runs; store its answer with [`complete`] (or [`release`] it).
    Claimed,
    /// Answered before: here is the answer.
    Replay(StoredResponse),
    /// The first request with this key is still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredResponse {
    pub status: Option<i32>,
    pub content_type: Option<String>,
    pub audit_id: Option<String>,
    pub body: Option<Vec<u8>>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    fingerprint: Vec<u8>,
    state: String,
    #[sqlx(flatten)]
    response: StoredResponse,
}

/// Who holds a key: keys are per caller (issuer and subject).
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub issuer: String,
    pub subject: String,
    pub key: String,
}

pub async fn claim(
    pool: &PgPool,
    owner: &KeyOwner,
    fingerprint: &[u8],
    ttl: Duration,
    lease: Duration,
) -> Result<Claim, sqlx::Error> {
    for _ in 0..3 {
        let now = now_us();
        let claimed: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO idempotency_key (issuer, subject, key, fingerprint, state, created_at_us, expires_at_us) \
             VALUES ($1, $2, $3, $4, 'in_progress', $5, $6) \
             ON CONFLICT (issuer, subject, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'in_progress', \
               status = NULL, content_type = NULL, audit_id = NULL, body = NULL, \
               created_at_us = EXCLUDED.created_at_us, expires_at_us = EXCLUDED.expires_at_us \
             WHERE idempotency_key.expires_at_us < $5 OR (idempotency_key.state = 'in_progress' AND idempotency_key.created_at_us < $7) \
             RETURNING created_at_us",
        )
        .bind(&owner.issuer)
        .bind(&owner.subject)
        .bind(&owner.key)
        .bind(fingerprint)
        .bind(now)
        .bind(now + ttl.as_micros() as i64)
        .bind(now - lease.as_micros() as i64)
        .fetch_optional(pool)
        .await?;
        if claimed.is_some() {
            return Ok(Claim::Claimed);
        }
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT fingerprint, state, status, content_type, audit_id, body FROM idempotency_key WHERE issuer = $1 AND subject = $2 AND key = $3",
        )
        .bind(&owner.issuer)
        .bind(&owner.subject)
        .bind(&owner.key)
        .fetch_optional(pool)
        .await?;
        // Released between our insert and this read: try to claim again.
        let Some(row) = row else { continue };
        return Ok(if row.fingerprint != fingerprint {
            Claim::Mismatch
        } else if row.state == "in_progress" {
            Claim::InFlight
        } else {
            Claim::Replay(row.response)
        });
    }
    Ok(Claim::InFlight)
}

/// Store the first request's answer.
pub async fn complete(
    pool: &PgPool,
    owner: &KeyOwner,
    response: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_key SET state = 'done', status = $4, content_type = $5, audit_id = $6, body = $7 WHERE issuer = $1 AND subject = $2 AND key = $3")
        .bind(&owner.issuer)
        .bind(&owner.subject)
        .bind(&owner.key)
        .bind(response.status)
        .bind(&response.content_type)
        .bind(&response.audit_id)
        .bind(&response.body)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Forget the claim (the first attempt failed on our side; a retry should run again).
pub async fn release(pool: &PgPool, owner: &KeyOwner) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_key WHERE issuer = $1 AND subject = $2 AND key = $3 AND state = 'in_progress'")
        .bind(&owner.issuer)
        .bind(&owner.subject)
        .bind(&owner.key)
        .execute(pool)
        .await
        .map(|_| ())
}

/// A key is 1–255 characters of `A-Z a-z 0-9 - _ . : ~ + / =` (UUIDs, ULIDs, base64).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && key.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b':' | b'~' | b'+' | b'/' | b'=')
        })
}
