//! Packet-mbuf pools: a mempool whose objects are `header | private area | buffer`.

use eal::{Eal, VirtAddr};
use mempool::{Mempool, Pool, PoolConfig};

use crate::header::{MbufHeader, MBUF_HEADER_LEN, PRIV_ALIGN};
use crate::{Error, Result};

/// "FPPKTMB" + format byte, at the start of the pool's private area.
const PRIV_MAGIC: u64 = u64::from_le_bytes(*b"FPPKTMB\x01");

/// What a packet-mbuf pool keeps in its mempool's private area (DPDK's
/// `rte_pktmbuf_pool_private`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct PktmbufPrivate {
    magic: u64,
    data_room_size: u16,
    priv_size: u16,
    _pad: u32,
}

impl PktmbufPrivate {
    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.magic.to_le_bytes());
        b[8..10].copy_from_slice(&self.data_room_size.to_le_bytes());
        b[10..12].copy_from_slice(&self.priv_size.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<PktmbufPrivate> {
        if b.len() < 16 {
            return None;
        }
        let magic = u64::from_le_bytes(b[..8].try_into().ok()?);
        (magic == PRIV_MAGIC).then(|| PktmbufPrivate {
            magic,
            data_room_size: u16::from_le_bytes([b[8], b[9]]),
            priv_size: u16::from_le_bytes([b[10], b[11]]),
            _pad: 0,
        })
    }
}

/// A pool of packet mbufs. Cheap to clone (a [`Mempool`] handle plus two sizes).
#[derive(Clone, Debug)]
pub struct PktmbufPool {
    mp: Mempool,
    data_room: u16,
    priv_size: u16,
}

/// Create a pool of `n` packet mbufs (DPDK's `rte_pktmbuf_pool_create`), each with a
/// `priv_size`-byte private area (a multiple of 8) and a `data_room`-byte buffer
/// ([`MBUF_DEFAULT_BUF_SIZE`](crate::MBUF_DEFAULT_BUF_SIZE) = 2048 + 128 headroom is the
/// usual value), on the default `ring_mp_mc` backend with per-lcore caches of `cache`.
pub fn pktmbuf_pool_create(
    eal: &Eal,
    name: &str,
    n: u32,
    cache: u32,
    priv_size: u16,
    data_room: u16,
    socket: Option<u32>,
) -> Result<PktmbufPool> {
    PktmbufPool::create_with_ops(
        eal,
        name,
        n,
        cache,
        priv_size,
        data_room,
        socket,
        "ring_mp_mc",
    )
}

impl PktmbufPool {
    /// As [`pktmbuf_pool_create`] with a chosen thread-safe mempool backend.
    #[allow(clippy::too_many_arguments)]
    pub fn create_with_ops(
        eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        priv_size: u16,
        data_room: u16,
        socket: Option<u32>,
        ops: &str,
    ) -> Result<PktmbufPool> {
        if !priv_size.is_multiple_of(PRIV_ALIGN) {
            return Err(Error::BadConfig {
                name: name.into(),
                why: format!("private size {priv_size} is not a multiple of {PRIV_ALIGN}"),
            });
        }
        let elt = MBUF_HEADER_LEN as u32 + u32::from(priv_size) + u32::from(data_room);
        let private = PktmbufPrivate {
            magic: PRIV_MAGIC,
            data_room_size: data_room,
            priv_size,
            _pad: 0,
        }
        .to_bytes();
        let cfg = PoolConfig {
            n,
            elt_size: elt,
            cache_size: cache,
            socket,
            ops,
            private: &private,
            ..Default::default()
        };
        let off = (MBUF_HEADER_LEN + priv_size as usize) as u64;
        let mp = Mempool::create_with_init(eal, name, &cfg, |_, obj: VirtAddr| {
            // SAFETY: a fresh, unpublished object of `elt` bytes; the IOVA recorded by the
            // mempool in its object header is that of the object's first byte.
            unsafe {
                let iova = Pool::obj_iova(obj);
                let buf_iova = if iova.is_valid() { iova.add(off) } else { iova };
                // `pool` is written below, once we know the header address.
                MbufHeader::init(
                    obj.as_ptr(),
                    Pool::obj_pool_addr(obj),
                    obj.add(off),
                    buf_iova,
                    data_room,
                    priv_size,
                );
            }
        })
        .map_err(|e| Error::Mempool {
            op: "create",
            source: Box::new(e),
        })?;
        Ok(PktmbufPool {
            mp,
            data_room,
            priv_size,
        })
    }

