//! `getdents64` and `getdents` (Linux's `fs/readdir.c`): the entries of
//! an open directory in Linux's record layouts.
//!
//! ```text
//!   struct linux_dirent64             struct linux_dirent (getdents)
//!   0  u64 d_ino                      0  unsigned long d_ino
//!   8  s64 d_off                      8  unsigned long d_off
//!   16 u16 d_reclen                   16 unsigned short d_reclen
//!   18 u8  d_type                     18 char d_name[] (NUL-terminated)
//!   19 char d_name[] (NUL-terminated)    ... d_type in the record's last byte
//!   reclen = ALIGN(19 + len + 1, 8)   reclen = ALIGN(18 + len + 2, 8)
//! ```
//!
//! A directory's entries are `.`, `..`, then its children in a fixed
//! order (`process::procfs::dir_entries`, `crate::initramfs::children`,
//! the memory devices under `/dev`, `crate::tmpfs::children`); the file position counts the entries
//! already returned and each `d_off` is the position after its record, so
//! `lseek(fd, d_off, SEEK_SET)` resumes there. A call fills as many whole
//! records as fit; `EINVAL` if not even the first one does; 0 at the end.
//! `ENOTDIR` on a descriptor that is not a directory, `EBADF` on a closed
//! one, `EFAULT` for a bad buffer.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use mm::errno::Errno;

use super::{EBADF, ENOTDIR, SysResult, mm_of};
use crate::process::{OpenData, Process, memdev, procfs};
use crate::uaccess::copy_to_user;

/// `d_type` values (`DT_*`; `/proc`'s come from `procfs`).
const DT_CHR: u8 = 2;
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;

/// One entry: name, `d_type`, inode number.
struct Entry {
    name: String,
    ty: u8,
    ino: u64,
}

/// The entries of the directory at normalized `path` for process `p`:
/// `.`, `..` and the children.
fn entries(p: &Process, path: &str) -> Vec<Entry> {
    let parent = match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    };
    let mut out = alloc::vec![
        Entry {
            name: String::from("."),
            ty: DT_DIR,
            ino: super::fs::ino_of(path),
        },
        Entry {
            name: String::from(".."),
            ty: DT_DIR,
            ino: super::fs::ino_of(parent),
        },
    ];
    let mut push = |name: String, ty: u8| {
        let full = if path == "/" {
            alloc::format!("/{name}")
        } else {
            alloc::format!("{path}/{name}")
        };
        if out.iter().all(|e| e.name != name) {
            out.push(Entry {
                ino: super::fs::ino_of(&full),
                name,
                ty,
            });
        }
    };
    if let Some(list) = procfs::dir_entries(p, path) {
        for (name, ty) in list {
            push(name, ty);
        }
        return out;
    }
    if crate::tmpfs::split(path).is_some() {
        // A tmpfs directory: its entries with their own inode numbers.
        for (name, is_dir, ino) in crate::tmpfs::children(path).unwrap_or_default() {
            out.push(Entry {
                name,
                ty: if is_dir { DT_DIR } else { DT_REG },
                ino,
            });
        }
        return out;
    }
    if path == "/dev" {
        for (_, name) in memdev::ALL {
            push(String::from(name), DT_CHR);
        }
        push(String::from("shm"), DT_DIR);
    }
    if path == "/" {
        push(String::from("tmp"), DT_DIR);
    }
    for (name, is_dir) in crate::initramfs::children(path) {
        push(name, if is_dir { DT_DIR } else { DT_REG });
    }
    out
}

/// `getdents64(fd, dirp, count)` (`wide`) or `getdents(fd, dirp, count)`.
pub fn sys_getdents(p: &Process, fd: u64, dirp: u64, count: u64, wide: bool) -> SysResult {
    let (path, pos) = {
        let files = p.files.lock();
        let file = usize::try_from(fd)
            .ok()
            .and_then(|i| files.get(i))
            .and_then(|f| f.as_ref())
            .ok_or(EBADF)?;
        match &file.data {
            OpenData::Dir(path) => (Some(path.clone()), file.pos),
            _ => (None, 0),
        }
    };
    // Linux's count is an unsigned int; the buffer is checked before the
    // directory is read.
    let count = count as u32 as usize;
    super::fs::access_ok(dirp, count as u64)?;
    let path = path.ok_or(ENOTDIR)?;
    let all = entries(p, &path);
    let mut buf = Vec::new();
    let mut next = pos;
    for (i, e) in all.iter().enumerate().skip(pos) {
        let name = e.name.as_bytes();
        let (head, tail) = if wide { (19, 1) } else { (18, 2) };
        let reclen = (head + name.len() + tail).next_multiple_of(8);
        if buf.len() + reclen > count {
            break;
        }
        let at = buf.len();
        buf.resize(at + reclen, 0);
        let rec = &mut buf[at..];
        rec[0..8].copy_from_slice(&e.ino.to_le_bytes());
        rec[8..16].copy_from_slice(&((i + 1) as u64).to_le_bytes());
        rec[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        if wide {
            rec[18] = e.ty;
            rec[19..19 + name.len()].copy_from_slice(name);
        } else {
            rec[18..18 + name.len()].copy_from_slice(name);
            rec[reclen - 1] = e.ty;
        }
        next = i + 1;
    }
    if buf.is_empty() && next < all.len() {
        // Not even one record fits.
        return Err(Errno::EINVAL);
    }
    if !buf.is_empty() {
        copy_to_user(&*mm_of(p)?, dirp, &buf)?;
    }
    let mut files = p.files.lock();
    if let Some(Some(f)) = usize::try_from(fd).ok().and_then(|i| files.get_mut(i)) {
        f.pos = next;
    }
    Ok(buf.len() as u64)
}
