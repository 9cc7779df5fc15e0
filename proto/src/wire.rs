//! JSON shapes of the runner protocol and the browser WebSocket (PROTOCOL.md).

use serde::{Deserialize, Serialize};

/// Kinds of run events. The first six are raw output and the runner's own
/// notes; the rest are an agent's session, normalised by the runner from
/// the agent's structured output (payloads in [`crate::agent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Stdout,
    Stderr,
    Marker,
    Info,
    Error,
    Assist,
    Session,
    Message,
    Thinking,
    ToolCall,
    ToolResult,
    FileChange,
    Prompt,
    TurnEnd,
    AgentRaw,
    ApprovalRequest,
    ApprovalResolved,
}

impl EventType {
    pub const ALL: [EventType; 17] = [
        Self::Stdout,
        Self::Stderr,
        Self::Marker,
        Self::Info,
        Self::Error,
        Self::Assist,
        Self::Session,
        Self::Message,
        Self::Thinking,
        Self::ToolCall,
        Self::ToolResult,
        Self::FileChange,
        Self::Prompt,
        Self::TurnEnd,
        Self::AgentRaw,
        Self::ApprovalRequest,
        Self::ApprovalResolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Marker => "marker",
            Self::Info => "info",
            Self::Error => "error",
            Self::Assist => "assist",
            Self::Session => "session",
            Self::Message => "message",
            Self::Thinking => "thinking",
            Self::ToolCall => "tool_call",
            Self::ToolResult => "tool_result",
            Self::FileChange => "file_change",
            Self::Prompt => "prompt",
            Self::TurnEnd => "turn_end",
            Self::AgentRaw => "agent_raw",
            Self::ApprovalRequest => "approval_request",
            Self::ApprovalResolved => "approval_resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the event's data is a JSON payload of [`crate::agent`].
    pub fn is_structured(self) -> bool {
        !matches!(
            self,
            Self::Stdout | Self::Stderr | Self::Marker | Self::Info | Self::Error | Self::Assist
        )
    }
}

/// One event as a runner sends it. `sequence` 0 or absent: append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// Body of `POST /api/ingest/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    pub events: Vec<IngestEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestEventReply {
    pub ok: bool,
    pub event_id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestBatchReply {
    pub ok: bool,
    pub event_ids: Vec<i64>,
}

/// Body of `POST /api/runs/{id}/commands/{cmd}/ack`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandAck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a queued command asks of the runner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandKind {
    /// An allowlisted shell command (or the stop, `__STOP__`).
    #[default]
    Command,
    /// The next instruction for the run's agent; `command` is its text.
    Prompt,
    /// End the agent's current turn.
    Interrupt,
    /// A person's decision on an approval; `command` is a
    /// [`crate::agent::Decision`] as JSON.
    Decision,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Prompt => "prompt",
            Self::Interrupt => "interrupt",
            Self::Decision => "decision",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Command, Self::Prompt, Self::Interrupt, Self::Decision]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A pending command as the runner receives it. `kind` and `created_by`
/// are additions: a runner that does not know them sees a command, which
/// its allowlist refuses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingCommand {
    pub id: String,
    pub command: String,
    pub created_at: String,
    #[serde(default)]
    pub kind: CommandKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// `GET /api/runs/{id}/spec` (signed): how the run's agent is to be
/// started. A runner started with `--agent` asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSpec {
    pub run_id: String,
    pub agent: Option<crate::agent::AgentKind>,
    pub model: Option<String>,
    pub permission_mode: Option<crate::agent::PermissionMode>,
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// How long the agent's requests wait for a person's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
    /// The sequence the gateway expects next: a runner resuming a run
    /// continues from here (or from its own spool, whichever is later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sequence: Option<u64>,
    /// The agent's own session id, once it started: a resumed session
    /// continues that conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session_id: Option<String>,
    /// Where the run stands now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
}

/// The JSON inside a `marker` event's `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Marker {
    Started {
        #[serde(default)]
        command: Option<serde_json::Value>,
    },
    Finished {
        #[serde(rename = "exitCode", default)]
        exit_code: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
    },
}

impl Marker {
    /// Markers the gateway does not understand are stored but change nothing.
    pub fn parse(data: &str) -> Option<Self> {
        serde_json::from_str(data).ok()
    }
}

/// Run states: pending → running → done | failed | stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Pending,
    Running,
    /// Running, and its agent waits for a person's decision.
    Waiting,
    Done,
    Failed,
    Stopped,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        Self::Pending,
        Self::Running,
        Self::Waiting,
        Self::Done,
        Self::Failed,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Stopped)
    }
}

