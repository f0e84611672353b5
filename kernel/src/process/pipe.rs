//! Pipes (Linux's `fs/pipe.c`, in miniature): a 64 KiB byte queue shared
//! by a read end and a write end. A read blocks until there are bytes or
//! no writer is left (then end of file); a write blocks while the queue is
//! full and fails with EPIPE once no reader is left (the caller raises
//! SIGPIPE, as Linux). Both sleep interruptibly: a signal ends them with
//! `ERESTARTSYS`. Each end counts its descriptors (fork and dup share
//! it); dropping the last one wakes the other side.
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use super::signal::ERESTARTSYS;
use core::sync::atomic::{AtomicUsize, Ordering};

use mm::errno::Errno;

use crate::sched::wait::WaitQueue;
use crate::sync::SpinLock;

/// `EPIPE`: no reader left.
pub const EPIPE: Errno = Errno(32);

/// Bytes a pipe holds (Linux's default: 16 pages).
pub const PIPE_BUF_BYTES: usize = 64 * 1024;

/// The shared queue.
pub struct Pipe {
    buf: SpinLock<VecDeque<u8>>,
    readers: AtomicUsize,
    writers: AtomicUsize,
    /// Woken on every change: bytes in or out, an end closed.
    wq: WaitQueue,
}

/// One end, shared by every descriptor that refers to it.
pub struct PipeEnd {
    pub pipe: Arc<Pipe>,
    pub write: bool,
}

impl Pipe {
    /// A new pipe: (read end, write end).
    pub fn pair() -> (Arc<PipeEnd>, Arc<PipeEnd>) {
        let pipe = Arc::new(Pipe {
            buf: SpinLock::new("pipe", VecDeque::new()),
            readers: AtomicUsize::new(1),
            writers: AtomicUsize::new(1),
            wq: WaitQueue::new("pipe"),
        });
        (
            Arc::new(PipeEnd {
                pipe: pipe.clone(),
                write: false,
            }),
            Arc::new(PipeEnd { pipe, write: true }),
        )
    }

    /// Takes up to `out.len()` bytes, sleeping while the pipe is empty and
    /// has a writer; 0 at end of file (or `None` if `nonblock` and empty:
    /// EAGAIN; a signal: `ERESTARTSYS`).
    pub fn read(&self, out: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        loop {
            {
                let mut b = self.buf.lock();
                if !b.is_empty() || self.writers.load(Ordering::Acquire) == 0 {
                    let n = out.len().min(b.len());
                    for (o, v) in out.iter_mut().zip(b.drain(..n)) {
                        *o = v;
                    }
                    drop(b);
                    self.wq.wake_all();
                    return Ok(n);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            self.wq
                .wait_until_interruptible(|| {
                    !self.buf.lock().is_empty() || self.writers.load(Ordering::Acquire) == 0
                })
                .map_err(|_| ERESTARTSYS)?;
        }
    }

    /// Appends up to `data.len()` bytes, sleeping while full; `EPIPE`
    /// when no reader is left, `Ok(0)` if `nonblock` and full.
    pub fn write(&self, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        loop {
            if self.readers.load(Ordering::Acquire) == 0 {
                return Err(EPIPE);
            }
            {
                let mut b = self.buf.lock();
                let room = PIPE_BUF_BYTES - b.len();
                if room > 0 {
                    let n = room.min(data.len());
                    b.extend(&data[..n]);
                    drop(b);
                    self.wq.wake_all();
                    return Ok(n);
                }
            }
            if nonblock {
                return Ok(0);
            }
            self.wq
                .wait_until_interruptible(|| {
                    self.buf.lock().len() < PIPE_BUF_BYTES
                        || self.readers.load(Ordering::Acquire) == 0
                })
                .map_err(|_| ERESTARTSYS)?;
        }
    }

    /// Whether every read end is closed (a write fails with EPIPE).
    pub fn readers_gone(&self) -> bool {
        self.readers.load(Ordering::Acquire) == 0
    }

    /// Whether a read would not block.
    pub fn readable(&self) -> bool {
        !self.buf.lock().is_empty() || self.writers.load(Ordering::Acquire) == 0
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let count = if self.write {
            &self.pipe.writers
        } else {
            &self.pipe.readers
        };
        count.fetch_sub(1, Ordering::AcqRel);
        self.pipe.wq.wake_all();
    }
}
