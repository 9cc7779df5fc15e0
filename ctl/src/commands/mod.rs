//! One module per command group: each asks clawd through the typed
//! [`Client`] and turns the typed answer into text for people or, with
//! `--json`, into the answer serialised.

mod approvals;
mod audit;
mod backup;
mod certs;
mod conversation;
mod db;
mod hosts;
mod notify;
mod prune;
mod reconcile;
mod restore;
mod runs;
mod secrets;
mod sessions;
mod status;
mod users;

use serde::Serialize;

use crate::cli::{Cli, Command, SecretsCommand};
use crate::client::Client;
use crate::error::CtlError;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<(), CtlError> {
    let client = Client::new(&cli.socket);
    let json = cli.json;
    match cli.command {
        Command::Status => status::status(&client, json).await,
        Command::Health => status::health(&client, json).await,
        Command::Runs(cmd) => runs::run(&client, cmd, json).await,
        Command::Approvals(cmd) => approvals::run(&client, cmd, json).await,
        Command::Users(cmd) => users::run(&client, cmd, json).await,
        Command::Sessions(cmd) => sessions::run(&client, cmd, json).await,
        Command::Audit(cmd) => audit::run(&client, cmd, json).await,
        Command::Db(cmd) => db::run(&client, cmd, json).await,
        Command::Certs(cmd) => certs::run(&client, cmd, json).await,
        Command::Backup(args) => backup::run(&client, args, json).await,
        Command::Reconcile { fix } => reconcile::run(&client, fix, json).await,
        Command::Restore {
            file,
            data_dir,
            stop,
            config,
            database_url,
        } => {
            let request = restore::Request {
                socket: &cli.socket,
                file: &file,
                data_dir: &data_dir,
                stop,
                config: config.as_deref(),
                database_url: database_url.as_deref(),
            };
            restore::run(&client, request, json).await
        }
        Command::Notify(cmd) => notify::run(&client, cmd, json).await,
        Command::Hosts(cmd) => hosts::run(&client, cmd, json).await,
        Command::Secrets(SecretsCommand::Rotate { which }) => {
            secrets::rotate(&client, which, json).await
        }
        Command::Prune {
            dry_run,
            older_than,
        } => prune::run(&client, dry_run, older_than, json).await,
    }
}

/// A value as indented JSON on stdout.
fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CtlError::Failed(format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// The answer as JSON, or the text people read.
fn show<T: Serialize + ?Sized>(
    json: bool,
    answer: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), CtlError> {
    if json {
        print_json(answer)
    } else {
        print!("{}", text(answer));
        Ok(())
    }
}

/// An action's answer as JSON, or a sentence saying it was done.
fn done<T: Serialize + ?Sized>(json: bool, answer: &T, message: &str) -> Result<(), CtlError> {
    show(json, answer, |_| format!("{message}\n"))
}
