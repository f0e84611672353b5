//! Signals: generation, pending sets and dequeueing (Linux's
//! `kernel/signal.c`). The x86_64 frame a handler runs on, `rt_sigreturn`
//! and the return-to-user loop that delivers are in `crate::arch::signal`.
//!
//! # State
//!
//! - [`ProcessSignals`] (Linux's `sighand_struct` + `signal_struct`): the
//!   dispositions, the process-wide pending set (`kill`), the group stop
//!   state and `SIGNAL_UNKILLABLE` for init.
//! - [`ThreadSignals`] (the signal fields of `task_struct`): the blocked
//!   mask, the thread's own pending set (`tkill`, faults), the alternate
//!   stack, the mask `sigsuspend` saved, the restart block.
//!
//! Each thread's `ThreadSignals` is its `Thread::sig`.
//!
//! # Sending ([`send_signal`])
//!
//! As Linux's `send_signal_locked` and `complete_signal`: SIGKILL and
//! SIGSTOP can be neither caught, blocked nor ignored; a signal whose
//! disposition ignores it (`SIG_IGN`, or `SIG_DFL` with an "ignore"
//! default) is dropped unless blocked; a stop signal cancels pending
//! SIGCONT and SIGCONT cancels pending stops (and resumes a stopped
//! process); a standard signal already pending is not queued twice, a
//! real-time one queues with its `siginfo`; a fatal signal (default
//! action term or core, not blocked) kills the whole process at once
//! ([`Process::fatal_signal`], Linux's `SIGNAL_GROUP_EXIT`): every thread
//! is woken and dies on its way out. Otherwise the thread that takes the
//! signal (the target of `tgkill`, or for `kill` the first thread that
//! does not block it; none: it waits until one unblocks it) is woken if
//! it sleeps interruptibly ([`sched::signal_wake_up`]).
//!
//! # Locking
//!
//! 1. `Process::signals` (the [`ProcessSignals`]),
//! 2. `Process::threads` (only to copy the list of threads),
//! 3. `Thread::sig` (the [`ThreadSignals`]), one thread's at a time,
//!
//! taken in this order; they are leaves otherwise (no sleeping, no other
//! lock under them but the runqueue lock of a wakeup).
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use mm::errno::Errno;

use super::Process;
use super::thread::Thread;
use crate::sched;

/// Number of signals (1..=64).
pub const NSIG: usize = 64;
pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGABRT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGUSR1: u32 = 10;
pub const SIGSEGV: u32 = 11;
pub const SIGUSR2: u32 = 12;
pub const SIGPIPE: u32 = 13;
pub const SIGALRM: u32 = 14;
pub const SIGTERM: u32 = 15;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGTSTP: u32 = 20;
pub const SIGTTIN: u32 = 21;
pub const SIGTTOU: u32 = 22;
pub const SIGURG: u32 = 23;
pub const SIGXCPU: u32 = 24;
pub const SIGXFSZ: u32 = 25;
pub const SIGWINCH: u32 = 28;
pub const SIGSYS: u32 = 31;
/// The first real-time signal (the kernel's `SIGRTMIN`; libcs reserve a
/// few above it).
pub const SIGRTMIN: u32 = 32;

/// `sa_handler` values.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

/// `sa_flags` bits.
pub const SA_NOCLDSTOP: u64 = 1;
pub const SA_NOCLDWAIT: u64 = 2;
pub const SA_SIGINFO: u64 = 4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `si_code` values: sent by `kill`, by the kernel, by `sigqueue`, by
/// `tkill`; fault codes.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TKILL: i32 = -6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRERR: i32 = 2;
pub const ILL_ILLOPN: i32 = 2;
pub const FPE_INTDIV: i32 = 1;
pub const TRAP_BRKPT: i32 = 1;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// The restart codes a sleeping syscall returns when a signal interrupts
/// it (never seen by user mode: the signal code turns them into `EINTR`
/// or a restart, `crate::arch::signal`).
pub const ERESTARTSYS: Errno = Errno(512);
pub const ERESTARTNOINTR: Errno = Errno(513);
pub const ERESTARTNOHAND: Errno = Errno(514);
pub const ERESTART_RESTARTBLOCK: Errno = Errno(516);

