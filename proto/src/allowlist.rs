//! The allowlist of commands a browser may queue for a runner.
//!
//! A command is allowed when its words start with the words of an allowed
//! entry: `git diff --stat` matches `git diff`, `git status;rm -rf /` does not
//! match `git status` (its first words are `git`, `status;rm`). Commands are
//! never run through a shell, so no other quoting rules apply.

/// The default list, extendable in the configuration.
pub const DEFAULT_ALLOWED: &[&str] = &[
    "git status",
    "git diff",
    "git log",
    "git branch",
    "git show",
    "ls",
    "pwd",
    "npm test",
    "npm run build",
    "npm run lint",
    "cargo test",
    "cargo build",
    "cargo check",
    "make test",
];

/// The stop request travels as this pending command.
pub const STOP_COMMAND: &str = "__STOP__";

/// Longest command text accepted from a browser.
pub const MAX_COMMAND_LEN: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<Vec<String>>,
}

impl Allowlist {
    pub fn new<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Self {
        let entries = entries
            .into_iter()
            .map(|e| {
                e.as_ref()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|words| !words.is_empty())
            .collect();
        Self { entries }
    }

    /// The default list plus `extra`.
    pub fn with_defaults<S: AsRef<str>>(extra: &[S]) -> Self {
        Self::new(
            DEFAULT_ALLOWED
                .iter()
                .copied()
                .chain(extra.iter().map(AsRef::as_ref)),
        )
    }

    pub fn is_allowed(&self, command: &str) -> bool {
        if command.len() > MAX_COMMAND_LEN || command.chars().any(char::is_control) {
            return false;
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        self.entries.iter().any(|entry| {
            entry.len() <= words.len() && entry.iter().zip(&words).all(|(a, b)| a == b)
        })
    }

    /// The entries as text, for error messages and UI suggestions.
    pub fn entries(&self) -> Vec<String> {
        self.entries.iter().map(|w| w.join(" ")).collect()
    }
}

/// Splits an allowed command into program and arguments (no shell involved).
pub fn split_command(command: &str) -> Vec<&str> {
    command.split_whitespace().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_with_arguments() {
        let list = Allowlist::with_defaults::<&str>(&[]);
        assert!(list.is_allowed("git status"));
        assert!(list.is_allowed("  git   diff  --stat "));
        assert!(list.is_allowed("ls -la src"));
    }

    #[test]
    fn refuses_lookalikes_and_shell_tricks() {
        let list = Allowlist::with_defaults::<&str>(&[]);
        for bad in [
            "git statusx",
            "git status;rm -rf /",
            "git",
            "rm -rf /",
            "git status\nrm -rf /",
            "",
            "__STOP__",
            "lsblk",
        ] {
            assert!(!list.is_allowed(bad), "{bad:?} should be refused");
        }
        assert!(!list.is_allowed(&"ls ".repeat(MAX_COMMAND_LEN)));
    }

    #[test]
    fn extendable() {
        let list = Allowlist::with_defaults(&["pytest -q"]);
        assert!(list.is_allowed("pytest -q tests/"));
        assert!(!list.is_allowed("pytest"));
        assert!(list.entries().contains(&"pytest -q".to_owned()));
    }
}
