//! The agent-neutral event model: what a runner makes of an agent's
//! structured output, stored as the `data` (JSON) of sequenced events of
//! the types in [`crate::wire::EventType`]. Agent-specific JSON stops at
//! the runner; the gateway, the web UI and clawctl read only these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The agents claw can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Claude Code, through stream-json and its stdio control protocol.
    Claude,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claude => "claude",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "claude" => Some(Self::Claude),
            _ => None,
        }
    }
}

/// How an agent asks before it acts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PermissionMode {
    /// Edits and commands that are not read-only ask first.
    #[default]
    Default,
    /// Edits go ahead; commands still ask.
    AcceptEdits,
    /// The agent plans and changes nothing until the plan is approved.
    Plan,
    /// Nothing asks (administrators only, where the gateway allows it).
    BypassPermissions,
}

impl PermissionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::AcceptEdits => "acceptEdits",
            Self::Plan => "plan",
            Self::BypassPermissions => "bypassPermissions",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Default,
            Self::AcceptEdits,
            Self::Plan,
            Self::BypassPermissions,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// `session`: the agent's session began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    pub agent: AgentKind,
    /// The agent's own id of the session (to resume it).
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    pub permission_mode: Option<String>,
}

/// `message`: text of the assistant, markdown. `html` is the gateway's
/// sanitised rendering of `text`; whatever a runner sends there is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMessage {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// `thinking`: the model's reasoning, as the agent shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thinking {
    pub text: String,
}

/// `tool_call`: the agent calls a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    pub call_id: String,
    pub tool: String,
    pub input: Value,
    /// One line for people: the command, the file, the pattern.
    pub summary: String,
}

/// `tool_result`: what a tool call gave back. Output past the runner's
/// limit is cut here and kept whole as the artifact named in `artifact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub call_id: String,
    pub output: String,
    pub is_error: bool,
    #[serde(default)]
    pub truncated: bool,
    /// The whole output's size when it was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// What an edit did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Edit,
    Create,
    Overwrite,
}

/// `file_change`: a file the agent changed, as a unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    pub path: String,
    pub kind: ChangeKind,
    pub diff: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

/// `prompt`: an instruction the agent was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptSent {
    pub text: String,
    /// Who sent it, as the gateway names them.
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
}

/// `turn_end`: the agent finished a turn, with what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnEnd {
    pub ok: bool,
    /// The agent's own word for how it ended (`success`, `error_max_turns`…).
    pub outcome: String,
    pub duration_ms: Option<u64>,
    /// This turn's cost and tokens.
    pub cost_usd: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The session's so far.
    pub total_cost_usd: f64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `agent_raw`: an output line the runner could not map, kept as it was
/// (cut at the runner's limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRaw {
    pub line: String,
    pub reason: String,
    #[serde(default)]
    pub truncated: bool,
}

/// What the agent asks a person for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalKind {
    /// Permission to use a tool.
    #[default]
    Tool,
    /// Answers to `AskUserQuestion`'s questions.
    Question,
    /// Approval of a plan (`ExitPlanMode`).
    Plan,
}

impl ApprovalKind {
    /// The kind a tool's request is: its questions, its plan, or a tool.
    pub fn of_tool(tool: &str) -> Self {
        match tool {
            "AskUserQuestion" => Self::Question,
            "ExitPlanMode" => Self::Plan,
            _ => Self::Tool,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Question => "question",
            Self::Plan => "plan",
        }
    }
}

/// `approval_request`: the agent waits for a person's decision. Written to
/// the runner's spool before anything else; the gateway makes it an
/// approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// The agent's own id of its request, unique in the run.
    pub request_id: String,
    #[serde(default)]
    pub kind: ApprovalKind,
    pub tool: String,
    pub input: Value,
    /// One line for people: the command, the file, the pattern.
    pub summary: String,
    /// For edits: the change it would make, as a unified diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The agent's reason, as it gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The agent's suggestions for allowing it for the rest of the session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// How long the runner waits for a decision before it denies.
    pub timeout_secs: u64,
}

/// How an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Allowed,
    Denied,
    /// No decision within the timeout: the runner denied.
    Expired,
    /// The agent gave up on its request.
    Cancelled,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 5] = [
        Self::Pending,
        Self::Allowed,
        Self::Denied,
        Self::Expired,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// For how long an allow holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionScope {
    /// This request only.
    #[default]
    Once,
    /// This request and the same kind of request for the rest of the run.
    Session,
}

impl DecisionScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Once, Self::Session]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// A person's decision as the runner receives it: the `command` of a
/// queued command of kind `decision`, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub approval_id: String,
    pub request_id: String,
    pub allow: bool,
    #[serde(default)]
    pub scope: DecisionScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For questions: each question's text and the chosen answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<serde_json::Map<String, Value>>,
    /// Who decided, as the gateway names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `approval_resolved`: what the runner did with a request: the decision
/// it wrote to the agent, the denial at the timeout, or the agent's own
/// cancellation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalResolved {
    pub request_id: String,
    pub status: ApprovalStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One line for people about a tool call: the command, the file, the
/// pattern, the address; else the tool's name.
pub fn summarise(tool: &str, input: &Value) -> String {
    let field = |name: &str| input.get(name).and_then(Value::as_str);
    let line = match tool {
        "Bash" => field("command"),
        "Edit" | "MultiEdit" | "Write" | "Read" | "NotebookEdit" => {
            field("file_path").or_else(|| field("notebook_path"))
        }
        "Grep" | "Glob" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "Task" => field("description"),
        _ => None,
    }
    .or_else(|| {
        input
            .as_object()
            .and_then(|o| o.values().find_map(Value::as_str))
    });
    match line {
        Some(text) => first_line(text, 200),
        None => tool.to_owned(),
    }
}

