//! The command line of `clawctl`.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use claw_proto::agent::ApprovalStatus;
use claw_proto::notify::{ChannelKind, DeliveryStatus, NotifyKind};
use claw_proto::wire::{Role, RunStatus};

/// Where clawd listens for control requests under systemd.
pub const DEFAULT_SOCKET: &str = "/run/claw/control.sock";

#[derive(Debug, Parser)]
#[command(
    name = "clawctl",
    version,
    about = "Administer the claw gateway (clawd) over its control socket",
    long_about = "clawctl talks to clawd over its Unix control socket. Root and members of the \
                  claw-admin group may use it.\n\n\
                  Exit status: 0 success, 1 error, 2 usage error, 3 clawd unreachable, \
                  4 permission denied.",
    after_help = "See clawctl(1), clawd(8)."
)]
pub struct Cli {
    /// Control socket of clawd.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "CLAW_CONTROL_SOCKET",
        default_value = DEFAULT_SOCKET
    )]
    pub socket: PathBuf,

    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Version, uptime, listeners, certificate, database and run counts.
    Status,
    /// Exit 0 only when clawd and its database answer (for monitoring).
    Health,
    /// List, inspect, follow, create, stop and delete runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// The agents' requests waiting for a person: list, show, allow, deny.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Manage local user accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// List and end login sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Take an online backup archive (or check one with `backup verify FILE`).
    Backup(BackupArgs),
    /// Put a backup back: database, artifacts, certificates, secrets.
    Restore {
        /// The archive (claw-backup-*.tar.gz); it is verified first.
        file: PathBuf,
        /// clawd's data directory.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/claw")]
        data_dir: PathBuf,
        /// Stop clawd if it is serving (and start it again afterwards when
        /// systemd runs it).
        #[arg(long)]
        stop: bool,
        /// Also write the archive's configuration here (the old file is kept as .bak).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// PostgreSQL archives: the database to restore into, which must be
        /// the one clawd is configured for [default: the database_url of
        /// --config, else of the archive's configuration].
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// Notifications: the outbox (pending, delivered, dead letters) and the
    /// global channels (ntfy topics, webhooks).
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Coding hosts that run claw-runner serve: list them, add one (its
    /// one-time enrolment token), revoke or remove one.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// Rotate the runners' HMAC secret, the session secret or the Web Push key.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Show, install or generate the HTTPS certificate.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Find drift between the store and reality; --fix repairs what is safe.
    Reconcile {
        /// Repair what can be repaired safely (statuses, artifact rows and files).
        #[arg(long)]
        fix: bool,
    },
    /// Database schema, size and checks.
    #[command(subcommand)]
    Db(DbCommand),
    /// Remove finished runs past the retention with their events, commands and
    /// artifacts, artifact folders of no run, expired sessions and nonces.
    Prune {
        /// Report what would go, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Remove runs that finished more than DAYS days ago
        /// [default: run_retention_days from clawd.toml, 30].
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u32>,
    },
}

/// Every role, weakest first, as `--role` offers them.
const ROLES: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

/// Fails to compile when `claw_proto` gains a role that [`ROLES`] lacks.
const _: fn(Role) = |role| match role {
    Role::Viewer | Role::Operator | Role::Admin => {}
};

/// `--role` and `users role`: the proto's role names, listed in `--help`
/// and in the completions.
fn role_parser() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(ROLES.map(Role::as_str))
        .try_map(|name| Role::parse(&name).ok_or("not a role"))
}

