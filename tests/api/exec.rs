//! `kubectl exec` through kubegate against the fake API server's exec (its WebSocket protocol as
//! kube-apiserver serves it): one-shot and interactive, each checked, audited and recorded; the
//! recording replays what the client saw and the chain covers it.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::fake_kube::PodBehavior;
use crate::helpers::{
    Options, TestApp, assert_problem, claims, deploy_body, eventually, hs_token, ns, spawn_app,
    spawn_app_with,
};

/// Deploy `name` with `image` and return its pod's name once it is running.
pub async fn pod_of(app: &TestApp, name: &str, image: &str) -> String {
    let (status, body) = app
        .put(
            &ns(&format!("/deployments/{name}")),
            deploy_body(image, Some(1)),
        )
        .await;
    assert!(status == 201 || status == 200, "{body}");
    app.fake("dev").settle().await;
    let (_, pods) = app
        .get_json(&ns(&format!("/pods?labelSelector=app%3D{name}")))
        .await;
    pods["items"][0]["name"].as_str().expect("a pod").to_owned()
}

pub async fn exec(app: &TestApp, pod: &str, body: Value) -> (u16, Value) {
    app.post(&ns(&format!("/pods/{pod}/exec")), body).await
}

/// The entries of one audit id, oldest first, once its outcome is written.
async fn closed(app: &TestApp, audit_id: &str) -> Vec<Value> {
    eventually(
        "the session's outcome",
        Duration::from_secs(10),
        async || {
            let (status, body) = app.get_json(&format!("/v1/audit/{audit_id}")).await;
            assert_eq!(status, 200, "{body}");
            let mut items = body["items"].as_array().unwrap().clone();
            items.reverse();
            (items.len() == 2).then_some(items)
        },
    )
    .await
}

pub async fn recording(app: &TestApp, audit_id: &str) -> (Value, Vec<Value>) {
    let res = app.get(&format!("/v1/audit/{audit_id}/recording")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/x-asciicast"
    );
    let text = res.text().await.unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let events = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    (header, events)
}

