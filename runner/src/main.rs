//! `claw-runner`: runs an AI coding agent on the coding host and streams it
//! to the claw gateway.

mod config;
mod gateway;
mod run;
mod spool;
mod upload;

use std::path::PathBuf;
use std::process::ExitCode;

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
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL).
    #[arg(long, global = true, value_name = "URL")]
    gateway: Option<String>,
    /// PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT).
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
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
        /// The agent and its arguments [default: CLAW_AGENT_COMMAND, or claude].
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Upload a file as an artifact of a run.
    Upload {
        #[arg(long, value_name = "ID")]
        run_id: String,
        #[arg(long, value_name = "TOKEN", env = "CLAW_RUN_TOKEN")]
        token: String,
        /// The file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = config::Overrides {
        gateway_url: cli.global.gateway,
        ca_cert: cli.global.ca_cert,
        config: cli.global.config,
    };
    let config = match config::Config::load(&overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("claw-runner: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claw-runner: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Start {
                run_id,
                token,
                cwd,
                command,
            } => run::start(config, run_id, token, cwd, command).await,
            Command::Upload {
                run_id,
                token,
                file,
            } => {
                let gateway = gateway::Gateway::new(&config, &run_id, &token)?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "artifact".to_owned());
                let id = upload::upload(&gateway, &file, &name).await?;
                println!("{id}");
                Ok(0)
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("claw-runner: {e:#}");
            ExitCode::FAILURE
        }
    }
}
