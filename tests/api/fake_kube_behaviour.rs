//! The fake API server's own tests: it must behave like kube-apiserver and the deployment
//! controller as `../shared/KUBERNETES.md` describes, so the rest of the suite can trust it. These
//! talk to the fake directly with kube-rs (typed objects, so its wire format is checked too).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{
    DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

use crate::fake_kube::{FakeKube, Fault, Kind, PodBehavior};

fn client(fake: &FakeKube) -> kube::Client {
    let mut config = kube::Config::new(fake.url.parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }))
    .unwrap()
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API Status, got {other:?}"),
    }
}

/// (revision, change-cause, image) of each ReplicaSet of the deployment, by revision.
fn history(fake: &FakeKube, name: &str) -> Vec<(i64, String, String)> {
    let mut h: Vec<(i64, String, String)> = fake
        .list(Kind::ReplicaSet, "default")
        .into_iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["name"] == name)
        .map(|rs| {
            let a = &rs["metadata"]["annotations"];
            (
                a["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
                a["kubernetes.io/change-cause"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    h.sort();
    h
}

/// kubectl's rollback (polymorphichelpers/rollback.go), as a JSON Patch, to drive the fake the way
/// `kubectl rollout undo` does.
fn undo_patch(fake: &FakeKube, name: &str, to_revision: i64) -> json_patch::Patch {
    const SKIP: [&str; 6] = [
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    ];
    let d = fake.get(Kind::Deployment, "default", name).unwrap();
    let rss: Vec<Value> = fake
        .list(Kind::ReplicaSet, "default")
        .into_iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["name"] == name)
        .collect();
    let rev = |rs: &Value| {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let target_rev = if to_revision == 0 {
        let mut revs: Vec<i64> = rss.iter().map(rev).collect();
        revs.sort();
        revs[revs.len() - 2]
    } else {
        to_revision
    };
    let rs = rss.iter().find(|rs| rev(rs) == target_rev).unwrap();
    let mut template = rs["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    let mut annotations = serde_json::Map::new();
    for (k, v) in d["metadata"]["annotations"].as_object().unwrap() {
        if SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"].as_object().unwrap() {
        if !SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]))
    .unwrap()
}

#[tokio::test]
async fn a_new_deployment_gets_replicaset_revision_1_and_ready_pods() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");

    let created = deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1.27", 2))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(
        created.spec.as_ref().unwrap().revision_history_limit,
        Some(10),
        "defaulted"
    );
    fake.settle().await;

    let d = deployments.get("web").await.unwrap();
    let status = d.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(2), Some(2), Some(2), Some(2))
    );
    let progressing = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );

    let rss: Api<ReplicaSet> = Api::namespaced(client(&fake), "default");
    let rs = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .remove(0);
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        rs.metadata.owner_references.as_ref().unwrap()[0].controller,
        Some(true)
    );
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        hash
    );

    let pods: Api<Pod> = Api::namespaced(client(&fake), "default");
    let pods = pods
        .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 2);
    for p in pods {
        assert!(
            p.metadata
                .name
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        let st = p.status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(
            st.conditions
                .unwrap()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
    }
}

#[tokio::test]
async fn generation_moves_only_with_the_spec_and_no_op_writes_keep_the_resource_version() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
        .await
        .unwrap();
    fake.settle().await;
    let before = deployments.get("web").await.unwrap();

    let labelled = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "a label is not a spec change"
    );
    assert_ne!(
        labelled.metadata.resource_version,
        before.metadata.resource_version
    );

    let same = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version, labelled.metadata.resource_version,
        "a no-op write changes nothing"
    );

    let scaled = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    // Right after the write the controller has not observed it yet, as on a real cluster.
    assert_eq!(scaled.status.unwrap().observed_generation, Some(1));
    fake.settle().await;
    assert_eq!(
        deployments
            .get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .observed_generation,
        Some(2)
    );
}

