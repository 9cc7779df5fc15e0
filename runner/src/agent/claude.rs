//! Claude Code's stream-json and stdio control protocol: the lines claw
//! writes to its stdin, and what each line it prints becomes in claw's
//! agent-neutral event model. Pure: no I/O, so every message type and every
//! malformed case is tested here.

use claw_proto::agent::{
    AgentKind, AgentMessage, AgentRaw, ChangeKind, FileChange, Hunk, SessionStarted, Thinking,
    ToolCall, ToolResult, TurnEnd, creation_diff, summarise, unified_diff,
};
use claw_proto::wire::EventType;
use serde_json::{Value, json};

/// The request id of the `initialize` request.
pub const INIT_REQUEST: &str = "claw-init";

/// The arguments that start the CLI in claw's mode: stream-json both ways,
/// every permission asked of claw on stdin.
pub fn arguments(
    model: Option<&str>,
    permission_mode: &str,
    allowed_tools: &[String],
    resume: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "-p",
        "--output-format",
        "stream-json",
        "--input-format",
        "stream-json",
        "--verbose",
        "--permission-prompt-tool",
        "stdio",
        "--permission-mode",
        permission_mode,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if let Some(model) = model {
        args.extend(["--model".to_owned(), model.to_owned()]);
    }
    if !allowed_tools.is_empty() {
        args.push("--allowedTools".to_owned());
        args.extend(allowed_tools.iter().cloned());
    }
    if let Some(session) = resume {
        args.extend(["--resume".to_owned(), session.to_owned()]);
    }
    args
}

/// `initialize`: the first line claw writes.
pub fn initialize() -> String {
    json!({
        "type": "control_request",
        "request_id": INIT_REQUEST,
        "request": { "subtype": "initialize", "hooks": null }
    })
    .to_string()
}

/// A user turn: the first prompt and every follow-up.
pub fn user_turn(text: &str) -> String {
    json!({
        "type": "user",
        "session_id": "",
        "message": { "role": "user", "content": text },
        "parent_tool_use_id": null
    })
    .to_string()
}

/// Ends the current turn.
pub fn interrupt(request_id: &str) -> String {
    json!({
        "type": "control_request",
        "request_id": request_id,
        "request": { "subtype": "interrupt" }
    })
    .to_string()
}

/// Lets the agent use a tool with `input` (for questions: with the
/// answers); `permissions` (its own suggestions) stop it asking again for
/// the rest of the session.
pub fn allow(request_id: &str, input: &Value, permissions: &[Value]) -> String {
    let mut response = json!({ "behavior": "allow", "updatedInput": input });
    if !permissions.is_empty() {
        response["updatedPermissions"] = Value::Array(permissions.to_vec());
    }
    json!({
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": request_id,
            "response": response
        }
    })
    .to_string()
}

/// Refuses a tool the agent asked to use; `message` reaches the model as
/// the tool's error.
pub fn deny(request_id: &str, message: &str) -> String {
    json!({
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": request_id,
            "response": { "behavior": "deny", "message": message }
        }
    })
    .to_string()
}

/// The agent asks to use a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionRequest {
    pub request_id: String,
    pub tool: String,
    pub input: Value,
    pub call_id: Option<String>,
    pub description: Option<String>,
    /// Rules the agent proposes for allowing it for the rest of the session.
    pub suggestions: Vec<Value>,
}

/// What a line of the agent's output means.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An event to record: its type and its data (JSON).
    Event(EventType, String),
    /// The whole output of a tool result that was cut in its event: keep
    /// it as the named artifact.
    KeepWhole {
        artifact: String,
        output: String,
    },
    /// The answer to claw's `initialize`.
    Initialised,
    /// A control request that failed (`initialize` included).
    ControlError {
        request_id: String,
        error: String,
    },
    Permission(PermissionRequest),
    /// The agent gave up on a request: do not answer it.
    Cancelled {
        request_id: String,
    },
}

/// How much of a tool's output goes into its event, and how much text an
/// event may hold (the gateway's `event_max_bytes` is 1 MiB).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub tool_output: usize,
    pub text: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tool_output: 64 * 1024,
            text: 512 * 1024,
        }
    }
}

