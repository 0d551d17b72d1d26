//! Test hooks: failures and crashes injected at a job's steps, from the environment.
//!
//! `ROOST_JOB_FAIL_AT=instance.clone:2,instance.clone:3` — the next job of that kind
//! fails right after its step 2 ran (with an injected error), the one after it after
//! step 3: each entry is used once, in order, by the next new job of its kind, so one
//! server can show every step's undo (`kind:0` lets one job through). Tests that run the
//! control plane in their own process add entries with [`crate::Control::inject_job_failures`]
//! (each control plane has its own list). `ROOST_JOB_CRASH_AT=instance.clone:2` — the
//! process aborts (as `kill -9` would) right after a job of that kind saved step 2.
//! Jobs taken over after a restart use neither.

use std::sync::Mutex;

/// Where one job fails or crashes (1-based step numbers).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JobHooks {
    pub fail_at: Option<usize>,
    pub crash_at: Option<usize>,
}

fn parse(value: &str) -> Vec<(String, usize)> {
    value
        .split(',')
        .filter_map(|entry| {
            let (kind, step) = entry.trim().rsplit_once(':')?;
            Some((kind.to_string(), step.parse().ok()?))
        })
        .collect()
}

const FAIL_AT: &str = "ROOST_JOB_FAIL_AT";
const CRASH_AT: &str = "ROOST_JOB_CRASH_AT";

/// A control plane's failure and crash entries (read from the environment when it is made).
pub(crate) struct JobHookEntries {
    fail: Mutex<Vec<(String, usize)>>,
    crash: Vec<(String, usize)>,
}

impl Default for JobHookEntries {
    fn default() -> Self {
        let read = |var| std::env::var(var).map(|v| parse(&v)).unwrap_or_default();
        JobHookEntries { fail: Mutex::new(read(FAIL_AT)), crash: read(CRASH_AT) }
    }
}

impl JobHookEntries {
    /// The hooks of a new job of `kind` (taking its failure entry).
    pub fn take(&self, kind: &str) -> JobHooks {
        let mut fails = self.fail.lock().expect("job hooks");
        let fail_at = fails.iter().position(|(k, _)| k == kind).map(|i| fails.remove(i).1);
        let crash_at = self.crash.iter().find(|(k, _)| k == kind).map(|(_, s)| *s);
        JobHooks { fail_at, crash_at }
    }

    pub fn inject(&self, kind: &str, steps: &[usize]) {
        self.fail.lock().expect("job hooks").extend(steps.iter().map(|s| (kind.to_string(), *s)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_a_kind_and_a_step() {
        assert_eq!(
            parse("instance.clone:2, sandbox_template.build:10,bad,x:y"),
            [("instance.clone".to_string(), 2), ("sandbox_template.build".to_string(), 10)]
        );
        assert!(parse("").is_empty());
    }

    #[test]
    fn injected_entries_are_used_once_in_order() {
        let entries = JobHookEntries { fail: Mutex::default(), crash: vec![] };
        entries.inject("volume.resize", &[2, 0, 3]);
        assert_eq!(entries.take("volume.resize").fail_at, Some(2));
        assert_eq!(entries.take("image.build").fail_at, None);
        assert_eq!(entries.take("volume.resize").fail_at, Some(0));
        assert_eq!(entries.take("volume.resize").fail_at, Some(3));
        assert_eq!(entries.take("volume.resize").fail_at, None);
    }
}
