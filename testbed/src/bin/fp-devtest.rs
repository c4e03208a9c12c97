//! `fp-devtest`: a test tool for the device-access layer (`eal::device`), run inside the
//! QEMU guest of `testbed/` by the root `tests/testbed_*.rs`. Not a driver: the NVMe
//! admin queue below is the smallest that proves DMA works (one Identify Controller).
//!
//! ```text
//! fp-devtest [EAL args] -- regs ADDR          # print CAP and VS of an NVMe BAR 0
//! fp-devtest [EAL args] -- identify ADDR [--irq]
//! fp-devtest [EAL args] -- watch ADDR [SECS]  # read registers until the device goes away
//! fp-devtest [EAL args] -- reset ADDR
//! ```
//!
//! Exit codes: 0 done, 1 failure, 2 bad arguments, 3 the device went away (`watch`).
//! Register layout: NVM Express Base Specification 1.4, section 3.1 (controller
//! registers), 4.2/4.6 (submission/completion queue entries), 5.15 (Identify).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use eal::device::{Device, IrqKind, MmioRegion};
use eal::pci::PciAddr;
use eal::{Eal, Error};

/// NVMe controller registers (NVMe 1.4 section 3.1).
const CAP: u64 = 0x00;
const VS: u64 = 0x08;
const CC: u64 = 0x14;
const CSTS: u64 = 0x1c;
const AQA: u64 = 0x24;
const ASQ: u64 = 0x28;
const ACQ: u64 = 0x30;
const DOORBELLS: u64 = 0x1000;