/// The bit of `sig` in a signal set.
pub const fn sigmask(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// Signals that can never be blocked, caught or ignored.
pub const UNBLOCKABLE: u64 = sigmask(SIGKILL) | sigmask(SIGSTOP);

/// Synchronous (fault) signals, dequeued first (Linux's
/// `SYNCHRONOUS_MASK`).
const SYNCHRONOUS: u64 = sigmask(SIGSEGV)
    | sigmask(SIGBUS)
    | sigmask(SIGILL)
    | sigmask(SIGTRAP)
    | sigmask(SIGFPE)
    | sigmask(SIGSYS);

/// Stop signals.
const STOP_MASK: u64 = sigmask(SIGSTOP) | sigmask(SIGTSTP) | sigmask(SIGTTIN) | sigmask(SIGTTOU);

/// Most queued real-time signals per process (`RLIMIT_SIGPENDING`'s
/// default for init, as `DEFAULT_RLIMITS`).
const MAX_QUEUED: usize = 3870;

/// What a signal does with `SIG_DFL` (Linux's `sig_kernel_*` tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Term,
    /// Terminate with a core dump (none is written: `RLIMIT_CORE` is 0,
    /// so the wait status has no core bit, as on Linux).
    Core,
    Ignore,
    Stop,
    Continue,
}

/// The default action of `sig`.
pub fn default_action(sig: u32) -> DefaultAction {
    match sig {
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => DefaultAction::Core,
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGCONT => DefaultAction::Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        _ => DefaultAction::Term,
    }
}

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

/// A `siginfo_t` (128 bytes on x86_64): number, errno, code, then the
/// union's first 32 bytes as words (offset 16 on): `si_pid`/`si_uid`
/// (word 0, low/high half) and `si_value` or `si_status` (word 1) for
/// `kill`, `sigqueue` and SIGCHLD; `si_addr` (word 0) for faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: u32,
    pub errno: i32,
    pub code: i32,
    pub fields: [u64; 4],
}

impl SigInfo {
    /// Sent by a process (`kill`: `SI_USER`; `tkill`: `SI_TKILL`), uid 0.
    pub fn user(sig: u32, code: i32, pid: u32) -> Self {
        SigInfo {
            signo: sig,
            code,
            fields: [u64::from(pid), 0, 0, 0],
            ..SigInfo::default()
        }
    }

    /// Sent by the kernel (`SI_KERNEL`).
    pub fn kernel(sig: u32) -> Self {
        SigInfo {
            signo: sig,
            code: SI_KERNEL,
            ..SigInfo::default()
        }
    }

    /// A fault at `addr` (`force_sig_fault`).
    pub fn fault(sig: u32, code: i32, addr: u64) -> Self {
        SigInfo {
            signo: sig,
            code,
            fields: [addr, 0, 0, 0],
            ..SigInfo::default()
        }
    }

    /// SIGCHLD about child `pid`: `code` CLD_*, `status` the exit code or
    /// signal.
    pub fn chld(code: i32, pid: u32, status: i32) -> Self {
        SigInfo {
            signo: SIGCHLD,
            code,
            fields: [u64::from(pid), status as u32 as u64, 0, 0],
            ..SigInfo::default()
        }
    }

    /// The 128 bytes user mode sees.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[4..8].copy_from_slice(&self.errno.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        for (i, w) in self.fields.iter().enumerate() {
            b[16 + i * 8..24 + i * 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// A `siginfo_t` from user mode (`rt_sigqueueinfo`): the first 48
    /// bytes are kept.
    pub fn from_bytes(sig: u32, b: &[u8; 128]) -> Self {
        use crate::uaccess::le64;
        SigInfo {
            signo: sig,
            errno: le64(b, 4) as i32,
            code: le64(b, 8) as i32,
            fields: [le64(b, 16), le64(b, 24), le64(b, 32), le64(b, 40)],
        }
    }
}

/// A set of pending signals (Linux's `struct sigpending`): the mask, and
/// one `siginfo` per queued instance (a standard signal at most once).
#[derive(Clone, Debug, Default)]
pub struct SigPending {
    pub mask: u64,
    queue: VecDeque<SigInfo>,
}

impl SigPending {
    /// Queues `info`; a standard signal already pending is dropped (it
    /// coalesces). `EAGAIN` when the real-time queue is full.
    fn add(&mut self, info: SigInfo) -> Result<(), Errno> {
        let bit = sigmask(info.signo);
        if info.signo < SIGRTMIN && self.mask & bit != 0 {
            return Ok(());
        }
        if self.queue.len() >= MAX_QUEUED && info.signo >= SIGRTMIN {
            return Err(Errno::EAGAIN);
        }
        self.queue.push_back(info);
        self.mask |= bit;
        Ok(())
    }

