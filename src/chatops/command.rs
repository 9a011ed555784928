//! kubectl-syntax command lines for chatops (issue 9): a tokenizer and a parser that turn
//! `kubectl scale deployment/web --replicas=3 -n shop` into a typed [`Command`]. Nothing here runs
//! a shell or a kubectl binary, and nothing touches a cluster: the result is plain data that the
//! command endpoint (not built yet) turns into the same reads and `Action`s the REST API uses.
//!
//! What is accepted is exactly [`SUPPORTED`]; anything else (`exec`, `apply -f`, unknown flags,
//! stray arguments) is a [`ParseError`] that says what is supported.

use std::collections::BTreeMap;

use crate::action::{Action, DeploySpec, ExposeSpec, LabelChange, LabelledKind, ServiceType};

/// The longest command line accepted, in bytes. Chat messages are short; this bounds the work.
pub const MAX_LEN: usize = 2048;

/// The forms the parser accepts, for error messages and documentation.
pub const SUPPORTED: &str = "get [deployments|pods|services|replicasets|nodes|all] [-l SELECTOR]; \
describe deployment|pod|service NAME; logs POD [-c CONTAINER] [--tail N]; \
create deployment NAME --image=IMAGE [--replicas=N] [--port=P]; run NAME --image=IMAGE [--port=P]; \
expose deployment NAME --port=P [--target-port=T] [--type=T] [--name=S]; \
scale deployment/NAME --replicas=N; set image deployment/NAME CONTAINER=IMAGE; \
rollout status|history|undo|restart deployment/NAME [--to-revision=N]; \
label deployment|pod|service NAME k=v [k-]... [--overwrite]; delete deployment|service|pod NAME; \
delete service|pod -l SELECTOR; version; cluster-info; \
each with optional -n NAMESPACE, --context CLUSTER and --dry-run=server, and an optional leading kubectl; \
changes that roll out take --wait [--timeout=90s]; rollout status takes --watch=false and --timeout";

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
    pub timeout: Option<std::time::Duration>,
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Get {
        resource: GetResource,
        selector: Option<String>,
    },
    Describe {
        kind: LabelledKind,
        name: String,
    },
    Logs {
        pod: String,
        container: Option<String>,
        tail: Option<i64>,
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
        kind: LabelledKind,
        name: String,
        change: LabelChange,
    },
    Delete {
        kind: LabelledKind,
        name: String,
    },
    DeleteSelected {
        kind: LabelledKind,
        selector: String,
    },
    Version,
    ClusterInfo,
}

impl Command {
    /// The `Action` a mutating command runs: the same value the REST endpoint for that operation
    /// builds, so validation, authorization, audit and dry-run cannot differ between the two.
    /// `None` for reads. `create deployment` / `run` become `Action::Create`, which refuses an
    /// existing Deployment as kubectl does (the REST deploy creates or updates).
    pub fn action(&self, max_affected: usize) -> Option<Action> {
        Some(match self.clone() {
            Self::CreateDeployment {
                name,
                container,
                image,
                replicas,
                port,
            } => Action::Create {
                name,
                spec: DeploySpec::simple(container, image, replicas, port),
            },
            Self::Scale { name, replicas } => Action::Scale { name, replicas },
            Self::SetImage {
                name,
                container,
                image,
            } => Action::SetImage {
                name,
                container,
                image,
            },
            Self::RolloutRestart { name } => Action::Restart { name },
            Self::RolloutUndo { name, to_revision } => Action::Rollback {
                name,
                to_revision: to_revision.unwrap_or(0),
                expect_revision: None,
            },
            Self::Expose {
                deployment,
                port,
                target_port,
                service_type,
                name,
            } => Action::Expose {
                deployment,
                spec: ExposeSpec {
                    port,
                    target_port,
                    protocol: None,
                    service_type,
                    node_port: None,
                    name,
                },
            },
            Self::Label { kind, name, change } => Action::Label { kind, name, change },
            Self::Delete { kind, name } => match kind {
                LabelledKind::Deployment => Action::DeleteDeployment { name },
                LabelledKind::Service => Action::DeleteService { name },
                LabelledKind::Pod => Action::DeletePod { name },
            },
            Self::DeleteSelected { kind, selector } => match kind {
                LabelledKind::Service => Action::DeleteServices {
                    selector,
                    max_affected,
                },
                LabelledKind::Pod => Action::DeletePods {
                    selector,
                    max_affected,
                },
                // The parser refuses `delete deployment -l`.
                LabelledKind::Deployment => return None,
            },
            Self::Get { .. }
            | Self::Describe { .. }
            | Self::Logs { .. }
            | Self::RolloutStatus { .. }
            | Self::RolloutHistory { .. }
            | Self::Version
            | Self::ClusterInfo => return None,
        })
    }
}

