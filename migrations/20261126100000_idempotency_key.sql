-- Idempotency keys (IETF httpapi Idempotency-Key): the first request's answer, per caller and key,
-- with a fingerprint of the request. A row is `in_progress` while the first request runs.
CREATE TABLE idempotency_key (
    issuer          text    NOT NULL,
    subject         text    NOT NULL,
    key             text    NOT NULL,
    fingerprint     bytea   NOT NULL,
    state           text    NOT NULL,
    status          integer,
    content_type    text,
    audit_id        text,
    body            bytea,
    created_at_us   bigint  NOT NULL,
    expires_at_us   bigint  NOT NULL,
    CONSTRAINT idempotency_key_pkey PRIMARY KEY (issuer, subject, key),
    CONSTRAINT idempotency_key_state_known CHECK (state IN ('in_progress', 'done'))
);
CREATE INDEX idempotency_key_expiry ON idempotency_key (expires_at_us);
