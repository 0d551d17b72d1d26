//! Which accelerator QEMU gets: KVM only when it really works, TCG otherwise.
//!
//! `/dev/kvm` existing proves little: a host can expose a software KVM (PVM) that passes
//! the mode tests but runs ordinary guests through an instruction emulator at a few MIPS.
//! So the probe runs code: after checking that /dev/kvm opens and speaks API version 12,
//! a child process (killed at a hard timeout, as a KVM_RUN that never returns cannot be
//! interrupted otherwise) creates small VMs and runs `out 0x3f8` + `hlt` payloads in real
//! mode, 32-bit protected mode and 64-bit long mode, then a 10M-iteration loop in long
//! mode that real hardware finishes in milliseconds. The verdict is cached per boot id
//! (it cannot change without a reboot).

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
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

/// One step of the KVM probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmCheck {
    /// `open`, `api_version`, `real_mode`, `protected_mode`, `long_mode`, `speed`, `qemu`.
    pub name: String,
    pub passed: bool,
    /// What was seen (a time, the exit, the error).
    pub detail: String,
}

/// The probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelInfo {
    /// `kvm` or `tcg`.
    pub accelerator: String,
    pub kvm_usable: bool,
    /// Why, in a sentence.
    pub reason: String,
    /// The KVM probe's steps in order; a step after a failed one is not run.
    #[serde(default)]
    pub checks: Vec<KvmCheck>,
    /// The host TSC frequency a TCG guest is told (its rdtsc is the host's).
    pub tsc_khz: u64,
    pub boot_id: String,
}

