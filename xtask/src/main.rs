//! `cargo run -p xtask -- gen`: writes `man/clawctl.1`, `man/claw-runner.1`
//! and their bash, zsh and fish completions under `completions/` from the
//! clap definitions, and `man/clawd.toml.5` from `packaging/clawd.toml`.
//! `cargo run -p xtask -- check` fails when the checked-in files differ.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod config_page;

use clap::CommandFactory;
use clap_complete::Shell;

/// The man page: clap_mangen's header, synopsis, description and global
/// options, then every command with its own arguments, then the exit
/// status, environment and files.
fn man_page(mut cmd: clap::Command, title: &str, extra: &str) -> Result<Vec<u8>, std::io::Error> {
    // Fills in defaults (actions, value names) for introspection.
    cmd.build();
    let name = cmd.get_name().to_owned();
    let man = clap_mangen::Man::new(cmd.clone())
        .title(title)
        .section("1")
        .date("2026-11-22")
        .source(format!("claw {}", env!("CARGO_PKG_VERSION")))
        .manual("claw manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut commands = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        describe(&mut commands, &name, sub);
    }
    out.extend_from_slice(commands.as_bytes());
    out.extend_from_slice(extra.as_bytes());
    Ok(wrap(&String::from_utf8_lossy(&out)).into_bytes())
}

/// How claw-runner decides which queued commands it runs, with the
/// built-in list as `claw_proto` has it.
fn runner_allowlist() -> String {
    let mut out = String::from(
        r#".SH ALLOWED COMMANDS
A queued command runs only when it matches this runner's allowlist: the
built\-in list below plus
.B allowed_commands
in runner.toml, whatever the gateway allowed. An entry means exactly what
it says: a command matches it only when it has the entry's words and no
others, so options the entry does not name never reach the program.
.B <path>
admits one path argument,
.BR <path>... ,
only as the last word, any number. A path argument is relative, has no
\fB..\fR component and does not start with \-; resolved with symbolic links
followed, it must lie inside the working directory (the run's
\-\-cwd, else the runner's own), and a path that does not exist yet must
have its deepest existing ancestor there. Any other word in angle brackets
is a configuration error: claw\-runner does not start. A refused command is
answered with the reason and never run; no command runs through a shell.
.PP
The built\-in list:
.RS
.nf
"#,
    );
    for entry in claw_proto::allowlist::DEFAULT_ALLOWED {
        out.push_str(&roff(entry));
        out.push('\n');
    }
    out.push_str(".fi\n.RE\n");
    out
}

const RUNNER_EXTRA: &str = r#".SH EXIT STATUS
.B start
exits with the agent's exit code (128 + the signal number when a signal
ended it); other commands exit 0 on success, 1 on failure, 2 on a
configuration or usage error.
.SH ENVIRONMENT
.TP
.B CLAW_GATEWAY_URL
The gateway, e.g. https://gateway.example:3100 (fallback: GATEWAY_URL).
.TP
.BR CLAW_HMAC_SECRET ", " CLAW_HMAC_SECRET_FILE
The gateway's HMAC secret, or a file holding it (fallback: HMAC_SECRET).
.TP
.B CLAW_CA_CERT
A PEM certificate to trust for a self-signed gateway.
.TP
.B CLAW_CERT_FINGERPRINT
Trust exactly the gateway certificate with this SHA\-256 fingerprint (as
.B clawctl certs show
prints it) instead of a CA.
.TP
.B CLAW_AGENT_COMMAND
The agent to run when none is given (default: claude; fallback: CLAUDE_COMMAND).
.TP
.B CLAW_CLAUDE_PROGRAM
The Claude Code CLI that
.B start \-\-agent claude
drives (default: claude on the PATH).
.TP
.B CLAW_RUN_TOKEN
The run's capability token, instead of \-\-token.
.SH FILES
.TP
.I ~/.config/claw/runner.toml
Configuration (the service's:
.IR /etc/claw/runner.toml );
every key is in
.BR runner.toml (5).
.TP
.I ~/.local/state/claw-runner/host.toml
An enrolled host's identity and key (mode 0600), from
.BR enroll .
.TP
.I ~/.local/state/claw-runner/runs/RUN/
The spool: events.jsonl (every event before it is sent), acked, claude.log.
A runner started again for the run goes on from it.
.TP
.I ~/.local/state/claw-runner/hosted/
The sessions
.B serve
started (a restarted service finds them there) and their logs.
.SH SERVICE
.B claw-runner.service
runs
.B serve
as the claw-runner user with
.IR /etc/claw/runner.toml ;
a user unit of the same name runs it as that user. Both stop only the
service on a stop or an upgrade (KillMode=process): sessions go on, and
the next service finds them. Exit status 78 (the gateway refused the host)
and 2 (not enrolled, a bad configuration) are not restarted.
.SH SEE ALSO
.BR runner.toml (5),
.BR clawctl (1),
.BR clawd (8)
"#;

const EXTRA: &str = r#".SH EXIT STATUS
.TP
.B 0
Success.
.TP
.B 1
An error: clawd refused the request, an unknown run or user, or
.B audit verify
found a broken chain.
.TP
.B 2
Usage error.
.TP
.B 3
clawd is unreachable: the socket is missing or nothing listens on it.
.TP
.B 4
Permission denied: run as root or as a member of the
.B claw\-admin
group.
.SH ENVIRONMENT
.TP
.B CLAW_CONTROL_SOCKET
The control socket, as
.BR \-\-socket .
.SH FILES
.TP
.I /run/claw/control.sock
The control socket of clawd under systemd.
.SH SEE ALSO
.BR clawd (8),
.BR clawd.toml (5),
.BR systemctl (1),
.BR journalctl (1)
"#;

