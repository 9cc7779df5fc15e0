//! Notification channels (a user's own, or global ones an administrator
//! adds) and the outbox's state. What notifies and how is in the store and
//! `crate::delivery`.

use claw_proto::notify::{
    ChannelChange, ChannelKind, ChannelView, CreatedChannel, DeliveryStatus, DeliveryView,
    NewChannel, NewPushSubscription, NotifyKind, OutboxCounts, PushKey,
};
use claw_proto::wire::Role;

use super::{Caller, Record, ServiceError, ServiceResult};
use crate::app::App;
use crate::clock::iso;
use crate::delivery::webpush::{StoredKeys, Vapid};
use crate::store::{ChannelRow, DeliveryRow, NewChannelRow};

/// Longest channel name.
const NAME_MAX_CHARS: usize = 100;
/// Longest target address or token.
const TARGET_MAX_BYTES: usize = 2000;
/// Most deliveries listed.
const LIST_MAX: u32 = 1000;

pub fn channel_view(row: ChannelRow) -> ChannelView {
    ChannelView {
        id: row.id,
        kind: row.kind,
        name: row.name,
        target: row.target,
        events: row.events,
        scope: row.scope,
        owner: row.owner,
        created_at: iso(row.created_at),
    }
}

pub fn delivery_view(row: DeliveryRow) -> DeliveryView {
    DeliveryView {
        id: row.id,
        channel_id: row.channel_id,
        channel: row.channel_name,
        kind: row.kind,
        run_id: row.run_id,
        status: row.status,
        attempts: row.attempts,
        next_attempt_at: iso(row.next_at),
        last_error: row.last_error,
        created_at: iso(row.created_at),
        done_at: row.done_at.map(iso),
    }
}

/// A new channel's kinds: those asked for, else the defaults; checked.
fn events_or_default(events: Option<Vec<NotifyKind>>) -> ServiceResult<Vec<NotifyKind>> {
    let events = events.unwrap_or_else(|| NotifyKind::DEFAULT.to_vec());
    check_events(&events)?;
    Ok(events)
}

fn check_events(events: &[NotifyKind]) -> ServiceResult<()> {
    if events.is_empty() {
        return Err(ServiceError::invalid(format!(
            "a channel needs at least one kind of notification: {}",
            NotifyKind::ALL.map(NotifyKind::as_str).join(", ")
        )));
    }
    Ok(())
}

impl App {
    /// A channel's address, refused in the gateway's own network unless
    /// `notify_allow_private_targets` allows it.
    async fn check_target(&self, url: &str) -> ServiceResult<reqwest::Url> {
        let allow_private = self.settings().config.notify_allow_private_targets;
        crate::delivery::target::check(url, allow_private)
            .await
            .map_err(ServiceError::invalid)
    }

    /// Whose a channel may be changed or removed by the caller.
    fn may_manage(caller: &Caller, channel: &ChannelRow) -> ServiceResult<()> {
        match (caller, &channel.user_id) {
            (Caller::Local(_), _) => Ok(()),
            (Caller::User(session), Some(owner)) if *owner == session.user.id => Ok(()),
            (_, None) => caller.require(Role::Admin),
            _ => Err(ServiceError::not_found(format!(
                "unknown channel {}",
                channel.id
            ))),
        }
    }

    /// The caller's channels and the global ones (everyone's on the
    /// control socket).
    pub async fn list_channels(&self, caller: &Caller) -> ServiceResult<Vec<ChannelView>> {
        caller.require(Role::Viewer)?;
        let user = match caller {
            Caller::User(session) => Some(session.user.id.clone()),
            _ => None,
        };
        let rows = self.store.channels(user).await?;
        Ok(rows.into_iter().map(channel_view).collect())
    }

