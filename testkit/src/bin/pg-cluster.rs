//! `pg-cluster`: a temporary PostgreSQL cluster (the test kit's
//! [`TempCluster`](claw_testkit::TempCluster)) for a whole test run.
//! Prints `postgres://…` (its superuser's URL) on one line, then serves
//! until SIGTERM, SIGINT or SIGHUP, and stops and removes the cluster.
//! scripts/test starts one for `CLAW_TEST_STORE=postgres`.

use std::io::Write;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};

fn main() -> ExitCode {
    let mut stops = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stops.add(signal);
    }
    // Blocked before the cluster starts: a stop while it starts is taken
    // by the wait below, and the cluster is still removed.
    if let Err(e) = stops.thread_block() {
        eprintln!("pg-cluster: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let cluster = match claw_testkit::TempCluster::try_start() {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("pg-cluster: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    if writeln!(out, "{}", cluster.url())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    let _ = stops.wait();
    drop(cluster);
    ExitCode::SUCCESS
}
