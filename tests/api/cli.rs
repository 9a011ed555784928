//! The `kubegate` binary itself: its configuration reference, start-up validation, and graceful
//! shutdown on SIGTERM; what a SIGKILL under load leaves in the audit log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::fake_kube::FakeKube;
use crate::helpers::{TestDatabase, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_kubegate");

#[test]
fn serve_help_documents_every_setting_with_its_environment_variable() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // Every setting in the code is in --help with its variable (and so in the README's table:
    // `readme::the_configuration_table_and_serve_help_name_the_same_settings`).
    let vars: Vec<&str> = include_str!("../../src/config.rs")
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        // `kubegate audit verify`'s, `kubegate port-forward`'s and `kubegate credential`'s own.
        .filter(|v| {
            ![
                "KUBEGATE_AUDIT_PUBLIC_KEY",
                "KUBEGATE_SERVER",
                "KUBEGATE_TOKEN",
                "KUBEGATE_TOKEN_FILE",
            ]
            .contains(v)
        })
        .collect();
    assert!(vars.len() > 30, "found {vars:?}");
    for var in vars {
        assert!(
            help.contains(&format!("[env: {var}")),
            "--help does not document {var}:\n{help}"
        );
    }
}

#[test]
fn an_invalid_setting_stops_startup_with_a_message_naming_it() {
    let out = std::process::Command::new(BIN)
        .args(["serve"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("KUBEGATE_CLUSTER_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cluster-timeout") && err.contains("soon"),
        "{err}"
    );

    let out = std::process::Command::new(BIN)
        .args(["serve"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("KUBEGATE_CONSOLE_PATH", "/v1/console")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--console-path") && err.contains("under /v1"),
        "{err}"
    );

    let out = std::process::Command::new(BIN)
        .args(["serve"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("KUBEGATE_CONSOLE_OIDC_CLIENT_ID", "kubegate-console")
        .env_remove("KUBEGATE_OIDC_ISSUER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("KUBEGATE_CONSOLE_OIDC_CLIENT_ID needs KUBEGATE_OIDC_ISSUER"),
        "{err}"
    );

    let out = std::process::Command::new(BIN)
        .args(["serve"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));
}

/// The kubegate binary serving on a free port, in front of `fake` (context "dev") with a fresh
/// database, the test token settings and these extra settings; its address from the JSON log line
/// "kubegate listening".
async fn start_kubegate(fake: &FakeKube, extra: &[(&str, &str)]) -> Served {
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    start_kubegate_on(fake, Some(db), &url, extra).await
}

/// `start_kubegate` on the database at `database_url` (kept alive by `db` when given).
async fn start_kubegate_on(
    fake: &FakeKube,
    db: Option<TestDatabase>,
    database_url: &str,
    extra: &[(&str, &str)],
) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, FakeKube::kubeconfig(&[("dev", fake)])).unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBEGATE_LISTEN", "127.0.0.1:0")
        .env("KUBEGATE_IN_CLUSTER", "never")
        .env("KUBEGATE_WORKERS", "1")
        .env("KUBEGATE_JWT_HS_SECRET", crate::helpers::TEST_SECRET)
        .env("KUBEGATE_JWT_ISSUER", crate::helpers::TEST_ISSUER)
        .env("KUBEGATE_JWT_AUDIENCE", crate::helpers::TEST_AUDIENCE)
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("kubegate exited early");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if v["message"] == "kubegate listening" {
            break v["address"].as_str().unwrap().to_owned();
        }
    };
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                kept.lock().unwrap().push(v);
            }
        }
    });
    Served {
        child,
        address,
        log,
        _db: db,
        _dir: dir,
    }
}

