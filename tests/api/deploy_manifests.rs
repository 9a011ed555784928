//! The Kubernetes manifests: the ClusterRole grants exactly the calls kubegate makes (derived from
//! the fake API server's request log while kubegate runs every operation, not listed by hand),
//! apply's ClusterRole the kinds a deployer may apply, and the kustomization renders.

use std::collections::BTreeSet;

use serde_json::json;

use crate::fake_kube::PodBehavior;
use crate::helpers::{deploy_body, ns, spawn_app};

#[derive(serde::Deserialize)]
struct Role {
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

/// (API group, resource[/subresource], verbs) of one request, as RBAC sees it. A server-side
/// apply may create the object, so it needs `create` as well as `patch`; an exec over a
/// WebSocket (a GET) needs `create` too since Kubernetes 1.35 (as a POST over SPDY always did).
fn rbac_of(r: &crate::fake_kube::Recorded) -> Vec<(String, String, String)> {
    let apply = r.content_type.starts_with("application/apply-patch");
    let upgrade = r.path.ends_with("/exec") || r.path.ends_with("/portforward");
    match rbac_one(&r.method, &r.path, &r.query) {
        Some((g, res, v)) if apply || upgrade => {
            vec![(g.clone(), res.clone(), v), (g, res, "create".into())]
        }
        Some(one) => vec![one],
        None => Vec::new(),
    }
}

fn rbac_one(
    method: &str,
    path: &str,
    query: &std::collections::HashMap<String, String>,
) -> Option<(String, String, String)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None, // /version, discovery: readable by every authenticated client
    };
    let (resource, name, sub) = match rest {
        ["namespaces", _ns, resource, tail @ ..] => {
            (*resource, tail.first().copied(), tail.get(1).copied())
        }
        [resource, tail @ ..] => (*resource, tail.first().copied(), tail.get(1).copied()),
        [] => return None,
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_owned(),
    };
    let verb = match (method, name.is_some()) {
        ("GET", false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group.to_owned(), resource, verb.to_owned()))
}

fn grants(yaml: &str) -> BTreeSet<(String, String, String)> {
    let role: Role = serde_saphyr::from_str(yaml).unwrap();
    role.rules
        .iter()
        .flat_map(|r| {
            r.api_groups.iter().flat_map(move |g| {
                r.resources.iter().flat_map(move |res| {
                    r.verbs
                        .iter()
                        .map(move |v| (g.clone(), res.clone(), v.clone()))
                })
            })
        })
        .collect()
}

