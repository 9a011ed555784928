//! The web console in headless Chromium (Debian's `chromium` and `chromium-driver`): what the
//! first load of a namespace's deployments page transfers, and how long the page takes to show
//! a namespace of many deployments. kubegate (the bench build, as a child process) stands in
//! front of the fake Kubernetes API server holding that many deployments.
//!
//!     cargo bench --bench console                  # 20 and 500 deployments, 7 loads each
//!     BENCH_DEPLOYMENTS=2000 cargo bench --bench console
//!
//! Transferred bytes come from the page's own Resource Timing entries (headers and bodies as
//! they crossed the wire, gzip where kubegate sent it); the render time runs from the change
//! of the page's address to the frame after the table holds every deployment, and includes
//! kubegate's answer to the list.

#[allow(dead_code, unused_imports)]
#[path = "../tests/api/fake_kube/mod.rs"]
mod fake_kube;

#[allow(dead_code)]
#[path = "../tests/api/browser.rs"]
mod browser;

use std::time::Duration;

use serde_json::{Value, json};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
const LOADS: usize = 7;

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    })
}

fn main() {
    kubegate::install_crypto_provider();
    let counts: Vec<usize> = std::env::var("BENCH_DEPLOYMENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![20, 500]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let browser = match browser::Browser::start().await {
            Ok(b) => b,
            Err(why) => {
                eprintln!("no browser, no console benchmark: {why}");
                return;
            }
        };
        let admin = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin_pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("PostgreSQL at DATABASE_URL");
        println!(
            "| deployments | first load transferred | of which the console's files | of which the API's answers | render p50 ms | render max ms |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
        for count in counts {
            let name = format!("kubegate_bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&admin_pool)
                .await
                .unwrap();
            let mut db_url = url::Url::parse(&admin).unwrap();
            db_url.set_path(&name);
            let fake = fake_kube::FakeKube::start().await;
            fake.record_requests(false);
            for i in 0..count {
                fake.create(
                    fake_kube::Kind::Deployment,
                    "default",
                    deployment(&format!("app-{i:04}")),
                );
            }
            fake.settle().await;
            let dir = tempfile::tempdir().unwrap();
            let kubeconfig = dir.path().join("config");
            std::fs::write(
                &kubeconfig,
                fake_kube::FakeKube::kubeconfig(&[("dev", &fake)]),
            )
            .unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubegate"))
                .arg("serve")
                .env("DATABASE_URL", db_url.as_str())
                .env("KUBECONFIG", &kubeconfig)
                .env("KUBEGATE_LISTEN", format!("127.0.0.1:{port}"))
                .env("KUBEGATE_IN_CLUSTER", "never")
                .env("KUBEGATE_JWT_HS_SECRET", SECRET)
                .env("KUBEGATE_RATE_LIMIT", "0")
                .env("KUBEGATE_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let base = format!("http://127.0.0.1:{port}");
            let http = reqwest::Client::new();
            for _ in 0..600 {
                if http.get(format!("{base}/healthz")).send().await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let now = jsonwebtoken::get_current_timestamp();
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &json!({"iss": "kubegate", "aud": "kubegate", "sub": "bench", "iat": now,
                        "exp": now + 3600, "kubegate_roles": ["admin"]}),
                &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap();

            // First load: a first visit to this origin (a new port each time, so nothing is
            // cached), signing in, then the deployments page; everything the page fetched until
            // its table was complete.
            browser.goto(&format!("{base}/ui/")).await;
            browser.fill("#token", &token).await;
            browser.click("form button[type=submit]").await;
            browser.wait_for("h1", "Clusters").await;
            let rendered = |n: usize| {
                format!(
                    "const done = arguments[0]; const t0 = performance.now(); \
                     location.hash = '#/c/dev/n/default'; \
                     (function check() {{ \
                       if (document.querySelectorAll('tbody tr').length === {n}) \
                         requestAnimationFrame(() => done(performance.now() - t0)); \
                       else if (performance.now() - t0 > 60000) done(-1); \
                       else requestAnimationFrame(check); }})();"
                )
            };
            let first = browser.run(&rendered(count), vec![]).await;
            assert!(first.as_f64().unwrap_or(-1.0) >= 0.0, "the table never showed {count} rows");
            let weight = browser
                .run(
                    "const done = arguments[0]; \
                     const all = performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')); \
                     const mine = (e) => new URL(e.name).pathname.startsWith('/ui/'); \
                     const sum = (es) => es.reduce((t, e) => t + (e.transferSize || 0), 0); \
                     done([sum(all), sum(all.filter(mine)), sum(all.filter((e) => !mine(e)))]);",
                    vec![],
                )
                .await;
            let mut times: Vec<f64> = Vec::new();
            // Later loads: the page loaded again (its assets from the cache), signed in, then the
            // deployments page.
            for i in 0..LOADS {
                browser.goto(&format!("{base}/ui/?load={i}#/")).await;
                browser.fill("#token", &token).await;
                browser.click("form button[type=submit]").await;
                browser.wait_for("h1", "Clusters").await;
                let t = browser.run(&rendered(count), vec![]).await.as_f64().unwrap_or(-1.0);
                assert!(t >= 0.0, "the table never showed {count} rows");
                times.push(t);
            }
            times.sort_by(f64::total_cmp);
            let kb = |v: &Value| v.as_f64().unwrap_or(0.0) / 1024.0;
            println!(
                "| {count} | {:.1} KiB | {:.1} KiB | {:.1} KiB | {:.0} | {:.0} |",
                kb(&weight[0]),
                kb(&weight[1]),
                kb(&weight[2]),
                times[times.len() / 2],
                times[times.len() - 1],
            );
            drop(_child);
            fake.stop().await;
        }
    });
}
