//! The outbox's sender: delivers due notifications to their channels
//! (browsers through their push services, webhooks signed the Standard
//! Webhooks way, ntfy topics), with bounded
//! exponential backoff; gives up into the dead letters after
//! `notify_max_attempts` or 24 hours; honours `Retry-After`. A delivery is
//! marked only after the receiver answered, so a restart resends what was
//! not answered (each notification carries a stable id).

pub mod target;
pub mod webpush;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use claw_proto::notify::{ChannelKind, Notification};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::App;
use crate::clock::{iso, now_ms};
use crate::shutdown::Shutdown;
use crate::store::{Attempt, ChannelRow, DeliveryRow, NotificationDraft};

/// How often the outbox is looked at.
const TICK: Duration = Duration::from_millis(250);
/// Lost runners are looked for every this many ticks (2 s).
const LOST_RUNNER_TICKS: u64 = 8;
/// Deliveries attempted at once.
const BATCH: u32 = 32;
/// A notification older than this is given up on.
const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;
/// The longest wait between attempts.
const MOST_BACKOFF_MS: i64 = 3600 * 1000;
/// The longest error text kept.
const ERROR_CHARS: usize = 300;

/// A webhook's signing secret: `whsec_` and 24 random bytes, base64.
pub fn new_webhook_secret() -> Result<String, getrandom::Error> {
    let mut key = [0u8; 24];
    getrandom::fill(&mut key)?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// `webhook-signature` of Standard Webhooks: HMAC-SHA256 over
/// `id.timestamp.body` with the secret's key.
pub fn webhook_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The gateway's address for links: `public_url`, else the host's name
/// and the port it listens on.
pub fn public_base(app: &App) -> String {
    let settings = app.settings();
    if let Some(url) = &settings.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = crate::fsutil::hostname().unwrap_or_else(|| "localhost".to_owned());
    let scheme = if settings.config.tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}", app.facts.https_port)
}

fn cut(text: String) -> String {
    if text.chars().count() <= ERROR_CHARS {
        text
    } else {
        text.chars().take(ERROR_CHARS).collect::<String>() + "…"
    }
}

/// What a failed attempt leads to: another try later, or the dead letters.
fn after_failure(
    delivery: &DeliveryRow,
    max_attempts: u32,
    error: String,
    wait_ms: Option<i64>,
) -> Attempt {
    let now = now_ms();
    let attempts = delivery.attempts + 1;
    if attempts >= max_attempts || now - delivery.created_at > GIVE_UP_AFTER_MS {
        return Attempt::Dead { error: cut(error) };
    }
    let backoff = 1000i64
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(30))
        .min(MOST_BACKOFF_MS);
    Attempt::Retry {
        next_at: now + wait_ms.unwrap_or(backoff).clamp(0, MOST_BACKOFF_MS),
        error: cut(error),
    }
}

