//! The deployment and replica set controllers, ported from kubernetes/kubernetes
//! `pkg/controller/deployment/{sync.go,rolling.go,recreate.go,progress.go}`,
//! `pkg/controller/deployment/util/deployment_util.go` and `pkg/controller/replicaset`, for what
//! kubegate and kubectl observe: one ReplicaSet per distinct pod template (reused on rollback),
//! `pod-template-hash`, revision and revision-history annotations, the continuous copy of the
//! Deployment's annotations onto its current ReplicaSet, rolling updates bounded by maxSurge and
//! maxUnavailable, old ReplicaSets cleaned up past revisionHistoryLimit, pods whose readiness a test
//! controls, and the Deployment status and conditions kubectl's `rollout status` reads.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::resources::Kind;
use super::selector::{Selector, labels_of};
use super::store::{PodBehavior, State, now, random_suffix};

const MANAGER: &str = "kube-controller-manager";
const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
const HASH: &str = "pod-template-hash";
/// deployment_util.go annotationsToSkip.
const SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX,
    "deprecated.deployment.rollback.to",
];

/// Run the controllers to a fixed point. Returns pods (uid) whose readiness is due after a delay.
pub fn reconcile(state: &mut State) -> Vec<(String, Duration)> {
    let mut timers = Vec::new();
    for _ in 0..50 {
        let mut changed = false;
        let deployments: Vec<(String, String)> = keys(state, Kind::Deployment);
        for (ns, name) in deployments {
            changed |= sync_deployment(state, &ns, &name);
        }
        for (ns, name) in keys(state, Kind::ReplicaSet) {
            changed |= sync_replicaset(state, &ns, &name, &mut timers);
        }
        changed |= sync_due_pods(state);
        // Garbage collection of ReplicaSets and pods whose owner is gone.
        changed |= collect_orphans(state);
        if !changed {
            break;
        }
    }
    timers
}

