//! The PostgreSQL store against a real server: a temporary cluster per
//! test (claw-testkit), the conformance checks of the traits it has, and
//! what several instances on one database must hold.

use std::sync::Arc;
use std::time::Duration;

use claw_testkit::TempCluster;
use claw_testkit::postgres::PG_DATABASE;

use super::*;
use crate::config::DatabaseUrl;
use crate::store::conformance::{self, Recorder, Subject};
use crate::store::{
    AgentSpec, ArtifactIndex, CommandStore, LoginFailureStore, NewEvent, NewRun, NotifyStore,
    RunStore, RunnerAuth, token_hash,
};
use claw_proto::wire::EventType;

fn settings(url: &str) -> PgSettings {
    PgSettings {
        url: DatabaseUrl::new(url),
        password: None,
        max_connections: 4,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(30),
        nonce_retention_secs: 600,
    }
}

async fn open(url: &str) -> (PgStore, Arc<Recorder>) {
    let changes = Arc::new(Recorder::default());
    let store = PgStore::open(
        settings(url),
        Arc::clone(&changes) as Arc<dyn crate::store::ChangeSink>,
    )
    .await
    .expect("open the PostgreSQL store");
    (store, changes)
}

async fn subject(cluster: &TempCluster) -> Subject<PgStore> {
    let (store, changes) = open(&cluster.url()).await;
    Subject {
        store: Arc::new(store),
        changes,
    }
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let cluster = TempCluster::start();
            conformance::$check(subject(&cluster).await).await;
        }
    )*};
}

conformance!(
    sequences_are_stored_once_and_gaps_refused,
    markers_change_the_runs_status,
    nonces_tokens_and_their_expiry,
    commands_are_delivered_and_answered_once,
    changes_follow_their_commits_in_order,
    the_audit_chain_verifies,
    idempotency_keys_keep_their_answers_and_expire,
    prune_takes_finished_runs_only,
    reconcile_fails_stale_runs,
    users_sessions_and_the_last_administrator,
    approvals_are_made_decided_once_and_resolved,
    approvals_made_together_keep_their_order,
    notifications_are_queued_attempted_and_retried,
    hosts_enrol_once_and_are_revoked_for_good,
);

