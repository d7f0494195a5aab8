//! The frame pool: which frames of the shared UMEM each core may use.
//!
//! Every frame is in exactly one place at a time: a core's free list, a
//! core's fill/rx rings (lent to the kernel for receiving), a core's hands
//! (between rx and tx, as an [`Owned`] token), a core's tx/completion rings
//! (lent for sending), a handoff queue between cores, or the shared exchange
//! stack. The [`FrameTable`] of the AF_XDP layer records each frame's place and
//! refuses any move that does not start where the frame is, so the invariant
//! holds in every build; each core's [`FramePool`] also counts its places for
//! the gauges.
//!
//! Frames drift: one received on core A and sent by core B completes on B's
//! ring. [`FramePool::rebalance`] lends and borrows through the shared
//! exchange stack.
use crate::afxdp::{FrameTable, Owned, Place};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// What the cores share: the frame table and the exchange stack.
pub struct SharedFrames {
    table: Arc<FrameTable>,
    total: u32,
    exchange: ArrayQueue<u64>,
}

impl SharedFrames {
    /// The frames of `table`'s UMEM, none handed out yet.
    pub fn new(table: Arc<FrameTable>) -> Arc<Self> {
        let total = table.area().frame_count();
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
    /// the remainder). Call once: frames already assigned are skipped.
    pub fn split(self: &Arc<Self>, cores: u16) -> Vec<FramePool> {
        let per = self.total / cores as u32;
        let extra = self.total % cores as u32;
        let area = self.table.area();
        let mut next = 0u32;
        (0..cores)
            .map(|c| {
                let n = per + u32::from((c as u32) < extra);
                let mut p = FramePool::empty(c, self.clone());
                for i in next..next + n {
                    let addr = area.frame_addr(i);
                    if self.table.assign(addr, Place::Free(c)) {
                        p.free.push(addr);
                    }
                }
                next += n;
                p
            })
            .collect()
    }
}

/// How many frames a core has in each of its places.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// On the free list.
    pub free: u32,
    /// Lent to the kernel for receiving.
    pub rx: u32,
    /// In hand between rx and tx.
    pub in_hand: u32,
    /// Lent to the kernel for sending.
    pub tx: u32,
}

impl FrameCounts {
    /// All of a core's frames.
    pub fn sum(&self) -> u32 {
        self.free + self.rx + self.in_hand + self.tx
    }
}

/// One core's frames. Not shared: the core's worker owns it.
pub struct FramePool {
    core: u16,
    shared: Arc<SharedFrames>,
    free: Vec<u64>,
    counts: FrameCounts,
    low: usize,
    high: usize,
}

impl FramePool {
    fn empty(core: u16, shared: Arc<SharedFrames>) -> Self {
        assert!(core < 0x1000, "core {core}: place tags hold 12-bit core numbers");
        let cap = shared.total as usize;
        FramePool { core, shared, free: Vec::with_capacity(cap), counts: FrameCounts::default(), low: 0, high: cap }
    }

    fn table(&self) -> &FrameTable {
        &self.shared.table
    }

