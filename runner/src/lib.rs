//! claw-runner's command line, shared with `xtask` for the man page.

pub mod cli;
