//! Events: a namespace's (`kubectl get events`, with filters) and one object's (the Events of
//! `kubectl describe`), oldest last seen first. An object's events are found by its uid, so a
//! deleted object's namesake does not inherit its history; a missing object is a 404.

use actix_web::web;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::common::{NamespacePath, ObjectPath};
use super::problem::{ApiError, Problem};
use super::views::{EventList, FoundView};
use crate::action::{Kind, Target};
use crate::auth::Principal;
use crate::gateway::{self, AppState, EventFilter, Read};

/// An event's type.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Filters of `GET .../events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only `Normal` or only `Warning` events.
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub type_: Option<EventType>,
    /// Only events about objects of this kind, as Kubernetes spells it (`Pod`, `Deployment`).
    #[param(pattern = "^[A-Z][A-Za-z0-9]{0,62}$")]
    pub kind: Option<String>,
    /// Only events about the object of this name.
    #[param(max_length = 253)]
    pub name: Option<String>,
    /// Only events last seen within this many seconds.
    #[param(minimum = 1)]
    pub since_seconds: Option<i64>,
}

/// Filters of `GET .../{kind}/{name}/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ObjectEventsQuery {
    /// Only `Normal` or only `Warning` events.
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub type_: Option<EventType>,
    /// Only events last seen within this many seconds.
    #[param(minimum = 1)]
    pub since_seconds: Option<i64>,
}

/// Events, as `gateway::read` finds them for `object` (or the namespace) and `filter`: what
/// every door that shows events (the events endpoints, describe, chat) reads them with.
pub(super) async fn read_events(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    object: Option<(Kind, String)>,
    filter: EventFilter,
) -> Result<EventList, ApiError> {
    let read = Read::Events { object, filter };
    match FoundView::from(gateway::read(state, principal, target, read).await?) {
        FoundView::Events(list) => Ok(list),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "an events read found no events"
        ))),
    }
}

/// A namespace's events (`kubectl get events`), oldest last seen first.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/events", tag = "events",
    params(NamespacePath, EventsQuery),
    responses(
        (status = 200, description = "The events", body = EventList),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or filters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_events(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<EventsQuery>,
) -> Result<web::Json<EventList>, ApiError> {
    let q = query.into_inner();
    let filter = EventFilter {
        type_: q.type_.map(|t| t.as_str().to_owned()),
        kind: q.kind,
        name: q.name,
        since_seconds: q.since_seconds,
    };
    let list = read_events(&state, &principal, &path.target(), None, filter).await?;
    Ok(web::Json(list))
}

async fn object_events(
    state: &AppState,
    principal: &Principal,
    path: &ObjectPath,
    query: ObjectEventsQuery,
    kind: Kind,
) -> Result<web::Json<EventList>, ApiError> {
    let filter = EventFilter {
        type_: query.type_.map(|t| t.as_str().to_owned()),
        since_seconds: query.since_seconds,
        ..Default::default()
    };
    let object = Some((kind, path.name.clone()));
    let list = read_events(state, principal, &path.target(), object, filter).await?;
    Ok(web::Json(list))
}

macro_rules! object_events_endpoint {
    ($(#[$doc:meta])* $op:ident: $kind:expr, tag $tag:tt, path $path:tt, missing $missing:tt) => {
        $(#[$doc])*
        #[utoipa::path(
            get, path = $path, tag = $tag,
            params(ObjectPath, ObjectEventsQuery),
            responses(
                (status = 200, description = "Its events", body = EventList),
                (status = 404, description = $missing, body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid namespace, name or filters", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $op(
            state: web::Data<AppState>,
            principal: Principal,
            path: web::Path<ObjectPath>,
            query: web::Query<ObjectEventsQuery>,
        ) -> Result<web::Json<EventList>, ApiError> {
            object_events(&state, &principal, &path, query.into_inner(), $kind).await
        }
    };
}

object_events_endpoint!(
    /// A Deployment's events (scaling its ReplicaSets, failed rollouts).
    list_deployment_events: Kind::Deployment, tag "events",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/events",
    missing "Unknown cluster or Deployment"
);
object_events_endpoint!(
    /// A ReplicaSet's events (pods created and deleted, quota refusals).
    list_replicaset_events: Kind::ReplicaSet, tag "events",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/replicasets/{name}/events",
    missing "Unknown cluster or ReplicaSet"
);
object_events_endpoint!(
    /// A Service's events (load balancer provisioning).
    list_service_events: Kind::Service, tag "events",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/events",
    missing "Unknown cluster or Service"
);
object_events_endpoint!(
    /// A pod's events (scheduling, image pulls, container starts, back-offs).
    list_pod_events: Kind::Pod, tag "events",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/events",
    missing "Unknown cluster or pod"
);
