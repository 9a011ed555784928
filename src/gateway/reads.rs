//! Every read, whatever the door (REST, a chat command): the names are checked before any cluster
//! call, the caller is authorized (`read` on that cluster and namespace; deny by default), then
//! the cluster is read, from its watch cache where one is warm. A read changes nothing; the HTTP
//! edge records it in the audit log when read auditing is on.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Service};
use kube::api::LogParams;

use super::error::Error;
use super::state::AppState;
use crate::action::{Kind, Target};
use crate::auth::Principal;
use crate::cluster::rollout::{self, Revision};
use crate::cluster::{Cluster, Probe, Progress, RolloutReport};
use crate::validate::{self, Errors};

/// A read of a namespace's objects.
#[derive(Debug, Clone)]
pub enum Read {
    /// `kubectl get KIND [-l SELECTOR]`.
    List {
        kind: Kind,
        selector: Option<String>,
    },
    /// `kubectl get KIND NAME`, `kubectl describe KIND NAME`.
    Get { kind: Kind, name: String },
    /// `kubectl get all [-l SELECTOR]`: pods, services, deployments, replicasets, statefulsets,
    /// daemonsets, jobs, cronjobs and horizontalpodautoscalers.
    All { selector: Option<String> },
    /// `kubectl logs POD` (a one-off text; see [`follow_logs`] for a stream).
    Logs { pod: String, options: LogOptions },
    /// `kubectl rollout status`: as it is now, or its verdict once reached within `wait`.
    Rollout {
        name: String,
        wait: Option<Duration>,
    },
    /// `kubectl rollout history`.
    Revisions { name: String },
    /// `kubectl get events`, and the Events of `kubectl describe KIND NAME` (`object`: found by
    /// its uid, so the events of a former object of the same name are left out).
    Events {
        object: Option<(Kind, String)>,
        filter: EventFilter,
    },
}

/// Which events: the filters of `GET .../events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// `Normal` or `Warning`.
    pub type_: Option<String>,
    /// The kind (as Kubernetes spells it: `Pod`, `Deployment`) of the object they are about.
    pub kind: Option<String>,
    /// The name of the object they are about.
    pub name: Option<String>,
    /// Only those last seen within this many seconds.
    pub since_seconds: Option<i64>,
}

/// What `kubectl logs` takes.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub container: Option<String>,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub timestamps: bool,
    pub previous: bool,
}

/// What a read found.
pub enum Found {
    Deployments(Vec<Deployment>),
    ReplicaSets(Vec<ReplicaSet>),
    Pods(Vec<Pod>),
    /// Services, with the namespace's pods (a Service's ready endpoints are its pods').
    Services {
        services: Vec<Service>,
        pods: Vec<Pod>,
    },
    Deployment(Arc<Deployment>),
    ReplicaSet(Arc<ReplicaSet>),
    Pod(Arc<Pod>),
    /// A Service with the pods its selector matches.
    Service {
        service: Arc<Service>,
        pods: Vec<Pod>,
    },
    All {
        pods: Vec<Pod>,
        services: Vec<Service>,
        deployments: Vec<Deployment>,
        replica_sets: Vec<ReplicaSet>,
        /// What `get all` lists beyond the kinds kubegate acts on.
        workloads: Box<OtherWorkloads>,
    },
    Logs(String),
    Rollout(Box<RolloutReport>),
    /// A Deployment's revisions, oldest first, and the name of its current ReplicaSet.
    Revisions {
        history: Vec<Revision>,
        current: Option<String>,
    },
    /// Events, oldest last seen first (as `kubectl describe` lists them).
    Events(Vec<Event>),
}

/// The kinds `kubectl get all` lists that kubegate only reads.
#[derive(Debug, Default)]
pub struct OtherWorkloads {
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
}

