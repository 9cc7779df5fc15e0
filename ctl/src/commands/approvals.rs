//! `clawctl approvals`: the agents' requests that wait for a person (tools,
//! questions, plans): list, show, allow, deny.

use std::time::SystemTime;

use claw_proto::agent::{ApprovalKind, ApprovalStatus, DecisionScope, first_line};
use claw_proto::api::{ApprovalQuery, ApprovalView, DecisionRequest, DecisionVerb};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::show;
use crate::cli::{ApprovalFilter, ApprovalsCommand};
use crate::client::{Client, ClientError, encode, with_query};
use crate::error::CtlError;
use crate::output::{Text, age, duration, opt, table};

/// Longest summary in the list; `show` has all of it.
const SUMMARY_MAX_CHARS: usize = 60;

pub async fn run(client: &Client, cmd: ApprovalsCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        ApprovalsCommand::List { status, run } => {
            let query = ApprovalQuery {
                status: Some(status.as_str().to_owned()),
                run_id: run,
            };
            let approvals: Vec<ApprovalView> =
                client.get(&with_query("/v1/approvals", &query)?).await?;
            let now = SystemTime::now();
            show(json, &approvals, |approvals| {
                render_list(approvals, status, now)
            })
        }
        ApprovalsCommand::Show { id } => {
            let approval = get(client, &id).await?;
            let now = SystemTime::now();
            show(json, &approval, |approval| render_detail(approval, now))
        }
        ApprovalsCommand::Allow {
            id,
            session,
            message,
            answers,
        } => {
            let answers = if answers.is_empty() {
                None
            } else {
                // Questions are named by their text or header; the
                // approval says which there are.
                let approval = get(client, &id).await?;
                Some(parse_answers(&answers, questions(&approval).as_deref())?)
            };
            let request = DecisionRequest {
                decision: DecisionVerb::Allow,
                scope: session.then_some(DecisionScope::Session),
                message,
                answers,
            };
            decide(client, &id, &request, json).await
        }
        ApprovalsCommand::Deny { id, message } => {
            let request = DecisionRequest {
                decision: DecisionVerb::Deny,
                scope: None,
                message,
                answers: None,
            };
            decide(client, &id, &request, json).await
        }
    }
}

fn approval_path(id: &str, rest: &str) -> String {
    format!("/v1/approvals/{}{rest}", encode(id))
}

async fn get(client: &Client, id: &str) -> Result<ApprovalView, CtlError> {
    client
        .get(&approval_path(id, ""))
        .await
        .map_err(unknown_approval(id))
}

/// POSTs the decision and prints the approval as clawd now has it; clawd's
/// refusal (already decided, a bad request) is the error.
async fn decide(
    client: &Client,
    id: &str,
    request: &DecisionRequest,
    json: bool,
) -> Result<(), CtlError> {
    let decided: ApprovalView = client
        .post(&approval_path(id, "/decision"), request)
        .await
        .map_err(unknown_approval(id))?;
    show(json, &decided, render_decided)
}

/// An unknown approval gets a hint on how to find the right one.
fn unknown_approval(id: &str) -> impl Fn(ClientError) -> CtlError + '_ {
    move |e| {
        if e.is_not_found() {
            CtlError::Failed(format!(
                "unknown approval {id} (see clawctl approvals list --status all)"
            ))
        } else {
            CtlError::Client(e)
        }
    }
}

