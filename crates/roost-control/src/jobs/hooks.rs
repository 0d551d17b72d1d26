//! Test hooks: failures and crashes injected at a job's steps, from the environment.
//!
//! `ROOST_JOB_FAIL_AT=instance.clone:2,instance.clone:3` — the next job of that kind
//! fails right after its step 2 ran (with an injected error), the one after it after
//! step 3: each entry is used once, in order, by the next new job of its kind, so one
//! server can show every step's undo (`kind:0` lets one job through). `ROOST_JOB_CRASH_AT=instance.clone:2` — the
//! process aborts (as `kill -9` would) right after a job of that kind saved step 2.
//! Jobs taken over after a restart use neither.

use std::sync::{Mutex, OnceLock};

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

fn entries(var: &'static str) -> &'static Mutex<Vec<(String, usize)>> {
    static FAIL: OnceLock<Mutex<Vec<(String, usize)>>> = OnceLock::new();
    static CRASH: OnceLock<Mutex<Vec<(String, usize)>>> = OnceLock::new();
    let cell = if var == FAIL_AT { &FAIL } else { &CRASH };
    cell.get_or_init(|| Mutex::new(std::env::var(var).map(|v| parse(&v)).unwrap_or_default()))
}

const FAIL_AT: &str = "ROOST_JOB_FAIL_AT";
const CRASH_AT: &str = "ROOST_JOB_CRASH_AT";

impl JobHooks {
    /// The hooks of a new job of `kind` (taking its failure entry).
    pub fn take(kind: &str) -> JobHooks {
        let mut fails = entries(FAIL_AT).lock().expect("job hooks");
        let fail_at = fails.iter().position(|(k, _)| k == kind).map(|i| fails.remove(i).1);
        let crash_at = entries(CRASH_AT).lock().expect("job hooks").iter().find(|(k, _)| k == kind).map(|(_, s)| *s);
        JobHooks { fail_at, crash_at }
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
}
