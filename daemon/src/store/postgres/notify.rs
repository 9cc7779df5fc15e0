//! Notification channels and the outbox on PostgreSQL (as
//! sqlite/notify.rs). A notification is written for each channel that
//! wants it in the transaction of the change that causes it, so none is
//! lost and none is made twice, whichever instance makes the change.

use async_trait::async_trait;
use claw_proto::notify::{ChannelKind, ChannelScope, DeliveryStatus, NotifyKind, OutboxCounts};
use claw_proto::wire::RunStatus;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PgStore, unbig};
use crate::clock::now_ms;
use crate::store::notifications::{
    self, CHANNEL_COLUMNS, CHANNEL_FROM, DELIVERY_COLUMNS, DELIVERY_FROM, events_from, events_text,
};
use crate::store::{
    Attempt, ChannelRow, DeliveryRow, NewChannelRow, NotificationDraft, NotifyStore, StoreError,
};

/// How long a claimed delivery is hidden from the other senders: longer
/// than one batch's attempts take (10 s each, sent together), and how long
/// the rows of a sender that died wait.
const CLAIM_LEASE_MS: i64 = 20_000;

/// A channel from `CHANNEL_COLUMNS`, which start at column `at`.
fn channel_from_row(row: &Row, at: usize) -> ChannelRow {
    let kind: String = row.get(at + 3);
    let events: String = row.get(at + 7);
    let scope: String = row.get(at + 8);
    ChannelRow {
        id: row.get(at),
        user_id: row.get(at + 1),
        owner: row.get(at + 2),
        kind: ChannelKind::parse(&kind).unwrap_or(ChannelKind::Webhook),
        name: row.get(at + 4),
        target: row.get(at + 5),
        secret: row.get(at + 6),
        events: events_from(&events),
        scope: ChannelScope::parse(&scope).unwrap_or_default(),
        created_at: row.get(at + 9),
    }
}

fn delivery_from_row(row: &Row) -> DeliveryRow {
    let kind: String = row.get(3);
    let status: String = row.get(6);
    let attempts: i32 = row.get(7);
    DeliveryRow {
        id: row.get(0),
        channel_id: row.get(1),
        channel_name: row.get(2),
        kind: NotifyKind::parse(&kind).unwrap_or(NotifyKind::Finished),
        run_id: row.get(4),
        payload: row.get(5),
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending),
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_at: row.get(8),
        last_error: row.get(9),
        created_at: row.get(10),
        done_at: row.get(11),
    }
}

async fn channel_by_id(conn: &impl GenericClient, id: &str) -> Result<ChannelRow, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM {CHANNEL_FROM} WHERE c.id = $1"
        ))
        .await?;
    conn.query_opt(&stmt, &[&id])
        .await?
        .map(|r| channel_from_row(&r, 0))
        .ok_or_else(|| StoreError::NotFound(format!("unknown channel {id}")))
}

async fn delivery_by_id(conn: &impl GenericClient, id: &str) -> Result<DeliveryRow, StoreError> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE o.id = $1"
        ))
        .await?;
    conn.query_opt(&stmt, &[&id])
        .await?
        .map(|r| delivery_from_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("unknown notification {id}")))
}

async fn insert_channel(
    conn: &impl GenericClient,
    channel: &NewChannelRow,
) -> Result<ChannelRow, StoreError> {
    conn.execute(
        "INSERT INTO notify_channels (id, user_id, kind, name, target, secret, events, scope, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &channel.id,
            &channel.user_id,
            &channel.kind.as_str(),
            &channel.name,
            &channel.target,
            &channel.secret,
            &events_text(&channel.events),
            &channel.scope.as_str(),
            &now_ms(),
        ],
    )
    .await?;
    channel_by_id(conn, &channel.id).await
}

/// A run's title for people: its command, or its agent's first prompt.
pub(super) async fn run_title(
    conn: &impl GenericClient,
    run_id: &str,
) -> Result<String, StoreError> {
    let stmt = conn
        .prepare_cached(
            "SELECT COALESCE(r.command, (SELECT c.command FROM commands c WHERE c.run_id = r.id \
             AND c.kind = 'prompt' ORDER BY c.created_at, c.queued LIMIT 1), r.agent) \
             FROM runs r WHERE r.id = $1",
        )
        .await?;
    let title: Option<String> = conn
        .query_opt(&stmt, &[&run_id])
        .await?
        .and_then(|r| r.get(0));
    Ok(notifications::run_title(title, run_id))
}

