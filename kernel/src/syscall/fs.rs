//! File syscalls over the console, the initramfs (`crate::initramfs`),
//! the memory devices (`process::memdev`: `/dev/null`, `/dev/zero`, ...)
//! and the pseudo files (`process::procfs`). Every process's working
//! directory is `/`; there are no symlinks, so `lstat` is `stat`.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mm::errno::Errno;

use super::{
    EBADF, EISDIR, EMFILE, ENODEV, ENOENT, ENOTDIR, ENOTTY, ERANGE, EROFS, ESPIPE, MAX_RW_COUNT,
    PATH_MAX, SysResult, mm_of,
};
use crate::initramfs::{self, Node};
use crate::process::memdev::MemDev;
use crate::process::pipe::{PIPE_BUF_BYTES, Pipe};
use crate::process::{OpenData, OpenFile, Process, procfs, signal};
use crate::serial;
use crate::tmpfs::{self, Found};
use crate::uaccess::{copy_from_user, copy_to_user, le64, strncpy_from_user};

/// `AT_FDCWD`: relative paths start at the working directory.
pub const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EACCESS: u64 = 0x200;
const AT_NO_AUTOMOUNT: u64 = 0x800;
const AT_EMPTY_PATH: u64 = 0x1000;

const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0o100;
const O_EXCL: u64 = 0o200;
const O_TRUNC: u64 = 0o1000;
const O_APPEND: u64 = 0o2000;
const O_NONBLOCK: u64 = 0o4000;
const O_DIRECTORY: u64 = 0o200000;
/// `__O_TMPFILE | O_DIRECTORY`.
const O_TMPFILE: u64 = 0o20000000 | O_DIRECTORY;
const O_CLOEXEC: u64 = 0o2000000;

const S_IFCHR: u32 = 0o020000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// Linux's `access_ok(buf, count)`: the range lies in user space (it is
/// checked before a read or write, even one that never touches the
/// buffer, as `/dev/null`'s).
pub(super) fn access_ok(buf: u64, count: u64) -> Result<(), Errno> {
    match buf.checked_add(count) {
        Some(end) if end <= mm::pgtable::TASK_SIZE => Ok(()),
        _ => Err(Errno::EFAULT),
    }
}

/// Most descriptors a process has (`RLIMIT_NOFILE`'s default soft limit).
const NR_OPEN: usize = 1024;

/// Runs `f` on open file `fd`.
fn with_file<R>(p: &Process, fd: u64, f: impl FnOnce(&mut OpenFile) -> R) -> Result<R, Errno> {
    let mut files = p.files.lock();
    let file = usize::try_from(fd)
        .ok()
        .and_then(|i| files.get_mut(i))
        .and_then(|f| f.as_mut())
        .ok_or(EBADF)?;
    Ok(f(file))
}

/// Puts `file` in the lowest free descriptor at or above `min`.
pub(super) fn install(p: &Process, file: OpenFile, min: usize) -> SysResult {
    let mut files = p.files.lock();
    let slot = (min..NR_OPEN).find(|&i| files.get(i).is_none_or(|f| f.is_none()));
    let Some(i) = slot else {
        return Err(EMFILE);
    };
    if files.len() <= i {
        files.resize(i + 1, None);
    }
    files[i] = Some(file);
    Ok(i as u64)
}

/// The position of the file at `fd`.
pub(super) fn file_pos(p: &Process, fd: u64) -> Result<u64, Errno> {
    with_file(p, fd, |f| f.pos as u64)
}

/// Moves the position of the file at `fd` to `pos`.
pub(super) fn set_file_pos(p: &Process, fd: u64, pos: u64) -> Result<(), Errno> {
    with_file(p, fd, |f| f.pos = pos as usize)
}

pub fn sys_write(p: &Process, fd: u64, buf: u64, count: u64) -> SysResult {
    write_common(p, fd, buf, count, None)
}

/// `pwrite64(fd, buf, count, off)`: `EINVAL` for a negative offset,
/// `ESPIPE` for what cannot seek; a shmem file is written at `off`.
pub fn sys_pwrite(p: &Process, fd: u64, buf: u64, count: u64, off: i64) -> SysResult {
    let data = with_file(p, fd, |f| f.data.clone())?;
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    match data {
        OpenData::Console | OpenData::Pipe(_) => Err(ESPIPE),
        _ => write_common(p, fd, buf, count, Some(off as u64)),
    }
}

