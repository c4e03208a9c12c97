//! Ferroplane pmd: the ethdev layer (ports, queues, bursts, stats, link) and software
//! poll-mode drivers, in the class of DPDK's `rte_ethdev` and its `net_null`,
//! `net_ring`, `net_af_packet`, `net_af_xdp`, `net_tap` and `net_pcap` drivers.
//!
//! # Ports and drivers
//!
//! A port is a `u16` id (at most [`MAX_PORTS`], ids are process-wide and reused after
//! [`close`]) bound to one driver. Ports come from
//! * `--vdev name,key=value,...` strings: [`probe_vdevs`] makes one port per `--vdev` the
//!   EAL was given, [`vdev_create`] one from a string. The driver is the one whose name
//!   prefixes the device name (`net_null0` → `net_null`; `eth_*` aliases too). Unknown
//!   names and keys are refused with an error that names them.
//! * PCI drivers registered with [`register_pci_driver`] (a name, an id table of
//!   (vendor, device), a probe): [`probe_pci`] walks `eal.pci().devices()`.
//! * [`eth_from_rings`]: a `net_ring` port over existing named rings.
//!
//! Drivers implement the small [`EthDriver`] trait (`info`, `link`, `stats`, queue
//! setup, start/stop; device settings behind the optional [`DevControl`]) and hand out
//! per-queue objects ([`RxQueueOps::rx_burst`], [`TxQueueOps::tx_burst`]); their structs
//! are private to their modules. The [`registry`] is the factory that picks one by vdev
//! name prefix or PCI id.
//!
//! # Modules
//!
//! One way, bottom up: `types`, `error`, [`sys`] (every system call), [`shared`] (the
//! per-port memzone), `vdev` (argument strings) ← [`driver`] (the trait and registry
//! entry types) ← the drivers (`null`, `ring`, `af_packet`, `af_xdp`, `tap`, `pcap`, `e1000`,
//! with `netif` shared by the kernel-interface ones) ← [`registry`] ← `ethdev` (port
//! table `port`, data path `burst`, `settings`, `stats`, `lifecycle`, `create`).
//!
//! | driver | keys |
//! |---|---|
//! | `net_null` | `size` (64), `copy` (0), `no-rx` (0) |
//! | `net_ring` | none: creates 16 rings `ETH_RXTX<i>_<name>` (1024, SP/SC); TX queue i feeds RX queue i (DPDK's CREATE mode) |
//! | `net_af_packet` | `iface` (required), `qpairs` (1), `blocksz` (page), `framesz` (2048), `framecnt` (512), `qdisc_bypass` (0), `tpacket_version` (3: V3 RX block rings where the kernel has them, else V2; 2: V2 always) |
//! | `net_af_xdp` | `iface` (required), `start_queue` (0), `queue_count` (1), `shared_umem` (0; 1 refused), `busy_budget` (0: off), `force_copy` (0), `zero_copy` (0; 1: zero-copy or fail) |
//! | `net_tap` | `iface` (`dtap<port>`), `mac` |
//! | `net_pcap` | `rx_pcap`, `tx_pcap` (repeatable, one queue each), `rx_iface`, `tx_iface`, `iface`, `infinite_rx` |
//!
//! # Control path and data path
//!
//! * **Control path** (any thread, serialised per port by a mutex; may make system
//!   calls, allocate, sleep): probe, [`dev_info`], [`configure`], [`rx_queue_setup`],
//!   [`tx_queue_setup`], [`start`], [`stop`], [`close`], stats, link, promiscuous,
//!   MAC, MTU, [`rx_queue`]/[`tx_queue`].
//! * **Data path** (per lcore, no lock, no allocation beyond the `Vec` the caller
//!   passes): [`rx_burst`]/[`tx_burst`] by (port, queue), or through a queue handle
//!   [`RxQueue`]/[`TxQueue`] taken once. Each queue is used by one thread at a time: the
//!   (port, queue) functions take the queue with one uncontended atomic compare-exchange
//!   per call (a queue in use by another thread or held by a handle makes them return
//!   0); a handle holds the queue for its life and bursts through it touch no shared
//!   word except the port's started flag. Handles are `Send`, not `Clone`.
//! * Ownership moves in batches: `rx_burst` appends received mbufs to the caller's
//!   `Vec<Mbuf>`; `tx_burst` takes packets from the front of the caller's `Vec<Mbuf>`,
//!   removes the ones it consumed and leaves the rest there, in order, still owned by the
//!   caller. A burst on a stopped port, an unknown port or queue, or a queue that is not
//!   set up returns 0 and moves nothing. Nothing here panics on such input.
//! * MTU policy: frames longer than MTU + 14 (Ethernet header) given to `tx_burst` are
//!   freed, counted in `oerrors`, and included in the returned count (consumed).
//! * `stop` makes later bursts return 0; a burst already running may finish. `close`
//!   (and `configure`/queue setup, which replace queues) drop the driver's queues, which
//!   return every mbuf they hold to its pool; they fail with [`Error::QueueBusy`] while
//!   a handle is alive.
//!
//! # Threads inside drivers
//!
//! None. Every driver is poll-mode: bursts are nonblocking system calls (AF_PACKET,
//! AF_XDP and TAP: ring memory shared with the kernel, nonblocking `sendto`/`recvfrom`
//! wakeups, or nonblocking `read`/`writev`; pcap: file I/O on
//! the polling thread) or plain memory (null, ring).
//!
//! # Shared memory
//!
//! Each port owns the EAL memzone `ETH_P<port>` ([`shared::PortShared`], `#[repr(C)]`,
//! magic + version, no pointers): name, driver, MAC, link, MTU, queue counts and the
//! per-queue counters (one 128-byte block per queue, written only by the lcore polling
//! the queue with `Relaxed` stores). [`shared::read_port_stats`] reads it from any
//! process of the EAL group (a secondary's `proc-info`) with nothing but the memzone.
//! `net_ring` rings are EAL memzones too (`RG_ETH_RXTX<i>_<name>`); mbufs travel through
//! them as EAL virtual addresses, valid in every process of the group.

pub mod driver;
mod drivers;
mod error;
mod ethdev;
pub mod pcapfile;
pub mod registry;
pub mod shared;
pub mod sys;
mod types;
mod vdev;

pub use driver::{
    DevControl, DriverStats, EthDriver, PciDriver, PciId, QueueStats, RxQueueOps, RxSetup, Tally,
    TxQueueOps, TxSetup, VdevCtx, VdevDriver,
};
pub use error::{Error, Result};
pub use ethdev::{
    allmulticast_get, allmulticast_set, attach_port, close, configure, dev_info, eth_from_rings,
    link_get, link_wait_up, mac_addr_get, mac_addr_set, mtu_get, mtu_set, port_by_name, port_name,
    ports, probe_pci, probe_pci_devices, probe_vdevs, promiscuous_get, promiscuous_set, rx_burst,
    rx_queue, rx_queue_setup, set_link_up, start, stats_get, stats_reset, stop, tx_burst, tx_queue,
    tx_queue_setup, vdev_create, xstats, xstats_by_name, xstats_names, RxQueue, TxQueue,
};
pub use registry::{match_pci_driver, register_pci_driver, unregister_pci_driver};
pub use types::*;
pub use vdev::VdevArgs;
