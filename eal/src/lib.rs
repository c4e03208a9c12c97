//! Ferroplane's environment abstraction layer (EAL).
//!
//! (Module docs with the contracts are filled in as the modules land.)

pub mod addr;
pub mod args;
pub mod error;
pub mod heap;
pub mod hugepage;
pub mod lcore;
pub mod log;
pub mod memory;
pub mod memzone;
pub mod pci;
pub mod runtime;
pub mod sys;
pub mod timer;

pub use addr::{Iova, VirtAddr};
pub use error::{Error, Result};
