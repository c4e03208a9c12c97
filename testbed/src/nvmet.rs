//! The Linux kernel's NVMe/TCP target (nvmet-tcp) in the guest, set up through configfs:
//! the shell line that tests and benchmarks run to get one.

/// A guest shell line (a subshell: it never ends the guest's shell) that loads
/// configfs, nvmet, nvmet-tcp and loop, mounts configfs, makes a `mib` MiB file in
/// the guest's tmpfs (`/tmp/kt.img`) and a loop device over it, and exports the loop
/// device as namespace 1 of subsystem `nqn` (any host may connect) on
/// 127.0.0.1:`port` (port id 1). It prints `LOOP=/dev/loopN` and exits 0, or exits
/// non-zero at the first step that failed. Run it once per boot.
pub fn setup_script(nqn: &str, port: u16, mib: u32) -> String {
    let c = "/sys/kernel/config/nvmet";
    let s = format!("{c}/subsystems/{nqn}");
    let p = format!("{c}/ports/1");
    format!(
        "(set -e; for m in configfs nvmet nvmet-tcp loop; do fp-modprobe $m; done; \
         grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config; \
         dd if=/dev/zero of=/tmp/kt.img bs=1M count={mib} 2>/dev/null; \
         lo=$(losetup -f); losetup $lo /tmp/kt.img; \
         mkdir {s}; echo 1 > {s}/attr_allow_any_host; \
         mkdir {s}/namespaces/1; echo -n $lo > {s}/namespaces/1/device_path; \
         echo 1 > {s}/namespaces/1/enable; \
         mkdir {p}; echo tcp > {p}/addr_trtype; echo ipv4 > {p}/addr_adrfam; \
         echo 127.0.0.1 > {p}/addr_traddr; echo {port} > {p}/addr_trsvcid; \
         ln -s {s} {p}/subsystems/{nqn}; echo LOOP=$lo)"
    )
}

/// The loop device named by [`setup_script`]'s output.
pub fn loop_device(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("LOOP="))
        .filter(|d| d.starts_with("/dev/loop"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_the_subsystem_port_and_size() {
        let s = setup_script("nqn.x:k", 4420, 64);
        assert!(s.starts_with('(') && s.ends_with(')'));
        assert!(s.contains("count=64"));
        assert!(s.contains("echo 4420 > /sys/kernel/config/nvmet/ports/1/addr_trsvcid"));
        assert!(s.contains("ln -s /sys/kernel/config/nvmet/subsystems/nqn.x:k "));
        assert_eq!(loop_device("x\nLOOP=/dev/loop0\n"), Some("/dev/loop0"));
        assert_eq!(loop_device("LOOP=\n"), None);
    }
}
