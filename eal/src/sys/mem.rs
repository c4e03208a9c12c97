//! Memory, file-lock and mount system calls used by the memory subsystem, one safe
//! function per call. Everything here returns [`Result`]; nothing panics on an OS error.
//!
//! Calls that can invalidate memory other code may hold references into (`MAP_FIXED`
//! over an existing range, `munmap`) are `unsafe fn`s with a `# Safety` section.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use crate::addr::VirtAddr;
use crate::error::{Error, Result};

fn cstr(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Os {
        op: "use",
        what: p.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"),
    })
}

/// The base (small) page size of this machine.
pub fn base_page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// Reserve `len` bytes of address space with no access (`PROT_NONE`, anonymous,
/// `MAP_NORESERVE`), preferably at `hint`. The kernel treats `hint` as a hint only: the
/// returned address may differ.
pub fn mmap_reserve(hint: Option<VirtAddr>, len: u64) -> Result<VirtAddr> {
    let h = hint.map(|a| a.0 as usize).unwrap_or(0) as *mut libc::c_void;
    // SAFETY: no MAP_FIXED, so no existing mapping is touched; the kernel picks a free
    // range (trying `h` first). The result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            h,
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::last_os(
            "reserve",
            format!("{len} bytes of address space"),
        ));
    }
    Ok(VirtAddr(p as usize as u64))
}

/// Map `len` bytes of `fd` at `offset` read-write, `MAP_SHARED`, exactly at `addr`.
///
/// # Safety
/// `[addr, addr+len)` must lie inside an address range the caller owns (for example one
/// returned by [`mmap_reserve`]) and nothing may hold a reference into it: the old
/// mapping there is replaced.
pub unsafe fn mmap_fixed_shared(
    addr: VirtAddr,
    len: u64,
    fd: BorrowedFd<'_>,
    offset: u64,
) -> Result<()> {
    // SAFETY: forwarded caller contract (the range is theirs and unreferenced).
    unsafe {
        mmap_exact(
            addr,
            len,
            fd,
            offset,
            libc::MAP_FIXED,
            &format!("{len} bytes"),
        )
    }
}

/// Map `len` bytes of `fd` at `offset`, shared and read-write, exactly at `addr`
/// without replacing anything (`MAP_FIXED_NOREPLACE`): a range already in use fails
/// with `EEXIST`. `what` names the mapping in the error.
pub fn mmap_shared_noreplace(
    fd: BorrowedFd<'_>,
    addr: VirtAddr,
    len: u64,
    offset: u64,
    what: &str,
) -> Result<()> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
    unsafe { mmap_exact(addr, len, fd, offset, libc::MAP_FIXED_NOREPLACE, what) }
}

/// `mmap` shared and read-write at exactly `addr` with `flags` (`MAP_FIXED` or
/// `MAP_FIXED_NOREPLACE`). A mapping the kernel placed elsewhere (a kernel older than
/// 4.17 takes `MAP_FIXED_NOREPLACE` as a hint) is removed and reported.
///
/// # Safety
/// With `MAP_FIXED`, as [`mmap_fixed_shared`]; with `MAP_FIXED_NOREPLACE`, none.
unsafe fn mmap_exact(
    addr: VirtAddr,
    len: u64,
    fd: BorrowedFd<'_>,
    offset: u64,
    flags: libc::c_int,
    what: &str,
) -> Result<()> {
    // SAFETY: the caller's contract covers the flags; the result is checked.
    let p = unsafe {
        libc::mmap(
            addr.as_ptr(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | flags,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::last_os("map", format!("{what} at {addr}")));
    }
    if p as usize as u64 != addr.0 {
        // SAFETY: the mapping was just made by this call at `p` and nobody knows of it.
        let _ = unsafe { libc::munmap(p, len as usize) };
        return Err(Error::io(
            "map",
            format!("{what} at {addr}"),
            std::io::Error::other("the kernel placed the mapping elsewhere"),
        ));
    }
    Ok(())
}

/// Map `len` bytes of `fd` from `offset`, shared and read-write, wherever the kernel
/// likes. `what` names the mapping in the error.
pub fn mmap_shared_at(fd: BorrowedFd<'_>, len: u64, offset: u64, what: &str) -> Result<VirtAddr> {
    mmap_shared_near(fd, None, len, offset, what)
}

/// [`mmap_shared_at`] at `hint` if that range is free (no `MAP_FIXED`: the kernel
/// takes the hint only then, else picks another range).
pub fn mmap_shared_near(
    fd: BorrowedFd<'_>,
    hint: Option<VirtAddr>,
    len: u64,
    offset: u64,
    what: &str,
) -> Result<VirtAddr> {
    let h = hint.map_or(std::ptr::null_mut(), |a| a.as_ptr());
    // SAFETY: no MAP_FIXED, so no existing mapping is replaced; the kernel picks a fresh
    // range (trying `h` first). The result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            h,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::last_os("map", what.to_string()));
    }
    Ok(VirtAddr(p as usize as u64))
}

