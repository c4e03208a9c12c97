//! The virtio PCI transport (virtio 4.1): finding the common, notify, ISR and device
//! configuration structures through the vendor capabilities, and register access to
//! them through a small [`Regs`] trait, so the init state machine and the control path
//! run against a fake device in unit tests as well as against a BAR.

use eal::device::MmioRegion;

use super::spec::{self, cfg_type, common, PciCap};

/// A register window: one volatile access per call. Reads of a window that cannot be
/// reached (a removed device, an offset outside it) return all-ones; writes to it are
/// dropped.
pub(crate) trait Regs: Send + Sync {
    fn r8(&self, off: u64) -> u8;
    fn r16(&self, off: u64) -> u16;
    fn r32(&self, off: u64) -> u32;
    fn w8(&self, off: u64, v: u8);
    fn w16(&self, off: u64, v: u16);
    fn w32(&self, off: u64, v: u32);
}

/// A window of `len` bytes at `base` within a mapped BAR.
#[derive(Clone)]
pub(crate) struct Window {
    bar: MmioRegion,
    base: u64,
    len: u64,
}

impl Window {
    pub(crate) fn new(bar: MmioRegion, base: u64, len: u64) -> Option<Window> {
        (base.checked_add(len)? <= bar.len()).then_some(Window { bar, base, len })
    }

    #[inline(always)]
    fn at(&self, off: u64, size: u64) -> Option<u64> {
        (off + size <= self.len).then_some(self.base + off)
    }
}

impl Regs for Window {
    #[inline(always)]
    fn r8(&self, off: u64) -> u8 {
        self.at(off, 1)
            .and_then(|o| self.bar.read8(o).ok())
            .unwrap_or(u8::MAX)
    }
    #[inline(always)]
    fn r16(&self, off: u64) -> u16 {
        self.at(off, 2)
            .and_then(|o| self.bar.read16(o).ok())
            .unwrap_or(u16::MAX)
    }
    #[inline(always)]
    fn r32(&self, off: u64) -> u32 {
        self.at(off, 4)
            .and_then(|o| self.bar.read32(o).ok())
            .unwrap_or(u32::MAX)
    }
    #[inline(always)]
    fn w8(&self, off: u64, v: u8) {
        if let Some(o) = self.at(off, 1) {
            let _ = self.bar.write8(o, v);
        }
    }
    #[inline(always)]
    fn w16(&self, off: u64, v: u16) {
        if let Some(o) = self.at(off, 2) {
            let _ = self.bar.write16(o, v);
        }
    }
    #[inline(always)]
    fn w32(&self, off: u64, v: u32) {
        if let Some(o) = self.at(off, 4) {
            let _ = self.bar.write32(o, v);
        }
    }
}

/// Where the four structures are: one capability of each type (the first of a type,
/// as virtio 4.1.4 asks drivers to use), and the notify multiplier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CapLayout {
    pub common: PciCap,
    pub notify: PciCap,
    pub notify_off_multiplier: u32,
    pub isr: PciCap,
    pub device: PciCap,
}

/// Reads `buf.len()` bytes of config space at an offset.
pub(crate) type ConfigRead<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> Result<(), String>;

/// Walk the capability list of a config space read through `read` and find the virtio
/// structures. `Err` says what is missing or malformed (a legacy-only device has none).
pub(crate) fn find_caps(read: ConfigRead<'_>) -> Result<CapLayout, String> {
    let mut b2 = [0u8; 2];
    read(spec::PCI_STATUS, &mut b2)?;
    if u16::from_le_bytes(b2) & spec::PCI_STATUS_CAP_LIST == 0 {
        return Err("the device has no PCI capability list (a legacy-only virtio device?)".into());
    }
    let mut p = [0u8; 1];
    read(spec::PCI_CAPABILITY_LIST, &mut p)?;
    let mut at = u64::from(p[0] & !3);
    let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
    let mut mult = 0u32;
    // Config space is 256 bytes for the standard capabilities: at most 48 of them fit, so
    // a longer walk is a loop in the list.
    let mut hops = 0;
    while at != 0 {
        hops += 1;
        if hops > 48 || !(0x40..=0xfc).contains(&at) {
            return Err(format!("malformed PCI capability list (entry at {at:#x})"));
        }
        let mut hdr = [0u8; 2];
        read(at, &mut hdr)?;
        if hdr[0] == spec::PCI_CAP_ID_VNDR {
            let mut raw = [0u8; 16];
            read(at, &mut raw)?;
            let cap = PciCap::from_bytes(&raw);
            if cap.cap_len >= 16 && cap.bar <= 5 {
                let slot = match cap.cfg_type {
                    cfg_type::COMMON => Some(&mut common),
                    cfg_type::NOTIFY => Some(&mut notify),
                    cfg_type::ISR => Some(&mut isr),
                    cfg_type::DEVICE => Some(&mut device),
                    _ => None,
                };
                if let Some(s) = slot {
                    if s.is_none() {
                        if cap.cfg_type == cfg_type::NOTIFY {
                            if cap.cap_len < 20 {
                                return Err("the notify capability is shorter than 20 bytes".into());
                            }
                            let mut m = [0u8; 4];
                            read(at + 16, &mut m)?;
                            mult = u32::from_le_bytes(m);
                        }
                        *s = Some(cap);
                    }
                }
            }
        }
        at = u64::from(hdr[1] & !3);
    }
    let need = |c: Option<PciCap>, what: &str| {
        c.ok_or_else(|| format!("no virtio {what} capability (a legacy-only device?)"))
    };
    let l = CapLayout {
        common: need(common, "common configuration")?,
        notify: need(notify, "notification")?,
        notify_off_multiplier: mult,
        isr: need(isr, "ISR")?,
        device: need(device, "device configuration")?,
    };
    if u64::from(l.common.length) < common::LEN {
        return Err(format!(
            "the common configuration is {} bytes, virtio 1.x defines {}",
            l.common.length,
            common::LEN
        ));
    }
    Ok(l)
}