/// Account roles, ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Close code of a browser socket whose session ended (logout, expiry,
/// revocation, a deleted user, a rotated auth secret): log in again.
pub const CLOSE_SESSION_ENDED: u16 = 4401;
/// Close code of a browser socket whose user's role changed: connect again.
pub const CLOSE_SESSION_CHANGED: u16 = 4409;

/// Messages a browser sends on `/ws`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    Subscribe {
        #[serde(rename = "runId")]
        run_id: String,
        #[serde(rename = "afterSequence", default)]
        after_sequence: Option<u64>,
        /// Stored events arrive as `events` messages of many events each
        /// (far fewer messages for a browser to dispatch); live ones stay
        /// single `event` messages.
        #[serde(default)]
        batch: bool,
    },
    Unsubscribe {
        #[serde(rename = "runId", default)]
        run_id: Option<String>,
    },
    Ping,
}

/// One event inside an `events` message (the run id is the message's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchedEvent {
    #[serde(rename = "eventId")]
    pub event_id: i64,
    pub sequence: u64,
    #[serde(rename = "eventType")]
    pub event_type: EventType,
    pub data: String,
    pub timestamp: String,
}

/// Messages the gateway sends on `/ws`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Connected,
    Subscribed {
        #[serde(rename = "runId")]
        run_id: String,
    },
    Unsubscribed {
        #[serde(rename = "runId")]
        run_id: String,
    },
    Event {
        #[serde(rename = "runId")]
        run_id: String,
        #[serde(rename = "eventId")]
        event_id: i64,
        sequence: u64,
        #[serde(rename = "eventType")]
        event_type: EventType,
        data: String,
        timestamp: String,
    },
    CommandQueued {
        #[serde(rename = "runId")]
        run_id: String,
        #[serde(rename = "commandId")]
        command_id: String,
        /// A command, a prompt (its text, redacted) or an interrupt.
        #[serde(default)]
        kind: CommandKind,
        command: String,
    },
    CommandCompleted {
        #[serde(rename = "runId")]
        run_id: String,
        #[serde(rename = "commandId")]
        command_id: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    StopRequested {
        #[serde(rename = "runId")]
        run_id: String,
        #[serde(rename = "commandId")]
        command_id: String,
    },
    RunStatus {
        #[serde(rename = "runId")]
        run_id: String,
        status: RunStatus,
        #[serde(rename = "exitCode", default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
    },
    /// Stored events, in order, for a subscription made with `batch`.
    Events {
        #[serde(rename = "runId")]
        run_id: String,
        events: Vec<BatchedEvent>,
    },
    ArtifactAdded {
        #[serde(rename = "runId")]
        run_id: String,
        #[serde(rename = "artifactId")]
        artifact_id: String,
        filename: String,
        size: u64,
    },
    /// An approval was made, decided, delivered, expired or cancelled; sent
    /// to every socket (the "Needs you" count on every page).
    Approval {
        approval: Box<crate::api::ApprovalView>,
    },
    /// The subscriber fell behind; events were re-read from the store.
    Notice {
        message: String,
    },
    Pong,
    Error {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse() {
        assert_eq!(
            Marker::parse(r#"{"event":"finished","exitCode":3}"#),
            Some(Marker::Finished {
                exit_code: Some(3),
                signal: None
            })
        );
        assert!(matches!(
            Marker::parse(r#"{"event":"started","command":"claude"}"#),
            Some(Marker::Started { .. })
        ));
        assert_eq!(Marker::parse("not json"), None);
    }

    #[test]
    fn event_types_name_themselves_as_they_serialise() {
        for kind in EventType::ALL {
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn ingest_event_shape() {
        let e: IngestEvent =
            serde_json::from_str(r#"{"type":"stderr","data":"x","sequence":4}"#).expect("parse");
        assert_eq!(e.kind, EventType::Stderr);
        assert_eq!(e.sequence, Some(4));
        assert!(serde_json::from_str::<IngestEvent>(r#"{"type":"bogus","data":"x"}"#).is_err());
    }

    #[test]
    fn ws_messages() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","runId":"r","afterSequence":5}"#)
                .expect("parse");
        assert!(matches!(
            m,
            ClientMessage::Subscribe {
                after_sequence: Some(5),
                ..
            }
        ));
        let s = serde_json::to_string(&ServerMessage::StopRequested {
            run_id: "r".into(),
            command_id: "c".into(),
        })
        .expect("encode");
        assert_eq!(
            s,
            r#"{"type":"stop_requested","runId":"r","commandId":"c"}"#
        );
    }
}
