//! The one path every mutation takes (`execute`): validate the action (before any cluster call),
//! authorize the caller (deny by default), commit the audit intent (fail closed: no intent, no
//! cluster call), act, wait for the rollout when asked, and append the outcome linked to the
//! intent. Whatever the door (REST, a chat line), an action is checked and recorded the same way;
//! reads take `reads::read`. `state` is what every request shares, `error` the core's errors,
//! which only the HTTP edge turns into answers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;

pub mod apply;
mod error;
pub mod kubeapi;
pub mod proxy;
mod reads;
pub mod session;
mod state;

pub use error::{Error, problem_type};
pub use reads::{
    ClusterFound, ClusterRead, EventFilter, Found, LogOptions, Read, follow_logs, last_seen, read,
    read_cluster, watch_rollout,
};
pub use state::{AppState, ApplySettings};

use crate::action::{Action, Target};
use crate::audit::{Entry, now_us};
use crate::auth::Principal;
use crate::cluster::{ChangeNote, DeploymentChange, RollbackOutcome, RolloutReport};
use crate::context::{self, RequestContext};

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
    Service {
        service: Box<Service>,
        created: bool,
    },
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
) -> Result<Executed, Error> {
    let audit_id = crate::audit::new_id();
    let ctx = context::current();
    if let Some(c) = &ctx {
        *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
    }
    let base = base_entry(audit_id, principal, &req, ctx.as_deref());

    let admitted = admit(state, principal, &req);
    let intent = commit_intent(state, principal, &req.target, base, admitted).await?;
    let cluster = state.cluster(principal, &req.target.cluster)?;
    // From here the intent is open: should this request be dropped before its outcome is queued
    // (the server stopping before the action ends), `pending` closes it as outcome_unknown.
    let pending = state.audit.pending(intent);

    let note = ChangeNote {
        audit_id: audit_id.to_string(),
        cause: change_cause(&req, &principal.subject),
    };
    let ns = req.target.namespace.as_str();
    let dry = req.dry_run;
    tracing::info!(action = req.action.verb(), subject = %principal.subject, cluster = %req.target.cluster, namespace = ns, dry_run = dry, %audit_id, "executing");
    let result = act(cluster, &req, &note).await;
    let result = match result {
        Ok(outcome) => {
            let waits_on = match &outcome {
                Outcome::Rollback(r) if !r.skipped => r.deployment.metadata.name.clone(),
                Outcome::Deployment(d) => d.deployment.metadata.name.clone(),
                _ => None,
            };
            let rollout = match (req.wait, waits_on) {
                (Some(timeout), Some(name)) if !dry => {
                    cluster.wait_for_rollout(ns, &name, timeout).await.map(Some)
                }
                _ => Ok(None),
            };
            rollout
                .map(|rollout| (at_the_verdict(outcome, rollout.as_ref()), rollout))
                .map_err(Error::from)
        }
        Err(e) => Err(e),
    };

    // The action happened (or failed) already: its outcome goes behind the intent, committed
    // before the answer unless outcomes are async (`Pending::finish`; `AuditLog::record` for
    // failed writes).
    let outcome_of = |intent: Entry| match &result {
        Ok((outcome, rollout)) => Entry {
            stage: "outcome".into(),
            outcome: "succeeded".into(),
            completed_at_us: Some(now_us()),
            http_status: Some(
                if matches!(outcome, Outcome::Deployment(d) if d.created)
                    || matches!(outcome, Outcome::Service { created: true, .. })
                {
                    201
                } else {
                    200
                },
            ),
            result: Some(result_summary(outcome, rollout.as_ref()).to_string()),
            ..intent
        },
        Err(e) => failed_outcome(intent, e),
    };
    pending.finish(outcome_of).await;
    let (outcome, rollout) = result?;
    Ok(Executed {
        audit_id: audit_id.to_string(),
        outcome,
        rollout,
    })
}

/// What every door does before a cluster hears anything. A request `admitted` did not pass
/// (invalid, not allowed) is refused with one entry; an unknown cluster is refused as is; then
/// the intent is committed (write-ahead: if it cannot be written, nothing happens) and returned.
async fn commit_intent(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    base: Entry,
    admitted: Result<crate::auth::Decision, Error>,
) -> Result<Entry, Error> {
    let decision = match admitted {
        Ok(d) => d,
        Err(e) => {
            let outcome = outcome_of(e.status());
            let entry = finished(
                Entry {
                    stage: "rejected".into(),
                    outcome: outcome.into(),
                    decision: Some(e.to_string()),
                    ..base
                },
                &e,
            );
            if let Err(ae) = state.audit.append(vec![entry]).await {
                tracing::error!(error = %ae, "could not audit a refused request");
            }
            return Err(e);
        }
    };
    state.cluster(principal, &target.cluster)?;
    let audit_id = base.audit_id;
    let intent = Entry {
        stage: "intent".into(),
        outcome: "pending".into(),
        // The grant that allowed it; acting for someone, the person's and the bot's.
        decision: if principal.delegated_by.is_some() {
            Some(decision.reason.clone())
        } else {
            decision.grant.as_ref().map(|g| g.describe())
        },
        ..base
    };
    if let Err(e) = state.audit.append(vec![intent.clone()]).await {
        tracing::error!(error = %e, %audit_id, "audit intent not written; refusing the request");
        return Err(Error::AuditUnavailable {
            detail: "the audit log cannot be written".into(),
        });
    }
    Ok(intent)
}

