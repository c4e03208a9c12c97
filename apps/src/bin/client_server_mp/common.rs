//! What `mp_server` and `mp_client` share: object names, the `MProc_info` memzone layout
//! and the payload format.

// Each binary uses its half of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The packet-mbuf pool (DPDK's client_server_mp name).
pub const POOL: &str = "MProc_pktmbuf_pool";
/// The shared run-state memzone.
pub const INFO: &str = "MProc_info";
/// Most clients.
pub const MAX_CLIENTS: usize = 16;
/// Bytes of payload in every mbuf.
pub const PAYLOAD: u16 = 64;
/// Mbufs per burst.
pub const BURST: usize = 32;

/// Ring of client `i` (DPDK's "MProc_Client_RX_%u").
pub fn ring_name(i: u32) -> String {
    format!("MProc_Client_RX_{i}")
}

/// "FPCSMP01".
pub const INFO_MAGIC: u64 = u64::from_le_bytes(*b"FPCSMP01");
/// Layout version of [`Info`].
pub const INFO_VERSION: u32 = 2;

/// Per-client counters, one cache line each.
#[repr(C, align(64))]
pub struct ClientStat {
    /// Mbufs the server enqueued for this client (final once `Info::done` is set).
    pub sent: AtomicU64,
    /// Mbufs the client received and checked.
    pub rx: AtomicU64,
    /// Payload check failures.
    pub errors: AtomicU64,
    /// Pid of the client (0 before it attached).
    pub pid: AtomicU32,
    /// 1 once the client has received and freed all of its share.
    pub finished: AtomicU32,
    /// Port mode: packets the client transmitted on its TX queues.
    pub tx: AtomicU64,
    /// Port mode: packets the client's TX queues did not take (freed).
    pub drops: AtomicU64,
}

/// The `MProc_info` memzone: written by the server, read and updated by clients.
/// `#[repr(C)]`, no pointers, magic + version.
#[repr(C)]
pub struct Info {
    /// [`INFO_MAGIC`], stored last by the server (release).
    pub magic: AtomicU64,
    /// [`INFO_VERSION`].
    pub version: u32,
    /// Number of clients.
    pub n_clients: u32,
    /// 1 once the server has enqueued every mbuf and stored every `sent`.
    pub done: AtomicU32,
    /// 1: the server receives from ports and the clients transmit on them (queue = client
    /// id) instead of checking payloads.
    pub port_mode: u32,
    /// Client counters.
    pub clients: [ClientStat; MAX_CLIENTS],
}

impl Info {
    /// Is `done` set? Acquire: pairs with the server's release store, so every `sent`
    /// and every enqueue before it is visible.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire) == 1
    }
}

/// A cheap check word over sequence number and client id.
pub fn check_word(seq: u64, client: u32) -> u32 {
    let x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(client).rotate_left(29);
    (x >> 32) as u32 ^ x as u32
}

/// Fill a payload: seq (LE u64), client (LE u32), check word (LE u32), then a pattern
/// derived from seq.
pub fn fill(p: &mut [u8], seq: u64, client: u32) {
    p[0..8].copy_from_slice(&seq.to_le_bytes());
    p[8..12].copy_from_slice(&client.to_le_bytes());
    p[12..16].copy_from_slice(&check_word(seq, client).to_le_bytes());
    let s = seq as u8;
    for (i, b) in p[16..].iter_mut().enumerate() {
        *b = s.wrapping_add(i as u8);
    }
}

/// Verify a payload made by [`fill`]; `Err` says what is wrong.
pub fn verify(p: &[u8], seq: u64, client: u32) -> Result<(), String> {
    if p.len() != PAYLOAD as usize {
        return Err(format!("payload of {} bytes, expected {PAYLOAD}", p.len()));
    }
    let got_seq = u64::from_le_bytes(p[0..8].try_into().expect("8 bytes"));
    let got_client = u32::from_le_bytes(p[8..12].try_into().expect("4 bytes"));
    let got_check = u32::from_le_bytes(p[12..16].try_into().expect("4 bytes"));
    if got_seq != seq || got_client != client {
        return Err(format!(
            "got seq {got_seq} for client {got_client}, expected seq {seq} for client {client}"
        ));
    }
    if got_check != check_word(seq, client) {
        return Err(format!("seq {seq}: bad check word {got_check:#x}"));
    }
    let s = seq as u8;
    if let Some(i) = p[16..]
        .iter()
        .enumerate()
        .position(|(i, &b)| b != s.wrapping_add(i as u8))
    {
        return Err(format!("seq {seq}: pattern byte {} wrong", 16 + i));
    }
    Ok(())
}
