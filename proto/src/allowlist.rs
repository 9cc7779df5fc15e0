//! The allowlist of commands a browser may queue for a runner.
//!
//! An entry means exactly what it says. It is a list of words separated by
//! whitespace:
//!
//! - a literal word (`git`, `diff`, `--stat`) must equal the command's word
//!   at the same position;
//! - `<path>` admits exactly one path argument at its position;
//! - `<path>...`, only as the last word, admits zero or more path arguments.
//!
//! A command matches an entry only when it has the entry's words and no
//! others: `git status --porcelain` does not match `git status`, and
//! `git diff --output=x` does not match `git diff <path>...`, because
//! `--output=x` is not a path argument. Options an entry does not name never
//! reach the program. Any other word in angle brackets, `<path>...` before
//! the last word, or a placeholder as the program is a configuration error.
//!
//! A path argument ([`is_path_argument`]) is not empty, does not start with
//! `-`, is not absolute, has no `..` component and no control character.
//! That is all that can be checked without the file system, and all the
//! gateway checks; the runner also resolves each path argument against the
//! command's working directory and refuses one that leads outside it (a
//! symbolic link included), through [`Allowlist::check_with`]. Commands are
//! never run through a shell, so no quoting rules apply: `git status;rm`
//! is one word.

use std::fmt;

/// The default list, extendable in the configuration.
pub const DEFAULT_ALLOWED: &[&str] = &[
    "git status",
    "git diff <path>...",
    "git diff --stat <path>...",
    "git diff --cached <path>...",
    "git log",
    "git log --oneline",
    "git branch",
    "git show",
    "ls <path>...",
    "ls -la <path>...",
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

/// The placeholder for exactly one path argument.
pub const PATH: &str = "<path>";

/// The placeholder for any number of path arguments, as an entry's last word.
pub const PATHS: &str = "<path>...";

/// What a path argument may be, said in refusals.
const PATH_RULE: &str = "<path> admits only a relative path inside the working directory, \
                         without `..` and not starting with `-`";

/// An entry that cannot be used; the configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    #[error("allowlist entry {entry:?} is empty")]
    Empty { entry: String },
    #[error("allowlist entry {entry:?} contains a control character")]
    ControlCharacter { entry: String },
    #[error("allowlist entry {entry:?}: the first word must be the program, not {word}")]
    PlaceholderProgram { entry: String, word: String },
    #[error("allowlist entry {entry:?}: {PATHS} may only be the last word")]
    PathsNotLast { entry: String },
    #[error(
        "allowlist entry {entry:?}: unknown placeholder {word:?}; only {PATH} and {PATHS} are known"
    )]
    UnknownPlaceholder { entry: String, word: String },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the command is longer than {MAX_COMMAND_LEN} bytes")]
    TooLong,
    #[error("the command contains a control character")]
    ControlCharacter,
    #[error("the command is empty")]
    Empty,
    #[error(
        "no entry matches it: an entry matches only its own words, with no further arguments, \
         and {PATH_RULE}"
    )]
    NoEntry,
    #[error(
        "{argument:?} is not a path argument: options an entry does not name are refused, \
         and {PATH_RULE}"
    )]
    NotAPath { argument: String },
    #[error("{argument:?} leads outside the working directory")]
    Outside { argument: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Literal(String),
    /// `<path>`
    Path,
    /// `<path>...`, the last word only.
    Paths,
}

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    words: Vec<Word>,
}

