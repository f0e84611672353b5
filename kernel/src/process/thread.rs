//! Threads of a process (Linux's thread groups: `kernel/fork.c`'s
//! `CLONE_THREAD`, `kernel/exit.c`'s `do_exit` / `do_group_exit`,
//! `fs/exec.c`'s `de_thread`).
//!
//! A [`Process`] is the thread group: TGID (`pid`), address space, open
//! files, rlimits, children, signal dispositions. A [`Thread`] is one
//! schedulable user context of it: its own tid (from the same number space
//! as pids; the first thread's tid is the pid), its kernel task (stack,
//! FPU state, FS base), `clear_child_tid` and the robust-futex list head.
//!
//! ```text
//!   Process (pid = TGID) ---- threads: [Thread tid=pid, Thread tid=.., ..]
//!      mm, files, rlimits          each Thread <-> one sched::Task (owner)
//! ```
//!
//! # Exit
//!
//! - `exit(code)` ends one thread ([`exit_thread`]): its `clear_child_tid`
//!   word is zeroed and futex-woken, its robust list walked, it leaves the
//!   process PGD and the thread list. The last thread out tears the
//!   process down (address space, files, children to init) and makes it a
//!   zombie; the status is the group exit's if there was one, else the
//!   leader's own exit code (Linux's `exit_code` of the group leader).
//! - `exit_group(code)` and fatal signals ([`do_group_exit`]): the first
//!   caller records the status and marks the group exiting
//!   (`SIGNAL_GROUP_EXIT`); every other thread is told to exit
//!   (`kill`) and woken if it sleeps interruptibly or killably. A told
//!   thread exits at its next return to user mode (the loop of
//!   `arch::signal::exit_to_user_mode`, run at every syscall return,
//!   exception and interrupt from ring 3) once its killable sleep ends
//!   ([`fatal_signal_pending`] is part of every such sleep's condition).
//! - `execve` from a multi-threaded process ([`de_thread`]) tells every
//!   other thread to exit and waits until they have; the exec'ing thread
//!   then takes the TGID as its tid, as on Linux.
//!
//! # Invariants
//!
//! - H1: `Process::threads` lists the threads that have not yet finished
//!   [`exit_thread`]; a thread leaves it only after loading the boot PGD,
//!   so the last one out may drop the `Mm` (process P2).
//! - H2: a thread is added only while the group is not exiting, under the
//!   `threads` lock, the same lock under which [`do_group_exit`] sets
//!   `group_exit` and tells the threads: no thread escapes a group exit.
//!
//! # Locking
//!
//! `Process::threads` is taken before a wait queue's lock (wakeups run
//! under it) and before a runqueue lock; nothing sleeps under it.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use spin::Once;

use super::signal::ThreadSignals;
use super::{ExitStatus, Process};
use crate::sched::{self, Task, TaskState};
use crate::sync::SpinLock;

/// One thread of a process; see the module docs.
pub struct Thread {
    /// The thread id (`gettid`); the TGID for the group leader. Changes
    /// only in [`de_thread`] (an exec'ing non-leader takes the TGID).
    tid: AtomicU32,
    /// The thread group.
    pub process: Arc<Process>,
    /// The kernel task running this thread, set when it is spawned.
    task: Once<Weak<Task>>,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: the user `u32` zeroed
    /// and futex-woken when the thread exits (0: none).
    pub clear_child_tid: AtomicU64,
    /// `set_robust_list`'s head (0: none), walked at exit.
    pub robust_list: AtomicU64,
    /// Told to exit (group exit, `de_thread`): the thread ends at its next
    /// return to user mode. Set under `Process::threads` (H2).
    kill: AtomicBool,
    /// The thread's signal state: blocked mask, own pending set,
    /// alternate stack (`signal::ThreadSignals`; lock order in `signal`).
    /// Boxed: a debug kernel copies it between frames otherwise.
    pub sig: SpinLock<Box<ThreadSignals>>,
}

impl Thread {
    /// A thread of `process` with id `tid`, not started yet.
    pub fn new(tid: u32, process: Arc<Process>, sig: ThreadSignals) -> Self {
        Thread {
            tid: AtomicU32::new(tid),
            process,
            task: Once::new(),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            kill: AtomicBool::new(false),
            sig: SpinLock::new("thread.sig", Box::new(sig)),
        }
    }

    /// The thread id.
    pub fn tid(&self) -> u32 {
        self.tid.load(Ordering::Relaxed)
    }

    /// Records the task running the thread (once).
    pub fn set_task(&self, task: &Arc<Task>) {
        self.task.call_once(|| Arc::downgrade(task));
    }

    /// The task running the thread, while it exists.
    pub fn task(&self) -> Option<Arc<Task>> {
        self.task.get().and_then(Weak::upgrade)
    }

    /// Whether the thread has been told to exit.
    pub fn is_killed(&self) -> bool {
        self.kill.load(Ordering::Acquire)
    }

    /// Tells the thread to exit and wakes it from a killable sleep (Linux's
    /// `signal_wake_up(t, true)` for SIGKILL).
    fn tell_to_exit(&self) {
        self.kill.store(true, Ordering::Release);
        self.fatal_wake_up();
    }

    /// Marks the thread as having a signal pending and wakes it from an
    /// interruptible or a killable sleep (Linux's `signal_wake_up(t,
    /// true)` for a fatal signal). Killable sleeps here are IDLE ones whose
    /// condition includes [`fatal_signal_pending`] (IDLE so that the
    /// hung-task check leaves them alone); an UNINTERRUPTIBLE sleep is
    /// left alone, as on Linux.
    pub fn fatal_wake_up(&self) {
        if let Some(task) = self.task() {
            task.set_sigpending(true);
            if matches!(task.state(), TaskState::Interruptible | TaskState::Idle) {
                sched::try_to_wake_up(&task);
            }
        }
    }
}

