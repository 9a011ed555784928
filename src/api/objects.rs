//! The endpoints every kind of object shares: list (`kubectl get KIND`), get (`kubectl get KIND
//! NAME`), delete by name or by label selector, and labels (`kubectl label`). Each kind is one row
//! of the tables at the end of this file; the rows make the REST operations (with their OpenAPI
//! documents), and one function per verb does the work, through `gateway::read` and
//! `gateway::execute` like every other door.

use actix_web::{HttpResponse, web};

use super::common::{
    DEFAULT_MAX_AFFECTED, DeleteCollectionQuery, ListQuery, MutationQuery, NamespacePath,
    ObjectPath, run,
};
use super::problem::{ApiError, Problem};
use super::results::{Answer, DeleteResult, LabelsResult};
use super::views::{
    AllView, DeploymentList, DeploymentView, FoundView, PodList, PodView, ReplicaSetList,
    ServiceList, ServiceView,
};
use crate::action::{Action, Kind, LabelChange};
use crate::auth::Principal;
use crate::gateway::{self, AppState, Read};

async fn list(
    state: &AppState,
    principal: &Principal,
    path: &NamespacePath,
    query: &ListQuery,
    kind: Kind,
) -> Result<web::Json<FoundView>, ApiError> {
    let read = Read::List {
        kind,
        selector: query.label_selector.clone(),
    };
    let found = gateway::read(state, principal, &path.target(), read).await?;
    Ok(web::Json(found.into()))
}

async fn get(
    state: &AppState,
    principal: &Principal,
    path: &ObjectPath,
    kind: Kind,
) -> Result<web::Json<FoundView>, ApiError> {
    let read = Read::Get {
        kind,
        name: path.name.clone(),
    };
    let found = gateway::read(state, principal, &path.target(), read).await?;
    Ok(web::Json(found.into()))
}

async fn delete(
    state: &AppState,
    principal: &Principal,
    path: &ObjectPath,
    query: &MutationQuery,
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    let action = Action::Delete {
        kind,
        name: path.name.clone(),
    };
    let e = run(state, principal, path.target(), action, query, None).await?;
    Ok(Answer::of(e, query.dry_run).response())
}

async fn delete_selected(
    state: &AppState,
    principal: &Principal,
    path: &NamespacePath,
    query: &DeleteCollectionQuery,
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    let selector = query
        .label_selector
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            gateway::Error::invalid(
                "labelSelector",
                "required: deleting a collection needs a non-empty label selector",
            )
        })?;
    let action = Action::DeleteSelected {
        kind,
        selector,
        max_affected: query.max_affected.unwrap_or(DEFAULT_MAX_AFFECTED),
    };
    let options = MutationQuery {
        dry_run: query.dry_run,
        ..Default::default()
    };
    let e = run(state, principal, path.target(), action, &options, None).await?;
    Ok(Answer::of(e, query.dry_run).response())
}

async fn label(
    state: &AppState,
    principal: &Principal,
    path: &ObjectPath,
    query: &MutationQuery,
    kind: Kind,
    change: LabelChange,
) -> Result<HttpResponse, ApiError> {
    let action = Action::Label {
        kind,
        name: path.name.clone(),
        change,
    };
    let e = run(state, principal, path.target(), action, query, None).await?;
    Ok(Answer::of(e, query.dry_run).response())
}

// One macro per verb: a row names the operation, its kind, its path and what its documents say.
// The operation id is the function's name.

