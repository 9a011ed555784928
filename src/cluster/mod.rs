//! Named Kubernetes clusters and every call kubegate makes to them. `Api<K>` is built only in this
//! module; callers get plain results or a [`ClusterError`] that says what went wrong in terms the
//! HTTP layer can map (not found, conflict, unreachable, timeout, ...).

mod error;
mod reads;
mod registry;

pub use error::ClusterError;
pub use reads::ServerVersion;
pub use registry::{Cluster, ClusterRegistry, ClusterSource, Probe};
