//! kubectl command lines for chat: the words of a line (`words`), the supported subset of
//! kubectl's grammar (`grammar`, declared with clap), and what a line does in the gateway's terms
//! (`plan`). Nothing here runs a shell or a kubectl binary, and nothing touches a cluster: a line
//! becomes plain data that the command endpoint runs through `gateway::read` or
//! `gateway::execute`, like every REST call.

mod error;
mod grammar;
mod plan;
mod words;

pub use error::{MAX_LEN, ParseError, SUPPORTED};
pub use grammar::{Command, GetResource, Parsed, parse};
pub use plan::{DEFAULT_STATUS_WAIT, DEFAULT_TAIL, Plan};
