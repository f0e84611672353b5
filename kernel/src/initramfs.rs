//! The initramfs: a `newc` cpio archive (Linux's `init/initramfs.c`,
//! `Documentation/driver-api/early-userspace/buffer-format.rst`) that the
//! runner packs (`cargo run -- --init PROGRAM --file HOST:GUEST`) and QEMU
//! hands over as fw_cfg file `opt/mmkernel/initrd`. It is unpacked at boot
//! into a read-only in-memory tree of files and directories, which `open`,
//! `stat` and `execve` look up. `mkdir` may add directories; files are
//! never written.
//!
//! File contents stay in the 64 KiB pieces fw_cfg was read into
//! ([`FileData`]): a program of many megabytes needs no physically
//! contiguous buffer. The pseudo file systems' mount points (`/proc`,
//! `/sys`, `/dev`) always exist.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use mm::errno::Errno;

use crate::sync::SpinLock;

/// The fw_cfg file that holds the archive.
pub const INITRD_FILE: &[u8] = b"opt/mmkernel/initrd";

pub const ENOENT: Errno = Errno(2);
pub const EEXIST: Errno = Errno(17);
pub const ENOTDIR: Errno = Errno(20);
pub const EROFS: Errno = Errno(30);
pub const ENAMETOOLONG: Errno = Errno(36);

/// Bytes of a file: a static slice (the built-in init) or pieces.
pub enum FileData {
    Static(&'static [u8]),
    Pieces {
        pieces: Vec<Arc<[u8]>>,
        /// Offset of the file in the first piece.
        start: usize,
        len: usize,
    },
}

impl FileData {
    pub fn len(&self) -> usize {
        match self {
            FileData::Static(s) => s.len(),
            FileData::Pieces { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the bytes at `off..` into `buf`; returns how many (0 at or
    /// past the end).
    pub fn read_at(&self, off: usize, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len().saturating_sub(off));
        match self {
            FileData::Static(s) => buf[..n].copy_from_slice(&s[off..off + n]),
            FileData::Pieces { pieces, start, .. } => {
                read_pieces(pieces, start + off, &mut buf[..n])
            }
        }
        n
    }
}

/// Copies the bytes at `at` of the concatenation of `pieces` (each
/// [`crate::qemu::FW_CFG_CHUNK`] long but the last) into `buf`; the caller
/// checked the range.
fn read_pieces(pieces: &[Arc<[u8]>], at: usize, buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let a = at + done;
        let piece = &pieces[a / crate::qemu::FW_CFG_CHUNK];
        let i = a % crate::qemu::FW_CFG_CHUNK;
        let k = (buf.len() - done).min(piece.len() - i);
        buf[done..done + k].copy_from_slice(&piece[i..i + k]);
        done += k;
    }
}

/// A node of the tree.
#[derive(Clone)]
pub enum Node {
    /// A regular file and its permission bits.
    File(Arc<FileData>, u32),
    Dir,
}

/// Path -> node; paths are normalized (absolute, no `.`, `..` or `//`).
static TREE: SpinLock<BTreeMap<String, Node>> = SpinLock::new("initramfs", BTreeMap::new());

/// `path` made absolute (relative paths start at `/`: every process's
/// working directory) and normalized; `ENOENT` for an empty path.
pub fn normalize(path: &[u8]) -> Result<String, Errno> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    let text = core::str::from_utf8(path).map_err(|_| ENOENT)?;
    let mut parts: Vec<&str> = Vec::new();
    for p in text.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p if p.len() > 255 => return Err(ENAMETOOLONG),
            p => parts.push(p),
        }
    }
    let mut out = String::new();
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The node at normalized `path`.
pub fn lookup(path: &str) -> Option<Node> {
    TREE.lock().get(path).cloned()
}

/// `mkdir(path)`: `EEXIST` if anything is there, `ENOENT` without the
/// parent directory, `ENOTDIR` if the parent is a file.
pub fn mkdir(path: &str) -> Result<(), Errno> {
    let mut tree = TREE.lock();
    if tree.contains_key(path) {
        return Err(EEXIST);
    }
    let parent = match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => return Err(ENOENT),
    };
    match tree.get(parent) {
        Some(Node::Dir) => {}
        Some(Node::File(..)) => return Err(ENOTDIR),
        None => return Err(ENOENT),
    }
    tree.insert(String::from(path), Node::Dir);
    Ok(())
}

