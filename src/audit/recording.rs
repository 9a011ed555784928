//! Session recordings: what a session's pod wrote (and, when asked, what was typed), with the time
//! it happened, written in chunks to `session_chunk` as the session goes. The digest of every
//! chunk (SHA-256 over each chunk's sequence number, time, stream and bytes, in order) goes into
//! the session's outcome entry, so the hash chain covers the recording: `verify` recomputes it.
//! `asciicast` renders a recording as asciinema's v2 format.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::TryStreamExt;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::chain::hex;

/// Flush when this much is buffered, or when the oldest buffered chunk is this old.
const FLUSH_BYTES: usize = 64 * 1024;
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(200);
/// Past this much unwritten, the session waits for the recording (`Recorder::room`): a slow
/// database slows the session down rather than letting the buffer grow without bound.
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

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

/// What is buffered and what has been written.
struct Book {
    next_seq: i32,
    buffer: Vec<Chunk>,
    buffered_bytes: usize,
    oldest: Option<Instant>,
    digest: ring::digest::Context,
    chunks: u64,
    output_bytes: u64,
    input_bytes: u64,
}

/// Records one session. Both directions of a session record through `&self` (each push is a
/// short lock) while `keep_writing` writes beside them, so the session never waits on the
/// database unless `MAX_BUFFERED` is reached.
pub struct Recorder {
    pool: PgPool,
    audit_id: Uuid,
    started: Instant,
    record_input: bool,
    book: Mutex<Book>,
    /// Wakes the writer when a flush is due by size, and waiters of `room` after a flush.
    due_by_size: Notify,
    flushed: Notify,
    stopped: AtomicBool,
    stop_now: Notify,
    has_failed: AtomicBool,
    failure: Notify,
}

impl Recorder {
    pub fn new(pool: PgPool, audit_id: Uuid, record_input: bool) -> Self {
        Self {
            pool,
            audit_id,
            started: Instant::now(),
            record_input,
            book: Mutex::new(Book {
                next_seq: 0,
                buffer: Vec::new(),
                buffered_bytes: 0,
                oldest: None,
                digest: ring::digest::Context::new(&ring::digest::SHA256),
                chunks: 0,
                output_bytes: 0,
                input_bytes: 0,
            }),
            due_by_size: Notify::new(),
            flushed: Notify::new(),
            stopped: AtomicBool::new(false),
            stop_now: Notify::new(),
            has_failed: AtomicBool::new(false),
            failure: Notify::new(),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("recording book")
    }

    fn push(&self, book: &mut Book, stream: char, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let at_us = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let seq = book.next_seq;
        book.next_seq += 1;
        book.buffered_bytes += data.len();
        book.oldest.get_or_insert_with(Instant::now);
        book.buffer.push(Chunk {
            seq,
            at_us,
            stream,
            data: data.to_vec(),
        });
        if book.buffered_bytes >= FLUSH_BYTES {
            self.due_by_size.notify_one();
        }
    }

    /// What the pod wrote: `o` standard output, `e` standard error.
    pub fn output(&self, stream: char, data: &[u8]) {
        let mut book = self.book();
        book.output_bytes += data.len() as u64;
        self.push(&mut book, stream, data);
    }

    /// What the person typed: counted always, recorded only when input recording is on.
    pub fn input(&self, data: &[u8]) {
        let mut book = self.book();
        book.input_bytes += data.len() as u64;
        if self.record_input {
            self.push(&mut book, 'i', data);
        }
    }

    pub fn resize(&self, width: u16, height: u16) {
        let mut book = self.book();
        self.push(&mut book, 'r', format!("{width}x{height}").as_bytes());
    }

    /// Wait while more than `MAX_BUFFERED` is unwritten.
    pub async fn room(&self) {
        loop {
            let flushed = self.flushed.notified();
            if self.book().buffered_bytes < MAX_BUFFERED {
                return;
            }
            flushed.await;
        }
    }

    /// Write what is buffered whenever it is due (by size at once, by age within
    /// `FLUSH_AFTER`), until `stop` (then what is left is written) or until a write fails
    /// (then `failed` wakes: what is not recorded must not go on). The only writer of the
    /// recording: run it beside the session, to completion (never drop it mid-write).
    pub async fn keep_writing(&self) -> Result<(), sqlx::Error> {
        let mut tick = tokio::time::interval(FLUSH_AFTER / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = self.stopped.load(Ordering::Acquire);
            let due = stopping || {
                let book = self.book();
                book.buffered_bytes >= FLUSH_BYTES
                    || book.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER)
            };
            if due && let Err(e) = self.flush().await {
                self.has_failed.store(true, Ordering::Release);
                self.failure.notify_waiters();
                return Err(e);
            }
            if stopping {
                return Ok(());
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.due_by_size.notified() => {}
                _ = self.stop_now.notified() => {}
            }
        }
    }

