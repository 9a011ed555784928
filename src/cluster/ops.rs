//! Typed access to the namespaced resources kubegate reads and changes. All `Api<K>` values are
//! built here, and every call runs under the cluster's deadline.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::cache::{Cacheable, Store};
use super::error::ClusterError;
use super::registry::Cluster;

/// The field manager of every kubegate write (visible in `metadata.managedFields`).
pub const FIELD_MANAGER: &str = "kubegate";

fn version<K: Resource>(o: &K) -> u64 {
    o.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The API server's 404 for an object the cache does not hold: `deployments.apps "web" not found`.
fn not_found<K: Resource>(name: &str) -> ClusterError
where
    <K as Resource>::DynamicType: Default,
{
    let dt = Default::default();
    let group = K::group(&dt);
    let plural = K::plural(&dt);
    let resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    ClusterError::NotFound {
        message: format!("{resource} {name:?} not found"),
    }
}

/// Kubernetes `LabelSelector` → selector string (`metav1.LabelSelectorAsSelector`).
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut terms = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        terms.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        terms.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    terms.join(",")
}

/// Send a request and decode its answer, keeping the status code (which `Api`'s methods keep to
/// themselves); an error answer becomes `kube::Error::Api` as kube-rs would report it.
pub(super) async fn send_for_status<T: DeserializeOwned>(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> Result<(T, u16), kube::Error> {
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let status = response.status();
    let bytes = response.into_body().collect_bytes().await?;
    if status.is_client_error() || status.is_server_error() {
        // As kube-rs reports an error answer: its Status, or one made of the text.
        let s = serde_json::from_slice::<kube::core::Status>(&bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&bytes);
            kube::core::Status::failure(text.trim(), "Failed to parse error data")
                .with_code(status.as_u16())
        });
        return Err(kube::Error::Api(s.boxed()));
    }
    let obj = serde_json::from_slice(&bytes).map_err(kube::Error::SerdeError)?;
    Ok((obj, status.as_u16()))
}

