//! What an apply answers: each object's result, in the manifest's order (also the `objects` of
//! the problem when one failed).

use serde::Serialize;
use utoipa::ToSchema;

use crate::gateway;
use crate::gateway::apply::{ObjectResult, ObjectStatus};

/// The result of an apply: each object, in the manifest's order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false, "counts": {"created": 1, "configured": 1, "unchanged": 1, "failed": 0, "skipped": 0}, "objects": [{"index": 0, "source": "documents[0]", "apiVersion": "v1", "kind": "ConfigMap", "name": "web-config", "namespace": "shop", "result": "unchanged", "generation": null}, {"index": 1, "source": "documents[1]", "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop", "result": "configured", "generation": 4}, {"index": 2, "source": "documents[2]", "apiVersion": "v1", "kind": "Service", "name": "web", "namespace": "shop", "result": "created", "generation": null}]}))]
pub struct ApplyResult {
    /// Identifies this apply in the audit log.
    pub audit_id: String,
    /// Nothing was changed: the API server only validated.
    pub dry_run: bool,
    pub counts: ApplyCounts,
    pub objects: Vec<AppliedObject>,
}

/// How many objects ended each way.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(example = json!({"created": 1, "configured": 1, "unchanged": 2, "failed": 0, "skipped": 0}))]
pub struct ApplyCounts {
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// What apply did to one object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"index": 1, "source": "documents[1]", "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop", "result": "configured", "generation": 4, "rollout": {"message": "deployment \"web\" successfully rolled out", "done": true, "failed": false, "timedOut": false}}))]
pub struct AppliedObject {
    /// Position among the manifest's objects (from 0; a `List`'s items each count).
    pub index: usize,
    /// Where it was written: `documents[i]` (the i-th document that is not empty), `[i]` of a
    /// JSON array, `body`, with `.items[j]` inside a `List`.
    pub source: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Absent for cluster-scoped kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub result: ApplyOutcome,
    /// `metadata.generation` after the apply (kinds that have one).
    pub generation: Option<i64>,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unified diff of the live object against the result (`diff=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The failure, as the problem the object alone would have been answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ObjectProblem>,
    /// The rollout when `wait=true` (Deployments, StatefulSets, DaemonSets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<AppliedRollout>,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(example = "configured")]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
    Failed,
    Skipped,
}

/// One object's failure (problem details without the request's fields).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"type": "urn:kubegate:problem:conflict", "title": "Conflict", "status": 409, "detail": "Apply failed with 1 conflict: conflict with \"ops\": .spec.replicas"}))]
pub struct ObjectProblem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::validate::FieldError>,
}

/// A workload's rollout after `wait`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"message": "Waiting for 1 pods to be ready...", "done": false, "failed": false, "timedOut": true}))]
pub struct AppliedRollout {
    /// kubectl's rollout status message.
    pub message: String,
    pub done: bool,
    pub failed: bool,
    pub timed_out: bool,
    /// Why it failed (`ProgressDeadlineExceeded`, `ErrImagePull`, `FailedCreate`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&ObjectResult> for AppliedObject {
    fn from(o: &ObjectResult) -> Self {
        Self {
            index: o.index,
            source: o.source.clone(),
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            namespace: o.namespace.clone(),
            result: match o.status {
                ObjectStatus::Created => ApplyOutcome::Created,
                ObjectStatus::Configured => ApplyOutcome::Configured,
                ObjectStatus::Unchanged => ApplyOutcome::Unchanged,
                ObjectStatus::Failed => ApplyOutcome::Failed,
                ObjectStatus::Skipped => ApplyOutcome::Skipped,
            },
            generation: o.generation,
            message: o.message.clone(),
            diff: o.diff.clone(),
            error: o.error.as_ref().map(object_problem),
            rollout: o.rollout.as_ref().map(|r| AppliedRollout {
                message: r.message.clone(),
                done: r.done,
                failed: r.failed,
                timed_out: r.timed_out,
                reason: r.reason.clone(),
            }),
        }
    }
}

/// One object's failure as problem details.
pub fn object_problem(e: &gateway::Error) -> ObjectProblem {
    let (kind, title, status) = e.kind();
    ObjectProblem {
        problem_type: gateway::problem_type(kind),
        title: title.to_owned(),
        status,
        detail: e.to_string(),
        errors: e.field_errors(),
    }
}
