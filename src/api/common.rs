//! What the namespaced endpoints share: path parameters, the mutation query (`dryRun`, `wait`,
//! `timeoutSeconds`), and turning an HTTP call into an `ActionRequest` for the gateway.

use std::time::Duration;

use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::{ApiError, FieldError};
use crate::action::{Action, Target};
use crate::auth::Principal;
use crate::gateway::{self, ActionRequest, AppState, Executed};

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

pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
pub use crate::action::DEFAULT_MAX_AFFECTED;

/// Run an action through the gateway with the query's options.
/// `timeoutSeconds` beyond a day is refused (the schema says so), below it capped by KUBEGATE_MAX_WAIT.
pub(super) fn check_timeout(timeout_seconds: Option<u64>) -> Result<(), ApiError> {
    match timeout_seconds {
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

/// How long `wait=true` may wait: `timeoutSeconds` (default 60), capped by KUBEGATE_MAX_WAIT.
pub(super) fn wait_bound(
    state: &AppState,
    wait: bool,
    timeout_seconds: Option<u64>,
) -> Option<Duration> {
    wait.then(|| {
        timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WAIT)
            .min(state.max_wait)
    })
}

pub async fn run(
    state: &AppState,
    principal: &Principal,
    target: Target,
    action: Action,
    query: &MutationQuery,
    reason: Option<String>,
) -> Result<Executed, ApiError> {
    check_timeout(query.timeout_seconds)?;
    let wait = wait_bound(state, query.wait, query.timeout_seconds);
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
