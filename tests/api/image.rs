//! The container image, run with podman: `scripts/image-check` builds the Dockerfile and names the
//! image in KUBEGATE_TEST_IMAGE (and the commit it was built from in KUBEGATE_TEST_IMAGE_COMMIT).
//! Each test starts the image with `--network host` and a read-only root file system, against a
//! fresh database and a cluster: the real control plane when there is one, else a fake API server.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::control_plane;
use crate::fake_kube::FakeKube;
use crate::helpers::{TEST_SECRET, TestDatabase, deploy_body, eventually, wait_for_an_intent};

/// The image under test, or a line saying the test is skipped.
fn image_or_skip(test: &str) -> Option<String> {
    match std::env::var("KUBEGATE_TEST_IMAGE") {
        Ok(image) if !image.is_empty() => Some(image),
        _ => {
            eprintln!(
                "SKIPPED {test}: KUBEGATE_TEST_IMAGE is not set (scripts/image-check builds the \
                 image with podman and sets it)"
            );
            None
        }
    }
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e}"))
}

/// `podman ARGS`, which must succeed; its standard output.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A kubegate container serving on a loopback port of the host; removed when dropped.
struct Served {
    name: String,
    address: String,
    database: TestDatabase,
    _kubeconfig: tempfile::NamedTempFile,
}

impl Served {
    /// `kubegate serve` from `image`, reading `kubeconfig`, with `env` added.
    async fn start(image: &str, kubeconfig: &str, env: &[(&str, &str)]) -> Self {
        let database = TestDatabase::create().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The container's user (10001) reads the mounted file.
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), kubeconfig).unwrap();
        std::fs::set_permissions(
            file.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let name = format!(
            "kubegate-check-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mount = format!("{}:/kube/config:ro", file.path().display());
        let mut args: Vec<String> = [
            "run",
            "--detach",
            "--name",
            &name,
            "--network",
            "host",
            "--read-only",
            "--volume",
            &mount,
            "--env",
            "KUBECONFIG=/kube/config",
            "--env",
            "KUBEGATE_IN_CLUSTER=never",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut settings = vec![
            ("DATABASE_URL".to_owned(), database.url.clone()),
            ("KUBEGATE_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("KUBEGATE_JWT_HS_SECRET".to_owned(), TEST_SECRET.to_owned()),
        ];
        settings.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        for (key, value) in settings {
            args.push("--env".into());
            args.push(format!("{key}={value}"));
        }
        args.push(image.into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        podman_ok(&args);
        let served = Self {
            name,
            address: format!("http://127.0.0.1:{port}"),
            database,
            _kubeconfig: file,
        };
        let client = reqwest::Client::new();
        eventually(
            "the container's /healthz",
            Duration::from_secs(60),
            async || {
                assert!(
                    served.running(),
                    "the container stopped:\n{}",
                    served.logs()
                );
                let res = client
                    .get(format!("{}/healthz", served.address))
                    .send()
                    .await
                    .ok()?;
                (res.status() == 200).then_some(())
            },
        )
        .await;
        served
    }

    fn running(&self) -> bool {
        podman_ok(&["inspect", "--format", "{{.State.Running}}", &self.name]) == "true"
    }

    fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// A request as `token`; the status and the JSON body (Null when there is none).
    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("the container answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.name]);
    }
}

/// A kubeconfig the container can use on its own: certificate and key files made inline data.
fn self_contained(kubeconfig: &Path) -> String {
    use base64::Engine;
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    text.lines()
        .map(|line| {
            for key in ["certificate-authority", "client-certificate", "client-key"] {
                let prefix = format!("{key}: ");
                if let Some(path) = line.trim_start().strip_prefix(&prefix) {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
                    let data = base64::engine::general_purpose::STANDARD.encode(data);
                    return format!("{indent}{key}-data: {data}");
                }
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The token `kubegate token` prints inside the image (signed with the test secret).
fn token_from_the_image(image: &str, sub: &str, role: &str) -> String {
    let secret = format!("KUBEGATE_JWT_HS_SECRET={TEST_SECRET}");
    podman_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--env",
        &secret,
        image,
        "token",
        "--sub",
        sub,
        "--role",
        role,
    ])
}

#[tokio::test]
async fn the_image_serves_audits_and_runs_unprivileged_on_a_read_only_root() {
    let Some(image) =
        image_or_skip("the_image_serves_audits_and_runs_unprivileged_on_a_read_only_root")
    else {
        return;
    };

    // What the image says about itself.
    let labels: Value = serde_json::from_str(&podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &image,
    ]))
    .unwrap();
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let version = podman_ok(&["run", "--rm", "--network", "none", &image, "--version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    if let Ok(commit) = std::env::var("KUBEGATE_TEST_IMAGE_COMMIT") {
        assert!(
            version.contains(&commit),
            "`kubegate --version` names {commit}: {version}"
        );
        assert_eq!(labels["org.opencontainers.image.revision"], commit);
    }
    // Nothing but kubegate to run: no shell, no package manager.
    for program in ["/bin/sh", "/bin/bash", "/usr/bin/apt-get", "/usr/bin/dpkg"] {
        let out = podman(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            program,
            &image,
        ]);
        assert!(!out.status.success(), "{program} runs in the image");
    }

    // A cluster: the real control plane when there is one, else a fake API server.
    let fake;
    let (kubeconfig, cluster, namespace, web_image) = match control_plane::shared() {
        Ok(plane) => (
            self_contained(&plane.admin_kubeconfig),
            "real",
            plane.namespace("image").await,
            plane.image(1),
        ),
        Err(why) => {
            eprintln!("the image runs against a fake API server: no real control plane: {why}");
            fake = FakeKube::start().await;
            (
                FakeKube::kubeconfig(&[("dev", &fake)]),
                "dev",
                "default".to_owned(),
                "nginx:1".to_owned(),
            )
        }
    };
    let served = Served::start(&image, &kubeconfig, &[]).await;

    // Root of the container's process: the Dockerfile's user, on a read-only root.
    let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &served.name]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["10001"; 4],
        "{uids}"
    );
    assert_eq!(
        podman_ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.ReadonlyRootfs}}",
            &served.name
        ]),
        "true"
    );

    // Health and readiness as documented.
    let client = reqwest::Client::new();
    let health: Value = client
        .get(format!("{}/healthz", served.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = client
        .get(format!("{}/readyz", served.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["database"]["reachable"], true, "{ready}");
    assert_eq!(ready["database"]["pendingMigrations"], json!([]), "{ready}");
    assert_eq!(ready["clusters"][0]["name"], cluster, "{ready}");
    assert_eq!(ready["clusters"][0]["reachable"], true, "{ready}");

    // A deploy and a scale through the container, with a token the image itself signed.
    let token = token_from_the_image(&image, "image-check", "admin");
    let deployment = format!("/v1/clusters/{cluster}/namespaces/{namespace}/deployments/web");
    let (status, deployed) = served
        .call(
            &token,
            reqwest::Method::PUT,
            &deployment,
            Some(deploy_body(&web_image, Some(1))),
        )
        .await;
    assert_eq!(status, 201, "{deployed}\n{}", served.logs());
    let (status, scaled) = served
        .call(
            &token,
            reqwest::Method::PUT,
            &format!("{deployment}/replicas"),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(status, 200, "{scaled}");

    // Both are in the audit log, as who did them, intent and outcome, and the chain verifies.
    for (answer, action) in [(&deployed, "deploy"), (&scaled, "scale")] {
        let id = answer["auditId"].as_str().expect("an auditId");
        let entries = eventually(
            &format!("the outcome of {action}"),
            Duration::from_secs(10),
            async || {
                let (status, body) = served
                    .call(
                        &token,
                        reqwest::Method::GET,
                        &format!("/v1/audit/{id}"),
                        None,
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                let items = body["items"].as_array().unwrap().clone();
                (items.len() == 2).then_some(items)
            },
        )
        .await;
        let mut stages: Vec<String> = entries
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["stage"].as_str().unwrap(),
                    e["outcome"].as_str().unwrap()
                )
            })
            .collect();
        stages.sort();
        assert_eq!(stages, ["intent:pending", "outcome:succeeded"]);
        for entry in &entries {
            assert_eq!(entry["action"], action, "{entry}");
            assert_eq!(entry["subject"], "image-check", "{entry}");
            assert_eq!(entry["cluster"], cluster, "{entry}");
        }
    }
    let (status, verified) = served
        .call(&token, reqwest::Method::GET, "/v1/audit/verify", None)
        .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["intact"], true, "{verified}");
}

