//! tmpfs (Linux's `mm/shmem.c` as a file system, with `fs/namei.c`'s
//! rules): two instances, mounted at `/tmp` and `/dev/shm`, whose
//! directories live in kernel memory and whose regular files are shmem
//! objects ([`ShmemFile`] over [`mm::shmem::ShmemRef`]), the same objects
//! as a memfd's, so reading, writing, truncating, sealing-free mapping
//! and `/proc/meminfo`'s `Shmem:` work alike.
//!
//! A directory entry holds an `Arc<ShmemFile>`; an open descriptor holds
//! another, and each mapping a reference to the object: `unlink` drops
//! only the entry's (`i_nlink` 0), so an open or mapped file lives on
//! until its last holder goes, then its pages are freed.
//!
//! Paths here are normalized absolute paths (`initramfs::normalize`);
//! [`split`] tells whether a path lies in a tmpfs and in which.
//! Errors are `fs/namei.c`'s: `ENOENT` for a missing component or
//! parent, `ENOTDIR` for a file used as a directory, `EEXIST`,
//! `EISDIR`, `ENOTEMPTY`, `EBUSY` for a mount point, `EXDEV` between
//! the two instances, `EINVAL` for moving a directory under itself.
//!
//! Simplifications: no hard links, symlinks, permissions or owners
//! (root owns everything; modes are kept for `stat`); a renamed
//! directory's files keep their old path in `/proc/PID/maps`.
//!
//! # Locking
//!
//! One lock per instance (`TREE`) over its whole tree, a leaf: a
//! truncation or the last put of an object happens after it is dropped.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mm::errno::Errno;
use mm::shmem::ShmemRef;
use spin::Once;

use crate::process::{self, ShmemFile};
use crate::sync::SpinLock;

pub const ENOENT: Errno = Errno(2);
pub const EEXIST: Errno = Errno(17);
pub const EXDEV: Errno = Errno(18);
pub const ENOTDIR: Errno = Errno(20);
pub const EISDIR: Errno = Errno(21);
pub const ENOTEMPTY: Errno = Errno(39);

/// The mount points, in the order of [`TREES`].
pub const MOUNTS: [&str; 2] = ["/tmp", "/dev/shm"];

/// A directory: its entries by name, its inode number and times.
pub struct Dir {
    pub ino: u64,
    entries: BTreeMap<String, Node>,
    pub mtime: u64,
    pub ctime: u64,
}

/// What a name in a tmpfs directory is.
#[derive(Clone)]
pub enum Node {
    File(Arc<ShmemFile>),
    /// A directory, boxed in the tree (its entries are in it).
    Dir(Arc<SpinLock<Dir>>),
}

/// A looked-up name, for `stat` and `open`: a file's inode, or a
/// directory's inode number, link count (2 + subdirectories) and times.
pub enum Found {
    File(Arc<ShmemFile>),
    Dir {
        ino: u64,
        nlink: u64,
        /// `(2 + entries) * BOGO_DIRENT_SIZE` (20), as shmem reports it.
        size: u64,
        mtime: u64,
        ctime: u64,
    },
}

static TREES: Once<[Arc<SpinLock<Dir>>; 2]> = Once::new();

fn now() -> u64 {
    crate::time::rtc::realtime_ns()
}

fn new_dir() -> Arc<SpinLock<Dir>> {
    let t = now();
    Arc::new(SpinLock::new(
        "tmpfs.dir",
        Dir {
            ino: process::vm().next_ino(),
            entries: BTreeMap::new(),
            mtime: t,
            ctime: t,
        },
    ))
}

fn trees() -> &'static [Arc<SpinLock<Dir>>; 2] {
    TREES.call_once(|| [new_dir(), new_dir()])
}

/// The instance `path` lies in and its components below the mount
/// point; `None` outside every tmpfs.
pub fn split(path: &str) -> Option<(usize, Vec<&str>)> {
    MOUNTS.iter().enumerate().find_map(|(i, m)| {
        let rest = path.strip_prefix(m)?;
        if rest.is_empty() {
            return Some((i, Vec::new()));
        }
        let rest = rest.strip_prefix('/')?;
        Some((i, rest.split('/').filter(|c| !c.is_empty()).collect()))
    })
}

/// Whether `path` is a mount point.
pub fn is_mount_point(path: &str) -> bool {
    MOUNTS.contains(&path)
}

/// The directory at `comps` under root `root`.
fn walk_dir(root: &Arc<SpinLock<Dir>>, comps: &[&str]) -> Result<Arc<SpinLock<Dir>>, Errno> {
    let mut d = root.clone();
    for c in comps {
        let next = match d.lock().entries.get(*c) {
            Some(Node::Dir(sub)) => sub.clone(),
            Some(Node::File(_)) => return Err(ENOTDIR),
            None => return Err(ENOENT),
        };
        d = next;
    }
    Ok(d)
}