impl Cluster {
    fn api<K>(&self, ns: &str) -> Result<Api<K>, ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Ok(Api::namespaced(self.client()?, ns))
    }

    pub async fn list<K>(&self, ns: &str, selector: Option<&str>) -> Result<Vec<K>, ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = self.api(ns)?;
        let mut lp = ListParams::default();
        if let Some(s) = selector {
            lp = lp.labels(s);
        }
        let items = self.call("list", api.list(&lp)).await?.items;
        if let Some(newest) = items.iter().max_by_key(|o| version(*o)) {
            self.wrote(ns, newest);
        }
        Ok(items)
    }

    /// A read for a read endpoint: from the watch cache when it may answer (see `cache`), shared
    /// with it rather than copied, else from the API server. Changes decide on `get`/`list`,
    /// which always ask the API server.
    pub async fn read<K: Cacheable>(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<std::sync::Arc<K>, ClusterError> {
        if let Some(store) = self.cached::<K>(ns).await {
            return store.get(name).ok_or_else(|| not_found::<K>(name));
        }
        self.get(ns, name).await.map(std::sync::Arc::new)
    }

    /// A list for a read endpoint (see `read`); selector as `validate::label_selector` gives it.
    pub async fn read_list<K: Cacheable>(
        &self,
        ns: &str,
        selector: Option<&str>,
    ) -> Result<Vec<K>, ClusterError> {
        if let Some(store) = self.cached::<K>(ns).await {
            let all = store.list();
            return Ok(match selector {
                None => all,
                Some(sel) => all
                    .into_iter()
                    .filter(|o| {
                        super::cache::selects(
                            sel,
                            o.meta().labels.as_ref().unwrap_or(&Default::default()),
                        )
                    })
                    .collect(),
            });
        }
        self.list(ns, selector).await
    }

    /// The watch cache of K in `ns` if it may answer this read; each answer is counted.
    async fn cached<K: Cacheable>(&self, ns: &str) -> Option<std::sync::Arc<Store<K>>> {
        let ready = self.cache.as_ref()?.ready::<K>(ns).await;
        if let Some(m) = &self.metrics {
            m.watch_cache_reads
                .with_label_values(&[self.name.as_str(), &K::plural(&()), ready.answer()])
                .inc();
        }
        ready.store()
    }

    /// Record the resourceVersion of an object kubegate wrote or read from the API server, so that
    /// following reads from the cache include it.
    fn wrote<K: Resource + 'static>(&self, ns: &str, obj: &K) {
        if let Some(cache) = &self.cache {
            cache.wrote::<K>(ns, obj.meta().resource_version.as_deref());
        }
    }

    pub async fn get<K>(&self, ns: &str, name: &str) -> Result<K, ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = self.api(ns)?;
        let obj: K = self.call("get", api.get(name)).await?;
        self.wrote(ns, &obj);
        Ok(obj)
    }

    pub async fn get_opt<K>(&self, ns: &str, name: &str) -> Result<Option<K>, ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = self.api(ns)?;
        let obj: Option<K> = self.call("get", api.get_opt(name)).await?;
        if let Some(o) = &obj {
            self.wrote(ns, o);
        }
        Ok(obj)
    }

    /// Server-side apply as kubegate, taking over the fields it sends (`force`). Also returns
    /// whether this apply created the object: the API server answers 201 Created then and 200 OK
    /// when it existed, which, unlike a read beforehand, holds when two callers race.
    pub async fn apply<K>(
        &self,
        ns: &str,
        name: &str,
        body: &Value,
        dry_run: bool,
    ) -> Result<(K, bool), ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let client = self.client()?;
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = dry_run;
        // `Api::patch` keeps the status code to itself: the same request is sent here instead.
        let request = kube::core::Request::new(K::url_path(&Default::default(), Some(ns)))
            .patch(name, &pp, &Patch::Apply(body))
            .map_err(kube::Error::BuildRequest);
        let (obj, created): (K, bool) = self
            .call("apply", async move {
                let (obj, status) = send_for_status(&client, request?).await?;
                Ok((obj, status == 201))
            })
            .await?;
        if !dry_run {
            self.wrote(ns, &obj);
        }
        Ok((obj, created))
    }

    pub async fn patch<K, P>(
        &self,
        ns: &str,
        name: &str,
        patch: &Patch<P>,
        dry_run: bool,
    ) -> Result<K, ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
        <K as Resource>::DynamicType: Default,
        P: Serialize + std::fmt::Debug,
    {
        let api: Api<K> = self.api(ns)?;
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run,
            ..Default::default()
        };
        let obj: K = self.call("patch", api.patch(name, &pp, patch)).await?;
        if !dry_run {
            self.wrote(ns, &obj);
        }
        Ok(obj)
    }

    pub async fn create<K>(&self, ns: &str, obj: &K, dry_run: bool) -> Result<K, ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug
            + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = self.api(ns)?;
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let created: K = self.call("create", api.create(&pp, obj)).await?;
        if !dry_run {
            self.wrote(ns, &created);
        }
        Ok(created)
    }

    /// Delete one object; with `uid`, only that incarnation (so a same-named newcomer survives).
    pub async fn delete<K>(
        &self,
        ns: &str,
        name: &str,
        uid: Option<String>,
        dry_run: bool,
    ) -> Result<(), ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = self.api(ns)?;
        let dp = DeleteParams {
            dry_run,
            preconditions: uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        let gone = self.call("delete", api.delete(name, &dp)).await?;
        if !dry_run && let Some(cache) = &self.cache {
            match (gone.clone().left(), gone.right()) {
                // Still there (finalizers, graceful deletion): its version says when.
                (Some(obj), _) => self.wrote(ns, &obj),
                // Gone at once: hidden from reads until the watch brings the deletion.
                (None, status) => {
                    let deleted_uid = status
                        .and_then(|s| s.details)
                        .map(|d| d.uid)
                        .filter(|u| !u.is_empty())
                        .or(uid);
                    cache.deleted::<K>(ns, name, deleted_uid);
                }
            }
        }
        Ok(())
    }

    /// `/scale` of a Deployment: the way `kubectl scale` does it.
    pub async fn scale_deployment(
        &self,
        ns: &str,
        name: &str,
        replicas: i32,
        dry_run: bool,
    ) -> Result<i32, ClusterError> {
        let api: Api<Deployment> = self.api(ns)?;
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run,
            ..Default::default()
        };
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        let scale = self
            .call("scale", api.patch_scale(name, &pp, &Patch::Merge(&patch)))
            .await?;
        if !dry_run && let Some(cache) = &self.cache {
            // The Scale's version is the Deployment's.
            cache.wrote::<Deployment>(ns, scale.metadata.resource_version.as_deref());
        }
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(replicas))
    }

    /// The ReplicaSets that make up a Deployment's history; `fresh`: from the API server (for a
    /// change that decides on them), else as reads get them.
    pub async fn history_of(
        &self,
        d: &Deployment,
        fresh: bool,
    ) -> Result<Vec<ReplicaSet>, ClusterError> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let selector = d
            .spec
            .as_ref()
            .map(|s| selector_string(&s.selector))
            .unwrap_or_default();
        let selector = Some(&selector)
            .filter(|s| !s.is_empty())
            .map(String::as_str);
        let all: Vec<ReplicaSet> = if fresh {
            self.list(&ns, selector).await?
        } else {
            self.read_list(&ns, selector).await?
        };
        Ok(super::rollout::owned_replica_sets(d, all))
    }

    /// Pods of a Deployment's current ReplicaSet (by its pod-template-hash).
    pub async fn pods_of(
        &self,
        ns: &str,
        rs: &ReplicaSet,
        fresh: bool,
    ) -> Result<Vec<Pod>, ClusterError> {
        let Some(sel) = rs.spec.as_ref().map(|s| selector_string(&s.selector)) else {
            return Ok(Vec::new());
        };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Pod> = if fresh {
            self.list(ns, Some(&sel)).await?
        } else {
            self.read_list(ns, Some(&sel)).await?
        };
        Ok(pods
            .into_iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid)
            })
            .collect())
    }

    pub async fn logs(
        &self,
        ns: &str,
        name: &str,
        params: &kube::api::LogParams,
    ) -> Result<String, ClusterError> {
        let api: Api<Pod> = self.api(ns)?;
        self.call("logs", api.logs(name, params)).await
    }

    /// A following log stream; not under the call deadline (it lasts as long as the pod or client).
    pub async fn log_stream(
        &self,
        ns: &str,
        name: &str,
        params: &kube::api::LogParams,
    ) -> Result<impl futures::AsyncBufRead + use<>, ClusterError> {
        let api: Api<Pod> = self.api(ns)?;
        // Only the opening of the stream is bounded.
        self.call("logs", api.log_stream(name, params)).await
    }
}

