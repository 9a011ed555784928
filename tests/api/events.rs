//! Events (`kubectl get events`, the Events of `kubectl describe`): what the controllers, the
//! scheduler and the kubelet recorded, a namespace's or one object's, with filters; in chat too.

use serde_json::{Value, json};

use crate::fake_kube::PodBehavior;
use crate::helpers::{assert_problem, claims, deploy_body, hs_token, ns, spawn_app};

fn reasons(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["object"]["kind"].as_str().unwrap(),
                e["reason"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_namespace_and_each_object_have_their_events_oldest_first() {
    let app = spawn_app().await;
    app.deploy_web().await;
    let fake = app.fake("dev");
    fake.settle().await;
    let (s, _) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 2}))
        .await;
    assert_eq!(s, 200);
    fake.settle().await;

    let (status, all) = app.get_json(&ns("/events")).await;
    assert_eq!(status, 200, "{all}");
    let seen = reasons(&all);
    for expected in [
        "Deployment/ScalingReplicaSet",
        "ReplicaSet/SuccessfulCreate",
        "Pod/Scheduled",
        "Pod/Pulled",
        "Pod/Created",
        "Pod/Started",
    ] {
        assert!(seen.iter().any(|r| r == expected), "{expected} in {seen:?}");
    }
    let times: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["lastSeen"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    let scaled = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["reason"] == "ScalingReplicaSet"
                && e["message"].as_str().unwrap().contains("from 1 to 2")
        })
        .expect("the scale's event");
    assert_eq!(scaled["type"], "Normal");
    assert_eq!(scaled["source"], "deployment-controller");
    assert_eq!(scaled["count"], 1);
    assert_eq!(
        scaled["object"],
        json!({"kind": "Deployment", "name": "web"})
    );

    // One object's: only its own.
    let (status, d) = app.get_json(&ns("/deployments/web/events")).await;
    assert_eq!(status, 200, "{d}");
    let d = reasons(&d);
    assert!(
        !d.is_empty() && d.iter().all(|r| r == "Deployment/ScalingReplicaSet"),
        "{d:?}"
    );
    let (_, pods) = app.get_json(&ns("/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let (status, p) = app.get_json(&ns(&format!("/pods/{pod}/events"))).await;
    assert_eq!(status, 200, "{p}");
    assert!(
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["object"]["name"] == pod.as_str())
    );
    assert_eq!(
        reasons(&p),
        ["Pod/Scheduled", "Pod/Pulled", "Pod/Created", "Pod/Started"]
    );
    let scheduled = &p["items"][0];
    assert_eq!(scheduled["source"], "default-scheduler");
    assert_eq!(
        scheduled["message"],
        format!("Successfully assigned default/{pod} to fake-node-1")
    );
    assert_eq!(p["items"][1]["source"], "kubelet, fake-node-1");
    let (_, rs) = app.get_json(&ns("/replicasets")).await;
    let rs = rs["items"][0]["name"].as_str().unwrap().to_owned();
    let (status, r) = app
        .get_json(&ns(&format!("/replicasets/{rs}/events")))
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(
        reasons(&r)
            .iter()
            .all(|r| r == "ReplicaSet/SuccessfulCreate")
    );
    assert_eq!(
        r["items"].as_array().unwrap().len(),
        2,
        "one per pod created"
    );

    // Filters of the namespace's list.
    let (_, pods_only) = app
        .get_json(&ns(&format!("/events?kind=Pod&name={pod}")))
        .await;
    assert_eq!(reasons(&pods_only), reasons(&p));
    let (_, recent) = app.get_json(&ns("/events?sinceSeconds=3600")).await;
    assert_eq!(
        recent["items"].as_array().unwrap().len(),
        all["items"].as_array().unwrap().len()
    );
    let (_, warnings) = app.get_json(&ns("/events?type=Warning")).await;
    assert_eq!(warnings["items"], json!([]));
}

#[tokio::test]
async fn warnings_say_why_a_pod_does_not_start() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior("nginx:nope", PodBehavior::Waiting("ErrImagePull".into()));
    let (s, body) = app
        .put(&ns("/deployments/web"), deploy_body("nginx:nope", Some(1)))
        .await;
    assert!(s == 201 || s == 200, "{body}");
    fake.settle().await;
    let (status, warnings) = app.get_json(&ns("/events?type=Warning")).await;
    assert_eq!(status, 200, "{warnings}");
    let items = warnings["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["type"] == "Warning"));
    assert!(
        items.iter().any(|e| e["reason"] == "Failed"
            && e["message"]
                .as_str()
                .unwrap()
                .starts_with("Failed to pull image \"nginx:nope\"")),
        "{warnings}"
    );
}