/// A read of a cluster itself.
#[derive(Debug, Clone, Copy)]
pub enum ClusterRead {
    /// `kubectl version`, `kubectl cluster-info`: the API server's address, reachability, version.
    Info,
    Namespaces,
    Nodes,
}

/// What a read of a cluster found.
pub enum ClusterFound<'a> {
    Info { cluster: &'a Cluster, probe: Probe },
    Namespaces(Vec<Namespace>),
    Nodes(Vec<Node>),
}

/// Read a namespace's objects as `principal`.
pub async fn read(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    read: Read,
) -> Result<Found, Error> {
    check(target, &read)?;
    let c = authorized(state, principal, target)?;
    let ns = target.namespace.as_str();
    Ok(match read {
        Read::List { kind, selector } => list(c, ns, kind, selector.as_deref()).await?,
        Read::Get { kind, name } => get(c, ns, kind, &name).await?,
        Read::All { selector } => {
            let sel = selector.as_deref();
            let (pods, services, deployments, replica_sets) = futures::try_join!(
                c.read_list::<Pod>(ns, sel),
                c.read_list::<Service>(ns, sel),
                c.read_list::<Deployment>(ns, sel),
                c.read_list::<ReplicaSet>(ns, sel),
            )?;
            let (stateful_sets, daemon_sets, jobs, cron_jobs, autoscalers) = futures::try_join!(
                c.list_plain::<StatefulSet>(ns, sel),
                c.list_plain::<DaemonSet>(ns, sel),
                c.list_plain::<Job>(ns, sel),
                c.list_plain::<CronJob>(ns, sel),
                c.list_plain::<HorizontalPodAutoscaler>(ns, sel),
            )?;
            Found::All {
                pods,
                services,
                deployments,
                replica_sets,
                workloads: Box::new(OtherWorkloads {
                    stateful_sets,
                    daemon_sets,
                    jobs,
                    cron_jobs,
                    autoscalers,
                }),
            }
        }
        Read::Logs { pod, options } => Found::Logs(c.logs(ns, &pod, &options.params()).await?),
        Read::Rollout { name, wait: None } => Found::Rollout(Box::new(c.rollout(ns, &name).await?)),
        Read::Rollout {
            name,
            wait: Some(wait),
        } => Found::Rollout(Box::new(
            c.wait_for_rollout(ns, &name, wait.min(state.max_wait))
                .await?,
        )),
        Read::Revisions { name } => {
            // History joins a Deployment and the ReplicaSets its controller made: both are read
            // from the API server, as one moment (two caches could each be current to another).
            let d: Deployment = c.get(ns, &name).await?;
            let rss = c.history_of(&d, true).await?;
            let current =
                rollout::current_replica_set(&d, &rss).and_then(|rs| rs.metadata.name.clone());
            Found::Revisions {
                history: rollout::history(&rss),
                current,
            }
        }
        Read::Events { object, filter } => Found::Events(events(c, ns, object, &filter).await?),
    })
}

/// The events `read` asks for, oldest last seen first.
async fn events(
    c: &Cluster,
    ns: &str,
    object: Option<(Kind, String)>,
    filter: &EventFilter,
) -> Result<Vec<Event>, Error> {
    let mut fields = Vec::new();
    if let Some((kind, name)) = object {
        // The object first: a missing one is a 404, not an empty list.
        let uid = match kind {
            Kind::Deployment => c.get::<Deployment>(ns, &name).await?.metadata.uid,
            Kind::ReplicaSet => c.get::<ReplicaSet>(ns, &name).await?.metadata.uid,
            Kind::Service => c.get::<Service>(ns, &name).await?.metadata.uid,
            Kind::Pod => c.get::<Pod>(ns, &name).await?.metadata.uid,
        };
        fields.push(format!("involvedObject.name={name}"));
        if let Some(uid) = uid {
            fields.push(format!("involvedObject.uid={uid}"));
        }
    }
    if let Some(kind) = &filter.kind {
        fields.push(format!("involvedObject.kind={kind}"));
    }
    if let Some(name) = &filter.name {
        fields.push(format!("involvedObject.name={name}"));
    }
    if let Some(t) = &filter.type_ {
        fields.push(format!("type={t}"));
    }
    let mut events = c.list_events(ns, &fields.join(",")).await?;
    if let Some(s) = filter.since_seconds {
        let after = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s);
        events.retain(|e| last_seen(e).is_none_or(|t| t >= after));
    }
    // Ties (the same second) in the order the API server stored them.
    events.sort_by_key(|e| {
        let stored = e.metadata.resource_version.as_deref();
        (last_seen(e), stored.and_then(|v| v.parse::<u64>().ok()))
    });
    Ok(events)
}

