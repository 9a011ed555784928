//! Deployments: get/list/describe, deploy (server-side apply), scale, set image, restart,
//! rollout status/history/undo, delete; and ReplicaSets.

use actix_web::{HttpResponse, web};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::common::{
    ActionInfo, ListQuery, MutationQuery, NamespacePath, ObjectPath, check_names, cluster, run,
    selector,
};
use super::problem::{ApiError, Problem};
use super::views::{
    DeploymentList, DeploymentView, ReplicaSetList, ReplicaSetView, RevisionDetail, RevisionList,
    RolloutView, revision_view,
};
use crate::action::{Action, DeploySpec};
use crate::auth::Principal;
use crate::cluster::{RolloutReport, rollout};
use crate::gateway::AppState;
use crate::gateway::{Executed, Outcome};
use crate::validate;

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

/// `PUT .../deployments/{name}/replicas`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"replicas": 3, "reason": "traffic peak"}))]
pub struct ScaleRequest {
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "crate::action::integral::plain")]
    pub replicas: i32,
    pub reason: Option<String>,
}

/// `PUT .../deployments/{name}/image`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"container": "web", "image": "nginx:1.27.1", "reason": "CVE fix"}))]
pub struct SetImageRequest {
    /// The container to change; may be omitted when there is only one.
    pub container: Option<String>,
    #[schema(
        pattern = "^([A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+(:[0-9]{1,4})?/|localhost(:[0-9]{1,4})?/)?[a-z0-9]+([_-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
    )]
    pub image: String,
    /// Why (recorded in the change cause).
    pub reason: Option<String>,
}

/// `POST .../deployments/{name}/restart`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"reason": "flush caches"}))]
pub struct RestartRequest {
    pub reason: Option<String>,
}

/// `POST .../deployments/{name}/rollback`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"toRevision": 2, "expectRevision": 3}))]
pub struct RollbackRequest {
    /// The revision to restore; omitted or 0: the previous one.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::action::integral::option")]
    pub to_revision: Option<i64>,
    /// Only roll back if the Deployment is still at this revision (409 otherwise).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::action::integral::option")]
    pub expect_revision: Option<i64>,
    pub reason: Option<String>,
}

pub(crate) fn deployment_result(
    e: Executed,
    dry_run: bool,
) -> Result<(bool, DeploymentResult), ApiError> {
    let Outcome::Deployment(c) = e.outcome else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "unexpected outcome for a deployment action"
        )));
    };
    Ok((
        c.created,
        DeploymentResult {
            deployment: DeploymentView::from(&c.deployment),
            created: c.created,
            template_changed: c.template_changed,
            revision_before: c.revision_before,
            replicas_before: c.replicas_before,
            rollout: e.rollout.as_ref().map(RolloutView::from),
            action: ActionInfo {
                audit_id: e.audit_id,
                dry_run,
            },
        },
    ))
}

/// List Deployments (`kubectl get deployments`).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments", tag = "deployments", operation_id = "list_deployments",
    params(NamespacePath, ListQuery),
    responses(
        (status = 200, description = "The Deployments", body = DeploymentList),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or selector", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_deployments(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<DeploymentList>, ApiError> {
    check_names(&path.namespace, None)?;
    let sel = selector(&query)?;
    let items: Vec<Deployment> = cluster(&state, &principal, &path.cluster, &path.namespace)?
        .read_list(&path.namespace, sel.as_deref())
        .await?;
    Ok(web::Json(DeploymentList {
        items: items.iter().map(DeploymentView::from).collect(),
    }))
}

/// Get a Deployment (`kubectl describe deployment`).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}", tag = "deployments", operation_id = "get_deployment",
    params(ObjectPath),
    responses(
        (status = 200, description = "The Deployment", body = DeploymentView),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<DeploymentView>, ApiError> {
    check_names(
        &path.namespace,
        Some((&path.name, validate::dns1123_subdomain)),
    )?;
    let d: Deployment = cluster(&state, &principal, &path.cluster, &path.namespace)?
        .read(&path.namespace, &path.name)
        .await?;
    Ok(web::Json(DeploymentView::from(&d)))
}

/// Deploy: create or update a Deployment (server-side apply; repeatable, never shrinks it).
#[utoipa::path(
    put, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}", tag = "deployments", operation_id = "deploy_deployment",
    params(ObjectPath, MutationQuery),
    request_body = DeploySpec,
    responses(
        (status = 200, description = "Updated (or unchanged)", body = DeploymentResult),
        (status = 201, description = "Created", body = DeploymentResult),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster or namespace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the cluster's state", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request, or rejected by the API server", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn deploy_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<DeploySpec>,
) -> Result<HttpResponse, ApiError> {
    let action = Action::Deploy {
        name: path.name.clone(),
        spec: body.into_inner(),
    };
    let e = run(&state, &principal, path.target(), action, &query, None).await?;
    let (created, result) = deployment_result(e, query.dry_run)?;
    Ok(if created {
        HttpResponse::Created().json(result)
    } else {
        HttpResponse::Ok().json(result)
    })
}

