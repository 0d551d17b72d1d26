//! Points the embedded console at `web/dist` when it has been built (`make` does), and
//! otherwise at a one-page notice, so a plain `cargo build` works without Node.js.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = manifest.join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-changed={}", dist.join("index.html").display());
    let dir = if dist.join("index.html").is_file() {
        dist.canonicalize().unwrap()
    } else {
        let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("console-not-built");
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
