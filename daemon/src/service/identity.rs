//! Accounts: first-run setup, login, sessions, TOTP, user management.

use claw_proto::api::{
    AuthStatus, CreateUserRequest, LoginReply, LoginRequest, SessionView, SetupReply, SetupRequest,
    TotpEnrolment, UserChange, UserView,
};
use claw_proto::wire::Role;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{Caller, Record, ServiceError, ServiceResult, SessionUser, views};
use std::sync::Arc;

use crate::app::{App, LOGIN_WINDOW, Settings};
use crate::auth;
use crate::clock::{iso, now_ms};
use crate::store::{
    AnyStore, NewSession, NewUser, SETUP_TOKEN_KEY, SessionSelector, UserRow, UserUpdate,
    token_hash,
};

/// A new session: the token goes to the client (as a cookie), once.
pub struct NewLogin {
    pub reply: LoginReply,
    pub token: String,
    pub lifetime_secs: u64,
}

/// Which user an administrator names: by id (the web API) or by name (the
/// control socket).
pub enum UserRef {
    Id(String),
    Name(String),
}

/// One login or setup attempt, counted against the failure limits before
/// its password or token is checked, so that concurrent guesses cannot all
/// slip under the limit. Dropped, it gives its count back (it was no
/// guess: a right password awaiting its TOTP code, a busy gateway, a store
/// error); [`failed`](Self::failed) keeps it counted, [`succeeded`](Self::succeeded)
/// also clears the user's failures. The counts are the store's, so that
/// with several gateways on one database the limits hold over all.
struct Attempt {
    store: AnyStore,
    /// The keys counted (`ip:…`, `user:…`) and when.
    counted: Vec<String>,
    at: i64,
    user_key: Option<String>,
}

fn too_many_failures() -> ServiceError {
    ServiceError::throttled(
        "too many failed logins: wait 15 minutes or ask an administrator",
        15 * 60,
    )
}

impl Attempt {
    async fn reserve(
        store: &AnyStore,
        settings: &Settings,
        ip: Option<&str>,
        user: Option<String>,
    ) -> ServiceResult<Self> {
        let max = settings.config.login_max_failures;
        let window_ms = i64::try_from(LOGIN_WINDOW.as_millis()).unwrap_or(i64::MAX);
        let user_key = user.map(|u| format!("user:{u}"));
        // Per address a little more than per user: several people may
        // share one address.
        let limits = ip
            .and_then(|i| i.parse::<std::net::IpAddr>().ok())
            .map(|ip| (format!("ip:{ip}"), max.saturating_mul(2)))
            .into_iter()
            .chain(user_key.clone().map(|key| (key, max)));
        let mut attempt = Self {
            store: Arc::clone(store),
            counted: Vec::new(),
            at: now_ms(),
            user_key,
        };
        for (key, limit) in limits {
            if !store
                .login_hit(key.clone(), limit, window_ms, attempt.at)
                .await?
            {
                // Dropped, the attempt gives back what it counted.
                return Err(too_many_failures());
            }
            attempt.counted.push(key);
        }
        Ok(attempt)
    }

    fn failed(mut self) {
        self.counted.clear();
    }

    /// Clears the user's failures; the address's count is given back.
    async fn succeeded(mut self) -> ServiceResult<()> {
        if let Some(key) = self.user_key.take() {
            self.counted.retain(|k| *k != key);
            self.store.login_clear(key).await?;
        }
        Ok(())
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.counted.is_empty() {
            return;
        }
        let (store, keys, at) = (
            Arc::clone(&self.store),
            std::mem::take(&mut self.counted),
            self.at,
        );
        // A drop cannot wait; the give-back is best effort (an error
        // leaves one attempt counted until the window passes).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for key in keys {
                    if let Err(e) = store.login_release(key, at).await {
                        tracing::warn!(error = %e, "a login attempt could not be given back");
                    }
                }
            });
        }
    }
}

fn check_new_credentials(username: &str, password: &str) -> ServiceResult<()> {
    if !auth::valid_username(username) {
        return Err(ServiceError::invalid(auth::USERNAME_RULE));
    }
    if let Some(problem) = auth::password_problem(password) {
        return Err(ServiceError::invalid(problem));
    }
    Ok(())
}

impl App {
    pub async fn auth_status(&self) -> ServiceResult<AuthStatus> {
        Ok(AuthStatus {
            setup_required: self.store.user_count().await? == 0,
            local_auth_enabled: true,
        })
    }

    /// No setup is needed once a user exists.
    async fn setup_done(&self) {
        let had_token = self
            .setup_token
            .lock()
            .map(|mut token| token.take().is_some())
            .unwrap_or(false);
        if had_token {
            let _ = std::fs::remove_file(self.data_dir.join("setup-token"));
            // Other instances find a user and refuse setup anyway.
            if let Err(e) = self.store.delete_meta(SETUP_TOKEN_KEY).await {
                tracing::warn!(error = %e, "the used setup token stays recorded");
            }
        }
    }

