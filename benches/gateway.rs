//! What kubegate adds on top of talking to a cluster directly, and how far one replica goes.
//! Starts PostgreSQL-backed kubegate (the release binary, as a child process so its RSS is its
//! own) in front of the fake Kubernetes API server, and measures each scenario through kubegate
//! and, for the cluster calls, directly with kube-rs against the same fake at the same
//! concurrency, plus kubectl as a subprocess where it is installed. Prints a markdown table, then
//! verifies the audit chain the run wrote and that every intent has its outcome.
//!
//!     cargo bench --bench gateway                 # short mode: 2 s per scenario
//!     BENCH_SECONDS=10 cargo bench --bench gateway
//!     BENCH_ONLY=scale,audit BENCH_CLIENTS=1,8 cargo bench --bench gateway  # a subset
//!     BENCH_METRICS=1 cargo bench --bench gateway  # also print kubegate's histogram sums
//!
//! A second table gives kubegate's threads per operation from /proc/<pid>/task/*/schedstat:
//! time on a CPU, time runnable but waiting for a CPU, and time slices (about one per wake-up).
//!     BENCH_KUBEGATE=/tmp/kubegate-old cargo bench --bench gateway  # measure another build (A/B)
//!
//! With KUBEGATE_TEST_CONTROL_PLANE naming the upstream binaries (as for the tests), the "real:"
//! rows measure the same calls against a real kube-apiserver with its controllers and a
//! simulated node (tests/api/control_plane.rs), against direct kube-rs calls to that API server.

#[allow(dead_code, unused_imports)]
#[path = "../tests/api/fake_kube/mod.rs"]
mod fake_kube;

#[allow(dead_code)]
#[path = "../tests/api/control_plane.rs"]
mod control_plane;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

struct Stats {
    ops: usize,
    per_sec: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    /// CPU time per operation (ms) while the scenario ran: kubegate, PostgreSQL (all its
    /// processes) and this process (the fake API server and the load generator).
    cpu: Cpu,
    /// How busy the whole machine was meanwhile (all cores, all processes), in percent.
    busy: f64,
    /// kubegate's threads per operation: (ms on a CPU, ms runnable but waiting for one, time
    /// slices), from /proc/<pid>/task/*/schedstat.
    sched: (f64, f64, f64),
}

/// kubegate's threads so far, summed: (ns on a CPU, ns waiting to run, time slices).
fn kubegate_schedstat() -> (f64, f64, f64) {
    let Some(pid) = KUBEGATE_PID.get() else {
        return (0.0, 0.0, 0.0);
    };
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .map(|line| {
            let f: Vec<f64> = line
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (
                f.first().copied().unwrap_or(0.0),
                f.get(1).copied().unwrap_or(0.0),
                f.get(2).copied().unwrap_or(0.0),
            )
        })
        .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

/// The machine's busy and total CPU time so far (all cores), from the `cpu` line of /proc/stat.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user already).
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// CPU time (ms) of kubegate, PostgreSQL and this bench process, from /proc.
#[derive(Clone, Copy, Default)]
struct Cpu {
    kubegate: f64,
    postgres: f64,
    bench: f64,
}

static KUBEGATE_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// utime + stime of a process (all its threads), in ms; `None` when it is gone.
fn cpu_ms(stat: &str, tick_ms: f64) -> Option<(String, f64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((comm, ticks * tick_ms))
}

impl Cpu {
    fn now() -> Cpu {
        static TICK_MS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        let tick_ms = *TICK_MS.get_or_init(|| {
            let hz = std::process::Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(100.0);
            1000.0 / hz
        });
        let of = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| cpu_ms(&s, tick_ms))
                .map_or(0.0, |c| c.1)
        };
        let postgres = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter_map(|e| {
                std::fs::read_to_string(e.path().join("stat"))
                    .ok()
                    .and_then(|s| cpu_ms(&s, tick_ms))
            })
            .filter(|(comm, _)| comm == "postgres")
            .map(|(_, ms)| ms)
            .sum();
        Cpu {
            kubegate: KUBEGATE_PID
                .get()
                .map_or(0.0, |pid| of(&format!("/proc/{pid}/stat"))),
            postgres,
            bench: of("/proc/self/stat"),
        }
    }

    fn per_op_since(self, before: Cpu, ops: usize) -> Cpu {
        let n = ops.max(1) as f64;
        Cpu {
            kubegate: (self.kubegate - before.kubegate) / n,
            postgres: (self.postgres - before.postgres) / n,
            bench: (self.bench - before.bench) / n,
        }
    }
}

