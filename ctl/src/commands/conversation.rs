//! An agent run as a conversation in a terminal: prompts, the agent's
//! text, one line per tool call and result, turn totals. Raw output and
//! notes appear as `runs tail` shows them.

use claw_proto::agent::{
    AgentMessage, AgentRaw, ApprovalRequest, ApprovalResolved, FileChange, PromptSent,
    SessionStarted, Thinking, ToolCall, ToolResult, TurnEnd,
};
use claw_proto::wire::{EventType, ServerMessage};
use serde::de::DeserializeOwned;

fn parse<T: DeserializeOwned>(data: &str) -> Option<T> {
    serde_json::from_str(data).ok()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Counts of added and removed lines of a unified diff.
fn diff_size(diff: &str) -> (usize, usize) {
    diff.lines()
        .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
        .fold((0, 0), |(add, del), l| match l.as_bytes().first() {
            Some(b'+') => (add + 1, del),
            Some(b'-') => (add, del + 1),
            _ => (add, del),
        })
}

fn event(kind: EventType, data: &str) -> Option<String> {
    let text = match kind {
        EventType::Session => {
            let s: SessionStarted = parse(data)?;
            format!(
                "[session {} · {} · {}]",
                s.session_id.as_deref().unwrap_or("?"),
                s.model.as_deref().unwrap_or("default model"),
                s.cwd.as_deref().unwrap_or("?")
            )
        }
        EventType::Prompt => {
            let p: PromptSent = parse(data)?;
            format!(
                "\n> {}: {}",
                p.by.as_deref().unwrap_or("someone"),
                p.text.trim_end()
            )
        }
        EventType::Message => parse::<AgentMessage>(data)?.text.trim_end().to_owned(),
        EventType::Thinking => {
            format!("(thinking) {}", first_line(&parse::<Thinking>(data)?.text))
        }
        EventType::ToolCall => {
            let c: ToolCall = parse(data)?;
            format!("● {}: {}", c.tool, c.summary)
        }
        EventType::ToolResult => {
            let r: ToolResult = parse(data)?;
            let lines = r.output.lines().count();
            let what = if r.is_error {
                format!("error: {}", first_line(&r.output))
            } else if lines <= 1 {
                first_line(&r.output).to_owned()
            } else {
                format!("{lines} lines")
            };
            let whole = r
                .artifact
                .map(|a| format!(" (whole output: artifact {a})"))
                .unwrap_or_default();
            format!("  ⎿ {what}{whole}")
        }
        EventType::FileChange => {
            let f: FileChange = parse(data)?;
            let (add, del) = diff_size(&f.diff);
            format!("  ✎ {} (+{add} -{del})", f.path)
        }
        EventType::TurnEnd => {
            let t: TurnEnd = parse(data)?;
            let secs = t
                .duration_ms
                .map_or("?".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
            let outcome = if t.ok {
                String::new()
            } else {
                format!(" · {}", t.error.as_deref().unwrap_or(&t.outcome))
            };
            format!(
                "── turn: {secs} · ${:.4} · {} in / {} out tokens (session ${:.4} · {} / {}){outcome} ──",
                t.cost_usd.unwrap_or(0.0),
                t.input_tokens,
                t.output_tokens,
                t.total_cost_usd,
                t.total_input_tokens,
                t.total_output_tokens
            )
        }
        EventType::AgentRaw => {
            let r: AgentRaw = parse(data)?;
            format!("[unread agent output: {}]", r.reason)
        }
        EventType::ApprovalRequest => {
            let a: ApprovalRequest = parse(data)?;
            format!(
                "? {} waits for a decision: {} (clawctl approvals list --run RUN)",
                a.tool, a.summary
            )
        }
        EventType::ApprovalResolved => {
            let r: ApprovalResolved = parse(data)?;
            let why = r.message.map(|m| format!(": {m}")).unwrap_or_default();
            format!("  ⎿ {}{why}", r.status.as_str())
        }
        EventType::Stdout | EventType::Stderr => data.trim_end_matches('\n').to_owned(),
        EventType::Marker | EventType::Info | EventType::Error | EventType::Assist => {
            format!("[{}] {}", kind.as_str(), data.trim_end())
        }
    };
    Some(text)
}

/// The conversation's line for a message of the run's stream, if any.
pub fn line(message: &ServerMessage) -> Option<String> {
    match message {
        ServerMessage::Event {
            event_type, data, ..
        } => Some(event(*event_type, data).unwrap_or_else(|| {
            format!("[{}, unreadable] {}", event_type.as_str(), data.trim_end())
        })),
        ServerMessage::RunStatus {
            status, exit_code, ..
        } => Some(format!(
            "[run {}{}]",
            status.as_str(),
            exit_code
                .map(|c| format!(", exit code {c}"))
                .unwrap_or_default()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, data: &str) -> String {
        line(&ServerMessage::Event {
            run_id: "r".into(),
            event_id: 1,
            sequence: 1,
            event_type: kind,
            data: data.into(),
            timestamp: "t".into(),
        })
        .expect("a line")
    }

    #[test]
    fn a_conversation_reads_as_one() {
        assert_eq!(
            ev(EventType::Prompt, r#"{"text":"fix it\n","by":"admin"}"#),
            "\n> admin: fix it"
        );
        assert_eq!(
            ev(
                EventType::ToolCall,
                r#"{"callId":"c","tool":"Bash","input":{},"summary":"cargo test"}"#
            ),
            "● Bash: cargo test"
        );
        assert_eq!(
            ev(
                EventType::ToolResult,
                r#"{"callId":"c","output":"a\nb\nc","isError":false}"#
            ),
            "  ⎿ 3 lines"
        );
        assert_eq!(
            ev(
                EventType::FileChange,
                r#"{"path":"a.txt","kind":"edit","diff":"--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y\n+z\n"}"#
            ),
            "  ✎ a.txt (+2 -1)"
        );
        assert_eq!(
            ev(
                EventType::TurnEnd,
                r#"{"ok":true,"outcome":"success","durationMs":1500,"costUsd":0.01,"inputTokens":5,"outputTokens":7,"totalCostUsd":0.02,"totalInputTokens":9,"totalOutputTokens":11}"#
            ),
            "── turn: 1.5 s · $0.0100 · 5 in / 7 out tokens (session $0.0200 · 9 / 11) ──"
        );
        assert_eq!(ev(EventType::Message, r#"{"text":"**Done**"}"#), "**Done**");
        assert_eq!(
            ev(EventType::ToolCall, "not json"),
            "[tool_call, unreadable] not json"
        );
    }
}