fn describe(d: &Arc<SpinLock<Dir>>) -> Found {
    let d = d.lock();
    let subdirs = d
        .entries
        .values()
        .filter(|n| matches!(n, Node::Dir(_)))
        .count() as u64;
    Found::Dir {
        ino: d.ino,
        nlink: 2 + subdirs,
        size: (2 + d.entries.len() as u64) * 20,
        mtime: d.mtime,
        ctime: d.ctime,
    }
}

/// What is at `path` (in a tmpfs: the caller checked [`split`]).
pub fn lookup(path: &str) -> Result<Found, Errno> {
    let (m, comps) = split(path).ok_or(ENOENT)?;
    let root = &trees()[m];
    let Some((last, dirs)) = comps.split_last() else {
        return Ok(describe(root));
    };
    let parent = walk_dir(root, dirs)?;
    let node = parent.lock().entries.get(*last).cloned();
    match node {
        Some(Node::File(f)) => Ok(Found::File(f)),
        Some(Node::Dir(d)) => Ok(describe(&d)),
        None => Err(ENOENT),
    }
}

/// The parent directory of `path` and the last component; `EEXIST` for
/// a mount point (it exists), `ENOENT`/`ENOTDIR` for a bad parent.
fn parent_of(path: &str) -> Result<(Arc<SpinLock<Dir>>, String, usize), Errno> {
    let (m, comps) = split(path).ok_or(ENOENT)?;
    let Some((last, dirs)) = comps.split_last() else {
        return Err(EEXIST);
    };
    Ok((walk_dir(&trees()[m], dirs)?, String::from(*last), m))
}

/// Creates a regular file at `path` with permission bits `mode` unless
/// something is there (`shmem_create()`); returns the file and whether
/// it is new. `excl`: what exists is `EEXIST` (`O_EXCL`).
pub fn create(path: &str, mode: u32, excl: bool) -> Result<(Arc<ShmemFile>, bool), Errno> {
    let (dir, name, _) =
        parent_of(path).map_err(|e| if e == EEXIST && !excl { EISDIR } else { e })?;
    let mut d = dir.lock();
    match d.entries.get(&name) {
        Some(_) if excl => return Err(EEXIST),
        Some(Node::File(f)) => return Ok((f.clone(), false)),
        Some(Node::Dir(_)) => return Err(EISDIR),
        None => {}
    }
    if name.len() > 255 {
        return Err(Errno(36)); // ENAMETOOLONG
    }
    let obj = ShmemRef::new_file(process::vm(), String::from(path), 0).ok_or(Errno::ENOMEM)?;
    let file = Arc::new(ShmemFile::new(obj, 1));
    file.mode.store(mode & 0o7777, Ordering::Relaxed);
    d.entries.insert(name, Node::File(file.clone()));
    let t = now();
    (d.mtime, d.ctime) = (t, t);
    Ok((file, true))
}

/// An unnamed file in the directory at `path` (`O_TMPFILE`): nlink 0,
/// freed when its last descriptor and mapping go.
pub fn tmpfile(path: &str, mode: u32) -> Result<Arc<ShmemFile>, Errno> {
    match lookup(path)? {
        Found::Dir { .. } => {}
        Found::File(_) => return Err(ENOTDIR),
    }
    let obj = ShmemRef::new_file(process::vm(), String::new(), 0).ok_or(Errno::ENOMEM)?;
    // Linux's d_path of an O_TMPFILE file: "/#INO (deleted)" under it.
    obj.set_name(alloc::format!("{path}/#{} (deleted)", obj.ino()));
    let file = Arc::new(ShmemFile::new(obj, 0));
    file.mode.store(mode & 0o7777, Ordering::Relaxed);
    Ok(file)
}

/// `mkdir(path)` (`shmem_mkdir()`).
pub fn mkdir(path: &str) -> Result<(), Errno> {
    let (dir, name, _) = parent_of(path)?;
    let mut d = dir.lock();
    if d.entries.contains_key(&name) {
        return Err(EEXIST);
    }
    d.entries.insert(name, Node::Dir(new_dir()));
    let t = now();
    (d.mtime, d.ctime) = (t, t);
    Ok(())
}

