//! Deployments through kubegate, checked as kubectl would see them in the (fake) cluster.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_kube::{Kind, PodBehavior};
use crate::helpers::{Options, deploy_body, ns, spawn_app, spawn_app_with};

fn revisions(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn deploy_creates_a_deployment_and_an_identical_deploy_changes_nothing() {
    let app = spawn_app().await;
    let fake = app.fake("dev");

    let (status, body) = app.put(&ns("/deployments/web"), json!({"containers": [{"name": "web", "image": "nginx:1.27"}], "replicas": 2, "changeCause": "first release"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], true);
    assert_eq!(body["templateChanged"], true);
    assert_eq!(body["deployment"]["replicas"]["desired"], 2);
    assert_eq!(body["deployment"]["selector"], "app=web");
    assert!(uuid::Uuid::parse_str(body["auditId"].as_str().unwrap()).is_ok());
    fake.settle().await;

    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["kubegate.io/audit-id"],
        body["auditId"]
    );
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"kubegate"), "{managers:?}");
    let generation = d["metadata"]["generation"].clone();

    let (status, again) = app.put(&ns("/deployments/web"), json!({"containers": [{"name": "web", "image": "nginx:1.27"}], "replicas": 2, "changeCause": "first release"})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (
            again["created"].as_bool(),
            again["templateChanged"].as_bool()
        ),
        (Some(false), Some(false))
    );
    fake.settle().await;
    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(d["metadata"]["generation"], generation, "no new generation");
    assert_eq!(
        fake.list(Kind::ReplicaSet, "default").len(),
        1,
        "no new revision"
    );
    let rs = &fake.list(Kind::ReplicaSet, "default")[0];
    assert!(
        rs["metadata"]["annotations"]["kubernetes.io/change-cause"]
            .as_str()
            .unwrap()
            .contains("first release")
    );
}

#[tokio::test]
async fn of_two_puts_racing_to_create_the_same_object_only_one_says_it_created_it() {
    let app = spawn_app().await;
    // Both requests read "not found" before either applies (the fake answers each call after
    // 300 ms, in arrival order): only the API server's answer to the apply can tell them apart.
    app.fake("dev").set_latency(Duration::from_millis(300));
    for (path, body) in [
        ("/deployments/web", deploy_body("nginx:1.27", Some(1))),
        (
            "/services/web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        ),
    ] {
        let path = ns(path);
        let (a, b) = tokio::join!(app.put(&path, body.clone()), app.put(&path, body));
        let mut answers = [(a.0, a.1["created"].clone()), (b.0, b.1["created"].clone())];
        answers.sort_by_key(|(status, _)| *status);
        assert_eq!(
            answers,
            [(200, json!(false)), (201, json!(true))],
            "{path}: {a:?} {b:?}"
        );
    }
}

#[tokio::test]
async fn changing_only_the_image_adds_one_revision_with_its_change_cause() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;

    let (status, body) = app.put(&ns("/deployments/web"), json!({"containers": [{"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]}], "changeCause": "bump"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["templateChanged"], true);
    assert_eq!(body["revisionBefore"], 1);
    let changed_by = body["auditId"].clone();
    fake.settle().await;

    let (_, history) = app.get_json(&ns("/deployments/web/revisions")).await;
    assert_eq!(revisions(&history), [1, 2]);
    let latest = &history["items"][1];
    assert_eq!(
        latest["auditId"], changed_by,
        "the audit entry behind the revision"
    );
    assert_ne!(history["items"][0]["auditId"], changed_by);
    assert_eq!(latest["images"][0]["image"], "nginx:2");
    assert_eq!(latest["current"], true);
    let cause = latest["changeCause"].as_str().unwrap();
    assert!(
        cause.contains("deploy web web=nginx:2") && cause.contains("bump"),
        "{cause}"
    );
    // The first revision kept its own cause: a deploy sets the cause only with a template change.
    assert!(
        history["items"][0]["changeCause"]
            .as_str()
            .unwrap()
            .contains("nginx:1")
    );
}

#[tokio::test]
async fn a_deploy_that_omits_replicas_never_shrinks_the_deployment() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(3)))
        .await;
    let (_, body) = app
        .put(&ns("/deployments/web"), deploy_body("nginx:1", None))
        .await;
    assert_eq!(body["deployment"]["replicas"]["desired"], 3, "{body}");

    let (status, body) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 5}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = app
        .put(&ns("/deployments/web"), deploy_body("nginx:2", None))
        .await;
    assert_eq!(body["deployment"]["replicas"]["desired"], 5, "{body}");
    fake.settle().await;
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        5
    );
}

