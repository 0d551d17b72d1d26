//! Points the embedded console at `web/dist` when it has been built (`make` does), and
//! otherwise at a one-page notice, so a plain `cargo build` works without Node.js.
//!
//! The console is embedded from a copy of `web/dist` without its source maps (`*.map`):
//! they stay beside the build for mapping a minified stack back (`npm run map-stack`),
//! and are neither in the binary nor served (docs/console.md says why).

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let dist = manifest.join("../../web/dist");
    // A missing path counts as changed on every build: while there is no build of the
    // console, watch its parent, whose entries change when `web/dist` appears.
    if dist.exists() {
        println!("cargo:rerun-if-changed={}", dist.display());
        println!("cargo:rerun-if-changed={}", dist.join("index.html").display());
    } else {
        println!("cargo:rerun-if-changed={}", manifest.join("../../web").display());
    }
    let dir = if dist.join("index.html").is_file() {
        let out = out_dir.join("console");
        if out.exists() {
            std::fs::remove_dir_all(&out).unwrap();
        }
        copy_without_source_maps(&dist, &out);
        out
    } else {
        let out = out_dir.join("console-not-built");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(
            out.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>Roost</title>\
             <p>This roost binary was built without its web console. Run <code>make</code> \
             (which builds <code>web/</code>) and rebuild; the REST API and the CLI work regardless.</p>",
        )
        .unwrap();
        out
    };
    println!("cargo:rustc-env=ROOST_CONSOLE_DIR={}", dir.display());
}

fn copy_without_source_maps(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_without_source_maps(&path, &target);
        } else if path.extension().is_none_or(|e| e != "map") {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