/// One attempt at one delivery.
async fn deliver(
    client: &reqwest::Client,
    vapid: &webpush::Vapid,
    base: &str,
    allow_private: bool,
    max_attempts: u32,
    delivery: &DeliveryRow,
    channel: &ChannelRow,
) -> Attempt {
    // Names are resolved by the guarded resolver; an address written in
    // the URL is not resolved, so it is checked here (a channel added
    // while private targets were allowed stays refused once they are not).
    if !allow_private && let Some(refused) = target::refused_literal(&channel.target) {
        return Attempt::Dead { error: refused };
    }
    let draft: NotificationDraft = match serde_json::from_str(&delivery.payload) {
        Ok(draft) => draft,
        Err(e) => {
            return Attempt::Dead {
                error: format!("an unreadable notification: {e}"),
            };
        }
    };
    let notification = Notification {
        id: delivery.id.clone(),
        kind: draft.kind,
        run_id: draft.run_id,
        run_title: draft.run_title,
        title: draft.title,
        tool: draft.tool,
        summary: draft.summary,
        approval_id: draft.approval_id,
        url: format!("{base}/{}", draft.path),
        created_at: iso(delivery.created_at),
    };
    let request = match channel.kind {
        ChannelKind::Webhook => {
            let body = serde_json::to_vec(&notification).unwrap_or_default();
            let timestamp = now_ms() / 1000;
            let Some(signature) = channel
                .secret
                .as_deref()
                .and_then(|s| webhook_signature(s, &notification.id, timestamp, &body))
            else {
                return Attempt::Dead {
                    error: "the webhook has no usable signing secret".to_owned(),
                };
            };
            client
                .post(&channel.target)
                .header("content-type", "application/json")
                .header("webhook-id", &notification.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body)
        }
        ChannelKind::Ntfy => {
            let message = match &notification.summary {
                Some(summary) => format!("{}\n{summary}", notification.title),
                None => notification.title.clone(),
            };
            let mut request = client
                .post(&channel.target)
                .header("X-Title", format!("claw: {}", notification.kind.as_str()))
                .header("X-Click", &notification.url)
                .header("X-Tags", notification.kind.as_str())
                .header("X-Notification-Id", &notification.id)
                .body(message);
            if let Some(token) = &channel.secret {
                request = request.bearer_auth(token);
            }
            request
        }
        ChannelKind::Webpush => {
            let keys: Option<webpush::StoredKeys> = channel
                .secret
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok());
            let Some(keys) = keys else {
                return Attempt::ChannelGone {
                    error: "the subscription has no keys".to_owned(),
                };
            };
            let body = serde_json::to_vec(&notification).unwrap_or_default();
            match webpush::request(
                client,
                vapid,
                &channel.target,
                &keys,
                base,
                body,
                now_ms() / 1000,
            ) {
                Ok(request) => request,
                Err(e @ webpush::PushError::BadSubscription(_)) => {
                    return Attempt::ChannelGone {
                        error: e.to_string(),
                    };
                }
                Err(e) => return after_failure(delivery, max_attempts, e.to_string(), None),
            }
        }
    };
    match request.send().await {
        Ok(response) if response.status().is_success() => Attempt::Delivered,
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(|secs| secs.saturating_mul(1000));
            if channel.kind == ChannelKind::Webpush && matches!(status.as_u16(), 404 | 410) {
                return Attempt::ChannelGone {
                    error: format!("the push service answered {status}"),
                };
            }
            let wait = (status.as_u16() == 429).then_some(retry_after).flatten();
            after_failure(
                delivery,
                max_attempts,
                format!("{} answered {status}", channel.target),
                wait,
            )
        }
        Err(e) => after_failure(delivery, max_attempts, format!("{e:#}"), None),
    }
}

/// Delivers due notifications until clawd stops.
pub async fn run(app: Arc<App>, mut stopped: Shutdown) {
    let mut allow_private = app.settings().config.notify_allow_private_targets;
    let mut client = match target::client(allow_private) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "notifications cannot be sent: no HTTP client");
            return;
        }
    };
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped.stopped() => return,
        }
        ticks += 1;
        if ticks.is_multiple_of(LOST_RUNNER_TICKS)
            && let Err(e) = app.report_lost_runners(started).await
        {
            tracing::warn!(error = %e.message, "could not look for lost runners");
        }
        let settings = app.settings();
        // A reload may have changed what is allowed.
        if settings.config.notify_allow_private_targets != allow_private {
            allow_private = settings.config.notify_allow_private_targets;
            if let Ok(fresh) = target::client(allow_private) {
                client = fresh;
            }
        }
        let max_attempts = settings.config.notify_max_attempts;
        drop(settings);
        let due = match app.store.due_deliveries(now_ms(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the notification outbox");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let base = public_base(&app);
        // Read for each batch: a rotation takes effect at once.
        let vapid = match webpush::Vapid::from_secret(&app.secrets.vapid()) {
            Ok(vapid) => vapid,
            Err(e) => {
                tracing::error!(error = %e, "notifications cannot be sent");
                continue;
            }
        };
        let attempts = due.iter().map(|(delivery, channel)| {
            deliver(
                &client,
                &vapid,
                &base,
                allow_private,
                max_attempts,
                delivery,
                channel,
            )
        });
        let results = futures_util::future::join_all(attempts).await;
        for ((delivery, channel), attempt) in due.into_iter().zip(results) {
            match &attempt {
                Attempt::Dead { error } => tracing::warn!(
                    RUN_ID = %delivery.run_id, CHANNEL = %channel.name, error = %error,
                    "a notification was given up on (clawctl notify list --dead)"
                ),
                Attempt::Retry { error, .. } => tracing::debug!(
                    CHANNEL = %channel.name, error = %error, "a notification will be retried"
                ),
                _ => {}
            }
            if let Err(e) = app.store.record_attempt(delivery.id, attempt).await {
                tracing::warn!(error = %e, "could not record a notification's delivery");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            webhook_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert!(webhook_signature("no prefix", "id", 1, b"").is_none());
        let fresh = new_webhook_secret().expect("random");
        assert!(webhook_signature(&fresh, "id", 1, b"x").is_some());
    }
}