    /// Drops every instance of the signals in `mask`.
    fn flush(&mut self, mask: u64) {
        self.mask &= !mask;
        self.queue.retain(|i| sigmask(i.signo) & mask == 0);
    }

    /// Takes the first instance of the signal to deliver among `allowed`:
    /// synchronous ones first, then the lowest number (Linux's
    /// `next_signal` + `collect_signal`).
    fn dequeue(&mut self, allowed: u64) -> Option<SigInfo> {
        let ready = self.mask & allowed;
        if ready == 0 {
            return None;
        }
        let pick = if ready & SYNCHRONOUS != 0 {
            ready & SYNCHRONOUS
        } else {
            ready
        };
        let sig = pick.trailing_zeros() + 1;
        let pos = self.queue.iter().position(|i| i.signo == sig);
        let info = match pos {
            Some(i) => self.queue.remove(i).unwrap_or_default(),
            None => SigInfo::kernel(sig),
        };
        if !self.queue.iter().any(|i| i.signo == sig) {
            self.mask &= !sigmask(sig);
        }
        Some(info)
    }
}

/// The group-stop state (Linux's `SIGNAL_STOP_STOPPED` and the
/// `SIGNAL_CLD_*` notifications for `wait4`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StopState {
    /// Stopped by this signal (0: running).
    pub stopped_by: u32,
    /// A stop `wait4(WUNTRACED)` has not reported yet.
    pub stop_unreported: bool,
    /// A continue `wait4(WCONTINUED)` has not reported yet.
    pub cont_unreported: bool,
    /// The parent got its SIGCHLD for this stop.
    pub notified: bool,
}

/// A process's signal state; see the module docs.
#[derive(Clone, Debug)]
pub struct ProcessSignals {
    /// Index `sig - 1`.
    pub actions: [SigAction; NSIG],
    /// Signals sent to the process as a whole (`kill`).
    pub shared_pending: SigPending,
    /// Job control.
    pub stop: StopState,
    /// Init's `SIGNAL_UNKILLABLE`: signals with the default action that
    /// a process sends are ignored; a fault it cannot handle clears it.
    pub unkillable: bool,
}

impl Default for ProcessSignals {
    fn default() -> Self {
        ProcessSignals {
            actions: [SigAction::default(); NSIG],
            shared_pending: SigPending::default(),
            stop: StopState::default(),
            unkillable: false,
        }
    }
}

impl ProcessSignals {
    /// Turns a copy of the parent's state into the child's (`fork`): the
    /// dispositions stay, nothing is pending, no stop, not init.
    pub fn forget_for_fork(&mut self) {
        self.shared_pending = SigPending::default();
        self.stop = StopState::default();
        self.unkillable = false;
    }

    /// What `execve` keeps (`flush_signal_handlers`): handled signals go
    /// back to the default, ignored ones stay ignored.
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
    }

    /// Whether `sig` would be dropped on arrival (Linux's
    /// `sig_task_ignored`; `force` for the kernel's own signals).
    fn ignores(&self, sig: u32, force: bool) -> bool {
        let handler = self.actions[sig as usize - 1].handler;
        if self.unkillable && handler == SIG_DFL && !(force && sigmask(sig) & UNBLOCKABLE != 0) {
            return true;
        }
        if sigmask(sig) & UNBLOCKABLE != 0 {
            return false;
        }
        handler == SIG_IGN || (handler == SIG_DFL && default_action(sig) == DefaultAction::Ignore)
    }

    /// The signals whose disposition is `SIG_IGN` (`/proc`'s `SigIgn`).
    pub fn ignored_mask(&self) -> u64 {
        mask_where(&self.actions, |a| a.handler == SIG_IGN)
    }

    /// The signals with a handler (`/proc`'s `SigCgt`).
    pub fn caught_mask(&self) -> u64 {
        mask_where(&self.actions, |a| a.handler > SIG_IGN)
    }
}

