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

/// Failed credential checks per key (a client id, an address, an e-mail): after `free` failures
/// within `window`, every further failure is answered after a growing delay (100 ms doubling,
/// at most 2 s), and after `max` failures the key is refused until its window ends. A success
/// clears the key (an address is cleared only by its window, so one valid client cannot unlock
/// guessing from the same address). In memory, per node.
pub struct FailureGuard {
    free: u32,
    max: u32,
    window: Duration,
    keys: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureGuard {
    pub fn new(free: u32, max: u32, window: Duration) -> Self {
        FailureGuard { free, max: max.max(free + 1), window, keys: Mutex::default() }
    }

    /// `Err(seconds until retry)` when `key` has failed too often.
    pub fn check(&self, key: &str) -> Result<(), u32> {
        let now = Instant::now();
        let Ok(k) = self.keys.lock() else { return Ok(()) };
        match k.get(key) {
            Some((start, n)) if *n >= self.max && now.duration_since(*start) < self.window => {
                Err(u32::try_from(self.window.saturating_sub(now.duration_since(*start)).as_secs().max(1))
                    .unwrap_or(u32::MAX))
            }
            _ => Ok(()),
        }
    }

    /// Record a failure of `key`; returns how long to hold the answer back.
    pub fn failed(&self, key: &str) -> Duration {
        let now = Instant::now();
        let Ok(mut k) = self.keys.lock() else { return Duration::ZERO };
        if k.len() > 100_000 {
            k.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let e = k.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= self.window {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        match e.1.checked_sub(self.free) {
            None | Some(0) => Duration::ZERO,
            Some(over) => Duration::from_millis(100u64.saturating_mul(1 << over.min(5).saturating_sub(1)))
                .min(Duration::from_secs(2)),
        }
    }

    /// A success of `key` clears its failures.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut k) = self.keys.lock() {
            k.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_down_then_lock_until_the_window_ends() {
        let g = FailureGuard::new(2, 4, Duration::from_secs(60));
        assert_eq!(g.failed("k"), Duration::ZERO);
        assert_eq!(g.failed("k"), Duration::ZERO);
        assert_eq!(g.failed("k"), Duration::from_millis(100));
        assert!(g.check("k").is_ok());
        assert_eq!(g.failed("k"), Duration::from_millis(200));
        assert!(matches!(g.check("k"), Err(s) if s > 0 && s <= 60));
        assert!(g.check("other").is_ok());
        g.succeeded("k");
        assert!(g.check("k").is_ok());
        let short = FailureGuard::new(0, 1, Duration::from_millis(50));
        short.failed("k");
        assert!(short.check("k").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(short.check("k").is_ok());
    }

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