impl Entry {
    fn parse(text: &str) -> Result<Self, AllowlistError> {
        let entry = || text.trim().to_owned();
        if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return Err(AllowlistError::ControlCharacter { entry: entry() });
        }
        let raw: Vec<&str> = text.split_whitespace().collect();
        let Some(last) = raw.len().checked_sub(1) else {
            return Err(AllowlistError::Empty { entry: entry() });
        };
        let mut words = Vec::with_capacity(raw.len());
        for (i, word) in raw.iter().enumerate() {
            let parsed = match *word {
                PATH => Word::Path,
                PATHS if i == last => Word::Paths,
                PATHS => return Err(AllowlistError::PathsNotLast { entry: entry() }),
                w if looks_like_placeholder(w) => {
                    return Err(AllowlistError::UnknownPlaceholder {
                        entry: entry(),
                        word: w.to_owned(),
                    });
                }
                w => Word::Literal(w.to_owned()),
            };
            if i == 0 && !matches!(parsed, Word::Literal(_)) {
                return Err(AllowlistError::PlaceholderProgram {
                    entry: entry(),
                    word: (*word).to_owned(),
                });
            }
            words.push(parsed);
        }
        Ok(Self { words })
    }

    /// How `command` fits this entry; `inside` is asked only about path
    /// arguments that passed [`is_path_argument`].
    fn fit(&self, command: &[&str], inside: &dyn Fn(&str) -> bool) -> Fit {
        let (fixed, rest) = match self.words.split_last() {
            Some((Word::Paths, fixed)) => (fixed, true),
            _ => (self.words.as_slice(), false),
        };
        if command.len() < fixed.len() || (!rest && command.len() != fixed.len()) {
            return Fit::No;
        }
        let mut paths = Vec::new();
        for (i, (want, word)) in fixed.iter().zip(command).enumerate() {
            match want {
                Word::Literal(literal) if literal == word => {}
                Word::Literal(_) => return Fit::No,
                Word::Path | Word::Paths => paths.push(i),
            }
        }
        paths.extend(fixed.len()..command.len());
        if let Some(&i) = paths.iter().find(|&&i| !is_path_argument(command[i])) {
            return Fit::NotAPath(i);
        }
        if let Some(&i) = paths.iter().find(|&&i| !inside(command[i])) {
            return Fit::Outside(i);
        }
        Fit::Yes
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.words.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(match word {
                Word::Literal(w) => w,
                Word::Path => PATH,
                Word::Paths => PATHS,
            })?;
        }
        Ok(())
    }
}

/// How a command fits one entry, from worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fit {
    /// The literal words or their number differ.
    No,
    /// The shape fits, but this argument is not a path argument.
    NotAPath(usize),
    /// The shape fits, but this path argument leads outside.
    Outside(usize),
    Yes,
}

/// A word in angle brackets (`<file>`, `<path>…`) that is not a known
/// placeholder: a mistake, not a literal.
fn looks_like_placeholder(word: &str) -> bool {
    word.find('<')
        .is_some_and(|open| word[open..].contains('>'))
}

/// The lexical rule for a path argument: not empty, no leading `-` (so never
/// an option), not absolute, no `..` component, no control character.
pub fn is_path_argument(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && !word.starts_with('/')
        && !word.split('/').any(|component| component == "..")
        && !word.chars().any(char::is_control)
}

#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

impl Allowlist {
    /// Exactly these entries; the first invalid one is the error.
    pub fn new<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<Self, AllowlistError> {
        let entries = entries
            .into_iter()
            .map(|e| Entry::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The default list plus `extra`.
    pub fn with_defaults<S: AsRef<str>>(extra: &[S]) -> Result<Self, AllowlistError> {
        Self::new(
            DEFAULT_ALLOWED
                .iter()
                .copied()
                .chain(extra.iter().map(AsRef::as_ref)),
        )
    }

    /// The lexical check (the gateway's): the command's words, to run
    /// without a shell, or why it is refused.
    pub fn check<'c>(&self, command: &'c str) -> Result<Vec<&'c str>, Refusal> {
        self.check_with(command, &|_| true)
    }

    /// The lexical check, and `inside` for every path argument that passed
    /// it (the runner's check against the working directory on disk). A
    /// command is allowed when one entry fits it with every path argument
    /// inside.
    pub fn check_with<'c>(
        &self,
        command: &'c str,
        inside: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<&'c str>, Refusal> {
        if command.len() > MAX_COMMAND_LEN {
            return Err(Refusal::TooLong);
        }
        if command.chars().any(char::is_control) {
            return Err(Refusal::ControlCharacter);
        }
        let words = split_command(command);
        if words.is_empty() {
            return Err(Refusal::Empty);
        }
        let mut best = Fit::No;
        for entry in &self.entries {
            let fit = entry.fit(&words, inside);
            if fit == Fit::Yes {
                return Ok(words);
            }
            best = best.max(fit);
        }
        Err(match best {
            Fit::NotAPath(i) => Refusal::NotAPath {
                argument: words[i].to_owned(),
            },
            Fit::Outside(i) => Refusal::Outside {
                argument: words[i].to_owned(),
            },
            Fit::No | Fit::Yes => Refusal::NoEntry,
        })
    }

    pub fn is_allowed(&self, command: &str) -> bool {
        self.check(command).is_ok()
    }

    /// The entries as text, for error messages and UI suggestions.
    pub fn entries(&self) -> Vec<String> {
        self.entries.iter().map(ToString::to_string).collect()
    }
}

