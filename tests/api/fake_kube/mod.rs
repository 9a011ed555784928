//! A stateful fake Kubernetes API server that speaks the real wire protocol over HTTP, for the
//! resources kubegate uses, with the deployment and replica set controllers emulated. kubegate
//! reaches it through a generated kubeconfig, so tests run the production path
//! (kubeconfig → kube-rs client → HTTP). Every behaviour here follows `../shared/KUBERNETES.md`
//! and the upstream source named in each module; `fake_kube_behaviour.rs` checks it.
//!
//! Test hooks: pod behaviour per image (ready, ready later, never ready, stuck waiting with a reason,
//! unschedulable), progress deadline exceeded, injected faults (latency, 5xx, 429 + Retry-After),
//! going away, the log of received requests, and direct reads of the stored objects.

mod controller;
mod exec;
mod http;
pub mod managed;
pub mod resources;
pub mod selector;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub use resources::Kind;
pub use store::PodBehavior;
use store::State;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub content_type: String,
    pub body: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

/// An injected failure: the next `times` requests (whose path contains `path_contains`, if set)
/// are answered with `status` as a Kubernetes `Status`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub times: u32,
    pub retry_after: Option<u32>,
    pub path_contains: Option<String>,
    /// Only requests of this method (`PATCH`, ...), if set.
    pub method: Option<&'static str>,
}

#[derive(Default)]
pub struct Faults {
    pub latency: Duration,
    /// Each live watch event is delivered this much later (a slow watch).
    pub watch_delay: Duration,
    pub queue: Vec<Fault>,
}

pub struct Shared {
    pub state: Mutex<State>,
    pub requests: Mutex<Vec<Recorded>>,
    /// Whether requests are recorded (on by default; a long benchmark turns it off).
    pub recording: AtomicBool,
    pub faults: Mutex<Faults>,
    pub notify: Notify,
    pub version: Value,
    /// Whether the controllers run (on by default; `FakeKube::set_controllers_running`).
    pub controllers: AtomicBool,
    /// Holds the second half of a streamed proxy answer (`open_proxy_gate`).
    pub proxy_gate: Notify,
}

pub struct FakeKube {
    pub shared: Arc<Shared>,
    pub url: String,
    handle: actix_web::dev::ServerHandle,
    controller: tokio::task::JoinHandle<()>,
}

impl FakeKube {
    /// Start a fake API server reporting Kubernetes `v1.33.2`.
    pub async fn start() -> Self {
        Self::start_with_version("1", "33", "v1.33.2").await
    }