/// Unpacks the archive from fw_cfg, if the runner packed one. Call once,
/// from the boot task (fw_cfg's rule). Returns the number of files.
pub fn init() -> usize {
    {
        let mut tree = TREE.lock();
        for d in ["/", "/proc", "/sys", "/dev"] {
            tree.insert(String::from(d), Node::Dir);
        }
    }
    let Some(pieces) = crate::qemu::fw_cfg_file_chunks(INITRD_FILE) else {
        return 0;
    };
    let pieces: Vec<Arc<[u8]>> = pieces.into_iter().map(Arc::from).collect();
    match unpack(&pieces) {
        Ok(n) => n,
        Err(at) => {
            log::error!("initramfs: bad cpio archive at offset {at}; unpacked what came before");
            0
        }
    }
}

/// Reads `buf.len()` bytes at `off` of the archive.
fn archive_read(pieces: &[Arc<[u8]>], total: usize, off: usize, buf: &mut [u8]) -> bool {
    if off.checked_add(buf.len()).is_none_or(|end| end > total) {
        return false;
    }
    read_pieces(pieces, off, buf);
    true
}

/// Parses the `newc` entries; `Err(offset)` at a malformed one.
fn unpack(pieces: &[Arc<[u8]>]) -> Result<usize, usize> {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut off = 0;
    let mut files = 0;
    loop {
        let mut h = [0u8; 110];
        if !archive_read(pieces, total, off, &mut h) || &h[..6] != b"070701" {
            return Err(off);
        }
        let field = |i: usize| -> Result<usize, usize> {
            let s = core::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).map_err(|_| off)?;
            usize::from_str_radix(s, 16).map_err(|_| off)
        };
        let (mode, filesize, namesize) = (field(1)?, field(6)?, field(11)?);
        if namesize == 0 || namesize > 4096 {
            return Err(off);
        }
        let mut name = alloc::vec![0u8; namesize];
        if !archive_read(pieces, total, off + 110, &mut name) {
            return Err(off);
        }
        name.pop(); // the NUL
        let data_at = (off + 110 + namesize).next_multiple_of(4);
        let next = data_at
            .checked_add(filesize)
            .ok_or(off)?
            .next_multiple_of(4);
        if name == b"TRAILER!!!" {
            return Ok(files);
        }
        if data_at + filesize > total {
            return Err(off);
        }
        let path = normalize(&name).map_err(|_| off)?;
        let node = match mode & 0o170000 {
            0o040000 => Some(Node::Dir),
            0o100000 => {
                files += 1;
                let first = data_at / crate::qemu::FW_CFG_CHUNK;
                let last = (data_at + filesize).div_ceil(crate::qemu::FW_CFG_CHUNK);
                let data = FileData::Pieces {
                    pieces: Vec::from(&pieces[first..last.max(first + 1).min(pieces.len())]),
                    start: data_at % crate::qemu::FW_CFG_CHUNK,
                    len: filesize,
                };
                Some(Node::File(Arc::new(data), (mode & 0o7777) as u32))
            }
            // Symlinks, devices, fifos: not supported, skipped.
            _ => None,
        };
        if let Some(node) = node {
            TREE.lock().insert(path, node);
        }
        off = next;
    }
}

/// The children of directory `dir` (normalized): (name, is a directory),
/// in name order.
pub fn children(dir: &str) -> Vec<(String, bool)> {
    let prefix = if dir == "/" {
        String::from("/")
    } else {
        alloc::format!("{dir}/")
    };
    TREE.lock()
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
        .map(|(k, n)| (String::from(&k[prefix.len()..]), matches!(n, Node::Dir)))
        .collect()
}

/// Every path in the tree (for the boot log).
pub fn paths() -> Vec<String> {
    TREE.lock().keys().cloned().collect()
}
