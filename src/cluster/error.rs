//! What can go wrong talking to a cluster, keyed by meaning. The API server's own `Status` message is
//! kept (it is what kubectl would print); transport details stay in the log.

use std::time::Duration;

/// A failed call to a cluster's API server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// The object (or its namespace) does not exist.
    #[error("{message}")]
    NotFound { message: String },
    /// Create of an object that exists.
    #[error("{message}")]
    AlreadyExists { message: String },
    /// Optimistic-concurrency or field-ownership conflict.
    #[error("{message}")]
    Conflict { message: String },
    /// The API server rejected the object (422), with its field causes.
    #[error("{message}")]
    Invalid {
        message: String,
        causes: Vec<(String, String)>,
    },
    /// The API server rejected the request as malformed (400).
    #[error("{message}")]
    BadRequest { message: String },
    /// kubegate's own credentials for the cluster were refused (401/403 from the API server).
    #[error("kubegate's cluster credentials lack permission: {message}")]
    CredentialsRejected { message: String },
    /// The API server is throttling us (429).
    #[error("the cluster's API server is throttling requests: {message}")]
    Throttled {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The API server answered 5xx, or could not be reached at all.
    #[error("the cluster's API server is unavailable: {message}")]
    Unavailable { message: String },
    /// No answer within the configured deadline.
    #[error("the cluster's API server did not answer within {0:?}")]
    Timeout(Duration),
    /// The cluster's configuration cannot produce a client (bad kubeconfig entry, missing plugin).
    #[error("the cluster is not usable: {message}")]
    NotUsable { message: String },
    /// Anything else the API server said (unexpected status code).
    #[error("the cluster's API server answered {code}: {message}")]
    Upstream { code: u16, message: String },
}

impl ClusterError {
    pub(crate) fn from_kube(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                };
                let causes = status
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .map(|c| (c.field.clone(), c.message.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let retry_after = status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s)));
                match (status.code, status.reason.as_str()) {
                    (404, _) | (_, "NotFound") => Self::NotFound { message },
                    (_, "AlreadyExists") => Self::AlreadyExists { message },
                    (409, _) | (_, "Conflict") => Self::Conflict { message },
                    (422, _) | (_, "Invalid") => Self::Invalid { message, causes },
                    (400, _) => Self::BadRequest { message },
                    (401 | 403, _) => Self::CredentialsRejected { message },
                    (429, _) => Self::Throttled {
                        message,
                        retry_after,
                    },
                    (code, _) if code >= 500 => Self::Unavailable { message },
                    (code, _) => Self::Upstream { code, message },
                }
            }
            kube::Error::HyperError(e) => Self::Unavailable {
                message: e.to_string(),
            },
            kube::Error::Service(e) => Self::Unavailable {
                message: e.to_string(),
            },
            // A body that is not a Kubernetes object: typically a proxy or load balancer page.
            kube::Error::SerdeError(e) => Self::Unavailable {
                message: format!("unexpected response from the API server: {e}"),
            },
            other => Self::Unavailable {
                message: other.to_string(),
            },
        }
    }
}
