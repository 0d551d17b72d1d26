//! Reading an instance's cgroup: usage counters, limits, OOM kills. runc creates and
//! removes the cgroups; we only read them (and remove leftovers after a crash).
//!
//! Hosts differ: cgroup v2 (one unified tree), v1 (one tree per controller) or hybrid
//! (v1 controllers plus an empty unified tree, like this project's CI). runc's cgroupfs
//! driver uses the v1 controllers whenever they are mounted, so we do too.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the controllers are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    V2 {
        root: PathBuf,
    },
    /// Controller name (`memory`, `cpu`, `cpuacct`, `pids`, ...) to its mount point.
    V1 {
        mounts: HashMap<String, PathBuf>,
    },
}

impl Layout {
    pub fn detect() -> io::Result<Layout> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
        Ok(Layout::from_mountinfo(&mountinfo))
    }

    pub fn from_mountinfo(mountinfo: &str) -> Layout {
        let mut mounts = HashMap::new();
        let mut unified = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let Some(mount_point) = left.split(' ').nth(4) else { continue };
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let super_options = right.nth(1).unwrap_or_default();
            match fstype {
                "cgroup" => {
                    for option in super_options.split(',') {
                        if CONTROLLERS.contains(&option) {
                            mounts.insert(option.to_string(), PathBuf::from(mount_point));
                        }
                    }
                }
                "cgroup2" if unified.is_none() => unified = Some(PathBuf::from(mount_point)),
                _ => {}
            }
        }
        if mounts.contains_key("memory") || unified.is_none() {
            Layout::V1 { mounts }
        } else {
            Layout::V2 { root: unified.unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup")) }
        }
    }
}

const CONTROLLERS: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer"];

/// One instance's cgroup, `path` as given to runc (`/roost/i-...`).
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
    path: String,
}

/// What the cgroup counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_usage_ns: u64,
    pub memory_bytes: u64,
    pub memory_limit: Option<u64>,
    pub pids: u64,
}

impl Cgroup {
    pub fn new(layout: Layout, path: impl Into<String>) -> Cgroup {
        Cgroup { layout, path: path.into() }
    }

    /// The directory of `controller` (ignored on v2); `None` when it is not mounted.
    pub fn dir(&self, controller: &str) -> Option<PathBuf> {
        let relative = self.path.trim_start_matches('/');
        match &self.layout {
            Layout::V2 { root } => Some(root.join(relative)),
            Layout::V1 { mounts } => mounts.get(controller).map(|m| m.join(relative)),
        }
    }

    fn read(&self, controller: &str, file: &str) -> Option<String> {
        fs::read_to_string(self.dir(controller)?.join(file)).ok()
    }

    fn read_u64(&self, controller: &str, file: &str) -> Option<u64> {
        self.read(controller, file)?.trim().parse().ok()
    }

    pub fn exists(&self) -> bool {
        self.dir("memory").is_some_and(|d| d.is_dir())
    }

