//! The supported subset of kubectl's grammar, declared with clap's derive as kubectl declares its
//! own with cobra: verbs, their arguments and flags (`-n`, `-l`, `-c` as kubectl spells them),
//! usage lines, kubectl-like errors, and `--help` for every verb. What a parsed line means is a
//! [`Command`]; anything outside the grammar is a [`ParseError`].

use std::collections::BTreeMap;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};

use super::error::{ParseError, invalid};
use super::words;
use crate::action::{Kind, LabelChange, ServiceType};

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub command: Command,
    /// `-n` / `--namespace`, when given.
    pub namespace: Option<String>,
    /// `--context`: the cluster, when given (kubegate's clusters are kubeconfig contexts).
    pub context: Option<String>,
    /// `--dry-run=server`.
    pub dry_run: bool,
    /// `--wait` (kubegate's): answer when the rollout a change starts is done, failed or timed out.
    pub wait: bool,
    /// `--timeout`: the bound of `--wait` and of `rollout status`.
    pub timeout: Option<Duration>,
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Get {
        resource: GetResource,
        selector: Option<String>,
    },
    Describe {
        kind: Kind,
        name: String,
    },
    Logs {
        pod: String,
        container: Option<String>,
        tail: Option<i64>,
    },
    /// `exec POD -- CMD...`: one-shot (no terminal, no input in chat).
    Exec {
        pod: String,
        container: Option<String>,
        command: Vec<String>,
    },
    /// `create deployment` and `run` (a Deployment, like kubegate's deploy).
    CreateDeployment {
        name: String,
        /// kubectl's container name: the image's name for `create`, NAME for `run`.
        container: String,
        image: String,
        replicas: Option<i32>,
        port: Option<i32>,
    },
    Expose {
        deployment: String,
        port: i32,
        target_port: Option<i32>,
        service_type: Option<ServiceType>,
        name: Option<String>,
    },
    Scale {
        name: String,
        replicas: i32,
    },
    SetImage {
        name: String,
        /// The container; `None` for `*=IMAGE` (every container).
        container: Option<String>,
        image: String,
    },
    /// `rollout status` waits for the rollout like kubectl; `--watch=false` answers at once.
    RolloutStatus {
        name: String,
        watch: bool,
    },
    RolloutHistory {
        name: String,
    },
    RolloutUndo {
        name: String,
        to_revision: Option<i64>,
    },
    RolloutRestart {
        name: String,
    },
    Label {
        kind: Kind,
        name: String,
        change: LabelChange,
    },
    Delete {
        kind: Kind,
        name: String,
    },
    DeleteSelected {
        kind: Kind,
        selector: String,
    },
    Version,
    ClusterInfo,
    /// `--help` of the line or of one verb: the text to show.
    Help(String),
}

/// What `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetResource {
    Kind(Kind),
    Nodes,
    /// `get all`: pods, services, deployments and replicasets.
    All,
    /// `get events`: the namespace's events.
    Events,
}

