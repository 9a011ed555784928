//! Apply of manifests (`kubectl apply --server-side -f`): YAML and JSON bodies, created /
//! configured / unchanged, diff and dry run, field conflicts, the kind policy, the limits, the
//! order of application, and one audited intent and outcome per apply. Against the fake API
//! server (its server-side apply, managed fields and discovery); `real_cluster` applies a CRD
//! and its objects on the real one.

use serde_json::{Value, json};

use crate::fake_kube::Kind;
use crate::helpers::{TestApp, assert_problem, claims, hs_token, spawn_app};

const APPLY: &str = "/v1/clusters/dev/namespaces/default/apply";

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: s3cr3t-value-never-shown
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
"#;

async fn apply_as(
    app: &TestApp,
    token: &str,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request")
}

async fn apply(app: &TestApp, path: &str, yaml: &str) -> (u16, Value) {
    let res = apply_as(app, &app.token, path, "application/yaml", yaml.to_owned()).await;
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON answer"))
}

fn results(body: &Value) -> Vec<String> {
    body["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            format!(
                "{}/{}={}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap(),
                o["result"].as_str().unwrap()
            )
        })
        .collect()
}

async fn audit_of(app: &TestApp, audit_id: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/v1/audit/{audit_id}")).await;
    assert_eq!(status, 200, "{body}");
    let mut items = body["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

#[tokio::test]
async fn a_manifest_is_created_then_unchanged_then_configured_and_audited_once() {
    let app = spawn_app().await;
    let fake = app.fake("dev");

    let (status, body) = apply(&app, APPLY, MANIFEST).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        results(&body),
        [
            "ConfigMap/web-config=created",
            "Secret/web-secret=created",
            "Deployment/web=created",
            "Service/web=created"
        ]
    );
    assert_eq!(body["counts"]["created"], 4);
    assert_eq!(body["objects"][2]["source"], "documents[2]");
    assert_eq!(body["objects"][2]["generation"], 1);
    assert_eq!(body["objects"][2]["namespace"], "default");
    let text = body.to_string();
    assert!(
        !text.contains("s3cr3t"),
        "no Secret value in the answer: {text}"
    );

    // What kubectl would see: the objects, applied by kubegate's field manager.
    let d = fake
        .get(Kind::Deployment, "default", "web")
        .expect("deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "kubegate");
    assert_eq!(d["metadata"]["managedFields"][0]["operation"], "Apply");
    let cm = fake.get(Kind::ConfigMap, "default", "web-config").unwrap();
    assert_eq!(cm["data"]["greeting"], "hello");
    assert!(fake.get(Kind::Secret, "default", "web-secret").is_some());

    // One intent listing every object, one outcome with each result; no Secret value in either.
    let id = body["auditId"].as_str().unwrap();
    let entries = audit_of(&app, id).await;
    let stages: Vec<&str> = entries
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["intent", "outcome"]);
    let intent = &entries[0];
    assert_eq!(intent["action"], "apply");
    assert_eq!(intent["request"]["objects"].as_array().unwrap().len(), 4);
    assert_eq!(intent["request"]["objects"][1]["kind"], "Secret");
    assert_eq!(intent["request"]["bodySha256"].as_str().unwrap().len(), 64);
    assert_eq!(entries[1]["outcome"], "succeeded");
    assert_eq!(entries[1]["result"]["counts"]["created"], 4);
    assert_eq!(entries[1]["result"]["objects"][2]["result"], "created");
    for e in &entries {
        assert!(
            !e.to_string().contains("s3cr3t"),
            "no Secret value audited: {e}"
        );
    }

    // The same manifest again: nothing changes, not even a resourceVersion.
    let rv = fake.get(Kind::Deployment, "default", "web").unwrap()["metadata"]["resourceVersion"]
        .clone();
    let (status, body) = apply(&app, APPLY, MANIFEST).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["counts"]["unchanged"], 4, "{body}");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["metadata"]["resourceVersion"],
        rv
    );

    // A new image: the Deployment alone is configured, its generation moves.
    let changed = MANIFEST.replace("image: nginx:1", "image: nginx:2");
    let (status, body) = apply(&app, APPLY, &changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        results(&body),
        [
            "ConfigMap/web-config=unchanged",
            "Secret/web-secret=unchanged",
            "Deployment/web=configured",
            "Service/web=unchanged"
        ]
    );
    assert_eq!(body["objects"][2]["generation"], 2);
    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
}