fn mask_where(actions: &[SigAction; NSIG], f: impl Fn(&SigAction) -> bool) -> u64 {
    actions
        .iter()
        .enumerate()
        .filter(|(_, a)| f(a))
        .fold(0, |m, (i, _)| m | 1 << i)
}

/// `sigaltstack` state (Linux's `sas_ss_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub size: u64,
    /// 0, or `SS_AUTODISARM`; [`SS_DISABLE`] when there is none.
    pub flags: u32,
}

impl AltStack {
    pub const NONE: AltStack = AltStack {
        sp: 0,
        size: 0,
        flags: SS_DISABLE,
    };

    /// Whether `sp` is on the stack (Linux's `on_sig_stack`).
    pub fn on_stack(&self, sp: u64) -> bool {
        self.size != 0 && sp > self.sp && sp - self.sp <= self.size
    }

    /// `ss_flags` as user mode sees it for a thread at `sp` (Linux's
    /// `sas_ss_flags`).
    pub fn ss_flags(&self, sp: u64) -> u32 {
        if self.size == 0 {
            SS_DISABLE
        } else if self.on_stack(sp) {
            SS_ONSTACK
        } else {
            self.flags
        }
    }
}

/// What `restart_syscall` resumes (Linux's `restart_block`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartBlock {
    /// A `nanosleep` or `clock_nanosleep` until `deadline_ns`, writing the
    /// time left to `rmtp` if it is interrupted again.
    Nanosleep { deadline_ns: u64, rmtp: u64 },
    /// A `FUTEX_WAIT` with a timeout, until `deadline_ns` on the boot
    /// clock (Linux's `futex_wait_restart`).
    FutexWait {
        uaddr: u64,
        val: u32,
        bitset: u32,
        deadline_ns: u64,
    },
}

/// A thread's signal state; see the module docs.
#[derive(Clone, Debug)]
pub struct ThreadSignals {
    /// Blocked signals: bit `sig - 1`, never SIGKILL or SIGSTOP.
    pub blocked: u64,
    /// Signals sent to this thread (`tkill`, faults).
    pub pending: SigPending,
    pub altstack: AltStack,
    /// The mask to restore after the next delivery or on the way out
    /// (`sigsuspend`, `rt_sigtimedwait`: Linux's `saved_sigmask` with
    /// `TIF_RESTORE_SIGMASK`).
    pub saved_mask: Option<u64>,
    /// What `restart_syscall` does.
    pub restart: Option<RestartBlock>,
    /// The last exception, for the sigcontext.
    pub trap: crate::arch::signal::TrapInfo,
}

impl Default for ThreadSignals {
    fn default() -> Self {
        ThreadSignals {
            blocked: 0,
            pending: SigPending::default(),
            altstack: AltStack::NONE,
            saved_mask: None,
            restart: None,
            trap: crate::arch::signal::TrapInfo::default(),
        }
    }
}

impl ThreadSignals {
    /// What a fork child's thread starts with: the mask and the
    /// alternate stack (Linux keeps both across fork).
    pub fn fork(&self) -> Self {
        ThreadSignals {
            blocked: self.blocked,
            altstack: self.altstack,
            ..ThreadSignals::default()
        }
    }
}

/// `SS_ONSTACK`, `SS_DISABLE`, `SS_AUTODISARM`.
pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
pub const SS_AUTODISARM: u32 = 1 << 31;
/// Linux's `MINSIGSTKSZ` on x86_64.
pub const MINSIGSTKSZ: u64 = 2048;

/// Whether thread `t` would take `sig` now (Linux's `wants_signal`): it
/// does not block it and is not on its way out.
fn wants(t: &Thread, sig: u32) -> bool {
    !t.is_killed() && t.sig.lock().blocked & sigmask(sig) == 0
}