/// After a wait, the Deployment as the rollout's verdict found it, not as the change left it.
fn at_the_verdict(outcome: Outcome, rollout: Option<&RolloutReport>) -> Outcome {
    let Some(report) = rollout.filter(|r| r.deployment.metadata.uid.is_some()) else {
        return outcome;
    };
    match outcome {
        Outcome::Deployment(d) => Outcome::Deployment(DeploymentChange {
            deployment: std::sync::Arc::clone(&report.deployment),
            ..d
        }),
        Outcome::Rollback(r) => Outcome::Rollback(RollbackOutcome {
            deployment: std::sync::Arc::clone(&report.deployment),
            ..r
        }),
        other => other,
    }
}

/// Validation, then authorization (deny by default).
fn admit(
    state: &AppState,
    principal: &Principal,
    req: &ActionRequest,
) -> Result<crate::auth::Decision, Error> {
    let mut errors = req.action.validate(&req.target, &state.limits);
    if req.reason.as_ref().is_some_and(|r| r.len() > 1024) {
        errors.add("reason", "at most 1024 characters");
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    Ok(state.auth.authorize(
        principal,
        req.action.verb(),
        &req.target.cluster,
        Some(&req.target.namespace),
    )?)
}

async fn act(
    cluster: &crate::cluster::Cluster,
    req: &ActionRequest,
    note: &ChangeNote,
) -> Result<Outcome, Error> {
    let ns = req.target.namespace.as_str();
    let dry = req.dry_run;
    Ok(match &req.action {
        Action::Deploy { name, spec } => {
            Outcome::Deployment(cluster.deploy(ns, name, spec, note, dry).await?)
        }
        Action::Create { name, spec } => {
            Outcome::Deployment(cluster.create_deployment(ns, name, spec, note, dry).await?)
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
                .set_image(ns, name, container.as_deref(), image, note, dry)
                .await?,
        ),
        Action::Restart { name } => {
            Outcome::Deployment(cluster.restart(ns, name, note, dry).await?)
        }
        Action::Rollback {
            name,
            to_revision,
            expect_revision,
        } => Outcome::Rollback(
            cluster
                .rollback(
                    ns,
                    name,
                    *to_revision,
                    *expect_revision,
                    &note.audit_id,
                    dry,
                )
                .await?,
        ),
        Action::Expose { deployment, spec } => Outcome::Service {
            service: Box::new(cluster.expose(ns, deployment, spec, dry).await?),
            created: true,
        },
        Action::PutService { name, spec } => {
            let (service, created) = cluster.put_service(ns, name, spec, dry).await?;
            Outcome::Service {
                service: Box::new(service),
                created,
            }
        }
        Action::Delete { kind, name } => {
            cluster.delete_named(ns, *kind, name, dry).await?;
            Outcome::Deleted(vec![name.clone()])
        }
        Action::DeleteSelected {
            kind,
            selector,
            max_affected,
        } => Outcome::Deleted(
            cluster
                .delete_by_selector(ns, *kind, selector, *max_affected, dry)
                .await?,
        ),
        Action::Label { kind, name, change } => {
            Outcome::Labels(cluster.label(ns, *kind, name, change, dry).await?)
        }
    })
}

fn base_entry(
    audit_id: uuid::Uuid,
    principal: &Principal,
    req: &ActionRequest,
    ctx: Option<&RequestContext>,
) -> Entry {
    let mut summary = req.action.summary();
    if let Some(r) = &req.reason {
        summary["reason"] = serde_json::json!(r);
    }
    entry_for(
        audit_id,
        principal,
        ctx,
        &req.target,
        req.action.verb(),
        req.action.resource(),
        summary,
        req.dry_run,
    )
}

/// The fields every entry of one request shares: who, from where, what, on which object.
#[allow(clippy::too_many_arguments)]
fn entry_for(
    audit_id: uuid::Uuid,
    principal: &Principal,
    ctx: Option<&RequestContext>,
    target: &Target,
    verb: &str,
    (kind, name): (&str, String),
    summary: serde_json::Value,
    dry_run: bool,
) -> Entry {
    Entry {
        audit_id,
        received_at_us: ctx.map(|c| c.received_at_us).unwrap_or_else(now_us),
        request_id: ctx.map(|c| c.request_id.clone()),
        subject: Some(principal.subject.clone()),
        issuer: Some(principal.issuer.clone()),
        groups: principal.groups.iter().cloned().collect(),
        delegated_by: principal.delegated_by.as_ref().map(|b| b.subject.clone()),
        source_ip: ctx.and_then(|c| c.source_ip.clone()),
        user_agent: ctx.and_then(|c| c.user_agent.clone()),
        action: Some(verb.to_owned()),
        http_method: ctx.map(|c| c.method.clone()),
        http_path: ctx.map(|c| c.path.clone()),
        cluster: Some(target.cluster.clone()),
        namespace: Some(target.namespace.clone()),
        resource_kind: Some(kind.to_owned()),
        resource_name: Some(name),
        request_summary: Some(summary.to_string()),
        dry_run,
        idempotency_key: ctx.and_then(|c| c.idempotency_key.clone()),
        ..Entry::default()
    }
}

/// The outcome entry of an action that failed with `err`.
fn failed_outcome(intent: Entry, err: &Error) -> Entry {
    finished(
        Entry {
            stage: "outcome".into(),
            outcome: "failed".into(),
            upstream_error: Some(err.to_string()),
            ..intent
        },
        err,
    )
}

/// Status and problem type of an error answer.
fn finished(mut e: Entry, err: &Error) -> Entry {
    e.completed_at_us = Some(now_us());
    e.http_status = Some(i32::from(err.status()));
    e.problem_type = Some(problem_type(err.kind().0));
    e
}

fn result_summary(outcome: &Outcome, rollout: Option<&RolloutReport>) -> serde_json::Value {
    use serde_json::json;
    let mut v = match outcome {
        Outcome::Deployment(d) => json!({
            "created": d.created,
            "templateChanged": d.template_changed,
            "revisionBefore": d.revision_before,
            "replicasBefore": d.replicas_before,
            "replicasAfter": d.deployment.spec.as_ref().and_then(|s| s.replicas),
            "generation": d.deployment.metadata.generation,
        }),
        Outcome::Rollback(r) => {
            json!({"fromRevision": r.from_revision, "toRevision": r.to_revision, "skipped": r.skipped, "message": r.message})
        }
        Outcome::Service { service, created } => {
            json!({"created": created, "clusterIP": service.spec.as_ref().and_then(|s| s.cluster_ip.clone())})
        }
        Outcome::Deleted(names) => json!({"deleted": names}),
        Outcome::Labels(labels) => json!({"labels": labels}),
    };
    if let Some(r) = rollout {
        v["rollout"] = json!({"done": r.state.done, "failed": r.state.failed, "timedOut": r.timed_out, "message": r.state.message, "verdict": r.verdict.as_ref().map(|v| v.name())});
    }
    v
}

/// What a refused request was answered: status, problem type, detail.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub problem_type: String,
    pub detail: String,
}