#[tokio::test]
async fn the_kubectl_history_and_undo_sequence_of_kubernetes_md_is_reproduced() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    let annotate = |cause: &str| {
        Patch::Merge(json!({"metadata": {"annotations": {"kubernetes.io/change-cause": cause}}}))
    };
    let set_image = |image: &str| {
        Patch::Strategic(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}),
        )
    };
    let pp = PatchParams::default();

    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
        .await
        .unwrap();
    fake.settle().await;
    deployments.patch("web", &pp, &annotate("A")).await.unwrap();
    fake.settle().await;
    deployments
        .patch("web", &pp, &set_image("nginx:2"))
        .await
        .unwrap();
    fake.settle().await;
    deployments.patch("web", &pp, &annotate("B")).await.unwrap();
    fake.settle().await;
    deployments
        .patch("web", &pp, &set_image("nginx:3"))
        .await
        .unwrap();
    fake.settle().await;
    // The controller copies annotations onto the current ReplicaSet continuously: 1 A, 2 B, 3 B.
    assert_eq!(
        history(&fake, "web"),
        [
            (1, "A".into(), "nginx:1".into()),
            (2, "B".into(), "nginx:2".into()),
            (3, "B".into(), "nginx:3".into())
        ]
    );

    deployments
        .patch("web", &pp, &Patch::Json::<()>(undo_patch(&fake, "web", 0)))
        .await
        .unwrap();
    fake.settle().await;
    let revs: Vec<i64> = history(&fake, "web").iter().map(|h| h.0).collect();
    assert_eq!(revs, [1, 3, 4], "revision 2 is renumbered 4");
    let rs4 = fake
        .list(Kind::ReplicaSet, "default")
        .into_iter()
        .find(|rs| rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4")
        .unwrap();
    assert_eq!(
        rs4["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "2"
    );
    assert_eq!(
        rs4["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );

    deployments
        .patch("web", &pp, &Patch::Json::<()>(undo_patch(&fake, "web", 0)))
        .await
        .unwrap();
    fake.settle().await;
    assert_eq!(
        history(&fake, "web")
            .iter()
            .map(|h| h.0)
            .collect::<Vec<_>>(),
        [1, 4, 5],
        "undo twice toggles"
    );

    deployments
        .patch("web", &pp, &Patch::Json::<()>(undo_patch(&fake, "web", 1)))
        .await
        .unwrap();
    fake.settle().await;
    let h = history(&fake, "web");
    assert_eq!(h.iter().map(|h| h.0).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(h[2].2, "nginx:1");
    let d = deployments.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "6"
    );
    // Old pods were replaced: only the current ReplicaSet has replicas.
    let rs_replicas: Vec<i64> = fake
        .list(Kind::ReplicaSet, "default")
        .iter()
        .map(|rs| rs["spec"]["replicas"].as_i64().unwrap())
        .collect();
    assert_eq!(rs_replicas.iter().sum::<i64>(), 1);
}

#[tokio::test]
async fn server_side_apply_drops_fields_a_manager_stops_sending_but_keeps_replicas_owned_by_scale()
{
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    let apply = PatchParams::apply("kubegate");
    let mut config = serde_json::to_value(deployment("web", "nginx:1", 3)).unwrap();

    deployments
        .patch("web", &apply, &Patch::Apply(&config))
        .await
        .unwrap();
    config["spec"].as_object_mut().unwrap().remove("replicas");
    let d = deployments
        .patch("web", &apply, &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(
        d.spec.unwrap().replicas,
        Some(1),
        "the applier stopped sending replicas: back to the default"
    );

    config["spec"]["replicas"] = json!(3);
    deployments
        .patch("web", &apply, &Patch::Apply(&config))
        .await
        .unwrap();
    deployments
        .patch_scale(
            "web",
            &PatchParams {
                field_manager: Some("kubectl-scale".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    config["spec"].as_object_mut().unwrap().remove("replicas");
    let d = deployments
        .patch("web", &apply, &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(
        d.spec.as_ref().unwrap().replicas,
        Some(5),
        "replicas now belong to the scaler"
    );
    let managers: Vec<String> = d
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| m.manager.unwrap())
        .collect();
    assert!(
        managers.contains(&"kubegate".to_owned()) && managers.contains(&"kubectl-scale".to_owned()),
        "{managers:?}"
    );

    // Once the controllers are done with it (they write status), an identical apply is a no-op.
    fake.settle().await;
    let d = deployments.get("web").await.unwrap();
    let again = deployments
        .patch("web", &apply, &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, d.metadata.resource_version,
        "an identical apply is a no-op"
    );
    assert_eq!(again.metadata.generation, d.metadata.generation);

    config["spec"]["replicas"] = json!(2);
    let err = api_status(
        deployments
            .patch("web", &apply, &Patch::Apply(&config))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("conflict with \"kubectl-scale\"")
            && err.message.contains(".spec.replicas"),
        "{}",
        err.message
    );
    let forced = deployments
        .patch("web", &apply.clone().force(), &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(2));
}

#[tokio::test]
async fn dry_run_validates_and_stores_nothing() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };

    let would_be = deployments
        .create(&dry, &deployment("web", "nginx:1", 1))
        .await
        .unwrap();
    assert!(would_be.metadata.uid.is_some());
    assert!(deployments.get_opt("web").await.unwrap().is_none());

    let mut bad = deployment("Web", "nginx:1", 1);
    bad.metadata.name = Some("Web".into());
    let err = api_status(deployments.create(&dry, &bad).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(fake.requests().iter().all(|r| r.method != "POST" || r.query.get("dryRun").map(String::as_str) == Some("All")));
}

#[tokio::test]
async fn errors_are_kubernetes_status_objects() {
    let fake = FakeKube::start().await;
    let c = client(&fake);
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let created = deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
        .await
        .unwrap();

    let err = api_status(
        deployments
            .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "deployments.apps \"web\" already exists");

    let err = api_status(deployments.get("nope").await.unwrap_err());
    assert_eq!(
        (err.code, err.reason.as_str(), err.message.as_str()),
        (404, "NotFound", "deployments.apps \"nope\" not found")
    );

    let elsewhere: Api<Deployment> = Api::namespaced(c.clone(), "missing");
    let err = api_status(
        elsewhere
            .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"missing\" not found")
    );

    fake.settle().await;
    let mut stale = created.clone();
    stale.spec.as_mut().unwrap().replicas = Some(4);
    let err = api_status(
        deployments
            .replace("web", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("the object has been modified"));

    let mut mismatched = deployment("other", "nginx:1", 1);
    mismatched
        .spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some([("app".to_owned(), "else".to_owned())].into());
    let err = api_status(
        deployments
            .create(&PostParams::default(), &mismatched)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.details.unwrap().causes[0].field,
        "spec.template.metadata.labels"
    );

    let guarded: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/annotations/deployment.kubernetes.io~1revision", "value": "7"},
        {"op": "replace", "path": "/spec/replicas", "value": 2},
    ]))
    .unwrap();
    let err = api_status(
        deployments
            .patch("web", &PatchParams::default(), &Patch::Json::<()>(guarded))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "a failed JSON Patch test is 422");
    assert_eq!(
        deployments.get("web").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
}

#[tokio::test]
async fn watch_streams_changes_after_a_resource_version() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    let created = deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();

    let stream = deployments
        .watch(
            &WatchParams::default()
                .fields("metadata.name=web")
                .timeout(5),
            &rv,
        )
        .await
        .unwrap();
    let mut stream = stream.boxed();
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();

    let mut seen = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        match ev {
            WatchEvent::Modified(d) => {
                seen.push(("MODIFIED", d.metadata.resource_version.unwrap()))
            }
            WatchEvent::Deleted(d) => {
                seen.push(("DELETED", d.metadata.resource_version.unwrap()));
                break;
            }
            WatchEvent::Added(_) => seen.push(("ADDED", String::new())),
            _ => {}
        }
    }
    assert_eq!(seen.last().unwrap().0, "DELETED");
    assert!(
        !seen.iter().any(|s| s.0 == "ADDED"),
        "nothing before {rv} is replayed"
    );
    let rvs: Vec<u64> = seen.iter().map(|s| s.1.parse().unwrap()).collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]) && rvs[0] > rv.parse().unwrap());
}

