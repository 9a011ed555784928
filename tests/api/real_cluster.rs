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

/// The same kubectl lines, typed into kubectl, into kubegate's chat door, and made as the REST
/// calls of the same meaning, leave identical Deployments, ReplicaSets (revisions, templates,
/// images, replica counts), Services and labels on a real control plane, but for the
/// annotations kubegate adds on purpose.
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
    let by_chat = plane.namespace("chat").await;
    let by_rest = plane.namespace("rest").await;
    let web = |rest: &str| format!("/v1/clusters/real/namespaces/{by_rest}/deployments/web{rest}");
    let (c, img) = (plane.container(), |tag: u8| plane.image(tag));
    let container = |image: &str| json!({"containers": [{"name": c, "image": image}]});
    let lines = [
        format!("create deployment web --image={} --replicas=2", img(1)),
        "expose deployment web --port=80 --target-port=8080".to_owned(),
        format!("set image deployment/web {c}={}", img(2)),
        "scale deployment/web --replicas=3".to_owned(),
        format!("set image deployment/web {c}={}", img(3)),
        "rollout undo deployment/web".to_owned(),
        "rollout undo deployment/web --to-revision=1".to_owned(),
        "label deployment web tier=frontend".to_owned(),
        "rollout restart deployment/web".to_owned(),
        "delete service web".to_owned(),
    ];
    let services = format!("/v1/clusters/real/namespaces/{by_rest}/services/web");
    let calls: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (
            reqwest::Method::PUT,
            web(""),
            Some(json!({"containers": container(&img(1))["containers"], "replicas": 2})),
        ),
        (
            reqwest::Method::POST,
            web("/expose"),
            Some(json!({"port": 80, "targetPort": 8080})),
        ),
        (
            reqwest::Method::PUT,
            web("/image"),
            Some(json!({"container": c, "image": img(2)})),
        ),
        (
            reqwest::Method::PUT,
            web("/replicas"),
            Some(json!({"replicas": 3})),
        ),
        (
            reqwest::Method::PUT,
            web("/image"),
            Some(json!({"container": c, "image": img(3)})),
        ),
        (reqwest::Method::POST, web("/rollback"), None),
        (
            reqwest::Method::POST,
            web("/rollback"),
            Some(json!({"toRevision": 1})),
        ),
        (
            reqwest::Method::PUT,
            web("/labels"),
            Some(json!({"set": {"tier": "frontend"}})),
        ),
        (reqwest::Method::POST, web("/restart"), None),
        (reqwest::Method::DELETE, services, None),
    ];
    for (step, (method, path, body)) in lines.iter().map(String::as_str).zip(calls) {
        kubectl(plane, &by_kubectl, step).await;
        let (status, answer) = app
            .post(
                "/v1/clusters/real/commands",
                json!({"command": step, "namespace": by_chat}),
            )
            .await;
        assert!(status < 300, "chat {step}: {status} {answer}");
        let res = app.send(method, &path, body).await;
        let status = res.status().as_u16();
        assert!(
            status < 300,
            "REST for {step}: {status} {}",
            res.text().await.unwrap()
        );
        for ns in [&by_kubectl, &by_chat, &by_rest] {
            settled(&client, ns).await;
        }
        let expected = state(&client, &by_kubectl).await;
        for (door, ns) in [("the chat door", &by_chat), ("REST", &by_rest)] {
            let got = state(&client, ns).await;
            assert_eq!(
                expected,
                got,
                "after `{step}`: kubectl's objects (left) and those of {door} (right) differ:\n{}\n{}",
                serde_json::to_string_pretty(&expected).unwrap(),
                serde_json::to_string_pretty(&got).unwrap()
            );
        }
    }
    // And kubegate said what it did: its change cause is on every revision it made.
    let history = kubectl(plane, &by_chat, "rollout history deployment/web").await;
    assert!(history.contains("kubegate"), "{history}");
}