/// The text of a recording's events of one code (`o`, `i`, `r`).
pub fn events_of(events: &[Value], code: &str) -> String {
    events
        .iter()
        .filter(|e| e[1] == code)
        .map(|e| e[2].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_one_shot_exec_answers_output_and_exit_code_and_is_audited_and_recorded() {
    let app = spawn_app().await;
    let pod = pod_of(&app, "web", "nginx:1").await;

    let (status, body) = exec(
        &app,
        &pod,
        json!({"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "out\n");
    assert_eq!(body["stderr"], "err\n");
    assert_eq!(body["exitCode"], 3, "a non-zero exit is an answer");
    assert_eq!(body["truncated"], false);
    assert_eq!(body["timedOut"], false);
    let id = body["auditId"].as_str().unwrap().to_owned();

    // The fake saw the command as kubectl sends it.
    let asked = app
        .fake("dev")
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/exec"))
        .expect("an exec request");
    assert_eq!(
        asked.path,
        format!("/api/v1/namespaces/default/pods/{pod}/exec")
    );
    assert_eq!(asked.query.get("stdout").map(String::as_str), Some("true"));

    let entries = closed(&app, &id).await;
    assert_eq!(entries[0]["stage"], "intent");
    assert_eq!(entries[0]["action"], "exec");
    assert_eq!(entries[0]["resourceName"], pod.as_str());
    let asked: Value = entries[0]["request"].clone();
    assert_eq!(
        asked["command"],
        json!(["sh", "-c", "echo out; echo err >&2; exit 3"])
    );
    assert_eq!(entries[1]["outcome"], "succeeded");
    let result: Value = entries[1]["result"].clone();
    assert_eq!(result["exitCode"], 3);
    assert_eq!(result["ended"], "exited");
    assert_eq!(result["recording"]["outputBytes"], 8);

    // The recording replays what was answered, in order.
    let (header, events) = recording(&app, &id).await;
    assert_eq!(header["version"], 2);
    assert!(
        header["title"].as_str().unwrap().contains("echo out"),
        "{header}"
    );
    assert_eq!(events_of(&events, "o"), "out\nerr\n");
    let verified = app.get_json("/v1/audit/verify").await.1;
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["recordingsVerified"], 1, "{verified}");
}

#[tokio::test]
async fn a_one_shot_exec_takes_stdin_caps_output_and_times_out() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.sessions.exec_output_max_bytes = 1000),
        ..Default::default()
    })
    .await;
    let pod = pod_of(&app, "web", "nginx:1").await;

    let (status, body) = exec(
        &app,
        &pod,
        json!({"command": ["cat"], "stdin": "hello\nworld\n"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "hello\nworld\n");
    assert_eq!(body["exitCode"], 0);

    let (status, body) = exec(&app, &pod, json!({"command": ["seq", "100000"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"].as_str().unwrap().len(), 1000);
    assert!(body["stdout"].as_str().unwrap().starts_with("1\n2\n3\n"));
    assert_eq!(body["truncated"], true);
    assert_eq!(body["exitCode"], 0);
    // What is kept is what is recorded.
    let (_, events) = recording(&app, body["auditId"].as_str().unwrap()).await;
    assert_eq!(events_of(&events, "o"), body["stdout"].as_str().unwrap());

    let (status, body) = exec(
        &app,
        &pod,
        json!({"command": ["sh", "-c", "echo started; sleep 30"], "timeoutSeconds": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timedOut"], true);
    assert_eq!(body["stdout"], "started\n");
    assert_eq!(body["exitCode"], Value::Null);
    let entries = closed(&app, body["auditId"].as_str().unwrap()).await;
    let result: Value = entries[1]["result"].clone();
    assert_eq!(result["ended"], "timed-out");
}

#[tokio::test]
async fn exec_refusals_are_clear_problems() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let pod = pod_of(&app, "web", "nginx:1").await;

    let (status, body) = exec(&app, "nope", json!({"command": ["echo", "hi"]})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = exec(
        &app,
        &pod,
        json!({"command": ["echo", "hi"], "container": "other"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("other"), "{body}");

    // A pod whose container does not run.
    fake.set_image_behavior("stuck:1", PodBehavior::Waiting("ImagePullBackOff".into()));
    let stuck = pod_of(&app, "stuck", "stuck:1").await;
    let (status, body) = exec(&app, &stuck, json!({"command": ["echo", "hi"]})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("ImagePullBackOff"),
        "{body}"
    );

    // No such program, and no shell in the image.
    let (status, body) = exec(&app, &pod, json!({"command": ["nosuch"]})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:exec-failed");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("executable file not found")
    );
    let bare = pod_of(&app, "bare", "distroless-app:1").await;
    let (status, body) = exec(&app, &bare, json!({"command": ["sh"]})).await;
    assert_eq!(status, 422, "{body}");

    // Invalid input never reaches the cluster.
    fake.clear_requests();
    for body in [
        json!({"command": []}),
        json!({"command": [""]}),
        json!({"command": ["echo"], "container": "Not_A_Name"}),
        json!({"command": ["echo"], "timeoutSeconds": 0}),
        json!({"command": ["echo"], "extra": 1}),
    ] {
        let (status, answer) = exec(&app, &pod, body.clone()).await;
        assert!(status == 422 || status == 400, "{body} → {status} {answer}");
    }
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[tokio::test]
async fn exec_needs_the_exec_permission_and_a_dry_run_only_checks_it() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let pod = pod_of(&app, "web", "nginx:1").await;
    fake.clear_requests();
    let path = ns(&format!("/pods/{pod}/exec"));
    for role in ["viewer", "deployer"] {
        let token = hs_token(&claims("someone", &[role]));
        let res = app
            .send_as(
                Some(&token),
                reqwest::Method::POST,
                &path,
                Some(json!({"command": ["id"]})),
            )
            .await;
        let id = res.headers()["x-audit-id"].to_str().unwrap().to_owned();
        let body = assert_problem(res, 403, "forbidden").await;
        assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
        let (_, entries) = app.get_json(&format!("/v1/audit/{id}")).await;
        assert_eq!(entries["items"][0]["outcome"], "denied");
        assert_eq!(entries["items"][0]["action"], "exec");
    }
    let (status, review) = app
        .post(
            "/v1/access-reviews",
            json!({"verb": "exec", "cluster": "dev", "namespace": "default"}),
        )
        .await;
    assert_eq!((status, &review["allowed"]), (200, &json!(true)));

    let (status, body) = app
        .post(&format!("{path}?dryRun=true"), json!({"command": ["id"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dryRun"], true);
    assert!(
        !fake.requests().iter().any(|r| r.path.ends_with("/exec")),
        "a dry run runs nothing"
    );
}

pub type Session =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket exec session in a pod of cluster `dev`, namespace `default`.
async fn open_session(app: &TestApp, pod: &str, query: &str, protocol: &str) -> Session {
    open_ws(
        app,
        &format!("{}?{query}", ns(&format!("/pods/{pod}/exec"))),
        protocol,
    )
    .await
}

/// A WebSocket session at `path` (with its query), as a Kubernetes client opens it.
pub async fn open_ws(app: &TestApp, path: &str, protocol: &str) -> Session {
    let url = format!("{}{path}", app.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token).parse().unwrap(),
    );
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgraded");
    assert_eq!(
        response.headers()["sec-websocket-protocol"]
            .to_str()
            .unwrap(),
        protocol.split(',').next().unwrap().trim()
    );
    ws
}

pub fn frame(channel: u8, data: &[u8]) -> Message {
    let mut f = vec![channel];
    f.extend_from_slice(data);
    Message::Binary(f.into())
}

#[tokio::test]
async fn an_interactive_session_relays_the_channel_protocol_and_its_recording_replays_it() {
    let app = spawn_app().await;
    let pod = pod_of(&app, "web", "nginx:1").await;
    let mut ws = open_session(
        &app,
        &pod,
        "command=sh&stdin=true&stdout=true&tty=true",
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(frame(4, br#"{"Width":100,"Height":40}"#))
        .await
        .unwrap();
    ws.send(frame(0, b"stty size\r")).await.unwrap();

    // Everything on stdout, as the client saw it, until the size comes back.
    let mut seen = Vec::new();
    let mut status = None;
    let mut asked_to_exit = false;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the session answers")
    {
        match message.unwrap() {
            Message::Binary(data) => match data.split_first() {
                Some((1, out)) => {
                    seen.extend_from_slice(out);
                    if !asked_to_exit && String::from_utf8_lossy(&seen).contains("40 100") {
                        asked_to_exit = true;
                        ws.send(frame(0, b"exit 0\r")).await.unwrap();
                    }
                }
                Some((3, s)) => status = Some(serde_json::from_slice::<Value>(s).unwrap()),
                other => panic!("unexpected frame {other:?}"),
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(status.unwrap()["status"], "Success");
    let seen = String::from_utf8(seen).unwrap();
    assert!(
        seen.starts_with("$ stty size\r\n40 100\n$ exit 0\r\n"),
        "{seen:?}"
    );

    // Find the session: the exec entry of this pod.
    let (_, page) = app.get_json("/v1/audit?action=exec").await;
    let id = page["items"][0]["auditId"].as_str().unwrap().to_owned();
    let entries = closed(&app, &id).await;
    let result: Value = entries[1]["result"].clone();
    assert_eq!(result["exitCode"], 0);
    assert_eq!(result["recording"]["inputBytes"], 17);
    assert_eq!(result["recording"]["inputRecorded"], false);

    let (header, events) = recording(&app, &id).await;
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(100), Some(40))
    );
    assert_eq!(
        events_of(&events, "o"),
        seen,
        "the replay is what the client saw"
    );
    assert_eq!(
        events_of(&events, "i"),
        "",
        "input is not recorded by default"
    );
    assert_eq!(events_of(&events, "r"), "100x40");
    let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[tokio::test]
async fn input_is_recorded_when_configured_and_v4_clients_are_served() {
    let app = spawn_app_with(Options {
        config: Box::new(|c| c.sessions.session_record_input = true),
        ..Default::default()
    })
    .await;
    let pod = pod_of(&app, "web", "nginx:1").await;
    // A v4 client (no close signal): the shell reads its commands from stdin.
    let mut ws = open_session(
        &app,
        &pod,
        "command=sh&stdin=true&stdout=true&stderr=true",
        "v4.channel.k8s.io",
    )
    .await;
    ws.send(frame(0, b"echo hi\nexit 4\n")).await.unwrap();
    let mut status = None;
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Binary(data) = message
            && data.first() == Some(&3)
        {
            status = Some(serde_json::from_slice::<Value>(&data[1..]).unwrap());
        }
    }
    let status = status.expect("a status");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "4");

    let (_, page) = app.get_json("/v1/audit?action=exec").await;
    let id = page["items"][0]["auditId"].as_str().unwrap().to_owned();
    closed(&app, &id).await;
    let (_, events) = recording(&app, &id).await;
    assert_eq!(events_of(&events, "o"), "hi\n");
    assert_eq!(events_of(&events, "i"), "echo hi\nexit 4\n");
}

#[tokio::test]
async fn an_interactive_exec_is_refused_before_the_upgrade_when_it_cannot_run() {
    let app = spawn_app().await;
    let pod = pod_of(&app, "web", "nginx:1").await;
    let url = format!(
        "{}{}?command=sh&stdin=true&tty=true",
        app.address.replace("http://", "ws://"),
        ns(&format!("/pods/{pod}/exec"))
    );
    // No channel protocol offered.
    let mut request = url.clone().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 400);
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // A viewer.
    let mut request = url.into_client_request().unwrap();
    let viewer = hs_token(&claims("someone", &["viewer"]));
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {viewer}").parse().unwrap());
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 403);
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // A plain GET is told what to do.
    let res = app.get(&ns(&format!("/pods/{pod}/exec?command=sh"))).await;
    let body = assert_problem(res, 400, "bad-request").await;
    assert!(
        body["detail"].as_str().unwrap().contains("WebSocket"),
        "{body}"
    );
}

#[tokio::test]
async fn a_session_whose_recording_cannot_be_written_is_ended_and_an_edited_recording_is_found() {
    let app = spawn_app().await;
    let pod = pod_of(&app, "web", "nginx:1").await;
    let mut ws = open_session(
        &app,
        &pod,
        "command=sh&stdin=true&stdout=true&tty=true",
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(frame(0, b"echo one\r")).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("one\n") {
        if let Some(Ok(Message::Binary(d))) = ws.next().await
            && d.first() == Some(&1)
        {
            seen.push_str(&String::from_utf8_lossy(&d[1..]));
        }
    }
    // The recording's table goes away under kubegate's feet.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .unwrap();
    // Let what was seen be written first (a flush is at most 200 ms away).
    eventually(
        "the first chunks stored",
        Duration::from_secs(5),
        async || {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM session_chunk")
                .fetch_one(&mut admin)
                .await
                .unwrap();
            (n > 0).then_some(())
        },
    )
    .await;
    sqlx::query("ALTER TABLE session_chunk RENAME TO session_chunk_away")
        .execute(&mut admin)
        .await
        .unwrap();
    ws.send(frame(0, b"echo two\r")).await.unwrap();
    let mut status = None;
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Binary(d) = message
            && d.first() == Some(&3)
        {
            status = Some(serde_json::from_slice::<Value>(&d[1..]).unwrap());
        }
    }
    let status = status.expect("a status saying why");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("recording could not be written"),
        "{status}"
    );
    sqlx::query("ALTER TABLE session_chunk_away RENAME TO session_chunk")
        .execute(&mut admin)
        .await
        .unwrap();
    let (_, page) = app.get_json("/v1/audit?action=exec").await;
    let id = page["items"][0]["auditId"].as_str().unwrap().to_owned();
    let entries = closed(&app, &id).await;
    assert_eq!(entries[1]["outcome"], "failed");
    let result: Value = entries[1]["result"].clone();
    assert_eq!(result["ended"], "recording-failed");
    // What was stored still verifies.
    let verified = app.get_json("/v1/audit/verify").await.1;
    assert_eq!(verified["intact"], true, "{verified}");

    // Someone with the database's keys edits the recording: verification finds it.
    sqlx::query("ALTER TABLE session_chunk DISABLE TRIGGER USER")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("UPDATE session_chunk SET data = 'rm -rf /' WHERE seq = 0")
        .execute(&mut admin)
        .await
        .unwrap();
    let verified = app.get_json("/v1/audit/verify").await.1;
    assert_eq!(verified["intact"], false, "{verified}");
    assert!(
        verified["firstBreak"]["reason"]
            .as_str()
            .unwrap()
            .contains("recording"),
        "{verified}"
    );
}

#[tokio::test]
async fn chat_runs_a_one_shot_exec_and_sends_interactive_ones_elsewhere() {
    let app = spawn_app().await;
    let pod = pod_of(&app, "web", "nginx:1").await;
    let (status, body) = app
        .post(
            "/v1/clusters/dev/commands",
            json!({"command": format!("kubectl exec {pod} -- sh -c 'echo hi; echo oops >&2; exit 2'")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operation"], "exec_in_pod");
    assert_eq!(
        body["output"],
        "hi\noops\ncommand terminated with exit code 2\n"
    );
    assert_eq!(body["result"]["exitCode"], 2);
    let id = body["auditId"].as_str().expect("an audit id");
    let entries = closed(&app, id).await;
    assert_eq!(entries[0]["action"], "exec");

    for (line, says) in [
        (format!("exec -it {pod} -- sh"), "terminal"),
        (
            format!("port-forward pod/{pod} 8080:80"),
            "kubegate port-forward",
        ),
    ] {
        let (status, body) = app
            .post("/v1/clusters/dev/commands", json!({"command": line}))
            .await;
        assert_eq!(status, 400, "{line}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{line}: {body}"
        );
    }
    let viewer = hs_token(&claims("someone", &["viewer"]));
    let res = app
        .send_as(
            Some(&viewer),
            reqwest::Method::POST,
            "/v1/clusters/dev/commands",
            Some(json!({"command": format!("exec {pod} -- id")})),
        )
        .await;
    assert_problem(res, 403, "forbidden").await;
}

#[tokio::test]
async fn without_the_audit_log_no_exec_or_port_forward_reaches_the_cluster() {
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let pod = pod_of(&app, "web", "nginx:1").await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_event RENAME TO audit_event_away")
        .execute(&mut admin)
        .await
        .unwrap();
    fake.clear_requests();
    let (status, body) = exec(&app, &pod, json!({"command": ["id"]})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:kubegate:problem:audit-unavailable");
    let url = format!(
        "{}{}",
        app.address.replace("http://", "ws://"),
        ns(&format!("/pods/{pod}/portforward?ports=80"))
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token).parse().unwrap(),
    );
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 503);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    let reached: Vec<String> = fake
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.ends_with("/exec") || p.ends_with("/portforward"))
        .collect();
    assert!(reached.is_empty(), "the cluster was asked: {reached:?}");
    sqlx::query("ALTER TABLE audit_event_away RENAME TO audit_event")
        .execute(&mut admin)
        .await
        .unwrap();
}
