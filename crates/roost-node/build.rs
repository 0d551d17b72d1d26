//! Builds `init/roost-init.rs`, the containers' pid 1 and exec agent, as a static binary
//! (std only, glibc's static libraries from libc6-dev) that the driver bind-mounts into
//! containers whatever libc their image has. Embedded in the roost binary with
//! `include_bytes!`; when it cannot be built the file is empty and the driver falls back to
//! the shell init and `runc exec` (the build says so in a warning).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "init/roost-init.rs";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("roost-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(rustc)
        .args(["--edition", "2024", "-O", "-C", "panic=abort", "-C", "target-feature=+crt-static"])
        .args(["-C", "strip=symbols", "--target", &target, "-o"])
        .arg(&out)
        .arg(source)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!(
            "cargo:warning=roost-init did not build ({status:?}; static glibc is in Debian's libc6-dev): containers fall back to runc exec"
        );
        std::fs::write(&out, b"").expect("writing an empty roost-init");
    }
}
