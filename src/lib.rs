//! kubegate: one safe, audited REST door to Kubernetes clusters.
//!
//! Read this file first. The modules form layers that import one way only, top to bottom
//! (`scripts/check-layers` fails the build's checks on an upward import or an import circle):
//!
//! 1. `app`: builds and runs everything;
//! 2. `api`: the HTTP edge (routes, request and response types, problem+json, chat webhooks);
//! 3. `gateway`, `chatops`: every action and read, whatever the door, and the chat grammar;
//! 4. `cluster`, `audit`, `auth`, `idempotency`, `db`, `metrics`, `telemetry`, `context`: the
//!    edges that own one technology each (kube-rs, SQL, tokens);
//! 5. `action`, `role`, `config`, `validate`: plain vocabulary and rules.

/// `Application::build(config)` / `run()`: the one place the layers are wired together.
pub mod app;

/// `kubegate port-forward`: local ports to a pod's, through a kubegate server.
pub mod forward;

/// HTTP edge: routes, request/response types, OpenAPI document, problem+json errors, middleware.
pub mod api;

/// kubectl command lines for chat: the grammar, what each line means, and kubectl-style output.
pub mod chatops;
/// `execute()`: every mutation runs here (validate → authorize → audit intent → act → outcome);
/// `read()`: every read; `session`: exec sessions (the same checks, then a recorded relay); the
/// shared `AppState` and the core's error enum.
pub mod gateway;

/// The append-only, hash-chained audit log in PostgreSQL: appends, queries, verification, and
/// the recordings of exec sessions (whose digests the chain covers).
pub mod audit;
/// Who is calling (JWT verification) and what they may do (grants, policy file, decision).
pub mod auth;
/// Named Kubernetes clusters (kubeconfig contexts, in-cluster) and every kube-rs call.
pub mod cluster;
/// The request being served (id, caller, source, audit id), as the core sees it.
pub mod context;
/// PostgreSQL pool and the embedded, forward-only migrations.
pub mod db;
/// Idempotency keys in PostgreSQL: claim, replay, release.
pub mod idempotency;
/// Prometheus metrics (requests, cluster calls, audit appends, replays, rate limits).
pub mod metrics;
/// OpenTelemetry trace export over OTLP/HTTP (cargo feature `otel`).
#[cfg(feature = "otel")]
pub mod otel;
/// Structured logging (JSON or human-readable) and the request-id that ties logs together.
pub mod telemetry;

/// The vocabulary of what can be done: `Action`, `Target`, request specs and their validation.
pub mod action;
/// Every setting, as one clap struct per subcommand; `kubegate serve --help` is the reference.
pub mod config;
/// Manifests for apply: YAML and JSON bodies into checked objects, bounded, in apply order.
pub mod manifest;
/// The roles (viewer, deployer, admin, auditor, delegate) and what each includes.
pub mod role;
/// Input rules shared by actions: names, labels, selectors, image references, quantities.
pub mod validate;

pub use app::{Application, install_crypto_provider};
pub use config::{Cli, Command, Config};
