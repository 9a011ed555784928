//! Kinds as a cluster serves them (from its discovery, or a CRD about to be applied), kept a
//! minute per cluster.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{ApiResource, GroupVersionKind};

/// How long a resolved kind is trusted (a CRD's scope or plural does not change while it exists).
pub(super) const KIND_TTL: Duration = Duration::from_secs(60);

/// A kind as the cluster serves it.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Group, version, and a kind or a resource (plural).
type Key = (String, String, String);

/// Kinds resolved through discovery, per cluster, with when: by kind, and by resource.
#[derive(Debug, Default)]
pub(crate) struct Kinds {
    pub(super) by_kind: Mutex<HashMap<Key, (Kind, Instant)>>,
    pub(super) by_resource: Mutex<HashMap<Key, (Kind, Instant)>>,
}

impl Kind {
    /// A kind its CRD defines (before the cluster serves it).
    pub fn of_crd(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        Self {
            resource: ApiResource::from_gvk_with_plural(&gvk, plural),
            namespaced,
        }
    }
}