/// What `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetResource {
    Deployments,
    Pods,
    Services,
    ReplicaSets,
    Nodes,
    /// `get all`: deployments, replicasets, services and pods.
    All,
}

/// Why a command line was refused. Every message is meant for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the command is empty; supported: {SUPPORTED}")]
    Empty,
    #[error("the command is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("unterminated {0} quote")]
    UnterminatedQuote(char),
    #[error("`{0}` is not supported; supported: {SUPPORTED}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ParseError {
    ParseError::Invalid(msg.into())
}

/// Split a command line into words the way a POSIX shell quotes, and nothing more: whitespace
/// separates words, single quotes keep everything literal, double quotes keep everything but `\"`
/// and `\\` literal, a backslash outside quotes escapes the next character. `;`, `|`, `$`, `` ` ``,
/// `#`, `>` and the like are ordinary characters: there is no shell behind this.
///
/// Hand-written rather than `shlex`: `shlex` treats `#` as the start of a comment and silently
/// drops the rest of the line, which would run a different command than the one typed.
pub fn tokenize(line: &str) -> Result<Vec<String>, ParseError> {
    if line.len() > MAX_LEN {
        return Err(ParseError::TooLong);
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ParseError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(ParseError::UnterminatedQuote('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(ParseError::UnterminatedQuote('"')),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Flags each verb accepts (besides `-n`/`--namespace`, `--context` and `--dry-run`). `true`
/// means the flag takes a value.
const FLAG_SPECS: &[(&str, &[(&str, bool)])] = &[
    ("get", &[("selector", true)]),
    ("describe", &[]),
    ("logs", &[("container", true), ("tail", true)]),
    (
        "create",
        &[
            ("image", true),
            ("replicas", true),
            ("port", true),
            ("wait", false),
            ("timeout", true),
        ],
    ),
    (
        "run",
        &[
            ("image", true),
            ("port", true),
            ("wait", false),
            ("timeout", true),
        ],
    ),
    (
        "expose",
        &[
            ("port", true),
            ("target-port", true),
            ("type", true),
            ("name", true),
        ],
    ),
    (
        "scale",
        &[("replicas", true), ("wait", false), ("timeout", true)],
    ),
    ("set", &[("wait", false), ("timeout", true)]),
    (
        "rollout",
        &[
            ("to-revision", true),
            ("watch", false),
            ("wait", false),
            ("timeout", true),
        ],
    ),
    ("label", &[("overwrite", false)]),
    ("delete", &[("selector", true)]),
    ("version", &[]),
    ("cluster-info", &[]),
];

fn flag_spec(verb: &str) -> Option<&'static [(&'static str, bool)]> {
    FLAG_SPECS.iter().find(|(v, _)| *v == verb).map(|(_, f)| *f)
}

/// Short flags kubectl spells with one letter.
fn long_name(short: char) -> Option<&'static str> {
    match short {
        'n' => Some("namespace"),
        'l' => Some("selector"),
        'c' => Some("container"),
        _ => None,
    }
}

/// Words left after flags are taken out, and the flags' values.
struct Args {
    positional: Vec<String>,
    flags: BTreeMap<&'static str, String>,
}

impl Args {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    fn int<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ParseError> {
        self.flag(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid(format!("--{name} must be a whole number, not `{v}`")))
            })
            .transpose()
    }
}