/// When an event was last seen: `lastTimestamp`, else its series' last observation, else
/// `eventTime`, else its creation.
pub fn last_seen(e: &Event) -> Option<jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| {
            e.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        })
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// `kubectl logs -f`: the log as it grows, until the pod ends or the reader goes.
pub async fn follow_logs(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    pod: &str,
    options: LogOptions,
) -> Result<Pin<Box<dyn futures::AsyncBufRead + Send>>, Error> {
    let read = Read::Logs {
        pod: pod.to_owned(),
        options: options.clone(),
    };
    check(target, &read)?;
    let c = authorized(state, principal, target)?;
    let params = LogParams {
        follow: true,
        ..options.params()
    };
    Ok(Box::pin(
        c.log_stream(&target.namespace, pod, &params).await?,
    ))
}

/// `kubectl rollout status --watch`: progress events as the rollout moves, then its verdict.
/// The Deployment is read first, so that a missing one is an error rather than an empty stream.
pub async fn watch_rollout(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    name: &str,
    timeout: Duration,
) -> Result<tokio::sync::mpsc::Receiver<Progress>, Error> {
    let read = Read::Rollout {
        name: name.to_owned(),
        wait: None,
    };
    check(target, &read)?;
    let c = authorized(state, principal, target)?;
    c.rollout(&target.namespace, name).await?;
    Ok(c.rollout_progress(
        target.namespace.clone(),
        name.to_owned(),
        timeout.min(state.max_wait),
    ))
}

/// Read a cluster itself as `principal`. Its version and address are shown to anyone with a grant
/// naming the cluster (otherwise 403, whether it exists or not); namespaces and nodes need `read`.
pub async fn read_cluster<'a>(
    state: &'a AppState,
    principal: &Principal,
    name: &str,
    read: ClusterRead,
) -> Result<ClusterFound<'a>, Error> {
    if let ClusterRead::Info = read {
        if !state.auth.sees_cluster(principal, name) {
            return Err(Error::Forbidden {
                detail: format!("no grant names cluster {name:?}"),
            });
        }
        let cluster = state.cluster(principal, name)?;
        let probe = cluster.probe().await;
        return Ok(ClusterFound::Info { cluster, probe });
    }
    state.auth.authorize(principal, "read", name, None)?;
    let c = state.cluster(principal, name)?;
    Ok(match read {
        ClusterRead::Namespaces => ClusterFound::Namespaces(c.list_namespaces().await?),
        _ => ClusterFound::Nodes(c.list_nodes().await?),
    })
}

