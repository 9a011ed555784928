//! Services: list/get, expose a Deployment, create/update (including ExternalName), delete by name
//! or label selector.

use actix_web::{HttpResponse, web};
use k8s_openapi::api::core::v1::{Pod, Service};
use serde::Serialize;
use utoipa::ToSchema;

use super::common::{
    ActionInfo, DEFAULT_MAX_AFFECTED, DeleteCollectionQuery, ListQuery, MutationQuery,
    NamespacePath, ObjectPath, check_names, cluster, run, selector,
};
use super::deployments::DeleteResult;
use super::problem::{ApiError, FieldError, Problem};
use super::views::{ServiceList, ServiceView, service_view};
use crate::action::{Action, ExposeSpec, ServiceSpec};
use crate::auth::Principal;
use crate::gateway::AppState;
use crate::gateway::{Executed, Outcome};
use crate::validate;

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

fn service_result(e: Executed, dry_run: bool) -> Result<HttpResponse, ApiError> {
    let Outcome::Service { service, created } = e.outcome else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "unexpected outcome for a service action"
        )));
    };
    let body = ServiceResult {
        service: service_view(&service, &[]),
        created,
        action: ActionInfo {
            audit_id: e.audit_id,
            dry_run,
        },
    };
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// List Services (`kubectl get services`).
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/services", tag = "services", operation_id = "list_services",
    params(NamespacePath, ListQuery),
    responses(
        (status = 200, description = "The Services", body = ServiceList),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or selector", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_services(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<ServiceList>, ApiError> {
    check_names(&path.namespace, None)?;
    let sel = selector(&query)?;
    let c = cluster(&state, &principal, &path.cluster, &path.namespace)?;
    let (services, pods) = futures::try_join!(
        c.read_list::<Service>(&path.namespace, sel.as_deref()),
        c.read_list::<Pod>(&path.namespace, None)
    )?;
    Ok(web::Json(ServiceList {
        items: services.iter().map(|s| service_view(s, &pods)).collect(),
    }))
}

/// Get a Service, with its ready endpoints and load balancer addresses.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}", tag = "services", operation_id = "get_service",
    params(ObjectPath),
    responses(
        (status = 200, description = "The Service", body = ServiceView),
        (status = 404, description = "Unknown cluster or Service", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_service(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<ServiceView>, ApiError> {
    check_names(&path.namespace, Some((&path.name, validate::dns1035_label)))?;
    let c = cluster(&state, &principal, &path.cluster, &path.namespace)?;
    let service: Service = c.read(&path.namespace, &path.name).await?;
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let pods: Vec<Pod> = if selector.is_empty() {
        Vec::new()
    } else {
        let sel: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        c.read_list(&path.namespace, Some(&sel.join(","))).await?
    };
    Ok(web::Json(service_view(&service, &pods)))
}

/// Expose a Deployment as a Service (`kubectl expose deployment`).
#[utoipa::path(
    post, path = "/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/expose", tag = "services", operation_id = "expose_deployment",
    params(ObjectPath, MutationQuery),
    request_body = ExposeSpec,
    responses(
        (status = 201, description = "The Service", body = ServiceResult),
        (status = 404, description = "Unknown cluster or Deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A Service of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid ports or type, or rejected by the API server (e.g. node port taken)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn expose_deployment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<ExposeSpec>,
) -> Result<HttpResponse, ApiError> {
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::Expose {
            deployment: path.name.clone(),
            spec: body.into_inner(),
        },
        &query,
        None,
    )
    .await?;
    service_result(e, query.dry_run)
}

/// Create or update a Service (server-side apply), including ExternalName.
#[utoipa::path(
    put, path = "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}", tag = "services", operation_id = "put_service",
    params(ObjectPath, MutationQuery),
    request_body = ServiceSpec,
    responses(
        (status = 200, description = "Updated", body = ServiceResult),
        (status = 201, description = "Created", body = ServiceResult),
        (status = 404, description = "Unknown cluster or namespace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request, or rejected by the API server", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_service(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
    body: web::Json<ServiceSpec>,
) -> Result<HttpResponse, ApiError> {
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::PutService {
            name: path.name.clone(),
            spec: body.into_inner(),
        },
        &query,
        None,
    )
    .await?;
    service_result(e, query.dry_run)
}

/// Delete a Service.
#[utoipa::path(
    delete, path = "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}", tag = "services", operation_id = "delete_service",
    params(ObjectPath, MutationQuery),
    responses(
        (status = 200, description = "Deleted", body = DeleteResult),
        (status = 404, description = "Unknown cluster or Service", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_service(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<MutationQuery>,
) -> Result<web::Json<DeleteResult>, ApiError> {
    let e = run(
        &state,
        &principal,
        path.target(),
        Action::DeleteService {
            name: path.name.clone(),
        },
        &query,
        None,
    )
    .await?;
    DeleteResult::from_executed(e, query.dry_run)
}

pub fn collection_selector(q: &DeleteCollectionQuery) -> Result<(String, usize), ApiError> {
    let sel = q
        .label_selector
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::from(crate::gateway::Error::Validation {
                errors: vec![FieldError {
                    field: "labelSelector".into(),
                    message: "required: deleting a collection needs a non-empty label selector"
                        .into(),
                }],
            })
        })?;
    Ok((sel, q.max_affected.unwrap_or(DEFAULT_MAX_AFFECTED)))
}

/// Delete the Services a label selector matches.
#[utoipa::path(
    delete, path = "/v1/clusters/{cluster}/namespaces/{namespace}/services", tag = "services", operation_id = "delete_services",
    params(NamespacePath, DeleteCollectionQuery),
    responses(
        (status = 200, description = "Deleted (or, with dryRun, would delete)", body = DeleteResult),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "More than maxAffected match; nothing deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid selector", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_services(
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
        Action::DeleteServices {
            selector,
            max_affected,
        },
        &mq,
        None,
    )
    .await?;
    DeleteResult::from_executed(e, query.dry_run)
}
