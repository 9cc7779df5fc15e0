//! Users and login sessions.

use async_trait::async_trait;
use claw_proto::wire::Role;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{
    Change, IdentityStore, LoginFailureStore, NewSession, NewUser, SessionRow, SessionSelector,
    StoreError, UserRow, UserUpdate,
};

const USER_COLUMNS: &str =
    "id, username, role, totp_secret, created_at, password_hash, totp_pending_secret";

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let role: String = row.get(2)?;
    Ok(UserRow {
        id: row.get(0)?,
        username: row.get(1)?,
        // An unreadable role grants the least.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: row.get(4)?,
        password_hash: row.get(5)?,
        totp_secret: row.get(3)?,
        totp_pending_secret: row.get(6)?,
    })
}

fn user_by(conn: &Connection, column: &str, value: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {column} = ?1"
        ))?
        .query_row([value], user_from_row)
        .optional()?)
}

fn require_user(conn: &Connection, id: &str) -> Result<UserRow, StoreError> {
    user_by(conn, "id", id)?.ok_or_else(|| StoreError::NotFound(format!("unknown user {id}")))
}

fn admin_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(
        conn.query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| {
            r.get(0)
        })?,
    )
}

fn insert_user(conn: &Connection, user: &NewUser) -> Result<(), StoreError> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE username = ?1)",
        [&user.username],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "user name {} is taken",
            user.username
        )));
    }
    conn.execute(
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user.id, user.username, user.password_hash, user.role.as_str(), now_ms()],
    )?;
    Ok(())
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn list_sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT s.id, u.username, u.role, s.created_at, s.expires_at, s.ip \
                     FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.expires_at > ?1 ORDER BY s.created_at DESC",
                )?
                .query_map([now_ms()], |r| {
                    let role: String = r.get(2)?;
                    Ok(SessionRow {
                        id: r.get(0)?,
                        username: r.get(1)?,
                        role: Role::parse(&role).unwrap_or(Role::Viewer),
                        created_at: r.get(3)?,
                        expires_at: r.get(4)?,
                        ip: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Ends sessions; returns how many.
    async fn revoke_sessions(&self, which: SessionSelector) -> Result<usize, StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                changes.push(Change::SessionsChanged);
                revoke(conn, which)
            })
            .await
    }

    async fn user_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?))
            .await
    }

    /// Creates the first administrator; refused once any user exists.
    async fn create_first_user(&self, user: NewUser) -> Result<UserRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let count: u64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
                if count > 0 {
                    return Err(StoreError::Conflict(
                        "setup is already done: log in, or ask an administrator for an account"
                            .to_owned(),
                    ));
                }
                insert_user(conn, &user)?;
                require_user(conn, &user.id)
            })
            .await
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRow, StoreError> {
        self.writer()
            .write(move |conn| {
                insert_user(conn, &user)?;
                require_user(conn, &user.id)
            })
            .await
    }

    async fn user_by_name(&self, username: String) -> Result<Option<UserRow>, StoreError> {
        self.read(move |conn| user_by(conn, "username", &username))
            .await
    }

    async fn user(&self, id: String) -> Result<UserRow, StoreError> {
        self.read(move |conn| require_user(conn, &id)).await
    }

    async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users ORDER BY username"
                ))?
                .query_map([], user_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Changes role, password or TOTP; never leaves the system without an
    /// administrator. A new password or a TOTP reset ends the user's sessions
    /// (but `keep_session`).
    async fn update_user(&self, id: String, update: UserUpdate) -> Result<UserRow, StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                // A new role changes what the user's sockets may do; a new
                // password or TOTP ends the user's sessions.
                changes.push(Change::SessionsChanged);
                let user = require_user(conn, &id)?;
                if let Some(role) = update.role {
                    if user.role == Role::Admin && role != Role::Admin && admin_count(conn)? <= 1 {
                        return Err(StoreError::Conflict(
                            "cannot demote the last administrator".to_owned(),
                        ));
                    }
                    conn.execute("UPDATE users SET role = ?2 WHERE id = ?1", params![id, role.as_str()])?;
                }
                if let Some(hash) = &update.password_hash {
                    conn.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id, hash])?;
                }
                if update.reset_totp {
                    conn.execute(
                        "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = NULL WHERE id = ?1",
                        [&id],
                    )?;
                }
                if update.password_hash.is_some() || update.reset_totp {
                    conn.execute(
                        "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)",
                        params![id, update.keep_session],
                    )?;
                }
                require_user(conn, &id)
            })
            .await
    }

    async fn delete_user(&self, id: String) -> Result<UserRow, StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                changes.push(Change::SessionsChanged);
                let user = require_user(conn, &id)?;
                if user.role == Role::Admin && admin_count(conn)? <= 1 {
                    return Err(StoreError::Conflict(
                        "cannot delete the last administrator".to_owned(),
                    ));
                }
                conn.execute("DELETE FROM users WHERE id = ?1", [&id])?;
                Ok(user)
            })
            .await
    }

    async fn set_totp_pending(&self, user_id: String, secret: String) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                require_user(conn, &user_id)?;
                conn.execute(
                    "UPDATE users SET totp_pending_secret = ?2 WHERE id = ?1",
                    params![user_id, secret],
                )?;
                Ok(())
            })
            .await
    }

    /// Turns the pending secret into the active one.
    async fn confirm_totp(&self, user_id: String, step: u64) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                let n = conn.execute(
                    "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
                     totp_last_step = ?2 WHERE id = ?1 AND totp_pending_secret IS NOT NULL",
                    params![user_id, step],
                )?;
                if n == 0 {
                    return Err(StoreError::Conflict(
                        "no TOTP enrolment is pending: start with POST /api/auth/totp/enroll".to_owned(),
                    ));
                }
                Ok(())
            })
            .await
    }

    /// Records the time step of a used TOTP code; false if it (or a later
    /// one) was used already, so a code works once.
    async fn use_totp_step(&self, user_id: String, step: u64) -> Result<bool, StoreError> {
        self.writer()
            .write(move |conn| {
                let n = conn.execute(
                    "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 \
                     AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                    params![user_id, step],
                )?;
                Ok(n > 0)
            })
            .await
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO sessions (id, user_id, created_at, expires_at, ip) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![session.id_hash, session.user_id, now_ms(), session.expires_at, session.ip],
                )?;
                Ok(())
            })
            .await
    }

    /// The live session with this hash: its user and when it expires.
    async fn session_user(&self, id_hash: String) -> Result<Option<(UserRow, i64)>, StoreError> {
        self.read(move |conn| {
            let session: Option<(String, i64)> = conn
                .prepare_cached(
                    "SELECT user_id, expires_at FROM sessions WHERE id = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id_hash, now_ms()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match session {
                Some((user_id, expires_at)) => {
                    Ok(user_by(conn, "id", &user_id)?.map(|user| (user, expires_at)))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn delete_session(&self, id_hash: String) -> Result<(), StoreError> {
        self.writer()
            .write_changes(move |conn, changes| {
                changes.push(Change::SessionsChanged);
                conn.execute("DELETE FROM sessions WHERE id = ?1", [&id_hash])?;
                Ok(())
            })
            .await
    }
}

fn revoke(conn: &Connection, which: SessionSelector) -> Result<usize, StoreError> {
    match which {
        SessionSelector::All => Ok(conn.execute("DELETE FROM sessions", [])?),
        SessionSelector::User(name) => {
            user_by(conn, "username", &name)?
                .ok_or_else(|| StoreError::NotFound(format!("unknown user {name}")))?;
            Ok(conn.execute(
                "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
                [&name],
            )?)
        }
        SessionSelector::Id(prefix) => {
            if prefix.len() < 8 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(StoreError::NotFound(
                    "a session id is at least 8 hex characters (see clawctl sessions list)"
                        .to_owned(),
                ));
            }
            let ids: Vec<String> = conn
                .prepare("SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1")?
                .query_map([&prefix], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            match ids.as_slice() {
                [] => Err(StoreError::NotFound(format!("no session {prefix}"))),
                [id] => Ok(conn.execute("DELETE FROM sessions WHERE id = ?1", [id])?),
                _ => Err(StoreError::Conflict(format!(
                    "{prefix} matches {} sessions: give more of the id",
                    ids.len()
                ))),
            }
        }
    }
}

#[async_trait]
impl LoginFailureStore for SqliteStore {
    async fn login_hit(
        &self,
        key: String,
        limit: u32,
        window_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let counts = &self.inner.login_failures;
        counts.login_hit(key, limit, window_ms, now).await
    }

    async fn login_release(&self, key: String, at: i64) -> Result<(), StoreError> {
        self.inner.login_failures.login_release(key, at).await
    }

    async fn login_clear(&self, key: String) -> Result<(), StoreError> {
        self.inner.login_failures.login_clear(key).await
    }
}
