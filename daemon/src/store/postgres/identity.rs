//! Users and login sessions on PostgreSQL, as SQLite keeps them
//! (sqlite/identity.rs): the same rules, messages and error kinds.
//!
//! What SQLite's single writer gives for free is taken from locks here, so
//! it holds with several instances: the first user is created under a lock
//! on the users table, and a change that could leave no administrator locks
//! every administrator's row before it counts them (two instances demoting
//! the last two administrators at once: the second sees one left).

use async_trait::async_trait;
use claw_proto::wire::Role;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PgStore, big};
use crate::clock::now_ms;
use crate::store::{
    Change, IdentityStore, NewSession, NewUser, SessionRow, SessionSelector, StoreError, UserRow,
    UserUpdate,
};

const USER_COLUMNS: &str =
    "id, username, role, totp_secret, created_at, password_hash, totp_pending_secret";

fn user_from_row(row: &Row) -> UserRow {
    let role: String = row.get(2);
    UserRow {
        id: row.get(0),
        username: row.get(1),
        // An unreadable role grants the least.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: row.get(4),
        password_hash: row.get(5),
        totp_secret: row.get(3),
        totp_pending_secret: row.get(6),
    }
}

/// The user whose `column` (id or username) is `value`; with `lock`, its
/// row is locked for the transaction.
async fn user_by(
    conn: &impl GenericClient,
    column: &str,
    value: &str,
    lock: bool,
) -> Result<Option<UserRow>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {column} = $1{lock}"
        ))
        .await?;
    Ok(conn
        .query_opt(&stmt, &[&value])
        .await?
        .map(|r| user_from_row(&r)))
}

async fn require_user(
    conn: &impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<UserRow, StoreError> {
    user_by(conn, "id", id, lock)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("unknown user {id}")))
}

/// How many administrators there are, their rows locked to the end of the
/// transaction: a concurrent change of an administrator waits, and then
/// counts without the one this transaction demoted or deleted.
async fn locked_admin_count(conn: &impl GenericClient) -> Result<u64, StoreError> {
    let stmt = conn
        .prepare_cached("SELECT id FROM users WHERE role = 'admin' FOR UPDATE")
        .await?;
    Ok(conn.query(&stmt, &[]).await?.len() as u64)
}

async fn insert_user(conn: &impl GenericClient, user: &NewUser) -> Result<(), StoreError> {
    // A name taken meanwhile by another instance is taken as well: the
    // insert waits for that transaction and then does nothing.
    let stmt = conn
        .prepare_cached(
            "INSERT INTO users (id, username, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING",
        )
        .await?;
    let inserted = conn
        .execute(
            &stmt,
            &[
                &user.id,
                &user.username,
                &user.password_hash,
                &user.role.as_str(),
                &now_ms(),
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "user name {} is taken",
            user.username
        )));
    }
    Ok(())
}

fn session_from_row(r: &Row) -> SessionRow {
    let role: String = r.get(2);
    SessionRow {
        id: r.get(0),
        username: r.get(1),
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: r.get(3),
        expires_at: r.get(4),
        ip: r.get(5),
    }
}

async fn revoke(conn: &impl GenericClient, which: SessionSelector) -> Result<usize, StoreError> {
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    match which {
        SessionSelector::All => Ok(count(conn.execute("DELETE FROM sessions", &[]).await?)),
        SessionSelector::User(name) => {
            let user = user_by(conn, "username", &name, false)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("unknown user {name}")))?;
            Ok(count(
                conn.execute("DELETE FROM sessions WHERE user_id = $1", &[&user.id])
                    .await?,
            ))
        }
        SessionSelector::Id(prefix) => {
            if prefix.len() < 8 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(StoreError::NotFound(
                    "a session id is at least 8 hex characters (see clawctl sessions list)"
                        .to_owned(),
                ));
            }
            let ids: Vec<String> = conn
                .query(
                    "SELECT id FROM sessions WHERE left(id, length($1)) = $1",
                    &[&prefix],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            match ids.as_slice() {
                [] => Err(StoreError::NotFound(format!("no session {prefix}"))),
                [id] => Ok(count(
                    conn.execute("DELETE FROM sessions WHERE id = $1", &[id])
                        .await?,
                )),
                _ => Err(StoreError::Conflict(format!(
                    "{prefix} matches {} sessions: give more of the id",
                    ids.len()
                ))),
            }
        }
    }
}