fn write_common(p: &Process, fd: u64, buf: u64, count: u64, at: Option<u64>) -> SysResult {
    // The files with writes of their own: shmem files, pidfds, /proc/PID/mem.
    let (own, flags, pos) = with_file(p, fd, |f| {
        let own = matches!(
            f.data,
            OpenData::Shmem(_) | OpenData::Pidfd(_) | OpenData::Mem(_)
        )
        .then(|| f.data.clone());
        (own, f.flags, f.pos)
    })?;
    if own.is_some() && flags & 3 == 0 {
        return Err(EBADF);
    }
    match own {
        Some(OpenData::Shmem(file)) => {
            return super::memfd::shmem_write(p, fd, &file, flags, buf, count, at);
        }
        // A pidfd has no write (pidfs): EINVAL.
        Some(OpenData::Pidfd(_)) => return Err(Errno::EINVAL),
        Some(OpenData::Mem(mm)) => {
            let count = count.min(MAX_RW_COUNT);
            return positioned(p, fd, at, pos, |start| {
                super::process_vm::mem_rw(p, &mm, buf, count, start, true)
            });
        }
        _ => {}
    }
    let (console, sysctl, mode, pipe, nonblock, dev) = with_file(p, fd, |f| {
        let pipe = match &f.data {
            OpenData::Pipe(end) => Some(end.clone()),
            _ => None,
        };
        let dev = match f.data {
            OpenData::Dev(d) => Some(d),
            _ => None,
        };
        let console = matches!(f.data, OpenData::Console);
        (console, f.sysctl, f.flags & 3, pipe, nonblocking(f), dev)
    })?;
    if mode == 0 {
        return Err(EBADF);
    }
    if let Some(dev) = dev {
        access_ok(buf, count)?;
        let count = count.min(MAX_RW_COUNT);
        return match dev.write(count) {
            Some(r) => r,
            None => dev_write_read(p, buf, count),
        };
    }
    let mm = mm_of(p)?;
    if let Some(end) = pipe {
        let count = count.min(MAX_RW_COUNT);
        let res = pipe_write(&mm, &end.pipe, buf, count, nonblock);
        let short = match res {
            Ok(n) => n < count,
            Err(e) => e == crate::process::pipe::EPIPE,
        };
        if short && end.pipe.readers_gone() {
            // Linux's pipe_write: SIGPIPE to the writer, from itself.
            let info = signal::SigInfo::user(signal::SIGPIPE, signal::SI_USER, p.pid);
            let me = crate::process::thread::current_thread();
            let _ = signal::send_signal(p, info, me.as_ref(), false);
        }
        return res;
    }
    if !console {
        // Only /proc/sys/vm settings and oom_score_adj take a write: a
        // decimal number.
        let sysctl = sysctl.ok_or(EBADF)?;
        let mut text = [0u8; 32];
        let n = count.min(text.len() as u64) as usize;
        if let procfs::Sysctl::ClearRefs(_) = sysctl {
            // clear_refs_write() looks at 12 bytes at most and returns
            // how many it looked at.
            let n = n.min(12);
            copy_from_user(&mm, &mut text[..n], buf)?;
            procfs::write_sysctl(sysctl, &text[..n])?;
            return Ok(n as u64);
        }
        copy_from_user(&mm, &mut text[..n], buf)?;
        procfs::write_sysctl(sysctl, &text[..n])?;
        return Ok(count);
    }
    let count = count.min(MAX_RW_COUNT);
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        if let Err(e) = copy_from_user(&mm, &mut chunk[..n], buf.wrapping_add(done)) {
            // Linux: a partial write returns what was written.
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        serial::write_bytes(&chunk[..n]);
        done += n as u64;
    }
    Ok(done)
}

/// A write to a random device: the bytes are read (Linux mixes them into
/// the pool; here they are dropped); a fault after some bytes returns the
/// count read.
fn dev_write_read(p: &Process, buf: u64, count: u64) -> SysResult {
    let mm = mm_of(p)?;
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        if let Err(e) = copy_from_user(&mm, &mut chunk[..n], buf.wrapping_add(done)) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n as u64;
    }
    Ok(done)
}

/// A read of a memory device: its bytes copied out in chunks; a fault
/// after some bytes returns the count copied.
fn dev_read(p: &Process, dev: MemDev, buf: u64, count: usize) -> SysResult {
    access_ok(buf, count as u64)?;
    if dev == MemDev::Null {
        return Ok(0);
    }
    let mm = mm_of(p)?;
    let mut chunk = alloc::vec![0u8; count.min(4096)];
    let mut done = 0usize;
    while done < count {
        let n = dev.read(&mut chunk[..(count - done).min(4096)]);
        if let Err(e) = copy_to_user(&mm, buf.wrapping_add(done as u64), &chunk[..n]) {
            return if done > 0 { Ok(done as u64) } else { Err(e) };
        }
        done += n;
    }
    Ok(done as u64)
}

/// Whether the file has `O_NONBLOCK`.
fn nonblocking(f: &OpenFile) -> bool {
    u64::from(f.flags) & O_NONBLOCK != 0
}

fn pipe_write(
    mm: &crate::process::KMm,
    pipe: &Pipe,
    buf: u64,
    count: u64,
    nonblock: bool,
) -> SysResult {
    let mut chunk = [0u8; 512];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        if let Err(e) = copy_from_user(mm, &mut chunk[..n], buf.wrapping_add(done)) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        let mut put = 0;
        while put < n {
            match pipe.write(&chunk[put..n], nonblock) {
                Ok(0) if done + put as u64 > 0 => return Ok(done + put as u64),
                Ok(0) => return Err(Errno::EAGAIN),
                Ok(k) => put += k,
                Err(_) if done + put as u64 > 0 => return Ok(done + put as u64),
                Err(e) => return Err(e),
            }
        }
        done += n as u64;
    }
    Ok(done)
}

/// A transfer of a file that is read or written in place at `at`
/// (`pread`/`pwrite`) or at its position `pos`: `io(start)` gives the
/// result and the position the transfer ended at, where the file's
/// position then moves (a `read`/`write`, not a `pread`/`pwrite`).
fn positioned(
    p: &Process,
    fd: u64,
    at: Option<u64>,
    pos: usize,
    io: impl FnOnce(u64) -> (SysResult, u64),
) -> SysResult {
    let (res, end) = io(at.unwrap_or(pos as u64));
    if at.is_none() {
        with_file(p, fd, |f| f.pos = end as usize)?;
    }
    res
}

