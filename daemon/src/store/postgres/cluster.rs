//! The instances sharing this database.

use async_trait::async_trait;

use super::PgStore;
use crate::store::{ClusterStore, InstanceRow, StoreError};

/// Instances not seen for this long are forgotten.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

#[async_trait]
impl ClusterStore for PgStore {
    async fn heartbeat(&self, i: InstanceRow) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "INSERT INTO instances (id, hostname, address, version, started_at, seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, \
                 address = excluded.address",
            )
            .await?;
        conn.execute(
            &stmt,
            &[
                &i.id,
                &i.hostname,
                &i.address,
                &i.version,
                &i.started_at,
                &i.seen_at,
            ],
        )
        .await?;
        let forget = conn
            .prepare_cached("DELETE FROM instances WHERE seen_at < $1")
            .await?;
        conn.execute(&forget, &[&i.seen_at.saturating_sub(FORGET_AFTER_MS)])
            .await?;
        Ok(())
    }

    async fn leave(&self, id: String) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute("DELETE FROM instances WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, hostname, address, version, started_at, seen_at FROM instances \
                 ORDER BY seen_at DESC, id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| InstanceRow {
                id: r.get(0),
                hostname: r.get(1),
                address: r.get(2),
                version: r.get(3),
                started_at: r.get(4),
                seen_at: r.get(5),
            })
            .collect())
    }
}