/// Map `len` bytes of a shared file from its start (see [`mmap_shared_at`]).
pub fn mmap_shared(len: u64, fd: BorrowedFd<'_>) -> Result<VirtAddr> {
    mmap_shared_at(fd, len, 0, &format!("{len} bytes of a shared file"))
}

/// Unmap `[addr, addr+len)`.
///
/// # Safety
/// Nothing may use the range afterwards; the caller owns the mapping.
pub unsafe fn munmap(addr: VirtAddr, len: u64) -> Result<()> {
    // SAFETY: the caller owns the range and guarantees no further use.
    let r = unsafe { libc::munmap(addr.as_ptr(), len as usize) };
    if r != 0 {
        return Err(Error::last_os("unmap", format!("{len} bytes at {addr}")));
    }
    Ok(())
}

/// Lock `[addr, addr+len)` into memory, faulting every page in.
pub fn mlock(addr: VirtAddr, len: u64) -> Result<()> {
    // SAFETY: mlock does not change the contents or validity of the range; an unmapped
    // range only yields ENOMEM.
    let r = unsafe { libc::mlock(addr.as_ptr::<libc::c_void>(), len as usize) };
    if r != 0 {
        return Err(Error::last_os(
            "lock",
            format!("{len} bytes at {addr} in memory"),
        ));
    }
    Ok(())
}

/// `flock(fd, LOCK_EX|LOCK_NB)` or `LOCK_SH|LOCK_NB`. Returns `Ok(false)` if another open
/// file description holds a conflicting lock.
pub fn try_flock(fd: BorrowedFd<'_>, exclusive: bool, what: &Path) -> Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    // SAFETY: flock on a valid borrowed fd has no memory-safety preconditions.
    let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(Error::io("lock", what.display().to_string(), e))
}

/// `fallocate(fd, 0, off, len)`: allocate backing store now (hugetlbfs: take the pages
/// from the pool, so a later fault cannot SIGBUS).
pub fn fallocate(fd: BorrowedFd<'_>, off: u64, len: u64, what: &Path) -> Result<()> {
    // SAFETY: fallocate on a valid fd has no memory-safety preconditions.
    let r = unsafe { libc::fallocate(fd.as_raw_fd(), 0, off as libc::off_t, len as libc::off_t) };
    if r != 0 {
        return Err(Error::last_os("allocate", what.display().to_string()));
    }
    Ok(())
}

/// Filesystem type magic and block size of the filesystem holding `path` (`statfs`).
pub fn statfs(path: &Path) -> Result<(i64, u64)> {
    let c = cstr(path)?;
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if r != 0 {
        return Err(Error::last_os(
            "stat filesystem",
            path.display().to_string(),
        ));
    }
    #[allow(clippy::unnecessary_cast)]
    Ok((st.f_type as i64, st.f_bsize as u64))
}

/// hugetlbfs's filesystem magic (linux/magic.h).
pub const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// `mount -t hugetlbfs nodev DIR [-o pagesize=N]`.
pub fn mount_hugetlbfs(dir: &Path, page_size: Option<u64>) -> Result<()> {
    let target = cstr(dir)?;
    let src = CString::new("nodev").expect("static");
    let fstype = CString::new("hugetlbfs").expect("static");
    let data = page_size.map(|p| CString::new(format!("pagesize={p}")).expect("digits"));
    let dptr = data
        .as_ref()
        .map(|d| d.as_ptr() as *const libc::c_void)
        .unwrap_or(std::ptr::null());
    // SAFETY: all pointers are valid NUL-terminated strings or null for `data`.
    let r = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, dptr) };
    if r != 0 {
        return Err(Error::last_os(
            "mount",
            format!("hugetlbfs at {}", dir.display()),
        ));
    }
    Ok(())
}