/// Delete a Deployment (its ReplicaSets and pods go with it).
#[utoipa::path(
    delete, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}", tag = "deployments", operation_id = "delete_deployment",
    params(ObjectPath, MutationQuery),
    responses(
        (status = 200, description = "Deleted", body = DeleteResult),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
) -> Result<web::Json<DeleteResult>, ApiError> {
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::DeleteDeployment {
            name: path.name.clone(),
        },
        &query,
        None,
    )
    .await?;
    DeleteResult::from_executed(e, query.dry_run)
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

impl DeleteResult {
    pub fn from_executed(e: Executed, dry_run: bool) -> Result<web::Json<Self>, ApiError> {
        let Outcome::Deleted(deleted) = e.outcome else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "unexpected outcome for a delete"
            )));
        };
        Ok(web::Json(Self {
            deleted,
            action: ActionInfo {
                audit_id: e.audit_id,
                dry_run,
            },
        }))
    }
}

/// Scale a Deployment through its `/scale` subresource (`kubectl scale`).
#[utoipa::path(
    put, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/replicas", tag = "deployments", operation_id = "scale_deployment",
    params(ObjectPath, MutationQuery),
    request_body = ScaleRequest,
    responses(
        (status = 200, description = "Scaled", body = DeploymentResult),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid replicas", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn scale_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<ScaleRequest>,
) -> Result<web::Json<DeploymentResult>, ApiError> {
    let body = body.into_inner();
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::Scale {
            name: path.name.clone(),
            replicas: body.replicas,
        },
        &query,
        body.reason,
    )
    .await?;
    Ok(web::Json(deployment_result(e, query.dry_run)?.1))
}

/// Set the image of one container (`kubectl set image`).
#[utoipa::path(
    put, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/image", tag = "deployments", operation_id = "set_deployment_image",
    params(ObjectPath, MutationQuery),
    request_body = SetImageRequest,
    responses(
        (status = 200, description = "Image set (or already that image)", body = DeploymentResult),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Deployment changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid image, or no such container (the problem names the containers)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_deployment_image(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<SetImageRequest>,
) -> Result<web::Json<DeploymentResult>, ApiError> {
    let body = body.into_inner();
    let action = Action::SetImage {
        name: path.name.clone(),
        container: body.container,
        image: body.image,
    };
    let e = run(
        &state,
        &principal,
        path.target(),
        action,
        &query,
        body.reason,
    )
    .await?;
    Ok(web::Json(deployment_result(e, query.dry_run)?.1))
}

/// Restart the pods (`kubectl rollout restart`).
#[utoipa::path(
    post, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/restart", tag = "deployments", operation_id = "restart_deployment",
    params(ObjectPath, MutationQuery),
    request_body(content = Option<RestartRequest>, description = "Optional reason"),
    responses(
        (status = 200, description = "Restart rolling out", body = DeploymentResult),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Deployment is paused", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn restart_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: Option<web::Json<RestartRequest>>,
) -> Result<web::Json<DeploymentResult>, ApiError> {
    let reason = body.and_then(|b| b.into_inner().reason);
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::Restart {
            name: path.name.clone(),
        },
        &query,
        reason,
    )
    .await?;
    Ok(web::Json(deployment_result(e, query.dry_run)?.1))
}