/// Splits an allowed command into program and arguments (no shell involved).
pub fn split_command(command: &str) -> Vec<&str> {
    command.split_whitespace().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Allowlist {
        Allowlist::with_defaults::<&str>(&[]).expect("the default list is valid")
    }

    #[test]
    fn the_default_list_parses_and_prints_as_written() {
        assert_eq!(defaults().entries(), DEFAULT_ALLOWED);
    }

    #[test]
    fn exact_words_match() {
        let list = defaults();
        for good in [
            "git status",
            "  git   status ",
            "git log",
            "git log --oneline",
            "ls",
            "ls -la",
            "pwd",
            "make test",
            "cargo test",
            "npm run lint",
        ] {
            assert_eq!(list.check(good), Ok(split_command(good)), "{good:?}");
        }
    }

    #[test]
    fn extra_arguments_and_options_are_refused() {
        let list = defaults();
        for bad in [
            "git status --porcelain",
            "git log -1",
            "git log --oneline -5",
            "git show HEAD",
            "git branch -D main",
            "make test --eval=pwn:;id>pwned pwn",
            "make test pwn",
            "cargo test --config=build.rustc=/tmp/x",
            "npm test -- --watch",
            "pwd -P",
            "git log --output=pwned -1",
        ] {
            assert_eq!(list.check(bad), Err(Refusal::NoEntry), "{bad:?}");
        }
    }

    #[test]
    fn an_option_in_a_path_position_is_refused_by_name() {
        let list = defaults();
        for (bad, argument) in [
            ("git diff --output=pwned", "--output=pwned"),
            (
                "git diff --no-index /outside/secret /dev/null",
                "--no-index",
            ),
            ("git diff --stat --output=x", "--output=x"),
            ("ls -R", "-R"),
            ("ls -la -R", "-R"),
            ("git diff src -- x", "--"),
        ] {
            assert_eq!(
                list.check(bad),
                Err(Refusal::NotAPath {
                    argument: argument.to_owned()
                }),
                "{bad:?}"
            );
        }
        let message = list
            .check("git diff --output=pwned")
            .expect_err("refused")
            .to_string();
        assert!(
            message.contains("--output=pwned") && message.contains("`..`"),
            "{message}"
        );
    }

    #[test]
    fn path_placeholders_admit_relative_paths_inside() {
        let list = defaults();
        for good in [
            "git diff",
            "git diff src/main.rs",
            "git diff src/main.rs README.md",
            "git diff --stat src",
            "git diff --cached .",
            "ls src",
            "ls -la src ./docs a..b",
            "ls ~",
        ] {
            assert!(list.check(good).is_ok(), "{good:?}");
        }
        for (bad, argument) in [
            ("git diff /etc/passwd", "/etc/passwd"),
            ("git diff ..", ".."),
            ("git diff src/../../secret", "src/../../secret"),
            ("ls ../other", "../other"),
            ("ls src/..", "src/.."),
            ("ls -la -", "-"),
        ] {
            assert_eq!(
                list.check(bad),
                Err(Refusal::NotAPath {
                    argument: argument.to_owned()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_path_exactly_where_the_entry_says() {
        let list = Allowlist::new(["cat <path>", "cp <path> backup/"]).expect("valid");
        assert!(list.is_allowed("cat notes.txt"));
        assert!(list.is_allowed("cp notes.txt backup/"));
        for bad in [
            "cat",
            "cat a b",
            "cp notes.txt",
            "cp notes.txt elsewhere/",
            "cp a b backup/",
        ] {
            assert_eq!(list.check(bad), Err(Refusal::NoEntry), "{bad:?}");
        }
        assert_eq!(
            list.check("cat /etc/shadow"),
            Err(Refusal::NotAPath {
                argument: "/etc/shadow".to_owned()
            })
        );
    }

    #[test]
    fn the_resolver_decides_for_lexically_valid_paths_only() {
        let list = defaults();
        let asked = std::cell::RefCell::new(Vec::new());
        let inside = |p: &str| {
            asked.borrow_mut().push(p.to_owned());
            p != "escape"
        };
        assert!(list.check_with("ls src docs", &inside).is_ok());
        assert_eq!(
            list.check_with("ls src escape", &inside),
            Err(Refusal::Outside {
                argument: "escape".to_owned()
            })
        );
        assert!(list.check_with("ls /etc", &inside).is_err());
        assert!(list.check_with("git status", &inside).is_ok());
        assert_eq!(
            asked.into_inner(),
            ["src", "docs", "src", "escape"],
            "never asked about /etc, nor about literal words"
        );
    }

    #[test]
    fn a_literal_entry_wins_over_a_placeholder_that_refuses() {
        let list = Allowlist::new(["tool <path>", "tool --version"]).expect("valid");
        assert!(list.check_with("tool --version", &|_| false).is_ok());
        assert!(list.check_with("tool x", &|_| false).is_err());
    }

    #[test]
    fn refuses_lookalikes_and_shell_tricks() {
        let list = defaults();
        for bad in [
            "git statusx",
            "git status;rm -rf /",
            "git",
            "rm -rf /",
            "__STOP__",
            "lsblk",
        ] {
            assert_eq!(list.check(bad), Err(Refusal::NoEntry), "{bad:?}");
        }
        assert_eq!(list.check(""), Err(Refusal::Empty));
        assert_eq!(list.check("   "), Err(Refusal::Empty));
        assert_eq!(
            list.check("git status\nrm -rf /"),
            Err(Refusal::ControlCharacter)
        );
        assert_eq!(list.check("ls a\u{7}b"), Err(Refusal::ControlCharacter));
        assert_eq!(
            list.check(&"ls ".repeat(MAX_COMMAND_LEN)),
            Err(Refusal::TooLong)
        );
    }

    #[test]
    fn path_argument_rule() {
        for good in [
            "a",
            "src/main.rs",
            "./x",
            "a..b",
            "...",
            "x/",
            "~",
            "dir/.hidden",
        ] {
            assert!(is_path_argument(good), "{good:?}");
        }
        for bad in [
            "",
            "-",
            "-la",
            "--output=x",
            "/",
            "/etc",
            "..",
            "a/..",
            "../a",
            "a/../b",
            "a\u{1}",
        ] {
            assert!(!is_path_argument(bad), "{bad:?}");
        }
    }

    #[test]
    fn extendable_exactly() {
        let list = Allowlist::with_defaults(&["pytest -q", "pytest -q <path>..."]).expect("valid");
        assert!(list.is_allowed("pytest -q"));
        assert!(list.is_allowed("pytest -q tests/"));
        assert!(!list.is_allowed("pytest"));
        assert!(!list.is_allowed("pytest -q --pdb"));
        assert!(list.entries().contains(&"pytest -q <path>...".to_owned()));
    }

    #[test]
    fn invalid_entries_are_errors_that_name_them() {
        let entry = |text: &str| text.trim().to_owned();
        let word = |text: &str| text.to_owned();
        for (text, expected) in [
            ("", AllowlistError::Empty { entry: entry("") }),
            ("   ", AllowlistError::Empty { entry: entry("") }),
            (
                "git diff <path>... --stat",
                AllowlistError::PathsNotLast {
                    entry: entry("git diff <path>... --stat"),
                },
            ),
            (
                "ls <file>",
                AllowlistError::UnknownPlaceholder {
                    entry: entry("ls <file>"),
                    word: word("<file>"),
                },
            ),
            (
                "git diff --output=<path>",
                AllowlistError::UnknownPlaceholder {
                    entry: entry("git diff --output=<path>"),
                    word: word("--output=<path>"),
                },
            ),
            (
                "<path> --help",
                AllowlistError::PlaceholderProgram {
                    entry: entry("<path> --help"),
                    word: word("<path>"),
                },
            ),
            (
                "ls\u{1} x",
                AllowlistError::ControlCharacter {
                    entry: entry("ls\u{1} x"),
                },
            ),
        ] {
            assert_eq!(
                Allowlist::new([text]).map(|_| ()),
                Err(expected.clone()),
                "{text:?}"
            );
            assert_eq!(
                Allowlist::with_defaults(&[text]).map(|_| ()),
                Err(expected),
                "{text:?}"
            );
        }
        let message = Allowlist::new(["ls <file>"])
            .expect_err("invalid")
            .to_string();
        assert!(
            message.contains("ls <file>") && message.contains("<path>"),
            "{message}"
        );
        // Words with only one bracket are literal.
        assert!(Allowlist::new(["make test --eval=pwn:;id>pwned pwn"]).is_ok());
        assert!(Allowlist::new(["<path>..."]).is_err());
    }
}