fn split_flags(verb: &str, words: &[String]) -> Result<Args, ParseError> {
    let allowed = flag_spec(verb).unwrap_or(&[]);
    let spec = |name: &str| -> Option<(&'static str, bool)> {
        match name {
            "namespace" => Some(("namespace", true)),
            "context" => Some(("context", true)),
            "dry-run" => Some(("dry-run", true)),
            _ => allowed.iter().find(|(n, _)| *n == name).copied(),
        }
    };
    let mut positional = Vec::new();
    let mut flags = BTreeMap::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let (name, inline): (String, Option<String>) = if let Some(rest) = w.strip_prefix("--") {
            match rest.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (rest.to_owned(), None),
            }
        } else if w.len() > 1 && w.starts_with('-') && !w.ends_with('-') {
            // `-n shop`, `-nshop`, `-n=shop`.
            let mut cs = w[1..].chars();
            let short = cs.next().unwrap_or('-');
            let rest: String = cs.collect();
            let long = long_name(short)
                .ok_or_else(|| ParseError::Unsupported(format!("flag -{short} of `{verb}`")))?;
            let rest = rest.strip_prefix('=').unwrap_or(&rest).to_owned();
            (long.to_owned(), (!rest.is_empty()).then_some(rest))
        } else {
            positional.push(w.clone());
            continue;
        };
        let (name, takes_value) = spec(&name)
            .ok_or_else(|| ParseError::Unsupported(format!("flag --{name} of `{verb}`")))?;
        let value = match (takes_value, inline) {
            (true, Some(v)) => v,
            // `--dry-run` alone means kubectl's deprecated client default: refuse below.
            (true, None) if name == "dry-run" => String::new(),
            (true, None) => it
                .next()
                .cloned()
                .ok_or_else(|| invalid(format!("--{name} needs a value")))?,
            (false, None) => "true".to_owned(),
            (false, Some(v)) => match v.as_str() {
                "true" | "false" => v,
                _ => return Err(invalid(format!("--{name} is true or false, not `{v}`"))),
            },
        };
        if flags.insert(name, value).is_some() {
            return Err(invalid(format!("--{name} is given twice")));
        }
    }
    Ok(Args { positional, flags })
}

/// `deployment/NAME`, `deployments/NAME`, `deploy/NAME` or `deployment NAME`: the name, and the
/// positional words after it.
fn deployment_ref<'a>(verb: &str, pos: &'a [String]) -> Result<(String, &'a [String]), ParseError> {
    if pos.is_empty() {
        return Err(invalid(format!("`{verb}` needs deployment/NAME")));
    }
    match kind_and_name(verb, pos)? {
        (LabelledKind::Deployment, Some(name), rest) => Ok((name, rest)),
        (LabelledKind::Deployment, None, _) => {
            Err(invalid(format!("`{verb} deployment` needs a NAME")))
        }
        _ => Err(ParseError::Unsupported(format!("{verb} {}", pos[0]))),
    }
}

fn kind_of(word: &str) -> Option<LabelledKind> {
    match word {
        "deployment" | "deployments" | "deploy" | "deployment.apps" => {
            Some(LabelledKind::Deployment)
        }
        "service" | "services" | "svc" => Some(LabelledKind::Service),
        "pod" | "pods" | "po" => Some(LabelledKind::Pod),
        _ => None,
    }
}

/// `KIND NAME` or `KIND/NAME` for describe, label and delete.
fn kind_and_name<'a>(
    verb: &str,
    pos: &'a [String],
) -> Result<(LabelledKind, Option<String>, &'a [String]), ParseError> {
    let Some(first) = pos.first() else {
        return Err(invalid(format!("`{verb}` needs a kind and a NAME")));
    };
    let (kind, name, rest) = match first.split_once('/') {
        Some((k, n)) => (k, Some(n.to_owned()), &pos[1..]),
        None => (
            first.as_str(),
            pos.get(1).cloned(),
            pos.get(2..).unwrap_or(&[]),
        ),
    };
    let kind = kind_of(kind).ok_or_else(|| ParseError::Unsupported(format!("{verb} {kind}")))?;
    Ok((kind, name, rest))
}