/// `AskUserQuestion`'s input: the questions the agent asks.
#[derive(Debug, Deserialize)]
struct QuestionsInput {
    questions: Vec<Question>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Question {
    question: String,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    options: Vec<QuestionOption>,
    #[serde(default)]
    multi_select: bool,
}

#[derive(Debug, Deserialize)]
struct QuestionOption {
    label: String,
    #[serde(default)]
    description: Option<String>,
}

/// `ExitPlanMode`'s input: the plan the agent wants to carry out.
#[derive(Debug, Deserialize)]
struct PlanInput {
    plan: String,
}

/// A question approval's questions, when its input reads as them.
fn questions(approval: &ApprovalView) -> Option<Vec<Question>> {
    if approval.kind != ApprovalKind::Question {
        return None;
    }
    QuestionsInput::deserialize(&approval.input)
        .ok()
        .map(|q| q.questions)
}

/// A plan approval's plan, when its input reads as one.
fn plan(approval: &ApprovalView) -> Option<String> {
    if approval.kind != ApprovalKind::Plan {
        return None;
    }
    PlanInput::deserialize(&approval.input).ok().map(|p| p.plan)
}

/// `--answer QUESTION=ANSWER` arguments as the decision's answers, keyed by
/// each question's text. With the approval's questions known, QUESTION is
/// one of them (its text or its header), so either may hold an `=`;
/// otherwise it ends at the first `=` and clawd judges the answers.
fn parse_answers(
    args: &[String],
    questions: Option<&[Question]>,
) -> Result<Map<String, Value>, CtlError> {
    let mut answers = Map::new();
    for arg in args {
        let (question, answer) = match questions {
            Some(questions) => split_known(arg, questions)?,
            None => arg.split_once('=').ok_or_else(|| {
                CtlError::Input(format!("--answer {arg:?}: expected QUESTION=ANSWER"))
            })?,
        };
        if answers
            .insert(question.to_owned(), Value::String(answer.to_owned()))
            .is_some()
        {
            return Err(CtlError::Input(format!(
                "question {question:?} is answered twice"
            )));
        }
    }
    Ok(answers)
}

/// `QUESTION=ANSWER` where QUESTION is a question's text or header: that
/// question's text and the answer (the longest match wins).
fn split_known<'a>(
    arg: &'a str,
    questions: &'a [Question],
) -> Result<(&'a str, &'a str), CtlError> {
    let mut best: Option<(usize, &str, &str)> = None;
    for q in questions {
        for name in [Some(q.question.as_str()), q.header.as_deref()]
            .into_iter()
            .flatten()
        {
            let Some(answer) = arg
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
            else {
                continue;
            };
            if best.is_none_or(|(len, _, _)| name.len() > len) {
                best = Some((name.len(), q.question.as_str(), answer));
            }
        }
    }
    best.map(|(_, question, answer)| (question, answer))
        .ok_or_else(|| {
            let asked: Vec<String> = questions
                .iter()
                .map(|q| match &q.header {
                    Some(header) => format!("{:?} ({header})", q.question),
                    None => format!("{:?}", q.question),
                })
                .collect();
            let given = arg.split_once('=').map_or(arg, |(q, _)| q);
            CtlError::Input(format!(
                "--answer {arg:?}: the agent asks no question {given:?}; it asks {}",
                asked.join(", ")
            ))
        })
}

/// Seconds from `from` to `to` (none when `to` is earlier), or none for a
/// time that does not read as RFC 3339.
fn secs_between(from: SystemTime, to: &str) -> Option<Option<u64>> {
    let to = humantime::parse_rfc3339_weak(to).ok()?;
    Some(to.duration_since(from).ok().map(|d| d.as_secs()))
}

/// How long until `at`: "9m 58s", "overdue" once past, or "-".
fn left(at: &str, now: SystemTime) -> String {
    match secs_between(now, at) {
        Some(Some(secs)) => duration(secs),
        Some(None) => "overdue".to_owned(),
        None => "-".to_owned(),
    }
}

fn render_list(approvals: &[ApprovalView], filter: ApprovalFilter, now: SystemTime) -> String {
    // The inbox counts down to each request's timeout; history counts
    // up from when it was asked.
    let pending = filter == ApprovalFilter::Only(ApprovalStatus::Pending);
    let rows: Vec<Vec<String>> = approvals
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.run_id.clone(),
                a.kind.as_str().to_owned(),
                a.tool.clone(),
                first_line(&a.summary, SUMMARY_MAX_CHARS),
                a.status.as_str().to_owned(),
                if pending {
                    left(&a.expires_at, now)
                } else {
                    age(&a.created_at, now)
                },
                opt(a.decided_by.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "RUN",
            "KIND",
            "TOOL",
            "SUMMARY",
            "STATUS",
            if pending { "EXPIRES IN" } else { "AGE" },
            "DECIDED BY",
        ],
        &rows,
    )
}

fn field(out: &mut Text, label: &str, value: impl std::fmt::Display) {
    out.line(format_args!("{:<12}{value}", format!("{label}:")));
}

/// An answer as people read it: text as it is, anything else as JSON.
fn answer_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn scope_text(scope: Option<DecisionScope>) -> &'static str {
    match scope {
        Some(DecisionScope::Session) => "session (this tool for the rest of the run)",
        Some(DecisionScope::Once) => "once",
        None => "-",
    }
}