fn keys(state: &State, kind: Kind) -> Vec<(String, String)> {
    state
        .of_kind(kind, None)
        .map(|(k, _)| (k.1.clone(), k.2.clone()))
        .collect()
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

fn ann(obj: &Value, key: &str) -> Option<String> {
    obj["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

/// deployment_util.Revision: missing = 0, unparsable = skipped (None).
fn revision(rs: &Value) -> Option<i64> {
    match ann(rs, REVISION) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Template equality ignoring the pod-template-hash label (EqualIgnoreHash).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(l) = t["metadata"]["labels"].as_object_mut() {
            l.remove(HASH);
            if l.is_empty() {
                t["metadata"]
                    .as_object_mut()
                    .expect("object")
                    .remove("labels");
            }
        }
        t
    };
    strip(a) == strip(b)
}

/// controller.ComputeHash: FNV-32a of the template, rendered with SafeEncodeString.
fn template_hash(template: &Value, collision_count: i64) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(template.to_string().as_bytes());
    if collision_count > 0 {
        feed(&collision_count.to_le_bytes());
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// intstr.GetScaledValueFromIntOrPercent.
fn scaled(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::String(s) if s.ends_with('%') => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            let x = pct * total as f64 / 100.0;
            if round_up {
                x.ceil() as i64
            } else {
                x.floor() as i64
            }
        }
        Value::String(s) => s.parse().unwrap_or(0),
        other => int(other),
    }
}

/// (maxSurge, maxUnavailable) as ResolveFenceposts computes them; (0, 0) for Recreate.
fn fenceposts(d: &Value) -> (i64, i64) {
    if d["spec"]["strategy"]["type"] != "RollingUpdate" {
        return (0, 0);
    }
    let desired = int(&d["spec"]["replicas"]);
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let surge = scaled(&ru["maxSurge"], desired, true);
    let mut unavailable = scaled(&ru["maxUnavailable"], desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn sorted_by_creation(mut rss: Vec<Value>) -> Vec<Value> {
    rss.sort_by(|a, b| {
        let ka = (
            a["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            a["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        );
        let kb = (
            b["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            b["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        );
        ka.cmp(&kb)
    });
    rss
}

fn name_of(o: &Value) -> String {
    o["metadata"]["name"].as_str().unwrap_or("").to_owned()
}

fn scale_rs(state: &mut State, ns: &str, rs: &Value, replicas: i64, d: &Value) -> bool {
    let desired = int(&d["spec"]["replicas"]);
    let (surge, _) = fenceposts(d);
    let before = int(&rs["spec"]["replicas"]);
    let changed = state.internal_update(Kind::ReplicaSet, ns, &name_of(rs), MANAGER, |o| {
        o["spec"]["replicas"] = json!(replicas);
        o["metadata"]["annotations"][DESIRED] = json!(desired.to_string());
        o["metadata"]["annotations"][MAX] = json!((desired + surge).to_string());
    });
    if before != replicas {
        let way = if replicas > before { "up" } else { "down" };
        event(
            state,
            Kind::Deployment,
            d,
            "Normal",
            "ScalingReplicaSet",
            &format!(
                "Scaled {way} replica set {} from {before} to {replicas}",
                name_of(rs)
            ),
            "deployment-controller",
        );
    }
    changed
}

/// Record an event about `obj`, as the component that saw it would (core/v1 Event).
pub fn event(
    state: &mut State,
    kind: Kind,
    obj: &Value,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let name = name_of(obj);
    let stamp = now();
    let mut source = json!({"component": component});
    if component == "kubelet" {
        source["host"] = obj["spec"]["nodeName"].clone();
    }
    let _ = state.internal_create(
        Kind::Event,
        &ns,
        json!({
            "metadata": {"name": format!("{name}.{}", random_suffix(10))},
            "involvedObject": {
                "kind": kind.kind(), "namespace": ns, "name": name,
                "uid": obj["metadata"]["uid"], "apiVersion": kind.api_version(),
                "resourceVersion": obj["metadata"]["resourceVersion"],
            },
            "reason": reason, "message": message, "type": type_,
            "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": source, "reportingComponent": component, "reportingInstance": "",
        }),
        component,
    );
}

fn sync_deployment(state: &mut State, ns: &str, name: &str) -> bool {
    let Some(d) = state.peek(Kind::Deployment, ns, name) else {
        return false;
    };
    let uid = d["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let selector = Selector::from_label_selector(&d["spec"]["selector"]);
    let all: Vec<Value> = state
        .select(Kind::ReplicaSet, ns, &selector)
        .into_iter()
        .filter(|rs| owned_by(rs, &uid))
        .collect();
    let all = sorted_by_creation(all);
    let template = d["spec"]["template"].clone();
    let new_rs = all
        .iter()
        .find(|rs| equal_ignore_hash(&rs["spec"]["template"], &template))
        .cloned();
    let old: Vec<Value> = all
        .iter()
        .filter(|rs| Some(name_of(rs)) != new_rs.as_ref().map(name_of))
        .cloned()
        .collect();
    let max_old = old.iter().filter_map(revision).max().unwrap_or(0);
    let new_revision = max_old + 1;
    let paused = d["spec"]["paused"] == true;
    let desired = int(&d["spec"]["replicas"]);
    let (surge, max_unavailable) = fenceposts(&d);
    let mut changed = false;
    let mut created_new = None;

    // getNewReplicaSet: update the existing one's annotations, or create it.
    let new_rs = match new_rs {
        Some(rs) => {
            let updated =
                state.internal_update(Kind::ReplicaSet, ns, &name_of(&rs), MANAGER, |o| {
                    set_new_rs_annotations(&d, o, new_revision);
                    if o["spec"]["minReadySeconds"] != d["spec"]["minReadySeconds"] {
                        o["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"].clone();
                    }
                });
            changed |= updated;
            if updated {
                state.peek(Kind::ReplicaSet, ns, &name_of(&rs))
            } else {
                Some(rs)
            }
        }
        None if paused => None,
        None => {
            let collision = int(&d["status"]["collisionCount"]);
            let hash = template_hash(&template, collision);
            let mut t = template.clone();
            t["metadata"]["labels"][HASH] = json!(hash);
            let mut sel = d["spec"]["selector"].clone();
            sel["matchLabels"][HASH] = json!(hash);
            let mut rs = json!({
                "metadata": {
                    "name": format!("{name}-{hash}"),
                    "labels": t["metadata"]["labels"].clone(),
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
                        "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": {"replicas": 0, "selector": sel, "template": t},
            });
            if let Some(mrs) = d["spec"]["minReadySeconds"].as_i64() {
                rs["spec"]["minReadySeconds"] = json!(mrs);
            }
            // NewRSNewReplicas
            let current: i64 = old.iter().map(|r| int(&r["spec"]["replicas"])).sum();
            let replicas = if d["spec"]["strategy"]["type"] == "RollingUpdate" {
                let max_total = desired + surge;
                if current >= max_total {
                    0
                } else {
                    (max_total - current).min(desired)
                }
            } else {
                // Recreate scales the new ReplicaSet up only once the old pods are gone.
                0
            };
            rs["spec"]["replicas"] = json!(replicas);
            set_new_rs_annotations(&d, &mut rs, new_revision);
            rs["metadata"]["annotations"][DESIRED] = json!(desired.to_string());
            rs["metadata"]["annotations"][MAX] = json!((desired + surge).to_string());
            match state.internal_create(Kind::ReplicaSet, ns, rs, MANAGER) {
                Ok(created) => {
                    changed = true;
                    created_new = Some(name_of(&created));
                    if replicas > 0 {
                        let message = format!(
                            "Scaled up replica set {} from 0 to {replicas}",
                            name_of(&created)
                        );
                        let kind = Kind::Deployment;
                        event(
                            state,
                            kind,
                            &d,
                            "Normal",
                            "ScalingReplicaSet",
                            &message,
                            "deployment-controller",
                        );
                    }
                    Some(created)
                }
                Err(_) => None,
            }
        }
    };

    // SetDeploymentRevision
    if let Some(rs) = &new_rs
        && let Some(rev) = ann(rs, REVISION)
    {
        changed |= state.internal_update(Kind::Deployment, ns, name, MANAGER, |o| {
            o["metadata"]["annotations"][REVISION] = json!(rev);
        });
    }

    // Scale: rolling update, recreate, or a plain scaling event.
    let old: Vec<Value> = old
        .iter()
        .filter_map(|r| state.peek(Kind::ReplicaSet, ns, &name_of(r)))
        .collect();
    let old_active: i64 = old.iter().map(|r| int(&r["spec"]["replicas"])).sum();
    if let Some(rs) = new_rs
        .as_ref()
        .and_then(|r| state.peek(Kind::ReplicaSet, ns, &name_of(r)))
    {
        let new_replicas = int(&rs["spec"]["replicas"]);
        if old_active == 0 || paused {
            if new_replicas != desired && !(paused && old_active > 0) {
                changed |= scale_rs(state, ns, &rs, desired, &d);
            }
        } else if d["spec"]["strategy"]["type"] == "RollingUpdate" {
            // reconcileNewReplicaSet
            let all_count = old_active + new_replicas;
            let max_total = desired + surge;
            if new_replicas < desired && all_count < max_total {
                let up = (max_total - all_count).min(desired - new_replicas);
                changed |= scale_rs(state, ns, &rs, new_replicas + up, &d);
            } else if new_replicas > desired {
                changed |= scale_rs(state, ns, &rs, desired, &d);
            }
            let rs = state
                .peek(Kind::ReplicaSet, ns, &name_of(&rs))
                .unwrap_or(rs);
            // reconcileOldReplicaSets
            let min_available = desired - max_unavailable;
            let new_unavailable =
                int(&rs["spec"]["replicas"]) - int(&rs["status"]["availableReplicas"]);
            let all_count = old_active + int(&rs["spec"]["replicas"]);
            let mut max_scaled_down = all_count - min_available - new_unavailable;
            // cleanupUnhealthyReplicas first
            for o in &old {
                if max_scaled_down <= 0 {
                    break;
                }
                let spec_r = int(&o["spec"]["replicas"]);
                let avail = int(&o["status"]["availableReplicas"]);
                if spec_r == 0 || spec_r == avail {
                    continue;
                }
                let down = max_scaled_down.min(spec_r - avail);
                changed |= scale_rs(state, ns, o, spec_r - down, &d);
                max_scaled_down -= down;
            }
            // scaleDownOldReplicaSetsForRollingUpdate
            let olds: Vec<Value> = old
                .iter()
                .filter_map(|r| state.peek(Kind::ReplicaSet, ns, &name_of(r)))
                .collect();
            let available: i64 = olds
                .iter()
                .chain(std::iter::once(&rs))
                .map(|r| int(&r["status"]["availableReplicas"]))
                .sum();
            if available > min_available {
                let mut remaining = available - min_available;
                for o in &olds {
                    if remaining <= 0 {
                        break;
                    }
                    let spec_r = int(&o["spec"]["replicas"]);
                    if spec_r == 0 {
                        continue;
                    }
                    let down = spec_r.min(remaining);
                    changed |= scale_rs(state, ns, o, spec_r - down, &d);
                    remaining -= down;
                }
            }
        } else {
            // Recreate: scale the old down, wait for their pods to go, then scale up the new.
            for o in &old {
                if int(&o["spec"]["replicas"]) > 0 {
                    changed |= scale_rs(state, ns, o, 0, &d);
                }
            }
        }
    }
    if d["spec"]["strategy"]["type"] != "RollingUpdate"
        && let Some(rs) = new_rs
            .as_ref()
            .and_then(|r| state.peek(Kind::ReplicaSet, ns, &name_of(r)))
    {
        let old_pods: i64 = old
            .iter()
            .filter_map(|r| state.peek(Kind::ReplicaSet, ns, &name_of(r)))
            .map(|r| int(&r["status"]["replicas"]))
            .sum();
        let old_spec: i64 = old
            .iter()
            .filter_map(|r| state.peek(Kind::ReplicaSet, ns, &name_of(r)))
            .map(|r| int(&r["spec"]["replicas"]))
            .sum();
        if old_pods == 0 && old_spec == 0 && int(&rs["spec"]["replicas"]) != desired {
            changed |= scale_rs(state, ns, &rs, desired, &d);
        }
    }

    // Status (calculateStatus + syncRolloutStatus).
    let Some(d) = state.peek(Kind::Deployment, ns, name) else {
        return changed;
    };
    let all: Vec<Value> = state
        .select(Kind::ReplicaSet, ns, &selector)
        .into_iter()
        .filter(|rs| owned_by(rs, &uid))
        .collect();
    let new_rs = new_rs.and_then(|r| state.peek(Kind::ReplicaSet, ns, &name_of(&r)));
    let sum = |f: &str| -> i64 { all.iter().map(|r| int(&r["status"][f])).sum() };
    let replicas = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let spec_total: i64 = all.iter().map(|r| int(&r["spec"]["replicas"])).sum();
    let updated = new_rs
        .as_ref()
        .map(|r| int(&r["status"]["replicas"]))
        .unwrap_or(0);
    let generation = int(&d["metadata"]["generation"]);
    let complete = updated == desired && replicas == desired && available == desired;
    let min_available = desired - max_unavailable;
    let mut status = json!({"observedGeneration": generation});
    for (k, v) in [
        ("replicas", replicas),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", (spec_total - available).max(0)),
    ] {
        if v != 0 {
            status[k] = json!(v);
        }
    }
    if let Some(c) = d["status"]["collisionCount"].as_i64() {
        status["collisionCount"] = json!(c);
    }
    let old_conditions: BTreeMap<String, Value> = d["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| (c["type"].as_str().unwrap_or("").to_owned(), c.clone()))
                .collect()
        })
        .unwrap_or_default();
    let avail_cond = if available >= min_available {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_owned(),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_owned(),
        )
    };
    let rs_name = new_rs.as_ref().map(name_of).unwrap_or_default();
    let deadline = state
        .deadline_exceeded
        .contains(&(ns.to_owned(), name.to_owned(), generation));
    let progressing = if paused {
        (
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".to_owned(),
        )
    } else if complete && new_rs.is_some() {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else if deadline {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
        )
    } else if created_new.is_some() {
        (
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs_name}\""),
        )
    } else if !old_conditions.contains_key("Progressing") {
        (
            "True",
            "FoundNewReplicaSet",
            format!("Found new replica set \"{rs_name}\""),
        )
    } else if old_conditions["Progressing"]["reason"] == "NewReplicaSetCreated"
        && old_conditions["Progressing"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&rs_name))
    {
        (
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs_name}\""),
        )
    } else {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let stamp = now();
    let condition = |ty: &str, (st, reason, msg): (&str, &str, String)| {
        let prev = old_conditions.get(ty);
        if let Some(p) = prev
            && p["status"] == st
            && p["reason"] == reason
            && p["message"] == msg.as_str()
        {
            return p.clone();
        }
        let transition = prev
            .filter(|p| p["status"] == st)
            .map(|p| p["lastTransitionTime"].clone())
            .unwrap_or(json!(stamp));
        json!({"type": ty, "status": st, "lastUpdateTime": stamp, "lastTransitionTime": transition, "reason": reason, "message": msg})
    };
    status["conditions"] = json!([
        condition("Available", avail_cond),
        condition("Progressing", progressing)
    ]);
    changed |= state.internal_update(Kind::Deployment, ns, name, MANAGER, |o| {
        o["status"] = status;
    });

    // cleanupDeployment: past revisionHistoryLimit, once the rollout is complete.
    if complete && !paused {
        let limit = d["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
        let mut cleanable: Vec<Value> = all
            .iter()
            .filter(|r| Some(name_of(r)) != new_rs.as_ref().map(name_of))
            .filter(|r| int(&r["spec"]["replicas"]) == 0 && int(&r["status"]["replicas"]) == 0)
            .cloned()
            .collect();
        if cleanable.len() as i64 > limit {
            cleanable.sort_by_key(|r| revision(r).unwrap_or(0));
            let n = cleanable.len() - limit as usize;
            for r in cleanable.into_iter().take(n) {
                let _ = state.delete(Kind::ReplicaSet, ns, &name_of(&r), "Background", false);
                changed = true;
            }
        }
    }
    changed
}

/// SetNewReplicaSetAnnotations (copy the Deployment's annotations, bump revision, keep history).
fn set_new_rs_annotations(d: &Value, rs: &mut Value, new_revision: i64) {
    if !rs["metadata"]["annotations"].is_object() {
        rs["metadata"]["annotations"] = json!({});
    }
    if let Some(da) = d["metadata"]["annotations"].as_object() {
        for (k, v) in da {
            if SKIP.contains(&k.as_str()) {
                continue;
            }
            rs["metadata"]["annotations"][k] = v.clone();
        }
    }
    let old = ann(rs, REVISION);
    let old_int = old
        .as_deref()
        .and_then(|o| o.parse::<i64>().ok())
        .unwrap_or(0);
    if old_int < new_revision {
        rs["metadata"]["annotations"][REVISION] = json!(new_revision.to_string());
        if let Some(old) = old {
            let history = ann(rs, REVISION_HISTORY).unwrap_or_default();
            let joined = if history.is_empty() {
                old
            } else {
                format!("{history},{old}")
            };
            rs["metadata"]["annotations"][REVISION_HISTORY] = json!(joined);
        }
    }
}

fn behavior_of(state: &State, pod: &Value) -> PodBehavior {
    let mut worst = PodBehavior::Ready;
    for c in pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let image = c["image"].as_str().unwrap_or("");
        if let Some(b) = state.behaviors.get(image)
            && *b != PodBehavior::Ready
        {
            worst = b.clone();
        }
    }
    worst
}

fn pod_status(pod: &Value, behavior: &PodBehavior, ready_now: bool, ip: &str) -> Value {
    let stamp = now();
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pod_name = name_of(pod);
    if *behavior == PodBehavior::Unschedulable {
        return json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "lastTransitionTime": stamp, "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."}],
            "qosClass": "BestEffort",
        });
    }
    let (phase, container_ready, waiting): (&str, bool, Option<(String, String)>) = match behavior {
        PodBehavior::Ready => ("Running", true, None),
        PodBehavior::ReadyAfter(_) if ready_now => ("Running", true, None),
        PodBehavior::ReadyAfter(_) => (
            "Pending",
            false,
            Some(("ContainerCreating".into(), String::new())),
        ),
        PodBehavior::NeverReady => ("Running", false, None),
        PodBehavior::Waiting(reason) => {
            let image = containers
                .first()
                .and_then(|c| c["image"].as_str())
                .unwrap_or("");
            let msg = match reason.as_str() {
                "ImagePullBackOff" => format!("Back-off pulling image \"{image}\""),
                "ErrImagePull" => format!(
                    "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                ),
                "CrashLoopBackOff" => format!(
                    "back-off 40s restarting failed container={} pod={pod_name}",
                    containers
                        .first()
                        .and_then(|c| c["name"].as_str())
                        .unwrap_or("")
                ),
                "CreateContainerConfigError" => "secret \"missing\" not found".into(),
                other => other.to_string(),
            };
            let phase = if reason == "CrashLoopBackOff" {
                "Running"
            } else {
                "Pending"
            };
            (phase, false, Some((reason.clone(), msg)))
        }
        PodBehavior::Unschedulable | PodBehavior::Forbidden(_) => unreachable!(),
    };
    let crash = matches!(behavior, PodBehavior::Waiting(r) if r == "CrashLoopBackOff");
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let mut s = json!({
                "name": c["name"], "image": c["image"], "imageID": "",
                "ready": container_ready, "restartCount": if crash { 3 } else { 0 },
                "started": waiting.is_none(),
            });
            match &waiting {
                Some((reason, msg)) => {
                    s["state"] = json!({"waiting": {"reason": reason}});
                    if !msg.is_empty() {
                        s["state"]["waiting"]["message"] = json!(msg);
                    }
                    if crash {
                        s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": stamp, "finishedAt": stamp}});
                    }
                }
                None => {
                    s["state"] = json!({"running": {"startedAt": stamp}});
                    s["containerID"] = json!(format!("containerd://{}", random_suffix(16)));
                }
            }
            s
        })
        .collect();
    let unready: Vec<String> = containers
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let ready_cond = if container_ready {
        json!({"type": "Ready", "status": "True", "lastTransitionTime": stamp})
    } else {
        json!({"type": "Ready", "status": "False", "lastTransitionTime": stamp, "reason": "ContainersNotReady",
               "message": format!("containers with unready status: [{}]", unready.join(" "))})
    };
    let mut containers_ready = ready_cond.clone();
    containers_ready["type"] = json!("ContainersReady");
    json!({
        "phase": phase,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            ready_cond,
            containers_ready,
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
        ],
        "hostIP": "10.0.0.10", "hostIPs": [{"ip": "10.0.0.10"}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": stamp,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    })
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The events of a pod's creation, as the replica set controller, the scheduler and the kubelet
/// record them for the way its containers behave.
fn pod_events(state: &mut State, rs: &Value, pod: &Value, behavior: &PodBehavior) {
    let pod_name = name_of(pod);
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let created = format!("Created pod: {pod_name}");
    event(
        state,
        Kind::ReplicaSet,
        rs,
        "Normal",
        "SuccessfulCreate",
        &created,
        "replicaset-controller",
    );
    let container = &pod["spec"]["containers"][0];
    let (cname, image) = (
        container["name"].as_str().unwrap_or(""),
        container["image"].as_str().unwrap_or(""),
    );
    let kubelet: Vec<(&str, &str, String)> = match behavior {
        PodBehavior::Unschedulable => {
            let why = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
            event(
                state,
                Kind::Pod,
                pod,
                "Warning",
                "FailedScheduling",
                why,
                "default-scheduler",
            );
            return;
        }
        PodBehavior::Waiting(r) if r == "ErrImagePull" || r == "ImagePullBackOff" => vec![
            ("Normal", "Pulling", format!("Pulling image \"{image}\"")),
            (
                "Warning",
                "Failed",
                format!(
                    "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                ),
            ),
            ("Warning", "Failed", "Error: ErrImagePull".to_owned()),
            (
                "Normal",
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            ),
        ],
        PodBehavior::Waiting(r) if r == "CrashLoopBackOff" => vec![
            ("Normal", "Started", format!("Started container {cname}")),
            (
                "Warning",
                "BackOff",
                format!(
                    "Back-off restarting failed container {cname} in pod {pod_name}_{ns}({})",
                    pod["metadata"]["uid"].as_str().unwrap_or("")
                ),
            ),
        ],
        _ => vec![
            (
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            ),
            ("Normal", "Created", format!("Created container: {cname}")),
            ("Normal", "Started", format!("Started container {cname}")),
        ],
    };
    let assigned = format!("Successfully assigned {ns}/{pod_name} to fake-node-1");
    event(
        state,
        Kind::Pod,
        pod,
        "Normal",
        "Scheduled",
        &assigned,
        "default-scheduler",
    );
    for (type_, reason, message) in kubelet {
        event(state, Kind::Pod, pod, type_, reason, &message, "kubelet");
    }
}

fn sync_replicaset(
    state: &mut State,
    ns: &str,
    name: &str,
    timers: &mut Vec<(String, Duration)>,
) -> bool {
    let Some(rs) = state.peek(Kind::ReplicaSet, ns, name) else {
        return false;
    };
    let uid = rs["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let selector = Selector::from_label_selector(&rs["spec"]["selector"]);
    let mut pods: Vec<Value> = state
        .select(Kind::Pod, ns, &selector)
        .into_iter()
        .filter(|p| owned_by(p, &uid))
        .collect();
    let want = int(&rs["spec"]["replicas"]);
    let mut changed = false;
    let mut failure: Option<String> = None;
    let have = pods.len() as i64;
    if have < want {
        for _ in have..want {
            let template = &rs["spec"]["template"];
            let pod_name = format!("{name}-{}", random_suffix(5));
            let mut pod = json!({
                "metadata": {
                    "name": pod_name,
                    "labels": template["metadata"]["labels"].clone(),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": template["spec"].clone(),
            });
            if let Some(a) = template["metadata"]["annotations"].as_object() {
                pod["metadata"]["annotations"] = json!(a);
            }
            let behavior = behavior_of(state, &pod);
            if let PodBehavior::Forbidden(why) = &behavior {
                // The replica set controller's FailedCreate: a warning event, once, and the
                // ReplicaFailure condition (set below).
                let message = format!("pods \"{pod_name}\" is forbidden: {why}");
                if failure.is_none() && !has_replica_failure(&rs) {
                    let said = format!("Error creating: {message}");
                    event(
                        state,
                        Kind::ReplicaSet,
                        &rs,
                        "Warning",
                        "FailedCreate",
                        &said,
                        "replicaset-controller",
                    );
                }
                failure = Some(message);
                break;
            }
            if behavior != PodBehavior::Unschedulable {
                pod["spec"]["nodeName"] = json!("fake-node-1");
            }
            let Ok(created) = state.internal_create(Kind::Pod, ns, pod, MANAGER) else {
                continue;
            };
            pod_events(state, &rs, &created, &behavior);
            let ip = format!("10.244.0.{}", state.rv % 250 + 2);
            let status = pod_status(&created, &behavior, false, &ip);
            state.internal_update(Kind::Pod, ns, &pod_name, "kubelet", |o| {
                o["status"] = status
            });
            for c in created["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let cname = c["name"].as_str().unwrap_or("").to_owned();
                let lines = vec![
                    format!(
                        "container {cname} of pod {pod_name} started (image {})",
                        c["image"].as_str().unwrap_or("")
                    ),
                    format!("{pod_name}/{cname}: listening"),
                    format!("{pod_name}/{cname}: ready to serve"),
                ];
                state
                    .logs
                    .insert((ns.to_owned(), pod_name.clone(), cname), lines);
            }
            if let PodBehavior::ReadyAfter(delay) = behavior {
                timers.push((
                    created["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
                    delay,
                ));
            }
            changed = true;
        }
    } else if have > want {
        // controller.ActivePods order: unscheduled, pending, not ready, then newest first.
        pods.sort_by_key(|p| {
            (
                p["spec"]["nodeName"].is_string(),
                p["status"]["phase"] == "Running",
                pod_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                ),
            )
        });
        for p in pods.iter().take((have - want) as usize) {
            let key = (Kind::Pod, ns.to_owned(), name_of(p));
            state.remove(&key);
            state
                .logs
                .retain(|(n, pod, _), _| !(n == ns && *pod == name_of(p)));
            changed = true;
        }
    }
    let pods: Vec<Value> = state
        .select(Kind::Pod, ns, &selector)
        .into_iter()
        .filter(|p| owned_by(p, &uid))
        .collect();
    let template_labels = labels_of(&rs["spec"]["template"]);
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let labeled = pods
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| labels_of(p).get(k) == Some(v))
        })
        .count() as i64;
    let mut status = json!({"observedGeneration": int(&rs["metadata"]["generation"])});
    for (k, v) in [
        ("replicas", pods.len() as i64),
        ("fullyLabeledReplicas", labeled),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
    ] {
        if v != 0 || k == "replicas" {
            status[k] = json!(v);
        }
    }
    if let Some(message) = failure {
        // Kept as it was while the failure lasts (its message names the pod first refused).
        status["conditions"] = if has_replica_failure(&rs) {
            rs["status"]["conditions"].clone()
        } else {
            json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                    "message": message, "lastTransitionTime": now()}])
        };
    }
    changed |= state.internal_update(Kind::ReplicaSet, ns, name, MANAGER, |o| {
        o["status"] = status
    });
    changed
}

