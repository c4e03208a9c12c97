//! Compile `shim.c` (DPDK's EAL, pools and the autotest's measured loop) with the flags
//! `pkg-config libdpdk` gives, and link the libraries it names.
use std::process::Command;

fn pkg_config(arg: &str) -> String {
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

fn main() {
    println!("cargo:rerun-if-changed=shim.c");
    let mut b = cc::Build::new();
    b.file("shim.c").opt_level(3);
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
    b.compile("dpdkmempoolshim");
    for f in pkg_config("--libs").split_whitespace() {
        if let Some(lib) = f.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        } else if let Some(dir) = f.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
}