/// The first line of `text`, at most `most` characters, marked when cut.
pub fn first_line(text: &str, most: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(most).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// One hunk of a change, as agents report them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hunk {
    pub old_start: u64,
    pub old_lines: u64,
    pub new_start: u64,
    pub new_lines: u64,
    /// Each line with its mark: ` `, `-` or `+`.
    pub lines: Vec<String>,
}

/// `a/PATH` as diff headers name a file (an absolute path stays one).
fn side(prefix: char, path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{prefix}/{path}")
    }
}

/// A unified diff of `path` from its hunks.
pub fn unified_diff(path: &str, hunks: &[Hunk]) -> String {
    let mut out = format!("--- {}\n+++ {}\n", side('a', path), side('b', path));
    for hunk in hunks {
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            hunk.old_start, hunk.old_lines, hunk.new_start, hunk.new_lines
        ));
        for line in &hunk.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The diff that creates `path` with `content`.
pub fn creation_diff(path: &str, content: &str) -> String {
    let lines: Vec<&str> = content.lines().collect();
    let mut out = format!(
        "--- /dev/null\n+++ {}\n@@ -0,0 +1,{} @@\n",
        side('b', path),
        lines.len()
    );
    for line in lines {
        out.push('+');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What an edit the agent asks to make would change, as a diff, for the
/// person deciding: `Edit`'s and `MultiEdit`'s replacements (without
/// line numbers: the file is not read here), `Write`'s new content.
pub fn edit_preview(tool: &str, input: &Value) -> Option<String> {
    let path = input.get("file_path").and_then(Value::as_str)?;
    let replacement = |edit: &Value| -> Option<String> {
        let old = edit.get("old_string").and_then(Value::as_str)?;
        let new = edit.get("new_string").and_then(Value::as_str)?;
        let mut out = String::from("@@\n");
        for line in old.lines() {
            out.push('-');
            out.push_str(line);
            out.push('\n');
        }
        for line in new.lines() {
            out.push('+');
            out.push_str(line);
            out.push('\n');
        }
        Some(out)
    };
    let header = format!("--- {}\n+++ {}\n", side('a', path), side('b', path));
    match tool {
        "Edit" => Some(header + &replacement(input)?),
        "MultiEdit" => {
            let edits = input.get("edits")?.as_array()?;
            let body: String = edits.iter().filter_map(replacement).collect();
            (!body.is_empty()).then(|| header + &body)
        }
        "Write" => Some(creation_diff(
            path,
            input.get("content").and_then(Value::as_str)?,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_an_edit_would_change() {
        let edit =
            json!({"file_path": "src/a.rs", "old_string": "hello\nworld", "new_string": "goodbye"});
        assert_eq!(
            edit_preview("Edit", &edit).as_deref(),
            Some("--- a/src/a.rs\n+++ b/src/a.rs\n@@\n-hello\n-world\n+goodbye\n")
        );
        let multi = json!({"file_path": "/w/b", "edits": [
            {"old_string": "a", "new_string": "b"}, {"old_string": "c", "new_string": "d"}
        ]});
        assert_eq!(
            edit_preview("MultiEdit", &multi).as_deref(),
            Some("--- /w/b\n+++ /w/b\n@@\n-a\n+b\n@@\n-c\n+d\n")
        );
        let write = json!({"file_path": "n.txt", "content": "x\ny\n"});
        assert_eq!(
            edit_preview("Write", &write).as_deref(),
            Some("--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,2 @@\n+x\n+y\n")
        );
        assert_eq!(edit_preview("Bash", &json!({"command": "ls"})), None);
        assert_eq!(edit_preview("Edit", &json!({"file_path": "x"})), None);
    }

    #[test]
    fn summaries_say_what_the_call_is_about() {
        assert_eq!(
            summarise(
                "Bash",
                &json!({"command": "cargo test\n--x", "description": "d"})
            ),
            "cargo test…"
        );
        assert_eq!(
            summarise("Edit", &json!({"file_path": "src/a.rs", "old_string": "x"})),
            "src/a.rs"
        );
        assert_eq!(summarise("Grep", &json!({"pattern": "fn main"})), "fn main");
        assert_eq!(summarise("Mystery", &json!({"n": 1})), "Mystery");
        assert_eq!(summarise("Mystery", &json!({"what": "this"})), "this");
    }

    #[test]
    fn diffs_are_unified() {
        let hunks = [Hunk {
            old_start: 1,
            old_lines: 2,
            new_start: 1,
            new_lines: 2,
            lines: vec![" a".into(), "-b".into(), "+c".into()],
        }];
        assert_eq!(
            unified_diff("x.txt", &hunks),
            "--- a/x.txt\n+++ b/x.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
        );
        assert_eq!(
            creation_diff("n.txt", "one\ntwo\n"),
            "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n"
        );
    }

    #[test]
    fn modes_and_kinds_round_trip() {
        for mode in ["default", "acceptEdits", "plan", "bypassPermissions"] {
            let parsed = PermissionMode::parse(mode).expect("mode");
            assert_eq!(parsed.as_str(), mode);
            assert_eq!(serde_json::to_value(parsed).expect("json"), json!(mode));
        }
        assert_eq!(AgentKind::parse("claude"), Some(AgentKind::Claude));
        assert_eq!(AgentKind::parse("codex"), None);
    }
}
