//! Shmem files from user space (Linux's `mm/memfd.c`, the file side of
//! `mm/shmem.c`, `fs/open.c`'s truncate and fallocate): `memfd_create`,
//! `write`/`pwrite64` into a shmem file, `ftruncate`, `fallocate`,
//! `fcntl(F_ADD_SEALS / F_GET_SEALS)` and `mmap` of a shmem file. The
//! object and its rules (sizes, seals, truncation) are
//! [`mm::shmem::ShmemRef`]'s; this module checks the descriptor side
//! (access modes, errno order) and walks the address spaces a truncation
//! unmaps from.
//!
//! # Context
//!
//! Process context, preemptible; no lock held on entry. A truncation
//! takes each address space's mmap lock for read in turn (never two at
//! once).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;

use mm::errno::Errno;
use mm::shmem::{F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_SEAL, F_SEAL_WRITE, ShmemRef};
use mm::vm::{MapFlags, Prot};

use super::{EBADF, ESPIPE, MAX_RW_COUNT, SysResult, mm_of};
use crate::process::{self, OpenData, OpenFile, Process, ShmemFile};
use crate::uaccess::{copy_from_user, strncpy_from_user};

const MFD_CLOEXEC: u64 = 0x1;
const MFD_ALLOW_SEALING: u64 = 0x2;
const MFD_HUGETLB: u64 = 0x4;
const MFD_NOEXEC_SEAL: u64 = 0x8;
const MFD_EXEC: u64 = 0x10;
const MFD_ALL_FLAGS: u64 =
    MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
/// `NAME_MAX - strlen("memfd:")`.
const MFD_NAME_MAX_LEN: usize = 255 - 6;

const O_RDWR: u32 = 2;
const O_APPEND: u32 = 0o2000;
const O_LARGEFILE: u32 = 0o100000;
const S_IFREG: u32 = 0o100000;

const FALLOC_FL_KEEP_SIZE: u64 = 0x1;
const FALLOC_FL_PUNCH_HOLE: u64 = 0x2;
/// `FALLOC_FL_SUPPORTED_MASK` of `include/linux/falloc.h`.
const FALLOC_FL_SUPPORTED_MASK: u64 = 0x1 | 0x2 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80;

/// The shmem object open at `fd` with the file's access mode
/// (`O_ACCMODE` bits) and flags; `Ok(None)` for a descriptor that is
/// not a shmem file, `EBADF` for no descriptor.
fn shmem_of(p: &Process, fd: u64) -> Result<Option<(Arc<ShmemFile>, u32)>, Errno> {
    let files = p.files.lock();
    let f = usize::try_from(fd)
        .ok()
        .and_then(|i| files.get(i))
        .and_then(|f| f.as_ref())
        .ok_or(EBADF)?;
    Ok(match &f.data {
        OpenData::Shmem(s) => Some((s.clone(), f.flags)),
        _ => None,
    })
}

fn writable(flags: u32) -> bool {
    flags & 3 != 0
}

