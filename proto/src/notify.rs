//! Notifications: what people are told when a run needs them, through which
//! channels (Web Push, ntfy, webhooks), and the outbox that delivers them.

use serde::{Deserialize, Serialize};

use crate::api::Timestamp;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// An agent asks to use a tool.
    Approval,
    /// An agent asks questions.
    Question,
    /// An agent presents a plan.
    Plan,
    Finished,
    Failed,
    Stopped,
    /// No word from a running run's runner for `runner_lost_secs`.
    RunnerLost,
}

impl NotifyKind {
    pub const ALL: [NotifyKind; 7] = [
        Self::Approval,
        Self::Question,
        Self::Plan,
        Self::Finished,
        Self::Failed,
        Self::Stopped,
        Self::RunnerLost,
    ];

    /// What a new channel is told about unless it says otherwise.
    pub const DEFAULT: [NotifyKind; 3] = [Self::Approval, Self::Question, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::Question => "question",
            Self::Plan => "plan",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::RunnerLost => "runner_lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How a channel reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A browser's push subscription (one device).
    Webpush,
    /// An ntfy topic URL.
    Ntfy,
    /// A URL that receives signed JSON (Standard Webhooks).
    Webhook,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webpush => "webpush",
            Self::Ntfy => "ntfy",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Webpush, Self::Ntfy, Self::Webhook]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Which runs a channel hears of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelScope {
    /// Runs its owner created.
    #[default]
    Own,
    /// Every run its owner can see.
    All,
}

impl ChannelScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Own, Self::All].into_iter().find(|k| k.as_str() == s)
    }
}

/// A channel as the API shows it; its secrets are never shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub id: String,
    pub kind: ChannelKind,
    pub name: String,
    /// The ntfy topic or webhook URL; a push service's endpoint.
    pub target: String,
    pub events: Vec<NotifyKind>,
    pub scope: ChannelScope,
    /// Whose it is; none for a global channel (an administrator's).
    pub owner: Option<String>,
    pub created_at: Timestamp,
}

/// `POST /api/notify/channels`: an ntfy topic or a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewChannel {
    pub kind: ChannelKind,
    pub name: String,
    pub target: String,
    /// An ntfy access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// [`NotifyKind::DEFAULT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotifyKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ChannelScope>,
    /// For everyone (administrators only): every run, whoever made it.
    #[serde(default)]
    pub global: bool,
}

/// `GET /api/notify/push/key`: the gateway's VAPID public key, for
/// `pushManager.subscribe({applicationServerKey})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushKey {
    /// The uncompressed P-256 point, base64url without padding.
    pub public_key: String,
}

/// A browser subscription's keys, as `PushSubscription.toJSON()` has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushKeys {
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

/// `POST /api/notify/push`: this device's push subscription. The same
/// endpoint sent again replaces its keys and keeps its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPushSubscription {
    pub endpoint: String,
    pub keys: PushKeys,
    /// What the device is called in Account ("Firefox on Linux").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `PushSubscription.expirationTime`, ignored: a push service's 404 or
    /// 410 is what ends a subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotifyKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ChannelScope>,
}

/// A new channel; a webhook's signing secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedChannel {
    pub channel: ChannelView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `PATCH /api/notify/channels/{id}`: which notifications and runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotifyKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ChannelScope>,
}

/// What a notification says: only what it needs, never output or secrets.
/// Webhooks receive it as their body, ntfy as its message and headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Stable across retries: receivers de-duplicate by it.
    pub id: String,
    pub kind: NotifyKind,
    pub run_id: String,
    /// The run's first words: its command or its agent's first prompt.
    pub run_title: String,
    /// One line for people.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The request's summary, at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Where to look: the approval card or the run.
    pub url: String,
    pub created_at: Timestamp,
}

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up on after `notify_max_attempts` or 24 h.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One notification for one channel, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub channel_id: String,
    pub channel: String,
    pub kind: NotifyKind,
    pub run_id: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<Timestamp>,
}

/// `clawctl notify status`, and the status page's Notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub channels: u64,
}

/// `GET /v1/notify/outbox?status=` and `DELETE …?status=dead`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `DELETE /v1/notify/outbox?status=dead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    pub purged: u64,
}
