//! What a parsed command line does, in the gateway's terms: a read, a read of the cluster, or the
//! very `Action` the REST endpoint of the same operation builds, so that validation,
//! authorization, audit and dry run cannot differ between the two doors.

use std::time::Duration;

use super::grammar::{Command, GetResource, Parsed};
use crate::action::{Action, DEFAULT_MAX_AFFECTED, DeploySpec, ExposeSpec};
use crate::gateway::{ClusterRead, EventFilter, LogOptions, Read};

/// The lines of a log a chat answer shows when `--tail` is not given.
pub const DEFAULT_TAIL: i64 = 200;

/// How long `rollout status` waits when `--timeout` is not given (kubectl waits for ever; a chat
/// answer cannot).
pub const DEFAULT_STATUS_WAIT: Duration = Duration::from_secs(300);

/// What to do for a command line.
#[derive(Debug, Clone)]
pub enum Plan {
    Read(Read),
    ReadCluster(ClusterRead),
    Change(Action),
    /// Run a command in a pod (one-shot).
    Exec {
        pod: String,
        container: Option<String>,
        command: Vec<String>,
    },
    /// Show this help text; nothing is read or changed.
    Help(String),
}

impl Parsed {
    pub fn plan(&self) -> Plan {
        match self.command.clone() {
            Command::Get { resource, selector } => match resource {
                GetResource::Kind(kind) => Plan::Read(Read::List { kind, selector }),
                GetResource::All => Plan::Read(Read::All { selector }),
                GetResource::Nodes => Plan::ReadCluster(ClusterRead::Nodes),
                GetResource::Events => Plan::Read(Read::Events {
                    object: None,
                    filter: EventFilter::default(),
                }),
            },
            Command::Describe { kind, name } => Plan::Read(Read::Get { kind, name }),
            Command::Exec {
                pod,
                container,
                command,
            } => Plan::Exec {
                pod,
                container,
                command,
            },
            Command::Logs {
                pod,
                container,
                tail,
            } => Plan::Read(Read::Logs {
                pod,
                options: LogOptions {
                    container,
                    tail_lines: Some(tail.unwrap_or(DEFAULT_TAIL)),
                    ..Default::default()
                },
            }),
            Command::RolloutStatus { name, watch } => Plan::Read(Read::Rollout {
                name,
                wait: watch.then(|| self.timeout.unwrap_or(DEFAULT_STATUS_WAIT)),
            }),
            Command::RolloutHistory { name } => Plan::Read(Read::Revisions { name }),
            Command::Version | Command::ClusterInfo => Plan::ReadCluster(ClusterRead::Info),
            Command::Help(text) => Plan::Help(text),
            // `create deployment` / `run` refuse an existing Deployment, as kubectl does (the REST
            // deploy creates or updates).
            Command::CreateDeployment {
                name,
                container,
                image,
                replicas,
                port,
            } => Plan::Change(Action::Create {
                name,
                spec: DeploySpec::simple(container, image, replicas, port),
            }),
            Command::Scale { name, replicas } => Plan::Change(Action::Scale { name, replicas }),
            Command::SetImage {
                name,
                container,
                image,
            } => Plan::Change(Action::SetImage {
                name,
                container,
                image,
            }),
            Command::RolloutRestart { name } => Plan::Change(Action::Restart { name }),
            Command::RolloutUndo { name, to_revision } => Plan::Change(Action::Rollback {
                name,
                to_revision: to_revision.unwrap_or(0),
                expect_revision: None,
            }),
            Command::Expose {
                deployment,
                port,
                target_port,
                service_type,
                name,
            } => Plan::Change(Action::Expose {
                deployment,
                spec: ExposeSpec {
                    port,
                    target_port,
                    protocol: None,
                    service_type,
                    node_port: None,
                    name,
                },
            }),
            Command::Label { kind, name, change } => {
                Plan::Change(Action::Label { kind, name, change })
            }
            Command::Delete { kind, name } => Plan::Change(Action::Delete { kind, name }),
            Command::DeleteSelected { kind, selector } => Plan::Change(Action::DeleteSelected {
                kind,
                selector,
                max_affected: DEFAULT_MAX_AFFECTED,
            }),
        }
    }

    /// Whether the answer waits for a rollout (chat answers those later).
    pub fn waits(&self) -> bool {
        self.wait || matches!(self.command, Command::RolloutStatus { watch: true, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Kind, LabelChange, ServiceType};
    use crate::chatops::grammar::parse;

    /// The audit log's view of an action: verb, resource and request summary.
    fn audited(a: &Action) -> (String, (&'static str, String), serde_json::Value) {
        (a.verb().to_owned(), a.resource(), a.summary())
    }

    #[test]
    fn mutating_commands_become_the_actions_the_rest_endpoints_build() {
        let label = LabelChange {
            set: [("tier".to_owned(), "web".to_owned())].into(),
            remove: vec!["canary".into()],
            overwrite: false,
        };
        for (line, want) in [
            (
                "scale deployment/web --replicas=3",
                Action::Scale {
                    name: "web".into(),
                    replicas: 3,
                },
            ),
            (
                "set image deployment/web app=nginx:1.28",
                Action::SetImage {
                    name: "web".into(),
                    container: Some("app".into()),
                    image: "nginx:1.28".into(),
                },
            ),
            (
                "rollout restart deployment/web",
                Action::Restart { name: "web".into() },
            ),
            (
                "rollout undo deployment/web",
                Action::Rollback {
                    name: "web".into(),
                    to_revision: 0,
                    expect_revision: None,
                },
            ),
            (
                "rollout undo deployment/web --to-revision=2",
                Action::Rollback {
                    name: "web".into(),
                    to_revision: 2,
                    expect_revision: None,
                },
            ),
            (
                "expose deployment web --port=80 --type=LoadBalancer",
                Action::Expose {
                    deployment: "web".into(),
                    spec: ExposeSpec {
                        port: 80,
                        target_port: None,
                        protocol: None,
                        service_type: Some(ServiceType::LoadBalancer),
                        node_port: None,
                        name: None,
                    },
                },
            ),
            (
                "label deployment web tier=web canary-",
                Action::Label {
                    kind: Kind::Deployment,
                    name: "web".into(),
                    change: label.clone(),
                },
            ),
            (
                "delete deployment web",
                Action::Delete {
                    kind: Kind::Deployment,
                    name: "web".into(),
                },
            ),
            (
                "delete svc web",
                Action::Delete {
                    kind: Kind::Service,
                    name: "web".into(),
                },
            ),
            (
                "delete pod web-1",
                Action::Delete {
                    kind: Kind::Pod,
                    name: "web-1".into(),
                },
            ),
            (
                "delete pods -l app=web",
                Action::DeleteSelected {
                    kind: Kind::Pod,
                    selector: "app=web".into(),
                    max_affected: DEFAULT_MAX_AFFECTED,
                },
            ),
            (
                "delete services -l app=web",
                Action::DeleteSelected {
                    kind: Kind::Service,
                    selector: "app=web".into(),
                    max_affected: DEFAULT_MAX_AFFECTED,
                },
            ),
        ] {
            let Plan::Change(got) = parse(line).unwrap().plan() else {
                panic!("`{line}` has no action");
            };
            assert_eq!(audited(&got), audited(&want), "{line}");
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{line}");
        }
        for read in [
            "get pods",
            "describe pod web-1",
            "logs web-1",
            "rollout status deployment/web",
            "rollout history deployment/web",
            "version",
            "cluster-info",
        ] {
            assert!(
                !matches!(parse(read).unwrap().plan(), Plan::Change(_)),
                "{read}"
            );
        }
    }
}