/// A running kubegate process and what it needs to live.
struct Served {
    child: tokio::process::Child,
    address: String,
    /// Its JSON log lines since it started listening.
    log: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    _db: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// The URL of Deployment `web` in `dev`/`default`, after deploying it (nginx:1, one replica)
    /// as an admin whose token is returned, and letting `fake` settle.
    async fn deploy_web(&self, fake: &FakeKube) -> (String, String) {
        let base = format!(
            "http://{}/v1/clusters/dev/namespaces/default/deployments/web",
            self.address
        );
        let token = crate::helpers::hs_token(&crate::helpers::claims("ops", &["admin"]));
        let res = reqwest::Client::new()
            .put(&base)
            .bearer_auth(&token)
            .json(&crate::helpers::deploy_body("nginx:1", Some(1)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        fake.settle().await;
        (base, token)
    }

    /// Wait until kubegate logs `message`.
    async fn logged(&self, message: &str) {
        eventually(message, Duration::from_secs(10), async || {
            let log = self.log.lock().unwrap();
            log.iter().any(|l| l["message"] == message).then_some(())
        })
        .await
    }

    /// Send SIGTERM, as Kubernetes does to stop a pod.
    fn sigterm(&self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

#[tokio::test]
async fn sigterm_stops_accepting_but_lets_in_flight_requests_finish() {
    let fake = FakeKube::start().await;
    let mut kubegate = start_kubegate(
        &fake,
        &[
            ("KUBEGATE_SHUTDOWN_TIMEOUT", "10s"),
            ("KUBEGATE_WORKERS", "2"),
        ],
    )
    .await;
    let address = kubegate.address.clone();
    let url = format!("http://{address}/v1/clusters/dev/namespaces");
    let token = crate::helpers::hs_token(&crate::helpers::claims("ops", &["viewer"]));

    // A first request, on a connection of its own (so on one worker), opens kubegate's
    // connection to the cluster; the slow one comes on the next connection, so on the other
    // worker, which stops last and must still reach the cluster.
    let first = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    fake.clear_requests();
    fake.set_latency(Duration::from_millis(1500));
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Once the cluster has the request, kubegate is told to stop.
    eventually(
        "the request to reach the cluster",
        Duration::from_secs(10),
        async || {
            fake.requests()
                .iter()
                .any(|r| r.path.ends_with("/namespaces"))
                .then_some(())
        },
    )
    .await;
    let started = Instant::now();
    kubegate.sigterm();

    // No new connections after SIGTERM.
    eventually(
        "the listener to close",
        Duration::from_secs(5),
        async || {
            let refused = reqwest::get(format!("http://{address}/healthz"))
                .await
                .is_err();
            refused.then_some(())
        },
    )
    .await;
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight request finished"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), kubegate.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn on_sigterm_queued_audit_outcomes_are_written_before_the_process_exits() {
    use sqlx::Connection;
    let fake = FakeKube::start().await;
    let mut kubegate = start_kubegate(&fake, &[]).await;
    let (base, token) = kubegate.deploy_web(&fake).await;
    let http = reqwest::Client::new();

    // While the cluster is slow, once the scale's intent is committed, another session takes the
    // chain head: the answer comes, its outcome stays queued.
    let url = kubegate._db.as_ref().unwrap().url.clone();
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    fake.set_latency(Duration::from_millis(500));
    let scale = http
        .put(format!("{base}/replicas"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"replicas": 3}))
        .send();
    let hold =
        crate::helpers::hold_the_audit_head_after_an_intent(&mut watcher, &mut holder, "scale");
    let (res, ()) = tokio::join!(scale, hold);
    assert_eq!(res.unwrap().status(), 200);

    // Nothing is in flight any more, but kubegate does not exit with an outcome still queued.
    kubegate.sigterm();
    kubegate
        .logged("listeners closed; writing the audit entries still queued")
        .await;
    assert!(
        kubegate.child.try_wait().unwrap().is_none(),
        "kubegate waits for its queued audit outcome"
    );
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), kubegate.child.wait())
        .await
        .expect("kubegate exits once the outcome is written")
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    let stages: Vec<String> = sqlx::query_scalar(
        "SELECT stage || '/' || outcome FROM audit_event WHERE action = 'scale' ORDER BY seq",
    )
    .fetch_all(&mut watcher)
    .await
    .unwrap();
    assert_eq!(stages, ["intent/pending", "outcome/succeeded"]);
}

#[tokio::test]
async fn an_action_the_shutdown_cuts_short_is_recorded_as_outcome_unknown_before_exit() {
    use sqlx::Connection;
    let fake = FakeKube::start().await;
    let mut kubegate = start_kubegate(&fake, &[("KUBEGATE_SHUTDOWN_TIMEOUT", "1s")]).await;
    let (base, token) = kubegate.deploy_web(&fake).await;
    let http = reqwest::Client::new();

    // The cluster answers after 8 s; kubegate gives in-flight requests 1 s once told to stop.
    fake.set_latency(Duration::from_secs(8));
    let scale = tokio::spawn(
        http.put(format!("{base}/replicas"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"replicas": 3}))
            .send(),
    );
    let mut watcher = sqlx::PgConnection::connect(&kubegate._db.as_ref().unwrap().url)
        .await
        .unwrap();
    crate::helpers::wait_for_an_intent(&mut watcher, "scale").await;
    kubegate.sigterm();
    let status = tokio::time::timeout(Duration::from_secs(7), kubegate.child.wait())
        .await
        .expect("kubegate does not wait for the cluster's answer")
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        scale.await.unwrap().is_err(),
        "the connection closed unanswered"
    );
    let stages: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT stage || '/' || outcome, upstream_error FROM audit_event WHERE action = 'scale' ORDER BY seq",
    )
    .fetch_all(&mut watcher)
    .await
    .unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["intent/pending", "outcome_unknown/unknown"]);
    assert!(
        stages[1]
            .1
            .as_deref()
            .is_some_and(|e| e.contains("stopped before the action ended")),
        "{stages:?}"
    );
}

