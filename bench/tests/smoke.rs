//! A short run of the load generator against the real clawd: it works, and
//! under concurrency no event is lost or stored or delivered twice. Figures
//! are not asserted; the benchmarks are run by hand (docs/PERFORMANCE.md).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// clawd (and clawctl) come from the same `cargo test --workspace` build.
fn sibling(binary: &str, package: &str) -> PathBuf {
    claw_testkit::binary_or_build(binary, package, env!("CARGO"))
}

fn clawd() -> PathBuf {
    sibling("clawd", "clawd")
}

fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_claw-bench"))
        .arg("--spawn")
        .arg(clawd())
        .arg("--json")
        .args(args)
        .output()
        .expect("run claw-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "claw-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line")
}

#[test]
fn single_events_with_subscribers_arrive_once_each() {
    let report = bench(&["--runners", "6", "--events", "300", "--subscribers", "2"]);
    assert_eq!(report["events_sent"], 1800);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_eq!(report["latency"]["samples"], 3600);
    assert!(report["daemon_rss_kib"].as_u64().is_some_and(|kib| kib > 0));
    // Both processes' CPU, from /proc; 1800 signed requests over TLS take
    // well over the 10 ms a tick of it counts.
    assert!(report["daemon_cpu_share"].as_f64().is_some_and(|s| s > 0.0));
    assert!(report["bench_cpu_share"].as_f64().is_some_and(|s| s > 0.0));
}

#[test]
fn https_floor_asks_health_and_sends_no_events() {
    let report = bench(&["--runners", "4", "--events", "200", "--https-floor"]);
    assert_eq!(report["https_floor"], true);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["events_sent"], 0);
    assert_eq!(report["request_latency"]["samples"], 800);
    assert!(report["requests_per_sec"].as_f64().is_some_and(|r| r > 0.0));
}

#[test]
fn batches_are_stored_once_and_compared_with_raw_sqlite() {
    let report = bench(&[
        "--runners",
        "4",
        "--events",
        "2000",
        "--batch",
        "250",
        "--raw-sqlite",
    ]);
    assert_eq!(report["events_sent"], 8000);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert!(
        report["raw_sqlite_events_per_sec"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    );
    assert!(report["ratio_to_raw"].as_f64().is_some_and(|r| r > 0.0));
}

/// The PostgreSQL figures of a report: the server, and both raw ways
/// with clawd's rate over each.
fn assert_raw_postgres(report: &Value) {
    let server = report["postgres"].as_str().unwrap_or_default();
    assert!(server.starts_with("PostgreSQL "), "{report}");
    for key in [
        "raw_postgres_insert_events_per_sec",
        "raw_postgres_copy_events_per_sec",
        "ratio_to_raw_postgres_insert",
        "ratio_to_raw_postgres_copy",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|r| r > 0.0),
            "{key}: {report}"
        );
    }
}

#[test]
fn batches_on_a_durable_temporary_cluster_beside_raw_postgres() {
    let report = bench(&[
        "--spawn-postgres",
        "--raw-postgres",
        "--runners",
        "3",
        "--events",
        "600",
        "--batch",
        "250",
    ]);
    assert_eq!(report["events_sent"], 1800);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_raw_postgres(&report);
    // The cluster --spawn-postgres starts flushes every commit.
    let server = report["postgres"].as_str().unwrap_or_default();
    assert!(
        server.contains("fsync=on synchronous_commit=on"),
        "{server}"
    );
    // Not measured: the SQLite figure stays out of a PostgreSQL run.
    assert!(report["raw_sqlite_events_per_sec"].is_null());
}

#[test]
fn single_events_on_a_given_database_beside_raw_postgres() {
    let cluster = claw_testkit::TempCluster::start();
    let report = bench(&[
        "--postgres",
        &cluster.url(),
        "--raw-postgres",
        "--runners",
        "4",
        "--events",
        "100",
        "--subscribers",
        "1",
    ]);
    assert_eq!(report["events_sent"], 400);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_eq!(report["latency"]["samples"], 400);
    assert_raw_postgres(&report);
    // clawd stored in the given database, and the raw rows' schema is gone.
    let stored = cluster
        .psql(
            claw_testkit::postgres::PG_DATABASE,
            "SELECT (SELECT count(*) FROM events) || ' ' || (SELECT count(*) \
             FROM information_schema.schemata WHERE schema_name LIKE 'claw_bench_raw_%')",
        )
        .expect("query the cluster");
    assert_eq!(stored, "400 0");
}

#[test]
fn raw_postgres_needs_clawd_on_postgres() {
    let output = Command::new(env!("CARGO_BIN_EXE_claw-bench"))
        .args(["--spawn", "/nonexistent/clawd", "--raw-postgres"])
        .output()
        .expect("run claw-bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--postgres"), "{stderr}");
}

