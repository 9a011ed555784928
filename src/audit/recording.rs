//! Session recordings: what a session's pod wrote (and, when asked, what was typed), with the time
//! it happened, written in chunks to `session_chunk` as the session goes. The digest of every
//! chunk (SHA-256 over each chunk's sequence number, time, stream and bytes, in order) goes into
//! the session's outcome entry, so the hash chain covers the recording: `verify` recomputes it.
//! `asciicast` renders a recording as asciinema's v2 format.

use std::time::Instant;

use futures::TryStreamExt;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::chain::hex;

/// Flush when this much is buffered, or when the oldest buffered chunk is this old.
const FLUSH_BYTES: usize = 64 * 1024;
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// One recorded event.
#[derive(Debug, Clone)]
struct Chunk {
    seq: i32,
    at_us: i64,
    stream: char,
    data: Vec<u8>,
}

/// The digest's input for one chunk: fixed-size fields, then the bytes.
fn digest_chunk(ctx: &mut ring::digest::Context, seq: i32, at_us: i64, stream: char, data: &[u8]) {
    ctx.update(&seq.to_be_bytes());
    ctx.update(&at_us.to_be_bytes());
    ctx.update(&[stream as u8]);
    ctx.update(&(data.len() as u64).to_be_bytes());
    ctx.update(data);
}

/// Records one session.
pub struct Recorder {
    pool: PgPool,
    audit_id: Uuid,
    started: Instant,
    record_input: bool,
    next_seq: i32,
    buffer: Vec<Chunk>,
    buffered_bytes: usize,
    oldest: Option<Instant>,
    digest: ring::digest::Context,
    chunks: u64,
    output_bytes: u64,
    input_bytes: u64,
}

impl Recorder {
    pub fn new(pool: PgPool, audit_id: Uuid, record_input: bool) -> Self {
        Self {
            pool,
            audit_id,
            started: Instant::now(),
            record_input,
            next_seq: 0,
            buffer: Vec::new(),
            buffered_bytes: 0,
            oldest: None,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            chunks: 0,
            output_bytes: 0,
            input_bytes: 0,
        }
    }

    fn push(&mut self, stream: char, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let at_us = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.buffered_bytes += data.len();
        self.oldest.get_or_insert_with(Instant::now);
        self.buffer.push(Chunk {
            seq,
            at_us,
            stream,
            data: data.to_vec(),
        });
    }

    /// What the pod wrote: `o` standard output, `e` standard error.
    pub fn output(&mut self, stream: char, data: &[u8]) {
        self.output_bytes += data.len() as u64;
        self.push(stream, data);
    }

    /// What the person typed: counted always, recorded only when input recording is on.
    pub fn input(&mut self, data: &[u8]) {
        self.input_bytes += data.len() as u64;
        if self.record_input {
            self.push('i', data);
        }
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        self.push('r', format!("{width}x{height}").as_bytes());
    }

    /// Is it time to write what is buffered?
    pub fn due(&self) -> bool {
        self.buffered_bytes >= FLUSH_BYTES
            || self.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER)
    }

    /// Write what is buffered (one statement). On failure nothing is lost from the buffer, but
    /// the caller ends the session: what is not recorded must not go on.
    pub async fn flush(&mut self) -> Result<(), sqlx::Error> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut seqs = Vec::with_capacity(self.buffer.len());
        let mut times = Vec::with_capacity(self.buffer.len());
        let mut streams = Vec::with_capacity(self.buffer.len());
        let mut data = Vec::with_capacity(self.buffer.len());
        for c in &self.buffer {
            seqs.push(c.seq);
            times.push(c.at_us);
            streams.push(c.stream.to_string());
            data.push(c.data.clone());
        }
        sqlx::query(
            "INSERT INTO session_chunk (audit_id, seq, at_us, stream, data) \
             SELECT $1, * FROM UNNEST($2::integer[], $3::bigint[], $4::text[], $5::bytea[])",
        )
        .bind(self.audit_id)
        .bind(&seqs)
        .bind(&times)
        .bind(&streams)
        .bind(&data)
        .execute(&self.pool)
        .await?;
        // The digest covers what is stored, in order.
        for c in &self.buffer {
            digest_chunk(&mut self.digest, c.seq, c.at_us, c.stream, &c.data);
        }
        self.chunks += self.buffer.len() as u64;
        self.buffer.clear();
        self.buffered_bytes = 0;
        self.oldest = None;
        Ok(())
    }

    /// The recording's summary for the outcome entry (and so for the chain): the chunks stored
    /// and their digest, the bytes seen each way, and what could not be stored.
    pub fn summary(&self) -> serde_json::Value {
        json!({
            "chunks": self.chunks,
            "unstoredChunks": self.buffer.len(),
            "outputBytes": self.output_bytes,
            "inputBytes": self.input_bytes,
            "inputRecorded": self.record_input,
            "sha256": hex(self.digest.clone().finish().as_ref()),
        })
    }
}

