//! A real Kubernetes control plane for the tests, the way controller-runtime's envtest does it but
//! with more of the cluster: etcd, kube-apiserver (TLS, a CA made here with openssl), the
//! controller-manager (the real deployment, replicaset and endpointslice controllers), the
//! scheduler, and a real node: the kubelet with containerd, runc and a bridge network of the
//! run's own, running images built here (`TEST_IMAGE`, no registry). Where the node cannot start
//! (not root, packages missing), a small node simulator registers a node, keeps its lease and
//! runs the pods scheduled to it (Running and Ready at once). One cluster per test run, started
//! on first use; each test takes namespaces of its own.
//!
//! `KUBEGATE_TEST_CONTROL_PLANE` names a folder with the binaries (kube-apiserver,
//! kube-controller-manager, kube-scheduler and etcd, unpacked or `.xz`). Without it the tests
//! that need the cluster say they were skipped and why.
//!
//! Every process is started with PR_SET_PDEATHSIG from a thread that lives as long as the test
//! binary, so when the run ends (or panics, or is interrupted) the kernel stops them all; the
//! containers, which outlive containerd, are stopped at exit with the node's bridge and mounts
//! (`control_plane_cleanup.sh`). Each run keeps its state in `target/control-plane/run-PID`; a
//! run also cleans up after runs that were killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// The name of the simulated node the scheduler places pods on.
pub const NODE: &str = "sim-node";

/// A running control plane.
pub struct ControlPlane {
    /// Pods run on a real kubelet with containerd (`TEST_IMAGE`), not on the simulated node.
    pub real_node: bool,
    /// A kubeconfig for an administrator (`system:masters`), context `real`.
    pub admin_kubeconfig: PathBuf,
}

impl ControlPlane {
    /// The administrator's kubeconfig, as text.
    pub fn kubeconfig(&self) -> String {
        std::fs::read_to_string(&self.admin_kubeconfig).expect("the admin kubeconfig")
    }

    /// An image the cluster's node runs, by tag (1, 2 or 3): the locally built test image on a
    /// real node, any name on the simulated one.
    pub fn image(&self, tag: u8) -> String {
        if self.real_node {
            format!("{TEST_IMAGE}:{tag}")
        } else {
            format!("nginx:{tag}")
        }
    }

    /// The name `kubectl create deployment` gives the container of `image(..)`.
    pub fn container(&self) -> &'static str {
        if self.real_node { "web" } else { "nginx" }
    }

    /// A kube-rs client as the administrator.
    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.admin_kubeconfig).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kube config");
        kube::Client::try_from(config).expect("client")
    }

    /// A fresh namespace, named after `prefix`.
    pub async fn namespace(&self, prefix: &str) -> String {
        use k8s_openapi::api::core::v1::Namespace;
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
        name
    }
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The run's control plane, or why there is none.
pub fn shared() -> Result<&'static ControlPlane, &'static str> {
    SHARED
        .get_or_init(|| {
            let Some(assets) = std::env::var_os("KUBEGATE_TEST_CONTROL_PLANE") else {
                return Err(
                    "KUBEGATE_TEST_CONTROL_PLANE is not set (a folder with kube-apiserver, \
                     kube-controller-manager, kube-scheduler and etcd v1.36, see README)"
                        .into(),
                );
            };
            let (tx, rx) = std::sync::mpsc::channel();
            // The keeper thread starts every process (their parent-death signal is tied to it)
            // and then runs the node simulator for as long as the test binary lives.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                match runtime.block_on(start(Path::new(&assets))) {
                    Ok((plane, client)) => {
                        let _ = tx.send(Ok(plane));
                        runtime.block_on(simulate_node(client));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
            rx.recv()
                .unwrap_or_else(|_| Err("the control plane's thread ended".into()))
        })
        .as_ref()
        .map_err(String::as_str)
}

/// The control plane, or a line saying the test is skipped.
pub fn or_skip(test: &str) -> Option<&'static ControlPlane> {
    match shared() {
        Ok(plane) => Some(plane),
        Err(why) => {
            eprintln!("SKIPPED {test}: no real control plane: {why}");
            None
        }
    }
}

