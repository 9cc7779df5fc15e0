//! Finding the workspace's binaries from a test or a program in the same
//! cargo target folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `name` beside the running executable: a test runs from
/// `target/<profile>/deps/`, a binary from `target/<profile>/`, and cargo
/// puts the binaries in `target/<profile>/`. `None` when it is not built.
pub fn try_find_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Like [`try_find_binary`]; fails the test when the binary is not built.
pub fn find_binary(name: &str) -> PathBuf {
    try_find_binary(name).unwrap_or_else(|| {
        panic!(
            "{name} is not built beside {}: run the tests with `cargo test --workspace`",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    })
}

/// `name` beside `exe` (a binary of the same build, such as
/// `env!("CARGO_BIN_EXE_clawctl")`); when it is missing, builds `package`
/// with the caller's `cargo` (`env!("CARGO")`) first. The tests of one
/// package alone (`cargo test -p claw-ctl`) then still find a current
/// clawd; `cargo test --workspace` has built it already.
pub fn binary_or_build(exe: &Path, name: &str, package: &str, cargo: &str) -> PathBuf {
    let path = exe.with_file_name(name);
    if !path.exists() {
        let status = Command::new(cargo)
            .args(["build", "-p", package])
            .status()
            .unwrap_or_else(|e| panic!("cargo build -p {package}: {e}"));
        assert!(status.success(), "cargo build -p {package}: {status}");
    }
    path
}
