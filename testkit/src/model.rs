//! A scripted model server that speaks the Anthropic Messages API as the
//! Claude Code CLI uses it (`POST /v1/messages?beta=true`, streamed as
//! server-sent events), so that tests run the real CLI offline.
//!
//! Each answer is decided from the whole request, never from a call
//! counter (a resumed session sends its history again): the prompt is the
//! text of the last user message that is not only tool results; the first
//! rule whose `when` is in the prompt gives the steps; the number of tool
//! results after that prompt says which step is next. A step says some
//! text and may call a tool; the last step ends the turn.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the server says, rule by rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Script {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rule {
    /// Matches a prompt that contains it (the empty text matches any).
    pub when: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub tool: Option<ToolUse>,
    /// Holds the answer this long before its first byte (a long turn).
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolUse {
    pub name: String,
    pub input: Value,
}

impl Step {
    pub fn text(text: &str) -> Self {
        Self {
            text: Some(text.to_owned()),
            ..Self::default()
        }
    }

    pub fn tool(name: &str, input: Value) -> Self {
        Self {
            tool: Some(ToolUse {
                name: name.to_owned(),
                input,
            }),
            ..Self::default()
        }
    }
}

/// One request the server answered, as tests check them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    pub path: String,
    /// The prompt the answer was decided from.
    pub prompt: String,
    /// Tool results after the prompt.
    pub tool_results: usize,
    /// Every text the request's messages hold, in order.
    pub texts: Vec<String>,
    /// What every tool result in the request says (its text), in order.
    #[serde(default)]
    pub results: Vec<String>,
}

/// The text of each tool result a message carries.
fn results_of(message: &Value) -> Vec<String> {
    let Some(blocks) = message.get("content").and_then(Value::as_array) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| match b.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect()
}

fn texts_of(message: &Value) -> Vec<String> {
    match message.get("content") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn tool_results_in(message: &Value) -> usize {
    message
        .get("content")
        .and_then(Value::as_array)
        .map_or(0, |blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .count()
        })
}

/// The prompt and how many tool results followed it.
fn position(messages: &[Value]) -> (String, usize) {
    let mut prompt = String::new();
    let mut results = 0;
    for message in messages {
        if message.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let texts = texts_of(message);
        let own_text: Vec<&String> = texts
            .iter()
            .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
            .collect();
        if tool_results_in(message) == 0 && !own_text.is_empty() {
            prompt = own_text
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            results = 0;
        } else {
            results += tool_results_in(message);
        }
    }
    (prompt, results)
}

impl Script {
    /// The step that answers a request, and what was seen of it.
    pub fn answer(&self, path: &str, body: &Value) -> (Step, bool, Seen) {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (prompt, results) = position(&messages);
        let texts = messages.iter().flat_map(texts_of).collect();
        let seen = Seen {
            path: path.to_owned(),
            prompt: prompt.clone(),
            tool_results: results,
            texts,
            results: messages.iter().flat_map(results_of).collect(),
        };
        let steps = self
            .rules
            .iter()
            .find(|rule| prompt.contains(&rule.when))
            .map(|rule| rule.steps.as_slice())
            .unwrap_or_default();
        let (step, last) = match steps.get(results) {
            Some(step) => (step.clone(), results + 1 >= steps.len()),
            None => (Step::text("Done."), true),
        };
        (step, last, seen)
    }
}