/// `--state`: the proto's run states.
fn run_status_parser() -> impl TypedValueParser<Value = RunStatus> {
    PossibleValuesParser::new(RunStatus::ALL.map(RunStatus::as_str))
        .try_map(|name| RunStatus::parse(&name).ok_or("not a run state"))
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs in this state.
        #[arg(long, value_parser = run_status_parser())]
        state: Option<RunStatus>,
        /// Only runs created at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one run with its commands and artifacts.
    Show {
        /// Run id.
        id: String,
    },
    /// Print a run's output; stdout and stderr go to the same streams here.
    Tail {
        /// Run id.
        id: String,
        /// Keep following new output until the run ends (or Ctrl-C).
        #[arg(short, long)]
        follow: bool,
        /// Start after this event sequence number.
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        after: u64,
    },
    /// Follow an agent run as a conversation: prompts, messages, one line
    /// per tool call, turn totals (--json prints the events).
    Follow {
        /// Run id.
        id: String,
        /// Start after this event sequence number.
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        after: u64,
    },
    /// Create a run and print its id, its capability token (shown only once)
    /// and the claw-runner line that starts it.
    Create {
        /// The agent command the run is for (informational).
        #[arg(long, value_name = "CMD", conflicts_with = "agent")]
        command: Option<String>,
        /// Drive this agent through its structured interface.
        #[arg(long, value_name = "AGENT", value_parser = ["claude"])]
        agent: Option<String>,
        /// The agent's first instruction (- reads standard input).
        #[arg(long, value_name = "TEXT", requires = "agent")]
        prompt: Option<String>,
        /// The model the agent uses.
        #[arg(long, value_name = "MODEL", requires = "agent")]
        model: Option<String>,
        /// How the agent asks before it acts.
        #[arg(long, value_name = "MODE", requires = "agent",
              value_parser = ["default", "acceptEdits", "plan", "bypassPermissions"])]
        permission_mode: Option<String>,
        /// A tool rule the agent may use without asking, e.g. 'Bash(npm test:*)'
        /// (repeat for more).
        #[arg(long = "allowed-tool", value_name = "RULE", requires = "agent")]
        allowed_tools: Vec<String>,
    },
    /// Start an agent session on an enrolled coding host (see clawctl
    /// hosts list) in one of its workspaces, and print the run's id. The
    /// host checks the workspace and its session limit itself.
    Start {
        /// The host, by name or id.
        #[arg(long, value_name = "HOST")]
        host: String,
        /// One of the host's workspaces, or a directory inside one.
        #[arg(long, value_name = "DIR")]
        workspace: String,
        /// The agent to run.
        #[arg(long, value_name = "AGENT", default_value = "claude", value_parser = ["claude"])]
        agent: String,
        /// The model the agent uses.
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
        /// How the agent asks before it acts.
        #[arg(long, value_name = "MODE",
              value_parser = ["default", "acceptEdits", "plan", "bypassPermissions"])]
        permission_mode: Option<String>,
        /// A tool rule the agent may use without asking (repeat for more).
        #[arg(long = "allowed-tool", value_name = "RULE")]
        allowed_tools: Vec<String>,
        /// The first instruction; - or nothing reads it from standard input.
        prompt: Option<String>,
    },
    /// Send the next instruction to a run's agent (a finished session on a
    /// host is resumed there).
    Prompt {
        /// Run id.
        id: String,
        /// The instruction; - or nothing reads it from standard input.
        text: Option<String>,
    },
    /// End the current turn of a run's agent.
    Interrupt {
        /// Run id.
        id: String,
    },
    /// Ask the run's runner to stop the agent (SIGINT, then SIGKILL after 10 s).
    Stop {
        /// Run id.
        id: String,
    },
    /// Delete a run with its events, commands and artifacts.
    Delete {
        /// Run id.
        id: String,
    },
}

/// Which approvals `approvals list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalFilter {
    Only(ApprovalStatus),
    All,
}

impl ApprovalFilter {
    /// The `status` query parameter: the status's name, or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Only(status) => status.as_str(),
            Self::All => "all",
        }
    }
}

/// `--status`: the proto's approval statuses and `all`.
fn approval_filter_parser() -> impl TypedValueParser<Value = ApprovalFilter> {
    let names = ApprovalStatus::ALL
        .map(ApprovalStatus::as_str)
        .into_iter()
        .chain(["all"]);
    PossibleValuesParser::new(names).try_map(|name| match name.as_str() {
        "all" => Ok(ApprovalFilter::All),
        other => ApprovalStatus::parse(other)
            .map(ApprovalFilter::Only)
            .ok_or("not an approval status"),
    })
}

/// `--answer`: QUESTION=ANSWER, split where the question ends (see
/// `approvals allow`); here only checked to have an `=`.
fn answer_parser(text: &str) -> Result<String, String> {
    if text.contains('=') {
        Ok(text.to_owned())
    } else {
        Err("expected QUESTION=ANSWER, e.g. \"Which colour?=Blue\"".to_owned())
    }
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals: those waiting for a decision, the longest-waiting
    /// first, or (with --status) past ones, the newest first.
    List {
        /// Only approvals in this state.
        #[arg(long, value_parser = approval_filter_parser(), default_value = "pending")]
        status: ApprovalFilter,
        /// Only this run's approvals.
        #[arg(long = "run", value_name = "RUN_ID")]
        run: Option<String>,
    },
    /// Show one approval: the request with its input, the diff of an edit,
    /// the questions with their options, the plan; the decision.
    Show {
        /// Approval id (as `approvals list` shows it).
        id: String,
    },
    /// Let the agent go ahead (or answer its questions).
    Allow {
        /// Approval id.
        id: String,
        /// Allow this tool for the rest of the run, not just this once.
        #[arg(long)]
        session: bool,
        /// A note for the agent with the decision.
        #[arg(long, value_name = "M")]
        message: Option<String>,
        /// An answer to one of the agent's questions, as QUESTION=ANSWER
        /// (the question's text or its header; repeat for each question).
        #[arg(long = "answer", value_name = "QUESTION=ANSWER", value_parser = answer_parser)]
        answers: Vec<String>,
    },
    /// Refuse the request; the agent is told (with the message, if any).
    Deny {
        /// Approval id.
        id: String,
        /// Why, for the agent.
        #[arg(long, value_name = "M")]
        message: Option<String>,
    },
}

