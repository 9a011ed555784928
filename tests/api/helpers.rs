//! `spawn_app`: the real kubegate on port 0, a fresh database (created on the server at
//! `DATABASE_URL`, dropped when the test ends, pass or fail) and fake Kubernetes API servers wired
//! in through a generated kubeconfig. Quiet by default; `TEST_LOG=1` shows kubegate's logs.

use std::sync::Once;
use std::time::Duration;

use kubegate::config::{AuthConfig, InClusterMode, LogFormat, TokenFormat};
use kubegate::{Application, Config};
use secrecy::SecretString;

use crate::fake_kube::FakeKube;

pub struct TestApp {
    pub address: String,
    /// Sent on every request made through the helpers: an admin on every cluster and namespace.
    pub token: String,
    pub client: reqwest::Client,
    pub clusters: Vec<(String, FakeKube)>,
    pub database_url: String,
    _database: Option<TestDatabase>,
    _kubeconfig: tempfile::NamedTempFile,
}

/// A database that exists for one test. Dropped with `WITH (FORCE)`, so kubegate's open
/// connections (in its worker threads) do not keep it alive.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

/// The PostgreSQL server the tests use, as an admin URL.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDatabase {
    pub async fn create() -> Self {
        kubegate::install_crypto_provider();
        let admin = admin_url();
        let name = format!("kubegate_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot reach PostgreSQL at DATABASE_URL ({e}); scripts/test starts one")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url()).await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// How to start kubegate for one test.
pub struct Options {
    /// Cluster (kubeconfig context) names, each backed by its own fake API server.
    pub clusters: Vec<&'static str>,
    pub cluster_timeout: Duration,
    /// Change the token settings (keys, policy file, limits) from the test defaults.
    pub auth: Box<dyn FnOnce(&mut AuthConfig)>,
    /// Change any other setting.
    pub config: Box<dyn FnOnce(&mut Config)>,
    /// Use this existing database (another kubegate's) instead of a fresh one.
    pub database_url: Option<String>,
    /// Use this kubeconfig (a real cluster's) instead of fake API servers.
    pub kubeconfig: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clusters: vec!["dev"],
            cluster_timeout: Duration::from_secs(5),
            auth: Box::new(|_| {}),
            config: Box::new(|_| {}),
            database_url: None,
            kubeconfig: None,
        }
    }
}

pub const TEST_SECRET: &str = "kubegate-test-secret-0123456789abcdef";
pub const TEST_ISSUER: &str = "https://issuer.kubegate.test";
pub const TEST_AUDIENCE: &str = "kubegate";

pub fn auth_config() -> AuthConfig {
    AuthConfig {
        token: TokenFormat {
            jwt_issuer: TEST_ISSUER.into(),
            jwt_audience: vec![TEST_AUDIENCE.into(), "other-audience".into()],
            jwt_hs_secret: Some(SecretString::from(TEST_SECRET.to_owned())),
            jwt_hs_algorithm: "HS256".into(),
            jwt_groups_claim: "groups".into(),
            jwt_roles_claim: "kubegate_roles".into(),
        },
        jwt_public_keys: Vec::new(),
        jwks_url: None,
        oidc_issuer: None,
        jwks_refresh_cooldown: Duration::from_millis(200),
        jwks_max_age: Duration::from_secs(300),
        jwt_leeway: Duration::from_secs(30),
        jwt_max_lifetime: None,
        jwt_max_bytes: 8192,
        jwt_cache_entries: 10_000,
        jwt_subject_claim: "sub".into(),
        policy_file: None,
        policy_reload_interval: Duration::from_millis(100),
    }
}