    /// Adds an ntfy topic or a webhook. A webhook's signing secret is made
    /// here and shown this once.
    pub async fn add_channel(
        &self,
        caller: &Caller,
        request: NewChannel,
    ) -> ServiceResult<CreatedChannel> {
        caller.require(Role::Viewer)?;
        let user_id = match (caller, request.global) {
            (_, true) => {
                caller.require(Role::Admin)?;
                None
            }
            (Caller::User(session), false) => Some(session.user.id.clone()),
            (_, false) => {
                return Err(ServiceError::invalid(
                    "on the control socket channels are global: pass \"global\": true",
                ));
            }
        };
        let name = request.name.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > NAME_MAX_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(ServiceError::invalid(format!(
                "a channel's name is 1 to {NAME_MAX_CHARS} characters without control characters"
            )));
        }
        if request.target.len() > TARGET_MAX_BYTES
            || request
                .token
                .as_ref()
                .is_some_and(|t| t.len() > TARGET_MAX_BYTES)
        {
            return Err(ServiceError::invalid("the target or token is too long"));
        }
        let events = events_or_default(request.events)?;
        let target = self.check_target(&request.target).await?;
        let (secret, shown) = match request.kind {
            ChannelKind::Webhook => {
                if request.token.is_some() {
                    return Err(ServiceError::invalid(
                        "a webhook takes no token: it gets a signing secret",
                    ));
                }
                let secret = crate::delivery::new_webhook_secret().map_err(|e| {
                    tracing::error!(error = %e, "no random bytes for a webhook secret");
                    ServiceError::internal()
                })?;
                (Some(secret.clone()), Some(secret))
            }
            ChannelKind::Ntfy => (request.token.filter(|t| !t.is_empty()), None),
            ChannelKind::Webpush => {
                return Err(ServiceError::invalid(
                    "a browser's push subscription is added from the browser, not here",
                ));
            }
        };
        let row = self
            .store
            .add_channel(NewChannelRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id,
                kind: request.kind,
                name,
                target: target.to_string(),
                secret,
                events,
                scope: request.scope.unwrap_or_default(),
            })
            .await?;
        self.record(
            caller,
            Record {
                action: "notify.channel.add",
                target: Some(&row.id),
                run_id: None,
                details: Some(format!(
                    "{} {} ({})",
                    row.kind.as_str(),
                    row.name,
                    if row.user_id.is_none() {
                        "global"
                    } else {
                        "own"
                    }
                )),
            },
        )
        .await?;
        Ok(CreatedChannel {
            channel: channel_view(row),
            secret: shown,
        })
    }

    /// The VAPID public key browsers subscribe with.
    pub fn push_key(&self, caller: &Caller) -> ServiceResult<PushKey> {
        caller.require(Role::Viewer)?;
        let vapid = Vapid::from_secret(&self.secrets.vapid()).map_err(|e| {
            tracing::error!(error = %e, "no VAPID key");
            ServiceError::internal()
        })?;
        Ok(PushKey {
            public_key: vapid.public_key(),
        })
    }

    /// This device's push subscription, the caller's own. Subscribing the
    /// same endpoint again replaces its keys and keeps what it notifies of.
    pub async fn add_push_subscription(
        &self,
        caller: &Caller,
        request: NewPushSubscription,
    ) -> ServiceResult<ChannelView> {
        caller.require(Role::Viewer)?;
        let Caller::User(session) = caller else {
            return Err(ServiceError::invalid(
                "a push subscription belongs to a signed-in user's browser",
            ));
        };
        if request.endpoint.len() > TARGET_MAX_BYTES
            || request.keys.p256dh.len() > 200
            || request.keys.auth.len() > 200
        {
            return Err(ServiceError::invalid("the subscription is too long"));
        }
        StoredKeys::parse(&request.keys.p256dh, &request.keys.auth)
            .map_err(|e| ServiceError::invalid(e.to_string()))?;
        self.check_target(&request.endpoint).await?;
        let name = request
            .name
            .map(|n| {
                n.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty())
            .map_or_else(
                || "This browser".to_owned(),
                |n| n.chars().take(NAME_MAX_CHARS).collect(),
            );
        let events = events_or_default(request.events)?;
        let keys = serde_json::to_string(&StoredKeys {
            p256dh: request.keys.p256dh,
            auth: request.keys.auth,
        })
        .map_err(|_| ServiceError::internal())?;
        let row = self
            .store
            .save_push_subscription(NewChannelRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: Some(session.user.id.clone()),
                kind: ChannelKind::Webpush,
                name,
                target: request.endpoint,
                secret: Some(keys),
                events,
                scope: request.scope.unwrap_or_default(),
            })
            .await?;
        self.record(
            caller,
            Record {
                action: "notify.push.subscribe",
                target: Some(&row.id),
                run_id: None,
                details: Some(row.name.clone()),
            },
        )
        .await?;
        Ok(channel_view(row))
    }

    pub async fn update_channel(
        &self,
        caller: &Caller,
        id: String,
        change: ChannelChange,
    ) -> ServiceResult<ChannelView> {
        caller.require(Role::Viewer)?;
        let channel = self.store.channel(id.clone()).await?;
        Self::may_manage(caller, &channel)?;
        if let Some(events) = &change.events {
            check_events(events)?;
        }
        let row = self
            .store
            .update_channel(id, change.events, change.scope)
            .await?;
        Ok(channel_view(row))
    }

    pub async fn remove_channel(&self, caller: &Caller, id: String) -> ServiceResult<()> {
        caller.require(Role::Viewer)?;
        let channel = self.store.channel(id.clone()).await?;
        Self::may_manage(caller, &channel)?;
        let row = self.store.delete_channel(id).await?;
        self.record(
            caller,
            Record {
                action: "notify.channel.remove",
                target: Some(&row.id),
                run_id: None,
                details: Some(format!("{} {}", row.kind.as_str(), row.name)),
            },
        )
        .await
    }

    /// Reports, once each, running runs whose runner has not been heard
    /// from for `runner_lost_secs` (since clawd started, for runs it has
    /// not heard from at all).
    pub async fn report_lost_runners(&self, started: std::time::Instant) -> ServiceResult<usize> {
        let silent_for = std::time::Duration::from_secs(self.settings().config.runner_lost_secs);
        let mut silent = Vec::new();
        for status in [
            claw_proto::wire::RunStatus::Running,
            claw_proto::wire::RunStatus::Waiting,
        ] {
            let runs = self
                .store
                .list_runs(crate::store::RunFilter {
                    status: Some(status),
                    limit: 10_000,
                    ..Default::default()
                })
                .await?;
            for run in runs {
                let last = self.hub.runner_last_seen(&run.id).unwrap_or(started);
                if last.elapsed() >= silent_for {
                    silent.push(run.id);
                }
            }
        }
        if silent.is_empty() {
            return Ok(0);
        }
        Ok(self.store.report_lost_runners(silent).await?)
    }

    pub async fn outbox_counts(&self, caller: &Caller) -> ServiceResult<OutboxCounts> {
        caller.require(Role::Viewer)?;
        Ok(self.store.outbox_counts().await?)
    }

    pub async fn list_deliveries(
        &self,
        caller: &Caller,
        status: Option<DeliveryStatus>,
    ) -> ServiceResult<Vec<DeliveryView>> {
        caller.require(Role::Admin)?;
        let rows = self.store.deliveries(status, LIST_MAX).await?;
        Ok(rows.into_iter().map(delivery_view).collect())
    }

    /// A dead letter sent again.
    pub async fn retry_delivery(&self, caller: &Caller, id: String) -> ServiceResult<DeliveryView> {
        caller.require(Role::Admin)?;
        let row = self.store.retry_delivery(id).await?;
        self.record(
            caller,
            Record {
                action: "notify.retry",
                target: Some(&row.id),
                run_id: Some(&row.run_id),
                details: Some(row.channel_name.clone()),
            },
        )
        .await?;
        Ok(delivery_view(row))
    }

    pub async fn purge_dead_letters(&self, caller: &Caller) -> ServiceResult<u64> {
        caller.require(Role::Admin)?;
        let n = self.store.purge_dead().await?;
        self.record(
            caller,
            Record {
                action: "notify.purge",
                target: None,
                run_id: None,
                details: Some(format!("{n} dead letters")),
            },
        )
        .await?;
        Ok(n)
    }
}