impl AccelInfo {
    /// The verdict after QEMU itself refused KVM (e.g. "failed to set MSR"): TCG from now
    /// on, cached for this boot.
    pub fn qemu_refused_kvm(&mut self, dir: &Path, qemu_error: &str) {
        let line = qemu_error.lines().find(|l| l.contains("failed to set MSR")).unwrap_or(qemu_error).trim();
        self.checks.push(KvmCheck { name: "qemu".into(), passed: false, detail: line.to_string() });
        self.kvm_usable = false;
        self.accelerator = "tcg".into();
        self.reason = format!("QEMU could not run a guest under KVM ({line}): TCG");
        save(dir, self);
    }
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn save(dir: &Path, info: &AccelInfo) {
    let _ = fs::create_dir_all(dir);
    let _ = fs::write(dir.join("accel.json"), serde_json::to_vec_pretty(info).expect("json"));
}

/// The probe's verdict is a fact of the host and its boot: kept here too (tmpfs, gone at
/// reboot) so that every server on the host does not pay the probe's second.
const HOST_CACHE: &str = "/run/roost/kvm-probe.json";

/// The verdict, from the cache in `dir` (or the host's) when it is from this boot.
pub fn probe(dir: &Path, choice: AccelChoice) -> AccelInfo {
    let id = boot_id();
    // A cache without checks predates the functional probe: probe again.
    let read = |path: &Path| {
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<AccelInfo>(&b).ok())
            .filter(|i| i.boot_id == id && !i.checks.is_empty())
    };
    let cached = read(&dir.join("accel.json")).or_else(|| {
        let host = read(Path::new(HOST_CACHE))?;
        save(dir, &host);
        Some(host)
    });
    let mut info = cached.unwrap_or_else(|| {
        let checks = run_probe(PROBE_TIMEOUT);
        let (kvm_usable, reason) = verdict(&checks);
        let info = AccelInfo {
            accelerator: if kvm_usable { "kvm" } else { "tcg" }.into(),
            kvm_usable,
            reason,
            checks,
            tsc_khz: tsc_khz(),
            boot_id: id,
        };
        save(dir, &info);
        let host = Path::new(HOST_CACHE);
        if host.parent().is_some_and(|d| fs::create_dir_all(d).is_ok()) {
            let tmp = host.with_extension(format!("{}.tmp", std::process::id()));
            if fs::write(&tmp, serde_json::to_vec_pretty(&info).expect("json")).is_ok() {
                let _ = fs::rename(&tmp, host);
            }
        }
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

/// How long each payload may run before the child is killed; the speed loop takes
/// ~5–20 ms on hardware KVM, ~85 ms even under nested emulated AMD-V.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Iterations of the speed loop (two instructions each).
pub const SPEED_ITERATIONS: u32 = 10_000_000;

/// The byte each mode payload writes to port 0x3f8.
const MARKS: [(Mode, u8); 3] = [(Mode::Real, b'R'), (Mode::Protected, b'P'), (Mode::Long, b'L')];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Real,
    Protected,
    Long,
}

impl Mode {
    fn check_name(self) -> &'static str {
        match self {
            Mode::Real => "real_mode",
            Mode::Protected => "protected_mode",
            Mode::Long => "long_mode",
        }
    }
}

/// `[mov ecx, loops; l: dec ecx; jnz l]` then `mov dx, 0x3f8; mov al, byte; out dx, al; hlt`,
/// encoded for `mode` (16-bit code takes a 16-bit immediate for `mov dx`).
pub fn payload(mode: Mode, byte: u8, loops: Option<u32>) -> Vec<u8> {
    let mut code = Vec::new();
    if let Some(n) = loops {
        assert_eq!(mode, Mode::Long, "the speed loop runs in long mode");
        code.push(0xb9); // mov ecx, imm32
        code.extend_from_slice(&n.to_le_bytes());
        code.extend_from_slice(&[0xff, 0xc9]); // dec ecx
        code.extend_from_slice(&[0x75, 0xfc]); // jnz -4 (back to dec)
    }
    code.push(0xba); // mov dx/edx, imm
    match mode {
        Mode::Real => code.extend_from_slice(&0x3f8u16.to_le_bytes()),
        Mode::Protected | Mode::Long => code.extend_from_slice(&0x3f8u32.to_le_bytes()),
    }
    code.extend_from_slice(&[0xb0, byte]); // mov al, byte
    code.push(0xee); // out dx, al
    code.push(0xf4); // hlt
    code
}

const MEM_SIZE: usize = 2 << 20;
const CODE_ADDR: u64 = 0x1000;
const PML4_ADDR: u64 = 0x2000;
const PDPT_ADDR: u64 = 0x3000;
const PD_ADDR: u64 = 0x4000;

/// Page tables that identity-map the first 2 MiB with one large page: (address, entry).
pub fn page_tables() -> [(u64, u64); 3] {
    const PRESENT_RW: u64 = 0b11;
    const LARGE: u64 = 1 << 7;
    [(PML4_ADDR, PDPT_ADDR | PRESENT_RW), (PDPT_ADDR, PD_ADDR | PRESENT_RW), (PD_ADDR, PRESENT_RW | LARGE)]
}

/// Runs one payload in a fresh VM; Ok(detail) when it gave IO(0x3f8, byte) then HLT.
fn run_payload(kvm: &kvm_ioctls::Kvm, mode: Mode, byte: u8, loops: Option<u32>) -> Result<String, String> {
    use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_segment, kvm_userspace_memory_region};
    use kvm_ioctls::VcpuExit;

    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    // SAFETY: a fresh private anonymous mapping; unmapped when this child exits.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err("mmap of guest memory failed".into());
    }
    // SAFETY: `mem` is MEM_SIZE bytes, mapped above and never unmapped while in use.
    let guest = unsafe { std::slice::from_raw_parts_mut(mem as *mut u8, MEM_SIZE) };
    let code = payload(mode, byte, loops);
    guest[CODE_ADDR as usize..CODE_ADDR as usize + code.len()].copy_from_slice(&code);
    for (addr, entry) in page_tables() {
        guest[addr as usize..addr as usize + 8].copy_from_slice(&entry.to_le_bytes());
    }
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: mem as u64,
        flags: 0,
    };
    // SAFETY: the region is valid memory that outlives the VM (the child exits first).
    unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    vcpu.set_cpuid2(&cpuid).map_err(|e| format!("KVM_SET_CPUID2: {e}"))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    match mode {
        Mode::Real => {
            sregs.cs.base = 0;
            sregs.cs.selector = 0;
        }
        Mode::Protected | Mode::Long => {
            // Flat segments; KVM uses the cached descriptors, so no GDT is needed.
            let long = mode == Mode::Long;
            let code_seg = kvm_segment {
                base: 0,
                limit: 0xffff_ffff,
                selector: 0x8,
                type_: 11,
                present: 1,
                dpl: 0,
                db: u8::from(!long),
                s: 1,
                l: u8::from(long),
                g: 1,
                avl: 0,
                unusable: 0,
                padding: 0,
            };
            let data_seg = kvm_segment { selector: 0x10, type_: 3, db: 1, l: 0, ..code_seg };
            sregs.cs = code_seg;
            sregs.ds = data_seg;
            sregs.es = data_seg;
            sregs.fs = data_seg;
            sregs.gs = data_seg;
            sregs.ss = data_seg;
            sregs.cr0 |= 1; // PE
            if long {
                sregs.cr3 = PML4_ADDR;
                sregs.cr4 |= 1 << 5; // PAE
                sregs.cr0 |= 1 << 31; // PG
                sregs.efer |= (1 << 8) | (1 << 10); // LME | LMA
            }
        }
    }
    vcpu.set_sregs(&sregs).map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
    let regs = kvm_bindings::kvm_regs { rip: CODE_ADDR, rflags: 2, rsp: MEM_SIZE as u64 - 16, ..Default::default() };
    vcpu.set_regs(&regs).map_err(|e| format!("KVM_SET_REGS: {e}"))?;
    let start = Instant::now();
    let mut got_io = false;
    loop {
        match vcpu.run().map_err(|e| format!("KVM_RUN: {e}"))? {
            VcpuExit::IoOut(0x3f8, data) if !got_io && data == [byte] => got_io = true,
            VcpuExit::Hlt if got_io => return Ok(format!("{:.1} ms", start.elapsed().as_secs_f64() * 1000.0)),
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
}

/// Runs the checks; each payload in the child gets `timeout`.
pub fn run_probe(timeout: Duration) -> Vec<KvmCheck> {
    run_probe_with(timeout, SPEED_ITERATIONS)
}

/// [`run_probe`] with another length of speed loop (a short one proves the payload itself).
pub fn run_probe_with(timeout: Duration, iterations: u32) -> Vec<KvmCheck> {
    let mut checks = Vec::new();
    let kvm = match kvm_ioctls::Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            checks.push(KvmCheck { name: "open".into(), passed: false, detail: format!("/dev/kvm: {e}") });
            return checks;
        }
    };
    checks.push(KvmCheck { name: "open".into(), passed: true, detail: "/dev/kvm opened read-write".into() });
    let version = kvm.get_api_version();
    checks.push(KvmCheck { name: "api_version".into(), passed: version == 12, detail: format!("{version}") });
    if version != 12 {
        return checks;
    }
    checks.extend(run_payloads_in_child(&kvm, timeout, iterations));
    checks
}

