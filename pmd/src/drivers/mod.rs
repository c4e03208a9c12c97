//! The built-in drivers (private structs; the registry in [`crate::driver`] picks them).

pub mod af_packet;
pub mod af_xdp;
pub(crate) mod dma;
pub mod e1000;
pub mod netif;
pub mod null;
pub mod pcap;
pub(crate) mod pci_nic;
pub mod ring;
pub mod tap;
pub mod virtio;
