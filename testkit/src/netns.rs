//! A private network namespace for tests, deleted on drop (also when the test panics),
//! with veth pairs, shell commands and threads inside it.
//!
//! Traffic a test makes there never reaches the machine's own interfaces. Creating one
//! needs root and `ip` (iproute2); [`Netns::new`] reports a counted skip otherwise.

use std::process::{Command, Output};

use crate::{need_root, need_tool, skip, sys, Need};

/// A network namespace `fp-<pid>-<tag>`, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a namespace for `test` (the name `tag` keeps several apart), with `lo` up
    /// and IPv6 off on interfaces made later (no router solicitations or DAD frames
    /// among a test's packets). `None` after a counted skip when not root, `ip` is
    /// missing, or the kernel refuses the namespace.
    pub fn new(test: &str, tag: &str) -> Option<Netns> {
        if !need_root(test) || !need_tool(test, "ip") {
            return None;
        }
        let name = format!("fp-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                skip(
                    test,
                    Need::Netns,
                    format!(
                        "ip netns add failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                );
                return None;
            }
            Err(e) => {
                skip(test, Need::Netns, format!("could not run ip: {e}"));
                return None;
            }
        }
        let ns = Netns { name };
        ns.sh("ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1; sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
        Some(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run a shell command line inside the namespace; panics with its stderr if it fails.
    pub fn sh(&self, cmd: &str) -> Output {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", cmd])
            .output()
            .expect("run ip netns exec");
        assert!(
            o.status.success(),
            "`{cmd}` in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// A veth pair `a` <-> `b` inside the namespace, both up.
    pub fn veth(&self, a: &str, b: &str) {
        self.sh(&format!(
            "ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"
        ));
    }

    /// The MAC address of interface `ifname`.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let o = self.sh(&format!("cat /sys/class/net/{ifname}/address"));
        let s = String::from_utf8_lossy(&o.stdout);
        let mut m = [0u8; 6];
        for (b, p) in m.iter_mut().zip(s.trim().split(':')) {
            *b = u8::from_str_radix(p, 16).expect("mac byte");
        }
        m
    }

    /// A kernel interface counter (`/sys/class/net/IF/statistics/NAME`).
    pub fn counter(&self, ifname: &str, name: &str) -> u64 {
        let o = self.sh(&format!("cat /sys/class/net/{ifname}/statistics/{name}"));
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("counter")
    }

    /// A command that runs `prog` inside the namespace (`ip netns exec NS prog`); add
    /// its arguments.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Run `f` on a new thread that has entered the namespace, so every socket, TAP
    /// device and ioctl it makes lives there; a panic in `f` is passed on.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the namespace file");
            sys::enter_netns(&file).expect("setns into the test namespace");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pairs in it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