/// Writes `draft` to the outbox for every channel that wants it: its kind
/// is among the channel's, and the run is the owner's (or the channel
/// hears of all runs, or it is global). Returns how many.
pub(super) async fn enqueue(
    conn: &impl GenericClient,
    draft: &NotificationDraft,
    now: i64,
) -> Result<usize, StoreError> {
    let stmt = conn
        .prepare_cached(
            "SELECT c.id FROM notify_channels c LEFT JOIN users u ON u.id = c.user_id \
             WHERE c.events::jsonb ? $1::text \
             AND (c.user_id IS NULL OR c.scope = 'all' \
                  OR u.username = (SELECT created_by FROM runs WHERE id = $2))",
        )
        .await?;
    let channels: Vec<String> = conn
        .query(&stmt, &[&draft.kind.as_str(), &draft.run_id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if channels.is_empty() {
        return Ok(0);
    }
    let payload = notifications::payload(draft)?;
    let ids: Vec<String> = channels
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let insert = conn
        .prepare_cached(
            "INSERT INTO outbox (id, channel_id, kind, run_id, payload, status, attempts, \
             next_at, created_at) \
             SELECT i, c, $3, $4, $5, 'pending', 0, $6, $6 \
             FROM unnest($1::text[], $2::text[]) AS n(i, c)",
        )
        .await?;
    conn.execute(
        &insert,
        &[
            &ids,
            &channels,
            &draft.kind.as_str(),
            &draft.run_id,
            &payload,
            &now,
        ],
    )
    .await?;
    Ok(channels.len())
}

/// The notification of a run's end.
pub(super) async fn run_ended(
    conn: &impl GenericClient,
    run_id: &str,
    status: RunStatus,
    exit_code: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let title = run_title(conn, run_id).await?;
    if let Some(draft) = notifications::run_ended(run_id, title, status, exit_code) {
        enqueue(conn, &draft, now).await?;
    }
    Ok(())
}

#[async_trait]
impl NotifyStore for PgStore {
    async fn add_channel(&self, channel: NewChannelRow) -> Result<ChannelRow, StoreError> {
        let conn = self.conn().await?;
        insert_channel(&conn, &channel).await
    }

    async fn channels(&self, user_id: Option<String>) -> Result<Vec<ChannelRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM {CHANNEL_FROM} \
                 WHERE $1::text IS NULL OR c.user_id = $1 OR c.user_id IS NULL \
                 ORDER BY c.created_at, c.id"
            ))
            .await?;
        Ok(conn
            .query(&stmt, &[&user_id])
            .await?
            .iter()
            .map(|r| channel_from_row(r, 0))
            .collect())
    }

    async fn channel(&self, id: String) -> Result<ChannelRow, StoreError> {
        let conn = self.conn().await?;
        channel_by_id(&conn, &id).await
    }

    async fn update_channel(
        &self,
        id: String,
        events: Option<Vec<NotifyKind>>,
        scope: Option<ChannelScope>,
    ) -> Result<ChannelRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        channel_by_id(&tx, &id).await?;
        if let Some(events) = &events {
            tx.execute(
                "UPDATE notify_channels SET events = $2 WHERE id = $1",
                &[&id, &events_text(events)],
            )
            .await?;
        }
        if let Some(scope) = scope {
            tx.execute(
                "UPDATE notify_channels SET scope = $2 WHERE id = $1",
                &[&id, &scope.as_str()],
            )
            .await?;
        }
        let row = channel_by_id(&tx, &id).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn delete_channel(&self, id: String) -> Result<ChannelRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let row = channel_by_id(&tx, &id).await?;
        tx.execute("DELETE FROM notify_channels WHERE id = $1", &[&id])
            .await?;
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn save_push_subscription(
        &self,
        channel: NewChannelRow,
    ) -> Result<ChannelRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // One owner's endpoint is saved by one transaction at a time, over
        // every instance: the second finds the first's row (SQLite has its
        // single writer for this).
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('claw webpush'), \
             hashtext(COALESCE($1::text, '') || chr(10) || $2::text))",
            &[&channel.user_id, &channel.target],
        )
        .await?;
        let known: Option<String> = tx
            .query_opt(
                "SELECT id FROM notify_channels \
                 WHERE kind = 'webpush' AND user_id IS NOT DISTINCT FROM $1::text \
                 AND target = $2 ORDER BY created_at, id LIMIT 1",
                &[&channel.user_id, &channel.target],
            )
            .await?
            .map(|r| r.get(0));
        let row = match known {
            Some(id) => {
                tx.execute(
                    "UPDATE notify_channels SET secret = $2, name = $3 WHERE id = $1",
                    &[&id, &channel.secret, &channel.name],
                )
                .await?;
                channel_by_id(&tx, &id).await?
            }
            None => insert_channel(&tx, &channel).await?,
        };
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn remove_push_subscriptions(&self) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .execute("DELETE FROM notify_channels WHERE kind = 'webpush'", &[])
            .await?)
    }

    /// Claims the rows it returns: they are hidden from every other
    /// instance's sender for [`CLAIM_LEASE_MS`] (`SKIP LOCKED` keeps two
    /// senders off the same rows meanwhile). The attempt's record replaces
    /// the lease; a sender that died leaves its rows to the others after it.
    async fn due_deliveries(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<(DeliveryRow, ChannelRow)>, StoreError> {
        let conn = self.conn().await?;
        // The delivery's columns (0..12), then its channel's (12..22).
        let stmt = conn
            .prepare_cached(&format!(
                "WITH o AS ( \
                   UPDATE outbox SET next_at = $3 WHERE id IN ( \
                     SELECT id FROM outbox WHERE status = 'pending' AND next_at <= $1 \
                     ORDER BY next_at, created_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                   RETURNING *) \
                 SELECT {DELIVERY_COLUMNS}, {CHANNEL_COLUMNS} \
                 FROM o JOIN {CHANNEL_FROM} ON c.id = o.channel_id \
                 ORDER BY o.created_at"
            ))
            .await?;
        let lease_until = now.saturating_add(CLAIM_LEASE_MS);
        Ok(conn
            .query(&stmt, &[&now, &i64::from(limit), &lease_until])
            .await?
            .iter()
            .map(|r| (delivery_from_row(r), channel_from_row(r, 12)))
            .collect())
    }

    async fn record_attempt(&self, id: String, attempt: Attempt) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let now = now_ms();
        match attempt {
            Attempt::Delivered => {
                tx.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, \
                     done_at = $2, last_error = NULL WHERE id = $1 AND status = 'pending'",
                    &[&id, &now],
                )
                .await?
            }
            Attempt::Retry { next_at, error } => {
                tx.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_at = $2, last_error = $3 \
                     WHERE id = $1 AND status = 'pending'",
                    &[&id, &next_at, &error],
                )
                .await?
            }
            Attempt::Dead { error } => {
                tx.execute(
                    "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_at = $2, \
                     last_error = $3 WHERE id = $1 AND status = 'pending'",
                    &[&id, &now, &error],
                )
                .await?
            }
            Attempt::ChannelGone { error } => {
                let channel: Option<String> = tx
                    .query_opt("SELECT channel_id FROM outbox WHERE id = $1", &[&id])
                    .await?
                    .map(|r| r.get(0));
                tracing::info!(CHANNEL = ?channel, error = %error, "a push subscription is gone: removed");
                match channel {
                    Some(channel) => {
                        tx.execute("DELETE FROM notify_channels WHERE id = $1", &[&channel])
                            .await?
                    }
                    None => 0,
                }
            }
        };
        self.commit(tx, Vec::new()).await
    }

    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} \
                 WHERE $1::text IS NULL OR o.status = $1 \
                 ORDER BY o.created_at DESC, o.id LIMIT $2"
            ))
            .await?;
        Ok(conn
            .query(
                &stmt,
                &[&status.map(DeliveryStatus::as_str), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(delivery_from_row)
            .collect())
    }

    async fn retry_delivery(&self, id: String) -> Result<DeliveryRow, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute("SELECT 1 FROM outbox WHERE id = $1 FOR UPDATE", &[&id])
            .await?;
        let row = delivery_by_id(&tx, &id).await?;
        if row.status != DeliveryStatus::Dead {
            return Err(StoreError::Conflict(format!(
                "notification {id} is {}: only dead letters are retried",
                row.status.as_str()
            )));
        }
        tx.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_at = $2, \
             created_at = $2, done_at = NULL WHERE id = $1",
            &[&id, &now_ms()],
        )
        .await?;
        let row = delivery_by_id(&tx, &id).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(row)
    }

    async fn purge_dead(&self) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .execute("DELETE FROM outbox WHERE status = 'dead'", &[])
            .await?)
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let conn = self.conn().await?;
        let mut counts = OutboxCounts::default();
        for row in conn
            .query("SELECT status, COUNT(*) FROM outbox GROUP BY status", &[])
            .await?
        {
            let status: String = row.get(0);
            let n = unbig(row.get(1));
            match DeliveryStatus::parse(&status) {
                Some(DeliveryStatus::Pending) => counts.pending = n,
                Some(DeliveryStatus::Delivered) => counts.delivered = n,
                Some(DeliveryStatus::Dead) => counts.dead = n,
                None => {}
            }
        }
        counts.channels = unbig(
            conn.query_one("SELECT COUNT(*) FROM notify_channels", &[])
                .await?
                .get(0),
        );
        Ok(counts)
    }

    async fn report_lost_runners(&self, mut run_ids: Vec<String>) -> Result<usize, StoreError> {
        // Runs' rows are locked in one order by every instance.
        run_ids.sort();
        run_ids.dedup();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let now = now_ms();
        let mut reported = 0;
        for run_id in run_ids {
            // Marked once, by whichever instance gets there first.
            let marked = tx
                .execute(
                    "UPDATE runs SET runner_lost_at = $2 WHERE id = $1 \
                     AND status IN ('running', 'waiting') AND runner_lost_at IS NULL",
                    &[&run_id, &now],
                )
                .await?;
            if marked == 0 {
                continue;
            }
            reported += 1;
            let run_title = run_title(&tx, &run_id).await?;
            enqueue(
                &tx,
                &NotificationDraft {
                    kind: NotifyKind::RunnerLost,
                    run_id: run_id.clone(),
                    title: format!("{run_title}: no word from its runner"),
                    run_title,
                    tool: None,
                    summary: None,
                    approval_id: None,
                    path: format!("#/runs/{run_id}"),
                },
                now,
            )
            .await?;
        }
        self.commit(tx, Vec::new()).await?;
        Ok(reported)
    }
}
