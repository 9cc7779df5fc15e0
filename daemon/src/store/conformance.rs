//! What every store backend must do, written against the traits: each
//! check takes a fresh store and the sink its changes go to. A check asks
//! only for the traits it uses, so a backend being built runs the checks
//! of the traits it has. The SQLite store runs them all below; PostgreSQL
//! runs its own in `postgres/tests.rs`.

use std::sync::{Arc, Mutex};

use claw_proto::api::CommandStatus;
use claw_proto::wire::{CommandKind, EventType, RunStatus};

use super::*;
use crate::clock::now_ms;

/// Keeps every change it is given, in order.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Change>>);

impl ChangeSink for Recorder {
    fn publish(&self, change: Change) {
        self.0.lock().expect("recorder").push(change);
    }
}

impl Recorder {
    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.0.lock().expect("recorder"))
    }
}

/// A fresh store of every trait (`Subject`) or of some (`Subject<PgStore>`).
pub struct Subject<S: ?Sized = dyn Store> {
    pub store: Arc<S>,
    pub changes: Arc<Recorder>,
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

async fn new_run<S: RunStore + ?Sized>(store: &S, id: &str) -> RunRow {
    store
        .create_run(NewRun {
            id: id.to_owned(),
            capability_token: TOKEN.to_owned(),
            command: Some("claude".to_owned()),
            metadata: None,
            created_by: Some("admin".to_owned()),
            agent: AgentSpec::default(),
            first_prompt: None,
            host_id: None,
            workspace: None,
        })
        .await
        .expect("create run")
}

fn auth(run_id: &str) -> RunnerAuth {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("random");
    RunnerAuth {
        run_id: run_id.to_owned(),
        capability_token: TOKEN.to_owned(),
        nonce: hex::encode(nonce),
        timestamp: now_ms() / 1000,
    }
}

fn event(data: &str, sequence: Option<u64>) -> NewEvent {
    NewEvent {
        kind: EventType::Stdout,
        data: data.to_owned(),
        sequence,
    }
}

fn marker(data: &str) -> NewEvent {
    NewEvent {
        kind: EventType::Marker,
        data: data.to_owned(),
        sequence: None,
    }
}

/// Each sequence is stored once; a resend answers with the stored id; a
/// gap is refused with where to resume; an unsequenced event takes the
/// next sequence.
pub async fn sequences_are_stored_once_and_gaps_refused<S: RunStore + ?Sized>(s: Subject<S>) {
    let store = s.store.as_ref();
    new_run(store, "run-seq").await;
    let first = store
        .runner_ingest(
            auth("run-seq"),
            (1..=3).map(|n| event(&n.to_string(), Some(n))).collect(),
        )
        .await
        .expect("ingest");
    assert_eq!(first.ids.len(), 3);
    let resent = store
        .runner_ingest(auth("run-seq"), vec![event("other data", Some(2))])
        .await
        .expect("resend");
    assert_eq!(resent.ids, [first.ids[1]], "a resend answers the stored id");
    let gap = store
        .runner_ingest(auth("run-seq"), vec![event("5", Some(5))])
        .await
        .expect_err("gap");
    assert!(
        matches!(
            gap,
            StoreError::SequenceGap {
                next: 4,
                sequence: 5,
                ..
            }
        ),
        "{gap:?}"
    );
    store
        .runner_ingest(auth("run-seq"), vec![event("appended", None)])
        .await
        .expect("append");
    let events = store
        .events_after("run-seq".to_owned(), 0, 100)
        .await
        .expect("events");
    let stored: Vec<(u64, &str)> = events
        .iter()
        .map(|e| (e.sequence, e.data.as_str()))
        .collect();
    assert_eq!(stored, [(1, "1"), (2, "2"), (3, "3"), (4, "appended")]);
    assert_eq!(
        store
            .run("run-seq".to_owned())
            .await
            .expect("run")
            .event_count,
        4
    );
    let after = store
        .events_after("run-seq".to_owned(), 2, 1)
        .await
        .expect("page");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].sequence, 3);
}