fn sse(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// The streamed answer of one step.
fn stream(step: &Step, id: &str) -> String {
    let mut out = sse(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": format!("msg_{id}"), "type": "message", "role": "assistant",
            "model": "claude-scripted", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    );
    let mut index = 0;
    if let Some(text) = &step.text {
        out += &sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        );
        out += &sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        );
        out += &sse(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    if let Some(tool) = &step.tool {
        out += &sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": format!("toolu_{id}"), "name": tool.name, "input": {}}}),
        );
        out += &sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": tool.input.to_string()}}),
        );
        out += &sse(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
    let stop = if step.tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    out += &sse(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": 9}}),
    );
    out += &sse("message_stop", &json!({"type": "message_stop"}));
    out
}

/// The same answer, not streamed.
fn whole(step: &Step, id: &str) -> Value {
    let mut content = Vec::new();
    if let Some(text) = &step.text {
        content.push(json!({"type": "text", "text": text}));
    }
    if let Some(tool) = &step.tool {
        content.push(json!({"type": "tool_use", "id": format!("toolu_{id}"), "name": tool.name, "input": tool.input}));
    }
    json!({"id": format!("msg_{id}"), "type": "message", "role": "assistant",
           "model": "claude-scripted", "content": content,
           "stop_reason": if step.tool.is_some() { "tool_use" } else { "end_turn" },
           "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 9}})
}

struct State {
    script: Script,
    log: Option<PathBuf>,
    seen: Mutex<Vec<Seen>>,
    counter: Mutex<u64>,
}

async fn messages(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path().to_owned();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if path.contains("count_tokens") {
        return axum::Json(json!({"input_tokens": 12})).into_response();
    }
    let (step, _, seen) = state.script.answer(&path, &request);
    if let Some(log) = &state.log
        && let Ok(line) = serde_json::to_string(&seen)
    {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{line}");
        }
    }
    if let Ok(mut all) = state.seen.lock() {
        all.push(seen);
    }
    let id = {
        let mut counter = state.counter.lock().unwrap_or_else(|e| e.into_inner());
        *counter += 1;
        format!("{:04}", *counter)
    };
    if step.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            stream(&step, &id),
        )
            .into_response()
    } else {
        axum::Json(whole(&step, &id)).into_response()
    }
}

/// Serves `script` until the process ends; returns the bound address.
pub async fn serve(
    script: Script,
    listen: std::net::SocketAddr,
    log: Option<PathBuf>,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let state = Arc::new(State {
        script,
        log,
        seen: Mutex::new(Vec::new()),
        counter: Mutex::new(0),
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(messages))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((bound, task))
}

/// The requests a server logged to `log`, in order.
pub fn read_log(log: &std::path::Path) -> Vec<Seen> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> Script {
        Script {
            rules: vec![
                Rule {
                    when: "edit".to_owned(),
                    steps: vec![
                        Step::tool("Edit", json!({"file_path": "/w/a"})),
                        Step::tool("Bash", json!({"command": "true"})),
                        Step::text("done"),
                    ],
                },
                Rule {
                    when: String::new(),
                    steps: vec![Step::text("hello")],
                },
            ],
        }
    }

    fn user(content: Value) -> Value {
        json!({"role": "user", "content": content})
    }

    #[test]
    fn answers_follow_the_conversation_not_a_counter() {
        let s = script();
        let first = json!({"messages": [user(json!([
            {"type": "text", "text": "<system-reminder>x</system-reminder>"},
            {"type": "text", "text": "please edit"}]))]});
        let (step, last, seen) = s.answer("/v1/messages", &first);
        assert_eq!(step.tool.expect("tool").name, "Edit");
        assert!(!last);
        assert_eq!(seen.prompt, "please edit");
        let after_two = json!({"messages": [
            user(json!("please edit")),
            {"role": "assistant", "content": []},
            user(json!([{"type": "tool_result", "tool_use_id": "a", "content": "ok"}])),
            {"role": "assistant", "content": []},
            user(json!([{"type": "tool_result", "tool_use_id": "b", "content": "ok"}])),
        ]});
        let (step, last, _) = s.answer("/v1/messages", &after_two);
        assert_eq!(step.text.as_deref(), Some("done"));
        assert!(last);
        // A follow-up prompt starts over with its own rule.
        let follow_up = json!({"messages": [
            user(json!("please edit")),
            user(json!([{"type": "tool_result", "tool_use_id": "a", "content": "ok"}])),
            user(json!("and now hi")),
        ]});
        let (step, _, seen) = s.answer("/v1/messages", &follow_up);
        assert_eq!(step.text.as_deref(), Some("hello"));
        assert_eq!(seen.prompt, "and now hi");
    }

    #[test]
    fn streams_end_as_the_step_says() {
        let tool = stream(&Step::tool("Bash", json!({"command": "ls"})), "1");
        assert!(tool.contains("\"stop_reason\":\"tool_use\""));
        assert!(tool.contains("input_json_delta"));
        let text = stream(&Step::text("hi"), "2");
        assert!(text.contains("\"stop_reason\":\"end_turn\""));
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }
}