/// Every store trait is here: the daemon's `AnyStore` can be a `PgStore`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_serves_as_any_store() {
    let cluster = TempCluster::start();
    let (store, _) = open(&cluster.url()).await;
    let any: crate::store::AnyStore = Arc::new(store);
    any.ping().await.expect("ping");
    let summary = any.summary();
    assert!(summary.size_bytes > 0, "{summary:?}");
    assert_eq!(summary.schema_version, migrate::latest_version());
    assert!(!summary.path.contains("s3cret"));
    assert_eq!(any.db_status().await.expect("status").backend, "postgres");
    assert!(any.run_ids().await.expect("ids").is_empty());
    any.drain().await.expect("drain");
    any.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_opening_together_migrate_once() {
    let cluster = TempCluster::start();
    let url = cluster.url();
    let (a, b) = tokio::join!(open(&url), open(&url));
    assert_eq!(
        a.0.schema_version().await.expect("version"),
        migrate::latest_version()
    );
    assert_eq!(
        b.0.schema_version().await.expect("version"),
        migrate::latest_version()
    );
    let ledger = cluster
        .psql(
            PG_DATABASE,
            "SELECT string_agg(name, ',' ORDER BY version) FROM claw_schema_migrations",
        )
        .expect("ledger");
    // Both opened: had both migrated, the second's row in the ledger (or
    // its CREATE TABLE) would have failed it.
    let expected = migrate::applied(migrate::latest_version()).join(",");
    assert_eq!(ledger, expected, "each migration applied once");
    assert!(ledger.starts_with("0001 schema"), "{ledger}");
    // Opened again: nothing to do, the same schema.
    let (again, _) = open(&url).await;
    assert_eq!(
        again.schema_version().await.expect("version"),
        migrate::latest_version()
    );
    let tables = cluster
        .psql(
            PG_DATABASE,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .expect("tables");
    // SQLite's 15 tables less nonces_legacy, with audit_head,
    // login_failures, instances and the migrations' ledger.
    assert_eq!(tables, "18");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_leaves_the_schema_as_it_was() {
    let cluster = TempCluster::start();
    // A table of the schema already there: migration 1 fails halfway.
    cluster
        .psql(PG_DATABASE, "CREATE TABLE outbox (x INTEGER)")
        .expect("create");
    let err = PgStore::open(
        settings(&cluster.url()),
        Arc::new(Recorder::default()) as Arc<dyn crate::store::ChangeSink>,
    )
    .await
    .err()
    .expect("the migration fails");
    assert!(
        matches!(&err, StoreError::Migration(m) if m.contains("migration 1") && m.contains("outbox")),
        "{err:?}"
    );
    let tables = cluster
        .psql(
            PG_DATABASE,
            "SELECT string_agg(table_name, ',' ORDER BY table_name) \
             FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .expect("tables");
    assert_eq!(
        tables, "claw_schema_migrations,outbox",
        "nothing else was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_may_come_from_the_credential_and_is_never_shown() {
    let cluster = TempCluster::start();
    let mut with_credential = settings(&cluster.url_without_password());
    with_credential.password = Some(crate::secrets::Secret::from_bytes(
        cluster.password().as_bytes().to_vec(),
    ));
    let store = PgStore::open(
        with_credential.clone(),
        Arc::new(Recorder::default()) as Arc<dyn crate::store::ChangeSink>,
    )
    .await
    .expect("open with the credential's password");
    assert_eq!(store.shown_url(), cluster.url_without_password());
    assert!(!store.shown_url().contains(cluster.password()));

    // Both the URL and the credential: refused, without either password.
    let mut both = with_credential.clone();
    both.url = DatabaseUrl::new(cluster.url());
    let err = PgStore::open(both, Arc::new(Recorder::default()))
        .await
        .err()
        .expect("two passwords")
        .to_string();
    assert!(err.contains("keep one"), "{err}");
    assert!(!err.contains(cluster.password()), "{err}");

    // A wrong password: the server's refusal, the URL without it.
    let wrong_url = cluster
        .url()
        .replace(cluster.password(), "not-the-password");
    let err = PgStore::open(settings(&wrong_url), Arc::new(Recorder::default()))
        .await
        .err()
        .expect("wrong password")
        .to_string();
    assert!(err.contains(&cluster.url_without_password()), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn auth(run_id: &str, nonce: &str) -> RunnerAuth {
    RunnerAuth {
        run_id: run_id.to_owned(),
        capability_token: TOKEN.to_owned(),
        nonce: nonce.to_owned(),
        timestamp: crate::clock::now_ms() / 1000,
    }
}

fn line(data: String, sequence: Option<u64>) -> NewEvent {
    NewEvent {
        kind: EventType::Stdout,
        data,
        sequence,
    }
}

/// Two instances on one database: the same sequences resent to both at
/// once are stored once; a nonce used on one is refused on the other;
/// appends without sequences from both get one sequence each, no gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_store_each_sequence_once_and_share_nonces() {
    let cluster = TempCluster::start();
    let (a, _) = open(&cluster.url()).await;
    let (b, _) = open(&cluster.url()).await;
    a.create_run(new_run("shared")).await.expect("run");
    assert_eq!(b.run("shared".to_owned()).await.expect("run").id, "shared");
    // Batches of 1..=50 sent to both, 20 times each, at once.
    let batch = |n: u32| -> Vec<NewEvent> {
        (1..=50)
            .map(|s| line(format!("line {s} from {n}"), Some(s)))
            .collect()
    };
    let mut sends = Vec::new();
    for n in 0..40u32 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let events = batch(n);
        sends.push(tokio::spawn(async move {
            store
                .runner_ingest(auth("shared", &format!("nonce-{n}")), events)
                .await
        }));
    }
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.expect("task").expect("ingest"));
    }
    let first = answers[0].ids.clone();
    assert_eq!(first.len(), 50);
    for answer in &answers {
        assert_eq!(answer.ids, first, "every resend answers the stored ids");
    }
    let stored = a
        .events_after("shared".to_owned(), 0, 1000)
        .await
        .expect("events");
    assert_eq!(stored.len(), 50);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| e.sequence == i as u64 + 1)
    );
    let counted = cluster
        .psql(PG_DATABASE, "SELECT count(*) FROM events")
        .expect("count");
    assert_eq!(counted, "50");

    // A nonce used on a is refused on b, also for a resend that stores
    // nothing, and for a request that only checks.
    let used = auth("shared", "used-once");
    a.runner_check(used.clone()).await.expect("first use");
    let replay = b.runner_check(used.clone()).await.expect_err("replay");
    assert!(matches!(replay, StoreError::Replay), "{replay:?}");
    let replay = b
        .runner_ingest(used, vec![line("x".to_owned(), Some(1))])
        .await
        .expect_err("replayed upload");
    assert!(matches!(replay, StoreError::Replay), "{replay:?}");
    // The same fresh nonce sent to both at once: one of them takes it.
    let racing = auth("shared", "racing");
    let (x, y) = tokio::join!(a.runner_check(racing.clone()), b.runner_check(racing));
    assert!(x.is_ok() != y.is_ok(), "exactly one wins: {x:?} {y:?}");

    // Unsequenced appends from both at once: 51.. without gaps or twins.
    let mut appends = Vec::new();
    for n in 0..30u32 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        appends.push(tokio::spawn(async move {
            store
                .runner_ingest(
                    auth("shared", &format!("append-{n}")),
                    vec![
                        line(format!("append {n}"), None),
                        line(format!("more {n}"), None),
                    ],
                )
                .await
        }));
    }
    for append in appends {
        append.await.expect("task").expect("append");
    }
    let all = b
        .events_after("shared".to_owned(), 0, 1000)
        .await
        .expect("events");
    assert_eq!(all.len(), 110);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.sequence == i as u64 + 1)
    );
    // Each request's two lines are next to each other: its own sequences.
    for pair in all[50..].chunks(2) {
        let n = pair[0]
            .data
            .strip_prefix("append ")
            .expect("first of a pair");
        assert_eq!(pair[1].data, format!("more {n}"));
    }
    assert_eq!(
        a.run("shared".to_owned()).await.expect("run").event_count,
        110
    );

    // A gap is refused with where to resume, on either instance.
    let gap = b
        .runner_ingest(
            auth("shared", "gap"),
            vec![line("far".to_owned(), Some(200))],
        )
        .await
        .expect_err("gap");
    assert!(
        matches!(
            gap,
            StoreError::SequenceGap {
                next: 111,
                sequence: 200,
                ..
            }
        ),
        "{gap:?}"
    );
    // ... and leaves its nonce unused.
    b.runner_check(auth("shared", "gap"))
        .await
        .expect("nonce of a refused request");
    assert_eq!(token_hash(TOKEN).len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_artifacts_round_trip() {
    let cluster = TempCluster::start();
    let (store, _) = open(&cluster.url()).await;
    store
        .create_run(NewRun {
            id: "r".to_owned(),
            capability_token: TOKEN.to_owned(),
            command: Some("claude".to_owned()),
            metadata: Some("{\"k\":1}".to_owned()),
            created_by: Some("admin".to_owned()),
            agent: AgentSpec {
                allowed_tools: vec!["Read".to_owned()],
                approval_timeout_secs: Some(60),
                ..AgentSpec::default()
            },
            first_prompt: None,
            host_id: None,
            workspace: Some("/srv".to_owned()),
        })
        .await
        .expect("run");
    let run = store.run("r".to_owned()).await.expect("run");
    assert_eq!(run.allowed_tools, ["Read"]);
    assert_eq!(run.approval_timeout_secs, Some(60));
    assert_eq!(run.workspace.as_deref(), Some("/srv"));
    let duplicate = store
        .create_run(new_run("r"))
        .await
        .expect_err("duplicate id");
    assert!(
        matches!(duplicate, StoreError::Constraint(_)),
        "{duplicate:?}"
    );
    let listed = store
        .list_runs(crate::store::RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    let added = store
        .runner_add_artifact(
            auth("r", "art"),
            crate::store::NewArtifact {
                id: "a1".to_owned(),
                filename: "out.log".to_owned(),
                path: "r/a1".to_owned(),
                size: 12,
                content_type: "text/plain".to_owned(),
            },
        )
        .await
        .expect("artifact");
    assert_eq!(store.artifact("a1".to_owned()).await.expect("get"), added);
    assert_eq!(
        store.list_artifacts("r".to_owned()).await.expect("list"),
        std::slice::from_ref(&added)
    );
    assert_eq!(store.all_artifacts().await.expect("all").len(), 1);
    let gone = store.delete_run("r".to_owned()).await.expect("delete");
    assert_eq!(gone, [added]);
    assert!(matches!(
        store.run("r".to_owned()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.run_counts().await.expect("counts"), []);
    let _ = store.list_commands("r".to_owned()).await.expect_err("gone");
}

/// Two instances appending to the audit log at once, 200 entries each:
/// one chain over all 400, verified as SQLite verifies it, and an edit
/// made behind the store's back breaks it at that row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_append_one_audit_chain() {
    use crate::store::{AuditEntry, AuditFilter, AuditStore, ChainVerdict};
    let cluster = TempCluster::start();
    let (a, _) = open(&cluster.url()).await;
    let (b, _) = open(&cluster.url()).await;
    let mut appends = Vec::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        appends.push(tokio::spawn(async move {
            for n in 0..200 {
                store
                    .audit(AuditEntry {
                        username: Some(format!("user-{name}")),
                        action: format!("test.{name}"),
                        target: Some(n.to_string()),
                        details: (n % 3 == 0).then(|| r#"{"k":1}"#.to_owned()),
                        ..Default::default()
                    })
                    .await
                    .expect("audit");
            }
        }));
    }
    for append in appends {
        append.await.expect("task");
    }
    for store in [&a, &b] {
        let verdict = store.verify_audit_chain().await.expect("verify");
        assert_eq!(
            verdict,
            ChainVerdict {
                checked: 400,
                broken: None
            }
        );
    }
    // Both instances' entries are in it, interleaved or not.
    let theirs = a
        .list_audit(AuditFilter {
            action: Some("test.b".to_owned()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(theirs.len(), 200);
    // The head holds the last row's id and hash.
    let head = cluster
        .psql(
            PG_DATABASE,
            "SELECT (SELECT last_id = (SELECT max(id) FROM audit_log) \
             AND hash = (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1)) FROM audit_head",
        )
        .expect("head");
    assert_eq!(head, "t");
    // An edited row breaks the chain there; a removed one at its successor.
    let edited: i64 = cluster
        .psql(
            PG_DATABASE,
            "SELECT id FROM audit_log ORDER BY id OFFSET 99 LIMIT 1",
        )
        .expect("id")
        .parse()
        .expect("an id");
    cluster
        .psql(
            PG_DATABASE,
            &format!("UPDATE audit_log SET target = 'forged' WHERE id = {edited}"),
        )
        .expect("edit");
    let verdict = b.verify_audit_chain().await.expect("verify");
    assert_eq!(verdict.checked, 99);
    let (at, why) = verdict.broken.expect("broken");
    assert_eq!(at, edited);
    assert!(why.contains("edited"), "{why}");
    cluster
        .psql(
            PG_DATABASE,
            &format!("DELETE FROM audit_log WHERE id = {edited}"),
        )
        .expect("remove");
    let verdict = a.verify_audit_chain().await.expect("verify");
    assert_eq!(verdict.checked, 99);
    let (at, why) = verdict.broken.expect("broken");
    assert!(at > edited, "{at}");
    assert!(why.contains("removed or inserted"), "{why}");
}

/// The hash of a PostgreSQL audit row is the one SQLite computes for the
/// same row: `audit verify` means the same on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_hash_as_on_sqlite() {
    use crate::store::audit_chain::{ChainRow, row_hash};
    use crate::store::{AuditEntry, AuditFilter, AuditStore};
    let cluster = TempCluster::start();
    let (store, _) = open(&cluster.url()).await;
    for action in ["user.login", "run.create"] {
        store
            .audit(AuditEntry {
                user_id: Some("u-1".to_owned()),
                username: Some("admin".to_owned()),
                action: action.to_owned(),
                ip: Some("192.0.2.1".to_owned()),
                ..Default::default()
            })
            .await
            .expect("audit");
    }
    let mut rows = store
        .list_audit(AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    rows.reverse();
    let mut prev = String::new();
    for row in rows {
        let chained = ChainRow {
            id: row.id,
            timestamp: row.timestamp,
            user_id: row.user_id,
            username: row.username,
            action: row.action,
            target: row.target,
            details: row.details,
            ip: row.ip,
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        assert_eq!(row.hash, row_hash(&prev, &chained));
        prev = row.hash;
    }
}

/// Two instances demoting the last two administrators at once: one of
/// them is refused, an administrator is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_leave_no_administrator() {
    use crate::store::{IdentityStore, NewUser, UserUpdate};
    use claw_proto::wire::Role;
    let cluster = TempCluster::start();
    let (a, _) = open(&cluster.url()).await;
    let (b, _) = open(&cluster.url()).await;
    // Of two first users created at once, one is.
    let first = |store: PgStore, name: &'static str| async move {
        store
            .create_first_user(NewUser {
                id: format!("u-{name}"),
                username: name.to_owned(),
                password_hash: "x".to_owned(),
                role: Role::Admin,
            })
            .await
    };
    let (x, y) = tokio::join!(first(a.clone(), "one"), first(b.clone(), "two"));
    assert!(x.is_ok() != y.is_ok(), "exactly one: {x:?} {y:?}");
    let other = if x.is_ok() { "two" } else { "one" };
    a.create_user(NewUser {
        id: format!("u-{other}"),
        username: other.to_owned(),
        password_hash: "x".to_owned(),
        role: Role::Admin,
    })
    .await
    .expect("second administrator");
    for round in 0..10 {
        let demote = |store: PgStore, id: &'static str| async move {
            store
                .update_user(
                    id.to_owned(),
                    UserUpdate {
                        role: Some(Role::Viewer),
                        ..Default::default()
                    },
                )
                .await
        };
        let (x, y) = tokio::join!(demote(a.clone(), "u-one"), demote(b.clone(), "u-two"));
        assert!(x.is_ok() != y.is_ok(), "round {round}: {x:?} {y:?}");
        let refused = x.err().or(y.err()).expect("one refused");
        assert!(matches!(refused, StoreError::Conflict(_)), "{refused:?}");
        let admins = cluster
            .psql(
                PG_DATABASE,
                "SELECT count(*) FROM users WHERE role = 'admin'",
            )
            .expect("count");
        assert_eq!(admins, "1");
        // Both administrators again; then deleting both at once.
        for id in ["u-one", "u-two"] {
            a.update_user(
                id.to_owned(),
                UserUpdate {
                    role: Some(Role::Admin),
                    ..Default::default()
                },
            )
            .await
            .expect("promote");
        }
    }
    let (x, y) = tokio::join!(
        a.delete_user("u-one".to_owned()),
        b.delete_user("u-two".to_owned())
    );
    assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
    assert_eq!(a.user_count().await.expect("count"), 1);
}

/// One key claimed on two instances at once: one claim, the other sees it
/// in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_claim_an_idempotency_key_once() {
    use crate::clock::now_ms;
    use crate::store::{IdempotencyClaim, IdempotencyState, IdempotencyStore};
    let cluster = TempCluster::start();
    let (a, _) = open(&cluster.url()).await;
    let (b, _) = open(&cluster.url()).await;
    for n in 0..20 {
        let claim = |expired_before: i64| IdempotencyClaim {
            scope: "user-1".to_owned(),
            key: format!("key-{n}"),
            fingerprint: "f".to_owned(),
            now: now_ms(),
            expired_before,
        };
        let (x, y) = tokio::join!(
            a.claim_idempotency_key(claim(0)),
            b.claim_idempotency_key(claim(0))
        );
        let mut states = [x.expect("claim"), y.expect("claim")];
        states.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(
            states,
            [IdempotencyState::Claimed, IdempotencyState::InProgress]
        );
    }
}

/// Failed logins counted in the database: two instances share the count,
/// guesses racing on both cannot pass the limit, a released attempt and a
/// cleared key count no more, and the window slides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_are_counted_over_every_instance() {
    use crate::clock::now_ms;
    let cluster = TempCluster::start();
    let (a, _) = open(&cluster.url()).await;
    let (b, _) = open(&cluster.url()).await;
    let window = 15 * 60 * 1000;
    let now = now_ms();
    // 20 guesses at once, half on each instance, against a limit of 5.
    let mut guesses = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        guesses.push(tokio::spawn(async move {
            store.login_hit("user:bob".into(), 5, window, now + n).await
        }));
    }
    let mut allowed = 0;
    for guess in guesses {
        if guess.await.expect("task").expect("hit") {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
    assert!(
        !b.login_hit("user:bob".into(), 5, window, now + 100)
            .await
            .expect("hit")
    );
    // Another key has its own count; no limit counts nothing.
    assert!(
        a.login_hit("ip:192.0.2.1".into(), 5, window, now)
            .await
            .expect("hit")
    );
    assert!(
        a.login_hit("user:bob".into(), 0, window, now)
            .await
            .expect("hit")
    );
    // A released attempt makes room for one more.
    let counted = cluster
        .psql(
            PG_DATABASE,
            "SELECT min(at) FROM login_failures WHERE key = 'user:bob'",
        )
        .expect("first");
    let first: i64 = counted.parse().expect("a time");
    a.login_release("user:bob".into(), first)
        .await
        .expect("release");
    assert!(
        b.login_hit("user:bob".into(), 5, window, now + 200)
            .await
            .expect("hit")
    );
    assert!(
        !a.login_hit("user:bob".into(), 5, window, now + 201)
            .await
            .expect("hit")
    );
    // The window slides: old failures stop counting (and are removed).
    assert!(
        a.login_hit("user:bob".into(), 5, window, now + window + 200)
            .await
            .expect("hit")
    );
    // A success clears the name.
    b.login_clear("user:bob".into()).await.expect("clear");
    let left = cluster
        .psql(
            PG_DATABASE,
            "SELECT count(*) FROM login_failures WHERE key = 'user:bob'",
        )
        .expect("count");
    assert_eq!(left, "0");
    assert_eq!(
        cluster
            .psql(PG_DATABASE, "SELECT count(*) FROM login_failures")
            .expect("count"),
        "1",
        "the address's count stays"
    );
}

/// Two senders (instances) asking for due notifications at once get
/// disjoint rows that together are all of them; a claimed row is not
/// offered again while its lease lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_claim_each_due_notification_once() {
    use claw_proto::notify::{ChannelKind, ChannelScope, NotifyKind};
    let cluster = TempCluster::start();
    let (a, _) = open(&cluster.url()).await;
    let (b, _) = open(&cluster.url()).await;
    a.add_channel(crate::store::NewChannelRow {
        id: "hook".to_owned(),
        user_id: None,
        kind: ChannelKind::Webhook,
        name: "hook".to_owned(),
        target: "https://h.example".to_owned(),
        secret: Some("s1".to_owned()),
        events: vec![NotifyKind::Finished],
        scope: ChannelScope::All,
    })
    .await
    .expect("channel");
    let marker = |data: &str| NewEvent {
        kind: EventType::Marker,
        data: data.to_owned(),
        sequence: None,
    };
    for n in 0..40 {
        let id = format!("run-{n}");
        a.create_run(new_run(&id)).await.expect("run");
        a.runner_ingest(
            auth(&id, &format!("end-{n}")),
            vec![
                marker(r#"{"event":"started"}"#),
                marker(r#"{"event":"finished","exitCode":0}"#),
            ],
        )
        .await
        .expect("finish");
    }
    let now = crate::clock::now_ms() + 1;
    let (from_a, from_b) = tokio::join!(a.due_deliveries(now, 25), b.due_deliveries(now, 25));
    let ids = |due: Vec<(crate::store::DeliveryRow, crate::store::ChannelRow)>| {
        due.into_iter()
            .map(|(d, _)| d.id)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (from_a, from_b) = (ids(from_a.expect("a")), ids(from_b.expect("b")));
    assert!(from_a.is_disjoint(&from_b), "{from_a:?} {from_b:?}");
    assert_eq!(from_a.len() + from_b.len(), 40);
    assert!(a.due_deliveries(now, 50).await.expect("due").is_empty());
    // The lease ends: a sender that died leaves its rows to the others.
    let later = now + 21_000;
    assert_eq!(b.due_deliveries(later, 50).await.expect("due").len(), 40);
}

/// `clawctl db copy-to` writes every table of this schema but its own
/// bookkeeping, with exactly the columns each has: a migration that adds
/// one fails here until the copy takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_from_sqlite_fills_every_table_and_column() {
    use std::collections::BTreeSet;

    use crate::store::copy::TABLES;

    let cluster = TempCluster::start();
    let (store, _) = open(&cluster.url()).await;
    let conn = store.conn().await.expect("connection");
    let names = |rows: Vec<tokio_postgres::Row>| -> BTreeSet<String> {
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    };
    let tables = names(
        conn.query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .expect("tables"),
    );
    let mut copied: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    for own in [
        "audit_head",
        "login_failures",
        "claw_schema_migrations",
        "instances",
    ] {
        copied.insert(own.to_owned());
    }
    assert_eq!(tables, copied);
    for table in TABLES {
        let columns = names(
            conn.query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&table.name],
            )
            .await
            .expect("columns"),
        );
        let named: BTreeSet<String> = table.columns.iter().map(|c| c.name.to_owned()).collect();
        assert_eq!(columns, named, "{}", table.name);
        // The identity column is the one PostgreSQL generates.
        let identity = names(
            conn.query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 AND is_identity = 'YES'",
                &[&table.name],
            )
            .await
            .expect("identity"),
        );
        let expected: BTreeSet<String> = table.identity.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(identity, expected, "{}", table.name);
    }
}

/// A sink of another instance: what it heard, and how often it was told
/// that it may have missed something; it follows one run.
#[derive(Default)]
struct Heard {
    changes: std::sync::Mutex<Vec<Change>>,
    missed: std::sync::atomic::AtomicUsize,
}

impl crate::store::ChangeSink for Heard {
    fn publish(&self, change: Change) {
        self.changes.lock().expect("heard").push(change);
    }

    fn follows(&self, run_id: &str) -> bool {
        run_id == "followed"
    }

    fn missed(&self) {
        self.missed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Heard {
    fn missed(&self) -> usize {
        self.missed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `done` holds of what was heard (10 s at most).
    async fn until(&self, what: &str, done: impl Fn(&[Change]) -> bool) -> Vec<Change> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            {
                let changes = self.changes.lock().expect("heard");
                if done(&changes) {
                    return changes.clone();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: heard {changes:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn until_missed(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.missed() < n {
            assert!(std::time::Instant::now() < deadline, "never listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn new_run(id: &str) -> NewRun {
    NewRun {
        id: id.to_owned(),
        capability_token: TOKEN.to_owned(),
        command: None,
        metadata: None,
        created_by: None,
        agent: AgentSpec::default(),
        first_prompt: None,
        host_id: None,
        workspace: None,
    }
}

fn events_of(changes: &[Change]) -> Vec<u64> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Events(events) => Some(events.iter().map(|e| e.sequence)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// What one instance commits, another hears through LISTEN/NOTIFY as the
/// same changes, in commit order, once; its own commits are not heard
/// again; runs it does not follow are not read; after its listening
/// connection is killed it listens again, says it may have missed
/// something, and hears what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_hears_each_commit_once_and_listens_again() {
    let cluster = TempCluster::start();
    let (a, from_a) = open(&cluster.url()).await;
    let heard = Arc::new(Heard::default());
    let b = PgStore::open(
        settings(&cluster.url()),
        Arc::clone(&heard) as Arc<dyn crate::store::ChangeSink>,
    )
    .await
    .expect("open b");
    assert_ne!(a.instance(), b.instance());
    b.listen_to_other_instances();
    heard.until_missed(1).await;

    a.create_run(new_run("followed")).await.expect("run");
    a.create_run(new_run("other")).await.expect("run");
    for (n, first) in [1u64, 4, 7].into_iter().enumerate() {
        let events = (first..first + 3)
            .map(|s| line(format!("line {s}"), Some(s)))
            .collect();
        a.runner_ingest(auth("followed", &format!("f-{n}")), events)
            .await
            .expect("ingest");
        a.runner_ingest(
            auth("other", &format!("o-{n}")),
            vec![line("x".to_owned(), Some(n as u64 + 1))],
        )
        .await
        .expect("ingest other");
    }
    a.request_stop("followed".to_owned(), "stop-1".to_owned(), None)
        .await
        .expect("stop");
    let changes = heard
        .until("the stop", |c| {
            c.iter().any(|c| matches!(c, Change::StopRequested { .. }))
        })
        .await;
    // The same rows as a published, for the followed run only.
    let own: Vec<Change> = from_a
        .take()
        .into_iter()
        .filter(|c| match c {
            Change::Events(e) => e[0].run_id == "followed",
            _ => true,
        })
        .collect();
    assert_eq!(changes, own);
    assert_eq!(events_of(&changes), (1..=9).collect::<Vec<_>>());

    // b's own commits reach its sink once (directly), not again.
    let before = heard.changes.lock().expect("heard").len();
    b.runner_ingest(
        auth("followed", "from-b"),
        vec![line("line 10".to_owned(), Some(10))],
    )
    .await
    .expect("ingest on b");
    a.runner_ingest(
        auth("followed", "from-a"),
        vec![line("line 11".to_owned(), Some(11))],
    )
    .await
    .expect("ingest on a");
    let changes = heard.until("line 11", |c| events_of(c).contains(&11)).await;
    assert_eq!(events_of(&changes[before..]), [10, 11]);

    // The listening connection killed: listened again, told, and heard.
    let killed = cluster
        .psql(
            PG_DATABASE,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'clawd (listen)'",
        )
        .expect("terminate");
    assert_eq!(killed, "1");
    heard.until_missed(2).await;
    a.runner_ingest(
        auth("followed", "after"),
        vec![line("line 12".to_owned(), Some(12))],
    )
    .await
    .expect("ingest");
    heard.until("line 12", |c| events_of(c).contains(&12)).await;
}
