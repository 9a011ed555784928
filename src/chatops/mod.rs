//! kubectl command lines for chat: the grammar of the supported subset, what each line means (an
//! `Action` for the gateway, or a read), and the kubectl-style text of the answer.

pub mod command;
