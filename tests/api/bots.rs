//! Built for bots: Idempotency-Key semantics (replay, mismatch, in flight, per caller, races,
//! across replicas, 5xx not stored).

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::fake_kube::Fault;
use crate::helpers::{
    Options, TestApp, claims, deploy_body, hs_token, ns, spawn_app, spawn_app_with,
};

async fn scale(
    app: &TestApp,
    token: &str,
    key: &str,
    replicas: i32,
) -> (u16, Option<String>, Value) {
    let res = app
        .client
        .put(format!(
            "{}{}",
            app.address,
            ns("/deployments/web/replicas")
        ))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"replicas": replicas}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, res.json().await.unwrap_or(Value::Null))
}

fn scale_calls(app: &TestApp) -> usize {
    app.fake("dev")
        .mutations()
        .iter()
        .filter(|r| r.path.ends_with("/scale"))
        .count()
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_stored_answer_and_makes_no_second_call() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    let (s1, r1, b1) = scale(&app, &app.token, "bot-retry-1", 3).await;
    assert_eq!((s1, r1), (200, None));
    let (s2, r2, b2) = scale(&app, &app.token, "bot-retry-1", 3).await;
    assert_eq!((s2, r2.as_deref()), (200, Some("true")));
    assert_eq!(b1, b2, "the very same answer");
    assert_eq!(scale_calls(&app), 1);

    let (_, replays) = app.get_json("/v1/audit?limit=100").await;
    let replay = replays["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "replay")
        .cloned()
        .unwrap();
    assert_eq!(replay["replay"], true);
    assert_eq!(replay["idempotencyKey"], "bot-retry-1");
    assert_eq!(replay["result"]["replayOf"], b1["auditId"]);
    let original = replays["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "intent" && e["action"] == "scale")
        .cloned()
        .unwrap();
    assert_eq!(original["idempotencyKey"], "bot-retry-1");
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_keys_belong_to_their_caller() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    scale(&app, &app.token, "k-1", 2).await;
    let (status, _, body) = scale(&app, &app.token, "k-1", 4).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:idempotency-key-reused");
    assert_eq!(scale_calls(&app), 1);

    let other = hs_token(&claims("another-bot", &["deployer"]));
    let (status, replayed, _) = scale(&app, &other, "k-1", 4).await;
    assert_eq!(
        (status, replayed),
        (200, None),
        "another caller's k-1 is another key"
    );
    assert_eq!(scale_calls(&app), 2);

    for bad in ["", "has space", &"x".repeat(256)] {
        let res = app
            .client
            .put(format!(
                "{}{}",
                app.address,
                ns("/deployments/web/replicas")
            ))
            .bearer_auth(&app.token)
            .header("idempotency-key", bad)
            .json(&json!({"replicas": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400, "{bad:?}");
    }
    assert_eq!(scale_calls(&app), 2);
}

#[tokio::test]
async fn a_race_of_identical_retries_makes_exactly_one_cluster_call_across_two_replicas() {
    let a = spawn_app().await;
    a.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    let b = spawn_app_with(Options {
        database_url: Some(a.database_url.clone()),
        ..Default::default()
    })
    .await;
    // b talks to its own fake; the key store is what is shared. Slow both so the race overlaps.
    a.fake("dev").set_latency(Duration::from_millis(300));
    b.fake("dev").set_latency(Duration::from_millis(300));
    b.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    a.fake("dev").clear_requests();
    b.fake("dev").clear_requests();

    let calls = (0..16).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move { scale(app, &app.token, "race-key", 5).await }
    });
    let results = join_all(calls).await;
    let ran = results
        .iter()
        .filter(|r| r.0 == 200 && r.1.is_none())
        .count();
    let in_flight = results.iter().filter(|r| r.0 == 409).count();
    assert_eq!(ran, 1, "{results:?}");
    assert_eq!(
        ran + in_flight + results.iter().filter(|r| r.1.is_some()).count(),
        16
    );
    assert!(
        results
            .iter()
            .filter(|r| r.0 == 409)
            .all(|r| r.2["type"] == "urn:kubegate:problem:idempotency-key-in-flight")
    );
    assert_eq!(
        scale_calls(&a) + scale_calls(&b),
        1,
        "exactly one cluster call"
    );
    // Once done, every retry is a replay.
    let (status, replayed, _) = scale(&b, &b.token, "race-key", 5).await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
}

#[tokio::test]
async fn a_failure_on_kubegates_side_is_not_stored_so_the_retry_runs() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    app.fake("dev").inject(Fault {
        status: 503,
        times: 1,
        retry_after: None,
        path_contains: Some("/scale".into()),
        method: None,
    });
    let (status, _, _) = scale(&app, &app.token, "k-5xx", 2).await;
    assert_eq!(status, 503);
    let (status, replayed, body) = scale(&app, &app.token, "k-5xx", 2).await;
    assert_eq!((status, replayed), (200, None), "{body}");
    assert_eq!(body["deployment"]["replicas"]["desired"], 2);
}

#[tokio::test]
async fn each_subject_has_its_own_rate_budget_and_a_refusal_is_a_429_with_retry_after() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| {
            c.rate_limit = 2;
            c.rate_limit_roles = vec![(kubegate::auth::Role::Auditor, 100)];
        }),
        ..Default::default()
    })
    .await;
    let eve = hs_token(&claims("eve", &["viewer"]));
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        let res = app
            .send_as(Some(&eve), reqwest::Method::GET, &ns("/deployments"), None)
            .await;
        statuses.push(res.status().as_u16());
        if res.status().as_u16() == 429 {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            last = Some(res.json::<Value>().await.unwrap());
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "a burst of twice the rate: {statuses:?}"
    );
    assert_eq!(last.unwrap()["type"], "urn:kubegate:problem:rate-limited");
    // Someone else is not affected; a role with its own rate gets it.
    let fred = hs_token(&claims("fred", &["viewer"]));
    assert_eq!(
        app.send_as(Some(&fred), reqwest::Method::GET, &ns("/deployments"), None)
            .await
            .status()
            .as_u16(),
        200
    );
    let ada = hs_token(&claims("ada", &["auditor", "viewer"]));
    for _ in 0..10 {
        assert_eq!(
            app.send_as(Some(&ada), reqwest::Method::GET, &ns("/deployments"), None)
                .await
                .status()
                .as_u16(),
            200
        );
    }
    crate::helpers::eventually(
        "eve's budget to refill",
        Duration::from_secs(10),
        async || {
            let status = app
                .send_as(Some(&eve), reqwest::Method::GET, &ns("/deployments"), None)
                .await
                .status();
            (status.as_u16() == 200).then_some(())
        },
    )
    .await;
}

