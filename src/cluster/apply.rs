//! Objects of any kind, for apply: a kind resolved through the cluster's discovery (kept a
//! minute; never guessed), the live object, server-side apply as kubegate, and the waits apply
//! needs (a CRD established before its objects, workloads rolled out).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use kube::{Api, Resource};
use serde_json::Value;

use super::error::ClusterError;
use super::kinds::{KIND_TTL, Kind};
use super::ops::{FIELD_MANAGER, send_for_status};
use super::registry::Cluster;
use super::rollout::{self, RolloutState};

/// The result of one server-side apply.
#[derive(Debug, Clone)]
pub struct AppliedObject {
    pub object: Value,
    pub created: bool,
}

/// Where a workload's rollout stood when the wait ended.
#[derive(Debug, Clone)]
pub struct WorkloadRollout {
    pub state: RolloutState,
    pub timed_out: bool,
}

impl Cluster {
    /// The kind `group/version` `kind` as this cluster serves it; None when it does not.
    pub async fn resolve_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<Kind>, ClusterError> {
        let key = (group.to_owned(), version.to_owned(), kind.to_owned());
        if let Some((k, at)) = self.kinds.by_kind.lock().expect("kinds").get(&key)
            && at.elapsed() < KIND_TTL
        {
            return Ok(Some(k.clone()));
        }
        let client = self.client()?;
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = self
            .call("discovery", async move {
                match kube::discovery::pinned_kind(&client, &gvk).await {
                    Ok((resource, caps)) => Ok(Some(Kind {
                        resource,
                        namespaced: caps.scope == Scope::Namespaced,
                    })),
                    Err(kube::Error::Discovery(_)) => Ok(None),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if let Some(k) = &found {
            self.kinds
                .by_kind
                .lock()
                .expect("kinds")
                .insert(key, (k.clone(), Instant::now()));
        }
        Ok(found)
    }

    /// The resource `group/version` `plural` (no subresource) as this cluster serves it; None
    /// when it does not. One discovery request answers for the whole group version.
    pub async fn resolve_resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Option<Kind>, ClusterError> {
        let key = (group.to_owned(), version.to_owned(), plural.to_owned());
        if let Some((k, at)) = self.kinds.by_resource.lock().expect("kinds").get(&key)
            && at.elapsed() < KIND_TTL
        {
            return Ok(Some(k.clone()));
        }
        let client = self.client()?;
        let gv = kube::core::GroupVersion::gv(group, version);
        let served = self
            .call("discovery", async move {
                match kube::discovery::pinned_group(&client, &gv).await {
                    Ok(g) => Ok(g.versioned_resources(&gv.version)),
                    Err(kube::Error::Discovery(_)) => Ok(Vec::new()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let now = Instant::now();
        let mut cache = self.kinds.by_resource.lock().expect("kinds");
        for (resource, caps) in served {
            let k = (
                group.to_owned(),
                version.to_owned(),
                resource.plural.clone(),
            );
            let kind = Kind {
                resource,
                namespaced: caps.scope == Scope::Namespaced,
            };
            cache.insert(k, (kind, now));
        }
        Ok(cache.get(&key).map(|(k, _)| k.clone()))
    }

    fn dynamic(&self, kind: &Kind, ns: Option<&str>) -> Result<Api<DynamicObject>, ClusterError> {
        let client = self.client()?;
        Ok(match ns {
            Some(ns) if kind.namespaced => Api::namespaced_with(client, ns, &kind.resource),
            _ => Api::all_with(client, &kind.resource),
        })
    }

    /// The live object, if any.
    pub async fn get_object(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let api = self.dynamic(kind, ns)?;
        let obj = self.call("get", api.get_opt(name)).await?;
        obj.map(|o| {
            serde_json::to_value(o).map_err(|e| ClusterError::Unavailable {
                message: format!("unexpected object from the API server: {e}"),
            })
        })
        .transpose()
    }

    /// Server-side apply of `body` as kubegate (`force`: take over fields other managers own).
    /// Created when the API server answers 201 (which holds when two callers race).
    pub async fn apply_object(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        body: &Value,
        force: bool,
        dry_run: bool,
    ) -> Result<AppliedObject, ClusterError> {
        let client = self.client()?;
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        pp.force = force;
        pp.dry_run = dry_run;
        let ns = ns.filter(|_| kind.namespaced);
        let request = kube::core::Request::new(DynamicObject::url_path(&kind.resource, ns))
            .patch(name, &pp, &Patch::Apply(body))
            .map_err(kube::Error::BuildRequest);
        let (object, status): (Value, u16) = self
            .call(
                "apply",
                async move { send_for_status(&client, request?).await },
            )
            .await?;
        if !dry_run {
            self.wrote_object(kind, ns.unwrap_or(""), &object);
        }
        Ok(AppliedObject {
            object,
            created: status == 201,
        })
    }

    /// Reads from the watch cache include what apply wrote, for the kinds the cache holds.
    fn wrote_object(&self, kind: &Kind, ns: &str, object: &Value) {
        let Some(cache) = &self.cache else { return };
        let rv = object["metadata"]["resourceVersion"].as_str();
        match (kind.resource.group.as_str(), kind.resource.kind.as_str()) {
            ("apps", "Deployment") => cache.wrote::<Deployment>(ns, rv),
            ("apps", "ReplicaSet") => cache.wrote::<ReplicaSet>(ns, rv),
            ("apps", "StatefulSet") => cache.wrote::<StatefulSet>(ns, rv),
            ("apps", "DaemonSet") => cache.wrote::<DaemonSet>(ns, rv),
            ("", "Service") => cache.wrote::<Service>(ns, rv),
            ("", "Pod") => cache.wrote::<Pod>(ns, rv),
            _ => {}
        }
    }

    /// Wait until the CRD `name` is Established (its kind is served), up to `timeout`.
    pub async fn wait_crd_established(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<bool, ClusterError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client()?);
        let established = kube::runtime::wait::conditions::is_crd_established();
        match tokio::time::timeout(
            timeout,
            kube::runtime::wait::await_condition(api, name, established),
        )
        .await
        {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(ClusterError::Unavailable {
                message: format!("watching CustomResourceDefinition {name:?}: {e}"),
            }),
            Err(_) => Ok(false),
        }
    }

    /// Wait for a StatefulSet's or DaemonSet's rollout as `kubectl rollout status` does, up to
    /// `timeout`; the state when it ended.
    pub async fn wait_for_workload(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<WorkloadRollout, ClusterError> {
        match kind {
            "StatefulSet" => {
                self.wait_typed::<StatefulSet>(ns, name, timeout, rollout::statefulset_state)
                    .await
            }
            _ => {
                self.wait_typed::<DaemonSet>(ns, name, timeout, rollout::daemonset_state)
                    .await
            }
        }
    }

    async fn wait_typed<K>(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
        state: fn(&K) -> RolloutState,
    ) -> Result<WorkloadRollout, ClusterError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client()?, ns);
        let ended = move |o: Option<&K>| o.is_some_and(|o| state(o).done);
        match tokio::time::timeout(
            timeout,
            kube::runtime::wait::await_condition(api, name, ended),
        )
        .await
        {
            Ok(Ok(Some(o))) => Ok(WorkloadRollout {
                state: state(&o),
                timed_out: false,
            }),
            Ok(Ok(None)) => Err(ClusterError::NotFound {
                message: format!("{name:?} was deleted while waiting for its rollout"),
            }),
            Ok(Err(e)) => Err(ClusterError::Unavailable {
                message: format!("watching {name:?}: {e}"),
            }),
            Err(_) => {
                let now: K = self.get(ns, name).await?;
                Ok(WorkloadRollout {
                    state: state(&now),
                    timed_out: true,
                })
            }
        }
    }
}
