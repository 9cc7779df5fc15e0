//! Coding hosts: added by an administrator with a one-time enrolment
//! token, enrolled by `claw-runner enroll` for a key of their own, then
//! connected by `claw-runner serve`; revoked for good.

use claw_proto::hosts::{
    AddedHost, EnrollReply, EnrollRequest, HostInfo, HostState, HostView, NewHost, valid_name,
};
use claw_proto::signing::SignedParts;
use claw_proto::wire::Role;

use super::runner::SignedRequest;
use super::{Caller, Record, ServiceError, ServiceResult};
use crate::app::App;
use crate::clock::{iso, now_ms};
use crate::hosts::Connection;
use crate::store::{Enrolment, HostRow, RunnerAuth};

fn token_hash(token: &str) -> String {
    claw_proto::signing::sha256_hex(token.as_bytes())
}

/// How long a host has to say whether it started a session.
const START_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long an enrolment token can be used.
const ENROLMENT_LIFETIME_MS: i64 = 3600 * 1000;
/// The most a host may say of itself: agents, workspaces, sessions.
const INFO_MAX_ITEMS: usize = 256;
const INFO_MAX_CHARS: usize = 4096;

impl App {
    fn host_view(&self, row: HostRow) -> HostView {
        let online = self.hosts.online(&row.id);
        let state = match (&row.revoked_at, &row.enrolled_at, &online) {
            (Some(_), _, _) => HostState::Revoked,
            (None, None, _) => HostState::Pending,
            (None, Some(_), Some(_)) => HostState::Online,
            (None, Some(_), None) => HostState::Offline,
        };
        // What it says now, else what it said when last connected.
        let info = online.flatten().or_else(|| {
            row.info
                .as_deref()
                .and_then(|i| serde_json::from_str(i).ok())
        });
        HostView {
            id: row.id,
            name: row.name,
            state,
            created_at: iso(row.created_at),
            enrolled_at: row.enrolled_at.map(iso),
            revoked_at: row.revoked_at.map(iso),
            last_seen_at: row.last_seen_at.map(iso),
            info,
        }
    }

    /// A new host (or a new token for one not enrolled yet); the token is
    /// shown this once.
    pub async fn add_host(&self, caller: &Caller, request: NewHost) -> ServiceResult<AddedHost> {
        caller.require(Role::Admin)?;
        let name = request.name.trim().to_owned();
        if !valid_name(&name) {
            return Err(ServiceError::invalid(format!(
                "a host's name is 1 to {} letters, digits, '.', '_' or '-', starting with a letter or digit",
                claw_proto::hosts::NAME_MAX_CHARS
            )));
        }
        let token = crate::fsutil::random_hex(24).map_err(|e| {
            tracing::error!(error = %e, "no random bytes for an enrolment token");
            ServiceError::internal()
        })?;
        let expires_at = now_ms() + ENROLMENT_LIFETIME_MS;
        let row = self
            .store
            .add_host(
                uuid::Uuid::new_v4().to_string(),
                name,
                token_hash(&token),
                expires_at,
            )
            .await?;
        self.record(
            caller,
            Record {
                action: "hosts.add",
                target: Some(&row.name),
                run_id: None,
                details: Some(format!("enrolment token valid until {}", iso(expires_at))),
            },
        )
        .await?;
        let pin = self
            .cert_view()
            .fingerprint_sha256
            .map(|f| format!(" --fingerprint {f}"))
            .unwrap_or_default();
        let enroll_command = format!(
            "claw-runner enroll --gateway {} --token {token}{pin}",
            crate::delivery::public_base(self)
        );
        Ok(AddedHost {
            host: self.host_view(row),
            enrolment_token: token,
            expires_at: iso(expires_at),
            enroll_command,
        })
    }

    /// Spends an enrolment token for the host's key.
    pub async fn enroll_host(
        &self,
        caller: &Caller,
        request: EnrollRequest,
    ) -> ServiceResult<EnrollReply> {
        let salt = crate::fsutil::random_hex(16).map_err(|e| {
            tracing::error!(error = %e, "no random bytes for a host key");
            ServiceError::internal()
        })?;
        let token = request.token.trim();
        let enrolment = self
            .store
            .enroll_host(token_hash(token), salt.clone(), now_ms())
            .await?;
        let host = match enrolment {
            Enrolment::Enrolled(host) => host,
            Enrolment::Unknown => {
                tracing::warn!(ip = caller.ip(), "refused an unknown enrolment token");
                return Err(ServiceError::unauthenticated(
                    "this enrolment token is unknown or was used already: ask an administrator \
                     for a new one (clawctl hosts add NAME, or Hosts in the web UI)",
                ));
            }
            Enrolment::Expired { host } => {
                return Err(ServiceError::unauthenticated(format!(
                    "the enrolment token of host {host} expired (tokens last an hour): \
                     ask an administrator for a new one (clawctl hosts add {host})"
                )));
            }
        };
        let key = self.secrets.host_key(&host.id, &salt);
        self.hosts.enrolled(&host.id, key.clone());
        self.record(
            caller,
            Record {
                action: "hosts.enroll",
                target: Some(&host.name),
                run_id: None,
                details: None,
            },
        )
        .await?;
        Ok(EnrollReply {
            host_id: host.id,
            name: host.name,
            key: String::from_utf8_lossy(key.expose()).into_owned(),
        })
    }

