//! The HTTP boundary: routes, request/response types (with OpenAPI schemas), problem+json errors and
//! the request middleware. Handlers stay short: they turn HTTP into a call on the domain and back,
//! and never talk to PostgreSQL or kube-rs directly.

pub mod applied;
pub mod apply;
pub mod audit;
pub mod clusters;
pub mod commands;
pub mod common;
pub mod compress;
pub mod console;
pub mod deployments;
pub mod events;
pub mod exec;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod identity;
pub mod kubeapi;
pub mod middleware;
pub mod objects;
pub mod openapi;
pub mod pods;
pub mod problem;
pub mod proxy;
pub mod render;
pub mod results;
pub mod services;
pub mod slack;
pub mod views;

use actix_web::{HttpRequest, Resource, web};
use utoipa_swagger_ui::{Config, SwaggerUi};

use problem::ApiError;

/// Register every route and the extractor configuration.
/// `with_metrics`: serve `/metrics` here (not when KUBEGATE_METRICS_LISTEN moves it elsewhere).
pub fn configure(
    cfg: &mut web::ServiceConfig,
    max_body_bytes: usize,
    with_metrics: bool,
    console: Option<std::sync::Arc<console::Console>>,
) {
    if let Some(console) = console {
        console.configure(cfg);
    }
    if with_metrics {
        cfg.service(resource("/metrics", "GET").route(web::get().to(health::metrics)));
    }
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body_bytes)
            .error_handler(problem::json_error),
    )
    .app_data(web::PathConfig::default().error_handler(problem::path_error))
    .app_data(web::QueryConfig::default().error_handler(problem::query_error))
    .service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
    .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
    .service(resource("/v1/clusters", "GET").route(web::get().to(clusters::list_clusters)))
    .service(resource("/v1/whoami", "GET").route(web::get().to(identity::get_whoami)))
    .service(
        resource("/v1/access-reviews", "POST")
            .route(web::post().to(identity::create_access_review)),
    )
    .service(resource("/v1/audit", "GET").route(web::get().to(audit::list_audit_entries)))
    .service(resource("/v1/audit/verify", "GET").route(web::get().to(audit::verify_audit_log)))
    .service(
        resource("/v1/audit/checkpoints", "GET, POST")
            .route(web::get().to(audit::list_audit_checkpoints))
            .route(web::post().to(audit::create_audit_checkpoint)),
    )
    .service(
        resource("/v1/integrations/slack/commands", "POST")
            .route(web::post().to(slack::slack_command)),
    )
    .service(resource("/v1/audit/{auditId}", "GET").route(web::get().to(audit::get_audit_entry)))
    .service(
        resource("/v1/audit/{auditId}/recording", "GET")
            .route(web::get().to(audit::get_audit_recording)),
    )
    .service(web::scope("/v1/clusters/{cluster}").configure(cluster_scoped))
    .service(web::resource(["/k8s/{cluster}", "/k8s/{cluster}/{tail:.*}"]).to(kubeapi::handle))
    .service(resource("/docs", "GET").route(web::get().to(docs_redirect)))
    .service(resource("/openapi.json", "GET").route(web::get().to(openapi::serve)))
    .service(SwaggerUi::new("/docs/{_:.*}").config(Config::from("/openapi.json")))
    .default_service(web::to(not_found));
}

// Routes are nested in scopes so that a request meets few path patterns with parameters: the
// router tries patterns in order and each one with a parameter is a regular expression
// (measured: route matching was a third of kubegate's CPU on a cached read before nesting).

/// `/v1/clusters/{cluster}...`
fn cluster_scoped(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("", "GET").route(web::get().to(clusters::get_cluster)))
        .service(resource("/namespaces", "GET").route(web::get().to(clusters::list_namespaces)))
        .service(resource("/nodes", "GET").route(web::get().to(clusters::list_nodes)))
        .service(resource("/commands", "POST").route(web::post().to(commands::run_command)))
        .service(resource("/apply", "POST").route(web::post().to(apply::apply_manifests)))
        .service(resource("/kubeconfig", "GET").route(web::get().to(kubeapi::get_kubeconfig)))
        .service(web::scope("/namespaces/{namespace}").configure(namespaced))
        .default_service(web::to(not_found));
}

