//! Compile `shim.c` (DPDK's inline ring functions behind plain symbols) with DPDK's cflags,
//! and link librte_ring/librte_eal.
#[path = "../ab_build.rs"]
mod ab_build;

fn main() {
    ab_build::compile_shim("shim.c", "dpdkshim");
    println!("cargo:rustc-link-lib=dylib=rte_ring");
    println!("cargo:rustc-link-lib=dylib=rte_eal");
}