    fn base(&self, addr: u64) -> u64 {
        self.shared.table.area().frame_base(addr)
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

    /// The counts of this core's places (free is the list length).
    pub fn counts(&self) -> FrameCounts {
        FrameCounts { free: self.free.len() as u32, ..self.counts }
    }

    /// Frames on the free list.
    pub fn free_len(&self) -> usize {
        self.free.len()
    }

    /// The last `n` free frames, to offer to the fill ring; commit what the
    /// ring took with [`lend_for_rx`](Self::lend_for_rx).
    pub fn free_tail(&self, n: usize) -> &[u64] {
        &self.free[self.free.len() - n.min(self.free.len())..]
    }

    /// Of the `offered` frames [`free_tail`](Self::free_tail) gave the fill
    /// ring, the ring took the first `taken`: they are lent for rx now.
    pub fn lend_for_rx(&mut self, offered: usize, taken: usize) {
        let at = self.free.len() - offered.min(self.free.len());
        let end = at + taken.min(offered);
        for &a in &self.free[at..end] {
            let moved = self.shared.table.moved(a, Place::Free(self.core), Place::Rx(self.core));
            debug_assert!(moved, "free-list frame {a:#x} was not free");
        }
        self.free.drain(at..end);
        self.counts.rx += (end - at) as u32;
    }

    /// A frame came back on the rx ring at `addr`; `None` if the kernel
    /// handed back something this core had not lent (counted by the caller).
    #[inline]
    pub fn received(&mut self, addr: u64) -> Option<Owned> {
        let f = self.table().take(addr, Place::Rx(self.core), self.core)?;
        self.counts.rx -= 1;
        self.counts.in_hand += 1;
        Some(f)
    }

    /// A frame in hand goes onto the tx ring; returns its address.
    #[inline]
    pub fn lend_for_tx(&mut self, f: Owned) -> u64 {
        self.counts.in_hand -= 1;
        self.counts.tx += 1;
        self.shared.table.put(f, Place::Tx(self.core))
    }

    /// A sent frame came back on the completion ring; false if it was not
    /// one this core had lent for sending (nothing changes then).
    #[inline]
    pub fn completed(&mut self, addr: u64) -> bool {
        let base = self.base(addr);
        if !self.table().moved(base, Place::Tx(self.core), Place::Free(self.core)) {
            return false;
        }
        self.counts.tx -= 1;
        self.free.push(base);
        true
    }

    /// A frame in hand is not needed any more (dropped or consumed).
    #[inline]
    pub fn release(&mut self, f: Owned) {
        let base = self.base(f.addr());
        self.shared.table.put(f, Place::Free(self.core));
        self.counts.in_hand -= 1;
        self.free.push(base);
    }

    /// A free frame taken in hand to build a packet in.
    pub fn alloc(&mut self) -> Option<Owned> {
        let a = self.free.pop()?;
        let f = self.shared.table.take(a, Place::Free(self.core), self.core);
        debug_assert!(f.is_some(), "free-list frame {a:#x} was not free");
        if f.is_some() {
            self.counts.in_hand += 1;
        }
        f
    }

    /// A frame in hand goes to another core's handoff queue; returns its
    /// address for the queue.
    #[inline]
    pub fn handed_off(&mut self, f: Owned) -> u64 {
        self.counts.in_hand -= 1;
        self.shared.table.put(f, Place::Handoff)
    }

    /// A frame was taken from this core's handoff inbox; `None` if it was not
    /// in a handoff queue.
    #[inline]
    pub fn adopted(&mut self, addr: u64) -> Option<Owned> {
        let f = self.table().take(addr, Place::Handoff, self.core)?;
        self.counts.in_hand += 1;
        Some(f)
    }

    /// Keeps the core between the marks (see [`set_marks`](Self::set_marks)).
    /// Returns (lent, borrowed).
    pub fn rebalance(&mut self) -> (usize, usize) {
        let mut lent = 0;
        let mut borrowed = 0;
        let held = self.free.len() + self.counts.rx as usize;
        if held > self.high {
            // Lend down to `high - low` (hysteresis), as far as the free list allows.
            let surplus = held - (self.high - self.low.min(self.high));
            while lent < surplus {
                let Some(a) = self.free.pop() else { break };
                let moved = self.shared.table.moved(a, Place::Free(self.core), Place::Exchange);
                debug_assert!(moved);
                if let Err(a) = self.shared.exchange.push(a) {
                    // Cannot happen (the exchange holds every frame), but never lose one.
                    self.shared.table.moved(a, Place::Exchange, Place::Free(self.core));
                    self.free.push(a);
                    break;
                }
                lent += 1;
            }
        } else if self.free.len() < self.low {
            while self.free.len() < self.low {
                let Some(a) = self.shared.exchange.pop() else { break };
                let moved = self.shared.table.moved(a, Place::Exchange, Place::Free(self.core));
                debug_assert!(moved);
                self.free.push(a);
                borrowed += 1;
            }
        }
        (lent, borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn shared(n: u32) -> Arc<SharedFrames> {
        SharedFrames::new(FrameTable::create(n, 2048).unwrap())
    }

    fn total_of(pools: &[FramePool], shared: &SharedFrames, handoff: usize) -> u32 {
        pools.iter().map(|p| p.counts().sum()).sum::<u32>() + shared.exchanged() as u32 + handoff as u32
    }

    #[test]
    fn split_gives_every_frame_to_one_core() {
        let shared = shared(11);
        let pools = shared.split(3);
        assert_eq!(pools.iter().map(|p| p.free_len()).collect::<Vec<_>>(), vec![4, 4, 3]);
        let mut all: Vec<u64> = pools.iter().flat_map(|p| p.free.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 11);
        assert_eq!(total_of(&pools, &shared, 0), 11);
        assert!(shared.split(2).iter().all(|p| p.free_len() == 0), "a second split finds nothing unassigned");
    }

    #[test]
    fn wrong_moves_are_refused_and_change_nothing() {
        let shared = shared(4);
        let mut p = shared.split(1).pop().unwrap();
        assert!(p.received(0).is_none(), "not lent for rx");
        assert!(!p.completed(0), "not lent for tx");
        assert!(p.adopted(0).is_none(), "not handed over");
        assert!(p.received(99 * 2048).is_none(), "outside the UMEM");
        assert_eq!(p.counts(), FrameCounts { free: 4, ..Default::default() });
        let f = p.alloc().unwrap();
        let a = p.handed_off(f);
        let f = p.adopted(a).unwrap();
        assert!(p.adopted(a).is_none(), "adopted once only");
        p.release(f);
        assert_eq!(p.counts().free, 4);
    }

    #[test]
    fn rebalance_moves_surplus_to_the_exchange_and_back() {
        let shared = shared(100);
        let mut pools = shared.split(2);
        pools[0].set_marks(10, 20);
        pools[1].set_marks(60, 80);
        assert_eq!(pools[0].rebalance(), (40, 0), "down to high - low");
        assert_eq!(pools[0].free_len(), 10);
        assert_eq!(pools[1].rebalance(), (0, 10));
        assert_eq!(pools[1].free_len(), 60);
        assert_eq!(total_of(&pools, &shared, 0), 100);
    }

    #[test]
    fn frames_on_the_fill_ring_count_against_the_high_mark() {
        let shared = shared(100);
        let mut p = shared.split(1).pop().unwrap();
        p.set_marks(10, 40);
        // 30 frames lent for rx, 70 free: holding 100 > 40.
        p.lend_for_rx(30, 30);
        assert_eq!(p.rebalance(), (70, 0), "lends until it holds high - low = 30");
        assert_eq!((p.free_len(), p.counts().rx), (0, 30));
        assert_eq!(p.rebalance(), (0, 10), "then tops the free list up to low");
    }

    /// The kernel side of a core in the model: its fill/rx and tx/completion
    /// queues.
    #[derive(Default)]
    struct KernelModel {
        rx: VecDeque<u64>,
        tx: VecDeque<u64>,
    }

    proptest! {
        /// Random traffic across two cores (receive, echo, drop, hand off,
        /// complete, rebalance) never loses or duplicates a frame, and every
        /// transition starts from the frame's real place.
        #[test]
        fn frames_are_conserved(ops in proptest::collection::vec((0u8..7, 0usize..2, 1usize..8), 1..400)) {
            let shared = shared(64);
            let mut pools = shared.split(2);
            for p in pools.iter_mut() { p.set_marks(8, 24); }
            let mut kernel = [KernelModel::default(), KernelModel::default()];
            let mut handoff: [VecDeque<u64>; 2] = Default::default();
            let mut in_hand: [Vec<Owned>; 2] = Default::default();
            for (op, core, n) in ops {
                let other = 1 - core;
                match op {
                    0 => { // refill: free → fill ring
                        let k = n.min(pools[core].free_len());
                        // The ring takes only some of what is offered.
                        let taken = k.min(n);
                        kernel[core].rx.extend(pools[core].free_tail(k)[..taken].iter().copied());
                        pools[core].lend_for_rx(k, taken);
                    }
                    1 => for _ in 0..n { // receive (the kernel adds headroom)
                        if let Some(a) = kernel[core].rx.pop_front() {
                            in_hand[core].push(pools[core].received(a + 256).expect("lent for rx"));
                        }
                    },
                    2 => for _ in 0..n { // echo: in hand → tx
                        if let Some(f) = in_hand[core].pop() { let a = pools[core].lend_for_tx(f); kernel[core].tx.push_back(a); }
                    },
                    3 => if let Some(f) = in_hand[core].pop() { pools[core].release(f); }, // drop
                    4 => if let Some(f) = in_hand[core].pop() { // hand off to the other core
                        let a = pools[core].handed_off(f); handoff[other].push_back(a);
                    },
                    5 => while let Some(a) = handoff[core].pop_front() {
                        in_hand[core].push(pools[core].adopted(a).expect("in a handoff queue"));
                    },
                    _ => { // completions, then rebalance
                        for _ in 0..n { if let Some(a) = kernel[core].tx.pop_front() { prop_assert!(pools[core].completed(a)); } }
                        pools[core].rebalance();
                    }
                }
                let queued = handoff[0].len() + handoff[1].len();
                prop_assert_eq!(total_of(&pools, &shared, queued), 64);
                for c in 0..2 {
                    prop_assert_eq!(pools[c].counts().rx as usize, kernel[c].rx.len());
                    prop_assert_eq!(pools[c].counts().tx as usize, kernel[c].tx.len());
                    prop_assert_eq!(pools[c].counts().in_hand as usize, in_hand[c].len());
                }
            }
            for (c, hand) in in_hand.iter_mut().enumerate() {
                for f in hand.drain(..) { pools[c].release(f); }
            }
        }
    }
}