    /// Take back every mbuf that is out of the pool (held by a process that died, e.g. a
    /// secondary killed between RX and TX): each is reset to a fresh mbuf (its own buffer,
    /// one segment, refcnt 1) and put back. Returns how many. Indirect mbufs among them
    /// are reset without touching the mbuf they pointed at (which, if it was out too, is
    /// taken back as well).
    ///
    /// # Safety
    /// No live thread of any process holds an mbuf of this pool, gets or puts one, or uses
    /// the pool's caches during the call (every process that used it is gone or idle with
    /// nothing in hand).
    pub unsafe fn take_back_all_out(&self) -> Result<u32> {
        // SAFETY: forwarded: the pool is quiescent.
        let out = unsafe { self.mp.objects_out() }.map_err(|e| Error::Mempool {
            op: "list the mbufs out of",
            source: Box::new(e),
        })?;
        let off = (MBUF_HEADER_LEN + self.priv_size as usize) as u64;
        for &obj in &out {
            let h = obj.as_ptr::<MbufHeader>();
            // SAFETY: an mbuf object of this pool that nobody holds (caller's contract);
            // re-initialised as at creation, keeping the pool back-pointer it has.
            unsafe {
                let pool = (*h).pool;
                let iova = Pool::obj_iova(obj);
                let buf_iova = if iova.is_valid() { iova.add(off) } else { iova };
                MbufHeader::init(
                    h,
                    pool,
                    obj.add(off),
                    buf_iova,
                    self.data_room,
                    self.priv_size,
                );
            }
        }
        for chunk in out.chunks(64) {
            // SAFETY: objects of this pool, each out and now fresh; put back once.
            unsafe { self.mp.put_bulk(chunk) }.map_err(|e| Error::Mempool {
                op: "put back the mbufs out of",
                source: Box::new(e),
            })?;
        }
        Ok(out.len() as u32)
    }

    /// Find a packet-mbuf pool by name.
    pub fn lookup(eal: &Eal, name: &str) -> Result<PktmbufPool> {
        let mp = Mempool::lookup(eal, name).map_err(|e| Error::Mempool {
            op: "look up",
            source: Box::new(e),
        })?;
        let p = PktmbufPrivate::from_bytes(mp.private()).ok_or(Error::NotPktmbufPool {
            name: name.into(),
            why: "no packet-mbuf private data",
        })?;
        Ok(PktmbufPool {
            mp,
            data_room: p.data_room_size,
            priv_size: p.priv_size,
        })
    }

    /// The underlying mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mp
    }

    /// Bytes of each mbuf's buffer, headroom included (DPDK's `rte_pktmbuf_data_room_size`).
    pub fn data_room_size(&self) -> u16 {
        self.data_room
    }

    /// Bytes of each mbuf's private area.
    pub fn priv_size(&self) -> u16 {
        self.priv_size
    }

    /// Free mbufs (a snapshot, lcore caches included).
    pub fn avail_count(&self) -> u32 {
        self.mp.avail_count()
    }

    /// Mbufs handed out (a snapshot).
    pub fn in_use_count(&self) -> u32 {
        self.mp.in_use_count()
    }

    /// Number of mbufs.
    pub fn size(&self) -> u32 {
        self.mp.size()
    }

    /// Free the pool (refused while mbufs are out or other handles exist).
    pub fn free(self) -> Result<()> {
        self.mp.free().map_err(|e| Error::Mempool {
            op: "free",
            source: Box::new(e),
        })
    }
}

/// Data room of the pool an mbuf belongs to, recovered from the mempool's element size.
pub(crate) fn data_room_of(pool: &Pool, priv_size: u16) -> u16 {
    (pool.elt_size() as usize - MBUF_HEADER_LEN - priv_size as usize) as u16
}