/// Reads from `fd` at `at` (its position if `None`, then advanced).
fn read_common(p: &Process, fd: u64, buf: u64, count: u64, at: Option<u64>) -> SysResult {
    let count = count.min(MAX_RW_COUNT) as usize;
    let (data, pos, mode, nonblock, st_mode) = with_file(p, fd, |f| {
        (f.data.clone(), f.pos, f.flags & 3, nonblocking(f), f.mode)
    })?;
    if mode == 1 {
        return Err(EBADF);
    }
    if matches!(data, OpenData::Bytes(_)) && st_mode & 0o444 == 0 {
        // A write-only /proc file (clear_refs) has no read: vfs_read()'s
        // EINVAL without FMODE_CAN_READ.
        return Err(Errno::EINVAL);
    }
    match data {
        OpenData::Dir(_) => return Err(EISDIR),
        // A pidfd has no read (pidfs): EINVAL.
        OpenData::Pidfd(_) => return Err(Errno::EINVAL),
        OpenData::Mem(mm) => {
            return positioned(p, fd, at, pos, |start| {
                super::process_vm::mem_rw(p, &mm, buf, count as u64, start, false)
            });
        }
        OpenData::Console => {
            if at.is_some() {
                return Err(ESPIPE);
            }
            // No input: end of file (after checking the buffer, as Linux
            // does only when it has bytes to copy: it has none).
            return Ok(0);
        }
        OpenData::Pipe(end) => {
            if at.is_some() {
                return Err(ESPIPE);
            }
            let mut chunk = alloc::vec![0u8; count.min(PIPE_BUF_BYTES)];
            let n = end.pipe.read(&mut chunk, nonblock)?;
            copy_to_user(&*mm_of(p)?, buf, &chunk[..n])?;
            return Ok(n as u64);
        }
        // The position stays 0 (Linux's device reads ignore it).
        OpenData::Dev(dev) => return dev_read(p, dev, buf, count),
        OpenData::Pagemap(target) => {
            return positioned(p, fd, at, pos, |start| {
                match procfs::pagemap_read(p, &target, buf, count as u64, start) {
                    Ok(n) => (Ok(n), start + n),
                    Err(e) => (Err(e), start),
                }
            });
        }
        OpenData::KPage(flags) => {
            return positioned(p, fd, at, pos, |start| {
                let (n, res) = procfs::kpage_read(p, flags, buf, count as u64, start);
                (res.map(|()| n), start + n)
            });
        }
        OpenData::Bytes(_) | OpenData::File(_) | OpenData::Shmem(_) => {}
    }
    let mm = mm_of(p)?;
    let start = at.map_or(pos, |a| a as usize);
    let mut done = 0usize;
    let mut chunk = alloc::vec![0u8; count.min(64 * 1024)];
    while done < count {
        let want = (count - done).min(chunk.len());
        let n = data.read_at(start + done, &mut chunk[..want]);
        if n == 0 {
            break;
        }
        if let Err(e) = copy_to_user(&mm, buf.wrapping_add(done as u64), &chunk[..n]) {
            if done == 0 {
                return Err(e);
            }
            break;
        }
        done += n;
    }
    if at.is_none() {
        with_file(p, fd, |f| {
            if f.pos == pos {
                f.pos = pos + done;
            }
        })?;
    }
    Ok(done as u64)
}

pub fn sys_read(p: &Process, fd: u64, buf: u64, count: u64) -> SysResult {
    read_common(p, fd, buf, count, None)
}

pub fn sys_pread(p: &Process, fd: u64, buf: u64, count: u64, off: i64) -> SysResult {
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    read_common(p, fd, buf, count, Some(off as u64))
}

/// Reads the `iovec` array (`base`, `len` pairs); Linux's checks: at most
/// `UIO_MAXIOV` (1024) entries, no length above `isize::MAX`.
fn iovecs(p: &Process, iov: u64, cnt: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if cnt > 1024 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let mut bytes = alloc::vec![0u8; cnt as usize * 16];
    copy_from_user(&mm, &mut bytes, iov)?;
    let mut out = Vec::new();
    let mut total = 0u64;
    for c in bytes.chunks(16) {
        let (base, len) = (le64(c, 0), le64(c, 8));
        if len > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        // Linux truncates the total to MAX_RW_COUNT.
        let len = len.min(MAX_RW_COUNT - total);
        total += len;
        out.push((base, len));
    }
    Ok(out)
}

