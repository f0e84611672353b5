//! Test hooks at the steps of the RCU protocol (`cfg(test)` only; in
//! other builds the calls are empty inline functions).
//!
//! A thread may install a *reader hook*, called before each load a reader
//! makes of a node word or of the root (`pivot`, `slot`, `gap`,
//! metadata, the header), and a *writer hook*, called after each store
//! the writer makes to a node or pointer that readers can see (a slot,
//! pivot or header of a live leaf, a parent's child pointer, the root, a
//! gap, a dead marking). Hooks are per thread: a deterministic race test runs a reader
//! thread and a writer thread and hands control from one to the other at
//! chosen hook calls, so that one interleaving is replayed exactly
//! (`tests_race.rs`).

#[cfg(test)]
pub(super) use imp::*;

#[cfg(not(test))]
#[inline(always)]
pub(super) fn reader_load() {}

#[cfg(not(test))]
#[inline(always)]
pub(super) fn writer_step(_what: &'static str) {}

#[cfg(test)]
mod imp {
    use alloc::boxed::Box;
    use core::cell::RefCell;

    /// A reader hook.
    pub type ReaderHook = Box<dyn FnMut()>;
    /// A writer hook; the argument names the step.
    pub type WriterHook = Box<dyn FnMut(&'static str)>;

    std::thread_local! {
        static READER: RefCell<Option<ReaderHook>> = const { RefCell::new(None) };
        static WRITER: RefCell<Option<WriterHook>> = const { RefCell::new(None) };
    }

    /// Installs (`Some`) or removes (`None`) this thread's reader hook.
    pub fn set_reader_hook(h: Option<ReaderHook>) {
        READER.with(|r| *r.borrow_mut() = h);
    }

    /// Installs (`Some`) or removes (`None`) this thread's writer hook.
    pub fn set_writer_hook(h: Option<WriterHook>) {
        WRITER.with(|w| *w.borrow_mut() = h);
    }

    /// A reader is about to load a word a writer may change.
    pub fn reader_load() {
        // Taken out while it runs: a hook that reads the tree itself
        // does not recurse.
        if let Some(mut h) = READER.with(|r| r.borrow_mut().take()) {
            h();
            READER.with(|r| {
                let mut r = r.borrow_mut();
                if r.is_none() {
                    *r = Some(h);
                }
            });
        }
    }

    /// The writer made a store readers can see.
    pub fn writer_step(what: &'static str) {
        if let Some(mut h) = WRITER.with(|w| w.borrow_mut().take()) {
            h(what);
            WRITER.with(|w| {
                let mut w = w.borrow_mut();
                if w.is_none() {
                    *w = Some(h);
                }
            });
        }
    }
}