/// Roll back to the previous or a given revision (`kubectl rollout undo`).
#[utoipa::path(
    post, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/rollback", tag = "deployments", operation_id = "rollback_deployment",
    params(ObjectPath, MutationQuery),
    request_body(content = Option<RollbackRequest>, description = "Target revision (default: previous) and optional guard"),
    responses(
        (status = 200, description = "Rolled back, or skipped because the target is already current", body = RollbackResult),
        (status = 404, description = "Unknown cluster, Deployment, or revision (`unable to find specified revision N in history`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No history, paused, or not at `expectRevision` any more", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid revision", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rollback_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: Option<web::Json<RollbackRequest>>,
) -> Result<web::Json<RollbackResult>, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let action = Action::Rollback {
        name: path.name.clone(),
        to_revision: body.to_revision.unwrap_or(0),
        expect_revision: body.expect_revision,
    };
    let e = run(
        &state,
        &principal,
        path.target(),
        action,
        &query,
        body.reason,
    )
    .await?;
    let Outcome::Rollback(r) = e.outcome else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "unexpected outcome for a rollback"
        )));
    };
    Ok(web::Json(RollbackResult {
        deployment: DeploymentView::from(&r.deployment),
        message: r.message,
        skipped: r.skipped,
        from_revision: r.from_revision,
        to_revision: r.to_revision,
        rollout: e.rollout.as_ref().map(RolloutView::from),
        action: ActionInfo {
            audit_id: e.audit_id,
            dry_run: query.dry_run,
        },
    }))
}

/// `watch` and `timeoutSeconds` of the rollout status.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RolloutQuery {
    /// Stream Server-Sent Events until the rollout ends: `progress` events (a RolloutStatus each
    /// time it changes) and one final `result` event (a RolloutResult); `: keepalive` comments
    /// every 15 s.
    #[serde(default)]
    pub watch: bool,
    /// Bound of `watch` (default 300, capped by KUBEGATE_MAX_WAIT).
    #[param(minimum = 1, maximum = 86400)]
    pub timeout_seconds: Option<u64>,
}

/// The last event of a rollout watch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"verdict": "failed", "reason": "ImagePullBackOff", "rollout": {"message": "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...", "done": false, "failed": false, "timedOut": false, "generation": 5, "observedGeneration": 5, "replicas": {"desired": 3, "updated": 1, "ready": 3, "available": 3, "unavailable": 0}, "issues": [{"pod": "web-7c9d6f5b8-kq2mz", "container": "web", "reason": "ImagePullBackOff"}]}}))]
pub struct RolloutResult {
    /// `succeeded`, `failed`, `timeout`, `deleted` or `error`.
    pub verdict: String,
    /// Why it failed: `ProgressDeadlineExceeded`, a pod's waiting reason (`ImagePullBackOff`, ...)
    /// or `Unschedulable`, or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub rollout: RolloutView,
}