fn vectored(
    p: &Process,
    fd: u64,
    iov: u64,
    cnt: u64,
    op: fn(&Process, u64, u64, u64) -> SysResult,
) -> SysResult {
    with_file(p, fd, |_| ())?;
    let mut done = 0;
    for (base, len) in iovecs(p, iov, cnt)? {
        if len == 0 {
            continue;
        }
        match op(p, fd, base, len) {
            Ok(n) => {
                done += n;
                if n < len {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

pub fn sys_readv(p: &Process, fd: u64, iov: u64, cnt: u64) -> SysResult {
    vectored(p, fd, iov, cnt, sys_read)
}

pub fn sys_writev(p: &Process, fd: u64, iov: u64, cnt: u64) -> SysResult {
    vectored(p, fd, iov, cnt, sys_write)
}

/// Resolves `(dirfd, path)` to a normalized absolute path.
fn resolve(p: &Process, dirfd: i32, raw: &[u8]) -> Result<String, Errno> {
    if raw.first() == Some(&b'/') || dirfd == AT_FDCWD {
        return initramfs::normalize(raw);
    }
    let dir = with_file(p, dirfd as u32 as u64, |f| match &f.data {
        OpenData::Dir(path) => Ok(path.clone()),
        _ => Err(ENOTDIR),
    })??;
    let mut full = dir.into_bytes();
    full.push(b'/');
    full.extend_from_slice(raw);
    initramfs::normalize(&full)
}

/// `p`'s view of normalized `path`: the process a `/proc/<pid>/...` path
/// names (`None`: `p` itself, or not a per-process path) and the path as
/// that process's own `/proc/self/...` one (`procfs::pid_path`).
fn proc_view(
    p: &Process,
    path: &str,
) -> Result<(Option<alloc::sync::Arc<Process>>, String), Errno> {
    Ok(match procfs::pid_path(path)? {
        Some((t, own)) if t.pid == p.pid => (None, own),
        Some((t, own)) => (Some(t), own),
        None => (None, String::from(path)),
    })
}

/// The target of the symbolic link at normalized `path`, if it is one:
/// `/proc/self` (the pid), `/proc/self/exe` (the program file),
/// `/proc/self/cwd` and `/proc/self/root` (`/`). `ENOENT` for `exe`
/// before the first exec, as Linux for a task without an `mm`.
fn symlink(p: &Process, path: &str) -> Option<Result<String, Errno>> {
    if path == "/proc/self" {
        return Some(Ok(alloc::format!("{}", p.pid)));
    }
    let (target, path) = proc_view(p, path).ok()?;
    let t = target.as_deref().unwrap_or(p);
    match path.as_str() {
        "/proc/self/exe" => Some(Some(t.exe()).filter(|e| !e.is_empty()).ok_or(ENOENT)),
        "/proc/self/cwd" | "/proc/self/root" => Some(Ok(String::from("/"))),
        _ => None,
    }
}

/// `readlinkat(dirfd, path, buf, bufsiz)` (and `readlink`): the link's
/// target, truncated to `bufsiz` bytes, without a NUL. Linux's order:
/// `EINVAL` for `bufsiz <= 0`, then the lookup's errors, then `EINVAL`
/// for what is not a symbolic link.
pub fn sys_readlinkat(p: &Process, dirfd: i32, path: u64, buf: u64, bufsiz: i32) -> SysResult {
    if bufsiz <= 0 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, path, PATH_MAX)?;
    let path = resolve(p, dirfd, &raw)?;
    let target = match symlink(p, &path) {
        Some(t) => t?,
        None => {
            open_node(p, &path)?;
            return Err(Errno::EINVAL);
        }
    };
    let n = target.len().min(bufsiz as usize);
    copy_to_user(&mm, buf, &target.as_bytes()[..n])?;
    Ok(n as u64)
}

/// `t`'s address space, held without keeping it alive (`mmgrab()` of
/// `/proc/PID/pagemap` and `mem`); empty for a process without one.
fn mm_weak(t: &Process) -> alloc::sync::Weak<crate::process::KMm> {
    t.mm()
        .map(|mm| alloc::sync::Arc::downgrade(&mm))
        .unwrap_or_default()
}

/// What is at `path`: (data, st_mode, sysctl); symbolic links are
/// followed.
fn open_node(p: &Process, path: &str) -> Result<(OpenData, u32, Option<procfs::Sysctl>), Errno> {
    if let Some(target) = symlink(p, path) {
        let target = target?;
        // The only relative target is /proc/self's pid.
        let target = if target.starts_with('/') {
            target
        } else {
            alloc::format!("/proc/{target}")
        };
        return open_node(p, &target);
    }
    let (target, own) = proc_view(p, path)?;
    let t = target.as_deref().unwrap_or(p);
    if own == "/proc/kpagecount" || own == "/proc/kpageflags" {
        return Ok((
            OpenData::KPage(own == "/proc/kpageflags"),
            S_IFREG | 0o400,
            None,
        ));
    }
    if own == "/proc/self/pagemap" {
        // S_IRUSR, as Linux's; a process without an address space reads
        // nothing.
        return Ok((OpenData::Pagemap(mm_weak(t)), S_IFREG | 0o400, None));
    }
    if own == "/proc/self/mem" {
        // mem_open(): the address space now (none for a process without
        // one: reads return 0).
        return Ok((OpenData::Mem(mm_weak(t)), S_IFREG | 0o600, None));
    }
    if let Some(data) = procfs::generate(t, own.as_bytes()) {
        let sysctl = procfs::setting(t, own.as_bytes());
        let mode = match sysctl {
            // S_IWUSR: a write-only file (reads are EINVAL, no read op).
            Some(procfs::Sysctl::ClearRefs(_)) => 0o200,
            Some(_) => 0o644,
            None => 0o444,
        };
        return Ok((OpenData::Bytes(data), S_IFREG | mode, sysctl));
    }
    if procfs::is_dir(own.as_bytes()) || procfs::is_task_dir(t, own.as_bytes()) {
        // The path as opened: getdents resolves `/proc/<pid>` again.
        return Ok((OpenData::Dir(String::from(path)), S_IFDIR | 0o555, None));
    }
    let path = own;
    if tmpfs::split(&path).is_some() {
        return match tmpfs::lookup(&path)? {
            Found::File(f) => {
                let mode = S_IFREG | f.mode.load(Ordering::Relaxed);
                Ok((OpenData::Shmem(f), mode, None))
            }
            // A mount point is sticky and world-writable, as Linux's /tmp.
            Found::Dir { .. } if tmpfs::is_mount_point(&path) => {
                Ok((OpenData::Dir(path), S_IFDIR | 0o1777, None))
            }
            Found::Dir { .. } => Ok((OpenData::Dir(path), S_IFDIR | 0o755, None)),
        };
    }
    if let Some(dev) = MemDev::lookup(&path) {
        return Ok((OpenData::Dev(dev), S_IFCHR | 0o666, None));
    }
    match initramfs::lookup(&path) {
        Some(Node::File(f, mode)) => Ok((OpenData::File(f), S_IFREG | mode, None)),
        Some(Node::Dir) => Ok((OpenData::Dir(path), S_IFDIR | 0o755, None)),
        None => {
            // A component that is a file, not a directory: ENOTDIR.
            let mut at = path.len();
            while let Some(i) = path[..at].rfind('/') {
                let prefix = &path[..i];
                let (target, own) = proc_view(p, prefix).unwrap_or((None, String::new()));
                if procfs::generate(target.as_deref().unwrap_or(p), own.as_bytes()).is_some()
                    || matches!(initramfs::lookup(prefix), Some(Node::File(..)))
                {
                    return Err(ENOTDIR);
                }
                at = i;
            }
            Err(ENOENT)
        }
    }
}

pub fn sys_openat(p: &Process, dirfd: i32, path: u64, flags: u64, mode: u64) -> SysResult {
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, path, PATH_MAX)?;
    let path = resolve(p, dirfd, &raw)?;
    if tmpfs::split(&path).is_some() {
        return tmpfs_open(p, &path, flags, mode);
    }
    let acc = flags & O_ACCMODE;
    let (data, mode, sysctl) = match open_node(p, &path) {
        Ok(x) => x,
        // Nothing is created: the file systems are read-only.
        Err(e) if e == ENOENT && flags & O_CREAT != 0 => return Err(EROFS),
        Err(e) => return Err(e),
    };
    // Linux's do_open: O_EXCL refuses what exists, before any other check.
    if flags & (O_CREAT | O_EXCL) == O_CREAT | O_EXCL {
        return Err(initramfs::EEXIST);
    }
    let is_dir = matches!(data, OpenData::Dir(_));
    // Devices and /proc/PID/mem take writes as they are.
    let is_dev = matches!(data, OpenData::Dev(_) | OpenData::Mem(_));
    if flags & O_DIRECTORY != 0 && !is_dir {
        return Err(ENOTDIR);
    }
    if acc == 3 {
        return Err(Errno::EINVAL);
    }
    if is_dir && (acc != 0 || flags & O_CREAT != 0) {
        return Err(EISDIR);
    }
    if (acc != 0 || flags & O_TRUNC != 0) && sysctl.is_none() && !is_dev {
        // /proc files refuse writes (EACCES); initramfs files are on a
        // read-only file system.
        return Err(if matches!(data, OpenData::Bytes(_)) {
            Errno::EACCES
        } else {
            EROFS
        });
    }
    let file = OpenFile {
        data: if acc == 1 && !is_dev {
            OpenData::Bytes(Vec::new())
        } else {
            data
        },
        pos: 0,
        sysctl: if acc != 0 { sysctl } else { None },
        cloexec: flags & O_CLOEXEC != 0,
        flags: (flags & (O_ACCMODE | O_APPEND | O_NONBLOCK)) as u32,
        mode,
    };
    install(p, file, 0)
}

/// `openat` of a path in a tmpfs (`do_sys_open()` → `path_openat()`),
/// Linux's order: `O_TMPFILE` makes an unnamed file in the directory
/// (write access needed, else `EINVAL`); `O_CREAT` creates a missing
/// file (`EEXIST` with `O_EXCL` if anything is there, `EISDIR` for a
/// directory), then the type checks (`ENOTDIR` for `O_DIRECTORY` on a
/// file, `EISDIR` for writing a directory), then `O_TRUNC` empties a
/// file opened for writing.
fn tmpfs_open(p: &Process, path: &str, flags: u64, mode: u64) -> SysResult {
    let acc = flags & O_ACCMODE;
    if acc == 3 {
        return Err(Errno::EINVAL);
    }
    let perm = (mode as u32 & 0o7777) & !p.umask.load(Ordering::Relaxed);
    let file = |data, st_mode| OpenFile {
        data,
        pos: 0,
        sysctl: None,
        cloexec: flags & O_CLOEXEC != 0,
        flags: (flags & (O_ACCMODE | O_APPEND | O_NONBLOCK)) as u32,
        mode: st_mode,
    };
    if flags & O_TMPFILE == O_TMPFILE {
        if acc == 0 {
            return Err(Errno::EINVAL);
        }
        let f = tmpfs::tmpfile(path, perm)?;
        let st_mode = S_IFREG | perm;
        return install(p, file(OpenData::Shmem(f), st_mode), 0);
    }
    let (data, st_mode, _) = if flags & O_CREAT != 0 {
        if flags & O_DIRECTORY != 0 {
            // Linux 6.4+: O_CREAT | O_DIRECTORY is EINVAL.
            return Err(Errno::EINVAL);
        }
        let (f, _) = tmpfs::create(path, perm, flags & O_EXCL != 0)?;
        let st_mode = S_IFREG | f.mode.load(Ordering::Relaxed);
        (OpenData::Shmem(f), st_mode, None)
    } else {
        open_node(p, path)?
    };
    let is_dir = matches!(data, OpenData::Dir(_));
    if flags & O_DIRECTORY != 0 && !is_dir {
        return Err(ENOTDIR);
    }
    if is_dir && acc != 0 {
        return Err(EISDIR);
    }
    if let OpenData::Shmem(f) = &data
        && flags & O_TRUNC != 0
        && acc != 0
    {
        super::memfd::truncate_file(f, 0)?;
    }
    install(p, file(data, st_mode), 0)
}

/// What a path outside tmpfs answers to unlink, rmdir, rename: `EROFS`
/// if something is there (the initramfs is read-only; `/proc`, `/dev`
/// and `/sys` too), else the lookup's error.
fn read_only_error(p: &Process, path: &str) -> Errno {
    match open_node(p, path) {
        Ok(_) => EROFS,
        Err(e) => e,
    }
}

/// `unlinkat(dirfd, path, flags)` (and `unlink`, `rmdir`): in a tmpfs
/// the name goes (`AT_REMOVEDIR`: a directory, which must be empty).
pub fn sys_unlinkat(p: &Process, dirfd: i32, path: u64, flags: u64) -> SysResult {
    const AT_REMOVEDIR: u64 = 0x200;
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, path, PATH_MAX)?;
    let path = resolve(p, dirfd, &raw)?;
    if tmpfs::split(&path).is_none() {
        return Err(read_only_error(p, &path));
    }
    tmpfs::remove(&path, flags & AT_REMOVEDIR != 0).map(|()| 0)
}

/// `renameat2(olddirfd, old, newdirfd, new, flags)` (and `rename`,
/// `renameat`): within one tmpfs; `RENAME_NOREPLACE` refuses an existing
/// target; other flags are `EINVAL`; across file systems `EXDEV`.
pub fn sys_renameat2(p: &Process, od: i32, old: u64, nd: i32, new: u64, flags: u64) -> SysResult {
    const RENAME_NOREPLACE: u64 = 1;
    if flags & !RENAME_NOREPLACE != 0 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, old, PATH_MAX)?;
    let from = resolve(p, od, &raw)?;
    let raw = strncpy_from_user(&mm, new, PATH_MAX)?;
    let to = resolve(p, nd, &raw)?;
    match (tmpfs::split(&from).is_some(), tmpfs::split(&to).is_some()) {
        (true, _) => tmpfs::rename(&from, &to, flags & RENAME_NOREPLACE != 0).map(|()| 0),
        (false, true) => {
            open_node(p, &from)?;
            Err(tmpfs::EXDEV)
        }
        (false, false) => Err(read_only_error(p, &from)),
    }
}

/// `truncate(path, length)`: a tmpfs file's size, as `ftruncate`;
/// `EISDIR` for a directory, `EROFS` elsewhere.
pub fn sys_truncate(p: &Process, path: u64, length: i64) -> SysResult {
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, path, PATH_MAX)?;
    let path = resolve(p, AT_FDCWD, &raw)?;
    if length < 0 {
        return Err(Errno::EINVAL);
    }
    let (data, _, _) = open_node(p, &path)?;
    match data {
        OpenData::Shmem(f) => super::memfd::truncate_file(&f, length as u64).map(|()| 0),
        OpenData::Dir(_) => Err(EISDIR),
        _ => Err(EROFS),
    }
}

