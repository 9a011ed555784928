//! The hash chain: each row's hash covers the previous row's hash, its sequence number and its
//! entry, so that a changed, removed or reordered row breaks every hash after it.

use super::entry::Entry;
use ring::digest;

/// SHA-256(previous hash || canonical JSON of (seq, entry)).
pub fn chain_hash(prev: &[u8], seq: i64, entry: &Entry) -> Vec<u8> {
    let canonical = serde_json::to_vec(&(seq, entry)).expect("an entry serializes");
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(&canonical);
    ctx.finish().as_ref().to_vec()
}

/// The head of the chain: the last sequence number and its hash.
pub(super) type Head = (i64, Vec<u8>);

/// One audit row: its sequence number, the entry, the previous hash and its hash.
pub(super) type Row<'a> = (i64, &'a Entry, Vec<u8>, Vec<u8>);

pub(super) fn chain<'a>((mut seq, mut hash): Head, entries: &[&'a Entry]) -> Vec<Row<'a>> {
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let next = chain_hash(&hash, seq, e);
        rows.push((seq, *e, hash.clone(), next.clone()));
        hash = next;
    }
    rows
}

pub(super) fn appended(rows: &[Row<'_>]) -> (Vec<i64>, Head) {
    (rows.iter().map(|r| r.0).collect(), last_of(rows))
}

/// The head a batch leaves: its last row's seq and hash.
pub(super) fn last_of(rows: &[Row<'_>]) -> Head {
    let last = rows.last().expect("a batch has entries");
    (last.0, last.3.clone())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
