//! Kept answers of requests with an `Idempotency-Key`.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::{
    IdempotencyClaim, IdempotencyState, IdempotencyStore, StoreError, StoredAnswer,
};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        claim: IdempotencyClaim,
    ) -> Result<IdempotencyState, StoreError> {
        self.writer()
            .write(move |conn| {
                type Row = (String, i64, Option<u16>, Option<String>, Option<Vec<u8>>);
                let found: Option<Row> = conn
                    .prepare_cached(
                        "SELECT fingerprint, created_at, status, content_type, body \
                         FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
                    )?
                    .query_row(params![claim.scope, claim.key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()?;
                match found {
                    Some((fingerprint, created_at, status, content_type, body))
                        if created_at >= claim.expired_before =>
                    {
                        if fingerprint != claim.fingerprint {
                            return Ok(IdempotencyState::Mismatch);
                        }
                        Ok(match status {
                            Some(status) => IdempotencyState::Answered(StoredAnswer {
                                status,
                                content_type,
                                body: body.unwrap_or_default(),
                            }),
                            None => IdempotencyState::InProgress,
                        })
                    }
                    _ => {
                        // New, or expired and not yet pruned: claimed anew.
                        conn.prepare_cached(
                            "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) \
                             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (scope, key) DO UPDATE SET \
                             fingerprint = excluded.fingerprint, created_at = excluded.created_at, \
                             status = NULL, content_type = NULL, body = NULL",
                        )?
                        .execute(params![
                            claim.scope,
                            claim.key,
                            claim.fingerprint,
                            claim.now
                        ])?;
                        Ok(IdempotencyState::Claimed)
                    }
                }
            })
            .await
    }

    async fn complete_idempotency_key(
        &self,
        scope: String,
        key: String,
        answer: StoredAnswer,
    ) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE idempotency_keys SET status = ?3, content_type = ?4, body = ?5 \
                     WHERE scope = ?1 AND key = ?2",
                )?
                .execute(params![
                    scope,
                    key,
                    answer.status,
                    answer.content_type,
                    answer.body
                ])?;
                Ok(())
            })
            .await
    }

    async fn release_idempotency_key(&self, scope: String, key: String) -> Result<(), StoreError> {
        self.writer()
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM idempotency_keys WHERE scope = ?1 AND key = ?2 AND status IS NULL",
                )?
                .execute(params![scope, key])?;
                Ok(())
            })
            .await
    }
}
