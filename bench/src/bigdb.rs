//! A large database for the start-up, paging and prune figures: one
//! finished run of N events that is past any retention (`bench-big`), and
//! recent finished runs of filler events until the file reaches a size.
//! Written with the daemon's own migrations, then handed to `--db-from`.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use rusqlite::{Connection, params};

use crate::raw::create_with_schema;

/// The run that `--page-run` and the prune figure use.
pub const BIG_RUN: &str = "bench-big";

const FILLER_EVENTS_PER_RUN: u64 = 200_000;
const ROWS_PER_TRANSACTION: u64 = 20_000;

pub fn make(path: &Path, target_bytes: u64, big_run_events: u64) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} exists: give a new file", path.display());
    }
    let started = Instant::now();
    let mut conn = create_with_schema(path)?;
    // A fixture: nothing to lose if the machine dies while it is written.
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let long_ago = now_ms - 400 * 86_400_000;
    fill_run(&mut conn, BIG_RUN, long_ago, big_run_events)?;
    let mut filler = 0;
    while file_bytes(path) < target_bytes {
        filler += 1;
        fill_run(
            &mut conn,
            &format!("bench-filler-{filler}"),
            now_ms,
            FILLER_EVENTS_PER_RUN,
        )?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    println!(
        "wrote {} ({:.2} GB): run {BIG_RUN} with {big_run_events} events (finished 400 days ago) \
         and {filler} recent runs of {FILLER_EVENTS_PER_RUN} events, in {:.0} s",
        path.display(),
        file_bytes(path) as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn file_bytes(path: &Path) -> u64 {
    let wal = path.with_extension("sqlite-wal");
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

fn fill_run(conn: &mut Connection, id: &str, finished_at: i64, events: u64) -> anyhow::Result<()> {
    conn.execute(
        "INSERT INTO runs (id, status, command, capability_token_hash, created_at, started_at, \
         finished_at, exit_code) VALUES (?1, 'done', 'claw-bench fixture', 'x', ?2, ?2, ?2, 0)",
        params![id, finished_at],
    )?;
    let mut sequence = 1;
    while sequence <= events {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (run_id, type, data, timestamp, sequence) VALUES (?1, 'stdout', ?2, ?3, ?4)",
            )?;
            let end = (sequence + ROWS_PER_TRANSACTION).min(events + 1);
            for seq in sequence..end {
                let data = format!("line {seq} of {id}: compiling crate {} ... ok\n", seq % 977);
                insert.execute(params![id, data, finished_at, seq as i64])?;
            }
            sequence = end;
        }
        tx.commit()?;
    }
    Ok(())
}
