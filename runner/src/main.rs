//! `claw-runner`: runs an AI coding agent on the coding host and streams it
//! to the claw gateway.

mod agent;
mod assist;
mod config;
mod diagnose;
mod gateway;
mod host;
mod journal;
mod pinning;
mod run;
mod serve;
mod spool;
mod tls;
mod upload;
mod workdir;

use std::process::ExitCode;

use clap::Parser;
use claw_runner::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = config::Overrides {
        gateway_url: cli.global.gateway,
        ca_cert: cli.global.ca_cert,
        config: cli.global.config,
    };
    let overrides_path = overrides
        .config
        .clone()
        .unwrap_or_else(config::default_file);
    // Enrolment comes before there is a configuration to load.
    if let Command::Enroll { token, fingerprint } = &cli.command {
        return enroll(&overrides, token, fingerprint.clone());
    }
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
                agent: Some(agent),
                ..
            } => match claw_proto::agent::AgentKind::parse(&agent) {
                Some(kind) => agent::start(config, run_id, token, cwd, kind).await,
                None => anyhow::bail!("unknown agent {agent:?}: claw drives claude"),
            },
            Command::Start {
                run_id,
                token,
                cwd,
                agent: None,
                command,
            } => run::start(config, run_id, token, cwd, command).await,
            Command::Info => {
                print!("{}", diagnose::info(&config, &overrides_path));
                Ok(0)
            }
            Command::TestConnection => diagnose::test_connection(&config).await,
            Command::Serve => serve::serve(config, overrides.config.clone()).await,
            Command::Enroll { .. } => anyhow::bail!("enrolment needs no configuration"),
            Command::Assist { run_id } => {
                assist::request(&config.state_dir.join("runs").join(&run_id), &run_id)
            }
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
                let id = upload::upload(&gateway, &file, &name, upload::PATIENCE).await?;
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

fn enroll(overrides: &config::Overrides, token: &str, fingerprint: Option<String>) -> ExitCode {
    let Some(gateway_url) = overrides
        .gateway_url
        .clone()
        .or_else(|| std::env::var("CLAW_GATEWAY_URL").ok())
    else {
        eprintln!("claw-runner: enroll needs --gateway URL (e.g. https://gateway.example:3100)");
        return ExitCode::from(2);
    };
    let state_dir = config::state_dir(overrides);
    let request = host::Enrolment {
        gateway_url,
        token: token.to_owned(),
        ca_cert: overrides.ca_cert.clone(),
        cert_fingerprint: fingerprint,
        state_dir,
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(host::enroll(request)));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claw-runner: {e:#}");
            ExitCode::FAILURE
        }
    }
}
