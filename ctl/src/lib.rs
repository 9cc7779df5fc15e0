//! clawctl: the command line, a typed client of clawd's control API, one
//! module per command group and their output. The command line definition
//! is public so that the man page and shell completions are generated from
//! it (see `xtask`).

pub mod archive;
pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod output;
pub mod pg;
pub mod restore;
pub mod socket;
