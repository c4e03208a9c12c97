//! `net_null`: RX makes packets of `size` bytes out of the RX pool (data untouched unless
//! `copy=1`, which copies a template into each), TX frees (after copying the data out if
//! `copy=1`). `no-rx=1` makes RX return nothing. As DPDK's null PMD (drivers/net/null).

use mbuf::{Mbuf, PktmbufPool};

use crate::driver::{
    AttachCtx, EthDriver, QueueAttach, QueueShare, QueueStats, RxQueueOps, RxSetup, TxQueueOps,
    TxSetup, VdevCtx, VdevDriver,
};
use crate::error::{Error, Result};
use crate::types::{DevInfo, RssHf, TxOffloads};

pub const DRIVER: VdevDriver = VdevDriver {
    name: "net_null",
    aliases: &["eth_null"],
    keys: &["size", "copy", "no-rx"],
    create,
};

/// Largest `size=` (what one 64 KiB mbuf could carry).
const MAX_SIZE: u64 = 65535 - mbuf::PKTMBUF_HEADROOM as u64;
const CHUNK: usize = 64;

/// Queues in a secondary process: the blob is `size` (LE u16), `copy`, `no-rx`.
pub const ATTACH: QueueAttach = QueueAttach {
    rx: attach_rx,
    tx: attach_tx,
};

fn params(c: &AttachCtx<'_>) -> Result<Null> {
    let b = c.blob;
    if b.len() != 4 {
        return Err(Error::Mp {
            op: "attach a queue of",
            port: c.port,
            why: format!("net_null parameters of {} bytes, expected 4", b.len()),
        });
    }
    Ok(Null {
        size: u16::from_le_bytes([b[0], b[1]]),
        copy: b[2] != 0,
        no_rx: b[3] != 0,
        port: c.port,
    })
}

fn attach_rx(c: AttachCtx<'_>) -> Result<Box<dyn RxQueueOps>> {
    let n = params(&c)?;
    let pool = c.pool.ok_or_else(|| Error::Mp {
        op: "attach an RX queue of",
        port: c.port,
        why: "no pool recorded for the queue".into(),
    })?;
    Ok(n.rx(pool, c.stats))
}

fn attach_tx(c: AttachCtx<'_>) -> Result<Box<dyn TxQueueOps>> {
    let n = params(&c)?;
    Ok(n.tx(c.stats))
}

struct Null {
    size: u16,
    copy: bool,
    no_rx: bool,
    port: u16,
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let a = ctx.args;
    Ok(Box::new(Null {
        size: a.num("size", 64, 1, MAX_SIZE)? as u16,
        copy: a.flag("copy")?,
        no_rx: a.flag("no-rx")?,
        port: ctx.port_id,
    }))
}

impl EthDriver for Null {
    fn info(&self) -> DevInfo {
        DevInfo {
            tx_offload_capa: TxOffloads::MULTI_SEGS | TxOffloads::MBUF_FAST_FREE,
            flow_type_rss_offloads: RssHf::all(),
            ..DevInfo::new(
                DRIVER.name,
                crate::types::MAX_QUEUES as u16,
                crate::types::MAX_QUEUES as u16,
            )
        }
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        let room = s
            .pool
            .data_room_size()
            .saturating_sub(mbuf::PKTMBUF_HEADROOM);
        if room < self.size {
            return Err(Error::BadQueue {
                op: "set up",
                dir: "RX",
                port: self.port,
                queue: s.queue,
                why: format!(
                    "packet size {} exceeds the pool's data room of {room} bytes",
                    self.size
                ),
            });
        }
        Ok(self.rx(s.pool, s.stats))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        Ok(self.tx(s.stats))
    }

    fn share_queue(&mut self, _rx: bool, _q: u16) -> Option<Result<QueueShare>> {
        let mut blob = self.size.to_le_bytes().to_vec();
        blob.extend([u8::from(self.copy), u8::from(self.no_rx)]);
        Some(Ok(QueueShare {
            blob,
            fds: Vec::new(),
        }))
    }
}

impl Null {
    fn rx(&self, pool: &PktmbufPool, stats: QueueStats) -> Box<dyn RxQueueOps> {
        Box::new(NullRx {
            pool: pool.clone(),
            size: self.size,
            template: if self.copy {
                vec![0u8; self.size as usize]
            } else {
                Vec::new()
            },
            no_rx: self.no_rx,
            port: self.port,
            stats,
        })
    }

    fn tx(&self, stats: QueueStats) -> Box<dyn TxQueueOps> {
        Box::new(NullTx {
            copy: self.copy,
            sink: vec![0u8; self.size as usize],
            stats,
        })
    }
}

struct NullRx {
    pool: PktmbufPool,
    size: u16,
    /// Data copied into every packet with `copy=1` (empty otherwise).
    template: Vec<u8>,
    no_rx: bool,
    port: u16,
    stats: QueueStats,
}

impl RxQueueOps for NullRx {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        if self.no_rx {
            return 0;
        }
        let mut done = 0;
        while done < max {
            let k = (max - done).min(CHUNK);
            let start = out.len();
            // Room was checked at setup, so only an empty pool fails here.
            if Mbuf::alloc_bulk_into(&self.pool, out, k, self.size, self.port).is_err() {
                self.stats.add_nombuf(k as u64);
                break;
            }
            if !self.template.is_empty() {
                for m in &mut out[start..] {
                    // A fresh mbuf is never shared; `None` would only leave the data as it is.
                    if let Some(d) = m.try_data_mut() {
                        d.copy_from_slice(&self.template);
                    }
                }
            }
            done += k;
        }
        self.stats
            .add(done as u64, done as u64 * u64::from(self.size));
        done
    }
}

struct NullTx {
    copy: bool,
    sink: Vec<u8>,
    stats: QueueStats,
}

impl TxQueueOps for NullTx {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut bytes = 0u64;
        for m in &pkts[..max] {
            bytes += u64::from(m.pkt_len());
            if self.copy {
                let d = m.data();
                let k = d.len().min(self.sink.len());
                self.sink[..k].copy_from_slice(&d[..k]);
            }
        }
        Mbuf::free_bulk(pkts.drain(..max));
        self.stats.add(max as u64, bytes);
        max
    }
}