#[test]
fn big_database_start_pages_prune_under_load_and_stalled_subscribers() {
    if !claw_testkit::on_sqlite("claw-bench makes a SQLite database and starts clawd on it") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("big.sqlite");
    let made = Command::new(env!("CARGO_BIN_EXE_claw-bench"))
        .arg("--make-db")
        .arg(&db)
        .args(["--db-size-mb", "4", "--big-run-events", "12000"])
        .output()
        .expect("make-db");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    sibling("clawctl", "claw-ctl");
    let db = db.to_str().expect("utf-8 path");
    let report = bench(&[
        "--db-from",
        db,
        "--runners",
        "3",
        "--batch",
        "10",
        "--rate",
        "600",
        "--duration",
        "3s",
        "--subscribers",
        "1",
        "--stalled-subscribers",
        "1",
        "--prune",
        "--page-run",
        "bench-filler-1",
    ]);
    assert_eq!(report["errors"], 0);
    assert_eq!(
        report["lost"], 0,
        "a stalled browser costs the others nothing"
    );
    assert_eq!(report["duplicated"], 0);
    assert!(report["ready_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    assert_eq!(report["pruned_events"], 12000, "bench-big went");
    assert_eq!(report["page_latency"]["samples"], 200);
    assert!(
        report["request_latency"]["samples"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert!(
        report["daemon_rss_peak_kib"]
            .as_u64()
            .is_some_and(|kib| kib > 0)
    );
}

#[test]
fn refuses_anything_but_loopback() {
    let output = Command::new(env!("CARGO_BIN_EXE_claw-bench"))
        .args([
            "--gateway",
            "https://example.org:3100",
            "--data-dir",
            "/nonexistent",
        ])
        .output()
        .expect("run claw-bench");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback only"));
}

#[test]
fn tool_results_of_realistic_size_arrive_once_each() {
    let report = bench(&[
        "--runners",
        "2",
        "--events",
        "40",
        "--event-type",
        "tool-result",
        "--event-bytes",
        "60000",
        "--subscribers",
        "1",
    ]);
    assert_eq!(report["event_type"], "tool-result");
    assert_eq!(report["events_sent"], 80);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    // Each latency comes from the send time inside the tool's output; a
    // subscriber that could not read it would count zero.
    let latency = &report["latency"];
    assert_eq!(latency["samples"], 80);
    assert!(latency["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0));
}

#[test]
fn prompts_reach_the_stand_in_agent_through_a_real_runner() {
    let runner = sibling("claw-runner", "claw-runner");
    let runner = runner.to_str().expect("a UTF-8 path");
    let report = bench(&["--prompt-latency", "15", "--runner-bin", runner]);
    let latency = &report["prompt_latency"];
    assert_eq!(latency["samples"], 15);
    assert!(latency["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    assert_eq!(report["request_latency"]["samples"], 15);
}

#[test]
fn decisions_reach_the_stand_in_agent_through_a_real_runner() {
    let runner = sibling("claw-runner", "claw-runner");
    let runner = runner.to_str().expect("a UTF-8 path");
    let report = bench(&["--decision-latency", "10", "--runner-bin", runner]);
    let latency = &report["decision_latency"];
    assert_eq!(latency["samples"], 10);
    assert!(latency["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    assert_eq!(report["request_latency"]["samples"], 10);
}

#[test]
fn two_instances_behind_haproxy_share_the_runners_events() {
    let cluster = claw_testkit::TempCluster::start();
    let report = bench(&[
        "--postgres",
        &cluster.url(),
        "--instances",
        "2",
        "--runners",
        "4",
        "--events",
        "150",
    ]);
    assert_eq!(report["instances"], 2, "{report}");
    assert_eq!(report["runners_to"], "HAProxy");
    assert!(report["subscribers_to"].is_null());
    assert_eq!(report["events_sent"], 600);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert!(report["events_per_sec"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(report["request_latency"]["samples"], 600);
    assert!(report["haproxy_cpu_share"].as_f64().is_some());
    // Round robin: both instances stored some of the 600 requests.
    let writes: Vec<u64> = report["store_writes_per_instance"]
        .as_array()
        .expect("writes per instance")
        .iter()
        .map(|w| w.as_u64().expect("a count"))
        .collect();
    assert_eq!(writes.len(), 2, "{report}");
    assert!(writes.iter().all(|w| *w > 0), "{writes:?}");
    let stored = cluster
        .psql(
            claw_testkit::postgres::PG_DATABASE,
            "SELECT count(*) FROM events",
        )
        .expect("query the cluster");
    assert_eq!(stored, "600");
}

#[test]
fn two_instances_deliver_events_from_a_to_subscribers_on_b() {
    let report = bench(&[
        "--spawn-postgres",
        "--instances",
        "2",
        "--runners",
        "3",
        "--events",
        "100",
        "--batch",
        "10",
        "--subscribers",
        "2",
    ]);
    assert_eq!(report["instances"], 2, "{report}");
    assert_eq!(report["runners_to"], "instance A");
    assert_eq!(report["subscribers_to"], "instance B");
    assert_eq!(report["events_sent"], 300);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    // Every event reached both subscribers of its run on the other instance.
    assert_eq!(report["latency"]["samples"], 600);
    // A stored the 30 batches: the runners sent there directly.
    let writes = &report["store_writes_per_instance"];
    let a = writes[0].as_u64().expect("A's writes");
    let b = writes[1].as_u64().expect("B's writes");
    assert!(a >= 30 && b < a, "{report}");
}

#[test]
fn two_instances_need_postgres() {
    let output = Command::new(env!("CARGO_BIN_EXE_claw-bench"))
        .args(["--spawn", "/nonexistent/clawd", "--instances", "2"])
        .output()
        .expect("run claw-bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--spawn-postgres"), "{stderr}");
}
