//! Named Kubernetes clusters and every call kubegate makes to them. `Api<K>` is built only in this
//! module; callers get plain results or a [`ClusterError`] that says what went wrong in terms the
//! HTTP layer can map (not found, conflict, unreachable, timeout, ...).

mod actions;
mod apply;
pub mod cache;
mod error;
mod io;
mod kinds;
mod ops;
mod reads;
mod registry;
pub mod rollout;
mod slim;
mod stream;

pub use actions::{
    ActionError, ChangeNote, DeploymentChange, Progress, RollbackOutcome, RolloutReport, Verdict,
};
pub use apply::{AppliedObject, WorkloadRollout};
pub use error::ClusterError;
pub use io::mark_http_worker;
pub use kinds::Kind;
pub use ops::{FIELD_MANAGER, selector_string};
pub use registry::{Cluster, ClusterRegistry, ClusterSource, Probe, ServerVersion};
pub use stream::Upstream;
