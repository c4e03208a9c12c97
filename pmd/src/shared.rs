//! Port data in shared memory: one EAL memzone `ETH_P<port>` per port, readable by any
//! process of the EAL group (a secondary, `proc-info`) with nothing but the memzone.
//!
//! Layout ([`PortShared`], `#[repr(C)]`, magic [`MAGIC`] + [`VERSION`], no pointers):
//! identity (port id, name, driver, MAC), link word, MTU, queue counts, port-level
//! counters, then one [`QueueCounters`] block per RX and per TX queue, each on its own
//! cache lines.
//!
//! Writers: every per-queue counter is written by exactly one thread at a time, the
//! lcore polling that queue (plain `load` + `store`, `Relaxed`: single writer, readers
//! only want a recent value). Port-level fields (link, MTU, MAC, `imissed`, reset bases)
//! are written by the control path under the port's control lock. Reset never touches a
//! counter an lcore owns: [`stats_reset`](crate::stats_reset) copies the current counts
//! into `base` fields and readers report `count - base`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::Result;
use crate::types::{EthStats, Link, MAX_QUEUES};

/// "FPETHDEV".
pub const MAGIC: u64 = u64::from_le_bytes(*b"FPETHDEV");
/// Bumped whenever [`PortShared`] changes.
pub const VERSION: u32 = 2;

/// Memzone name of a port's shared data.
pub fn memzone_name(port: u16) -> String {
    format!("ETH_P{port}")
}

/// Counters of one queue, written only by the lcore that polls it.
#[repr(C, align(64))]
#[derive(Default)]
pub struct QueueCounters {
    /// Packets received (RX) or sent (TX).
    pub packets: AtomicU64,
    /// Bytes received or sent.
    pub bytes: AtomicU64,
    /// RX: frames dropped as bad (oversize, malformed); TX: frames dropped (over MTU,
    /// too big for the device).
    pub errors: AtomicU64,
    /// RX only: mbuf allocation failures.
    pub nombuf: AtomicU64,
    /// RX only: frames the queue had to drop for lack of room (software rings).
    pub missed: AtomicU64,
    /// Driver state that must follow the queue when another process takes it over
    /// (`net_af_packet`: ring cursors). Written only by the queue's owner, like the
    /// counters; zero when the port is made. Ownership moves through the primary's IPC
    /// handler (a syscall on each side orders the last owner's stores before the next
    /// owner's loads).
    pub drv: [AtomicU64; 3],
    // ---- second line: reset bases, written by the control path ----
    pub base_packets: AtomicU64,
    pub base_bytes: AtomicU64,
    pub base_errors: AtomicU64,
    pub base_nombuf: AtomicU64,
    pub base_missed: AtomicU64,
    _pad2: [u64; 3],
}
const _: () = assert!(std::mem::size_of::<QueueCounters>() == 128);

/// Value of a counter net of its reset base.
fn net(c: &AtomicU64, b: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
        .wrapping_sub(b.load(Ordering::Relaxed))
}

