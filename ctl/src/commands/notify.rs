//! `clawctl notify`: the notification outbox (counts, list, retry, purge)
//! and the channels (list, add a global one, remove).

use claw_proto::agent::first_line;
use claw_proto::api::Done;
use claw_proto::notify::{
    ChannelScope, ChannelView, CreatedChannel, DeliveryStatus, DeliveryView, NewChannel,
    NotifyKind, OutboxCounts, OutboxQuery, Purged,
};

use super::{done, show};
use crate::cli::NotifyCommand;
use crate::client::{Client, ClientError, encode, with_query};
use crate::error::CtlError;
use crate::output::{Text, opt, table};

/// Longest last error in the list; `--json` has all of it.
const ERROR_MAX_CHARS: usize = 80;

pub async fn run(client: &Client, cmd: NotifyCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        NotifyCommand::Status => {
            let counts: OutboxCounts = client.get("/v1/notify/status").await?;
            show(json, &counts, render_status)
        }
        NotifyCommand::List { dead, status } => {
            let status = if dead {
                Some(DeliveryStatus::Dead)
            } else {
                status
            };
            let query = OutboxQuery {
                status: status.map(|s| s.as_str().to_owned()),
            };
            let deliveries: Vec<DeliveryView> = client
                .get(&with_query("/v1/notify/outbox", &query)?)
                .await?;
            show(json, &deliveries, |d| render_list(d, status))
        }
        NotifyCommand::Retry { id } => {
            let retried: DeliveryView = client
                .post_empty(&format!("/v1/notify/outbox/{}/retry", encode(&id)))
                .await
                .map_err(|e| retry_error(&id, e))?;
            show(json, &retried, render_retried)
        }
        NotifyCommand::Purge { dead: _ } => {
            let query = OutboxQuery {
                status: Some(DeliveryStatus::Dead.as_str().to_owned()),
            };
            let purged: Purged = client
                .delete(&with_query("/v1/notify/outbox", &query)?)
                .await?;
            show(json, &purged, render_purged)
        }
        NotifyCommand::Channels => {
            let channels: Vec<ChannelView> = client.get("/v1/notify/channels").await?;
            show(json, &channels, |c| render_channels(c))
        }
        NotifyCommand::AddChannel {
            kind,
            name,
            target,
            token,
            events,
        } => {
            let request = NewChannel {
                kind,
                name,
                target,
                token,
                events: (!events.is_empty()).then_some(events),
                // A global channel hears of every run; say so in its view.
                scope: Some(ChannelScope::All),
                global: true,
            };
            let created: CreatedChannel = client.post("/v1/notify/channels", &request).await?;
            show(json, &created, render_created)
        }
        NotifyCommand::RemoveChannel { id } => {
            let removed: Done = client
                .delete(&format!("/v1/notify/channels/{}", encode(&id)))
                .await
                .map_err(|e| {
                    if e.is_not_found() {
                        CtlError::Failed(format!(
                            "unknown channel {id} (see clawctl notify channels)"
                        ))
                    } else {
                        CtlError::Client(e)
                    }
                })?;
            done(json, &removed, &format!("channel {id} removed"))
        }
    }
}

/// An unknown notification or one that is not dead gets a hint on how to
/// find the right one.
fn retry_error(id: &str, e: ClientError) -> CtlError {
    match e {
        e if e.is_not_found() => CtlError::Failed(format!(
            "unknown notification {id} (see clawctl notify list --dead)"
        )),
        ClientError::Api {
            status: 409,
            message,
        } => CtlError::Failed(format!(
            "{message}; see the dead ones with clawctl notify list --dead"
        )),
        e => CtlError::Client(e),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn render_status(c: &OutboxCounts) -> String {
    let mut out = Text::new();
    for (label, value) in [
        ("Channels", c.channels),
        ("Pending", c.pending),
        ("Delivered", c.delivered),
        ("Dead", c.dead),
    ] {
        out.line(format_args!("{:<11}{value}", format!("{label}:")));
    }
    if c.dead > 0 {
        out.line(format_args!(
            "{} given up on: see clawctl notify list --dead",
            plural(c.dead, "notification was", "notifications were")
        ));
    }
    out.into_string()
}

/// When it is next tried (pending) or when it was delivered or given up on.
fn when(d: &DeliveryView) -> String {
    match d.status {
        DeliveryStatus::Pending => format!("next {}", d.next_attempt_at),
        DeliveryStatus::Delivered | DeliveryStatus::Dead => opt(d.done_at.as_deref()),
    }
}

fn render_list(deliveries: &[DeliveryView], status: Option<DeliveryStatus>) -> String {
    let rows: Vec<Vec<String>> = deliveries
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.channel.clone(),
                d.kind.as_str().to_owned(),
                d.run_id.clone(),
                d.status.as_str().to_owned(),
                d.attempts.to_string(),
                when(d),
                opt(d
                    .last_error
                    .as_deref()
                    .map(|e| first_line(e, ERROR_MAX_CHARS))),
            ]
        })
        .collect();
    let mut out = Text::new();
    out.push(&table(
        &[
            "ID",
            "CHANNEL",
            "KIND",
            "RUN",
            "STATUS",
            "ATTEMPTS",
            "NEXT/DONE",
            "LAST ERROR",
        ],
        &rows,
    ));
    if status == Some(DeliveryStatus::Dead) && !deliveries.is_empty() {
        out.line("Send one again with clawctl notify retry ID, or delete them all with clawctl notify purge --dead.");
    }
    out.into_string()
}

