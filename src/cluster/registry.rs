//! The clusters kubegate knows, by name: one per kubeconfig context, plus the cluster kubegate runs
//! in when configured. Built once at start-up; each entry owns its kube-rs client.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::ClusterError;
use crate::config::{Config, InClusterMode};

/// Where a cluster's connection settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterSource {
    Kubeconfig,
    InCluster,
}

/// One named cluster.
#[derive(Clone)]
pub struct Cluster {
    pub name: String,
    /// API server URL.
    pub server: String,
    pub source: ClusterSource,
    /// The context's namespace (kubectl's default for this cluster).
    pub default_namespace: String,
    client: Result<kube::Client, String>,
    /// The settings the shared client was built from: each HTTP worker builds its own from them.
    settings: Option<(super::io::ClientId, kube::Config)>,
    timeout: Duration,
    probe_timeout: Duration,
    pub(crate) metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// Watch caches for reads (KUBEGATE_WATCH_CACHE).
    pub(crate) cache: Option<std::sync::Arc<super::cache::WatchCache>>,
    /// Kinds resolved through discovery, for apply.
    pub(crate) kinds: std::sync::Arc<super::kinds::Kinds>,
}

/// The result of asking a cluster for its version.
#[derive(Debug, Clone)]
pub struct Probe {
    pub version: Option<ServerVersion>,
    pub error: Option<String>,
}

impl Cluster {
    fn enable_cache(&mut self, config: &Config) {
        if let (true, Ok(client)) = (config.watch_cache, &self.client) {
            self.cache = Some(std::sync::Arc::new(super::cache::WatchCache::new(
                &self.name,
                client.clone(),
                config.watch_cache_idle,
            )));
        }
    }

    /// The client for a call made here: on an HTTP worker, that worker's own; elsewhere the
    /// shared one (see `io`).
    pub(crate) fn client(&self) -> Result<kube::Client, ClusterError> {
        let shared = self
            .client
            .as_ref()
            .map_err(|message| ClusterError::NotUsable {
                message: message.clone(),
            })?;
        Ok(self
            .settings
            .as_ref()
            .and_then(|(id, config)| super::io::worker_client(*id, config))
            .unwrap_or_else(|| shared.clone()))
    }

