//! The frame pool: the free frames each core may use.
//!
//! A core's [`FramePool`] is a free list of frame tokens. Frames leave it to
//! be lent to the kernel (fill ring), to carry a packet being built, or to
//! other cores through the shared exchange stack, and come back as tokens;
//! the types make a frame's one holder explicit (see
//! [`crate::afxdp::frames`]).
//!
//! A pool keeps a *reserve*: the fill ring is stocked only from frames beyond
//! it, so a core that has to send with no input (a timer, a burst of replies
//! to one segment) still finds frames while the fill ring is full.
//!
//! Frames drift between cores: one received on core A and sent by core B
//! completes on B's ring. [`FramePool::rebalance`] lends surplus frames to the
//! shared exchange and borrows from it when short.
use crate::afxdp::{Frame, FrameTable};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// What the cores share: the frame table and the exchange stack.
pub struct SharedFrames {
    table: Arc<FrameTable>,
    total: u32,
    exchange: ArrayQueue<Frame>,
}

impl SharedFrames {
    /// The frames of `table`'s UMEM, none handed out yet.
    pub fn new(table: Arc<FrameTable>) -> Arc<Self> {
        let total = table.frame_count();
        Arc::new(SharedFrames { table, total, exchange: ArrayQueue::new(total as usize) })
    }

    /// The frame table.
    pub fn table(&self) -> &Arc<FrameTable> {
        &self.table
    }

    /// Number of frames in the UMEM.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Frames on the exchange stack now.
    pub fn exchanged(&self) -> usize {
        self.exchange.len()
    }

    /// Splits the frames evenly into one pool per core (the first cores get
    /// the remainder). Frames whose tokens were already made are skipped, so
    /// a second split finds nothing.
    pub fn split(self: &Arc<Self>, cores: u16) -> Vec<FramePool> {
        let per = self.total / cores as u32;
        let extra = self.total % cores as u32;
        let mut next = 0u32;
        (0..cores)
            .map(|c| {
                let n = per + u32::from((c as u32) < extra);
                let mut p = FramePool::empty(c, self.clone());
                p.free.extend(self.table.take_range(next, n));
                next += n;
                p
            })
            .collect()
    }
}

impl Drop for SharedFrames {
    fn drop(&mut self) {
        while let Some(f) = self.exchange.pop() {
            self.table.retire(f);
        }
    }
}

/// One core's free frames. Not shared: the core's worker owns it.
pub struct FramePool {
    core: u16,
    shared: Arc<SharedFrames>,
    free: Vec<Frame>,
    reserve: usize,
    low: usize,
    high: usize,
}

impl FramePool {
    fn empty(core: u16, shared: Arc<SharedFrames>) -> Self {
        let cap = shared.total as usize;
        FramePool { core, shared, free: Vec::with_capacity(cap), reserve: 0, low: 0, high: cap }
    }

    /// The core this pool belongs to.
    pub fn core(&self) -> u16 {
        self.core
    }

    /// The frame table.
    pub fn table(&self) -> &Arc<FrameTable> {
        &self.shared.table
    }

    /// What the cores share.
    pub fn shared(&self) -> &Arc<SharedFrames> {
        &self.shared
    }

    /// Sets the marks [`rebalance`](Self::rebalance) keeps the core between:
    /// the free list is topped up to `low` from the exchange, and what the
    /// core holds for receiving (free list + lent for rx) is brought back
    /// under `high` by lending free frames to the exchange. Counting the
    /// frames parked on the fill ring keeps an idle core from hoarding.
    pub fn set_marks(&mut self, low: usize, high: usize) {
        self.low = low;
        self.high = high.max(low + 1);
    }

    /// Frames the fill ring never gets: kept for sending without input.
    pub fn set_reserve(&mut self, n: usize) {
        self.reserve = n;
    }

    /// The reserve.
    pub fn reserve(&self) -> usize {
        self.reserve
    }

    /// Frames on the free list.
    pub fn free_len(&self) -> usize {
        self.free.len()
    }

    /// A free frame (the reserve included), or `None` when there is none.
    #[inline]
    pub fn alloc(&mut self) -> Option<Frame> {
        self.free.pop()
    }

    /// A frame back on the free list.
    #[inline]
    pub fn free(&mut self, f: Frame) {
        self.free.push(f);
    }

