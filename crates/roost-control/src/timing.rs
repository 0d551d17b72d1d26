//! Step timings of the hot paths (sandbox create, instance provisioning, exec), logged at
//! debug level under the target `roost::timing`: `ROOST_LOG_LEVEL=roost::timing=debug,warn`
//! prints where a create's milliseconds go (the breakdown in docs/performance.md). Off, a
//! step costs one `Instant::now()`.

use std::time::Instant;

pub struct Steps {
    what: &'static str,
    start: Instant,
    last: Instant,
}

impl Steps {
    pub fn new(what: &'static str) -> Steps {
        let now = Instant::now();
        Steps { what, start: now, last: now }
    }

    /// Logs the time since the previous step (and since the start).
    pub fn step(&mut self, name: &'static str) {
        let now = Instant::now();
        tracing::debug!(
            target: "roost::timing",
            what = self.what,
            step = name,
            us = (now - self.last).as_micros() as u64,
            total_us = (now - self.start).as_micros() as u64,
        );
        self.last = now;
    }
}
