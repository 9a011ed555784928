//! Pods: list/get, logs (with follow), delete by name or label selector; and labels of
//! Deployments, Services and pods (`kubectl label`).

use std::collections::BTreeMap;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::common::{
    ActionInfo, DeleteCollectionQuery, ListQuery, MutationQuery, NamespacePath, ObjectPath,
    check_names, cluster, run, selector,
};
use super::deployments::DeleteResult;
use super::problem::{ApiError, FieldError, Problem};
use super::services::collection_selector;
use super::views::{PodList, PodView};
use crate::action::{Action, LabelChange, LabelledKind};
use crate::auth::Principal;
use crate::gateway::AppState;
use crate::gateway::Outcome;
use crate::validate;

/// List pods (`kubectl get pods -o wide`).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods", tag = "pods", operation_id = "list_pods",
    params(NamespacePath, ListQuery),
    responses(
        (status = 200, description = "The pods", body = PodList),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or selector", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_pods(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<PodList>, ApiError> {
    check_names(&path.namespace, None)?;
    let sel = selector(&query)?;
    let pods: Vec<Pod> = cluster(&state, &principal, &path.cluster, &path.namespace)?
        .read_list(&path.namespace, sel.as_deref())
        .await?;
    Ok(web::Json(PodList {
        items: pods.iter().map(PodView::from).collect(),
    }))
}

/// Get a pod.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}", tag = "pods", operation_id = "get_pod",
    params(ObjectPath),
    responses(
        (status = 200, description = "The pod", body = PodView),
        (status = 404, description = "Unknown cluster or pod", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_pod(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<PodView>, ApiError> {
    check_names(
        &path.namespace,
        Some((&path.name, validate::dns1123_subdomain)),
    )?;
    let pod: Pod = cluster(&state, &principal, &path.cluster, &path.namespace)?
        .read(&path.namespace, &path.name)
        .await?;
    Ok(web::Json(PodView::from(&pod)))
}

/// Options of `GET .../pods/{name}/logs` (`kubectl logs`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The container; may be omitted when the pod has one.
    pub container: Option<String>,
    /// Only the last N lines (1–100000).
    #[param(minimum = 1, maximum = 100000)]
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    #[param(minimum = 1)]
    pub since_seconds: Option<i64>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[serde(default)]
    pub timestamps: bool,
    /// The previous (crashed) instance of the container.
    #[serde(default)]
    pub previous: bool,
    /// Stream until the client leaves or the pod ends.
    #[serde(default)]
    pub follow: bool,
}

/// A pod's logs as plain text (`kubectl logs`); `follow=true` streams.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/logs", tag = "pods", operation_id = "get_pod_logs",
    params(ObjectPath, LogsQuery),
    responses(
        (status = 200, description = "The log lines", body = String, content_type = "text/plain"),
        (status = 400, description = "No such container, container not started, or no previous instance", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster or pod", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_pod_logs(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    check_names(
        &path.namespace,
        Some((&path.name, validate::dns1123_subdomain)),
    )?;
    let mut errors = Vec::new();
    if query
        .tail_lines
        .is_some_and(|t| !(1..=100_000).contains(&t))
    {
        errors.push(FieldError {
            field: "tailLines".into(),
            message: "must be between 1 and 100000".into(),
        });
    }
    if query.since_seconds.is_some_and(|s| s < 1) {
        errors.push(FieldError {
            field: "sinceSeconds".into(),
            message: "must be at least 1".into(),
        });
    }
    if let Some(Err(m)) = query.container.as_deref().map(validate::dns1123_label) {
        errors.push(FieldError {
            field: "container".into(),
            message: m,
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::from(crate::gateway::Error::Validation { errors }));
    }
    let params = LogParams {
        container: query.container.clone(),
        tail_lines: query.tail_lines,
        since_seconds: query.since_seconds,
        timestamps: query.timestamps,
        previous: query.previous,
        follow: query.follow,
        ..Default::default()
    };
    let c = cluster(&state, &principal, &path.cluster, &path.namespace)?;
    if !query.follow {
        let text = c.logs(&path.namespace, &path.name, &params).await?;
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text));
    }
    let reader = c.log_stream(&path.namespace, &path.name, &params).await?;
    let stream = futures::stream::unfold(Box::pin(reader), |mut r| async move {
        let mut buf = vec![0u8; 8192];
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, actix_web::Error>(Bytes::from(buf)), r))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .streaming(stream))
}