async fn start(assets: &Path) -> Result<(ControlPlane, kube::Client), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/control-plane");
    let bin = unpack(assets, &root.join("bin"))?;
    let dir = root.join(format!("run-{}", std::process::id()));
    remove_finished_runs(&root);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // When the test binary exits (its tests done, failed or not), the state goes with it; a run
    // that was killed leaves it for the next run to remove.
    let _ = RUN_DIR.set(dir.clone());
    // SAFETY: registering a plain function; it runs once, at exit.
    unsafe { libc::atexit(remove_run_dir) };
    let pki = dir.join("pki");
    certificates(&pki)?;

    let etcd_port = free_port();
    let peer_port = free_port();
    let api_port = free_port();
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    spawn(
        &bin.join("etcd"),
        &[
            "--name=test",
            &format!("--data-dir={}", dir.join("etcd").display()),
            &format!("--listen-client-urls={etcd_url}"),
            &format!("--advertise-client-urls={etcd_url}"),
            &format!("--listen-peer-urls={peer_url}"),
            &format!("--initial-advertise-peer-urls={peer_url}"),
            &format!("--initial-cluster=test={peer_url}"),
            "--unsafe-no-fsync",
        ],
        &dir.join("etcd.log"),
    )?;
    let p = |f: &str| pki.join(f).display().to_string();
    let issuer = "https://kubernetes.default.svc.cluster.local";
    spawn(
        &bin.join("kube-apiserver"),
        &[
            &format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={api_port}"),
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-node-port-range=30000-32767",
            "--authorization-mode=RBAC,Node",
            "--anonymous-auth=false",
            &format!("--client-ca-file={}", p("ca.crt")),
            &format!("--tls-cert-file={}", p("apiserver.crt")),
            &format!("--tls-private-key-file={}", p("apiserver.key")),
            &format!("--service-account-issuer={issuer}"),
            &format!("--service-account-key-file={}", p("sa.pub")),
            &format!("--service-account-signing-key-file={}", p("sa.key")),
            &format!("--api-audiences={issuer}"),
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount",
            "--kubelet-preferred-address-types=Hostname",
            &format!("--kubelet-client-certificate={}", p("admin.crt")),
            &format!("--kubelet-client-key={}", p("admin.key")),
        ],
        &dir.join("kube-apiserver.log"),
    )?;
    let server = format!("https://127.0.0.1:{api_port}");
    let kubeconfig = |user: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\ncontexts:\n- name: real\n  context:\n    cluster: real\n    user: {user}\n    namespace: default\ncurrent-context: real\nusers:\n- name: {user}\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n",
            ca = p("ca.crt"),
            cert = p(&format!("{user}.crt")),
            key = p(&format!("{user}.key")),
        )
    };
    let admin_kubeconfig = dir.join("admin.kubeconfig");
    for user in ["admin", "controller-manager", "scheduler"] {
        std::fs::write(dir.join(format!("{user}.kubeconfig")), kubeconfig(user))
            .map_err(|e| e.to_string())?;
    }
    let mut plane = ControlPlane {
        real_node: false,
        admin_kubeconfig,
    };
    let client = plane.client().await;
    ready(&client, &dir).await?;

    // The controllers run as system:kube-controller-manager; its default role is too narrow for
    // every controller with --use-service-account-credentials=false.
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    let binding = serde_json::from_value(json!({
        "metadata": {"name": "kubegate-test-controller-manager"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "system:kube-controller-manager"}],
    }))
    .unwrap();
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .map_err(|e| format!("binding the controller-manager: {e}"))?;
    let cm = dir
        .join("controller-manager.kubeconfig")
        .display()
        .to_string();
    spawn(
        &bin.join("kube-controller-manager"),
        &[
            &format!("--kubeconfig={cm}"),
            &format!("--authentication-kubeconfig={cm}"),
            &format!("--authorization-kubeconfig={cm}"),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={}", free_port()),
            "--leader-elect=false",
            "--controllers=*",
            "--use-service-account-credentials=false",
            &format!("--root-ca-file={}", p("ca.crt")),
            &format!("--service-account-private-key-file={}", p("sa.key")),
            &format!("--cluster-signing-cert-file={}", p("ca.crt")),
            &format!("--cluster-signing-key-file={}", p("ca.key")),
            "--service-cluster-ip-range=10.96.0.0/16",
        ],
        &dir.join("kube-controller-manager.log"),
    )?;
    let sched = dir.join("scheduler.kubeconfig").display().to_string();
    spawn(
        &bin.join("kube-scheduler"),
        &[
            &format!("--kubeconfig={sched}"),
            &format!("--authentication-kubeconfig={sched}"),
            &format!("--authorization-kubeconfig={sched}"),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={}", free_port()),
            "--leader-elect=false",
        ],
        &dir.join("kube-scheduler.log"),
    )?;
    match real_node(&bin, &dir, &pki, &client).await {
        Ok(()) => plane.real_node = true,
        Err(why) => {
            eprintln!("the control plane's pods run on a simulated node: {why}");
            register_node(&client).await?;
        }
    }
    Ok((plane, client))
}