/// Call `f` from `clients` tasks, each with its own ids from `first_id` on, until `period` has
/// passed; every call's latency in ms.
async fn drive<F, Fut>(f: &Arc<F>, clients: usize, period: Duration, first_id: usize) -> Vec<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + period;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = first_id;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    assert!(f(c * 1_000_000 + i).await, "a request failed");
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Run `f` from `clients` tasks for `seconds`, after half a second of warm-up.
async fn load<F, Fut>(clients: usize, seconds: u64, f: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    // Warm-up, not measured: the steady state is what is reported (connections opened on first
    // use, caches filled, allocator pools grown).
    drive(&f, clients, Duration::from_millis(500), 900_000).await;
    let started = Instant::now();
    let cpu_before = Cpu::now();
    let machine_before = machine_jiffies();
    let sched_before = kubegate_schedstat();
    let mut all = drive(&f, clients, Duration::from_secs(seconds), 0).await;
    let sched_after = kubegate_schedstat();
    let n = all.len().max(1) as f64;
    let sched = (
        (sched_after.0 - sched_before.0) / 1e6 / n,
        (sched_after.1 - sched_before.1) / 1e6 / n,
        (sched_after.2 - sched_before.2) / n,
    );
    let cpu = Cpu::now().per_op_since(cpu_before, all.len());
    let machine = machine_jiffies();
    let busy = 100.0 * (machine.0 - machine_before.0) / (machine.1 - machine_before.1).max(1.0);
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize];
    Stats {
        ops: all.len(),
        per_sec: all.len() as f64 / started.elapsed().as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        cpu,
        busy,
        sched,
    }
}

/// Whether `BENCH_<var>` (a comma-separated list) has an item for which `hit` holds; true when
/// it is unset.
fn selected(var: &str, hit: impl Fn(&str) -> bool) -> bool {
    std::env::var(format!("BENCH_{var}"))
        .map_or(true, |list| list.split(',').any(|i| hit(i.trim())))
}

/// Whether the scenario is selected by `BENCH_ONLY` (substrings of scenario names).
fn wanted(name: &str) -> bool {
    selected("ONLY", |only| name.contains(only))
}