#[tokio::test]
async fn a_watch_from_a_version_older_than_the_event_window_is_expired() {
    let fake = FakeKube::start().await;
    fake.set_event_window(3);
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    let created = deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
        .await
        .unwrap();
    let old_rv = created.metadata.resource_version.clone().unwrap();
    fake.settle().await;
    for i in 0..5 {
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"step": i.to_string()}}})),
            )
            .await
            .unwrap();
    }
    let mut stream = deployments
        .watch(&WatchParams::default().timeout(5), &old_rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Some(WatchEvent::Error(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"), "{e:?}");
            assert!(e.message.starts_with("too old resource version: "), "{e:?}");
        }
        other => panic!("expected 410 Expired, got {other:?}"),
    }

    // A recent version still resumes.
    let latest = deployments.get("web").await.unwrap();
    let rv = latest.metadata.resource_version.unwrap();
    let mut stream = deployments
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"step": "last"}}})),
        )
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(next, Some(WatchEvent::Modified(_))), "{next:?}");
}

#[tokio::test]
async fn label_selectors_filter_lists_and_delete_collections() {
    let fake = FakeKube::start().await;
    let pods: Api<Pod> = Api::namespaced(client(&fake), "default");
    for (name, app, tier) in [
        ("a1", "a", "web"),
        ("b1", "b", "db"),
        ("b2", "b", "web"),
        ("c1", "c", "web"),
    ] {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app, "tier": tier}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let names = |list: Vec<Pod>| {
        list.into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };

    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app in (a,b),tier!=db"))
                .await
                .unwrap()
                .items
        ),
        ["a1", "b2"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("!tier"))
                .await
                .unwrap()
                .items
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("metadata.name=c1"))
                .await
                .unwrap()
                .items
        ),
        ["c1"]
    );
    let err = api_status(
        pods.list(&ListParams::default().labels("app in (a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);

    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=b"),
    )
    .await
    .unwrap();
    assert_eq!(
        names(pods.list(&ListParams::default()).await.unwrap().items),
        ["a1", "c1"]
    );
}

#[tokio::test]
async fn deleting_a_deployment_cascades_unless_orphaned() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 2))
        .await
        .unwrap();
    deployments
        .create(&PostParams::default(), &deployment("keep", "nginx:1", 1))
        .await
        .unwrap();
    fake.settle().await;
    assert_eq!(fake.list(Kind::Pod, "default").len(), 3);

    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    deployments
        .delete("keep", &DeleteParams::orphan())
        .await
        .unwrap();
    fake.settle().await;

    let rs = fake.list(Kind::ReplicaSet, "default");
    assert_eq!(rs.len(), 1, "web's ReplicaSet went with it; keep's stayed");
    assert!(
        rs[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("keep-")
    );
    assert!(
        rs[0]["metadata"].get("ownerReferences").is_none(),
        "orphaned"
    );
    assert_eq!(fake.list(Kind::Pod, "default").len(), 1);
}