/// Add `n` to a counter only one thread writes: Relaxed load + store (no read-modify-
/// write needed with a single writer; readers want a recent value, not a fence).
#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl QueueCounters {
    /// Add a burst's worth (owner lcore only).
    #[inline(always)]
    pub fn add(&self, pkts: u64, bytes: u64) {
        bump(&self.packets, pkts);
        bump(&self.bytes, bytes);
    }

    /// Add packets only, for drivers that do not count bytes (owner lcore only).
    #[inline(always)]
    pub fn add_packets(&self, pkts: u64) {
        bump(&self.packets, pkts);
    }

    /// Add to `errors` (owner lcore only).
    #[inline]
    pub fn add_errors(&self, n: u64) {
        bump(&self.errors, n);
    }

    /// Add to `nombuf` (owner lcore only).
    #[inline]
    pub fn add_nombuf(&self, n: u64) {
        bump(&self.nombuf, n);
    }

    /// Add to `missed` (owner lcore only).
    #[inline]
    pub fn add_missed(&self, n: u64) {
        bump(&self.missed, n);
    }

    /// Packets, bytes and errors since the last reset.
    fn net_counts(&self) -> (u64, u64, u64) {
        (
            net(&self.packets, &self.base_packets),
            net(&self.bytes, &self.base_bytes),
            net(&self.errors, &self.base_errors),
        )
    }

    fn reset(&self) {
        for (c, b) in [
            (&self.packets, &self.base_packets),
            (&self.bytes, &self.base_bytes),
            (&self.errors, &self.base_errors),
            (&self.nombuf, &self.base_nombuf),
            (&self.missed, &self.base_missed),
        ] {
            b.store(c.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A port's shared block (memzone `ETH_P<port>`).
#[repr(C, align(64))]
pub struct PortShared {
    pub magic: u64,
    pub version: u32,
    pub port_id: u16,
    pub _pad0: u16,
    /// NUL-padded port (device) name.
    pub name: [u8; 64],
    /// NUL-padded driver name.
    pub driver: [u8; 32],
    /// MAC address in the low 6 bytes (big-endian byte order of the address), written by
    /// the control path.
    pub mac: AtomicU64,
    /// Link word: bit 0 up, bit 1 full duplex, bit 2 autoneg, bits 32.. speed in Mb/s.
    pub link: AtomicU64,
    pub mtu: AtomicU32,
    pub nb_rxq: AtomicU32,
    pub nb_txq: AtomicU32,
    /// 1 between start and stop (written by the primary's control path, Release; read
    /// by secondaries before each burst, Acquire).
    pub started: AtomicU32,
    /// Port-level missed frames (kernel drops read by the control path).
    pub imissed: AtomicU64,
    pub base_imissed: AtomicU64,
    pub rxq: [QueueCounters; MAX_QUEUES],
    pub txq: [QueueCounters; MAX_QUEUES],
    /// Pid of the secondary process driving each RX queue (0: the primary's own), set
    /// and cleared by the primary's IPC handler under the port's control lock.
    pub rx_owner: [AtomicU32; MAX_QUEUES],
    /// Likewise for TX queues.
    pub tx_owner: [AtomicU32; MAX_QUEUES],
    /// NUL-padded name of the mbuf pool each RX queue was set up with (control path), so
    /// a secondary taking the queue over fills it from the same pool.
    pub rx_pool: [[u8; 64]; MAX_QUEUES],
}

impl PortShared {
    /// Encode a link.
    pub fn link_word(l: &Link) -> u64 {
        u64::from(l.up)
            | u64::from(l.full_duplex) << 1
            | u64::from(l.autoneg) << 2
            | u64::from(l.speed_mbps) << 32
    }

    /// Decode a link word.
    pub fn link_of(w: u64) -> Link {
        Link {
            up: w & 1 != 0,
            full_duplex: w & 2 != 0,
            autoneg: w & 4 != 0,
            speed_mbps: (w >> 32) as u32,
        }
    }

    /// Current statistics, net of the last reset.
    pub fn stats(&self) -> EthStats {
        let nrx = (self.nb_rxq.load(Ordering::Relaxed) as usize).min(MAX_QUEUES);
        let ntx = (self.nb_txq.load(Ordering::Relaxed) as usize).min(MAX_QUEUES);
        let mut s = EthStats::default();
        for q in &self.rxq[..nrx] {
            let (p, b, e) = q.net_counts();
            s.ipackets += p;
            s.ibytes += b;
            s.ierrors += e;
            s.rx_nombuf += net(&q.nombuf, &q.base_nombuf);
            s.imissed += net(&q.missed, &q.base_missed);
            s.q_ipackets.push(p);
            s.q_ibytes.push(b);
            s.q_errors.push(e);
        }
        for q in &self.txq[..ntx] {
            let (p, b, e) = q.net_counts();
            s.opackets += p;
            s.obytes += b;
            s.oerrors += e;
            s.q_opackets.push(p);
            s.q_obytes.push(b);
        }
        s.imissed += net(&self.imissed, &self.base_imissed);
        s
    }

    /// Move every reset base to the current counts (control path).
    pub fn reset(&self) {
        for q in self.rxq.iter().chain(self.txq.iter()) {
            q.reset();
        }
        self.base_imissed
            .store(self.imissed.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Port name.
    pub fn name(&self) -> String {
        cstr(&self.name)
    }

    /// Name of the pool RX queue `q` was set up with (empty if none).
    pub fn rx_pool_name(&self, q: usize) -> String {
        self.rx_pool.get(q).map(|b| cstr(b)).unwrap_or_default()
    }

    /// Driver name.
    pub fn driver(&self) -> String {
        cstr(&self.driver)
    }

    /// MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let b = self.mac.load(Ordering::Relaxed).to_be_bytes();
        b[2..8].try_into().expect("6 bytes")
    }

    pub(crate) fn set_mac(&self, m: [u8; 6]) {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&m);
        self.mac.store(u64::from_be_bytes(b), Ordering::Relaxed);
    }
}

pub(crate) fn put_cstr(dst: &mut [u8], s: &str) {
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
    dst[n..].fill(0);
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// What [`read_port_stats`] returns: the identity, link and counters of a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedPortInfo {
    pub port_id: u16,
    pub name: String,
    pub driver: String,
    pub mac: [u8; 6],
    pub link: Link,
    pub mtu: u32,
    pub stats: EthStats,
}

/// Find the shared block of `port` in `eal`'s memzones and check magic, version, size.
///
/// # Safety-relevant note
/// The returned reference points into EAL memory, which stays mapped while `eal` lives;
/// the caller must not keep it beyond that (the lifetime ties it to `eal`).
pub fn attach(eal: &eal::Eal, port: u16) -> Result<&PortShared> {
    let mz = eal
        .memzones()
        .lookup(&memzone_name(port))
        .ok_or_else(|| crate::Error::Shared {
            port,
            why: format!(
                "no memzone '{}' (no such port in this EAL group)",
                memzone_name(port)
            ),
        })?;
    if (mz.len() as usize) < std::mem::size_of::<PortShared>() {
        return Err(crate::Error::Shared {
            port,
            why: format!(
                "memzone is {} bytes, need {}",
                mz.len(),
                std::mem::size_of::<PortShared>()
            ),
        });
    }
    let p = mz.as_ptr::<PortShared>();
    if !(p as usize).is_multiple_of(std::mem::align_of::<PortShared>()) {
        return Err(crate::Error::Shared {
            port,
            why: "memzone is misaligned".into(),
        });
    }
    // SAFETY: the memzone is mapped for as long as `eal` lives (the borrow ties the
    // reference to it), is large enough and aligned; every field that changes after
    // creation is atomic, and the rest is written once before the memzone is published
    // (the memzone table lock orders it) — we check the magic before trusting anything.
    let s = unsafe { &*p };
    if s.magic != MAGIC {
        return Err(crate::Error::Shared {
            port,
            why: format!("bad magic {:#x}", s.magic),
        });
    }
    if s.version != VERSION {
        return Err(crate::Error::Shared {
            port,
            why: format!(
                "layout version {} but this build reads {}",
                s.version, VERSION
            ),
        });
    }
    Ok(s)
}

/// Read a port's identity, link and statistics from its shared memzone: works in any
/// process of the EAL group (primary or secondary), with no port table, driver or
/// socket. Counters are net of the last `stats_reset`. Kernel-side drop counters
/// (AF_PACKET `imissed`) are as of the owner's last `stats`/`xstats` call.
pub fn read_port_stats(eal: &eal::Eal, port: u16) -> Result<SharedPortInfo> {
    let s = attach(eal, port)?;
    Ok(SharedPortInfo {
        port_id: s.port_id,
        name: s.name(),
        driver: s.driver(),
        mac: s.mac(),
        link: PortShared::link_of(s.link.load(Ordering::Relaxed)),
        mtu: s.mtu.load(Ordering::Relaxed),
        stats: s.stats(),
    })
}