/// `/v1/clusters/{cluster}/namespaces/{namespace}...`
fn namespaced(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/deployments", "GET").route(web::get().to(objects::list_deployments)))
        .service(web::scope("/deployments/{name}").configure(deployment_scoped))
        .service(resource("/replicasets", "GET").route(web::get().to(objects::list_replicasets)))
        .service(
            resource("/replicasets/{name}/events", "GET")
                .route(web::get().to(events::list_replicaset_events)),
        )
        .service(
            resource("/replicasets/{name}/describe", "GET")
                .route(web::get().to(deployments::describe_replicaset)),
        )
        .service(resource("/events", "GET").route(web::get().to(events::list_events)))
        .service(
            resource("/apply", "POST").route(web::post().to(apply::apply_namespaced_manifests)),
        )
        .service(resource("/all", "GET").route(web::get().to(objects::list_all)))
        .service(
            resource("/services", "GET, DELETE")
                .route(web::get().to(objects::list_services))
                .route(web::delete().to(objects::delete_services)),
        )
        .service(
            web::scope("/services/{name}")
                .service(
                    resource("", "GET, PUT, DELETE")
                        .route(web::get().to(objects::get_service))
                        .route(web::put().to(services::put_service))
                        .route(web::delete().to(objects::delete_service)),
                )
                .service(resource("/labels", "PUT").route(web::put().to(objects::label_service)))
                .service(
                    resource("/events", "GET").route(web::get().to(events::list_service_events)),
                )
                .service(
                    resource("/describe", "GET").route(web::get().to(services::describe_service)),
                )
                .service(web::resource(["/proxy", "/proxy/{tail:.*}"]).to(proxy::to_service))
                .default_service(web::to(not_found)),
        )
        .service(
            resource("/pods", "GET, DELETE")
                .route(web::get().to(objects::list_pods))
                .route(web::delete().to(objects::delete_pods)),
        )
        .service(
            web::scope("/pods/{name}")
                .service(
                    resource("", "GET, DELETE")
                        .route(web::get().to(objects::get_pod))
                        .route(web::delete().to(objects::delete_pod)),
                )
                .service(resource("/logs", "GET").route(web::get().to(pods::get_pod_logs)))
                .service(resource("/describe", "GET").route(web::get().to(pods::describe_pod)))
                .service(resource("/events", "GET").route(web::get().to(events::list_pod_events)))
                .service(
                    resource("/exec", "GET, POST")
                        .route(web::get().to(exec::exec_session))
                        .route(web::post().to(exec::exec_once)),
                )
                .service(
                    resource("/portforward", "GET").route(web::get().to(exec::portforward_session)),
                )
                .service(web::resource(["/proxy", "/proxy/{tail:.*}"]).to(proxy::to_pod))
                .service(resource("/labels", "PUT").route(web::put().to(objects::label_pod)))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

/// `/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}...`
fn deployment_scoped(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("", "GET, PUT, DELETE")
            .route(web::get().to(objects::get_deployment))
            .route(web::put().to(deployments::deploy_deployment))
            .route(web::delete().to(objects::delete_deployment)),
    )
    .service(resource("/rollout", "GET").route(web::get().to(deployments::get_deployment_rollout)))
    .service(resource("/events", "GET").route(web::get().to(events::list_deployment_events)))
    .service(resource("/describe", "GET").route(web::get().to(deployments::describe_deployment)))
    .service(resource("/replicas", "PUT").route(web::put().to(deployments::scale_deployment)))
    .service(resource("/image", "PUT").route(web::put().to(deployments::set_deployment_image)))
    .service(resource("/restart", "POST").route(web::post().to(deployments::restart_deployment)))
    .service(resource("/rollback", "POST").route(web::post().to(deployments::rollback_deployment)))
    .service(
        resource("/revisions", "GET").route(web::get().to(deployments::list_deployment_revisions)),
    )
    .service(
        resource("/revisions/{revision}", "GET")
            .route(web::get().to(deployments::get_deployment_revision)),
    )
    .service(resource("/expose", "POST").route(web::post().to(services::expose_deployment)))
    .service(resource("/labels", "PUT").route(web::put().to(objects::label_deployment)))
    .default_service(web::to(not_found));
}

/// A resource whose other methods answer 405 problem+json with `Allow`.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
}

/// Swagger UI lives under `/docs/`; a browser typing `/docs` gets there.
async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound {
        path: req.path().to_owned(),
    })
}
