//! kubectl command lines (`POST /v1/clusters/{cluster}/commands`) and delegation
//! (`X-On-Behalf-Of`): the same Action, decision and audit entry as the REST door.

use serde_json::{Value, json};

use crate::fake_kube::{Kind, PodBehavior};
use crate::helpers::{
    Options, TestApp, assert_problem, claims, deploy_body, hs_token, ns, spawn_app, spawn_app_with,
};

const COMMANDS: &str = "/v1/clusters/dev/commands";

async fn command(app: &TestApp, line: &str) -> (u16, Value) {
    app.post(COMMANDS, json!({"command": line})).await
}

async fn command_as(
    app: &TestApp,
    token: &str,
    on_behalf_of: Option<&str>,
    line: &str,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}{COMMANDS}", app.address))
        .bearer_auth(token)
        .json(&json!({"command": line, "namespace": "shop"}));
    if let Some(who) = on_behalf_of {
        req = req.header("x-on-behalf-of", who);
    }
    req.send().await.unwrap()
}

/// The audit entries of one audit id (intent first).
async fn audit_of(app: &TestApp, audit_id: &str) -> Vec<Value> {
    let (status, page) = app.get_json(&format!("/v1/audit/{audit_id}")).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// What must be equal between the REST and the command door.
fn essence(e: &Value) -> Value {
    json!({
        "stage": e["stage"], "outcome": e["outcome"], "subject": e["subject"],
        "delegatedBy": e["delegatedBy"], "decision": e["decision"], "action": e["action"],
        "cluster": e["cluster"], "namespace": e["namespace"], "resourceKind": e["resourceKind"],
        "resourceName": e["resourceName"], "request": e["request"], "httpStatus": e["httpStatus"],
        "dryRun": e["dryRun"],
    })
}

#[tokio::test]
async fn a_command_runs_as_its_rest_operation_with_the_same_action_decision_and_audit() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1.27", Some(1)))
        .await;
    let fake = app.fake("dev");
    fake.settle().await;

    let (s, rest) = app
        .put(&ns("/deployments/web/replicas"), json!({"replicas": 2}))
        .await;
    assert_eq!(s, 200, "{rest}");
    let (s, cmd) = command(&app, "kubectl scale deployment/web --replicas=2").await;
    assert_eq!(s, 200, "{cmd}");
    assert_eq!(cmd["output"], "deployment.apps/web scaled");
    assert_eq!(cmd["operation"], "scale_deployment");
    assert_eq!(cmd["namespace"], "default");
    assert_eq!(cmd["result"]["deployment"]["replicas"]["desired"], 2);
    assert_eq!(cmd["auditId"], cmd["result"]["auditId"]);

    let by_rest = audit_of(&app, rest["auditId"].as_str().unwrap()).await;
    let by_cmd = audit_of(&app, cmd["auditId"].as_str().unwrap()).await;
    assert_eq!(by_rest.len(), 2);
    assert_eq!(
        by_rest.iter().map(essence).collect::<Vec<_>>(),
        by_cmd.iter().map(essence).collect::<Vec<_>>(),
        "same action, decision and audit entries"
    );
    assert_eq!(by_cmd[0]["path"], COMMANDS);
    assert!(by_cmd[0]["decision"].as_str().unwrap().contains("admin"));

    // The cluster saw the same call from both doors: two PATCHes of the scale subresource.
    let scale_calls: Vec<_> = fake
        .mutations()
        .into_iter()
        .filter(|r| r.path.ends_with("/deployments/web/scale"))
        .collect();
    assert_eq!(scale_calls.len(), 2);
    assert_eq!(scale_calls[0].method, scale_calls[1].method);
}