#[tokio::test]
async fn the_image_finishes_in_flight_requests_on_sigterm_and_exits_zero() {
    let Some(image) =
        image_or_skip("the_image_finishes_in_flight_requests_on_sigterm_and_exits_zero")
    else {
        return;
    };
    let fake = FakeKube::start().await;
    let served = Served::start(
        &image,
        &FakeKube::kubeconfig(&[("dev", &fake)]),
        &[("KUBEGATE_SHUTDOWN_TIMEOUT", "20s")],
    )
    .await;
    let token = token_from_the_image(&image, "image-check", "admin");
    let deployment = "/v1/clusters/dev/namespaces/default/deployments/web";
    let (status, body) = served
        .call(
            &token,
            reqwest::Method::PUT,
            deployment,
            Some(deploy_body("nginx:1", Some(1))),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // A scale that is in flight (its intent written, the cluster slow) when SIGTERM arrives.
    fake.set_latency(Duration::from_secs(2));
    let scale = {
        let address = served.address.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let res = reqwest::Client::new()
                .put(format!("{address}{deployment}/replicas"))
                .bearer_auth(token)
                .json(&json!({"replicas": 3}))
                .send()
                .await
                .expect("an answer after SIGTERM");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        })
    };
    let mut watcher = <sqlx::PgConnection as sqlx::Connection>::connect(&served.database.url)
        .await
        .unwrap();
    wait_for_an_intent(&mut watcher, "scale").await;
    let signalled = Instant::now();
    podman_ok(&["kill", "--signal", "TERM", &served.name]);

    let (status, body) = scale.await.unwrap();
    assert_eq!(
        status,
        200,
        "the in-flight scale finishes: {body}\n{}",
        served.logs()
    );
    let code = podman_ok(&["wait", &served.name]);
    let stopped_after = signalled.elapsed();
    assert_eq!(code, "0", "exit status after SIGTERM\n{}", served.logs());
    assert!(
        stopped_after < Duration::from_secs(20),
        "stopped {stopped_after:?} after SIGTERM, past the shutdown timeout"
    );
    // Its outcome was written before the process ended.
    let stages: Vec<String> = sqlx::query_scalar(
        "SELECT stage || ':' || outcome FROM audit_event WHERE audit_id::text = $1 ORDER BY seq",
    )
    .bind(body["auditId"].as_str().unwrap())
    .fetch_all(&mut watcher)
    .await
    .unwrap();
    assert_eq!(stages, ["intent:pending", "outcome:succeeded"]);
}