#[tokio::test]
async fn on_sigterm_readiness_fails_first_then_the_listener_closes() {
    let fake = FakeKube::start().await;
    let mut kubegate = start_kubegate(&fake, &[("KUBEGATE_SHUTDOWN_DELAY", "1500ms")]).await;
    let address = kubegate.address.clone();
    assert_eq!(
        reqwest::get(format!("http://{address}/readyz"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    kubegate.sigterm();
    // Readiness fails first, while the listener still answers.
    let res = eventually("readiness to fail", Duration::from_secs(5), async || {
        let res = reqwest::get(format!("http://{address}/readyz"))
            .await
            .expect("the listener still answers");
        (res.status().as_u16() == 503).then_some(res)
    })
    .await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["notes"].to_string().contains("shutting down"));
    let status = tokio::time::timeout(Duration::from_secs(10), kubegate.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(
        reqwest::get(format!("http://{address}/healthz"))
            .await
            .is_err(),
        "closed after the delay"
    );
}

/// With `--features otel` and KUBEGATE_OTEL_ENDPOINT, each request's span reaches an OTLP/HTTP
/// collector (here a local stand-in that records what it is sent), flushed at shutdown.
#[cfg(feature = "otel")]
#[tokio::test]
async fn traces_are_exported_to_an_otlp_collector() {
    use std::sync::{Arc, Mutex};

    /// Path, content type and body of each request the collector received.
    type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;
    let received: Received = Arc::default();
    let sink = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(move || {
        let sink = sink.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                let sink = sink.clone();
                async move {
                    let ct = req
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    sink.lock()
                        .unwrap()
                        .push((req.path().to_owned(), ct, body.to_vec()));
                    actix_web::HttpResponse::Ok().finish()
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

    let fake = FakeKube::start().await;
    let mut kubegate = start_kubegate(&fake, &[("KUBEGATE_OTEL_ENDPOINT", &collector)]).await;
    let address = kubegate.address.clone();
    let token = crate::helpers::hs_token(&crate::helpers::claims("ops", &["viewer"]));
    let res = reqwest::Client::new()
        .get(format!("http://{address}/v1/clusters/dev/namespaces"))
        .bearer_auth(token)
        .header("x-request-id", "otel-probe-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    kubegate.sigterm();
    let status = tokio::time::timeout(Duration::from_secs(20), kubegate.child.wait())
        .await
        .expect("kubegate exits")
        .unwrap();
    assert!(status.success());

    let got = received.lock().unwrap().clone();
    assert!(!got.is_empty(), "nothing was exported");
    let (path, content_type, _) = &got[0];
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    let all: Vec<u8> = got.iter().flat_map(|(_, _, b)| b.clone()).collect();
    let has = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("kubegate"), "the service name");
    assert!(
        has("otel-probe-4711"),
        "the request's span, with its request id"
    );
    assert!(has("/v1/clusters/dev/namespaces"), "its path");
}

#[tokio::test]
async fn killed_under_load_every_answered_change_has_its_outcome_and_the_rest_are_closed() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    let fake = FakeKube::start().await;
    let db = TestDatabase::create().await;
    let database_url = db.url.clone();
    let mut kubegate = start_kubegate_on(
        &fake,
        Some(db),
        &database_url,
        &[("KUBEGATE_RATE_LIMIT", "0"), ("KUBEGATE_WORKERS", "2")],
    )
    .await;
    let (base, token) = kubegate.deploy_web(&fake).await;
    // Each write that carries an outcome takes 100 ms more to commit: an answer that did not
    // wait for its outcome would have plenty of time to get out before the kill.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION slow_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF EXISTS (SELECT 1 FROM written WHERE stage = 'outcome') THEN PERFORM pg_sleep(0.1); \
         END IF; RETURN NULL; END $$; \
         CREATE TRIGGER slow_outcomes AFTER INSERT ON audit_event REFERENCING NEW TABLE AS written \
         FOR EACH STATEMENT EXECUTE FUNCTION slow_outcomes()",
    )
    .execute(&pool)
    .await
    .unwrap();

    // 64 clients scale in a loop, each on its own connection, until kubegate is gone.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(Vec::<String>::new()));
    let cut_off = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let (url, token) = (format!("{base}/replicas"), token.clone());
            let (answered, refused, cut_off) = (answered.clone(), refused.clone(), cut_off.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for n in 0.. {
                    let sent = http
                        .put(&url)
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"replicas": 1 + (i + n) % 3}))
                        .send()
                        .await;
                    let Ok(res) = sent else {
                        cut_off.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    };
                    // An answer's body that was cut off is no answer either.
                    let status = res.status();
                    let Ok(body) = res.json::<serde_json::Value>().await else {
                        cut_off.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    };
                    if !status.is_success() {
                        refused.lock().unwrap().push(format!("{status} {body}"));
                        return;
                    }
                    answered
                        .lock()
                        .unwrap()
                        .push(body["auditId"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    eventually(
        "500 answered scales",
        Duration::from_secs(120),
        async || (answered.lock().unwrap().len() >= 500).then_some(()),
    )
    .await;
    kubegate.child.start_kill().unwrap(); // SIGKILL: no shutdown of any kind
    kubegate.child.wait().await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let refused = refused.lock().unwrap().clone();
    assert!(refused.is_empty(), "answers other than 2xx: {refused:?}");
    let answered: HashSet<String> = answered.lock().unwrap().iter().cloned().collect();
    // PostgreSQL finishes (commits or rolls back) what the dead process had under way.
    eventually(
        "the killed kubegate's sessions ended",
        Duration::from_secs(30),
        async || {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'kubegate'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (left == 0).then_some(())
        },
    )
    .await;
    let stages = |stage: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT audit_id::text FROM audit_event WHERE stage = $1 AND action = 'scale'",
            )
            .bind(stage)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let outcomes: HashSet<String> = stages("outcome").await.into_iter().collect();
    let intents: HashSet<String> = stages("intent").await.into_iter().collect();
    let missing: Vec<&String> = answered.difference(&outcomes).collect();
    assert!(
        missing.is_empty(),
        "answered without an outcome: {missing:?}"
    );
    assert_eq!(
        crate::helpers::entries_written_twice(&pool).await,
        0,
        "an entry written twice"
    );
    // Left open: only requests that got no answer, at most one per client.
    let open: HashSet<String> = intents.difference(&outcomes).cloned().collect();
    assert!(
        open.is_disjoint(&answered),
        "an answered change's intent is open"
    );
    let cut_off = cut_off.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        open.len() <= cut_off,
        "{} intents open, {cut_off} requests unanswered",
        open.len()
    );

    // The next start closes them as outcome_unknown, and the chain holds.
    let again = start_kubegate_on(
        &fake,
        None,
        &database_url,
        &[("KUBEGATE_AUDIT_RECOVERY_AFTER", "1s")],
    )
    .await;
    eventually(
        "the open intents closed as outcome_unknown",
        Duration::from_secs(30),
        async || {
            let closed: Vec<String> = sqlx::query_scalar(
                "SELECT audit_id::text FROM audit_event WHERE stage = 'outcome_unknown'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let closed: HashSet<String> = closed.into_iter().collect();
            (closed == open).then_some(())
        },
    )
    .await;
    drop(again);
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify"])
        .env("DATABASE_URL", &database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify after the kill: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