/// The payload steps in order: the three modes, then the speed loop.
fn steps(iterations: u32) -> Vec<(&'static str, Mode, u8, Option<u32>)> {
    let mut s: Vec<_> = MARKS.iter().map(|&(m, b)| (m.check_name(), m, b, None)).collect();
    s.push(("speed", Mode::Long, b'S', Some(iterations)));
    s
}

fn run_payloads_in_child(kvm: &kvm_ioctls::Kvm, timeout: Duration, iterations: u32) -> Vec<KvmCheck> {
    let fail = |name: &str, detail: String| KvmCheck { name: name.into(), passed: false, detail };
    let (r, w) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return vec![fail("real_mode", format!("pipe: {e}"))],
    };
    // SAFETY: the child only makes syscalls (KVM ioctls, mmap, write) and allocates
    // (glibc's fork leaves malloc usable), then leaves with _exit.
    match unsafe { nix::unistd::fork() } {
        Err(e) => vec![fail("real_mode", format!("fork: {e}"))],
        Ok(nix::unistd::ForkResult::Child) => {
            drop(r);
            for (name, mode, byte, loops) in steps(iterations) {
                let line = match run_payload(kvm, mode, byte, loops) {
                    Ok(d) => format!("{name}\tok\t{d}\n"),
                    Err(e) => format!("{name}\tfail\t{}\n", e.replace(['\n', '\t'], " ")),
                };
                let _ = nix::unistd::write(&w, line.as_bytes());
            }
            // SAFETY: leaves the child without running the parent's atexit handlers.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(w);
            let checks = collect(r, timeout, iterations);
            let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            checks
        }
    }
}

