//! The OpenAPI document: the contract. Served at `/openapi.json`, committed as
//! `openapi/openapi.json` (regenerate with `cargo run -- openapi --output openapi/openapi.json`),
//! and compared with the code by a test.

use utoipa::OpenApi;

use super::{clusters, health, problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kubegate",
        description = "A safe, audited REST door to Kubernetes clusters: the everyday kubectl \
                       operations for platforms, chatops bots and generated SDKs. Every error is \
                       RFC 9457 problem+json with a stable `type`."
    ),
    paths(
        health::healthz,
        health::readyz,
        clusters::list_clusters,
        clusters::get_cluster,
        clusters::list_namespaces,
        clusters::list_nodes,
    ),
    components(schemas(problem::Problem, problem::FieldError)),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "clusters", description = "Clusters, their version, namespaces and nodes"),
    )
)]
pub struct ApiDoc;

/// The document as committed: pretty JSON with a trailing newline.
pub fn pretty_json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}
