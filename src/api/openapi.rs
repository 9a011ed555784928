//! The OpenAPI document: the contract. Served at `/openapi.json`, committed as
//! `openapi/openapi.json` (regenerate with `cargo run -- openapi --output openapi/openapi.json`),
//! and compared with the code by a test.

use utoipa::OpenApi;

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref, ResponseBuilder};

use super::{audit, clusters, deployments, health, identity, pods, problem, services};

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
        identity::get_whoami,
        identity::create_access_review,
        audit::list_audit_entries,
        audit::get_audit_entry,
        audit::verify_audit_log,
        audit::create_audit_checkpoint,
        audit::list_audit_checkpoints,
        clusters::list_clusters,
        clusters::get_cluster,
        clusters::list_namespaces,
        clusters::list_nodes,
        deployments::list_deployments,
        deployments::get_deployment,
        deployments::deploy_deployment,
        deployments::delete_deployment,
        deployments::scale_deployment,
        deployments::set_deployment_image,
        deployments::restart_deployment,
        deployments::rollback_deployment,
        deployments::get_deployment_rollout,
        deployments::list_deployment_revisions,
        deployments::get_deployment_revision,
        deployments::list_replicasets,
        pods::label_deployment,
        services::list_services,
        services::get_service,
        services::expose_deployment,
        services::put_service,
        services::delete_service,
        services::delete_services,
        pods::label_service,
        pods::list_pods,
        pods::get_pod,
        pods::get_pod_logs,
        pods::delete_pod,
        pods::delete_pods,
        pods::label_pod,
    ),
    components(schemas(problem::Problem, problem::FieldError, deployments::RolloutResult)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "identity", description = "Who am I, and may I (can-i)"),
        (name = "audit", description = "The append-only, hash-chained audit log (auditors and admins on every cluster)"),
        (name = "clusters", description = "Clusters, their version, namespaces and nodes"),
        (name = "deployments", description = "Deploy, scale, set image, restart, rollout status, history and undo, labels; ReplicaSets"),
        (name = "services", description = "Expose Deployments, create, update and delete Services"),
        (name = "pods", description = "Pods, their logs, deletion and labels"),
    )
)]
pub struct ApiDoc;

/// Every `/v1` operation needs a bearer JWT, and answers 401 and 403 problems.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                op.responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| {
                        problem("No valid bearer token (see WWW-Authenticate)").into()
                    });
                op.responses
                    .responses
                    .entry("403".into())
                    .or_insert_with(|| problem("The token's grants do not allow this").into());
            }
        }
    }
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn pretty_json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}