/// Reads the child's result lines, giving each step `timeout`.
fn collect(r: OwnedFd, timeout: Duration, iterations: u32) -> Vec<KvmCheck> {
    use std::io::Read;
    let mut file = fs::File::from(r);
    let mut checks = Vec::new();
    let mut buf = String::new();
    let steps = steps(iterations);
    let mut deadline = Instant::now() + timeout;
    let mut started = Instant::now();
    while checks.len() < steps.len() {
        if let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            let mut parts = line.trim_end().splitn(3, '\t');
            let (name, status, detail) =
                (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let passed = status == "ok";
            checks.push(KvmCheck { name: name.into(), passed, detail: detail.into() });
            deadline = Instant::now() + timeout;
            started = Instant::now();
            if !passed {
                break;
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, left.as_millis().min(i32::MAX as u128) as i32) };
        let step = steps[checks.len()].0;
        if n == 0 {
            let what = if step == "speed" {
                format!(
                    "{iterations}-iteration loop not done after {:.1} s (hardware KVM takes milliseconds; a software KVM such as PVM emulates instructions)",
                    started.elapsed().as_secs_f64()
                )
            } else {
                format!("no exit after {:.1} s", started.elapsed().as_secs_f64())
            };
            checks.push(KvmCheck { name: step.into(), passed: false, detail: format!("timed out: {what}") });
            break;
        }
        let mut chunk = [0u8; 512];
        match file.read(&mut chunk) {
            Ok(0) | Err(_) => {
                checks.push(KvmCheck { name: step.into(), passed: false, detail: "probe process died".into() });
                break;
            }
            Ok(k) => buf.push_str(&String::from_utf8_lossy(&chunk[..k])),
        }
    }
    checks
}

/// KVM is usable when every step ran and passed.
pub fn verdict(checks: &[KvmCheck]) -> (bool, String) {
    let all = ["open", "api_version", "real_mode", "protected_mode", "long_mode", "speed"];
    let passed: Vec<&str> = checks.iter().filter(|c| c.passed).map(|c| c.name.as_str()).collect();
    match checks.iter().find(|c| !c.passed) {
        None if passed.len() == all.len() => (true, format!("KVM probe passed ({})", passed.join(", "))),
        None => (false, "KVM probe incomplete: TCG".into()),
        Some(f) => {
            let mut reason = format!("KVM check {} failed: {}", f.name, f.detail);
            if !passed.is_empty() {
                reason.push_str(&format!(" (passed: {})", passed.join(", ")));
            }
            if Path::new("/sys/module/kvm_pvm").exists() {
                reason.push_str("; /dev/kvm is PVM, a software KVM");
            }
            reason.push_str(": TCG");
            (false, reason)
        }
    }
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

    #[test]
    fn encodes_the_mode_payloads() {
        // mov dx, 0x3f8; mov al, 'R'; out dx, al; hlt
        assert_eq!(payload(Mode::Real, b'R', None), [0xba, 0xf8, 0x03, 0xb0, b'R', 0xee, 0xf4]);
        // mov edx, 0x3f8 takes a 32-bit immediate outside real mode.
        let wide = [0xba, 0xf8, 0x03, 0x00, 0x00, 0xb0, b'P', 0xee, 0xf4];
        assert_eq!(payload(Mode::Protected, b'P', None), wide);
        assert_eq!(payload(Mode::Long, b'P', None), wide);
    }

    #[test]
    fn encodes_the_speed_loop() {
        let code = payload(Mode::Long, b'S', Some(10_000_000));
        // mov ecx, 10000000; dec ecx; jnz back to the dec
        assert_eq!(&code[..9], &[0xb9, 0x80, 0x96, 0x98, 0x00, 0xff, 0xc9, 0x75, 0xfc]);
        assert_eq!(&code[9..], &[0xba, 0xf8, 0x03, 0x00, 0x00, 0xb0, b'S', 0xee, 0xf4]);
    }

    #[test]
    fn maps_the_first_two_mib() {
        let t = page_tables();
        assert_eq!(t[0], (0x2000, 0x3003));
        assert_eq!(t[1], (0x3000, 0x4003));
        assert_eq!(t[2], (0x4000, 0x83), "present, writable, 2 MiB page at 0");
    }

    #[test]
    fn verdict_names_the_failed_check() {
        let ok = |n: &str| KvmCheck { name: n.into(), passed: true, detail: "1 ms".into() };
        let mut checks: Vec<_> = ["open", "api_version", "real_mode", "protected_mode", "long_mode"].map(ok).into();
        checks.push(KvmCheck { name: "speed".into(), passed: false, detail: "timed out".into() });
        let (usable, reason) = verdict(&checks);
        assert!(!usable);
        assert!(
            reason.starts_with("KVM check speed failed: timed out (passed: open, api_version, real_mode"),
            "{reason}"
        );
        assert!(reason.ends_with(": TCG"));
        checks.pop();
        assert!(!verdict(&checks).0, "a probe that never ran the speed test is not a pass");
        checks.push(ok("speed"));
        assert!(verdict(&checks).0);
    }
}
