//! Notification channels and the outbox. A notification is written for
//! each channel that wants it in the transaction of the change that causes
//! it, so none is lost and none is made twice.

use async_trait::async_trait;
use claw_proto::notify::{ChannelKind, ChannelScope, DeliveryStatus, NotifyKind, OutboxCounts};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::notifications::{
    self, CHANNEL_COLUMNS, CHANNEL_FROM, DELIVERY_COLUMNS, DELIVERY_FROM, events_from, events_text,
};
use crate::store::{
    Attempt, ChannelRow, DeliveryRow, NewChannelRow, NotificationDraft, NotifyStore, StoreError,
};

fn channel_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChannelRow> {
    let kind: String = row.get(3)?;
    let events: String = row.get(7)?;
    let scope: String = row.get(8)?;
    Ok(ChannelRow {
        id: row.get(0)?,
        user_id: row.get(1)?,
        owner: row.get(2)?,
        kind: ChannelKind::parse(&kind).unwrap_or(ChannelKind::Webhook),
        name: row.get(4)?,
        target: row.get(5)?,
        secret: row.get(6)?,
        events: events_from(&events),
        scope: ChannelScope::parse(&scope).unwrap_or_default(),
        created_at: row.get(9)?,
    })
}

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    let kind: String = row.get(3)?;
    let status: String = row.get(6)?;
    Ok(DeliveryRow {
        id: row.get(0)?,
        channel_id: row.get(1)?,
        channel_name: row.get(2)?,
        kind: NotifyKind::parse(&kind).unwrap_or(NotifyKind::Finished),
        run_id: row.get(4)?,
        payload: row.get(5)?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending),
        attempts: row.get(7)?,
        next_at: row.get(8)?,
        last_error: row.get(9)?,
        created_at: row.get(10)?,
        done_at: row.get(11)?,
    })
}

fn channel_by_id(conn: &Connection, id: &str) -> Result<ChannelRow, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM {CHANNEL_FROM} WHERE c.id = ?1"
    ))?
    .query_row([id], channel_from_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("unknown channel {id}")))
}

fn delivery_by_id(conn: &Connection, id: &str) -> Result<DeliveryRow, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE o.id = ?1"
    ))?
    .query_row([id], delivery_from_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("unknown notification {id}")))
}

fn insert_channel(conn: &Connection, channel: &NewChannelRow) -> Result<ChannelRow, StoreError> {
    conn.execute(
        "INSERT INTO notify_channels (id, user_id, kind, name, target, secret, events, scope, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            channel.id,
            channel.user_id,
            channel.kind.as_str(),
            channel.name,
            channel.target,
            channel.secret,
            events_text(&channel.events),
            channel.scope.as_str(),
            now_ms()
        ],
    )?;
    channel_by_id(conn, &channel.id)
}

