-- The audit log: append-only and hash-chained. Every entry stores the hash of the entry before it
-- and the SHA-256 of (previous hash || its own canonical form), in one total order (seq).

CREATE TABLE audit_event (
    seq              bigint      NOT NULL,
    audit_id         uuid        NOT NULL,
    -- intent: written before the cluster is called; outcome: after, linked by audit_id;
    -- rejected: refused before any cluster call (401, 403, 400, 422); outcome_unknown: recovery;
    -- read: a read, when read auditing is on; replay: an idempotent retry answered from storage.
    stage            text        NOT NULL,
    outcome          text        NOT NULL,
    received_at_us   bigint      NOT NULL,
    completed_at_us  bigint,
    request_id       text,
    subject          text,
    issuer           text,
    groups           text[]      NOT NULL DEFAULT '{}',
    decision         text,
    source_ip        text,
    user_agent       text,
    action           text,
    http_method      text,
    http_path        text,
    cluster          text,
    namespace        text,
    resource_kind    text,
    resource_name    text,
    request_summary  text,
    http_status      integer,
    problem_type     text,
    upstream_error   text,
    result           text,
    dry_run          boolean     NOT NULL DEFAULT false,
    replay           boolean     NOT NULL DEFAULT false,
    idempotency_key  text,
    prev_hash        bytea       NOT NULL,
    hash             bytea       NOT NULL,
    CONSTRAINT audit_event_pkey PRIMARY KEY (seq),
    CONSTRAINT audit_event_seq_positive CHECK (seq > 0),
    CONSTRAINT audit_event_stage_known CHECK (stage IN ('intent', 'outcome', 'rejected', 'outcome_unknown', 'read', 'replay')),
    CONSTRAINT audit_event_outcome_known CHECK (outcome IN ('pending', 'succeeded', 'failed', 'denied', 'unauthenticated', 'invalid', 'unknown')),
    CONSTRAINT audit_event_hash_sizes CHECK (octet_length(hash) = 32 AND octet_length(prev_hash) = 32)
);

CREATE INDEX audit_event_audit_id ON audit_event (audit_id);
CREATE INDEX audit_event_subject ON audit_event (subject, seq DESC);
CREATE INDEX audit_event_target ON audit_event (cluster, namespace, seq DESC);
CREATE INDEX audit_event_request_id ON audit_event (request_id);

-- The head of the chain: one row, locked by every append so the chain has one order across
-- kubegate replicas.
CREATE TABLE audit_head (
    id    integer NOT NULL,
    seq   bigint  NOT NULL,
    hash  bytea   NOT NULL,
    CONSTRAINT audit_head_pkey PRIMARY KEY (id),
    CONSTRAINT audit_head_single_row CHECK (id = 1)
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Signed checkpoints of the head, to publish outside the database.
CREATE TABLE audit_checkpoint (
    seq         bigint  NOT NULL,
    hash        bytea   NOT NULL,
    signed_at_us bigint NOT NULL,
    key_id      text    NOT NULL,
    signature   bytea   NOT NULL,
    CONSTRAINT audit_checkpoint_pkey PRIMARY KEY (seq, key_id)
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
-- The head moves forward only.
CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit_head only moves forward' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_head_forward BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
