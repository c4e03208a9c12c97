//! Creation flags and per-side synchronisation modes.

bitflags::bitflags! {
    /// Flags given at creation, with DPDK's bit values (rte_ring_core.h, `RING_F_*`), so a
    /// dump reads the same. No flag for a side means multi-thread safe with the classic
    /// CAS head and ordered tail ([`SyncMode::Multi`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RingFlags: u32 {
        /// Single producer: at most one thread (in any process) enqueues at a time.
        const SP_ENQ = 0x0001;
        /// Single consumer: at most one thread (in any process) dequeues at a time.
        const SC_DEQ = 0x0002;
        /// Capacity is exactly the count asked for; the slot array is rounded up to the
        /// next power of two (count + 1 rounded) behind the scenes.
        const EXACT_SZ = 0x0004;
        /// Multi producer, relaxed tail sync (RTS).
        const MP_RTS_ENQ = 0x0008;
        /// Multi consumer, relaxed tail sync (RTS).
        const MC_RTS_DEQ = 0x0010;
        /// Multi producer, head/tail sync (HTS): one enqueue in flight at a time.
        const MP_HTS_ENQ = 0x0020;
        /// Multi consumer, head/tail sync (HTS): one dequeue in flight at a time.
        const MC_HTS_DEQ = 0x0040;
        /// Ferroplane's own bit (DPDK has no such layout): both sides' head/tail words
        /// on one cache line. For rings whose threads all both enqueue and dequeue, such
        /// as a mempool's free list, where every operation reads its own head and the
        /// other side's tail and writes its own head and tail: one line per operation
        /// instead of two. Measured (`scripts/compare/ring_ab.sh`, two threads each
        /// dequeuing and enqueuing 1/4/32 at a time on an MP/MC ring): 1.44 / 1.33 / 1.27
        /// times DPDK's rate with it, 1.08 / 1.01 / 0.98 with the default layout. For a
        /// producer/consumer pipeline it gives away what the default is built for (sides
        /// that never write each other's line): a mempool filled by one thread and
        /// drained by another measured 0.6 of the default at bulk 1. Its user is the
        /// mempool's `ring_mp_mc` backend (see the crate's `layout` module and DESIGN.md).
        const ONE_LINE = 0x1000_0000;
        /// Ferroplane's own bit (DPDK has no such mode): optimistic multi consumer
        /// ([`SyncMode::Optimistic`], which says what it is for and what it measured).
        /// Needs 8-byte, 8-aligned elements with no padding (the constructors check the
        /// size and alignment; the caller of the `unsafe` constructor vouches for the
        /// rest). Its user is the mempool's `ring_mp_mc` backend.
        const MC_OPT_DEQ = 0x2000_0000;
    }
}

/// How one side (producers or consumers) synchronises, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SyncMode {
    /// Multi-thread safe: CAS on the head, tails updated in reservation order (a thread
    /// waits for the one before it). Not preemption safe.
    Multi = 0,
    /// Single thread: plain head and tail stores, cached copy of the other side's tail.
    Single = 1,
    /// Relaxed tail sync: head and tail are (position, count) pairs; the tail moves when
    /// the last thread in flight finishes, no thread waits for a particular other one.
    /// The head may run at most `htd_max` ahead of the tail.
    Rts = 2,
    /// Head/tail sync: head and tail in one 64-bit word, one operation in flight at a
    /// time; allows peek and zero-copy.
    Hts = 3,
    /// Consumer side only (`MC_OPT_DEQ`), Ferroplane's own: a dequeue of up to four
    /// entries loads the head and the producer tail, copies the entries it saw
    /// published, then claims them with one CAS of the head (if another consumer claimed
    /// first, the copy is discarded and it starts again) and publishes the tail as
    /// [`SyncMode::Multi`] does, at once, since nothing is left to do between claim and
    /// publication; larger dequeues are [`SyncMode::Multi`]'s claim, copy, publish. Same
    /// head and tail words as Multi, so the two paths mix on one ring. Slots are read
    /// and written with 8-byte atomic accesses, because a consumer that loses the race
    /// may read a slot while a producer of the next lap writes it.
    ///
    /// What it is for: gets of one to four objects from threads that also put, a
    /// mempool without a per-core cache, where the other core waits on the window
    /// between a consumer's claim and its publication. Measured with dpdk-test's
    /// mempool autotest, two cores, no cache: that group at 1.41 of DPDK's rate with
    /// optimistic consumers, against 1.21-1.26 with the plain multi consumer
    /// (docs/mempool-perf-history.md). The mempool's `ring_mp_mc` backend uses it
    /// through [`MpOptRing`](crate::MpOptRing). Not preemption safe in DPDK's sense
    /// (the tail is still published in claim order); its waits back off like Multi's.
    Optimistic = 4,
}

impl SyncMode {
    /// The mode stored as `v` in a ring header, if any.
    pub(crate) fn from_u32(v: u32) -> Option<SyncMode> {
        // In discriminant order.
        const ALL: [SyncMode; 5] = [
            SyncMode::Multi,
            SyncMode::Single,
            SyncMode::Rts,
            SyncMode::Hts,
            SyncMode::Optimistic,
        ];
        ALL.get(v as usize).copied()
    }
}

/// Split flags into the producer and consumer modes, refusing contradictions: `Err`
/// says why (the caller reports it as `Error::BadFlags`, so this module does not depend
/// on the error module, which names `SyncMode`).
pub(crate) fn sync_modes(flags: RingFlags) -> Result<(SyncMode, SyncMode), &'static str> {
    if RingFlags::from_bits(flags.bits()).is_none() {
        return Err("unknown bits set");
    }
    let pick = |s: RingFlags, rts: RingFlags, hts: RingFlags, opt: RingFlags, side| match (
        flags.contains(s),
        flags.contains(rts),
        flags.contains(hts),
        !opt.is_empty() && flags.contains(opt),
    ) {
        (false, false, false, false) => Ok(SyncMode::Multi),
        (true, false, false, false) => Ok(SyncMode::Single),
        (false, true, false, false) => Ok(SyncMode::Rts),
        (false, false, true, false) => Ok(SyncMode::Hts),
        (false, false, false, true) => Ok(SyncMode::Optimistic),
        _ => Err(side),
    };
    let prod = pick(
        RingFlags::SP_ENQ,
        RingFlags::MP_RTS_ENQ,
        RingFlags::MP_HTS_ENQ,
        RingFlags::empty(),
        "more than one producer sync mode",
    )?;
    let cons = pick(
        RingFlags::SC_DEQ,
        RingFlags::MC_RTS_DEQ,
        RingFlags::MC_HTS_DEQ,
        RingFlags::MC_OPT_DEQ,
        "more than one consumer sync mode",
    )?;
    Ok((prod, cons))
}
