//! Who am I and may I: `GET /v1/whoami` and `POST /v1/access-reviews` (kubectl auth can-i).

use std::collections::BTreeSet;

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use crate::auth::{Grant, Principal, policy};
use crate::gateway::{AppState, kubeapi};

/// The caller as kubegate sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"subject": "alice", "issuer": "kubegate", "groups": ["sre"], "grants": [{"role": "deployer", "clusters": ["dev"], "namespaces": ["*"], "source": "token"}]}))]
pub struct Identity {
    pub subject: String,
    pub issuer: String,
    pub groups: Vec<String>,
    /// Every grant in effect: from the policy file and from the token.
    pub grants: Vec<Grant>,
    /// The bot acting for this person (`X-On-Behalf-Of`): requests are allowed only where both
    /// the person's and the bot's grants allow them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated_by: Option<String>,
}

/// `POST /v1/access-reviews`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"verb": "scale", "cluster": "prod", "namespace": "shop"}))]
pub struct AccessReviewRequest {
    /// `read`, `delegate`, an action (`deploy`, `create`, `scale`, `set_image`, `restart`, `rollback`, `expose`,
    /// `put_service`, `label`, `delete_deployment`, `delete_service`, `delete_services`,
    /// `delete_pod`, `delete_pods`), `exec`, `portforward`, `proxy`, or `read_audit`. Either
    /// this or `resourceAttributes`.
    pub verb: Option<ReviewVerb>,
    /// A Kubernetes API request instead (what kubectl through kubegate would send), decided by
    /// the same table as `/k8s/{cluster}`; `namespace` is the request's.
    pub resource_attributes: Option<KubernetesAttributes>,
    pub cluster: String,
    /// Omitted: cluster scope (nodes, namespaces).
    pub namespace: Option<String>,
    /// Review another subject (admins only); their policy grants are used.
    pub subject: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A Kubernetes API request's attributes (as in a `SelfSubjectAccessReview`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"verb": "patch", "group": "apps", "resource": "deployments", "subresource": "scale"}))]
pub struct KubernetesAttributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    #[schema(pattern = "^[a-z]+$", max_length = 32)]
    pub verb: String,
    /// The API group (empty: the core group).
    #[serde(default)]
    #[schema(max_length = 253)]
    pub group: String,
    /// The version (default: the group's usual one).
    #[serde(default)]
    #[schema(max_length = 32)]
    pub version: String,
    /// The resource (plural): `pods`, `deployments`.
    #[schema(pattern = "^[a-z0-9.-]+$", min_length = 1, max_length = 253)]
    pub resource: String,
    #[serde(default)]
    #[schema(max_length = 63)]
    pub subresource: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"allowed": true, "reason": "scale allowed by deployer on clusters dev namespaces shop-* (policy:shop-team)", "grant": {"role": "deployer", "clusters": ["dev"], "namespaces": ["shop-*"], "source": "policy:shop-team"}}))]
pub struct AccessReview {
    pub allowed: bool,
    /// Why: the grant that allows it, or the role that is missing.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
}

/// What an access review asks about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "scale")]
pub enum ReviewVerb {
    Read,
    ReadAudit,
    Delegate,
    Deploy,
    Create,
    Scale,
    SetImage,
    Restart,
    Rollback,
    Expose,
    PutService,
    Label,
    DeleteDeployment,
    DeleteService,
    DeleteServices,
    DeletePod,
    DeletePods,
    Exec,
    Portforward,
    Proxy,
}

/// The caller's identity and effective grants.
#[utoipa::path(
    get, path = "/v1/whoami", tag = "identity", operation_id = "get_whoami",
    responses((status = 200, description = "Who the token says you are, and what you may do", body = Identity))
)]
pub async fn get_whoami(state: web::Data<AppState>, principal: Principal) -> web::Json<Identity> {
    web::Json(Identity {
        grants: state.auth.grants(&principal),
        delegated_by: principal.delegated_by.as_ref().map(|b| b.subject.clone()),
        subject: principal.subject,
        issuer: principal.issuer,
        groups: principal.groups.into_iter().collect(),
    })
}

/// May this caller (or, for admins, another subject) do this? (`kubectl auth can-i`)
#[utoipa::path(
    post, path = "/v1/access-reviews", tag = "identity", operation_id = "create_access_review",
    request_body = AccessReviewRequest,
    responses(
        (status = 200, description = "The decision", body = AccessReview),
        (status = 404, description = "Unknown cluster", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown verb, or neither (or both) of verb and resourceAttributes", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_access_review(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<AccessReviewRequest>,
) -> Result<web::Json<AccessReview>, ApiError> {
    let r = body.into_inner();
    let (verb, role, namespace) = match (&r.verb, r.resource_attributes) {
        (Some(v), None) => {
            let verb = serde_json::to_value(v)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let role = policy::role_for(&verb);
            (verb, role, r.namespace.clone())
        }
        (None, Some(a)) => {
            let attrs = kubeapi::Attributes {
                resource_request: true,
                verb: a.verb,
                group: a.group,
                version: a.version,
                resource: a.resource,
                subresource: a.subresource,
                namespace: r.namespace.clone(),
                name: a.name,
            };
            let need = kubeapi::requirement(&state, &principal, &r.cluster, attrs).await?;
            (need.verb, need.role, need.namespace)
        }
        _ => {
            return Err(ApiError::validation(vec![crate::validate::FieldError {
                field: "verb".into(),
                message: "give either verb or resourceAttributes".into(),
            }]));
        }
    };
    let d = match &r.subject {
        // The caller itself (for a bot acting for a person: both must be allowed).
        None if r.groups.is_empty() => {
            state
                .auth
                .decide_role(&principal, &verb, role, &r.cluster, namespace.as_deref())
        }
        _ => {
            // Reviewing someone else reveals their grants: admins of that place only.
            state.auth.authorize(
                &principal,
                "review_access_of_others",
                &r.cluster,
                r.namespace.as_deref(),
            )?;
            let groups: BTreeSet<String> = r.groups.iter().cloned().collect();
            let grants = state
                .auth
                .policy()
                .grants_for(r.subject.as_deref().unwrap_or(""), &groups);
            policy::decide_role(&grants, &verb, role, &r.cluster, namespace.as_deref())
        }
    };
    Ok(web::Json(AccessReview {
        allowed: d.allowed,
        reason: d.reason,
        grant: d.grant,
    }))
}