#[tokio::test]
async fn commands_answer_like_kubectl_for_every_verb() {
    let app = spawn_app().await;
    let fake = app.fake("dev");

    let (s, b) = command(
        &app,
        "create deployment web --image=nginx:1.27 --replicas=2 --port=80",
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["output"], "deployment.apps/web created");
    assert_eq!(b["result"]["created"], true);
    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["name"],
        "nginx"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    // kubectl create refuses an existing Deployment, and so does the command: audited, unchanged.
    let res = app
        .send(
            reqwest::Method::POST,
            COMMANDS,
            Some(json!({"command": "create deployment web --image=nginx:9"})),
        )
        .await;
    let p = assert_problem(res, 409, "conflict").await;
    assert_eq!(p["detail"], "deployments.apps \"web\" already exists");
    let d = fake.get(Kind::Deployment, "default", "web").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let (_, failed) = app.get_json("/v1/audit?action=create&outcome=failed").await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1, "{failed}");

    let (s, b) = command(&app, "run api --image=nginx:1.27 -n default").await;
    assert_eq!(s, 201, "{b}");
    let d = fake.get(Kind::Deployment, "default", "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["name"],
        "api"
    );
    fake.settle().await;

    let (s, b) = command(&app, "get deployments").await;
    assert_eq!(s, 200, "{b}");
    let out = b["output"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("api    1/1     1            1           "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("web    2/2     2            2           "),
        "{out}"
    );
    assert_eq!(b["result"]["items"].as_array().unwrap().len(), 2);

    let (_, b) = command(&app, "get pods -l app=web").await;
    let out = b["output"].as_str().unwrap();
    assert!(out.starts_with("NAME"), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines()
            .skip(1)
            .all(|l| l.contains("1/1     Running   0")),
        "{out}"
    );

    let (_, b) = command(&app, "get pods -n empty").await;
    assert_eq!(b["output"], "No resources found in empty namespace.");

    let (s, b) = command(
        &app,
        "expose deployment web --port=80 --target-port=8080 --type=NodePort",
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["output"], "service/web exposed");
    let (_, b) = command(&app, "get svc").await;
    let out = b["output"].as_str().unwrap();
    assert!(out.starts_with("NAME   TYPE       CLUSTER-IP"), "{out}");
    assert!(out.contains("NodePort") && out.contains("80:3"), "{out}");

    let (_, b) = command(&app, "get all").await;
    let out = b["output"].as_str().unwrap();
    for kind in [
        "pod/web-",
        "service/web",
        "deployment.apps/web",
        "replicaset.apps/web-",
    ] {
        assert!(out.contains(kind), "{kind} in {out}");
    }

    let (s, b) = command(
        &app,
        "set image deployment/web nginx=nginx:1.28 --wait --timeout=30s",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["output"],
        "deployment.apps/web image updated\ndeployment \"web\" successfully rolled out"
    );
    assert_eq!(b["result"]["rollout"]["done"], true);

    let (_, b) = command(&app, "rollout history deployment/web").await;
    let out = b["output"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "deployment.apps/web ");
    assert_eq!(lines[1], "REVISION   CHANGE-CAUSE");
    assert!(
        lines[2].starts_with("1          kubegate create web"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("2          kubegate set image web nginx=nginx:1.28"),
        "{out}"
    );

    let (s, b) = command(&app, "rollout undo deployment/web").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["output"], "deployment.apps/web rolled back");
    fake.settle().await;
    let (_, b) = command(&app, "rollout status deployment/web").await;
    assert_eq!(b["output"], "deployment \"web\" successfully rolled out");
    let (_, b) = command(&app, "rollout status deployment/web --watch=false").await;
    assert_eq!(b["result"]["done"], true);

    let (_, b) = command(&app, "rollout restart deploy web --dry-run=server").await;
    assert_eq!(
        b["output"],
        "deployment.apps/web restarted (server dry run)"
    );
    assert_eq!(b["dryRun"], true);

    let (s, b) = command(&app, "label deployment web tier=frontend").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["output"], "deployment.apps/web labeled");
    assert_eq!(b["result"]["labels"]["tier"], "frontend");

    let (_, b) = command(&app, "describe deployment web").await;
    let out = b["output"].as_str().unwrap();
    assert!(
        out.starts_with("Name:              web\nNamespace:         default"),
        "{out}"
    );
    assert!(
        out.contains("Replicas:          2 desired | 2 updated"),
        "{out}"
    );
    assert!(out.contains("    Image:  nginx:1.27"), "{out}");

    let pod = fake.list(Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let container = fake.list(Kind::Pod, "default")[0]["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.append_log("default", &pod, &container, "hello from the pod");
    let (s, b) = command(&app, &format!("logs {pod} --tail 5")).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["output"].as_str().unwrap().contains("hello from the pod"),
        "{b}"
    );

    let (_, b) = command(&app, "version").await;
    assert!(
        b["output"]
            .as_str()
            .unwrap()
            .starts_with("Server Version: v1."),
        "{b}"
    );
    let (_, b) = command(&app, "cluster-info").await;
    assert!(
        b["output"]
            .as_str()
            .unwrap()
            .starts_with("Kubernetes control plane is running at http://127.0.0.1:"),
        "{b}"
    );

    let (s, b) = command(&app, "delete svc web").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["output"], "service \"web\" deleted");
    assert!(fake.get(Kind::Service, "default", "web").is_none());
    let (_, b) = command(&app, "delete pods -l app=api --dry-run=server").await;
    let out = b["output"].as_str().unwrap();
    assert!(
        out.starts_with("pod \"api-") && out.ends_with("deleted (server dry run)"),
        "{out}"
    );
    let (s, b) = command(&app, "delete deployment api").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["output"], "deployment.apps \"api\" deleted");
}