fn render_retried(d: &DeliveryView) -> String {
    format!(
        "notification {} queued again for {}; clawctl notify list shows how it goes\n",
        d.id, d.channel
    )
}

fn render_purged(p: &Purged) -> String {
    format!(
        "{} purged\n",
        plural(p.purged, "dead letter", "dead letters")
    )
}

fn events(events: &[NotifyKind]) -> String {
    events
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn owner(c: &ChannelView) -> String {
    c.owner.clone().unwrap_or_else(|| "global".to_owned())
}

fn render_channels(channels: &[ChannelView]) -> String {
    let rows: Vec<Vec<String>> = channels
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.kind.as_str().to_owned(),
                c.name.clone(),
                owner(c),
                c.scope.as_str().to_owned(),
                events(&c.events),
                c.target.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "NAME", "OWNER", "SCOPE", "EVENTS", "TARGET"],
        &rows,
    )
}

fn render_created(created: &CreatedChannel) -> String {
    let c = &created.channel;
    let mut out = Text::new();
    out.line(format_args!(
        "channel {} added: {} {:?} to {} ({}), for every run, on {}",
        c.id,
        c.kind.as_str(),
        c.name,
        c.target,
        owner(c),
        events(&c.events)
    ));
    if let Some(secret) = &created.secret {
        out.line("Signing secret (shown only now; the receiver verifies each webhook with it):");
        out.line(secret);
    }
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_proto::notify::ChannelKind;

    fn delivery(status: DeliveryStatus) -> DeliveryView {
        DeliveryView {
            id: "n1".into(),
            channel_id: "c1".into(),
            channel: "relay".into(),
            kind: NotifyKind::Failed,
            run_id: "r1".into(),
            status,
            attempts: 1,
            next_attempt_at: "2026-11-22T10:00:00Z".into(),
            last_error: Some("HTTP 500 Internal Server Error".into()),
            created_at: "2026-11-22T09:59:59Z".into(),
            done_at: (status != DeliveryStatus::Pending).then(|| "2026-11-22T10:00:01Z".into()),
        }
    }

    #[test]
    fn status_hints_at_dead_letters() {
        let mut counts = OutboxCounts {
            pending: 0,
            delivered: 4,
            dead: 0,
            channels: 2,
        };
        assert_eq!(
            render_status(&counts),
            "Channels:  2\nPending:   0\nDelivered: 4\nDead:      0\n"
        );
        counts.dead = 1;
        assert!(
            render_status(&counts)
                .ends_with("1 notification was given up on: see clawctl notify list --dead\n")
        );
    }

    #[test]
    fn the_list_shows_when_and_why() {
        let dead = render_list(
            &[delivery(DeliveryStatus::Dead)],
            Some(DeliveryStatus::Dead),
        );
        let mut lines = dead.lines();
        assert!(lines.next().is_some_and(|h| h.starts_with("ID ")));
        let row = lines.next().unwrap_or_default();
        for cell in [
            "n1",
            "relay",
            "failed",
            "r1",
            "dead",
            "2026-11-22T10:00:01Z",
            "HTTP 500",
        ] {
            assert!(row.contains(cell), "{row}");
        }
        assert!(dead.contains("clawctl notify retry ID"), "{dead}");
        let pending = render_list(&[delivery(DeliveryStatus::Pending)], None);
        assert!(pending.contains("next 2026-11-22T10:00:00Z"), "{pending}");
        assert!(!pending.contains("notify retry"), "{pending}");
        assert_eq!(
            render_list(&[], Some(DeliveryStatus::Dead)),
            "ID  CHANNEL  KIND  RUN  STATUS  ATTEMPTS  NEXT/DONE  LAST ERROR\n(none)\n"
        );
    }

    #[test]
    fn retry_errors_say_what_to_do() {
        let e = retry_error(
            "n9",
            ClientError::Api {
                status: 404,
                message: "no such notification".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "unknown notification n9 (see clawctl notify list --dead)"
        );
        let e = retry_error(
            "n1",
            ClientError::Api {
                status: 409,
                message: "notification n1 is pending: only dead letters are retried".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "notification n1 is pending: only dead letters are retried; \
             see the dead ones with clawctl notify list --dead"
        );
    }

    #[test]
    fn a_webhook_secret_is_shown_once_with_a_note() {
        let created = CreatedChannel {
            channel: ChannelView {
                id: "c1".into(),
                kind: ChannelKind::Webhook,
                name: "relay".into(),
                target: "https://hooks.example/claw".into(),
                events: vec![NotifyKind::Failed, NotifyKind::Finished],
                scope: ChannelScope::All,
                owner: None,
                created_at: "t".into(),
            },
            secret: Some("whsec_abc".into()),
        };
        let text = render_created(&created);
        assert!(
            text.contains("(global)") && text.contains("failed,finished"),
            "{text}"
        );
        assert!(
            text.contains("shown only now") && text.ends_with("whsec_abc\n"),
            "{text}"
        );
        assert_eq!(
            render_purged(&Purged { purged: 1 }),
            "1 dead letter purged\n"
        );
        assert_eq!(
            render_purged(&Purged { purged: 0 }),
            "0 dead letters purged\n"
        );
    }
}
