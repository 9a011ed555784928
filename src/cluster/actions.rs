//! What each action does to a cluster, following kubectl where kubectl has the verb
//! (KUBERNETES.md): deploy by server-side apply that never shrinks a running Deployment, scale
//! through `/scale`, set image and restart with one strategic merge patch that also carries the
//! change cause, rollback with kubectl's algorithm, expose from the Deployment's selector, label
//! with kubectl's overwrite rule, delete by selector within a bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Patch;
use serde_json::{Value, json};

use super::error::ClusterError;
use super::ops::selector_string;
use super::registry::Cluster;
use super::rollout::{
    self, AUDIT_ID, CHANGE_CAUSE, PodIssue, RESTARTED_AT, RollbackError, RollbackPlan, RolloutState,
};
use crate::action::{
    DeploySpec, ExposeSpec, Kind, LabelChange, Protocol, ServiceSpec, ServiceType, StrategyType,
};

/// Who and why, for change causes and (later) the audit log.
#[derive(Debug, Clone)]
pub struct ChangeNote {
    pub audit_id: String,
    /// `kubernetes.io/change-cause`: who, what, why.
    pub cause: String,
}

/// Why an action stopped short, in terms the HTTP layer maps to 404/409/422.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The request contradicts the cluster's state (422 with the field).
    #[error("{message}")]
    Unprocessable { field: String, message: String },
    /// The cluster's state forbids it now (409).
    #[error("{0}")]
    Conflict(String),
    /// Something the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
}

/// The Deployment after a change, and what changed.
#[derive(Debug, Clone)]
pub struct DeploymentChange {
    pub deployment: Arc<Deployment>,
    pub created: bool,
    pub template_changed: bool,
    pub revision_before: Option<i64>,
    pub replicas_before: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct RollbackOutcome {
    pub deployment: Arc<Deployment>,
    pub from_revision: Option<i64>,
    pub to_revision: i64,
    pub skipped: bool,
    /// kubectl's answer: `deployment.apps/NAME rolled back` or `... skipped rollback (...)`.
    pub message: String,
}

/// The rollout as `kubectl rollout status` sees it, plus early pod issues.
#[derive(Debug, Clone)]
pub struct RolloutReport {
    pub deployment: Arc<Deployment>,
    pub state: RolloutState,
    pub issues: Vec<PodIssue>,
    pub timed_out: bool,
    /// How a wait for this rollout ended (none for a report of the moment).
    pub verdict: Option<Verdict>,
}

/// One step of a rollout's progress.
#[derive(Debug, Clone)]
pub enum Progress {
    Update(RolloutReport),
    Final {
        report: RolloutReport,
        verdict: Verdict,
    },
}

/// How a rollout watch ended.
#[derive(Debug, Clone)]
pub enum Verdict {
    Succeeded,
    /// With the reason: `ProgressDeadlineExceeded` or a pod's waiting reason.
    Failed(String),
    Timeout,
    /// The Deployment was deleted.
    Gone,
    Error(ClusterError),
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed(_) => "failed",
            Self::Timeout => "timeout",
            Self::Gone => "deleted",
            Self::Error(_) => "error",
        }
    }
}

