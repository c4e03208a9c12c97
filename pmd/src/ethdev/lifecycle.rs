//! The port life cycle: configure, queue setup, start, stop, close (control path).

use std::sync::atomic::Ordering;

use bitflags::Flags;
use mbuf::PktmbufPool;

use super::port::{lock, with_port, PortCtl, State};
use super::settings::{apply_mtu, check_mtu, update_link};
use crate::driver::{QueueStats, RxSetup, TxSetup};
use crate::error::{Error, Result};
use crate::types::{DescLim, DevInfo, EthConf, MqMode, RxConf, TxConf, DEFAULT_MTU, MAX_QUEUES};

/// What the port is and can do.
pub fn dev_info(port: u16) -> Result<DevInfo> {
    with_port!(port, "get info of", |_s, c| {
        let i = c.driver.info();
        Ok(DevInfo {
            device_name: c.name.clone(),
            max_rx_queues: i.max_rx_queues.min(MAX_QUEUES as u16),
            max_tx_queues: i.max_tx_queues.min(MAX_QUEUES as u16),
            default_mtu: DEFAULT_MTU,
            nb_rx_queues: c.nb_rxq,
            nb_tx_queues: c.nb_txq,
            ..i
        })
    })
}

/// Configure `nb_rxq` RX and `nb_txq` TX queues and the port-wide settings. Only while
/// stopped. Queues above the new counts are released.
pub fn configure(port: u16, nb_rxq: u16, nb_txq: u16, conf: &EthConf) -> Result<()> {
    with_port!(port, "configure", |s, c| {
        c.primary_only("configure", port)?;
        if c.state == State::Started {
            return Err(Error::BadState {
                op: "configure",
                port,
                why: "port is started; stop it first".into(),
            });
        }
        let i = c.driver.info();
        let (mrx, mtx) = (
            i.max_rx_queues.min(MAX_QUEUES as u16),
            i.max_tx_queues.min(MAX_QUEUES as u16),
        );
        if nb_rxq > mrx || nb_txq > mtx || (nb_rxq == 0 && nb_txq == 0) {
            return Err(Error::Unsupported {
                port,
                why: format!("{nb_rxq} RX / {nb_txq} TX queues asked, driver {} takes 0..={mrx} / 0..={mtx} (not both 0)", i.driver_name),
            });
        }
        check_offloads(port, "RX offloads", conf.rx_offloads, i.rx_offload_capa)?;
        check_offloads(port, "TX offloads", conf.tx_offloads, i.tx_offload_capa)?;
        if conf.mq_mode == MqMode::Rss {
            let bad = conf.rss.hf - i.flow_type_rss_offloads;
            if !bad.is_empty() || i.flow_type_rss_offloads.is_empty() {
                return Err(Error::Unsupported {
                    port,
                    why: format!(
                        "RSS hash {:?} not supported (capable of {:?})",
                        conf.rss.hf, i.flow_type_rss_offloads
                    ),
                });
            }
            if conf.rss.key.is_some() {
                return Err(Error::Unsupported {
                    port,
                    why: "driver takes no RSS key".into(),
                });
            }
        }
        if let Some(m) = conf.mtu {
            check_mtu(port, &i, m)?;
        }
        // Queues above the new counts are released below: refuse before changing
        // anything if a handle holds one of them.
        s.rxq(port).check_no_handles(nb_rxq as usize, "configure")?;
        s.txq(port).check_no_handles(nb_txq as usize, "configure")?;
        c.driver
            .configure(nb_rxq, nb_txq, conf)
            .map_err(|why| Error::Unsupported { port, why })?;
        s.rxq(port).drop_from(nb_rxq as usize, "configure")?;
        s.txq(port).drop_from(nb_txq as usize, "configure")?;
        if let Some(m) = conf.mtu {
            apply_mtu(s, c, m)?;
        }
        c.nb_rxq = nb_rxq;
        c.nb_txq = nb_txq;
        c.conf = conf.clone();
        c.state = State::Configured;
        c.shared()
            .nb_rxq
            .store(u32::from(nb_rxq), Ordering::Relaxed);
        c.shared()
            .nb_txq
            .store(u32::from(nb_txq), Ordering::Relaxed);
        Ok(())
    })
}