/// Every state of an outbox entry, as `notify list --status` offers them.
const DELIVERY_STATUSES: [DeliveryStatus; 3] = [
    DeliveryStatus::Pending,
    DeliveryStatus::Delivered,
    DeliveryStatus::Dead,
];

/// Fails to compile when `claw_proto` gains a delivery status that
/// [`DELIVERY_STATUSES`] lacks.
const _: fn(DeliveryStatus) = |status| match status {
    DeliveryStatus::Pending | DeliveryStatus::Delivered | DeliveryStatus::Dead => {}
};

/// `--status`: the proto's delivery statuses.
fn delivery_status_parser() -> impl TypedValueParser<Value = DeliveryStatus> {
    PossibleValuesParser::new(DELIVERY_STATUSES.map(DeliveryStatus::as_str))
        .try_map(|name| DeliveryStatus::parse(&name).ok_or("not a delivery status"))
}

/// The kinds of channel an administrator adds here (a browser's Web Push
/// subscription is made by the browser).
const ADDABLE_CHANNELS: [ChannelKind; 2] = [ChannelKind::Ntfy, ChannelKind::Webhook];

/// `--kind`: ntfy or webhook.
fn channel_kind_parser() -> impl TypedValueParser<Value = ChannelKind> {
    PossibleValuesParser::new(ADDABLE_CHANNELS.map(ChannelKind::as_str))
        .try_map(|name| ChannelKind::parse(&name).ok_or("not a channel kind"))
}