#[tokio::test]
async fn a_stuck_image_keeps_the_old_pods_and_reports_the_waiting_reason() {
    let fake = FakeKube::start().await;
    fake.set_image_behavior("nginx:bad", PodBehavior::Waiting("ImagePullBackOff".into()));
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 3))
        .await
        .unwrap();
    fake.settle().await;

    deployments.patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:bad"}]}}}}))).await.unwrap();
    fake.settle().await;

    let st = deployments.get("web").await.unwrap().status.unwrap();
    // maxSurge 25% of 3 rounds up to 1, maxUnavailable 25% rounds down to 0: one new pod, three old.
    assert_eq!(
        (st.replicas, st.updated_replicas, st.available_replicas),
        (Some(4), Some(1), Some(3))
    );
    let stuck: Vec<Value> = fake
        .list(Kind::Pod, "default")
        .into_iter()
        .filter(|p| p["spec"]["containers"][0]["image"] == "nginx:bad")
        .collect();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0]["status"]["phase"], "Pending");
    assert_eq!(
        stuck[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ImagePullBackOff"
    );

    fake.exceed_progress_deadline("default", "web");
    fake.settle().await;
    let conditions = deployments
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    let progressing = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
}

#[tokio::test]
async fn pods_can_become_ready_later_or_never() {
    let fake = FakeKube::start().await;
    fake.set_image_behavior(
        "slow:1",
        PodBehavior::ReadyAfter(Duration::from_millis(300)),
    );
    fake.set_image_behavior("never:1", PodBehavior::NeverReady);
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    deployments
        .create(&PostParams::default(), &deployment("slow", "slow:1", 1))
        .await
        .unwrap();
    deployments
        .create(&PostParams::default(), &deployment("never", "never:1", 1))
        .await
        .unwrap();
    fake.settle().await;
    assert_eq!(
        deployments
            .get("slow")
            .await
            .unwrap()
            .status
            .unwrap()
            .available_replicas,
        None
    );

    // Available once its pod is ready, 300 ms after it started.
    crate::helpers::eventually(
        "slow to become available",
        Duration::from_secs(10),
        async || {
            fake.settle().await;
            let status = deployments.get("slow").await.unwrap().status.unwrap();
            (status.available_replicas == Some(1)).then_some(())
        },
    )
    .await;
    let never = deployments.get("never").await.unwrap().status.unwrap();
    assert_eq!((never.replicas, never.available_replicas), (Some(1), None));
}

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports_and_are_validated() {
    let fake = FakeKube::start().await;
    let services: Api<Service> = Api::namespaced(client(&fake), "default");
    let svc = |name: &str, ty: &str, node_port: Option<i32>| -> Service {
        let mut port = json!({"port": 80});
        if let Some(np) = node_port {
            port["nodePort"] = json!(np);
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"type": ty, "selector": {"app": "web"}, "ports": [port]}})).unwrap()
    };

    let cip = services
        .create(&PostParams::default(), &svc("web", "ClusterIP", None))
        .await
        .unwrap()
        .spec
        .unwrap();
    assert!(cip.cluster_ip.unwrap().starts_with("10.96."));
    let port = &cip.ports.unwrap()[0];
    assert_eq!(
        (port.protocol.as_deref(), port.target_port.clone()),
        (
            Some("TCP"),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
        )
    );

    let np = services
        .create(&PostParams::default(), &svc("web-np", "NodePort", None))
        .await
        .unwrap()
        .spec
        .unwrap();
    let node_port = np.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&node_port));

    let err = api_status(
        services
            .create(
                &PostParams::default(),
                &svc("dup", "NodePort", Some(node_port)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("provided port is already allocated"),
        "{}",
        err.message
    );
    let err = api_status(
        services
            .create(&PostParams::default(), &svc("low", "NodePort", Some(80)))
            .await
            .unwrap_err(),
    );
    assert!(err.message.contains("30000-32767"));

    let ext: Service = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}})).unwrap();
    let ext = services
        .create(&PostParams::default(), &ext)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(ext.cluster_ip, None);
    assert_eq!(ext.external_name.as_deref(), Some("db.example.com"));
}

