//! `POST .../apply`: manifests (multi-document YAML or JSON) applied with server-side apply, as
//! `kubectl apply --server-side -f` does, under kubegate's roles and audit log.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::applied::{AppliedObject, ApplyCounts, ApplyResult, object_problem};
use super::common::NamespacePath;
use super::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::auth::Principal;
use crate::gateway::apply::{Applied, ApplyRequest, ObjectStatus};
use crate::gateway::{self, AppState};
use crate::manifest::Format;

/// `/v1/clusters/{cluster}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ClusterPath {
    /// Cluster name.
    pub cluster: String,
}

/// Options of an apply.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApplyQuery {
    /// Server-side dry run: the API server validates and answers, nothing changes.
    #[serde(default)]
    pub dry_run: bool,
    /// A dry run that also returns, per object, a unified diff of the live object against the
    /// result (`kubectl diff`); a Secret's values are never shown, only which keys changed.
    #[serde(default)]
    pub diff: bool,
    /// Take over fields another field manager owns (otherwise 409 naming them).
    #[serde(default)]
    pub force: bool,
    /// Apply the other objects after one fails (otherwise nothing after it starts).
    #[serde(default)]
    pub continue_on_error: bool,
    /// Answer when every Deployment, StatefulSet and DaemonSet applied has rolled out, failed,
    /// or `timeoutSeconds` passed.
    #[serde(default)]
    pub wait: bool,
    /// Bound of `wait` (default 60, capped by the server's KUBEGATE_MAX_WAIT).
    #[param(minimum = 1, maximum = 86400)]
    pub timeout_seconds: Option<u64>,
    /// Why (recorded in the audit log).
    #[param(max_length = 1024)]
    pub reason: Option<String>,
}

/// A manifest as JSON: one object (a `List` too), or an array of objects.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"}, "data": {"greeting": "hello"}}]))]
#[allow(dead_code)]
pub enum ManifestJson {
    Object(HashMap<String, serde_json::Value>),
    Objects(Vec<HashMap<String, serde_json::Value>>),
}

