//! `clawctl`: administer the claw gateway over its control socket.

use std::process::ExitCode;

use clap::Parser;
use claw_ctl::cli::Cli;

fn main() -> ExitCode {
    die_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(claw_ctl::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `clawctl runs list | head` must end the way Unix filters do, silently by
/// SIGPIPE, rather than panic in `println!` (Rust ignores SIGPIPE by default).
fn die_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: runs first in main, before any other thread exists, and installs
    // the default disposition, not a handler.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        eprintln!("clawctl: cannot restore SIGPIPE: {e}");
    }
}
