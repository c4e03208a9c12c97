//! Address newtypes. A [`VirtAddr`] is a CPU virtual address in this process (and, for
//! EAL memory, the same address in every process of the group); an [`Iova`] is the
//! address a device uses for DMA (physical address in PA mode, equal to the virtual
//! address in VA mode). They never mix silently: converting one into the other goes
//! through the memseg tables.

use std::fmt;

/// A virtual address in this process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(pub u64);

/// An I/O virtual address: what a device puts on the bus for DMA.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Iova(pub u64);

impl Iova {
    /// Marker for "no IOVA known" (DPDK's RTE_BAD_IOVA).
    pub const BAD: Iova = Iova(u64::MAX);

    /// True unless this is [`Iova::BAD`].
    pub fn is_valid(self) -> bool {
        self != Self::BAD
    }

    /// `self + off`.
    #[allow(clippy::should_implement_trait)] // offset by a byte count, not Iova + Iova
    pub fn add(self, off: u64) -> Iova {
        Iova(self.0 + off)
    }
}

impl VirtAddr {
    /// The address of a pointer.
    pub fn from_ptr<T>(p: *const T) -> Self {
        VirtAddr(p as usize as u64)
    }

    /// The address as a raw pointer.
    pub fn as_ptr<T>(self) -> *mut T {
        self.0 as usize as *mut T
    }

    /// `self + off`.
    #[allow(clippy::should_implement_trait)] // offset by a byte count, not VirtAddr + VirtAddr
    pub fn add(self, off: u64) -> VirtAddr {
        VirtAddr(self.0 + off)
    }

    /// Byte distance from `base` to `self` (`self >= base`).
    pub fn offset_from(self, base: VirtAddr) -> u64 {
        self.0 - base.0
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VA {:#x}", self.0)
    }
}

impl fmt::Display for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for Iova {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IOVA {self}")
    }
}

impl fmt::Display for Iova {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_valid() {
            write!(f, "{:#x}", self.0)
        } else {
            write!(f, "BAD")
        }
    }
}