/// `umask(mask)`: sets the file-creation mask (`mask & 0777`) and
/// returns the old one.
pub fn sys_umask(p: &Process, mask: u64) -> SysResult {
    Ok(u64::from(
        p.umask.swap(mask as u32 & 0o777, Ordering::Relaxed),
    ))
}

/// `fsync(fd)` / `fdatasync(fd)`: nothing to write back (shmem and the
/// initramfs are in memory: Linux's `noop_fsync`), so 0 for their files
/// and directories; `EINVAL` for what has no `fsync` (pipes, the
/// console, devices, `/proc` and `/sys`), `EBADF` for no descriptor.
pub fn sys_fsync(p: &Process, fd: u64) -> SysResult {
    with_file(p, fd, |f| match &f.data {
        OpenData::Shmem(_) | OpenData::File(_) => Ok(0),
        OpenData::Dir(path) if !path.starts_with("/proc") && !path.starts_with("/sys") => Ok(0),
        _ => Err(Errno::EINVAL),
    })?
}

pub fn sys_close(p: &Process, fd: u64) -> SysResult {
    let closed = {
        let mut files = p.files.lock();
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|i| files.get_mut(i))
            .ok_or(EBADF)?;
        slot.take().ok_or(EBADF)?
    };
    // Outside the lock: the last close of a shmem file frees its pages.
    drop(closed);
    Ok(0)
}