/// kubectl, the subset kubegate runs.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl",
    bin_name = "kubectl",
    no_binary_name = true,
    disable_version_flag = true,
    about = "kubectl command lines kubegate runs (as the REST operations with the same meaning)"
)]
struct Line {
    #[command(subcommand)]
    verb: Verb,
    /// The namespace (default: the request's, else the cluster's default namespace).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// The cluster (kubegate's clusters are kubeconfig contexts); must be the one addressed.
    #[arg(long, global = true)]
    context: Option<String>,
    /// `server`: the API server validates the change, nothing changes.
    #[arg(
        long = "dry-run",
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client",
        value_name = "server"
    )]
    dry_run: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// List deployments, replicasets, services, pods, nodes, events, or all of a namespace.
    Get {
        /// deployments (deploy), replicasets (rs), services (svc), pods (po), nodes (no), events
        /// (ev) or all.
        resource: String,
        /// Only objects whose labels match (`app=web,tier!=db`).
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Show a deployment, pod or service in detail, with its events.
    Describe {
        /// KIND NAME or KIND/NAME.
        #[arg(required = true, num_args = 1..=2, value_name = "KIND[/NAME] [NAME]")]
        object: Vec<String>,
    },
    /// Run a command in a pod's container and print its output (one-shot: no -i or -t in chat).
    Exec {
        /// The pod (or pod/NAME).
        pod: String,
        /// The container; may be omitted when the pod has one.
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Input: not in chat.
        #[arg(short = 'i', long)]
        stdin: bool,
        /// A terminal: not in chat.
        #[arg(short = 't', long)]
        tty: bool,
        /// The command, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Forward local ports to a pod: not in chat (run `kubegate port-forward` on your machine).
    #[command(name = "port-forward")]
    PortForward {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Print a pod's logs (the last 200 lines unless --tail says otherwise).
    Logs {
        /// The pod (or pod/NAME).
        pod: String,
        /// The container; may be omitted when the pod has one.
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<i64>,
    },
    /// Create a deployment.
    Create {
        #[command(subcommand)]
        what: Create,
    },
    /// Run an image as a deployment (its container is named NAME).
    Run {
        name: String,
        #[arg(long)]
        image: String,
        /// The container port.
        #[arg(long)]
        port: Option<i32>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Expose a deployment as a service.
    Expose {
        /// deployment/NAME or deployment NAME.
        #[arg(required = true, num_args = 1..=2, value_name = "deployment[/NAME] [NAME]")]
        object: Vec<String>,
        /// The service's port.
        #[arg(long)]
        port: i32,
        /// The container port it forwards to (default: --port).
        #[arg(long)]
        target_port: Option<i32>,
        /// ClusterIP, NodePort, LoadBalancer or ExternalName.
        #[arg(long = "type", value_parser = service_type)]
        service_type: Option<ServiceType>,
        /// The service's name (default: the deployment's).
        #[arg(long)]
        name: Option<String>,
    },
    /// Set a deployment's replicas.
    Scale {
        /// deployment/NAME or deployment NAME.
        #[arg(required = true, num_args = 1..=2, value_name = "deployment[/NAME] [NAME]")]
        object: Vec<String>,
        #[arg(long)]
        replicas: i32,
        #[command(flatten)]
        wait: Wait,
    },
    /// Set a container's image: `set image deployment/NAME CONTAINER=IMAGE` (`*=IMAGE`: every
    /// container).
    Set {
        #[command(subcommand)]
        what: Set,
    },
    /// Status, history, undo or restart of a deployment's rollout.
    Rollout {
        #[command(subcommand)]
        what: Rollout,
    },
    /// Set (k=v) or remove (k-) labels of a deployment, pod or service.
    Label {
        /// KIND NAME or KIND/NAME, then k=v and k- changes.
        #[arg(required = true, num_args = 2.., value_name = "KIND[/NAME] [NAME] CHANGE")]
        args: Vec<String>,
        /// Replace a label that has another value.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        overwrite: Option<bool>,
    },
    /// Delete a deployment, service or pod by name, or services or pods by label selector.
    Delete {
        /// KIND NAME, KIND/NAME, or KIND with -l.
        #[arg(required = true, num_args = 1..=2, value_name = "KIND[/NAME] [NAME]")]
        object: Vec<String>,
        /// Delete what matches (services and pods).
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// The API server's version.
    Version,
    /// Where the API server is.
    ClusterInfo,
}

#[derive(Debug, Subcommand)]
enum Create {
    /// Create a deployment (refused when it exists); its container is named after the image.
    #[command(visible_alias = "deploy")]
    Deployment {
        name: String,
        #[arg(long)]
        image: String,
        #[arg(long)]
        replicas: Option<i32>,
        /// The container port.
        #[arg(long)]
        port: Option<i32>,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Debug, Subcommand)]
enum Set {
    /// Set a container's image.
    Image {
        /// deployment/NAME (or deployment NAME), then one CONTAINER=IMAGE.
        #[arg(required = true, num_args = 2..=3, value_name = "deployment[/NAME] [NAME] C=IMAGE")]
        args: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Debug, Subcommand)]
enum Rollout {
    /// Wait for the rollout to finish (or, with --watch=false, say where it is).
    Status {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment[/NAME] [NAME]")]
        object: Vec<String>,
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        watch: Option<bool>,
        /// How long to wait (90s, 5m, 1h).
        #[arg(long, value_parser = duration)]
        timeout: Option<Duration>,
    },
    /// The revisions.
    History {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment[/NAME] [NAME]")]
        object: Vec<String>,
    },
    /// Roll back to the previous revision, or to --to-revision.
    Undo {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment[/NAME] [NAME]")]
        object: Vec<String>,
        #[arg(long)]
        to_revision: Option<i64>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Restart the pods.
    Restart {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment[/NAME] [NAME]")]
        object: Vec<String>,
        #[command(flatten)]
        wait: Wait,
    },
}

/// kubegate's own flags of a change that rolls out.
#[derive(Debug, Args)]
struct Wait {
    /// Answer when the rollout is done, has failed, or --timeout passed.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    wait: Option<bool>,
    /// The bound of --wait (90s, 5m, 1h; default 60s).
    #[arg(long, value_parser = duration)]
    timeout: Option<Duration>,
}

/// Parse one command line.
pub fn parse(line: &str) -> Result<Parsed, ParseError> {
    let mut words = words::split(line)?;
    if words.first().is_some_and(|w| w == "kubectl") {
        words.remove(0);
    }
    if words.is_empty() {
        return Err(ParseError::Empty);
    }
    let parsed = match Line::try_parse_from(&words) {
        Ok(l) => l,
        Err(e) => return help_or_error(&words, e),
    };
    let dry_run = match parsed.dry_run.as_deref() {
        None | Some("none") => false,
        Some("server") => true,
        Some(other) => {
            return Err(invalid(format!(
                "--dry-run={other} is not supported: kubegate runs --dry-run=server"
            )));
        }
    };
    let (command, wait) = meaning(parsed.verb)?;
    let (wait, timeout) = match wait {
        Waiting::Change(w) => (w.wait.unwrap_or(false), w.timeout),
        Waiting::Status(t) => (false, t),
        Waiting::None => (false, None),
    };
    if timeout.is_some() && !wait && !matches!(command, Command::RolloutStatus { watch: true, .. })
    {
        return Err(invalid(
            "--timeout bounds --wait or `rollout status`; give --wait too",
        ));
    }
    Ok(Parsed {
        command,
        namespace: parsed.namespace,
        context: parsed.context,
        dry_run,
        wait,
        timeout,
    })
}

/// What bounds a command's waiting.
enum Waiting {
    Change(Wait),
    Status(Option<Duration>),
    None,
}

fn meaning(verb: Verb) -> Result<(Command, Waiting), ParseError> {
    Ok(match verb {
        Verb::Get { resource, selector } => {
            let resource = match (kind_of(&resource), resource.as_str()) {
                (Some(k), _) => GetResource::Kind(k),
                (None, "nodes" | "node" | "no") => GetResource::Nodes,
                (None, "all") => GetResource::All,
                (None, "events" | "event" | "ev") => GetResource::Events,
                (None, other) => return Err(ParseError::Unsupported(format!("get {other}"))),
            };
            if resource == GetResource::Nodes && selector.is_some() {
                return Err(invalid("`get nodes` takes no -l here"));
            }
            if resource == GetResource::Events && selector.is_some() {
                return Err(invalid("`get events` takes no -l here"));
            }
            (Command::Get { resource, selector }, Waiting::None)
        }
        Verb::Describe { object } => {
            let (kind, name) = named("describe", &object)?;
            changeable("describe", kind)?;
            (Command::Describe { kind, name }, Waiting::None)
        }
        Verb::Exec { stdin: true, .. } | Verb::Exec { tty: true, .. } => {
            return Err(invalid(
                "exec -i/-t needs a terminal, which chat has not: open an interactive session \
                 (GET .../pods/NAME/exec as a WebSocket) or run the command without -i and -t",
            ));
        }
        Verb::Exec {
            pod,
            container,
            command,
            ..
        } => (
            Command::Exec {
                pod: pod.strip_prefix("pod/").unwrap_or(&pod).to_owned(),
                container,
                command,
            },
            Waiting::None,
        ),
        Verb::PortForward { .. } => {
            return Err(invalid(
                "port-forward opens a port on your machine, not in chat: run `kubegate \
                 port-forward --server URL pod/NAME LOCAL:REMOTE` there",
            ));
        }
        Verb::Logs {
            pod,
            container,
            tail,
        } => (
            Command::Logs {
                pod: pod.strip_prefix("pod/").unwrap_or(&pod).to_owned(),
                container,
                tail,
            },
            Waiting::None,
        ),
        Verb::Create {
            what:
                Create::Deployment {
                    name,
                    image,
                    replicas,
                    port,
                    wait,
                },
        } => (
            Command::CreateDeployment {
                name,
                container: container_name(&image),
                image,
                replicas,
                port,
            },
            Waiting::Change(wait),
        ),
        Verb::Run {
            name,
            image,
            port,
            wait,
        } => (
            Command::CreateDeployment {
                container: name.clone(),
                name,
                image,
                replicas: None,
                port,
            },
            Waiting::Change(wait),
        ),
        Verb::Expose {
            object,
            port,
            target_port,
            service_type,
            name,
        } => (
            Command::Expose {
                deployment: deployment("expose", &object)?,
                port,
                target_port,
                service_type,
                name,
            },
            Waiting::None,
        ),
        Verb::Scale {
            object,
            replicas,
            wait,
        } => (
            Command::Scale {
                name: deployment("scale", &object)?,
                replicas,
            },
            Waiting::Change(wait),
        ),
        Verb::Set {
            what: Set::Image { args, wait },
        } => {
            if args.iter().filter(|a| a.contains('=')).count() > 1 {
                return Err(invalid(
                    "`set image` takes one CONTAINER=IMAGE per command (`*=IMAGE` sets every container)",
                ));
            }
            let (object, pair) = args.split_at(args.len() - 1);
            let name = deployment("set image", object)?;
            let pair = &pair[0];
            let Some((container, image)) = pair
                .split_once('=')
                .filter(|(c, i)| !c.is_empty() && !i.is_empty())
            else {
                return Err(invalid(format!(
                    "`{pair}` is not CONTAINER=IMAGE (`set image` takes one per command; `*=IMAGE` sets every container)"
                )));
            };
            (
                Command::SetImage {
                    name,
                    container: (container != "*").then(|| container.to_owned()),
                    image: image.to_owned(),
                },
                Waiting::Change(wait),
            )
        }
        Verb::Rollout { what } => match what {
            Rollout::Status {
                object,
                watch,
                timeout,
            } => (
                Command::RolloutStatus {
                    name: deployment("rollout status", &object)?,
                    watch: watch.unwrap_or(true),
                },
                Waiting::Status(timeout),
            ),
            Rollout::History { object } => (
                Command::RolloutHistory {
                    name: deployment("rollout history", &object)?,
                },
                Waiting::None,
            ),
            Rollout::Undo {
                object,
                to_revision,
                wait,
            } => (
                Command::RolloutUndo {
                    name: deployment("rollout undo", &object)?,
                    to_revision,
                },
                Waiting::Change(wait),
            ),
            Rollout::Restart { object, wait } => (
                Command::RolloutRestart {
                    name: deployment("rollout restart", &object)?,
                },
                Waiting::Change(wait),
            ),
        },
        Verb::Label { args, overwrite } => {
            let (kind, name, changes) = match args[0].split_once('/') {
                Some((k, n)) => (k, n.to_owned(), &args[1..]),
                None => (args[0].as_str(), args[1].clone(), &args[2..]),
            };
            let kind =
                kind_of(kind).ok_or_else(|| ParseError::Unsupported(format!("label {kind}")))?;
            changeable("label", kind)?;
            if changes.is_empty() {
                return Err(invalid("`label` needs at least one k=v or k-"));
            }
            let mut change = LabelChange {
                set: BTreeMap::new(),
                remove: Vec::new(),
                overwrite: overwrite.unwrap_or(false),
            };
            for w in changes {
                if let Some((k, v)) = w.split_once('=') {
                    if change.set.insert(k.to_owned(), v.to_owned()).is_some() {
                        return Err(invalid(format!("label `{k}` is given twice")));
                    }
                } else if let Some(k) = w.strip_suffix('-') {
                    change.remove.push(k.to_owned());
                } else {
                    return Err(invalid(format!("`{w}` is neither k=v nor k-")));
                }
            }
            (Command::Label { kind, name, change }, Waiting::None)
        }
        Verb::Delete { object, selector } => {
            let (kind, name) = match object[0].split_once('/') {
                Some((k, n)) if object.len() == 1 => (k, Some(n.to_owned())),
                Some(_) => return Err(invalid(format!("unexpected argument `{}`", object[1]))),
                None => (object[0].as_str(), object.get(1).cloned()),
            };
            let kind =
                kind_of(kind).ok_or_else(|| ParseError::Unsupported(format!("delete {kind}")))?;
            changeable("delete", kind)?;
            let command = match (name, selector) {
                (Some(name), None) => Command::Delete { kind, name },
                (None, Some(selector)) if kind != Kind::Deployment => {
                    Command::DeleteSelected { kind, selector }
                }
                (None, Some(_)) => {
                    return Err(ParseError::Unsupported("delete deployment -l".to_owned()));
                }
                (Some(_), Some(_)) => return Err(invalid("give a NAME or -l SELECTOR, not both")),
                (None, None) => return Err(invalid("`delete` needs a NAME or -l SELECTOR")),
            };
            (command, Waiting::None)
        }
        Verb::Version => (Command::Version, Waiting::None),
        Verb::ClusterInfo => (Command::ClusterInfo, Waiting::None),
    })
}

/// `--help` is an answer, not an error; an unknown verb names what is supported; any other clap
/// error is shown as clap words it, usage line included.
fn help_or_error(words: &[String], e: clap::Error) -> Result<Parsed, ParseError> {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Ok(Parsed {
                command: Command::Help(e.render().to_string().trim_end().to_owned()),
                namespace: None,
                context: None,
                dry_run: false,
                wait: false,
                timeout: None,
            })
        }
        ErrorKind::MissingSubcommand => Err(ParseError::Empty),
        // A flag kubectl has and kubegate does not run (`-o yaml`, `--all-namespaces`).
        ErrorKind::UnknownArgument => match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) if arg.starts_with('-') => {
                let flag = arg.split('=').next().unwrap_or(arg);
                let verb = words.iter().find(|w| !w.starts_with('-'));
                Err(ParseError::Unsupported(match verb {
                    Some(v) => format!("flag {flag} of `{v}`"),
                    None => format!("flag {flag}"),
                }))
            }
            _ => Err(ParseError::Invalid(clap_words(&e))),
        },
        ErrorKind::InvalidSubcommand => {
            let verb = match e.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => words.first().cloned().unwrap_or_default(),
            };
            Err(ParseError::Unsupported(verb))
        }
        _ => Err(ParseError::Invalid(clap_words(&e))),
    }
}

