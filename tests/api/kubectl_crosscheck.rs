//! When a real `kubectl` is installed, drive the fake API server with it: the KUBERNETES.md
//! sequence (create, annotate, set image, rollout history/undo) must print what the document says a
//! real cluster printed. Skipped, saying so, where kubectl is absent.

use std::process::Command;

use crate::fake_kube::FakeKube;

async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn revisions(history: &str) -> Vec<(String, String)> {
    history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            (
                parts.next().unwrap_or("").to_owned(),
                parts.collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

#[tokio::test]
async fn real_kubectl_sees_the_rollout_history_kubernetes_md_describes() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: kubectl is not installed; the same sequence is checked through kube-rs in fake_kube_behaviour"
        );
        return;
    }
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(&kc, FakeKube::kubeconfig(&[("fake", &fake)])).unwrap();

    // `kubectl create` sends protobuf, which the fake does not decode: create what it would send.
    fake.create(
        crate::fake_kube::Kind::Deployment,
        "default",
        serde_json::json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}},
            },
        }),
    );
    fake.settle().await;
    let steps: [&[&str]; 4] = [
        &["annotate", "deployment/web", "kubernetes.io/change-cause=A"],
        &["set", "image", "deployment/web", "nginx=nginx:2"],
        &[
            "annotate",
            "deployment/web",
            "kubernetes.io/change-cause=B",
            "--overwrite",
        ],
        &["set", "image", "deployment/web", "nginx=nginx:3"],
    ];
    for step in steps {
        let (ok, out) = kubectl(&kc, step).await;
        assert!(ok, "kubectl {step:?}: {out}");
        fake.settle().await;
    }
    let (_, out) = kubectl(&kc, &["rollout", "history", "deployment/web"]).await;
    assert_eq!(
        revisions(&out),
        [
            ("1".into(), "A".into()),
            ("2".into(), "B".into()),
            ("3".into(), "B".into())
        ],
        "{out}"
    );

    let (ok, out) = kubectl(&kc, &["rollout", "undo", "deployment/web"]).await;
    assert!(ok, "{out}");
    fake.settle().await;
    let (_, out) = kubectl(&kc, &["rollout", "history", "deployment/web"]).await;
    assert_eq!(
        revisions(&out)
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["1", "3", "4"],
        "{out}"
    );

    let (ok, out) = kubectl(&kc, &["rollout", "undo", "deployment/web"]).await;
    assert!(ok, "{out}");
    fake.settle().await;
    let (ok, out) = kubectl(
        &kc,
        &["rollout", "undo", "deployment/web", "--to-revision=1"],
    )
    .await;
    assert!(ok, "{out}");
    fake.settle().await;
    let (_, out) = kubectl(&kc, &["rollout", "history", "deployment/web"]).await;
    assert_eq!(
        revisions(&out)
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["4", "5", "6"],
        "{out}"
    );

    let (_, out) = kubectl(
        &kc,
        &["rollout", "undo", "deployment/web", "--to-revision=6"],
    )
    .await;
    assert!(
        out.contains("skipped rollback (current template already matches revision 6)"),
        "{out}"
    );
    let (ok, out) = kubectl(
        &kc,
        &["rollout", "undo", "deployment/web", "--to-revision=99"],
    )
    .await;
    assert!(
        !ok && out.contains("unable to find specified revision 99 in history"),
        "{out}"
    );

    let (ok, out) = kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=10s"],
    )
    .await;
    assert!(
        ok && out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
}

#[tokio::test]
async fn what_kubegate_says_is_what_kubectl_sees() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
    use crate::helpers::{deploy_body, ns, spawn_app};
    let app = spawn_app().await;
    let fake = app.fake("dev");
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("config");
    std::fs::write(&kc, FakeKube::kubeconfig(&[("dev", fake)])).unwrap();

    app.put(&ns("/deployments/web"), deploy_body("nginx:1", Some(2)))
        .await;
    fake.settle().await;
    app.put(
        &ns("/deployments/web/image"),
        serde_json::json!({"image": "nginx:2", "reason": "security fix"}),
    )
    .await;
    fake.settle().await;
    app.post(&ns("/deployments/web/rollback"), serde_json::json!({}))
        .await;
    fake.settle().await;

    let (_, ours) = app.get_json(&ns("/deployments/web/revisions")).await;
    let ours: Vec<(String, String)> = ours["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].to_string(),
                r["changeCause"].as_str().unwrap_or("<none>").to_owned(),
            )
        })
        .collect();
    let (_, out) = kubectl(&kc, &["rollout", "history", "deployment/web"]).await;
    assert_eq!(revisions(&out), ours, "{out}");
    assert_eq!(
        ours.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["2", "3"]
    );

    let (_, status) = app.get_json(&ns("/deployments/web/rollout")).await;
    let (ok, out) = kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=5s"],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        out.trim().lines().last().unwrap(),
        status["message"].as_str().unwrap()
    );
}