fn no_more(verb: &str, rest: &[String]) -> Result<(), ParseError> {
    match rest.first() {
        None => Ok(()),
        Some(w) => Err(invalid(format!("unexpected argument `{w}` to `{verb}`"))),
    }
}

fn required(args: &Args, verb: &str, flag: &str) -> Result<String, ParseError> {
    args.flag(flag)
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("`{verb}` needs --{flag}")))
}

/// Parse one command line.
pub fn parse(line: &str) -> Result<Parsed, ParseError> {
    let words = tokenize(line)?;
    let words = match words.first().map(String::as_str) {
        Some("kubectl") => &words[1..],
        _ => &words[..],
    };
    // kubectl's global flags may come before the verb: `kubectl -n shop get pods`.
    let mut leading = Vec::new();
    let mut i = 0;
    while let Some(w) = words.get(i).filter(|w| w.starts_with('-')) {
        let takes_next = matches!(w.as_str(), "-n" | "--namespace" | "--context");
        let inline = w.starts_with("--namespace=")
            || w.starts_with("--context=")
            || (w.starts_with("-n") && w.len() > 2);
        if !takes_next && !inline {
            return Err(ParseError::Unsupported(format!("flag {w} before the verb")));
        }
        if takes_next && words.get(i + 1).is_none() {
            return Err(invalid(format!("{w} needs a value")));
        }
        let n = if takes_next { 2 } else { 1 };
        leading.extend(words.iter().skip(i).take(n).cloned());
        i += n;
    }
    let words = &words[i..];
    let Some(verb) = words.first() else {
        return Err(ParseError::Empty);
    };
    let verb = verb.as_str();
    if flag_spec(verb).is_none() {
        return Err(ParseError::Unsupported(verb.to_owned()));
    }
    let rest: Vec<String> = leading
        .into_iter()
        .chain(words[1..].iter().cloned())
        .collect();
    let args = split_flags(verb, &rest)?;
    let dry_run = match args.flag("dry-run") {
        None | Some("none") => false,
        Some("server") => true,
        Some(other) => {
            return Err(invalid(format!(
                "--dry-run={other} is not supported: kubegate runs --dry-run=server"
            )));
        }
    };
    let namespace = args.flag("namespace").map(str::to_owned);
    let context = args.flag("context").map(str::to_owned);
    let wait = args.flag("wait") == Some("true");
    let timeout = args.flag("timeout").map(duration).transpose()?;
    let pos = &args.positional[..];
    let command = match verb {
        "get" => {
            let Some(what) = pos.first().map(String::as_str) else {
                return Err(invalid("`get` needs a resource, e.g. `get pods`"));
            };
            let resource = match (kind_of(what), what) {
                (Some(LabelledKind::Deployment), _) => GetResource::Deployments,
                (Some(LabelledKind::Service), _) => GetResource::Services,
                (Some(LabelledKind::Pod), _) => GetResource::Pods,
                (None, "replicasets" | "replicaset" | "rs") => GetResource::ReplicaSets,
                (None, "nodes" | "node" | "no") => GetResource::Nodes,
                (None, "all") => GetResource::All,
                (None, other) => return Err(ParseError::Unsupported(format!("get {other}"))),
            };
            no_more("get", &pos[1..])?;
            Command::Get {
                resource,
                selector: args.flag("selector").map(str::to_owned),
            }
        }
        "describe" => {
            let (kind, name, rest) = kind_and_name(verb, pos)?;
            no_more(verb, rest)?;
            Command::Describe {
                kind,
                name: name.ok_or_else(|| invalid("`describe` needs a NAME"))?,
            }
        }
        "logs" => {
            let pod = match pos.first() {
                Some(p) => p.strip_prefix("pod/").unwrap_or(p).to_owned(),
                None => return Err(invalid("`logs` needs a POD")),
            };
            no_more(verb, &pos[1..])?;
            Command::Logs {
                pod,
                container: args.flag("container").map(str::to_owned),
                tail: args.int("tail")?,
            }
        }
        "create" | "run" => {
            let rest = if verb == "create" {
                match pos.first().map(String::as_str) {
                    Some("deployment" | "deploy") => &pos[1..],
                    Some(other) => return Err(ParseError::Unsupported(format!("create {other}"))),
                    None => return Err(invalid("`create` needs `deployment NAME`")),
                }
            } else {
                pos
            };
            let name = rest
                .first()
                .cloned()
                .ok_or_else(|| invalid(format!("`{verb}` needs a NAME")))?;
            no_more(verb, &rest[1..])?;
            let image = required(&args, verb, "image")?;
            Command::CreateDeployment {
                container: if verb == "run" {
                    name.clone()
                } else {
                    container_name(&image)
                },
                name,
                image,
                replicas: args.int("replicas")?,
                port: args.int("port")?,
            }
        }
        "expose" => {
            let (deployment, rest) = deployment_ref(verb, pos)?;
            no_more(verb, rest)?;
            let port = args
                .int("port")?
                .ok_or_else(|| invalid("`expose` needs --port"))?;
            let service_type = args
                .flag("type")
                .map(|t| match t {
                    "ClusterIP" => Ok(ServiceType::ClusterIP),
                    "NodePort" => Ok(ServiceType::NodePort),
                    "LoadBalancer" => Ok(ServiceType::LoadBalancer),
                    "ExternalName" => Ok(ServiceType::ExternalName),
                    other => Err(invalid(format!(
                        "--type is ClusterIP, NodePort, LoadBalancer or ExternalName, not `{other}`"
                    ))),
                })
                .transpose()?;
            Command::Expose {
                deployment,
                port,
                target_port: args.int("target-port")?,
                service_type,
                name: args.flag("name").map(str::to_owned),
            }
        }
        "scale" => {
            let (name, rest) = deployment_ref(verb, pos)?;
            no_more(verb, rest)?;
            Command::Scale {
                name,
                replicas: args
                    .int("replicas")?
                    .ok_or_else(|| invalid("`scale` needs --replicas"))?,
            }
        }
        "set" => {
            match pos.first().map(String::as_str) {
                Some("image") => {}
                Some(other) => return Err(ParseError::Unsupported(format!("set {other}"))),
                None => return Err(invalid("`set` needs `image deployment/NAME C=IMAGE`")),
            }
            let (name, rest) = deployment_ref("set image", &pos[1..])?;
            let [pair] = rest else {
                return Err(invalid(
                    "`set image` takes one CONTAINER=IMAGE per command (`*=IMAGE` sets every container)",
                ));
            };
            let Some((container, image)) = pair
                .split_once('=')
                .filter(|(c, i)| !c.is_empty() && !i.is_empty())
            else {
                return Err(invalid(format!("`{pair}` is not CONTAINER=IMAGE")));
            };
            Command::SetImage {
                name,
                container: (container != "*").then(|| container.to_owned()),
                image: image.to_owned(),
            }
        }
        "rollout" => {
            let sub = pos
                .first()
                .map(String::as_str)
                .ok_or_else(|| invalid("`rollout` needs status, history, undo or restart"))?;
            let (name, rest) = deployment_ref(verb, &pos[1..])?;
            no_more(verb, rest)?;
            let to_revision = args.int("to-revision")?;
            if to_revision.is_some() && sub != "undo" {
                return Err(invalid("--to-revision belongs to `rollout undo`"));
            }
            if args.flag("watch").is_some() && sub != "status" {
                return Err(invalid("--watch belongs to `rollout status`"));
            }
            if wait && !matches!(sub, "undo" | "restart") {
                return Err(invalid(
                    "--wait belongs to changes; `rollout status` waits by itself",
                ));
            }
            match sub {
                "status" => Command::RolloutStatus {
                    name,
                    watch: args.flag("watch") != Some("false"),
                },
                "history" => Command::RolloutHistory { name },
                "undo" => Command::RolloutUndo { name, to_revision },
                "restart" => Command::RolloutRestart { name },
                other => return Err(ParseError::Unsupported(format!("rollout {other}"))),
            }
        }
        "label" => {
            let (kind, name, rest) = kind_and_name(verb, pos)?;
            let name = name.ok_or_else(|| invalid("`label` needs a NAME"))?;
            if rest.is_empty() {
                return Err(invalid("`label` needs at least one k=v or k-"));
            }
            let mut change = LabelChange {
                set: BTreeMap::new(),
                remove: Vec::new(),
                overwrite: args.flag("overwrite") == Some("true"),
            };
            for w in rest {
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
            Command::Label { kind, name, change }
        }
        "delete" => {
            let (kind, name, rest) = kind_and_name(verb, pos)?;
            no_more(verb, rest)?;
            match (name, args.flag("selector")) {
                (Some(name), None) => Command::Delete { kind, name },
                (None, Some(sel)) if kind != LabelledKind::Deployment => Command::DeleteSelected {
                    kind,
                    selector: sel.to_owned(),
                },
                (None, Some(_)) => {
                    return Err(ParseError::Unsupported("delete deployment -l".to_owned()));
                }
                (Some(_), Some(_)) => return Err(invalid("give a NAME or -l SELECTOR, not both")),
                (None, None) => return Err(invalid("`delete` needs a NAME or -l SELECTOR")),
            }
        }
        "version" => {
            no_more(verb, pos)?;
            Command::Version
        }
        "cluster-info" => {
            no_more(verb, pos)?;
            Command::ClusterInfo
        }
        other => return Err(ParseError::Unsupported(other.to_owned())),
    };
    if args.flag("timeout").is_some()
        && !wait
        && !matches!(command, Command::RolloutStatus { watch: true, .. })
    {
        return Err(invalid(
            "--timeout bounds --wait or `rollout status`; give --wait too",
        ));
    }
    Ok(Parsed {
        command,
        namespace,
        context,
        dry_run,
        wait,
        timeout,
    })
}

/// `kubectl create deployment`'s container name: the image's last path part without tag or
/// digest, `_` made `-`.
fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split(':').next().unwrap_or(last);
    let last = last.split('@').next().unwrap_or(last);
    last.replace('_', "-")
}