/// Apply manifests to a cluster (`kubectl apply --server-side -f`). Namespaced objects without
/// a namespace go to the cluster's default namespace.
#[utoipa::path(
    post, path = "/v1/clusters/{cluster}/apply", tag = "apply", operation_id = "apply_manifests",
    params(ClusterPath, ApplyQuery),
    request_body(description = "One or more manifests", content(
        (String = "application/yaml", example = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: shop\ndata:\n  greeting: hello\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"),
        (ManifestJson = "application/json"),
    )),
    responses(
        (status = 200, description = "Every object applied (see each one's result)", body = ApplyResult),
        (status = 400, description = "Not a readable manifest (malformed YAML or JSON, duplicate keys, too many aliases)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An object's kind or namespace is beyond the caller's grants: nothing was applied", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster, or an object's namespace does not exist (`objects` lists each result)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A field another manager owns (without `force`), or a CRD not established (`objects` lists each result)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than KUBEGATE_APPLY_MAX_BODY_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither YAML nor JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An object is invalid, of a kind the cluster does not serve, or too many: nothing was applied; or the API server rejected one (`objects` lists each result)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn apply_manifests(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<ClusterPath>,
    query: web::Query<ApplyQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    run(
        &state,
        &principal,
        path.cluster,
        None,
        query.into_inner(),
        &req,
        body,
    )
    .await
}

/// Apply manifests in a namespace: objects without a namespace go there, and no object may
/// name another.
#[utoipa::path(
    post, path = "/v1/clusters/{cluster}/namespaces/{namespace}/apply", tag = "apply", operation_id = "apply_namespaced_manifests",
    params(NamespacePath, ApplyQuery),
    request_body(description = "One or more manifests", content(
        (String = "application/yaml", example = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  greeting: hello\n"),
        (ManifestJson = "application/json"),
    )),
    responses(
        (status = 200, description = "Every object applied (see each one's result)", body = ApplyResult),
        (status = 400, description = "Not a readable manifest (malformed YAML or JSON, duplicate keys, too many aliases)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An object's kind is beyond the caller's grants: nothing was applied", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown cluster, or the namespace does not exist (`objects` lists each result)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A field another manager owns (without `force`), or a CRD not established (`objects` lists each result)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than KUBEGATE_APPLY_MAX_BODY_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither YAML nor JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An object is invalid, names another namespace, is of a kind the cluster does not serve, or too many: nothing was applied; or the API server rejected one (`objects` lists each result)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn apply_namespaced_manifests(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<NamespacePath>,
    query: web::Query<ApplyQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    crate::validate::dns1123_label(&path.namespace)
        .map_err(|m| ApiError::validation(vec![field("namespace", m)]))?;
    run(
        &state,
        &principal,
        path.cluster,
        Some(path.namespace),
        query.into_inner(),
        &req,
        body,
    )
    .await
}

fn field(name: &str, message: String) -> crate::validate::FieldError {
    crate::validate::FieldError {
        field: name.into(),
        message,
    }
}

async fn run(
    state: &AppState,
    principal: &Principal,
    cluster: String,
    namespace: Option<String>,
    query: ApplyQuery,
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let format = format_of(req)?;
    super::common::check_timeout(query.timeout_seconds)?;
    let body = super::proxy::read_body(&mut payload, state.apply.max_body_bytes).await?;
    let wait = super::common::wait_bound(state, query.wait, query.timeout_seconds);
    let dry_run = query.dry_run || query.diff;
    let applied = gateway::apply::apply(
        state,
        principal,
        ApplyRequest {
            cluster,
            namespace,
            body: body.into(),
            format,
            dry_run,
            diff: query.diff,
            force: query.force,
            continue_on_error: query.continue_on_error,
            wait,
            reason: query.reason,
        },
    )
    .await?;
    Ok(answer(applied, dry_run))
}

/// YAML (`application/yaml`, `application/x-yaml`, `text/yaml`) or JSON.
fn format_of(req: &HttpRequest) -> Result<Format, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Ok(Format::Yaml),
        "application/json" => Ok(Format::Json),
        _ => Err(ApiError::UnsupportedMediaType {
            detail: format!(
                "a manifest is YAML (Content-Type: application/yaml) or JSON (application/json); got {:?}",
                if ct.is_empty() { "nothing" } else { ct }
            ),
        }),
    }
}

fn answer(applied: Applied, dry_run: bool) -> HttpResponse {
    let mut counts = ApplyCounts::default();
    for o in &applied.objects {
        *match o.status {
            ObjectStatus::Created => &mut counts.created,
            ObjectStatus::Configured => &mut counts.configured,
            ObjectStatus::Unchanged => &mut counts.unchanged,
            ObjectStatus::Failed => &mut counts.failed,
            ObjectStatus::Skipped => &mut counts.skipped,
        } += 1;
    }
    let failure = applied.failure().and_then(|f| {
        let e = f.error.as_ref()?;
        Some((object_problem(e), f.source.clone()))
    });
    let objects: Vec<AppliedObject> = applied.objects.iter().map(AppliedObject::from).collect();
    match failure {
        None => HttpResponse::Ok().json(ApplyResult {
            audit_id: applied.audit_id,
            dry_run,
            counts,
            objects,
        }),
        Some((e, source)) => {
            let p = Problem {
                problem_type: e.problem_type,
                title: e.title,
                status: e.status,
                detail: format!(
                    "{source}: {}; {} applied, {} failed, {} not applied",
                    e.detail,
                    counts.created + counts.configured + counts.unchanged,
                    counts.failed,
                    counts.skipped
                ),
                request_id: crate::context::current_request_id(),
                errors: e.errors,
                known_clusters: None,
                objects: Some(objects),
            };
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(p.status)
                    .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
            )
            .content_type(PROBLEM_JSON)
            .body(serde_json::to_vec(&p).unwrap_or_default())
        }
    }
}
