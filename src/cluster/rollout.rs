//! kubectl's rollout logic, ported because kube-rs has none (and its completion check ignores
//! `observedGeneration`). Sources, kubernetes/kubernetes `staging/src/k8s.io/kubectl/pkg/`:
//! `polymorphichelpers/rollout_status.go` (status), `polymorphichelpers/history.go` (history),
//! `polymorphichelpers/rollback.go` (undo), `util/deployment/deployment.go` (revisions,
//! EqualIgnoreHash, annotation skip list).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde_json::{Value, json};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The annotation linking a template change to kubegate's audit log.
pub const AUDIT_ID: &str = "kubegate.io/audit-id";
const HASH: &str = "pod-template-hash";

/// Annotations a rollback keeps from the Deployment instead of copying from the ReplicaSet
/// (deployment.go `annotationsToSkip`).
const SKIP_ON_ROLLBACK: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// A ReplicaSet's revision: missing annotation = 0, unparsable = None (skipped).
pub fn revision_of(rs: &ReplicaSet) -> Option<i64> {
    match rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
    {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// The Deployment's own revision annotation (what `kubectl rollout history` calls current).
pub fn deployment_revision(d: &Deployment) -> Option<i64> {
    d.metadata.annotations.as_ref()?.get(REVISION)?.parse().ok()
}

/// The ReplicaSets that are this Deployment's history: same namespace, matching its selector
/// (done by the caller's list) and controlled by it.
pub fn owned_replica_sets(d: &Deployment, all: Vec<ReplicaSet>) -> Vec<ReplicaSet> {
    let Some(uid) = d.metadata.uid.as_deref() else {
        return Vec::new();
    };
    all.into_iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.uid == uid && r.controller == Some(true))
            })
        })
        .collect()
}

fn template_value(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH);
        if labels.is_empty() {
            v["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    strip_nulls(&mut v);
    v
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// EqualIgnoreHash: pod templates equal apart from the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_value(a) == template_value(b)
}

fn created_key(rs: &ReplicaSet) -> (Option<jiff::Timestamp>, String) {
    (
        rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        rs.metadata.name.clone().unwrap_or_default(),
    )
}

/// FindNewReplicaSet: the oldest ReplicaSet whose template matches the Deployment's.
pub fn current_replica_set<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = &d.spec.as_ref()?.template;
    let mut matching: Vec<&ReplicaSet> = rss
        .iter()
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, template))
        })
        .collect();
    matching.sort_by_key(|rs| created_key(rs));
    matching.first().copied()
}

/// The pod template of a ReplicaSet with `pod-template-hash` removed, as rollback applies it.
pub fn template_without_hash(rs: &ReplicaSet) -> Value {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(template_value)
        .unwrap_or(Value::Null)
}

/// One entry of `kubectl rollout history`.
#[derive(Debug, Clone)]
pub struct Revision {
    pub revision: i64,
    pub change_cause: Option<String>,
    pub replica_set: ReplicaSet,
}

/// history.go: revision → ReplicaSet (unparsable revisions skipped), sorted by revision.
pub fn history(rss: &[ReplicaSet]) -> Vec<Revision> {
    let mut by_rev: BTreeMap<i64, &ReplicaSet> = BTreeMap::new();
    for rs in rss {
        if let Some(rev) = revision_of(rs) {
            by_rev.insert(rev, rs);
        }
    }
    by_rev
        .into_iter()
        .map(|(revision, rs)| Revision {
            revision,
            change_cause: rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CHANGE_CAUSE))
                .cloned(),
            replica_set: rs.clone(),
        })
        .collect()
}

/// Why a rollback cannot proceed, in kubectl's words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RollbackError {
    #[error("unable to find specified revision {0} in history")]
    RevisionNotFound(i64),
    #[error("no rollout history found for deployment {0:?}")]
    NoHistory(String),
    #[error(
        "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
    )]
    Paused,
}

/// What a rollback will do.
#[derive(Debug, Clone)]
pub enum RollbackPlan {
    /// The target template is already current: nothing to do (kubectl: "skipped rollback").
    Skip { to_revision: i64 },
    /// Replace the template and annotations with one JSON Patch.
    Patch { to_revision: i64, patch: Value },
}

