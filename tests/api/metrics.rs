//! `/metrics`: requests by route pattern, cluster calls, audit appends, replays, rate limits.

use serde_json::json;

use crate::helpers::{Options, TestApp, deploy_body, ns, spawn_app, spawn_app_with};

/// The sum of a metric's samples whose labels include all of `labels`, as `/metrics` serves it.
pub async fn scraped(app: &TestApp, metric: &str, labels: &[&str]) -> f64 {
    let res = app
        .send_as(None, reqwest::Method::GET, "/metrics", None)
        .await;
    assert_eq!(res.status().as_u16(), 200);
    value(&res.text().await.unwrap(), metric, labels)
}

fn value(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|needle| l.contains(needle)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_requests_cluster_calls_audit_appends_and_replays() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    app.get(&ns("/deployments")).await;
    for _ in 0..2 {
        app.client
            .put(format!(
                "{}{}",
                app.address,
                ns("/deployments/web/replicas")
            ))
            .bearer_auth(&app.token)
            .header("idempotency-key", "metrics-1")
            .json(&json!({"replicas": 2}))
            .send()
            .await
            .unwrap();
    }
    let res = app
        .send_as(None, reqwest::Method::GET, "/metrics", None)
        .await;
    assert_eq!(res.status().as_u16(), 200, "no token needed");
    let text = res.text().await.unwrap();
    let route = "route=\"/v1/clusters/{cluster}/namespaces/{namespace}/deployments\"";
    assert_eq!(
        value(
            &text,
            "kubegate_http_request_duration_seconds_count",
            &[route, "method=\"GET\"", "status=\"200\""]
        ),
        1.0,
        "{text}"
    );
    assert!(
        value(
            &text,
            "kubegate_cluster_call_duration_seconds_count",
            &["cluster=\"dev\"", "verb=\"apply\"", "outcome=\"ok\""]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &text,
            "kubegate_cluster_call_duration_seconds_count",
            &["cluster=\"dev\"", "verb=\"scale\"", "outcome=\"ok\""]
        ),
        1.0,
        "the replay made no call"
    );
    assert!(value(&text, "kubegate_audit_append_duration_seconds_count", &[]) >= 4.0);
    assert_eq!(value(&text, "kubegate_idempotent_replays_total", &[]), 1.0);
    assert_eq!(
        value(&text, "kubegate_audit_append_failures_total", &[]),
        0.0
    );
    for metric in [
        "kubegate_audit_entries_lost_total",
        "kubegate_audit_outcomes_unknown_total{cause=\"shutdown\"}",
        "kubegate_audit_outcomes_unknown_total{cause=\"recovery\"}",
    ] {
        assert!(text.contains(&format!("{metric} 0")), "{metric}: {text}");
    }
}

#[tokio::test]
async fn metrics_can_move_to_their_own_listener() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let app = spawn_app_with(Options {
        config: Box::new(move |c| c.metrics_listen = Some(addr)),
        ..Default::default()
    })
    .await;
    assert_eq!(
        app.get("/metrics").await.status().as_u16(),
        404,
        "not on the public listener"
    );
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("kubegate_audit_append_failures_total"),
        "{text}"
    );
}