fn check_desc(port: u16, dir: &'static str, q: u16, n: u16, l: DescLim) -> Result<()> {
    if n < l.min || n > l.max || (l.align > 1 && !n.is_multiple_of(l.align)) {
        return Err(Error::BadQueue {
            op: "set up",
            dir,
            port,
            queue: q,
            why: format!(
                "{n} descriptors, driver takes {}..={} in multiples of {}",
                l.min, l.max, l.align
            ),
        });
    }
    Ok(())
}

/// Refuse offloads outside the driver's capabilities (`what` names them in the error).
fn check_offloads<F: Flags + Copy + std::fmt::Debug>(
    port: u16,
    what: &str,
    asked: F,
    capa: F,
) -> Result<()> {
    let bad = asked.difference(capa);
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::Unsupported {
        port,
        why: format!("{what} {bad:?} not supported (capable of {capa:?})"),
    })
}

/// Set up RX queue `q` with `nb_desc` descriptors, filling from `pool`. `socket` is a
/// placement hint (software drivers ignore it). Only while stopped and configured.
pub fn rx_queue_setup(
    port: u16,
    q: u16,
    nb_desc: u16,
    socket: Option<u32>,
    conf: &RxConf,
    pool: &PktmbufPool,
) -> Result<()> {
    let _ = socket;
    with_port!(port, "set up RX queue of", |s, c| {
        c.primary_only("set up an RX queue of", port)?;
        let i = c.driver.info();
        check_queue_setup(port, c, "RX", q, c.nb_rxq, nb_desc, i.rx_desc_lim)?;
        check_offloads(port, "RX queue offloads", conf.offloads, i.rx_offload_capa)?;
        let mut conf = conf.clone();
        conf.offloads |= c.conf.rx_offloads;
        let stats = QueueStats::new(&c.shared().rxq[q as usize]);
        // SAFETY: the shared block is EAL memory of this port (see `SharedPtr`); the pool
        // name is written under the control lock and read by a secondary only after the
        // primary granted it the queue (an IPC round trip after this write).
        unsafe {
            let sh = c.shared.0.as_ptr();
            crate::shared::put_cstr(&mut (*sh).rx_pool[q as usize], pool.mempool().name());
        }
        s.rxq(port).install(q, stats, |st| {
            c.driver.rx_queue_setup(RxSetup {
                queue: q,
                nb_desc,
                conf: &conf,
                pool,
                stats: st,
            })
        })
    })
}

/// Set up TX queue `q` with `nb_desc` descriptors. Only while stopped and configured.
pub fn tx_queue_setup(
    port: u16,
    q: u16,
    nb_desc: u16,
    socket: Option<u32>,
    conf: &TxConf,
) -> Result<()> {
    let _ = socket;
    with_port!(port, "set up TX queue of", |s, c| {
        c.primary_only("set up a TX queue of", port)?;
        let i = c.driver.info();
        check_queue_setup(port, c, "TX", q, c.nb_txq, nb_desc, i.tx_desc_lim)?;
        check_offloads(port, "TX queue offloads", conf.offloads, i.tx_offload_capa)?;
        let mut conf = conf.clone();
        conf.offloads |= c.conf.tx_offloads;
        let stats = QueueStats::new(&c.shared().txq[q as usize]);
        s.txq(port).install(q, stats, |st| {
            c.driver.tx_queue_setup(TxSetup {
                queue: q,
                nb_desc,
                conf: &conf,
                stats: st,
            })
        })
    })
}

/// What both queue setups check first: the port is configured and stopped, the queue id
/// is below the configured count `nb_q`, the descriptor count is within the driver's `lim`.
fn check_queue_setup(
    port: u16,
    c: &PortCtl,
    dir: &'static str,
    q: u16,
    nb_q: u16,
    nb_desc: u16,
    lim: DescLim,
) -> Result<()> {
    if c.state != State::Configured {
        return Err(Error::BadState {
            op: if dir == "RX" {
                "set up an RX queue of"
            } else {
                "set up a TX queue of"
            },
            port,
            why: "port must be configured and stopped".into(),
        });
    }
    if q >= nb_q {
        return Err(Error::BadQueue {
            op: "set up",
            dir,
            port,
            queue: q,
            why: format!("port has {nb_q} {dir} queues"),
        });
    }
    check_desc(port, dir, q, nb_desc, lim)
}