const QDEPTH: u32 = 16;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match Eal::init(&argv) {
        Ok(x) => x,
        Err(Error::HelpRequested) => {
            println!(
                "usage: fp-devtest [EAL args] -- regs|identify|watch|reset ADDR [--irq] [SECS]"
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fp-devtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (Some(cmd), Some(addr)) = (rest.first(), rest.get(1)) else {
        eprintln!("fp-devtest: need a command and a PCI address after '--'");
        return ExitCode::from(2);
    };
    let addr: PciAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fp-devtest: {e}");
            return ExitCode::from(2);
        }
    };
    let dev = match Device::open(&eal, addr) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fp-devtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = match cmd.as_str() {
        "regs" => regs(&dev),
        "identify" => identify(&dev, rest.iter().any(|a| a == "--irq")),
        "watch" => {
            let secs = rest.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
            match watch(&dev, secs) {
                Err(e @ Error::DeviceGone { .. }) => {
                    eprintln!("fp-devtest: {e}");
                    return ExitCode::from(3);
                }
                r => r,
            }
        }
        "reset" => dev
            .reset()
            .map(|ok| println!("reset={}", if ok { "done" } else { "unsupported" })),
        other => {
            eprintln!("fp-devtest: unknown command '{other}'");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fp-devtest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn regs(dev: &Device) -> eal::Result<()> {
    let bar = dev.bar(0)?;
    let cap = bar.read64(CAP)?;
    let vs = bar.read32(VS)?;
    println!(
        "backend={:?} bar0_len={:#x} cap={cap:#018x} vs={vs:#010x} version={}.{}.{} mqes={} dstrd={}",
        dev.backend(),
        bar.len(),
        vs >> 16,
        (vs >> 8) & 0xff,
        vs & 0xff,
        (cap & 0xffff) + 1,
        (cap >> 32) & 0xf
    );
    Ok(())
}

fn wait_until(
    bar: &MmioRegion,
    what: &str,
    timeout: Duration,
    f: impl Fn(u32) -> bool,
) -> eal::Result<()> {
    let start = Instant::now();
    loop {
        let v = bar.read32(CSTS)?;
        if v == u32::MAX {
            return Err(Error::DeviceGone {
                addr: bar.name().into(),
                why: "CSTS reads all-ones".into(),
            });
        }
        if f(v) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::Unsupported {
                what: format!("wait for {what} (CSTS={v:#x}) within {timeout:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Write a 64-bit register as two 32-bit halves, low first (NVMe 1.4 section 3.1.1
/// allows 32-bit access to 64-bit registers).
fn write64(bar: &MmioRegion, off: u64, v: u64) -> eal::Result<()> {
    bar.write32(off, v as u32)?;
    bar.write32(off + 4, (v >> 32) as u32)
}

fn identify(dev: &Device, want_irq: bool) -> eal::Result<()> {
    let bar = dev.bar(0)?;
    let cap = bar.read64(CAP)?;
    let dstrd = (cap >> 32) & 0xf;
    let timeout = Duration::from_millis(500 * ((cap >> 24) & 0xff).max(1));
    dev.enable_bus_master()?;
    // Disable, then set up the admin queues.
    bar.write32(CC, 0)?;
    wait_until(&bar, "CSTS.RDY=0", timeout, |c| c & 1 == 0)?;
    let sq = dev.dma_alloc(64 * QDEPTH as usize)?;
    let cq = dev.dma_alloc(16 * QDEPTH as usize)?;
    let data = dev.dma_alloc(4096)?;
    let irqs = if want_irq {
        Some(dev.enable_irq(IrqKind::Msix, 1)?)
    } else {
        None
    };
    bar.write32(AQA, ((QDEPTH - 1) << 16) | (QDEPTH - 1))?;
    write64(&bar, ASQ, sq.iova().0)?;
    write64(&bar, ACQ, cq.iova().0)?;
    // CC: EN, CSS=NVM, MPS=0 (4 KiB), AMS=RR, IOSQES=6, IOCQES=4 (NVMe 1.4 3.1.5).
    bar.write32(CC, 1 | (6 << 16) | (4 << 20))?;
    wait_until(&bar, "CSTS.RDY=1", timeout, |c| c & 1 == 1)?;

    // Identify Controller: opcode 0x06, CID 1, PRP1 = data, CDW10.CNS = 1.
    let mut sqe = [0u32; 16];
    sqe[0] = 0x06 | (1 << 16);
    sqe[6] = data.iova().0 as u32;
    sqe[7] = (data.iova().0 >> 32) as u32;
    sqe[10] = 1;
    for (i, w) in sqe.iter().enumerate() {
        // SAFETY: slot 0 of the SQ buffer (64 bytes, in range); DMA memory is written
        // with volatile stores only.
        unsafe { std::ptr::write_volatile(sq.as_ptr().cast::<u32>().add(i), *w) };
    }
    // Pairs with the device's read of the SQ entry: the entry is in memory before the
    // doorbell write that makes the device fetch it.
    std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
    let stride = 4u64 << dstrd;
    bar.write32(DOORBELLS, 1)?; // SQ 0 tail = 1
    let start = Instant::now();
    let dw3 = loop {
        // SAFETY: CQ entry 0 (16 bytes) is in range; read volatile as the device writes it.
        let v = unsafe { std::ptr::read_volatile(cq.as_ptr().cast::<u32>().add(3)) };
        if (v >> 16) & 1 == 1 {
            break v;
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(Error::Unsupported {
                what: "complete Identify within 10 s (no completion: DMA not reaching memory?)"
                    .into(),
            });
        }
        std::hint::spin_loop();
    };
    // Pairs with the device's write of the completion: the data it DMA'd before posting
    // the phase bit is read only after seeing the phase bit.
    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
    bar.write32(DOORBELLS + stride, 1)?; // CQ 0 head = 1
    let status = (dw3 >> 17) & 0x7fff;
    let irq = match &irqs {
        Some(evs) => {
            evs[0].wait(5000)?;
            evs[0].take()?.to_string()
        }
        None => "off".to_string(),
    };
    if status != 0 {
        return Err(Error::Unsupported {
            what: format!("Identify Controller: status {status:#x}"),
        });
    }
    let mut id = [0u8; 64];
    data.read_bytes(0, &mut id);
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches([' ', '\0'])
            .to_string()
    };
    let vid = u16::from_le_bytes([id[0], id[1]]);
    println!(
        "backend={:?} vid={vid:#06x} serial='{}' model='{}' cid={} irq={irq}",
        dev.backend(),
        text(&id[4..24]),
        text(&id[24..64]),
        dw3 & 0xffff
    );
    if irqs.is_some() {
        dev.disable_irq(IrqKind::Msix)?;
    }
    bar.write32(CC, 0)?;
    wait_until(&bar, "CSTS.RDY=0", timeout, |c| c & 1 == 0)?;
    Ok(())
}

fn watch(dev: &Device, secs: u64) -> eal::Result<()> {
    let bar = dev.bar(0)?;
    println!("watching {} for {secs} s", dev.addr());
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        let vs = dev.read32_checked(&bar, VS)?;
        n += 1;
        if n.is_multiple_of(50) {
            dev.check_alive()?;
        }
        if vs == 0 {
            return Err(Error::DeviceGone {
                addr: dev.addr().to_string(),
                why: "VS reads 0".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("device stayed for {secs} s ({n} reads)");
    Ok(())
}
