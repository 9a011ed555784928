-- Rate limits shared by replicas: each replica publishes, every 100 ms, how much each bucket
-- (limiter and subject) was used, and charges what the others published to its own buckets.
-- Unlogged: a crash of the database loses at most a minute of counts, which a rate limit can
-- afford; rows older than a minute are pruned.
CREATE UNLOGGED TABLE rate_usage (
    id       bigserial PRIMARY KEY,
    replica  uuid      NOT NULL,
    bucket   text      NOT NULL,
    used     integer   NOT NULL,
    at_us    bigint    NOT NULL
);
CREATE INDEX rate_usage_at ON rate_usage (at_us);
