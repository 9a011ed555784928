//! The audit log in PostgreSQL: append-only (triggers refuse UPDATE, DELETE and TRUNCATE),
//! hash-chained in one total order across replicas (every append moves the single `audit_head`
//! row from the head it was chained to, in the same statement), write-ahead (the gateway commits
//! the intent before calling a cluster and fails closed), batched (concurrent appends share one
//! statement), queryable, and verifiable. All audit SQL lives in this module.
//!
//! `entry` is what is written; `log` the handle requests use, `writer` the task that batches their
//! appends, `append` the statement and its connection, `chain` the hashing; `recovery` closes
//! intents a crash left open; `query`, `checkpoint` and `verify` read the log; `recording`
//! writes and reads exec sessions' recordings, whose digests the chain covers.

mod append;
mod chain;
mod checkpoint;
mod entry;
mod log;
mod query;
mod recording;
mod recovery;
pub mod verify;
mod writer;

pub use chain::{chain_hash, hex};
pub use checkpoint::{
    Checkpoint, CheckpointKey, checkpoint_message, checkpoints, public_key_from_pem,
};
pub use entry::{AuditError, Entry, Stored, new_id, now_us, scrub};
pub use log::{AuditLog, Pending};
pub use query::{Filter, query, stream};
pub use recording::{Recorder, asciicast, stored_digest};
pub use recovery::Recovery;
