//! Rings in EAL memzones: `create` reserves `RG_<name>`, `lookup` attaches to it by name,
//! `free` releases it.

use crate::handle::{check_name, Backing};
use crate::layout::{MZ_PREFIX, RING_ALIGN};
use crate::{Error, Result, Ring, RingFlags};

impl<T: Copy> Ring<T> {
    /// Create a ring of `count` elements in a new EAL memzone `RG_<name>` on `socket`
    /// (`None`: any). The handle keeps a clone of `eal`, so the memory outlives it.
    ///
    /// # Safety
    /// If `flags` make a side single (`SP_ENQ`, `SC_DEQ`), at most one thread at a time,
    /// over every process and every handle to this ring, uses that side. With
    /// `MC_OPT_DEQ`, `T` has no padding (see [`Ring::init_in`]).
    pub unsafe fn create(
        eal: &eal::Eal,
        name: &str,
        count: u32,
        socket: Option<u32>,
        flags: RingFlags,
    ) -> Result<Ring<T>> {
        check_name(name)?;
        let len = Self::memsize(count, flags)?;
        crate::flags::sync_modes(flags).map_err(|why| Error::BadFlags {
            flags: flags.bits(),
            why,
        })?;
        let mz_name = format!("{MZ_PREFIX}{name}");
        let mz = eal
            .memzones()
            .reserve_aligned(
                &mz_name,
                len,
                socket,
                eal::MemzoneFlags::empty(),
                RING_ALIGN,
            )
            .map_err(|e| match e {
                eal::Error::Exists(_) => Error::Exists(name.to_string()),
                source => Error::Eal {
                    op: "reserve",
                    name: name.to_string(),
                    source,
                },
            })?;
        let mem = mz.as_ptr::<u8>();
        // SAFETY: the memzone is fresh, `len` bytes, 128-aligned and ours alone until
        // this returns; the single-side contract is forwarded to our caller.
        let r = unsafe { Ring::<T>::init_in(mem, mz.len() as usize, name, count, flags) };
        match r {
            Ok(mut r) => {
                r.backing = std::sync::Arc::new(Backing::Memzone {
                    eal: eal.clone(),
                    mz,
                });
                Ok(r)
            }
            Err(e) => {
                let _ = eal.memzones().free(&mz);
                Err(e)
            }
        }
    }

    /// Find the ring `name` (memzone `RG_<name>`) and attach to it, verifying magic,
    /// layout version and element size.
    ///
    /// # Safety
    /// The ring was created for this same `T` (only its size can be checked), and the
    /// single-side contract of [`Ring::create`] holds for the sides it was created with.
    pub unsafe fn lookup(eal: &eal::Eal, name: &str) -> Result<Ring<T>> {
        check_name(name)?;
        let mz = eal
            .memzones()
            .lookup(&format!("{MZ_PREFIX}{name}"))
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        // SAFETY: the memzone is mapped while `eal` lives (the handle keeps a clone);
        // `from_initialised` checks the header before trusting it; `T` per our contract.
        unsafe {
            Ring::<T>::from_initialised(
                mz.as_ptr::<u8>(),
                mz.len() as usize,
                Backing::Memzone {
                    eal: eal.clone(),
                    mz,
                },
            )
        }
    }

    /// Release the ring's memzone. Handles from `init_in`/`attach` are simply dropped.
    ///
    /// # Safety
    /// No other handle to this ring (clones, `lookup`s in this or other processes) is
    /// used afterwards: the memory goes back to the EAL heap.
    pub unsafe fn free(self) -> Result<()> {
        match &*self.backing {
            Backing::Caller => Ok(()),
            Backing::Memzone { eal, mz } => eal.memzones().free(mz).map_err(|source| Error::Eal {
                op: "free",
                name: self.name(),
                source,
            }),
        }
    }
}
