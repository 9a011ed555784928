-- Recordings of interactive sessions (exec): what the pod wrote (and what was typed, when input
-- recording is on), in the order it happened, linked to the session's audit entry. The session's
-- outcome entry carries the SHA-256 of its chunks, so the hash chain covers the recording and an
-- edited chunk is found by verification. Append-only, like the log.
CREATE TABLE session_chunk (
    audit_id  uuid     NOT NULL,
    seq       integer  NOT NULL,
    -- Microseconds since the session started.
    at_us     bigint   NOT NULL,
    -- o: standard output, e: standard error, i: input, r: terminal resize ("WIDTHxHEIGHT").
    stream    text     NOT NULL,
    data      bytea    NOT NULL,
    CONSTRAINT session_chunk_pkey PRIMARY KEY (audit_id, seq),
    CONSTRAINT session_chunk_stream_known CHECK (stream IN ('o', 'e', 'i', 'r')),
    CONSTRAINT session_chunk_order CHECK (seq >= 0 AND at_us >= 0)
);

CREATE TRIGGER session_chunk_append_only BEFORE UPDATE OR DELETE ON session_chunk
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER session_chunk_no_truncate BEFORE TRUNCATE ON session_chunk
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
