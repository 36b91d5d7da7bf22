//! A per-organization fixed-window rate limit with Port's `x-ratelimit-*` headers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);

pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// The outcome of one request against the limit.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

impl RateLimiter {
    pub fn new(limit_per_minute: u32) -> Self {
        RateLimiter { limit: limit_per_minute.max(1), windows: Mutex::default() }
    }

    pub fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        let Ok(mut w) = self.windows.lock() else {
            return Decision { allowed: true, limit: self.limit, remaining: self.limit, reset_secs: 60 };
        };
        if w.len() > 10_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = w.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let reset_secs = WINDOW.saturating_sub(now.duration_since(entry.0)).as_secs().max(1);
        Decision {
            allowed: entry.1 <= self.limit,
            limit: self.limit,
            remaining: self.limit.saturating_sub(entry.1),
            reset_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let rl = RateLimiter::new(2);
        assert!(rl.check("a").allowed);
        assert!(rl.check("a").allowed);
        let d = rl.check("a");
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(rl.check("b").allowed);
    }
}