/// Turns output lines into events, keeping what spans lines: the tools
/// called (for file changes), the session's running totals.
#[derive(Debug, Default)]
pub struct Translator {
    limits: Limits,
    total_cost_usd: f64,
    total_input_tokens: u64,
    total_output_tokens: u64,
    /// The session as last recorded: the CLI announces it every turn.
    session: Option<SessionStarted>,
}

/// `text` cut to at most `most` bytes on a character boundary.
fn cut(text: &str, most: usize) -> (&str, bool) {
    if text.len() <= most {
        return (text, false);
    }
    let mut end = most;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

fn event<T: serde::Serialize>(kind: EventType, payload: &T) -> Output {
    Output::Event(kind, serde_json::to_string(payload).unwrap_or_default())
}

/// A tool result's content: a string, or blocks of which the text counts.
fn result_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).map(str::to_owned),
                Some(other) => Some(format!("[{other}]")),
                None => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Characters safe in an artifact name, from a tool call id.
fn artifact_name(call_id: &str) -> String {
    let safe: String = call_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(80)
        .collect();
    format!("tool-output-{safe}.txt")
}

impl Translator {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// What one line of output means; never fails: a line it cannot read
    /// is kept as `agent_raw` with the reason.
    pub fn line(&mut self, line: &str) -> Vec<Output> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            return Vec::new();
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(e) => return vec![self.raw(line, &format!("not JSON: {e}"))],
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        let mapped = match kind {
            "system" => self.system(&value),
            "assistant" => self.assistant(&value),
            "user" => self.user(&value),
            "result" => self.result(&value),
            "control_request" => self.control_request(&value),
            "control_response" => self.control_response(&value),
            "control_cancel_request" => value.get("request_id").and_then(Value::as_str).map(|id| {
                vec![Output::Cancelled {
                    request_id: id.to_owned(),
                }]
            }),
            _ => None,
        };
        mapped.unwrap_or_else(|| {
            let reason = match kind {
                "" => "no message type".to_owned(),
                "system"
                | "assistant"
                | "user"
                | "result"
                | "control_request"
                | "control_response"
                | "control_cancel_request" => {
                    format!("{kind} message claw does not map")
                }
                _ => format!("unknown message type {kind:?}"),
            };
            vec![self.raw(line, &reason)]
        })
    }

    fn raw(&self, line: &str, reason: &str) -> Output {
        let (kept, truncated) = cut(line, self.limits.text);
        event(
            EventType::AgentRaw,
            &AgentRaw {
                line: kept.to_owned(),
                reason: reason.to_owned(),
                truncated,
            },
        )
    }

    fn system(&mut self, value: &Value) -> Option<Vec<Output>> {
        match value.get("subtype").and_then(Value::as_str)? {
            "init" => {
                let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
                let tools = value
                    .get("tools")
                    .and_then(Value::as_array)
                    .map(|tools| {
                        tools
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let session = SessionStarted {
                    agent: AgentKind::Claude,
                    session_id: text("session_id"),
                    model: text("model"),
                    cwd: text("cwd"),
                    tools,
                    permission_mode: text("permissionMode"),
                };
                if self.session.as_ref() == Some(&session) {
                    return Some(Vec::new());
                }
                let out = event(EventType::Session, &session);
                self.session = Some(session);
                Some(vec![out])
            }
            // Other system notes (status, compaction) are kept as they are.
            _ => None,
        }
    }

    fn assistant(&mut self, value: &Value) -> Option<Vec<Output>> {
        let blocks = value.pointer("/message/content")?.as_array()?;
        let mut out = Vec::new();
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                    if text.is_empty() {
                        continue;
                    }
                    let (kept, _) = cut(text, self.limits.text);
                    out.push(event(
                        EventType::Message,
                        &AgentMessage {
                            text: kept.to_owned(),
                            html: None,
                        },
                    ));
                }
                Some("thinking") => {
                    let text = block.get("thinking").and_then(Value::as_str).unwrap_or("");
                    let (kept, _) = cut(text, self.limits.text);
                    out.push(event(
                        EventType::Thinking,
                        &Thinking {
                            text: kept.to_owned(),
                        },
                    ));
                }
                Some("tool_use") => {
                    let call_id = block.get("id").and_then(Value::as_str).unwrap_or("");
                    let tool = block.get("name").and_then(Value::as_str).unwrap_or("");
                    let input = block.get("input").cloned().unwrap_or(Value::Null);
                    let summary = summarise(tool, &input);
                    // A Write of a large file: the event keeps the summary.
                    let input = if input.to_string().len() > self.limits.text {
                        json!({ "truncated": true, "summary": summary })
                    } else {
                        input
                    };
                    out.push(event(
                        EventType::ToolCall,
                        &ToolCall {
                            call_id: call_id.to_owned(),
                            tool: tool.to_owned(),
                            input,
                            summary,
                        },
                    ));
                }
                _ => out.push(self.raw(&block.to_string(), "unknown assistant content")),
            }
        }
        Some(out)
    }

    fn user(&mut self, value: &Value) -> Option<Vec<Output>> {
        let content = value.pointer("/message/content")?;
        let Value::Array(blocks) = content else {
            // A user text line is claw's own prompt echoed: recorded when sent.
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        for block in blocks {
            if block.get("type").and_then(Value::as_str) != Some("tool_result") {
                continue;
            }
            let call_id = block
                .get("tool_use_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let output = result_text(block.get("content").unwrap_or(&Value::Null));
            let is_error = block
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let (kept, truncated) = cut(&output, self.limits.tool_output);
            let artifact = truncated.then(|| artifact_name(&call_id));
            out.push(event(
                EventType::ToolResult,
                &ToolResult {
                    call_id: call_id.clone(),
                    output: kept.to_owned(),
                    is_error,
                    truncated,
                    full_bytes: truncated.then_some(output.len() as u64),
                    artifact: artifact.clone(),
                },
            ));
            if let Some(artifact) = artifact {
                out.push(Output::KeepWhole { artifact, output });
            }
            if let Some(change) = value
                .get("tool_use_result")
                .and_then(|r| self.file_change(r, &call_id))
            {
                out.push(change);
            }
        }
        Some(out)
    }

    /// A path as people read it: relative to the session's working
    /// directory when inside it.
    fn shown_path<'a>(&self, path: &'a str) -> &'a str {
        self.session
            .as_ref()
            .and_then(|s| s.cwd.as_deref())
            .and_then(|cwd| path.strip_prefix(cwd))
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.is_empty())
            .unwrap_or(path)
    }

    /// An edit's or a write's result as a unified diff.
    fn file_change(&self, result: &Value, call_id: &str) -> Option<Output> {
        let path = self.shown_path(result.get("filePath")?.as_str()?);
        let hunks: Vec<Hunk> = result
            .get("structuredPatch")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default();
        let created = result.get("type").and_then(Value::as_str) == Some("create");
        let (kind, diff) = if created {
            let content = result.get("content").and_then(Value::as_str).unwrap_or("");
            (ChangeKind::Create, creation_diff(path, content))
        } else if !hunks.is_empty() {
            let kind = if result.get("type").and_then(Value::as_str) == Some("update") {
                ChangeKind::Overwrite
            } else {
                ChangeKind::Edit
            };
            (kind, unified_diff(path, &hunks))
        } else {
            return None;
        };
        let (kept, truncated) = cut(&diff, self.limits.text);
        let mut diff = kept.to_owned();
        if truncated {
            diff.push_str("\n[diff cut: see the file on the coding host]\n");
        }
        Some(event(
            EventType::FileChange,
            &FileChange {
                path: path.to_owned(),
                kind,
                diff,
                call_id: Some(call_id.to_owned()),
            },
        ))
    }

    fn result(&mut self, value: &Value) -> Option<Vec<Output>> {
        let number = |pointer: &str| value.pointer(pointer).and_then(Value::as_u64);
        let outcome = value
            .get("subtype")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let is_error = value
            .get("is_error")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // The session's cost so far; a turn's is the difference.
        let total = value
            .get("total_cost_usd")
            .and_then(Value::as_f64)
            .unwrap_or(self.total_cost_usd);
        let cost = (total - self.total_cost_usd).max(0.0);
        self.total_cost_usd = self.total_cost_usd.max(total);
        let (input_tokens, output_tokens) = turn_tokens(value);
        self.total_input_tokens += input_tokens;
        self.total_output_tokens += output_tokens;
        let error = (is_error || outcome != "success").then(|| {
            value
                .get("result")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| outcome.clone())
        });
        Some(vec![event(
            EventType::TurnEnd,
            &TurnEnd {
                ok: !is_error && outcome == "success",
                outcome,
                duration_ms: number("/duration_ms"),
                cost_usd: Some(cost),
                input_tokens,
                output_tokens,
                total_cost_usd: self.total_cost_usd,
                total_input_tokens: self.total_input_tokens,
                total_output_tokens: self.total_output_tokens,
                error,
            },
        )])
    }

    fn control_request(&mut self, value: &Value) -> Option<Vec<Output>> {
        let request_id = value.get("request_id")?.as_str()?.to_owned();
        let request = value.get("request")?;
        match request.get("subtype").and_then(Value::as_str)? {
            "can_use_tool" => {
                let text =
                    |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
                Some(vec![Output::Permission(PermissionRequest {
                    request_id,
                    tool: text("tool_name").unwrap_or_default(),
                    input: request.get("input").cloned().unwrap_or(Value::Null),
                    call_id: text("tool_use_id"),
                    description: text("description"),
                    suggestions: request
                        .get("permission_suggestions")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                })])
            }
            _ => None,
        }
    }

    fn control_response(&mut self, value: &Value) -> Option<Vec<Output>> {
        let response = value.get("response")?;
        let request_id = response.get("request_id")?.as_str()?.to_owned();
        match response.get("subtype").and_then(Value::as_str)? {
            "success" if request_id == INIT_REQUEST => Some(vec![Output::Initialised]),
            // Answers to claw's interrupts need nothing.
            "success" => Some(Vec::new()),
            _ => Some(vec![Output::ControlError {
                error: response
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("the agent refused the request")
                    .to_owned(),
                request_id,
            }]),
        }
    }
}

