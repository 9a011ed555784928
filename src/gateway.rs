//! The one path every mutation takes: validate the action (before any cluster call), authorize the
//! caller (deny by default), act, and wait for the rollout when asked. The write-ahead audit log
//! plugs in here too (not implemented yet), so whatever the entry point, an action is checked and
//! recorded the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};

use crate::action::{Action, Target};
use crate::api::problem::ApiError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::cluster::{ChangeNote, DeploymentChange, RollbackOutcome, RolloutReport};

/// An action with how to run it.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    pub target: Target,
    pub action: Action,
    /// Server-side dry run: validated by the API server, nothing changes.
    pub dry_run: bool,
    /// Wait for the rollout (deploy, set image, restart, rollback, scale) up to this long.
    pub wait: Option<Duration>,
    /// Why, from the caller (goes into the change cause).
    pub reason: Option<String>,
}

/// What an action did.
#[derive(Debug, Clone)]
pub enum Outcome {
    Deployment(DeploymentChange),
    Rollback(RollbackOutcome),
    Service { service: Service, created: bool },
    Deleted(Vec<String>),
    Labels(BTreeMap<String, String>),
}

#[derive(Debug, Clone)]
pub struct Executed {
    /// Identifies this action; written to the `kubegate.io/audit-id` annotation of template changes.
    pub audit_id: String,
    pub outcome: Outcome,
    /// The rollout after waiting, when `wait` was asked.
    pub rollout: Option<RolloutReport>,
}

pub async fn execute(
    state: &AppState,
    principal: &Principal,
    req: ActionRequest,
) -> Result<Executed, ApiError> {
    let errors = req.action.validate(&req.target, &state.limits);
    if let Some(r) = &req.reason
        && r.len() > 1024
    {
        return Err(ApiError::Validation {
            errors: vec![crate::api::problem::FieldError {
                field: "reason".into(),
                message: "at most 1024 characters".into(),
            }],
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation { errors: errors.0 });
    }
    let decision = state.auth.authorize(
        principal,
        req.action.verb(),
        &req.target.cluster,
        Some(&req.target.namespace),
    )?;
    let cluster = crate::api::clusters::find(state, principal, &req.target.cluster)?;
    let audit_id = uuid::Uuid::new_v4().to_string();
    let note = ChangeNote {
        audit_id: audit_id.clone(),
        cause: change_cause(&req, &principal.subject),
    };
    let ns = req.target.namespace.as_str();
    let dry = req.dry_run;
    tracing::info!(action = req.action.verb(), subject = %principal.subject, grant = ?decision.grant.as_ref().map(|g| g.describe()), cluster = %req.target.cluster, namespace = ns, dry_run = dry, audit_id, "executing");

    let outcome = match &req.action {
        Action::Deploy { name, spec } => {
            Outcome::Deployment(cluster.deploy(ns, name, spec, &note, dry).await?)
        }
        Action::Scale { name, replicas } => {
            Outcome::Deployment(cluster.scale(ns, name, *replicas, dry).await?)
        }
        Action::SetImage {
            name,
            container,
            image,
        } => Outcome::Deployment(
            cluster
                .set_image(ns, name, container.as_deref(), image, &note, dry)
                .await?,
        ),
        Action::Restart { name } => {
            Outcome::Deployment(cluster.restart(ns, name, &note, dry).await?)
        }
        Action::Rollback {
            name,
            to_revision,
            expect_revision,
        } => Outcome::Rollback(
            cluster
                .rollback(ns, name, *to_revision, *expect_revision, dry)
                .await?,
        ),
        Action::DeleteDeployment { name } => {
            cluster
                .delete::<k8s_openapi::api::apps::v1::Deployment>(ns, name, None, dry)
                .await?;
            Outcome::Deleted(vec![name.clone()])
        }
        Action::Expose { deployment, spec } => Outcome::Service {
            service: cluster.expose(ns, deployment, spec, dry).await?,
            created: true,
        },
        Action::PutService { name, spec } => {
            let (service, created) = cluster.put_service(ns, name, spec, dry).await?;
            Outcome::Service { service, created }
        }
        Action::DeleteService { name } => {
            cluster.delete::<Service>(ns, name, None, dry).await?;
            Outcome::Deleted(vec![name.clone()])
        }
        Action::DeletePod { name } => {
            cluster.delete::<Pod>(ns, name, None, dry).await?;
            Outcome::Deleted(vec![name.clone()])
        }
        Action::DeleteServices {
            selector,
            max_affected,
        } => Outcome::Deleted(
            cluster
                .delete_selected::<Service>(ns, selector, *max_affected, dry)
                .await?,
        ),
        Action::DeletePods {
            selector,
            max_affected,
        } => Outcome::Deleted(
            cluster
                .delete_selected::<Pod>(ns, selector, *max_affected, dry)
                .await?,
        ),
        Action::Label { kind, name, change } => {
            Outcome::Labels(cluster.label(ns, *kind, name, change, dry).await?)
        }
    };

    let waits_on = match (&req.action, &outcome) {
        (_, Outcome::Rollback(r)) if !r.skipped => r.deployment.metadata.name.clone(),
        (_, Outcome::Deployment(d)) => d.deployment.metadata.name.clone(),
        _ => None,
    };
    let rollout = match (req.wait, waits_on) {
        (Some(timeout), Some(name)) if !dry => {
            Some(cluster.wait_for_rollout(ns, &name, timeout).await?)
        }
        _ => None,
    };
    Ok(Executed {
        audit_id,
        outcome,
        rollout,
    })
}

/// `kubernetes.io/change-cause`: what, who, and why when given.
fn change_cause(req: &ActionRequest, who: &str) -> String {
    let what = match (&req.action, &req.reason) {
        (Action::Deploy { spec, .. }, None) => spec
            .change_cause
            .clone()
            .map(|c| format!("{}: {c}", req.action.describe())),
        _ => None,
    };
    let base = what.unwrap_or_else(|| req.action.describe());
    match &req.reason {
        Some(r) => format!("kubegate {base} by {who}: {r}"),
        None => format!("kubegate {base} by {who}"),
    }
}