/// Escapes text for roff.
fn roff(text: &str) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\e"),
            '-' => escaped.push_str("\\-"),
            c if c.is_ascii() => escaped.push(c),
            c => escaped.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    match escaped.chars().next() {
        Some('.' | '\'') => format!("\\&{escaped}"),
        _ => escaped,
    }
}

fn describe(out: &mut String, parent: &str, cmd: &clap::Command) {
    // clap's own help command and flags are described once, at the top.
    if cmd.get_name() == "help" {
        return;
    }
    let name = format!("{parent} {}", cmd.get_name());
    if cmd.has_subcommands() {
        for sub in cmd.get_subcommands() {
            describe(out, &name, sub);
        }
        return;
    }
    let mut usage = format!("\\fB{}\\fR", roff(&name));
    for arg in cmd.get_positionals() {
        let value = arg
            .get_value_names()
            .and_then(|v| v.first().map(|s| s.to_string()))
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
        if arg.is_required_set() {
            usage.push_str(&format!(" \\fI{}\\fR", roff(&value)));
        } else {
            usage.push_str(&format!(" [\\fI{}\\fR]", roff(&value)));
        }
    }
    out.push_str(&format!(".SS \"{}\"\n{usage}\n.PP\n", roff(&name)));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        out.push_str(&roff(&about.to_string()));
        out.push('\n');
    }
    for arg in cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set() && a.get_id() != "help")
    {
        let mut head = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR, \\fB\\-\\-{}\\fR", roff(l)),
            (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", roff(l)),
            (Some(s), None) => format!("\\fB\\-{s}\\fR"),
            (None, None) => format!("\\fI{}\\fR", roff(&arg.get_id().to_string().to_uppercase())),
        };
        let takes_value =
            arg.get_num_args().is_some_and(|n| n.takes_values()) && arg.get_long().is_some();
        if takes_value {
            let value = arg
                .get_value_names()
                .and_then(|v| v.first().map(|s| s.to_string()))
                .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
            head.push_str(&format!(" \\fI{}\\fR", roff(&value)));
        }
        let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        if !help.is_empty() && !help.ends_with('.') {
            help.push('.');
        }
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        if !values.is_empty() && takes_value {
            help.push_str(&format!(" One of: {}.", values.join(", ")));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() {
            help.push_str(&format!(" Default: {}.", defaults.join(", ")));
        }
        out.push_str(&format!(".TP\n{head}\n{}\n", roff(help.trim())));
    }
}

/// Breaks filled text lines longer than 80 bytes at spaces (roff joins
/// them again); request lines stay as they are.
fn wrap(page: &str) -> String {
    let mut out = String::new();
    for line in page.lines() {
        if line.starts_with('.') || line.len() <= 80 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.len() + 1 + word.len() > 80 {
                out.push_str(&current);
                out.push('\n');
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    out
}

fn generated(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    match std::fs::read_to_string(root.join("packaging/clawd.toml")) {
        Ok(text) => files.push((
            PathBuf::from("man/clawd.toml.5"),
            wrap(&String::from_utf8_lossy(&config_page::page(&text))).into_bytes(),
        )),
        Err(e) => eprintln!("xtask: cannot read packaging/clawd.toml: {e}"),
    }
    match std::fs::read_to_string(root.join("packaging/runner.toml")) {
        Ok(text) => files.push((
            PathBuf::from("man/runner.toml.5"),
            wrap(&String::from_utf8_lossy(&config_page::runner_page(&text))).into_bytes(),
        )),
        Err(e) => eprintln!("xtask: cannot read packaging/runner.toml: {e}"),
    }
    let runner_extra = runner_allowlist() + RUNNER_EXTRA;
    let programs = [
        (claw_ctl::cli::Cli::command(), "CLAWCTL", EXTRA),
        (
            claw_runner::cli::Cli::command(),
            "CLAW-RUNNER",
            runner_extra.as_str(),
        ),
    ];
    for (cmd, title, extra) in programs {
        let name = cmd.get_name().to_owned();
        match man_page(cmd.clone(), title, extra) {
            Ok(page) => files.push((PathBuf::from(format!("man/{name}.1")), page)),
            Err(e) => eprintln!("xtask: cannot render the man page of {name}: {e}"),
        }
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut out);
            files.push((PathBuf::from("completions").join(file), out));
        }
    }
    files
}

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut stale = Vec::new();
    for (relative, content) in generated(&root) {
        let path = root.join(&relative);
        match mode.as_str() {
            "gen" => {
                if let Some(dir) = path.parent()
                    && let Err(e) = std::fs::create_dir_all(dir)
                {
                    eprintln!("xtask: cannot create {}: {e}", dir.display());
                    return ExitCode::FAILURE;
                }
                if let Err(e) = std::fs::write(&path, &content) {
                    eprintln!("xtask: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", relative.display());
            }
            "check" => {
                if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
                    stale.push(relative);
                }
            }
            _ => {
                eprintln!("usage: cargo run -p xtask -- gen|check");
                return ExitCode::from(2);
            }
        }
    }
    if !stale.is_empty() {
        for path in &stale {
            eprintln!("xtask: {} is out of date", path.display());
        }
        eprintln!("run `cargo run -p xtask -- gen` and commit the result");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
