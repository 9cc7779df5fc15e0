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
        let lines: Vec<&str> = block
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
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
        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

pub fn page(config_text: &str) -> Vec<u8> {
    let mut out = HEAD.replace("VERSION", env!("CARGO_PKG_VERSION"));
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
    out.push_str(TAIL);
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