/// Now, in seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid token for `sub` with these roles (the test issuer and audience).
pub fn claims(sub: &str, roles: &[&str]) -> serde_json::Value {
    serde_json::json!({"iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 600, "kubegate_roles": roles})
}

/// An HS256 token with the test secret.
pub fn hs_token(claims: &serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &key,
    )
    .unwrap()
}

static LOGS: Once = Once::new();

fn init_logs() {
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            // Kept for the whole test run (the subscriber is global).
            std::mem::forget(
                kubegate::telemetry::init(LogFormat::Pretty, "info,kubegate=debug,sqlx=warn", None)
                    .expect("logs"),
            );
        }
    });
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    init_logs();
    let mut clusters = Vec::new();
    if options.kubeconfig.is_none() {
        for name in &options.clusters {
            clusters.push((name.to_string(), FakeKube::start().await));
        }
    }
    let entries: Vec<(&str, &FakeKube)> = clusters.iter().map(|(n, f)| (n.as_str(), f)).collect();
    let kubeconfig = tempfile::NamedTempFile::new().expect("temp kubeconfig");
    let text = options
        .kubeconfig
        .unwrap_or_else(|| FakeKube::kubeconfig(&entries));
    std::fs::write(kubeconfig.path(), text).expect("write kubeconfig");
    let (database, database_url) = match options.database_url {
        Some(url) => (None, url),
        None => {
            let db = TestDatabase::create().await;
            let url = db.url.clone();
            (Some(db), url)
        }
    };
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        database_url: SecretString::from(database_url.clone()),
        database_max_connections: 5,
        database_timeout: Duration::from_secs(5),
        kubeconfig: Some(kubeconfig.path().display().to_string()),
        in_cluster: InClusterMode::Never,
        in_cluster_name: "in-cluster".into(),
        cluster_timeout: options.cluster_timeout,
        cluster_probe_timeout: Duration::from_secs(1),
        log_format: LogFormat::Pretty,
        log_filter: "info".into(),
        shutdown_timeout: Duration::from_secs(1),
        workers: Some(1),
        max_body_bytes: 64 * 1024,
        apply_max_body_bytes: 4 * 1024 * 1024,
        apply_max_objects: 200,
        console: true,
        console_path: "/ui".into(),
        console_oidc_client_id: None,
        console_oidc_scopes: "openid profile email".into(),
        impersonate_clusters: Vec::new(),
        public_url: None,
        tls_cert: None,
        tls_key: None,
        apply_deployer_kinds: kubegate::config::DEFAULT_APPLY_DEPLOYER_KINDS
            .split(',')
            .map(str::to_owned)
            .collect(),
        max_replicas: 50,
        max_wait: Duration::from_secs(20),
        audit_recovery_after: None,
        audit_reads: false,
        audit_outcome: kubegate::config::AuditOutcome::Sync,
        rate_limit_shared: true,
        watch_cache: true,
        watch_cache_idle: Duration::from_secs(600),
        otel_endpoint: None,
        idempotency_ttl: Duration::from_secs(3600),
        rate_limit: 1000,
        shutdown_delay: Duration::ZERO,
        metrics_listen: None,
        rate_limit_roles: Vec::new(),
        audit_signing_key: None,
        trusted_proxies: Vec::new(),
        slack: Default::default(),
        sessions: Default::default(),
        auth: {
            let mut a = auth_config();
            (options.auth)(&mut a);
            a
        },
    };
    let mut config = config;
    (options.config)(&mut config);
    // Serving HTTPS (KUBEGATE_TLS_CERT): the tests' client trusts that certificate.
    let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(cert) = &config.tls_cert {
        let pem = std::fs::read(cert).expect("the TLS certificate");
        for c in reqwest::Certificate::from_pem_bundle(&pem).expect("PEM") {
            client = client.add_root_certificate(c);
        }
    }
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let app = Application::build(config).await.expect("kubegate starts");
    let address = format!("{scheme}://127.0.0.1:{}", app.port());
    tokio::spawn(app.run());
    TestApp {
        address,
        token: hs_token(&claims("root", &["admin"])),
        client: client.build().expect("client"),
        clusters,
        database_url,
        _database: database,
        _kubeconfig: kubeconfig,
    }
}

impl TestApp {
    pub fn fake(&self, cluster: &str) -> &FakeKube {
        &self
            .clusters
            .iter()
            .find(|(n, _)| n == cluster)
            .expect("a fake of that name")
            .1
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send_as(Some(&self.token), reqwest::Method::GET, path, None)
            .await
    }

    /// A request with this token (or none).
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }
}

/// Assert an RFC 9457 problem of this status and kind; returns the body.
pub async fn assert_problem(res: reqwest::Response, status: u16, kind: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json", "content type");
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: serde_json::Value = res.json().await.expect("problem body");
    assert_eq!(
        body["type"],
        format!("urn:kubegate:problem:{kind}"),
        "problem type in {body}"
    );
    assert_eq!(body["status"], status);
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        body["requestId"].as_str(),
        request_id.as_deref(),
        "requestId matches X-Request-Id"
    );
    body
}

