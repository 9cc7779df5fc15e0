//! `clawctl audit`: list, verify.

use claw_proto::api::{AuditView, ChainReport};
use claw_proto::control::AuditListQuery;

use super::{print_json, show};
use crate::cli::AuditCommand;
use crate::client::{Client, with_query};
use crate::error::CtlError;
use crate::output::{opt, table};

pub async fn run(client: &Client, cmd: AuditCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        AuditCommand::List {
            user,
            action,
            since,
            limit,
        } => {
            let query = AuditListQuery {
                user,
                action,
                since,
                limit: Some(limit),
            };
            let rows: Vec<AuditView> = client.get(&with_query("/v1/audit", &query)?).await?;
            show(json, &rows, |rows| render_list(rows))
        }
        AuditCommand::Verify => {
            let report: ChainReport = client.get("/v1/audit/verify").await?;
            if json {
                print_json(&report)?;
            }
            if !report.ok {
                return Err(CtlError::Failed(broken(&report)));
            }
            if !json {
                println!("audit log intact: {} entries verified", report.checked);
            }
            Ok(())
        }
    }
}

fn render_list(rows: &[AuditView]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.timestamp.clone(),
                opt(r.username.as_deref()),
                r.action.clone(),
                opt(r.target.as_deref()),
                opt(r.ip.as_deref()),
                opt(r.details.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "ID", "TIME", "USER", "ACTION", "TARGET", "ADDRESS", "DETAILS",
        ],
        &rows,
    )
}

fn broken(report: &ChainReport) -> String {
    format!(
        "audit log broken at entry {}: {} ({} entries before it verified)",
        opt(report.broken_at),
        opt(report.reason.as_deref()),
        report.checked
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_reads_as_before() {
        let row = AuditView {
            id: 12,
            timestamp: "t".into(),
            user_id: Some("uid:0".into()),
            username: Some("root".into()),
            action: "run.create".into(),
            target: Some("r1".into()),
            details: None,
            ip: None,
            hash: "h".into(),
        };
        assert_eq!(
            render_list(&[row]),
            "ID  TIME  USER  ACTION      TARGET  ADDRESS  DETAILS\n\
             12  t     root  run.create  r1      -        -\n"
        );
        let report = ChainReport {
            ok: false,
            checked: 4,
            broken_at: Some(5),
            reason: Some("row content does not match its hash".into()),
        };
        assert_eq!(
            broken(&report),
            "audit log broken at entry 5: row content does not match its hash \
             (4 entries before it verified)"
        );
    }
}
