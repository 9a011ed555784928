//! A person's own kubectl through kubegate (`/k8s/{cluster}/...`): requests read as the API
//! server reads them, decided by kubegate's roles, changes audited write-ahead, forwarded with
//! kubegate's credentials (never the caller's headers), errors as the API server's `Status`;
//! `auth can-i` and `auth whoami` answered by kubegate; the kubeconfig that points kubectl there.
//! Against the fake API server; `real_cluster` runs the real kubectl against the real one.

use serde_json::{Value, json};

use crate::fake_kube::Kind;
use crate::helpers::{Options, TestApp, claims, hs_token, spawn_app, spawn_app_with};

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, format!("{}/k8s/dev{path}", app.address))
        .bearer_auth(token);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn forbidden(status: u16, body: &Value) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], "Forbidden", "{body}");
    assert_eq!(body["code"], 403, "{body}");
}

#[tokio::test]
async fn requests_are_decided_by_kubegates_roles_and_changes_are_audited() {
    let app = spawn_app().await;
    app.deploy_web().await;
    let fake = app.fake("dev");
    let viewer = hs_token(&claims("val", &["viewer@dev/default"]));
    let deployer = hs_token(&claims("dana", &["deployer@dev/default"]));
    use reqwest::Method as M;

    // Discovery and reads: what the API server answers.
    let (status, version) = call(&app, &viewer, M::GET, "/version", None, None).await;
    assert_eq!(status, 200, "{version}");
    assert!(version["gitVersion"].is_string(), "{version}");
    let (status, groups) = call(&app, &viewer, M::GET, "/apis", None, None).await;
    assert_eq!(
        (status, groups["kind"].as_str()),
        (200, Some("APIGroupList"))
    );
    let (status, list) = call(
        &app,
        &viewer,
        M::GET,
        "/apis/apps/v1/namespaces/default/deployments",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    // Secrets are not a viewer's; another namespace is not the grant's.
    let (status, body) = call(
        &app,
        &viewer,
        M::GET,
        "/api/v1/namespaces/default/secrets",
        None,
        None,
    )
    .await;
    forbidden(status, &body);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("list secrets (read secrets) needs the admin role"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        &viewer,
        M::GET,
        "/api/v1/namespaces/kube-system/pods",
        None,
        None,
    )
    .await;
    forbidden(status, &body);

    // A change: a viewer may not, a deployer may; audited with the API server's status.
    fake.clear_requests();
    fake.record_requests(true);
    let scale = json!({"spec": {"replicas": 3}});
    let path = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let (status, body) = call(
        &app,
        &viewer,
        M::PATCH,
        path,
        Some("application/merge-patch+json"),
        Some(scale.clone()),
    )
    .await;
    forbidden(status, &body);
    assert!(fake.mutations().is_empty(), "nothing reached the cluster");
    let (status, body) = call(
        &app,
        &deployer,
        M::PATCH,
        path,
        Some("application/merge-patch+json"),
        Some(scale),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "Scale");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        3
    );
    // Forwarded with kubegate's credentials, never the caller's token.
    let sent = fake.mutations();
    assert_eq!(sent.len(), 1);
    assert!(
        !sent[0]
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v.contains(&deployer)),
        "the caller's token reached the cluster"
    );

    let (_, log) = app.get_json("/v1/audit?subject=dana").await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items[0]["stage"], "outcome", "{log}");
    assert_eq!(items[0]["httpStatus"], 200);
    assert_eq!(items[1]["stage"], "intent");
    assert_eq!(items[1]["action"], "kubectl patch");
    assert_eq!(items[1]["resourceKind"], "deployments.apps/scale");
    assert_eq!(items[1]["resourceName"], "web");
    assert_eq!(items[1]["request"]["interface"], "kubernetes");
    assert_eq!(items[1]["interface"], "kubernetes");
    assert_eq!(
        items[1]["request"]["bodySha256"].as_str().unwrap().len(),
        64
    );
    let (_, log) = app.get_json("/v1/audit?subject=val&outcome=denied").await;
    assert_eq!(log["items"][0]["stage"], "rejected", "{log}");

    // Deletes are an admin's, as through the REST API.
    let pod = fake.list(Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &app,
        &deployer,
        M::DELETE,
        &format!("/api/v1/namespaces/default/pods/{pod}"),
        None,
        None,
    )
    .await;
    forbidden(status, &body);
    // The caller cannot pose as someone else: Impersonate-* headers are dropped.
    fake.clear_requests();
    let res = app
        .client
        .get(format!(
            "{}/k8s/dev/api/v1/namespaces/default/pods",
            app.address
        ))
        .bearer_auth(&viewer)
        .header("Impersonate-User", "system:admin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.headers.iter().any(|(n, _)| n.starts_with("impersonate-")))
    );
}

#[tokio::test]
async fn can_i_and_whoami_are_answered_by_kubegates_roles() {
    let app = spawn_app().await;
    let deployer = hs_token(&claims("dana", &["deployer@dev/default"]));
    let review = |verb: &str, group: &str, resource: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "group": group, "resource": resource}}})
    };
    let ask = |body: Value| {
        let (app, deployer) = (&app, &deployer);
        async move {
            call(
                app,
                deployer,
                reqwest::Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Some("application/json"),
                Some(body),
            )
            .await
        }
    };
    let (status, body) = ask(review("patch", "apps", "deployments")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["allowed"], true, "{body}");
    let (_, body) = ask(review("delete", "", "pods")).await;
    assert_eq!(body["status"]["allowed"], false, "{body}");
    assert!(
        body["status"]["reason"].as_str().unwrap().contains("admin"),
        "{body}"
    );
    let (_, body) = ask(review("get", "", "secrets")).await;
    assert_eq!(body["status"]["allowed"], false, "{body}");

    let (status, body) = call(
        &app,
        &deployer,
        reqwest::Method::POST,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some("application/json"),
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"]["userInfo"]["username"], "dana");
}

