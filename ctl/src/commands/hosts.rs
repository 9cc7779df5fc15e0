//! `clawctl hosts`: the coding hosts that run `claw-runner serve`: list,
//! add (a one-time enrolment token), revoke, remove.

use std::time::SystemTime;

use claw_proto::agent::first_line;
use claw_proto::api::Done;
use claw_proto::hosts::{AddedHost, HostAgent, HostState, HostView, NewHost};

use super::{done, show};
use crate::cli::HostsCommand;
use crate::client::{Client, ClientError, encode};
use crate::error::CtlError;
use crate::output::{Text, age, opt, table};

/// Longest agent version in the list; `--json` has all of it.
const VERSION_MAX_CHARS: usize = 24;

pub async fn run(client: &Client, cmd: HostsCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        HostsCommand::List => {
            let hosts: Vec<HostView> = client.get("/v1/hosts").await?;
            let now = SystemTime::now();
            show(json, &hosts, |hosts| render_list(hosts, now))
        }
        HostsCommand::Add { name } => {
            let request = NewHost { name: name.clone() };
            let added: AddedHost = client
                .post("/v1/hosts", &request)
                .await
                .map_err(|e| add_error(&name, e))?;
            show(json, &added, render_added)
        }
        HostsCommand::Revoke { name } => {
            let revoked: HostView = client
                .post_empty(&host_path(&name, "/revoke"))
                .await
                .map_err(|e| unknown_host(&name, e))?;
            show(json, &revoked, render_revoked)
        }
        HostsCommand::Remove { name } => {
            // What is about to go, to say so afterwards.
            let hosts: Vec<HostView> = client.get("/v1/hosts").await?;
            let before = hosts.into_iter().find(|h| h.name == name || h.id == name);
            let removed: Done = client
                .delete(&host_path(&name, ""))
                .await
                .map_err(|e| unknown_host(&name, e))?;
            done(json, &removed, &removed_text(&name, before.as_ref()))
        }
    }
}

fn host_path(name: &str, rest: &str) -> String {
    format!("/v1/hosts/{}{rest}", encode(name))
}

/// An unknown host gets a hint on how to find the right one.
fn unknown_host(name: &str, e: ClientError) -> CtlError {
    if e.is_not_found() {
        CtlError::Failed(format!("unknown host {name} (see clawctl hosts list)"))
    } else {
        CtlError::Client(e)
    }
}

/// A bad name is clawd's to judge; it says what a name may be. An enrolled
/// or revoked host gets no new token: clawd says what to do instead.
fn add_error(name: &str, e: ClientError) -> CtlError {
    match e {
        ClientError::Api {
            status: 400,
            message,
        } => CtlError::Failed(format!("cannot add host {name:?}: {message}")),
        ClientError::Api {
            status: 409,
            message,
        } => CtlError::Failed(format!("no new enrolment token: {message}")),
        e => CtlError::Client(e),
    }
}

fn agents(agents: &[HostAgent]) -> String {
    if agents.is_empty() {
        return "-".to_owned();
    }
    agents
        .iter()
        .map(|a| match &a.version {
            Some(v) => format!("{} {}", a.name, first_line(v, VERSION_MAX_CHARS)),
            None => a.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first workspace and how many more: "/srv/code +2 more".
fn workspaces(workspaces: &[String]) -> String {
    match workspaces {
        [] => "-".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} +{} more", rest.len()),
    }
}

/// Sessions running now of the host's limit, known only while it is
/// connected.
fn sessions(h: &HostView) -> String {
    match (&h.info, h.state) {
        (Some(info), HostState::Online) => {
            format!("{}/{}", info.sessions.len(), info.session_limit)
        }
        _ => "-".to_owned(),
    }
}

fn state(state: HostState) -> &'static str {
    match state {
        HostState::Pending => "pending",
        HostState::Online => "online",
        HostState::Offline => "offline",
        HostState::Revoked => "revoked",
    }
}

fn last_seen(h: &HostView, now: SystemTime) -> String {
    match &h.last_seen_at {
        Some(at) => format!("{} ago", age(at, now)),
        None => "never".to_owned(),
    }
}

fn render_list(hosts: &[HostView], now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let info = h.info.as_ref();
            vec![
                h.name.clone(),
                state(h.state).to_owned(),
                last_seen(h, now),
                opt(info.map(|i| i.version.as_str())),
                info.map_or_else(|| "-".to_owned(), |i| agents(&i.agents)),
                info.map_or_else(|| "-".to_owned(), |i| workspaces(&i.workspaces)),
                sessions(h),
            ]
        })
        .collect();
    let mut out = Text::new();
    out.push(&table(
        &[
            "NAME",
            "STATE",
            "LAST SEEN",
            "VERSION",
            "AGENTS",
            "WORKSPACES",
            "SESSIONS",
        ],
        &rows,
    ));
    if hosts.is_empty() {
        out.line("Add one with clawctl hosts add NAME.");
    }
    out.into_string()
}

fn render_added(added: &AddedHost) -> String {
    let name = &added.host.name;
    let mut out = Text::new();
    out.line(format_args!(
        "host {name} added: {} until it enrols with this token",
        state(added.host.state)
    ));
    out.line(format_args!(
        "Enrolment token (shown only now; valid until {}, once):",
        added.expires_at
    ));
    out.line(&added.enrolment_token);
    out.line("On the host, run:");
    out.line(&added.enroll_command);
    out.line(format_args!(
        "Running clawctl hosts add {name} again before it enrols gives a new token; this one then stops working."
    ));
    out.into_string()
}

