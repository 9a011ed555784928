//! The state every request shares, built once by `Application::build`: the database pool, the
//! clusters, the audit log, the authenticator and policy, the limits and settings actions need.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::error::Error;
use crate::action::Limits;
use crate::audit::{AuditLog, CheckpointKey};
use crate::auth::{Auth, Principal};
use crate::cluster::{Cluster, ClusterRegistry};
use crate::metrics::Metrics;

/// What handlers share.
pub struct AppState {
    pub db: PgPool,
    pub clusters: ClusterRegistry,
    pub limits: Limits,
    pub max_wait: Duration,
    pub auth: Arc<Auth>,
    pub audit: AuditLog,
    pub audit_reads: bool,
    pub checkpoint_key: Option<Arc<CheckpointKey>>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub idempotency_ttl: Duration,
    pub max_body_bytes: usize,
    pub apply: ApplySettings,
    /// Clusters (globs) the Kubernetes API endpoint impersonates callers on.
    pub impersonate: Vec<String>,
    /// kubegate's URL as clients reach it (for kubeconfigs); else the request's own.
    pub public_url: Option<String>,
    /// When kubegate serves HTTPS itself: the CA (PEM) kubeconfigs it hands out trust.
    pub tls_ca: Option<String>,
    pub sessions: SessionLimits,
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM: /readyz fails while in-flight requests finish.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// The cluster of that name; an unknown name answers 404 naming the clusters the caller may see.
    pub fn cluster(&self, principal: &Principal, name: &str) -> Result<&Cluster, Error> {
        self.clusters
            .get(name)
            .ok_or_else(|| Error::UnknownCluster {
                name: name.to_owned(),
                known: self
                    .clusters
                    .names()
                    .into_iter()
                    .filter(|c| self.auth.sees_cluster(principal, c))
                    .collect(),
            })
    }
}

/// Limits of sessions (settings).
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Longest `timeoutSeconds` of a one-shot exec.
    pub exec_timeout_max: Duration,
    /// Output kept per stream of a one-shot exec.
    pub exec_output_max: usize,
    /// An interactive session with no traffic either way for this long is ended.
    pub idle_timeout: Duration,
    /// An interactive session is ended after this long.
    pub max_duration: Duration,
    /// Record what is typed (off: only its size is recorded).
    pub record_input: bool,
}

/// Apply settings.
#[derive(Debug, Clone)]
pub struct ApplySettings {
    pub max_body_bytes: usize,
    pub max_objects: usize,
    /// `GROUP/KIND` globs a `deployer` may apply (`core` is the core group).
    pub deployer_kinds: Vec<String>,
}
