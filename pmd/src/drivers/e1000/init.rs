//! Device bring-up at probe: quiesce, reset, link up, MAC (SDM 14.3).

use std::time::{Duration, Instant};

use super::hw::{Hw, NAME};
use super::regs;
use crate::error::{Error, Result};

/// Quiesce, reset and set up the device (SDM 14.3 general configuration). Runs before
/// bus mastering is enabled, so rings left by a previous driver cannot be used.
pub(super) fn init_hw(hw: &Hw) -> Result<()> {
    // Stop receive and transmit first, and mask interrupts (SDM 14.5 advises masking
    // before a global reset).
    hw.wr(regs::IMC, u32::MAX);
    hw.wr(regs::RCTL, 0);
    hw.wr(regs::TCTL, 0);
    if hw.rd(regs::STATUS) == u32::MAX {
        hw.mark_gone("registers read all-ones at probe");
        return Err(hw.gone_error("probe"));
    }
    // Global reset; the bit clears itself (SDM 13.4.1: RST). Wait before touching
    // registers again.
    let ctrl = hw.rd(regs::CTRL);
    hw.wr(regs::CTRL, ctrl | regs::ctrl::RST);
    std::thread::sleep(Duration::from_millis(1));
    let t0 = Instant::now();
    loop {
        let c = hw.rd(regs::CTRL);
        if c == u32::MAX {
            hw.mark_gone("registers read all-ones during reset");
            return Err(hw.gone_error("reset"));
        }
        if c & regs::ctrl::RST == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_millis(100) {
            return Err(Error::PciProbe {
                addr: hw.addr.clone(),
                driver: NAME.into(),
                why: "CTRL.RST did not clear within 100 ms".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    hw.wr(regs::IMC, u32::MAX);
    let _ = hw.rd(regs::ICR); // clear pending causes (clear on read)

    // Some implementations (QEMU's) do not reset every register on CTRL.RST: put the ones
    // we rely on into a known state explicitly.
    hw.wr(regs::RCTL, 0);
    hw.wr(regs::TCTL, 0);
    for (base, len, head, tail) in [
        (regs::RDBAL, regs::RDLEN, regs::RDH, regs::RDT),
        (regs::TDBAL, regs::TDLEN, regs::TDH, regs::TDT),
    ] {
        hw.wr(base, 0);
        hw.wr(base + 4, 0);
        hw.wr(len, 0);
        hw.wr(head, 0);
        hw.wr(tail, 0);
    }
    hw.wr(regs::RDTR, 0);
    hw.wr(regs::RADV, 0);
    hw.wr(regs::TIDV, 0);
    // No flow control (SDM 14.3: write 0 to FCAL, FCAH, FCT, FCTTV when not used).
    for r in [regs::FCAL, regs::FCAH, regs::FCT, regs::FCTTV] {
        hw.wr(r, 0);
    }

    // Link: set link up, let the MAC follow the PHY's speed (SDM 14.3, 8.6.x: SLU with
    // ASDE for copper), no forced speed/duplex, no resets, no VLAN mode.
    let c = hw.rd(regs::CTRL);
    let clear = regs::ctrl::LRST
        | regs::ctrl::PHY_RST
        | regs::ctrl::ILOS
        | regs::ctrl::FRCSPD
        | regs::ctrl::FRCDPLX
        | regs::ctrl::VME;
    hw.wr(
        regs::CTRL,
        (c & !clear) | regs::ctrl::SLU | regs::ctrl::ASDE,
    );

    // Empty multicast table (SDM 14.4), then clear the statistics by reading them.
    for i in 0..regs::MTA_LEN {
        hw.wr(regs::MTA + 4 * i, 0);
    }
    let mut r = regs::STATS_FIRST;
    while r <= regs::STATS_LAST {
        let _ = hw.rd(r);
        r += 4;
    }
    Ok(())
}

/// Read one EEPROM word through EERD (SDM 13.4.4, 5.3.1).
fn eeprom_word(hw: &Hw, word: u32) -> Option<u16> {
    hw.wr(
        regs::EERD,
        (word << regs::eerd::ADDR_SHIFT) | regs::eerd::START,
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(10) {
        let v = hw.rd(regs::EERD);
        if v == u32::MAX {
            return None;
        }
        if v & regs::eerd::DONE != 0 {
            return Some((v >> regs::eerd::DATA_SHIFT) as u16);
        }
        std::hint::spin_loop();
    }
    None
}

/// The MAC from RAL0/RAH0, or from EEPROM words 0..3 (SDM 5.6.1 "Ethernet Address"),
/// which is then written to RAL0/RAH0.
pub(super) fn read_mac(hw: &Hw) -> Result<[u8; 6]> {
    if let Some(m) = regs::ra_to_mac(hw.rd(regs::ral(0)), hw.rd(regs::rah(0))) {
        if m != [0; 6] && m != [0xff; 6] {
            return Ok(m);
        }
    }
    let mut m = [0u8; 6];
    for w in 0..3u32 {
        let v = eeprom_word(hw, w).ok_or_else(|| Error::PciProbe {
            addr: hw.addr.clone(),
            driver: NAME.into(),
            why: "no valid receive address 0 and the EEPROM read (EERD) did not complete".into(),
        })?;
        m[2 * w as usize..2 * w as usize + 2].copy_from_slice(&v.to_le_bytes());
    }
    let (lo, hi) = regs::mac_to_ra(m);
    hw.wr(regs::ral(0), lo);
    hw.wr(regs::rah(0), hi);
    Ok(m)
}
