//! kubegate: one safe, audited REST door to Kubernetes clusters.
//!
//! Read this file first: each module below carries one line saying what lives there.

/// The vocabulary of what can be done: `Action`, `Target`, request specs and their validation.
pub mod action;
/// HTTP boundary: routes, request/response types, OpenAPI document, problem+json errors.
pub mod api;
/// `Application::build(config)` / `run()`, and the state shared by handlers.
pub mod app;
/// The append-only, hash-chained audit log in PostgreSQL: appends, queries, verification.
pub mod audit;
/// Who is calling (JWT verification) and what they may do (roles, grants, policy file).
pub mod auth;
/// Named Kubernetes clusters (kubeconfig contexts, in-cluster) and every kube-rs call.
pub mod cluster;
/// kubectl-syntax command lines for chatops: tokenizer and parser into a typed `Command`.
pub mod command;
/// Every setting, as one clap struct; `kubegate serve --help` is the configuration reference.
pub mod config;
/// PostgreSQL pool and the embedded, forward-only migrations.
pub mod db;
/// `execute()`: every mutation runs here (validate → [authorize → audit intent] → act → wait).
pub mod gateway;
/// Idempotency keys in PostgreSQL: claim, replay, release.
pub mod idempotency;
/// Prometheus metrics (requests, cluster calls, audit appends, replays, rate limits).
pub mod metrics;
/// OpenTelemetry trace export over OTLP/HTTP (cargo feature `otel`).
#[cfg(feature = "otel")]
pub mod otel;
/// Structured logging (JSON or human-readable) and the request-id that ties logs together.
pub mod telemetry;
/// Input rules shared by actions: names, labels, selectors, image references, quantities.
pub mod validate;

pub use app::Application;
pub use config::{Cli, Command, Config};

/// Make ring the process-wide rustls provider (idempotent). kube, sqlx and reqwest all use rustls;
/// the build enables only ring, and reqwest needs it installed before a client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
