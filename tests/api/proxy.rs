//! HTTP to pods and services through kubegate and the API server's proxy subresource (the fake
//! echoes what reached the target): methods, headers without kubegate's token, bodies, answers
//! streamed, each request audited, admin only.

use serde_json::{Value, json};

use crate::helpers::{assert_problem, claims, deploy_body, eventually, hs_token, ns, spawn_app};

#[tokio::test]
async fn requests_reach_pods_and_services_through_the_proxy_and_are_audited() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    let (_, pods) = app.get_json(&ns("/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();

    let res = app
        .client
        .get(format!(
            "{}{}",
            app.address,
            ns(&format!("/pods/{pod}:8080/proxy/some/path%20x?a=1&b=2"))
        ))
        .bearer_auth(&app.token)
        .header("X-Custom", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-served-by"], format!("pods/{pod}").as_str());
    let audit_id = res.headers()["x-audit-id"].to_str().unwrap().to_owned();
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["target"], format!("pods/{pod}"));
    assert_eq!(seen["port"], "8080");
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/some/path%20x");
    assert_eq!(seen["query"], "a=1&b=2");
    assert_eq!(seen["headers"]["x-custom"], "yes");
    assert_ne!(
        seen["headers"]["authorization"],
        format!("Bearer {}", app.token),
        "kubegate's token never reaches the target"
    );

    let entries = eventually(
        "the proxy outcome",
        std::time::Duration::from_secs(10),
        async || {
            let (_, page) = app.get_json(&format!("/v1/audit/{audit_id}")).await;
            let items = page["items"].as_array()?.clone();
            (items.len() == 2).then_some(items)
        },
    )
    .await;
    assert_eq!(entries[0]["action"], "proxy");
    assert_eq!(entries[0]["result"]["status"], 200);
    assert_eq!(entries[1]["request"]["method"], "GET");
    assert_eq!(entries[1]["request"]["path"], "/some/path%20x?a=1&b=2");

    // A body and its type pass through.
    let res = app
        .client
        .post(format!(
            "{}{}",
            app.address,
            ns(&format!("/pods/{pod}/proxy/submit"))
        ))
        .bearer_auth(&app.token)
        .header("Content-Type", "text/csv")
        .body("a,b\n1,2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body"], "a,b\n1,2\n");
    assert_eq!(seen["headers"]["content-type"], "text/csv");

    // The answer streams: its first part arrives before the target sends the rest.
    let mut res = app.get(&ns(&format!("/pods/{pod}/proxy/stream"))).await;
    assert_eq!(res.status(), 200);
    let first = res.chunk().await.unwrap().unwrap();
    assert_eq!(first, "first\n");
    fake.open_proxy_gate();
    assert_eq!(res.text().await.unwrap(), "second\n");

    // A service.
    app.post(&ns("/deployments/web/expose"), json!({"port": 80}))
        .await;
    let (status, seen) = app
        .call(
            reqwest::Method::DELETE,
            &ns("/services/web:80/proxy/items/3"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        (seen["target"].as_str(), seen["method"].as_str()),
        (Some("services/web"), Some("DELETE"))
    );

    // A name with "proxy" in it keeps its path.
    app.put(&ns("/deployments/proxy"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    let (_, pods) = app.get_json(&ns("/pods?labelSelector=app%3Dproxy")).await;
    let named = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let (status, seen) = app
        .get_json(&ns(&format!("/pods/{named}/proxy/proxy/x")))
        .await;
    assert_eq!(
        (status, seen["path"].as_str()),
        (200, Some("/proxy/x")),
        "{seen}"
    );

    // What the API server says passes through: no such pod.
    let res = app.get(&ns("/pods/nope/proxy/")).await;
    assert_eq!(res.status(), 404);
    let status: Value = res.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    // A name kubegate refuses before the cluster.
    let res = app.get(&ns("/pods/a:b:c:d/proxy/")).await;
    assert_problem(res, 422, "validation-failed").await;
}

#[tokio::test]
async fn the_proxy_needs_the_proxy_permission() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    let (_, pods) = app.get_json(&ns("/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    fake.clear_requests();
    let deployer = hs_token(&claims("someone", &["deployer"]));
    let res = app
        .send_as(
            Some(&deployer),
            reqwest::Method::GET,
            &ns(&format!("/pods/{pod}/proxy/")),
            None,
        )
        .await;
    let body = assert_problem(res, 403, "forbidden").await;
    assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
    assert!(!fake.requests().iter().any(|r| r.path.contains("/proxy")));
    let (_, page) = app.get_json("/v1/audit?action=proxy").await;
    assert_eq!(page["items"][0]["outcome"], "denied");
}
