//! kubegate against a real control plane (`control_plane`): kube-apiserver, the real deployment,
//! replicaset and endpointslice controllers, the scheduler. What the fake API server only imitates
//! is checked here against the real thing; the tests say they were skipped, and why, where there
//! is no control plane.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::control_plane::{ControlPlane, or_skip};
use crate::helpers::{Options, TestApp, eventually, spawn_app_with};

/// kubegate with the real cluster as its cluster `real` (kubegate's own credentials: admin).
async fn kubegate(plane: &ControlPlane) -> TestApp {
    spawn_app_with(Options {
        kubeconfig: Some(plane.kubeconfig()),
        cluster_timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .await
}

/// Run `kubectl` (the system's) as the administrator in `namespace`.
async fn kubectl(plane: &ControlPlane, namespace: &str, line: &str) -> String {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&plane.admin_kubeconfig)
        .args(["-n", namespace])
        .args(line.split_whitespace())
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl_installed() -> bool {
    std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Annotations kubegate adds on purpose (who changed what, and the audit entry behind it); the
/// restart time differs between two restarts by nature.
const KUBEGATE_ANNOTATIONS: [&str; 2] = ["kubernetes.io/change-cause", "kubegate.io/audit-id"];

fn annotations(v: &Value) -> BTreeMap<String, Value> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !KUBEGATE_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = if k == "kubectl.kubernetes.io/restartedAt" {
                json!("<a time>")
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// A pod template as both sides must leave it (its hash covers the restart time).
fn template(t: &Value) -> Value {
    let mut labels = t["metadata"]["labels"].clone();
    if let Some(hash) = labels.get_mut("pod-template-hash") {
        *hash = json!("<a hash>");
    }
    json!({
        "labels": labels,
        "annotations": annotations(&t["metadata"]["annotations"]),
        "spec": t["spec"],
    })
}

/// What kubectl shows of a namespace's Deployments, ReplicaSets and Services, without what
/// differs by nature (names with hashes of restart times, uids, versions, times, IPs, managers).
async fn state(client: &kube::Client, ns: &str) -> Value {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let mut out = json!({});
    for d in deployments.list(&ListParams::default()).await.unwrap() {
        let v = serde_json::to_value(&d).unwrap();
        out["deployments"][d.metadata.name.unwrap()] = json!({
            "labels": v["metadata"]["labels"],
            "annotations": annotations(&v["metadata"]["annotations"]),
            "generation": v["metadata"]["generation"],
            "replicas": v["spec"]["replicas"],
            "selector": v["spec"]["selector"],
            "strategy": v["spec"]["strategy"],
            "template": template(&v["spec"]["template"]),
            "status": {"replicas": v["status"]["replicas"], "updated": v["status"]["updatedReplicas"],
                       "available": v["status"]["availableReplicas"]},
        });
    }
    let mut rss: Vec<Value> = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .map(|rs| {
            let v = serde_json::to_value(&rs).unwrap();
            json!({
                "owner": v["metadata"]["ownerReferences"][0]["name"],
                "annotations": annotations(&v["metadata"]["annotations"]),
                "replicas": v["spec"]["replicas"],
                "template": template(&v["spec"]["template"]),
            })
        })
        .collect();
    rss.sort_by_key(|r| {
        r["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    });
    out["replicaSets"] = json!(rss);
    for s in services.list(&ListParams::default()).await.unwrap() {
        let v = serde_json::to_value(&s).unwrap();
        out["services"][s.metadata.name.unwrap()] = json!({
            "labels": v["metadata"]["labels"],
            "type": v["spec"]["type"],
            "ports": v["spec"]["ports"],
            "selector": v["spec"]["selector"],
        });
    }
    out
}

/// Until every Deployment of `ns` has rolled out what it was last asked.
async fn settled(client: &kube::Client, ns: &str) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("the Deployments of {ns} to roll out"),
        Duration::from_secs(60),
        async || {
            let all = deployments.list(&ListParams::default()).await.ok()?;
            all.iter()
                .all(|d| {
                    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    let s = d.status.clone().unwrap_or_default();
                    d.metadata.generation <= s.observed_generation
                        && s.updated_replicas.unwrap_or(0) == want
                        && s.replicas.unwrap_or(0) == want
                        && s.available_replicas.unwrap_or(0) == want
                })
                .then_some(())
        },
    )
    .await
}

/// The same kubectl lines, typed once into kubectl and once into kubegate's chat door, leave
/// identical Deployments, ReplicaSets (revisions, templates, images, replica counts), Services
/// and labels on a real control plane, but for the annotations kubegate adds on purpose.
#[tokio::test]
async fn kubectl_and_kubegate_leave_identical_objects_on_a_real_control_plane() {
    let test = "kubectl_and_kubegate_leave_identical_objects_on_a_real_control_plane";
    let Some(plane) = or_skip(test) else { return };
    if !kubectl_installed() {
        eprintln!("SKIPPED {test}: kubectl is not installed");
        return;
    }
    let app = kubegate(plane).await;
    let client = plane.client().await;
    let by_kubectl = plane.namespace("kubectl").await;
    let by_kubegate = plane.namespace("kubegate").await;
    let steps = [
        "create deployment web --image=nginx:1.27 --replicas=2",
        "expose deployment web --port=80 --target-port=8080",
        "set image deployment/web nginx=nginx:1.28",
        "scale deployment/web --replicas=3",
        "set image deployment/web nginx=nginx:1.29",
        "rollout undo deployment/web",
        "rollout undo deployment/web --to-revision=1",
        "label deployment web tier=frontend",
        "rollout restart deployment/web",
        "delete service web",
    ];
    for step in steps {
        kubectl(plane, &by_kubectl, step).await;
        let (status, body) = app
            .post(
                "/v1/clusters/real/commands",
                json!({"command": step, "namespace": by_kubegate}),
            )
            .await;
        assert!(status < 300, "kubegate {step}: {status} {body}");
        settled(&client, &by_kubectl).await;
        settled(&client, &by_kubegate).await;
        let (a, b) = (
            state(&client, &by_kubectl).await,
            state(&client, &by_kubegate).await,
        );
        assert_eq!(
            a,
            b,
            "after `{step}`: kubectl's objects (left) and kubegate's (right) differ:\n{}\n{}",
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&b).unwrap()
        );
    }
    // And kubegate said what it did: its change cause is on every revision it made.
    let history = kubectl(plane, &by_kubegate, "rollout history deployment/web").await;
    assert!(history.contains("kubegate"), "{history}");
}
