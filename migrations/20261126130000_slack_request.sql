-- Slack request signatures seen in the last minutes: a replayed signed request is refused on every
-- replica. Rows expire with Slack's 5-minute timestamp window (pruned as new ones arrive).
CREATE TABLE slack_request (
    signature      bytea   PRIMARY KEY,
    expires_at_us  bigint  NOT NULL
);
CREATE INDEX slack_request_expiry ON slack_request (expires_at_us);
