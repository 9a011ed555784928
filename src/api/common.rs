//! What the namespaced endpoints share: path parameters, the mutation query (`dryRun`, `wait`,
//! `timeoutSeconds`), checks of names before any cluster call, and turning an HTTP call into an
//! `ActionRequest`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{ApiError, FieldError};
use crate::action::{Action, Target};
use crate::auth::Principal;
use crate::cluster::Cluster;
use crate::gateway::AppState;
use crate::gateway::{self, ActionRequest, Executed};
use crate::validate;

/// `/v1/clusters/{cluster}/namespaces/{namespace}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamespacePath {
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
}

/// `/v1/clusters/{cluster}/namespaces/{namespace}/<resources>/{name}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ObjectPath {
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjectPath {
    pub fn target(&self) -> Target {
        Target {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

impl NamespacePath {
    pub fn target(&self) -> Target {
        Target {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// Options of every mutation.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MutationQuery {
    /// Server-side dry run: the API server validates and answers, nothing changes.
    #[serde(default)]
    pub dry_run: bool,
    /// Answer only when the rollout is done, failed, stuck on a pod issue, or `timeoutSeconds`
    /// passed (deploy, scale, set image, restart, rollback).
    #[serde(default)]
    pub wait: bool,
    /// Bound of `wait` (default 60, capped by the server's KUBEGATE_MAX_WAIT).
    #[param(minimum = 1, maximum = 86400)]
    pub timeout_seconds: Option<u64>,
}

/// `labelSelector` of list endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Label selector (`app=web,tier!=db,env in (a,b),!canary`).
    #[param(
        pattern = "^(!?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?(=|==|!=)([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])? (in|notin) \\(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?(,([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)*\\))(,(!?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?(=|==|!=)([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])? (in|notin) \\(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?(,([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)*\\)))*$"
    )]
    pub label_selector: Option<String>,
}

/// `DELETE` of a collection: the selector is required and the number deleted bounded.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteCollectionQuery {
    /// Label selector of what to delete; required, and never empty.
    #[param(
        required = true,
        min_length = 1,
        pattern = "^(!?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?(=|==|!=)([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])? (in|notin) \\(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?(,([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)*\\))(,(!?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?(=|==|!=)([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?|([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])? (in|notin) \\(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?(,([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)*\\)))*$"
    )]
    pub label_selector: Option<String>,
    /// Refuse (409, nothing deleted) when more objects match (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub max_affected: Option<usize>,
    /// Preview: list what would be deleted, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What every mutation answers besides its result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"auditId": "0b9c5a2e-6f0d-4c8e-9a51-2f8d7c1e4b3a", "dryRun": false}))]
pub struct ActionInfo {
    /// Identifies this action (also on the `kubegate.io/audit-id` annotation of template changes).
    pub audit_id: String,
    /// Nothing was changed: the API server only validated.
    pub dry_run: bool,
}

pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_AFFECTED: usize = 50;

/// A naming rule of `validate` (label, subdomain, ...).
pub type NameRule = fn(&str) -> Result<(), String>;

/// Check path names before anything reaches a cluster.
pub fn check_names(namespace: &str, name: Option<(&str, NameRule)>) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if let Err(m) = validate::dns1123_label(namespace) {
        errors.push(FieldError {
            field: "namespace".into(),
            message: m,
        });
    }
    if let Some((n, rule)) = name
        && let Err(m) = rule(n)
    {
        errors.push(FieldError {
            field: "name".into(),
            message: m,
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::from(crate::gateway::Error::Validation { errors }))
    }
}

pub fn selector(q: &ListQuery) -> Result<Option<String>, ApiError> {
    match q.label_selector.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => validate::label_selector(s).map(Some).map_err(|m| {
            ApiError::from(crate::gateway::Error::Validation {
                errors: vec![FieldError {
                    field: "labelSelector".into(),
                    message: m,
                }],
            })
        }),
    }
}

/// Authorize a read of `namespace` on `cluster`, then give the cluster.
pub fn cluster<'a>(
    state: &'a AppState,
    principal: &Principal,
    name: &str,
    namespace: &str,
) -> Result<&'a Cluster, ApiError> {
    state
        .auth
        .authorize(principal, "read", name, Some(namespace))?;
    Ok(state.cluster(principal, name)?)
}

/// Run an action through the gateway with the query's options.
/// `timeoutSeconds` beyond a day is refused (the schema says so), below it capped by KUBEGATE_MAX_WAIT.
fn check_timeout(query: &MutationQuery) -> Result<(), ApiError> {
    match query.timeout_seconds {
        Some(t) if !(1..=86400).contains(&t) => {
            Err(ApiError::from(crate::gateway::Error::Validation {
                errors: vec![FieldError {
                    field: "timeoutSeconds".into(),
                    message: "between 1 and 86400".into(),
                }],
            }))
        }
        _ => Ok(()),
    }
}

pub async fn run(
    state: &AppState,
    principal: &Principal,
    target: Target,
    action: Action,
    query: &MutationQuery,
    reason: Option<String>,
) -> Result<Executed, ApiError> {
    check_timeout(query)?;
    let wait = query.wait.then(|| {
        query
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WAIT)
            .min(state.max_wait)
    });
    Ok(gateway::execute(
        state,
        principal,
        ActionRequest {
            target,
            action,
            dry_run: query.dry_run,
            wait,
            reason,
        },
    )
    .await?)
}
