//! Prometheus metrics: HTTP requests by route pattern, method and status with latency; cluster
//! calls by cluster, verb and outcome with latency; audit appends (latency, failures), entries
//! lost and intents closed as outcome_unknown; idempotent replays; rate-limit rejections; token
//! verifications (from memory or by signature); reads by how the watch cache answered them.
//! Served at `/metrics` without a token, on the main port or on KUBEGATE_METRICS_LISTEN. One
//! registry per application (tests run several side by side).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: HistogramVec,
    pub cluster_calls: HistogramVec,
    pub audit_appends: prometheus::Histogram,
    pub audit_append_failures: IntCounter,
    /// Queued audit entries given up, never written.
    pub audit_entries_lost: IntCounter,
    /// Intents closed as outcome_unknown, by cause: `shutdown` (an action cut short) or
    /// `recovery` (left by a crash).
    pub audit_outcomes_unknown: IntCounterVec,
    pub idempotent_replays: IntCounter,
    pub rate_limited: IntCounter,
    pub rate_limit_syncs: IntCounter,
    /// Reads a watch cache was asked for, by cluster, resource and answer (`Ready::answer`).
    pub watch_cache_reads: IntCounterVec,
}

const LATENCY: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("kubegate".into()), None).expect("a registry");
        let http_requests = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP requests by route pattern, method and status",
            )
            .buckets(LATENCY.to_vec()),
            &["route", "method", "status"],
        )
        .expect("metric");
        let cluster_calls = HistogramVec::new(
            HistogramOpts::new(
                "cluster_call_duration_seconds",
                "Calls to clusters' API servers by cluster, verb and outcome",
            )
            .buckets(LATENCY.to_vec()),
            &["cluster", "verb", "outcome"],
        )
        .expect("metric");
        let audit_appends = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "audit_append_duration_seconds",
                "Audit log appends, from handing entries to the writer to their commit (one batch transaction each)",
            )
            .buckets(LATENCY.to_vec()),
        )
        .expect("metric");
        let audit_append_failures =
            IntCounter::new("audit_append_failures_total", "Audit appends that failed")
                .expect("metric");
        let audit_entries_lost = IntCounter::new(
            "audit_entries_lost_total",
            "Queued audit entries given up without being written (each is also logged)",
        )
        .expect("metric");
        let audit_outcomes_unknown = IntCounterVec::new(
            Opts::new(
                "audit_outcomes_unknown_total",
                "Audit intents closed as outcome_unknown: shutdown (an action cut short) or recovery (left by a crash)",
            ),
            &["cause"],
        )
        .expect("metric");
        for cause in ["shutdown", "recovery"] {
            audit_outcomes_unknown.with_label_values(&[cause]);
        }
        let idempotent_replays = IntCounter::new(
            "idempotent_replays_total",
            "Requests answered from an Idempotency-Key's stored answer",
        )
        .expect("metric");
        let rate_limited =
            IntCounter::new("rate_limited_total", "Requests refused by a rate limit")
                .expect("metric");
        let rate_limit_syncs = IntCounter::new(
            "rate_limit_syncs_total",
            "Exchanges of rate-limit usage with the other replicas",
        )
        .expect("metric");
        let watch_cache_reads = IntCounterVec::new(
            Opts::new(
                "watch_cache_reads_total",
                "Reads by how the watch cache answered: hit, caught_up (after waiting for the \
                 watch to bring kubegate's own write), not_ready or behind (both read from the API \
                 server instead)",
            ),
            &["cluster", "resource", "answer"],
        )
        .expect("metric");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cluster_calls.clone()),
            Box::new(audit_appends.clone()),
            Box::new(audit_append_failures.clone()),
            Box::new(audit_entries_lost.clone()),
            Box::new(audit_outcomes_unknown.clone()),
            Box::new(idempotent_replays.clone()),
            Box::new(rate_limited.clone()),
            Box::new(rate_limit_syncs.clone()),
            Box::new(watch_cache_reads.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            http_requests,
            cluster_calls,
            audit_appends,
            audit_append_failures,
            audit_entries_lost,
            audit_outcomes_unknown,
            idempotent_replays,
            rate_limited,
            rate_limit_syncs,
            watch_cache_reads,
        }
    }

    /// Add a collector kept elsewhere (token verifications are counted by the authenticator).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::warn!(error = %e, "a metric could not be registered");
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