/// Recomputes the pending flag of thread `t` from its state (Linux's
/// `recalc_sigpending`), `s` and `ts` (its `Thread::sig`) held by the
/// caller.
fn recalc_locked(t: &Thread, s: &ProcessSignals, ts: &ThreadSignals) {
    let pending = t.process.fatal_signal() != 0
        || t.is_killed()
        || (s.shared_pending.mask | ts.pending.mask) & !ts.blocked != 0
        || (s.stop.stopped_by != 0);
    if let Some(task) = t.task() {
        task.set_sigpending(pending);
    }
}

/// [`recalc_locked`], taking the locks.
pub fn recalc_sigpending(t: &Thread) {
    let s = t.process.signals.lock();
    let ts = t.sig.lock();
    recalc_locked(t, &s, &ts);
}

/// Tells thread `t` a signal is pending and wakes it from an
/// interruptible sleep and from a stop (it re-checks whether it still is
/// stopped): Linux's `signal_wake_up`.
fn wake(t: &Thread) {
    if let Some(task) = t.task() {
        sched::signal_wake_up(&task);
    }
    t.process.wake_stopped();
}

/// The threads of `p` (a snapshot: `Process::threads` is not held while
/// their `sig` locks are taken one by one).
fn threads_of(p: &Process) -> Vec<Arc<Thread>> {
    p.threads.lock().clone()
}

/// Sends `info` to `p` (Linux's `send_signal_locked` + `complete_signal`;
/// see the module docs). `target`: to this thread of `p` (`tgkill`,
/// faults) rather than the process (`kill`), which any thread that does
/// not block the signal takes. `force`: the kernel's own signal (init's
/// protection does not hold for SIGKILL/SIGSTOP then). Errors: `EAGAIN`
/// when the real-time queue is full.
pub fn send_signal(
    p: &Process,
    info: SigInfo,
    target: Option<&Arc<Thread>>,
    force: bool,
) -> Result<(), Errno> {
    let sig = info.signo;
    debug_assert!((1..=NSIG as u32).contains(&sig));
    if p.is_exiting() {
        return Ok(());
    }
    let mut s = p.signals.lock();
    let threads = threads_of(p);
    // prepare_signal: stop and continue cancel each other, in every
    // thread's set as in the process's.
    let mut continued = false;
    let cancel = if sigmask(sig) & STOP_MASK != 0 {
        sigmask(SIGCONT)
    } else if sig == SIGCONT {
        STOP_MASK
    } else {
        0
    };
    if cancel != 0 {
        s.shared_pending.flush(cancel);
        threads
            .iter()
            .for_each(|t| t.sig.lock().pending.flush(cancel));
    }
    if sig == SIGCONT && s.stop.stopped_by != 0 {
        s.stop = StopState {
            cont_unreported: true,
            ..StopState::default()
        };
        continued = true;
    }
    // complete_signal's choice: the target, or the first thread that
    // takes the signal (none: it stays pending until one unblocks it).
    let taker = match target {
        Some(t) => wants(t, sig).then(|| t.clone()),
        None => threads.iter().find(|t| wants(t, sig)).cloned(),
    };
    let blocked = taker.is_none();
    if !blocked && s.ignores(sig, force) {
        drop(s);
        if continued {
            p.wake_stopped();
            super::notify_parent_cldstop(p, CLD_CONTINUED, SIGCONT);
        }
        return Ok(());
    }
    let res = match target {
        Some(t) => t.sig.lock().pending.add(info),
        None => s.shared_pending.add(info),
    };
    // complete_signal: a fatal signal kills the whole group now.
    let action = s.actions[sig as usize - 1];
    let fatal = sig == SIGKILL
        || (!blocked
            && action.handler == SIG_DFL
            && matches!(
                default_action(sig),
                DefaultAction::Term | DefaultAction::Core
            ));
    drop(s);
    if fatal {
        p.set_fatal_signal(sig);
    } else if let Some(t) = taker {
        wake(&t);
    }
    if continued {
        p.wake_stopped();
        super::notify_parent_cldstop(p, CLD_CONTINUED, SIGCONT);
    }
    res
}

