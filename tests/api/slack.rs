//! Slack slash commands: requests signed the way Slack documents, users mapped through the policy
//! file, answers in blocks, long commands finished on a local stand-in for `response_url`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::fake_kube::Kind;
use crate::helpers::{Options, TestApp, claims, deploy_body, hs_token, now, spawn_app_with};

const SECRET: &str = "slack-signing-secret-for-tests";
const SLACK: &str = "/v1/integrations/slack/commands";

const POLICY: &str = r#"
people:
  - subject: alice
    groups: [shop-team]
    aliases: ["slack:T1/U_ALICE"]
  - subject: bob
    aliases: ["slack:U_BOB"]
bindings:
  - name: slack-app
    subjects: [slack]
    grants:
      - {role: delegate, clusters: [dev], namespaces: ["*"]}
      - {role: deployer, clusters: [dev], namespaces: ["*"]}
  - name: shop-team
    groups: [shop-team]
    grants:
      - {role: deployer, clusters: [dev], namespaces: [shop, other]}
channels:
  - id: "slack:T1/C_SHOP"
    clusters: [dev]
    namespaces: [shop]
    defaultNamespace: shop
  - id: "slack:C_OPS"
"#;

/// A local stand-in for Slack's `response_url`: records what is posted to it.
struct Hook {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

async fn hook() -> Hook {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let sink = sink.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |body: actix_web::web::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body.into_inner());
                    actix_web::HttpResponse::Ok().body("ok")
                }
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Hook {
        url: format!("http://127.0.0.1:{port}/commands/T1/123/abc"),
        received,
    }
}

impl Hook {
    async fn next(&self) -> Value {
        crate::helpers::eventually(
            "a post to response_url",
            Duration::from_secs(20),
            async || self.received.lock().unwrap().first().cloned(),
        )
        .await
    }
}

async fn slack_app(hook: &Hook) -> (TestApp, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), POLICY).unwrap();
    let path = file.path().to_owned();
    let prefix = hook.url.split("/commands").next().unwrap().to_owned() + "/";
    let app = spawn_app_with(Options {
        auth: Box::new(move |a| a.policy_file = Some(path)),
        config: Box::new(move |c| {
            c.slack.slack_signing_secret = Some(SECRET.to_owned().into());
            c.slack.slack_response_url_prefix = prefix;
        }),
        ..Options::default()
    })
    .await;
    for n in ["shop", "other"] {
        app.fake("dev")
            .create(Kind::Namespace, "", json!({"metadata": {"name": n}}));
        app.put(
            &format!("/v1/clusters/dev/namespaces/{n}/deployments/web"),
            deploy_body("nginx:1", Some(1)),
        )
        .await;
    }
    app.fake("dev").settle().await;
    (app, file)
}

fn form(user: &str, channel: &str, text: &str, response_url: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", "deprecated-verification-token")
        .append_pair("team_id", "T1")
        .append_pair("channel_id", channel)
        .append_pair("user_id", user)
        .append_pair("user_name", "someone")
        .append_pair("command", "/kubegate")
        .append_pair("text", text)
        .append_pair("response_url", response_url)
        .finish()
}

/// Slack's signature: v0= hex HMAC-SHA256(secret, "v0:{timestamp}:{body}").
fn sign(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v0={hex}")
}