#[tokio::test]
async fn with_impersonation_the_cluster_hears_who_is_asking() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.impersonate_clusters = vec!["d*".into()]),
        ..Default::default()
    })
    .await;
    let fake = app.fake("dev");
    fake.clear_requests();
    fake.record_requests(true);
    let token = hs_token(
        &json!({"iss": crate::helpers::TEST_ISSUER, "aud": crate::helpers::TEST_AUDIENCE, "sub": "val", "groups": ["sre", "oncall"], "kubegate_roles": ["viewer"], "exp": jsonwebtoken_exp()}),
    );
    let (status, body) = call(
        &app,
        &token,
        reqwest::Method::GET,
        "/api/v1/namespaces/default/pods",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with("/pods"))
        .unwrap();
    let header = |name: &str| -> Vec<String> {
        r.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(
        header("impersonate-user"),
        [format!("{}#val", crate::helpers::TEST_ISSUER)]
    );
    let mut groups = header("impersonate-group");
    groups.sort();
    assert_eq!(groups, ["oncall", "sre"]);
}

fn jsonwebtoken_exp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

#[tokio::test]
async fn the_kubeconfig_points_kubectl_at_kubegate() {
    let app = spawn_app().await;
    let res = app.get("/v1/clusters/dev/kubeconfig").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/yaml");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let text = res.text().await.unwrap();
    let config: Value = serde_saphyr::from_str(&text).unwrap();
    let server = config["clusters"][0]["cluster"]["server"].as_str().unwrap();
    assert_eq!(server, format!("{}/k8s/dev", app.address));
    assert_eq!(config["users"][0]["user"]["exec"]["command"], "kubegate");
    assert_eq!(
        config["users"][0]["user"]["exec"]["args"],
        json!(["credential"])
    );
    assert!(config["users"][0]["user"].get("token").is_none());
    assert_eq!(config["contexts"][0]["context"]["namespace"], "default");

    let res = app
        .client
        .get(format!(
            "{}/v1/clusters/dev/kubeconfig?embedToken=true&namespace=shop",
            app.address
        ))
        .bearer_auth(&app.token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let config: Value = res.json().await.unwrap();
    assert_eq!(config["users"][0]["user"]["token"], app.token.as_str());
    assert_eq!(config["contexts"][0]["context"]["namespace"], "shop");

    // The credential plugin hands kubectl the token.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegate"))
        .arg("credential")
        .env("KUBEGATE_TOKEN", "a.b.c")
        .output()
        .unwrap();
    assert!(out.status.success());
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cred["kind"], "ExecCredential");
    assert_eq!(cred["status"]["token"], "a.b.c");
}

#[tokio::test]
async fn without_the_audit_log_a_change_through_kubectl_does_not_reach_the_cluster() {
    let (proxy, app) =
        crate::audit::deployed_behind_a_cuttable_proxy(std::time::Duration::from_secs(1)).await;
    let fake = app.fake("dev");
    fake.record_requests(true);
    proxy.cut();
    let (status, body) = call(
        &app,
        &app.token,
        reqwest::Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        Some("application/merge-patch+json"),
        Some(json!({"spec": {"replicas": 4}})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the request was not sent to the cluster"),
        "{body}"
    );
    assert!(fake.mutations().is_empty(), "the cluster was touched");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        1
    );
}

#[tokio::test]
async fn access_reviews_answer_for_kubernetes_requests_too() {
    let app = spawn_app().await;
    let deployer = hs_token(&claims("dana", &["deployer@dev/default"]));
    let ask = |body: Value| {
        let (app, deployer) = (&app, &deployer);
        async move {
            let res = app
                .send_as(
                    Some(deployer),
                    reqwest::Method::POST,
                    "/v1/access-reviews",
                    Some(body),
                )
                .await;
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = ask(json!({"cluster": "dev", "namespace": "default",
        "resourceAttributes": {"verb": "patch", "group": "apps", "resource": "deployments", "subresource": "scale"}}))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allowed"], true, "{body}");
    let (_, body) = ask(json!({"cluster": "dev", "namespace": "default",
        "resourceAttributes": {"verb": "get", "resource": "secrets"}}))
    .await;
    assert_eq!(body["allowed"], false, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("get secrets (read secrets) needs the admin role"),
        "{body}"
    );
    // The same as the endpoint decides.
    let (status, _) = call(
        &app,
        &deployer,
        reqwest::Method::GET,
        "/api/v1/namespaces/default/secrets/x",
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    // One of the two, not both or neither.
    let (status, _) = ask(json!({"cluster": "dev", "verb": "scale", "resourceAttributes": {"verb": "get", "resource": "pods"}})).await;
    assert_eq!(status, 422);
    let (status, _) = ask(json!({"cluster": "dev"})).await;
    assert_eq!(status, 422);
    // A request the API server answers 404 comes back as its Status.
    let (status, body) = call(
        &app,
        &deployer,
        reqwest::Method::GET,
        "/api/v1/namespaces/default/pods/nothing",
        None,
        None,
    )
    .await;
    assert_eq!((status, &body["kind"]), (404, &json!("Status")), "{body}");
}