    /// How many processes the OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> Option<u64> {
        let text = match self.layout {
            Layout::V2 { .. } => self.read("memory", "memory.events")?,
            Layout::V1 { .. } => self.read("memory", "memory.oom_control")?,
        };
        keyed_value(&text, "oom_kill")
    }

    pub fn usage(&self) -> Usage {
        match self.layout {
            Layout::V2 { .. } => {
                let cpu = self.read("cpu", "cpu.stat").and_then(|t| keyed_value(&t, "usage_usec")).unwrap_or(0);
                let current = self.read_u64("memory", "memory.current").unwrap_or(0);
                let inactive_file =
                    self.read("memory", "memory.stat").and_then(|t| keyed_value(&t, "inactive_file")).unwrap_or(0);
                Usage {
                    cpu_usage_ns: cpu * 1000,
                    memory_bytes: current.saturating_sub(inactive_file),
                    memory_limit: self.read_u64("memory", "memory.max"),
                    pids: self.read_u64("pids", "pids.current").unwrap_or(0),
                }
            }
            Layout::V1 { .. } => {
                let usage = self.read_u64("memory", "memory.usage_in_bytes").unwrap_or(0);
                let inactive_file = self
                    .read("memory", "memory.stat")
                    .and_then(|t| keyed_value(&t, "total_inactive_file"))
                    .unwrap_or(0);
                // "No limit" is a huge number rounded to the page size.
                let limit = self.read_u64("memory", "memory.limit_in_bytes").filter(|&l| l < 1 << 62);
                Usage {
                    cpu_usage_ns: self.read_u64("cpuacct", "cpuacct.usage").unwrap_or(0),
                    memory_bytes: usage.saturating_sub(inactive_file),
                    memory_limit: limit,
                    pids: self.read_u64("pids", "pids.current").unwrap_or(0),
                }
            }
        }
    }

    /// The CPU quota and period in microseconds (`None` quota: unlimited).
    pub fn cpu_quota(&self) -> Option<(Option<u64>, u64)> {
        match self.layout {
            Layout::V2 { .. } => {
                let text = self.read("cpu", "cpu.max")?;
                let mut parts = text.split_whitespace();
                let quota = parts.next()?.parse().ok();
                Some((quota, parts.next()?.parse().ok()?))
            }
            Layout::V1 { .. } => {
                let quota: i64 = self.read("cpu", "cpu.cfs_quota_us")?.trim().parse().ok()?;
                let period = self.read_u64("cpu", "cpu.cfs_period_us")?;
                Some((u64::try_from(quota).ok(), period))
            }
        }
    }

    /// Whether the freezer holds the cgroup's processes (frozen, or freezing).
    pub fn frozen(&self) -> bool {
        match self.layout {
            Layout::V2 { .. } => self.read("cpu", "cgroup.freeze").is_some_and(|t| t.trim() == "1"),
            Layout::V1 { .. } => self.read("freezer", "freezer.state").is_some_and(|t| t.trim() != "THAWED"),
        }
    }

    /// Freezes (or thaws) every process of the cgroup and waits until the kernel says
    /// it is done, so a caller that reads `frozen()` next sees the final state.
    pub fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        let unmounted = || io::Error::new(io::ErrorKind::Unsupported, "the cgroup freezer is not mounted");
        match &self.layout {
            Layout::V2 { .. } => {
                let dir = self.dir("cpu").ok_or_else(unmounted)?;
                fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                for _ in 0..1000 {
                    if fs::read_to_string(dir.join("cgroup.events"))?.lines().any(|l| l == want) {
                        return Ok(());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            Layout::V1 { .. } => {
                let file = self.dir("freezer").ok_or_else(unmounted)?.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                // A write of FROZEN may leave it FREEZING while a task resists; writing
                // again retries, as runc does.
                for _ in 0..1000 {
                    fs::write(&file, want)?;
                    if fs::read_to_string(&file)?.trim() == want {
                        return Ok(());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "the cgroup did not reach the requested freezer state"))
    }

    /// Removes the (empty) cgroup directories runc left behind, e.g. when the server
    /// died before `runc delete`. Missing ones are fine.
    pub fn remove(&self) -> io::Result<()> {
        let dirs: Vec<PathBuf> = match &self.layout {
            Layout::V2 { root } => vec![root.join(self.path.trim_start_matches('/'))],
            Layout::V1 { mounts } => {
                let mut dirs: Vec<PathBuf> =
                    mounts.values().map(|m| m.join(self.path.trim_start_matches('/'))).collect();
                dirs.sort();
                dirs.dedup();
                dirs
            }
        };
        for dir in dirs {
            remove_cgroup_dir(&dir)?;
        }
        Ok(())
    }
}

fn remove_cgroup_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), format!("removing cgroup {}: {e}", dir.display()))),
    }
}

/// `key value` lines (`memory.stat`, `memory.events`, `oom_control`, `cpu.stat`).
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
31 25 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd";

    #[test]
    fn hybrid_uses_the_v1_controllers() {
        let layout = Layout::from_mountinfo(HYBRID);
        let cg = Cgroup::new(layout, "/roost/i-x");
        assert_eq!(cg.dir("memory").unwrap(), Path::new("/sys/fs/cgroup/memory/roost/i-x"));
        assert_eq!(cg.dir("cpuacct").unwrap(), Path::new("/sys/fs/cgroup/cpu,cpuacct/roost/i-x"));
        assert_eq!(cg.dir("cpu").unwrap(), Path::new("/sys/fs/cgroup/cpu,cpuacct/roost/i-x"));
        assert!(cg.dir("systemd").is_none());
    }

    #[test]
    fn pure_v2() {
        let layout = Layout::from_mountinfo("26 25 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate");
        assert_eq!(layout, Layout::V2 { root: PathBuf::from("/sys/fs/cgroup") });
    }

    #[test]
    fn reads_keyed_values() {
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(oom_control, "oom_kill"), Some(3));
        assert_eq!(keyed_value(oom_control, "oom"), None);
    }
}
