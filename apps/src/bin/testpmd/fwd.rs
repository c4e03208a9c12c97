//! Forwarding engine: streams, modes and the per-lcore loop.
//!
//! A *stream* is (RX port, RX queue) → (TX port, TX queue). Ports forward in pairs
//! (the 1st forwarding port with the 2nd, 3rd with 4th; an odd last port with itself),
//! one stream per RX queue, TX queue = RX queue modulo the peer's TX queues. Streams
//! are spread over the forwarding lcores; streams that share a TX queue go to the same
//! lcore, because each lcore takes exclusive handles ([`pmd::RxQueue`]/[`pmd::TxQueue`])
//! to the queues it polls. Each stream's counters are written only by its lcore
//! (`Relaxed` stores of lcore-local totals) and read by the control thread.
//!
//! Stopping: the control thread stores `true` in the session's stop flag; each lcore
//! checks it once per pass over its streams (Relaxed: it only needs to be seen
//! eventually, and `wait_lcore`/`join` order everything the lcore did before the
//! control thread reads the final counters). Handles drop when the lcore's job ends,
//! and the mbufs still in the lcore's buffers go back to the pool.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use mbuf::{Mbuf, PktmbufPool};

use crate::pkt::{self, FlowTemplate, HDRS};

/// Forwarding modes (DPDK testpmd's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Io,
    Mac,
    MacSwap,
    RxOnly,
    TxOnly,
    Csum,
    FlowGen,
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::Io,
        Mode::Mac,
        Mode::MacSwap,
        Mode::RxOnly,
        Mode::TxOnly,
        Mode::Csum,
        Mode::FlowGen,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Io => "io",
            Mode::Mac => "mac",
            Mode::MacSwap => "macswap",
            Mode::RxOnly => "rxonly",
            Mode::TxOnly => "txonly",
            Mode::Csum => "csum",
            Mode::FlowGen => "flowgen",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }

    pub fn names() -> String {
        Mode::ALL.map(|m| m.name()).join("|")
    }
}

/// Counters of one stream, on a cache line of their own.
#[derive(Default)]
#[repr(align(64))]
pub struct StreamStats {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    /// Packets the TX queue did not take (freed).
    pub dropped: AtomicU64,
    pub bad_ip: AtomicU64,
    pub bad_l4: AtomicU64,
}

/// What a stream is.
#[derive(Clone)]
pub struct StreamDef {
    pub rx_port: u16,
    pub rx_queue: u16,
    pub tx_port: u16,
    pub tx_queue: u16,
    /// Destination MAC written by mac/csum/txonly/flowgen (the TX port's `--eth-peer`).
    pub peer_mac: [u8; 6],
    /// The TX port's own MAC (source written by mac/csum/txonly/flowgen).
    pub tx_mac: [u8; 6],
    pub stats: Arc<StreamStats>,
}

/// Settings shared by every lcore of a session.
#[derive(Clone)]
pub struct FwdSettings {
    pub mode: Mode,
    pub burst: u16,
    pub txpkts: Vec<u16>,
    pub flows: u32,
    pub tx_first: bool,
    pub pool: PktmbufPool,
}

/// One stream as an lcore runs it.
struct Running {
    def: StreamDef,
    rx: pmd::RxQueue,
    /// Index into the lcore's TX handles.
    tx: usize,
    tmpl: FlowTemplate,
    next_flow: u32,
    n_rx: u64,
    n_tx: u64,
    n_drop: u64,
    n_bad_ip: u64,
    n_bad_l4: u64,
}

/// The work of one forwarding lcore: its streams and queue handles.
pub struct LcoreJob {
    streams: Vec<Running>,
    txqs: Vec<pmd::TxQueue>,
    set: FwdSettings,
    stop: Arc<AtomicBool>,
}

impl LcoreJob {
    /// Take the queue handles of `defs` (streams sharing a TX queue must all be in
    /// `defs`). Fails if a handle is held elsewhere.
    pub fn new(
        defs: Vec<StreamDef>,
        set: FwdSettings,
        stop: Arc<AtomicBool>,
    ) -> Result<LcoreJob, pmd::Error> {
        let total: usize = set.txpkts.iter().map(|&l| usize::from(l)).sum();
        let mut txqs: Vec<pmd::TxQueue> = Vec::new();
        let mut streams = Vec::with_capacity(defs.len());
        for d in defs {
            let tx = match txqs.iter().position(|t| t.id() == (d.tx_port, d.tx_queue)) {
                Some(i) => i,
                None => {
                    txqs.push(pmd::tx_queue(d.tx_port, d.tx_queue)?);
                    txqs.len() - 1
                }
            };
            let rx = pmd::rx_queue(d.rx_port, d.rx_queue)?;
            let tmpl = FlowTemplate::new(total.max(HDRS), d.peer_mac, d.tx_mac);
            streams.push(Running {
                def: d,
                rx,
                tx,
                tmpl,
                next_flow: 0,
                n_rx: 0,
                n_tx: 0,
                n_drop: 0,
                n_bad_ip: 0,
                n_bad_l4: 0,
            });
        }
        Ok(LcoreJob {
            streams,
            txqs,
            set,
            stop,
        })
    }

