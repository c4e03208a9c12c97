//! Compile `shim.c` (DPDK's inline ring functions behind plain symbols) with the flags
//! `pkg-config libdpdk` gives, and link librte_ring/librte_eal.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim.c");
    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config not found (apt-get install pkg-config dpdk-dev)");
    assert!(
        out.status.success(),
        "pkg-config libdpdk failed: install dpdk-dev"
    );
    let flags = String::from_utf8(out.stdout).expect("pkg-config output is UTF-8");
    let mut b = cc::Build::new();
    b.file("shim.c").opt_level(3);
    let mut it = flags.split_whitespace();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                b.flag("-include").flag(h);
            }
        } else {
            b.flag(f);
        }
    }
    b.compile("dpdkshim");
    println!("cargo:rustc-link-lib=dylib=rte_ring");
    println!("cargo:rustc-link-lib=dylib=rte_eal");
}