    /// The session has ended: `keep_writing` writes what is left and returns.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stop_now.notify_one();
    }

    /// Wakes when a write has failed.
    pub async fn failed(&self) {
        loop {
            let failure = self.failure.notified();
            if self.has_failed.load(Ordering::Acquire) {
                return;
            }
            failure.await;
        }
    }

    /// Write what is buffered (one statement). On failure the chunks stay counted as unstored
    /// (the summary says how many).
    async fn flush(&self) -> Result<(), sqlx::Error> {
        let taken = {
            let mut book = self.book();
            book.buffered_bytes = 0;
            book.oldest = None;
            std::mem::take(&mut book.buffer)
        };
        if taken.is_empty() {
            return Ok(());
        }
        let n = taken.len();
        let mut seqs = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut streams = Vec::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        for c in taken {
            seqs.push(c.seq);
            times.push(c.at_us);
            streams.push(c.stream.to_string());
            data.push(c.data);
        }
        let written = sqlx::query(
            "INSERT INTO session_chunk (audit_id, seq, at_us, stream, data) \
             SELECT $1, * FROM UNNEST($2::integer[], $3::bigint[], $4::text[], $5::bytea[])",
        )
        .bind(self.audit_id)
        .bind(&seqs)
        .bind(&times)
        .bind(&streams)
        .bind(&data)
        .execute(&self.pool)
        .await;
        let mut book = self.book();
        match written {
            Ok(_) => {
                // The digest covers what is stored, in order.
                for (i, d) in data.iter().enumerate() {
                    let stream = streams[i].chars().next().unwrap_or('?');
                    digest_chunk(&mut book.digest, seqs[i], times[i], stream, d);
                }
                book.chunks += n as u64;
                drop(book);
                self.flushed.notify_waiters();
                Ok(())
            }
            Err(e) => {
                // Put them back in front, so the summary counts them as unstored.
                let rest = std::mem::take(&mut book.buffer);
                book.buffer = seqs
                    .into_iter()
                    .zip(times)
                    .zip(streams)
                    .zip(data)
                    .map(|(((seq, at_us), stream), data)| Chunk {
                        seq,
                        at_us,
                        stream: stream.chars().next().unwrap_or('?'),
                        data,
                    })
                    .chain(rest)
                    .collect();
                book.buffered_bytes = book.buffer.iter().map(|c| c.data.len()).sum();
                Err(e)
            }
        }
    }

    /// The recording's summary for the outcome entry (and so for the chain): the chunks stored
    /// and their digest, the bytes seen each way, and what could not be stored.
    pub fn summary(&self) -> serde_json::Value {
        let book = self.book();
        json!({
            "chunks": book.chunks,
            "unstoredChunks": book.buffer.len(),
            "outputBytes": book.output_bytes,
            "inputBytes": book.input_bytes,
            "inputRecorded": self.record_input,
            "sha256": hex(book.digest.clone().finish().as_ref()),
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