/// The thread the running task is, if it runs one.
pub fn current_thread() -> Option<Arc<Thread>> {
    sched::with_current(|t| t.owner::<Thread>())
}

/// Whether the running thread must stop what it waits for and go out to
/// die: told to exit, or its process has a kill pending (Linux's
/// `fatal_signal_pending`). False for kernel threads.
pub fn fatal_signal_pending() -> bool {
    current_thread().is_some_and(|t| t.is_killed() || t.process.fatal_signal() != 0)
}

/// Ends every thread of the running thread's process with `status`
/// (`exit_group`, a fatal signal; Linux's `do_group_exit`): the first
/// caller's status is the process's; the other threads are told to exit.
pub fn do_group_exit(status: ExitStatus) -> ! {
    if let Some(t) = current_thread() {
        let p = &t.process;
        let threads = p.threads.lock();
        if !p.group_exit.swap(true, Ordering::AcqRel) {
            p.wait_status
                .store(status.to_wait_status(), Ordering::Release);
        }
        threads
            .iter()
            .filter(|x| !Arc::ptr_eq(x, &t))
            .for_each(|x| x.tell_to_exit());
        drop(threads);
        drop(t);
    }
    super::do_exit(status)
}

/// Wakes every thread of `p` for its fatal signal (`Process::fatal_signal`
/// is set): each leaves its killable or interruptible sleep and ends at its
/// return to user mode.
pub fn wake_all_threads(p: &Process) {
    for t in p.threads.lock().iter() {
        t.fatal_wake_up();
    }
}

/// Adds `t` to its process (H2): fails with `EINTR`-like refusal (`None`)
/// if the group is exiting.
pub fn attach(t: &Arc<Thread>) -> bool {
    let p = &t.process;
    let mut threads = p.threads.lock();
    if p.group_exit.load(Ordering::Acquire) || threads.iter().any(|x| x.is_killed()) {
        return false;
    }
    threads.push(t.clone());
    true
}

/// The exit of one thread, on its own task after it left user mode for
/// good (Linux's `do_exit` from `exit_mm` on): `clear_child_tid` and the
/// robust list, the boot PGD, off the thread list (H1); the last thread
/// out tears the process down ([`super::exit_process`]).
pub fn exit_thread(t: &Arc<Thread>, status: ExitStatus) {
    let p = &t.process;
    mm_release(t);
    sched::switch_mm(None);
    let leader_exit = !t.is_killed() && !p.group_exit.load(Ordering::Acquire) && t.tid() == p.pid;
    if leader_exit {
        p.wait_status
            .store(status.to_wait_status(), Ordering::Release);
    }
    let last = {
        let mut threads = p.threads.lock();
        threads.retain(|x| !Arc::ptr_eq(x, t));
        threads.is_empty()
    };
    if last {
        super::exit_process(p);
    } else {
        p.thread_exit.wake_all();
    }
}

/// The parts of the address space the exiting thread told the kernel
/// about (Linux's `mm_release` + `futex_exit_release`): the robust list
/// walked, then `clear_child_tid` zeroed and one waiter woken, if another
/// user of the `Mm` could see it.
fn mm_release(t: &Thread) {
    let Some(mm) = t.process.mm() else {
        return;
    };
    let head = t.robust_list.swap(0, Ordering::Relaxed);
    if head != 0 {
        super::futex::exit_robust_list(&mm, head, t.tid());
    }
    let ctid = t.clear_child_tid.swap(0, Ordering::Relaxed);
    // Other threads, or a vfork parent, share the Mm (ours: the process's
    // reference plus the one in hand).
    let shared = Arc::strong_count(&mm) > 2 || t.process.threads.lock().len() > 1;
    if ctid != 0 && shared && crate::uaccess::copy_to_user(&mm, ctid, &0u32.to_le_bytes()).is_ok() {
        // mm_release(): a shared wake, as Linux's.
        let _ = super::futex::wake(&mm, ctid, 1, super::futex::BITSET_MATCH_ANY, true);
    }
}

/// Makes the running thread the only one of its process before `execve`
/// replaces the address space (Linux's `de_thread`): every other thread is
/// told to exit and waited for; the caller then takes the TGID as its tid.
/// `Err(EINTR)` if the caller itself was told to exit meanwhile (a group
/// exit won the race: the exec is abandoned).
pub fn de_thread(t: &Arc<Thread>) -> Result<(), mm::errno::Errno> {
    let p = &t.process;
    {
        let threads = p.threads.lock();
        if threads.len() == 1 {
            return Ok(());
        }
        if t.is_killed() || p.group_exit.load(Ordering::Acquire) {
            return Err(crate::syscall::EINTR);
        }
        threads
            .iter()
            .filter(|x| !Arc::ptr_eq(x, t))
            .for_each(|x| x.tell_to_exit());
    }
    p.thread_exit
        .wait_until_idle(|| p.threads.lock().len() == 1 || t.is_killed());
    if t.is_killed() {
        return Err(crate::syscall::EINTR);
    }
    t.tid.store(p.pid, Ordering::Relaxed);
    Ok(())
}

/// Sleeps `ns` nanoseconds unless a fatal signal comes first (Linux's
/// killable `hrtimer_nanosleep`); returns whether the whole time passed.
pub fn sleep_killable_ns(ns: u64) -> bool {
    let wq = crate::sched::WaitQueue::new("sleep_killable");
    !wq.wait_until_timeout(fatal_signal_pending, ns)
}
