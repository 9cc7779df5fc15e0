//! The command line of `claw-runner` (public so that the man page and
//! completions are generated from it).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "claw-runner",
    version,
    about = "Run an AI coding agent and stream it to the claw gateway without losing a line",
    after_help = "Configuration: ~/.config/claw/runner.toml, then CLAW_* environment variables \
                  (CLAW_GATEWAY_URL, CLAW_HMAC_SECRET or CLAW_HMAC_SECRET_FILE, CLAW_CA_CERT, \
                  CLAW_AGENT_COMMAND), then flags."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct Global {
    /// Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub gateway: Option<String>,
    /// PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the agent for a run and stream its output; exits with the agent's exit code.
    Start {
        /// The run id (from `clawctl runs create` or the web UI).
        #[arg(long, value_name = "ID")]
        run_id: String,
        /// The run's capability token (shown once when the run was created).
        #[arg(long, value_name = "TOKEN", env = "CLAW_RUN_TOKEN")]
        token: String,
        /// Working directory of the agent and of queued commands.
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Drive this agent through its structured interface (prompts,
        /// tool calls, diffs) as the run was created for: `claude`.
        #[arg(long, value_name = "AGENT", value_parser = ["claude"], conflicts_with = "command")]
        agent: Option<String>,
        /// The agent and its arguments, its output kept as it is printed
        /// [default: CLAW_AGENT_COMMAND, or claude].
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Make this host a member of the gateway: spend a one-time enrolment
    /// token (from `clawctl hosts add NAME` or the Hosts page) for the
    /// host's own key, kept 0600 in the state directory. Pass --gateway,
    /// and --ca-cert or --fingerprint for a self-signed gateway.
    Enroll {
        /// The enrolment token (valid for an hour, once).
        #[arg(long, value_name = "TOKEN", env = "CLAW_ENROLMENT_TOKEN")]
        token: String,
        /// Trust the gateway's certificate with this SHA-256 fingerprint
        /// (as `clawctl certs show` prints it).
        #[arg(long, value_name = "SHA256", conflicts_with = "ca_cert")]
        fingerprint: Option<String>,
    },
    /// Run as this enrolled host's service: stay connected to the gateway,
    /// say which agents and workspaces it offers, and start sessions it is
    /// asked for. Exits 78 when the gateway refuses the host (revoked).
    Serve,
    /// Check the gateway: TLS, clock difference, and whether it accepts our signatures.
    TestConnection,
    /// Print the effective configuration (secrets masked).
    Info,
    /// Ask the runner of a run on this host to start a tmate session and post
    /// its links to the run.
    Assist {
        /// The run id.
        #[arg(long, value_name = "ID")]
        run_id: String,
    },
    /// Upload a file as an artifact of a run, trying again for up to two
    /// minutes while the gateway cannot take it yet (its artifact store
    /// away, busy, restarting).
    Upload {
        /// The run id.
        #[arg(long, value_name = "ID")]
        run_id: String,
        /// The run's capability token.
        #[arg(long, value_name = "TOKEN", env = "CLAW_RUN_TOKEN")]
        token: String,
        /// The file.
        file: PathBuf,
    },
}
