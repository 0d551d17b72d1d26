//! Which accelerator QEMU gets: KVM only when it really works, TCG otherwise.
//!
//! `/dev/kvm` existing proves little: a host can expose a software KVM (PVM) that passes
//! the mode tests but runs ordinary guests at a few MIPS. The probe checks the API
//! version, that a hardware vendor module (kvm_intel, kvm_amd) is loaded and the CPU has
//! `vmx`/`svm`, and refuses PVM. The verdict is cached per boot id (it cannot change
//! without a reboot).

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What the user asked for (`--accel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl AccelChoice {
    pub fn parse(s: &str) -> Option<AccelChoice> {
        match s {
            "auto" => Some(AccelChoice::Auto),
            "kvm" => Some(AccelChoice::Kvm),
            "tcg" => Some(AccelChoice::Tcg),
            _ => None,
        }
    }
}

/// The probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelInfo {
    /// `kvm` or `tcg`.
    pub accelerator: String,
    pub kvm_usable: bool,
    /// Why, in a sentence.
    pub reason: String,
    /// The host TSC frequency a TCG guest is told (its rdtsc is the host's).
    pub tsc_khz: u64,
    pub boot_id: String,
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The verdict, from the cache in `dir` when it is from this boot.
pub fn probe(dir: &Path, choice: AccelChoice) -> AccelInfo {
    let cache = dir.join("accel.json");
    let id = boot_id();
    let cached =
        fs::read(&cache).ok().and_then(|b| serde_json::from_slice::<AccelInfo>(&b).ok()).filter(|i| i.boot_id == id);
    let mut info = cached.unwrap_or_else(|| {
        let (kvm_usable, reason) = kvm_verdict();
        let info = AccelInfo {
            accelerator: if kvm_usable { "kvm" } else { "tcg" }.into(),
            kvm_usable,
            reason,
            tsc_khz: tsc_khz(),
            boot_id: id,
        };
        let _ = fs::create_dir_all(dir);
        let _ = fs::write(&cache, serde_json::to_vec_pretty(&info).expect("json"));
        info
    });
    match choice {
        AccelChoice::Auto => {}
        AccelChoice::Kvm => {
            info.accelerator = "kvm".into();
            info.reason = format!("forced with --accel kvm (probe: {})", info.reason);
        }
        AccelChoice::Tcg => {
            info.accelerator = "tcg".into();
            info.reason = format!("forced with --accel tcg (probe: {})", info.reason);
        }
    }
    info
}

const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;

fn kvm_verdict() -> (bool, String) {
    let file = match fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(f) => f,
        Err(e) => return (false, format!("/dev/kvm cannot be opened ({e}): TCG")),
    };
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns a number.
    let version = unsafe { libc::ioctl(file.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    if version != 12 {
        return (false, format!("KVM API version {version}, not 12: TCG"));
    }
    let module = |m: &str| Path::new("/sys/module").join(m).exists();
    if module("kvm_pvm") {
        return (
            false,
            "/dev/kvm is PVM (a software KVM that runs ordinary guests through its instruction emulator at a few MIPS): TCG"
                .into(),
        );
    }
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap_or_default();
    let hw = flags.split_whitespace().any(|f| f == "vmx" || f == "svm");
    if !(module("kvm_intel") || module("kvm_amd")) || !hw {
        return (false, "no hardware KVM vendor module (kvm_intel/kvm_amd) or no vmx/svm CPU flag: TCG".into());
    }
    (true, "hardware KVM (API 12, vendor module loaded, vmx/svm present)".into())
}

/// The host TSC frequency in kHz: rdtsc against the monotonic clock over 50 ms.
pub fn tsc_khz() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        let t0 = unsafe { core::arch::x86_64::_rdtsc() };
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: as above.
        let t1 = unsafe { core::arch::x86_64::_rdtsc() };
        let elapsed = start.elapsed();
        let khz = (t1.wrapping_sub(t0) as f64 / elapsed.as_secs_f64() / 1000.0) as u64;
        // Round to 100 kHz: the measurement's noise is larger than that.
        (khz + 50) / 100 * 100
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!(AccelChoice::parse("auto"), Some(AccelChoice::Auto));
        assert_eq!(AccelChoice::parse("tcg"), Some(AccelChoice::Tcg));
        assert_eq!(AccelChoice::parse("hvf"), None);
    }

    #[test]
    fn measures_a_plausible_tsc() {
        let khz = tsc_khz();
        assert!(khz > 100_000, "{khz} kHz");
    }
}
