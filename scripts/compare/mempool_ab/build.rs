//! Compile `shim.c` (DPDK's EAL, pools and the autotest's measured loop) with DPDK's
//! cflags, and link the libraries `pkg-config libdpdk` names.
#[path = "../ab_build.rs"]
mod ab_build;

fn main() {
    println!("cargo:rerun-if-changed=../mempool_loop.h");
    ab_build::compile_shim("shim.c", "dpdkmempoolshim");
    for f in ab_build::pkg_config("--libs").split_whitespace() {
        if let Some(lib) = f.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        } else if let Some(dir) = f.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
}