/// What makes two reports different enough to send again.
fn progress_key(r: &RolloutReport) -> String {
    let s = r.deployment.status.clone().unwrap_or_default();
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
        r.state.message,
        rollout::deployment_revision(&r.deployment),
        s.observed_generation,
        s.replicas,
        s.updated_replicas,
        s.ready_replicas,
        s.available_replicas,
        r.issues
            .iter()
            .map(|i| format!("{}/{}", i.pod, i.reason))
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn gone_report(ns: &str, name: &str) -> RolloutReport {
    let mut d = Deployment::default();
    d.metadata.name = Some(name.to_owned());
    d.metadata.namespace = Some(ns.to_owned());
    RolloutReport {
        deployment: Arc::new(d),
        state: RolloutState {
            done: false,
            failed: true,
            message: format!("deployment {name:?} is gone"),
        },
        issues: Vec::new(),
        timed_out: false,
        verdict: None,
    }
}

/// Run a read-check-write again when its write lost the race on the object's resourceVersion:
/// a controller updated the object meanwhile (a Deployment's status changes many times during a
/// rollout; seen on a real control plane as 409s to a set image right after a scale). The check
/// is made again on the fresh object, as client-go's `RetryOnConflict` does (five tries, 10 ms
/// doubling).
async fn again_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T, ActionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ActionError>>,
{
    let mut pause = Duration::from_millis(10);
    for _ in 0..4 {
        match attempt().await {
            Err(ActionError::Cluster(ClusterError::Conflict { .. })) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            other => return other,
        }
    }
    attempt().await
}

fn annotations_of(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata.annotations.clone().unwrap_or_default()
}

impl Cluster {
    /// Deploy (create or update) with server-side apply as `kubegate`.
    pub async fn deploy(
        &self,
        ns: &str,
        name: &str,
        spec: &DeploySpec,
        note: &ChangeNote,
        dry_run: bool,
    ) -> Result<DeploymentChange, ActionError> {
        let current: Option<Deployment> = self.get_opt(ns, name).await?;
        let selector: BTreeMap<String, String> = match &current {
            Some(d) => {
                let sel = d
                    .spec
                    .as_ref()
                    .map(|s| s.selector.clone())
                    .unwrap_or_default();
                if sel
                    .match_expressions
                    .as_ref()
                    .is_some_and(|e| !e.is_empty())
                {
                    return Err(ActionError::Conflict(format!(
                        "deployment {name:?} selects pods with match expressions ({}); deploy only manages matchLabels selectors",
                        selector_string(&sel)
                    )));
                }
                sel.match_labels.unwrap_or_default()
            }
            None => BTreeMap::from([("app".to_owned(), name.to_owned())]),
        };
        let mut body = deployment_body(ns, name, spec, &selector);
        // Omitted replicas keep the running count: server-side apply would otherwise drop the
        // field kubegate applied before and the default (1) would return (KUBERNETES.md).
        if spec.replicas.is_none()
            && let Some(r) = current
                .as_ref()
                .and_then(|d| d.spec.as_ref())
                .and_then(|s| s.replicas)
        {
            body["spec"]["replicas"] = json!(r);
        }
        // Carry the existing cause and audit link so an apply without a template change keeps them.
        let existing = current.as_ref().map(annotations_of).unwrap_or_default();
        for key in [CHANGE_CAUSE, AUDIT_ID] {
            if let Some(v) = existing.get(key) {
                body["metadata"]["annotations"][key] = json!(v);
            }
        }
        let template_changed = match &current {
            None => true,
            Some(cur) => {
                let (preview, _): (Deployment, _) = self.apply(ns, name, &body, true).await?;
                let (a, b) = (
                    cur.spec.as_ref().map(|s| &s.template),
                    preview.spec.as_ref().map(|s| &s.template),
                );
                !matches!((a, b), (Some(a), Some(b)) if rollout::equal_ignore_hash(a, b))
            }
        };
        if template_changed {
            body["metadata"]["annotations"][CHANGE_CAUSE] = json!(note.cause);
            body["metadata"]["annotations"][AUDIT_ID] = json!(note.audit_id);
        }
        let (deployment, created): (Deployment, _) = self.apply(ns, name, &body, dry_run).await?;
        Ok(DeploymentChange {
            deployment: Arc::new(deployment),
            // A dry run creates nothing: it reports what a real apply would have done.
            created: if dry_run { current.is_none() } else { created },
            template_changed,
            revision_before: current.as_ref().and_then(rollout::deployment_revision),
            replicas_before: current.as_ref().and_then(|d| d.spec.as_ref()?.replicas),
        })
    }

    /// `kubectl create deployment`: deploy, unless the Deployment exists (409 with kubectl's words).
    /// The check and the apply are two calls: a Deployment created between them is updated, and
    /// the result says it was not created (the apply's own 200 rather than 201).
    pub async fn create_deployment(
        &self,
        ns: &str,
        name: &str,
        spec: &DeploySpec,
        note: &ChangeNote,
        dry_run: bool,
    ) -> Result<DeploymentChange, ActionError> {
        if self.get_opt::<Deployment>(ns, name).await?.is_some() {
            return Err(ActionError::Conflict(format!(
                "deployments.apps {name:?} already exists"
            )));
        }
        self.deploy(ns, name, spec, note, dry_run).await
    }

    pub async fn scale(
        &self,
        ns: &str,
        name: &str,
        replicas: i32,
        dry_run: bool,
    ) -> Result<DeploymentChange, ActionError> {
        // What it was (for the audit's replicasBefore/revisionBefore): as reads see it. A GET
        // here would race a concurrent change just the same; the cache is never older than what
        // kubegate last wrote or read.
        let before: Arc<Deployment> = self.read(ns, name).await?;
        self.scale_deployment(ns, name, replicas, dry_run).await?;
        // The Deployment as the scale left it: from the watch cache, which is made to hold at least
        // that version (read-your-writes), or from the API server.
        let mut deployment: Arc<Deployment> = if dry_run {
            before.clone()
        } else {
            self.read(ns, name).await?
        };
        if dry_run && let Some(s) = Arc::make_mut(&mut deployment).spec.as_mut() {
            s.replicas = Some(replicas);
        }
        Ok(DeploymentChange {
            deployment,
            created: false,
            template_changed: false,
            revision_before: rollout::deployment_revision(&before),
            replicas_before: before.spec.as_ref().and_then(|s| s.replicas),
        })
    }

    /// `kubectl set image deployment/NAME CONTAINER=IMAGE` (or the only container).
    pub async fn set_image(
        &self,
        ns: &str,
        name: &str,
        container: Option<&str>,
        image: &str,
        note: &ChangeNote,
        dry_run: bool,
    ) -> Result<DeploymentChange, ActionError> {
        again_on_conflict(|| self.set_image_once(ns, name, container, image, note, dry_run)).await
    }

    async fn set_image_once(
        &self,
        ns: &str,
        name: &str,
        container: Option<&str>,
        image: &str,
        note: &ChangeNote,
        dry_run: bool,
    ) -> Result<DeploymentChange, ActionError> {
        let current: Deployment = self.get(ns, name).await?;
        let containers: Vec<(String, String)> = current
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| {
                p.containers
                    .iter()
                    .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<&str> = containers.iter().map(|c| c.0.as_str()).collect();
        let target = match container {
            Some(c) if names.contains(&c) => c.to_owned(),
            Some(c) => {
                return Err(ActionError::Unprocessable {
                    field: "container".into(),
                    message: format!(
                        "unable to find container named {c:?}; the containers are: {}",
                        names.join(", ")
                    ),
                });
            }
            None if names.len() == 1 => names[0].to_owned(),
            None => {
                return Err(ActionError::Unprocessable {
                    field: "container".into(),
                    message: format!(
                        "deployment {name:?} has several containers; name one of: {}",
                        names.join(", ")
                    ),
                });
            }
        };
        let unchanged = containers.iter().any(|(n, i)| *n == target && i == image);
        if unchanged {
            return Ok(DeploymentChange {
                revision_before: rollout::deployment_revision(&current),
                replicas_before: current.spec.as_ref().and_then(|s| s.replicas),
                deployment: Arc::new(current),
                created: false,
                template_changed: false,
            });
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": current.metadata.resource_version,
                "annotations": {CHANGE_CAUSE: note.cause, AUDIT_ID: note.audit_id},
            },
            "spec": {"template": {"spec": {"containers": [{"name": target, "image": image}]}}},
        });
        let deployment: Deployment = self
            .patch(ns, name, &Patch::Strategic(patch), dry_run)
            .await?;
        Ok(DeploymentChange {
            revision_before: rollout::deployment_revision(&current),
            replicas_before: current.spec.as_ref().and_then(|s| s.replicas),
            deployment: Arc::new(deployment),
            created: false,
            template_changed: true,
        })
    }

    /// `kubectl rollout restart`: stamp the pod template with `kubectl.kubernetes.io/restartedAt`.
    pub async fn restart(
        &self,
        ns: &str,
        name: &str,
        note: &ChangeNote,
        dry_run: bool,
    ) -> Result<DeploymentChange, ActionError> {
        again_on_conflict(|| self.restart_once(ns, name, note, dry_run)).await
    }

    async fn restart_once(
        &self,
        ns: &str,
        name: &str,
        note: &ChangeNote,
        dry_run: bool,
    ) -> Result<DeploymentChange, ActionError> {
        let current: Deployment = self.get(ns, name).await?;
        if current
            .spec
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false)
        {
            return Err(ActionError::Conflict(format!(
                "can't restart paused deployment (run rollout resume first): deployment {name:?}"
            )));
        }
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let patch = json!({
            "metadata": {
                "resourceVersion": current.metadata.resource_version,
                "annotations": {CHANGE_CAUSE: note.cause, AUDIT_ID: note.audit_id},
            },
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}},
        });
        let deployment: Deployment = self
            .patch(ns, name, &Patch::Strategic(patch), dry_run)
            .await?;
        Ok(DeploymentChange {
            revision_before: rollout::deployment_revision(&current),
            replicas_before: current.spec.as_ref().and_then(|s| s.replicas),
            deployment: Arc::new(deployment),
            created: false,
            template_changed: true,
        })
    }

    /// `kubectl rollout undo [--to-revision=N]`, with an optional guard on the current revision.
    pub async fn rollback(
        &self,
        ns: &str,
        name: &str,
        to_revision: i64,
        expect_revision: Option<i64>,
        audit_id: &str,
        dry_run: bool,
    ) -> Result<RollbackOutcome, ActionError> {
        let current: Deployment = self.get(ns, name).await?;
        let from_revision = rollout::deployment_revision(&current);
        if let Some(expected) = expect_revision
            && from_revision != Some(expected)
        {
            return Err(ActionError::Conflict(format!(
                "deployment {name:?} is at revision {}, not the expected {expected}; it moved on",
                from_revision
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "unknown".into())
            )));
        }
        let rss = self.history_of(&current, true).await?;
        let plan =
            rollout::plan_rollback(&current, &rss, to_revision, expect_revision).map_err(|e| {
                match e {
                    RollbackError::RevisionNotFound(_) => ActionError::NotFound(e.to_string()),
                    RollbackError::NoHistory(_) | RollbackError::Paused => {
                        ActionError::Conflict(e.to_string())
                    }
                }
            })?;
        match plan {
            RollbackPlan::Skip { to_revision } => Ok(RollbackOutcome {
                message: format!(
                    "deployment.apps/{name} skipped rollback (current template already matches revision {to_revision})"
                ),
                deployment: Arc::new(current),
                from_revision,
                to_revision,
                skipped: true,
            }),
            RollbackPlan::Patch {
                to_revision,
                mut patch,
            } => {
                // kubectl's annotations of the revision rolled back to, but the audit link
                // names this rollback: the change that makes that template current again.
                if let Some(ops) = patch.as_array_mut() {
                    for op in ops {
                        if op["path"] == "/metadata/annotations" {
                            op["value"][AUDIT_ID] = json!(audit_id);
                        }
                    }
                }
                let patch: json_patch::Patch =
                    serde_json::from_value(patch).map_err(|e| ClusterError::BadRequest {
                        message: e.to_string(),
                    })?;
                let result: Result<Deployment, ClusterError> = self
                    .patch(ns, name, &Patch::<()>::Json(patch), dry_run)
                    .await;
                let deployment = match result {
                    // The guard's `test` failed: another rollout happened between read and patch.
                    Err(ClusterError::Invalid { .. }) if expect_revision.is_some() => {
                        return Err(ActionError::Conflict(format!(
                            "deployment {name:?} moved on from revision {} during the rollback",
                            expect_revision.unwrap_or_default()
                        )));
                    }
                    other => other?,
                };
                Ok(RollbackOutcome {
                    message: format!("deployment.apps/{name} rolled back"),
                    deployment: Arc::new(deployment),
                    from_revision,
                    to_revision,
                    skipped: false,
                })
            }
        }
    }

    /// Wait until the rollout is done, failed, stuck on a pod issue, or `timeout` passes: the same
    /// watch-driven progress the SSE stream shows, consumed to its verdict.
    pub async fn wait_for_rollout(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<RolloutReport, ActionError> {
        let mut rx = self.rollout_progress(ns.to_owned(), name.to_owned(), timeout);
        let mut last = None;
        while let Some(p) = rx.recv().await {
            match p {
                Progress::Update(r) => last = Some(r),
                Progress::Final { report, verdict } => {
                    return match verdict {
                        Verdict::Error(e) => Err(ActionError::Cluster(e)),
                        verdict => Ok(RolloutReport {
                            timed_out: matches!(verdict, Verdict::Timeout),
                            verdict: Some(verdict),
                            ..report
                        }),
                    };
                }
            }
        }
        last.ok_or_else(|| ActionError::Conflict("the rollout watch ended unexpectedly".into()))
    }

    /// Rollout progress as it changes, driven by watches of the Deployment and its pods (not by
    /// polling), ending with a verdict: succeeded, failed (progress deadline, or a pod stuck in
    /// ImagePullBackOff, CrashLoopBackOff, ...), timeout, or gone. Stops when the receiver is
    /// dropped.
    pub fn rollout_progress(
        &self,
        ns: String,
        name: String,
        timeout: Duration,
    ) -> tokio::sync::mpsc::Receiver<Progress> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let cluster = self.clone();
        tokio::spawn(async move { cluster.drive_progress(&ns, &name, timeout, tx).await });
        rx
    }

    async fn drive_progress(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
        tx: tokio::sync::mpsc::Sender<Progress>,
    ) {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_seen: Option<String> = None;
        let mut changes: Option<futures::stream::BoxStream<'static, ()>> = None;
        loop {
            let report = match self.rollout_from(ns, name, true).await {
                Ok(r) => r,
                Err(ActionError::Cluster(e)) => {
                    let verdict = if matches!(e, ClusterError::NotFound { .. }) {
                        Verdict::Gone
                    } else {
                        Verdict::Error(e)
                    };
                    let _ = tx
                        .send(Progress::Final {
                            report: gone_report(ns, name),
                            verdict,
                        })
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = tx
                        .send(Progress::Final {
                            report: gone_report(ns, name),
                            verdict: Verdict::Error(ClusterError::Unavailable {
                                message: e.to_string(),
                            }),
                        })
                        .await;
                    return;
                }
            };
            let seen = progress_key(&report);
            if last_seen.as_ref() != Some(&seen) {
                last_seen = Some(seen);
                if tx.send(Progress::Update(report.clone())).await.is_err() {
                    return;
                }
            }
            let verdict = if report.state.done {
                Some(Verdict::Succeeded)
            } else if report.state.failed {
                Some(Verdict::Failed("ProgressDeadlineExceeded".into()))
            } else {
                report
                    .issues
                    .iter()
                    .find(|i| i.ends_the_rollout())
                    .map(|i| Verdict::Failed(i.reason.clone()))
            };
            if let Some(verdict) = verdict {
                let _ = tx.send(Progress::Final { report, verdict }).await;
                return;
            }
            if changes.is_none() {
                changes = Some(self.changes(ns, &report.deployment).await);
            }
            let stream = changes.as_mut().expect("set above");
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = tx.send(Progress::Final { report, verdict: Verdict::Timeout }).await;
                    return;
                }
                _ = tx.closed() => return,
                event = stream.next() => {
                    if event.is_none() {
                        // The watch ended (server-side timeout): open new ones.
                        changes = None;
                    }
                }
            }
        }
    }

    /// A stream that yields whenever the Deployment or one of its pods changes.
    async fn changes(&self, ns: &str, d: &Deployment) -> futures::stream::BoxStream<'static, ()> {
        use futures::StreamExt;
        use kube::api::WatchParams;
        let fallback = || {
            futures::stream::unfold((), |_| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some(((), ()))
            })
            .boxed()
        };
        let Ok(client) = self.client() else {
            return fallback();
        };
        let name = d.metadata.name.clone().unwrap_or_default();
        let rv = d
            .metadata
            .resource_version
            .clone()
            .unwrap_or_else(|| "0".into());
        let selector = d
            .spec
            .as_ref()
            .map(|s| selector_string(&s.selector))
            .unwrap_or_default();
        let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), ns);
        let pods: kube::Api<Pod> = kube::Api::namespaced(client, ns);
        let dw = deployments
            .watch(
                &WatchParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .timeout(290),
                &rv,
            )
            .await;
        let pw = pods
            .watch(&WatchParams::default().labels(&selector).timeout(290), &rv)
            .await;
        match (dw, pw) {
            (Ok(dw), Ok(pw)) => futures::stream::select(dw.map(|_| ()), pw.map(|_| ())).boxed(),
            // A cluster that refuses watches still gets progress, by looking every second.
            _ => fallback(),
        }
    }
    /// `kubectl rollout status` now, plus the current ReplicaSet's pod issues (as reads see them:
    /// from the watch cache when it may answer).
    pub async fn rollout(&self, ns: &str, name: &str) -> Result<RolloutReport, ActionError> {
        self.rollout_from(ns, name, false).await
    }

    /// `fresh`: from the API server. The progress stream reads fresh: it wakes on its own watch's
    /// events, which the cache's watch may not have applied yet.
    async fn rollout_from(
        &self,
        ns: &str,
        name: &str,
        fresh: bool,
    ) -> Result<RolloutReport, ActionError> {
        let deployment: Arc<Deployment> = if fresh {
            Arc::new(self.get(ns, name).await?)
        } else {
            self.read(ns, name).await?
        };
        let state = rollout::rollout_state(&deployment);
        let mut issues = Vec::new();
        if !state.done {
            let rss = self.history_of(&deployment, fresh).await?;
            if let Some(rs) = rollout::current_replica_set(&deployment, &rss) {
                let pods: Vec<Pod> = self.pods_of(ns, rs, fresh).await?;
                issues = rollout::pod_issues(&pods);
                issues.extend(rollout::replica_failure(rs));
            }
        }
        Ok(RolloutReport {
            deployment,
            state,
            issues,
            timed_out: false,
            verdict: None,
        })
    }

    /// `kubectl expose deployment NAME`.
    pub async fn expose(
        &self,
        ns: &str,
        deployment: &str,
        spec: &ExposeSpec,
        dry_run: bool,
    ) -> Result<Service, ActionError> {
        let d: Deployment = self.get(ns, deployment).await?;
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default();
        if selector.is_empty() {
            return Err(ActionError::Unprocessable {
                field: "deployment".into(),
                message: format!(
                    "couldn't retrieve selectors via introspection: deployment {deployment:?} has no matchLabels"
                ),
            });
        }
        let ty = spec.service_type.unwrap_or(ServiceType::ClusterIP);
        let mut port = json!({
            "port": spec.port,
            "targetPort": spec.target_port.unwrap_or(spec.port),
            "protocol": spec.protocol.unwrap_or(Protocol::Tcp).as_str(),
        });
        if let Some(np) = spec.node_port {
            port["nodePort"] = json!(np);
        }
        let service: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": spec.name.clone().unwrap_or_else(|| deployment.to_owned()), "labels": d.metadata.labels.clone().unwrap_or_default()},
            "spec": {"type": ty.as_str(), "selector": selector, "ports": [port]},
        }))
        .map_err(|e| ClusterError::BadRequest { message: e.to_string() })?;
        Ok(self.create(ns, &service, dry_run).await?)
    }

    /// Create or update a Service with server-side apply. Returns (service, created).
    pub async fn put_service(
        &self,
        ns: &str,
        name: &str,
        spec: &ServiceSpec,
        dry_run: bool,
    ) -> Result<(Service, bool), ActionError> {
        // A real apply says whether it created the Service; a dry run is asked beforehand.
        let existed = if dry_run {
            Some(self.get_opt::<Service>(ns, name).await?.is_some())
        } else {
            None
        };
        let ty = spec.service_type.unwrap_or(ServiceType::ClusterIP);
        let mut body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": ty.as_str()},
        });
        if !spec.labels.is_empty() {
            body["metadata"]["labels"] = json!(spec.labels);
        }
        if ty == ServiceType::ExternalName {
            body["spec"]["externalName"] = json!(spec.external_name);
        } else {
            body["spec"]["selector"] = json!(spec.selector);
        }
        if !spec.ports.is_empty() {
            body["spec"]["ports"] = Value::Array(
                spec.ports
                    .iter()
                    .map(|p| {
                        let mut v = json!({"port": p.port, "targetPort": p.target_port.unwrap_or(p.port), "protocol": p.protocol.unwrap_or(Protocol::Tcp).as_str()});
                        if let Some(n) = &p.name {
                            v["name"] = json!(n);
                        }
                        if let Some(np) = p.node_port {
                            v["nodePort"] = json!(np);
                        }
                        v
                    })
                    .collect(),
            );
        }
        let (service, created): (Service, _) = self.apply(ns, name, &body, dry_run).await?;
        Ok((service, existed.map_or(created, |e| !e)))
    }

    /// Delete one object of a kind by name.
    pub async fn delete_named(
        &self,
        ns: &str,
        kind: Kind,
        name: &str,
        dry_run: bool,
    ) -> Result<(), ClusterError> {
        match kind {
            Kind::Deployment => self.delete::<Deployment>(ns, name, None, dry_run).await,
            Kind::ReplicaSet => self.delete::<ReplicaSet>(ns, name, None, dry_run).await,
            Kind::Service => self.delete::<Service>(ns, name, None, dry_run).await,
            Kind::Pod => self.delete::<Pod>(ns, name, None, dry_run).await,
        }
    }

    /// Delete the objects of a kind a selector matches, refusing when more than `max_affected`
    /// would go.
    pub async fn delete_by_selector(
        &self,
        ns: &str,
        kind: Kind,
        selector: &str,
        max_affected: usize,
        dry_run: bool,
    ) -> Result<Vec<String>, ActionError> {
        match kind {
            Kind::Deployment => {
                self.delete_selected::<Deployment>(ns, selector, max_affected, dry_run)
                    .await
            }
            Kind::ReplicaSet => {
                self.delete_selected::<ReplicaSet>(ns, selector, max_affected, dry_run)
                    .await
            }
            Kind::Service => {
                self.delete_selected::<Service>(ns, selector, max_affected, dry_run)
                    .await
            }
            Kind::Pod => {
                self.delete_selected::<Pod>(ns, selector, max_affected, dry_run)
                    .await
            }
        }
    }

    /// Delete what a selector matches, refusing when more than `max_affected` would go.
    async fn delete_selected<K>(
        &self,
        ns: &str,
        selector: &str,
        max_affected: usize,
        dry_run: bool,
    ) -> Result<Vec<String>, ActionError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        <K as kube::Resource>::DynamicType: Default,
    {
        let matching: Vec<K> = self.list(ns, Some(selector)).await?;
        if matching.len() > max_affected {
            return Err(ActionError::Conflict(format!(
                "the selector {selector:?} matches {} objects, more than maxAffected={max_affected}; nothing was deleted",
                matching.len()
            )));
        }
        let mut deleted = Vec::new();
        for obj in matching {
            let meta = obj.meta();
            let name = meta.name.clone().unwrap_or_default();
            match self.delete::<K>(ns, &name, meta.uid.clone(), dry_run).await {
                Ok(()) => deleted.push(name),
                // Gone meanwhile (or replaced by a newcomer of the same name): not ours to delete.
                Err(ClusterError::NotFound { .. } | ClusterError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// `kubectl label`: set and remove labels; changing a value needs `overwrite`.
    pub async fn label(
        &self,
        ns: &str,
        kind: Kind,
        name: &str,
        change: &LabelChange,
        dry_run: bool,
    ) -> Result<BTreeMap<String, String>, ActionError> {
        again_on_conflict(|| self.label_once(ns, kind, name, change, dry_run)).await
    }

    async fn label_once(
        &self,
        ns: &str,
        kind: Kind,
        name: &str,
        change: &LabelChange,
        dry_run: bool,
    ) -> Result<BTreeMap<String, String>, ActionError> {
        let (labels, rv) = match kind {
            Kind::Deployment => meta_labels(&self.get::<Deployment>(ns, name).await?.metadata),
            Kind::ReplicaSet => meta_labels(&self.get::<ReplicaSet>(ns, name).await?.metadata),
            Kind::Service => meta_labels(&self.get::<Service>(ns, name).await?.metadata),
            Kind::Pod => meta_labels(&self.get::<Pod>(ns, name).await?.metadata),
        };
        if !change.overwrite {
            for (k, v) in &change.set {
                if let Some(old) = labels.get(k).filter(|old| *old != v) {
                    return Err(ActionError::Conflict(format!(
                        "'{k}' already has a value ({old}), and overwrite is false"
                    )));
                }
            }
        }
        let mut patch_labels = serde_json::Map::new();
        for (k, v) in &change.set {
            patch_labels.insert(k.clone(), json!(v));
        }
        for k in &change.remove {
            patch_labels.insert(k.clone(), Value::Null);
        }
        // The resourceVersion makes the overwrite check and the write one atomic step.
        let patch =
            Patch::Merge(json!({"metadata": {"resourceVersion": rv, "labels": patch_labels}}));
        let meta = match kind {
            Kind::Deployment => {
                self.patch::<Deployment, _>(ns, name, &patch, dry_run)
                    .await?
                    .metadata
            }
            Kind::ReplicaSet => {
                self.patch::<ReplicaSet, _>(ns, name, &patch, dry_run)
                    .await?
                    .metadata
            }
            Kind::Service => {
                self.patch::<Service, _>(ns, name, &patch, dry_run)
                    .await?
                    .metadata
            }
            Kind::Pod => {
                self.patch::<Pod, _>(ns, name, &patch, dry_run)
                    .await?
                    .metadata
            }
        };
        Ok(meta.labels.unwrap_or_default())
    }
}

fn meta_labels(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (BTreeMap<String, String>, Option<String>) {
    (
        m.labels.clone().unwrap_or_default(),
        m.resource_version.clone(),
    )
}

/// The applied configuration of a Deployment: only the fields kubegate owns.
fn deployment_body(
    ns: &str,
    name: &str,
    spec: &DeploySpec,
    selector: &BTreeMap<String, String>,
) -> Value {
    let mut labels = spec.labels.clone();
    for (k, v) in selector {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let mut v = json!({"name": c.name, "image": c.image});
            if !c.ports.is_empty() {
                v["ports"] = Value::Array(
                    c.ports
                        .iter()
                        .map(|p| {
                            let mut port = json!({"containerPort": p.container_port, "protocol": p.protocol.unwrap_or(Protocol::Tcp).as_str()});
                            if let Some(n) = &p.name {
                                port["name"] = json!(n);
                            }
                            port
                        })
                        .collect(),
                );
            }
            if !c.env.is_empty() {
                v["env"] = Value::Array(c.env.iter().map(|e| json!({"name": e.name, "value": e.value})).collect());
            }
            if let Some(r) = &c.resources {
                let mut res = json!({});
                if !r.requests.is_empty() {
                    res["requests"] = json!(r.requests);
                }
                if !r.limits.is_empty() {
                    res["limits"] = json!(r.limits);
                }
                v["resources"] = res;
            }
            if !c.command.is_empty() {
                v["command"] = json!(c.command);
            }
            if !c.args.is_empty() {
                v["args"] = json!(c.args);
            }
            v
        })
        .collect();
    let mut body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": {"containers": containers}},
        },
    });
    if !spec.annotations.is_empty() {
        body["metadata"]["annotations"] = json!(spec.annotations);
    }
    if let Some(r) = spec.replicas {
        body["spec"]["replicas"] = json!(r);
    }
    if let Some(m) = spec.min_ready_seconds {
        body["spec"]["minReadySeconds"] = json!(m);
    }
    if let Some(s) = &spec.strategy {
        body["spec"]["strategy"] = match s.strategy_type {
            StrategyType::Recreate => json!({"type": "Recreate"}),
            StrategyType::RollingUpdate => {
                let mut ru = json!({});
                if let Some(v) = &s.max_surge {
                    ru["maxSurge"] = v.to_json();
                }
                if let Some(v) = &s.max_unavailable {
                    ru["maxUnavailable"] = v.to_json();
                }
                json!({"type": "RollingUpdate", "rollingUpdate": ru})
            }
        };
    }
    body
}