/// A turn's tokens: the per-turn model usage when the CLI gives it, else
/// the usage it reports with the result.
fn turn_tokens(value: &Value) -> (u64, u64) {
    if let Some(models) = value
        .get("model_usage_since_last_result")
        .and_then(Value::as_object)
    {
        let sum = |field: &str| {
            models
                .values()
                .filter_map(|m| m.get(field).and_then(Value::as_u64))
                .sum()
        };
        return (sum("inputTokens"), sum("outputTokens"));
    }
    let usage = |field: &str| {
        value
            .pointer(&format!("/usage/{field}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    (usage("input_tokens"), usage("output_tokens"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(outputs: &[Output]) -> Vec<(EventType, Value)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(kind, data) => {
                    Some((*kind, serde_json::from_str(data).expect("event json")))
                }
                _ => None,
            })
            .collect()
    }

    fn one(t: &mut Translator, line: &str) -> (EventType, Value) {
        let out = events(&t.line(line));
        assert_eq!(out.len(), 1, "{line}: {out:?}");
        out.into_iter().next().expect("one")
    }

    #[test]
    fn init_becomes_the_session() {
        let (kind, data) = one(
            &mut Translator::default(),
            r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"s-1","tools":["Bash","Edit"],"model":"claude-x","permissionMode":"acceptEdits"}"#,
        );
        assert_eq!(kind, EventType::Session);
        assert_eq!(data["sessionId"], "s-1");
        assert_eq!(data["agent"], "claude");
        assert_eq!(data["tools"], json!(["Bash", "Edit"]));
        assert_eq!(data["permissionMode"], "acceptEdits");
    }

    #[test]
    fn the_session_is_recorded_again_only_when_it_changes() {
        let mut t = Translator::default();
        let init = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"s-1"}"#;
        assert_eq!(events(&t.line(init)).len(), 1);
        assert!(t.line(init).is_empty(), "every turn announces it again");
        let resumed = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"s-2"}"#;
        assert_eq!(events(&t.line(resumed)).len(), 1);
    }

    #[test]
    fn assistant_text_thinking_and_tool_calls() {
        let mut t = Translator::default();
        let out = events(&t.line(
            r#"{"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"**Done**"},{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"cargo test","description":"run"}}]}}"#,
        ));
        let kinds: Vec<EventType> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [EventType::Thinking, EventType::Message, EventType::ToolCall]
        );
        assert_eq!(out[1].1["text"], "**Done**");
        assert!(out[1].1.get("html").is_none(), "the gateway renders it");
        assert_eq!(out[2].1["callId"], "toolu_1");
        assert_eq!(out[2].1["summary"], "cargo test");
    }

    #[test]
    fn an_edit_result_gives_the_result_and_its_diff() {
        let mut t = Translator::default();
        let out = events(&t.line(
            r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_0","type":"tool_result","content":"The file a.txt has been updated successfully."}]},"tool_use_result":{"filePath":"/w/a.txt","oldString":"hello","newString":"goodbye","originalFile":"hello\n","structuredPatch":[{"oldStart":1,"oldLines":1,"newStart":1,"newLines":1,"lines":["-hello","+goodbye"]}]}}"#,
        ));
        assert_eq!(out[0].0, EventType::ToolResult);
        assert_eq!(out[0].1["isError"], false);
        assert_eq!(out[1].0, EventType::FileChange);
        assert_eq!(out[1].1["path"], "/w/a.txt");
        assert_eq!(out[1].1["kind"], "edit");
        assert_eq!(
            out[1].1["diff"],
            "--- /w/a.txt\n+++ /w/a.txt\n@@ -1,1 +1,1 @@\n-hello\n+goodbye\n"
        );
        // Inside the session's working directory, paths are relative.
        one(
            &mut t,
            r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"s"}"#,
        );
        let out = events(&t.line(
            r#"{"type":"user","message":{"content":[{"tool_use_id":"t2","type":"tool_result","content":"ok"}]},"tool_use_result":{"filePath":"/w/src/b.rs","structuredPatch":[{"oldStart":1,"oldLines":1,"newStart":1,"newLines":1,"lines":["-x","+y"]}]}}"#,
        ));
        assert_eq!(out[1].1["path"], "src/b.rs");
        assert!(
            out[1].1["diff"]
                .as_str()
                .expect("diff")
                .starts_with("--- a/src/b.rs\n+++ b/src/b.rs\n")
        );
    }

    #[test]
    fn a_write_that_creates_a_file_is_a_creation() {
        let mut t = Translator::default();
        let out = events(&t.line(
            r#"{"type":"user","message":{"content":[{"tool_use_id":"t1","type":"tool_result","content":"File created"}]},"tool_use_result":{"type":"create","filePath":"/w/n.txt","content":"one\ntwo\n","structuredPatch":[]}}"#,
        ));
        assert_eq!(out[1].1["kind"], "create");
        assert!(out[1].1["diff"].as_str().expect("diff").contains("+two\n"));
    }

    #[test]
    fn results_as_blocks_errors_and_long_output() {
        let mut t = Translator::new(Limits {
            tool_output: 10,
            text: 1000,
        });
        let out = t.line(
            r#"{"type":"user","message":{"content":[{"tool_use_id":"toolu/9","type":"tool_result","content":[{"type":"text","text":"0123456789abcdef"}],"is_error":true}]}}"#,
        );
        let (kind, data) = &events(&out)[0];
        assert_eq!(*kind, EventType::ToolResult);
        assert_eq!(data["output"], "0123456789");
        assert_eq!(data["truncated"], true);
        assert_eq!(data["fullBytes"], 16);
        assert_eq!(data["isError"], true);
        assert_eq!(data["artifact"], "tool-output-toolu-9.txt");
        assert!(out.contains(&Output::KeepWhole {
            artifact: "tool-output-toolu-9.txt".to_owned(),
            output: "0123456789abcdef".to_owned()
        }));
    }

    #[test]
    fn turns_add_up() {
        let mut t = Translator::default();
        let first = one(
            &mut t,
            r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":1200,"total_cost_usd":0.5,"model_usage_since_last_result":{"m":{"inputTokens":10,"outputTokens":3}}}"#,
        );
        assert_eq!(first.0, EventType::TurnEnd);
        assert_eq!(first.1["ok"], true);
        assert_eq!(first.1["costUsd"], 0.5);
        let second = one(
            &mut t,
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"total_cost_usd":0.75,"usage":{"input_tokens":4,"output_tokens":1}}"#,
        );
        assert_eq!(second.1["ok"], false);
        assert_eq!(second.1["costUsd"], 0.25);
        assert_eq!(second.1["totalCostUsd"], 0.75);
        assert_eq!(second.1["totalInputTokens"], 14);
        assert_eq!(second.1["totalOutputTokens"], 4);
        assert_eq!(second.1["error"], "error_max_turns");
    }

    #[test]
    fn control_lines() {
        let mut t = Translator::default();
        assert_eq!(
            t.line(
                r#"{"type":"control_response","response":{"subtype":"success","request_id":"claw-init","response":{}}}"#
            ),
            [Output::Initialised]
        );
        let asked = t.line(
            r#"{"type":"control_request","request_id":"r-7","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"touch f"},"tool_use_id":"toolu_3","description":"make f","permission_suggestions":[{"type":"addRules","rules":[{"toolName":"Bash","ruleContent":"touch:*"}],"behavior":"allow","destination":"session"}]}}"#,
        );
        assert_eq!(
            asked,
            [Output::Permission(PermissionRequest {
                request_id: "r-7".to_owned(),
                tool: "Bash".to_owned(),
                input: json!({"command": "touch f"}),
                call_id: Some("toolu_3".to_owned()),
                description: Some("make f".to_owned()),
                suggestions: vec![
                    json!({"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "touch:*"}], "behavior": "allow", "destination": "session"})
                ],
            })]
        );
        assert_eq!(
            t.line(r#"{"type":"control_cancel_request","request_id":"r-7"}"#),
            [Output::Cancelled {
                request_id: "r-7".to_owned()
            }]
        );
        let failed = t.line(
            r#"{"type":"control_response","response":{"subtype":"error","request_id":"claw-init","error":"bad"}}"#,
        );
        assert_eq!(
            failed,
            [Output::ControlError {
                request_id: "claw-init".to_owned(),
                error: "bad".to_owned()
            }]
        );
    }

    #[test]
    fn what_cannot_be_read_is_kept_raw() {
        let mut t = Translator::new(Limits {
            tool_output: 10,
            text: 20,
        });
        for (line, reason) in [
            ("not json at all", "not JSON"),
            (
                r#"{"type":"assistant","message":{"content":[{"type":"te"#,
                "not JSON",
            ),
            (
                r#"{"type":"brand_new","x":1}"#,
                "unknown message type \"brand_new\"",
            ),
            (r#"{"no":"type"}"#, "no message type"),
            (
                r#"{"type":"system","subtype":"status"}"#,
                "system message claw does not map",
            ),
        ] {
            let (kind, data) = one(&mut t, line);
            assert_eq!(kind, EventType::AgentRaw, "{line}");
            assert!(
                data["reason"].as_str().expect("reason").starts_with(reason),
                "{line}: {data}"
            );
        }
        let long = format!(r#"{{"type":"mystery","data":"{}"}}"#, "x".repeat(100));
        let (_, data) = one(&mut t, &long);
        assert_eq!(data["truncated"], true);
        assert_eq!(data["line"].as_str().expect("line").len(), 20);
        assert!(t.line("   ").is_empty());
    }

    #[test]
    fn a_five_megabyte_result_is_cut_and_kept_whole() {
        let mut t = Translator::default();
        let big = "y".repeat(5 * 1024 * 1024);
        let line = json!({"type":"user","message":{"content":[{"tool_use_id":"big","type":"tool_result","content":big}]}}).to_string();
        let out = t.line(&line);
        let (_, data) = &events(&out)[0];
        assert_eq!(data["output"].as_str().expect("output").len(), 64 * 1024);
        assert!(matches!(&out[1], Output::KeepWhole { output, .. } if output.len() == big.len()));
    }

    #[test]
    fn the_command_line_asks_everything_of_claw() {
        let args = arguments(Some("m"), "plan", &["Bash(npm test:*)".to_owned()], None);
        let joined = args.join(" ");
        assert!(joined.contains("--input-format stream-json"), "{joined}");
        assert!(
            joined.contains("--permission-prompt-tool stdio"),
            "{joined}"
        );
        assert!(joined.contains("--permission-mode plan"), "{joined}");
        assert!(joined.contains("--model m"), "{joined}");
        assert!(
            joined.ends_with("--allowedTools Bash(npm test:*)"),
            "{joined}"
        );
    }
}
