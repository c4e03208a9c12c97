//! The ethdev API over the port table. Layered one way:
//! [`port`] (slots, claim words, control state) ← [`burst`] (data path) and
//! [`settings`] (link, modes, MAC, MTU) ← [`lifecycle`] (configure, queue setup,
//! start/stop/close) and [`stats`] ← [`create`] (probe, attach, lookups).

mod burst;
mod create;
mod lifecycle;
mod mp;
mod port;
mod settings;
mod stats;

pub use burst::{rx_burst, rx_queue, tx_burst, tx_queue, RxQueue, TxQueue};
pub use create::{
    attach_port, eth_from_rings, port_by_name, port_name, ports, probe_pci, probe_pci_devices,
    probe_vdevs, vdev_create,
};
pub use lifecycle::{close, configure, dev_info, rx_queue_setup, start, stop, tx_queue_setup};
pub use mp::{attach_secondary, queue_claim, queue_release, reclaim_dead_queues, Reclaimed};
pub use settings::{
    allmulticast_get, allmulticast_set, link_get, link_wait_up, mac_addr_get, mac_addr_set,
    mtu_get, mtu_set, promiscuous_get, promiscuous_set, set_link_up,
};
pub use stats::{stats_get, stats_reset, xstats, xstats_by_name, xstats_names};