fn has_replica_failure(rs: &Value) -> bool {
    rs["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "ReplicaFailure"))
}

fn sync_due_pods(state: &mut State) -> bool {
    if state.ready_due.is_empty() {
        return false;
    }
    let due: Vec<String> = state.ready_due.drain().collect();
    let mut changed = false;
    let pods: Vec<(String, String, Value)> = state
        .of_kind(Kind::Pod, None)
        .filter(|(_, s)| {
            s.value["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| due.iter().any(|d| d == u))
        })
        .map(|(k, s)| (k.1.clone(), k.2.clone(), s.value.clone()))
        .collect();
    for (ns, name, pod) in pods {
        let ip = pod["status"]["podIP"]
            .as_str()
            .unwrap_or("10.244.0.2")
            .to_owned();
        let status = pod_status(&pod, &PodBehavior::ReadyAfter(Duration::ZERO), true, &ip);
        changed |=
            state.internal_update(Kind::Pod, &ns, &name, "kubelet", |o| o["status"] = status);
    }
    changed
}

fn collect_orphans(state: &mut State) -> bool {
    let uids: std::collections::HashSet<&str> = state
        .ownable()
        .filter_map(|(_, s)| s.value["metadata"]["uid"].as_str())
        .collect();
    let orphans: Vec<_> = state
        .ownable()
        .filter(|(_, s)| {
            s.value["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    !refs.is_empty()
                        && refs
                            .iter()
                            .all(|r| r["uid"].as_str().is_none_or(|u| !uids.contains(u)))
                })
        })
        .map(|(k, _)| k.clone())
        .collect();
    let changed = !orphans.is_empty();
    for key in orphans {
        state.remove(&key);
    }
    changed
}