/// Start the port: bursts begin to move packets. Every configured queue must be set up.
pub fn start(port: u16) -> Result<()> {
    with_port!(port, "start", |s, c| {
        c.primary_only("start", port)?;
        match c.state {
            State::Started => return Ok(()),
            State::Attached => {
                return Err(Error::BadState {
                    op: "start",
                    port,
                    why: "port is not configured".into(),
                })
            }
            State::Configured => {}
        }
        s.rxq(port).check_set_up(c.nb_rxq)?;
        s.txq(port).check_set_up(c.nb_txq)?;
        c.driver.start()?;
        c.state = State::Started;
        // S1: Release pairs with S2 in the bursts (and, for the shared word, with the
        // gate of secondaries' queues).
        s.started.store(true, Ordering::Release);
        c.shared().started.store(1, Ordering::Release);
        update_link(c, true);
        Ok(())
    })
}

/// Stop the port: bursts return 0 from now on (a burst already running may finish).
/// Queues keep their setup; `start` again resumes.
pub fn stop(port: u16) -> Result<()> {
    with_port!(port, "stop", |s, c| {
        c.primary_only("stop", port)?;
        if c.state != State::Started {
            return Ok(());
        }
        s.started.store(false, Ordering::Release);
        c.shared().started.store(0, Ordering::Release);
        c.state = State::Configured;
        let r = c.driver.stop();
        update_link(c, false);
        r
    })
}

/// Close the port: stop it, release every queue (packets held by the driver go back to
/// their pools), the driver and the shared memzone, and free the id. Refused while a
/// queue handle is alive.
pub fn close(port: u16) -> Result<()> {
    let (s, mut g) = lock(port, "close")?;
    if g.as_ref().expect("checked by lock").remote.is_some() {
        return detach(port, s, g);
    }
    s.rxq(port).check_no_handles(0, "close")?;
    s.txq(port).check_no_handles(0, "close")?;
    {
        let c = g.as_mut().expect("checked by lock");
        s.started.store(false, Ordering::Release);
        c.shared().started.store(0, Ordering::Release);
        if c.state == State::Started {
            let _ = c.driver.stop();
            c.state = State::Configured;
        }
        s.rxq(port).drop_from(0, "close")?;
        s.txq(port).drop_from(0, "close")?;
        c.driver.close();
    }
    let c = g.take().expect("checked by lock");
    let PortCtl {
        eal,
        mz,
        shared: sp,
        driver,
        ..
    } = c;
    drop(driver);
    // SAFETY: the memzone is still mapped (eal alive); clearing the magic tells readers
    // in other processes that the port is gone.
    unsafe { (*sp.0.as_ptr()).magic = 0 };
    let r = eal.memzones().free(&mz).map_err(|source| Error::Eal {
        op: "free",
        what: format!("memzone {}", mz.name()),
        source: Box::new(source),
    });
    eal::log_info!("pmd: port {port}: closed");
    r
}

/// `close` in a secondary: give every claimed queue back and forget the port; the port
/// itself (memzone, driver, queues in the primary) stays the primary's.
fn detach(
    port: u16,
    s: &'static super::port::PortSlot,
    mut g: std::sync::MutexGuard<'static, Option<PortCtl>>,
) -> Result<()> {
    s.rxq(port).check_no_handles(0, "close")?;
    s.txq(port).check_no_handles(0, "close")?;
    let c = g.as_mut().expect("checked by caller");
    let mut first_err = None;
    for (rx, q) in c.claimed.clone() {
        if let Err(e) = super::mp::release_locked(port, s, c, rx, q) {
            first_err.get_or_insert(e);
        }
    }
    s.started.store(false, Ordering::Release);
    *g = None;
    eal::log_info!("pmd: port {port}: detached");
    first_err.map_or(Ok(()), Err)
}