#[tokio::test]
async fn diff_is_a_dry_run_that_shows_what_would_change_but_never_a_secrets_value() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let (status, _) = apply(&app, APPLY, MANIFEST).await;
    assert_eq!(status, 200);

    let changed = MANIFEST
        .replace("image: nginx:1", "image: nginx:2")
        .replace("s3cr3t-value-never-shown", "an0ther-value-never-shown");
    let (status, body) = apply(&app, &format!("{APPLY}?diff=true"), &changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dryRun"], true);
    let diff = |i: usize| body["objects"][i]["diff"].as_str().unwrap_or("").to_owned();
    assert_eq!(body["objects"][0]["result"], "unchanged");
    assert_eq!(diff(0), "", "no change, no diff");
    let d = diff(2);
    assert!(d.contains("--- live/apps.v1.Deployment.default.web"), "{d}");
    assert!(d.contains("-      - image: nginx:1"), "{d}");
    assert!(d.contains("+      - image: nginx:2"), "{d}");
    assert!(!d.contains("managedFields"), "{d}");
    let s = diff(1);
    assert!(s.contains("password: (hidden, changed)"), "{s}");
    let text = body.to_string();
    for secret in ["s3cr3t", "an0ther", "czNjcjN0", "YW4wdGhlc"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // Nothing was applied.
    let live = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    assert_eq!(live["metadata"]["generation"], 1);
}

#[tokio::test]
async fn a_field_another_manager_owns_is_a_conflict_unless_forced() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let (status, _) = apply(&app, APPLY, MANIFEST).await;
    assert_eq!(status, 200);
    // Someone else takes the replicas with their own server-side apply (as `kubectl apply
    // --server-side --field-manager=ops --force-conflicts` would).
    let res = reqwest::Client::new()
        .patch(format!(
            "{}/apis/apps/v1/namespaces/default/deployments/web?fieldManager=ops&force=true",
            fake.url
        ))
        .header("content-type", "application/apply-patch+yaml")
        .body(r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    let changed = MANIFEST.replace("replicas: 2", "replicas: 3");
    let res = apply_as(&app, &app.token, APPLY, "application/yaml", changed.clone()).await;
    let body = assert_problem(res, 409, "conflict").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("documents[2]: "), "{detail}");
    assert!(
        detail.contains("ops") && detail.contains(".spec.replicas"),
        "{detail}"
    );
    assert_eq!(body["objects"][2]["result"], "failed", "{body}");
    assert_eq!(body["objects"][2]["error"]["status"], 409, "{body}");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        5
    );
    let (_, log) = app.get_json("/v1/audit?action=apply&limit=1").await;
    assert_eq!(log["items"][0]["stage"], "outcome", "{log}");
    assert_eq!(log["items"][0]["outcome"], "failed", "{log}");
    assert_eq!(log["items"][0]["httpStatus"], 409, "{log}");

    let (status, body) = apply(&app, &format!("{APPLY}?force=true"), &changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["objects"][2]["result"], "configured");
    assert_eq!(
        fake.get(Kind::Deployment, "default", "web").unwrap()["spec"]["replicas"],
        3
    );
}

#[tokio::test]
async fn what_a_role_may_not_apply_is_refused_before_anything_is_applied() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let deployer = hs_token(&claims("dana", &["deployer@dev/default"]));
    let with_namespace =
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n{MANIFEST}");
    let res = apply_as(
        &app,
        &deployer,
        "/v1/clusters/dev/apply",
        "application/yaml",
        with_namespace,
    )
    .await;
    let body = assert_problem(res, 403, "forbidden").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("documents[0] (Namespace shop)"), "{detail}");
    assert!(detail.contains("nothing was applied"), "{detail}");
    assert!(fake.get(Kind::ConfigMap, "default", "web-config").is_none());
    let (_, log) = app.get_json("/v1/audit?action=apply&limit=1").await;
    assert_eq!(log["items"][0]["stage"], "rejected");
    assert_eq!(log["items"][0]["outcome"], "denied");

    // Another namespace than the grant's.
    let elsewhere = MANIFEST.replace(
        "name: web-config",
        "name: web-config\n  namespace: kube-system",
    );
    let res = apply_as(
        &app,
        &deployer,
        "/v1/clusters/dev/apply",
        "application/yaml",
        elsewhere,
    )
    .await;
    assert_problem(res, 403, "forbidden").await;

    // The workload kinds of its namespace it may.
    let res = apply_as(&app, &deployer, APPLY, "application/yaml", MANIFEST).await;
    assert_eq!(res.status(), 200);

    // A viewer may apply nothing.
    let viewer = hs_token(&claims("val", &["viewer"]));
    let res = apply_as(&app, &viewer, APPLY, "application/yaml", MANIFEST).await;
    assert_problem(res, 403, "forbidden").await;
}

