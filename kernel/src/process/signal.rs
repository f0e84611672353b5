//! Signal state (Linux's `kernel/signal.c`, the bookkeeping only):
//! dispositions (`rt_sigaction`), the blocked mask (`rt_sigprocmask`) and
//! the alternate stack (`sigaltstack`) are recorded and read back as Linux
//! would, but no handler is ever run: a fatal trap (a fault with no
//! mapping, an invalid opcode, ...) takes the default action of its signal
//! (the process is killed and its parent's `wait4` sees the signal)
//! whatever handler was installed, and `kill` of a child takes effect at
//! the child's next entry to or exit from the kernel. Rust's standard
//! library installs SIGSEGV/SIGBUS handlers at startup (for its stack
//! overflow message); here such a program dies of SIGSEGV without it.
#![forbid(unsafe_code)]

/// Number of signals (1..=64).
pub const NSIG: usize = 64;
pub const SIGKILL: u32 = 9;
pub const SIGSTOP: u32 = 19;

/// `sa_handler` values.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

/// One `struct sigaction` as the kernel sees it (x86_64 layout: handler,
/// flags, restorer, mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    pub fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, w) in [self.handler, self.flags, self.restorer, self.mask]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8; 32]) -> Self {
        use crate::uaccess::le64;
        SigAction {
            handler: le64(b, 0),
            flags: le64(b, 8),
            restorer: le64(b, 16),
            mask: le64(b, 24),
        }
    }
}

/// `SS_DISABLE`.
pub const SS_DISABLE: u32 = 2;
/// `SS_ONSTACK`.
pub const SS_ONSTACK: u32 = 1;
/// `SS_AUTODISARM`.
pub const SS_AUTODISARM: u32 = 1 << 31;
/// Linux's `MINSIGSTKSZ` on x86_64.
pub const MINSIGSTKSZ: u64 = 2048;

/// A process's signal state.
#[derive(Clone, Debug)]
pub struct Signals {
    /// Index `sig - 1`.
    pub actions: [SigAction; NSIG],
    /// Blocked signals: bit `sig - 1`.
    pub blocked: u64,
    /// `sigaltstack`: (sp, flags, size).
    pub altstack: (u64, u32, u64),
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            actions: [SigAction::default(); NSIG],
            blocked: 0,
            altstack: (0, SS_DISABLE, 0),
        }
    }
}

impl Signals {
    /// What `execve` keeps (`flush_signal_handlers`): handled signals go
    /// back to the default, ignored ones stay ignored; the blocked mask
    /// stays; the alternate stack is gone.
    pub fn exec(&mut self) {
        for a in &mut self.actions {
            let handler = if a.handler == SIG_IGN {
                SIG_IGN
            } else {
                SIG_DFL
            };
            *a = SigAction {
                handler,
                ..SigAction::default()
            };
        }
        self.altstack = (0, SS_DISABLE, 0);
    }
}

/// The signal's name, for the kernel's report lines.
pub fn name(sig: u32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        17 => "SIGCHLD",
        _ => "signal",
    }
}