fn render_revoked(h: &HostView) -> String {
    format!(
        "host {name} revoked: cut off now, its key never works again \
         (clawctl hosts remove {name} takes it off the list)\n",
        name = h.name
    )
}

/// What was removed, as it was just before.
fn removed_text(name: &str, before: Option<&HostView>) -> String {
    let Some(h) = before else {
        return format!("host {name} removed");
    };
    let what = match h.state {
        HostState::Pending => "; its enrolment token no longer works",
        HostState::Online => "; its connection closed and its key no longer works",
        HostState::Offline => "; its key no longer works",
        HostState::Revoked => "",
    };
    let enrolled = h
        .enrolled_at
        .as_deref()
        .map(|at| format!(", enrolled {at}"))
        .unwrap_or_default();
    format!(
        "host {} removed (it was {}{enrolled}){what}",
        h.name,
        state(h.state)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_proto::hosts::HostInfo;

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-11-22T10:05:00Z").expect("time")
    }

    fn host(name: &str, state: HostState) -> HostView {
        let enrolled = state != HostState::Pending;
        HostView {
            id: format!("id-{name}"),
            name: name.into(),
            state,
            created_at: "2026-11-22T09:00:00.000Z".into(),
            enrolled_at: enrolled.then(|| "2026-11-22T09:01:00.000Z".into()),
            revoked_at: (state == HostState::Revoked).then(|| "2026-11-22T10:00:00.000Z".into()),
            last_seen_at: enrolled.then(|| "2026-11-22T10:04:30.000Z".into()),
            info: enrolled.then(|| HostInfo {
                version: "0.4.0".into(),
                agents: vec![
                    HostAgent {
                        name: "claude".into(),
                        version: Some("2.0.1 (Claude Code)".into()),
                    },
                    HostAgent {
                        name: "codex".into(),
                        version: None,
                    },
                ],
                workspaces: vec!["/srv/code".into(), "/srv/web".into(), "/tmp/x".into()],
                session_limit: 4,
                sessions: vec!["r1".into()],
            }),
        }
    }

    #[test]
    fn the_list_says_what_each_host_runs() {
        let text = render_list(
            &[
                host("build-1", HostState::Online),
                host("mac", HostState::Pending),
                host("old", HostState::Offline),
            ],
            now(),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("NAME "), "{text}");
        for cell in [
            "build-1",
            "online",
            "30s ago",
            "0.4.0",
            "claude 2.0.1 (Claude Code), codex",
            "/srv/code +2 more",
            "1/4",
        ] {
            assert!(lines[1].contains(cell), "{cell}: {text}");
        }
        assert!(
            lines[2].starts_with("mac ") && lines[2].contains("pending  never"),
            "{text}"
        );
        // An offline host's sessions are not known.
        assert!(
            lines[3].trim_end().ends_with("/srv/code +2 more  -"),
            "{text}"
        );
        assert_eq!(
            render_list(&[], now()),
            "NAME  STATE  LAST SEEN  VERSION  AGENTS  WORKSPACES  SESSIONS\n(none)\n\
             Add one with clawctl hosts add NAME.\n"
        );
        assert_eq!(workspaces(&["/a".into()]), "/a");
        assert_eq!(workspaces(&[]), "-");
    }

    #[test]
    fn a_token_is_shown_once_with_the_command() {
        let added = AddedHost {
            host: host("build-1", HostState::Pending),
            enrolment_token: "tok123".into(),
            expires_at: "2026-11-22T11:00:00.000Z".into(),
            enroll_command: "claw-runner enroll --gateway https://gw --token tok123".into(),
        };
        let text = render_added(&added);
        assert!(
            text.contains("shown only now; valid until 2026-11-22T11:00:00.000Z, once"),
            "{text}"
        );
        assert!(text.contains("\ntok123\n"), "{text}");
        assert!(
            text.contains("\nclaw-runner enroll --gateway https://gw --token tok123\n"),
            "{text}"
        );
        assert!(text.contains("clawctl hosts add build-1 again"), "{text}");
    }

    #[test]
    fn refusals_say_what_to_do() {
        let e = unknown_host(
            "nope",
            ClientError::Api {
                status: 404,
                message: "unknown host nope".into(),
            },
        );
        assert_eq!(e.to_string(), "unknown host nope (see clawctl hosts list)");
        let e = add_error(
            "a b",
            ClientError::Api {
                status: 400,
                message: "a host's name is …".into(),
            },
        );
        assert_eq!(e.to_string(), "cannot add host \"a b\": a host's name is …");
        let e = add_error(
            "x",
            ClientError::Api {
                status: 409,
                message: "host x was revoked".into(),
            },
        );
        assert_eq!(e.to_string(), "no new enrolment token: host x was revoked");
        assert_eq!(
            removed_text("x", Some(&host("x", HostState::Offline))),
            "host x removed (it was offline, enrolled 2026-11-22T09:01:00.000Z); \
             its key no longer works"
        );
        assert_eq!(removed_text("x", None), "host x removed");
        assert!(render_revoked(&host("x", HostState::Revoked)).contains("never works again"));
    }
}
