//! Whether a queued command's path argument stays inside the working
//! directory on disk: the runner's part of the allowlist check, which
//! `claw_proto` (no file system) cannot make.

use std::path::{Path, PathBuf};

/// The working directory a command runs in, canonical: the run's `--cwd`,
/// else the runner's own. `None` when it cannot be resolved; then no path
/// argument is inside.
pub fn root(cwd: Option<&Path>) -> Option<PathBuf> {
    match cwd {
        Some(dir) => dir.canonicalize().ok(),
        None => std::env::current_dir().ok()?.canonicalize().ok(),
    }
}

/// Whether `argument`, a path relative to `root` (a canonical directory),
/// stays inside it: an existing path must resolve (symbolic links followed)
/// to `root` or below it; for a path that does not exist yet, its deepest
/// existing ancestor must. A symbolic link that cannot be resolved is
/// outside, and so is an absolute path.
pub fn contains(root: &Path, argument: &str) -> bool {
    let relative = Path::new(argument);
    if relative.is_absolute() {
        return false;
    }
    let full = root.join(relative);
    for candidate in full.ancestors() {
        match candidate.canonicalize() {
            Ok(resolved) => return resolved.starts_with(root),
            // Something is there that cannot be resolved: a dangling or
            // looping link, or a directory we may not search.
            Err(_) if candidate.symlink_metadata().is_ok() => return false,
            Err(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn inside_outside_and_links() {
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("secret"), "s").expect("secret");
        let work = tempfile::tempdir().expect("work");
        let dir = root(Some(work.path())).expect("root");
        let root = dir.as_path();
        std::fs::create_dir(root.join("src")).expect("src");
        std::fs::write(root.join("src/main.rs"), "").expect("file");
        symlink(outside.path(), root.join("escape")).expect("link out");
        symlink(outside.path().join("secret"), root.join("src/secret")).expect("file link out");
        symlink("src/main.rs", root.join("main")).expect("link in");
        symlink(outside.path().join("gone"), root.join("dangling")).expect("dangling");
        symlink("loop", root.join("loop")).expect("loop");

        for inside in [
            ".",
            "src",
            "src/main.rs",
            "./src/",
            "main",
            "new-file",
            "src/new/deeper",
        ] {
            assert!(contains(root, inside), "{inside:?} is inside");
        }
        for out in [
            "escape",
            "escape/secret",
            "escape/not-yet",
            "src/secret",
            "dangling",
            "dangling/x",
            "loop",
            "/etc",
        ] {
            assert!(!contains(root, out), "{out:?} is outside");
        }
    }

    #[test]
    fn the_working_directory_through_a_link_is_still_itself() {
        let base = tempfile::tempdir().expect("base");
        std::fs::create_dir(base.path().join("real")).expect("real");
        symlink(base.path().join("real"), base.path().join("via")).expect("link");
        let dir = root(Some(&base.path().join("via"))).expect("root");
        assert_eq!(dir, base.path().join("real").canonicalize().expect("real"));
        assert!(contains(&dir, "file"));
        assert!(root(Some(&base.path().join("missing"))).is_none());
    }
}
