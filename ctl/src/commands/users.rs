//! `clawctl users`: list, add, del, passwd, role, reset-totp.

use std::io::{BufRead, IsTerminal};

use claw_proto::api::{Done, UserView};
use claw_proto::control::{AddUserRequest, SetPasswordRequest, SetRoleRequest};

use super::{done, show};
use crate::cli::{PasswordInput, UsersCommand};
use crate::client::{Client, ClientError, encode};
use crate::error::CtlError;
use crate::output::table;

pub async fn run(client: &Client, cmd: UsersCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        UsersCommand::List => {
            let users: Vec<UserView> = client.get("/v1/users").await?;
            show(json, &users, |users| render_list(users))
        }
        UsersCommand::Add {
            name,
            role,
            password,
        } => {
            let request = AddUserRequest {
                password: read_password(&password, &name)?,
                username: name.clone(),
                role: Some(role),
            };
            let user: UserView = client.post("/v1/users", &request).await?;
            done(
                json,
                &user,
                &format!("user {name} created with role {}", role.as_str()),
            )
        }
        UsersCommand::Del { name } => {
            let deleted: Done = client
                .delete(&user_path(&name, ""))
                .await
                .map_err(unknown_user(&name))?;
            done(json, &deleted, &format!("user {name} deleted"))
        }
        UsersCommand::Passwd { name, password } => {
            let request = SetPasswordRequest {
                password: read_password(&password, &name)?,
            };
            let user: UserView = client
                .post(&user_path(&name, "/password"), &request)
                .await
                .map_err(unknown_user(&name))?;
            done(
                json,
                &user,
                &format!("password of {name} changed; their sessions ended"),
            )
        }
        UsersCommand::Role { name, role } => {
            let user: UserView = client
                .post(&user_path(&name, "/role"), &SetRoleRequest { role })
                .await
                .map_err(unknown_user(&name))?;
            done(json, &user, &format!("{name} is now {}", role.as_str()))
        }
        UsersCommand::ResetTotp { name } => {
            let user: UserView = client
                .post_empty(&user_path(&name, "/reset-totp"))
                .await
                .map_err(unknown_user(&name))?;
            done(
                json,
                &user,
                &format!("TOTP of {name} removed; they can enrol again after logging in"),
            )
        }
    }
}

fn user_path(name: &str, rest: &str) -> String {
    format!("/v1/users/{}{rest}", encode(name))
}

fn unknown_user(name: &str) -> impl Fn(ClientError) -> CtlError + '_ {
    move |e| {
        if e.is_not_found() {
            CtlError::Failed(format!("unknown user {name} (see clawctl users list)"))
        } else {
            CtlError::Client(e)
        }
    }
}

fn render_list(users: &[UserView]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.username.clone(),
                u.role.as_str().to_owned(),
                if u.totp_enabled { "yes" } else { "no" }.to_owned(),
                u.created_at.clone(),
            ]
        })
        .collect();
    table(&["USER", "ROLE", "TOTP", "CREATED"], &rows)
}

/// The password from stdin (`--password-stdin`) or a prompt without echo.
fn read_password(input: &PasswordInput, name: &str) -> Result<String, CtlError> {
    if input.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CtlError::Input(format!("cannot read the password from stdin: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            return Err(CtlError::Input("no password on stdin".to_owned()));
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CtlError::Input(
            "no terminal to ask for the password: use --password-stdin".to_owned(),
        ));
    }
    let first = rpassword::prompt_password(format!("Password for {name}: "))
        .map_err(|e| CtlError::Input(format!("cannot read the password: {e}")))?;
    let second = rpassword::prompt_password("Repeat it: ")
        .map_err(|e| CtlError::Input(format!("cannot read the password: {e}")))?;
    if first != second {
        return Err(CtlError::Input("the passwords differ".to_owned()));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use claw_proto::wire::Role;

    use super::*;

    #[test]
    fn users_read_as_before() {
        let user = |name: &str, role, totp| UserView {
            id: "u".into(),
            username: name.into(),
            role,
            totp_enabled: totp,
            created_at: "2026-11-30T05:00:00.000Z".into(),
        };
        assert_eq!(
            render_list(&[
                user("alice", Role::Admin, true),
                user("bob", Role::Viewer, false)
            ]),
            "USER   ROLE    TOTP  CREATED\n\
             alice  admin   yes   2026-11-30T05:00:00.000Z\n\
             bob    viewer  no    2026-11-30T05:00:00.000Z\n"
        );
    }
}
