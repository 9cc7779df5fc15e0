//! `clawctl`: administer the claw gateway over its control socket.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use claw_ctl::cli::{
    AuditCommand, BackupArgs, BackupCommand, CertsCommand, Cli, Command, DbCommand, PasswordInput,
    RotateSecret, RunsCommand, SecretsCommand, SessionsCommand, UsersCommand,
};
use claw_ctl::client::{Client, ClientError, encode};
use claw_ctl::output::{bytes, cell, duration, table};
use hyper::Method;
use serde_json::{Value, json};

/// Failures that are not the daemon's answer.
#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Input(String),
    /// The command ran and found a problem (exit 1, message already shown).
    #[error("{0}")]
    Failed(String),
}

fn main() -> ExitCode {
    die_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clawctl: {e}");
            ExitCode::from(match &e {
                CtlError::Client(c) => c.exit_code(),
                CtlError::Input(_) | CtlError::Failed(_) => 1,
            })
        }
    }
}

/// `clawctl runs list | head` must end the way Unix filters do, silently by
/// SIGPIPE, rather than panic in `println!` (Rust ignores SIGPIPE by default).
fn die_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: runs first in main, before any other thread exists, and installs
    // the default disposition, not a handler.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        eprintln!("clawctl: cannot restore SIGPIPE: {e}");
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

async fn run(cli: Cli) -> Result<(), CtlError> {
    let client = Client::new(&cli.socket);
    let json = cli.json;
    let socket = cli.socket.clone();
    match cli.command {
        Command::Status => status(&client, json).await,
        Command::Health => health(&client, json).await,
        Command::Runs(cmd) => runs(&client, cmd, json).await,
        Command::Users(cmd) => users(&client, cmd, json).await,
        Command::Sessions(cmd) => sessions(&client, cmd, json).await,
        Command::Audit(cmd) => audit(&client, cmd, json).await,
        Command::Db(cmd) => db(&client, cmd, json).await,
        Command::Certs(cmd) => certs(&client, cmd, json).await,
        Command::Backup(args) => backup(&client, args, json).await,
        Command::Reconcile { fix } => reconcile(&client, fix, json).await,
        Command::Restore {
            file,
            data_dir,
            stop,
            config,
        } => {
            restore(
                &client,
                &socket,
                &file,
                &data_dir,
                stop,
                config.as_deref(),
                json,
            )
            .await
        }
        Command::Secrets(SecretsCommand::Rotate { which }) => rotate(&client, which, json).await,
        Command::Prune {
            dry_run,
            older_than,
        } => prune(&client, dry_run, older_than, json).await,
    }
}

async fn status(client: &Client, json: bool) -> Result<(), CtlError> {
    let s = client.get("/v1/status").await?;
    if json {
        print_json(&s);
        return Ok(());
    }
    let runs = ["pending", "running", "done", "failed", "stopped"]
        .iter()
        .map(|k| format!("{} {k}", cell(&s["runs"][k])))
        .collect::<Vec<_>>()
        .join(", ");
    let tls = if s["tls"]["enabled"] == true {
        format!(
            "{}, expires {} (in {} days)\n             fingerprint {}",
            cell(&s["tls"]["subject"]),
            cell(&s["tls"]["notAfter"]),
            cell(&s["tls"]["expiresInDays"]),
            cell(&s["tls"]["fingerprintSha256"])
        )
    } else {
        "off (plain HTTP)".to_owned()
    };
    println!(
        "clawd {}, up {}",
        cell(&s["version"]),
        duration(s["uptimeSecs"].as_u64().unwrap_or(0))
    );
    println!(
        "Listening:   {}{}",
        cell(&s["listeners"]["https"]),
        if s["listeners"]["socketActivated"] == true {
            " (socket-activated)"
        } else {
            ""
        }
    );
    println!("Control:     {}", cell(&s["listeners"]["control"]));
    println!("TLS:         {tls}");
    if s["tls"]["expiresSoon"] == true {
        println!(
            "WARNING:     the certificate expires in {} days: renew it (clawctl certs install)",
            cell(&s["tls"]["expiresInDays"])
        );
    }
    println!(
        "Database:    {} ({}, schema {})",
        cell(&s["database"]["path"]),
        bytes(s["database"]["sizeBytes"].as_u64().unwrap_or(0)),
        cell(&s["database"]["schemaVersion"])
    );
    println!("Runs:        {runs}");
    let last = |job: &Value| {
        if job.is_null() {
            "never".to_owned()
        } else {
            format!("{} ({})", cell(&job["at"]), cell(&job["summary"]))
        }
    };
    println!("Last prune:  {}", last(&s["lastPrune"]));
    println!("Last backup: {}", last(&s["lastBackup"]));
    println!(
        "Connected:   {} runners, {} browsers, {} subscriptions",
        cell(&s["connections"]["runners"]),
        cell(&s["connections"]["clients"]),
        cell(&s["connections"]["subscriptions"])
    );
    Ok(())
}

