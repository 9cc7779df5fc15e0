//! Failed logins counted in the database (`login_failures`), so that the
//! limits per address and per user name hold over every instance.

use async_trait::async_trait;

use super::PgStore;
use crate::store::{LoginFailureStore, StoreError};

/// The first key of the two-key advisory locks taken per login key (the
/// single-key space is the migrations').
const LOGIN_LOCK_SPACE: i32 = 0x6c6f_6769; // "logi"

#[async_trait]
impl LoginFailureStore for PgStore {
    /// Attempts on one key are serialised over every instance by a
    /// transaction-level advisory lock on the key.
    async fn login_hit(
        &self,
        key: String,
        limit: u32,
        window_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        if limit == 0 {
            return Ok(true);
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LOGIN_LOCK_SPACE, &key],
        )
        .await?;
        let since = now.saturating_sub(window_ms);
        tx.execute(
            "DELETE FROM login_failures WHERE key = $1 AND at <= $2",
            &[&key, &since],
        )
        .await?;
        let counted: i64 = tx
            .query_one(
                "SELECT count(*) FROM login_failures WHERE key = $1",
                &[&key],
            )
            .await?
            .get(0);
        let allowed = counted < i64::from(limit);
        if allowed {
            tx.execute(
                "INSERT INTO login_failures (key, at) VALUES ($1, $2)",
                &[&key, &now],
            )
            .await?;
        }
        self.commit(tx, Vec::new()).await?;
        Ok(allowed)
    }

    async fn login_release(&self, key: String, at: i64) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "DELETE FROM login_failures WHERE ctid = \
             (SELECT ctid FROM login_failures WHERE key = $1 AND at = $2 LIMIT 1)",
            &[&key, &at],
        )
        .await?;
        Ok(())
    }

    async fn login_clear(&self, key: String) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute("DELETE FROM login_failures WHERE key = $1", &[&key])
            .await?;
        Ok(())
    }
}
