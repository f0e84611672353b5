//! Node preallocation (`mas_preallocate()`, `mas_alloc_nodes()`,
//! `mas_destroy()`): the nodes a planned store can need are set aside
//! before anything changes, so that the store itself cannot fail. One
//! node is kept alone; more come as a prefilled sheaf of the node cache,
//! or one by one from a cache without sheaves.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use super::super::node::Node;
use super::super::{MapleEntry, MapleError, MapleStat, MapleTree};
use super::MaWriter;
use crate::gfp::Gfp;
use crate::platform::Platform;
use crate::slab::Sheaf;

/// Nodes set aside for one store.
///
/// S1: `single`, `sheaf` and `list` are empty unless `pending` (set by
/// [`Supply::alloc`] before it fills them, cleared by
/// [`Supply::release`] after it empties them).
#[derive(Default)]
pub(super) struct Supply {
    /// One node, the common case (Linux's `mas->alloc`).
    single: Option<NonNull<u8>>,
    /// More: a prefilled sheaf of the node cache (`mas->sheaf`).
    sheaf: Option<Box<Sheaf>>,
    /// Fallback when the cache has no sheaves.
    list: Vec<NonNull<u8>>,
    pub(super) requested: usize,
    pub(super) used: usize,
    /// A preallocation not yet given back.
    pending: bool,
}

impl<'t, 'a, T: MapleEntry, P: Platform> MaWriter<'t, 'a, T, P> {
    pub(super) fn pop_node(&mut self) -> &'t Node {
        let p = match self.supply.pop(self.tree) {
            Some(p) => p,
            None => {
                self.tree.inc(MapleStat::PreallocMiss, 1);
                self.tree
                    .cache
                    .alloc(Gfp::NOWAIT)
                    .expect("maple: store ran out of preallocated nodes and memory")
            }
        };
        self.supply.used += 1;
        self.tree.inc(MapleStat::NodesUsed, 1);
        // SAFETY: a fresh object of the node cache: 256 bytes, 256-byte
        // aligned, ours until published; it lives as long as the tree.
        let node = unsafe { &*p.as_ptr().cast::<Node>() };
        node.clear();
        node
    }
}

impl Supply {
    pub(super) fn alloc<T: MapleEntry, P: Platform>(
        &mut self,
        tree: &MapleTree<'_, T, P>,
        n: usize,
        gfp: Gfp,
    ) -> Result<(), MapleError> {
        self.requested = n;
        self.used = 0;
        self.pending = true;
        match n {
            0 => {}
            1 => self.single = Some(tree.cache.alloc(gfp).ok_or(MapleError::NoMem)?),
            _ => match tree.cache.prefill_sheaf(gfp, n) {
                Some(s) => self.sheaf = Some(s),
                // Out of memory: no second try one by one.
                None if tree.cache.has_sheaves() => {
                    self.release(tree);
                    return Err(MapleError::NoMem);
                }
                None => {
                    // A cache without sheaves (debug caches): one by one.
                    self.list.try_reserve(n).map_err(|_| MapleError::NoMem)?;
                    while self.list.len() < n {
                        let Some(p) = tree.cache.alloc(gfp) else {
                            self.release(tree);
                            return Err(MapleError::NoMem);
                        };
                        self.list.push(p);
                    }
                }
            },
        }
        Ok(())
    }

    pub(super) fn pop<T: MapleEntry, P: Platform>(
        &mut self,
        tree: &MapleTree<'_, T, P>,
    ) -> Option<NonNull<u8>> {
        if let Some(p) = self.single.take() {
            return Some(p);
        }
        if let Some(s) = self.sheaf.as_mut() {
            return tree.cache.alloc_from_sheaf(s, Gfp::NOWAIT);
        }
        self.list.pop()
    }

    /// Gives back what is left; returns how many of the requested nodes
    /// went unused.
    pub(super) fn release<T: MapleEntry, P: Platform>(
        &mut self,
        tree: &MapleTree<'_, T, P>,
    ) -> usize {
        // S1: outside `alloc`..`release` (not `pending`) the supply holds
        // nothing, so there is nothing to give back: the common case of
        // the writer's `destroy` before and after a store.
        if !self.pending {
            debug_assert!(self.single.is_none() && self.sheaf.is_none() && self.list.is_empty());
            return 0;
        }
        if let Some(p) = self.single.take() {
            // SAFETY: never handed out: ours to free.
            unsafe { tree.cache.free(p) };
        }
        if let Some(s) = self.sheaf.take() {
            // The sheaf may hold more than was asked for: it was filled to
            // its capacity. What it holds goes back to the cache.
            tree.cache.return_sheaf(Gfp::NOWAIT, s);
        }
        for p in self.list.drain(..) {
            // SAFETY: a preallocated node never handed out: ours to free.
            unsafe { tree.cache.free(p) };
        }
        self.pending = false;
        self.requested.saturating_sub(self.used)
    }
}
