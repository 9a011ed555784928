//! A watch cache for reads: one kube-runtime watcher per (kind, namespace) that reads asked for,
//! started on first use and stopped after an idle period, keeping the objects in memory so that
//! reads answer without a call to the API server.
//!
//! Freshness, stated exactly:
//! - A cache answers only once its initial list is complete and while its watch is healthy
//!   (after a watch error it stands aside until the next event or relist); otherwise the read goes
//!   to the API server, as without a cache.
//! - Read your writes, and never back in time: every change kubegate makes records the
//!   resourceVersion the API server answered (an object it deleted is hidden at once, until the
//!   watch brings the deletion), and
//!   so does every read kubegate makes from the API server (the newest object it saw). A read of
//!   that kind and namespace is served from the cache only once the cache has applied that
//!   resourceVersion; it waits up to [`CATCH_UP`] for the watch to deliver it, then reads from the
//!   API server instead. So what a caller was shown (a finished rollout, the object it changed) is
//!   never contradicted by an older cached answer.
//! - Changes made by others (controllers, kubectl, another kubegate replica) are seen as soon as
//!   the watch delivers them: the cache lags the API server by the watch's delay (milliseconds on
//!   a healthy cluster), like kubectl's own informers.
//!
//! Objects are kept without `metadata.managedFields` (reads never show them; see `slim`).
//!
//! resourceVersions are compared as integers (etcd revisions); a cluster whose versions are not
//! integers is never served from the cache.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::slim::Slim;

/// How long a read waits for the watch to deliver kubegate's own latest write.
pub const CATCH_UP: Duration = Duration::from_secs(2);

type Key = (TypeId, String);

/// What a watch cache can hold: the namespaced k8s-openapi kinds kubegate reads.
pub trait Cacheable:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Cacheable for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// Whether a cache may answer a read, and how it came to (counted by `answer`).
pub enum Ready<K> {
    /// At once.
    Now(Arc<Store<K>>),
    /// After waiting for the watch to bring kubegate's own latest write.
    CaughtUp(Arc<Store<K>>),
    /// No: its list is not complete, or its watch failed and has not delivered since.
    NotReady,
    /// No: the watch did not bring kubegate's own latest write within [`CATCH_UP`] (or that
    /// write's version cannot be compared).
    Behind,
}

impl<K> Ready<K> {
    pub fn store(self) -> Option<Arc<Store<K>>> {
        match self {
            Ready::Now(s) | Ready::CaughtUp(s) => Some(s),
            Ready::NotReady | Ready::Behind => None,
        }
    }

    /// The metric's label: `hit`, `caught_up` (both answered from the cache), `not_ready` or
    /// `behind` (both asked the API server).
    pub fn answer(&self) -> &'static str {
        match self {
            Ready::Now(_) => "hit",
            Ready::CaughtUp(_) => "caught_up",
            Ready::NotReady => "not_ready",
            Ready::Behind => "behind",
        }
    }
}

/// The watch caches of one cluster.
pub struct WatchCache {
    /// The cluster's name, for the log.
    cluster: Arc<str>,
    client: kube::Client,
    idle: Duration,
    stores: Mutex<HashMap<Key, Arc<dyn Any + Send + Sync>>>,
    /// The resourceVersion of kubegate's latest write per kind and namespace.
    written: Mutex<HashMap<Key, u64>>,
}

/// The cached objects of one kind in one namespace.
pub struct Store<K> {
    objects: RwLock<BTreeMap<String, Arc<K>>>,
    /// Highest resourceVersion applied.
    rv: AtomicU64,
    /// Initial list complete and the watch healthy.
    ready: AtomicBool,
    /// The watcher task still runs (it stops when idle).
    alive: AtomicBool,
    /// Objects kubegate deleted whose deletion the watch has not brought yet: name → uid (None:
    /// any incarnation). Reads do not show them.
    tombstones: Mutex<HashMap<String, Option<String>>>,
    changed: tokio::sync::Notify,
    last_used: AtomicI64,
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn rv_of<K: Resource>(o: &K) -> Option<u64> {
    o.meta().resource_version.as_deref()?.parse().ok()
}

impl<K: Clone + Resource> Store<K> {
    fn buried(&self, o: &K) -> bool {
        let tombstones = self.tombstones.lock().expect("cache lock");
        if tombstones.is_empty() {
            return false;
        }
        let name = o.meta().name.as_deref().unwrap_or_default();
        tombstones
            .get(name)
            .is_some_and(|uid| uid.is_none() || *uid == o.meta().uid)
    }