/// `--events`: the proto's kinds of notification.
fn notify_kind_parser() -> impl TypedValueParser<Value = NotifyKind> {
    PossibleValuesParser::new(NotifyKind::ALL.map(NotifyKind::as_str))
        .try_map(|name| NotifyKind::parse(&name).ok_or("not a kind of notification"))
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// How many notifications are pending, delivered and dead, and how many
    /// channels there are.
    Status,
    /// List the outbox, newest first: each notification for each channel,
    /// its attempts and its last error.
    List {
        /// Only dead letters (given up on), as `--status dead`.
        #[arg(long, conflicts_with = "status")]
        dead: bool,
        /// Only notifications in this state [default: all].
        #[arg(long, value_parser = delivery_status_parser())]
        status: Option<DeliveryStatus>,
    },
    /// Send a dead letter again (when its receiver is back).
    Retry {
        /// Notification id (as `notify list --dead` shows it).
        id: String,
    },
    /// Delete every dead letter.
    Purge {
        /// Required: only dead letters are purged, never pending or
        /// delivered notifications.
        #[arg(long, required = true)]
        dead: bool,
    },
    /// List every channel: the global ones and each user's (ntfy, webhooks,
    /// browsers).
    Channels,
    /// Add a global channel: it hears of every run, whoever made it.
    /// A webhook's signing secret is printed this once.
    AddChannel {
        /// ntfy posts to a topic URL; webhook posts signed JSON (Standard Webhooks).
        #[arg(long, value_parser = channel_kind_parser())]
        kind: ChannelKind,
        /// What the channel is called in lists.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The ntfy topic URL (https://ntfy.sh/TOPIC) or the webhook URL.
        #[arg(long, value_name = "URL")]
        target: String,
        /// An ntfy access token (ntfy only).
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// The kinds of notification to send, comma-separated
        /// [default: approval,question,failed].
        #[arg(long, value_name = "KINDS", value_delimiter = ',', value_parser = notify_kind_parser())]
        events: Vec<NotifyKind>,
    },
    /// Remove a channel (a global one or a user's).
    RemoveChannel {
        /// Channel id (as `notify channels` shows it).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// List the hosts: state, when last seen, and what each said when it
    /// last connected (claw-runner version, agents, workspaces, sessions
    /// running now of its limit).
    List,
    /// Add a host and print its enrolment token with the claw-runner enroll
    /// command to run on it. The token is shown only now and works once,
    /// for a limited time; running this again for a host not enrolled yet
    /// gives a fresh token (the old one stops working).
    Add {
        /// Host name: 1 to 64 letters, digits, '.', '_' or '-', starting with
        /// a letter or digit.
        name: String,
    },
    /// Cut a host off at once and for good: its connection closes and its
    /// key never works again (it stays listed, revoked, until removed).
    Revoke {
        /// Host name (as `hosts list` shows it).
        name: String,
    },
    /// Remove a host from the list without asking; an enrolled one's key
    /// stops working, a pending one's token too.
    Remove {
        /// Host name (as `hosts list` shows it).
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct PasswordInput {
    /// Read the password from standard input (first line) instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List accounts (never passwords or TOTP secrets).
    List,
    /// Create an account; the password is asked for (without echo).
    Add {
        /// User name: 3 to 50 letters, digits, '_' or '-'.
        name: String,
        /// What the account may do: viewer reads, operator runs, admin manages users.
        #[arg(long, value_parser = role_parser(), default_value = "viewer")]
        role: Role,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Delete an account and end its sessions.
    Del { name: String },
    /// Set a new password and end the user's sessions.
    Passwd {
        /// User name.
        name: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Change an account's role.
    Role {
        name: String,
        #[arg(value_parser = role_parser())]
        role: Role,
    },
    /// Remove the user's TOTP enrolment (after a lost authenticator).
    ResetTotp { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List live login sessions.
    List,
    /// End one session, all of a user's, or all.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RevokeArgs {
    /// Session id (or at least its first 8 characters) from `sessions list`.
    pub id: Option<String>,
    /// End every session of this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// End every session.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, newest first.
    List {
        /// Only entries by this user (or "root" for control-socket actions).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only this action or the actions under it (e.g. "login" or "run.create").
        #[arg(long)]
        action: Option<String>,
        /// Only entries at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Check the hash chain; exit 1 and name the first broken entry if any.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Schema version, applied migrations, size, WAL size, page counts, rows per table.
    Status,
    /// Run SQLite's integrity and foreign-key checks; exit 1 on any problem.
    Check,
    /// Copy this SQLite installation into an empty PostgreSQL database, check
    /// the copy there and print the configuration to switch to.
    ///
    /// clawd copies a snapshot of its database (runs, events, commands,
    /// artifacts' records, hosts, users, sessions, the audit log with its chain,
    /// approvals, notification channels and outbox, idempotency keys, nonces),
    /// counts each table on both sides and verifies the audit chain in
    /// PostgreSQL. A database whose tables hold rows is refused. What the
    /// gateway writes after the snapshot is not copied: copy while it is quiet,
    /// then stop it and switch.
    CopyTo {
        /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE; without a password,
        /// clawd's credential claw_database-password gives it.
        #[arg(
            value_name = "DATABASE_URL",
            env = "CLAW_DATABASE_URL",
            hide_env_values = true
        )]
        database_url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Subject, names, issuer, validity, SHA-256 fingerprint and days left.
    Show,
    /// Install a certificate chain and its key; new connections use it at once.
    Install {
        /// PEM certificate chain, server certificate first (e.g. certbot's fullchain.pem).
        #[arg(long, value_name = "FULLCHAIN")]
        cert: PathBuf,
        /// PEM private key of that certificate (e.g. certbot's privkey.pem).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Generate and install a self-signed certificate valid for 365 days.
    SelfSigned {
        /// Host names (repeatable) [default: localhost and this host's name].
        #[arg(long = "name", value_name = "HOST")]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// Directory for the archive (clawd writes it) [default: /var/backups/claw].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Keep this many newest archives in the directory, remove older ones.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub keep: usize,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Check an archive: every file against the manifest, and the database's integrity.
    Verify {
        /// The archive (claw-backup-*.tar.gz).
        file: PathBuf,
        /// PostgreSQL archives: also restore the dump into a new database on
        /// this server (a role that may create databases; the password in
        /// the URL or PGPASSWORD), compare its rows with the manifest, check
        /// the audit chain, and drop it.
        #[arg(long, value_name = "URL")]
        scratch_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Generate a new secret; `hmac` prints it once for the runners.
    Rotate {
        #[command(subcommand)]
        which: RotateSecret,
    },
}

#[derive(Debug, Subcommand)]
pub enum RotateSecret {
    /// The runners' HMAC secret; the old one keeps working for the grace period.
    Hmac {
        /// How long the old secret stays valid (e.g. 1h, 30min, 90s).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        grace: std::time::Duration,
    },
    /// The session secret: every login session ends.
    Auth,
    /// The Web Push (VAPID) key: every browser's push subscription ends;
    /// users enable notifications again in Account on each device.
    Vapid,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 1h, 30min, 90s)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn roles_and_states_are_the_protos() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["clawctl", "users", "add", "ann"]).expect("parse");
        assert!(matches!(
            cli.command,
            Command::Users(UsersCommand::Add {
                role: Role::Viewer,
                ..
            })
        ));
        for role in ROLES {
            let cli = Cli::try_parse_from(["clawctl", "users", "role", "ann", role.as_str()])
                .expect("parse");
            assert!(
                matches!(cli.command, Command::Users(UsersCommand::Role { role: r, .. }) if r == role)
            );
        }
        assert!(Cli::try_parse_from(["clawctl", "users", "role", "ann", "root"]).is_err());
        assert!(Cli::try_parse_from(["clawctl", "users", "role", "ann", "Admin"]).is_err());
        let cli =
            Cli::try_parse_from(["clawctl", "runs", "list", "--state", "stopped"]).expect("parse");
        assert!(matches!(
            cli.command,
            Command::Runs(RunsCommand::List {
                state: Some(RunStatus::Stopped),
                ..
            })
        ));
        let cli =
            Cli::try_parse_from(["clawctl", "runs", "list", "--state", "waiting"]).expect("parse");
        assert!(matches!(
            cli.command,
            Command::Runs(RunsCommand::List {
                state: Some(RunStatus::Waiting),
                ..
            })
        ));
    }

    #[test]
    fn approval_arguments() {
        let cli = Cli::try_parse_from(["clawctl", "approvals", "list"]).expect("parse");
        assert!(matches!(
            cli.command,
            Command::Approvals(ApprovalsCommand::List {
                status: ApprovalFilter::Only(ApprovalStatus::Pending),
                run: None,
            })
        ));
        for status in ApprovalStatus::ALL {
            let cli = Cli::try_parse_from([
                "clawctl",
                "approvals",
                "list",
                "--status",
                status.as_str(),
                "--run",
                "r1",
            ])
            .expect("parse");
            assert!(matches!(
                cli.command,
                Command::Approvals(ApprovalsCommand::List {
                    status: ApprovalFilter::Only(s),
                    run: Some(_),
                }) if s == status
            ));
        }
        let cli = Cli::try_parse_from(["clawctl", "approvals", "list", "--status", "all"])
            .expect("parse");
        assert!(matches!(
            cli.command,
            Command::Approvals(ApprovalsCommand::List {
                status: ApprovalFilter::All,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["clawctl", "approvals", "list", "--status", "open"]).is_err());
        let cli = Cli::try_parse_from([
            "clawctl",
            "approvals",
            "allow",
            "a1",
            "--session",
            "--answer",
            "Which colour?=Blue",
            "--answer",
            "Size=L",
        ])
        .expect("parse");
        let Command::Approvals(ApprovalsCommand::Allow {
            session, answers, ..
        }) = cli.command
        else {
            panic!("not allow: {cli:?}");
        };
        assert!(session);
        assert_eq!(answers, ["Which colour?=Blue", "Size=L"]);
        let e = Cli::try_parse_from(["clawctl", "approvals", "allow", "a1", "--answer", "Blue"])
            .expect_err("no =");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("QUESTION=ANSWER"), "{e}");
    }

    #[test]
    fn the_help_lists_the_values() {
        let mut cmd = Cli::command();
        let users = cmd.find_subcommand_mut("users").expect("users");
        let add = users.find_subcommand_mut("add").expect("add");
        let help = add.render_long_help().to_string();
        assert!(
            help.contains("viewer") && help.contains("operator") && help.contains("admin"),
            "{help}"
        );
    }

    #[test]
    fn hosts_take_a_name() {
        let cli = Cli::try_parse_from(["clawctl", "hosts", "add", "build-1"]).expect("parse");
        assert!(
            matches!(cli.command, Command::Hosts(HostsCommand::Add { name }) if name == "build-1")
        );
        assert!(Cli::try_parse_from(["clawctl", "hosts", "remove"]).is_err());
        let mut cmd = Cli::command();
        let hosts = cmd.find_subcommand_mut("hosts").expect("hosts");
        let add = hosts.find_subcommand_mut("add").expect("add");
        let help = add.render_long_help().to_string();
        assert!(
            help.contains("shown only now") && help.contains("gives a fresh token"),
            "{help}"
        );
    }
}
