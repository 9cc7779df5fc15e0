//! `clawctl sessions`: list, revoke.

use claw_proto::api::SessionView;
use claw_proto::control::{RevokeQuery, RevokeReply};

use super::{done, show};
use crate::cli::SessionsCommand;
use crate::client::{Client, encode, with_query};
use crate::error::CtlError;
use crate::output::{opt, table};

pub async fn run(client: &Client, cmd: SessionsCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        SessionsCommand::List => {
            let sessions: Vec<SessionView> = client.get("/v1/sessions").await?;
            show(json, &sessions, |sessions| render_list(sessions))
        }
        SessionsCommand::Revoke(args) => {
            let path = match (args.id, args.user, args.all) {
                (Some(id), _, _) => format!("/v1/sessions/{}", encode(&id)),
                (None, user @ Some(_), _) => {
                    with_query("/v1/sessions", &RevokeQuery { user, all: None })?
                }
                _ => with_query(
                    "/v1/sessions",
                    &RevokeQuery {
                        user: None,
                        all: Some(true),
                    },
                )?,
            };
            let reply: RevokeReply = client.delete(&path).await?;
            done(json, &reply, &format!("{} session(s) ended", reply.revoked))
        }
    }
}

fn render_list(sessions: &[SessionView]) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.chars().take(16).collect(),
                s.username.clone(),
                s.role.as_str().to_owned(),
                opt(s.ip.as_deref()),
                s.created_at.clone(),
                s.expires_at.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "USER", "ROLE", "ADDRESS", "CREATED", "EXPIRES"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use claw_proto::wire::Role;

    use super::*;

    #[test]
    fn sessions_show_a_short_id() {
        let session = SessionView {
            id: "0123456789abcdef0123456789abcdef".into(),
            username: "bob".into(),
            role: Role::Operator,
            created_at: "c".into(),
            expires_at: "e".into(),
            ip: None,
        };
        assert_eq!(
            render_list(&[session]),
            "ID                USER  ROLE      ADDRESS  CREATED  EXPIRES\n\
             0123456789abcdef  bob   operator  -        c        e\n"
        );
    }
}