    /// The object as the cache holds it, shared: a read answers from it without copying it.
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        self.objects
            .read()
            .expect("cache lock")
            .get(name)
            .filter(|o| !self.buried(o))
            .cloned()
    }

    /// Every object, in name order (as the API server lists them).
    pub fn list(&self) -> Vec<K> {
        self.objects
            .read()
            .expect("cache lock")
            .values()
            .filter(|o| !self.buried(o))
            .map(|o| (**o).clone())
            .collect()
    }
}

impl WatchCache {
    pub fn new(cluster: &str, client: kube::Client, idle: Duration) -> Self {
        Self {
            cluster: cluster.into(),
            client,
            idle,
            stores: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// The resourceVersion of an object of kind K in `ns` that kubegate wrote or has shown (read
    /// from the API server): cached reads of that kind and namespace must include it.
    pub fn wrote<K: 'static>(&self, ns: &str, resource_version: Option<&str>) {
        let key = (TypeId::of::<K>(), ns.to_owned());
        let mut written = self.written.lock().expect("cache lock");
        match resource_version.and_then(|rv| rv.parse::<u64>().ok()) {
            Some(rv) => {
                let e = written.entry(key).or_insert(0);
                *e = (*e).max(rv);
            }
            // No usable version: the cache of that kind cannot prove it has the write.
            None => {
                written.insert(key, u64::MAX);
            }
        }
    }

    /// kubegate deleted this object (`uid`: that incarnation, when known): reads stop showing it
    /// now, before the watch brings the deletion.
    pub fn deleted<K>(&self, ns: &str, name: &str, uid: Option<String>)
    where
        K: Resource + Send + Sync + 'static,
    {
        let key = (TypeId::of::<K>(), ns.to_owned());
        let store = self
            .stores
            .lock()
            .expect("cache lock")
            .get(&key)
            .and_then(|s| s.clone().downcast::<Store<K>>().ok());
        if let Some(store) = store {
            store
                .tombstones
                .lock()
                .expect("cache lock")
                .insert(name.to_owned(), uid);
        }
    }

    /// The cache of K in `ns` if it may answer now (started on first use; otherwise why not: read
    /// from the API server).
    pub async fn ready<K: Cacheable>(&self, ns: &str) -> Ready<K> {
        let key = (TypeId::of::<K>(), ns.to_owned());
        let store = self.store::<K>(&key);
        store.last_used.store(now_secs(), Ordering::Relaxed);
        let needed = self
            .written
            .lock()
            .expect("cache lock")
            .get(&key)
            .copied()
            .unwrap_or(0);
        let fresh = |s: &Store<K>| {
            s.ready.load(Ordering::Acquire) && s.rv.load(Ordering::Acquire) >= needed
        };
        if fresh(&store) {
            return Ready::Now(store);
        }
        if !store.ready.load(Ordering::Acquire) {
            return Ready::NotReady;
        }
        if needed == u64::MAX {
            return Ready::Behind;
        }
        // Behind kubegate's own write: wait (bounded) for the watch to bring it.
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            let waiter = store.clone();
            let notified = waiter.changed.notified();
            if fresh(&store) {
                return Ready::CaughtUp(store);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ready::Behind;
            }
        }
    }

    fn store<K: Cacheable>(&self, key: &Key) -> Arc<Store<K>> {
        let mut stores = self.stores.lock().expect("cache lock");
        if let Some(s) = stores
            .get(key)
            .and_then(|s| s.clone().downcast::<Store<K>>().ok())
            .filter(|s| s.alive.load(Ordering::Acquire))
        {
            return s;
        }
        let store = Arc::new(Store::<K> {
            objects: RwLock::new(BTreeMap::new()),
            rv: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            tombstones: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            last_used: AtomicI64::new(now_secs()),
        });
        stores.insert(key.clone(), store.clone());
        let api: Api<Slim<K>> = Api::namespaced(self.client.clone(), &key.1);
        let place = format!("{} in {}/{}", K::plural(&()), self.cluster, key.1);
        // On the runtime that owns the watch's connection: each event is read and applied on one
        // thread, and an HTTP worker wakes only for a read that waits for it.
        super::io::runtime().spawn(run(api, store.clone(), self.idle, place));
        store
    }
}

