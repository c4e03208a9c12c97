//! The back-end side of one vhost-user connection: the request handler rust-vmm's
//! `vhost` crate calls for every front-end message (`VhostUserBackendReqHandlerMut`),
//! on the controller's framework thread. It keeps the features, the memory table, the
//! ring setup and the inflight area, and starts and stops the polled queues
//! ([`crate::queue`]).
//!
//! A ring starts once it has memory, addresses, a kick descriptor and is enabled; it
//! stops at `GET_VRING_BASE` (or when the connection goes). A setup that points outside
//! guest memory is refused with an error reply to that front end.

use std::fs::File;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::VhostUserBackendReqHandlerMut;
use vhost::vhost_user::{Error as VuError, GpuBackend, Result as VuResult};
/// `vhost::backend::VhostUserMemoryRegionBase` (its module is private): a base address.
type VhostUserMemoryRegionBase = u64;
use vm_memory::ByteValued;

use crate::backend_req::{self, Channel};
use crate::error::Result;
use crate::inflight::InflightArea;
use crate::memory::GuestMem;
use crate::queue::{self, Ctx, QueueCounters, RunningVq, VqStart};
use crate::spec::{feature, BlkConfig, SECTOR_SIZE};

/// Largest ring we accept.
pub const MAX_QUEUE_SIZE: u16 = 1024;
/// Largest segment we advertise (`size_max`), bytes.
pub const SIZE_MAX: u32 = 1 << 20;
/// Segments per request we advertise (`seg_max`): QEMU's default ring of 128 less
/// header and status.
pub const SEG_MAX: u32 = 126;
/// Bytes of config space we answer from.
const CONFIG_SPACE: usize = 256;

fn err(msg: impl Into<String>) -> VuError {
    VuError::ReqHandlerError(io::Error::other(msg.into()))
}

/// The virtio features we offer.
pub fn offered_features(readonly: bool) -> u64 {
    let mut f = [
        feature::VERSION_1,
        feature::BLK_SIZE_MAX,
        feature::BLK_SEG_MAX,
        feature::BLK_BLK_SIZE,
        feature::BLK_FLUSH,
        feature::BLK_DISCARD,
        feature::BLK_WRITE_ZEROES,
        feature::BLK_MQ,
        feature::RING_INDIRECT_DESC,
        feature::RING_EVENT_IDX,
        feature::VHOST_USER_PROTOCOL_FEATURES,
    ]
    .iter()
    .fold(0u64, |a, b| a | (1 << b));
    if readonly {
        f |= 1 << feature::BLK_RO;
    }
    f
}

/// The protocol features we offer (REPLY_ACK is added by the vhost crate).
pub fn offered_protocol() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::CONFIG
        | VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::INFLIGHT_SHMFD
        | VhostUserProtocolFeatures::BACKEND_REQ
}

#[derive(Default)]
struct Vring {
    size: u16,
    addr: Option<(u64, u64, u64)>,
    base: u16,
    kick: Option<Arc<File>>,
    /// `SET_VRING_KICK` seen (with no descriptor the ring is polled only).
    kick_received: bool,
    call: Option<Arc<File>>,
    enabled: bool,
    running: Option<RunningVq>,
}

/// One connection's device state.
pub struct Device {
    ctx: Arc<Ctx>,
    max_queues: u16,
    features: u64,
    protocol: u64,
    mem: Option<Arc<GuestMem>>,
    vrings: Vec<Vring>,
    inflight: Option<InflightArea>,
    readonly: bool,
    /// The back-end request channel, once the front end sent it.
    backend: Option<Channel>,
}

impl Device {
    /// A device for a new connection.
    pub fn new(ctx: Arc<Ctx>, max_queues: u16, readonly: bool) -> Device {
        Device {
            ctx,
            max_queues,
            features: 0,
            protocol: 0,
            mem: None,
            vrings: (0..max_queues).map(|_| Vring::default()).collect(),
            inflight: None,
            readonly,
            backend: None,
        }
    }

