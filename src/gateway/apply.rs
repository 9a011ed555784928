//! Apply of manifests (`kubectl apply --server-side -f`), on the path every mutation takes: the
//! body is parsed and bounded, each kind resolved through the cluster's discovery (or the CRD
//! the manifest itself defines), each object authorized (the kind policy: what a `deployer` may
//! apply, the rest `admin`) — all before one intent listing every object is committed; then the
//! objects are applied in order (namespaces and CRDs first), and one outcome records each
//! object's result. A Secret's values are never answered, logged, audited or put in a diff.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::state::ApplySettings;
use super::{AppState, Error, commit_intent, entry_for, finished};
use crate::action::Target;
use crate::audit::{Entry, hex, now_us};
use crate::auth::Principal;
use crate::auth::policy::glob;
use crate::cluster::{Cluster, Kind, RolloutReport, Verdict};
use crate::context;
use crate::manifest::{self, Format, Object};

/// Objects applied at once within one step of the order.
const CONCURRENCY: usize = 8;
/// How long a CRD applied in the same request may take to be served.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// An apply, as the HTTP edge hands it over.
#[derive(Debug)]
pub struct ApplyRequest {
    pub cluster: String,
    /// The namespaced form's namespace: the default, and the only one objects may name.
    pub namespace: Option<String>,
    pub body: bytes::Bytes,
    pub format: Format,
    pub dry_run: bool,
    pub diff: bool,
    pub force: bool,
    pub continue_on_error: bool,
    pub wait: Option<Duration>,
    pub reason: Option<String>,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectStatus {
    Created,
    Configured,
    Unchanged,
    Failed,
    /// Not applied: an earlier object failed, or a dry run cannot check it (its CRD is in the
    /// same manifest).
    Skipped,
}

impl ObjectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// A workload's rollout after `wait`.
#[derive(Debug, Clone)]
pub struct ObjectRollout {
    pub done: bool,
    pub failed: bool,
    pub timed_out: bool,
    pub message: String,
    pub reason: Option<String>,
}

/// One object's result.
#[derive(Debug)]
pub struct ObjectResult {
    pub index: usize,
    pub source: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub status: ObjectStatus,
    pub generation: Option<i64>,
    pub message: Option<String>,
    pub diff: Option<String>,
    pub error: Option<Error>,
    pub rollout: Option<ObjectRollout>,
}

/// The results, in the manifest's order.
#[derive(Debug)]
pub struct Applied {
    pub audit_id: String,
    pub objects: Vec<ObjectResult>,
}

impl Applied {
    /// The object whose failure decides the answer: the first to fail in the order applied.
    pub fn failure(&self) -> Option<&ObjectResult> {
        self.objects
            .iter()
            .filter(|o| o.status == ObjectStatus::Failed)
            .min_by_key(|o| (manifest_tier(o), o.index))
    }
}

fn manifest_tier(o: &ObjectResult) -> u8 {
    let group = o.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    manifest::tier(group, &o.kind)
}

/// An object ready to apply: where it goes, and the kind as the cluster serves it.
#[derive(Debug)]
struct Planned {
    object: Object,
    kind: Kind,
    /// Served only once a CRD of this manifest is established.
    crd: Option<String>,
}

pub async fn apply(
    state: &AppState,
    principal: &Principal,
    req: ApplyRequest,
) -> Result<Applied, Error> {
    let audit_id = crate::audit::new_id();
    let ctx = context::current();
    if let Some(c) = &ctx {
        *c.audit_id.lock().expect("audit id") = Some(audit_id.to_string());
    }
    let target = Target {
        cluster: req.cluster.clone(),
        namespace: req.namespace.clone().unwrap_or_default(),
    };
    let digest = hex(ring::digest::digest(&ring::digest::SHA256, &req.body).as_ref());
    let parsed = manifest::parse(&req.body, req.format, state.apply.max_objects);
    let objects = parsed.as_ref().map(|o| o.as_slice()).unwrap_or(&[]);
    let mut summary = json!({
        "bodySha256": digest,
        "bodyBytes": req.body.len(),
        "objects": objects.iter().map(|o| json!({
            "apiVersion": o.api_version(), "kind": o.kind, "name": o.name, "namespace": o.namespace,
        })).collect::<Vec<_>>(),
        "force": req.force,
        "continueOnError": req.continue_on_error,
    });
    if let Some(r) = &req.reason {
        summary["reason"] = json!(r);
    }
    let what = match objects {
        [one] => one.describe(),
        many => format!("{} objects", many.len()),
    };
    let mut base = entry_for(
        audit_id,
        principal,
        ctx.as_deref(),
        &target,
        "apply",
        ("manifest", what),
        summary,
        req.dry_run,
    );
    if req.namespace.is_none() {
        base.namespace = None;
    }

    let cluster = state.cluster(principal, &req.cluster);
    let admitted = match (parsed, cluster) {
        (Err(invalid), _) => Err(match invalid {
            manifest::Invalid::Malformed(errors) => Error::BadRequest {
                detail: "the body is not a readable manifest".into(),
                errors,
            },
            manifest::Invalid::Unusable(errors) => Error::Validation { errors },
        }),
        (Ok(objects), Ok(cluster)) => admit(state, principal, cluster, &req, objects).await,
        (Ok(_), Err(e)) => return Err(e),
    };
    let reason_ok = req.reason.as_ref().is_none_or(|r| r.len() <= 1024);
    let admitted = match admitted {
        Ok(_) if !reason_ok => Err(Error::invalid("reason", "at most 1024 characters")),
        other => other,
    };
    let (decision, planned) = match admitted {
        Ok((d, p)) => (Ok(d), p),
        Err(e) => (Err(e), Vec::new()),
    };
    let intent = commit_intent(state, principal, &target, base, decision).await?;
    let cluster = state.cluster(principal, &req.cluster)?;
    let pending = state.audit.pending(intent);
    tracing::info!(action = "apply", subject = %principal.subject, cluster = %req.cluster, objects = planned.len(), dry_run = req.dry_run, %audit_id, "executing");

    let mut results = run(cluster, &req, planned).await;
    if let Some(timeout) = req.wait.filter(|_| !req.dry_run) {
        wait_for_workloads(cluster, &mut results, timeout).await;
    }
    results.sort_by_key(|r| r.index);
    let applied = Applied {
        audit_id: audit_id.to_string(),
        objects: results,
    };

    let outcome_of = |intent: Entry| {
        let result = Some(result_summary(&applied).to_string());
        match applied.failure() {
            None => Entry {
                stage: "outcome".into(),
                outcome: "succeeded".into(),
                completed_at_us: Some(now_us()),
                http_status: Some(200),
                result,
                ..intent
            },
            Some(failed) => {
                let e = failed
                    .error
                    .as_ref()
                    .expect("a failed object has its error");
                finished(
                    Entry {
                        stage: "outcome".into(),
                        outcome: "failed".into(),
                        upstream_error: Some(format!("{}: {e}", failed.source)),
                        result,
                        ..intent
                    },
                    e,
                )
            }
        }
    };
    pending.finish(outcome_of).await;
    Ok(applied)
}

/// Resolve every kind and authorize every object, before anything is applied.
async fn admit(
    state: &AppState,
    principal: &Principal,
    cluster: &Cluster,
    req: &ApplyRequest,
    objects: Vec<Object>,
) -> Result<(crate::auth::Decision, Vec<Planned>), Error> {
    // Kinds the manifest's own CRDs define: (group, version, kind) -> (plural, namespaced, CRD).
    let mut defined = BTreeMap::new();
    for o in objects
        .iter()
        .filter(|o| o.group == "apiextensions.k8s.io" && o.kind == "CustomResourceDefinition")
    {
        let spec = &o.body["spec"];
        let (Some(group), Some(kind), Some(plural)) = (
            spec["group"].as_str(),
            spec["names"]["kind"].as_str(),
            spec["names"]["plural"].as_str(),
        ) else {
            continue;
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        for v in spec["versions"].as_array().into_iter().flatten() {
            if let Some(version) = v["name"].as_str() {
                defined.insert(
                    (group.to_owned(), version.to_owned(), kind.to_owned()),
                    (plural.to_owned(), namespaced, o.name.clone()),
                );
            }
        }
    }

    let mut errors = Vec::new();
    let mut planned = Vec::new();
    for mut object in objects {
        let key = (
            object.group.clone(),
            object.version.clone(),
            object.kind.clone(),
        );
        let (kind, crd) = match cluster
            .resolve_kind(&object.group, &object.version, &object.kind)
            .await?
        {
            Some(k) => (k, None),
            None => match defined.get(&key) {
                Some((plural, namespaced, crd)) => (
                    Kind::of_crd(&key.0, &key.1, &key.2, plural, *namespaced),
                    Some(crd.clone()),
                ),
                None => {
                    errors.push(crate::validate::FieldError {
                        field: format!("{}.kind", object.source),
                        message: format!(
                            "the cluster serves no kind {:?} in {:?} (is its CustomResourceDefinition installed?)",
                            object.kind,
                            object.api_version()
                        ),
                    });
                    continue;
                }
            },
        };
        if kind.namespaced {
            match (&req.namespace, &object.namespace) {
                (Some(want), Some(has)) if want != has => {
                    errors.push(crate::validate::FieldError {
                        field: format!("{}.metadata.namespace", object.source),
                        message: format!(
                            "the namespace from the provided object {has:?} does not match the namespace {want:?}: apply it through the cluster's /apply or that namespace's"
                        ),
                    });
                    continue;
                }
                (Some(want), None) => object.namespace = Some(want.clone()),
                (None, None) => object.namespace = Some(cluster.default_namespace.clone()),
                _ => {}
            }
        } else {
            object.namespace = None;
        }
        planned.push(Planned { object, kind, crd });
    }
    if !errors.is_empty() {
        return Err(Error::Validation { errors });
    }

    // Authorization: every object, before any is applied.
    let mut grants = Vec::new();
    for p in &planned {
        let verb = apply_verb(
            &state.apply,
            &p.object.group,
            &p.object.kind,
            p.kind.namespaced,
        );
        let decision = state
            .auth
            .authorize(principal, verb, &req.cluster, p.object.namespace.as_deref())
            .map_err(|denied| Error::Forbidden {
                detail: format!(
                    "{} ({}): {}; nothing was applied",
                    p.object.source,
                    p.object.describe(),
                    denied.0
                ),
            })?;
        let grant = if principal.delegated_by.is_some() {
            decision.reason.clone()
        } else {
            decision
                .grant
                .as_ref()
                .map(|g| g.describe())
                .unwrap_or_default()
        };
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    let decision = crate::auth::Decision {
        allowed: true,
        grant: None,
        reason: grants.join("; "),
    };
    Ok((decision, planned))
}

/// `apply` (deployer) for the namespaced kinds the policy lists, else `apply_privileged` (admin).
fn apply_verb(settings: &ApplySettings, group: &str, kind: &str, namespaced: bool) -> &'static str {
    let name = format!("{}/{kind}", if group.is_empty() { "core" } else { group });
    if namespaced && settings.deployer_kinds.iter().any(|p| glob(p, &name)) {
        "apply"
    } else {
        "apply_privileged"
    }
}

/// Apply in order: each step of `manifest::tier` after the one before, objects within a step
/// at once (up to `CONCURRENCY`). After a failure (without `continueOnError`) no further object
/// starts; those already sent finish and are reported.
async fn run(cluster: &Cluster, req: &ApplyRequest, planned: Vec<Planned>) -> Vec<ObjectResult> {
    let mut tiers: BTreeMap<u8, Vec<Planned>> = BTreeMap::new();
    for p in planned {
        tiers
            .entry(manifest::tier(&p.object.group, &p.object.kind))
            .or_default()
            .push(p);
    }
    let stop = AtomicBool::new(false);
    let mut results = Vec::new();
    let mut established: BTreeMap<String, bool> = BTreeMap::new();
    for (_, step) in tiers {
        // CRDs this step's objects need, applied in an earlier step: served before they go.
        if !req.dry_run {
            for crd in step.iter().filter_map(|p| p.crd.clone()) {
                if established.contains_key(&crd) {
                    continue;
                }
                let applied = results.iter().any(|r: &ObjectResult| {
                    r.kind == "CustomResourceDefinition" && r.name == crd && r.error.is_none()
                });
                let ok = applied
                    && cluster
                        .wait_crd_established(&crd, CRD_ESTABLISH_TIMEOUT)
                        .await
                        .unwrap_or(false);
                established.insert(crd, ok);
            }
        }
        let established = &established;
        let stop = &stop;
        let step_results: Vec<ObjectResult> = futures::stream::iter(step)
            .map(|p| async move {
                if stop.load(Ordering::SeqCst) {
                    return skipped(p, "not applied: an earlier object failed");
                }
                if let Some(crd) = &p.crd {
                    if req.dry_run {
                        return skipped(
                            p,
                            "not checked: its CustomResourceDefinition is applied in the same request, which a dry run does not do",
                        );
                    }
                    if established.get(crd) != Some(&true) {
                        let e = Error::Conflict {
                            detail: format!(
                                "its CustomResourceDefinition {crd:?} was not established within {} s",
                                CRD_ESTABLISH_TIMEOUT.as_secs()
                            ),
                        };
                        if !req.continue_on_error {
                            stop.store(true, Ordering::SeqCst);
                        }
                        return failed(p, e);
                    }
                }
                let r = apply_one(cluster, req, p).await;
                if r.status == ObjectStatus::Failed && !req.continue_on_error {
                    stop.store(true, Ordering::SeqCst);
                }
                r
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        results.extend(step_results);
    }
    results
}

fn result_of(p: &Planned, status: ObjectStatus) -> ObjectResult {
    ObjectResult {
        index: p.object.index,
        source: p.object.source.clone(),
        api_version: p.object.api_version(),
        kind: p.object.kind.clone(),
        name: p.object.name.clone(),
        namespace: p.object.namespace.clone(),
        status,
        generation: None,
        message: None,
        diff: None,
        error: None,
        rollout: None,
    }
}

fn skipped(p: Planned, why: &str) -> ObjectResult {
    ObjectResult {
        message: Some(why.to_owned()),
        ..result_of(&p, ObjectStatus::Skipped)
    }
}

fn failed(p: Planned, e: Error) -> ObjectResult {
    ObjectResult {
        message: Some(e.to_string()),
        error: Some(e),
        ..result_of(&p, ObjectStatus::Failed)
    }
}

async fn apply_one(cluster: &Cluster, req: &ApplyRequest, p: Planned) -> ObjectResult {
    let o = &p.object;
    let ns = o.namespace.as_deref();
    let mut body = o.body.clone();
    match ns {
        Some(ns) => body["metadata"]["namespace"] = json!(ns),
        None => {
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("namespace");
            }
        }
    }
    let live = match cluster.get_object(&p.kind, ns, &o.name).await {
        Ok(live) => live,
        Err(e) => return failed(p, e.into()),
    };
    let applied = match cluster
        .apply_object(&p.kind, ns, &o.name, &body, req.force, req.dry_run)
        .await
    {
        Ok(a) => a,
        Err(e) => return failed(p, e.into()),
    };
    let status = match &live {
        // Unchanged: the same object, bookkeeping aside. Not "the same resourceVersion": an
        // apply that only records field ownership (the API server's `before-first-apply` entry
        // for an object written without any, such as a Namespace whose manifest sets no
        // field) is a write that changes nothing a reader sees.
        Some(live) if !applied.created => {
            if comparable(live) == comparable(&applied.object) {
                ObjectStatus::Unchanged
            } else {
                ObjectStatus::Configured
            }
        }
        _ => ObjectStatus::Created,
    };
    let diff = req.diff.then(|| diff(o, live.as_ref(), &applied.object));
    ObjectResult {
        generation: applied.object["metadata"]["generation"].as_i64(),
        diff,
        ..result_of(&p, status)
    }
}

/// An object without what changes on every write or is not the author's: managed fields,
/// resource version, status.
fn comparable(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    o
}

/// `kubectl diff` of one object: the live object against the result of the apply, as YAML
/// (managed fields and status left out). A Secret's values are never shown: each is a
/// placeholder that says whether it changed.
fn diff(o: &Object, live: Option<&Value>, merged: &Value) -> String {
    let (mut live, mut merged) = (live.map(comparable), comparable(merged));
    if let Some(m) = merged["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    if o.is_secret() {
        let before = live
            .as_ref()
            .map(|l| l["data"].clone())
            .unwrap_or(Value::Null);
        for (side, is_merged) in [(live.as_mut(), false), (Some(&mut merged), true)] {
            let Some(side) = side else { continue };
            if let Some(data) = side.get_mut("data").and_then(Value::as_object_mut) {
                for (k, v) in data.iter_mut() {
                    let changed = is_merged && before.get(k) != Some(v);
                    *v = json!(if changed {
                        "(hidden, changed)"
                    } else {
                        "(hidden)"
                    });
                }
            }
            if let Some(a) = side["metadata"]["annotations"].as_object_mut() {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
    }
    let yaml = manifest::to_yaml;
    let before = live.as_ref().map(yaml).unwrap_or_default();
    let after = yaml(&merged);
    let name = format!(
        "{}.{}.{}.{}",
        if o.group.is_empty() {
            "v1".to_owned()
        } else {
            format!("{}.{}", o.group, o.version)
        },
        o.kind,
        o.namespace.as_deref().unwrap_or(""),
        o.name
    )
    .replace("..", ".");
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{name}"), &format!("merged/{name}"))
        .to_string()
}

/// `wait`: every Deployment, StatefulSet and DaemonSet applied, at once, within one deadline.
async fn wait_for_workloads(cluster: &Cluster, results: &mut [ObjectResult], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let waits = results
        .iter_mut()
        .filter(|r| {
            matches!(
                r.status,
                ObjectStatus::Created | ObjectStatus::Configured | ObjectStatus::Unchanged
            ) && r.api_version == "apps/v1"
                && matches!(r.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
        })
        .map(|r| async move {
            let ns = r.namespace.clone().unwrap_or_default();
            let left = deadline.saturating_duration_since(Instant::now());
            r.rollout = Some(match r.kind.as_str() {
                "Deployment" => match cluster.wait_for_rollout(&ns, &r.name, left).await {
                    Ok(report) => deployment_rollout(&report),
                    Err(e) => waited_in_vain(e.to_string()),
                },
                kind => match cluster.wait_for_workload(kind, &ns, &r.name, left).await {
                    Ok(w) => ObjectRollout {
                        done: w.state.done,
                        failed: w.state.failed,
                        timed_out: w.timed_out,
                        message: w.state.message,
                        reason: None,
                    },
                    Err(e) => waited_in_vain(e.to_string()),
                },
            });
        });
    futures::future::join_all(waits).await;
}

fn waited_in_vain(message: String) -> ObjectRollout {
    ObjectRollout {
        done: false,
        failed: true,
        timed_out: false,
        message,
        reason: None,
    }
}

fn deployment_rollout(r: &RolloutReport) -> ObjectRollout {
    let reason = match &r.verdict {
        Some(Verdict::Failed(reason)) => Some(reason.clone()),
        _ => None,
    };
    ObjectRollout {
        done: r.state.done,
        failed: r.state.failed || reason.is_some(),
        timed_out: r.timed_out,
        message: r.state.message.clone(),
        reason,
    }
}

/// The outcome's record: each object's result (never a value of it).
fn result_summary(a: &Applied) -> Value {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &a.objects {
        *counts.entry(o.status.as_str()).or_default() += 1;
    }
    json!({
        "counts": counts,
        "objects": a.objects.iter().map(|o| {
            let mut v = json!({
                "kind": o.kind, "name": o.name, "namespace": o.namespace,
                "result": o.status.as_str(), "generation": o.generation,
            });
            if let Some(e) = &o.error {
                v["error"] = json!(e.to_string());
            }
            if let Some(r) = &o.rollout {
                v["rollout"] = json!({"done": r.done, "failed": r.failed, "timedOut": r.timed_out, "reason": r.reason});
            }
            v
        }).collect::<Vec<_>>(),
    })
}
