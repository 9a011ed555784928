//! What a change answers: the result of each kind of outcome, with the audit id and whether it was
//! a dry run. One conversion, [`Answer::of`], for the REST endpoints and the chat commands alike.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::views::{DeploymentView, RolloutView, ServiceView, service_view};
use crate::gateway::{Executed, Outcome};

/// What every mutation answers besides its result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}))]
pub struct ActionInfo {
    /// Identifies this action (also on the `kubegate.io/audit-id` annotation of template changes).
    pub audit_id: String,
    /// Nothing was changed: the API server only validated.
    pub dry_run: bool,
}

/// The result of a change to a Deployment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"deployment": {"name": "web", "namespace": "shop", "revision": 3, "replicas": {"desired": 3, "updated": 3, "ready": 3, "available": 3, "unavailable": 0}, "images": [{"container": "web", "image": "nginx:1.27"}], "selector": "app=web", "strategy": {"type": "RollingUpdate", "maxSurge": "25%", "maxUnavailable": "25%"}, "paused": false, "generation": 4, "observedGeneration": 4, "conditions": [], "changeCause": "kubegate set image web web=nginx:1.27 by alice: CVE fix", "labels": {"app": "web"}, "annotations": {}, "createdAt": "2026-11-20T08:00:00Z"}, "created": false, "templateChanged": true, "revisionBefore": 2, "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}))]
pub struct DeploymentResult {
    pub deployment: DeploymentView,
    /// The Deployment did not exist before.
    pub created: bool,
    /// The pod template changed (a new revision rolls out).
    pub template_changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_before: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas_before: Option<i32>,
    /// The rollout when `wait=true` was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutView>,
    #[serde(flatten)]
    pub action: ActionInfo,
}

/// The result of a rollback.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"deployment": {"name": "web", "namespace": "shop", "revision": 3, "replicas": {"desired": 3, "updated": 3, "ready": 3, "available": 3, "unavailable": 0}, "images": [{"container": "web", "image": "nginx:1.27"}], "selector": "app=web", "strategy": {"type": "RollingUpdate", "maxSurge": "25%", "maxUnavailable": "25%"}, "paused": false, "generation": 4, "observedGeneration": 4, "conditions": [], "changeCause": "kubegate set image web web=nginx:1.27 by alice: CVE fix", "labels": {"app": "web"}, "annotations": {}, "createdAt": "2026-11-20T08:00:00Z"}, "message": "deployment.apps/web rolled back", "skipped": false, "fromRevision": 3, "toRevision": 2, "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}))]
pub struct RollbackResult {
    pub deployment: DeploymentView,
    /// kubectl's answer: `deployment.apps/web rolled back`, or
    /// `deployment.apps/web skipped rollback (current template already matches revision N)`.
    pub message: String,
    /// Nothing to do: the target revision's template is already current.
    pub skipped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<i64>,
    /// The revision whose template is restored (it is renumbered max+1 by the controller).
    pub to_revision: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutView>,
    #[serde(flatten)]
    pub action: ActionInfo,
}

/// The result of creating or updating a Service.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"service": {"name": "web", "namespace": "shop", "type": "ClusterIP", "clusterIp": "10.96.12.34", "ports": [{"port": 80, "targetPort": "8080", "protocol": "TCP"}], "selector": {"app": "web"}, "readyEndpoints": 0, "loadBalancerIngress": [], "labels": {}}, "created": true, "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}))]
pub struct ServiceResult {
    pub service: ServiceView,
    pub created: bool,
    #[serde(flatten)]
    pub action: ActionInfo,
}

/// Names deleted by a delete.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"deleted": ["web-5d8c7b9f4c-x2k9p"], "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}))]
pub struct DeleteResult {
    /// What was deleted (or, with `dryRun`, would be).
    pub deleted: Vec<String>,
    #[serde(flatten)]
    pub action: ActionInfo,
}

/// The labels after a change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"labels": {"app": "web", "tier": "frontend"}, "auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}))]
pub struct LabelsResult {
    pub labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub action: ActionInfo,
}

/// The answer to an executed action.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Deployment(Box<DeploymentResult>),
    Rollback(Box<RollbackResult>),
    Service(Box<ServiceResult>),
    Deleted(DeleteResult),
    Labels(LabelsResult),
}

impl Answer {
    pub fn of(e: Executed, dry_run: bool) -> Self {
        let action = ActionInfo {
            audit_id: e.audit_id,
            dry_run,
        };
        let rollout = e.rollout.as_ref().map(RolloutView::from);
        match e.outcome {
            Outcome::Deployment(c) => Self::Deployment(Box::new(DeploymentResult {
                deployment: DeploymentView::from(&*c.deployment),
                created: c.created,
                template_changed: c.template_changed,
                revision_before: c.revision_before,
                replicas_before: c.replicas_before,
                rollout,
                action,
            })),
            Outcome::Rollback(r) => Self::Rollback(Box::new(RollbackResult {
                deployment: DeploymentView::from(&*r.deployment),
                message: r.message,
                skipped: r.skipped,
                from_revision: r.from_revision,
                to_revision: r.to_revision,
                rollout,
                action,
            })),
            Outcome::Service { service, created } => Self::Service(Box::new(ServiceResult {
                service: service_view(&service, &[]),
                created,
                action,
            })),
            Outcome::Deleted(deleted) => Self::Deleted(DeleteResult { deleted, action }),
            Outcome::Labels(labels) => Self::Labels(LabelsResult { labels, action }),
        }
    }

    /// The action created its object (answered 201).
    pub fn created(&self) -> bool {
        match self {
            Self::Deployment(d) => d.created,
            Self::Service(s) => s.created,
            _ => false,
        }
    }

    /// The rollout it waited for, when it did.
    pub fn rollout(&self) -> Option<&RolloutView> {
        match self {
            Self::Deployment(d) => d.rollout.as_ref(),
            Self::Rollback(r) => r.rollout.as_ref(),
            _ => None,
        }
    }

    /// 201 when created, else 200, with the answer as JSON.
    pub fn response(&self) -> HttpResponse {
        if self.created() {
            HttpResponse::Created().json(self)
        } else {
            HttpResponse::Ok().json(self)
        }
    }
}