/// kubectl's `--timeout` values: `90s`, `5m`, `1h`, `1m30s`, or plain seconds; at least a second.
fn duration(v: &str) -> Result<std::time::Duration, ParseError> {
    let bad = || invalid(format!("--timeout is a duration like 90s or 5m, not `{v}`"));
    let secs = if let Ok(n) = v.parse::<u64>() {
        n
    } else {
        let (mut total, mut num) = (0u64, String::new());
        for c in v.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(bad)?;
            num.clear();
        }
        if !num.is_empty() {
            return Err(bad());
        }
        total
    };
    if secs == 0 || secs > 86_400 {
        return Err(invalid("--timeout is between 1s and 24h"));
    }
    Ok(std::time::Duration::from_secs(secs))
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
    fn the_tokenizer_quotes_like_a_shell_and_keeps_metacharacters_literal() {
        assert_eq!(
            tokenize(r#"label pod 'a b' x="y \"z\"" c\ d"#).unwrap(),
            ["label", "pod", "a b", r#"x=y "z""#, "c d"]
        );
        assert_eq!(
            tokenize("get pods; rm -rf / | cat $(id) `x` #c > f").unwrap(),
            [
                "get", "pods;", "rm", "-rf", "/", "|", "cat", "$(id)", "`x`", "#c", ">", "f"
            ]
        );
        assert_eq!(tokenize("  \t ").unwrap(), Vec::<String>::new());
        assert_eq!(tokenize("''").unwrap(), [""]);
        assert_eq!(
            tokenize("scale 'déploiement/ünï'").unwrap(),
            ["scale", "déploiement/ünï"]
        );
        assert_eq!(
            tokenize("get 'pods").unwrap_err(),
            ParseError::UnterminatedQuote('\'')
        );
        assert_eq!(
            tokenize("get \"pods").unwrap_err(),
            ParseError::UnterminatedQuote('"')
        );
        assert_eq!(
            tokenize(&"a ".repeat(MAX_LEN)).unwrap_err(),
            ParseError::TooLong
        );
    }

    #[test]
    fn every_supported_form_parses() {
        assert_eq!(
            parse("kubectl get pods -l app=web -n shop").unwrap(),
            Parsed {
                command: Command::Get {
                    resource: GetResource::Pods,
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
            ("get deployments", GetResource::Deployments),
            ("get deploy", GetResource::Deployments),
            ("get svc", GetResource::Services),
            ("get rs", GetResource::ReplicaSets),
            ("get nodes", GetResource::Nodes),
            ("get all", GetResource::All),
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
                kind: LabelledKind::Deployment,
                name: "web".into()
            }
        );
        assert_eq!(
            cmd("describe svc/web"),
            Command::Describe {
                kind: LabelledKind::Service,
                name: "web".into()
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
                kind: LabelledKind::Pod,
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
                kind: LabelledKind::Service,
                name: "web".into()
            }
        );
        assert_eq!(
            cmd("delete pods -l 'app in (web, api)'"),
            Command::DeleteSelected {
                kind: LabelledKind::Pod,
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
        for line in [
            "exec web-1 -- sh",
            "port-forward web-1 8080:80",
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
            ("scale deployment/web", "needs --replicas"),
            ("scale deployment/web --replicas=three", "whole number"),
            ("scale deployment/web --replicas", "needs a value"),
            ("scale deployment/web --replicas=1 --replicas=2", "twice"),
            (
                "scale deployment/web extra --replicas=1",
                "unexpected argument `extra`",
            ),
            ("create deployment web", "needs --image"),
            ("set image deployment/web nginx", "CONTAINER=IMAGE"),
            (
                "set image deployment/web a=x:1 b=y:1",
                "one CONTAINER=IMAGE per command",
            ),
            (
                "expose deployment web --port=80 --target-port=http",
                "whole number",
            ),
            ("label pod web", "at least one"),
            ("label pod web tier", "neither k=v nor k-"),
            ("label pod web --overwrite=maybe a=b", "true or false"),
            (
                "rollout status deployment/web --to-revision=2",
                "belongs to `rollout undo`",
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
            ("rollout history deployment/web --watch", "--watch belongs"),
            ("rollout status deployment/web --wait", "waits by itself"),
            (
                "get pods --dry-run=client",
                "kubegate runs --dry-run=server",
            ),
            ("get", "needs a resource"),
        ] {
            let e = refused(line);
            assert!(matches!(e, ParseError::Invalid(_)), "`{line}` gave {e:?}");
            assert!(e.to_string().contains(says), "`{line}` said `{e}`");
        }
    }

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
                    kind: LabelledKind::Deployment,
                    name: "web".into(),
                    change: label.clone(),
                },
            ),
            (
                "delete deployment web",
                Action::DeleteDeployment { name: "web".into() },
            ),
            (
                "delete svc web",
                Action::DeleteService { name: "web".into() },
            ),
            (
                "delete pod web-1",
                Action::DeletePod {
                    name: "web-1".into(),
                },
            ),
            (
                "delete pods -l app=web",
                Action::DeletePods {
                    selector: "app=web".into(),
                    max_affected: 7,
                },
            ),
            (
                "delete services -l app=web",
                Action::DeleteServices {
                    selector: "app=web".into(),
                    max_affected: 7,
                },
            ),
        ] {
            let got = cmd(line)
                .action(7)
                .unwrap_or_else(|| panic!("`{line}` has no action"));
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
            assert!(cmd(read).action(7).is_none(), "{read}");
        }
    }
}
