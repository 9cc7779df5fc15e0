//! clawctl: the command line, its control-socket client and its output.
//! The command line definition is public so that the man page and shell
//! completions are generated from it (see `xtask`).

pub mod archive;
pub mod cli;
pub mod client;
pub mod output;
pub mod restore;
