//! Rate limits keyed by client address or principal (GCRA, via governor).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How often a limiter drops the keys that are back to a full allowance.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub struct KeyedLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    /// When it last pruned. Each server prunes its own limiters as it uses them (they
    /// live in its memory), so no background task, which runs on one server only, has to.
    pruned: Mutex<Instant>,
}

impl KeyedLimiter {
    /// `n` requests per minute per key, all of which may come at once.
    pub fn per_minute(n: u32) -> KeyedLimiter {
        let n = NonZeroU32::new(n.max(1)).expect("non-zero");
        KeyedLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)),
            clock: DefaultClock::default(),
            pruned: Mutex::new(Instant::now()),
        }
    }

    /// Ok, or how long until the key may try again.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.prune_now_and_then();
        self.limiter.check_key(&key.to_string()).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops keys that are back to a full allowance (bounds memory), every
    /// [`PRUNE_EVERY`]; the check that finds it due does it.
    fn prune_now_and_then(&self) {
        let Ok(mut pruned) = self.pruned.try_lock() else { return };
        if pruned.elapsed() >= PRUNE_EVERY {
            *pruned = Instant::now();
            drop(pruned);
            self.limiter.retain_recent();
        }
    }
}

/// Failed attempts per key (a login name) in a sliding window: after `max` failures the
/// key waits until the oldest leaves the window; a success forgets them. Keys are the
/// names people type, existing or not, so a lock tells nothing about an account.
pub struct FailureLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<std::collections::HashMap<String, std::collections::VecDeque<Instant>>>,
}

/// Names tracked at most; past this, names whose failures all left the window are
/// dropped, then (under a flood of names) the oldest ones.
const MAX_TRACKED: usize = 100_000;

impl FailureLimiter {
    /// `max` failures per `window` (0: no limit).
    pub fn new(max: u32, window: Duration) -> FailureLimiter {
        FailureLimiter { max: max as usize, window, failures: Default::default() }
    }

    /// Ok, or how long until the key may try again.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let mut failures = self.failures.lock().expect("failures");
        let Some(times) = failures.get_mut(key) else { return Ok(()) };
        let now = Instant::now();
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        if times.len() < self.max {
            return Ok(());
        }
        let oldest = *times.front().expect("at least max entries");
        Err(self.window.saturating_sub(now.duration_since(oldest)).max(Duration::from_secs(1)))
    }

    /// Counts a failed attempt.
    pub fn fail(&self, key: &str) {
        if self.max == 0 {
            return;
        }
        let mut failures = self.failures.lock().expect("failures");
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(key) {
            failures.retain(|_, t| t.back().is_some_and(|last| now.duration_since(*last) < self.window));
            if failures.len() >= MAX_TRACKED {
                let oldest = failures.iter().min_by_key(|(_, t)| t.back().copied()).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    failures.remove(&k);
                }
            }
        }
        let times = failures.entry(key.to_string()).or_default();
        times.push_back(now);
        while times.len() > self.max {
            times.pop_front();
        }
    }

    /// Forgets the key's failures (a successful attempt).
    pub fn succeed(&self, key: &str) {
        self.failures.lock().expect("failures").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_in_a_minute_waits() {
        let l = KeyedLimiter::per_minute(10);
        for _ in 0..10 {
            assert!(l.check("10.0.0.1").is_ok());
        }
        let wait = l.check("10.0.0.1").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(6), "{wait:?}");
        assert!(l.check("10.0.0.2").is_ok(), "other addresses are not affected");
    }

    #[test]
    fn failures_lock_a_key_until_a_success() {
        let l = FailureLimiter::new(3, Duration::from_secs(900));
        for _ in 0..3 {
            assert!(l.check("otto").is_ok());
            l.fail("otto");
        }
        let wait = l.check("otto").unwrap_err();
        assert!(wait > Duration::from_secs(890) && wait <= Duration::from_secs(900), "{wait:?}");
        assert!(l.check("vera").is_ok(), "other names are not affected");
        l.succeed("otto");
        assert!(l.check("otto").is_ok());
        let off = FailureLimiter::new(0, Duration::from_secs(900));
        for _ in 0..100 {
            off.fail("x");
        }
        assert!(off.check("x").is_ok());
    }
}