/// `umount(dir)`.
pub fn umount(dir: &Path) -> Result<()> {
    let target = cstr(dir)?;
    // SAFETY: valid C string.
    let r = unsafe { libc::umount(target.as_ptr()) };
    if r != 0 {
        return Err(Error::last_os("unmount", dir.display().to_string()));
    }
    Ok(())
}

/// Effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

/// NUMA node of the page at `addr` (`get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR)`). `Ok(None)`
/// where the kernel has no NUMA support.
pub fn node_of_addr(addr: VirtAddr) -> Result<Option<u32>> {
    const MPOL_F_NODE: libc::c_ulong = 1;
    const MPOL_F_ADDR: libc::c_ulong = 2;
    let mut node: libc::c_int = -1;
    // SAFETY: `node` is a valid out pointer; nodemask is null with maxnode 0, which the
    // kernel accepts; `addr` is only looked up, not dereferenced by us.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut node as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_ulong>(),
            0 as libc::c_ulong,
            addr.0 as usize,
            MPOL_F_NODE | MPOL_F_ADDR,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Ok(None);
        }
        return Err(Error::io("query", format!("NUMA node of {addr}"), e));
    }
    Ok(u32::try_from(node).ok())
}

/// Set this thread's memory policy: `Some(n)` binds new allocations to node `n`
/// (`MPOL_BIND`), `None` restores the default policy.
pub fn set_mempolicy(node: Option<u32>) -> Result<()> {
    const MPOL_DEFAULT: libc::c_int = 0;
    const MPOL_BIND: libc::c_int = 2;
    let mut mask = [0 as libc::c_ulong; 16];
    let (mode, ptr, maxnode) = match node {
        Some(n) => {
            let bits = libc::c_ulong::BITS;
            if n as usize >= mask.len() * bits as usize {
                return Err(Error::io(
                    "bind",
                    format!("memory to node {n}"),
                    std::io::Error::other("node id too large"),
                ));
            }
            mask[(n / bits) as usize] |= 1 << (n % bits);
            (
                MPOL_BIND,
                mask.as_ptr(),
                (mask.len() as u32 * bits + 1) as libc::c_ulong,
            )
        }
        None => (MPOL_DEFAULT, std::ptr::null(), 0),
    };
    // SAFETY: `ptr` is null or points at `mask`, which outlives the call; maxnode matches.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) && node.is_none() {
            return Ok(());
        }
        return Err(Error::io(
            "set",
            format!("memory policy (node {node:?})"),
            e,
        ));
    }
    Ok(())
}

/// True if a process with this pid exists (`kill(pid, 0)`; EPERM counts as existing).
pub fn process_exists(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reserve exactly `[addr, addr+len)` with no access (`PROT_NONE`, anonymous,
/// `MAP_FIXED_NOREPLACE`): a secondary process claims the primary's virtual range. Fails
/// with [`Error::AddressTaken`] if any part of the range is already mapped (`EEXIST`, or a
/// kernel older than 4.17 that ignores the flag and placed the mapping elsewhere).
pub fn mmap_reserve_exact(addr: VirtAddr, len: u64) -> Result<()> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the result is
    // checked against MAP_FAILED and against the requested address.
    let p = unsafe {
        libc::mmap(
            addr.as_ptr(),
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Err(Error::AddressTaken {
                addr: addr.0,
                end: addr.0 + len,
            });
        }
        return Err(Error::io(
            "reserve",
            format!("{len} bytes of address space at {addr}"),
            e,
        ));
    }
    if p as usize as u64 != addr.0 {
        // An old kernel treated the flag as a hint: give the range back.
        // SAFETY: `p` is the fresh anonymous mapping we just made, unreferenced.
        unsafe { libc::munmap(p, len as usize) };
        return Err(Error::AddressTaken {
            addr: addr.0,
            end: addr.0 + len,
        });
    }
    Ok(())
}

/// `flock(fd, LOCK_UN)`: drop this open file description's lock.
pub fn funlock(fd: BorrowedFd<'_>, what: &Path) -> Result<()> {
    // SAFETY: flock on a valid borrowed fd has no memory-safety preconditions.
    let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
    if r != 0 {
        return Err(Error::last_os("unlock", what.display().to_string()));
    }
    Ok(())
}
