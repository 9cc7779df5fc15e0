//! Who asks: a user with a session, a process on the control socket, or
//! nobody yet (setup, login). Runners are checked by signature instead
//! ([`crate::store::RunnerAuth`]).

use claw_proto::wire::Role;

use super::{ServiceError, ServiceResult};
use crate::store::{AuditEntry, UserRow};

/// A user with a live session.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user: UserRow,
    /// HMAC of the session token: names the session in the store.
    pub session_hash: String,
    /// When the session ends (Unix ms).
    pub expires_at: i64,
    pub ip: Option<String>,
}

/// A process on the control socket, let in by its peer credentials: it
/// acts with administrator rights.
#[derive(Debug, Clone)]
pub struct LocalCaller {
    pub uid: u32,
    pub pid: i32,
    /// The uid's user name, or `uid N`.
    pub name: String,
}

#[derive(Debug, Clone)]
pub enum Caller {
    User(SessionUser),
    Local(LocalCaller),
    Anonymous { ip: Option<String> },
}

impl Caller {
    pub fn role(&self) -> Option<Role> {
        match self {
            Self::User(session) => Some(session.user.role),
            Self::Local(_) => Some(Role::Admin),
            Self::Anonymous { .. } => None,
        }
    }

    /// Refuses callers below `role`.
    pub fn require(&self, role: Role) -> ServiceResult<()> {
        match self.role() {
            Some(have) if have >= role => Ok(()),
            Some(have) => Err(ServiceError::forbidden(format!(
                "this needs the {} role; you are {}",
                role.as_str(),
                have.as_str()
            ))),
            None => Err(ServiceError::unauthenticated("not logged in")),
        }
    }

    /// The name actions are recorded under (`created_by`, the journal).
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::User(session) => Some(&session.user.username),
            Self::Local(local) => Some(&local.name),
            Self::Anonymous { .. } => None,
        }
    }

    pub fn ip(&self) -> Option<&str> {
        match self {
            Self::User(session) => session.ip.as_deref(),
            Self::Local(_) => None,
            Self::Anonymous { ip } => ip.as_deref(),
        }
    }

    /// The audit entry of an action by this caller. Control-socket callers
    /// are recorded as `uid:N` with their pid in the details.
    pub fn audit_entry(
        &self,
        action: &str,
        target: Option<&str>,
        details: Option<String>,
    ) -> AuditEntry {
        let (user_id, details) = match self {
            Self::User(session) => (Some(session.user.id.clone()), details),
            Self::Local(local) => {
                let via = format!("via control socket, pid {}", local.pid);
                (
                    Some(format!("uid:{}", local.uid)),
                    Some(match details {
                        Some(d) => format!("{d} ({via})"),
                        None => via,
                    }),
                )
            }
            Self::Anonymous { .. } => (None, details),
        };
        AuditEntry {
            user_id,
            username: self.name().map(str::to_owned),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            details,
            ip: self.ip().map(str::to_owned),
        }
    }
}
