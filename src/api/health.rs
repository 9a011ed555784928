//! Probes for Kubernetes: `/healthz` (the process answers) and `/readyz` (the database answers and
//! is migrated; each cluster's reachability is reported but does not make kubegate unready, since
//! one unreachable cluster must not take the door to the others out of service).

use actix_web::{HttpResponse, web};
use futures::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db;
use crate::gateway::AppState;

/// `/healthz` body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// Always `ok` when the process answers.
    #[schema(example = "ok")]
    pub status: String,
}

/// `/readyz` body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"ready": true, "database": {"reachable": true, "pendingMigrations": []}, "clusters": [{"name": "dev", "reachable": true}], "notes": []}))]
pub struct Readiness {
    /// True when kubegate can serve: the database answers and every migration is applied.
    pub ready: bool,
    pub database: DatabaseCheck,
    /// Reachability of each configured cluster (informational).
    pub clusters: Vec<ClusterCheck>,
    /// Human-readable remarks, e.g. that no cluster is configured.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"reachable": true, "pendingMigrations": []}))]
pub struct DatabaseCheck {
    pub reachable: bool,
    /// Versions of embedded migrations not yet applied.
    pub pending_migrations: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "dev", "reachable": true}))]
pub struct ClusterCheck {
    pub name: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "health", operation_id = "get_health",
    responses((status = 200, description = "The process is alive", body = Health))
)]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".into(),
    })
}

/// Prometheus metrics in the text exposition format (no token needed; see KUBEGATE_METRICS_LISTEN).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// Readiness: database reachable and migrated; cluster reachability reported.
#[utoipa::path(
    get, path = "/readyz", tag = "health", operation_id = "get_readiness",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready: the database is unreachable or not migrated", body = Readiness),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (database, probes) = futures::join!(
        db::health(&state.db),
        join_all(
            state
                .clusters
                .iter()
                .map(|c| async move { (c.name.clone(), c.probe().await) })
        )
    );
    let draining = state.draining.load(std::sync::atomic::Ordering::SeqCst);
    let ready = database.reachable && database.pending_migrations.is_empty() && !draining;
    let mut notes = Vec::new();
    if draining {
        notes.push("shutting down: finishing in-flight requests".to_owned());
    }
    if state.clusters.is_empty() {
        notes.push(
            "no clusters configured: set KUBECONFIG or run kubegate inside a cluster".to_owned(),
        );
    }
    if !database.pending_migrations.is_empty() {
        notes.push("database migrations are pending; restart kubegate to apply them".to_owned());
    }
    let body = Readiness {
        ready,
        database: DatabaseCheck {
            reachable: database.reachable,
            pending_migrations: database.pending_migrations,
            error: database.error,
        },
        clusters: probes
            .into_iter()
            .map(|(name, p)| ClusterCheck {
                name,
                reachable: p.error.is_none(),
                error: p.error,
            })
            .collect(),
        notes,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