impl TestApp {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        self.send_as(Some(&self.token), method, path, body).await
    }

    /// Send and read a JSON answer: (status, body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let res = self.send(method, path, body).await;
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// Deploy `web` (nginx:1, one replica) on cluster `dev`, namespace `default`, and let the
    /// fake's controllers settle.
    pub async fn deploy_web(&self) {
        let (status, body) = self
            .put(&ns("/deployments/web"), deploy_body("nginx:1", Some(1)))
            .await;
        assert_eq!(status, 201, "{body}");
        self.fake("dev").settle().await;
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// `/v1/clusters/dev/namespaces/default` + rest.
pub fn ns(rest: &str) -> String {
    format!("/v1/clusters/dev/namespaces/default{rest}")
}

/// A deploy body with one container `web`.
pub fn deploy_body(image: &str, replicas: Option<i32>) -> serde_json::Value {
    let mut b = serde_json::json!({"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]});
    if let Some(r) = replicas {
        b["replicas"] = serde_json::json!(r);
    }
    b
}

/// A TCP forwarder to PostgreSQL that a test can cut: existing connections drop and new ones are
/// refused, as when the database host goes away.
pub struct Cuttable {
    pub port: u16,
    cut: std::sync::Arc<tokio::sync::Notify>,
    /// Ends the connections open now; new ones are still forwarded.
    reset: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    pub async fn to_postgres() -> Self {
        let target = url::Url::parse(&admin_url()).expect("DATABASE_URL");
        let target = format!(
            "{}:{}",
            target.host_str().unwrap_or("127.0.0.1"),
            target.port().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(tokio::sync::Notify::new());
        let reset = std::sync::Arc::new(tokio::sync::Notify::new());
        let (c, r) = (cut.clone(), reset.clone());
        let task = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                    _ = c.notified() => return,
                };
                let target = target.clone();
                let (c, r) = (c.clone(), r.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = c.notified() => {}
                        _ = r.notified() => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            reset,
            task,
        }
    }

    /// Every open connection drops (PostgreSQL restarted, a proxy failed over); new ones work.
    pub fn reset_connections(&self) {
        self.reset.notify_waiters();
    }

    /// The database goes away.
    pub fn cut(&self) {
        self.cut.notify_waiters();
        self.task.abort();
    }
}

/// Poll `check` until it gives `Some`, for at most `within`, and return what it gave; panic
/// naming `what` otherwise. Tests wait for the condition they need this way, never for a fixed
/// time: fast when the condition comes soon, tolerant of a slow machine.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {within:?} for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Wait until an intent of `action` is committed (polled on `watcher`).
pub async fn wait_for_an_intent(watcher: &mut sqlx::PgConnection, action: &str) {
    eventually(
        &format!("an intent of {action}"),
        Duration::from_secs(10),
        async || {
            let intents: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM audit_event WHERE action = $1 AND stage = 'intent'",
            )
            .bind(action)
            .fetch_one(&mut *watcher)
            .await
            .unwrap();
            (intents > 0).then_some(())
        },
    )
    .await
}

/// The value of a counter (summed over its labels) on kubegate's `/metrics`.
pub async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Once an intent of `action` is committed (polled on `watcher`), take the audit chain's head on
/// `holder`, in a transaction the caller ends with COMMIT: until then no audit entry is written.
pub async fn hold_the_audit_head_after_an_intent(
    watcher: &mut sqlx::PgConnection,
    holder: &mut sqlx::PgConnection,
    action: &str,
) {
    wait_for_an_intent(watcher, action).await;
    sqlx::query("BEGIN").execute(&mut *holder).await.unwrap();
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
}

/// How many (audit id, stage) pairs the log holds more than once: an entry written twice.
pub async fn entries_written_twice(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT audit_id, stage FROM audit_event \
         GROUP BY audit_id, stage HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A certificate for 127.0.0.1 from a CA made here (openssl), for kubegate to serve HTTPS with:
/// (the chain, leaf then CA, and the leaf's key) in `dir`.
pub fn self_signed_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "1",
            "-subj",
            "/CN=kubegate-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "leaf.crt",
    ]);
    let chain = [
        std::fs::read_to_string(dir.join("leaf.crt")).unwrap(),
        std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("tls.crt"), chain).unwrap();
    (dir.join("tls.crt"), dir.join("tls.key"))
}