    /// Creates the first administrator with the setup token.
    pub async fn setup(&self, caller: &Caller, request: SetupRequest) -> ServiceResult<SetupReply> {
        let expected = self
            .setup_token
            .lock()
            .map_err(|_| ServiceError::internal())?
            .clone();
        let Some(expected) = expected else {
            return Err(ServiceError::conflict(
                "setup is already done: log in, or ask an administrator for an account",
            ));
        };
        let settings = self.settings();
        // Wrong tokens count against the address like failed logins.
        let attempt = Attempt::reserve(&self.store, &settings, caller.ip(), None).await?;
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(token_hash(request.setup_token.trim()).as_bytes()),
        ) {
            attempt.failed();
            let name = auth::loggable_username(&request.username);
            tracing::warn!(USER = %name, ACTION = "setup.failed", "wrong setup token");
            let mut entry =
                caller.audit_entry("setup.failed", None, Some("wrong setup token".to_owned()));
            entry.username = Some(name.into_owned());
            self.store.audit(entry).await?;
            return Err(ServiceError::forbidden(
                "wrong setup token: it is in the setup-token file of the data directory",
            ));
        }
        check_new_credentials(&request.username, &request.password)?;
        let password_hash = self.hashing.hash(request.password).await?;
        let user = self
            .store
            .create_first_user(NewUser {
                id: uuid::Uuid::new_v4().to_string(),
                username: request.username,
                password_hash,
                role: Role::Admin,
            })
            .await?;
        attempt.succeeded().await?;
        self.setup_done().await;
        let mut reply = SetupReply {
            ok: true,
            user_id: user.id.clone(),
            totp_uri: None,
            qr_svg: None,
        };
        if request.enable_totp {
            let secret = auth::new_totp_secret()?;
            // Active at once: the first login then asks for a code.
            self.store
                .set_totp_pending(user.id.clone(), secret.clone())
                .await?;
            self.store.confirm_totp(user.id.clone(), 0).await?;
            let uri = auth::totp_uri(&secret, &user.username)?;
            reply.qr_svg = crate::qr::svg(&uri);
            reply.totp_uri = Some(uri);
        }
        let by = Caller::User(SessionUser {
            user: user.clone(),
            session_hash: String::new(),
            expires_at: 0,
            ip: caller.ip().map(str::to_owned),
        });
        self.record(
            &by,
            Record {
                action: "setup.completed",
                target: None,
                run_id: None,
                details: None,
            },
        )
        .await?;
        Ok(reply)
    }

    /// Logs and audits a failed login under a name that is safe to keep.
    async fn login_failed(
        &self,
        caller: &Caller,
        username: &str,
        reason: &'static str,
    ) -> ServiceResult<()> {
        let name = auth::loggable_username(username);
        tracing::warn!(USER = %name, ACTION = "login.failed", reason, "failed login");
        let mut entry = caller.audit_entry("login.failed", None, Some(reason.to_owned()));
        entry.username = Some(name.into_owned());
        self.store.audit(entry).await?;
        Ok(())
    }

    pub async fn login(&self, caller: &Caller, request: LoginRequest) -> ServiceResult<NewLogin> {
        let settings = self.settings();
        // A name that is no valid account name cannot exist: it is refused
        // without the password check, and only the address counts it.
        let valid_name = auth::valid_username(&request.username);
        let attempt = Attempt::reserve(
            &self.store,
            &settings,
            caller.ip(),
            valid_name.then(|| request.username.to_ascii_lowercase()),
        )
        .await?;
        let user = match valid_name {
            true => self.store.user_by_name(request.username.clone()).await?,
            false => None,
        };
        let password_ok = valid_name
            && self
                .hashing
                .verify(
                    request.password,
                    user.as_ref().map(|u| u.password_hash.clone()),
                )
                .await?;
        let (true, Some(user)) = (password_ok, user) else {
            attempt.failed();
            self.login_failed(caller, &request.username, "bad user name or password")
                .await?;
            return Err(ServiceError::unauthenticated("wrong user name or password"));
        };
        if let Some(secret) = &user.totp_secret {
            let Some(code) = request.totp_code.filter(|c| !c.trim().is_empty()) else {
                return Err(ServiceError::unauthenticated("a TOTP code is needed")
                    .with("totpRequired", json!(true)));
            };
            let step = auth::totp_check(secret, &user.username, &code);
            let fresh = match step {
                Some(step) => self.store.use_totp_step(user.id.clone(), step).await?,
                None => false,
            };
            if !fresh {
                attempt.failed();
                self.login_failed(caller, &request.username, "bad TOTP code")
                    .await?;
                return Err(
                    ServiceError::unauthenticated("wrong or already used TOTP code")
                        .with("totpRequired", json!(true)),
                );
            }
        }
        attempt.succeeded().await?;
        let by = Caller::User(SessionUser {
            user: user.clone(),
            session_hash: String::new(),
            expires_at: 0,
            ip: caller.ip().map(str::to_owned),
        });
        self.record(
            &by,
            Record {
                action: "login.success",
                target: None,
                run_id: None,
                details: None,
            },
        )
        .await?;
        self.start_session(&settings, &user, caller.ip()).await
    }

    async fn start_session(
        &self,
        settings: &Settings,
        user: &UserRow,
        ip: Option<&str>,
    ) -> ServiceResult<NewLogin> {
        let token = auth::new_session_token()?;
        let lifetime = settings.config.session_lifetime_secs;
        let expires_at = now_ms()
            .saturating_add(i64::try_from(lifetime.saturating_mul(1000)).unwrap_or(i64::MAX));
        self.store
            .create_session(NewSession {
                id_hash: auth::session_id_hash(self.secrets.auth().expose(), &token),
                user_id: user.id.clone(),
                expires_at,
                ip: ip.map(str::to_owned),
            })
            .await?;
        Ok(NewLogin {
            reply: LoginReply {
                ok: true,
                user: views::user_summary(user),
                expires_at: iso(expires_at),
            },
            token,
            lifetime_secs: lifetime,
        })
    }

    /// The user behind a session token.
    pub async fn authenticate(
        &self,
        token: Option<String>,
        ip: Option<String>,
    ) -> ServiceResult<SessionUser> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(ServiceError::unauthenticated("not logged in"));
        };
        let session_hash = auth::session_id_hash(self.secrets.auth().expose(), &token);
        match self.store.session_user(session_hash.clone()).await? {
            Some((user, expires_at)) => Ok(SessionUser {
                user,
                session_hash,
                expires_at,
                ip,
            }),
            None => Err(ServiceError::unauthenticated(
                "session expired or unknown: log in again",
            )),
        }
    }

    pub async fn logout(&self, session: &SessionUser) -> ServiceResult<()> {
        self.store
            .delete_session(session.session_hash.clone())
            .await?;
        self.record(
            &Caller::User(session.clone()),
            Record {
                action: "logout",
                target: None,
                run_id: None,
                details: None,
            },
        )
        .await
    }

    /// A new session for the same user; the old one ends.
    pub async fn refresh(&self, session: &SessionUser) -> ServiceResult<NewLogin> {
        self.store
            .delete_session(session.session_hash.clone())
            .await?;
        self.start_session(&self.settings(), &session.user, session.ip.as_deref())
            .await
    }

    pub async fn totp_enroll(&self, session: &SessionUser) -> ServiceResult<TotpEnrolment> {
        let secret = auth::new_totp_secret()?;
        let uri = auth::totp_uri(&secret, &session.user.username)?;
        self.store
            .set_totp_pending(session.user.id.clone(), secret.clone())
            .await?;
        Ok(TotpEnrolment {
            ok: true,
            qr_svg: crate::qr::svg(&uri).unwrap_or_default(),
            secret,
            uri,
        })
    }

    pub async fn totp_confirm(&self, session: &SessionUser, code: &str) -> ServiceResult<()> {
        let fresh = self.store.user(session.user.id.clone()).await?;
        let Some(pending) = fresh.totp_pending_secret else {
            return Err(ServiceError::conflict(
                "no TOTP enrolment is pending: start with POST /api/auth/totp/enroll",
            ));
        };
        let Some(step) = auth::totp_check(&pending, &fresh.username, code) else {
            return Err(ServiceError::invalid(
                "wrong TOTP code: check the authenticator's clock",
            ));
        };
        self.store
            .confirm_totp(session.user.id.clone(), step)
            .await?;
        self.record(
            &Caller::User(session.clone()),
            Record {
                action: "totp.enroll",
                target: Some(&session.user.id),
                run_id: None,
                details: None,
            },
        )
        .await
    }

    /// Removes one's own TOTP; needs the password.
    pub async fn totp_remove(
        &self,
        session: &SessionUser,
        password: Option<String>,
    ) -> ServiceResult<()> {
        let Some(password) = password else {
            return Err(ServiceError::invalid(
                "give your password to remove TOTP (an administrator can reset it instead)",
            ));
        };
        if !self
            .hashing
            .verify(password, Some(session.user.password_hash.clone()))
            .await?
        {
            return Err(ServiceError::forbidden("wrong password"));
        }
        self.store
            .update_user(
                session.user.id.clone(),
                UserUpdate {
                    reset_totp: true,
                    keep_session: Some(session.session_hash.clone()),
                    ..Default::default()
                },
            )
            .await?;
        self.record(
            &Caller::User(session.clone()),
            Record {
                action: "totp.remove",
                target: Some(&session.user.id),
                run_id: None,
                details: None,
            },
        )
        .await
    }

    pub async fn list_users(&self, caller: &Caller) -> ServiceResult<Vec<UserView>> {
        caller.require(Role::Admin)?;
        let rows = self.store.list_users().await?;
        Ok(rows.into_iter().map(views::user).collect())
    }

    pub async fn create_user(
        &self,
        caller: &Caller,
        request: CreateUserRequest,
    ) -> ServiceResult<UserView> {
        caller.require(Role::Admin)?;
        check_new_credentials(&request.username, &request.password)?;
        let role = request.role.unwrap_or(Role::Viewer);
        let created = self
            .store
            .create_user(NewUser {
                id: uuid::Uuid::new_v4().to_string(),
                username: request.username,
                password_hash: self.hashing.hash(request.password).await?,
                role,
            })
            .await?;
        // The first user (made on the control socket) makes setup unneeded.
        self.setup_done().await;
        self.record(
            caller,
            Record {
                action: "user.create",
                target: Some(&created.username),
                run_id: None,
                details: Some(format!("role {}", role.as_str())),
            },
        )
        .await?;
        Ok(views::user(created))
    }

    async fn user_id(&self, user: UserRef) -> ServiceResult<String> {
        match user {
            UserRef::Id(id) => Ok(id),
            UserRef::Name(name) => self
                .store
                .user_by_name(name.clone())
                .await?
                .map(|u| u.id)
                .ok_or_else(|| {
                    ServiceError::not_found(format!("unknown user {name} (see clawctl users list)"))
                }),
        }
    }

    /// A new role, a new password (which ends the user's sessions), a TOTP
    /// reset; never the last administrator's role.
    pub async fn update_user(
        &self,
        caller: &Caller,
        user: UserRef,
        change: UserChange,
    ) -> ServiceResult<UserView> {
        caller.require(Role::Admin)?;
        let password_hash = match change.password {
            Some(password) => {
                if let Some(problem) = auth::password_problem(&password) {
                    return Err(ServiceError::invalid(problem));
                }
                Some(self.hashing.hash(password).await?)
            }
            None => None,
        };
        let mut what = Vec::new();
        if let Some(role) = change.role {
            what.push(format!("role {}", role.as_str()));
        }
        if password_hash.is_some() {
            what.push("password reset".to_owned());
        }
        if change.reset_totp {
            what.push("TOTP reset".to_owned());
        }
        let id = self.user_id(user).await?;
        // An administrator changing their own password keeps the session
        // they did it from; every other session of theirs ends.
        let keep_session = match caller {
            Caller::User(session) if session.user.id == id => Some(session.session_hash.clone()),
            _ => None,
        };
        let updated = self
            .store
            .update_user(
                id,
                UserUpdate {
                    role: change.role,
                    password_hash,
                    reset_totp: change.reset_totp,
                    keep_session,
                },
            )
            .await?;
        self.record(
            caller,
            Record {
                action: "user.update",
                target: Some(&updated.username),
                run_id: None,
                details: Some(what.join(", ")),
            },
        )
        .await?;
        Ok(views::user(updated))
    }

    pub async fn delete_user(&self, caller: &Caller, user: UserRef) -> ServiceResult<()> {
        caller.require(Role::Admin)?;
        let id = self.user_id(user).await?;
        let removed = self.store.delete_user(id).await?;
        self.record(
            caller,
            Record {
                action: "user.delete",
                target: Some(&removed.username),
                run_id: None,
                details: None,
            },
        )
        .await
    }

    pub async fn list_sessions(&self, caller: &Caller) -> ServiceResult<Vec<SessionView>> {
        caller.require(Role::Admin)?;
        let rows = self.store.list_sessions().await?;
        Ok(rows.into_iter().map(views::session).collect())
    }

    /// Ends sessions: one (by id prefix), a user's, or all.
    pub async fn revoke_sessions(
        &self,
        caller: &Caller,
        which: SessionSelector,
    ) -> ServiceResult<usize> {
        caller.require(Role::Admin)?;
        let target = match &which {
            SessionSelector::Id(id) => format!("session {id}"),
            SessionSelector::User(user) => format!("sessions of {user}"),
            SessionSelector::All => "all sessions".to_owned(),
        };
        let revoked = self.store.revoke_sessions(which).await?;
        self.record(
            caller,
            Record {
                action: "session.revoke",
                target: Some(&target),
                run_id: None,
                details: Some(format!("{revoked} ended")),
            },
        )
        .await?;
        Ok(revoked)
    }
}
