//! Who am I and may I: `GET /v1/whoami` and `POST /v1/access-reviews` (kubectl auth can-i).

use std::collections::BTreeSet;

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use crate::auth::{Grant, Principal, policy};
use crate::gateway::AppState;

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
    /// `delete_pod`, `delete_pods`), `exec`, `portforward`, `proxy`, or `read_audit`.
    pub verb: ReviewVerb,
    pub cluster: String,
    /// Omitted: cluster scope (nodes, namespaces).
    pub namespace: Option<String>,
    /// Review another subject (admins only); their policy grants are used.
    pub subject: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
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
        (status = 422, description = "Unknown verb", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_access_review(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<AccessReviewRequest>,
) -> Result<web::Json<AccessReview>, ApiError> {
    let r = body.into_inner();
    let verb = serde_json::to_value(r.verb)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let d = match &r.subject {
        // The caller itself (for a bot acting for a person: both must be allowed).
        None if r.groups.is_empty() => {
            state
                .auth
                .decide(&principal, &verb, &r.cluster, r.namespace.as_deref())
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
            policy::decide(&grants, &verb, &r.cluster, r.namespace.as_deref())
        }
    };
    Ok(web::Json(AccessReview {
        allowed: d.allowed,
        reason: d.reason,
        grant: d.grant,
    }))
}