#[tokio::test]
async fn event_reads_are_checked_authorized_and_404_for_a_missing_object() {
    let app = spawn_app().await;
    app.deploy_web().await;
    let missing = app.get(&ns("/pods/nothere/events")).await;
    assert_problem(missing, 404, "not-found").await;
    let bad_type = app.get(&ns("/events?type=Fatal")).await;
    assert!(
        matches!(bad_type.status().as_u16(), 400 | 422),
        "{}",
        bad_type.status()
    );
    let bad_kind = app.get(&ns("/events?kind=pod%20x")).await;
    assert_problem(bad_kind, 422, "validation-failed").await;
    let bad_name = app.get(&ns("/deployments/Web_1/events")).await;
    assert_problem(bad_name, 422, "validation-failed").await;

    // A viewer reads them; a token for another namespace does not.
    let viewer = hs_token(&claims("ann", &["viewer"]));
    let res = app
        .send_as(Some(&viewer), reqwest::Method::GET, &ns("/events"), None)
        .await;
    assert_eq!(res.status(), 200);
    let nobody = hs_token(&claims("bob", &[]));
    let res = app
        .send_as(
            Some(&nobody),
            reqwest::Method::GET,
            &ns("/deployments/web/events"),
            None,
        )
        .await;
    assert_problem(res, 403, "forbidden").await;
}

