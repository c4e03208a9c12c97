//! Shared by the A/B harnesses' build scripts, included with `#[path]`: compile a C shim
//! with the flags `pkg-config libdpdk` gives.
use std::process::Command;

/// `pkg-config <arg> libdpdk`, or a panic saying what to install.
pub fn pkg_config(arg: &str) -> String {
    let out = Command::new("pkg-config")
        .args([arg, "libdpdk"])
        .output()
        .expect("pkg-config not found (apt-get install pkg-config dpdk-dev)");
    assert!(
        out.status.success(),
        "pkg-config libdpdk failed: install dpdk-dev"
    );
    String::from_utf8(out.stdout).expect("pkg-config output is UTF-8")
}

/// Compile `file` at -O3 with DPDK's cflags into the static library `lib`.
pub fn compile_shim(file: &str, lib: &str) {
    println!("cargo:rerun-if-changed={file}");
    let mut b = cc::Build::new();
    b.file(file).opt_level(3);
    let cflags = pkg_config("--cflags");
    let mut it = cflags.split_whitespace();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                b.flag("-include").flag(h);
            }
        } else {
            b.flag(f);
        }
    }
    b.compile(lib);
}
