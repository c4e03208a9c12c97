//! Port statistics: the shared per-queue counters plus what the driver counts itself.

use std::sync::atomic::Ordering;

use super::port::{with_port, PortCtl};
use crate::error::Result;
use crate::types::{EthStats, XStat};

/// Fold the device's dropped-frame count into `imissed`; returns the driver's xstats.
fn take_missed(c: &mut PortCtl) -> Vec<(String, u64)> {
    if c.remote.is_some() {
        // A secondary has no device to ask; the primary folds the drops in.
        return Vec::new();
    }
    let d = c.driver.stats();
    let sh = c.shared();
    sh.imissed.store(
        sh.imissed.load(Ordering::Relaxed) + d.missed,
        Ordering::Relaxed,
    );
    d.xstats
}

/// Basic statistics (control path; reads the shared counters).
pub fn stats_get(port: u16) -> Result<EthStats> {
    with_port!(port, "get stats of", |_s, c| {
        take_missed(c);
        Ok(c.shared().stats())
    })
}

/// Reset the basic statistics (and the per-queue ones).
pub fn stats_reset(port: u16) -> Result<()> {
    with_port!(port, "reset stats of", |_s, c| {
        take_missed(c);
        c.shared().reset();
        Ok(())
    })
}

fn xstats_all(port: u16) -> Result<Vec<(String, u64)>> {
    let (st, extra) = with_port!(port, "get xstats of", |_s, c| {
        let extra = take_missed(c);
        (c.shared().stats(), extra)
    });
    let mut v = vec![
        ("rx_good_packets".to_string(), st.ipackets),
        ("tx_good_packets".to_string(), st.opackets),
        ("rx_good_bytes".to_string(), st.ibytes),
        ("tx_good_bytes".to_string(), st.obytes),
        ("rx_missed_errors".to_string(), st.imissed),
        ("rx_errors".to_string(), st.ierrors),
        ("tx_errors".to_string(), st.oerrors),
        ("rx_mbuf_allocation_errors".to_string(), st.rx_nombuf),
    ];
    for (q, ((p, b), e)) in st
        .q_ipackets
        .iter()
        .zip(&st.q_ibytes)
        .zip(&st.q_errors)
        .enumerate()
    {
        v.push((format!("rx_q{q}_packets"), *p));
        v.push((format!("rx_q{q}_bytes"), *b));
        v.push((format!("rx_q{q}_errors"), *e));
    }
    for (q, (p, b)) in st.q_opackets.iter().zip(&st.q_obytes).enumerate() {
        v.push((format!("tx_q{q}_packets"), *p));
        v.push((format!("tx_q{q}_bytes"), *b));
    }
    v.extend(extra);
    Ok(v)
}

/// Names of the extended statistics; index i names `xstats()[i]`.
pub fn xstats_names(port: u16) -> Result<Vec<String>> {
    Ok(xstats_all(port)?.into_iter().map(|(n, _)| n).collect())
}

/// Extended statistics: the basic ones by name, per queue, and driver-specific ones.
pub fn xstats(port: u16) -> Result<Vec<XStat>> {
    Ok(xstats_all(port)?
        .into_iter()
        .enumerate()
        .map(|(i, (_, v))| XStat {
            id: i as u64,
            value: v,
        })
        .collect())
}

/// Extended statistics as (name, value) pairs.
pub fn xstats_by_name(port: u16) -> Result<Vec<(String, u64)>> {
    xstats_all(port)
}
