//! Reads from watch caches: served without API calls once warm, always showing kubegate's own
//! writes, and following changes made by others through the watch.

use std::time::Duration;

use serde_json::json;

use crate::fake_kube::Kind;
use crate::helpers::{Options, TestApp, deploy_body, eventually, ns, spawn_app, spawn_app_with};
use crate::metrics::scraped;

/// Calls that read `plural` (GET and list, not watches) the fake has received.
fn reads_of(app: &TestApp, plural: &str) -> usize {
    app.fake("dev")
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path.contains(&format!("/{plural}"))
                && r.query.get("watch").is_none_or(|w| w != "true")
        })
        .count()
}

/// How many reads of deployments in cluster dev the watch cache answered so (its metric).
async fn answered(app: &TestApp, answer: &str) -> f64 {
    let answer = format!("answer=\"{answer}\"");
    let labels = [
        "cluster=\"dev\"",
        "resource=\"deployments\"",
        answer.as_str(),
    ];
    scraped(app, "kubegate_watch_cache_reads_total", &labels).await
}

/// Read until the cache answers without calling the API server.
async fn warm(app: &TestApp, path: &str, plural: &str) {
    let what = format!("the watch cache for {plural}");
    eventually(&what, Duration::from_secs(10), async || {
        app.fake("dev").clear_requests();
        let (status, _) = app.get_json(path).await;
        assert_eq!(status, 200);
        (reads_of(app, plural) == 0).then_some(())
    })
    .await
}

#[tokio::test]
async fn warm_reads_make_no_api_call_and_always_show_kubegates_own_writes() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    // The first read starts the cache: it has not listed yet, so the API server answers.
    app.get_json(&ns("/deployments/web")).await;
    assert!(answered(&app, "not_ready").await >= 1.0);
    warm(&app, &ns("/deployments/web"), "deployments").await;

    fake.clear_requests();
    let hits = answered(&app, "hit").await;
    for _ in 0..5 {
        let (_, d) = app.get_json(&ns("/deployments/web")).await;
        assert_eq!(d["name"], "web");
        let (_, l) = app.get_json(&ns("/deployments")).await;
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        let (_, r) = app.get_json(&ns("/deployments/web/rollout")).await;
        assert_eq!(r["done"], true, "{r}");
    }
    assert_eq!(reads_of(&app, "deployments"), 0, "{:?}", fake.requests());
    assert!(answered(&app, "hit").await >= hits + 10.0);
    assert_eq!(answered(&app, "caught_up").await, 0.0);
    assert_eq!(answered(&app, "behind").await, 0.0);

    // Each change is in the very next read, without waiting on the caller's side, even when the
    // watch is slow to bring it (the read waits for the cache to catch up with the write).
    fake.set_watch_delay(Duration::from_millis(300));
    for replicas in [3, 0, 2] {
        let (s, _) = app
            .put(
                &ns("/deployments/web/replicas"),
                json!({"replicas": replicas}),
            )
            .await;
        assert_eq!(s, 200);
        let (_, d) = app.get_json(&ns("/deployments/web")).await;
        assert_eq!(d["replicas"]["desired"], replicas, "{d}");
    }
    assert!(
        answered(&app, "caught_up").await >= 3.0,
        "each scale waited for its own write"
    );
    for image in ["nginx:2", "nginx:3"] {
        app.put(&ns("/deployments/web/image"), json!({"image": image}))
            .await;
        let (_, d) = app.get_json(&ns("/deployments/web")).await;
        assert_eq!(d["images"][0]["image"], image, "{d}");
    }
    let (s, _) = app
        .put(
            &ns("/deployments/web/labels"),
            json!({"set": {"tier": "front"}}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, l) = app
        .get_json(&ns("/deployments?labelSelector=tier%3Dfront"))
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1, "{l}");
    let (_, l) = app
        .get_json(&ns("/deployments?labelSelector=tier%20notin%20(front)"))
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 0, "{l}");

    // A watch slower than the catch-up bound: the read asks the API server instead.
    fake.set_watch_delay(Duration::from_millis(2500));
    app.put(&ns("/deployments/web/replicas"), json!({"replicas": 4}))
        .await;
    let (_, d) = app.get_json(&ns("/deployments/web")).await;
    assert_eq!(d["replicas"]["desired"], 4, "{d}");
    assert!(answered(&app, "behind").await >= 1.0);
    fake.set_watch_delay(Duration::ZERO);

    // A delete is gone from the next read too, with the API server's 404.
    let (s, _) = app.delete(&ns("/deployments/web")).await;
    assert_eq!(s, 200);
    let res = app.get(&ns("/deployments/web")).await;
    assert_eq!(res.status(), 404);
    let p: serde_json::Value = res.json().await.unwrap();
    assert_eq!(p["detail"], "deployments.apps \"web\" not found");
    let (_, l) = app.get_json(&ns("/deployments")).await;
    assert_eq!(l["items"], json!([]));
}

#[tokio::test]
async fn changes_made_by_others_arrive_through_the_watch() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    warm(&app, &ns("/services"), "services").await;
    // Someone else (kubectl, a controller) creates a Service.
    fake.create(
        Kind::Service,
        "default",
        json!({"metadata": {"name": "db", "labels": {"app": "db"}}, "spec": {"ports": [{"port": 5432}], "selector": {"app": "db"}}}),
    );
    eventually(
        "the watch to bring the new Service",
        Duration::from_secs(10),
        async || {
            let (_, l) = app.get_json(&ns("/services")).await;
            let items = l["items"].as_array().unwrap();
            items.iter().any(|s| s["name"] == "db").then_some(())
        },
    )
    .await;
    let (_, s) = app.get_json(&ns("/services/db")).await;
    assert_eq!(s["ports"][0]["port"], 5432);

    // Pods the controllers create and delete are followed too.
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    fake.settle().await;
    eventually(
        "the watch to bring both pods",
        Duration::from_secs(10),
        async || {
            let (_, l) = app.get_json(&ns("/pods?labelSelector=app%3Dweb")).await;
            (l["items"].as_array().unwrap().len() == 2).then_some(())
        },
    )
    .await;
    let pod = fake.list(Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = app.delete(&ns(&format!("/pods/{pod}"))).await;
    assert_eq!(s, 200);
    let res = app.get(&ns(&format!("/pods/{pod}"))).await;
    assert_eq!(
        res.status(),
        404,
        "kubegate's own delete is in the next read"
    );
}

#[tokio::test]
async fn without_the_cache_every_read_asks_the_api_server() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.watch_cache = false),
        ..Options::default()
    })
    .await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    app.fake("dev").clear_requests();
    for _ in 0..3 {
        app.get_json(&ns("/deployments/web")).await;
    }
    assert_eq!(reads_of(&app, "deployments"), 3);
    assert_eq!(
        scraped(&app, "kubegate_watch_cache_reads_total", &[]).await,
        0.0
    );
    assert!(
        !app.fake("dev")
            .requests()
            .iter()
            .any(|r| r.query.get("watch").is_some_and(|w| w == "true")),
        "no watch started"
    );
}