/// Feed one store from its watcher until it has been idle too long. `place`: what it watches
/// where ("deployments in dev/default"), for the log.
async fn run<K>(api: Api<Slim<K>>, store: Arc<Store<K>>, idle: Duration, place: String)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut buffer: BTreeMap<String, Arc<K>> = BTreeMap::new();
    // The highest version of a relist, applied with its objects at InitDone.
    let mut buffer_rv = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(5).min(idle));
    // The watch failed and has not delivered since: a failure is logged once, and its end.
    let mut failing = false;
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = tick.tick() => {
                let unused = now_secs() - store.last_used.load(Ordering::Relaxed);
                if unused > idle.as_secs() as i64 {
                    break;
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        // Init begins a list that may fail again: the watch is back once a list is complete or
        // an event arrives.
        let delivered = matches!(
            &event,
            Ok(Event::InitDone | Event::Apply(_) | Event::Delete(_))
        );
        if delivered && std::mem::take(&mut failing) {
            tracing::info!(watch = %place, "watch cache: the watch delivers again");
        }
        match event {
            Ok(Event::Init) => {
                buffer.clear();
                buffer_rv = 0;
            }
            Ok(Event::InitApply(Slim(o))) => {
                buffer_rv = buffer_rv.max(rv_of(&o).unwrap_or(0));
                buffer.insert(o.name_any(), Arc::new(o));
            }
            Ok(Event::InitDone) => {
                store
                    .tombstones
                    .lock()
                    .expect("cache lock")
                    .retain(|name, _| buffer.contains_key(name));
                *store.objects.write().expect("cache lock") = std::mem::take(&mut buffer);
                store.rv.fetch_max(buffer_rv, Ordering::AcqRel);
                store.ready.store(true, Ordering::Release);
            }
            Ok(Event::Apply(Slim(o))) => {
                bump(&store, &o);
                let name = o.name_any();
                {
                    // A new incarnation under a deleted name is shown.
                    let mut t = store.tombstones.lock().expect("cache lock");
                    if let Some(Some(uid)) = t.get(&name)
                        && Some(uid) != o.meta().uid.as_ref()
                    {
                        t.remove(&name);
                    }
                }
                store
                    .objects
                    .write()
                    .expect("cache lock")
                    .insert(name, Arc::new(o));
                store.ready.store(true, Ordering::Release);
            }
            Ok(Event::Delete(Slim(o))) => {
                bump(&store, &o);
                let name = o.name_any();
                store.tombstones.lock().expect("cache lock").remove(&name);
                store.objects.write().expect("cache lock").remove(&name);
                store.ready.store(true, Ordering::Release);
            }
            Err(e) => {
                // Until the watch delivers again, reads go to the API server (the watcher tries
                // again with a backoff; each retry that fails is one more error here).
                store.ready.store(false, Ordering::Release);
                // 410 Gone: the watch's version was compacted away; the watcher lists again, as
                // informers do, and that is routine.
                let gone = matches!(&e, watcher::Error::WatchError(s) if s.code == 410);
                if gone || std::mem::replace(&mut failing, true) {
                    tracing::debug!(watch = %place, error = %e, "watch cache: the watch failed");
                } else {
                    tracing::warn!(watch = %place, error = %e, "watch cache: the watch failed; reads of it go to the API server until it delivers again");
                }
            }
        }
        store.changed.notify_waiters();
    }
    store.alive.store(false, Ordering::Release);
    store.ready.store(false, Ordering::Release);
    store.changed.notify_waiters();
}

fn bump<K: Resource>(store: &Store<K>, o: &K) {
    if let Some(rv) = rv_of(o) {
        store.rv.fetch_max(rv, Ordering::AcqRel);
    }
}

/// Does a normalized label selector (`validate::label_selector`'s output) select these labels?
pub fn selects(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    split_terms(selector).into_iter().all(|term| {
        if let Some(k) = term.strip_prefix('!') {
            return !labels.contains_key(k);
        }
        for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
            if let Some((k, v)) = term.split_once(op) {
                let equal = labels.get(k).is_some_and(|l| l == v);
                return if negate { !equal } else { equal };
            }
        }
        for (op, negate) in [(" notin ", true), (" in ", false)] {
            if let Some((k, set)) = term.split_once(op) {
                let values: Vec<&str> = set
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(str::trim)
                    .collect();
                let inside = labels.get(k).is_some_and(|l| values.contains(&l.as_str()));
                // `notin` also selects objects without the key.
                return if negate { !inside } else { inside };
            }
        }
        labels.contains_key(term)
    })
}

fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(selector[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(selector[start..].trim());
    terms.into_iter().filter(|t| !t.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_the_api_server() {
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app", true),
            ("!app", false),
            ("!canary", true),
            ("tier in (front,back)", true),
            ("tier notin (front,back)", false),
            ("canary notin (yes)", true),
            ("canary in (yes)", false),
            ("app=web,tier in (back,front),!canary", true),
            ("app=web,tier=back", false),
        ] {
            assert_eq!(selects(sel, &labels), want, "{sel}");
        }
    }
}