#[tokio::test]
async fn a_waited_rollout_that_fails_says_so() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.set_image_behavior(
        "nginx:broken",
        PodBehavior::Waiting("ImagePullBackOff".into()),
    );
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    fake.settle().await;
    let (s, b) = command(
        &app,
        "set image deployment/web web=nginx:broken --wait --timeout=20s",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result"]["rollout"]["done"], false, "{b}");
    let out = b["output"].as_str().unwrap();
    assert!(
        out.starts_with("deployment.apps/web image updated\n"),
        "{out}"
    );
}

#[tokio::test]
async fn unsupported_hostile_or_malformed_lines_are_refused_before_any_cluster_call() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    fake.clear_requests();
    for (line, says) in [
        ("attach web-1", "`attach` is not supported; supported: get"),
        ("port-forward web 8080:80", "kubegate port-forward"),
        ("apply -f x.yaml", "supported: get"),
        (
            "get pods --all-namespaces",
            "flag --all-namespaces of `get`",
        ),
        ("get pods; rm -rf /", "unexpected argument 'rm'"),
        ("get pods;", "`get pods;` is not supported"),
        ("scale deployment/$(reboot) --replicas=1", ""),
        ("label pod 'unterminated", "unterminated quote"),
        ("get pods --dry-run=server", "applies to changes"),
        (
            "scale deployment/web --replicas=1 --context=prod",
            "another cluster",
        ),
        ("", "empty"),
    ] {
        let res = app
            .send(
                reqwest::Method::POST,
                COMMANDS,
                Some(json!({"command": line})),
            )
            .await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        if line.contains("$(reboot)") {
            // Kept literal, so it is an invalid name (422), not something run.
            assert_eq!(status, 422, "{line}: {body}");
            continue;
        }
        assert_eq!(status, 400, "{line}: {body}");
        assert_eq!(body["type"], "urn:kubegate:problem:bad-request");
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{line}: {body}"
        );
    }
    let long = format!("get pods -l a={}", "x".repeat(3000));
    let (s, _) = command(&app, &long).await;
    assert_eq!(s, 400);
    let (s, b) = command(&app, "label pod wëb ünïcode=✓").await;
    assert_eq!(s, 422, "{b}");
    assert!(
        fake.requests().is_empty(),
        "no cluster call: {:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn a_viewer_reads_but_may_not_change_through_commands() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    let viewer = hs_token(&claims("vic", &["viewer"]));
    let res = app
        .send_as(
            Some(&viewer),
            reqwest::Method::POST,
            COMMANDS,
            Some(json!({"command": "get deploy"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .send_as(
            Some(&viewer),
            reqwest::Method::POST,
            COMMANDS,
            Some(json!({"command": "scale deploy/web --replicas=5"})),
        )
        .await;
    let p = assert_problem(res, 403, "forbidden").await;
    assert!(p["detail"].as_str().unwrap().contains("deployer"), "{p}");
    let (_, denied) = app.get_json("/v1/audit?outcome=denied&subject=vic").await;
    assert_eq!(denied["items"][0]["action"], "scale", "{denied}");
}

fn delegation_policy() -> String {
    r#"
people:
  - subject: alice
    groups: [shop-team]
    aliases: ["slack:T1/U_ALICE"]
  - subject: bob
bindings:
  - name: chatbot
    subjects: [chatbot]
    grants:
      - {role: delegate, clusters: [dev], namespaces: ["*"]}
      - {role: deployer, clusters: [dev], namespaces: [shop, other]}
      - {role: viewer, clusters: [dev], namespaces: [vault]}
  - name: shop-team
    groups: [shop-team]
    grants:
      - {role: deployer, clusters: [dev], namespaces: [shop]}
      - {role: admin, clusters: [dev], namespaces: [vault]}
  - name: plainbot
    subjects: [plainbot]
    grants:
      - {role: admin, clusters: [dev], namespaces: ["*"]}
"#
    .to_owned()
}

async fn delegation_app() -> (TestApp, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), delegation_policy()).unwrap();
    let path = file.path().to_owned();
    let app = spawn_app_with(Options {
        auth: Box::new(move |a| a.policy_file = Some(path)),
        ..Options::default()
    })
    .await;
    for n in ["shop", "other", "vault"] {
        app.fake("dev")
            .create(Kind::Namespace, "", json!({"metadata": {"name": n}}));
        app.put(
            &format!("/v1/clusters/dev/namespaces/{n}/deployments/web"),
            deploy_body("nginx:1", Some(1)),
        )
        .await;
    }
    (app, file)
}

#[tokio::test]
async fn a_bot_acts_for_a_person_within_both_their_grants_and_the_audit_names_both() {
    let (app, _policy) = delegation_app().await;
    let bot = hs_token(&claims("chatbot", &[]));

    // Alice may scale in shop, and so may the bot: allowed, recorded as alice via chatbot.
    let res = command_as(&app, &bot, Some("alice"), "scale deploy/web --replicas=2").await;
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    let entries = audit_of(&app, b["auditId"].as_str().unwrap()).await;
    assert_eq!(entries[0]["subject"], "alice");
    assert_eq!(entries[0]["groups"], json!(["shop-team"]));
    assert_eq!(entries[0]["delegatedBy"], "chatbot");
    let decision = entries[0]["decision"].as_str().unwrap();
    assert!(decision.contains("policy:shop-team"), "{decision}");
    assert!(decision.contains("chatbot"), "{decision}");
    let (_, by_bot) = app.get_json("/v1/audit?delegatedBy=chatbot").await;
    assert_eq!(by_bot["items"].as_array().unwrap().len(), 2);

    // A chat alias names the same person.
    let res = command_as(&app, &bot, Some("slack:T1/U_ALICE"), "get deploy").await;
    assert_eq!(res.status(), 200);

    // The bot may deploy in `other`, alice may not: the person's grants decide.
    let res = command_as(
        &app,
        &bot,
        Some("alice"),
        "scale deploy/web --replicas=2 -n other",
    )
    .await;
    let p = assert_problem(res, 403, "forbidden").await;
    assert!(
        p["detail"].as_str().unwrap().contains("acting for alice"),
        "{p}"
    );

    // Alice is admin in `vault`, the bot only a viewer there: never more than the bot's own.
    let res = command_as(&app, &bot, Some("alice"), "delete deploy web -n vault").await;
    let p = assert_problem(res, 403, "forbidden").await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("limited to its own grants"),
        "{p}"
    );
    assert!(
        app.fake("dev")
            .get(Kind::Deployment, "vault", "web")
            .is_some()
    );

    // The same through REST, with the header.
    let res = app
        .client
        .put(format!(
            "{}/v1/clusters/dev/namespaces/other/deployments/web/replicas",
            app.address
        ))
        .bearer_auth(&bot)
        .header("x-on-behalf-of", "alice")
        .json(&json!({"replicas": 3}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let (_, denied) = app
        .get_json("/v1/audit?outcome=denied&delegatedBy=chatbot")
        .await;
    let denied = denied["items"].as_array().unwrap();
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(denied.iter().all(|e| e["subject"] == "alice"));

    // whoami and access reviews show the delegation.
    let res = app
        .client
        .get(format!("{}/v1/whoami", app.address))
        .bearer_auth(&bot)
        .header("x-on-behalf-of", "alice")
        .send()
        .await
        .unwrap();
    let me: Value = res.json().await.unwrap();
    assert_eq!(
        (me["subject"].as_str(), me["delegatedBy"].as_str()),
        (Some("alice"), Some("chatbot"))
    );
}

#[tokio::test]
async fn naming_a_person_needs_the_delegate_role_and_a_person_the_policy_knows() {
    let (app, _policy) = delegation_app().await;
    let fake = app.fake("dev");
    fake.clear_requests();
    // plainbot is admin everywhere, but may not act for anyone.
    let plain = hs_token(&claims("plainbot", &[]));
    let res = command_as(&app, &plain, Some("alice"), "scale deploy/web --replicas=4").await;
    let p = assert_problem(res, 403, "forbidden").await;
    assert!(
        p["detail"].as_str().unwrap().contains("delegate role"),
        "{p}"
    );
    // A token's own admin claim does not give delegate either.
    let admin = hs_token(&claims("root2", &["admin"]));
    let res = command_as(&app, &admin, Some("alice"), "get deploy").await;
    assert_problem(res, 403, "forbidden").await;

    let bot = hs_token(&claims("chatbot", &[]));
    for nobody in ["mallory", "slack:T1/U_NOBODY", ""] {
        let res = command_as(&app, &bot, Some(nobody), "get deploy").await;
        assert_problem(res, 403, "forbidden").await;
    }
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    // The refusals are audited with the bot as the caller.
    let (_, denied) = app
        .get_json("/v1/audit?outcome=denied&subject=plainbot")
        .await;
    assert_eq!(denied["items"].as_array().unwrap().len(), 1, "{denied}");
    // Without the header the bot is itself.
    let res = command_as(&app, &bot, None, "scale deploy/web --replicas=4").await;
    assert_eq!(res.status(), 200);
}
