//! `clawctl reconcile [--fix]`.

use claw_proto::control::{Finding, ReconcileReply, ReconcileRequest};

use super::show;
use crate::client::Client;
use crate::error::CtlError;
use crate::output::{opt, table};

pub async fn run(client: &Client, fix: bool, json: bool) -> Result<(), CtlError> {
    let reply: ReconcileReply = client
        .post("/v1/reconcile", &ReconcileRequest { fix })
        .await?;
    show(json, &reply, |reply| render(&reply.findings))
}

fn render(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no drift found\n".to_owned();
    }
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            let action = match (&f.repair, f.fixed) {
                (None, _) => "cannot be repaired".to_owned(),
                (Some(r), true) => format!("fixed: {r}"),
                (Some(r), false) => format!("--fix would {r}"),
            };
            vec![
                f.kind.clone(),
                opt(f.run_id.as_deref()),
                f.detail.clone(),
                action,
            ]
        })
        .collect();
    table(&["KIND", "RUN", "DETAIL", "REPAIR"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_read_as_before() {
        let finding = |kind: &str, repair: Option<&str>, fixed| Finding {
            kind: kind.into(),
            run_id: Some("r".into()),
            detail: "d".into(),
            repair: repair.map(str::to_owned),
            fixed,
        };
        assert_eq!(render(&[]), "no drift found\n");
        assert_eq!(
            render(&[
                finding("sequence_gap", None, false),
                finding("stale_run", Some("set status failed"), false),
                finding("status_mismatch", Some("set status done"), true),
            ]),
            "KIND             RUN  DETAIL  REPAIR\n\
             sequence_gap     r    d       cannot be repaired\n\
             stale_run        r    d       --fix would set status failed\n\
             status_mismatch  r    d       fixed: set status done\n"
        );
    }
}