    pub async fn start_with_version(major: &str, minor: &str, git_version: &str) -> Self {
        let mut state = State::new();
        let node = json!({
            "metadata": {"name": "fake-node-1", "labels": {
                "kubernetes.io/hostname": "fake-node-1", "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": "",
            }},
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {
                "capacity": {"cpu": "2", "memory": "8129508Ki", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "8027108Ki", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.10"}, {"type": "Hostname", "address": "fake-node-1"}],
                "nodeInfo": {
                    "kubeletVersion": git_version, "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-fake", "containerRuntimeVersion": "containerd://1.7.24",
                    "operatingSystem": "linux", "architecture": "amd64",
                    "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "",
                },
            },
        });
        state
            .create(Kind::Node, "", node.clone(), "kubelet", false)
            .expect("seed node");
        // Status is not settable on create; the kubelet posts it.
        state.internal_update(Kind::Node, "", "fake-node-1", "kubelet", |o| {
            o["status"] = node["status"].clone()
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            requests: Mutex::new(Vec::new()),
            recording: AtomicBool::new(true),
            controllers: AtomicBool::new(true),
            faults: Mutex::new(Faults::default()),
            proxy_gate: Notify::new(),
            notify: Notify::new(),
            version: json!({
                "major": major, "minor": minor, "gitVersion": git_version,
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-06-01T00:00:00Z", "goVersion": "go1.24.4", "compiler": "gc",
                "platform": "linux/amd64",
            }),
        });
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/api/v1/namespaces/{ns}/pods/{name}/exec",
                    web::get().to(exec::exec),
                )
                .route(
                    "/api/v1/namespaces/{ns}/pods/{name}/portforward",
                    web::get().to(exec::portforward),
                )
                .route(
                    "/api/v1/namespaces/{ns}/{plural:pods|services}/{name}/proxy{tail:.*}",
                    web::to(exec::proxy),
                )
                .default_service(web::to(http::dispatch))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        // Like kube-apiserver (Go sets TCP_NODELAY on every connection): small writes such as
        // watch events leave at once instead of waiting for the peer's delayed ACK.
        .on_connect(|conn, _| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .bind(("127.0.0.1", 0))
        .expect("bind the fake API server");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        let controller = tokio::spawn(run_controllers(shared.clone()));
        shared.notify.notify_one();
        Self {
            shared,
            url: format!("http://127.0.0.1:{port}"),
            handle,
            controller,
        }
    }

    /// A kubeconfig (YAML) with one context per (context name, fake) pair.
    pub fn kubeconfig(entries: &[(&str, &FakeKube)]) -> String {
        let mut clusters = String::new();
        let mut contexts = String::new();
        for (name, fake) in entries {
            clusters.push_str(&format!(
                "- name: {name}\n  cluster:\n    server: {}\n",
                fake.url
            ));
            contexts.push_str(&format!("- name: {name}\n  context:\n    cluster: {name}\n    user: tester\n    namespace: default\n"));
        }
        let current = entries.first().map(|e| e.0).unwrap_or("");
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}current-context: {current}\nusers:\n- name: tester\n  user:\n    token: fake-token-not-a-secret\n"
        )
    }

    /// The server goes away: connections are refused from now on.
    pub async fn stop(&self) {
        self.controller.abort();
        self.handle.stop(false).await;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests that would change state (anything but GET), dry runs included.
    pub fn mutations(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// Record requests (the default) or not: a benchmark's millions would only fill memory.
    #[allow(dead_code)] // benches/gateway.rs
    pub fn record_requests(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    /// Run the controllers inside the fake (the default) or pause them.
    #[allow(dead_code)] // benches/gateway.rs
    pub fn set_controllers_running(&self, on: bool) {
        self.shared.controllers.store(on, Ordering::Relaxed);
        self.shared.notify.notify_one();
    }

    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.lock().unwrap().latency = latency;
    }

    pub fn set_watch_delay(&self, delay: Duration) {
        self.shared.faults.lock().unwrap().watch_delay = delay;
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().queue.push(fault);
    }

    /// Keep only the last `events` watch events (a watch from an older resourceVersion gets
    /// 410 Expired).
    pub fn set_event_window(&self, events: usize) {
        self.shared.state.lock().unwrap().event_window = events.max(1);
    }

    /// How pods running `image` behave from now on.
    /// Let a streamed proxy answer (`/stream`) send its second half.
    pub fn open_proxy_gate(&self) {
        self.shared.proxy_gate.notify_one();
    }

    pub fn set_image_behavior(&self, image: &str, behavior: PodBehavior) {
        self.shared
            .state
            .lock()
            .unwrap()
            .behaviors
            .insert(image.to_owned(), behavior);
        self.shared.notify.notify_one();
    }

    /// The current rollout of this deployment (its current generation) exceeds its deadline.
    pub fn exceed_progress_deadline(&self, ns: &str, name: &str) {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(d) = st.get(Kind::Deployment, ns, name) {
            let g = d["metadata"]["generation"].as_i64().unwrap_or(1);
            st.deadline_exceeded
                .insert((ns.to_owned(), name.to_owned(), g));
        }
        drop(st);
        self.shared.notify.notify_one();
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.shared.state.lock().unwrap().get(kind, ns, name)
    }

    pub fn list(&self, kind: Kind, ns: &str) -> Vec<Value> {
        let ns = kind.namespaced().then_some(ns);
        self.shared
            .state
            .lock()
            .unwrap()
            .list(kind, ns, &selector::Selector::default(), &[])
    }

    /// Store an object directly (test setup), as a user with kubectl would create it.
    pub fn create(&self, kind: Kind, ns: &str, obj: Value) -> Value {
        let created = self
            .shared
            .state
            .lock()
            .unwrap()
            .create(kind, ns, obj, "kubectl-create", false)
            .expect("fake create");
        self.shared.notify.notify_one();
        created
    }

    pub fn append_log(&self, ns: &str, pod: &str, container: &str, line: &str) {
        let mut st = self.shared.state.lock().unwrap();
        st.logs
            .entry((ns.to_owned(), pod.to_owned(), container.to_owned()))
            .or_default()
            .push(line.to_owned());
    }

    /// Wait until the controllers have nothing left to do (bounded).
    pub async fn settle(&self) {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let idle = self.shared.state.lock().unwrap().rv;
            tokio::time::sleep(Duration::from_millis(15)).await;
            if self.shared.state.lock().unwrap().rv == idle {
                return;
            }
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.controller.abort();
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

async fn run_controllers(shared: Arc<Shared>) {
    loop {
        shared.notify.notified().await;
        // Like a controller's work queue, let a burst of writes land first and reconcile them
        // once: under load one pass serves many writes instead of one pass per write.
        tokio::time::sleep(Duration::from_millis(1)).await;
        if !shared.controllers.load(Ordering::Relaxed) {
            continue;
        }
        let timers = {
            let mut st = shared.state.lock().unwrap();
            controller::reconcile(&mut st)
        };
        for (uid, delay) in timers {
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                shared.state.lock().unwrap().ready_due.insert(uid);
                shared.notify.notify_one();
            });
        }
    }
}