/// `dup(fd)` (`new` None) or `dup3(fd, new, flags)`.
pub fn sys_dup3(p: &Process, fd: u64, new: Option<u64>, flags: u64) -> SysResult {
    if flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let mut file = with_file(p, fd, |f| f.clone())?;
    file.cloexec = flags & O_CLOEXEC != 0;
    let Some(new) = new else {
        return install(p, file, 0);
    };
    if new == fd {
        return Err(Errno::EINVAL);
    }
    let i = usize::try_from(new)
        .ok()
        .filter(|&i| i < NR_OPEN)
        .ok_or(EBADF)?;
    let old = {
        let mut files = p.files.lock();
        if files.len() <= i {
            files.resize(i + 1, None);
        }
        files[i].replace(file)
    };
    drop(old);
    Ok(new)
}

pub fn sys_dup2(p: &Process, fd: u64, new: u64) -> SysResult {
    if fd == new {
        return with_file(p, fd, |_| fd);
    }
    sys_dup3(p, fd, Some(new), 0)
}

/// `lseek` whences beyond SEEK_SET/CUR/END (`SEEK_DATA`, `SEEK_HOLE`).
const SEEK_DATA: u64 = 3;
const SEEK_HOLE: u64 = 4;

pub fn sys_lseek(p: &Process, fd: u64, off: i64, whence: u64) -> SysResult {
    with_file(p, fd, |f| {
        let base = match (whence, &f.data) {
            (_, OpenData::Console | OpenData::Pipe(_)) => return Err(ESPIPE),
            // null_lseek / noop_llseek: any request succeeds at 0.
            (_, OpenData::Dev(_)) => {
                f.pos = 0;
                return Ok(0);
            }
            // mem_lseek(): any position from SEEK_SET or SEEK_CUR, no
            // SEEK_END (the file has no size).
            (0 | 1, OpenData::Pagemap(_) | OpenData::KPage(_) | OpenData::Mem(_)) => {
                let base = if whence == 0 { 0 } else { f.pos as u64 };
                f.pos = base.wrapping_add(off as u64) as usize;
                return Ok(f.pos as u64);
            }
            // shmem_file_llseek(): the next data or hole, ENXIO from a
            // negative offset or past the size.
            (SEEK_DATA | SEEK_HOLE, OpenData::Shmem(file)) => {
                let off = u64::try_from(off).map_err(|_| Errno::ENXIO)?;
                let pos =
                    file.obj
                        .seek_hole_data(crate::process::vm(), off, whence == SEEK_HOLE)?;
                f.pos = pos as usize;
                return Ok(pos);
            }
            (0, _) => 0,
            (1, _) => f.pos as i64,
            // seq_file (/proc) does not support SEEK_END.
            (
                2,
                OpenData::Bytes(_) | OpenData::Mem(_) | OpenData::Pagemap(_) | OpenData::KPage(_),
            ) => return Err(Errno::EINVAL),
            (2, d) => d.len() as i64,
            _ => return Err(Errno::EINVAL),
        };
        let pos = base
            .checked_add(off)
            .filter(|p| *p >= 0)
            .ok_or(Errno::EINVAL)?;
        f.pos = pos as usize;
        Ok(pos as u64)
    })?
}

/// A `struct stat` (x86_64 layout, 144 bytes) of `data`.
fn stat_bytes(data: &OpenData, mode: u32, ino: u64) -> [u8; 144] {
    let mut b = [0u8; 144];
    let put = |b: &mut [u8; 144], at: usize, v: u64, n: usize| {
        b[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
    };
    let console = matches!(data, OpenData::Console);
    // st_dev: the console's devpts-like 0x16, devtmpfs's 0x5, shm_mnt's
    // 0x1 for a shmem file, else 0x2.
    let dev = match data {
        OpenData::Console => 0x16,
        OpenData::Dev(_) => 0x5,
        OpenData::Shmem(_) => 0x1,
        _ => 0x2,
    };
    // st_nlink: a file's names (a memfd's or unlinked file's: 0); a
    // tmpfs directory's 2 + subdirectories. Times of shmem files and
    // tmpfs directories (others: 0, the epoch). A tmpfs directory's
    // size counts its entries as shmem does.
    let tdir = match data {
        OpenData::Dir(path) if tmpfs::split(path).is_some() => tmpfs::lookup(path).ok(),
        _ => None,
    };
    let t = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (nlink, ino, size, times) = match (data, tdir) {
        (OpenData::Shmem(f), _) => {
            let times = [t(&f.atime), t(&f.mtime), t(&f.ctime)];
            let nlink = u64::from(f.nlink.load(Ordering::Relaxed));
            (nlink, f.obj.ino(), data.st_size(), times)
        }
        (
            _,
            Some(Found::Dir {
                ino,
                nlink,
                size,
                mtime,
                ctime,
            }),
        ) => (nlink, ino, size, [mtime, mtime, ctime]),
        _ if mode & S_IFDIR != 0 => (2, ino, data.st_size(), [0; 3]),
        _ => (1, ino, data.st_size(), [0; 3]),
    };
    put(&mut b, 0, dev, 8);
    put(&mut b, 8, ino, 8);
    put(&mut b, 16, nlink, 8);
    put(&mut b, 24, u64::from(mode), 4);
    let rdev = match data {
        OpenData::Console => (4 << 8) | 64, // ttyS0 (4, 64)
        OpenData::Dev(d) => d.rdev(),
        _ => 0,
    };
    put(&mut b, 40, rdev, 8);
    put(&mut b, 48, size, 8);
    put(&mut b, 56, if console { 1024 } else { 4096 }, 8); // st_blksize
    // st_blocks: 512-byte units allocated (a shmem file's pages, holes
    // not counted; none for a tmpfs directory).
    let blocks = match data {
        OpenData::Shmem(f) => f.obj.nr_pages() as u64 * 8,
        _ if tdir_is_some(data) => 0,
        _ => size.div_ceil(512),
    };
    put(&mut b, 64, blocks, 8);
    for (i, ns) in times.iter().enumerate() {
        put(&mut b, 72 + 16 * i, ns / 1_000_000_000, 8);
        put(&mut b, 80 + 16 * i, ns % 1_000_000_000, 8);
    }
    b
}

/// Whether `data` is a tmpfs directory.
fn tdir_is_some(data: &OpenData) -> bool {
    matches!(data, OpenData::Dir(path) if tmpfs::split(path).is_some())
}

/// A stable inode number for a path (FNV-1a).
pub(super) fn ino_of(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3)
    }) & 0xffff_ffff
}