/// The common configuration (virtio 4.1.4.3) over a register window.
pub(crate) struct Common<R: Regs> {
    pub regs: R,
}

impl<R: Regs> Common<R> {
    pub(crate) fn status(&self) -> u8 {
        self.regs.r8(common::DEVICE_STATUS)
    }
    pub(crate) fn set_status(&self, s: u8) {
        self.regs.w8(common::DEVICE_STATUS, s)
    }
    /// All 64 offered feature bits (two 32-bit selects).
    pub(crate) fn device_features(&self) -> u64 {
        self.regs.w32(common::DEVICE_FEATURE_SELECT, 0);
        let lo = self.regs.r32(common::DEVICE_FEATURE);
        self.regs.w32(common::DEVICE_FEATURE_SELECT, 1);
        let hi = self.regs.r32(common::DEVICE_FEATURE);
        u64::from(lo) | u64::from(hi) << 32
    }
    pub(crate) fn set_driver_features(&self, f: u64) {
        self.regs.w32(common::DRIVER_FEATURE_SELECT, 0);
        self.regs.w32(common::DRIVER_FEATURE, f as u32);
        self.regs.w32(common::DRIVER_FEATURE_SELECT, 1);
        self.regs.w32(common::DRIVER_FEATURE, (f >> 32) as u32);
    }
    pub(crate) fn num_queues(&self) -> u16 {
        self.regs.r16(common::NUM_QUEUES)
    }
    pub(crate) fn config_generation(&self) -> u8 {
        self.regs.r8(common::CONFIG_GENERATION)
    }
    pub(crate) fn no_config_vector(&self) {
        self.regs
            .w16(common::CONFIG_MSIX_VECTOR, spec::MSI_NO_VECTOR);
    }
    /// Select queue `q`; the queue fields below refer to it.
    pub(crate) fn select(&self, q: u16) {
        self.regs.w16(common::QUEUE_SELECT, q)
    }
    pub(crate) fn queue_size(&self) -> u16 {
        self.regs.r16(common::QUEUE_SIZE)
    }
    pub(crate) fn queue_enabled(&self) -> bool {
        self.regs.r16(common::QUEUE_ENABLE) == 1
    }
    pub(crate) fn queue_notify_off(&self) -> u16 {
        self.regs.r16(common::QUEUE_NOTIFY_OFF)
    }
    /// Program the selected queue: size, no MSI-X vector, the three part addresses
    /// (each 64-bit field as two 32-bit writes, low first: virtio 4.1.3.1), then enable
    /// it (virtio 4.1.4.3.2: every other field before `queue_enable`).
    pub(crate) fn program_queue(&self, size: u16, desc: u64, driver: u64, device: u64) {
        self.regs.w16(common::QUEUE_SIZE, size);
        self.regs
            .w16(common::QUEUE_MSIX_VECTOR, spec::MSI_NO_VECTOR);
        for (off, v) in [
            (common::QUEUE_DESC, desc),
            (common::QUEUE_DRIVER, driver),
            (common::QUEUE_DEVICE, device),
        ] {
            self.regs.w32(off, v as u32);
            self.regs.w32(off + 4, (v >> 32) as u32);
        }
        self.regs.w16(common::QUEUE_ENABLE, 1);
    }
}