fn render_detail(a: &ApprovalView, now: SystemTime) -> String {
    let mut out = Text::new();
    field(&mut out, "Approval", &a.id);
    field(&mut out, "Run", &a.run_id);
    field(&mut out, "Request", &a.request_id);
    field(&mut out, "Kind", a.kind.as_str());
    field(&mut out, "Tool", &a.tool);
    field(&mut out, "Summary", &a.summary);
    field(&mut out, "Reason", opt(a.reason.as_deref()));
    field(&mut out, "Status", a.status.as_str());
    field(
        &mut out,
        "Created",
        format_args!("{} ({} ago)", a.created_at, age(&a.created_at, now)),
    );
    if a.status == ApprovalStatus::Pending {
        field(
            &mut out,
            "Expires",
            format_args!("{} (in {})", a.expires_at, left(&a.expires_at, now)),
        );
    } else {
        field(&mut out, "Expires", &a.expires_at);
    }
    field(&mut out, "Decided by", opt(a.decided_by.as_deref()));
    field(&mut out, "Decided at", opt(a.decided_at.as_deref()));
    field(&mut out, "Scope", scope_text(a.scope));
    field(&mut out, "Message", opt(a.message.as_deref()));
    field(
        &mut out,
        "Delivered",
        if a.delivered { "yes" } else { "no" },
    );
    if let Some(questions) = questions(a) {
        out.line("\nQuestions:");
        for (i, q) in questions.iter().enumerate() {
            let header = q
                .header
                .as_ref()
                .map(|h| format!(" [{h}]"))
                .unwrap_or_default();
            let pick = if q.multi_select {
                "pick any"
            } else {
                "pick one"
            };
            out.line(format_args!("  {}. {}{header} ({pick})", i + 1, q.question));
            for option in &q.options {
                match &option.description {
                    Some(description) => {
                        out.line(format_args!("     - {}: {description}", option.label))
                    }
                    None => out.line(format_args!("     - {}", option.label)),
                };
            }
        }
    } else if let Some(plan) = plan(a) {
        out.line("\nPlan:");
        out.line(plan.trim_end());
    } else {
        out.line("\nInput:");
        out.line(serde_json::to_string_pretty(&a.input).unwrap_or_else(|_| a.input.to_string()));
    }
    if let Some(answers) = &a.answers {
        out.line("\nAnswers:");
        for (question, answer) in answers {
            out.line(format_args!("  {question} = {}", answer_text(answer)));
        }
    }
    if let Some(diff) = &a.diff {
        out.line("\nDiff:");
        out.push(diff);
        if !diff.ends_with('\n') {
            out.line("");
        }
    }
    if !a.suggestions.is_empty() {
        out.line("\nSuggestions (what allowing for the session adds):");
        for suggestion in &a.suggestions {
            out.line(format_args!("  {suggestion}"));
        }
    }
    out.into_string()
}