/// rollback.go `DeploymentRollbacker.Rollback`, to the letter: `to_revision` 0 is the previous
/// revision (the second highest). With `expect_revision`, the patch starts with a `test` of the
/// Deployment's revision annotation, so a concurrent rollout makes it fail instead of being undone.
pub fn plan_rollback(
    d: &Deployment,
    rss: &[ReplicaSet],
    to_revision: i64,
    expect_revision: Option<i64>,
) -> Result<RollbackPlan, RollbackError> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let target = if to_revision == 0 {
        let mut revs: Vec<(i64, &ReplicaSet)> = rss
            .iter()
            .filter_map(|rs| revision_of(rs).map(|r| (r, rs)))
            .collect();
        revs.sort_by_key(|(r, _)| *r);
        // deploymentutil.LastRevision: the second max.
        if revs.len() < 2 {
            return Err(RollbackError::NoHistory(name));
        }
        revs[revs.len() - 2]
    } else {
        rss.iter()
            .filter_map(|rs| revision_of(rs).map(|r| (r, rs)))
            .find(|(r, _)| *r == to_revision)
            .ok_or(RollbackError::RevisionNotFound(to_revision))?
    };
    let (target_rev, rs) = target;
    if d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        return Err(RollbackError::Paused);
    }
    let template = d.spec.as_ref().map(|s| &s.template);
    if let (Some(current), Some(rs_template)) =
        (template, rs.spec.as_ref().and_then(|s| s.template.as_ref()))
        && equal_ignore_hash(current, rs_template)
    {
        return Ok(RollbackPlan::Skip {
            to_revision: target_rev,
        });
    }
    let mut annotations = serde_json::Map::new();
    if let Some(own) = d.metadata.annotations.as_ref() {
        for (k, v) in own {
            if SKIP_ON_ROLLBACK.contains(&k.as_str()) {
                annotations.insert(k.clone(), json!(v));
            }
        }
    }
    if let Some(theirs) = rs.metadata.annotations.as_ref() {
        for (k, v) in theirs {
            if !SKIP_ON_ROLLBACK.contains(&k.as_str()) {
                annotations.insert(k.clone(), json!(v));
            }
        }
    }
    let mut ops = Vec::new();
    if let Some(expected) = expect_revision {
        ops.push(json!({"op": "test", "path": "/metadata/annotations/deployment.kubernetes.io~1revision", "value": expected.to_string()}));
    }
    ops.push(
        json!({"op": "replace", "path": "/spec/template", "value": template_without_hash(rs)}),
    );
    ops.push(json!({"op": "replace", "path": "/metadata/annotations", "value": annotations}));
    Ok(RollbackPlan::Patch {
        to_revision: target_rev,
        patch: Value::Array(ops),
    })
}

/// The outcome of `kubectl rollout status` at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutState {
    pub done: bool,
    pub failed: bool,
    pub message: String,
}

/// rollout_status.go `DeploymentStatusViewer.Status`, in its order of checks.
pub fn rollout_state(d: &Deployment) -> RolloutState {
    let name = d.metadata.name.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let waiting = |message: String| RolloutState {
        done: false,
        failed: false,
        message,
    };
    if generation > status.observed_generation.unwrap_or(0) {
        return waiting("Waiting for deployment spec update to be observed...".into());
    }
    let deadline_exceeded = status.conditions.as_ref().is_some_and(|cs| {
        cs.iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    });
    if deadline_exceeded {
        return RolloutState {
            done: false,
            failed: true,
            message: format!("deployment {name:?} exceeded its progress deadline"),
        };
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    RolloutState {
        done: true,
        failed: false,
        message: format!("deployment {name:?} successfully rolled out"),
    }
}

/// rollout_status.go `StatefulSetStatusViewer.Status`, in its order of checks.
pub fn statefulset_state(s: &StatefulSet) -> RolloutState {
    let spec = s.spec.clone().unwrap_or_default();
    let status = s.status.clone().unwrap_or_default();
    let waiting = |message: String| RolloutState {
        done: false,
        failed: false,
        message,
    };
    let done = |message: String| RolloutState {
        done: true,
        failed: false,
        message,
    };
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy
        .type_
        .as_deref()
        .is_some_and(|t| t != "RollingUpdate")
    {
        return done("rollout status is only available for RollingUpdate strategy type".into());
    }
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return waiting("Waiting for statefulset spec update to be observed...".into());
    }
    let ready = status.ready_replicas.unwrap_or(0);
    if let Some(replicas) = spec.replicas
        && ready < replicas
    {
        return waiting(format!(
            "Waiting for {} pods to be ready...",
            replicas - ready
        ));
    }
    if let Some(partition) = strategy.rolling_update.and_then(|r| r.partition) {
        let replicas = spec.replicas.unwrap_or(1);
        let updated = status.updated_replicas.unwrap_or(0);
        if updated < replicas - partition {
            return waiting(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                replicas - partition
            ));
        }
        return done(format!(
            "partitioned roll out complete: {updated} new pods have been updated..."
        ));
    }
    let update = status.update_revision.clone().unwrap_or_default();
    if update != status.current_revision.clone().unwrap_or_default() {
        return waiting(format!(
            "waiting for statefulset rolling update to complete {} pods at revision {update}...",
            status.updated_replicas.unwrap_or(0)
        ));
    }
    done(format!(
        "statefulset rolling update complete {} pods at revision {}...",
        status.current_replicas.unwrap_or(0),
        status.current_revision.unwrap_or_default()
    ))
}

