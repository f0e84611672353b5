//! The memory character devices of major 1 (Linux's `drivers/char/mem.c`,
//! and `drivers/char/random.c` for minors 8 and 9), which ordinary
//! programs open: `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random` and
//! `/dev/urandom`.
//!
//! | path         | rdev | read                  | write             |
//! |--------------|------|-----------------------|-------------------|
//! | /dev/null    | 1:3  | end of file           | all bytes taken   |
//! | /dev/zero    | 1:5  | zeros                 | all bytes taken   |
//! | /dev/full    | 1:7  | zeros                 | `ENOSPC`          |
//! | /dev/random  | 1:8  | the kernel's RNG      | taken (read)      |
//! | /dev/urandom | 1:9  | the kernel's RNG      | taken (read)      |
//!
//! As on Linux: each is `S_IFCHR | 0666`; `lseek` succeeds and leaves the
//! position at 0 (`null_lseek`, `noop_llseek`); `ioctl` is `ENOTTY`,
//! except on the random devices, whose ioctl answers an unknown request
//! with `EINVAL`; a write to the random devices reads the caller's bytes
//! (Linux mixes them into the pool; `EFAULT` for a bad buffer); reads
//! and writes of `/dev/null` never touch the buffer (only `access_ok`'s
//! range check applies, in the caller). The generator is `crate::random`
//! (RDRAND), always ready, so `/dev/random` never blocks.
#![forbid(unsafe_code)]

use mm::errno::Errno;

/// `ENOSPC`.
pub const ENOSPC: Errno = Errno(28);

/// One of the memory devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemDev {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
}

/// Every device with its name under `/dev`.
pub const ALL: [(MemDev, &str); 5] = [
    (MemDev::Null, "null"),
    (MemDev::Zero, "zero"),
    (MemDev::Full, "full"),
    (MemDev::Random, "random"),
    (MemDev::Urandom, "urandom"),
];

/// The major number of the memory devices (`MEM_MAJOR`).
const MEM_MAJOR: u32 = 1;

impl MemDev {
    /// The device at `path` (normalized, absolute), if any.
    pub fn lookup(path: &str) -> Option<MemDev> {
        let name = path.strip_prefix("/dev/")?;
        ALL.iter().find(|(_, n)| *n == name).map(|(d, _)| *d)
    }

    /// The minor number (`devlist[]` in `mem.c`).
    pub fn minor(self) -> u32 {
        match self {
            MemDev::Null => 3,
            MemDev::Zero => 5,
            MemDev::Full => 7,
            MemDev::Random => 8,
            MemDev::Urandom => 9,
        }
    }

    /// `st_rdev` as `stat` reports it (`new_encode_dev`: for majors and
    /// minors below 256, `major << 8 | minor`).
    pub fn rdev(self) -> u64 {
        u64::from(MEM_MAJOR << 8 | self.minor())
    }

    /// Fills `buf` with what a read returns; returns how many bytes
    /// (0: end of file).
    pub fn read(self, buf: &mut [u8]) -> usize {
        match self {
            MemDev::Null => 0,
            MemDev::Zero | MemDev::Full => {
                buf.fill(0);
                buf.len()
            }
            MemDev::Random | MemDev::Urandom => {
                crate::random::fill(buf);
                buf.len()
            }
        }
    }

    /// What a write of `count` bytes returns, before reading the caller's
    /// buffer: `Ok(count)` done without reading it, `Err` an error, `None`
    /// if the bytes must be read (the random devices).
    pub fn write(self, count: u64) -> Option<Result<u64, Errno>> {
        match self {
            MemDev::Null | MemDev::Zero => Some(Ok(count)),
            MemDev::Full => Some(Err(ENOSPC)),
            MemDev::Random | MemDev::Urandom => None,
        }
    }

    /// What `ioctl` answers (no request is known).
    pub fn ioctl_error(self) -> Errno {
        match self {
            MemDev::Random | MemDev::Urandom => Errno::EINVAL,
            _ => Errno(25), // ENOTTY
        }
    }
}