async fn health(client: &Client, json: bool) -> Result<(), CtlError> {
    let h = client.get("/v1/health").await?;
    if json {
        print_json(&h);
    } else {
        println!("clawd is healthy");
    }
    Ok(())
}

fn run_rows(runs: &Value) -> Vec<Vec<String>> {
    runs.as_array()
        .map(|list| {
            list.iter()
                .map(|r| {
                    vec![
                        cell(&r["id"]),
                        cell(&r["status"]),
                        cell(&r["createdAt"]),
                        cell(&r["exitCode"]),
                        cell(&r["eventCount"]),
                        cell(&r["command"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn runs(client: &Client, cmd: RunsCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        RunsCommand::List {
            state,
            since,
            limit,
        } => {
            let mut path = format!("/v1/runs?limit={limit}");
            if let Some(state) = state {
                path.push_str(&format!("&status={}", state.as_str()));
            }
            if let Some(since) = since {
                path.push_str(&format!("&since={}", encode(&since)));
            }
            let runs = client.get(&path).await?;
            if json {
                print_json(&runs);
            } else {
                print!(
                    "{}",
                    table(
                        &["ID", "STATE", "CREATED", "EXIT", "EVENTS", "COMMAND"],
                        &run_rows(&runs)
                    )
                );
            }
        }
        RunsCommand::Show { id } => {
            let run = client
                .get(&format!("/v1/runs/{}", encode(&id)))
                .await
                .map_err(unknown_run(&id))?;
            if json {
                print_json(&run);
                return Ok(());
            }
            for (label, key) in [
                ("Run", "id"),
                ("State", "status"),
                ("Command", "command"),
                ("Created", "createdAt"),
                ("Created by", "createdBy"),
                ("Started", "startedAt"),
                ("Finished", "finishedAt"),
                ("Exit code", "exitCode"),
                ("Events", "eventCount"),
            ] {
                println!("{:<12}{}", format!("{label}:"), cell(&run[key]));
            }
            let commands: Vec<Vec<String>> = run["commands"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|c| vec![cell(&c["id"]), cell(&c["status"]), cell(&c["command"])])
                        .collect()
                })
                .unwrap_or_default();
            println!("\nCommands:");
            print!("{}", table(&["ID", "STATUS", "COMMAND"], &commands));
            let artifacts: Vec<Vec<String>> = run["artifacts"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|a| {
                            vec![
                                cell(&a["id"]),
                                bytes(a["size"].as_u64().unwrap_or(0)),
                                cell(&a["filename"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!("\nArtifacts:");
            print!("{}", table(&["ID", "SIZE", "NAME"], &artifacts));
        }
        RunsCommand::Tail { id, follow, after } => {
            let path = format!(
                "/v1/runs/{}/events?after={after}&follow={follow}",
                encode(&id)
            );
            let mut stdout = std::io::stdout().lock();
            let mut stderr = std::io::stderr().lock();
            client
                .stream(Method::GET, &path, None, |message| {
                    if json {
                        let _ = writeln!(stdout, "{message}");
                        let _ = stdout.flush();
                        return;
                    }
                    match (message["type"].as_str(), message["eventType"].as_str()) {
                        (Some("event"), Some("stdout")) => {
                            let _ = stdout
                                .write_all(message["data"].as_str().unwrap_or_default().as_bytes());
                            let _ = stdout.flush();
                        }
                        (Some("event"), Some("stderr")) => {
                            let _ = stderr
                                .write_all(message["data"].as_str().unwrap_or_default().as_bytes());
                        }
                        (Some("event"), Some(kind)) => {
                            let _ = writeln!(
                                stderr,
                                "[{kind}] {}",
                                message["data"].as_str().unwrap_or_default()
                            );
                        }
                        (Some("run_status"), _) => {
                            let _ = writeln!(
                                stderr,
                                "[run {}{}]",
                                cell(&message["status"]),
                                message["exitCode"]
                                    .as_i64()
                                    .map(|c| format!(", exit code {c}"))
                                    .unwrap_or_default()
                            );
                        }
                        _ => {}
                    }
                })
                .await
                .map_err(unknown_run(&id))?;
        }
        RunsCommand::Create { command } => {
            let created = client
                .call(
                    Method::POST,
                    "/v1/runs",
                    Some(&json!({ "command": command })),
                )
                .await?;
            if json {
                print_json(&created);
            } else {
                println!("Run:              {}", cell(&created["id"]));
                println!("Capability token: {}", cell(&created["capabilityToken"]));
                println!("The token is shown only now. On the coding host:");
                println!(
                    "  claw-runner start --run-id {} --token {} -- {}",
                    cell(&created["id"]),
                    cell(&created["capabilityToken"]),
                    command.as_deref().unwrap_or("claude")
                );
            }
        }
        RunsCommand::Stop { id } => {
            let stopped = client
                .call(
                    Method::POST,
                    &format!("/v1/runs/{}/stop", encode(&id)),
                    None,
                )
                .await
                .map_err(unknown_run(&id))?;
            done(json, &stopped, &format!("stop requested for run {id}"));
        }
        RunsCommand::Delete { id } => {
            let deleted = client
                .call(Method::DELETE, &format!("/v1/runs/{}", encode(&id)), None)
                .await
                .map_err(unknown_run(&id))?;
            done(json, &deleted, &format!("run {id} deleted"));
        }
    }
    Ok(())
}

/// An unknown run gets a hint on how to find the right one.
fn unknown_run(id: &str) -> impl Fn(ClientError) -> CtlError + '_ {
    move |e| match e {
        ClientError::Api { status: 404, .. } => {
            CtlError::Failed(format!("unknown run {id} (see clawctl runs list)"))
        }
        other => CtlError::Client(other),
    }
}

fn done(json: bool, answer: &Value, message: &str) {
    if json {
        print_json(answer);
    } else {
        println!("{message}");
    }
}

/// The password from stdin (`--password-stdin`) or a prompt without echo.
fn read_password(input: &PasswordInput, name: &str) -> Result<String, CtlError> {
    if input.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CtlError::Input(format!("cannot read the password from stdin: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            return Err(CtlError::Input("no password on stdin".to_owned()));
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CtlError::Input(
            "no terminal to ask for the password: use --password-stdin".to_owned(),
        ));
    }
    let first = rpassword::prompt_password(format!("Password for {name}: "))
        .map_err(|e| CtlError::Input(format!("cannot read the password: {e}")))?;
    let second = rpassword::prompt_password("Repeat it: ")
        .map_err(|e| CtlError::Input(format!("cannot read the password: {e}")))?;
    if first != second {
        return Err(CtlError::Input("the passwords differ".to_owned()));
    }
    Ok(first)
}

fn unknown_user(name: &str) -> impl Fn(ClientError) -> CtlError + '_ {
    move |e| match e {
        ClientError::Api { status: 404, .. } => {
            CtlError::Failed(format!("unknown user {name} (see clawctl users list)"))
        }
        other => CtlError::Client(other),
    }
}

async fn users(client: &Client, cmd: UsersCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        UsersCommand::List => {
            let users = client.get("/v1/users").await?;
            if json {
                print_json(&users);
            } else {
                let rows: Vec<Vec<String>> = users
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .map(|u| {
                                vec![
                                    cell(&u["username"]),
                                    cell(&u["role"]),
                                    if u["totpEnabled"] == true {
                                        "yes".into()
                                    } else {
                                        "no".into()
                                    },
                                    cell(&u["createdAt"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print!("{}", table(&["USER", "ROLE", "TOTP", "CREATED"], &rows));
            }
        }
        UsersCommand::Add {
            name,
            role,
            password,
        } => {
            let password = read_password(&password, &name)?;
            let user = client
                .call(
                    Method::POST,
                    "/v1/users",
                    Some(&json!({ "username": name, "password": password, "role": role.as_str() })),
                )
                .await?;
            done(
                json,
                &user,
                &format!("user {name} created with role {}", role.as_str()),
            );
        }
        UsersCommand::Del { name } => {
            let answer = client
                .call(
                    Method::DELETE,
                    &format!("/v1/users/{}", encode(&name)),
                    None,
                )
                .await
                .map_err(unknown_user(&name))?;
            done(json, &answer, &format!("user {name} deleted"));
        }
        UsersCommand::Passwd { name, password } => {
            let password = read_password(&password, &name)?;
            let user = client
                .call(
                    Method::POST,
                    &format!("/v1/users/{}/password", encode(&name)),
                    Some(&json!({ "password": password })),
                )
                .await
                .map_err(unknown_user(&name))?;
            done(
                json,
                &user,
                &format!("password of {name} changed; their sessions ended"),
            );
        }
        UsersCommand::Role { name, role } => {
            let user = client
                .call(
                    Method::POST,
                    &format!("/v1/users/{}/role", encode(&name)),
                    Some(&json!({ "role": role.as_str() })),
                )
                .await
                .map_err(unknown_user(&name))?;
            done(json, &user, &format!("{name} is now {}", role.as_str()));
        }
        UsersCommand::ResetTotp { name } => {
            let user = client
                .call(
                    Method::POST,
                    &format!("/v1/users/{}/reset-totp", encode(&name)),
                    None,
                )
                .await
                .map_err(unknown_user(&name))?;
            done(
                json,
                &user,
                &format!("TOTP of {name} removed; they can enrol again after logging in"),
            );
        }
    }
    Ok(())
}

async fn sessions(client: &Client, cmd: SessionsCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        SessionsCommand::List => {
            let sessions = client.get("/v1/sessions").await?;
            if json {
                print_json(&sessions);
            } else {
                let rows: Vec<Vec<String>> = sessions
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .map(|s| {
                                vec![
                                    cell(&s["id"]).chars().take(16).collect(),
                                    cell(&s["username"]),
                                    cell(&s["role"]),
                                    cell(&s["ip"]),
                                    cell(&s["createdAt"]),
                                    cell(&s["expiresAt"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print!(
                    "{}",
                    table(
                        &["ID", "USER", "ROLE", "ADDRESS", "CREATED", "EXPIRES"],
                        &rows
                    )
                );
            }
        }
        SessionsCommand::Revoke(args) => {
            let path = match (&args.id, &args.user, args.all) {
                (Some(id), _, _) => format!("/v1/sessions/{}", encode(id)),
                (None, Some(user), _) => format!("/v1/sessions?user={}", encode(user)),
                _ => "/v1/sessions?all=true".to_owned(),
            };
            let answer = client.call(Method::DELETE, &path, None).await?;
            done(
                json,
                &answer,
                &format!("{} session(s) ended", cell(&answer["revoked"])),
            );
        }
    }
    Ok(())
}

async fn audit(client: &Client, cmd: AuditCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        AuditCommand::List {
            user,
            action,
            since,
            limit,
        } => {
            let mut path = format!("/v1/audit?limit={limit}");
            for (key, value) in [("user", user), ("action", action), ("since", since)] {
                if let Some(value) = value {
                    path.push_str(&format!("&{key}={}", encode(&value)));
                }
            }
            let rows = client.get(&path).await?;
            if json {
                print_json(&rows);
            } else {
                let table_rows: Vec<Vec<String>> = rows
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .map(|r| {
                                vec![
                                    cell(&r["id"]),
                                    cell(&r["timestamp"]),
                                    cell(&r["username"]),
                                    cell(&r["action"]),
                                    cell(&r["target"]),
                                    cell(&r["ip"]),
                                    cell(&r["details"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print!(
                    "{}",
                    table(
                        &[
                            "ID", "TIME", "USER", "ACTION", "TARGET", "ADDRESS", "DETAILS"
                        ],
                        &table_rows
                    )
                );
            }
        }
        AuditCommand::Verify => {
            let report = client.get("/v1/audit/verify").await?;
            if json {
                print_json(&report);
            }
            if report["ok"] == true {
                if !json {
                    println!(
                        "audit log intact: {} entries verified",
                        cell(&report["checked"])
                    );
                }
            } else {
                return Err(CtlError::Failed(format!(
                    "audit log broken at entry {}: {} ({} entries before it verified)",
                    cell(&report["brokenAt"]),
                    cell(&report["reason"]),
                    cell(&report["checked"])
                )));
            }
        }
    }
    Ok(())
}

async fn prune(
    client: &Client,
    dry_run: bool,
    older_than: Option<u32>,
    json: bool,
) -> Result<(), CtlError> {
    let request = json!({ "dryRun": dry_run, "olderThanDays": older_than });
    let show_progress = !json && std::io::stderr().is_terminal();
    let mut result = None;
    client
        .stream(
            Method::POST,
            "/v1/prune",
            Some(&request),
            |message| match message["type"].as_str() {
                Some("progress") if show_progress => {
                    eprint!(
                        "\rpruning: {}/{} runs",
                        cell(&message["runsDone"]),
                        cell(&message["runsTotal"])
                    );
                }
                Some("result" | "error") => result = Some(message),
                _ => {}
            },
        )
        .await?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let Some(result) = result else {
        return Err(CtlError::Failed(
            "clawd ended the prune without a result; run it again".to_owned(),
        ));
    };
    if result["type"] == "error" {
        return Err(CtlError::Failed(format!(
            "prune failed: {}; run it again to continue",
            cell(&result["error"])
        )));
    }
    if json {
        print_json(&result);
        return Ok(());
    }
    let c = &result["counts"];
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} runs finished more than {} days ago ({} events, {} commands, {} artifacts)",
        cell(&c["runs"]),
        cell(&result["olderThanDays"]),
        cell(&c["events"]),
        cell(&c["commands"]),
        cell(&c["artifacts"])
    );
    println!(
        "{verb} {} orphaned artifact folders, {} expired sessions, {} expired nonces",
        cell(&c["orphanFolders"]),
        cell(&c["expiredSessions"]),
        cell(&c["expiredNonces"])
    );
    println!(
        "{}: {}",
        if dry_run { "would free" } else { "freed" },
        bytes(c["bytesFreed"].as_u64().unwrap_or(0))
    );
    Ok(())
}

async fn db(client: &Client, cmd: DbCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        DbCommand::Status => {
            let s = client.get("/v1/db/status").await?;
            if json {
                print_json(&s);
                return Ok(());
            }
            let pages = s["pageCount"].as_u64().unwrap_or(0);
            let page_size = s["pageSize"].as_u64().unwrap_or(0);
            println!("Database:    {}", cell(&s["path"]));
            println!(
                "Schema:      version {} (this clawd writes {})",
                cell(&s["schemaVersion"]),
                cell(&s["latestSchemaVersion"])
            );
            println!(
                "Size:        {} (WAL {})",
                bytes(s["sizeBytes"].as_u64().unwrap_or(0)),
                bytes(s["walBytes"].as_u64().unwrap_or(0))
            );
            println!(
                "Pages:       {pages} of {} ({} free), journal {}",
                bytes(page_size),
                cell(&s["freelistCount"]),
                cell(&s["journalMode"])
            );
            println!("Migrations:");
            for m in s["migrations"].as_array().into_iter().flatten() {
                println!("  {}", cell(m));
            }
            let rows: Vec<Vec<String>> = s["tables"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| vec![cell(&t[0]), cell(&t[1])])
                .collect();
            print!("{}", table(&["TABLE", "ROWS"], &rows));
        }
        DbCommand::Check => {
            let c = client.get("/v1/db/check").await?;
            if json {
                print_json(&c);
            }
            if c["ok"] != true {
                return Err(CtlError::Failed(format!(
                    "database check failed: {} integrity problems, {} broken references; \
                     restore a backup or see clawctl db status",
                    c["integrity"].as_array().map_or(0, Vec::len),
                    c["foreignKeys"].as_array().map_or(0, Vec::len)
                )));
            }
            if !json {
                println!("database ok: integrity and foreign keys check out");
            }
        }
    }
    Ok(())
}

fn print_cert(c: &Value) {
    println!("Subject:     {}", cell(&c["subject"]));
    let names: Vec<String> = c["names"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    println!("Names:       {}", names.join(", "));
    println!("Issuer:      {}", cell(&c["issuer"]));
    println!(
        "Valid:       {} to {}",
        cell(&c["notBefore"]),
        cell(&c["notAfter"])
    );
    println!(
        "Days left:   {}{}",
        cell(&c["daysLeft"]),
        if c["expiresSoon"] == true {
            " (renew soon)"
        } else {
            ""
        }
    );
    println!("SHA-256:     {}", cell(&c["fingerprintSha256"]));
    println!(
        "Files:       {} {}",
        cell(&c["certPath"]),
        cell(&c["keyPath"])
    );
}

async fn certs(client: &Client, cmd: CertsCommand, json: bool) -> Result<(), CtlError> {
    let answer = match cmd {
        CertsCommand::Show => client.get("/v1/certs").await?,
        CertsCommand::Install { cert, key } => {
            let read = |path: &std::path::Path| {
                std::fs::read_to_string(path)
                    .map_err(|e| CtlError::Input(format!("cannot read {}: {e}", path.display())))
            };
            let request = json!({ "certPem": read(&cert)?, "keyPem": read(&key)? });
            client
                .call(Method::POST, "/v1/certs/install", Some(&request))
                .await?
        }
        CertsCommand::SelfSigned { names } => {
            client
                .call(
                    Method::POST,
                    "/v1/certs/self-signed",
                    Some(&json!({ "names": names })),
                )
                .await?
        }
    };
    if json {
        print_json(&answer);
    } else if answer["enabled"] == false {
        println!("TLS is off (tls = false in clawd.toml)");
    } else {
        print_cert(&answer);
    }
    Ok(())
}

async fn backup(client: &Client, args: BackupArgs, json: bool) -> Result<(), CtlError> {
    if let Some(BackupCommand::Verify { file }) = args.command {
        let report =
            claw_ctl::archive::verify(&file).map_err(|e| CtlError::Input(e.to_string()))?;
        if json {
            print_json(&json!(report));
        }
        if !report.ok {
            return Err(CtlError::Failed(format!(
                "{} is not a good backup: {}",
                file.display(),
                report.problems.join("; ")
            )));
        }
        if !json {
            println!(
                "{}: {} files match the manifest, database intact (schema {})",
                file.display(),
                report.files,
                report
                    .schema_version
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    // clawd resolves the path, so it must not depend on our working directory.
    let output = match args.output {
        Some(dir) if dir.is_relative() => Some(
            std::env::current_dir()
                .map_err(|e| CtlError::Input(format!("cannot resolve {}: {e}", dir.display())))?
                .join(dir),
        ),
        other => other,
    };
    let result = client
        .call(
            Method::POST,
            "/v1/backup",
            Some(&json!({ "output": output, "keep": args.keep })),
        )
        .await?;
    if json {
        print_json(&result);
    } else {
        println!(
            "backup written: {} ({}, {} files)",
            cell(&result["path"]),
            bytes(result["size"].as_u64().unwrap_or(0)),
            cell(&result["files"])
        );
        for old in result["removed"].as_array().into_iter().flatten() {
            println!("removed old backup {}", cell(old));
        }
    }
    Ok(())
}

async fn rotate(client: &Client, which: RotateSecret, json: bool) -> Result<(), CtlError> {
    let request = match which {
        RotateSecret::Hmac { grace } => json!({ "secret": "hmac", "graceSecs": grace.as_secs() }),
        RotateSecret::Auth => json!({ "secret": "auth" }),
    };
    let answer = client
        .call(Method::POST, "/v1/secrets/rotate", Some(&request))
        .await?;
    if json {
        print_json(&answer);
    } else if answer.get("hmacSecret").is_some() {
        println!("New HMAC secret (shown only now; set it as CLAW_HMAC_SECRET on every runner):");
        println!("{}", cell(&answer["hmacSecret"]));
        println!(
            "The old secret keeps working until {}.",
            cell(&answer["previousValidUntil"])
        );
    } else {
        println!(
            "New session secret; {} sessions ended, everybody logs in again.",
            cell(&answer["sessionsEnded"])
        );
    }
    Ok(())
}

async fn reconcile(client: &Client, fix: bool, json: bool) -> Result<(), CtlError> {
    let answer = client
        .call(Method::POST, "/v1/reconcile", Some(&json!({ "fix": fix })))
        .await?;
    if json {
        print_json(&answer);
        return Ok(());
    }
    let findings = answer["findings"].as_array().cloned().unwrap_or_default();
    if findings.is_empty() {
        println!("no drift found");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let action = match (f["repair"].as_str(), f["fixed"].as_bool()) {
                (None, _) => "cannot be repaired".to_owned(),
                (Some(r), Some(true)) => format!("fixed: {r}"),
                (Some(r), _) => format!("--fix would {r}"),
            };
            vec![
                cell(&f["kind"]),
                cell(&f["runId"]),
                cell(&f["detail"]),
                action,
            ]
        })
        .collect();
    print!("{}", table(&["KIND", "RUN", "DETAIL", "REPAIR"], &rows));
    Ok(())
}

/// True when systemd runs clawd here.
fn systemd_runs_clawd() -> bool {
    std::process::Command::new("systemctl")
        .args(["is-active", "--quiet", "clawd.service"])
        .status()
        .is_ok_and(|s| s.success())
}

fn systemctl(verb: &str) -> Result<(), CtlError> {
    let status = std::process::Command::new("systemctl")
        .arg(verb)
        .args(["clawd.socket", "clawd-control.socket", "clawd.service"])
        .status()
        .map_err(|e| CtlError::Failed(format!("cannot run systemctl {verb}: {e}")))?;
    if !status.success() {
        return Err(CtlError::Failed(format!(
            "systemctl {verb} clawd failed ({status})"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn restore(
    client: &Client,
    socket: &std::path::Path,
    file: &std::path::Path,
    data_dir: &std::path::Path,
    stop: bool,
    config: Option<&std::path::Path>,
    json: bool,
) -> Result<(), CtlError> {
    let report = claw_ctl::archive::verify(file).map_err(|e| CtlError::Input(e.to_string()))?;
    if !report.ok {
        return Err(CtlError::Failed(format!(
            "{} is not a good backup, nothing restored: {}",
            file.display(),
            report.problems.join("; ")
        )));
    }
    let serving = match client.get("/v1/health").await {
        Ok(_) => true,
        Err(ClientError::Unreachable { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let mut restart = false;
    if serving {
        if !stop {
            return Err(CtlError::Failed(format!(
                "clawd is serving on {}: stop it first (systemctl stop clawd.socket \
                 clawd-control.socket clawd.service) or pass --stop",
                socket.display()
            )));
        }
        if systemd_runs_clawd() {
            systemctl("stop")?;
            restart = true;
        } else {
            client.call(Method::POST, "/v1/shutdown", None).await?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while client.get("/v1/health").await.is_ok() {
                if std::time::Instant::now() > deadline {
                    return Err(CtlError::Failed(
                        "clawd did not stop within 30 s; nothing restored".to_owned(),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    let restored = claw_ctl::restore::replace(file, data_dir, config).map_err(|e| {
        CtlError::Failed(format!("restore failed, the previous state is back: {e}"))
    })?;
    if restart {
        systemctl("start")?;
    }
    if json {
        print_json(
            &json!({ "ok": true, "restored": restored, "dataDir": data_dir, "restarted": restart }),
        );
    } else {
        println!(
            "restored {} into {}",
            restored.join(", "),
            data_dir.display()
        );
        if restart {
            println!("clawd started again on the restored data");
        } else if serving {
            println!("clawd was stopped: start it again to serve the restored data");
        }
    }
    Ok(())
}
