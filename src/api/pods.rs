//! Pods' logs (`kubectl logs`, with follow) and `kubectl describe pod`. Listing, getting,
//! deleting and labelling pods are shared with the other kinds (`objects`).

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures::AsyncReadExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use utoipa::IntoParams;

use super::common::ObjectPath;
use super::events::read_events;
use super::problem::{ApiError, Problem};
use super::views::{Condition, ObjectRef, PodDescription, PodView};
use crate::action::Kind;
use crate::auth::Principal;
use crate::gateway::{self, AppState, EventFilter, Found, LogOptions, Read};

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
    let query = query.into_inner();
    let options = LogOptions {
        container: query.container,
        tail_lines: query.tail_lines,
        since_seconds: query.since_seconds,
        timestamps: query.timestamps,
        previous: query.previous,
    };
    let text = |body| {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(body)
    };
    let target = path.target();
    if !query.follow {
        let read = Read::Logs {
            pod: path.name.clone(),
            options,
        };
        return match gateway::read(&state, &principal, &target, read).await? {
            Found::Logs(logs) => Ok(text(logs)),
            _ => Err(ApiError::internal(anyhow::anyhow!("logs read no logs"))),
        };
    }
    let reader = gateway::follow_logs(&state, &principal, &target, &path.name, options).await?;
    let stream = futures::stream::unfold(reader, |mut r| async move {
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

/// The controller among an object's owners: (kind, name).
fn controller_of(meta: &ObjectMeta) -> Option<ObjectRef> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| ObjectRef {
            kind: o.kind.clone(),
            name: o.name.clone(),
        })
}

/// A pod in detail (`kubectl describe pod`): its containers (with how each one's previous
/// instance ended), its conditions, who controls it (ReplicaSet, then Deployment), its events.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/describe", tag = "pods", operation_id = "describe_pod",
    params(ObjectPath),
    responses(
        (status = 200, description = "The pod in detail", body = PodDescription),
        (status = 404, description = "Unknown cluster or pod", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn describe_pod(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<PodDescription>, ApiError> {
    let target = path.target();
    let read = |read| gateway::read(&state, &principal, &target, read);
    let get = Read::Get {
        kind: Kind::Pod,
        name: path.name.clone(),
    };
    let Found::Pod(pod) = read(get).await? else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a pod read found no pod"
        )));
    };
    let object = Some((Kind::Pod, path.name.clone()));
    let events = read_events(&state, &principal, &target, object, EventFilter::default()).await?;
    let mut owners = Vec::new();
    if let Some(owner) = controller_of(&pod.metadata) {
        let replica_set = (owner.kind == "ReplicaSet").then(|| owner.name.clone());
        owners.push(owner);
        // A ReplicaSet already gone ends the chain there.
        if let Some(name) = replica_set
            && let Ok(Found::ReplicaSet(rs)) = read(Read::Get {
                kind: Kind::ReplicaSet,
                name,
            })
            .await
        {
            owners.extend(controller_of(&rs.metadata));
        }
    }
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(Condition::from)
        .collect();
    Ok(web::Json(PodDescription {
        pod: PodView::from(&*pod),
        conditions,
        owners,
        events: events.items,
    }))
}
