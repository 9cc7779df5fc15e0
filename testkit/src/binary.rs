//! Finding the workspace's binaries from a test or a program of the same
//! cargo build.

use std::path::PathBuf;
use std::process::Command;

/// The folder cargo puts a build's binaries in (`target/debug`): the
/// running executable's, or its parent for a test, which runs from
/// `target/debug/deps`.
fn binaries_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if dir.file_name()? == "deps" {
        dir.parent().map(ToOwned::to_owned)
    } else {
        Some(dir.to_owned())
    }
}

/// `name` of the same build as the running executable; `None` when it is
/// not built.
pub fn try_find_binary(name: &str) -> Option<PathBuf> {
    let path = binaries_dir()?.join(name);
    path.is_file().then_some(path)
}

/// Like [`try_find_binary`]; fails the test when the binary is not built.
/// Builds nothing.
pub fn find_binary(name: &str) -> PathBuf {
    try_find_binary(name).unwrap_or_else(|| {
        panic!(
            "{name} is not built in {}: run the tests with `cargo test --workspace`",
            binaries_dir().unwrap_or_default().display()
        )
    })
}

/// Like [`find_binary`], but when `name` is missing, builds `package` with
/// the caller's `cargo` (`env!("CARGO")`) first: the tests of one package
/// alone (`cargo test -p claw-ctl`) then still find clawd. Under
/// `cargo test --workspace` it is built already, and current.
pub fn binary_or_build(name: &str, package: &str, cargo: &str) -> PathBuf {
    if let Some(path) = try_find_binary(name) {
        return path;
    }
    let status = Command::new(cargo)
        .args(["build", "-p", package])
        .status()
        .unwrap_or_else(|e| panic!("cargo build -p {package}: {e}"));
    assert!(status.success(), "cargo build -p {package}: {status}");
    find_binary(name)
}