#[tokio::test]
async fn chat_gets_events_and_describe_ends_with_them() {
    let app = spawn_app().await;
    app.deploy_web().await;
    app.fake("dev").settle().await;
    let (status, out) = app
        .post(
            "/v1/clusters/dev/commands",
            json!({"command": "kubectl get events"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["operation"], "list_events");
    let text = out["output"].as_str().unwrap();
    assert!(text.starts_with("LAST SEEN   TYPE     REASON"), "{text}");
    assert!(text.contains("deployment/web"), "{text}");
    assert!(text.contains("ScalingReplicaSet"), "{text}");

    let (_, pods) = app.get_json(&ns("/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let (status, out) = app
        .post(
            "/v1/clusters/dev/commands",
            json!({"command": format!("kubectl describe pod {pod}")}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let text = out["output"].as_str().unwrap();
    let events = text.split_once("\nEvents:\n").expect("an Events section").1;
    let lines: Vec<&str> = events.lines().collect();
    assert!(lines[0].starts_with("  Type    Reason     Age"), "{events}");
    assert!(lines[1].starts_with("  ----    ------     ---"), "{events}");
    assert!(lines[2].starts_with("  Normal  Scheduled"), "{events}");
    assert!(
        lines[2].ends_with(&format!(
            "default-scheduler  Successfully assigned default/{pod} to fake-node-1"
        )),
        "{events}"
    );
    assert_eq!(out["result"]["events"].as_array().unwrap().len(), 4);

    // Nothing happened to a Service yet: `<none>`, as kubectl says.
    app.post(&ns("/deployments/web/expose"), json!({"port": 80}))
        .await;
    let (_, out) = app
        .post(
            "/v1/clusters/dev/commands",
            json!({"command": "kubectl describe svc web"}),
        )
        .await;
    assert!(
        out["output"]
            .as_str()
            .unwrap()
            .ends_with("\nEvents:  <none>"),
        "{out}"
    );
}

#[tokio::test]
async fn describe_pod_joins_the_pod_its_conditions_its_owners_and_its_events() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior("crashy:1", PodBehavior::Waiting("CrashLoopBackOff".into()));
    let (s, body) = app
        .put(&ns("/deployments/web"), deploy_body("crashy:1", Some(1)))
        .await;
    assert_eq!(s, 201, "{body}");
    fake.settle().await;
    let (_, pods) = app.get_json(&ns("/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let (_, rs) = app.get_json(&ns("/replicasets")).await;
    let rs = rs["items"][0]["name"].as_str().unwrap().to_owned();

    let (status, d) = app.get_json(&ns(&format!("/pods/{pod}/describe"))).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["pod"]["name"], pod.as_str());
    let container = &d["pod"]["containers"][0];
    assert_eq!(container["reason"], "CrashLoopBackOff");
    assert_eq!(container["restartCount"], 3);
    assert_eq!(container["lastTermination"]["reason"], "Error");
    assert_eq!(container["lastTermination"]["exitCode"], 1);
    assert_eq!(
        d["owners"],
        json!([{"kind": "ReplicaSet", "name": rs}, {"kind": "Deployment", "name": "web"}])
    );
    assert!(
        d["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "False"),
        "{d}"
    );
    let backoff = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "BackOff")
        .expect("the kubelet's back-off");
    assert_eq!(backoff["type"], "Warning");
    assert!(
        backoff["message"]
            .as_str()
            .unwrap()
            .starts_with("Back-off restarting failed container web in pod"),
        "{backoff}"
    );

    // Chat's describe shows the last state too.
    let (_, out) = app
        .post(
            "/v1/clusters/dev/commands",
            json!({"command": format!("kubectl describe pod {pod}")}),
        )
        .await;
    let text = out["output"].as_str().unwrap();
    assert!(
        text.contains(
            "\n    Last State:     Terminated\n      Reason:       Error\n      Exit Code:    1"
        ),
        "{text}"
    );

    let missing = app.get(&ns("/pods/nothere/describe")).await;
    assert_problem(missing, 404, "not-found").await;
}

#[tokio::test]
async fn pods_the_api_server_refuses_fail_the_rollout_at_once_with_its_words() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let why = "exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0";
    fake.set_image_behavior("nginx:quota", PodBehavior::Forbidden(why.into()));
    let (s, body) = app
        .put(
            &ns("/deployments/web?wait=true&timeoutSeconds=60"),
            deploy_body("nginx:quota", Some(1)),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let rollout = &body["rollout"];
    assert_eq!(rollout["verdict"], "failed", "{body}");
    assert_eq!(rollout["reason"], "FailedCreate", "{body}");
    let issue = &rollout["issues"][0];
    assert!(
        issue["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("is forbidden: {why}")),
        "{body}"
    );
    let rs = issue["pod"].as_str().unwrap().to_owned();
    assert!(rs.starts_with("web-"), "named by its ReplicaSet: {body}");

    // The progress stream ends the same way; the ReplicaSet's warning says it too.
    let events = crate::bots::sse_events(
        &app,
        &ns("/deployments/web/rollout?watch=true&timeoutSeconds=60"),
    )
    .await;
    let (event, result) = events.last().unwrap();
    assert_eq!(event, "result");
    assert_eq!(
        (&result["verdict"], &result["reason"]),
        (&json!("failed"), &json!("FailedCreate")),
        "{events:?}"
    );
    let (_, warnings) = app
        .get_json(&ns(&format!("/replicasets/{rs}/events?type=Warning")))
        .await;
    assert_eq!(
        reasons(&warnings),
        ["ReplicaSet/FailedCreate"],
        "{warnings}"
    );
    assert!(
        warnings["items"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Error creating: pods \"web-")
    );
}

#[tokio::test]
async fn describe_deployment_names_its_new_and_old_replica_sets_and_its_events() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.deploy_web().await;
    fake.settle().await;
    // A new image whose pods never become ready: the rollout stays half done.
    fake.set_image_behavior("nginx:stuck", PodBehavior::NeverReady);
    let (s, body) = app
        .put(
            &ns("/deployments/web/image"),
            json!({"image": "nginx:stuck"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    fake.settle().await;

    let (status, d) = app.get_json(&ns("/deployments/web/describe")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["deployment"]["revision"], 2, "{d}");
    let new = &d["newReplicaSet"];
    assert_eq!(new["revision"], 2, "{d}");
    assert_eq!(new["images"][0]["image"], "nginx:stuck", "{d}");
    let old = d["oldReplicaSets"].as_array().unwrap();
    assert_eq!(old.len(), 1, "the first revision still runs: {d}");
    assert_eq!(old[0]["images"][0]["image"], "nginx:1");
    assert_eq!(old[0]["desired"], 1);
    let scaled: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "ScalingReplicaSet")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        scaled.iter().any(|m| m.starts_with(&format!(
            "Scaled up replica set {} from 0 to 1",
            new["name"].as_str().unwrap()
        ))),
        "{scaled:?}"
    );

    let missing = app.get(&ns("/deployments/nothere/describe")).await;
    assert_problem(missing, 404, "not-found").await;
}

#[tokio::test]
async fn describe_service_and_replicaset_join_their_events() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.deploy_web().await;
    let (s, body) = app
        .post(&ns("/deployments/web/expose"), json!({"port": 80}))
        .await;
    assert_eq!(s, 201, "{body}");
    fake.settle().await;

    let (status, d) = app.get_json(&ns("/services/web/describe")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["service"]["name"], "web");
    assert_eq!(d["service"]["readyEndpoints"], 1, "{d}");
    assert_eq!(d["events"], json!([]), "nothing happened to it: {d}");

    let (_, rs) = app.get_json(&ns("/replicasets")).await;
    let rs = rs["items"][0]["name"].as_str().unwrap().to_owned();
    let (status, d) = app
        .get_json(&ns(&format!("/replicasets/{rs}/describe")))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["replicaSet"]["name"], rs.as_str());
    assert_eq!(d["replicaSet"]["owner"], "Deployment/web");
    let pods = d["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 1, "{d}");
    assert_eq!(
        d["events"][0]["message"],
        format!("Created pod: {}", pods[0]["name"].as_str().unwrap())
    );

    for missing in [
        "/services/nothere/describe",
        "/replicasets/nothere/describe",
    ] {
        assert_problem(app.get(&ns(missing)).await, 404, "not-found").await;
    }
}