/// Rollout status (`kubectl rollout status`), with early pod issues; `watch=true` streams it.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/rollout", tag = "deployments", operation_id = "get_deployment_rollout",
    params(ObjectPath, RolloutQuery),
    responses(
        (status = 200, description = "The rollout status, or with watch=true a text/event-stream of `progress` (RolloutStatus) events and a final `result` (RolloutResult) event", content((RolloutView = "application/json"), (String = "text/event-stream"))),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_deployment_rollout(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<RolloutQuery>,
) -> Result<HttpResponse, ApiError> {
    check_names(
        &path.namespace,
        Some((&path.name, validate::dns1123_subdomain)),
    )?;
    let c = cluster(&state, &principal, &path.cluster, &path.namespace)?;
    if !query.watch {
        let report = c.rollout(&path.namespace, &path.name).await?;
        return Ok(HttpResponse::Ok().json(RolloutView::from(&report)));
    }
    // Answer 404 and friends as problems before committing to a stream.
    c.rollout(&path.namespace, &path.name).await?;
    let timeout =
        std::time::Duration::from_secs(query.timeout_seconds.unwrap_or(300)).min(state.max_wait);
    let rx = c.rollout_progress(path.namespace.clone(), path.name.clone(), timeout);
    let heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(15),
        std::time::Duration::from_secs(15),
    );
    let events = futures::stream::unfold(
        (rx, heartbeat, false),
        |(mut rx, mut heartbeat, ended)| async move {
            if ended {
                return None;
            }
            let event = tokio::select! {
                p = rx.recv() => p,
                _ = heartbeat.tick() => return Some((Ok::<_, actix_web::Error>(actix_web::web::Bytes::from_static(b": keepalive\n\n")), (rx, heartbeat, false))),
            };
            let (text, done) = match event {
                None => return None,
                Some(crate::cluster::Progress::Update(r)) => {
                    (sse("progress", &RolloutView::from(&r)), false)
                }
                Some(crate::cluster::Progress::Final { report, verdict }) => {
                    let reason = match &verdict {
                        crate::cluster::Verdict::Failed(r) => Some(r.clone()),
                        crate::cluster::Verdict::Error(e) => Some(e.to_string()),
                        _ => None,
                    };
                    let result = RolloutResult {
                        verdict: verdict.name().to_owned(),
                        reason,
                        rollout: RolloutView::from(&RolloutReport {
                            timed_out: matches!(verdict, crate::cluster::Verdict::Timeout),
                            ..report
                        }),
                    };
                    (sse("result", &result), true)
                }
            };
            Some((Ok(actix_web::web::Bytes::from(text)), (rx, heartbeat, done)))
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

fn sse<T: Serialize>(event: &str, data: &T) -> String {
    format!(
        "event: {event}\ndata: {}\n\n",
        serde_json::to_string(data).unwrap_or_default()
    )
}

/// Revision history (`kubectl rollout history`).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/revisions", tag = "deployments", operation_id = "list_deployment_revisions",
    params(ObjectPath),
    responses(
        (status = 200, description = "The revisions, oldest first", body = RevisionList),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_deployment_revisions(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<RevisionList>, ApiError> {
    let (history, current) = revision_history(
        &state,
        &principal,
        &path.cluster,
        &path.namespace,
        &path.name,
    )
    .await?;
    let items = history
        .iter()
        .map(|r| revision_view(r, current.as_deref()))
        .collect();
    Ok(web::Json(RevisionList { items }))
}

/// A Deployment's revisions (kubectl's history) and its current ReplicaSet's name. History joins
/// a Deployment and the ReplicaSets its controller made: both are read from the API server, as
/// one moment (two caches could each be current to a different moment).
async fn revision_history(
    state: &AppState,
    principal: &Principal,
    cluster_name: &str,
    namespace: &str,
    name: &str,
) -> Result<(Vec<rollout::Revision>, Option<String>), ApiError> {
    check_names(namespace, Some((name, validate::dns1123_subdomain)))?;
    let c = cluster(state, principal, cluster_name, namespace)?;
    let d: Deployment = c.get(namespace, name).await?;
    let rss = c.history_of(&d, true).await?;
    let current = rollout::current_replica_set(&d, &rss).and_then(|rs| rs.metadata.name.clone());
    Ok((rollout::history(&rss), current))
}

/// `/revisions/{revision}`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RevisionPath {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// Revision number.
    pub revision: i64,
}

/// One revision with its pod template (`kubectl rollout history --revision=N`).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/revisions/{revision}", tag = "deployments", operation_id = "get_deployment_revision",
    params(RevisionPath),
    responses(
        (status = 200, description = "The revision", body = RevisionDetail),
        (status = 400, description = "The revision is not a number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster, Deployment or revision", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_deployment_revision(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<RevisionPath>,
) -> Result<web::Json<RevisionDetail>, ApiError> {
    let (history, current) = revision_history(
        &state,
        &principal,
        &path.cluster,
        &path.namespace,
        &path.name,
    )
    .await?;
    let r = history
        .iter()
        .find(|r| r.revision == path.revision)
        .ok_or_else(|| {
            ApiError::from(crate::gateway::Error::NotFound {
                detail: format!(
                    "unable to find the specified revision {} in history",
                    path.revision
                ),
            })
        })?;
    Ok(web::Json(RevisionDetail {
        summary: revision_view(r, current.as_deref()),
        template: rollout::template_without_hash(&r.replica_set),
    }))
}

/// List ReplicaSets (`kubectl get replicasets`).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/replicasets", tag = "deployments", operation_id = "list_replicasets",
    params(NamespacePath, ListQuery),
    responses(
        (status = 200, description = "The ReplicaSets", body = ReplicaSetList),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or selector", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_replicasets(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<ReplicaSetList>, ApiError> {
    check_names(&path.namespace, None)?;
    let sel = selector(&query)?;
    let items: Vec<ReplicaSet> = cluster(&state, &principal, &path.cluster, &path.namespace)?
        .read_list(&path.namespace, sel.as_deref())
        .await?;
    Ok(web::Json(ReplicaSetList {
        items: items.iter().map(ReplicaSetView::from).collect(),
    }))
}