/// Sends a fault signal the thread cannot ignore nor block (Linux's
/// `force_sig_info_to_task`): a blocked or ignored one goes back to the
/// default action and is unblocked; with the default action even init
/// dies of it.
pub fn force_sig(t: &Arc<Thread>, info: SigInfo) {
    let sig = info.signo;
    let p = &t.process;
    {
        let mut s = p.signals.lock();
        let mut ts = t.sig.lock();
        let a = &mut s.actions[sig as usize - 1];
        let blocked = ts.blocked & sigmask(sig) != 0;
        if blocked || a.handler == SIG_IGN {
            a.handler = SIG_DFL;
            ts.blocked &= !sigmask(sig);
        }
        if a.handler == SIG_DFL {
            s.unkillable = false;
        }
    }
    let _ = send_signal(p, info, Some(t), true);
}

/// A signal taken off the pending sets for delivery to a handler.
#[derive(Clone, Copy, Debug)]
pub struct KSignal {
    pub info: SigInfo,
    /// The disposition at dequeue time (`SA_RESETHAND` already applied
    /// to the table, not to this copy).
    pub action: SigAction,
}

/// What [`get_signal`] found.
#[derive(Debug)]
pub enum GetSignal {
    /// Run this handler.
    Handler(KSignal),
    /// Nothing to deliver (ignored signals were dropped).
    None,
    /// The process dies of this signal (a default action, or an earlier
    /// fatal signal).
    Fatal(u32),
    /// The process stops (a stop signal's default action): the caller
    /// sleeps in [`do_signal_stop`] and asks again.
    Stop(u32),
}

/// Dequeues the next signal for thread `t` to act on (Linux's
/// `get_signal`): its own pending signals first, then the process's;
/// ignored ones are dropped, default actions decided. The caller is `t`
/// on its way to user mode.
pub fn get_signal(t: &Thread) -> GetSignal {
    let p = &t.process;
    loop {
        let fatal = p.fatal_signal();
        if fatal != 0 {
            return GetSignal::Fatal(fatal);
        }
        let mut s = p.signals.lock();
        let mut ts = t.sig.lock();
        if s.stop.stopped_by != 0 {
            return GetSignal::Stop(s.stop.stopped_by);
        }
        let allowed = !ts.blocked;
        let info = match ts.pending.dequeue(allowed) {
            Some(i) => Some(i),
            None => s.shared_pending.dequeue(allowed),
        };
        let Some(info) = info else {
            recalc_locked(t, &s, &ts);
            return GetSignal::None;
        };
        let sig = info.signo;
        let slot = &mut s.actions[sig as usize - 1];
        let action = *slot;
        if action.handler == SIG_IGN {
            continue;
        }
        if action.handler != SIG_DFL {
            if action.flags & SA_RESETHAND != 0 {
                slot.handler = SIG_DFL;
                slot.flags &= !SA_SIGINFO;
            }
            recalc_locked(t, &s, &ts);
            return GetSignal::Handler(KSignal { info, action });
        }
        if s.unkillable && sig != SIGKILL {
            continue;
        }
        match default_action(sig) {
            DefaultAction::Ignore | DefaultAction::Continue => continue,
            DefaultAction::Stop => {
                // A group stop: every thread stops (each finds the stop
                // state on its way out and sleeps in do_signal_stop).
                s.stop = StopState {
                    stopped_by: sig,
                    stop_unreported: true,
                    ..StopState::default()
                };
                recalc_locked(t, &s, &ts);
                drop((ts, s));
                threads_of(p)
                    .iter()
                    .filter(|x| !core::ptr::eq(x.as_ref(), t))
                    .for_each(|x| wake(x));
                return GetSignal::Stop(sig);
            }
            DefaultAction::Term | DefaultAction::Core => {
                drop((ts, s));
                p.set_fatal_signal(sig);
                return GetSignal::Fatal(sig);
            }
        }
    }
}

/// Whether the parent is still to be told of the current stop (once).
pub fn take_stop_notify(p: &Process) -> bool {
    let mut s = p.signals.lock();
    let first = s.stop.stopped_by != 0 && !s.stop.notified;
    s.stop.notified = true;
    first
}

/// Sleeps while `t`'s process is stopped (Linux's `do_signal_stop`): until
/// SIGCONT or a fatal signal. Tells the parent first if the stop is new.
pub fn do_signal_stop(t: &Thread, sig: u32, notify: bool) {
    let p = &t.process;
    if notify {
        super::notify_parent_cldstop(p, CLD_STOPPED, sig);
    }
    p.stop_wait.wait_until_idle(|| {
        p.fatal_signal() != 0 || t.is_killed() || p.signals.lock().stop.stopped_by == 0
    });
    recalc_sigpending(t);
}

