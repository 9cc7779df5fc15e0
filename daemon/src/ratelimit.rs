//! In-memory limits: requests per minute per client address, and failed
//! logins per 15 minutes per address and per user name.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale ones are swept; bounds memory under a flood of
/// distinct addresses.
const SWEEP_AT: usize = 10_000;

/// A fixed-window counter per key.
pub struct WindowLimiter<K> {
    window: Duration,
    limit: u32,
    counts: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash + Clone> WindowLimiter<K> {
    /// `limit` 0 means unlimited.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            window,
            limit,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one hit; false when the key is over its limit.
    pub fn hit(&self, key: &K) -> bool {
        if self.limit == 0 {
            return true;
        }
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= SWEEP_AT {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counts.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let l = WindowLimiter::new(2, Duration::from_secs(60));
        assert!(l.hit(&"a"));
        assert!(l.hit(&"a"));
        assert!(!l.hit(&"a"));
        assert!(l.hit(&"b"));
    }

    #[test]
    fn zero_is_unlimited() {
        let l = WindowLimiter::new(0, Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(l.hit(&1));
        }
    }
}