    /// The free list beyond the reserve, for the fill ring to take from its
    /// end: (the list, how many it may take).
    pub(crate) fn lendable(&mut self) -> (&mut Vec<Frame>, usize) {
        let n = self.free.len().saturating_sub(self.reserve);
        (&mut self.free, n)
    }

    /// Keeps the core between the marks (see [`set_marks`](Self::set_marks));
    /// `lent_rx` is what the core has lent for receiving. Returns (lent,
    /// borrowed).
    pub fn rebalance(&mut self, lent_rx: usize) -> (usize, usize) {
        let mut lent = 0;
        let mut borrowed = 0;
        let held = self.free.len() + lent_rx;
        if held > self.high {
            // Lend down to `high - low` (hysteresis), as far as the free list
            // allows, never into the reserve.
            let surplus = held - (self.high - self.low.min(self.high));
            while lent < surplus && self.free.len() > self.reserve {
                let Some(f) = self.free.pop() else { break };
                if let Err(f) = self.shared.exchange.push(f) {
                    // Cannot happen (the exchange holds every frame), but never lose one.
                    self.free.push(f);
                    break;
                }
                lent += 1;
            }
        } else if self.free.len() < self.low {
            while self.free.len() < self.low {
                let Some(f) = self.shared.exchange.pop() else { break };
                self.free.push(f);
                borrowed += 1;
            }
        }
        (lent, borrowed)
    }
}

impl Drop for FramePool {
    fn drop(&mut self) {
        for f in self.free.drain(..) {
            self.shared.table.retire(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(n: u32) -> Arc<SharedFrames> {
        SharedFrames::new(FrameTable::create(n, 2048).unwrap())
    }

    #[test]
    fn split_gives_every_frame_to_one_core() {
        let shared = shared(11);
        let pools = shared.split(3);
        assert_eq!(pools.iter().map(|p| p.free_len()).collect::<Vec<_>>(), vec![4, 4, 3]);
        let mut all: Vec<u32> = pools.iter().flat_map(|p| p.free.iter().map(|f| f.index())).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 11);
        assert!(shared.split(2).iter().all(|p| p.free_len() == 0), "a second split finds nothing");
    }

    #[test]
    fn rebalance_moves_surplus_to_the_exchange_and_back() {
        let shared = shared(100);
        let mut pools = shared.split(2);
        pools[0].set_marks(10, 20);
        pools[1].set_marks(60, 80);
        assert_eq!(pools[0].rebalance(0), (40, 0), "down to high - low");
        assert_eq!(pools[0].free_len(), 10);
        assert_eq!(pools[1].rebalance(0), (0, 10));
        assert_eq!(pools[1].free_len(), 60);
        assert_eq!(pools.iter().map(|p| p.free_len()).sum::<usize>() + shared.exchanged(), 100);
    }

    #[test]
    fn frames_on_the_fill_ring_count_against_the_high_mark() {
        let shared = shared(100);
        let mut p = shared.split(1).pop().unwrap();
        p.set_marks(10, 40);
        // 30 frames lent for rx (held elsewhere here), 70 free: holding 100 > 40.
        let lent: Vec<Frame> = (0..30).map(|_| p.alloc().unwrap()).collect();
        assert_eq!(p.rebalance(30), (70, 0), "lends until it holds high - low = 30");
        assert_eq!(p.rebalance(30), (0, 10), "then tops the free list up to low");
        for f in lent {
            p.free(f);
        }
    }

    #[test]
    fn the_reserve_is_neither_lent_to_the_fill_ring_nor_to_other_cores() {
        let shared = shared(64);
        let mut p = shared.split(1).pop().unwrap();
        p.set_reserve(16);
        p.set_marks(0, 1);
        let (_, n) = p.lendable();
        assert_eq!(n, 48);
        assert_eq!(p.rebalance(0).0, 48, "the reserve stays home");
        assert_eq!(p.free_len(), 16);
        assert_eq!(p.lendable().1, 0);
        assert!(p.alloc().is_some_and(|f| {
            p.free(f);
            true
        }));
    }

    #[test]
    fn pools_give_their_frames_back_when_dropped() {
        let shared = shared(32);
        let mut pools = shared.split(2);
        pools[0].set_marks(0, 1);
        pools[0].rebalance(0);
        drop(pools);
        let c = shared.table().census();
        // Every frame is retired or on the exchange (still in user space):
        // none was dropped silently.
        assert!(shared.exchanged() > 0);
        assert_eq!(c.user as usize, shared.exchanged());
        assert_eq!(c.retired as usize + shared.exchanged(), 32);
    }
}