/// clap's message and usage line, without its pointer to `--help`.
fn clap_words(e: &clap::Error) -> String {
    e.render()
        .to_string()
        .trim_start_matches("error: ")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn kind_of(word: &str) -> Option<Kind> {
    match word {
        "deployment" | "deployments" | "deploy" | "deployment.apps" => Some(Kind::Deployment),
        "replicaset" | "replicasets" | "rs" | "replicaset.apps" => Some(Kind::ReplicaSet),
        "service" | "services" | "svc" => Some(Kind::Service),
        "pod" | "pods" | "po" => Some(Kind::Pod),
        _ => None,
    }
}

/// ReplicaSets are read, never described, labelled or deleted through kubegate.
fn changeable(verb: &str, kind: Kind) -> Result<(), ParseError> {
    if kind.changeable() {
        Ok(())
    } else {
        Err(ParseError::Unsupported(format!(
            "{verb} {}",
            kind.singular()
        )))
    }
}

/// `KIND NAME` or `KIND/NAME`.
fn named(verb: &str, object: &[String]) -> Result<(Kind, String), ParseError> {
    let (kind, name) = match (object[0].split_once('/'), object.get(1)) {
        (Some((k, n)), None) => (k, n.to_owned()),
        (Some(_), Some(extra)) => return Err(invalid(format!("unexpected argument `{extra}`"))),
        (None, Some(n)) => (object[0].as_str(), n.clone()),
        (None, None) => return Err(invalid(format!("`{verb}` needs a NAME"))),
    };
    let kind = kind_of(kind).ok_or_else(|| ParseError::Unsupported(format!("{verb} {kind}")))?;
    Ok((kind, name))
}

/// `deployment/NAME`, `deploy/NAME` or `deployment NAME`: the Deployment's name.
fn deployment(verb: &str, object: &[String]) -> Result<String, ParseError> {
    match named(verb, object)? {
        (Kind::Deployment, name) => Ok(name),
        (kind, _) => Err(ParseError::Unsupported(format!(
            "{verb} {}",
            kind.singular()
        ))),
    }
}

fn service_type(v: &str) -> Result<ServiceType, String> {
    match v {
        "ClusterIP" => Ok(ServiceType::ClusterIP),
        "NodePort" => Ok(ServiceType::NodePort),
        "LoadBalancer" => Ok(ServiceType::LoadBalancer),
        "ExternalName" => Ok(ServiceType::ExternalName),
        _ => Err("--type is ClusterIP, NodePort, LoadBalancer or ExternalName".into()),
    }
}

/// `kubectl create deployment`'s container name: the image's last path part without tag or
/// digest, `_` made `-`.
fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split(':').next().unwrap_or(last);
    let last = last.split('@').next().unwrap_or(last);
    last.replace('_', "-")
}