macro_rules! list_endpoint {
    ($(#[$doc:meta])* $op:ident: $kind:expr, tag $tag:tt, path $path:tt, $body:ident $what:tt) => {
        $(#[$doc])*
        #[utoipa::path(
            get, path = $path, tag = $tag,
            params(NamespacePath, ListQuery),
            responses(
                (status = 200, description = $what, body = $body),
                (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid namespace or selector", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $op(
            state: web::Data<AppState>,
            principal: Principal,
            path: web::Path<NamespacePath>,
            query: web::Query<ListQuery>,
        ) -> Result<web::Json<FoundView>, ApiError> {
            list(&state, &principal, &path, &query, $kind).await
        }
    };
}

macro_rules! get_endpoint {
    ($(#[$doc:meta])* $op:ident: $kind:expr, tag $tag:tt, path $path:tt, $body:ident $what:tt, missing $missing:tt) => {
        $(#[$doc])*
        #[utoipa::path(
            get, path = $path, tag = $tag,
            params(ObjectPath),
            responses(
                (status = 200, description = $what, body = $body),
                (status = 404, description = $missing, body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid namespace or name", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $op(
            state: web::Data<AppState>,
            principal: Principal,
            path: web::Path<ObjectPath>,
        ) -> Result<web::Json<FoundView>, ApiError> {
            get(&state, &principal, &path, $kind).await
        }
    };
}

macro_rules! delete_endpoint {
    ($(#[$doc:meta])* $op:ident: $kind:expr, tag $tag:tt, path $path:tt, missing $missing:tt) => {
        $(#[$doc])*
        #[utoipa::path(
            delete, path = $path, tag = $tag,
            params(ObjectPath, MutationQuery),
            responses(
                (status = 200, description = "Deleted", body = DeleteResult),
                (status = 404, description = $missing, body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid namespace or name", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $op(
            state: web::Data<AppState>,
            principal: Principal,
            path: web::Path<ObjectPath>,
            query: web::Query<MutationQuery>,
        ) -> Result<HttpResponse, ApiError> {
            delete(&state, &principal, &path, &query, $kind).await
        }
    };
}

macro_rules! delete_selected_endpoint {
    ($(#[$doc:meta])* $op:ident: $kind:expr, tag $tag:tt, path $path:tt) => {
        $(#[$doc])*
        #[utoipa::path(
            delete, path = $path, tag = $tag,
            params(NamespacePath, DeleteCollectionQuery),
            responses(
                (status = 200, description = "Deleted (or, with dryRun, would delete)", body = DeleteResult),
                (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "More than maxAffected match; nothing deleted", body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "Missing or invalid selector", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $op(
            state: web::Data<AppState>,
            principal: Principal,
            path: web::Path<NamespacePath>,
            query: web::Query<DeleteCollectionQuery>,
        ) -> Result<HttpResponse, ApiError> {
            delete_selected(&state, &principal, &path, &query, $kind).await
        }
    };
}

macro_rules! label_endpoint {
    ($(#[$doc:meta])* $op:ident: $kind:expr, tag $tag:tt, path $path:tt, missing $missing:tt) => {
        $(#[$doc])*
        #[utoipa::path(
            put, path = $path, tag = $tag,
            params(ObjectPath, MutationQuery), request_body = LabelChange,
            responses(
                (status = 200, description = "The labels now", body = LabelsResult),
                (status = 404, description = $missing, body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "A label has another value and overwrite is false, or the object changed meanwhile", body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "Invalid labels", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $op(
            state: web::Data<AppState>,
            principal: Principal,
            path: web::Path<ObjectPath>,
            query: web::Query<MutationQuery>,
            body: web::Json<LabelChange>,
        ) -> Result<HttpResponse, ApiError> {
            label(&state, &principal, &path, &query, $kind, body.into_inner()).await
        }
    };
}

list_endpoint!(
    /// List Deployments (`kubectl get deployments`).
    list_deployments: Kind::Deployment, tag "deployments",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/deployments", DeploymentList "The Deployments"
);
list_endpoint!(
    /// List ReplicaSets (`kubectl get replicasets`).
    list_replicasets: Kind::ReplicaSet, tag "deployments",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/replicasets", ReplicaSetList "The ReplicaSets"
);
list_endpoint!(
    /// List Services (`kubectl get services`).
    list_services: Kind::Service, tag "services",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/services", ServiceList "The Services"
);
list_endpoint!(
    /// List pods (`kubectl get pods -o wide`).
    list_pods: Kind::Pod, tag "pods",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/pods", PodList "The pods"
);

get_endpoint!(
    /// Get a Deployment (`kubectl describe deployment`).
    get_deployment: Kind::Deployment, tag "deployments",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}",
    DeploymentView "The Deployment", missing "Unknown cluster or Deployment"
);
get_endpoint!(
    /// Get a Service, with its ready endpoints and load balancer addresses.
    get_service: Kind::Service, tag "services",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}",
    ServiceView "The Service", missing "Unknown cluster or Service"
);
get_endpoint!(
    /// Get a pod.
    get_pod: Kind::Pod, tag "pods",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}",
    PodView "The pod", missing "Unknown cluster or pod"
);

delete_endpoint!(
    /// Delete a Deployment (its ReplicaSets and pods go with it).
    delete_deployment: Kind::Deployment, tag "deployments",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}",
    missing "Unknown cluster or Deployment"
);
delete_endpoint!(
    /// Delete a Service.
    delete_service: Kind::Service, tag "services",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}",
    missing "Unknown cluster or Service"
);
delete_endpoint!(
    /// Delete a pod (its controller replaces it).
    delete_pod: Kind::Pod, tag "pods",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}",
    missing "Unknown cluster or pod"
);

delete_selected_endpoint!(
    /// Delete the Services a label selector matches.
    delete_services: Kind::Service, tag "services",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/services"
);
delete_selected_endpoint!(
    /// Delete the pods a label selector matches.
    delete_pods: Kind::Pod, tag "pods",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/pods"
);

label_endpoint!(
    /// Set or remove labels of a Deployment (`kubectl label deployment`).
    label_deployment: Kind::Deployment, tag "deployments",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/labels",
    missing "Unknown cluster or Deployment"
);
label_endpoint!(
    /// Set or remove labels of a Service (`kubectl label service`).
    label_service: Kind::Service, tag "services",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/labels",
    missing "Unknown cluster or Service"
);
label_endpoint!(
    /// Set or remove labels of a pod (`kubectl label pod`).
    label_pod: Kind::Pod, tag "pods",
    path "/v1/clusters/{cluster}/namespaces/{namespace}/pods/{name}/labels",
    missing "Unknown cluster or pod"
);

/// Everything `kubectl get all` lists in a namespace: pods, services, deployments, replicasets,
/// statefulsets, daemonsets, jobs, cronjobs and horizontalpodautoscalers.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/all", tag = "workloads",
    params(NamespacePath, ListQuery),
    responses(
        (status = 200, description = "A list of each kind", body = AllView),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or selector", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_all(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<FoundView>, ApiError> {
    let read = Read::All {
        selector: query.label_selector.clone(),
    };
    let found = gateway::read(&state, &principal, &path.target(), read).await?;
    Ok(web::Json(found.into()))
}
