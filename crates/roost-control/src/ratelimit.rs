//! Rate limits keyed by client address or principal (GCRA, via governor).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct KeyedLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl KeyedLimiter {
    /// `n` requests per minute per key, all of which may come at once.
    pub fn per_minute(n: u32) -> KeyedLimiter {
        let n = NonZeroU32::new(n.max(1)).expect("non-zero");
        KeyedLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)),
            clock: DefaultClock::default(),
        }
    }

    /// Ok, or how long until the key may try again.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.limiter.check_key(&key.to_string()).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops keys that are back to a full allowance (bounds memory).
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
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
