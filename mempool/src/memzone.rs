//! Memzone names and the EAL memory calls of a pool (the only place that reserves or
//! frees EAL memory for a pool or its backend).
//!
//! A pool `P` owns memzones `MP_P` (header and caches), `MP_P_<k>` (object chunks) and
//! `MPB_P` (backend state). Memzone names hold 31 bytes, so pool names are limited to
//! [`NAME_MAX`].

use eal::Eal;

use crate::{Error, Result};

/// Longest pool name. Memzone names hold 31 bytes; the longest we derive is the chunk
/// memzone `MP_<name>_<k>` (k < 100): 3 + 24 + 3 = 30.
pub const NAME_MAX: usize = 24;

/// Memzone name of a pool's header.
pub fn header_mz_name(pool: &str) -> String {
    format!("MP_{pool}")
}

pub(crate) fn chunk_mz_name(pool: &str, k: usize) -> String {
    format!("MP_{pool}_{k}")
}

/// Memzone name of a backend's state.
pub(crate) fn backend_mz_name(pool: &str) -> String {
    format!("MPB_{pool}")
}

pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX || !name.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(Error::BadName {
            name: name.into(),
            max: NAME_MAX,
        });
    }
    Ok(())
}

pub(crate) fn mz_reserve(
    eal: &Eal,
    name: &str,
    len: usize,
    socket: Option<u32>,
    align: usize,
) -> eal::Result<eal::memzone::Memzone> {
    eal.memzones().reserve_aligned(
        name,
        len,
        socket,
        eal::memzone::MemzoneFlags::empty(),
        align,
    )
}

pub(crate) fn mz_free(eal: &Eal, name: &str) -> eal::Result<()> {
    match eal.memzones().lookup(name) {
        Some(mz) => eal.memzones().free(&mz),
        None => Err(eal::Error::NotFound(name.into())),
    }
}