fn stat_of_file(f: &OpenFile, fd: u64) -> [u8; 144] {
    stat_bytes(&f.data, f.mode, fd + 1000)
}

pub fn sys_fstat(p: &Process, fd: u64, st: u64) -> SysResult {
    let bytes = with_file(p, fd, |f| stat_of_file(f, fd))?;
    copy_to_user(&*mm_of(p)?, st, &bytes)?;
    Ok(0)
}

fn stat_path(p: &Process, path: &str) -> Result<[u8; 144], Errno> {
    let (data, mode, _) = open_node(p, path)?;
    Ok(stat_bytes(&data, mode, ino_of(path)))
}

pub fn sys_stat(p: &Process, path: u64, st: u64) -> SysResult {
    sys_newfstatat(p, AT_FDCWD, path, st, 0)
}

pub fn sys_newfstatat(p: &Process, dirfd: i32, path: u64, st: u64, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, path, PATH_MAX)?;
    let bytes = if raw.is_empty() && flags & AT_EMPTY_PATH != 0 {
        if dirfd == AT_FDCWD {
            stat_path(p, "/")?
        } else {
            let fd = dirfd as u32 as u64;
            with_file(p, fd, |f| stat_of_file(f, fd))?
        }
    } else {
        stat_path(p, &resolve(p, dirfd, &raw)?)?
    };
    copy_to_user(&mm, st, &bytes)?;
    Ok(0)
}

pub fn sys_faccessat(p: &Process, dirfd: i32, path: u64, mode: u64) -> SysResult {
    if mode & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let _ = AT_EACCESS;
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, path, PATH_MAX)?;
    let path = resolve(p, dirfd, &raw)?;
    let (data, st_mode, sysctl) = open_node(p, &path)?;
    // W_OK on a read-only file system or /proc file: EROFS / EACCES
    // (devices and tmpfs are writable wherever they live).
    if mode & 2 != 0
        && sysctl.is_none()
        && !matches!(data, OpenData::Dev(_))
        && tmpfs::split(&path).is_none()
    {
        return Err(if path.starts_with("/proc") {
            Errno::EACCES
        } else {
            EROFS
        });
    }
    // X_OK (root): some execute bit, or a directory.
    if mode & 1 != 0 && st_mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

/// `ioctl(fd, cmd, arg)`: terminal requests on the console
/// ([`super::tty`]); a memory device's answer ([`MemDev::ioctl_error`]);
/// anything else is not a tty: `ENOTTY`, as Linux answers for files,
/// pipes and `/proc`.
pub fn sys_ioctl(p: &Process, fd: u64, cmd: u64, arg: u64) -> SysResult {
    let (console, dev) = with_file(p, fd, |f| match f.data {
        OpenData::Console => (true, None),
        OpenData::Dev(d) => (false, Some(d)),
        _ => (false, None),
    })?;
    match dev {
        Some(d) => Err(d.ioctl_error()),
        None if console => super::tty::console_ioctl(&*mm_of(p)?, cmd, arg),
        None => Err(ENOTTY),
    }
}

/// `poll(fds, nfds, timeout)`: every open descriptor is ready for what it
/// can do (the console reads end of file at once, files never block) but
/// a pidfd, which is readable once its process has exited
/// (`pidfd_poll()`); a closed one reports `POLLNVAL`. With nothing ready the call
/// sleeps out the timeout, or, with pidfds among the descriptors, until
/// one of their processes exits (interruptible: EINTR).
pub fn sys_poll(p: &Process, fds: u64, nfds: u64, timeout: i32) -> SysResult {
    const POLLIN: u16 = 1;
    const POLLOUT: u16 = 4;
    const POLLERR: u16 = 0x8;
    const POLLHUP: u16 = 0x10;
    const POLLNVAL: u16 = 0x20;
    if nfds > NR_OPEN as u64 {
        return Err(Errno::EINVAL);
    }
    let mm = mm_of(p)?;
    let mut buf = alloc::vec![0u8; nfds as usize * 8];
    copy_from_user(&mm, &mut buf, fds)?;
    // One pass over the descriptors: the ready count, and whether a
    // pidfd could still become ready.
    let scan = |buf: &mut [u8]| {
        let mut ready = 0;
        let mut pidfds = false;
        for e in buf.chunks_mut(8) {
            let fd = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let events = u16::from_le_bytes([e[4], e[5]]);
            let revents = if fd < 0 {
                0
            } else {
                match with_file(p, fd as u64, |f| {
                    let pidfd = match &f.data {
                        OpenData::Pidfd(t) => Some(t.clone()),
                        _ => None,
                    };
                    (f.flags & 3, pidfd)
                }) {
                    Err(_) => POLLNVAL,
                    Ok((_, Some(target))) => {
                        pidfds = true;
                        super::pidfd::pidfd_poll(&target) & (events | POLLHUP | POLLERR)
                    }
                    Ok((acc, None)) => {
                        let can = match acc {
                            0 => POLLIN,
                            1 => POLLOUT,
                            _ => POLLIN | POLLOUT,
                        };
                        events & can
                    }
                }
            };
            e[6..8].copy_from_slice(&revents.to_le_bytes());
            if revents != 0 {
                ready += 1;
            }
        }
        (ready, pidfds)
    };
    let (mut ready, pidfds) = scan(&mut buf);
    if ready == 0 && timeout != 0 {
        let ns = if timeout < 0 {
            u64::MAX / 2
        } else {
            (timeout as u64).saturating_mul(1_000_000)
        };
        if pidfds {
            let deadline = if timeout < 0 {
                u64::MAX
            } else {
                crate::time::now_ns().saturating_add(ns)
            };
            let woke = crate::process::wait_exit_event(
                || {
                    ready = scan(&mut buf).0;
                    ready != 0
                },
                deadline,
            );
            if woke.is_err() && ready == 0 {
                return Err(super::EINTR);
            }
        } else if !crate::process::thread::sleep_killable_ns(ns) {
            // Nothing will ever become ready: sleep out the timeout.
            return Err(super::EINTR);
        }
    }
    copy_to_user(&mm, fds, &buf)?;
    Ok(ready)
}