/// A run's title for people: its command, or its agent's first prompt.
pub(super) fn run_title(conn: &Connection, run_id: &str) -> Result<String, StoreError> {
    let title: Option<String> = conn
        .prepare_cached(
            "SELECT COALESCE(r.command, (SELECT c.command FROM commands c WHERE c.run_id = r.id \
             AND c.kind = 'prompt' ORDER BY c.created_at, c.rowid LIMIT 1), r.agent) \
             FROM runs r WHERE r.id = ?1",
        )?
        .query_row([run_id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(notifications::run_title(title, run_id))
}

/// Writes `draft` to the outbox for every channel that wants it: its kind
/// is among the channel's, and the run is the owner's (or the channel
/// hears of all runs, or it is global). Returns how many.
pub(super) fn enqueue(
    conn: &Connection,
    draft: &NotificationDraft,
    now: i64,
) -> Result<usize, StoreError> {
    let channels: Vec<String> = conn
        .prepare_cached(
            "SELECT c.id FROM notify_channels c LEFT JOIN users u ON u.id = c.user_id \
             WHERE EXISTS (SELECT 1 FROM json_each(c.events) WHERE value = ?1) \
             AND (c.user_id IS NULL OR c.scope = 'all' \
                  OR u.username = (SELECT created_by FROM runs WHERE id = ?2))",
        )?
        .query_map(params![draft.kind.as_str(), draft.run_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if channels.is_empty() {
        return Ok(0);
    }
    let payload = notifications::payload(draft)?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (id, channel_id, kind, run_id, payload, status, attempts, next_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6)",
    )?;
    for channel in &channels {
        insert.execute(params![
            uuid::Uuid::new_v4().to_string(),
            channel,
            draft.kind.as_str(),
            draft.run_id,
            payload,
            now
        ])?;
    }
    Ok(channels.len())
}

/// The notification of a run's end.
pub(super) fn run_ended(
    conn: &Connection,
    run_id: &str,
    status: claw_proto::wire::RunStatus,
    exit_code: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let title = run_title(conn, run_id)?;
    if let Some(draft) = notifications::run_ended(run_id, title, status, exit_code) {
        enqueue(conn, &draft, now)?;
    }
    Ok(())
}

#[async_trait]
impl NotifyStore for SqliteStore {
    async fn add_channel(&self, channel: NewChannelRow) -> Result<ChannelRow, StoreError> {
        self.writer()
            .write(move |conn| insert_channel(conn, &channel))
            .await
    }

    async fn channels(&self, user_id: Option<String>) -> Result<Vec<ChannelRow>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {CHANNEL_COLUMNS} FROM {CHANNEL_FROM} \
                     WHERE ?1 IS NULL OR c.user_id = ?1 OR c.user_id IS NULL \
                     ORDER BY c.created_at, c.id"
                ))?
                .query_map([user_id], channel_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn channel(&self, id: String) -> Result<ChannelRow, StoreError> {
        self.read(move |conn| channel_by_id(conn, &id)).await
    }

    async fn update_channel(
        &self,
        id: String,
        events: Option<Vec<NotifyKind>>,
        scope: Option<ChannelScope>,
    ) -> Result<ChannelRow, StoreError> {
        self.writer()
            .write(move |conn| {
                channel_by_id(conn, &id)?;
                if let Some(events) = &events {
                    conn.execute(
                        "UPDATE notify_channels SET events = ?2 WHERE id = ?1",
                        params![id, events_text(events)],
                    )?;
                }
                if let Some(scope) = scope {
                    conn.execute(
                        "UPDATE notify_channels SET scope = ?2 WHERE id = ?1",
                        params![id, scope.as_str()],
                    )?;
                }
                channel_by_id(conn, &id)
            })
            .await
    }

    async fn delete_channel(&self, id: String) -> Result<ChannelRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let row = channel_by_id(conn, &id)?;
                conn.execute("DELETE FROM notify_channels WHERE id = ?1", [&id])?;
                Ok(row)
            })
            .await
    }

    async fn save_push_subscription(
        &self,
        channel: NewChannelRow,
    ) -> Result<ChannelRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let known: Option<String> = conn
                    .prepare_cached(
                        "SELECT id FROM notify_channels \
                         WHERE kind = 'webpush' AND user_id IS ?1 AND target = ?2",
                    )?
                    .query_row(params![channel.user_id, channel.target], |r| r.get(0))
                    .optional()?;
                match known {
                    Some(id) => {
                        conn.execute(
                            "UPDATE notify_channels SET secret = ?2, name = ?3 WHERE id = ?1",
                            params![id, channel.secret, channel.name],
                        )?;
                        channel_by_id(conn, &id)
                    }
                    None => insert_channel(conn, &channel),
                }
            })
            .await
    }

    async fn remove_push_subscriptions(&self) -> Result<u64, StoreError> {
        self.writer()
            .write(|conn| {
                Ok(conn.execute("DELETE FROM notify_channels WHERE kind = 'webpush'", [])? as u64)
            })
            .await
    }

    async fn due_deliveries(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<(DeliveryRow, ChannelRow)>, StoreError> {
        self.read(move |conn| {
            let due: Vec<DeliveryRow> = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} \
                     WHERE o.status = 'pending' AND o.next_at <= ?1 \
                     ORDER BY o.next_at, o.created_at LIMIT ?2"
                ))?
                .query_map(params![now, limit], delivery_from_row)?
                .collect::<Result<_, _>>()?;
            due.into_iter()
                .map(|d| {
                    let channel = channel_by_id(conn, &d.channel_id)?;
                    Ok((d, channel))
                })
                .collect()
        })
        .await
    }

    async fn record_attempt(&self, id: String, attempt: Attempt) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                let now = now_ms();
                match attempt {
                    Attempt::Delivered => conn.execute(
                        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, \
                         done_at = ?2, last_error = NULL WHERE id = ?1 AND status = 'pending'",
                        params![id, now],
                    )?,
                    Attempt::Retry { next_at, error } => conn.execute(
                        "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3 \
                         WHERE id = ?1 AND status = 'pending'",
                        params![id, next_at, error],
                    )?,
                    Attempt::Dead { error } => conn.execute(
                        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_at = ?2, \
                         last_error = ?3 WHERE id = ?1 AND status = 'pending'",
                        params![id, now, error],
                    )?,
                    Attempt::ChannelGone { error } => {
                        let channel: Option<String> = conn
                            .query_row("SELECT channel_id FROM outbox WHERE id = ?1", [&id], |r| {
                                r.get(0)
                            })
                            .optional()?;
                        tracing::info!(CHANNEL = ?channel, error = %error, "a push subscription is gone: removed");
                        match channel {
                            Some(channel) => conn
                                .execute("DELETE FROM notify_channels WHERE id = ?1", [channel])?,
                            None => 0,
                        }
                    }
                };
                Ok(())
            })
            .await
    }

    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} \
                     WHERE ?1 IS NULL OR o.status = ?1 ORDER BY o.created_at DESC, o.id LIMIT ?2"
                ))?
                .query_map(
                    params![status.map(DeliveryStatus::as_str), limit],
                    delivery_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn retry_delivery(&self, id: String) -> Result<DeliveryRow, StoreError> {
        self.writer()
            .write(move |conn| {
                let row = delivery_by_id(conn, &id)?;
                if row.status != DeliveryStatus::Dead {
                    return Err(StoreError::Conflict(format!(
                        "notification {id} is {}: only dead letters are retried",
                        row.status.as_str()
                    )));
                }
                conn.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_at = ?2, \
                     created_at = ?2, done_at = NULL WHERE id = ?1",
                    params![id, now_ms()],
                )?;
                delivery_by_id(conn, &id)
            })
            .await
    }

    async fn purge_dead(&self) -> Result<u64, StoreError> {
        self.writer()
            .write(|conn| Ok(conn.execute("DELETE FROM outbox WHERE status = 'dead'", [])? as u64))
            .await
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.read(|conn| {
            let mut counts = OutboxCounts::default();
            let mut stmt =
                conn.prepare_cached("SELECT status, COUNT(*) FROM outbox GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
            for row in rows {
                let (status, n) = row?;
                match DeliveryStatus::parse(&status) {
                    Some(DeliveryStatus::Pending) => counts.pending = n,
                    Some(DeliveryStatus::Delivered) => counts.delivered = n,
                    Some(DeliveryStatus::Dead) => counts.dead = n,
                    None => {}
                }
            }
            counts.channels =
                conn.query_row("SELECT COUNT(*) FROM notify_channels", [], |r| r.get(0))?;
            Ok(counts)
        })
        .await
    }

    async fn report_lost_runners(&self, run_ids: Vec<String>) -> Result<usize, StoreError> {
        self.writer()
            .write(move |conn| {
                let now = now_ms();
                let mut reported = 0;
                for run_id in run_ids {
                    let marked = conn.execute(
                        "UPDATE runs SET runner_lost_at = ?2 WHERE id = ?1 \
                         AND status IN ('running', 'waiting') AND runner_lost_at IS NULL",
                        params![run_id, now],
                    )?;
                    if marked == 0 {
                        continue;
                    }
                    reported += 1;
                    let run_title = run_title(conn, &run_id)?;
                    enqueue(
                        conn,
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
                    )?;
                }
                Ok(reported)
            })
            .await
    }
}
