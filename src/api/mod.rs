//! The HTTP boundary: routes, request/response types (with OpenAPI schemas), problem+json errors and
//! the request middleware. Handlers stay short: they turn HTTP into a call on the domain and back,
//! and never talk to PostgreSQL or kube-rs directly.

pub mod clusters;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod problem;

use actix_web::{HttpRequest, Resource, web};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use problem::ApiError;

/// Register every route and the extractor configuration.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
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
    .service(resource("/v1/clusters/{cluster}", "GET").route(web::get().to(clusters::get_cluster)))
    .service(
        resource("/v1/clusters/{cluster}/namespaces", "GET")
            .route(web::get().to(clusters::list_namespaces)),
    )
    .service(
        resource("/v1/clusters/{cluster}/nodes", "GET").route(web::get().to(clusters::list_nodes)),
    )
    .service(resource("/docs", "GET").route(web::get().to(docs_redirect)))
    .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::ApiDoc::openapi()))
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
