//! Ferroplane: a pure-Rust data-plane toolkit. This facade re-exports the member crates.

pub use eal;
pub use mbuf;
pub use mempool;
pub use nvme;
pub use pmd;
pub use ring;
