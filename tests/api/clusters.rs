use std::time::Duration;

use crate::fake_kube::Fault;
use crate::helpers::{Options, assert_problem, spawn_app, spawn_app_with};
use serde_json::json;

#[tokio::test]
async fn clusters_are_listed_by_context_name_with_server_and_version() {
    let app = spawn_app_with(Options {
        clusters: vec!["dev", "prod"],
        ..Default::default()
    })
    .await;

    let (status, body) = app.get_json("/v1/clusters").await;

    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (item, name) in items.iter().zip(["dev", "prod"]) {
        assert_eq!(item["name"], name);
        assert_eq!(item["server"], format!("{}/", app.fake(name).url));
        assert_eq!(item["source"], "kubeconfig");
        assert_eq!(item["defaultNamespace"], "default");
        assert_eq!(item["reachable"], true);
        assert_eq!(item["version"]["gitVersion"], "v1.33.2");
        assert_eq!(item["version"]["major"], "1");
        assert_eq!(item["version"]["minor"], "33");
        assert_eq!(item["version"]["platform"], "linux/amd64");
    }
}

#[tokio::test]
async fn one_cluster_is_addressed_by_name() {
    let app = spawn_app_with(Options {
        clusters: vec!["dev", "prod"],
        ..Default::default()
    })
    .await;
    app.fake("dev").clear_requests();
    app.fake("prod").clear_requests();

    let (status, body) = app.get_json("/v1/clusters/prod").await;

    assert_eq!(status, 200);
    assert_eq!(body["name"], "prod");
    assert_eq!(body["version"]["gitVersion"], "v1.33.2");
    assert_eq!(
        app.fake("prod").requests().len(),
        1,
        "asked prod for its version"
    );
    assert!(app.fake("dev").requests().is_empty(), "dev was not asked");
}

#[tokio::test]
async fn an_unknown_cluster_is_a_404_naming_the_known_clusters() {
    let app = spawn_app_with(Options {
        clusters: vec!["dev", "prod"],
        ..Default::default()
    })
    .await;

    for path in [
        "/v1/clusters/staging",
        "/v1/clusters/staging/namespaces",
        "/v1/clusters/staging/nodes",
    ] {
        let body = assert_problem(app.get(path).await, 404, "cluster-not-found").await;
        assert_eq!(body["knownClusters"], json!(["dev", "prod"]));
        assert!(body["detail"].as_str().unwrap().contains("dev, prod"));
    }
}

#[tokio::test]
async fn namespaces_are_listed_like_kubectl_get_namespaces() {
    let app = spawn_app().await;
    app.fake("dev").create(
        crate::fake_kube::Kind::Namespace,
        "",
        json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}),
    );

    let (status, body) = app.get_json("/v1/clusters/dev/namespaces").await;

    assert_eq!(status, 200);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "team-a"
        ]
    );
    let team = &body["items"][4];
    assert_eq!(team["phase"], "Active");
    assert_eq!(team["labels"]["team"], "a");
    assert_eq!(team["labels"]["kubernetes.io/metadata.name"], "team-a");
    assert!(team["createdAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn nodes_are_listed_like_kubectl_get_nodes_wide() {
    let app = spawn_app().await;

    let (status, body) = app.get_json("/v1/clusters/dev/nodes").await;

    assert_eq!(status, 200);
    let node = &body["items"][0];
    assert_eq!(node["name"], "fake-node-1");
    assert_eq!(node["status"], "Ready");
    assert_eq!(node["ready"], true);
    assert_eq!(node["unschedulable"], false);
    assert_eq!(node["roles"], json!(["control-plane"]));
    assert_eq!(node["kubeletVersion"], "v1.33.2");
    assert_eq!(node["internalIp"], "10.0.0.10");
    assert_eq!(node["containerRuntime"], "containerd://1.7.24");
    assert_eq!(node["capacity"]["cpu"], "2");
}

#[tokio::test]
async fn an_unreachable_cluster_is_listed_as_such_and_its_reads_answer_503() {
    let app = spawn_app().await;
    app.fake("dev").stop().await;

    let (status, body) = app.get_json("/v1/clusters").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["reachable"], false);
    assert!(body["items"][0].get("version").is_none());
    assert!(body["items"][0]["error"].is_string());

    assert_problem(
        app.get("/v1/clusters/dev/namespaces").await,
        503,
        "cluster-unavailable",
    )
    .await;
}

#[tokio::test]
async fn upstream_failures_map_to_stable_problem_types() {
    let app = spawn_app().await;
    let fake = app.fake("dev");

    fake.inject(Fault {
        status: 500,
        times: 1,
        retry_after: None,
        path_contains: Some("/nodes".into()),
        method: None,
    });
    assert_problem(
        app.get("/v1/clusters/dev/nodes").await,
        503,
        "cluster-unavailable",
    )
    .await;

    fake.inject(Fault {
        status: 429,
        times: 1,
        retry_after: Some(7),
        path_contains: Some("/nodes".into()),
        method: None,
    });
    let res = app.get("/v1/clusters/dev/nodes").await;
    assert_eq!(res.headers()["retry-after"], "7");
    assert_problem(res, 503, "cluster-throttled").await;

    fake.inject(Fault {
        status: 403,
        times: 1,
        retry_after: None,
        path_contains: Some("/nodes".into()),
        method: None,
    });
    let body = assert_problem(
        app.get("/v1/clusters/dev/nodes").await,
        502,
        "cluster-credentials-rejected",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("kubegate's cluster credentials lack permission")
    );

    // kube-rs' own retries are off: each failure above cost exactly one upstream request.
    let node_calls = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/nodes"))
        .count();
    assert_eq!(node_calls, 3);

    // And after the faults, the same read works.
    let (status, _) = app.get_json("/v1/clusters/dev/nodes").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_cluster_slower_than_the_deadline_answers_504() {
    let app = spawn_app_with(Options {
        cluster_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    app.fake("dev").set_latency(Duration::from_millis(1000));

    let started = std::time::Instant::now();
    let body = assert_problem(
        app.get("/v1/clusters/dev/namespaces").await,
        504,
        "cluster-timeout",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "answered at the deadline, not after the upstream"
    );
    assert!(body["detail"].as_str().unwrap().contains("300ms"));
}
