//! The OpenAPI document: the contract. Served at `/openapi.json`, committed as
//! `openapi/openapi.json` (regenerate with `cargo run -- openapi --output openapi/openapi.json`),
//! and compared with the code by a test.

use utoipa::OpenApi;

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref, ResponseBuilder};

use super::{
    apply, audit, clusters, commands, deployments, events, exec, health, identity, kubeapi,
    objects, pods, problem, proxy, services, slack,
};

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
        audit::get_audit_recording,
        audit::verify_audit_log,
        audit::create_audit_checkpoint,
        audit::list_audit_checkpoints,
        clusters::list_clusters,
        clusters::get_cluster,
        clusters::list_namespaces,
        clusters::list_nodes,
        kubeapi::get_kubeconfig,
        objects::list_deployments,
        objects::get_deployment,
        deployments::deploy_deployment,
        objects::delete_deployment,
        deployments::scale_deployment,
        deployments::set_deployment_image,
        deployments::restart_deployment,
        deployments::rollback_deployment,
        deployments::get_deployment_rollout,
        deployments::list_deployment_revisions,
        deployments::get_deployment_revision,
        deployments::describe_deployment,
        deployments::describe_replicaset,
        objects::list_replicasets,
        objects::label_deployment,
        objects::list_services,
        objects::get_service,
        services::expose_deployment,
        services::put_service,
        services::describe_service,
        objects::delete_service,
        objects::delete_services,
        objects::label_service,
        objects::list_pods,
        objects::get_pod,
        pods::get_pod_logs,
        pods::describe_pod,
        exec::exec_once,
        exec::exec_session,
        exec::portforward_session,
        proxy::proxy_get_pod,
        proxy::proxy_post_pod,
        proxy::proxy_put_pod,
        proxy::proxy_patch_pod,
        proxy::proxy_delete_pod,
        proxy::proxy_get_service,
        proxy::proxy_post_service,
        proxy::proxy_put_service,
        proxy::proxy_patch_service,
        proxy::proxy_delete_service,
        objects::delete_pod,
        objects::delete_pods,
        objects::label_pod,
        objects::list_all,
        events::list_events,
        events::list_deployment_events,
        events::list_replicaset_events,
        events::list_service_events,
        events::list_pod_events,
        apply::apply_manifests,
        apply::apply_namespaced_manifests,
        commands::run_command,
        slack::slack_command,
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
        (name = "workloads", description = "Everything kubectl get all lists in a namespace"),
        (name = "events", description = "Events of a namespace and of an object (kubectl get events, describe)"),
        (name = "apply", description = "Apply manifests with server-side apply (kubectl apply --server-side -f), diff and dry run"),
        (name = "commands", description = "kubectl command lines for chatops, run as the REST operations above"),
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
        components.add_security_scheme(
            "slackSignature",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "X-Slack-Signature",
                    "Slack's request signature (v0=HMAC-SHA256 of v0:timestamp:body with the app's signing secret), with X-Slack-Request-Timestamp",
                ),
            )),
        );
        components.add_security_scheme(
            "onBehalfOf",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "X-On-Behalf-Of",
                    "With a bearer token of a bot holding the `delegate` role: the person (a \
                     subject or alias of the policy file) the bot acts for. Allowed only where \
                     the bot may delegate, the bot may do it and the person may do it; audited \
                     with the person as `subject` and the bot as `delegatedBy`. Without the \
                     role, or naming nobody the policy knows: 403.",
                ),
            )),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            if path.starts_with("/v1/integrations/slack/") {
                if let Some(op) = item.post.as_mut() {
                    op.security = Some(vec![SecurityRequirement::new(
                        "slackSignature",
                        Vec::<String>::new(),
                    )]);
                }
                continue;
            }
            let in_cluster = path.contains("{cluster}");
            let namespaced = path.contains("{namespace}");
            let ops = [
                (&mut item.get, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
            ];
            for (op, mutating) in ops {
                let Some(op) = op.as_mut() else { continue };
                // A bearer token, alone or with the person a bot acts for: delegation is part
                // of who is calling, so clients set it once, not as a parameter of each call.
                let none = Vec::<String>::new;
                op.security = Some(vec![
                    SecurityRequirement::new("bearer", none()),
                    SecurityRequirement::default()
                        .add("bearer", none())
                        .add("onBehalfOf", none()),
                ]);
                let params = op.parameters.get_or_insert_with(Vec::new);
                if mutating && path != "/v1/access-reviews" {
                    params.push(header(
                        "Idempotency-Key",
                        "Makes retries safe: the first request's answer is stored for the caller \
                         and key (for KUBEGATE_IDEMPOTENCY_TTL) and replayed to a retry of the \
                         same request, with `Idempotent-Replayed: true`; answers of 5xx are not \
                         stored, so such a retry runs again. The same key with another request \
                         is 422; while the first still runs, 409.",
                        "^[A-Za-z0-9._:~+/=-]+$",
                        255,
                    ));
                }
                let has_body = op.request_body.is_some();
                let r = &mut op.responses.responses;
                let mut add = |code: &str, description: &str| {
                    r.entry(code.into())
                        .or_insert_with(|| problem(description).into());
                };
                add(
                    "400",
                    "Malformed request: unparsable JSON, an unknown field or query parameter, a bad header",
                );
                add("401", "No valid bearer token (see WWW-Authenticate)");
                add("403", "The token's grants do not allow this");
                add("429", "The caller's rate budget is spent (see Retry-After)");
                if in_cluster {
                    add("404", "Unknown cluster, namespace or object");
                    add(
                        "502",
                        "The cluster refused kubegate's credentials or answered unexpectedly",
                    );
                    add("503", "The cluster (or the audit log) is unavailable");
                    add("504", "The cluster did not answer in time");
                }
                if namespaced {
                    add("422", "Invalid request (every invalid field is listed)");
                }
                if mutating && path != "/v1/access-reviews" {
                    add(
                        "409",
                        "Conflict with the cluster's state, or the Idempotency-Key's first request is still running",
                    );
                    add(
                        "422",
                        "Invalid request, or the Idempotency-Key was used for another request",
                    );
                    add(
                        "503",
                        "The audit log or the cluster is unavailable: nothing was done",
                    );
                }
                if has_body {
                    add("413", "The body is larger than KUBEGATE_MAX_BODY_BYTES");
                    add("415", "The body is not JSON");
                }
                for param in op.parameters.iter_mut().flatten() {
                    let utoipa::openapi::RefOr::T(param) = param else {
                        continue;
                    };
                    if let Some((pattern, max)) = name_pattern(path, &param.name) {
                        let schema = utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String)
                            .pattern(Some(pattern))
                            .min_length(Some(1))
                            .max_length(Some(max));
                        param.schema = Some(schema.into());
                    }
                }
            }
        }
    }
}

