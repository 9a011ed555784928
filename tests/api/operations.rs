//! The everyday operations, one test body run against both backends: the fake API server and,
//! when there is one, the real control plane (`control_plane`). What kubegate answers must not
//! depend on which is behind it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::control_plane::or_skip;
use crate::helpers::{Options, TestApp, spawn_app, spawn_app_with};

/// Deploy, expose (each type), scale, set image, rollout status, history, undo to the previous
/// and to a revision, restart, labels, pods, events, logs (and following them, where a node runs
/// containers: `logs`), the progress stream, chat lines, deletes by name and by selector: the
/// answers a caller relies on.
async fn everyday_operations(
    app: &TestApp,
    cluster: &str,
    ns: &str,
    image: impl Fn(u8) -> String,
    logs: bool,
) {
    let base = format!("/v1/clusters/{cluster}/namespaces/{ns}");
    let web = format!("{base}/deployments/web");
    let wait = "wait=true&timeoutSeconds=60";
    let body = |image: &str, replicas: i32| {
        json!({"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}],
               "replicas": replicas})
    };

    let (s, b) = app.put(&format!("{web}?{wait}"), body(&image(1), 2)).await;
    assert_eq!(s, 201, "deploy: {b}");
    assert_eq!(b["rollout"]["verdict"], "succeeded", "{b}");
    assert_eq!(b["deployment"]["replicas"]["ready"], 2, "{b}");
    assert_eq!(b["deployment"]["revision"], 1);
    let (s, b) = app.put(&format!("{web}?{wait}"), body(&image(1), 2)).await;
    assert_eq!(
        (s, &b["templateChanged"]),
        (200, &json!(false)),
        "the same deploy again: {b}"
    );

    let (s, b) = app
        .post(&format!("{web}/expose"), json!({"port": 80}))
        .await;
    assert_eq!(s, 201, "expose: {b}");
    assert_eq!(b["service"]["type"], "ClusterIP");
    assert!(
        b["service"]["clusterIp"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96.")),
        "{b}"
    );
    let (s, b) = app
        .post(
            &format!("{web}/expose"),
            json!({"port": 80, "type": "NodePort", "name": "web-np"}),
        )
        .await;
    assert_eq!(s, 201, "expose NodePort: {b}");
    let node_port = b["service"]["ports"][0]["nodePort"].as_i64().unwrap_or(0);
    assert!((30000..=32767).contains(&node_port), "{b}");
    let (s, b) = app
        .post(
            &format!("{web}/expose"),
            json!({"port": 80, "type": "LoadBalancer", "name": "web-lb"}),
        )
        .await;
    assert_eq!(
        (s, &b["service"]["type"]),
        (201, &json!("LoadBalancer")),
        "{b}"
    );
    let (s, b) = app
        .put(
            &format!("{base}/services/db"),
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
        )
        .await;
    assert_eq!(
        (s, &b["service"]["type"]),
        (201, &json!("ExternalName")),
        "{b}"
    );

    let (s, b) = app
        .put(&format!("{web}/replicas?{wait}"), json!({"replicas": 3}))
        .await;
    assert_eq!(s, 200, "scale: {b}");
    assert_eq!(
        (&b["replicasBefore"], &b["deployment"]["replicas"]["ready"]),
        (&json!(2), &json!(3)),
        "{b}"
    );

    let (s, b) = app
        .put(
            &format!("{web}/image?{wait}"),
            json!({"image": image(2), "reason": "CVE fix"}),
        )
        .await;
    assert_eq!(s, 200, "set image: {b}");
    assert_eq!(
        (&b["deployment"]["revision"], &b["rollout"]["verdict"]),
        (&json!(2), &json!("succeeded")),
        "{b}"
    );
    let (_, b) = app.get_json(&format!("{web}/rollout")).await;
    assert_eq!(
        b["message"], "deployment \"web\" successfully rolled out",
        "{b}"
    );
    let (_, b) = app.get_json(&format!("{web}/revisions")).await;
    let revisions: Vec<(i64, bool)> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap(),
                r["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(revisions, [(1, false), (2, true)], "{b}");
    assert!(
        b["items"][1]["changeCause"]
            .as_str()
            .unwrap()
            .contains("CVE fix"),
        "{b}"
    );

    // Undo to the previous revision: revision 1 comes back as 3; then to revision 2, as 4.
    let (s, b) = app.post(&format!("{web}/rollback?{wait}"), json!({})).await;
    assert_eq!(s, 200, "undo: {b}");
    assert_eq!(
        (&b["fromRevision"], &b["toRevision"]),
        (&json!(2), &json!(1)),
        "{b}"
    );
    assert_eq!(b["deployment"]["images"][0]["image"], image(1), "{b}");
    let (s, b) = app
        .post(&format!("{web}/rollback?{wait}"), json!({"toRevision": 2}))
        .await;
    assert_eq!(s, 200, "undo to 2: {b}");
    assert_eq!(b["deployment"]["revision"], 4, "{b}");
    let (s, b) = app
        .post(&format!("{web}/rollback"), json!({"toRevision": 99}))
        .await;
    assert_eq!(s, 404, "undo to a revision that is not there: {b}");

    let (s, b) = app.post(&format!("{web}/restart?{wait}"), json!({})).await;
    assert_eq!(
        (s, &b["templateChanged"]),
        (200, &json!(true)),
        "restart: {b}"
    );
    let (s, b) = app
        .put(&format!("{web}/labels"), json!({"set": {"tier": "web"}}))
        .await;
    assert_eq!(
        (s, &b["labels"]["tier"]),
        (200, &json!("web")),
        "label: {b}"
    );
    let (s, b) = app
        .put(&format!("{web}/labels"), json!({"set": {"tier": "db"}}))
        .await;
    assert_eq!(s, 409, "a label with another value and no overwrite: {b}");

    let (_, pods) = app
        .get_json(&format!("{base}/pods?labelSelector=app%3Dweb"))
        .await;
    let running: Vec<&Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["phase"] == "Running")
        .collect();
    assert!(running.len() >= 3, "{pods}");
    let pod = running[0]["name"].as_str().unwrap().to_owned();

    // Events: the deployment controller's scaling, the scheduler's placing of a pod.
    let (s, b) = app.get_json(&format!("{web}/events")).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "ScalingReplicaSet"
                && e["source"]
                    .as_str()
                    .unwrap()
                    .starts_with("deployment-controller")),
        "{b}"
    );
    let (s, b) = app.get_json(&format!("{base}/pods/{pod}/events")).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "Scheduled"
                && e["source"]
                    .as_str()
                    .unwrap()
                    .starts_with("default-scheduler")),
        "{b}"
    );
    if logs {
        let res = app
            .get(&format!("{base}/pods/{pod}/logs?tailLines=5"))
            .await;
        assert_eq!(res.status(), 200);
        assert!(
            !res.text().await.unwrap().is_empty(),
            "a running container's log"
        );
        let mut follow = app
            .get(&format!("{base}/pods/{pod}/logs?follow=true&tailLines=1"))
            .await;
        assert_eq!(follow.status(), 200);
        let first = tokio::time::timeout(Duration::from_secs(20), follow.chunk())
            .await
            .expect("a followed log starts at once")
            .unwrap();
        assert!(first.is_some_and(|c| !c.is_empty()));
    }
    let (s, b) = app
        .delete(&format!("{base}/pods?labelSelector=app%3Dweb&dryRun=true"))
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["deleted"].as_array().unwrap().len() >= 3,
        "a preview names them: {b}"
    );

    app.put(&format!("{web}/image"), json!({"image": image(3)}))
        .await;
    let events =
        crate::bots::sse_events(app, &format!("{web}/rollout?watch=true&timeoutSeconds=60")).await;
    let (event, result) = events.last().unwrap();
    assert_eq!(
        (event.as_str(), &result["verdict"]),
        ("result", &json!("succeeded")),
        "{events:?}"
    );

    let (s, b) = app
        .post(
            &format!("/v1/clusters/{cluster}/commands"),
            json!({"command": format!("get deploy -n {ns}")}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["output"].as_str().unwrap().contains("web    3/3"), "{b}");
    let (s, b) = app
        .post(
            &format!("/v1/clusters/{cluster}/commands"),
            json!({"command": format!("get events -n {ns}")}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let text = b["output"].as_str().unwrap();
    assert!(text.starts_with("LAST SEEN   TYPE"), "{text}");
    assert!(text.contains("ScalingReplicaSet"), "{text}");

    let (s, b) = app.delete(&format!("{base}/services/db")).await;
    assert_eq!((s, &b["deleted"]), (200, &json!(["db"])), "{b}");
    let (s, b) = app
        .delete(&format!("{base}/services?labelSelector=app%3Dweb"))
        .await;
    assert_eq!(s, 200, "{b}");
    let mut deleted: Vec<&str> = b["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["web", "web-lb", "web-np"], "{b}");
    let (s, _) = app.delete(&web).await;
    assert_eq!(s, 200);
    let (s, _) = app.get_json(&web).await;
    assert_eq!(s, 404, "gone");
}

#[tokio::test]
async fn the_everyday_operations_on_the_fake_api_server() {
    let app = spawn_app().await;
    everyday_operations(&app, "dev", "default", |tag| format!("nginx:{tag}"), true).await;
}

#[tokio::test]
async fn the_everyday_operations_on_a_real_control_plane() {
    let Some(plane) = or_skip("the_everyday_operations_on_a_real_control_plane") else {
        return;
    };
    let app = spawn_app_with(Options {
        kubeconfig: Some(plane.kubeconfig()),
        cluster_timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .await;
    let ns = plane.namespace("ops").await;
    // Logs need containers: the real node has them, the simulated one has not.
    everyday_operations(&app, "real", &ns, |tag| plane.image(tag), plane.real_node).await;
}