/// rollout_status.go `DaemonSetStatusViewer.Status`, in its order of checks.
pub fn daemonset_state(d: &DaemonSet) -> RolloutState {
    let name = d.metadata.name.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let strategy = d
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.clone());
    let state = |done: bool, message: String| RolloutState {
        done,
        failed: false,
        message,
    };
    if strategy.is_some_and(|t| t != "RollingUpdate") {
        return state(
            true,
            "rollout status is only available for RollingUpdate strategy type".into(),
        );
    }
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return state(
            false,
            "Waiting for daemon set spec update to be observed...".into(),
        );
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        return state(
            false,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
        );
    }
    if available < desired {
        return state(
            false,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
        );
    }
    state(true, format!("daemon set {name:?} successfully rolled out"))
}

/// A pod problem that kubectl's status does not notice (kubernetes/kubectl#738), reported early.
#[derive(Debug, Clone, PartialEq)]
pub struct PodIssue {
    pub pod: String,
    pub container: Option<String>,
    pub reason: String,
    pub message: Option<String>,
}

/// Waiting reasons that mean the rollout will not progress on its own: a wait ends as failed on
/// the first of them. A pull error counts at once, `ErrImagePull` included (a real kubelet reports
/// it before it backs off to `ImagePullBackOff`): an answer in a second that the image cannot be
/// had is worth more to a caller than one a minute later, and a pull that only failed for a
/// moment still completes the rollout, which `rollout status` then shows.
const STUCK_REASONS: [&str; 7] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
];

impl PodIssue {
    /// Whether the rollout cannot progress while this issue stands, so that a wait ends on it.
    /// A pod the scheduler cannot place is reported but does not end a wait: it is often
    /// passing (a new node still tainted not-ready, an autoscaler adding capacity; seen on a real
    /// control plane), and the progress deadline fails a rollout that stays stuck.
    pub fn ends_the_rollout(&self) -> bool {
        self.reason != "Unschedulable"
    }
}

/// A ReplicaSet that cannot create its pods (a quota exceeded, an admission webhook or Pod
/// Security refusing them): the `ReplicaFailure` condition its controller sets, with the API
/// server's words (the same as its `FailedCreate` warning event). Named by the ReplicaSet, as
/// there is no pod; it ends a wait, as nothing will change until someone acts.
pub fn replica_failure(rs: &ReplicaSet) -> Option<PodIssue> {
    let c = rs
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
    Some(PodIssue {
        pod: rs.metadata.name.clone().unwrap_or_default(),
        container: None,
        reason: c.reason.clone().unwrap_or_else(|| "FailedCreate".into()),
        message: c.message.clone(),
    })
}

pub fn pod_issues(pods: &[Pod]) -> Vec<PodIssue> {
    let mut issues = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        if let Some(c) = status.conditions.as_ref().and_then(|cs| {
            cs.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        }) {
            issues.push(PodIssue {
                pod: name.clone(),
                container: None,
                reason: "Unschedulable".into(),
                message: c.message.clone(),
            });
        }
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in containers {
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
                && let Some(reason) = w.reason.as_deref().filter(|r| STUCK_REASONS.contains(r))
            {
                issues.push(PodIssue {
                    pod: name.clone(),
                    container: Some(cs.name.clone()),
                    reason: reason.to_owned(),
                    message: w.message.clone(),
                });
            }
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, observed: i64, desired: i32, st: (i32, i32, i32)) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": desired, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": st.0, "updatedReplicas": st.1, "availableReplicas": st.2},
        }))
        .unwrap()
    }

    #[test]
    fn rollout_status_follows_kubectls_order_and_wording() {
        assert_eq!(
            rollout_state(&deployment(2, 1, 3, (3, 3, 3))).message,
            "Waiting for deployment spec update to be observed..."
        );
        assert_eq!(
            rollout_state(&deployment(2, 2, 3, (4, 1, 3))).message,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        assert_eq!(
            rollout_state(&deployment(2, 2, 3, (4, 3, 3))).message,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
        assert_eq!(
            rollout_state(&deployment(2, 2, 3, (3, 3, 2))).message,
            "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available..."
        );
        let done = rollout_state(&deployment(2, 2, 3, (3, 3, 3)));
        assert!(done.done && !done.failed);
        assert_eq!(done.message, "deployment \"web\" successfully rolled out");
    }
}