#[tokio::test]
async fn pod_logs_can_be_tailed_and_followed() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    deployments
        .create(&PostParams::default(), &deployment("web", "nginx:1", 1))
        .await
        .unwrap();
    fake.settle().await;
    let pod = fake.list(Kind::Pod, "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let pods: Api<Pod> = Api::namespaced(client(&fake), "default");

    let all = pods.logs(&pod, &LogParams::default()).await.unwrap();
    assert_eq!(all.lines().count(), 3);
    let last = pods
        .logs(
            &pod,
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(last.lines().count(), 1);
    assert_eq!(last.trim_end(), all.lines().last().unwrap());

    let mut follow = pods
        .log_stream(
            &pod,
            &LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    use futures::AsyncBufReadExt;
    let mut line = String::new();
    for _ in 0..3 {
        line.clear();
        follow.read_line(&mut line).await.unwrap();
    }
    fake.append_log("default", &pod, "web", "a new request");
    line.clear();
    tokio::time::timeout(Duration::from_secs(5), follow.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, "a new request\n");
}

#[tokio::test]
async fn faults_and_the_request_log_are_under_the_tests_control() {
    let fake = FakeKube::start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&fake), "default");
    fake.inject(Fault {
        status: 503,
        times: 1,
        retry_after: None,
        path_contains: None,
        method: None,
    });

    let err = api_status(deployments.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 503);
    assert!(
        deployments.list(&ListParams::default()).await.is_ok(),
        "only once"
    );

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter()
            .all(|r| r.method == "GET" && r.path == "/apis/apps/v1/namespaces/default/deployments")
    );
    assert!(fake.mutations().is_empty());

    deployments
        .patch(
            "web",
            &PatchParams::apply("kubegate"),
            &Patch::Apply(deployment("web", "nginx:1", 1)),
        )
        .await
        .unwrap();
    let apply = fake.mutations().pop().unwrap();
    assert_eq!(
        (apply.method.as_str(), apply.content_type.as_str()),
        ("PATCH", "application/apply-patch+yaml")
    );
    assert_eq!(apply.query["fieldManager"], "kubegate");
    assert!(apply.body.contains("nginx:1"));
}