/// Whether this concurrency is selected by `BENCH_CLIENTS`.
fn clients_wanted(clients: usize) -> bool {
    selected("CLIENTS", |c| c == clients.to_string())
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Rows of the second table: kubegate's threads per operation, scenario by scenario.
static SCHED_ROWS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn row(name: &str, clients: usize, via: &Stats, direct: Option<&Stats>) {
    let (on_cpu, waiting, slices) = via.sched;
    SCHED_ROWS.lock().unwrap().push(format!(
        "| {name} | {clients} | {on_cpu:.3} | {waiting:.3} | {slices:.1} |"
    ));
    let added = direct
        .map(|d| format!("{:.3} / {:.3}", via.p50 - d.p50, via.p99 - d.p99))
        .unwrap_or_else(|| "—".into());
    let c = via.cpu;
    println!(
        "| {name} | {clients} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {added} | {:.3} / {:.3} / {:.3} | {:.0} % |",
        via.per_sec,
        via.p50,
        via.p99,
        via.p999,
        direct
            .map(|d| format!("{:.0} / {:.3} / {:.3}", d.per_sec, d.p50, d.p99))
            .unwrap_or_else(|| "—".into()),
        c.kubegate,
        c.postgres,
        c.bench,
        via.busy,
    );
    let _ = via.ops;
}

/// Audited scales of `web` through kubegate (namespace URL `ns`), then the same scales made
/// directly, at `clients` concurrency: one row.
async fn scales(
    scenario: &str,
    clients: usize,
    seconds: u64,
    http: &reqwest::Client,
    ns: &str,
    token: &str,
    direct: &kube::Api<Deployment>,
) {
    let (h, n, t) = (http.clone(), ns.to_owned(), token.to_owned());
    let via = load(clients, seconds, move |i| {
        let (h, n, t) = (h.clone(), n.clone(), t.clone());
        async move {
            h.put(format!("{n}/deployments/web/replicas"))
                .bearer_auth(&t)
                .json(&json!({"replicas": 1 + (i % 3)}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let d = direct.clone();
    let base_line = load(clients, seconds, move |i| {
        let d = d.clone();
        async move {
            let pp = PatchParams {
                field_manager: Some("bench".into()),
                ..Default::default()
            };
            let patch = Patch::Merge(json!({"spec": {"replicas": 1 + (i % 3)}}));
            d.patch_scale("web", &pp, &patch).await.is_ok()
        }
    })
    .await;
    row(scenario, clients, &via, Some(&base_line));
}

fn main() {
    kubegate::install_crypto_provider();
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    // The real control plane, when its binaries are named (started before kubegate, which gets
    // it as its cluster `real`).
    let plane = std::env::var_os("KUBEGATE_TEST_CONTROL_PLANE").and_then(|_| {
        control_plane::shared()
            .inspect_err(|why| eprintln!("no real control plane: {why}"))
            .ok()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // PostgreSQL: a throwaway database on DATABASE_URL's server.
        let admin = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("kubegate_bench_{}", uuid::Uuid::new_v4().simple());
        let admin_pool = sqlx::PgPool::connect(&admin).await.expect("PostgreSQL at DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&admin_pool).await.unwrap();
        let mut db_url = url::Url::parse(&admin).unwrap();
        db_url.set_path(&name);

        let fake = fake_kube::FakeKube::start().await;
        fake.record_requests(false);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(&kubeconfig, fake_kube::FakeKube::kubeconfig(&[("dev", &fake)])).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = tokio::process::Command::new(std::env::var("BENCH_KUBEGATE").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kubegate").into()))
            .arg("serve")
            .env("DATABASE_URL", db_url.as_str())
            .env(
                "KUBECONFIG",
                match plane {
                    Some(p) => format!("{}:{}", kubeconfig.display(), p.admin_kubeconfig.display()),
                    None => kubeconfig.display().to_string(),
                },
            )
            .env("KUBEGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("KUBEGATE_IN_CLUSTER", "never")
            .env("KUBEGATE_JWT_HS_SECRET", SECRET)
            // Off unless BENCH_RATE_LIMIT sets it (to measure what the limit itself costs).
            .env("KUBEGATE_RATE_LIMIT", std::env::var("BENCH_RATE_LIMIT").unwrap_or_else(|_| "0".into()))
            .env("KUBEGATE_DATABASE_MAX_CONNECTIONS", "20")
            .env("KUBEGATE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        KUBEGATE_PID.set(pid).unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        // Up to two minutes: a kubegate run under valgrind (`BENCH_KUBEGATE=<wrapper>`, see
        // BENCHMARKS.md) takes a while to start.
        for _ in 0..1200 {
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss = rss_kib(pid, "VmRSS:");
        let now = jsonwebtoken::get_current_timestamp();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"iss": "kubegate", "aud": "kubegate", "sub": "bench", "iat": now, "exp": now + 3600, "kubegate_roles": ["admin"]}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let ns = format!("{base}/v1/clusters/dev/namespaces/default");
        let res = http.put(format!("{ns}/deployments/web")).bearer_auth(&token).json(&json!({"containers": [{"name": "web", "image": "nginx:1"}], "replicas": 1})).send().await.unwrap();
        assert!(res.status().is_success(), "{:?}", res.text().await);
        fake.settle().await;

        let mut config = kube::Config::new(fake.url.parse().unwrap());
        config.default_retry = false;
        let direct: kube::Api<Deployment> = kube::Api::namespaced(kube::Client::try_from(config).unwrap(), "default");

        println!("Machine: {} cores, {}; kubegate {} (bench profile = production: fat LTO), fake Kubernetes API server in-process, PostgreSQL on loopback; {seconds} s per scenario.\n",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("").trim(),
            env!("CARGO_PKG_VERSION"));
        println!("| scenario | clients | ops/s | p50 ms | p99 ms | p99.9 ms | direct kube-rs ops/s / p50 / p99 | added p50 / p99 ms | CPU ms/op: kubegate / PostgreSQL / fake+load | machine busy |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |");

        if wanted("load generator ceiling") {
            let h = http.clone();
            let b = base.clone();
            let ceiling = load(64, seconds, move |_| {
                let (h, b) = (h.clone(), b.clone());
                async move { h.get(format!("{b}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) }
            })
            .await;
            row("load generator ceiling (GET /healthz)", 64, &ceiling, None);
        }

        if wanted("read rollout status") {
            for clients in [1usize, 64].into_iter().filter(|c| clients_wanted(*c)) {
                let (h, n, t) = (http.clone(), ns.clone(), token.clone());
                let via = load(clients, seconds, move |_| {
                    let (h, n, t) = (h.clone(), n.clone(), t.clone());
                    async move { h.get(format!("{n}/deployments/web/rollout")).bearer_auth(&t).send().await.is_ok_and(|r| r.status().is_success()) }
                })
                .await;
                let d = direct.clone();
                let base_line = load(clients, seconds, move |_| {
                    let d = d.clone();
                    async move { d.get("web").await.is_ok() }
                })
                .await;
                row("read rollout status", clients, &via, Some(&base_line));
            }
        }
        // Scales, first with the fake's controllers running (every scale creates or deletes pods
        // and updates statuses: the whole cluster's work on these two cores), then with them
        // paused (the API server's part only: in production the controllers run on the control
        // plane, not beside kubegate).
        for (scenario, controllers, counts) in [("audited scale", true, &[1usize, 8, 64][..]), ("audited scale, fake's controllers paused", false, &[8, 64][..])] {
            if !wanted(scenario) {
                continue;
            }
            fake.set_controllers_running(controllers);
            fake.settle().await;
            for &clients in counts.iter().filter(|c| clients_wanted(**c)) {
                scales(scenario, clients, seconds, &http, &ns, &token, &direct).await;
            }
        }
        fake.set_controllers_running(true);
        fake.settle().await;
        // Rollback (kubectl rollout undo): two revisions to flip between, one client (concurrent
        // rollbacks of one Deployment would only race each other). Compared with kubectl itself.
        if wanted("audited rollback") || wanted("kubectl rollout undo (subprocess)") {
            let res = http.put(format!("{ns}/deployments/web/image")).bearer_auth(&token).json(&json!({"image": "nginx:2"})).send().await.unwrap();
            assert!(res.status().is_success(), "{:?}", res.text().await);
            fake.settle().await;
        }
        if wanted("audited rollback") {
            let (h, n, t) = (http.clone(), ns.clone(), token.clone());
            let rollback = load(1, seconds, move |_| {
                let (h, n, t) = (h.clone(), n.clone(), t.clone());
                async move { h.post(format!("{n}/deployments/web/rollback")).bearer_auth(&t).json(&json!({})).send().await.is_ok_and(|r| r.status().is_success()) }
            })
            .await;
            row("audited rollback", 1, &rollback, None);
        }
        let kubectl = std::process::Command::new("kubectl").arg("version").arg("--client").output().is_ok();
        if wanted("kubectl rollout undo (subprocess)") {
            if kubectl {
                let kc = kubeconfig.clone();
                let s = load(1, seconds, move |_| {
                    let kc = kc.clone();
                    async move {
                        tokio::process::Command::new("kubectl").arg("--kubeconfig").arg(&kc).args(["rollout", "undo", "deployment/web", "-n", "default"]).output().await.is_ok_and(|o| o.status.success())
                    }
                })
                .await;
                row("kubectl rollout undo (subprocess)", 1, &s, None);
            } else {
                println!("| kubectl rollout undo (subprocess) | — | skipped: kubectl is not installed | | | | | | | |");
            }
        }
        let peak_rss = rss_kib(pid, "VmHWM:");
        if wanted("audit query, newest 100") {
            let (h, b, t) = (http.clone(), base.clone(), token.clone());
            let audit = load(8, seconds, move |_| {
                let (h, b, t) = (h.clone(), b.clone(), t.clone());
                async move { h.get(format!("{b}/v1/audit?limit=100")).bearer_auth(&t).send().await.is_ok_and(|r| r.status().is_success()) }
            })
            .await;
            row("audit query, newest 100", 8, &audit, None);
        }

        // A person's kubectl through kubegate (`/k8s/{cluster}`): what kubectl sends, through
        // kubegate and straight to the same API server.
        if wanted("kube api") {
            kube_api(&http, &base, &token, &fake, pid, seconds).await;
        }

        // kubectl as a subprocess per operation (what chatops bots that shell out pay).
        if wanted("kubectl get (subprocess)") {
            if kubectl {
                let kc = kubeconfig.clone();
                let s = load(1, seconds, move |_| {
                    let kc = kc.clone();
                    async move {
                        tokio::process::Command::new("kubectl").arg("--kubeconfig").arg(&kc).args(["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web"]).output().await.is_ok_and(|o| o.status.success())
                    }
                })
                .await;
                row("kubectl get (subprocess)", 1, &s, None);
            } else {
                println!("| kubectl get (subprocess) | — | skipped: kubectl is not installed | | | | | | | |");
            }
        }
        // The same calls against a real kube-apiserver (its controllers and the simulated node
        // doing their work on these cores too), against direct kube-rs calls to it.
        // BENCH_ONLY names scenarios by substrings of their names ("real:", "real: audited").
        const REAL_CACHED: &str = "real: read rollout status (watch cache)";
        const REAL_UNCACHED: &str = "real: list nodes (not cached)";
        const REAL_SCALE: &str = "real: audited scale";
        if let Some(plane) = plane.filter(|_| [REAL_CACHED, REAL_UNCACHED, REAL_SCALE].iter().any(|n| wanted(n))) {
            let bench_ns = plane.namespace("bench").await;
            let real_ns = format!("{base}/v1/clusters/real/namespaces/{bench_ns}");
            let res = http.put(format!("{real_ns}/deployments/web?wait=true&timeoutSeconds=60")).bearer_auth(&token).json(&json!({"containers": [{"name": "web", "image": plane.image(1)}], "replicas": 1})).send().await.unwrap();
            assert!(res.status().is_success(), "{:?}", res.text().await);
            let client = plane.client().await;
            let real: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), &bench_ns);
            let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
            for clients in [1usize, 64].into_iter().filter(|c| clients_wanted(*c) && (wanted(REAL_CACHED) || wanted(REAL_UNCACHED))) {
                let (h, n, t) = (http.clone(), real_ns.clone(), token.clone());
                let via = load(clients, seconds, move |_| {
                    let (h, n, t) = (h.clone(), n.clone(), t.clone());
                    async move { h.get(format!("{n}/deployments/web/rollout")).bearer_auth(&t).send().await.is_ok_and(|r| r.status().is_success()) }
                })
                .await;
                let d = real.clone();
                let base_line = load(clients, seconds, move |_| {
                    let d = d.clone();
                    async move { d.get("web").await.is_ok() }
                })
                .await;
                row(REAL_CACHED, clients, &via, Some(&base_line));
                let (h, b, t) = (http.clone(), base.clone(), token.clone());
                let via = load(clients, seconds, move |_| {
                    let (h, b, t) = (h.clone(), b.clone(), t.clone());
                    async move { h.get(format!("{b}/v1/clusters/real/nodes")).bearer_auth(&t).send().await.is_ok_and(|r| r.status().is_success()) }
                })
                .await;
                let d = nodes.clone();
                let base_line = load(clients, seconds, move |_| {
                    let d = d.clone();
                    async move { d.list(&Default::default()).await.is_ok() }
                })
                .await;
                row(REAL_UNCACHED, clients, &via, Some(&base_line));
            }
            for clients in [1usize, 8, 64].into_iter().filter(|c| clients_wanted(*c) && wanted(REAL_SCALE)) {
                scales(REAL_SCALE, clients, seconds, &http, &real_ns, &token, &real).await;
            }
        }
        if let Some(plane) = plane.filter(|_| wanted("real: apply")) {
            apply_versus_kubectl(plane, &http, &base, &token).await;
        }
        // How kubegate's threads were scheduled: time on a CPU, time runnable but waiting for
        // one (on two shared cores, often longer than the first), and time slices (wake-ups).
        println!("\n| scenario | clients | kubegate threads per op: ms on CPU | ms waiting to run | time slices |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        for r in SCHED_ROWS.lock().unwrap().iter() {
            println!("{r}");
        }
        if std::env::var("BENCH_METRICS").is_ok() {
            // Where kubegate's time went: the sums and counts of its histograms, and how many
            // took up to 50 and 100 ms.
            let m = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
            for l in m.lines().filter(|l| (l.contains("_sum") || l.contains("_count") || l.contains("_total{") || l.contains("le=\"0.05\"") || l.contains("le=\"0.1\"")) && !l.starts_with('#')) {
                println!("    {l}");
            }
        }
        println!("\nkubegate RSS: idle {:.1} MiB, peak under load {:.1} MiB.", idle_rss as f64 / 1024.0, peak_rss as f64 / 1024.0);

        // Interactive access: a one-shot exec's round trip, port-forward throughput and a
        // recorded session's cost per MiB, each against the same done directly with kube-rs.
        if wanted("exec") || wanted("port-forward") || wanted("sessions") {
            interactive(&http, &base, &token, &fake, pid, seconds).await;
        }

        // What the run left in the audit log: the chain walked end to end, and every intent
        // closed by its outcome (an audited mutation is both, chained).
        let v: serde_json::Value = http.get(format!("{base}/v1/audit/verify")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let db = sqlx::PgPool::connect(db_url.as_str()).await.unwrap();
        let (intents, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM audit_event o WHERE o.audit_id = i.audit_id AND o.stage = 'outcome')) FROM audit_event i WHERE i.stage = 'intent'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        db.close().await;
        println!(
            "Audit log after the run: {} entries, chain {}; {intents} intents, {open} without an outcome.",
            v["checked"],
            if v["intact"] == true { "intact" } else { "BROKEN" },
        );
        assert!(v["intact"] == true && open == 0, "the audit log is not whole: {v}");

        let _ = child.kill().await;
        drop(admin_pool.close());
        let cleanup = sqlx::PgPool::connect(&admin).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&cleanup).await;
    });
}

/// The pod of `web` on the fake.
async fn web_pod(fake: &fake_kube::FakeKube) -> (kube::Client, String) {
    use k8s_openapi::api::core::v1::Pod;
    let mut config = kube::Config::new(fake.url.parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
    let list = pods.list(&Default::default()).await.unwrap();
    let name = list.items[0].metadata.name.clone().unwrap();
    (client, name)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(url: &str, token: &str, protocol: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .expect("upgraded")
        .0
}

/// Echo `mib` MiB through a port-forward (port 7 of the fake pod echoes) and back: MiB/s.
async fn echo_mib_per_s(mut socket: Ws, mib: usize, prefixed: bool) -> f64 {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let chunk = vec![0x5au8; 32 * 1024];
    let total = mib * 1024 * 1024;
    let started = Instant::now();
    let (mut tx, mut rx) = socket.split();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        while sent < total {
            let mut f = vec![0u8];
            f.extend_from_slice(&chunk);
            tx.send(Message::Binary(f.into())).await.unwrap();
            sent += chunk.len();
        }
        tx
    });
    let mut back = 0usize;
    let mut first = prefixed;
    while back < total {
        match rx.next().await {
            Some(Ok(Message::Binary(d))) if d.first() == Some(&0) => {
                let mut n = d.len() - 1;
                if first {
                    first = false;
                    n = n.saturating_sub(2);
                }
                back += n;
            }
            Some(Ok(_)) => {}
            other => panic!("the echo stopped: {other:?}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut tx = sender.await.unwrap();
    let _ = tx.close().await;
    socket = tx.reunite(rx).unwrap();
    drop(socket);
    (2 * mib) as f64 / secs
}

async fn interactive(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    fake: &fake_kube::FakeKube,
    pid: u32,
    seconds: u64,
) {
    use futures::{SinkExt, StreamExt};
    use k8s_openapi::api::core::v1::Pod;
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::Message;
    let (client, pod) = web_pod(fake).await;
    let ns = format!("{base}/v1/clusters/dev/namespaces/default");
    if wanted("exec") {
        let (h, u, t) = (
            http.clone(),
            format!("{ns}/pods/{pod}/exec"),
            token.to_owned(),
        );
        let via = load(1, seconds, move |_| {
            let (h, u, t) = (h.clone(), u.clone(), t.clone());
            async move {
                let r = h
                    .post(&u)
                    .bearer_auth(&t)
                    .json(&json!({"command": ["echo", "hi"]}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => r
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|v| v["stdout"] == "hi\n"),
                    _ => false,
                }
            }
        })
        .await;
        let (c, p) = (client.clone(), pod.clone());
        let direct = load(1, seconds, move |_| {
            let pods: kube::Api<Pod> = kube::Api::namespaced(c.clone(), "default");
            let p = p.clone();
            async move {
                let Ok(mut proc) = pods
                    .exec(&p, ["echo", "hi"], &kube::api::AttachParams::default())
                    .await
                else {
                    return false;
                };
                let mut out = String::new();
                let read = proc
                    .stdout()
                    .unwrap()
                    .read_to_string(&mut out)
                    .await
                    .is_ok();
                proc.join().await.is_ok() && read && out == "hi\n"
            }
        })
        .await;
        row(
            "one-shot exec (echo), audited and recorded",
            1,
            &via,
            Some(&direct),
        );
    }
    if wanted("port-forward") {
        let url = format!(
            "{}/pods/{pod}/portforward?ports=7",
            ns.replace("http://", "ws://")
        );
        let via = echo_mib_per_s(ws(&url, token, "v4.channel.k8s.io").await, 64, true).await;
        let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
        let mut forwarder = pods.portforward(&pod, &[7]).await.unwrap();
        let mut stream = forwarder.take_stream(7).unwrap();
        let started = Instant::now();
        let total = 64 * 1024 * 1024;
        let (mut r, mut w) = tokio::io::split(&mut stream);
        let chunk = vec![0x5au8; 32 * 1024];
        let writer = async {
            use tokio::io::AsyncWriteExt;
            let mut sent = 0;
            while sent < total {
                w.write_all(&chunk).await.unwrap();
                sent += chunk.len();
            }
        };
        let reader = async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut back = 0;
            while back < total {
                back += r.read(&mut buf).await.unwrap();
            }
        };
        tokio::join!(writer, reader);
        let direct = 128.0 / started.elapsed().as_secs_f64();
        drop(stream);
        forwarder.abort();
        println!(
            "| port-forward, 64 MiB echoed (each way) | 1 | {via:.0} MiB/s through kubegate | | | | {direct:.0} MiB/s direct (kube-rs portforward) | {:.0} % of direct | | |",
            100.0 * via / direct
        );
    }
    if wanted("sessions") {
        // A recorded interactive session printing ~8 MiB: kubegate's CPU per MiB relayed and
        // recorded, and the chunks' rows in PostgreSQL.
        let url = format!(
            "{}/pods/{pod}/exec?command=sh&stdin=true&stdout=true&tty=true",
            ns.replace("http://", "ws://")
        );
        let mut s = ws(&url, token, "v5.channel.k8s.io").await;
        let before = kubegate_schedstat();
        let started = Instant::now();
        s.send(Message::Binary(
            [&[0u8][..], b"seq 1200000\rexit 0\r"].concat().into(),
        ))
        .await
        .unwrap();
        let mut bytes = 0usize;
        while let Some(Ok(m)) = s.next().await {
            match m {
                Message::Binary(d) if d.first() == Some(&1) => bytes += d.len() - 1,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let after = kubegate_schedstat();
        let mib = bytes as f64 / (1024.0 * 1024.0);
        println!(
            "| recorded session, {mib:.1} MiB of output | 1 | {:.0} MiB/s | | | | — | — | {:.2} ms of kubegate CPU per MiB (relayed and recorded) | |",
            mib / secs,
            (after.0 - before.0) / 1e6 / mib
        );
        // Idle interactive sessions: kubegate's memory for each.
        let idle = 200;
        let rss_before = rss_kib(pid, "VmRSS:");
        let mut open = Vec::new();
        for _ in 0..idle {
            let mut s = ws(&url, token, "v5.channel.k8s.io").await;
            // The prompt: the session is established end to end.
            loop {
                if let Some(Ok(Message::Binary(d))) = s.next().await
                    && d.len() > 1
                {
                    break;
                }
            }
            open.push(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = rss_kib(pid, "VmRSS:");
        println!(
            "| {idle} idle interactive sessions | {idle} | kubegate RSS +{:.1} KiB per session | | | | — | — | | |",
            (rss_after as f64 - rss_before as f64) / idle as f64
        );
        drop(open);
    }
}

/// A manifest of 100 objects in `ns`: 40 ConfigMaps, 20 Secrets, 20 Services, 10
/// ServiceAccounts, 10 Deployments (no replicas: the controllers' work is not what is measured);
/// `mark` labels every object, so a new mark changes each one.
fn hundred_objects(ns: &str, mark: u32) -> String {
    let mut docs = Vec::new();
    let meta = |name: String| {
        format!("metadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{bench: \"{mark}\"}}\n")
    };
    for i in 0..40 {
        docs.push(format!(
            "apiVersion: v1\nkind: ConfigMap\n{}data:\n  key: value-{i}\n",
            meta(format!("config-{i}"))
        ));
    }
    for i in 0..20 {
        docs.push(format!(
            "apiVersion: v1\nkind: Secret\n{}stringData:\n  token: t-{i}\n",
            meta(format!("secret-{i}"))
        ));
    }
    for i in 0..20 {
        docs.push(format!("apiVersion: v1\nkind: Service\n{}spec:\n  selector: {{app: app-{i}}}\n  ports: [{{port: 80}}]\n", meta(format!("svc-{i}"))));
    }
    for i in 0..10 {
        docs.push(format!(
            "apiVersion: v1\nkind: ServiceAccount\n{}",
            meta(format!("sa-{i}"))
        ));
    }
    for i in 0..10 {
        docs.push(format!(
            "apiVersion: apps/v1\nkind: Deployment\n{}spec:\n  replicas: 0\n  selector: {{matchLabels: {{app: app-{i}}}}}\n  template:\n    metadata: {{labels: {{app: app-{i}}}}}\n    spec:\n      containers: [{{name: c, image: \"nginx:1\"}}]\n",
            meta(format!("deploy-{i}"))
        ));
    }
    docs.join("---\n")
}

/// Apply of 100 objects through kubegate against `kubectl apply --server-side -f` of the same
/// file (kubectl's discovery cache warm, as on a person's machine): creating them, applying the
/// same again, and changing every one; the median of five of each, end to end (kubectl: its
/// process start to its exit; kubegate: the HTTP request to its answer).
async fn apply_versus_kubectl(
    plane: &control_plane::ControlPlane,
    http: &reqwest::Client,
    base: &str,
    token: &str,
) {
    if std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_err()
    {
        println!("\napply of 100 objects: skipped, kubectl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubectl = |file: std::path::PathBuf| {
        let kc = plane.admin_kubeconfig.clone();
        async move {
            let started = Instant::now();
            let out = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kc)
                .args(["apply", "--server-side", "-f"])
                .arg(&file)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            started.elapsed()
        }
    };
    let kubegate = |yaml: String| {
        let (h, u, t) = (
            http.clone(),
            format!("{base}/v1/clusters/real/apply"),
            token.to_owned(),
        );
        async move {
            let started = Instant::now();
            let res = h
                .post(u)
                .bearer_auth(t)
                .header("content-type", "application/yaml")
                .body(yaml)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            assert!(status.is_success(), "{body}");
            started.elapsed()
        }
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    // One unmeasured run each: kubectl's discovery cache, kubegate's discovery of the kinds.
    let f = dir.path().join("warm.yaml");
    std::fs::write(&f, hundred_objects(&plane.namespace("apply-warm").await, 0)).unwrap();
    kubectl(f).await;
    kubegate(hundred_objects(&plane.namespace("apply-warm").await, 0)).await;

    let mut rows = Vec::new();
    for (what, fresh, changes) in [
        ("create 100 objects", true, false),
        ("apply the same again (unchanged)", false, false),
        ("change all 100", false, true),
    ] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (ns_kg, ns_kc) = (
            plane.namespace("apply-kg").await,
            plane.namespace("apply-kc").await,
        );
        for round in 0..5u32 {
            let (ns_kg, ns_kc) = if fresh {
                (
                    plane.namespace("apply-kg").await,
                    plane.namespace("apply-kc").await,
                )
            } else {
                (ns_kg.clone(), ns_kc.clone())
            };
            let mark = if changes { round + 1 } else { 0 };
            if !fresh && round == 0 {
                // The objects exist before the first measured round.
                kubegate(hundred_objects(
                    &ns_kg,
                    mark.saturating_sub(1) * u32::from(changes),
                ))
                .await;
                let f = dir.path().join("setup.yaml");
                std::fs::write(
                    &f,
                    hundred_objects(&ns_kc, mark.saturating_sub(1) * u32::from(changes)),
                )
                .unwrap();
                kubectl(f).await;
            }
            ours.push(kubegate(hundred_objects(&ns_kg, mark)).await);
            let f = dir.path().join(format!("{round}.yaml"));
            std::fs::write(&f, hundred_objects(&ns_kc, mark)).unwrap();
            theirs.push(kubectl(f).await);
        }
        let (a, b) = (median(ours), median(theirs));
        rows.push(format!("| {what} | {a:.0} | {b:.0} | {:.1}× |", b / a));
    }
    println!(
        "\n| apply of 100 objects, real control plane (median of 5) | kubegate ms | kubectl apply --server-side ms | kubegate faster by |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for r in rows {
        println!("{r}");
    }
}

/// The Kubernetes API through kubegate against straight to the fake API server: a 1,000-object
/// list and one object's get (what `kubectl get` sends), and kubegate's memory while 100 watches
/// are open through it.
async fn kube_api(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    fake: &fake_kube::FakeKube,
    pid: u32,
    seconds: u64,
) {
    for i in 0..1000 {
        fake.create(fake_kube::Kind::ConfigMap, "default", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("config-{i}"), "namespace": "default"}, "data": {"key": format!("value-{i}"), "other": "x".repeat(200)}}));
    }
    let list = "/api/v1/namespaces/default/configmaps";
    let get = "/apis/apps/v1/namespaces/default/deployments/web";
    for (name, path) in [
        ("kube api: list 1,000 configmaps", list),
        ("kube api: get a deployment", get),
    ] {
        for clients in [1usize, 8].into_iter().filter(|c| clients_wanted(*c)) {
            let (h, u, t) = (
                http.clone(),
                format!("{base}/k8s/dev{path}"),
                token.to_owned(),
            );
            let via = load(clients, seconds, move |_| {
                let (h, u, t) = (h.clone(), u.clone(), t.clone());
                async move {
                    match h
                        .get(&u)
                        .bearer_auth(&t)
                        .header("accept", "application/json")
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    }
                }
            })
            .await;
            let (h, u) = (http.clone(), format!("{}{path}", fake.url));
            let direct = load(clients, seconds, move |_| {
                let (h, u) = (h.clone(), u.clone());
                async move {
                    match h.get(&u).header("accept", "application/json").send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    }
                }
            })
            .await;
            row(name, clients, &via, Some(&direct));
        }
    }
    // 100 watches held open through kubegate (each a stream from the API server).
    let idle = rss_kib(pid, "VmRSS:");
    let mut watches = Vec::new();
    for _ in 0..100 {
        let res = http
            .get(format!(
                "{base}/k8s/dev/apis/apps/v1/namespaces/default/deployments?watch=true"
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        watches.push(res);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = rss_kib(pid, "VmRSS:");
    drop(watches);
    println!(
        "\nkube api: kubegate RSS {:.1} MiB before, {:.1} MiB with 100 watches open (+{:.1} MiB).",
        idle as f64 / 1024.0,
        open as f64 / 1024.0,
        (open as f64 - idle as f64) / 1024.0
    );
}