/// An optional request header every generated client can set.
fn header(
    name: &str,
    description: &str,
    pattern: &str,
    max: usize,
) -> utoipa::openapi::RefOr<utoipa::openapi::path::Parameter> {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    let schema = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(max));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
        .into()
}

/// The naming rules of path parameters, as the API server (and kubegate's validation) has them.
fn name_pattern(path: &str, param: &str) -> Option<(&'static str, usize)> {
    const LABEL: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
    const SUBDOMAIN: &str =
        "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";
    const DNS1035: &str = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$";
    match param {
        "cluster" => Some(("^[A-Za-z0-9._@:-]+$", 253)),
        "namespace" => Some((LABEL, 63)),
        "name" if path.contains("/services/") => Some((DNS1035, 63)),
        "name" => Some((SUBDOMAIN, 253)),
        "container" => Some((LABEL, 63)),
        "cursor" => Some(("^[0-9]{1,18}$", 18)),
        "auditId" => Some((
            "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            36,
        )),
        _ => None,
    }
}

/// The document as this process publishes it, built once: building it allocates several MiB for a
/// moment (utoipa's builders), which each actix worker used to do for itself, leaving its
/// allocator arena that much bigger for good. `Application::build` forces it on the main thread.
pub struct Published {
    /// Served at `/openapi.json` (compact JSON; the same document as `pretty_json`).
    pub json: actix_web::web::Bytes,
    /// The operations that take an `Idempotency-Key` (see `api::idempotency`).
    pub mutations: Vec<super::idempotency::Mutation>,
}

pub static PUBLISHED: std::sync::LazyLock<Published> = std::sync::LazyLock::new(|| {
    let doc = ApiDoc::openapi();
    Published {
        mutations: super::idempotency::mutations(&doc),
        json: doc
            .to_json()
            .expect("the OpenAPI document serializes")
            .into(),
    }
});

/// `GET /openapi.json`.
pub async fn serve() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(PUBLISHED.json.clone())
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn pretty_json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}