/// `memfd_create(name, flags)`: a new shmem file of size 0 open
/// `O_RDWR | O_LARGEFILE`, named `memfd:NAME` (`/proc/PID/maps` shows
/// `/memfd:NAME (deleted)`), mode 0777 (0666 and `F_SEAL_EXEC` with
/// `MFD_NOEXEC_SEAL`), sealable only with `MFD_ALLOW_SEALING` (else
/// `F_SEAL_SEAL` from the start). Linux's errors: unknown flags or
/// `MFD_EXEC | MFD_NOEXEC_SEAL` `EINVAL`, a name longer than 249 bytes
/// `EINVAL`, a bad pointer `EFAULT`; `MFD_HUGETLB` is `ENOSYS`, as on a
/// kernel without hugetlbfs (`hugetlb_file_setup()`'s stub).
pub fn sys_memfd_create(p: &Process, uname: u64, flags: u64) -> SysResult {
    if flags & MFD_HUGETLB == 0 && flags & !MFD_ALL_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_EXEC != 0 && flags & MFD_NOEXEC_SEAL != 0 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let name = strncpy_from_user(&mm, uname, MFD_NAME_MAX_LEN + 1)?;
    if name.len() > MFD_NAME_MAX_LEN {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_HUGETLB != 0 {
        return Err(Errno::ENOSYS);
    }
    let mut path = String::from("/memfd:");
    path.push_str(&String::from_utf8_lossy(&name));
    path.push_str(" (deleted)");
    let (mode, seals) = if flags & MFD_NOEXEC_SEAL != 0 {
        (0o666, F_SEAL_EXEC)
    } else if flags & MFD_ALLOW_SEALING != 0 {
        (0o777, 0)
    } else {
        (0o777, F_SEAL_SEAL)
    };
    let obj = ShmemRef::new_file(process::vm(), path, seals).ok_or(Errno::ENOMEM)?;
    let file = OpenFile {
        data: OpenData::Shmem(Arc::new(ShmemFile::new(obj, 0))),
        pos: 0,
        sysctl: None,
        cloexec: flags & MFD_CLOEXEC != 0,
        flags: O_RDWR | O_LARGEFILE,
        mode: S_IFREG | mode,
    };
    super::fs::install(p, file, 0)
}

/// `write`/`pwrite64` (`at`) into the shmem file at `fd`: the bytes go
/// into its page cache at the position (the end with `O_APPEND`, for
/// `pwrite64` too, as Linux), and the position moves past them. Copies
/// user memory in chunks; a fault after some bytes returns their count.
pub(super) fn shmem_write(
    p: &Process,
    fd: u64,
    file: &ShmemFile,
    flags: u32,
    buf: u64,
    count: u64,
    at: Option<u64>,
) -> SysResult {
    super::fs::access_ok(buf, count)?;
    let count = count.min(MAX_RW_COUNT);
    let mm = mm_of(p)?;
    let vm = process::vm();
    let pos = if flags & O_APPEND != 0 {
        file.obj.size()
    } else if let Some(at) = at {
        at
    } else {
        super::fs::file_pos(p, fd)?
    };
    let mut chunk = vec![0u8; count.min(64 * 1024) as usize];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        if let Err(e) = copy_from_user(&mm, &mut chunk[..n], buf.wrapping_add(done)) {
            if done == 0 {
                return Err(e);
            }
            break;
        }
        match file.obj.write_at(vm, pos + done, &chunk[..n]) {
            Ok(k) => {
                done += k as u64;
                if k < n {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    if done > 0 {
        file.touch();
    }
    if at.is_none() {
        super::fs::set_file_pos(p, fd, pos + done)?;
    }
    Ok(done)
}

/// `ftruncate(fd, length)` (`do_ftruncate()`): `EINVAL` for a negative
/// length and for anything but a shmem file open for writing (the
/// initramfs files are read-only: there is none such), then the object's
/// rules (`EPERM` against seals, `EFBIG`). A shrink unmaps the pages past
/// the end from every address space (`SIGBUS` on the next touch).
pub fn sys_ftruncate(p: &Process, fd: u64, length: i64) -> SysResult {
    if length < 0 {
        return Err(Errno::EINVAL);
    }
    let (file, flags) = shmem_of(p, fd)?.ok_or(Errno::EINVAL)?;
    if !writable(flags) {
        return Err(Errno::EINVAL);
    }
    truncate_file(&file, length as u64)?;
    Ok(0)
}

/// Sets the size of `file` (`do_truncate()`), unmapping a cut-off tail
/// from the address spaces the object's `i_mmap` names; mtime and ctime
/// move.
pub(super) fn truncate_file(file: &ShmemFile, length: u64) -> Result<(), Errno> {
    let obj = file.obj;
    obj.truncate(process::vm(), length, |first| {
        for mm in process::mms_by_id(&obj.i_mmap_mms(first, u64::MAX)) {
            mm.unmap_mapping_range(obj, first);
        }
    })?;
    file.touch();
    Ok(())
}

/// `fallocate(fd, mode, offset, len)` (`vfs_fallocate()` then
/// `shmem_fallocate()`), in Linux's order: `EINVAL` for a negative
/// offset or a length not above 0, `EOPNOTSUPP` for unknown modes,
/// `EBADF` unless open for writing, `ESPIPE` for a pipe, `ENODEV` for
/// what is not a regular file, `EFBIG` past the largest size. Mode 0
/// and `FALLOC_FL_KEEP_SIZE` allocate; `FALLOC_FL_PUNCH_HOLE` (with
/// `KEEP_SIZE`, else `EOPNOTSUPP`) frees the range's pages, zeroes its
/// partial ones and unmaps them from every mapping but private copies.
pub fn sys_fallocate(p: &Process, fd: u64, mode: u64, offset: i64, len: i64) -> SysResult {
    let (data, flags) = {
        let files = p.files.lock();
        let f = usize::try_from(fd)
            .ok()
            .and_then(|i| files.get(i))
            .and_then(|f| f.as_ref())
            .ok_or(EBADF)?;
        (f.data.clone(), f.flags)
    };
    if offset < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let mode = mode as u32 as u64;
    if mode & !FALLOC_FL_SUPPORTED_MASK != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if mode & FALLOC_FL_PUNCH_HOLE != 0 && mode & FALLOC_FL_KEEP_SIZE == 0 {
        // A hole never changes the size.
        return Err(Errno::EOPNOTSUPP);
    }
    if !writable(flags) {
        return Err(EBADF);
    }
    let file = match data {
        OpenData::Pipe(_) => return Err(ESPIPE),
        OpenData::Dir(_) => return Err(super::EISDIR),
        OpenData::Shmem(f) => f,
        _ => return Err(super::ENODEV),
    };
    if (offset as u64)
        .checked_add(len as u64)
        .is_none_or(|e| e > mm::shmem::MAX_LFS_FILESIZE)
    {
        return Err(Errno::EFBIG);
    }
    if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE) != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if mode & FALLOC_FL_PUNCH_HOLE != 0 {
        let obj = file.obj;
        obj.punch_hole(process::vm(), offset as u64, len as u64, |first, end| {
            for mm in process::mms_by_id(&obj.i_mmap_mms(first, end)) {
                mm.unmap_mapping_pages(obj, first, end, false);
            }
        })?;
        file.touch();
        return Ok(0);
    }
    file.obj.fallocate(
        process::vm(),
        offset as u64,
        len as u64,
        mode & FALLOC_FL_KEEP_SIZE != 0,
    )?;
    Ok(0)
}

/// `fcntl(fd, F_ADD_SEALS, seals)` (`memfd_add_seals()`): `EINVAL` for
/// what is not a shmem file, `EPERM` unless open for writing, then the
/// object's rules.
pub fn add_seals(p: &Process, fd: u64, seals: u64) -> SysResult {
    let (file, flags) = shmem_of(p, fd)?.ok_or(Errno::EINVAL)?;
    if !writable(flags) {
        return Err(Errno::EPERM);
    }
    let mode = p
        .files
        .lock()
        .get(fd as usize)
        .and_then(|f| f.as_ref().map(|f| f.mode))
        .unwrap_or(0);
    file.obj
        .add_seals(seals as u32, mode & 0o111 != 0)
        .map(|()| 0)
}

/// `fcntl(fd, F_GET_SEALS)`: the seals, `EINVAL` for what is not a
/// shmem file.
pub fn get_seals(p: &Process, fd: u64) -> SysResult {
    let (file, _) = shmem_of(p, fd)?.ok_or(Errno::EINVAL)?;
    Ok(u64::from(file.obj.seals()))
}

/// `mmap` of a descriptor (`ksys_mmap_pgoff()` with a file): `EBADF`
/// for no descriptor; a shmem file maps its object, in Linux's order of
/// checks (`do_mmap()`): `MAP_SHARED` with `PROT_WRITE` needs the file
/// open for writing (`EACCES`) and not write-sealed (`EPERM`,
/// `memfd_check_seals_mmap()`), any mapping needs it open for reading
/// (`EACCES`). Anything else is not mappable (`ENODEV`, from `mm`).
pub fn mmap_fd(p: &Process, a: [u64; 6], flags: MapFlags) -> SysResult {
    let mm = mm_of(p)?;
    let fd = a[4] as i32;
    let found = if fd < 0 {
        None
    } else {
        shmem_of(p, fd as u64)?
    };
    let prot = Prot::from_bits(a[2]).ok_or(Errno::EINVAL)?;
    let Some((file, fflags)) = found else {
        return mm.mmap(a[0], a[1], prot, flags, i64::from(fd), a[5]);
    };
    // MAP_SHARED or MAP_SHARED_VALIDATE (MAP_PRIVATE is the other bit).
    let shared = flags.contains(MapFlags::SHARED);
    let seals = file.obj.seals();
    let sealed = seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0;
    if shared && prot.contains(Prot::WRITE) && fflags & 3 != O_RDWR {
        return Err(Errno::EACCES);
    }
    if fflags & 3 == 1 {
        return Err(Errno::EACCES);
    }
    if shared && prot.contains(Prot::WRITE) && sealed {
        return Err(Errno::EPERM);
    }
    let may_write = fflags & 3 == O_RDWR && !sealed;
    mm.mmap_file(a[0], a[1], prot, flags, (file.obj, may_write), a[5])
}