/// Markers move a run: started → running; finished → done or failed by
/// exit code, stopped when a stop was asked for.
pub async fn markers_change_the_runs_status<S: RunStore + ?Sized>(s: Subject<S>) {
    let store = s.store.as_ref();
    for (id, exit, stop, want) in [
        ("run-ok", 0, false, RunStatus::Done),
        ("run-bad", 3, false, RunStatus::Failed),
        ("run-stop", 0, true, RunStatus::Stopped),
    ] {
        new_run(store, id).await;
        let started = store
            .runner_ingest(auth(id), vec![marker(r#"{"event":"started"}"#)])
            .await
            .expect("started");
        assert_eq!(
            started.status_change.map(|c| c.status),
            Some(RunStatus::Running)
        );
        if stop {
            store
                .request_stop(id.to_owned(), format!("{id}-stop"), None)
                .await
                .expect("stop");
        }
        let finished = store
            .runner_ingest(
                auth(id),
                vec![marker(&format!(
                    r#"{{"event":"finished","exitCode":{exit}}}"#
                ))],
            )
            .await
            .expect("finished");
        assert_eq!(finished.status_change.map(|c| c.status), Some(want), "{id}");
        let run = store.run(id.to_owned()).await.expect("run");
        assert_eq!((run.status, run.exit_code), (want, Some(exit)));
        assert!(run.started_at.is_some() && run.finished_at.is_some());
    }
    // A stop of a run that never started ends it at once.
    new_run(store, "run-never").await;
    store
        .request_stop("run-never".to_owned(), "never-stop".to_owned(), None)
        .await
        .expect("stop");
    let run = store.run("run-never".to_owned()).await.expect("run");
    assert_eq!(run.status, RunStatus::Stopped);
    let again = store
        .request_stop("run-never".to_owned(), "again".to_owned(), None)
        .await
        .expect_err("ended");
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
}

/// A nonce is used once, also for requests that store nothing; the wrong
/// token and an unknown run are refused; expired nonces are purged.
pub async fn nonces_tokens_and_their_expiry<S: RunStore + MaintenanceStore + ?Sized>(
    s: Subject<S>,
) {
    let store = s.store.as_ref();
    nonces_and_tokens_of(store).await;
    nonce_expiry_of(store).await;
}

async fn nonces_and_tokens_of<S: RunStore + ?Sized>(store: &S) {
    new_run(store, "run-nonce").await;
    let once = auth("run-nonce");
    store.runner_check(once.clone()).await.expect("first use");
    let replay = store.runner_check(once).await.expect_err("replay");
    assert!(matches!(replay, StoreError::Replay), "{replay:?}");
    // Held nonces (sequenced uploads) are refused as surely.
    let held = auth("run-nonce");
    store
        .runner_ingest(held.clone(), vec![event("x", Some(1))])
        .await
        .expect("ingest");
    let replay = store
        .runner_ingest(held, vec![event("x", Some(1))])
        .await
        .expect_err("replayed upload");
    assert!(matches!(replay, StoreError::Replay), "{replay:?}");
    let mut wrong = auth("run-nonce");
    wrong.capability_token = "f".repeat(32);
    let refused = store.runner_check(wrong).await.expect_err("wrong token");
    assert!(matches!(refused, StoreError::WrongToken), "{refused:?}");
    let unknown = store
        .runner_check(auth("no-such-run"))
        .await
        .expect_err("unknown run");
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown:?}");
}

/// Nonces past their retention are counted and purged (then unknown).
async fn nonce_expiry_of<S: RunStore + MaintenanceStore + ?Sized>(store: &S) {
    // Signed an hour ago with a retention of a minute: expired.
    let mut old = auth("run-nonce");
    old.timestamp -= 3600;
    store.runner_check(old.clone()).await.expect("old nonce");
    store.set_nonce_retention(60);
    store.drain().await.expect("drain");
    let keys_before = 0;
    assert!(
        store
            .expired_counts(keys_before)
            .await
            .expect("counts")
            .nonces
            >= 1
    );
    let purged = store.purge_expired(keys_before).await.expect("purge");
    assert!(purged.nonces >= 1, "{purged:?}");
    store
        .runner_check(old)
        .await
        .expect("a purged nonce is no longer known");
}

/// Commands are delivered once and answered once.
pub async fn commands_are_delivered_and_answered_once<S: RunStore + CommandStore + ?Sized>(
    s: Subject<S>,
) {
    let store = s.store.as_ref();
    new_run(store, "run-cmd").await;
    let command = NewCommand {
        id: "cmd-1".to_owned(),
        run_id: "run-cmd".to_owned(),
        kind: CommandKind::Command,
        command: "git status".to_owned(),
        created_by: Some("olivia".to_owned()),
    };
    let pending = store
        .queue_command(command.clone())
        .await
        .expect_err("the run is not running");
    assert!(matches!(pending, StoreError::Conflict(_)), "{pending:?}");
    store
        .runner_ingest(auth("run-cmd"), vec![marker(r#"{"event":"started"}"#)])
        .await
        .expect("started");
    store.queue_command(command).await.expect("queued");
    let delivered = store
        .runner_pending_commands(auth("run-cmd"))
        .await
        .expect("poll");
    assert_eq!(delivered.len(), 1);
    assert!(
        store
            .runner_pending_commands(auth("run-cmd"))
            .await
            .expect("poll again")
            .is_empty()
    );
    let outcome = |result: &str| CommandOutcome {
        command_id: "cmd-1".to_owned(),
        result: Some(result.to_owned()),
        error: None,
    };
    let answered = store
        .runner_ack_command(auth("run-cmd"), outcome("clean"))
        .await
        .expect("ack");
    assert_eq!(answered.map(|c| c.status), Some(CommandStatus::Completed));
    let twice = store
        .runner_ack_command(auth("run-cmd"), outcome("changed"))
        .await
        .expect("ack again");
    assert!(twice.is_none(), "a second answer changes nothing");
    let listed = store
        .list_commands("run-cmd".to_owned())
        .await
        .expect("list");
    assert_eq!(listed[0].result.as_deref(), Some("clean"));
}

/// Each audit row's hash follows from the one before; the chain verifies.
pub async fn the_audit_chain_verifies<S: AuditStore + ?Sized>(s: Subject<S>) {
    let store = s.store.as_ref();
    for n in 0..5 {
        store
            .audit(AuditEntry {
                username: Some("admin".to_owned()),
                action: format!("test.{n}"),
                ..Default::default()
            })
            .await
            .expect("audit");
    }
    let verdict = store.verify_audit_chain().await.expect("verify");
    assert_eq!(verdict.checked, 5);
    assert_eq!(verdict.broken, None);
    let listed = store
        .list_audit(AuditFilter {
            action: Some("test".to_owned()),
            limit: 3,
            ..Default::default()
        })
        .await
        .expect("list");
    let actions: Vec<&str> = listed.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["test.4", "test.3", "test.2"], "newest first");
}

/// Finished runs past the cutoff go with everything they had; others stay.
pub async fn prune_takes_finished_runs_only<S: RunStore + MaintenanceStore + ?Sized>(
    s: Subject<S>,
) {
    let store = s.store.as_ref();
    new_run(store, "run-old").await;
    store
        .runner_ingest(
            auth("run-old"),
            vec![
                marker(r#"{"event":"started"}"#),
                event("output", None),
                marker(r#"{"event":"finished","exitCode":0}"#),
            ],
        )
        .await
        .expect("ingest");
    new_run(store, "run-live").await;
    store
        .runner_ingest(auth("run-live"), vec![marker(r#"{"event":"started"}"#)])
        .await
        .expect("started");
    let cutoff = now_ms() + 1000;
    let candidates = store.prune_candidates(cutoff).await.expect("candidates");
    let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["run-old"]);
    assert_eq!(candidates[0].events, 3);
    assert!(
        store
            .prune_run("run-old".to_owned(), cutoff)
            .await
            .expect("prune")
    );
    assert!(
        !store
            .prune_run("run-live".to_owned(), cutoff)
            .await
            .expect("refused")
    );
    let left = store.run_ids().await.expect("ids");
    assert!(left.contains("run-live") && !left.contains("run-old"));
}

/// Reconcile reports a running run nobody has heard from and, asked to
/// fix it, fails it (once); facts about the installation are kept.
pub async fn reconcile_fails_stale_runs<S: RunStore + MaintenanceStore + ?Sized>(s: Subject<S>) {
    let store = s.store.as_ref();
    new_run(store, "run-stale").await;
    store
        .runner_ingest(auth("run-stale"), vec![marker(r#"{"event":"started"}"#)])
        .await
        .expect("started");
    // A negative silence: every running run is stale.
    let found = store.reconcile_store(-60_000, false).await.expect("check");
    let stale: Vec<&Finding> = found.iter().filter(|f| f.kind == "stale_run").collect();
    assert_eq!(stale.len(), 1, "{found:?}");
    assert!(!stale[0].fixed);
    assert_eq!(
        store.run("run-stale".to_owned()).await.expect("run").status,
        RunStatus::Running
    );
    let fixed = store.reconcile_store(-60_000, true).await.expect("fix");
    assert!(
        fixed
            .iter()
            .any(|f| f.kind == "stale_run" && f.fixed && f.run_id.as_deref() == Some("run-stale")),
        "{fixed:?}"
    );
    assert_eq!(
        store.run("run-stale".to_owned()).await.expect("run").status,
        RunStatus::Failed
    );
    assert!(
        store
            .reconcile_store(-60_000, true)
            .await
            .expect("again")
            .is_empty()
    );
    store.ping().await.expect("ping");
    assert_eq!(store.meta("last_prune").await.expect("meta"), None);
    store
        .set_meta("last_prune", "3 runs".to_owned())
        .await
        .expect("set");
    let (value, at) = store.meta("last_prune").await.expect("meta").expect("set");
    assert_eq!(value, "3 runs");
    assert!(at > 0);
    let status = store.db_status().await.expect("status");
    assert!(status.size_bytes > 0 && status.schema_version == status.latest_schema_version);
    assert!(
        status
            .tables
            .iter()
            .any(|(table, n)| table == "runs" && *n == 1),
        "{status:?}"
    );
    assert!(store.db_check().await.expect("check").ok);
}

/// An idempotency key: claimed, in progress, answered, mismatched,
/// expired, released; expired keys are purged.
pub async fn idempotency_keys_keep_their_answers_and_expire<
    S: IdempotencyStore + MaintenanceStore + ?Sized,
>(
    s: Subject<S>,
) {
    let store = s.store.as_ref();
    idempotency_keys_of(store).await;
    assert_eq!(
        store
            .purge_expired(now_ms() + 1000)
            .await
            .expect("purge")
            .idempotency_keys,
        2
    );
}

/// Leaves two keys behind, both created now.
async fn idempotency_keys_of<S: IdempotencyStore + ?Sized>(store: &S) {
    let claim = |fingerprint: &str, expired_before: i64| IdempotencyClaim {
        scope: "user-1".to_owned(),
        key: "key-1".to_owned(),
        fingerprint: fingerprint.to_owned(),
        now: now_ms(),
        expired_before,
    };
    let state = |c| async move { store.claim_idempotency_key(c).await.expect("claim") };
    assert_eq!(state(claim("a", 0)).await, IdempotencyState::Claimed);
    assert_eq!(state(claim("a", 0)).await, IdempotencyState::InProgress);
    let answer = StoredAnswer {
        status: 201,
        content_type: Some("application/json".to_owned()),
        body: b"{\"id\":\"r\"}".to_vec(),
    };
    // An answered key is not given up.
    store
        .complete_idempotency_key("user-1".to_owned(), "key-1".to_owned(), answer.clone())
        .await
        .expect("complete");
    store
        .release_idempotency_key("user-1".to_owned(), "key-1".to_owned())
        .await
        .expect("release an answered key");
    assert_eq!(
        state(claim("a", 0)).await,
        IdempotencyState::Answered(answer)
    );
    assert_eq!(state(claim("b", 0)).await, IdempotencyState::Mismatch);
    // Another user's key of the same name is another key.
    let mut theirs = claim("b", 0);
    theirs.scope = "user-2".to_owned();
    assert_eq!(state(theirs).await, IdempotencyState::Claimed);
    // Expired: claimed anew, without the old answer.
    assert_eq!(
        state(claim("b", now_ms() + 1000)).await,
        IdempotencyState::Claimed
    );
    assert_eq!(state(claim("b", 0)).await, IdempotencyState::InProgress);
    store
        .release_idempotency_key("user-1".to_owned(), "key-1".to_owned())
        .await
        .expect("release");
    assert_eq!(state(claim("c", 0)).await, IdempotencyState::Claimed);
}

fn new_user(id: &str, name: &str, role: claw_proto::wire::Role) -> NewUser {
    NewUser {
        id: id.to_owned(),
        username: name.to_owned(),
        password_hash: format!("hash-of-{name}"),
        role,
    }
}

fn new_session(id_hash: &str, user_id: &str, expires_at: i64) -> NewSession {
    NewSession {
        id_hash: id_hash.to_owned(),
        user_id: user_id.to_owned(),
        expires_at,
        ip: Some("192.0.2.1".to_owned()),
    }
}

/// Users, the rules that keep an administrator, sessions and their ends,
/// TOTP enrolment and codes used once.
pub async fn users_sessions_and_the_last_administrator<S: IdentityStore + ?Sized>(s: Subject<S>) {
    use claw_proto::wire::Role;
    let store = s.store.as_ref();
    assert_eq!(store.user_count().await.expect("count"), 0);
    let admin = store
        .create_first_user(new_user("u-admin", "admin", Role::Admin))
        .await
        .expect("first user");
    assert_eq!(
        (admin.username.as_str(), admin.role, admin.totp_secret),
        ("admin", Role::Admin, None)
    );
    let again = store
        .create_first_user(new_user("u-other", "other", Role::Admin))
        .await
        .expect_err("setup is done");
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
    let taken = store
        .create_user(new_user("u-x", "admin", Role::Viewer))
        .await
        .expect_err("name taken");
    assert!(
        matches!(&taken, StoreError::Conflict(m) if m.contains("taken")),
        "{taken:?}"
    );
    store
        .create_user(new_user("u-bob", "bob", Role::Operator))
        .await
        .expect("bob");
    assert_eq!(store.user_count().await.expect("count"), 2);
    let names: Vec<String> = store
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["admin", "bob"]);
    assert_eq!(
        store
            .user_by_name("bob".to_owned())
            .await
            .expect("by name")
            .map(|u| u.id),
        Some("u-bob".to_owned())
    );
    assert_eq!(
        store.user_by_name("nobody".to_owned()).await.expect("none"),
        None
    );
    let unknown = store.user("u-none".to_owned()).await.expect_err("unknown");
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown:?}");
    let unknown = store
        .update_user("u-none".to_owned(), UserUpdate::default())
        .await
        .expect_err("unknown");
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown:?}");
    let unknown = store
        .delete_user("u-none".to_owned())
        .await
        .expect_err("unknown");
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown:?}");

    // The last administrator stays one.
    let demote = UserUpdate {
        role: Some(Role::Viewer),
        ..Default::default()
    };
    let refused = store
        .update_user("u-admin".to_owned(), demote.clone())
        .await
        .expect_err("last administrator");
    assert!(
        matches!(&refused, StoreError::Conflict(m) if m.contains("demote the last")),
        "{refused:?}"
    );
    let refused = store
        .delete_user("u-admin".to_owned())
        .await
        .expect_err("last administrator");
    assert!(
        matches!(&refused, StoreError::Conflict(m) if m.contains("delete the last")),
        "{refused:?}"
    );
    // An administrator staying one is no demotion.
    store
        .update_user(
            "u-admin".to_owned(),
            UserUpdate {
                role: Some(Role::Admin),
                ..Default::default()
            },
        )
        .await
        .expect("admin stays admin");
    let promoted = store
        .update_user(
            "u-bob".to_owned(),
            UserUpdate {
                role: Some(Role::Admin),
                ..Default::default()
            },
        )
        .await
        .expect("promote");
    assert_eq!(promoted.role, Role::Admin);
    let demoted = store
        .update_user("u-admin".to_owned(), demote.clone())
        .await
        .expect("one of two administrators");
    assert_eq!(demoted.role, Role::Viewer);
    let refused = store
        .update_user("u-bob".to_owned(), demote)
        .await
        .expect_err("now bob is the last");
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused:?}");

    // Sessions: live ones only; a new password ends all but the one kept.
    let now = now_ms();
    let later = now + 3_600_000;
    for (id, user) in [
        ("aaaaaaaa01", "u-bob"),
        ("aaaaaaaa02", "u-bob"),
        ("bbbbbbbb01", "u-bob"),
        ("cccccccc01", "u-admin"),
    ] {
        store
            .create_session(new_session(id, user, later))
            .await
            .expect("session");
    }
    store
        .create_session(new_session("dddddddd01", "u-bob", now - 1))
        .await
        .expect("expired session");
    let (user, expires_at) = store
        .session_user("aaaaaaaa01".to_owned())
        .await
        .expect("session user")
        .expect("live");
    assert_eq!((user.id.as_str(), expires_at), ("u-bob", later));
    assert_eq!(
        store
            .session_user("dddddddd01".to_owned())
            .await
            .expect("expired"),
        None
    );
    let listed = store.list_sessions().await.expect("sessions");
    assert_eq!(listed.len(), 4, "{listed:?}");
    let bobs = listed
        .iter()
        .find(|r| r.id == "bbbbbbbb01")
        .expect("listed");
    assert_eq!(
        (bobs.username.as_str(), bobs.role, bobs.ip.as_deref()),
        ("bob", Role::Admin, Some("192.0.2.1"))
    );
    s.changes.take();
    store
        .update_user(
            "u-bob".to_owned(),
            UserUpdate {
                password_hash: Some("new-hash".to_owned()),
                keep_session: Some("aaaaaaaa01".to_owned()),
                ..Default::default()
            },
        )
        .await
        .expect("new password");
    assert_eq!(s.changes.take(), [Change::SessionsChanged]);
    let left: Vec<String> = store
        .list_sessions()
        .await
        .expect("sessions")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"aaaaaaaa01".to_owned()) && left.contains(&"cccccccc01".to_owned()));
    assert_eq!(
        store
            .user("u-bob".to_owned())
            .await
            .expect("bob")
            .password_hash,
        "new-hash"
    );

    // Ending sessions by id prefix, by user, all.
    store
        .create_session(new_session("aaaaaaaa03", "u-bob", later))
        .await
        .expect("session");
    for (prefix, short) in [("aaaaaaa", true), ("aaaaxxxx", true)] {
        let refused = store
            .revoke_sessions(SessionSelector::Id(prefix.to_owned()))
            .await
            .expect_err("not an id");
        assert_eq!(
            matches!(refused, StoreError::NotFound(_)),
            short,
            "{refused:?}"
        );
    }
    let ambiguous = store
        .revoke_sessions(SessionSelector::Id("aaaaaaaa".to_owned()))
        .await
        .expect_err("two match");
    assert!(
        matches!(&ambiguous, StoreError::Conflict(m) if m.contains("matches 2")),
        "{ambiguous:?}"
    );
    let none = store
        .revoke_sessions(SessionSelector::Id("eeeeeeee".to_owned()))
        .await
        .expect_err("none match");
    assert!(matches!(none, StoreError::NotFound(_)), "{none:?}");
    assert_eq!(
        store
            .revoke_sessions(SessionSelector::Id("aaaaaaaa03".to_owned()))
            .await
            .expect("one"),
        1
    );
    let unknown = store
        .revoke_sessions(SessionSelector::User("nobody".to_owned()))
        .await
        .expect_err("unknown user");
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown:?}");
    // bob's one session left (the new password took his expired one).
    assert_eq!(
        store
            .revoke_sessions(SessionSelector::User("bob".to_owned()))
            .await
            .expect("bob's"),
        1
    );
    store
        .delete_session("cccccccc01".to_owned())
        .await
        .expect("log out");
    assert_eq!(store.list_sessions().await.expect("none").len(), 0);
    store
        .create_session(new_session("ffffffff01", "u-admin", later))
        .await
        .expect("session");
    assert_eq!(
        store
            .revoke_sessions(SessionSelector::All)
            .await
            .expect("all"),
        1
    );

    // TOTP: enrolled once confirmed; a code's step is used once.
    let none = store
        .confirm_totp("u-bob".to_owned(), 10)
        .await
        .expect_err("nothing pending");
    assert!(matches!(none, StoreError::Conflict(_)), "{none:?}");
    let unknown = store
        .set_totp_pending("u-none".to_owned(), "SECRET".to_owned())
        .await
        .expect_err("unknown");
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown:?}");
    store
        .set_totp_pending("u-bob".to_owned(), "SECRET".to_owned())
        .await
        .expect("pending");
    let bob = store.user("u-bob".to_owned()).await.expect("bob");
    assert_eq!(
        (bob.totp_secret, bob.totp_pending_secret.as_deref()),
        (None, Some("SECRET"))
    );
    store
        .confirm_totp("u-bob".to_owned(), 10)
        .await
        .expect("confirm");
    let bob = store.user("u-bob".to_owned()).await.expect("bob");
    assert_eq!(
        (bob.totp_secret.as_deref(), bob.totp_pending_secret),
        (Some("SECRET"), None)
    );
    let used = |step| store.use_totp_step("u-bob".to_owned(), step);
    assert!(!used(10).await.expect("the confirming code"));
    assert!(!used(9).await.expect("an earlier code"));
    assert!(used(11).await.expect("the next code"));
    assert!(!used(11).await.expect("again"));
    store
        .create_session(new_session("12345678ab", "u-bob", later))
        .await
        .expect("session");
    let reset = store
        .update_user(
            "u-bob".to_owned(),
            UserUpdate {
                reset_totp: true,
                ..Default::default()
            },
        )
        .await
        .expect("reset");
    assert_eq!((reset.totp_secret, reset.totp_pending_secret), (None, None));
    assert_eq!(store.list_sessions().await.expect("ended").len(), 0);
    // After a reset any step is new again.
    assert!(used(1).await.expect("after reset"));

    // A deleted user's sessions go with it.
    store
        .create_session(new_session("87654321ab", "u-admin", later))
        .await
        .expect("session");
    let gone = store
        .delete_user("u-admin".to_owned())
        .await
        .expect("delete");
    assert_eq!(gone.username, "admin");
    assert_eq!(
        store
            .session_user("87654321ab".to_owned())
            .await
            .expect("gone"),
        None
    );
    assert_eq!(store.user_count().await.expect("count"), 1);
}

/// Changes arrive after their commit, in commit order, one kind each.
pub async fn changes_follow_their_commits_in_order<S: RunStore + CommandStore + ?Sized>(
    s: Subject<S>,
) {
    let store = s.store.as_ref();
    new_run(store, "run-live").await;
    s.changes.take();
    store
        .runner_ingest(
            auth("run-live"),
            vec![marker(r#"{"event":"started"}"#), event("one", None)],
        )
        .await
        .expect("ingest");
    store
        .queue_command(NewCommand {
            id: "c1".to_owned(),
            run_id: "run-live".to_owned(),
            kind: CommandKind::Command,
            command: "git status".to_owned(),
            created_by: None,
        })
        .await
        .expect("queue");
    store
        .request_stop("run-live".to_owned(), "c2".to_owned(), None)
        .await
        .expect("stop");
    let refused = store
        .runner_ingest(auth("run-live"), vec![event("gap", Some(9))])
        .await;
    assert!(refused.is_err());
    let changes = s.changes.take();
    let kinds: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Events(events) => format!("events {}", events.len()),
            Change::RunStatus(status) => format!("status {}", status.status.as_str()),
            Change::CommandQueued(row) => format!("queued {}", row.id),
            Change::StopRequested { command_id, .. } => format!("stop {command_id}"),
            Change::CommandCompleted(row) => format!("completed {}", row.id),
            Change::ArtifactAdded(row) => format!("artifact {}", row.id),
            Change::Approval(row) => format!("approval {}", row.status.as_str()),
            Change::SessionsChanged => "sessions".to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["events 2", "status running", "queued c1", "stop c2"],
        "a refused request announces nothing"
    );
}

fn structured(kind: EventType, data: serde_json::Value) -> NewEvent {
    NewEvent {
        kind,
        data: data.to_string(),
        sequence: None,
    }
}

fn approval_request(request_id: &str) -> NewEvent {
    structured(
        EventType::ApprovalRequest,
        serde_json::json!({
            "requestId": request_id, "kind": "tool", "tool": "Bash",
            "input": {"command": "touch f"}, "summary": "touch f", "timeoutSecs": 60,
        }),
    )
}

fn decision(approval_id: &str, command_id: &str, allow: bool) -> NewDecision {
    NewDecision {
        approval_id: approval_id.to_owned(),
        allow,
        decided_by: "ops".to_owned(),
        scope: claw_proto::agent::DecisionScope::Once,
        message: None,
        answers: None,
        command_id: command_id.to_owned(),
        command: "{}".to_owned(),
    }
}

/// An approval request makes one pending approval (a resend makes no
/// second) and the run `waiting`; the first decision wins, queues its
/// command and makes the run `running`; the runner's word on a request
/// (expired) stands; a run that ends cancels what is still pending.
pub async fn approvals_are_made_decided_once_and_resolved<
    S: RunStore + CommandStore + ApprovalStore + ?Sized,
>(
    s: Subject<S>,
) {
    use claw_proto::agent::ApprovalStatus;
    let store = s.store.as_ref();
    new_run(store, "run-a").await;
    store
        .runner_ingest(auth("run-a"), vec![marker(r#"{"event":"started"}"#)])
        .await
        .expect("start");
    let request = approval_request("r-1");
    let ingested = store
        .runner_ingest(
            auth("run-a"),
            vec![NewEvent {
                sequence: Some(2),
                ..request.clone()
            }],
        )
        .await
        .expect("request");
    assert_eq!(
        ingested.status_change.map(|c| c.status),
        Some(RunStatus::Waiting)
    );
    store
        .runner_ingest(
            auth("run-a"),
            vec![NewEvent {
                sequence: Some(2),
                ..request
            }],
        )
        .await
        .expect("resend");
    let pending = store
        .list_approvals(ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            run_id: None,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(pending.len(), 1, "one approval per request");
    let id = pending[0].id.clone();
    assert_eq!(pending[0].summary, "touch f");
    assert!(pending[0].expires_at >= pending[0].created_at + 60_000);

    let decided = store
        .decide(decision(&id, "d-1", true))
        .await
        .expect("decide");
    assert_eq!(decided.status, ApprovalStatus::Allowed);
    assert_eq!(decided.decided_by.as_deref(), Some("ops"));
    assert!(!decided.delivered);
    assert_eq!(
        store.run("run-a".to_owned()).await.expect("run").status,
        RunStatus::Running
    );
    match store.decide(decision(&id, "d-2", false)).await {
        Err(StoreError::Conflict(why)) => {
            assert!(why.contains("allowed by ops"), "{why}")
        }
        other => panic!("a second decision: {other:?}"),
    }
    let commands = store
        .list_commands("run-a".to_owned())
        .await
        .expect("commands");
    assert_eq!(commands.len(), 1, "only the first decision is queued");
    assert_eq!(commands[0].kind, CommandKind::Decision);
    store
        .runner_ack_command(
            auth("run-a"),
            CommandOutcome {
                command_id: "d-1".to_owned(),
                result: Some("written".to_owned()),
                error: None,
            },
        )
        .await
        .expect("ack");
    assert!(
        store
            .approval(id.clone())
            .await
            .expect("approval")
            .delivered
    );

    // Expired on the runner: its word stands.
    store
        .runner_ingest(auth("run-a"), vec![approval_request("r-2")])
        .await
        .expect("second request");
    store
        .runner_ingest(
            auth("run-a"),
            vec![structured(
                EventType::ApprovalResolved,
                serde_json::json!({"requestId": "r-2", "status": "expired", "message": "no decision"}),
            )],
        )
        .await
        .expect("expired");
    let all = store
        .list_approvals(ApprovalFilter {
            status: None,
            run_id: Some("run-a".to_owned()),
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(all[0].status, ApprovalStatus::Expired);
    assert_eq!(
        store.run("run-a".to_owned()).await.expect("run").status,
        RunStatus::Running
    );

    // The run ends with a request open: cancelled.
    store
        .runner_ingest(auth("run-a"), vec![approval_request("r-3")])
        .await
        .expect("third request");
    store
        .runner_ingest(
            auth("run-a"),
            vec![marker(r#"{"event":"finished","exitCode":0}"#)],
        )
        .await
        .expect("finish");
    let open = store
        .list_approvals(ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            run_id: None,
            limit: 10,
        })
        .await
        .expect("list");
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(
        store.run("run-a".to_owned()).await.expect("run").status,
        RunStatus::Done
    );
    let kinds: Vec<String> = s
        .changes
        .take()
        .iter()
        .filter_map(|c| match c {
            Change::Approval(row) => Some(row.status.as_str().to_owned()),
            Change::RunStatus(st) => Some(format!("run {}", st.status.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "run running",
            "pending",
            "run waiting",
            "allowed",
            "run running",
            "allowed",
            "pending",
            "run waiting",
            "expired",
            "run running",
            "pending",
            "run waiting",
            "cancelled",
            "run done"
        ]
    );
}

/// Approvals made in one request (one millisecond) are listed in the
/// order they were made: the inbox oldest first, history newest first.
pub async fn approvals_made_together_keep_their_order<S: RunStore + ApprovalStore + ?Sized>(
    s: Subject<S>,
) {
    use claw_proto::agent::ApprovalStatus;
    let store = s.store.as_ref();
    new_run(store, "run-o").await;
    let mut events = vec![marker(r#"{"event":"started"}"#)];
    events.extend(["r-3", "r-1", "r-5", "r-2", "r-4"].map(approval_request));
    store
        .runner_ingest(auth("run-o"), events)
        .await
        .expect("requests");
    let listed = |status| async move {
        store
            .list_approvals(ApprovalFilter {
                status,
                run_id: Some("run-o".to_owned()),
                limit: 10,
            })
            .await
            .expect("list")
            .into_iter()
            .map(|a| a.request_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(Some(ApprovalStatus::Pending)).await,
        ["r-3", "r-1", "r-5", "r-2", "r-4"]
    );
    assert_eq!(listed(None).await, ["r-4", "r-2", "r-5", "r-1", "r-3"]);
}

fn channel(id: &str, kind: claw_proto::notify::ChannelKind, target: &str) -> NewChannelRow {
    use claw_proto::notify::{ChannelScope, NotifyKind};
    NewChannelRow {
        id: id.to_owned(),
        user_id: None,
        kind,
        name: id.to_owned(),
        target: target.to_owned(),
        secret: Some("s1".to_owned()),
        events: vec![
            NotifyKind::Finished,
            NotifyKind::Stopped,
            NotifyKind::RunnerLost,
        ],
        scope: ChannelScope::Own,
    }
}

/// A run's end and a lost runner are queued for the channels that want
/// them, in the change's transaction; attempts, dead letters, retry and
/// purge; channels updated and removed; a browser's subscription saved
/// once per endpoint.
pub async fn notifications_are_queued_attempted_and_retried<S: RunStore + NotifyStore + ?Sized>(
    s: Subject<S>,
) {
    use claw_proto::notify::{ChannelKind, ChannelScope, DeliveryStatus, NotifyKind};
    let store = s.store.as_ref();
    let hook = store
        .add_channel(channel("hook", ChannelKind::Webhook, "https://h.example"))
        .await
        .expect("add");
    assert_eq!(hook.events.len(), 3);
    let mut failed_only = channel("failures", ChannelKind::Ntfy, "https://n.example");
    failed_only.events = vec![NotifyKind::Failed];
    store.add_channel(failed_only).await.expect("add");

    new_run(store, "run-n").await;
    store
        .runner_ingest(
            auth("run-n"),
            vec![
                marker(r#"{"event":"started"}"#),
                marker(r#"{"event":"finished","exitCode":0}"#),
            ],
        )
        .await
        .expect("finish");
    let due = store.due_deliveries(now_ms() + 1, 10).await.expect("due");
    assert_eq!(due.len(), 1, "only the channel that wants it: {due:?}");
    let (delivery, to) = &due[0];
    assert_eq!(to.id, "hook");
    assert_eq!(delivery.channel_name, "hook");
    assert_eq!(delivery.kind, NotifyKind::Finished);
    let draft: NotificationDraft = serde_json::from_str(&delivery.payload).expect("payload");
    assert_eq!(draft.title, "claude finished");
    assert_eq!(draft.path, "#/runs/run-n");

    let id = delivery.id.clone();
    store
        .record_attempt(
            id.clone(),
            Attempt::Retry {
                next_at: now_ms() + 3_600_000,
                error: "503".to_owned(),
            },
        )
        .await
        .expect("retry later");
    assert!(
        store
            .due_deliveries(now_ms(), 10)
            .await
            .expect("due")
            .is_empty()
    );
    let pending = store
        .deliveries(Some(DeliveryStatus::Pending), 10)
        .await
        .expect("list");
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("503"));
    match store.retry_delivery(id.clone()).await {
        Err(StoreError::Conflict(why)) => assert!(why.contains("only dead letters"), "{why}"),
        other => panic!("retrying a pending one: {other:?}"),
    }
    store
        .record_attempt(
            id.clone(),
            Attempt::Dead {
                error: "410".to_owned(),
            },
        )
        .await
        .expect("dead");
    let retried = store.retry_delivery(id.clone()).await.expect("retry");
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.done_at, None);
    store
        .record_attempt(id.clone(), Attempt::Delivered)
        .await
        .expect("delivered");
    store
        .record_attempt(
            id.clone(),
            Attempt::Dead {
                error: "late".to_owned(),
            },
        )
        .await
        .expect("a delivered one stays delivered");
    assert!(matches!(
        store.retry_delivery("nope".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));

    // Stopped before it started: queued with the stop.
    new_run(store, "run-s").await;
    store
        .request_stop("run-s".to_owned(), "stop-1".to_owned(), None)
        .await
        .expect("stop");
    let stopped = store
        .deliveries(Some(DeliveryStatus::Pending), 10)
        .await
        .expect("list");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].kind, NotifyKind::Stopped);
    store
        .record_attempt(
            stopped[0].id.clone(),
            Attempt::Dead {
                error: "gone".to_owned(),
            },
        )
        .await
        .expect("dead");
    assert_eq!(store.purge_dead().await.expect("purge"), 1);

    // A lost runner is reported once.
    new_run(store, "run-l").await;
    store
        .runner_ingest(auth("run-l"), vec![marker(r#"{"event":"started"}"#)])
        .await
        .expect("start");
    let ids = vec!["run-l".to_owned(), "run-n".to_owned(), "nope".to_owned()];
    assert_eq!(
        store.report_lost_runners(ids.clone()).await.expect("lost"),
        1
    );
    assert_eq!(store.report_lost_runners(ids).await.expect("lost"), 0);
    let counts = store.outbox_counts().await.expect("counts");
    assert_eq!(
        (
            counts.pending,
            counts.delivered,
            counts.dead,
            counts.channels
        ),
        (1, 1, 0, 2)
    );

    // Channels: changed, listed, removed with their deliveries.
    let changed = store
        .update_channel(
            "hook".to_owned(),
            Some(vec![NotifyKind::Failed]),
            Some(ChannelScope::All),
        )
        .await
        .expect("update");
    assert_eq!(changed.events, [NotifyKind::Failed]);
    assert_eq!(changed.scope, ChannelScope::All);
    assert_eq!(
        store.channel("hook".to_owned()).await.expect("get"),
        changed
    );
    assert!(matches!(
        store.update_channel("nope".to_owned(), None, None).await,
        Err(StoreError::NotFound(_))
    ));
    let all = store.channels(None).await.expect("channels");
    assert_eq!(all.len(), 2);
    assert_eq!(
        store
            .channels(Some("someone".to_owned()))
            .await
            .expect("channels")
            .len(),
        2,
        "global channels are everyone's"
    );
    store
        .delete_channel("failures".to_owned())
        .await
        .expect("delete");
    assert!(matches!(
        store.delete_channel("failures".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));

    // A browser's subscription: one per endpoint, its keys renewed.
    let first = store
        .save_push_subscription(channel("push-1", ChannelKind::Webpush, "https://push/e1"))
        .await
        .expect("save");
    let mut again = channel("push-2", ChannelKind::Webpush, "https://push/e1");
    again.secret = Some("s2".to_owned());
    again.name = "renamed".to_owned();
    let second = store.save_push_subscription(again).await.expect("save");
    assert_eq!(second.id, first.id);
    assert_eq!(second.secret.as_deref(), Some("s2"));
    assert_eq!(second.name, "renamed");
    store
        .save_push_subscription(channel("push-3", ChannelKind::Webpush, "https://push/e2"))
        .await
        .expect("save");
    // The push service says one is gone.
    store
        .runner_ingest(
            auth("run-l"),
            vec![marker(r#"{"event":"finished","exitCode":0}"#)],
        )
        .await
        .expect("finish");
    let to_push: Vec<DeliveryRow> = store
        .deliveries(Some(DeliveryStatus::Pending), 10)
        .await
        .expect("list")
        .into_iter()
        .filter(|d| d.channel_id == "push-3")
        .collect();
    assert_eq!(to_push.len(), 1);
    store
        .record_attempt(
            to_push[0].id.clone(),
            Attempt::ChannelGone {
                error: "410".to_owned(),
            },
        )
        .await
        .expect("gone");
    assert!(matches!(
        store.channel("push-3".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.remove_push_subscriptions().await.expect("remove"), 1);
    assert_eq!(store.outbox_counts().await.expect("counts").channels, 1);
}

/// A host's enrolment token is renewed until it is spent, once; an
/// expired one is said so; a host request's nonce is used once; a revoked
/// host is refused until removed.
pub async fn hosts_enrol_once_and_are_revoked_for_good<S: HostStore + ?Sized>(s: Subject<S>) {
    let store = s.store.as_ref();
    let later = now_ms() + 3_600_000;
    let added = store
        .add_host("h-1".to_owned(), "box".to_owned(), "t1".to_owned(), later)
        .await
        .expect("add");
    let renewed = store
        .add_host(
            "h-2".to_owned(),
            "box".to_owned(),
            "t2".to_owned(),
            later + 1,
        )
        .await
        .expect("a new token");
    assert_eq!(renewed.id, added.id);
    assert_eq!(renewed.token_expires_at, Some(later + 1));
    let now = now_ms();
    assert!(matches!(
        store
            .enroll_host("t1".to_owned(), "salt".to_owned(), now)
            .await,
        Ok(Enrolment::Unknown)
    ));
    let host = match store
        .enroll_host("t2".to_owned(), "salt".to_owned(), now)
        .await
    {
        Ok(Enrolment::Enrolled(host)) => host,
        other => panic!("enrol: {other:?}"),
    };
    assert_eq!(host.key_salt.as_deref(), Some("salt"));
    assert_eq!(host.enrolled_at, Some(now));
    assert_eq!(host.token_expires_at, None);
    assert!(matches!(
        store
            .enroll_host("t2".to_owned(), "salt".to_owned(), now)
            .await,
        Ok(Enrolment::Unknown)
    ));
    match store
        .add_host("h-3".to_owned(), "box".to_owned(), "t3".to_owned(), later)
        .await
    {
        Err(StoreError::Conflict(why)) => assert!(why.contains("enrolled already"), "{why}"),
        other => panic!("adding an enrolled host: {other:?}"),
    }

    let request = auth("any");
    let checked = store
        .host_check(host.id.clone(), request.clone())
        .await
        .expect("check");
    assert_eq!(checked.name, "box");
    assert!(matches!(
        store.host_check(host.id.clone(), request).await,
        Err(StoreError::Replay)
    ));
    assert!(matches!(
        store.host_check("nope".to_owned(), auth("any")).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .host_seen(
            host.id.clone(),
            Some(r#"{"os":"linux"}"#.to_owned()),
            now + 5,
        )
        .await
        .expect("seen");
    store
        .host_seen(host.id.clone(), None, now + 6)
        .await
        .expect("seen");
    let seen = store.host(host.id.clone()).await.expect("by id");
    assert_eq!(seen.last_seen_at, Some(now + 6));
    assert_eq!(seen.info.as_deref(), Some(r#"{"os":"linux"}"#));

    // Expired, and a second host listed by name.
    store
        .add_host(
            "h-4".to_owned(),
            "alpha".to_owned(),
            "t4".to_owned(),
            now - 1,
        )
        .await
        .expect("add");
    match store
        .enroll_host("t4".to_owned(), "salt".to_owned(), now)
        .await
    {
        Ok(Enrolment::Expired { host }) => assert_eq!(host, "alpha"),
        other => panic!("an expired token: {other:?}"),
    }
    let names: Vec<String> = store
        .hosts()
        .await
        .expect("hosts")
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(names, ["alpha", "box"]);

    // Revoked for good: refused, not added again until removed.
    let revoked = store
        .revoke_host("box".to_owned(), now + 10)
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_at, Some(now + 10));
    let again = store
        .revoke_host("box".to_owned(), now + 20)
        .await
        .expect("revoke again");
    assert_eq!(again.revoked_at, Some(now + 10));
    assert!(matches!(
        store.host_check(host.id.clone(), auth("any")).await,
        Err(StoreError::NotFound(_))
    ));
    match store
        .add_host("h-5".to_owned(), "box".to_owned(), "t5".to_owned(), later)
        .await
    {
        Err(StoreError::Conflict(why)) => assert!(why.contains("was revoked"), "{why}"),
        other => panic!("adding a revoked host: {other:?}"),
    }
    let removed = store.remove_host("box".to_owned()).await.expect("remove");
    assert_eq!(removed.id, host.id);
    assert!(matches!(
        store.host("box".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.remove_host("box".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .add_host("h-6".to_owned(), "box".to_owned(), "t6".to_owned(), later)
        .await
        .expect("added again once removed");
}

mod sqlite {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore, StoreSettings};

    fn subject(dir: &tempfile::TempDir) -> Subject {
        let changes = Arc::new(Recorder::default());
        let store = SqliteStore::open(
            &dir.path().join("db.sqlite"),
            StoreSettings {
                durability: Durability::Batched,
                nonce_retention_secs: 600,
            },
            Arc::clone(&changes) as Arc<dyn ChangeSink>,
        )
        .expect("open");
        Subject {
            store: Arc::new(store),
            changes,
        }
    }

    macro_rules! conformance {
        ($($check:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $check() {
                let dir = tempfile::tempdir().expect("dir");
                super::$check(subject(&dir)).await;
            }
        )*};
    }

    conformance!(
        sequences_are_stored_once_and_gaps_refused,
        markers_change_the_runs_status,
        nonces_tokens_and_their_expiry,
        commands_are_delivered_and_answered_once,
        the_audit_chain_verifies,
        prune_takes_finished_runs_only,
        reconcile_fails_stale_runs,
        idempotency_keys_keep_their_answers_and_expire,
        users_sessions_and_the_last_administrator,
        changes_follow_their_commits_in_order,
        approvals_are_made_decided_once_and_resolved,
        approvals_made_together_keep_their_order,
        notifications_are_queued_attempted_and_retried,
        hosts_enrol_once_and_are_revoked_for_good,
    );
}
