//! Deployments: deploy (server-side apply), scale, set image, restart, rollout status, history
//! and undo. Listing, getting, deleting and labelling them are shared with the other kinds
//! (`objects`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::common::{MutationQuery, ObjectPath, run};
use super::events::read_events;
use super::problem::{ApiError, Problem};
use super::results::{Answer, DeploymentResult, RollbackResult};
use super::views::{
    DeploymentDescription, DeploymentView, PodView, ReplicaSetDescription, ReplicaSetView,
    RevisionDetail, RevisionList, RolloutView, revision_view,
};
use crate::action::{Action, DeploySpec, Kind, Target};
use crate::auth::Principal;
use crate::cluster::{RolloutReport, rollout};
use crate::gateway::{self, AppState, EventFilter, Found, Read};

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
    Ok(Answer::of(e, query.dry_run).response())
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
) -> Result<HttpResponse, ApiError> {
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
    Ok(Answer::of(e, query.dry_run).response())
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
) -> Result<HttpResponse, ApiError> {
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
    Ok(Answer::of(e, query.dry_run).response())
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
) -> Result<HttpResponse, ApiError> {
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
    Ok(Answer::of(e, query.dry_run).response())
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
) -> Result<HttpResponse, ApiError> {
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
    Ok(Answer::of(e, query.dry_run).response())
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
    /// Why it failed: `ProgressDeadlineExceeded`, a pod's waiting reason (`ImagePullBackOff`,
    /// `ErrImagePull`, ...), or the error.
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
    let target = path.target();
    if !query.watch {
        let read = Read::Rollout {
            name: path.name.clone(),
            wait: None,
        };
        return match gateway::read(&state, &principal, &target, read).await? {
            Found::Rollout(report) => Ok(HttpResponse::Ok().json(RolloutView::from(&*report))),
            _ => Err(ApiError::internal(anyhow::anyhow!(
                "a rollout read found no rollout"
            ))),
        };
    }
    let timeout = std::time::Duration::from_secs(query.timeout_seconds.unwrap_or(300));
    let rx = gateway::watch_rollout(&state, &principal, &target, &path.name, timeout).await?;
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
                            verdict: Some(verdict),
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
    let (history, current) = revisions(&state, &principal, path.target(), &path.name).await?;
    let items = history
        .iter()
        .map(|r| revision_view(r, current.as_deref()))
        .collect();
    Ok(web::Json(RevisionList { items }))
}

/// A Deployment's revisions (kubectl's history) and its current ReplicaSet's name.
async fn revisions(
    state: &AppState,
    principal: &Principal,
    target: Target,
    name: &str,
) -> Result<(Vec<rollout::Revision>, Option<String>), ApiError> {
    let read = Read::Revisions {
        name: name.to_owned(),
    };
    match gateway::read(state, principal, &target, read).await? {
        Found::Revisions { history, current } => Ok((history, current)),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "a history read found no revisions"
        ))),
    }
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
    let target = Target {
        cluster: path.cluster.clone(),
        namespace: path.namespace.clone(),
    };
    let (history, current) = revisions(&state, &principal, target, &path.name).await?;
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

/// A Deployment in detail (`kubectl describe deployment`): the Deployment with its conditions,
/// its new and old ReplicaSets, and its events (scaling, failed rollouts).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/describe", tag = "deployments",
    params(ObjectPath),
    responses(
        (status = 200, description = "The Deployment in detail", body = DeploymentDescription),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn describe_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<DeploymentDescription>, ApiError> {
    let target = path.target();
    let read = |read| gateway::read(&state, &principal, &target, read);
    let get = Read::Get {
        kind: Kind::Deployment,
        name: path.name.clone(),
    };
    let Found::Deployment(d) = read(get).await? else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a deployment read found no deployment"
        )));
    };
    let deployment = DeploymentView::from(&*d);
    let rss = Read::List {
        kind: Kind::ReplicaSet,
        selector: Some(deployment.selector.clone()).filter(|s| !s.is_empty()),
    };
    let Found::ReplicaSets(rss) = read(rss).await? else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a replicaset read found no replicasets"
        )));
    };
    let object = Some((Kind::Deployment, path.name.clone()));
    let events = read_events(&state, &principal, &target, object, EventFilter::default()).await?;
    let owner = format!("Deployment/{}", deployment.name);
    let (mut new_replica_set, mut old_replica_sets) = (None, Vec::new());
    for rs in rss.iter().map(ReplicaSetView::from) {
        if rs.owner.as_deref() != Some(owner.as_str()) {
            continue;
        }
        if rs.revision.is_some() && rs.revision == deployment.revision {
            new_replica_set = Some(rs);
        } else if rs.desired > 0 || rs.current > 0 {
            old_replica_sets.push(rs);
        }
    }
    Ok(web::Json(DeploymentDescription {
        deployment,
        new_replica_set,
        old_replica_sets,
        events: events.items,
    }))
}

/// A ReplicaSet in detail (`kubectl describe replicaset`): the ReplicaSet, the pods its selector
/// matches, and its events (pods created and deleted, pods the API server refused).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/replicasets/{name}/describe", tag = "deployments",
    params(ObjectPath),
    responses(
        (status = 200, description = "The ReplicaSet in detail", body = ReplicaSetDescription),
        (status = 404, description = "Unknown cluster or ReplicaSet", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn describe_replicaset(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<ReplicaSetDescription>, ApiError> {
    let target = path.target();
    let read = |read| gateway::read(&state, &principal, &target, read);
    let get = Read::Get {
        kind: Kind::ReplicaSet,
        name: path.name.clone(),
    };
    let Found::ReplicaSet(rs) = read(get).await? else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a replicaset read found no replicaset"
        )));
    };
    let selector = rs
        .spec
        .as_ref()
        .map(|s| crate::cluster::selector_string(&s.selector))
        .filter(|s| !s.is_empty());
    // A ReplicaSet without a selector selects nothing (not every pod).
    let pods = match selector {
        Some(selector) => match read(Read::List {
            kind: Kind::Pod,
            selector: Some(selector),
        })
        .await?
        {
            Found::Pods(pods) => pods,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    let object = Some((Kind::ReplicaSet, path.name.clone()));
    let events = read_events(&state, &principal, &target, object, EventFilter::default()).await?;
    Ok(web::Json(ReplicaSetDescription {
        replica_set: ReplicaSetView::from(&*rs),
        pods: pods.iter().map(PodView::from).collect(),
        events: events.items,
    }))
}