/// The blocked mask of thread `t`.
pub fn blocked(t: &Thread) -> u64 {
    t.sig.lock().blocked
}

/// Sets `t`'s blocked mask (SIGKILL and SIGSTOP stay unblocked) and
/// recomputes its pending flag (Linux's `set_current_blocked`). A
/// process-wide signal it now blocks goes to another thread that takes it
/// (Linux's `retarget_shared_pending`).
pub fn set_blocked(t: &Thread, mask: u64) {
    let p = &t.process;
    let s = p.signals.lock();
    let newly = {
        let mut ts = t.sig.lock();
        let newly = mask & !ts.blocked & !UNBLOCKABLE;
        ts.blocked = mask & !UNBLOCKABLE;
        recalc_locked(t, &s, &ts);
        newly
    };
    let retarget = s.shared_pending.mask & newly;
    drop(s);
    if retarget != 0 {
        threads_of(p)
            .iter()
            .filter(|x| !core::ptr::eq(x.as_ref(), t))
            .filter(|x| !x.is_killed() && x.sig.lock().blocked & retarget != retarget)
            .take(1)
            .for_each(|x| wake(x));
    }
}

/// Pending signals of thread `t` and of its process, blocked or not.
pub fn pending(t: &Thread) -> u64 {
    let s = t.process.signals.lock();
    let ts = t.sig.lock();
    s.shared_pending.mask | ts.pending.mask
}

/// Takes a pending signal out of `set` (`rt_sigtimedwait`) for thread
/// `t`, if any: its own first, then the process's.
pub fn dequeue_from(t: &Thread, set: u64) -> Option<SigInfo> {
    let mut s = t.process.signals.lock();
    let mut ts = t.sig.lock();
    let info = match ts.pending.dequeue(set) {
        Some(i) => Some(i),
        None => s.shared_pending.dequeue(set),
    };
    recalc_locked(t, &s, &ts);
    info
}

/// Changes a disposition (`rt_sigaction`'s part under the lock): a newly
/// ignored signal is discarded from the pending sets of the process and
/// of every thread (Linux's `do_sigaction`). Returns the old one.
pub fn set_action(p: &Process, sig: u32, new: Option<SigAction>) -> SigAction {
    let mut s = p.signals.lock();
    let old = s.actions[sig as usize - 1];
    if let Some(mut a) = new {
        a.mask &= !UNBLOCKABLE;
        s.actions[sig as usize - 1] = a;
        if s.ignores(sig, false) {
            s.shared_pending.flush(sigmask(sig));
            for t in threads_of(p) {
                let mut ts = t.sig.lock();
                ts.pending.flush(sigmask(sig));
                recalc_locked(&t, &s, &ts);
            }
        }
    }
    old
}

/// Whether the parent wants no SIGCHLD for stops (`SA_NOCLDSTOP`) or
/// ignores it.
pub fn chld_action(p: &Process) -> SigAction {
    p.signals.lock().actions[SIGCHLD as usize - 1]
}

/// Marks a stop or continue as reported by `wait4`; returns the stop
/// state before.
pub fn take_stop_report(p: &Process, stopped: bool, continued: bool) -> Option<u32> {
    let mut s = p.signals.lock();
    if stopped && s.stop.stopped_by != 0 && s.stop.stop_unreported {
        s.stop.stop_unreported = false;
        return Some(s.stop.stopped_by);
    }
    if continued && s.stop.cont_unreported {
        s.stop.cont_unreported = false;
        return Some(SIGCONT);
    }
    None
}

/// Whether a stop or continue waits to be reported.
pub fn has_stop_report(p: &Process, stopped: bool, continued: bool) -> bool {
    let s = p.signals.lock();
    (stopped && s.stop.stopped_by != 0 && s.stop.stop_unreported)
        || (continued && s.stop.cont_unreported)
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
        18 => "SIGCONT",
        19 => "SIGSTOP",
        _ => "signal",
    }
}