    fn protocol_acked(&self, f: VhostUserProtocolFeatures) -> bool {
        self.protocol & f.bits() == f.bits()
    }

    /// Take a `SET_BACKEND_REQ_FD` waiting on the connection `fd` before rust-vmm's
    /// handler reads it (see [`crate::backend_req`]); true if one was taken. Left to
    /// the handler (which refuses it) unless BACKEND_REQ was negotiated.
    pub fn take_backend_req(&mut self, fd: RawFd) -> Result<bool> {
        if !self.protocol_acked(VhostUserProtocolFeatures::BACKEND_REQ) {
            return Ok(false);
        }
        let Some((ch, need_reply)) = backend_req::take_set_fd(fd)? else {
            return Ok(false);
        };
        self.backend = Some(ch);
        if need_reply && self.protocol_acked(VhostUserProtocolFeatures::REPLY_ACK) {
            backend_req::ack(fd)?;
        }
        Ok(true)
    }

    /// The config space changed (a resize): tell the front end if it gave us a
    /// channel and negotiated CONFIG; false if it cannot be told (the guest sees the
    /// new size only when it reads the config again).
    pub fn config_changed(&self) -> Result<bool> {
        match &self.backend {
            Some(c) if self.protocol_acked(VhostUserProtocolFeatures::CONFIG) => {
                c.config_change()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Stop every ring (the connection is going).
    pub fn stop_all(&mut self) {
        for v in &mut self.vrings {
            if let Some(r) = v.running.take() {
                r.stop();
            }
        }
    }

    /// The counters of each running queue, and requests refused as malformed over all
    /// of them.
    pub fn counters(&self) -> (Vec<QueueCounters>, u64) {
        let mut done = Vec::new();
        let mut bad = 0;
        for v in &self.vrings {
            if let Some(r) = &v.running {
                let s = r.state.lock().unwrap_or_else(|e| e.into_inner());
                done.push(s.counters());
                bad += s.bad;
            }
        }
        (done, bad)
    }

    fn vring(&mut self, index: u32) -> VuResult<&mut Vring> {
        self.vrings.get_mut(index as usize).ok_or_else(|| {
            err(format!(
                "queue {index} beyond the {} we have",
                self.max_queues
            ))
        })
    }

    fn protocol_features_acked(&self) -> bool {
        self.features & (1 << feature::VHOST_USER_PROTOCOL_FEATURES) != 0
    }

    fn try_start(&mut self, index: u32) -> VuResult<()> {
        let needs_enable = self.protocol_features_acked();
        let event_idx = self.features & (1 << feature::RING_EVENT_IDX) != 0;
        let Some(mem) = self.mem.clone() else {
            return Ok(());
        };
        let inflight = self
            .inflight
            .as_ref()
            .and_then(|a| (index < u32::from(a.num_queues())).then(|| a.queue(index as u16)));
        let ctx = self.ctx.clone();
        let v = self.vring(index)?;
        eal::log_debug!(
            "vhost: queue {index}: running {} kick {} enabled {} addr {:?}",
            v.running.is_some(),
            v.kick_received,
            v.enabled,
            v.addr
        );
        if v.running.is_some() || !v.kick_received || (needs_enable && !v.enabled) {
            return Ok(());
        }
        let Some((d, a, u)) = v.addr else {
            return Ok(());
        };
        let (Some(d), Some(a), Some(u)) = (mem.uva_to_gpa(d), mem.uva_to_gpa(a), mem.uva_to_gpa(u))
        else {
            return Err(err(format!(
                "queue {index}: ring addresses outside guest memory"
            )));
        };
        if v.size == 0 || v.size > MAX_QUEUE_SIZE || !v.size.is_power_of_two() {
            return Err(err(format!("queue {index}: size {}", v.size)));
        }
        let r = queue::start(
            &ctx,
            mem,
            VqStart {
                index: index as u16,
                size: v.size,
                desc: d,
                avail: a,
                used: u,
                base: v.base,
                event_idx,
                kick: v.kick.clone(),
                call: v.call.clone(),
                inflight,
            },
        )
        .map_err(err)?;
        v.running = Some(r);
        Ok(())
    }

    fn config(&self) -> [u8; CONFIG_SPACE] {
        let g = self.ctx.geometry();
        let c = BlkConfig {
            capacity: g.num_blocks * g.block_size / SECTOR_SIZE,
            size_max: SIZE_MAX,
            seg_max: SEG_MAX,
            blk_size: g.block_size as u32,
            num_queues: self.max_queues,
            max_discard_sectors: u32::MAX / SECTOR_SIZE as u32,
            max_discard_seg: 1,
            discard_sector_alignment: (g.block_size / SECTOR_SIZE) as u32,
            max_write_zeroes_sectors: u32::MAX / SECTOR_SIZE as u32,
            max_write_zeroes_seg: 1,
            write_zeroes_may_unmap: 1,
            ..Default::default()
        };
        let mut out = [0u8; CONFIG_SPACE];
        out[..std::mem::size_of::<BlkConfig>()].copy_from_slice(c.as_slice());
        out
    }
}

impl VhostUserBackendReqHandlerMut for Device {
    fn set_owner(&mut self) -> VuResult<()> {
        Ok(())
    }
    fn reset_owner(&mut self) -> VuResult<()> {
        self.stop_all();
        Ok(())
    }
    fn reset_device(&mut self) -> VuResult<()> {
        Err(err("RESET_DEVICE is not offered"))
    }
    fn get_features(&mut self) -> VuResult<u64> {
        Ok(offered_features(self.readonly))
    }
    fn set_features(&mut self, features: u64) -> VuResult<()> {
        let offered = offered_features(self.readonly);
        if features & !offered != 0 {
            return Err(err(format!(
                "features {:#x} were not offered",
                features & !offered
            )));
        }
        self.features = features;
        Ok(())
    }
    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy: Option<bool>,
    ) -> VuResult<Option<Vec<VhostUserMemoryRegionBase>>> {
        let mem = Arc::new(GuestMem::map(ctx, files).map_err(|e| err(e.to_string()))?);
        for v in &self.vrings {
            if let Some(r) = &v.running {
                r.set_mem(mem.clone());
            }
        }
        self.mem = Some(mem);
        Ok(None)
    }
    fn set_vring_num(&mut self, index: u32, num: u32) -> VuResult<()> {
        let n = u16::try_from(num).map_err(|_| err(format!("ring size {num}")))?;
        self.vring(index)?.size = n;
        Ok(())
    }
    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> VuResult<()> {
        self.vring(index)?.addr = Some((descriptor, available, used));
        Ok(())
    }
    fn set_vring_base(&mut self, index: u32, base: u32) -> VuResult<()> {
        self.vring(index)?.base = base as u16;
        Ok(())
    }
    fn get_vring_base(&mut self, index: u32) -> VuResult<VhostUserVringState> {
        let v = self.vring(index)?;
        let base = match v.running.take() {
            Some(r) => r.stop(),
            None => v.base,
        };
        v.kick = None;
        v.kick_received = false;
        v.enabled = false;
        Ok(VhostUserVringState::new(index, u32::from(base)))
    }
    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        let v = self.vring(u32::from(index))?;
        if let Some(r) = v.running.take() {
            v.base = r.stop();
        }
        v.kick = fd.map(Arc::new);
        v.kick_received = true;
        self.try_start(u32::from(index))
    }
    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        let v = self.vring(u32::from(index))?;
        v.call = fd.map(Arc::new);
        if let Some(r) = &v.running {
            r.set_call(v.call.clone());
        }
        Ok(())
    }
    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> VuResult<()> {
        self.vring(u32::from(index))?;
        Ok(())
    }
    fn get_protocol_features(&mut self) -> VuResult<VhostUserProtocolFeatures> {
        Ok(offered_protocol())
    }
    fn set_protocol_features(&mut self, features: u64) -> VuResult<()> {
        let offered = offered_protocol().bits();
        if features & !offered != 0 {
            return Err(err(format!(
                "protocol features {:#x} were not offered",
                features & !offered
            )));
        }
        self.protocol = features;
        Ok(())
    }
    fn get_queue_num(&mut self) -> VuResult<u64> {
        Ok(u64::from(self.max_queues))
    }
    fn set_vring_enable(&mut self, index: u32, enable: bool) -> VuResult<()> {
        let v = self.vring(index)?;
        v.enabled = enable;
        if !enable {
            if let Some(r) = v.running.take() {
                v.base = r.stop();
            }
            return Ok(());
        }
        self.try_start(index)
    }
    fn get_config(
        &mut self,
        offset: u32,
        size: u32,
        _flags: VhostUserConfigFlags,
    ) -> VuResult<Vec<u8>> {
        let (o, s) = (offset as usize, size as usize);
        let cfg = self.config();
        if o.checked_add(s).is_none_or(|e| e > CONFIG_SPACE) {
            return Err(err(format!("config bytes {o}+{s} beyond {CONFIG_SPACE}")));
        }
        Ok(cfg[o..o + s].to_vec())
    }
    fn set_config(
        &mut self,
        _offset: u32,
        _buf: &[u8],
        _flags: VhostUserConfigFlags,
    ) -> VuResult<()> {
        Err(err("the config space is read-only"))
    }
    fn set_gpu_socket(&mut self, _gpu: GpuBackend) -> VuResult<()> {
        Err(err("not a GPU"))
    }
    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> VuResult<File> {
        Err(err("no shared objects"))
    }
    fn get_inflight_fd(
        &mut self,
        inflight: &VhostUserInflight,
    ) -> VuResult<(VhostUserInflight, File)> {
        if inflight.num_queues > self.max_queues || inflight.queue_size > MAX_QUEUE_SIZE {
            return Err(err(format!(
                "inflight area for {} queues of {}",
                inflight.num_queues, inflight.queue_size
            )));
        }
        let (a, f) = InflightArea::create(inflight.num_queues, inflight.queue_size)
            .map_err(|e| err(e.to_string()))?;
        let reply =
            VhostUserInflight::new(a.len() as u64, 0, inflight.num_queues, inflight.queue_size);
        self.inflight = Some(a);
        Ok((reply, f))
    }
    fn set_inflight_fd(&mut self, inflight: &VhostUserInflight, file: File) -> VuResult<()> {
        if inflight.num_queues > self.max_queues || inflight.queue_size > MAX_QUEUE_SIZE {
            return Err(err("inflight area too large"));
        }
        let a = InflightArea::open(
            &file,
            inflight.mmap_offset,
            inflight.mmap_size,
            inflight.num_queues,
            inflight.queue_size,
        )
        .map_err(|e| err(e.to_string()))?;
        self.inflight = Some(a);
        Ok(())
    }
    fn get_max_mem_slots(&mut self) -> VuResult<u64> {
        Err(err("CONFIGURE_MEM_SLOTS is not offered"))
    }
    fn add_mem_region(
        &mut self,
        _region: &VhostUserSingleMemoryRegion,
        _fd: File,
        _postcopy: Option<bool>,
    ) -> VuResult<Option<VhostUserMemoryRegionBase>> {
        Err(err("CONFIGURE_MEM_SLOTS is not offered"))
    }
    fn remove_mem_region(&mut self, _region: &VhostUserSingleMemoryRegion) -> VuResult<()> {
        Err(err("CONFIGURE_MEM_SLOTS is not offered"))
    }
    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> VuResult<Option<File>> {
        Err(err("device state transfer is not offered"))
    }
    fn check_device_state(&mut self) -> VuResult<()> {
        Err(err("device state transfer is not offered"))
    }
    fn get_shmem_config(&mut self) -> VuResult<VhostUserShMemConfig> {
        Err(err("no shared memory regions"))
    }
    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> VuResult<()> {
        Err(err("LOG_SHMFD is not offered"))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop_all();
    }
}
