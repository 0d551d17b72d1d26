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
}