/// Delete a pod (its controller replaces it).
#[utoipa::path(
    delete, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}", tag = "pods", operation_id = "delete_pod",
    params(ObjectPath, MutationQuery),
    responses(
        (status = 200, description = "Deleted", body = DeleteResult),
        (status = 404, description = "Unknown cluster or pod", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_pod(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
) -> Result<web::Json<DeleteResult>, ApiError> {
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::DeletePod {
            name: path.name.clone(),
        },
        &query,
        None,
    )
    .await?;
    DeleteResult::from_executed(e, query.dry_run)
}

/// Delete the pods a label selector matches.
#[utoipa::path(
    delete, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods", tag = "pods", operation_id = "delete_pods",
    params(NamespacePath, DeleteCollectionQuery),
    responses(
        (status = 200, description = "Deleted (or, with dryRun, would delete)", body = DeleteResult),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "More than maxAffected match; nothing deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid selector", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_pods(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<DeleteCollectionQuery>,
) -> Result<web::Json<DeleteResult>, ApiError> {
    let (selector, max_affected) = collection_selector(&query)?;
    let mq = MutationQuery {
        dry_run: query.dry_run,
        ..Default::default()
    };
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::DeletePods {
            selector,
            max_affected,
        },
        &mq,
        None,
    )
    .await?;
    DeleteResult::from_executed(e, query.dry_run)
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

async fn label(
    state: &AppState,
    principal: &Principal,
    path: &ObjectPath,
    query: &MutationQuery,
    kind: LabelledKind,
    change: LabelChange,
) -> Result<web::Json<LabelsResult>, ApiError> {
    let e = run(
        state,
        principal,
        path.target(),
        Action::Label {
            kind,
            name: path.name.clone(),
            change,
        },
        query,
        None,
    )
    .await?;
    let Outcome::Labels(labels) = e.outcome else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "unexpected outcome for a label change"
        )));
    };
    Ok(web::Json(LabelsResult {
        labels,
        action: ActionInfo {
            audit_id: e.audit_id,
            dry_run: query.dry_run,
        },
    }))
}

/// Set or remove labels of a Deployment (`kubectl label deployment`).
#[utoipa::path(
    put, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/labels", tag = "deployments", operation_id = "label_deployment",
    params(ObjectPath, MutationQuery), request_body = LabelChange,
    responses(
        (status = 200, description = "The labels now", body = LabelsResult),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A label has another value and overwrite is false, or the object changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid labels", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn label_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<LabelChange>,
) -> Result<web::Json<LabelsResult>, ApiError> {
    label(
        &state,
        &principal,
        &path,
        &query,
        LabelledKind::Deployment,
        body.into_inner(),
    )
    .await
}

/// Set or remove labels of a Service (`kubectl label service`).
#[utoipa::path(
    put, path = "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/labels", tag = "services", operation_id = "label_service",
    params(ObjectPath, MutationQuery), request_body = LabelChange,
    responses(
        (status = 200, description = "The labels now", body = LabelsResult),
        (status = 404, description = "Unknown cluster or Service", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A label has another value and overwrite is false, or the object changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid labels", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn label_service(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<LabelChange>,
) -> Result<web::Json<LabelsResult>, ApiError> {
    label(
        &state,
        &principal,
        &path,
        &query,
        LabelledKind::Service,
        body.into_inner(),
    )
    .await
}

/// Set or remove labels of a pod (`kubectl label pod`).
#[utoipa::path(
    put, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/labels", tag = "pods", operation_id = "label_pod",
    params(ObjectPath, MutationQuery), request_body = LabelChange,
    responses(
        (status = 200, description = "The labels now", body = LabelsResult),
        (status = 404, description = "Unknown cluster or pod", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A label has another value and overwrite is false, or the object changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid labels", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn label_pod(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<LabelChange>,
) -> Result<web::Json<LabelsResult>, ApiError> {
    label(
        &state,
        &principal,
        &path,
        &query,
        LabelledKind::Pod,
        body.into_inner(),
    )
    .await
}
