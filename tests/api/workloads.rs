//! `kubectl get all` as kubectl means it: beyond pods, services, deployments and replicasets,
//! the statefulsets, daemonsets, jobs, cronjobs and horizontalpodautoscalers of a namespace,
//! over REST and in chat, with kubectl's columns.

use serde_json::json;

use crate::fake_kube::Kind;
use crate::helpers::{assert_problem, claims, hs_token, ns, spawn_app};

#[tokio::test]
async fn get_all_lists_every_kind_kubectl_does() {
    let app = spawn_app().await;
    app.deploy_web().await;
    let fake = app.fake("dev");
    fake.settle().await;
    let meta = |name: &str| json!({"name": name, "labels": {"tier": "batch"}});
    fake.create(
        Kind::StatefulSet,
        "default",
        json!({"metadata": meta("db"), "spec": {"replicas": 3, "serviceName": "db", "selector": {}, "template": {}},
               "status": {"replicas": 3, "readyReplicas": 2}}),
    );
    fake.create(
        Kind::DaemonSet,
        "default",
        json!({"metadata": meta("agent"), "spec": {"selector": {}, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
               "status": {"desiredNumberScheduled": 1, "currentNumberScheduled": 1, "numberReady": 1, "updatedNumberScheduled": 1, "numberAvailable": 1, "numberMisscheduled": 0}}),
    );
    fake.create(
        Kind::Job,
        "default",
        json!({"metadata": meta("migrate"), "spec": {"completions": 1, "template": {}},
               "status": {"succeeded": 1, "startTime": "2026-12-01T10:00:00Z", "completionTime": "2026-12-01T10:00:12Z",
                          "conditions": [{"type": "Complete", "status": "True"}]}}),
    );
    fake.create(
        Kind::CronJob,
        "default",
        json!({"metadata": meta("backup"), "spec": {"schedule": "0 3 * * *", "jobTemplate": {}}}),
    );
    fake.create(
        Kind::HorizontalPodAutoscaler,
        "default",
        json!({"metadata": meta("web"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
               "minReplicas": 1, "maxReplicas": 5,
               "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
               "status": {"currentReplicas": 1, "desiredReplicas": 1,
                          "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20}}}]}}),
    );

    let (status, all) = app.get_json(&ns("/all")).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["pods"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(all["deployments"]["items"][0]["name"], "web");
    assert_eq!(all["statefulSets"][0]["name"], "db");
    assert_eq!(
        (
            &all["statefulSets"][0]["ready"],
            &all["statefulSets"][0]["desired"]
        ),
        (&json!(2), &json!(3))
    );
    assert_eq!(
        all["daemonSets"][0]["nodeSelector"],
        json!({"kubernetes.io/os": "linux"})
    );
    assert_eq!(all["jobs"][0]["status"], "Complete");
    assert_eq!(all["jobs"][0]["completions"], "1/1");
    assert_eq!(all["jobs"][0]["durationSeconds"], 12);
    assert_eq!(all["cronJobs"][0]["schedule"], "0 3 * * *");
    assert_eq!(all["cronJobs"][0]["suspend"], false);
    assert_eq!(
        all["horizontalPodAutoscalers"][0]["reference"],
        "Deployment/web"
    );
    assert_eq!(
        all["horizontalPodAutoscalers"][0]["targets"],
        "cpu: 20%/80%"
    );

    // A selector narrows every kind.
    let (_, batch) = app.get_json(&ns("/all?labelSelector=tier%3Dbatch")).await;
    assert_eq!(batch["pods"]["items"], json!([]));
    assert_eq!(batch["jobs"].as_array().unwrap().len(), 1);

    // Chat prints kubectl's sections, in kubectl's order.
    let (status, out) = app
        .post(
            "/v1/clusters/dev/commands",
            json!({"command": "kubectl get all"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let text = out["output"].as_str().unwrap();
    let order: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("NAME") && !l.is_empty())
        .map(|l| l.split('/').next().unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Vec::new(), |mut seen, k| {
            if seen.last() != Some(&k) {
                seen.push(k);
            }
            seen
        });
    assert_eq!(
        order,
        [
            "pod",
            "daemonset.apps",
            "deployment.apps",
            "replicaset.apps",
            "statefulset.apps",
            "horizontalpodautoscaler.autoscaling",
            "cronjob.batch",
            "job.batch"
        ],
        "{text}"
    );
    assert!(
        text.contains("NAME                  READY   AGE\nstatefulset.apps/db   2/3"),
        "{text}"
    );
    assert!(text.contains("NAME                STATUS     COMPLETIONS   DURATION   AGE\njob.batch/migrate   Complete   1/1           12s"), "{text}");
    assert!(
        text.contains("Deployment/web   cpu: 20%/80%   1         5         1"),
        "{text}"
    );

    // Reads need `read`.
    let nobody = hs_token(&claims("bob", &[]));
    let res = app
        .send_as(Some(&nobody), reqwest::Method::GET, &ns("/all"), None)
        .await;
    assert_problem(res, 403, "forbidden").await;
}