    pub async fn list_hosts(&self, caller: &Caller) -> ServiceResult<Vec<HostView>> {
        caller.require(Role::Viewer)?;
        let rows = self.store.hosts().await?;
        Ok(rows.into_iter().map(|r| self.host_view(r)).collect())
    }

    /// Cut off at once and for good.
    pub async fn revoke_host(&self, caller: &Caller, name: String) -> ServiceResult<HostView> {
        caller.require(Role::Admin)?;
        let row = self.store.revoke_host(name, now_ms()).await?;
        self.hosts.forget(&row.id);
        self.record(
            caller,
            Record {
                action: "hosts.revoke",
                target: Some(&row.name),
                run_id: None,
                details: None,
            },
        )
        .await?;
        Ok(self.host_view(row))
    }

    pub async fn remove_host(&self, caller: &Caller, name: String) -> ServiceResult<()> {
        caller.require(Role::Admin)?;
        let row = self.store.remove_host(name).await?;
        self.hosts.forget(&row.id);
        self.record(
            caller,
            Record {
                action: "hosts.remove",
                target: Some(&row.name),
                run_id: None,
                details: None,
            },
        )
        .await
    }

    /// A host's signed request: its key, the clock skew and the nonce's
    /// shape here; that it is enrolled and the nonce new in the store.
    pub fn verify_host(&self, request: &SignedRequest<'_>) -> ServiceResult<(String, RunnerAuth)> {
        let host_id = request
            .host_id
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ServiceError::unauthenticated("missing x-host-id header"))?;
        let (signature, timestamp, nonce) = self.signed_headers(request)?;
        let Some(key) = self.hosts.key(host_id) else {
            tracing::warn!(HOST = host_id, "refused a request of a host not enrolled");
            return Err(ServiceError::unauthenticated(
                "this host is not enrolled (revoked or removed?): enrol it again with a new token",
            ));
        };
        let parts = SignedParts {
            method: request.method,
            path: request.path,
            body: request.body,
            timestamp,
            nonce,
            run_id: "",
            capability_token: "",
        };
        if !claw_proto::signing::verify(key.expose(), &parts, signature) {
            tracing::warn!(
                HOST = host_id,
                "rejected a host request with a bad signature"
            );
            return Err(ServiceError::unauthenticated("invalid signature"));
        }
        Ok((
            host_id.to_owned(),
            RunnerAuth {
                run_id: String::new(),
                capability_token: String::new(),
                nonce: nonce.to_ascii_lowercase(),
                timestamp,
            },
        ))
    }

    /// A host asks for its socket: it must still be enrolled, the nonce new.
    pub async fn host_check(&self, host_id: String, auth: RunnerAuth) -> ServiceResult<HostRow> {
        Ok(self.store.host_check(host_id, auth).await?)
    }

    /// A host's socket is open: it is online (a connection it had before
    /// is closed).
    pub async fn host_connected(&self, host: &HostRow) -> Connection {
        let connection = self.hosts.connected(&host.id);
        if let Err(e) = self.store.host_seen(host.id.clone(), None, now_ms()).await {
            tracing::warn!(HOST = %host.name, error = %e, "could not note when a host was seen");
        }
        tracing::info!(HOST = %host.name, "host connected");
        connection
    }

    /// What a host says of itself; kept for when it is offline.
    pub async fn host_hello(
        &self,
        host_id: &str,
        connection: u64,
        mut info: HostInfo,
    ) -> ServiceResult<()> {
        let cap = |items: &mut Vec<String>| {
            items.truncate(INFO_MAX_ITEMS);
            items.retain(|i| i.chars().count() <= INFO_MAX_CHARS);
        };
        cap(&mut info.workspaces);
        cap(&mut info.sessions);
        info.agents.truncate(INFO_MAX_ITEMS);
        info.version = info.version.chars().take(64).collect();
        let text = serde_json::to_string(&info).map_err(|_| ServiceError::internal())?;
        self.hosts.hello(host_id, connection, info);
        self.store
            .host_seen(host_id.to_owned(), Some(text), now_ms())
            .await?;
        Ok(())
    }

    pub async fn host_heartbeat(&self, host_id: &str) -> ServiceResult<()> {
        Ok(self
            .store
            .host_seen(host_id.to_owned(), None, now_ms())
            .await?)
    }

    /// The host a new run is to start on, and its workspace: enrolled,
    /// online, offering the agent and the workspace (a directory inside
    /// one of its workspaces will do), below its session limit.
    pub(super) async fn host_for_run(
        &self,
        host: &str,
        workspace: Option<&str>,
        agent: Option<claw_proto::agent::AgentKind>,
    ) -> ServiceResult<(HostRow, String)> {
        let row = self.store.host(host.to_owned()).await?;
        let name = &row.name;
        if row.revoked_at.is_some() {
            return Err(ServiceError::conflict(format!("host {name} was revoked")));
        }
        let Some(info) = self.hosts.online(&row.id) else {
            return Err(ServiceError::conflict(format!(
                "host {name} is offline: start claw-runner serve there (systemctl start claw-runner)"
            )));
        };
        let info = info.ok_or_else(|| {
            ServiceError::conflict(format!("host {name} is connecting: try again in a second"))
        })?;
        let Some(agent) = agent else {
            return Err(ServiceError::invalid(
                "a session on a host drives an agent: pass \"agent\": \"claude\"",
            ));
        };
        if !info.agents.iter().any(|a| a.name == agent.as_str()) {
            return Err(ServiceError::invalid(format!(
                "host {name} cannot run {}: it offers {}",
                agent.as_str(),
                if info.agents.is_empty() {
                    "no agent".to_owned()
                } else {
                    info.agents
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
        let Some(workspace) = workspace.map(str::trim).filter(|w| !w.is_empty()) else {
            return Err(ServiceError::invalid(format!(
                "pass \"workspace\": one of host {name}'s: {}",
                info.workspaces.join(", ")
            )));
        };
        let inside = |listed: &String| {
            let listed = listed.trim_end_matches('/');
            workspace == listed
                || workspace
                    .strip_prefix(listed)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let escapes = workspace.split('/').any(|part| part == ".." || part == ".");
        if escapes || !workspace.starts_with('/') || !info.workspaces.iter().any(inside) {
            return Err(ServiceError::invalid(format!(
                "{workspace:?} is not one of host {name}'s workspaces ({}) nor inside one",
                info.workspaces.join(", ")
            )));
        }
        let limit = info.session_limit as usize;
        if info.sessions.len() >= limit {
            return Err(ServiceError::conflict(format!(
                "host {name} runs its limit of {limit} sessions: wait for one to end, or raise session_limit in its runner.toml"
            )));
        }
        Ok((row, workspace.to_owned()))
    }

    /// Asks the host to start the run and waits for its answer.
    pub(super) async fn start_on_host(
        &self,
        host: &HostRow,
        session: claw_proto::hosts::StartSession,
    ) -> ServiceResult<()> {
        let run_id = session.run_id.clone();
        let Some(answer) = self.hosts.start(&host.id, session) else {
            return Err(ServiceError::conflict(format!(
                "host {} went offline",
                host.name
            )));
        };
        match tokio::time::timeout(START_ANSWER_WAIT, answer).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(refused))) => Err(ServiceError::conflict(format!(
                "host {} refused: {refused}",
                host.name
            ))),
            Ok(Err(_)) | Err(_) => {
                self.hosts.forget_start(&run_id);
                Err(ServiceError::conflict(format!(
                    "host {} did not answer within {} s",
                    host.name,
                    START_ANSWER_WAIT.as_secs()
                )))
            }
        }
    }

    /// Resumes a finished session on its host with `prompt`: the run is
    /// pending again with a new token the host's runner gets, the prompt
    /// queued; undone when the host cannot start it.
    pub(super) async fn resume_on_host(
        &self,
        run: &crate::store::RunRow,
        host_id: &str,
        prompt: crate::store::NewCommand,
    ) -> ServiceResult<String> {
        let workspace = run.workspace.clone().unwrap_or_default();
        let (host, workspace) = self
            .host_for_run(host_id, Some(&workspace), run.agent)
            .await?;
        let token = crate::fsutil::random_hex(32).map_err(|e| {
            tracing::error!(error = %e, "no randomness for a capability token");
            ServiceError::internal()
        })?;
        let prompt_id = prompt.id.clone();
        let before = self.store.reopen_run(token.clone(), prompt).await?;
        let session = claw_proto::hosts::StartSession {
            run_id: run.id.clone(),
            token,
            workspace,
            agent: run.agent.map_or("claude", |a| a.as_str()).to_owned(),
        };
        if let Err(refused) = self.start_on_host(&host, session).await {
            if let Err(e) = self.store.restore_run(before, prompt_id).await {
                tracing::error!(RUN_ID = %run.id, error = %e, "could not undo a resume nobody started");
            }
            return Err(refused);
        }
        Ok(prompt_id)
    }

    pub fn host_disconnected(&self, host_id: &str, name: &str, connection: u64) {
        self.hosts.disconnected(host_id, connection);
        tracing::info!(HOST = %name, "host disconnected");
    }
}