/// `unlink(path)` (`dir == false`) or `rmdir(path)` (`dir == true`):
/// the name goes; a file lives on while open or mapped. `EISDIR` for
/// unlinking a directory, `ENOTDIR` for rmdir of a file, `ENOTEMPTY`,
/// `EBUSY` for a mount point.
pub fn remove(path: &str, dir: bool) -> Result<(), Errno> {
    let (parent, name, _) = parent_of(path).map_err(|e| {
        if e == EEXIST {
            if dir { Errno::EBUSY } else { EISDIR }
        } else {
            e
        }
    })?;
    let gone = {
        let mut d = parent.lock();
        match (d.entries.get(&name), dir) {
            (None, _) => return Err(ENOENT),
            (Some(Node::Dir(_)), false) => return Err(EISDIR),
            (Some(Node::File(_)), true) => return Err(ENOTDIR),
            (Some(Node::Dir(sub)), true) if !sub.lock().entries.is_empty() => {
                return Err(ENOTEMPTY);
            }
            _ => {}
        }
        let t = now();
        (d.mtime, d.ctime) = (t, t);
        d.entries.remove(&name)
    };
    if let Some(Node::File(f)) = &gone {
        f.nlink.store(0, Ordering::Relaxed);
        f.ctime.store(now(), Ordering::Relaxed);
        f.obj.set_name(alloc::format!("{path} (deleted)"));
    }
    // The entry's hold drops here, outside the lock.
    drop(gone);
    Ok(())
}

/// `rename(from, to)` (`shmem_rename2()` with `vfs_rename()`'s checks);
/// `noreplace`: `RENAME_NOREPLACE` (`EEXIST` if `to` exists).
pub fn rename(from: &str, to: &str, noreplace: bool) -> Result<(), Errno> {
    let (fm, _) = split(from).ok_or(ENOENT)?;
    let (tm, _) = split(to).ok_or(EXDEV)?;
    if is_mount_point(from) || is_mount_point(to) {
        return Err(Errno::EBUSY);
    }
    if fm != tm {
        return Err(EXDEV);
    }
    let (fdir, fname, _) = parent_of(from)?;
    let (tdir, tname, _) = parent_of(to)?;
    let moving = fdir.lock().entries.get(&fname).cloned().ok_or(ENOENT)?;
    if from == to {
        return Ok(());
    }
    if matches!(moving, Node::Dir(_)) && to.starts_with(from) && to.as_bytes()[from.len()] == b'/' {
        // A directory into itself.
        return Err(Errno::EINVAL);
    }
    let target = tdir.lock().entries.get(&tname).cloned();
    match (&moving, &target) {
        (_, Some(_)) if noreplace => return Err(EEXIST),
        (Node::File(_), Some(Node::Dir(_))) => return Err(EISDIR),
        (Node::Dir(_), Some(Node::File(_))) => return Err(ENOTDIR),
        (Node::Dir(_), Some(Node::Dir(d))) if !d.lock().entries.is_empty() => {
            return Err(ENOTEMPTY);
        }
        (Node::File(a), Some(Node::File(b))) if Arc::ptr_eq(a, b) => return Ok(()),
        _ => {}
    }
    let t = now();
    let node = {
        let mut d = fdir.lock();
        (d.mtime, d.ctime) = (t, t);
        d.entries.remove(&fname).ok_or(ENOENT)?
    };
    let replaced = {
        let mut d = tdir.lock();
        (d.mtime, d.ctime) = (t, t);
        d.entries.insert(tname, node.clone())
    };
    if let Node::File(f) = &node {
        f.ctime.store(t, Ordering::Relaxed);
        f.obj.set_name(String::from(to));
    }
    if let Some(Node::File(old)) = &replaced {
        old.nlink.store(0, Ordering::Relaxed);
        old.obj.set_name(alloc::format!("{to} (deleted)"));
    }
    drop(replaced);
    Ok(())
}

/// The children of the directory at `path`: name, whether a directory,
/// inode number.
pub fn children(path: &str) -> Result<Vec<(String, bool, u64)>, Errno> {
    let (m, comps) = split(path).ok_or(ENOENT)?;
    let d = walk_dir(&trees()[m], &comps)?;
    let d = d.lock();
    Ok(d.entries
        .iter()
        .map(|(name, n)| match n {
            Node::File(f) => (name.clone(), false, f.obj.ino()),
            Node::Dir(sub) => (name.clone(), true, sub.lock().ino),
        })
        .collect())
}

/// Empties both instances (the unmount at shutdown): every name goes, so
/// files no descriptor or mapping holds free their pages. `run_init`
/// calls it after init's exit, before its frame check: what a program
/// leaves in `/tmp` is not a leak.
pub fn release_all() {
    for root in trees() {
        let gone = core::mem::take(&mut root.lock().entries);
        drop(gone);
    }
}