/// A change that waits answers with the rollout's verdict and the Deployment as the verdict
/// found it (every replica updated and ready), on the real controllers.
#[tokio::test]
async fn a_waited_change_answers_the_deployment_at_its_verdict() {
    let Some(plane) = or_skip("a_waited_change_answers_the_deployment_at_its_verdict") else {
        return;
    };
    let app = kubegate(plane).await;
    let ns = plane.namespace("wait").await;
    let web = format!("/v1/clusters/real/namespaces/{ns}/deployments/web");
    let (status, body) = app
        .put(
            &format!("{web}?wait=true&timeoutSeconds=60"),
            json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 3}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rollout"]["verdict"], "succeeded", "{body}");
    assert_eq!(body["rollout"]["done"], true);
    let replicas = &body["deployment"]["replicas"];
    assert_eq!(
        (
            &replicas["updated"],
            &replicas["ready"],
            &replicas["available"]
        ),
        (&json!(3), &json!(3), &json!(3)),
        "{body}"
    );
    let (status, body) = app
        .put(
            &format!("{web}/image?wait=true&timeoutSeconds=60"),
            json!({"image": plane.image(2)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rollout"]["verdict"], "succeeded", "{body}");
    assert_eq!(body["deployment"]["revision"], 2, "{body}");
    assert_eq!(body["deployment"]["replicas"]["updated"], 3, "{body}");
}

/// The manifests under deploy/ are accepted by a real API server (server-side dry run), and the
/// ClusterRole they grant is enough: kubegate, running on the ServiceAccount's own token (not
/// admin), does every operation and the API server's RBAC refuses none.
#[tokio::test]
async fn the_manifests_apply_and_the_cluster_role_is_enough_for_every_operation() {
    let test = "the_manifests_apply_and_the_cluster_role_is_enough_for_every_operation";
    let Some(plane) = or_skip(test) else { return };
    if !kubectl_installed() {
        eprintln!("SKIPPED {test}: kubectl is not installed");
        return;
    }
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
    kubectl(plane, "default", "create namespace kubegate").await;
    let applied = kubectl(
        plane,
        "kubegate",
        &format!("apply -k {manifests} --dry-run=server"),
    )
    .await;
    for kind in [
        "deployment.apps/kubegate",
        "clusterrole.rbac.authorization.k8s.io/kubegate",
        "service/kubegate",
    ] {
        assert!(applied.contains(kind), "{applied}");
    }
    let files = [
        "serviceaccount.yaml",
        "clusterrole.yaml",
        "clusterrolebinding.yaml",
        "clusterrole-apply.yaml",
        "clusterrolebinding-apply.yaml",
    ]
    .map(|f| format!("-f {manifests}/{f}"))
    .join(" ");
    kubectl(plane, "kubegate", &format!("apply {files}")).await;
    let token = kubectl(plane, "kubegate", "create token kubegate --duration=1h").await;
    let admin = plane.kubeconfig();
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap();
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority: "))
        .unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\ncontexts:\n- name: real\n  context:\n    cluster: real\n    user: kubegate\ncurrent-context: real\nusers:\n- name: kubegate\n  user:\n    token: {}\n",
        token.trim()
    );
    let app = spawn_app_with(Options {
        kubeconfig: Some(kubeconfig),
        cluster_timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .await;
    let ns = plane.namespace("rbac").await;
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    let web = format!("{base}/deployments/web");
    let calls: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (
            reqwest::Method::GET,
            "/v1/clusters/real/namespaces".into(),
            None,
        ),
        (reqwest::Method::GET, "/v1/clusters/real/nodes".into(), None),
        (
            reqwest::Method::PUT,
            format!("{web}?wait=true&timeoutSeconds=60"),
            Some(json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 2})),
        ),
        (
            reqwest::Method::POST,
            format!("{web}/expose"),
            Some(json!({"port": 80})),
        ),
        (reqwest::Method::GET, format!("{base}/services/web"), None),
        (
            reqwest::Method::PUT,
            format!("{web}/replicas"),
            Some(json!({"replicas": 3})),
        ),
        (
            reqwest::Method::PUT,
            format!("{web}/image?wait=true&timeoutSeconds=60"),
            Some(json!({"image": plane.image(2)})),
        ),
        (reqwest::Method::GET, format!("{web}/rollout"), None),
        (reqwest::Method::GET, format!("{web}/revisions"), None),
        (reqwest::Method::POST, format!("{web}/rollback"), None),
        (reqwest::Method::POST, format!("{web}/restart"), None),
        (
            reqwest::Method::PUT,
            format!("{web}/labels"),
            Some(json!({"set": {"tier": "web"}})),
        ),
        (
            reqwest::Method::PUT,
            format!("{base}/services/web/labels"),
            Some(json!({"set": {"tier": "web"}})),
        ),
        (
            reqwest::Method::GET,
            format!("{base}/pods?labelSelector=app%3Dweb"),
            None,
        ),
        (reqwest::Method::GET, format!("{base}/replicasets"), None),
        (reqwest::Method::GET, format!("{base}/events"), None),
        (reqwest::Method::GET, format!("{web}/events"), None),
        (
            reqwest::Method::PUT,
            format!("{base}/services/db"),
            Some(json!({"type": "ExternalName", "externalName": "db.example.com"})),
        ),
        (reqwest::Method::DELETE, format!("{base}/services/db"), None),
        (
            reqwest::Method::POST,
            format!("{base}/apply?wait=true&timeoutSeconds=60"),
            Some(json!([
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"k": "v"}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {
                    "selector": {"matchLabels": {"app": "api"}},
                    "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": plane.image(1)}]}},
                }},
            ])),
        ),
        (
            reqwest::Method::DELETE,
            format!("{base}/pods?labelSelector=app%3Dweb&maxAffected=10"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("{base}/services?labelSelector=app%3Dweb"),
            None,
        ),
        (reqwest::Method::DELETE, web.clone(), None),
    ];
    for (method, path, body) in calls {
        let res = app.send(method.clone(), &path, body).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert!(status < 300, "{method} {path}: {status} {text}");
        // Once the pods run the new image: exec, a WebSocket GET that needs `create` too.
        if path.contains("/image?wait=true") && plane.real_node {
            let (_, pods) = app
                .get_json(&format!("{base}/pods?labelSelector=app%3Dweb"))
                .await;
            let pod = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["status"] == "Running")
                .and_then(|p| p["name"].as_str())
                .expect("a running pod")
                .to_owned();
            let (status, body) = app
                .post(
                    &format!("{base}/pods/{pod}/exec"),
                    json!({"command": ["echo", "allowed"]}),
                )
                .await;
            assert_eq!(
                (status, &body["stdout"]),
                (200, &json!("allowed\n")),
                "{body}"
            );
        }
    }
    // A pod's labels and logs: RBAC allows them (the logs need a kubelet, which the simulated
    // node has not, so the API server answers that, not a refusal).
    let (_, pods) = app.get_json(&format!("{base}/pods")).await;
    if let Some(pod) = pods["items"][0]["name"].as_str() {
        let res = app
            .send(
                reqwest::Method::PUT,
                &format!("{base}/pods/{pod}/labels"),
                Some(json!({"set": {"seen": "yes"}})),
            )
            .await;
        assert!(res.status().as_u16() < 300 || res.status().as_u16() == 404);
        let res = app.get(&format!("{base}/pods/{pod}/logs")).await;
        let text = res.text().await.unwrap();
        assert!(!text.contains("cluster-credentials-rejected"), "{text}");
    }
}

