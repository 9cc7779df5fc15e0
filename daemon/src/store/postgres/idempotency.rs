//! Kept answers of requests with an `Idempotency-Key`, as on SQLite
//! (sqlite/idempotency.rs), with one claim per key over every instance: a
//! new key is claimed by the insert that wins its primary key (the other
//! waits for it and then reads the winner's row); an existing key's row is
//! locked while it is judged, so an expired key is claimed anew once.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::store::{
    IdempotencyClaim, IdempotencyState, IdempotencyStore, StoreError, StoredAnswer,
};

/// What became of a key claimed before; `None` when it is gone (given up
/// meanwhile) or has expired and was claimed anew by this transaction.
async fn judge(
    conn: &impl GenericClient,
    claim: &IdempotencyClaim,
) -> Result<Option<IdempotencyState>, StoreError> {
    let select = conn
        .prepare_cached(
            "SELECT fingerprint, created_at, status, content_type, body \
             FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE",
        )
        .await?;
    let Some(row) = conn.query_opt(&select, &[&claim.scope, &claim.key]).await? else {
        return Ok(None);
    };
    let fingerprint: String = row.get(0);
    let created_at: i64 = row.get(1);
    if created_at < claim.expired_before {
        // Expired and not yet pruned: claimed anew.
        let renew = conn
            .prepare_cached(
                "UPDATE idempotency_keys SET fingerprint = $3, created_at = $4, \
                 status = NULL, content_type = NULL, body = NULL \
                 WHERE scope = $1 AND key = $2",
            )
            .await?;
        conn.execute(
            &renew,
            &[&claim.scope, &claim.key, &claim.fingerprint, &claim.now],
        )
        .await?;
        return Ok(Some(IdempotencyState::Claimed));
    }
    if fingerprint != claim.fingerprint {
        return Ok(Some(IdempotencyState::Mismatch));
    }
    let status: Option<i32> = row.get(2);
    Ok(Some(match status {
        Some(status) => IdempotencyState::Answered(StoredAnswer {
            // Stored from a u16; anything else reads as a server error.
            status: u16::try_from(status).unwrap_or(500),
            content_type: row.get(3),
            body: row.get::<_, Option<Vec<u8>>>(4).unwrap_or_default(),
        }),
        None => IdempotencyState::InProgress,
    }))
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency_key(
        &self,
        claim: IdempotencyClaim,
    ) -> Result<IdempotencyState, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (scope, key) DO NOTHING",
            )
            .await?;
        // A key given up between the insert and the read is tried again;
        // twice is plenty (each try follows another request's commit).
        let mut state = None;
        for _ in 0..3 {
            let inserted = tx
                .execute(
                    &insert,
                    &[&claim.scope, &claim.key, &claim.fingerprint, &claim.now],
                )
                .await?;
            state = if inserted == 1 {
                Some(IdempotencyState::Claimed)
            } else {
                judge(&tx, &claim).await?
            };
            if state.is_some() {
                break;
            }
        }
        let state = state.ok_or_else(|| {
            StoreError::Busy(format!(
                "idempotency key {} was claimed and given up again while claiming it",
                claim.key
            ))
        })?;
        self.commit(tx, Vec::new()).await?;
        Ok(state)
    }

    async fn complete_idempotency_key(
        &self,
        scope: String,
        key: String,
        answer: StoredAnswer,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 \
                 WHERE scope = $1 AND key = $2",
            )
            .await?;
        conn.execute(
            &stmt,
            &[
                &scope,
                &key,
                &i32::from(answer.status),
                &answer.content_type,
                &answer.body,
            ],
        )
        .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, scope: String, key: String) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL",
            )
            .await?;
        conn.execute(&stmt, &[&scope, &key]).await?;
        Ok(())
    }
}