#[tokio::test]
async fn fields_set_by_other_managers_survive_a_deploy() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    // Someone else labels the Deployment with kubectl.
    let client = reqwest::Client::new();
    let res = client
        .patch(format!(
            "{}/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl-label",
            fake.url
        ))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"metadata": {"labels": {"owner": "team-a"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());

    let (status, _) = app
        .put(&ns("/deployments/web"), deploy_body("nginx:2", Some(1)))
        .await;
    assert_eq!(status, 200);
    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(d["metadata"]["labels"]["owner"], "team-a");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
}

#[tokio::test]
async fn rollbacks_follow_kubectls_algorithm_to_the_letter() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    for image in ["nginx:2", "nginx:3"] {
        let (status, body) = app
            .put(
                &ns("/deployments/web/image"),
                json!({"image": image, "reason": format!("to {image}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        fake.settle().await;
    }
    let (_, history) = app.get_json(&ns("/deployments/web/revisions")).await;
    assert_eq!(revisions(&history), [1, 2, 3]);
    assert!(
        history["items"][2]["changeCause"]
            .as_str()
            .unwrap()
            .contains("to nginx:3")
    );

    let (status, body) = app.post(&ns("/deployments/web/rollback"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "deployment.apps/web rolled back");
    assert_eq!(
        (
            body["fromRevision"].as_i64(),
            body["toRevision"].as_i64(),
            body["skipped"].as_bool()
        ),
        (Some(3), Some(2), Some(false))
    );
    fake.settle().await;
    let (_, history) = app.get_json(&ns("/deployments/web/revisions")).await;
    assert_eq!(
        revisions(&history),
        [1, 3, 4],
        "revision 2 renumbered 4, as kubectl rollout history shows"
    );
    assert_eq!(history["items"][2]["images"][0]["image"], "nginx:2");
    // kubectl keeps the target ReplicaSet's own change cause.
    assert!(
        history["items"][2]["changeCause"]
            .as_str()
            .unwrap()
            .contains("to nginx:2")
    );

    app.post(&ns("/deployments/web/rollback"), json!({})).await;
    fake.settle().await;
    let (_, history) = app.get_json(&ns("/deployments/web/revisions")).await;
    assert_eq!(revisions(&history), [1, 4, 5], "undo twice toggles");

    let (_, body) = app
        .post(&ns("/deployments/web/rollback"), json!({"toRevision": 1}))
        .await;
    assert_eq!(body["toRevision"], 1);
    fake.settle().await;
    let (_, history) = app.get_json(&ns("/deployments/web/revisions")).await;
    assert_eq!(revisions(&history), [4, 5, 6]);
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["template"]["spec"]["containers"]
            [0]["image"],
        "nginx:1"
    );

    let (status, body) = app
        .post(&ns("/deployments/web/rollback"), json!({"toRevision": 6}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["skipped"], true);
    assert_eq!(
        body["message"],
        "deployment.apps/web skipped rollback (current template already matches revision 6)"
    );

    fake.clear_requests();
    let (status, body) = app
        .post(&ns("/deployments/web/rollback"), json!({"toRevision": 99}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["detail"],
        "unable to find specified revision 99 in history"
    );
    assert!(fake.mutations().is_empty());

    let (_, detail) = app.get_json(&ns("/deployments/web/revisions/5")).await;
    assert_eq!(
        detail["template"]["spec"]["containers"][0]["image"],
        "nginx:3"
    );
    assert!(
        detail["template"]["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none()
    );
    let (status, _) = app.get_json(&ns("/deployments/web/revisions/2")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_rollback_without_history_or_on_a_paused_deployment_is_a_conflict() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;

    let (status, body) = app.post(&ns("/deployments/web/rollback"), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["detail"],
        "no rollout history found for deployment \"web\""
    );

    app.put(&ns("/deployments/web/image"), json!({"image": "nginx:2"}))
        .await;
    fake.settle().await;
    reqwest::Client::new()
        .patch(format!(
            "{}/apis/apps/v1/namespaces/default/deployments/web",
            fake.url
        ))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"spec": {"paused": true}}).to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = app.post(&ns("/deployments/web/rollback"), json!({})).await;
    assert_eq!(status, 409);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("you cannot rollback a paused deployment")
    );
}

#[tokio::test]
async fn a_guarded_rollback_refuses_when_the_deployment_moved_on() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    app.put(&ns("/deployments/web/image"), json!({"image": "nginx:2"}))
        .await;
    fake.settle().await;

    fake.clear_requests();
    let (status, body) = app
        .post(
            &ns("/deployments/web/rollback"),
            json!({"expectRevision": 1}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("is at revision 2, not the expected 1")
    );
    assert!(fake.mutations().is_empty());

    let (status, body) = app
        .post(
            &ns("/deployments/web/rollback"),
            json!({"expectRevision": 2}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let patch = fake.mutations().pop().unwrap();
    assert_eq!(patch.content_type, "application/json-patch+json");
    assert!(
        patch.body.contains("\"op\":\"test\""),
        "the patch itself is guarded: {}",
        patch.body
    );
}

#[tokio::test]
async fn rollout_status_reports_kubectls_message_and_wait_returns_when_done() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior(
        "app:slow",
        PodBehavior::ReadyAfter(Duration::from_millis(700)),
    );
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    fake.settle().await;
    let (_, status) = app.get_json(&ns("/deployments/web/rollout")).await;
    assert_eq!(status["done"], true);
    assert_eq!(status["revision"], 1, "{status}");
    assert_eq!(
        status["message"],
        "deployment \"web\" successfully rolled out"
    );

    let (_, body) = app
        .put(&ns("/deployments/web/image"), json!({"image": "app:slow"}))
        .await;
    assert_eq!(body["templateChanged"], true);
    fake.settle().await;
    // Reads come from the watch cache: the controller's status update arrives with the watch.
    let status = crate::helpers::eventually(
        "the rollout in progress",
        Duration::from_secs(10),
        async || {
            let status = app.get_json(&ns("/deployments/web/rollout")).await.1;
            status["message"]
                .as_str()
                .is_some_and(|m| m.contains("rollout to finish"))
                .then_some(status)
        },
    )
    .await;
    assert_eq!(status["done"], false, "{status}");
    assert_eq!(
        status["revision"], 2,
        "the new template's revision: {status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Waiting for deployment \"web\" rollout to finish"),
        "{status}"
    );

    let started = Instant::now();
    let (code, body) = app
        .put(
            &ns("/deployments/web/image?wait=true&timeoutSeconds=15"),
            json!({"image": "app:slow"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["rollout"]["done"], true, "{body}");
    assert_eq!(
        body["rollout"]["message"],
        "deployment \"web\" successfully rolled out"
    );
    assert_eq!(body["rollout"]["replicas"]["updated"], 2);
    assert_eq!(body["rollout"]["verdict"], "succeeded");
    // The Deployment as the verdict found it, not as the change left it.
    assert_eq!(body["deployment"]["replicas"]["updated"], 2, "{body}");
    assert_eq!(body["deployment"]["replicas"]["ready"], 2, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_stuck_image_is_reported_early_with_its_reason() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior(
        "nginx:typo",
        PodBehavior::Waiting("ImagePullBackOff".into()),
    );
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    fake.settle().await;

    let started = Instant::now();
    let (code, body) = app
        .put(
            &ns("/deployments/web/image?wait=true&timeoutSeconds=30"),
            json!({"image": "nginx:typo"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait for the timeout"
    );
    let rollout = &body["rollout"];
    assert_eq!(rollout["done"], false);
    assert_eq!(rollout["timedOut"], false);
    assert_eq!(
        (&rollout["verdict"], &rollout["reason"], &rollout["failed"]),
        (&json!("failed"), &json!("ImagePullBackOff"), &json!(true))
    );
    assert_eq!(rollout["issues"][0]["reason"], "ImagePullBackOff");
    assert_eq!(rollout["issues"][0]["container"], "web");
    assert!(
        rollout["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nginx:typo")
    );

    fake.exceed_progress_deadline("default", "web");
    fake.settle().await;
    let (_, status) = app.get_json(&ns("/deployments/web/rollout")).await;
    assert_eq!(status["failed"], true);
    assert_eq!(
        status["message"],
        "deployment \"web\" exceeded its progress deadline"
    );
}

#[tokio::test]
async fn scaling_uses_the_scale_subresource_and_leaves_the_change_cause_alone() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), json!({"containers": [{"name": "web", "image": "nginx:1"}], "replicas": 1, "changeCause": "release"})).await;
    fake.settle().await;
    let cause_before = fake.list(Kind::ReplicaSet, "default")[0]["metadata"]["annotations"]["kubernetes.io/change-cause"].clone();
    fake.clear_requests();

    let (status, body) = app
        .put(
            &ns("/deployments/web/replicas?wait=true&timeoutSeconds=10"),
            json!({"replicas": 4, "reason": "peak"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replicasBefore"], 1);
    assert_eq!(body["deployment"]["replicas"]["desired"], 4);
    assert_eq!(body["templateChanged"], false);
    assert_eq!(body["rollout"]["done"], true);
    assert_eq!(body["rollout"]["replicas"]["available"], 4);
    let patches: Vec<_> = fake.mutations();
    assert_eq!(patches.len(), 1);
    assert!(patches[0].path.ends_with("/deployments/web/scale"));
    assert_eq!(fake.list(Kind::Pod, "default").len(), 4);
    let rss = fake.list(Kind::ReplicaSet, "default");
    assert_eq!(rss.len(), 1);
    assert_eq!(
        rss[0]["metadata"]["annotations"]["kubernetes.io/change-cause"],
        cause_before
    );
}

#[tokio::test]
async fn set_image_names_the_containers_when_the_one_asked_for_does_not_exist() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), json!({"containers": [{"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy:1"}]})).await;
    fake.clear_requests();

    let (status, body) = app
        .put(
            &ns("/deployments/web/image"),
            json!({"container": "app", "image": "nginx:2"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "container");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("web, sidecar"),
        "{body}"
    );
    let (status, _) = app
        .put(&ns("/deployments/web/image"), json!({"image": "nginx:2"}))
        .await;
    assert_eq!(status, 422, "two containers: the container must be named");
    assert!(fake.mutations().is_empty());

    let (status, body) = app
        .put(
            &ns("/deployments/web/image"),
            json!({"container": "sidecar", "image": "envoy:2"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "envoy:2"
    );
}

#[tokio::test]
async fn restart_stamps_the_template_like_kubectl_rollout_restart() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;

    let (status, body) = app
        .post(
            &ns("/deployments/web/restart"),
            json!({"reason": "flush caches"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    fake.settle().await;
    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    let stamp =
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
    let (_, history) = app.get_json(&ns("/deployments/web/revisions")).await;
    assert_eq!(revisions(&history), [1, 2]);
    assert!(
        history["items"][1]["changeCause"]
            .as_str()
            .unwrap()
            .contains("flush caches")
    );

    // And without a body.
    let res = app
        .client
        .post(format!("{}{}", app.address, ns("/deployments/web/restart")))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn invalid_input_is_refused_before_the_cluster_sees_anything() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.clear_requests();
    let cases: Vec<(reqwest::Method, String, Value, u16, &str)> = vec![
        (
            reqwest::Method::PUT,
            ns("/deployments/Web"),
            deploy_body("nginx:1", None),
            422,
            "name",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web"),
            deploy_body("NGINX:1", None),
            422,
            "containers[0].image",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web"),
            deploy_body("nginx:1", Some(-1)),
            422,
            "replicas",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web"),
            deploy_body("nginx:1", Some(51)),
            422,
            "replicas",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web"),
            json!({"containers": []}),
            422,
            "containers",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web"),
            json!({"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 70000}]}]}),
            422,
            "containers[0].ports[0].containerPort",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web"),
            json!({"containers": [{"name": "web", "image": "nginx"}], "labels": {"bad key": "x"}}),
            422,
            "labels.bad key",
        ),
        (
            reqwest::Method::PUT,
            "/v1/clusters/dev/namespaces/Bad_NS/deployments/web".into(),
            deploy_body("nginx:1", None),
            422,
            "namespace",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web/replicas"),
            json!({"replicas": -3}),
            422,
            "replicas",
        ),
        (
            reqwest::Method::PUT,
            ns("/deployments/web/image"),
            json!({"image": "nginx:1 ; rm -rf /"}),
            422,
            "image",
        ),
        (
            reqwest::Method::POST,
            ns("/deployments/web/rollback"),
            json!({"toRevision": -1}),
            422,
            "toRevision",
        ),
        (
            reqwest::Method::POST,
            ns("/deployments/web/expose"),
            json!({"port": 0}),
            422,
            "port",
        ),
        (
            reqwest::Method::POST,
            ns("/deployments/web/expose"),
            json!({"port": 80, "nodePort": 80, "type": "NodePort"}),
            422,
            "nodePort",
        ),
    ];
    for (method, path, body, status, field) in cases {
        let (code, problem) = app.call(method.clone(), &path, Some(body.clone())).await;
        assert_eq!(code, status, "{method} {path} {body}: {problem}");
        assert_eq!(problem["type"], "urn:kubegate:problem:validation-failed");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field),
            "{path} {body}: expected {field} in {fields:?}"
        );
    }
    // Unknown fields and malformed JSON are 400s.
    let (code, problem) = app
        .put(
            &ns("/deployments/web"),
            json!({"containers": [{"name": "web", "image": "nginx"}], "replica": 3}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `replica`"),
        "{problem}"
    );
    let res = app
        .client
        .put(format!("{}{}", app.address, ns("/deployments/web")))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app
        .client
        .put(format!("{}{}", app.address, ns("/deployments/web")))
        .bearer_auth(&app.token)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let res = app
        .client
        .put(format!("{}{}", app.address, ns("/deployments/web")))
        .bearer_auth(&app.token)
        .json(&json!({"containers": [{"name": "web", "image": "x".repeat(70_000)}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    let (code, _) = app
        .get_json(&ns("/deployments?labelSelector=app%20in%20(a"))
        .await;
    assert_eq!(code, 422);
    let (code, _) = app.get_json(&ns("/deployments?color=blue")).await;
    assert_eq!(code, 400, "unknown query parameters are refused");

    assert!(
        fake.requests().is_empty(),
        "the cluster saw: {:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn a_dry_run_is_validated_by_the_api_server_and_changes_nothing() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let (status, body) = app
        .put(
            &ns("/deployments/web?dryRun=true"),
            deploy_body("nginx:1", Some(2)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["dryRun"], true);
    assert_eq!(body["deployment"]["replicas"]["desired"], 2);
    assert!(fake.get(Kind::Deployment, "default", "web").is_none());
    assert!(
        fake.mutations()
            .iter()
            .all(|r| r.query.get("dryRun").map(String::as_str) == Some("All"))
    );

    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    let (status, body) = app
        .put(
            &ns("/deployments/web/replicas?dryRun=true"),
            json!({"replicas": 7}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["deployment"]["replicas"]["desired"], 7);
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        2
    );
}

#[tokio::test]
async fn deleting_a_deployment_removes_its_replicasets_and_pods() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    fake.settle().await;
    let (_, list) = app.get_json(&ns("/deployments")).await;
    assert_eq!(list["items"][0]["name"], "web");
    let (_, rss) = app
        .get_json(&ns("/replicasets?labelSelector=app%3Dweb"))
        .await;
    assert_eq!(rss["items"][0]["owner"], "Deployment/web");
    assert_eq!(rss["items"][0]["revision"], 1);

    let (status, body) = app.delete(&ns("/deployments/web")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!(["web"]));
    fake.settle().await;
    assert!(fake.list(Kind::ReplicaSet, "default").is_empty());
    assert!(fake.list(Kind::Pod, "default").is_empty());
    let (status, body) = app.get_json(&ns("/deployments/web")).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "deployments.apps \"web\" not found");
}

#[tokio::test]
async fn two_clusters_are_addressed_by_name() {
    let app = spawn_app_with(Options {
        clusters: vec!["dev", "prod"],
        ..Default::default()
    })
    .await;
    let (status, _) = app
        .put(
            "/v1/clusters/prod/namespaces/default/deployments/web",
            deploy_body("nginx:1", Some(1)),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        app.fake("prod")
            .get(Kind::Deployment, "default", "web")
            .is_some()
    );
    assert!(
        app.fake("dev")
            .get(Kind::Deployment, "default", "web")
            .is_none()
    );
    let (status, _) = app
        .get_json("/v1/clusters/dev/namespaces/default/deployments/web")
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .put(
            "/v1/clusters/staging/namespaces/default/deployments/web",
            deploy_body("nginx:1", None),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn cluster_rejections_keep_the_api_servers_words() {
    let app = spawn_app().await;
    let (status, body) = app
        .put(
            "/v1/clusters/dev/namespaces/nowhere/deployments/web",
            deploy_body("nginx:1", None),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"], "namespaces \"nowhere\" not found");

    app.put(&ns("/deployments/web"), deploy_body("nginx:1", None))
        .await;
    let (status, body) = app
        .post(
            &ns("/deployments/web/expose"),
            json!({"port": 80, "type": "NodePort", "nodePort": 30080}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            &ns("/deployments/web/expose"),
            json!({"port": 80, "type": "NodePort", "nodePort": 30080, "name": "web2"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:invalid");
    assert_eq!(body["errors"][0]["field"], "spec.ports[0].nodePort");
    let (status, body) = app
        .post(&ns("/deployments/web/expose"), json!({"port": 80}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["type"], "urn:kubegate:problem:already-exists");
}

/// A read-check-write that loses the race on the Deployment's resourceVersion to a controller
/// (whose status updates bump it many times during a rollout) is made again on the fresh object,
/// as client-go's RetryOnConflict does, instead of answering 409.
#[tokio::test]
async fn a_change_that_loses_a_race_with_a_controller_is_made_again() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    fake.clear_requests();
    fake.inject(crate::fake_kube::Fault {
        status: 409,
        times: 2,
        retry_after: None,
        path_contains: Some("/deployments/web".into()),
        method: Some("PATCH"),
    });
    let (status, body) = app
        .put(&ns("/deployments/web/image"), json!({"image": "nginx:2"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deployment"]["images"][0]["image"], "nginx:2");
    let patches = fake
        .mutations()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 3, "two lost races, then the write");
    let (status, body) = app
        .put(
            &ns("/deployments/web/labels"),
            json!({"set": {"tier": "web"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_take_it_and_streams_are_not() {
    use std::io::Read as _;
    let app = spawn_app().await;
    for i in 0..40 {
        app.fake("dev").create(
            Kind::Deployment,
            "default",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": format!("app-{i}"), "namespace": "default"},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                            "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                                         "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}),
        );
    }
    app.fake("dev").settle().await;
    let list = |encoding: Option<&'static str>, path: String| {
        let mut req = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(&app.token);
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        req.send()
    };
    let plain = list(None, ns("/deployments")).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: Value = plain.json().await.unwrap();
    assert_eq!(plain["items"].as_array().unwrap().len(), 40);

    let zipped = list(Some("br, gzip;q=0.8"), ns("/deployments"))
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert!(
        zipped.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("Accept-Encoding")
    );
    assert!(zipped.headers().contains_key("x-request-id"));
    let bytes = zipped.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        bytes.len() * 4 < text.len(),
        "{} -> {}",
        text.len(),
        bytes.len()
    );
    let unzipped: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(unzipped, plain);

    // Refused, small, or a stream: as it is.
    let refused = list(Some("gzip;q=0, identity"), ns("/deployments"))
        .await
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
    let small = list(Some("gzip"), ns("/deployments/app-1")).await.unwrap();
    assert_eq!(small.status(), 200);
    assert!(small.headers().get("content-encoding").is_none());
    let k8s = list(
        Some("gzip"),
        "/k8s/dev/apis/apps/v1/namespaces/default/deployments".into(),
    )
    .await
    .unwrap();
    assert_eq!(k8s.status(), 200);
    assert!(
        k8s.headers().get("content-encoding").is_none(),
        "the Kubernetes API's answers pass through as the API server sent them"
    );
}