    /// The forwarding loop; returns 0 when the stop flag is seen.
    pub fn run(mut self) -> i32 {
        let burst = self.set.burst;
        let mut buf: Vec<Mbuf> = Vec::with_capacity(usize::from(burst) * 2);
        if self.set.tx_first {
            for i in 0..self.streams.len() {
                let s = &mut self.streams[i];
                gen_burst(s, &self.set, &mut buf, false);
                let n = self.txqs[s.tx].tx_burst(&mut buf);
                s.n_tx += u64::from(n);
                s.n_drop += buf.len() as u64;
                Mbuf::free_bulk(buf.drain(..));
                publish(s);
            }
        }
        let mode = self.set.mode;
        while !self.stop.load(Ordering::Relaxed) {
            for s in self.streams.iter_mut() {
                match mode {
                    Mode::TxOnly | Mode::FlowGen => {
                        if mode == Mode::FlowGen {
                            // flowgen also drains what comes back
                            let n = s.rx.rx_burst(&mut buf, burst);
                            if n > 0 {
                                s.n_rx += u64::from(n);
                                Mbuf::free_bulk(buf.drain(..));
                            }
                        }
                        gen_burst(s, &self.set, &mut buf, mode == Mode::FlowGen);
                        if buf.is_empty() {
                            continue;
                        }
                    }
                    _ => {
                        let n = s.rx.rx_burst(&mut buf, burst);
                        if n == 0 {
                            continue;
                        }
                        s.n_rx += u64::from(n);
                        match mode {
                            Mode::RxOnly => {
                                Mbuf::free_bulk(buf.drain(..));
                                publish(s);
                                continue;
                            }
                            Mode::Mac => {
                                for m in buf.iter_mut() {
                                    set_macs(m, s.def.peer_mac, s.def.tx_mac);
                                }
                            }
                            Mode::MacSwap => {
                                for m in buf.iter_mut() {
                                    swap_macs(m);
                                }
                            }
                            Mode::Csum => {
                                for m in buf.iter_mut() {
                                    let r = csum_one(m);
                                    s.n_bad_ip += u64::from(r.bad_ip);
                                    s.n_bad_l4 += u64::from(r.bad_l4);
                                    set_macs(m, s.def.peer_mac, s.def.tx_mac);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                let n = self.txqs[s.tx].tx_burst(&mut buf);
                s.n_tx += u64::from(n);
                if !buf.is_empty() {
                    s.n_drop += buf.len() as u64;
                    Mbuf::free_bulk(buf.drain(..));
                }
                publish(s);
            }
        }
        for s in &self.streams {
            publish(s);
        }
        0
    }
}

/// Store the lcore-local totals (single writer: Relaxed stores; the reader only needs
/// eventually consistent snapshots, and exact values after `wait_lcore`).
#[inline(always)]
fn publish(s: &Running) {
    let st = &s.def.stats;
    st.rx.store(s.n_rx, Ordering::Relaxed);
    st.tx.store(s.n_tx, Ordering::Relaxed);
    st.dropped.store(s.n_drop, Ordering::Relaxed);
    st.bad_ip.store(s.n_bad_ip, Ordering::Relaxed);
    st.bad_l4.store(s.n_bad_l4, Ordering::Relaxed);
}

#[inline(always)]
fn set_macs(m: &mut Mbuf, dst: [u8; 6], src: [u8; 6]) {
    if let Some(d) = m.try_data_mut() {
        if d.len() >= 12 {
            d[0..6].copy_from_slice(&dst);
            d[6..12].copy_from_slice(&src);
        }
    }
}

#[inline(always)]
fn swap_macs(m: &mut Mbuf) {
    if let Some(d) = m.try_data_mut() {
        if d.len() >= 12 {
            let mut a = [0u8; 6];
            a.copy_from_slice(&d[0..6]);
            d.copy_within(6..12, 0);
            d[6..12].copy_from_slice(&a);
        }
    }
}

fn csum_one(m: &mut Mbuf) -> pkt::CsumResult {
    if m.nb_segs() > 1 && m.linearize().is_err() {
        return pkt::CsumResult::default();
    }
    match m.try_data_mut() {
        Some(d) => pkt::csum_fix(d),
        None => pkt::CsumResult::default(),
    }
}

/// Append one burst of generated packets to `out` (fewer if the pool runs dry).
fn gen_burst(s: &mut Running, set: &FwdSettings, out: &mut Vec<Mbuf>, vary: bool) {
    let mut hdr = [0u8; HDRS];
    hdr.copy_from_slice(&s.tmpl.bytes[..HDRS]);
    for _ in 0..set.burst {
        if vary {
            s.tmpl.headers(s.next_flow, &mut hdr);
            s.next_flow += 1;
            if s.next_flow >= set.flows {
                s.next_flow = 0;
            }
        }
        match build(&set.pool, &set.txpkts, &hdr, &s.tmpl.bytes) {
            Some(m) => out.push(m),
            None => break,
        }
    }
}

/// One packet of `segs` segment lengths holding `hdr` then `body[HDRS..]`.
#[inline]
fn build(pool: &PktmbufPool, segs: &[u16], hdr: &[u8; HDRS], body: &[u8]) -> Option<Mbuf> {
    let mut off = 0usize;
    let mut head: Option<Mbuf> = None;
    for &len in segs {
        let mut m = Mbuf::alloc(pool)?;
        let d = m.append(len).ok()?;
        let mut i = 0;
        while i < d.len() {
            let at = off + i;
            if at < HDRS {
                let k = (HDRS - at).min(d.len() - i);
                d[i..i + k].copy_from_slice(&hdr[at..at + k]);
                i += k;
            } else {
                let k = d.len() - i;
                d[i..].copy_from_slice(&body[at..at + k]);
                i += k;
            }
        }
        off += usize::from(len);
        match head.as_mut() {
            None => head = Some(m),
            Some(h) => h.chain(m).ok()?,
        }
    }
    head
}

/// Pair forwarding ports: 0↔1, 2↔3, ...; an odd last port with itself.
pub fn peer_index(i: usize, n: usize) -> usize {
    let p = i ^ 1;
    if p < n {
        p
    } else {
        i
    }
}

/// Spread streams over `nb_lcores` lcores: streams sharing a TX queue stay together,
/// groups go round-robin. Returns one list per lcore (some may be empty).
pub fn assign(defs: Vec<StreamDef>, nb_lcores: usize) -> Vec<Vec<StreamDef>> {
    let mut groups: Vec<Vec<StreamDef>> = Vec::new();
    for d in defs {
        match groups
            .iter_mut()
            .find(|g| g[0].tx_port == d.tx_port && g[0].tx_queue == d.tx_queue)
        {
            Some(g) => g.push(d),
            None => groups.push(vec![d]),
        }
    }
    let n = nb_lcores.max(1);
    let mut out: Vec<Vec<StreamDef>> = (0..n).map(|_| Vec::new()).collect();
    for (i, g) in groups.into_iter().enumerate() {
        out[i % n].extend(g);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(rx: u16, rq: u16, tx: u16, tq: u16) -> StreamDef {
        StreamDef {
            rx_port: rx,
            rx_queue: rq,
            tx_port: tx,
            tx_queue: tq,
            peer_mac: [0; 6],
            tx_mac: [0; 6],
            stats: Arc::default(),
        }
    }

    #[test]
    fn pairing() {
        assert_eq!(
            (0..4).map(|i| peer_index(i, 4)).collect::<Vec<_>>(),
            vec![1, 0, 3, 2]
        );
        assert_eq!(
            (0..3).map(|i| peer_index(i, 3)).collect::<Vec<_>>(),
            vec![1, 0, 2]
        );
        assert_eq!(peer_index(0, 1), 0);
    }

    #[test]
    fn shared_tx_queues_stay_on_one_lcore() {
        // two RX queues on port 0 feeding the single TX queue of port 1, and the reverse
        let defs = vec![
            def(0, 0, 1, 0),
            def(0, 1, 1, 0),
            def(1, 0, 0, 0),
            def(1, 1, 0, 0),
        ];
        let a = assign(defs, 2);
        assert_eq!(a.len(), 2);
        for l in &a {
            assert_eq!(l.len(), 2);
            assert!(l
                .iter()
                .all(|d| (d.tx_port, d.tx_queue) == (l[0].tx_port, l[0].tx_queue)));
        }
        let a = assign(vec![def(0, 0, 1, 0)], 3);
        assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 0, 0]);
    }

    #[test]
    fn modes_round_trip() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        assert_eq!(Mode::parse("nope"), None);
    }
}