/// On the real node: the logs are the container's own (and follow it), and an image that cannot
/// be pulled fails a waited rollout with the kubelet's reason. Skipped on the simulated node.
#[tokio::test]
async fn on_the_real_node_logs_are_the_containers_and_a_missing_image_fails_the_wait() {
    let test = "on_the_real_node_logs_are_the_containers_and_a_missing_image_fails_the_wait";
    let Some(plane) = or_skip(test) else { return };
    if !plane.real_node {
        eprintln!("SKIPPED {test}: the control plane's node is simulated");
        return;
    }
    let app = kubegate(plane).await;
    let ns = plane.namespace("node").await;
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    let (status, body) = app
        .put(
            &format!("{base}/deployments/web?wait=true&timeoutSeconds=60"),
            json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rollout"]["verdict"], "succeeded", "{body}");
    let (_, pods) = app.get_json(&format!("{base}/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let logs = app
        .get(&format!("{base}/pods/{pod}/logs"))
        .await
        .text()
        .await
        .unwrap();
    assert!(logs.contains("started"), "{logs}");
    // Followed: the first bytes arrive while the container runs on.
    let mut follow = app
        .get(&format!("{base}/pods/{pod}/logs?follow=true"))
        .await;
    let first = tokio::time::timeout(Duration::from_secs(10), follow.chunk())
        .await
        .expect("the followed log starts at once")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("started"));
    let (_, chat) = app
        .post(
            "/v1/clusters/real/commands",
            json!({"command": format!("logs {pod} -n {ns}")}),
        )
        .await;
    assert!(
        chat["output"].as_str().unwrap().contains("started"),
        "{chat}"
    );

    let (status, body) = app
        .put(
            &format!("{base}/deployments/web/image?wait=true&timeoutSeconds=60"),
            json!({"image": "kubegate.test/missing:1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rollout = &body["rollout"];
    assert_eq!(rollout["verdict"], "failed", "{body}");
    let reason = rollout["reason"].as_str().unwrap_or_default();
    assert!(
        ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"].contains(&reason),
        "{body}"
    );
}

/// On the real node: a container that exits is restarted by the kubelet, kubegate shows the
/// restarts, and the previous instance's log is there (`kubectl logs --previous`).
#[tokio::test]
async fn on_the_real_node_a_container_that_exits_restarts_and_its_previous_log_is_kept() {
    let test = "on_the_real_node_a_container_that_exits_restarts_and_its_previous_log_is_kept";
    let Some(plane) = or_skip(test) else { return };
    if !plane.real_node {
        eprintln!("SKIPPED {test}: the control plane's node is simulated");
        return;
    }
    let app = kubegate(plane).await;
    let ns = plane.namespace("crash").await;
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    let (status, body) = app
        .put(
            &format!("{base}/deployments/crash"),
            json!({"containers": [{"name": "crash", "image": plane.image(1),
                                   "command": ["sh", "-c", "echo boom; exit 1"]}],
                   "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let pod = eventually("a restart", Duration::from_secs(90), async || {
        let (_, pods) = app.get_json(&format!("{base}/pods")).await;
        let pod = &pods["items"][0];
        (pod["restarts"].as_i64().unwrap_or(0) >= 1)
            .then(|| pod["name"].as_str().unwrap().to_owned())
    })
    .await;
    let previous = app
        .get(&format!("{base}/pods/{pod}/logs?previous=true"))
        .await
        .text()
        .await
        .unwrap();
    assert!(previous.contains("boom"), "{previous}");

    // describe: how the previous instance ended, who owns the pod, and the kubelet's back-off.
    let (status, d) = app.get_json(&format!("{base}/pods/{pod}/describe")).await;
    assert_eq!(status, 200, "{d}");
    let last = &d["pod"]["containers"][0]["lastTermination"];
    assert_eq!(last["exitCode"], 1, "{d}");
    assert_eq!(last["reason"], "Error", "{d}");
    assert_eq!(d["owners"][0]["kind"], "ReplicaSet", "{d}");
    assert_eq!(
        d["owners"][1],
        json!({"kind": "Deployment", "name": "crash"}),
        "{d}"
    );
    let kubelet: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"].as_str().unwrap_or("").starts_with("kubelet"))
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(kubelet.contains(&"Started"), "{d}");
}

/// On the real node: exec runs in the container itself, one-shot (output, exit code, stdin) and
/// interactive (a terminal over the channel protocol), as `kubectl exec` sees it; the recording
/// replays what the client saw.
#[tokio::test]
async fn on_the_real_node_exec_runs_in_the_container_as_kubectl_exec_does() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    use crate::exec::{events_of, frame, open_ws, recording};
    let test = "on_the_real_node_exec_runs_in_the_container_as_kubectl_exec_does";
    let Some(plane) = or_skip(test) else { return };
    if !plane.real_node {
        eprintln!("SKIPPED {test}: the control plane's node is simulated");
        return;
    }
    let app = kubegate(plane).await;
    let ns = plane.namespace("exec").await;
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    let (status, body) = app
        .put(
            &format!("{base}/deployments/web?wait=true&timeoutSeconds=60"),
            json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, pods) = app.get_json(&format!("{base}/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let exec = format!("{base}/pods/{pod}/exec");

    let (status, body) = app
        .post(
            &exec,
            json!({"command": ["sh", "-c", "cat /etc/hostname; echo err >&2; exit 3"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["stdout"],
        format!("{pod}\n"),
        "the pod's own container"
    );
    assert_eq!(body["stderr"], "err\n");
    assert_eq!(body["exitCode"], 3);
    if kubectl_installed() {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&plane.admin_kubeconfig)
            .args(["-n", &ns, "exec", &pod, "--", "sh", "-c"])
            .arg("cat /etc/hostname; echo err >&2; exit 3")
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{pod}\n"));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("err\n"));
        assert_eq!(
            out.status.code(),
            Some(3),
            "kubectl says the same exit code"
        );
    }

    // Standard input, closed after it (the v5 protocol's close signal), reaches the command.
    let (status, body) = app
        .post(
            &exec,
            json!({"command": ["cat"], "stdin": "hello\nworld\n"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "hello\nworld\n");
    assert_eq!(body["exitCode"], 0);

    // A program the image does not have.
    let (status, body) = app.post(&exec, json!({"command": ["nosuch"]})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:exec-failed", "{body}");

    // A terminal: the resize reaches it, the shell's own prompt and echo come back.
    let mut ws = open_ws(
        &app,
        &format!("{exec}?command=sh&stdin=true&stdout=true&tty=true"),
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(frame(4, br#"{"Width":100,"Height":40}"#))
        .await
        .unwrap();
    ws.send(frame(0, b"stty size\r")).await.unwrap();
    // The kubelet applies a resize beside the input, not in order with it (as for kubectl): a
    // `stty size` that ran first answers no size or the old one, and is asked again.
    let mut seen = Vec::new();
    let mut status = None;
    let mut asked_to_exit = false;
    let mut sizes_answered = 0;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(60), ws.next())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the session answers; it printed {:?}",
                String::from_utf8_lossy(&seen)
            )
        })
    {
        match message.unwrap() {
            Message::Binary(data) => match data.split_first() {
                Some((1, out)) => {
                    seen.extend_from_slice(out);
                    let text = String::from_utf8_lossy(&seen);
                    if !asked_to_exit && text.contains("40 100") {
                        asked_to_exit = true;
                        ws.send(frame(0, b"exit 0\r")).await.unwrap();
                    } else if !asked_to_exit {
                        let answers = text.lines().filter(|line| answers_stty(line)).count();
                        if answers > sizes_answered {
                            assert!(answers < 50, "the resize never arrives: {text:?}");
                            sizes_answered = answers;
                            ws.send(frame(0, b"stty size\r")).await.unwrap();
                        }
                    }
                }
                Some((3, s)) => status = Some(serde_json::from_slice::<Value>(s).unwrap()),
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(status.expect("a status")["status"], "Success");
    let (_, page) = app.get_json("/v1/audit?action=exec").await;
    let id = page["items"][0]["auditId"].as_str().unwrap().to_owned();
    eventually(
        "the session's outcome",
        Duration::from_secs(10),
        async || {
            let (_, entries) = app.get_json(&format!("/v1/audit/{id}")).await;
            (entries["items"].as_array()?.len() == 2).then_some(())
        },
    )
    .await;
    let (header, events) = recording(&app, &id).await;
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(100), Some(40))
    );
    assert_eq!(
        events_of(&events, "o").as_bytes(),
        seen.as_slice(),
        "the replay is what the client saw"
    );
}

/// On the real node: `kubegate port-forward` reaches the container's own HTTP server through the
/// kubelet, and a 10 MiB file made in the container (by exec) arrives intact.
#[tokio::test]
async fn on_the_real_node_port_forward_reaches_the_containers_server() {
    use sha2::Digest;

    use crate::portforward::{http_get, port_forward};
    let test = "on_the_real_node_port_forward_reaches_the_containers_server";
    let Some(plane) = or_skip(test) else { return };
    if !plane.real_node {
        eprintln!("SKIPPED {test}: the control plane's node is simulated");
        return;
    }
    let app = kubegate(plane).await;
    let ns = plane.namespace("forward").await;
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    let (status, body) = app
        .put(
            &format!("{base}/deployments/web?wait=true&timeoutSeconds=60"),
            json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, pods) = app.get_json(&format!("{base}/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let (status, made) = app
        .post(
            &format!("{base}/pods/{pod}/exec"),
            json!({"command": ["sh", "-c", "busybox dd if=/dev/urandom of=/big bs=1048576 count=10 2>/dev/null && busybox sha256sum /big"]}),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["exitCode"], 0, "{made}");
    let digest = made["stdout"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let forwarder = port_forward(&app, &app.token, "real", &ns, &pod, &[":8080"]).await;
    let answer = http_get(forwarder.local[0], "/etc/hostname").await;
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
        "{answer}"
    );
    assert!(answer.ends_with(&format!("\r\n\r\n{pod}\n")), "{answer}");

    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", forwarder.local[0]))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /big HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut answer))
        .await
        .expect("the file arrives")
        .unwrap();
    let at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let file = &answer[at..];
    assert_eq!(file.len(), 10 * 1024 * 1024);
    let got: String = sha2::Sha256::digest(file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, digest, "the file arrived intact");
}

/// On the real node: HTTP through kubegate and the API server's proxy reaches the container's
/// own server, by pod and by service.
#[tokio::test]
async fn on_the_real_node_the_proxy_reaches_the_pod_and_its_service() {
    let test = "on_the_real_node_the_proxy_reaches_the_pod_and_its_service";
    let Some(plane) = or_skip(test) else { return };
    if !plane.real_node {
        eprintln!("SKIPPED {test}: the control plane's node is simulated");
        return;
    }
    let app = kubegate(plane).await;
    let ns = plane.namespace("proxy").await;
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    let (status, body) = app
        .put(
            &format!("{base}/deployments/web?wait=true&timeoutSeconds=60"),
            json!({"containers": [{"name": "web", "image": plane.image(1), "ports": [{"containerPort": 8080}]}], "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, pods) = app.get_json(&format!("{base}/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let res = app
        .get(&format!("{base}/pods/{pod}:8080/proxy/etc/hostname"))
        .await;
    let code = res.status();
    assert_eq!(code, 200, "{}", res.text().await.unwrap());
    assert_eq!(res.text().await.unwrap(), format!("{pod}\n"));

    let (status, body) = app
        .post(
            &format!("{base}/deployments/web/expose"),
            json!({"port": 80, "targetPort": 8080}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The service's endpoints come from the endpoint controller: until then the API server
    // answers 503.
    let text = eventually(
        "the service's endpoint",
        Duration::from_secs(30),
        async || {
            let res = app
                .get(&format!("{base}/services/web:80/proxy/etc/hostname"))
                .await;
            if res.status() != 200 {
                return None;
            }
            res.text().await.ok()
        },
    )
    .await;
    assert_eq!(text, format!("{pod}\n"));
}

#[tokio::test]
async fn events_are_those_kubectl_get_events_shows() {
    use std::collections::BTreeSet;
    let test = "events_are_those_kubectl_get_events_shows";
    let Some(plane) = or_skip(test) else { return };
    let app = kubegate(plane).await;
    let ns = plane.namespace("events").await;
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    let (status, body) = app
        .put(
            &format!("{base}/deployments/web"),
            json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The controllers and the scheduler record theirs as they act.
    let pod = eventually(
        "the pod scheduled and its events recorded",
        Duration::from_secs(60),
        async || {
            let (_, pods) = app.get_json(&format!("{base}/pods")).await;
            let pod = pods["items"][0]["name"].as_str()?.to_owned();
            let (_, events) = app.get_json(&format!("{base}/pods/{pod}/events")).await;
            let scheduled = events["items"].as_array()?.iter().any(|e| {
                e["reason"] == "Scheduled"
                    && e["source"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("default-scheduler"))
            });
            scheduled.then_some(pod)
        },
    )
    .await;
    let (status, d) = app
        .get_json(&format!("{base}/deployments/web/events"))
        .await;
    assert_eq!(status, 200, "{d}");
    assert!(
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "ScalingReplicaSet"
                && e["source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("deployment-controller"))
                && e["message"].as_str().unwrap().ends_with("from 0 to 1")),
        "{d}"
    );

    // What kubegate lists, kubectl lists too (it may have more by then, never other).
    let (status, ours) = app.get_json(&format!("{base}/events")).await;
    assert_eq!(status, 200, "{ours}");
    let key = |kind: &Value, name: &Value, reason: &Value, message: &Value| {
        format!(
            "{}/{} {} {}",
            kind.as_str().unwrap_or(""),
            name.as_str().unwrap_or(""),
            reason.as_str().unwrap_or(""),
            message.as_str().unwrap_or("").trim()
        )
    };
    let ours: BTreeSet<String> = ours["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            key(
                &e["object"]["kind"],
                &e["object"]["name"],
                &e["reason"],
                &e["message"],
            )
        })
        .collect();
    assert!(
        ours.iter()
            .any(|k| k.starts_with(&format!("Pod/{pod} Scheduled"))),
        "{ours:?}"
    );
    if kubectl_installed() {
        let theirs: Value =
            serde_json::from_str(&kubectl(plane, &ns, "get events -o json").await).unwrap();
        let theirs: BTreeSet<String> = theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                key(
                    &e["involvedObject"]["kind"],
                    &e["involvedObject"]["name"],
                    &e["reason"],
                    &e["message"],
                )
            })
            .collect();
        let missing: Vec<&String> = ours.difference(&theirs).collect();
        assert!(missing.is_empty(), "kubegate's, not kubectl's: {missing:?}");
    }
}

#[tokio::test]
async fn a_rollout_whose_pods_a_quota_refuses_fails_at_once_with_the_api_servers_words() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let test = "a_rollout_whose_pods_a_quota_refuses_fails_at_once_with_the_api_servers_words";
    let Some(plane) = or_skip(test) else { return };
    let app = kubegate(plane).await;
    let ns = plane.namespace("quota").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(plane.client().await, &ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }))
    .unwrap();
    quotas.create(&Default::default(), &quota).await.unwrap();
    let base = format!("/v1/clusters/real/namespaces/{ns}");
    // Without the answer, the wait would last until the progress deadline (10 minutes).
    let (status, body) = app
        .put(
            &format!("{base}/deployments/web?wait=true&timeoutSeconds=120"),
            json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let rollout = &body["rollout"];
    assert_eq!(rollout["verdict"], "failed", "{body}");
    assert_eq!(rollout["reason"], "FailedCreate", "{body}");
    let issue = &rollout["issues"][0];
    assert!(
        issue["message"]
            .as_str()
            .unwrap()
            .contains("exceeded quota: no-pods"),
        "{body}"
    );
    // The same words in the ReplicaSet's warning event.
    let rs = issue["pod"].as_str().unwrap();
    let (_, events) = app
        .get_json(&format!("{base}/replicasets/{rs}/events?type=Warning"))
        .await;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "FailedCreate"
                && e["message"]
                    .as_str()
                    .unwrap()
                    .contains("exceeded quota: no-pods")),
        "{events}"
    );
}

#[tokio::test]
async fn get_all_names_what_kubectl_get_all_names() {
    use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use std::collections::BTreeSet;
    let test = "get_all_names_what_kubectl_get_all_names";
    let Some(plane) = or_skip(test) else { return };
    let app = kubegate(plane).await;
    let ns = plane.namespace("all").await;
    let client = plane.client().await;
    let image = plane.image(1);
    let pod =
        json!({"spec": {"containers": [{"name": "c", "image": image}], "restartPolicy": "Never"}});
    let labels = json!({"matchLabels": {"app": "x"}});
    // A controller's pods restart; a Job's do not.
    let template = |pod: &Value| {
        let mut t = pod.clone();
        t["metadata"] = json!({"labels": {"app": "x"}});
        t["spec"]["restartPolicy"] = json!("Always");
        t
    };
    // Objects that run nothing (suspended, zero replicas, no node to match), so the list is
    // the same for both readers.
    let typed = |api_version: &str, kind: &str, body: Value| {
        let mut obj = body;
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        obj
    };
    let sts: StatefulSet = serde_json::from_value(
        typed("apps/v1", "StatefulSet", json!({"metadata": {"name": "db"}, "spec": {"replicas": 0, "serviceName": "db", "selector": labels, "template": template(&pod)}})),
    )
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &sts)
        .await
        .unwrap();
    let mut ds_pod = template(&pod);
    ds_pod["spec"]["nodeSelector"] = json!({"kubegate.test/none": "true"});
    let ds: DaemonSet = serde_json::from_value(typed(
        "apps/v1",
        "DaemonSet",
        json!({"metadata": {"name": "agent"}, "spec": {"selector": labels, "template": ds_pod}}),
    ))
    .unwrap();
    Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &ds)
        .await
        .unwrap();
    let job: Job = serde_json::from_value(typed(
        "batch/v1",
        "Job",
        json!({"metadata": {"name": "migrate"}, "spec": {"suspend": true, "template": pod}}),
    ))
    .unwrap();
    Api::<Job>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &job)
        .await
        .unwrap();
    let cj: CronJob = serde_json::from_value(
        typed("batch/v1", "CronJob", json!({"metadata": {"name": "backup"}, "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": pod}}}})),
    )
    .unwrap();
    Api::<CronJob>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &cj)
        .await
        .unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(
        typed("autoscaling/v2", "HorizontalPodAutoscaler", json!({"metadata": {"name": "db"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}, "minReplicas": 1, "maxReplicas": 3}})),
    )
    .unwrap();
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &hpa)
        .await
        .unwrap();

    let (status, all) = app
        .get_json(&format!("/v1/clusters/real/namespaces/{ns}/all"))
        .await;
    assert_eq!(status, 200, "{all}");
    let mut ours = BTreeSet::new();
    for (field, prefix) in [
        ("statefulSets", "statefulset.apps"),
        ("daemonSets", "daemonset.apps"),
        ("jobs", "job.batch"),
        ("cronJobs", "cronjob.batch"),
        (
            "horizontalPodAutoscalers",
            "horizontalpodautoscaler.autoscaling",
        ),
    ] {
        for item in all[field].as_array().unwrap() {
            ours.insert(format!("{prefix}/{}", item["name"].as_str().unwrap()));
        }
    }
    for (field, prefix) in [
        ("pods", "pod"),
        ("services", "service"),
        ("deployments", "deployment.apps"),
        ("replicaSets", "replicaset.apps"),
    ] {
        for item in all[field]["items"].as_array().unwrap() {
            ours.insert(format!("{prefix}/{}", item["name"].as_str().unwrap()));
        }
    }
    assert_eq!(ours.len(), 5, "{ours:?}");
    assert_eq!(all["jobs"][0]["status"], "Suspended", "{all}");
    assert_eq!(all["cronJobs"][0]["suspend"], true, "{all}");
    assert_eq!(all["statefulSets"][0]["desired"], 0, "{all}");
    if kubectl_installed() {
        let theirs: BTreeSet<String> = kubectl(plane, &ns, "get all -o name")
            .await
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(ours, theirs);
    }
}

/// POST a manifest (YAML) to kubegate: (status, body).
async fn apply_yaml(app: &TestApp, path: &str, yaml: &str) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(&app.token)
        .header("content-type", "application/yaml")
        .body(yaml.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn a_manifest_with_a_crd_and_its_object_applies_as_kubectl_apply_server_side_does() {
    let test = "a_manifest_with_a_crd_and_its_object_applies_as_kubectl_apply_server_side_does";
    let Some(plane) = or_skip(test) else { return };
    let app = kubegate(plane).await;
    let ns = format!("apply-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let image = plane.image(1);
    // The CRD's object comes first in the file: kubegate orders namespaces, CRDs, config, then
    // the rest, and waits for the CRD to be served before its object.
    let manifest = format!(
        r#"apiVersion: kubegate.test/v1
kind: Widget
metadata: {{name: gear, namespace: {ns}}}
spec: {{size: 3}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
stringData: {{token: hunter2-never-shown}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: fast}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.kubegate.test}}
spec:
  group: kubegate.test
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
"#
    );
    let (status, body) = apply_yaml(
        &app,
        "/v1/clusters/real/apply?wait=true&timeoutSeconds=120",
        &manifest,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["counts"]["created"], 7, "{body}");
    assert_eq!(body["objects"][1]["rollout"]["done"], true, "{body}");
    assert!(!body.to_string().contains("hunter2"));

    // kubectl sees what kubegate said, applied by kubegate's field manager.
    if kubectl_installed() {
        let names = kubectl(
            plane,
            &ns,
            "get widgets.kubegate.test,deployments,services,secrets,configmaps -o name",
        )
        .await;
        for name in [
            "widget.kubegate.test/gear",
            "deployment.apps/web",
            "service/web",
            "secret/creds",
            "configmap/settings",
        ] {
            assert!(names.lines().any(|l| l == name), "{name} in {names}");
        }
        let size = kubectl(plane, &ns, "get widget gear -o jsonpath={.spec.size}").await;
        assert_eq!(size, "3");
        let managers = kubectl(
            plane,
            &ns,
            "get deployment web -o jsonpath={.metadata.managedFields[*].manager}",
        )
        .await;
        assert!(managers.split(' ').any(|m| m == "kubegate"), "{managers}");
    }

    // Again: unchanged, the API server's own verdict (no new resourceVersion).
    let (status, body) = apply_yaml(&app, "/v1/clusters/real/apply", &manifest).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["counts"]["unchanged"], 7, "{body}");

    // A diff of a new image: a dry run, the API server's would-be object against the live one.
    let changed = manifest.replace(
        &format!("image: {image}"),
        &format!("image: {}", plane.image(2)),
    );
    let (status, body) = apply_yaml(&app, "/v1/clusters/real/apply?diff=true", &changed).await;
    assert_eq!(status, 200, "{body}");
    let deployment = body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deployment["result"], "configured", "{body}");
    let diff = deployment["diff"].as_str().unwrap();
    assert!(diff.contains(&format!("-      - image: {image}")), "{diff}");
    assert!(
        diff.contains(&format!("+      - image: {}", plane.image(2))),
        "{diff}"
    );
    assert!(!diff.contains("managedFields"), "{diff}");
    let client = plane.client().await;
    let live: Deployment = Api::namespaced(client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(live.metadata.generation, Some(1), "a diff changes nothing");

    // Replicas another manager took (kubectl scale): a conflict naming them, unless forced.
    if kubectl_installed() {
        kubectl(plane, &ns, "scale deployment web --replicas=2").await;
        let more = manifest.replace("replicas: 1", "replicas: 3");
        let (status, body) = apply_yaml(&app, "/v1/clusters/real/apply", &more).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["type"], "urn:kubegate:problem:conflict", "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains(".spec.replicas"),
            "{body}"
        );
        let (status, body) = apply_yaml(&app, "/v1/clusters/real/apply?force=true", &more).await;
        assert_eq!(status, 200, "{body}");
        let live: Deployment = Api::namespaced(client.clone(), &ns)
            .get("web")
            .await
            .unwrap();
        assert_eq!(live.spec.unwrap().replicas, Some(3));
    }
}

/// Run the system's kubectl with this kubeconfig: (success, stdout, stderr).
async fn kubectl_with(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    args: &[&str],
) -> (bool, String, String) {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn your_own_kubectl_works_through_kubegate_as_your_role_says() {
    let test = "your_own_kubectl_works_through_kubegate_as_your_role_says";
    let Some(plane) = or_skip(test) else { return };
    if !kubectl_installed() {
        eprintln!("SKIPPED {test}: kubectl is not installed");
        return;
    }
    // kubectl sends credentials only over TLS: kubegate serves HTTPS.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::helpers::self_signed_cert(dir.path());
    let app = spawn_app_with(Options {
        kubeconfig: Some(plane.kubeconfig()),
        cluster_timeout: Duration::from_secs(20),
        config: Box::new(move |c| {
            c.tls_cert = Some(cert);
            c.tls_key = Some(key);
        }),
        ..Default::default()
    })
    .await;
    let ns = plane.namespace("kubectl").await;
    let deployer = crate::helpers::hs_token(&crate::helpers::claims(
        "dana",
        &[&format!("deployer@real/{ns}")],
    ));
    let res = app
        .client
        .get(format!(
            "{}/v1/clusters/real/kubeconfig?embedToken=true&namespace={ns}",
            app.address
        ))
        .bearer_auth(&deployer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let kubeconfig = dir.path().join("kubegate.yaml");
    std::fs::write(&kubeconfig, res.text().await.unwrap()).unwrap();
    let cache = dir.path().join("cache");
    let kc = |args: &'static [&'static str]| {
        let (k, c) = (kubeconfig.clone(), cache.clone());
        async move { kubectl_with(&k, &c, args).await }
    };
    let ok = |r: (bool, String, String), what: &str| {
        assert!(r.0, "kubectl {what}: {}{}", r.1, r.2);
        r.1
    };

    let version = ok(kc(&["version", "-o", "json"]).await, "version");
    assert!(version.contains("\"gitVersion\": \"v1.36"), "{version}");
    let image = plane.image(1);
    let (k, c) = (kubeconfig.clone(), cache.clone());
    ok(
        kubectl_with(
            &k,
            &c,
            &["create", "deployment", "web", &format!("--image={image}")],
        )
        .await,
        "create deployment",
    );
    ok(
        kc(&["rollout", "status", "deployment/web", "--timeout=120s"]).await,
        "rollout status",
    );
    ok(
        kc(&["scale", "deployment/web", "--replicas=2"]).await,
        "scale",
    );
    ok(kc(&["label", "deployment/web", "tier=web"]).await, "label");
    let container = plane.container();
    let image2 = plane.image(2);
    ok(
        kubectl_with(
            &k,
            &c,
            &[
                "set",
                "image",
                "deployment/web",
                &format!("{container}={image2}"),
            ],
        )
        .await,
        "set image",
    );
    ok(
        kc(&["rollout", "status", "deployment/web", "--timeout=120s"]).await,
        "rollout status",
    );
    let history = ok(
        kc(&["rollout", "history", "deployment/web"]).await,
        "rollout history",
    );
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    ok(
        kc(&["rollout", "undo", "deployment/web", "--to-revision=1"]).await,
        "rollout undo",
    );
    let pods = ok(kc(&["get", "pods", "-o", "name"]).await, "get pods");
    assert!(pods.lines().any(|l| l.starts_with("pod/web-")), "{pods}");
    let all = ok(kc(&["get", "all"]).await, "get all");
    assert!(all.contains("deployment.apps/web"), "{all}");

    // Apply, both ways, and diff.
    let manifest = dir.path().join("config.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap().to_owned();
    ok(
        kubectl_with(&k, &c, &["apply", "--server-side", "-f", &m]).await,
        "apply --server-side",
    );
    let client_side = dir.path().join("other.yaml");
    std::fs::write(
        &client_side,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: b\n",
    )
    .unwrap();
    let cs = client_side.to_str().unwrap().to_owned();
    ok(
        kubectl_with(&k, &c, &["apply", "-f", &cs]).await,
        "apply (client-side)",
    );
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: slow\n",
    )
    .unwrap();
    let (found, diff, err) = kubectl_with(&k, &c, &["diff", "--server-side", "-f", &m]).await;
    assert!(
        !found && diff.contains("-  mode: fast") && diff.contains("+  mode: slow"),
        "{diff}{err}"
    );

    // What the role does not allow, refused in kubectl's words.
    let (allowed, _, err) = kc(&["delete", "pods", "-l", "app=web"]).await;
    assert!(
        !allowed
            && err.contains("Error from server (Forbidden)")
            && err.contains("needs the admin role"),
        "{err}"
    );
    let (allowed, _, err) = kc(&["get", "secrets"]).await;
    assert!(!allowed && err.contains("Forbidden"), "{err}");
    let (_, answer, _) = kc(&["auth", "can-i", "delete", "pods"]).await;
    assert!(
        answer.starts_with("no - delete pods (delete) needs the admin role"),
        "{answer}"
    );
    let (_, answer, _) = kc(&["auth", "can-i", "patch", "deployments.apps"]).await;
    assert_eq!(answer.trim(), "yes");
    let whoami = ok(kc(&["auth", "whoami"]).await, "auth whoami");
    assert!(whoami.contains("dana"), "{whoami}");

    // Every change in the audit log as kubectl made it; the chain intact.
    let (_, log) = app.get_json("/v1/audit?subject=dana&limit=200").await;
    let actions: std::collections::BTreeSet<String> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stage"] == "intent")
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["resourceKind"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "kubectl create deployments.apps",
        "kubectl patch deployments.apps/scale",
        "kubectl patch configmaps",
    ] {
        assert!(actions.contains(expected), "{expected} in {actions:?}");
    }
    let (_, verify) = app.get_json("/v1/audit/verify").await;
    assert_eq!(verify["intact"], true, "{verify}");

    // On a real node, an admin's exec is kubegate's recorded session.
    if plane.real_node {
        let res = app
            .client
            .get(format!(
                "{}/v1/clusters/real/kubeconfig?embedToken=true&namespace={ns}",
                app.address
            ))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap();
        let admin = dir.path().join("admin.yaml");
        std::fs::write(&admin, res.text().await.unwrap()).unwrap();
        let (done, out, err) = kubectl_with(
            &admin,
            &c,
            &["exec", "deploy/web", "--", "echo", "through kubegate"],
        )
        .await;
        assert!(done, "kubectl exec: {out}{err}");
        assert_eq!(out, "through kubegate\n");
        let (_, log) = app.get_json("/v1/audit?action=exec&limit=1").await;
        let id = log["items"][0]["auditId"].as_str().unwrap().to_owned();
        let res = app.get(&format!("/v1/audit/{id}/recording")).await;
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("through kubegate"));
        let (done, out, err) = kubectl_with(&admin, &c, &["logs", "deploy/web", "--tail=5"]).await;
        assert!(done, "kubectl logs: {out}{err}");
        // exec -i: what kubectl reads from its stdin reaches the command.
        let mut cat = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&admin)
            .arg("--cache-dir")
            .arg(&c)
            .args(["exec", "-i", "deploy/web", "--", "cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = cat.stdin.take().unwrap();
            stdin.write_all(b"typed through kubegate\n").await.unwrap();
        }
        let out = tokio::time::timeout(Duration::from_secs(30), cat.wait_with_output())
            .await
            .expect("kubectl exec -i ends when its input does")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "typed through kubegate\n"
        );
        // logs -f follows until kubectl is stopped.
        let mut follow = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&admin)
            .arg("--cache-dir")
            .arg(&c)
            .args(["logs", "-f", "deploy/web", "--tail=1"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(follow.stdout.take().unwrap()).lines();
            let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("a line arrives");
            assert!(first.unwrap().is_some());
            assert!(
                follow.try_wait().unwrap().is_none(),
                "logs -f keeps following"
            );
        }
        follow.kill().await.unwrap();

        // kubectl port-forward: its upgrade passed through to the API server, audited.
        use tokio::io::AsyncBufReadExt;
        let mut forward = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&admin)
            .arg("--cache-dir")
            .arg(&c)
            .args(["port-forward", "deploy/web", ":8080"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(forward.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("kubectl port-forward starts")
            .unwrap()
            .unwrap_or_default();
        // "Forwarding from 127.0.0.1:PORT -> 8080"
        let port: u16 = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        let answer = crate::portforward::http_get(port, "/etc/hostname").await;
        assert!(answer.contains(" 200 "), "{answer}");
        forward.kill().await.unwrap();
        // What a deployer may not do, an admin may.
        let (done, out, err) = kubectl_with(&admin, &c, &["delete", "pods", "-l", "app=web"]).await;
        assert!(
            done && out.contains("deleted"),
            "kubectl delete -l: {out}{err}"
        );
        let (_, log) = app.get_json("/v1/audit?subject=root&limit=50").await;
        assert!(
            log["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["resourceKind"] == "pods/portforward"),
            "{log}"
        );
    }
}

/// Whether a line of a terminal's output is what `stty size` answers: rows and columns, or
/// `stty: standard input` where the terminal has no size yet.
fn answers_stty(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    line.starts_with("stty:")
        || (words.len() == 2 && words.iter().all(|w| w.parse::<u16>().is_ok()))
}