/// Names, selector and options, before anything reaches a cluster: every offending field named.
fn check(target: &Target, read: &Read) -> Result<(), Error> {
    let mut e = Errors::default();
    if let Err(m) = validate::dns1123_label(&target.namespace) {
        e.add("namespace", m);
    }
    match read {
        Read::List { selector, .. } | Read::All { selector } => {
            if let Some(s) = selector.as_deref().filter(|s| !s.is_empty())
                && let Err(m) = validate::label_selector(s)
            {
                e.add("labelSelector", m);
            }
        }
        Read::Get { kind, name } => {
            if let Err(m) = kind.check_name(name) {
                e.add("name", m);
            }
        }
        Read::Logs { pod, options } => {
            if let Err(m) = Kind::Pod.check_name(pod) {
                e.add("name", m);
            }
            e.check(
                options
                    .tail_lines
                    .is_none_or(|t| (1..=100_000).contains(&t)),
                "tailLines",
                "must be between 1 and 100000",
            );
            e.check(
                options.since_seconds.is_none_or(|s| s >= 1),
                "sinceSeconds",
                "must be at least 1",
            );
            if let Some(Err(m)) = options.container.as_deref().map(validate::dns1123_label) {
                e.add("container", m);
            }
        }
        Read::Rollout { name, .. } | Read::Revisions { name } => {
            if let Err(m) = Kind::Deployment.check_name(name) {
                e.add("name", m);
            }
        }
        Read::Events { object, filter } => {
            if let Some((kind, name)) = object
                && let Err(m) = kind.check_name(name)
            {
                e.add("name", m);
            }
            if let Some(t) = filter.type_.as_deref() {
                e.check(
                    matches!(t, "Normal" | "Warning"),
                    "type",
                    "must be Normal or Warning",
                );
            }
            if let Some(k) = filter.kind.as_deref() {
                e.check(
                    !k.is_empty()
                        && k.len() <= 63
                        && k.starts_with(|c: char| c.is_ascii_uppercase())
                        && k.chars().all(|c| c.is_ascii_alphanumeric()),
                    "kind",
                    "a kind as Kubernetes spells it, such as Pod or Deployment",
                );
            }
            if let Some(Err(m)) = filter.name.as_deref().map(validate::dns1123_subdomain) {
                e.add("name", m);
            }
            e.check(
                filter.since_seconds.is_none_or(|s| s >= 1),
                "sinceSeconds",
                "must be at least 1",
            );
        }
    }
    if e.is_empty() { Ok(()) } else { Err(e.into()) }
}

/// The cluster, once the caller may read the namespace.
fn authorized<'a>(
    state: &'a AppState,
    principal: &Principal,
    target: &Target,
) -> Result<&'a Cluster, Error> {
    state
        .auth
        .authorize(principal, "read", &target.cluster, Some(&target.namespace))?;
    state.cluster(principal, &target.cluster)
}

async fn list(c: &Cluster, ns: &str, kind: Kind, selector: Option<&str>) -> Result<Found, Error> {
    let selector = selector.filter(|s| !s.is_empty());
    Ok(match kind {
        Kind::Deployment => Found::Deployments(c.read_list(ns, selector).await?),
        Kind::ReplicaSet => Found::ReplicaSets(c.read_list(ns, selector).await?),
        Kind::Pod => Found::Pods(c.read_list(ns, selector).await?),
        Kind::Service => {
            let (services, pods) = futures::try_join!(
                c.read_list::<Service>(ns, selector),
                c.read_list::<Pod>(ns, None)
            )?;
            Found::Services { services, pods }
        }
    })
}

async fn get(c: &Cluster, ns: &str, kind: Kind, name: &str) -> Result<Found, Error> {
    Ok(match kind {
        Kind::Deployment => Found::Deployment(c.read(ns, name).await?),
        Kind::ReplicaSet => Found::ReplicaSet(c.read(ns, name).await?),
        Kind::Pod => Found::Pod(c.read(ns, name).await?),
        Kind::Service => {
            let service: Arc<Service> = c.read(ns, name).await?;
            let selector = service
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            let pods = if selector.is_empty() {
                Vec::new()
            } else {
                let sel: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                c.read_list(ns, Some(&sel.join(","))).await?
            };
            Found::Service { service, pods }
        }
    })
}

impl LogOptions {
    fn params(&self) -> LogParams {
        LogParams {
            container: self.container.clone(),
            tail_lines: self.tail_lines,
            since_seconds: self.since_seconds,
            timestamps: self.timestamps,
            previous: self.previous,
            ..Default::default()
        }
    }
}
