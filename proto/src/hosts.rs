//! Coding hosts: registered, revocable members of the gateway that run
//! `claw-runner serve` and start agent sessions on request. A host signs
//! its requests with its own key, given once at enrolment, the way runs
//! sign theirs (`signing`), naming itself in [`HEADER_HOST_ID`].

use serde::{Deserialize, Serialize};

use crate::api::Timestamp;

/// Names the host whose key signed a request (instead of the gateway-wide
/// HMAC secret).
pub const HEADER_HOST_ID: &str = "x-host-id";

/// The longest host name.
pub const NAME_MAX_CHARS: usize = 64;

/// A host's name: 1 to 64 of `a-z A-Z 0-9 . _ -`, starting with a letter
/// or digit (it appears in logs, the journal and URLs).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= NAME_MAX_CHARS
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Where a host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Added; its enrolment token not used yet.
    Pending,
    /// Enrolled and connected now.
    Online,
    /// Enrolled, not connected.
    Offline,
    /// Cut off for good: its key never works again.
    Revoked,
}

/// An agent a host can run, as found on its PATH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostAgent {
    /// `claude`.
    pub name: String,
    /// What `claude --version` printed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What `claw-runner serve` tells the gateway when it connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostInfo {
    /// claw-runner's version.
    pub version: String,
    pub agents: Vec<HostAgent>,
    /// The directories sessions may be started in (its own config's list).
    pub workspaces: Vec<String>,
    /// How many sessions it runs at once at most.
    pub session_limit: u32,
    /// The runs it is running now.
    #[serde(default)]
    pub sessions: Vec<String>,
}

/// A host as the APIs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    pub id: String,
    pub name: String,
    pub state: HostState,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<Timestamp>,
    /// What it reported when it last connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<HostInfo>,
}

/// `POST /api/hosts`, `POST /v1/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHost {
    pub name: String,
}

/// A new host and its one-time enrolment token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedHost {
    pub host: HostView,
    pub enrolment_token: String,
    pub expires_at: Timestamp,
    /// The command to run on the host.
    pub enroll_command: String,
}

/// `POST /api/hosts/enroll`, by `claw-runner enroll`: the token for the
/// host's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
}

/// The host's key, given this once; kept 0600 by the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollReply {
    pub host_id: String,
    pub name: String,
    /// Hex; signs the host's requests as the HMAC secret signs a run's.
    pub key: String,
}

/// What a host says on its socket (`GET /api/host/ws`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// First, and again whenever something changes.
    Hello {
        #[serde(flatten)]
        info: HostInfo,
    },
    /// Every few seconds: still here.
    Heartbeat,
    /// The answer to a [`GatewayMessage::Start`]: started, or why not.
    StartAnswer {
        run_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// What the gateway says to a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayMessage {
    /// The hello was taken.
    Welcome { host_id: String, name: String },
    /// Start a session for a run: `claw-runner start` in `workspace`, which
    /// the host checks against its own list whatever the gateway says.
    Start(StartSession),
}

/// What a host is asked to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartSession {
    pub run_id: String,
    /// The run's capability token; reaches the runner in its environment.
    pub token: String,
    pub workspace: String,
    /// `claude`.
    pub agent: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_plain() {
        for good in ["build-1", "mac.studio", "a", "X_2"] {
            assert!(valid_name(good), "{good}");
        }
        let long = "h".repeat(NAME_MAX_CHARS + 1);
        for bad in ["", "-x", ".x", "a b", "a/b", "ä", long.as_str(), "x\n"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn messages_are_tagged() {
        let hello = HostMessage::Hello {
            info: HostInfo {
                version: "0.1.0".to_owned(),
                agents: vec![HostAgent {
                    name: "claude".to_owned(),
                    version: Some("2.0.1".to_owned()),
                }],
                workspaces: vec!["/srv/code".to_owned()],
                session_limit: 4,
                sessions: vec![],
            },
        };
        let text = serde_json::to_string(&hello).expect("json");
        assert!(
            text.starts_with(r#"{"type":"hello","version":"0.1.0""#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<HostMessage>(&text).expect("back"),
            hello
        );
        assert_eq!(
            serde_json::to_string(&HostMessage::Heartbeat).expect("json"),
            r#"{"type":"heartbeat"}"#
        );
    }
}