/// Read a Server-Sent Events stream to its end: (event, data) pairs.
pub async fn sse_events(app: &TestApp, path: &str) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let res = app.get(path).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("the stream ends by itself")
    {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    text.split("\n\n")
        .filter(|b| b.starts_with("event:"))
        .map(|b| {
            let mut lines = b.lines();
            let event = lines
                .next()
                .unwrap()
                .trim_start_matches("event: ")
                .to_owned();
            let data = lines.next().unwrap().trim_start_matches("data: ");
            (event, serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn rollout_progress_streams_from_watches_until_a_verdict() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior(
        "app:slow",
        crate::fake_kube::PodBehavior::ReadyAfter(Duration::from_millis(600)),
    );
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    fake.settle().await;
    app.put(&ns("/deployments/web/image"), json!({"image": "app:slow"}))
        .await;
    fake.clear_requests();

    let events = sse_events(
        &app,
        &ns("/deployments/web/rollout?watch=true&timeoutSeconds=15"),
    )
    .await;
    let (last, result) = events.last().unwrap();
    assert_eq!(last, "result");
    assert_eq!(result["verdict"], "succeeded", "{events:?}");
    assert_eq!(
        result["rollout"]["message"],
        "deployment \"web\" successfully rolled out"
    );
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e.0 == "progress")
        .map(|e| &e.1)
        .collect();
    assert!(progress.len() >= 2, "{events:?}");
    assert_eq!(progress[0]["done"], false);
    assert!(
        progress[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Waiting for deployment \"web\" rollout to finish")
    );
    let watches = fake
        .requests()
        .iter()
        .filter(|r| r.query.get("watch").map(String::as_str) == Some("true"))
        .count();
    assert!(
        watches >= 2,
        "driven by watches of the deployment and its pods"
    );
}

#[tokio::test]
async fn a_doomed_rollout_ends_the_stream_early_and_wait_agrees() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior(
        "nginx:typo",
        crate::fake_kube::PodBehavior::Waiting("ErrImagePull".into()),
    );
    fake.set_image_behavior("never:1", crate::fake_kube::PodBehavior::NeverReady);
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    app.put(
        &ns("/deployments/web/image"),
        json!({"image": "nginx:typo"}),
    )
    .await;

    let events = sse_events(
        &app,
        &ns("/deployments/web/rollout?watch=true&timeoutSeconds=15"),
    )
    .await;
    let result = &events.last().unwrap().1;
    assert_eq!(
        (result["verdict"].as_str(), result["reason"].as_str()),
        (Some("failed"), Some("ErrImagePull"))
    );
    assert_eq!(result["rollout"]["issues"][0]["reason"], "ErrImagePull");

    // A change that waits answers the same verdict, in one field a bot can switch on.
    fake.set_image_behavior(
        "nginx:typo2",
        crate::fake_kube::PodBehavior::Waiting("ErrImagePull".into()),
    );
    let (status, waited) = app
        .put(
            &ns("/deployments/web/image?wait=true&timeoutSeconds=15"),
            json!({"image": "nginx:typo2"}),
        )
        .await;
    assert_eq!(status, 200, "{waited}");
    let rollout = &waited["rollout"];
    assert_eq!(
        (rollout["verdict"].as_str(), rollout["reason"].as_str()),
        (Some("failed"), Some("ErrImagePull")),
        "{waited}"
    );
    assert_eq!(
        (&rollout["failed"], &rollout["done"]),
        (&json!(true), &json!(false))
    );

    app.put(&ns("/deployments/other"), deploy_body("never:1", Some(1)))
        .await;
    let events = sse_events(
        &app,
        &ns("/deployments/other/rollout?watch=true&timeoutSeconds=1"),
    )
    .await;
    let result = &events.last().unwrap().1;
    assert_eq!(result["verdict"], "timeout");
    assert_eq!(result["rollout"]["timedOut"], true);

    let (status, _) = app
        .get_json(&ns("/deployments/nope/rollout?watch=true"))
        .await;
    assert_eq!(status, 404, "problems come before the stream");
}

#[tokio::test]
async fn replicas_sharing_a_database_keep_one_rate_budget() {
    // Two replicas of one kubegate: 1 request a second per subject, bursts of 2.
    let a = spawn_app_with(Options {
        config: Box::new(|c| c.rate_limit = 1),
        ..Default::default()
    })
    .await;
    let b = spawn_app_with(Options {
        database_url: Some(a.database_url.clone()),
        config: Box::new(|c| c.rate_limit = 1),
        ..Default::default()
    })
    .await;
    let eve = hs_token(&claims("eve", &["viewer"]));
    let get = async |app: &crate::helpers::TestApp| {
        app.send_as(Some(&eve), reqwest::Method::GET, &ns("/deployments"), None)
            .await
            .status()
            .as_u16()
    };
    // Eve spends her burst on replica A.
    assert_eq!((get(&a).await, get(&a).await), (200, 200));
    // A publishes it; then B completes two exchanges (so one began after the publication).
    let pool = sqlx::PgPool::connect(&a.database_url).await.unwrap();
    crate::helpers::eventually("A's usage published", Duration::from_secs(10), async || {
        let used: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(used), 0) FROM rate_usage WHERE bucket LIKE '%#eve'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (used >= 2).then_some(())
    })
    .await;
    let syncs = async || {
        let text = b
            .send_as(None, reqwest::Method::GET, "/metrics", None)
            .await
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("kubegate_rate_limit_syncs_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = syncs().await;
    crate::helpers::eventually("B's exchanges", Duration::from_secs(10), async || {
        (syncs().await >= before + 2.0).then_some(())
    })
    .await;
    // B knows: of two requests now, at most one passes (one, only if a second went by and
    // refilled a request); alone, B would have allowed both.
    let on_b = [get(&b).await, get(&b).await];
    assert!(on_b.contains(&429), "{on_b:?}");
    // Someone else still has a whole budget on B.
    let fred = hs_token(&claims("fred", &["viewer"]));
    let res = b
        .send_as(Some(&fred), reqwest::Method::GET, &ns("/deployments"), None)
        .await;
    assert_eq!(res.status().as_u16(), 200);
}