#[tokio::test]
async fn the_cluster_role_grants_exactly_the_calls_kubegate_makes() {
    let granted = grants(include_str!("../../deploy/kubernetes/clusterrole.yaml"));
    // Apply's own role: the kinds a deployer may apply by default, whatever one run applies.
    let for_apply = grants(include_str!(
        "../../deploy/kubernetes/clusterrole-apply.yaml"
    ));
    let deployer_groups: BTreeSet<&str> = kubegate::config::DEFAULT_APPLY_DEPLOYER_KINDS
        .split(',')
        .map(|p| p.split('/').next().unwrap())
        .map(|g| if g == "core" { "" } else { g })
        .collect();
    for (group, resource, verb) in &for_apply {
        assert!(
            deployer_groups.contains(group.as_str()),
            "{group}/{resource} {verb}: not a kind a deployer may apply"
        );
    }

    // Every operation kubegate offers, once.
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior(
        "app:slow",
        PodBehavior::ReadyAfter(std::time::Duration::from_millis(200)),
    );
    for path in [
        "/v1/clusters",
        "/v1/clusters/dev",
        "/v1/clusters/dev/namespaces",
        "/v1/clusters/dev/nodes",
    ] {
        assert_eq!(app.get(path).await.status().as_u16(), 200, "{path}");
    }
    let ok = |(status, body): (u16, serde_json::Value)| assert!(status < 300, "{status}: {body}");
    ok(app
        .put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await);
    fake.settle().await;
    ok(app
        .put(
            &ns("/deployments/web/replicas?wait=true&timeoutSeconds=10"),
            json!({"replicas": 2}),
        )
        .await);
    ok(app
        .put(
            &ns("/deployments/web/image?wait=true&timeoutSeconds=10"),
            json!({"image": "app:slow"}),
        )
        .await);
    ok(app.post(&ns("/deployments/web/restart"), json!({})).await);
    fake.settle().await;
    ok(app.post(&ns("/deployments/web/rollback"), json!({})).await);
    ok(app
        .post(&ns("/deployments/web/expose"), json!({"port": 80}))
        .await);
    ok(app.put(&ns("/services/db"), json!({"type": "ExternalName", "externalName": "db.example.com", "labels": {"tier": "db"}})).await);
    ok(app
        .put(&ns("/deployments/web/labels"), json!({"set": {"a": "b"}}))
        .await);
    ok(app
        .put(&ns("/services/web/labels"), json!({"set": {"a": "b"}}))
        .await);
    fake.settle().await;
    let pod = fake.list(crate::fake_kube::Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let rs = fake.list(crate::fake_kube::Kind::ReplicaSet, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(app
        .put(
            &ns(&format!("/pods/{pod}/labels")),
            json!({"set": {"a": "b"}}),
        )
        .await);
    ok(app
        .post(
            &ns(&format!("/pods/{pod}/exec")),
            json!({"command": ["echo", "hi"]}),
        )
        .await);
    let forward = crate::exec::open_ws(
        &app,
        &ns(&format!("/pods/{pod}/portforward?ports=80")),
        "v4.channel.k8s.io",
    )
    .await;
    drop(forward);
    // The proxy forwards every method; each is its own verb to RBAC.
    for target in [
        format!("/pods/{pod}/proxy/"),
        "/services/web:80/proxy/".to_owned(),
    ] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::PATCH,
            reqwest::Method::DELETE,
        ] {
            let res = app.send(method.clone(), &ns(&target), None).await;
            assert_eq!(res.status(), 200, "{method} {target}");
        }
    }
    for path in [
        "/deployments",
        "/deployments/web",
        "/deployments/web/rollout",
        "/deployments/web/revisions",
        "/deployments/web/revisions/1",
        "/replicasets",
        "/services",
        "/services/web",
        "/pods",
        &format!("/pods/{pod}"),
        &format!("/pods/{pod}/logs?tailLines=1"),
        "/events",
        "/all",
        &format!("/pods/{pod}/events"),
        &format!("/pods/{pod}/describe"),
        "/deployments/web/events",
        "/deployments/web/describe",
        "/services/web/events",
        "/services/web/describe",
        &format!("/replicasets/{rs}/describe"),
        &format!("/replicasets/{rs}/events"),
    ] {
        let status = app.get(&ns(path)).await.status().as_u16();
        assert!(
            status < 300 || path.ends_with("/revisions/1"),
            "{path}: {status}"
        );
    }
    let res = app
        .get(&ns("/deployments/web/rollout?watch=true&timeoutSeconds=1"))
        .await;
    let _ = res.bytes().await;
    let manifest = json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "nginx:1"}]}},
        }},
    ]);
    ok(app
        .post(&ns("/apply?wait=true&timeoutSeconds=10"), manifest)
        .await);
    ok(app.delete(&ns(&format!("/pods/{pod}"))).await);
    ok(app.delete(&ns("/pods?labelSelector=app%3Dweb")).await);
    ok(app.delete(&ns("/services?labelSelector=tier%3Ddb")).await);
    ok(app.delete(&ns("/services/web")).await);
    ok(app.delete(&ns("/deployments/web")).await);

    let used: BTreeSet<(String, String, String)> =
        fake.requests().iter().flat_map(rbac_of).collect();
    let both: BTreeSet<_> = granted.union(&for_apply).cloned().collect();
    let missing: Vec<_> = used.difference(&both).collect();
    assert!(
        missing.is_empty(),
        "kubegate makes calls the ClusterRole does not grant: {missing:?}"
    );
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the ClusterRole grants what kubegate never does (least privilege): {unused:?}"
    );
}

#[test]
fn the_kustomization_renders() {
    let Ok(out) = std::process::Command::new("kubectl")
        .args([
            "kustomize",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes"),
        ])
        .output()
    else {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let kinds: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(
            kinds.contains(kind),
            "{kind} missing from the rendered manifests"
        );
    }
    assert!(
        text.contains("readOnlyRootFilesystem: true")
            && text.contains("runAsNonRoot: true")
            && text.contains("replicas: 2")
    );
}

/// The Dockerfile's dependency layer builds a stub crate from the real manifest; cargo refuses a
/// manifest whose declared targets are missing, so every bench and test target needs its stub.
#[test]
fn the_dockerfile_stubs_every_target_the_manifest_declares() {
    let manifest: toml::Table = include_str!("../../Cargo.toml").parse().unwrap();
    let dockerfile = include_str!("../../Dockerfile");
    let stubbed: Vec<&str> = dockerfile
        .split("for b in ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the bench stub loop")
        .split_whitespace()
        .collect();
    assert!(dockerfile.contains(r#"> "benches/$b.rs""#));
    for bench in manifest["bench"].as_array().unwrap() {
        let name = bench["name"].as_str().unwrap();
        assert!(
            stubbed.contains(&name),
            "the Dockerfile does not stub bench {name}"
        );
    }
    for test in manifest["test"].as_array().unwrap() {
        let path = test["path"].as_str().unwrap();
        assert!(
            dockerfile.contains(&format!("> {path}")),
            "the Dockerfile does not stub test {path}"
        );
    }
}
