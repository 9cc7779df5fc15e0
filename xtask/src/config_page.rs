//! `man/clawd.toml.5` from `packaging/clawd.toml`: the commented default
//! configuration is the one source of every key's default and meaning, so
//! the page cannot drift from the file the packages install.

use super::roff;

const HEAD: &str = r#".TH CLAWD.TOML 5 2026-11-22 "claw VERSION" "claw manual"
.SH NAME
clawd.toml \- configuration of the claw gateway daemon
.SH SYNOPSIS
.I /etc/claw/clawd.toml
.SH DESCRIPTION
.BR clawd (8)
reads this TOML file at start and on
.B systemctl reload clawd
(SIGHUP). Every key is optional; a missing key takes its default. An
unknown key, a wrong type or an invalid value stops clawd (or, on reload,
keeps the running configuration) with an error that names the key.
.PP
The packages install a copy with every key commented out at its default;
the package manager keeps local edits on upgrade.
.SH KEYS
"#;

const TAIL: &str = r#".SH EXAMPLE
.nf
listen = "127.0.0.1:3100"
tls_cert = "/etc/letsencrypt/live/claw.example.org/fullchain.pem"
tls_key = "/etc/letsencrypt/live/claw.example.org/privkey.pem"
allowed_commands = ["just test", "pytest \-q <path>..."]
redact_patterns = ["corp_[A-Za-z0-9]{32}"]
.fi
.SH FILES
.TP
.I /etc/claw/clawd.toml
This file.
.TP
.I /usr/share/doc/claw/clawd.toml
A pristine copy of the default file, as shipped.
.SH SEE ALSO
.BR clawd (8),
.BR clawctl (1)
"#;

const RUNNER_HEAD: &str = r#".TH RUNNER.TOML 5 2026-11-30 "claw VERSION" "claw manual"
.SH NAME
runner.toml \- configuration of claw-runner on a coding host
.SH SYNOPSIS
.I /etc/claw/runner.toml
(the claw-runner service),
.I ~/.config/claw/runner.toml
(a user's own runner)
.SH DESCRIPTION
.BR claw-runner (1)
reads this TOML file at start; the service reads the file given with
.BR \-\-config .
Every key is optional; a missing key takes its default. An unknown key or
a wrong type stops claw-runner with an error that names the file.
Environment variables (CLAW_GATEWAY_URL, CLAW_STATE_DIR, …) override the
file, and flags override both.
.PP
The packages install a copy with every key commented out at its default
but
.BR state_dir ,
which the service needs; the package manager keeps local edits on upgrade.
.SH SECURITY
An enrolled host signs with its own key, kept in
.I STATE_DIR/host.toml
(mode 0600); it needs no gateway-wide secret, and revoking it on the
gateway cuts it off for good. The host starts only a listed agent in a
listed workspace (or a directory inside one), checked on the host after
resolving the path, whatever the gateway asks. Sessions run as the
service's user with its rights in the workspaces: give that user no more
than the agents should have.
.SH KEYS
"#;

const RUNNER_TAIL: &str = r#".SH EXAMPLE
.nf
workspaces = ["/srv/code/shop", "/home/dev/src"]
session_limit = 2
state_dir = "/var/lib/claw-runner"
.fi
.SH FILES
.TP
.I /etc/claw/runner.toml
This file, for the claw-runner service.
.TP
.I STATE_DIR/host.toml
The host's identity and key, written by
.BR "claw-runner enroll" .
.TP
.I STATE_DIR/hosted/
The sessions the service started, and their logs.
.TP
.I /usr/share/doc/claw-runner/examples/runner.toml
A pristine copy of the default file, as shipped.
.SH SEE ALSO
.BR claw-runner (1),
.BR clawctl (1)
"#;

/// Keys documented together (`tls_cert` and `tls_key`): their names and
/// defaults as written, and what they do.
#[derive(Debug, PartialEq)]
pub struct Key {
    pub settings: Vec<(String, String)>,
    pub description: Vec<String>,
}

/// The keys of the commented default file: each is a block of comment
/// lines ending in `# key = default`. The file's opening block (up to the
/// first blank line) is about the file, not a key.
pub fn keys(text: &str) -> Vec<Key> {
    let mut keys = Vec::new();
    for block in text.split("\n\n").skip(1) {
        // A setting the file makes (not commented out) counts as well.
        let lines: Vec<&str> = block
            .lines()
            .filter_map(|l| l.strip_prefix('#').or_else(|| is_setting(l).then_some(l)))
            .map(str::trim)
            .collect();
        // The block ends in one or more `key = default` lines.
        let split = lines
            .iter()
            .rposition(|l| !is_setting(l))
            .map_or(0, |i| i + 1);
        let (description, settings) = lines.split_at(split);
        if settings.is_empty() {
            continue;
        }
        keys.push(Key {
            settings: settings
                .iter()
                .filter_map(|l| l.split_once(" = "))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect(),
            description: description.iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    keys
}

fn is_setting(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(key, _)| {
        // A table's keys are written dotted: `store.backend`.
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
    })
}

pub fn page(config_text: &str) -> Vec<u8> {
    page_with(config_text, HEAD, TAIL)
}

/// `man/runner.toml.5` from `packaging/runner.toml`.
pub fn runner_page(config_text: &str) -> Vec<u8> {
    page_with(config_text, RUNNER_HEAD, RUNNER_TAIL)
}

fn page_with(config_text: &str, head: &str, tail: &str) -> Vec<u8> {
    let mut out = head.replace("VERSION", env!("CARGO_PKG_VERSION"));
    for key in keys(config_text) {
        let tag = key
            .settings
            .iter()
            .map(|(name, default)| format!("\\fB{}\\fR = {}", roff(name), roff(default)))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            ".TP\n{tag}\n{}\n",
            key.description
                .iter()
                .map(|l| roff(l))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    out.push_str(tail);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_into_keys() {
        let text = "# header\n# more\n\n# Says what.\n# More.\n# a_key = 3\n\n# Other.\n# b = \"x\"\n# c = 1\n";
        assert_eq!(
            keys(text),
            vec![
                Key {
                    settings: vec![("a_key".into(), "3".into())],
                    description: vec!["Says what.".into(), "More.".into()],
                },
                Key {
                    settings: vec![("b".into(), "\"x\"".into()), ("c".into(), "1".into())],
                    description: vec!["Other.".into()],
                },
            ]
        );
    }

    #[test]
    fn the_runner_file_documents_its_keys_and_the_one_it_sets() {
        let keys = keys(include_str!("../../packaging/runner.toml"));
        let names: Vec<&str> = keys
            .iter()
            .flat_map(|k| k.settings.iter().map(|(n, _)| n.as_str()))
            .collect();
        for name in ["workspaces", "session_limit", "state_dir", "claude_program"] {
            assert!(names.contains(&name), "{name}: {names:?}");
        }
    }

    #[test]
    fn the_shipped_file_documents_every_key() {
        let text = include_str!("../../packaging/clawd.toml");
        let keys = keys(text);
        let names: Vec<&str> = keys
            .iter()
            .flat_map(|k| k.settings.iter().map(|(n, _)| n.as_str()))
            .collect();
        assert!(names.len() >= 20, "{names:?}");
        assert!(names.contains(&"tls_cert") && names.contains(&"tls_key"));
        for key in &keys {
            assert!(
                !key.description.is_empty(),
                "{:?} has no description",
                key.settings
            );
        }
    }
}
