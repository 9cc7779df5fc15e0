//! What the clawctl tests share: clawctl run against a gateway's control
//! socket, and reconcile's findings in the form the tests compare.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use claw_testkit::Gateway;
use serde_json::Value;

/// clawctl against `gw`'s control socket, `stdin` typed in.
pub fn clawctl(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clawctl"))
        .arg("--socket")
        .arg(gw.socket())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clawctl");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("clawctl output")
}

pub fn ctl(gw: &Gateway, args: &[&str]) -> Output {
    clawctl(gw, args, None)
}

/// clawctl with --json, which must succeed; its parsed output.
pub fn ctl_json(gw: &Gateway, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ctl(gw, &all);
    assert!(
        out.status.success(),
        "clawctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// A reconcile report's findings as (kind, fixed), sorted.
pub fn finding_kinds(report: &Value) -> Vec<(String, bool)> {
    let mut kinds: Vec<(String, bool)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().expect("kind").to_owned(),
                f["fixed"].as_bool().expect("fixed"),
            )
        })
        .collect();
    kinds.sort();
    kinds
}
