//! `kubegate port-forward` through kubegate to the fake API server's port-forward (the kubelet's
//! WebSocket protocol): HTTP and a large transfer intact, many connections at once, each session
//! audited with its bytes, viewers refused, Ctrl-C ends it cleanly.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{TestApp, claims, deploy_body, eventually, hs_token, ns, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_kubegate");

/// `kubegate port-forward` running against `app`; its local ports in the order given.
pub struct Forwarder {
    pub child: tokio::process::Child,
    pub local: Vec<u16>,
    pub stderr: tokio::process::ChildStderr,
}

pub async fn port_forward(
    app: &TestApp,
    token: &str,
    cluster: &str,
    namespace: &str,
    pod: &str,
    ports: &[&str],
) -> Forwarder {
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "port-forward",
            "--server",
            &app.address,
            "--cluster",
            cluster,
        ])
        .args(["-n", namespace, &format!("pod/{pod}")])
        .args(ports)
        .env("KUBEGATE_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut local = Vec::new();
    while local.len() < ports.len() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("kubegate port-forward says where it listens")
            .unwrap()
            .expect("kubegate port-forward exited early");
        // "Forwarding from 127.0.0.1:PORT -> REMOTE", as kubectl prints it.
        let addr = line
            .strip_prefix("Forwarding from ")
            .and_then(|l| l.split(" -> ").next())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        local.push(addr.rsplit(':').next().unwrap().parse().unwrap());
    }
    // Keep reading stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let stderr = child.stderr.take().unwrap();
    Forwarder {
        child,
        local,
        stderr,
    }
}

/// One HTTP/1.1 GET over a fresh local connection; the whole answer.
pub async fn http_get(port: u16, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    // A refused session closes the connection, possibly with a reset (the request unread).
    let _ = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer))
        .await
        .expect("the answer comes");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn kubegate_port_forward_carries_http_and_a_large_transfer_and_each_session_is_audited() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    app.fake("dev").settle().await;
    let (_, pods) = app.get_json(&ns("/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    let forwarder = port_forward(&app, &app.token, "dev", "default", &pod, &[":80", ":7"]).await;
    let (http, echo) = (forwarder.local[0], forwarder.local[1]);

    // HTTP, and several connections at once (each its own session).
    let answer = http_get(http, "/index.html").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.ends_with(&format!("hello from {pod} at /index.html\n")),
        "{answer}"
    );
    let many = futures::future::join_all(
        (0..8).map(|i| http_get(http, Box::leak(format!("/{i}").into_boxed_str()))),
    )
    .await;
    for (i, answer) in many.iter().enumerate() {
        assert!(answer.ends_with(&format!(" at /{i}\n")), "{answer}");
    }

    // 10 MiB to the pod's echo port and back, intact.
    let sent: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", echo))
        .await
        .unwrap();
    let (mut rx, mut tx) = tcp.into_split();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        tx.write_all(&to_send).await.unwrap();
        tx
    });
    let mut back = vec![0u8; sent.len()];
    tokio::time::timeout(Duration::from_secs(60), rx.read_exact(&mut back))
        .await
        .expect("the echo comes back")
        .unwrap();
    assert!(back == sent, "the transfer came back changed");
    drop(writer.await.unwrap());
    drop(rx);

    // Each connection was a session: who, which pod and port, bytes each way.
    let echoed = eventually(
        "the echo session's outcome",
        Duration::from_secs(10),
        async || {
            let (_, page) = app.get_json("/v1/audit?action=portforward&limit=100").await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["stage"] == "outcome" && e["result"]["ports"] == serde_json::json!([7]))
                .cloned()
        },
    )
    .await;
    assert_eq!(echoed["subject"], "root");
    assert_eq!(echoed["resourceName"], pod.as_str());
    assert_eq!(echoed["result"]["bytesToPod"], 10 * 1024 * 1024);
    assert_eq!(echoed["result"]["bytesFromPod"], 10 * 1024 * 1024);
    let (_, page) = app.get_json("/v1/audit?action=portforward&limit=100").await;
    let intents = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stage"] == "intent")
        .count();
    assert_eq!(intents, 10, "one session per connection");

    // A port nothing listens on: the pod's error reaches the user.
    drop(forwarder);
    let mut refused = port_forward(&app, &app.token, "dev", "default", &pod, &[":9999"]).await;
    let answer = http_get(refused.local[0], "/").await;
    assert_eq!(answer, "");
    let mut err = BufReader::new(&mut refused.stderr).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), err.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.contains("connection refused"), "{line}");

    // Ctrl-C ends it, cleanly.
    let pid = refused.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), refused.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn port_forward_needs_the_portforward_permission() {
    let app = spawn_app().await;
    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
        .await;
    app.fake("dev").settle().await;
    let (_, pods) = app.get_json(&ns("/pods")).await;
    let pod = pods["items"][0]["name"].as_str().unwrap().to_owned();
    app.fake("dev").clear_requests();
    let viewer = hs_token(&claims("someone", &["deployer"]));
    let mut forwarder = port_forward(&app, &viewer, "dev", "default", &pod, &[":80"]).await;
    assert_eq!(http_get(forwarder.local[0], "/").await, "");
    let mut err = BufReader::new(&mut forwarder.stderr).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), err.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.contains("403") && line.contains("admin"), "{line}");
    assert!(
        !app.fake("dev")
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/portforward")),
        "refused before the cluster"
    );
    let (_, page) = app.get_json("/v1/audit?action=portforward").await;
    assert_eq!(page["items"][0]["outcome"], "denied");
    assert_eq!(page["items"][0]["subject"], "someone");
}
