//! Pods: reads, logs with follow, delete by selector; labels with kubectl's overwrite rule.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::fake_kube::{Kind, PodBehavior};
use crate::helpers::{deploy_body, ns, spawn_app};

#[tokio::test]
async fn pods_are_listed_with_kubectls_status_column() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior("crash:1", PodBehavior::Waiting("CrashLoopBackOff".into()));
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    app.put(&ns("/deployments/bad"), deploy_body("crash:1", Some(1)))
        .await;
    fake.settle().await;

    let (status, body) = app.get_json(&ns("/pods?labelSelector=app%3Dweb")).await;
    assert_eq!(status, 200);
    let pod = &body["items"][0];
    assert_eq!(
        (pod["phase"].as_str(), pod["status"].as_str()),
        (Some("Running"), Some("Running"))
    );
    assert_eq!(
        (
            pod["readyContainers"].as_u64(),
            pod["totalContainers"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(pod["node"], "fake-node-1");

    let (_, body) = app.get_json(&ns("/pods?labelSelector=app%3Dbad")).await;
    let pod = &body["items"][0];
    assert_eq!(pod["status"], "CrashLoopBackOff");
    assert_eq!(pod["restarts"], 3);
    let name = pod["name"].as_str().unwrap();
    let (status, one) = app.get_json(&ns(&format!("/pods/{name}"))).await;
    assert_eq!(status, 200);
    assert_eq!(one["containers"][0]["state"], "waiting");
    assert_eq!(one["containers"][0]["reason"], "CrashLoopBackOff");
}

#[tokio::test]
async fn logs_can_be_tailed_and_followed() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    let pod = fake.list(Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = app.get(&ns(&format!("/pods/{pod}/logs?tailLines=1"))).await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert_eq!(text, format!("{pod}/web: ready to serve\n"));
    let text = app
        .get(&ns(&format!("/pods/{pod}/logs?timestamps=true")))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.lines().all(|l| l
            .split(' ')
            .next()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()),
        "{text}"
    );

    let res = app
        .get(&ns(&format!("/pods/{pod}/logs?follow=true&tailLines=1")))
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let mut stream = res.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, format!("{pod}/web: ready to serve\n").as_bytes());
    fake.append_log("default", &pod, "web", "GET /healthz 200");
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next, "GET /healthz 200\n".as_bytes());
    // The pod goes away: the stream ends.
    app.delete(&ns("/deployments/web")).await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the follow stream ended with the pod");

    let (status, body) = app.get_json(&ns("/pods/nope/logs")).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app
        .get_json(&ns(&format!("/pods/{pod}/logs?tailLines=0")))
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn logs_of_a_container_that_never_started_say_why() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior(
        "nginx:typo",
        PodBehavior::Waiting("ImagePullBackOff".into()),
    );
    app.put(&ns("/deployments/web"), deploy_body("nginx:typo", Some(1)))
        .await;
    fake.settle().await;
    let pod = fake.list(Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app.get_json(&ns(&format!("/pods/{pod}/logs"))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:cluster-bad-request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("is waiting to start: trying and failing to pull image")
    );
}

#[tokio::test]
async fn pods_are_deleted_by_selector_and_replaced_by_their_replicaset() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    fake.settle().await;
    let before: Vec<String> = fake
        .list(Kind::Pod, "default")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();

    let (status, body) = app
        .delete(&ns("/pods?labelSelector=app%3Dweb&maxAffected=2"))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut deleted: Vec<String> = body["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    deleted.sort();
    let mut expected = before.clone();
    expected.sort();
    assert_eq!(deleted, expected);
    fake.settle().await;
    let after: Vec<String> = fake
        .list(Kind::Pod, "default")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "new pods replaced them"
    );

    let (status, _) = app.delete(&ns(&format!("/pods/{}", after[0]))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn labels_follow_kubectl_label_and_its_overwrite_rule() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), json!({"containers": [{"name": "web", "image": "nginx:1"}], "labels": {"tier": "web", "canary": "yes"}})).await;
    fake.settle().await;
    let generation =
        fake.get(Kind::Deployment, "default", "web").unwrap()["metadata"]["generation"].clone();

    let (status, body) = app
        .put(
            &ns("/deployments/web/labels"),
            json!({"set": {"owner": "team-a"}, "remove": ["canary"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["labels"],
        json!({"app": "web", "owner": "team-a", "tier": "web"})
    );

    let (status, body) = app
        .put(
            &ns("/deployments/web/labels"),
            json!({"set": {"tier": "api"}}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["detail"],
        "'tier' already has a value (web), and overwrite is false"
    );
    let (status, body) = app
        .put(
            &ns("/deployments/web/labels"),
            json!({"set": {"tier": "api"}, "overwrite": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["labels"]["tier"], "api");

    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(
        d["metadata"]["generation"], generation,
        "labels are not a rollout"
    );
    assert_eq!(fake.list(Kind::ReplicaSet, "default").len(), 1);

    let pod = fake.list(Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .put(
            &ns(&format!("/pods/{pod}/labels")),
            json!({"set": {"debug": "true"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labels"]["debug"], "true");
    let (status, body) = app
        .put(&ns("/services/none/labels"), json!({"set": {"a": "b"}}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app.put(&ns("/deployments/web/labels"), json!({})).await;
    assert_eq!(status, 422, "nothing to change");
}