/// kubectl's `--timeout` values: `90s`, `5m`, `1h`, `1m30s`, or plain seconds; 1 s to 24 h.
fn duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("a duration like 90s or 5m, not `{v}`");
    let secs = match v.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(v).map_err(|_| bad())?.as_secs(),
    };
    if !(1..=86_400).contains(&secs) {
        return Err("between 1s and 24h".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        match parse(line) {
            Ok(p) => p.command,
            Err(e) => panic!("`{line}` was refused: {e}"),
        }
    }

    fn refused(line: &str) -> ParseError {
        match parse(line) {
            Ok(p) => panic!("`{line}` was accepted as {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_supported_form_parses() {
        assert_eq!(
            parse("kubectl get pods -l app=web -n shop").unwrap(),
            Parsed {
                command: Command::Get {
                    resource: GetResource::Kind(Kind::Pod),
                    selector: Some("app=web".into())
                },
                namespace: Some("shop".into()),
                context: None,
                dry_run: false,
                wait: false,
                timeout: None,
            }
        );
        for (line, resource) in [
            ("get deployments", GetResource::Kind(Kind::Deployment)),
            ("get deploy", GetResource::Kind(Kind::Deployment)),
            ("get svc", GetResource::Kind(Kind::Service)),
            ("get rs", GetResource::Kind(Kind::ReplicaSet)),
            ("get nodes", GetResource::Nodes),
            ("get all", GetResource::All),
            ("get events", GetResource::Events),
            ("get ev", GetResource::Events),
        ] {
            assert_eq!(
                cmd(line),
                Command::Get {
                    resource,
                    selector: None
                }
            );
        }
        assert_eq!(
            cmd("describe deployment web"),
            Command::Describe {
                kind: Kind::Deployment,
                name: "web".into()
            }
        );
        assert_eq!(
            cmd("describe svc/web"),
            Command::Describe {
                kind: Kind::Service,
                name: "web".into()
            }
        );
        assert_eq!(
            cmd("exec pod/web-1 -c app -- sh -c 'echo hi'"),
            Command::Exec {
                pod: "web-1".into(),
                container: Some("app".into()),
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            }
        );
        assert_eq!(
            cmd("logs web-1 -c app --tail 20"),
            Command::Logs {
                pod: "web-1".into(),
                container: Some("app".into()),
                tail: Some(20)
            }
        );
        let web = Command::CreateDeployment {
            name: "web".into(),
            container: "nginx".into(),
            image: "nginx:1.27".into(),
            replicas: Some(3),
            port: Some(80),
        };
        assert_eq!(
            cmd("create deployment web --image=nginx:1.27 --replicas=3 --port=80"),
            web
        );
        assert_eq!(
            cmd("create deployment web --image nginx:1.27 --replicas 3 --port 80"),
            web
        );
        assert_eq!(
            cmd("run web --image=nginx:1.27"),
            Command::CreateDeployment {
                name: "web".into(),
                container: "web".into(),
                image: "nginx:1.27".into(),
                replicas: None,
                port: None
            }
        );
        assert_eq!(
            cmd("expose deployment web --port 80 --target-port=8080 --type=NodePort --name web-np"),
            Command::Expose {
                deployment: "web".into(),
                port: 80,
                target_port: Some(8080),
                service_type: Some(ServiceType::NodePort),
                name: Some("web-np".into())
            }
        );
        for line in [
            "scale deployment/web --replicas=5",
            "scale deployments/web --replicas=5",
            "scale deployment web --replicas 5",
            "kubectl scale deploy/web --replicas=5",
        ] {
            assert_eq!(
                cmd(line),
                Command::Scale {
                    name: "web".into(),
                    replicas: 5
                },
                "{line}"
            );
        }
        assert_eq!(
            cmd("set image deployment/web app=nginx:1.28"),
            Command::SetImage {
                name: "web".into(),
                container: Some("app".into()),
                image: "nginx:1.28".into(),
            }
        );
        assert_eq!(
            cmd("set image deploy/web *=nginx:1.28"),
            Command::SetImage {
                name: "web".into(),
                container: None,
                image: "nginx:1.28".into(),
            }
        );
        assert_eq!(
            cmd("rollout status deployment/web"),
            Command::RolloutStatus {
                name: "web".into(),
                watch: true
            }
        );
        assert_eq!(
            cmd("rollout status deployment/web --watch=false"),
            Command::RolloutStatus {
                name: "web".into(),
                watch: false
            }
        );
        let p =
            parse("kubectl --context prod scale deploy/web --replicas 2 --wait --timeout=1m30s")
                .unwrap();
        assert_eq!(p.context.as_deref(), Some("prod"));
        assert!(p.wait);
        assert_eq!(p.timeout, Some(std::time::Duration::from_secs(90)));
        assert_eq!(
            cmd("create deployment api --image=registry.example.com:5000/team/my_api:1.2@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
            Command::CreateDeployment {
                name: "api".into(),
                container: "my-api".into(),
                image: "registry.example.com:5000/team/my_api:1.2@sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
                replicas: None,
                port: None
            }
        );
        assert_eq!(
            cmd("rollout history deployment web"),
            Command::RolloutHistory { name: "web".into() }
        );
        assert_eq!(
            cmd("rollout undo deployment/web --to-revision=2"),
            Command::RolloutUndo {
                name: "web".into(),
                to_revision: Some(2)
            }
        );
        assert_eq!(
            cmd("rollout restart deployment/web"),
            Command::RolloutRestart { name: "web".into() }
        );
        assert_eq!(
            cmd("label pod web-1 tier=frontend canary- --overwrite"),
            Command::Label {
                kind: Kind::Pod,
                name: "web-1".into(),
                change: LabelChange {
                    set: [("tier".to_owned(), "frontend".to_owned())].into(),
                    remove: vec!["canary".into()],
                    overwrite: true
                }
            }
        );
        assert_eq!(
            cmd("delete service web"),
            Command::Delete {
                kind: Kind::Service,
                name: "web".into()
            }
        );
        assert_eq!(
            cmd("delete pods -l 'app in (web, api)'"),
            Command::DeleteSelected {
                kind: Kind::Pod,
                selector: "app in (web, api)".into()
            }
        );
        assert_eq!(cmd("version"), Command::Version);
        assert_eq!(cmd("kubectl cluster-info"), Command::ClusterInfo);
        let p = parse("scale deployment/web --replicas=0 --dry-run=server -nshop").unwrap();
        assert!(p.dry_run);
        assert_eq!(p.namespace.as_deref(), Some("shop"));
        assert_eq!(
            parse("get pods --namespace=kube-system")
                .unwrap()
                .namespace
                .as_deref(),
            Some("kube-system")
        );
    }

    #[test]
    fn what_is_not_supported_is_refused_naming_what_is() {
        for (line, says) in [
            ("exec -it web-1 -- sh", "terminal"),
            ("port-forward web-1 8080:80", "kubegate port-forward"),
        ] {
            let e = refused(line);
            assert!(matches!(e, ParseError::Invalid(_)), "`{line}`: {e:?}");
            assert!(e.to_string().contains(says), "{e}");
        }
        for line in [
            "proxy",
            "apply -f x.yaml",
            "get secrets",
            "create secret generic x",
            "scale statefulset/db --replicas=1",
            "delete deployment -l app=web",
            "rollout pause deployment/web",
            "get pods -o yaml",
            "get pods --all-namespaces",
            "label pod web --selector app=x k=v",
            "; rm -rf /",
            "rollout status deployment/web --to-revision=2",
            "rollout history deployment/web --watch",
            "rollout status deployment/web --wait",
            "describe rs web-1",
        ] {
            let e = refused(line);
            assert!(matches!(e, ParseError::Unsupported(_)), "`{line}`: {e:?}");
            assert!(e.to_string().contains("supported: get"), "{e}");
        }
        assert_eq!(refused(""), ParseError::Empty);
        assert_eq!(refused("kubectl -n shop"), ParseError::Empty);
        assert!(matches!(refused("kubectl -n"), ParseError::Invalid(_)));
        assert!(matches!(
            refused("--all-namespaces get pods"),
            ParseError::Unsupported(_)
        ));
        assert_eq!(
            parse("kubectl -n shop --context=dev get pods")
                .unwrap()
                .namespace
                .as_deref(),
            Some("shop")
        );
        assert_eq!(refused("kubectl"), ParseError::Empty);
    }

    #[test]
    fn malformed_commands_say_what_is_wrong() {
        for (line, says) in [
            ("scale deployment/web", "--replicas <REPLICAS>"),
            (
                "scale deployment/web --replicas=three",
                "invalid value 'three'",
            ),
            ("scale deployment/web --replicas", "a value is required"),
            (
                "scale deployment/web --replicas=1 --replicas=2",
                "multiple times",
            ),
            (
                "scale deployment/web extra --replicas=1",
                "unexpected argument `extra`",
            ),
            ("create deployment web", "--image <IMAGE>"),
            ("set image deployment/web nginx", "CONTAINER=IMAGE"),
            (
                "set image deployment/web a=x:1 b=y:1",
                "one CONTAINER=IMAGE per command",
            ),
            (
                "expose deployment web --port=80 --target-port=http",
                "invalid value 'http'",
            ),
            ("label pod web", "at least one"),
            ("label pod web tier", "neither k=v nor k-"),
            (
                "label pod web --overwrite=maybe a=b",
                "invalid value 'maybe'",
            ),
            ("delete pod web -l app=web", "not both"),
            (
                "expose deployment web --port=80 --type=Ingress",
                "--type is",
            ),
            (
                "scale deployment/web --replicas=1 --timeout=5m",
                "give --wait too",
            ),
            (
                "rollout status deployment/web --timeout=forever",
                "a duration like 90s",
            ),
            (
                "get pods --dry-run=client",
                "kubegate runs --dry-run=server",
            ),
            ("get", "<RESOURCE>"),
        ] {
            let e = refused(line);
            assert!(matches!(e, ParseError::Invalid(_)), "`{line}` gave {e:?}");
            assert!(e.to_string().contains(says), "`{line}` said `{e}`");
        }
    }

    #[test]
    fn help_is_an_answer_for_the_line_and_for_every_verb() {
        let Command::Help(all) = cmd("kubectl --help") else {
            panic!("no help")
        };
        assert!(all.contains("Usage: kubectl [OPTIONS] <COMMAND>"), "{all}");
        for verb in ["get", "scale", "rollout", "label", "delete"] {
            assert!(all.contains(verb), "{verb} missing from {all}");
        }
        let Command::Help(scale) = cmd("scale --help") else {
            panic!("no help")
        };
        assert!(scale.contains("Usage: kubectl scale"), "{scale}");
        assert!(scale.contains("--replicas <REPLICAS>"), "{scale}");
        let Command::Help(undo) = cmd("rollout undo -h") else {
            panic!("no help")
        };
        assert!(undo.contains("--to-revision"), "{undo}");
    }
}