#[tokio::test]
async fn hostile_and_broken_manifests_get_problems_naming_the_document() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let send = |ct: &'static str, body: String| {
        let app = &app;
        async move { apply_as(app, &app.token, APPLY, ct, body).await }
    };

    // A "billion laughs": nine levels of ten aliases each.
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, cur) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        bomb.push_str(&format!("{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let body = assert_problem(send("application/yaml", bomb).await, 400, "bad-request").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("YAML"),
        "{body}"
    );

    let dup = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n".to_owned();
    assert_problem(send("application/yaml", dup).await, 400, "bad-request").await;
    let dup_json =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"}}"#.to_owned();
    assert_problem(send("application/json", dup_json).await, 400, "bad-request").await;
    assert_problem(
        send("application/yaml", "a: [unclosed\n".into()).await,
        400,
        "bad-request",
    )
    .await;

    let unknown =
        format!("{MANIFEST}---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w}}\n");
    let body = assert_problem(
        send("application/yaml", unknown).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "documents[4].kind", "{body}");

    let nameless = "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n".to_owned();
    let body = assert_problem(
        send("application/yaml", nameless).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(
        body["errors"][0]["field"], "documents[0].metadata.name",
        "{body}"
    );

    let other_ns =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: other}\n".to_owned();
    let body = assert_problem(
        send("application/yaml", other_ns).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(
        body["errors"][0]["field"], "documents[0].metadata.namespace",
        "{body}"
    );

    let many = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n".repeat(201);
    assert_problem(
        send("application/yaml", many).await,
        422,
        "validation-failed",
    )
    .await;

    let huge = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  x: \"{}\"\n",
        "x".repeat(10 * 1024 * 1024)
    );
    assert_problem(
        send("application/yaml", huge).await,
        413,
        "payload-too-large",
    )
    .await;
    assert_problem(
        send("text/plain", MANIFEST.into()).await,
        415,
        "unsupported-media-type",
    )
    .await;

    // None of it reached the cluster.
    assert!(fake.list(Kind::ConfigMap, "default").is_empty());
    let (_, log) = app.get_json("/v1/audit?action=apply").await;
    let refused = log["items"].as_array().unwrap();
    assert!(
        refused
            .iter()
            .all(|e| e["stage"] == "rejected" && e["outcome"] == "invalid"),
        "{log}"
    );
}

#[tokio::test]
async fn json_bodies_lists_and_the_order_namespaces_first() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    // A List whose ConfigMap lives in a Namespace written after it: the Namespace goes first.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    ]});
    let res = apply_as(
        &app,
        &app.token,
        "/v1/clusters/dev/apply",
        "application/json",
        list.to_string(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        results(&body),
        ["ConfigMap/c=created", "Namespace/shop=created"]
    );
    assert_eq!(body["objects"][0]["source"], "body.items[0]");
    assert!(body["objects"][1].get("namespace").is_none(), "{body}");
    assert!(fake.get(Kind::ConfigMap, "shop", "c").is_some());

    // An array; an object without a namespace goes to the cluster's default one.
    let array = json!([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}]);
    let res = apply_as(
        &app,
        &app.token,
        "/v1/clusters/dev/apply",
        "application/json",
        array.to_string(),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["objects"][0]["source"], "[0]");
    assert_eq!(body["objects"][0]["namespace"], "default");
}

#[tokio::test]
async fn after_a_failure_nothing_later_starts_unless_asked_to_continue() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    // The ConfigMap's namespace does not exist: it fails before the Deployment's step.
    let broken = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: missing}}\n---\n{}",
        MANIFEST.split("---").nth(2).unwrap()
    );
    let res = apply_as(
        &app,
        &app.token,
        "/v1/clusters/dev/apply",
        "application/yaml",
        broken.clone(),
    )
    .await;
    let body = assert_problem(res, 404, "not-found").await;
    assert_eq!(
        results(&body),
        ["ConfigMap/c=failed", "Deployment/web=skipped"]
    );
    assert!(fake.get(Kind::Deployment, "default", "web").is_none());

    let res = apply_as(
        &app,
        &app.token,
        "/v1/clusters/dev/apply?continueOnError=true",
        "application/yaml",
        broken,
    )
    .await;
    let body = assert_problem(res, 404, "not-found").await;
    assert_eq!(
        results(&body),
        ["ConfigMap/c=failed", "Deployment/web=created"]
    );
    assert!(fake.get(Kind::Deployment, "default", "web").is_some());
}

#[tokio::test]
async fn wait_answers_when_the_deployments_have_rolled_out() {
    let app = spawn_app().await;
    let (status, body) = apply(
        &app,
        &format!("{APPLY}?wait=true&timeoutSeconds=30"),
        MANIFEST,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rollout = &body["objects"][2]["rollout"];
    assert_eq!(rollout["done"], true, "{body}");
    assert_eq!(
        rollout["message"],
        "deployment \"web\" successfully rolled out"
    );
    assert!(
        body["objects"][3].get("rollout").is_none(),
        "services do not roll out"
    );
    let d = app
        .fake("dev")
        .get(Kind::Deployment, "default", "web")
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 2);
}