/// The approval as a decision left it: what, who, and whether the agent
/// has it yet.
fn render_decided(a: &ApprovalView) -> String {
    let mut out = Text::new();
    let scope = match a.scope {
        Some(DecisionScope::Session) if a.status == ApprovalStatus::Allowed => {
            " for the rest of the run"
        }
        _ => "",
    };
    out.line(format_args!(
        "approval {} {} by {}{scope} at {}",
        a.id,
        a.status.as_str(),
        opt(a.decided_by.as_deref()),
        opt(a.decided_at.as_deref())
    ));
    field(
        &mut out,
        "Request",
        format_args!("{}: {}", a.tool, first_line(&a.summary, SUMMARY_MAX_CHARS)),
    );
    if let Some(message) = &a.message {
        field(&mut out, "Message", message);
    }
    for (question, answer) in a.answers.iter().flatten() {
        field(
            &mut out,
            "Answer",
            format_args!("{question} = {}", answer_text(answer)),
        );
    }
    field(
        &mut out,
        "Delivered",
        if a.delivered {
            "yes"
        } else {
            "not yet: the agent gets it from its runner"
        },
    );
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T05:01:00Z.
    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-11-30T05:01:00Z").expect("time")
    }

    fn approval(id: &str) -> ApprovalView {
        ApprovalView {
            id: id.into(),
            run_id: "r1".into(),
            request_id: "req-1".into(),
            kind: ApprovalKind::Tool,
            tool: "Bash".into(),
            input: serde_json::json!({"command": "touch f"}),
            summary: "touch f".into(),
            diff: None,
            reason: None,
            suggestions: Vec::new(),
            status: ApprovalStatus::Pending,
            created_at: "2026-11-30T05:00:00.000Z".into(),
            expires_at: "2026-11-30T05:10:00.000Z".into(),
            decided_by: None,
            decided_at: None,
            scope: None,
            message: None,
            answers: None,
            delivered: false,
        }
    }

    fn question() -> ApprovalView {
        ApprovalView {
            kind: ApprovalKind::Question,
            tool: "AskUserQuestion".into(),
            input: serde_json::json!({"questions": [{
                "question": "Which colour?",
                "header": "Colour",
                "options": [
                    {"label": "Red", "description": "warm"},
                    {"label": "Blue", "description": "cool"}
                ],
                "multiSelect": false
            }, {
                "question": "a=b?",
                "options": [{"label": "yes"}],
                "multiSelect": true
            }]}),
            summary: "Which colour?".into(),
            ..approval("q1")
        }
    }

    fn decided(a: ApprovalView) -> ApprovalView {
        ApprovalView {
            status: ApprovalStatus::Allowed,
            decided_by: Some("bob".into()),
            decided_at: Some("2026-11-30T05:00:30.000Z".into()),
            scope: Some(DecisionScope::Session),
            ..a
        }
    }

    #[test]
    fn lists_read_as_before() {
        let long = ApprovalView {
            summary: format!("{}\nsecond line", "x".repeat(70)),
            expires_at: "2026-11-30T05:00:59.000Z".into(),
            ..approval("a2")
        };
        assert_eq!(
            render_list(
                &[approval("a1"), long],
                ApprovalFilter::Only(ApprovalStatus::Pending),
                now()
            ),
            format!(
                "ID  RUN  KIND  TOOL  SUMMARY{}  STATUS   EXPIRES IN  DECIDED BY\n\
                 a1  r1   tool  Bash  touch f{}  pending  9m 0s       -\n\
                 a2  r1   tool  Bash  {}…  pending  overdue     -\n",
                " ".repeat(54),
                " ".repeat(54),
                "x".repeat(60)
            )
        );
        assert_eq!(
            render_list(&[decided(approval("a1"))], ApprovalFilter::All, now()),
            "ID  RUN  KIND  TOOL  SUMMARY  STATUS   AGE    DECIDED BY\n\
             a1  r1   tool  Bash  touch f  allowed  1m 0s  bob\n"
        );
        assert_eq!(
            render_list(&[], ApprovalFilter::Only(ApprovalStatus::Denied), now()),
            "ID  RUN  KIND  TOOL  SUMMARY  STATUS  AGE  DECIDED BY\n(none)\n"
        );
    }

    #[test]
    fn details_read_as_before() {
        assert_eq!(
            render_detail(&approval("a1"), now()),
            "Approval:   a1\n\
             Run:        r1\n\
             Request:    req-1\n\
             Kind:       tool\n\
             Tool:       Bash\n\
             Summary:    touch f\n\
             Reason:     -\n\
             Status:     pending\n\
             Created:    2026-11-30T05:00:00.000Z (1m 0s ago)\n\
             Expires:    2026-11-30T05:10:00.000Z (in 9m 0s)\n\
             Decided by: -\n\
             Decided at: -\n\
             Scope:      -\n\
             Message:    -\n\
             Delivered:  no\n\
             \n\
             Input:\n\
             {\n  \"command\": \"touch f\"\n}\n"
        );
        let edit = ApprovalView {
            tool: "Edit".into(),
            input: serde_json::json!({"file_path": "a.txt"}),
            summary: "a.txt".into(),
            diff: Some("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y".into()),
            reason: Some("to fix it".into()),
            suggestions: vec![serde_json::json!({"type": "setMode", "mode": "acceptEdits"})],
            message: Some("go on".into()),
            delivered: true,
            ..decided(approval("e1"))
        };
        let text = render_detail(&edit, now());
        assert!(
            text.contains(
                "Reason:     to fix it\n\
                 Status:     allowed\n\
                 Created:    2026-11-30T05:00:00.000Z (1m 0s ago)\n\
                 Expires:    2026-11-30T05:10:00.000Z\n\
                 Decided by: bob\n\
                 Decided at: 2026-11-30T05:00:30.000Z\n\
                 Scope:      session (this tool for the rest of the run)\n\
                 Message:    go on\n\
                 Delivered:  yes\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "\nInput:\n{\n  \"file_path\": \"a.txt\"\n}\n\
                 \nDiff:\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y\n\
                 \nSuggestions (what allowing for the session adds):\n\
                 \x20 {\"mode\":\"acceptEdits\",\"type\":\"setMode\"}\n"
            ),
            "{text}"
        );
        let mut answers = Map::new();
        answers.insert("Which colour?".into(), "Blue".into());
        let asked = ApprovalView {
            answers: Some(answers),
            ..decided(question())
        };
        let text = render_detail(&asked, now());
        assert!(
            text.ends_with(
                "Delivered:  no\n\
                 \n\
                 Questions:\n\
                 \x20 1. Which colour? [Colour] (pick one)\n\
                 \x20    - Red: warm\n\
                 \x20    - Blue: cool\n\
                 \x20 2. a=b? (pick any)\n\
                 \x20    - yes\n\
                 \n\
                 Answers:\n\
                 \x20 Which colour? = Blue\n"
            ),
            "{text}"
        );
        let plan = ApprovalView {
            kind: ApprovalKind::Plan,
            tool: "ExitPlanMode".into(),
            input: serde_json::json!({"plan": "1. Read\n2. Fix\n"}),
            ..approval("p1")
        };
        assert!(
            render_detail(&plan, now()).ends_with("Delivered:  no\n\nPlan:\n1. Read\n2. Fix\n")
        );
        // A question whose input is not questions shows the input.
        let odd = ApprovalView {
            input: serde_json::json!("?"),
            ..question()
        };
        assert!(render_detail(&odd, now()).ends_with("\nInput:\n\"?\"\n"));
    }

    #[test]
    fn decisions_read_as_before() {
        assert_eq!(
            render_decided(&decided(approval("a1"))),
            "approval a1 allowed by bob for the rest of the run at 2026-11-30T05:00:30.000Z\n\
             Request:    Bash: touch f\n\
             Delivered:  not yet: the agent gets it from its runner\n"
        );
        let mut answers = Map::new();
        answers.insert("Which colour?".into(), "Blue".into());
        let denied = ApprovalView {
            status: ApprovalStatus::Denied,
            scope: Some(DecisionScope::Once),
            message: Some("not now".into()),
            answers: Some(answers),
            delivered: true,
            ..decided(question())
        };
        assert_eq!(
            render_decided(&denied),
            "approval q1 denied by bob at 2026-11-30T05:00:30.000Z\n\
             Request:    AskUserQuestion: Which colour?\n\
             Message:    not now\n\
             Answer:     Which colour? = Blue\n\
             Delivered:  yes\n"
        );
    }

    #[test]
    fn answers_name_their_questions() {
        let asked = questions(&question()).expect("questions");
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let answers =
            parse_answers(&args(&["Colour=Blue", "a=b?=yes"]), Some(&asked)).expect("answers");
        assert_eq!(
            Value::Object(answers),
            serde_json::json!({"Which colour?": "Blue", "a=b?": "yes"})
        );
        let answers =
            parse_answers(&args(&["Which colour?=Red=ish"]), Some(&asked)).expect("answers");
        assert_eq!(
            Value::Object(answers),
            serde_json::json!({"Which colour?": "Red=ish"})
        );
        let e = parse_answers(&args(&["Size=L"]), Some(&asked)).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "--answer \"Size=L\": the agent asks no question \"Size\"; \
             it asks \"Which colour?\" (Colour), \"a=b?\""
        );
        let e = parse_answers(&args(&["Colour=Red", "Which colour?=Blue"]), Some(&asked))
            .expect_err("twice");
        assert_eq!(
            e.to_string(),
            "question \"Which colour?\" is answered twice"
        );
        // Without the questions, the question ends at the first `=`.
        let answers = parse_answers(&args(&["Q=A=B"]), None).expect("answers");
        assert_eq!(Value::Object(answers), serde_json::json!({"Q": "A=B"}));
        assert!(questions(&approval("a1")).is_none());
    }
}
