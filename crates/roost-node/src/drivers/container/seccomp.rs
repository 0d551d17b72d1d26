//! The containers' seccomp filter: Docker's default profile, kept as data
//! (`seccomp-default.json`, Moby's `profiles/seccomp/default.json` as Debian 12 ships it
//! in golang-github-docker-docker-dev 20.10.24, Apache-2.0), turned into the bundle's
//! `linux.seccomp` for one container the way Docker does it: rules for other
//! architectures are left out, rules that need a capability apply only when the
//! container has it (so `clone` with namespace flags, `mount`, `unshare`... stay denied),
//! and every other system call fails with `EPERM`. runc compiles it; a system call that
//! is newer than the profile gets `ENOSYS` from runc, so libcs fall back.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Error, Result};

/// Docker's default profile, verbatim.
pub const DEFAULT_PROFILE: &str = include_str!("seccomp-default.json");

/// Docker's names for this architecture and the ones it also runs (32-bit, x32).
const ARCHES: &[&str] = &["amd64", "x86", "x32"];
const SCMP_ARCHES: &[&str] = &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

#[derive(Deserialize)]
struct Profile {
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    names: Vec<String>,
    action: String,
    #[serde(default, rename = "errnoRet")]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default, rename = "minKernel")]
    min_kernel: Option<String>,
}

/// The filter for a container with `caps`, on a host kernel `kernel` (major, minor).
pub fn filter(caps: &[Capability], kernel: (u32, u32)) -> Result<LinuxSeccomp> {
    let profile: Profile = serde_json::from_str(DEFAULT_PROFILE)
        .map_err(|e| Error::Invalid(format!("the built-in seccomp profile does not parse: {e}")))?;
    let have: BTreeSet<String> = caps.iter().map(|c| format!("CAP_{}", capability_name(*c))).collect();
    let arch_ok = |arches: &[String]| arches.iter().any(|a| ARCHES.contains(&a.as_str()));
    let mut syscalls = Vec::new();
    for rule in profile.syscalls {
        let inc = &rule.includes;
        if !inc.arches.is_empty() && !arch_ok(&inc.arches) {
            continue;
        }
        if !inc.caps.iter().all(|c| have.contains(c)) {
            continue;
        }
        if inc.min_kernel.as_deref().and_then(parse_kernel).is_some_and(|min| kernel < min) {
            continue;
        }
        let exc = &rule.excludes;
        if arch_ok(&exc.arches) || exc.caps.iter().any(|c| have.contains(c)) {
            continue;
        }
        let mut syscall = json!({ "names": rule.names, "action": rule.action });
        if let Some(errno) = rule.errno_ret {
            syscall["errnoRet"] = json!(errno);
        }
        if let Some(args) = rule.args.filter(|a| !a.is_empty()) {
            syscall["args"] = json!(args);
        }
        syscalls.push(syscall);
    }
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": SCMP_ARCHES,
        "syscalls": syscalls,
    });
    serde_json::from_value(seccomp).map_err(|e| Error::Invalid(format!("building the seccomp filter: {e}")))
}

/// The running kernel's (major, minor).
pub fn host_kernel() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().and_then(|r| parse_kernel(r.trim())).unwrap_or((0, 0))
}

fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `NET_RAW` for [`Capability::NetRaw`]: the kernel's name without `CAP_`.
pub fn capability_name(cap: Capability) -> String {
    cap.to_string().trim_start_matches("CAP_").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &LinuxSeccomp) -> BTreeSet<String> {
        s.syscalls().iter().flatten().flat_map(|r| r.names().clone()).collect()
    }

    #[test]
    fn docker_defaults_by_capability_and_architecture() {
        let plain = filter(&[Capability::Chown, Capability::Kill], (6, 1)).unwrap();
        let json = serde_json::to_value(&plain).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        assert_eq!(json["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        let allowed = names(&plain);
        for ok in ["read", "openat", "clone", "execve", "socket", "faccessat2", "ptrace", "arch_prctl"] {
            assert!(allowed.contains(ok), "{ok} is allowed");
        }
        for denied in ["mount", "unshare", "setns", "bpf", "kexec_load", "init_module", "open_by_handle_at", "reboot"] {
            assert!(!allowed.contains(denied), "{denied} needs a capability the container lacks");
        }
        // clone is allowed without namespace flags only; clone3 answers ENOSYS.
        let rules = json["syscalls"].as_array().unwrap();
        let clone = rules.iter().find(|r| r["names"] == json!(["clone"])).unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["index"], 0);
        let clone3 = rules.iter().find(|r| r["names"] == json!(["clone3"])).unwrap();
        assert_eq!((clone3["action"].clone(), clone3["errnoRet"].clone()), (json!("SCMP_ACT_ERRNO"), json!(38)));
        // Another architecture's rules are left out.
        assert!(!allowed.contains("s390_pci_mmio_read") && !allowed.contains("arm_fadvise64_64"));

        // A capability brings its system calls.
        let admin = names(&filter(&[Capability::SysAdmin, Capability::SysPtrace], (6, 1)).unwrap());
        assert!(admin.contains("mount") && admin.contains("unshare") && admin.contains("process_vm_readv"));
        // minKernel: ptrace only from 4.8.
        assert!(!names(&filter(&[], (4, 4)).unwrap()).contains("ptrace"));
        assert_eq!(parse_kernel("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(capability_name(Capability::NetRaw), "NET_RAW");
    }
}