pub fn sys_fcntl(p: &Process, fd: u64, cmd: u32, arg: u64) -> SysResult {
    const F_DUPFD: u32 = 0;
    const F_GETFD: u32 = 1;
    const F_SETFD: u32 = 2;
    const F_GETFL: u32 = 3;
    const F_SETFL: u32 = 4;
    const F_DUPFD_CLOEXEC: u32 = 1030;
    const F_ADD_SEALS: u32 = 1033;
    const F_GET_SEALS: u32 = 1034;
    const FD_CLOEXEC: u64 = 1;
    const O_LARGEFILE: u64 = 0o100000;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = usize::try_from(arg)
                .ok()
                .filter(|&m| m < NR_OPEN)
                .ok_or(Errno::EINVAL)?;
            let mut file = with_file(p, fd, |f| f.clone())?;
            file.cloexec = cmd == F_DUPFD_CLOEXEC;
            install(p, file, min)
        }
        F_GETFD => with_file(p, fd, |f| u64::from(f.cloexec)),
        F_SETFD => with_file(p, fd, |f| {
            f.cloexec = arg & FD_CLOEXEC != 0;
            0
        }),
        // Linux reports O_LARGEFILE on 64-bit for files opened by open().
        F_GETFL => with_file(p, fd, |f| {
            u64::from(f.flags)
                | if matches!(f.data, OpenData::Console) {
                    0
                } else {
                    O_LARGEFILE
                }
        }),
        F_ADD_SEALS => super::memfd::add_seals(p, fd, arg),
        F_GET_SEALS => super::memfd::get_seals(p, fd),
        F_SETFL => with_file(p, fd, |f| {
            let settable = (O_APPEND | O_NONBLOCK) as u32;
            f.flags = (f.flags & !settable) | (arg as u32 & settable);
            0
        }),
        _ => {
            with_file(p, fd, |_| ())?;
            Err(Errno::EINVAL)
        }
    }
}

pub fn sys_getcwd(p: &Process, buf: u64, size: u64) -> SysResult {
    if size < 2 {
        return Err(ERANGE);
    }
    copy_to_user(&*mm_of(p)?, buf, b"/\0")?;
    Ok(2)
}

pub fn sys_mkdirat(p: &Process, dirfd: i32, path: u64) -> SysResult {
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, path, PATH_MAX)?;
    let path = resolve(p, dirfd, &raw)?;
    if tmpfs::split(&path).is_some() {
        return tmpfs::mkdir(&path).map(|()| 0);
    }
    if path.starts_with("/proc/") || path.starts_with("/sys/") {
        return Err(if open_node(p, &path).is_ok() {
            initramfs::EEXIST
        } else {
            ENOENT
        });
    }
    initramfs::mkdir(&path).map(|()| 0)
}

/// `mount(source, target, fstype, flags, data)`: the pseudo file systems
/// are always there, so mounting `proc`, `sysfs`, `devtmpfs` or `tmpfs`
/// on an existing directory succeeds and changes nothing; other types are
/// unknown (ENODEV).
pub fn sys_mount(p: &Process, _source: u64, target: u64, fstype: u64) -> SysResult {
    let mm = mm_of(p)?;
    let raw = strncpy_from_user(&mm, target, PATH_MAX)?;
    let target = resolve(p, AT_FDCWD, &raw)?;
    let fstype = strncpy_from_user(&mm, fstype, 256)?;
    let (data, _, _) = open_node(p, &target)?;
    if !matches!(data, OpenData::Dir(_)) {
        return Err(ENOTDIR);
    }
    match fstype.as_slice() {
        b"proc" | b"sysfs" | b"devtmpfs" | b"tmpfs" => Ok(0),
        _ => Err(ENODEV),
    }
}

/// `pipe2(fds, flags)` (and `pipe`): flags `O_CLOEXEC`, `O_NONBLOCK`.
pub fn sys_pipe2(p: &Process, fds: u64, flags: u64) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let (r, w) = Pipe::pair();
    let end = |data, acc: u64| OpenFile {
        data,
        pos: 0,
        sysctl: None,
        cloexec: flags & O_CLOEXEC != 0,
        flags: (acc | (flags & O_NONBLOCK)) as u32,
        mode: 0o010600,
    };
    let rfd = install(p, end(OpenData::Pipe(r), 0), 0)?;
    let wfd = match install(p, end(OpenData::Pipe(w), 1), 0) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = sys_close(p, rfd);
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(rfd as i32).to_le_bytes());
    b[4..].copy_from_slice(&(wfd as i32).to_le_bytes());
    if let Err(e) = copy_to_user(&*mm_of(p)?, fds, &b) {
        let _ = sys_close(p, rfd);
        let _ = sys_close(p, wfd);
        return Err(e);
    }
    Ok(0)
}
