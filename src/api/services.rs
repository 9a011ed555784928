//! Services: expose a Deployment, create or update one (including ExternalName), describe one.
//! Listing, getting, deleting and labelling them are shared with the other kinds (`objects`).

use actix_web::{HttpResponse, web};

use super::common::{MutationQuery, ObjectPath, run};
use super::events::read_events;
use super::problem::{ApiError, Problem};
use super::results::{Answer, ServiceResult};
use super::views::{ServiceDescription, service_view};
use crate::action::{Action, ExposeSpec, Kind, ServiceSpec};
use crate::auth::Principal;
use crate::gateway::{self, AppState, EventFilter, Found, Read};

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
    Ok(Answer::of(e, query.dry_run).response())
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
    Ok(Answer::of(e, query.dry_run).response())
}

/// A Service in detail (`kubectl describe service`): the Service with its ready endpoints and
/// load balancer addresses, and its events.
#[utoipa::path(
    get, path = "/v1/clusters/{cluster}/namespaces/{namespace}/services/{name}/describe", tag = "services",
    params(ObjectPath),
    responses(
        (status = 200, description = "The Service in detail", body = ServiceDescription),
        (status = 404, description = "Unknown cluster or Service", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid namespace or name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn describe_service(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ObjectPath>,
) -> Result<web::Json<ServiceDescription>, ApiError> {
    let target = path.target();
    let read = |read| gateway::read(&state, &principal, &target, read);
    let get = Read::Get {
        kind: Kind::Service,
        name: path.name.clone(),
    };
    let Found::Service { service, pods } = read(get).await? else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a service read found no service"
        )));
    };
    let object = Some((Kind::Service, path.name.clone()));
    let events = read_events(&state, &principal, &target, object, EventFilter::default()).await?;
    Ok(web::Json(ServiceDescription {
        service: service_view(&service, &pods),
        events: events.items,
    }))
}