/// The audit outcome of a request answered with this status without reaching an action.
pub fn outcome_of(status: u16) -> &'static str {
    match status {
        401 => "unauthenticated",
        403 => "denied",
        s if s < 400 => "succeeded",
        s if s < 500 => "invalid",
        _ => "failed",
    }
}

/// The audit entry of a request refused before the gateway saw an action (a chat user nobody
/// mapped, a channel's limits, an unparsable command line) whose answer is not an HTTP error.
pub async fn audit_refused(
    state: &AppState,
    principal: &Principal,
    refusal: &Refusal,
    target: Option<&Target>,
) {
    let ctx = context::current();
    let status = refusal.status;
    let audit_id = crate::audit::new_id();
    let entry = Entry {
        audit_id,
        stage: "rejected".into(),
        outcome: outcome_of(status).into(),
        received_at_us: ctx
            .as_ref()
            .map(|c| c.received_at_us)
            .unwrap_or_else(now_us),
        completed_at_us: Some(now_us()),
        request_id: ctx.as_ref().map(|c| c.request_id.clone()),
        subject: Some(principal.subject.clone()),
        issuer: Some(principal.issuer.clone()),
        groups: principal.groups.iter().cloned().collect(),
        delegated_by: principal.delegated_by.as_ref().map(|b| b.subject.clone()),
        decision: Some(refusal.detail.clone()),
        source_ip: ctx.as_ref().and_then(|c| c.source_ip.clone()),
        user_agent: ctx.as_ref().and_then(|c| c.user_agent.clone()),
        http_method: ctx.as_ref().map(|c| c.method.clone()),
        http_path: ctx.as_ref().map(|c| c.path.clone()),
        http_status: Some(i32::from(status)),
        problem_type: Some(refusal.problem_type.clone()),
        cluster: target.map(|t| t.cluster.clone()),
        namespace: target.map(|t| t.namespace.clone()),
        ..Entry::default()
    };
    match state.audit.append(vec![entry]).await {
        Ok(_) => {
            if let Some(c) = ctx {
                *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
            }
        }
        Err(e) => tracing::error!(error = %e, "could not audit a refused request"),
    }
}

/// `kubernetes.io/change-cause`: what, who, and why when given.
fn change_cause(req: &ActionRequest, who: &str) -> String {
    let what = match (&req.action, &req.reason) {
        (Action::Deploy { spec, .. } | Action::Create { spec, .. }, None) => spec
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