impl Cluster {
    /// Open an exec session in a pod: the WebSocket upgrade to the API server (the channel
    /// protocol v5, or v4 from an older server), bounded by the call deadline; the session itself
    /// is not.
    pub async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
        stdin: bool,
        tty: bool,
    ) -> Result<super::stream::Upstream, ClusterError> {
        let client = self.client()?;
        // The API server's own refusals of a pod that is not running are about nodes and
        // streams; say it plainly first (kubectl: "container not found" / "pod is not running").
        let found: Pod = self.get(ns, pod).await?;
        not_running(&found, container)
            .map_or(Ok(()), |message| Err(ClusterError::Conflict { message }))?;
        let params = kube::api::AttachParams {
            container: container.map(str::to_owned),
            stdin,
            stdout: true,
            // With a terminal, standard error is part of its output (kubectl's rule).
            stderr: !tty,
            tty,
            ..Default::default()
        };
        let request = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
            .exec(pod, command.iter().cloned(), &params)
            .map_err(|e| ClusterError::BadRequest {
                message: e.to_string(),
            })?;
        self.call("exec", super::stream::connect(&client, request))
            .await
    }
}

/// Why an exec into this pod's container cannot run now, if it cannot.
fn not_running(pod: &Pod, container: Option<&str>) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let statuses = status
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let wanted = match container {
        Some(c) => statuses.iter().find(|s| s.name == c),
        // The API server picks the only container, or asks which.
        None if statuses.len() == 1 => statuses.first(),
        None => None,
    };
    let state = wanted.and_then(|w| w.state.as_ref());
    let running = state.and_then(|s| s.running.as_ref()).is_some();
    let why = state
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
        .or_else(|| {
            state
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.reason.clone().unwrap_or_else(|| "Terminated".into()))
        });
    if phase != "Running" {
        let why = why.map(|w| format!(": {w}")).unwrap_or_default();
        return Some(format!(
            "pod {name} is not running ({phase}{why}); exec needs a running container"
        ));
    }
    match wanted {
        Some(w) if !running => Some(format!(
            "container {} of pod {name} is not running ({}); exec needs a running container",
            w.name,
            why.unwrap_or_else(|| "not started".into())
        )),
        _ => None,
    }
}

impl Cluster {
    /// Open a port-forward to a running pod: the WebSocket upgrade to the API server (which
    /// passes it to the kubelet), bounded by the call deadline.
    pub async fn portforward(
        &self,
        ns: &str,
        pod: &str,
        ports: &[u16],
    ) -> Result<super::stream::Upstream, ClusterError> {
        let client = self.client()?;
        let found: Pod = self.get(ns, pod).await?;
        not_running(&found, None)
            .map_or(Ok(()), |message| Err(ClusterError::Conflict { message }))?;
        let request = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
            .portforward(pod, ports)
            .map_err(|e| ClusterError::BadRequest {
                message: e.to_string(),
            })?;
        self.call("portforward", super::stream::connect(&client, request))
            .await
    }
}

impl Cluster {
    /// One request to a pod's or service's `proxy` subresource, as built by the caller; the
    /// answer's head within the call deadline, its body streamed (whatever its status: the
    /// pod's own answers pass through).
    pub async fn proxy(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<kube::client::Body>, ClusterError> {
        let client = self.client()?;
        self.call("proxy", client.send(request.map(kube::client::Body::from)))
            .await
    }

    /// Send a request that asks to switch protocols (`Connection: Upgrade`), as it is: the
    /// upgraded connection with the answer's head, or the API server's answer when it did not
    /// switch.
    #[allow(clippy::type_complexity)]
    pub async fn upgrade(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<
        Result<
            (http::response::Parts, hyper::upgrade::Upgraded),
            http::Response<kube::client::Body>,
        >,
        ClusterError,
    > {
        let client = self.client()?;
        let res = self
            .call(
                "upgrade",
                client.send(request.map(kube::client::Body::from)),
            )
            .await?;
        if res.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Err(res));
        }
        let (head, body) = res.into_parts();
        let res = http::Response::from_parts(head.clone(), body);
        let io = hyper::upgrade::on(res)
            .await
            .map_err(|e| ClusterError::Unavailable {
                message: format!("the protocol switch failed: {e}"),
            })?;
        Ok(Ok((head, io)))
    }
}