/// The image of the tests' pods on the real node: busybox (sh, httpd, nc, wget), serving HTTP on
/// 8080 and saying so in its log. Tags 1, 2 and 3 are the same image.
pub const TEST_IMAGE: &str = "kubegate.test/web";

/// A real node: containerd on its own socket and directories with a bridge network of its own,
/// the tests' images built here and imported (no registry), and the kubelet (named `localhost`,
/// so the API server reaches it on loopback). Needs root, containerd, runc, the CNI plugins,
/// busybox-static and gcc (Debian's packages of those names).
async fn real_node(
    bin: &Path,
    dir: &Path,
    pki: &Path,
    client: &kube::Client,
) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let kubelet = bin.join("kubelet");
    for needed in [
        kubelet.as_path(),
        Path::new("/usr/bin/containerd"),
        Path::new("/usr/bin/ctr"),
        Path::new("/usr/sbin/runc"),
        Path::new("/usr/lib/cni/bridge"),
        Path::new("/bin/busybox"),
        Path::new("/usr/bin/gcc"),
    ] {
        if !needed.exists() {
            return Err(format!(
                "{} is missing (apt-get install containerd runc containernetworking-plugins busybox-static gcc)",
                needed.display()
            ));
        }
    }
    let node = dir.join("node");
    std::fs::create_dir_all(&node).map_err(|e| e.to_string())?;
    let sock = node.join("containerd.sock");
    // A bridge and a /24 of this run's own (two runs on one machine do not collide).
    let n = std::process::id() % 200 + 20;
    let script = format!(
        include_str!("control_plane_node.sh"),
        node = node.display(),
        n = n,
        image = TEST_IMAGE
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .map_err(|e| format!("bash: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the node's images: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    spawn(
        Path::new("/usr/bin/containerd"),
        &[
            "--config",
            &node.join("containerd.toml").display().to_string(),
        ],
        &node.join("containerd.log"),
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        if tokio::time::Instant::now() > deadline {
            return Err("containerd did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for image in ["pause.tar", "web.tar"] {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(node.join(image))
            .output()
            .map_err(|e| format!("ctr: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ctr import {image}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    for tag in ["2", "3"] {
        let _ = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args([
                "-n",
                "k8s.io",
                "images",
                "tag",
                "--force",
                &format!("{TEST_IMAGE}:1"),
                &format!("{TEST_IMAGE}:{tag}"),
            ])
            .output();
    }
    let server = std::fs::read_to_string(dir.join("admin.kubeconfig"))
        .ok()
        .and_then(|k| {
            k.lines()
                .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_owned))
        })
        .ok_or("no server")?;
    let p = |f: &str| pki.join(f).display().to_string();
    std::fs::write(
        node.join("kubelet.kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {server}\n    certificate-authority: {}\ncontexts:\n- name: real\n  context:\n    cluster: real\n    user: node\ncurrent-context: real\nusers:\n- name: node\n  user:\n    client-certificate: {}\n    client-key: {}\n",
            p("ca.crt"), p("node.crt"), p("node.key")
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        node.join("kubelet.yaml"),
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\ncgroupDriver: cgroupfs\ncgroupsPerQOS: false\nenforceNodeAllocatable: []\nfailSwapOn: false\noomScoreAdj: 0\ncontainerRuntimeEndpoint: unix://{sock}\nport: {port}\nhealthzPort: {healthz}\nreadOnlyPort: 0\ntlsCertFile: {crt}\ntlsPrivateKeyFile: {key}\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: false\n  x509:\n    clientCAFile: {ca}\nauthorization:\n  mode: AlwaysAllow\nvolumePluginDir: {plugins}\nevictionHard: {{}}\nimageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 99\nserializeImagePulls: false\n",
            sock = sock.display(),
            port = free_port(),
            healthz = free_port(),
            crt = p("kubelet.crt"),
            key = p("kubelet.key"),
            ca = p("ca.crt"),
            plugins = node.join("volume-plugins").display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    spawn(
        &kubelet,
        &[
            &format!("--config={}", node.join("kubelet.yaml").display()),
            &format!("--kubeconfig={}", node.join("kubelet.kubeconfig").display()),
            &format!("--root-dir={}", node.join("kubelet").display()),
            "--hostname-override=localhost",
        ],
        &node.join("kubelet.log"),
    )?;
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes
            .get_opt("localhost")
            .await
            .ok()
            .flatten()
            .is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(node.join("kubelet.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            return Err(format!(
                "the kubelet's node was not Ready within 60 s: {}",
                tail.join(" | ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stop what a run's real node left and remove the run's folder.
fn clean_up_run(dir: &Path, pid: u32) {
    let bridge = format!("kgtest{}", pid % 200 + 20);
    let _ = Command::new("bash")
        .args(["-c", include_str!("control_plane_cleanup.sh"), "cleanup"])
        .arg(dir)
        .arg(bridge)
        .status();
}

/// The binaries, unpacked once into `into` and checked against their SHA256SUMS when given.
fn unpack(assets: &Path, into: &Path) -> Result<PathBuf, String> {
    if !assets.is_dir() {
        return Err(format!("{} is not a folder", assets.display()));
    }
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
    ] {
        let target = into.join(name);
        if target.exists() {
            continue;
        }
        let plain = assets.join(name);
        let packed = assets.join(format!("{name}.xz"));
        let partial = into.join(format!("{name}.partial"));
        if plain.exists() {
            std::fs::copy(&plain, &partial).map_err(|e| format!("{}: {e}", plain.display()))?;
        } else if packed.exists() {
            let out = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
            let status = Command::new("xz")
                .arg("-dc")
                .arg(&packed)
                .stdout(out)
                .status()
                .map_err(|e| format!("xz: {e}"))?;
            if !status.success() {
                return Err(format!("xz could not unpack {}", packed.display()));
            }
        } else if name == "kubelet" {
            continue; // only for a real node
        } else {
            return Err(format!("{} has no {name}", assets.display()));
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &target).map_err(|e| e.to_string())?;
    }
    let sums = assets.join("SHA256SUMS");
    if sums.exists() {
        let wanted = std::fs::read_to_string(&sums).map_err(|e| e.to_string())?;
        let ours: String = wanted
            .lines()
            .filter(|l| {
                into.join(l.split_whitespace().last().unwrap_or(""))
                    .exists()
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let check = Command::new("sha256sum")
            .args(["-c", "--quiet", "-"])
            .current_dir(into)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("sha256sum: {e}"))?;
        use std::io::Write;
        check
            .stdin
            .as_ref()
            .expect("stdin")
            .write_all(ours.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = check.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "the unpacked binaries do not match SHA256SUMS: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    Ok(into.to_owned())
}

static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_run_dir() {
    if let Some(dir) = RUN_DIR.get() {
        clean_up_run(dir, std::process::id());
    }
}

/// Remove the state of runs whose process is gone.
fn remove_finished_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|p| p.parse::<u32>().ok())
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            clean_up_run(&entry.path(), pid);
        }
    }
}

/// A CA, the API server's serving certificate, client certificates for the administrator, the
/// controller-manager and the scheduler, and the service-account key pair (openssl).
fn certificates(pki: &Path) -> Result<(), String> {
    std::fs::create_dir_all(pki).map_err(|e| e.to_string())?;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(pki)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3",
        "-subj",
        "/CN=kubegate-test-ca",
    ])?;
    let signed = |name: &str, subject: &str, ext: &str| -> Result<(), String> {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let extfile = format!("{name}.ext");
        std::fs::write(pki.join(&extfile), ext).map_err(|e| e.to_string())?;
        openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "3",
            "-extfile",
            &extfile,
        ])
    };
    signed(
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
    )?;
    let client = "extendedKeyUsage=clientAuth\n";
    signed("admin", "/O=system:masters/CN=kubegate-test-admin", client)?;
    signed(
        "controller-manager",
        "/CN=system:kube-controller-manager",
        client,
    )?;
    signed("scheduler", "/CN=system:kube-scheduler", client)?;
    signed("node", "/O=system:nodes/CN=system:node:localhost", client)?;
    signed(
        "kubelet",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&["genrsa", "-out", "sa.key", "2048"])?;
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Start a process that the kernel kills when this thread (the keeper) ends.
fn spawn(program: &Path, args: &[&str], log: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    // Reaped by nobody: the processes live as long as the run (their exit is the kernel's).
    std::mem::forget(child);
    Ok(())
}

/// Wait until the API server's /readyz is ok (the RBAC bootstrap is the last to pass).
async fn ready(client: &kube::Client, dir: &Path) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
        match client.request_text(request).await {
            Ok(text) if text.trim() == "ok" => return Ok(()),
            _ if tokio::time::Instant::now() > deadline => {
                let log =
                    std::fs::read_to_string(dir.join("kube-apiserver.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                return Err(format!(
                    "kube-apiserver was not ready within 90 s; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Register the simulated node: Ready, room for many pods, no taints.
async fn register_node(client: &kube::Client) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}},
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .map_err(|e| format!("registering the node: {e}"))?;
    node_status(&nodes).await
}

async fn node_status(nodes: &Api<Node>) -> Result<(), String> {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "500"});
    let status = json!({"status": {
        "capacity": capacity, "allocatable": capacity,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "simulated", "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "Hostname", "address": "localhost"}],
        "nodeInfo": {"kubeletVersion": "v1.36.2", "containerRuntimeVersion": "simulated://1",
                     "osImage": "simulated", "kernelVersion": "simulated", "operatingSystem": "linux",
                     "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": "",
                     "kubeProxyVersion": ""},
    }});
    nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(|_| ())
        .map_err(|e| format!("the node's status: {e}"))
}

/// What the kubelet of the simulated node does, for as long as the run lasts: renew its lease
/// and heartbeat, run the pods bound to it (Running and Ready at once, with an IP), and finish
/// the deletion of the pods being deleted.
async fn simulate_node(client: kube::Client) {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let heartbeat = {
        let client = client.clone();
        async move {
            let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
            let nodes: Api<Node> = Api::all(client);
            loop {
                // A MicroTime: exactly six fractional digits.
                let t = jiff::Timestamp::now();
                let now = format!(
                    "{}.{:06}Z",
                    t.strftime("%Y-%m-%dT%H:%M:%S"),
                    t.subsec_microsecond()
                );
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": NODE, "namespace": "kube-node-lease"},
                    "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": now},
                });
                let _ = leases
                    .patch(
                        NODE,
                        &PatchParams::apply("sim-node").force(),
                        &Patch::Apply(&lease),
                    )
                    .await;
                let _ = node_status(&nodes).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={NODE}"));
    let kubelet = async {
        let mut seq = 0u32;
        let mut events = watcher(pods.clone(), config).boxed();
        while let Some(event) = events.next().await {
            let pod = match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
                _ => continue,
            };
            let (Some(ns), Some(name)) =
                (pod.metadata.namespace.clone(), pod.metadata.name.clone())
            else {
                continue;
            };
            let api: Api<Pod> = Api::namespaced(pods.clone().into_client(), &ns);
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                continue;
            }
            seq += 1;
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let containers: Vec<serde_json::Value> = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .map(|c| {
                    json!({"name": c.name, "image": c.image, "imageID": "", "ready": true,
                           "started": true, "restartCount": 0,
                           "state": {"running": {"startedAt": now}}})
                })
                .collect();
            let condition =
                |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
            let status = json!({"status": {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": format!("10.244.{}.{}", (seq / 250) % 250, seq % 250 + 2),
                "startTime": now,
                "conditions": [condition("PodScheduled"), condition("Initialized"),
                               condition("ContainersReady"), condition("Ready")],
                "containerStatuses": containers,
            }});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
        }
    };
    tokio::join!(heartbeat, kubelet);
}