async fn post(app: &TestApp, body: &str, timestamp: u64, signature: &str) -> reqwest::Response {
    app.client
        .post(format!("{}{SLACK}", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// A correctly signed slash command; the Slack message answered.
async fn slash(app: &TestApp, hook: &Hook, user: &str, channel: &str, text: &str) -> Value {
    let body = form(user, channel, text, &hook.url);
    let ts = now();
    let res = post(app, &body, ts, &sign(SECRET, ts, &body)).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn message_text(m: &Value) -> String {
    m["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["text"]["text"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| b["elements"][0]["text"].as_str().unwrap_or("").to_owned())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn audit_of(app: &TestApp, audit_id: &str) -> Vec<Value> {
    let (_, page) = app.get_json(&format!("/v1/audit/{audit_id}")).await;
    page["items"].as_array().unwrap().clone()
}

fn essence(e: &Value) -> Value {
    json!({
        "stage": e["stage"], "outcome": e["outcome"], "subject": e["subject"], "groups": e["groups"],
        "delegatedBy": e["delegatedBy"], "decision": e["decision"], "action": e["action"],
        "cluster": e["cluster"], "namespace": e["namespace"], "resourceKind": e["resourceKind"],
        "resourceName": e["resourceName"], "request": e["request"], "httpStatus": e["httpStatus"],
    })
}

#[tokio::test]
async fn a_slash_command_runs_for_the_mapped_person_like_the_same_command_through_rest() {
    let hook = hook().await;
    let (app, _policy) = slack_app(&hook).await;

    let m = slash(
        &app,
        &hook,
        "U_ALICE",
        "C_SHOP",
        "scale deployment/web --replicas=2",
    )
    .await;
    assert_eq!(m["response_type"], "in_channel", "{m}");
    let text = message_text(&m);
    assert!(
        text.contains("<@U_ALICE> `scale deployment/web --replicas=2`"),
        "{text}"
    );
    assert!(text.contains("```deployment.apps/web scaled```"), "{text}");
    assert!(text.contains("dev/shop · audit "), "{text}");
    let d = app
        .fake("dev")
        .get(Kind::Deployment, "shop", "web")
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);

    // The same command through REST, by a token of the Slack app's subject acting for alice.
    let bot = hs_token(&claims("slack", &[]));
    let res = app
        .client
        .post(format!("{}/v1/clusters/dev/commands", app.address))
        .bearer_auth(&bot)
        .header("x-on-behalf-of", "alice")
        .json(&json!({"command": "scale deployment/web --replicas=2", "namespace": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rest: Value = res.json().await.unwrap();

    let (_, page) = app
        .get_json("/v1/audit?action=scale&delegatedBy=slack")
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{page}");
    let by_rest = audit_of(&app, rest["auditId"].as_str().unwrap()).await;
    let chat_id = items
        .iter()
        .find(|e| e["auditId"] != rest["auditId"])
        .unwrap()["auditId"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_chat = audit_of(&app, &chat_id).await;
    assert_eq!(
        by_chat.iter().map(essence).collect::<Vec<_>>(),
        by_rest.iter().map(essence).collect::<Vec<_>>()
    );
    assert_eq!(by_chat[0]["subject"], "alice");
    assert_eq!(by_chat[0]["delegatedBy"], "slack");
    assert_eq!(by_chat[0]["path"], SLACK);
    assert_eq!(by_chat[0]["issuer"], "slack");

    // Reads answer only the person, as a kubectl table.
    let m = slash(&app, &hook, "U_ALICE", "C_SHOP", "get deployments").await;
    assert_eq!(m["response_type"], "ephemeral");
    let text = message_text(&m);
    assert!(text.contains("NAME   READY   UP-TO-DATE"), "{text}");

    // A channel without limits of its own reaches what alice's grants reach, no more.
    let m = slash(
        &app,
        &hook,
        "U_ALICE",
        "C_OPS",
        "scale deploy/web --replicas=3 -n other",
    )
    .await;
    assert_eq!(m["response_type"], "in_channel", "{m}");
    let m = slash(
        &app,
        &hook,
        "U_ALICE",
        "C_OPS",
        "scale deploy/web --replicas=3 -n default",
    )
    .await;
    assert_eq!(m["response_type"], "ephemeral");
    assert!(message_text(&m).contains("needs the deployer role"), "{m}");
}

#[tokio::test]
async fn unmapped_users_channel_limits_and_bad_lines_are_refused_in_the_chat_and_audited() {
    let hook = hook().await;
    let (app, _policy) = slack_app(&hook).await;
    let fake = app.fake("dev");
    fake.clear_requests();

    let m = slash(&app, &hook, "U_MALLORY", "C_SHOP", "delete deploy web").await;
    assert_eq!(m["response_type"], "ephemeral");
    assert!(
        message_text(&m).contains("not mapped to a kubegate subject"),
        "{m}"
    );

    // The shop channel reaches namespace shop only; unlisted channels nothing.
    let m = slash(
        &app,
        &hook,
        "U_ALICE",
        "C_SHOP",
        "scale deploy/web --replicas=3 -n other",
    )
    .await;
    assert!(
        message_text(&m).contains("this channel may not run commands"),
        "{m}"
    );
    let m = slash(&app, &hook, "U_ALICE", "C_RANDOM", "get pods").await;
    assert!(
        message_text(&m).contains("this channel may not run commands"),
        "{m}"
    );

    let m = slash(&app, &hook, "U_ALICE", "C_SHOP", "attach web").await;
    assert!(
        message_text(&m).contains("`attach` is not supported"),
        "{m}"
    );
    // An unknown cluster: named with the clusters alice may see.
    let m = slash(
        &app,
        &hook,
        "U_ALICE",
        "C_OPS",
        "scale deploy/web --replicas=1 --context prod",
    )
    .await;
    assert!(message_text(&m).contains("known clusters: dev"), "{m}");

    assert!(fake.mutations().is_empty(), "{:?}", fake.mutations());
    let (_, page) = app.get_json("/v1/audit?limit=50").await;
    let outcomes: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == SLACK)
        .map(|e| {
            (
                e["outcome"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("invalid", "alice"),
            ("invalid", "alice"),
            ("denied", "alice"),
            ("denied", "alice"),
            ("denied", "slack"),
        ],
        "newest first"
    );
}

#[tokio::test]
async fn only_fresh_correctly_signed_requests_are_accepted_and_never_twice() {
    let hook = hook().await;
    let (app, _policy) = slack_app(&hook).await;
    let scales = || {
        app.fake("dev")
            .mutations()
            .iter()
            .filter(|r| r.path.ends_with("/scale"))
            .count()
    };
    let body = form(
        "U_ALICE",
        "C_SHOP",
        "scale deployment/web --replicas=4",
        &hook.url,
    );
    let ts = now();

    let wrong = post(&app, &body, ts, &sign("not-the-secret", ts, &body)).await;
    assert_eq!(wrong.status(), 401);
    let tampered = body.replace("replicas%3D4", "replicas%3D9");
    let res = post(&app, &tampered, ts, &sign(SECRET, ts, &body)).await;
    assert_eq!(res.status(), 401);
    let stale = ts - 301;
    let res = post(&app, &body, stale, &sign(SECRET, stale, &body)).await;
    assert_eq!(res.status(), 401);
    // Well past the 5-minute window: the clock may tick a few seconds before kubegate checks.
    let future = ts + 310;
    let res = post(&app, &body, future, &sign(SECRET, future, &body)).await;
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .post(format!("{}{SLACK}", app.address))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(scales(), 0);

    let signature = sign(SECRET, ts, &body);
    let ok = post(&app, &body, ts, &signature).await;
    assert_eq!(ok.status(), 200);
    let replay = post(&app, &body, ts, &signature).await;
    assert_eq!(replay.status(), 401);
    let p: Value = replay.json().await.unwrap();
    assert!(
        p["detail"].as_str().unwrap().contains("already received"),
        "{p}"
    );
    assert_eq!(scales(), 1, "one action for one signed request");

    let (_, page) = app.get_json("/v1/audit?outcome=unauthenticated").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 6, "{page}");
}

#[tokio::test]
async fn a_command_that_waits_answers_at_once_and_posts_the_result_to_response_url() {
    let hook = hook().await;
    let (app, _policy) = slack_app(&hook).await;
    let m = slash(
        &app,
        &hook,
        "U_ALICE",
        "C_SHOP",
        "set image deployment/web web=nginx:1.28 --wait",
    )
    .await;
    assert_eq!(m["response_type"], "ephemeral");
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .starts_with("Working on `set image"),
        "{m}"
    );
    let posted = hook.next().await;
    assert_eq!(posted["response_type"], "in_channel", "{posted}");
    let text = message_text(&posted);
    assert!(
        text.contains(
            "deployment.apps/web image updated\ndeployment \"web\" successfully rolled out"
        ),
        "{text}"
    );
    let d = app
        .fake("dev")
        .get(Kind::Deployment, "shop", "web")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    let (_, page) = app.get_json("/v1/audit?action=set_image").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    assert!(
        items
            .iter()
            .all(|e| e["subject"] == "alice" && e["path"] == SLACK)
    );

    // A response_url that is not Slack's is refused for a waiting command.
    let body = form(
        "U_ALICE",
        "C_SHOP",
        "rollout status deployment/web",
        "http://evil.example/x",
    );
    let ts = now();
    let res = post(&app, &body, ts, &sign(SECRET, ts, &body)).await;
    let m: Value = res.json().await.unwrap();
    assert!(
        message_text(&m).contains("response_url is not Slack's"),
        "{m}"
    );
}