/// How many chunks are stored for `audit_id`, and their SHA-256 as `Recorder::summary` computed
/// it while recording.
pub async fn stored_digest(pool: &PgPool, audit_id: Uuid) -> Result<(u64, String), sqlx::Error> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut count = 0u64;
    let mut rows = sqlx::query_as::<_, (i32, i64, String, Vec<u8>)>(
        "SELECT seq, at_us, stream, data FROM session_chunk WHERE audit_id = $1 ORDER BY seq",
    )
    .bind(audit_id)
    .fetch(pool);
    while let Some((seq, at_us, stream, data)) = rows.try_next().await? {
        digest_chunk(
            &mut ctx,
            seq,
            at_us,
            stream.chars().next().unwrap_or('?'),
            &data,
        );
        count += 1;
    }
    Ok((count, hex(ctx.finish().as_ref())))
}

/// A recording as asciicast v2 (`asciinema play` replays it): a header line, then one JSON array
/// per event: seconds since the start, `o` (output, standard error included, as a terminal shows
/// it), `i` (input, when recorded) or `r` (resize, "WIDTHxHEIGHT"). Bytes that are not UTF-8 are
/// shown as U+FFFD; a character split between two chunks is kept whole.
pub async fn asciicast(
    pool: &PgPool,
    audit_id: Uuid,
    started_at_us: i64,
    title: &str,
) -> Result<String, sqlx::Error> {
    let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT at_us, stream, data FROM session_chunk WHERE audit_id = $1 ORDER BY seq",
    )
    .bind(audit_id)
    .fetch_all(pool)
    .await?;
    // The first resize is the terminal's size; without one, asciinema's default.
    let (width, height) = rows
        .iter()
        .find(|(_, s, _)| s == "r")
        .and_then(|(_, _, d)| parse_size(d))
        .unwrap_or((80, 24));
    let mut out = json!({
        "version": 2,
        "width": width,
        "height": height,
        "timestamp": started_at_us / 1_000_000,
        "title": title,
    })
    .to_string();
    out.push('\n');
    // Pending bytes of an incomplete UTF-8 sequence, per stream.
    let mut carry: std::collections::HashMap<String, Vec<u8>> = Default::default();
    for (at_us, stream, data) in rows {
        let time = at_us as f64 / 1_000_000.0;
        let (code, text) = match stream.as_str() {
            "r" => ("r", String::from_utf8_lossy(&data).into_owned()),
            s => {
                let pending = carry.entry(s.to_owned()).or_default();
                pending.extend_from_slice(&data);
                let valid_up_to = match std::str::from_utf8(pending) {
                    Ok(_) => pending.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => pending.len(),
                };
                let text = String::from_utf8_lossy(&pending[..valid_up_to]).into_owned();
                pending.drain(..valid_up_to);
                (if s == "i" { "i" } else { "o" }, text)
            }
        };
        if text.is_empty() {
            continue;
        }
        out.push_str(&json!([time, code, text]).to_string());
        out.push('\n');
    }
    Ok(out)
}

fn parse_size(data: &[u8]) -> Option<(u16, u16)> {
    let s = std::str::from_utf8(data).ok()?;
    let (w, h) = s.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}
