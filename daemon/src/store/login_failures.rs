//! Failed logins counted in memory: enough for one gateway on SQLite,
//! which is the only instance that can see its database.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{LoginFailureStore, StoreError};

/// Keys beyond this many make a hit sweep out the expired ones first.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct LoginFailuresInMemory {
    /// The times (Unix ms) counted per key, oldest first.
    hits: Mutex<HashMap<String, VecDeque<i64>>>,
}

#[async_trait]
impl LoginFailureStore for LoginFailuresInMemory {
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
        let since = now.saturating_sub(window_ms);
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() >= SWEEP_AT {
            hits.retain(|_, times| times.back().is_some_and(|&t| t > since));
        }
        let times = hits.entry(key).or_default();
        while times.front().is_some_and(|&t| t <= since) {
            times.pop_front();
        }
        let allowed = times.len() < limit as usize;
        if allowed {
            times.push_back(now);
        }
        Ok(allowed)
    }

    async fn login_release(&self, key: String, at: i64) -> Result<(), StoreError> {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = hits.get_mut(&key)
            && let Some(i) = times.iter().rposition(|&t| t == at)
        {
            times.remove(i);
        }
        Ok(())
    }

    async fn login_clear(&self, key: String) -> Result<(), StoreError> {
        self.hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sliding_window_with_release_and_clear() {
        let m = LoginFailuresInMemory::default();
        let k = || "user:a".to_owned();
        assert!(m.login_hit(k(), 2, 1000, 0).await.unwrap());
        assert!(m.login_hit(k(), 2, 1000, 500).await.unwrap());
        assert!(!m.login_hit(k(), 2, 1000, 900).await.unwrap());
        // The first one leaves the window.
        assert!(m.login_hit(k(), 2, 1000, 1000).await.unwrap());
        m.login_release(k(), 1000).await.unwrap();
        assert!(m.login_hit(k(), 2, 1000, 1001).await.unwrap());
        assert!(!m.login_hit(k(), 2, 1000, 1002).await.unwrap());
        m.login_clear(k()).await.unwrap();
        assert!(m.login_hit(k(), 2, 1000, 1003).await.unwrap());
        assert!(m.login_hit(k(), 0, 1000, 1003).await.unwrap());
    }
}
