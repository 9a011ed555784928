//! Why a command line was refused. Every message is meant for the person who typed it.

/// The longest command line accepted, in bytes. Chat messages are short; this bounds the work.
pub const MAX_LEN: usize = 2048;

/// The forms accepted, for error messages and documentation (`kubectl --help` in the chat shows
/// each form's options).
pub const SUPPORTED: &str = "get [deployments|pods|services|replicasets|nodes|all] [-l SELECTOR]; \
describe deployment|pod|service NAME; logs POD [-c CONTAINER] [--tail N]; \
exec POD [-c CONTAINER] -- COMMAND...; \
create deployment NAME --image=IMAGE [--replicas=N] [--port=P]; run NAME --image=IMAGE [--port=P]; \
expose deployment NAME --port=P [--target-port=T] [--type=T] [--name=S]; \
scale deployment/NAME --replicas=N; set image deployment/NAME CONTAINER=IMAGE; \
rollout status|history|undo|restart deployment/NAME [--to-revision=N]; \
label deployment|pod|service NAME k=v [k-]... [--overwrite]; delete deployment|service|pod NAME; \
delete service|pod -l SELECTOR; version; cluster-info; \
each with optional -n NAMESPACE, --context CLUSTER and --dry-run=server, and an optional leading kubectl; \
changes that roll out take --wait [--timeout=90s]; rollout status takes --watch=false and --timeout; \
--help after any of them says more";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the command is empty; supported: {SUPPORTED}")]
    Empty,
    #[error("the command is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("unterminated quote: {0}")]
    UnterminatedQuote(String),
    #[error("`{0}` is not supported; supported: {SUPPORTED}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

pub fn invalid(msg: impl Into<String>) -> ParseError {
    ParseError::Invalid(msg.into())
}