#[async_trait]
impl IdentityStore for PgStore {
    async fn user_count(&self) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let n: i64 = conn
            .query_one("SELECT COUNT(*) FROM users", &[])
            .await?
            .get(0);
        Ok(super::unbig(n))
    }

    /// Creates the first administrator; refused once any user exists. The
    /// table is locked against other writers for the check and the insert,
    /// so of two instances set up at once only one succeeds.
    async fn create_first_user(&self, user: NewUser) -> Result<UserRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.batch_execute("LOCK TABLE users IN EXCLUSIVE MODE")
            .await?;
        let count: i64 = tx
            .query_one("SELECT COUNT(*) FROM users", &[])
            .await?
            .get(0);
        if count > 0 {
            return Err(StoreError::Conflict(
                "setup is already done: log in, or ask an administrator for an account".to_owned(),
            ));
        }
        insert_user(&tx, &user).await?;
        let row = require_user(&tx, &user.id, false).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn create_user(&self, user: NewUser) -> Result<UserRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        insert_user(&tx, &user).await?;
        let row = require_user(&tx, &user.id, false).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn user_by_name(&self, username: String) -> Result<Option<UserRow>, StoreError> {
        let conn = self.conn().await?;
        user_by(&conn, "username", &username, false).await
    }

    async fn user(&self, id: String) -> Result<UserRow, StoreError> {
        let conn = self.conn().await?;
        require_user(&conn, &id, false).await
    }

    async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            ))
            .await?;
        Ok(conn
            .query(&stmt, &[])
            .await?
            .iter()
            .map(user_from_row)
            .collect())
    }

    /// Changes role, password or TOTP; never leaves the system without an
    /// administrator. A new password or a TOTP reset ends the user's
    /// sessions (but `keep_session`).
    async fn update_user(&self, id: String, update: UserUpdate) -> Result<UserRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        if let Some(role) = update.role {
            // Administrators first, then the user: the same lock order
            // as every other change of an administrator.
            let admins = locked_admin_count(&tx).await?;
            let user = require_user(&tx, &id, true).await?;
            if user.role == Role::Admin && role != Role::Admin && admins <= 1 {
                return Err(StoreError::Conflict(
                    "cannot demote the last administrator".to_owned(),
                ));
            }
            tx.execute(
                "UPDATE users SET role = $2 WHERE id = $1",
                &[&id, &role.as_str()],
            )
            .await?;
        } else {
            require_user(&tx, &id, true).await?;
        }
        if let Some(hash) = &update.password_hash {
            tx.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                &[&id, hash],
            )
            .await?;
        }
        if update.reset_totp {
            tx.execute(
                "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, \
                 totp_last_step = NULL WHERE id = $1",
                &[&id],
            )
            .await?;
        }
        if update.password_hash.is_some() || update.reset_totp {
            tx.execute(
                "DELETE FROM sessions WHERE user_id = $1 AND ($2::text IS NULL OR id <> $2)",
                &[&id, &update.keep_session],
            )
            .await?;
        }
        let row = require_user(&tx, &id, false).await?;
        // A new role changes what the user's sockets may do; a new
        // password or TOTP ends the user's sessions.
        self.commit(tx, vec![Change::SessionsChanged]).await?;
        Ok(row)
    }

    async fn delete_user(&self, id: String) -> Result<UserRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let admins = locked_admin_count(&tx).await?;
        let user = require_user(&tx, &id, true).await?;
        if user.role == Role::Admin && admins <= 1 {
            return Err(StoreError::Conflict(
                "cannot delete the last administrator".to_owned(),
            ));
        }
        tx.execute("DELETE FROM users WHERE id = $1", &[&id])
            .await?;
        self.commit(tx, vec![Change::SessionsChanged]).await?;
        Ok(user)
    }

    async fn set_totp_pending(&self, user_id: String, secret: String) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "UPDATE users SET totp_pending_secret = $2 WHERE id = $1",
                &[&user_id, &secret],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("unknown user {user_id}")));
        }
        Ok(())
    }

    /// Turns the pending secret into the active one.
    async fn confirm_totp(&self, user_id: String, step: u64) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
                 totp_last_step = $2 WHERE id = $1 AND totp_pending_secret IS NOT NULL",
                &[&user_id, &big(step)],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(
                "no TOTP enrolment is pending: start with POST /api/auth/totp/enroll".to_owned(),
            ));
        }
        Ok(())
    }

    /// Records the time step of a used TOTP code; false if it (or a later
    /// one) was used already, so a code works once, on any instance (the
    /// update's row lock orders two uses of one code).
    async fn use_totp_step(&self, user_id: String, step: u64) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "UPDATE users SET totp_last_step = $2 WHERE id = $1 \
                 AND (totp_last_step IS NULL OR totp_last_step < $2)",
                &[&user_id, &big(step)],
            )
            .await?;
        Ok(n > 0)
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, ip) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &session.id_hash,
                &session.user_id,
                &now_ms(),
                &session.expires_at,
                &session.ip,
            ],
        )
        .await?;
        Ok(())
    }

    /// The live session with this hash: its user and when it expires.
    async fn session_user(&self, id_hash: String) -> Result<Option<(UserRow, i64)>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT u.id, u.username, u.role, u.totp_secret, u.created_at, u.password_hash, \
                 u.totp_pending_secret, s.expires_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id = $1 AND s.expires_at > $2",
            )
            .await?;
        Ok(conn
            .query_opt(&stmt, &[&id_hash, &now_ms()])
            .await?
            .map(|r| (user_from_row(&r), r.get(7))))
    }

    async fn delete_session(&self, id_hash: String) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute("DELETE FROM sessions WHERE id = $1", &[&id_hash])
            .await?;
        self.commit(tx, vec![Change::SessionsChanged]).await
    }

    async fn list_sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT s.id, u.username, u.role, s.created_at, s.expires_at, s.ip \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.expires_at > $1 ORDER BY s.created_at DESC",
            )
            .await?;
        Ok(conn
            .query(&stmt, &[&now_ms()])
            .await?
            .iter()
            .map(session_from_row)
            .collect())
    }

    /// Ends sessions; returns how many.
    async fn revoke_sessions(&self, which: SessionSelector) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let n = revoke(&tx, which).await?;
        self.commit(tx, vec![Change::SessionsChanged]).await?;
        Ok(n)
    }
}