    /// Run one non-streaming call under the cluster deadline.
    pub(crate) async fn call<T, F>(&self, verb: &'static str, fut: F) -> Result<T, ClusterError>
    where
        F: Future<Output = Result<T, kube::Error>>,
    {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClusterError::Timeout(self.timeout))
            .and_then(|r| r.map_err(ClusterError::from_kube));
        if let Some(m) = &self.metrics {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(ClusterError::Timeout(_)) => "timeout",
                Err(
                    ClusterError::Unavailable { .. }
                    | ClusterError::Throttled { .. }
                    | ClusterError::NotUsable { .. },
                ) => "unavailable",
                Err(_) => "error",
            };
            m.cluster_calls
                .with_label_values(&[self.name.as_str(), verb, outcome])
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// Is the API server answering? Asks `/version` under the short probe deadline.
    pub async fn probe(&self) -> Probe {
        let result = match self.client() {
            Ok(client) => {
                match tokio::time::timeout(self.probe_timeout, client.apiserver_version()).await {
                    Ok(Ok(info)) => Ok(ServerVersion::from(info)),
                    Ok(Err(e)) => Err(ClusterError::from_kube(e).to_string()),
                    Err(_) => Err(ClusterError::Timeout(self.probe_timeout).to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(v) => Probe {
                version: Some(v),
                error: None,
            },
            Err(e) => Probe {
                version: None,
                error: Some(e),
            },
        }
    }
}

/// The API server's version, as `kubectl version` shows it.
#[derive(Debug, Clone)]
pub struct ServerVersion {
    pub git_version: String,
    pub major: String,
    pub minor: String,
    pub platform: String,
    pub go_version: String,
    pub build_date: String,
}

impl From<k8s_openapi::apimachinery::pkg::version::Info> for ServerVersion {
    fn from(i: k8s_openapi::apimachinery::pkg::version::Info) -> Self {
        Self {
            git_version: i.git_version,
            major: i.major,
            minor: i.minor,
            platform: i.platform,
            go_version: i.go_version,
            build_date: i.build_date,
        }
    }
}

/// All clusters by name.
pub struct ClusterRegistry {
    clusters: BTreeMap<String, Cluster>,
}

impl ClusterRegistry {
    /// Load clusters from the kubeconfig(s) and, when configured, the in-cluster service account.
    /// A context whose settings cannot make a client is still listed, as not usable, with why.
    pub async fn load(
        config: &Config,
        metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    ) -> anyhow::Result<Self> {
        let mut clusters = BTreeMap::new();
        let timeouts = (config.cluster_timeout, config.cluster_probe_timeout);

        if let Some(kubeconfig) = read_kubeconfig(config.kubeconfig.as_deref())? {
            for context in &kubeconfig.contexts {
                let mut cluster = from_context(&kubeconfig, &context.name, timeouts).await;
                cluster.metrics = metrics.clone();
                cluster.enable_cache(config);
                insert_unique(&mut clusters, cluster, "KUBECONFIG")?;
            }
        }

        let in_cluster = match config.in_cluster {
            InClusterMode::Never => false,
            InClusterMode::Always => true,
            InClusterMode::Auto => std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        };
        if in_cluster {
            let name = cluster_name(&config.in_cluster_name).ok_or_else(|| {
                anyhow::anyhow!(
                    "KUBEGATE_IN_CLUSTER_NAME {:?} is not a valid cluster name \
                     (letters, digits and . _ @ : - ; at most 253 characters)",
                    config.in_cluster_name
                )
            })?;
            let kube_config = kube::Config::incluster().map_err(|e| {
                anyhow::anyhow!("KUBEGATE_IN_CLUSTER: in-cluster configuration unavailable: {e}")
            })?;
            let mut cluster = build(name, ClusterSource::InCluster, Ok(kube_config), timeouts);
            cluster.metrics = metrics.clone();
            cluster.enable_cache(config);
            insert_unique(&mut clusters, cluster, "KUBEGATE_IN_CLUSTER_NAME")?;
        }

        if clusters.is_empty() {
            tracing::warn!(
                "no clusters configured: no kubeconfig found (KUBECONFIG, ~/.kube/config) and not \
                 running in a cluster; kubegate serves, but lists no clusters"
            );
        }
        for c in clusters.values() {
            match &c.client {
                Ok(_) => {
                    tracing::info!(cluster = %c.name, server = %c.server, "cluster registered")
                }
                Err(e) => {
                    tracing::warn!(cluster = %c.name, error = %e, "cluster registered but not usable")
                }
            }
        }
        Ok(Self { clusters })
    }

    pub fn get(&self, name: &str) -> Option<&Cluster> {
        self.clusters.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.clusters.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.values()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }
}

fn insert_unique(
    clusters: &mut BTreeMap<String, Cluster>,
    cluster: Cluster,
    setting: &str,
) -> anyhow::Result<()> {
    if clusters.contains_key(&cluster.name) {
        anyhow::bail!(
            "{setting}: two clusters would be named {:?}; rename a kubeconfig context",
            cluster.name
        );
    }
    clusters.insert(cluster.name.clone(), cluster);
    Ok(())
}

/// Read and merge the kubeconfig files, like kubectl: `$KUBECONFIG` is a list of paths whose
/// missing entries are skipped; without it, `~/.kube/config` if present. `None`: no kubeconfig.
fn read_kubeconfig(setting: Option<&str>) -> anyhow::Result<Option<Kubeconfig>> {
    let paths: Vec<PathBuf> = match setting {
        Some(list) => std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => std::env::home_dir()
            .map(|home| vec![home.join(".kube").join("config")])
            .unwrap_or_default(),
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        if !path.exists() {
            if setting.is_some() {
                tracing::warn!(path = %path.display(), "KUBECONFIG: file does not exist, skipped");
            }
            continue;
        }
        let next = Kubeconfig::read_from(&path)
            .map_err(|e| anyhow::anyhow!("KUBECONFIG: cannot read {}: {e}", path.display()))?;
        merged = Some(match merged {
            None => next,
            Some(prev) => prev
                .merge(next)
                .map_err(|e| anyhow::anyhow!("KUBECONFIG: cannot merge {}: {e}", path.display()))?,
        });
    }
    Ok(merged)
}

async fn from_context(
    kubeconfig: &Kubeconfig,
    context: &str,
    timeouts: (Duration, Duration),
) -> Cluster {
    let name = cluster_name(context).unwrap_or_else(|| {
        let cleaned = sanitize(context);
        tracing::warn!(context, name = %cleaned, "context name is not URL-safe; cluster renamed");
        cleaned
    });
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let kube_config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|e| format!("kubeconfig context {context:?}: {e}"));
    build(name, ClusterSource::Kubeconfig, kube_config, timeouts)
}

fn build(
    name: String,
    source: ClusterSource,
    kube_config: Result<kube::Config, String>,
    (timeout, probe_timeout): (Duration, Duration),
) -> Cluster {
    let (server, default_namespace, client, settings) = match kube_config {
        Ok(mut c) => {
            // kube-rs' default retry policy retries 429/503/504 up to 15 times with growing
            // back-off: a caller would wait minutes. kubegate answers fast and lets callers retry.
            c.default_retry = false;
            c.connect_timeout = Some(timeout.min(Duration::from_secs(5)));
            let server = c.cluster_url.to_string();
            let ns = c.default_namespace.clone();
            let settings = c.clone();
            let client = kube::client::ClientBuilder::try_from(c)
                .map(|b| b.with_layer(&super::io::OnClusterRuntime).build())
                .map_err(|e| format!("building a client: {e}"));
            let settings = client
                .is_ok()
                .then(|| (super::io::ClientId::next(), settings));
            (server, ns, client, settings)
        }
        Err(e) => (String::new(), "default".to_owned(), Err(e), None),
    };
    Cluster {
        name,
        server,
        source,
        default_namespace,
        client,
        settings,
        timeout,
        probe_timeout,
        metrics: None,
        cache: None,
        kinds: Default::default(),
    }
}

/// A cluster name must be one URL path segment: letters, digits and `. _ @ : -`.
fn cluster_name(raw: &str) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 253
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | ':' | '-'));
    ok.then(|| raw.to_owned())
}

/// Context names such as EKS ARNs (`arn:aws:eks:…:cluster/prod`) contain `/`; map what is not
/// allowed to `-` so they still get a usable name.
fn sanitize(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | ':' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    if s.is_empty() {
        s.push_str("unnamed");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_with_slashes_are_made_url_safe() {
        assert_eq!(cluster_name("kind-dev"), Some("kind-dev".into()));
        assert_eq!(cluster_name("admin@prod:1"), Some("admin@prod:1".into()));
        assert_eq!(cluster_name("arn:aws:eks:eu:1:cluster/prod"), None);
        assert_eq!(
            sanitize("arn:aws:eks:eu:1:cluster/prod"),
            "arn:aws:eks:eu:1:cluster-prod"
        );
        assert_eq!(sanitize(""), "unnamed");
    }
}
