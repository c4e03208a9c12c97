//! The port life cycle: configure, queue setup, start, stop, close (control path).

use std::sync::atomic::Ordering;

use bitflags::Flags;
use mbuf::PktmbufPool;

use super::port::{
    check_no_handles, check_set_up, drop_queues, lock, with_port, PortCtl, QSlot, State,
};
use super::settings::{apply_mtu, check_mtu, update_link};
use crate::driver::QueueStats;
use crate::error::{Error, Result};
use crate::types::{DescLim, DevInfo, EthConf, MqMode, RxConf, TxConf, DEFAULT_MTU, MAX_QUEUES};

/// What the port is and can do.
pub fn dev_info(port: u16) -> Result<DevInfo> {
    with_port!(port, "get info of", |_s, c| {
        let i = c.driver.info();
        Ok(DevInfo {
            driver_name: c.driver.name(),
            device_name: c.name.clone(),
            if_name: i.if_name,
            max_rx_queues: i.max_rx_queues.min(MAX_QUEUES as u16),
            max_tx_queues: i.max_tx_queues.min(MAX_QUEUES as u16),
            rx_desc_lim: i.rx_desc_lim,
            tx_desc_lim: i.tx_desc_lim,
            capa: i.capa,
            rx_offload_capa: i.rx_offload_capa,
            tx_offload_capa: i.tx_offload_capa,
            flow_type_rss_offloads: i.flow_type_rss_offloads,
            max_rx_pktlen: i.max_rx_pktlen,
            min_mtu: i.min_mtu,
            max_mtu: i.max_mtu,
            default_mtu: DEFAULT_MTU,
            nb_rx_queues: c.nb_rxq,
            nb_tx_queues: c.nb_txq,
        })
    })
}

/// Configure `nb_rxq` RX and `nb_txq` TX queues and the port-wide settings. Only while
/// stopped. Queues above the new counts are released.
pub fn configure(port: u16, nb_rxq: u16, nb_txq: u16, conf: &EthConf) -> Result<()> {
    with_port!(port, "configure", |s, c| {
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
                why: format!("{nb_rxq} RX / {nb_txq} TX queues asked, driver {} takes 0..={mrx} / 0..={mtx} (not both 0)", c.driver.name()),
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
        check_no_handles(&s.rx, nb_rxq as usize, "configure", "RX", port)?;
        check_no_handles(&s.tx, nb_txq as usize, "configure", "TX", port)?;
        c.driver
            .configure(nb_rxq, nb_txq, conf)
            .map_err(|why| Error::Unsupported { port, why })?;
        drop_queues(&s.rx, nb_rxq as usize, "configure", "RX", port)?;
        drop_queues(&s.tx, nb_txq as usize, "configure", "TX", port)?;
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
        let i = c.driver.info();
        check_queue_setup(port, c, "RX", q, c.nb_rxq, nb_desc, i.rx_desc_lim)?;
        check_offloads(port, "RX queue offloads", conf.offloads, i.rx_offload_capa)?;
        let mut conf = conf.clone();
        conf.offloads |= c.conf.rx_offloads;
        let stats = QueueStats::new(&c.shared().rxq[q as usize]);
        install_queue(&s.rx[q as usize], port, "RX", q, stats, |st| {
            c.driver.rx_queue_setup(q, nb_desc, &conf, pool, st)
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
        let i = c.driver.info();
        check_queue_setup(port, c, "TX", q, c.nb_txq, nb_desc, i.tx_desc_lim)?;
        check_offloads(port, "TX queue offloads", conf.offloads, i.tx_offload_capa)?;
        let mut conf = conf.clone();
        conf.offloads |= c.conf.tx_offloads;
        let stats = QueueStats::new(&c.shared().txq[q as usize]);
        install_queue(&s.tx[q as usize], port, "TX", q, stats, |st| {
            c.driver.tx_queue_setup(q, nb_desc, &conf, st)
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

/// Put the queue `make` returns into slot `qs`, under the control claim: the old queue
/// is dropped first (its mbufs go back to their pools), and on error the slot stays
/// empty. Refused with [`Error::QueueBusy`] while a queue handle holds the slot.
fn install_queue<T: ?Sized>(
    qs: &QSlot<T>,
    port: u16,
    dir: &'static str,
    q: u16,
    stats: QueueStats,
    make: impl FnOnce(QueueStats) -> Result<Box<T>>,
) -> Result<()> {
    qs.claim_ctl().map_err(|_| Error::QueueBusy {
        op: if dir == "RX" {
            "set up RX queue of"
        } else {
            "set up TX queue of"
        },
        dir,
        port,
        queue: q,
    })?;
    // SAFETY: claimed above; nobody else touches the slot until `release`.
    unsafe { *qs.q.get() = None };
    let res = make(stats).map(|b| {
        // SAFETY: claimed.
        unsafe {
            *qs.q.get() = Some(b);
            *qs.stats.get() = Some(stats);
        }
    });
    qs.release();
    res
}

/// Start the port: bursts begin to move packets. Every configured queue must be set up.
pub fn start(port: u16) -> Result<()> {
    with_port!(port, "start", |s, c| {
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
        check_set_up(&s.rx, c.nb_rxq, "RX", port)?;
        check_set_up(&s.tx, c.nb_txq, "TX", port)?;
        c.driver.start()?;
        c.state = State::Started;
        // S1: Release pairs with S2 in the bursts.
        s.started.store(true, Ordering::Release);
        update_link(c, true);
        Ok(())
    })
}

/// Stop the port: bursts return 0 from now on (a burst already running may finish).
/// Queues keep their setup; `start` again resumes.
pub fn stop(port: u16) -> Result<()> {
    with_port!(port, "stop", |s, c| {
        if c.state != State::Started {
            return Ok(());
        }
        s.started.store(false, Ordering::Release);
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
    check_no_handles(&s.rx, 0, "close", "RX", port)?;
    check_no_handles(&s.tx, 0, "close", "TX", port)?;
    {
        let c = g.as_mut().expect("checked by lock");
        s.started.store(false, Ordering::Release);
        if c.state == State::Started {
            let _ = c.driver.stop();
            c.state = State::Configured;
        }
        drop_queues(&s.rx, 0, "close", "RX", port)?;
        drop_queues(&s.tx, 0, "close", "TX", port)?;
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
    let r = eal.memzone_free(&mz).map_err(|source| Error::Eal {
        op: "free",
        what: format!("memzone {}", mz.name()),
        source: Box::new(source),
    });
    eal::log_info!("pmd: port {port}: closed");
    r
}
