//! Services: `kubectl expose` of each type, ExternalName, reads with endpoints, delete by selector.

use serde_json::json;

use crate::fake_kube::Kind;
use crate::helpers::{deploy_body, ns, spawn_app};

#[tokio::test]
async fn expose_creates_a_service_of_each_type_selecting_the_deployments_pods() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    app.put(&ns("/deployments/web"), json!({"containers": [{"name": "web", "image": "nginx:1"}], "replicas": 2, "labels": {"team": "a"}})).await;
    fake.settle().await;

    let (status, body) = app
        .post(
            &ns("/deployments/web/expose"),
            json!({"port": 80, "targetPort": 8080}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let svc = &body["service"];
    assert_eq!(
        (svc["name"].as_str(), svc["type"].as_str()),
        (Some("web"), Some("ClusterIP"))
    );
    assert_eq!(svc["selector"], json!({"app": "web"}));
    assert_eq!(
        svc["ports"][0],
        json!({"port": 80, "targetPort": "8080", "protocol": "TCP"})
    );
    assert!(svc["clusterIp"].as_str().unwrap().starts_with("10.96."));
    assert_eq!(
        svc["labels"]["team"], "a",
        "kubectl expose copies the Deployment's labels"
    );

    let (status, body) = app
        .post(
            &ns("/deployments/web/expose"),
            json!({"port": 80, "type": "NodePort", "name": "web-np", "nodePort": 30080}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["service"]["ports"][0]["nodePort"], 30080);
    assert_eq!(
        body["service"]["ports"][0]["targetPort"], "80",
        "the target port defaults to the port"
    );

    let (status, body) = app
        .post(
            &ns("/deployments/web/expose"),
            json!({"port": 443, "type": "LoadBalancer", "name": "web-lb", "protocol": "TCP"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let np = body["service"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&np));
    assert_eq!(body["service"]["loadBalancerIngress"], json!([]), "pending");

    let (status, body) = app.get_json(&ns("/services/web")).await;
    assert_eq!(status, 200);
    assert_eq!(body["readyEndpoints"], 2, "{body}");
    let (_, list) = app.get_json(&ns("/services")).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "web-lb", "web-np"]);

    let (status, body) = app
        .post(
            &ns("/deployments/web/expose"),
            json!({"port": 80, "type": "ExternalName"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn put_service_creates_and_updates_including_external_name() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let (status, body) = app
        .put(
            &ns("/services/db"),
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["service"]["externalName"], "db.example.com");
    assert!(body["service"].get("clusterIp").is_none());

    let (status, body) = app.put(&ns("/services/api"), json!({"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "grpc", "port": 9090}]})).await;
    assert_eq!(status, 201, "{body}");
    let ip = body["service"]["clusterIp"].clone();
    let (status, body) = app.put(&ns("/services/api"), json!({"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": 8081}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(body["service"]["clusterIp"], ip, "the cluster IP is kept");
    let stored = fake.get(Kind::Service, "default", "api").unwrap();
    assert_eq!(
        stored["spec"]["ports"].as_array().unwrap().len(),
        1,
        "the port kubegate stopped applying is gone"
    );
    assert_eq!(stored["spec"]["ports"][0]["targetPort"], 8081);

    let (status, body) = app
        .put(&ns("/services/bad"), json!({"type": "ExternalName"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "externalName");
    let (status, _) = app
        .put(&ns("/services/1bad"), json!({"ports": [{"port": 80}]}))
        .await;
    assert_eq!(status, 422, "service names start with a letter");
}

#[tokio::test]
async fn delete_by_selector_needs_a_selector_previews_with_dry_run_and_is_bounded() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        app.put(
            &ns(&format!("/services/{name}")),
            json!({"selector": {"app": name}, "ports": [{"port": 80}], "labels": {"tier": tier}}),
        )
        .await;
    }
    fake.clear_requests();

    let (status, body) = app.delete(&ns("/services")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "labelSelector");
    let (status, _) = app.delete(&ns("/services?labelSelector=")).await;
    assert_eq!(status, 422);
    assert!(fake.requests().is_empty());

    let (status, body) = app
        .delete(&ns("/services?labelSelector=tier%3Dweb&dryRun=true"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!(["a", "b"]));
    assert_eq!(body["dryRun"], true);
    assert_eq!(fake.list(Kind::Service, "default").len(), 3);

    let (status, body) = app
        .delete(&ns("/services?labelSelector=tier%3Dweb&maxAffected=1"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("matches 2 objects, more than maxAffected=1")
    );
    assert_eq!(fake.list(Kind::Service, "default").len(), 3);

    let (status, body) = app.delete(&ns("/services?labelSelector=tier%3Dweb")).await;
    assert_eq!(status, 200);
    assert_eq!(body["deleted"], json!(["a", "b"]));
    let left: Vec<String> = fake
        .list(Kind::Service, "default")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["c"]);

    let (status, body) = app.delete(&ns("/services/c")).await;
    assert_eq!((status, body["deleted"].clone()), (200, json!(["c"])));
    let (status, _) = app.delete(&ns("/services/c")).await;
    assert_eq!(status, 404);
    let _ = deploy_body;
}
