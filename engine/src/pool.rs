//! The frame pool: which frames of the shared UMEM each core may use.
//!
//! Every frame is in exactly one place at a time: a core's free list, a
//! core's fill/rx rings (lent to the kernel for receiving), a core's hands
//! (between rx and tx), a core's tx/completion rings (lent for sending), a
//! handoff queue between cores, or the shared exchange stack. Each core's
//! [`FramePool`] counts its places; debug builds also tag every frame with its
//! place and assert each transition starts where the frame really is, so the
//! end-to-end tests check the invariant on real traffic.
//!
//! Frames drift: one received on core A and sent by core B completes on B's
//! ring. [`FramePool::rebalance`] keeps each free list between a low and a
//! high mark by lending to and borrowing from the shared exchange.
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicU16, Ordering};

/// A frame's place, for the debug tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// On core's free list.
    Free(u16),
    /// Lent to the kernel on core's fill ring (and then its rx ring).
    Rx(u16),
    /// Held by core between rx and tx.
    InHand(u16),
    /// Lent to the kernel on core's tx ring until completion.
    Tx(u16),
    /// In a handoff queue between cores.
    Handoff,
    /// On the shared exchange stack.
    Exchange,
}

#[cfg(debug_assertions)]
impl Place {
    fn tag(self) -> u16 {
        match self {
            Place::Free(c) => 0x100 | c,
            Place::Rx(c) => 0x200 | c,
            Place::InHand(c) => 0x300 | c,
            Place::Tx(c) => 0x400 | c,
            Place::Handoff => 0x500,
            Place::Exchange => 0x600,
        }
    }
}

/// What the cores share: the exchange stack and, in debug builds, the place
/// of every frame.
pub struct SharedFrames {
    total: u32,
    frame_shift: u32,
    exchange: ArrayQueue<u64>,
    #[cfg(debug_assertions)]
    places: Box<[AtomicU16]>,
}

impl SharedFrames {
    /// `total` frames of `frame_size` bytes (a power of two).
    pub fn new(total: u32, frame_size: u32) -> Arc<Self> {
        assert!(frame_size.is_power_of_two() && total > 0);
        Arc::new(SharedFrames {
            total,
            frame_shift: frame_size.trailing_zeros(),
            exchange: ArrayQueue::new(total as usize),
            #[cfg(debug_assertions)]
            places: (0..total).map(|_| AtomicU16::new(0)).collect(),
        })
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
    /// the remainder).
    pub fn split(self: &Arc<Self>, cores: u16) -> Vec<FramePool> {
        let per = self.total / cores as u32;
        let extra = self.total % cores as u32;
        let mut next = 0u32;
        (0..cores)
            .map(|c| {
                let n = per + u32::from((c as u32) < extra);
                let mut p = FramePool::empty(c, self.clone());
                for i in next..next + n {
                    let addr = (i as u64) << self.frame_shift;
                    self.track(addr, None, Place::Free(c));
                    p.free.push(addr);
                }
                next += n;
                p
            })
            .collect()
    }

    #[inline]
    #[cfg_attr(not(debug_assertions), allow(unused_variables))]
    fn track(&self, addr: u64, from: Option<Place>, to: Place) {
        #[cfg(debug_assertions)]
        {
            let i = (addr >> self.frame_shift) as usize;
            let prev = self.places[i].swap(to.tag(), Ordering::AcqRel);
            if let Some(from) = from {
                assert_eq!(
                    prev,
                    from.tag(),
                    "frame {addr:#x} moved {from:?} -> {to:?} but was elsewhere (tag {prev:#x})"
                );
            }
        }
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
        let cap = shared.total as usize;
        FramePool { core, shared, free: Vec::with_capacity(cap), counts: FrameCounts::default(), low: 0, high: cap }
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

    /// The last `n` frames of the free list went onto the fill ring.
    pub fn lend_for_rx(&mut self, n: usize) {
        let at = self.free.len() - n;
        for &a in &self.free[at..] {
            self.shared.track(a, Some(Place::Free(self.core)), Place::Rx(self.core));
        }
        self.free.truncate(at);
        self.counts.rx += n as u32;
    }

    /// A frame came back on the rx ring.
    #[inline]
    pub fn received(&mut self, addr: u64) {
        self.shared.track(addr, Some(Place::Rx(self.core)), Place::InHand(self.core));
        self.counts.rx -= 1;
        self.counts.in_hand += 1;
    }

    /// A frame in hand went onto the tx ring.
    #[inline]
    pub fn lend_for_tx(&mut self, addr: u64) {
        self.shared.track(addr, Some(Place::InHand(self.core)), Place::Tx(self.core));
        self.counts.in_hand -= 1;
        self.counts.tx += 1;
    }

    /// A sent frame came back on the completion ring.
    #[inline]
    pub fn completed(&mut self, addr: u64) {
        let base = addr & !((1u64 << self.shared.frame_shift) - 1);
        self.shared.track(base, Some(Place::Tx(self.core)), Place::Free(self.core));
        self.counts.tx -= 1;
        self.free.push(base);
    }

    /// A frame in hand is not needed any more (dropped or consumed).
    #[inline]
    pub fn release(&mut self, addr: u64) {
        let base = addr & !((1u64 << self.shared.frame_shift) - 1);
        self.shared.track(base, Some(Place::InHand(self.core)), Place::Free(self.core));
        self.counts.in_hand -= 1;
        self.free.push(base);
    }

    /// A free frame taken in hand to build a packet in.
    pub fn alloc(&mut self) -> Option<u64> {
        let a = self.free.pop()?;
        self.shared.track(a, Some(Place::Free(self.core)), Place::InHand(self.core));
        self.counts.in_hand += 1;
        Some(a)
    }

    /// A frame in hand was pushed onto another core's handoff queue.
    #[inline]
    pub fn handed_off(&mut self, addr: u64) {
        let base = addr & !((1u64 << self.shared.frame_shift) - 1);
        self.shared.track(base, Some(Place::InHand(self.core)), Place::Handoff);
        self.counts.in_hand -= 1;
    }

    /// A frame was taken from this core's handoff inbox.
    #[inline]
    pub fn adopted(&mut self, addr: u64) {
        let base = addr & !((1u64 << self.shared.frame_shift) - 1);
        self.shared.track(base, Some(Place::Handoff), Place::InHand(self.core));
        self.counts.in_hand += 1;
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
                self.shared.track(a, Some(Place::Free(self.core)), Place::Exchange);
                if let Err(a) = self.shared.exchange.push(a) {
                    // Cannot happen (the exchange holds every frame), but never lose one.
                    self.shared.track(a, Some(Place::Exchange), Place::Free(self.core));
                    self.free.push(a);
                    break;
                }
                lent += 1;
            }
        } else if self.free.len() < self.low {
            while self.free.len() < self.low {
                let Some(a) = self.shared.exchange.pop() else { break };
                self.shared.track(a, Some(Place::Exchange), Place::Free(self.core));
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

    fn total_of(pools: &[FramePool], shared: &SharedFrames, handoff: usize) -> u32 {
        pools.iter().map(|p| p.counts().sum()).sum::<u32>() + shared.exchanged() as u32 + handoff as u32
    }

    #[test]
    fn split_gives_every_frame_to_one_core() {
        let shared = SharedFrames::new(11, 2048);
        let pools = shared.split(3);
        assert_eq!(pools.iter().map(|p| p.free_len()).collect::<Vec<_>>(), vec![4, 4, 3]);
        let mut all: Vec<u64> = pools.iter().flat_map(|p| p.free.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 11);
        assert_eq!(total_of(&pools, &shared, 0), 11);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "but was elsewhere")]
    fn a_frame_released_twice_is_caught() {
        let shared = SharedFrames::new(4, 2048);
        let mut p = shared.split(1).pop().unwrap();
        let a = p.alloc().unwrap();
        p.release(a);
        p.release(a);
    }

    #[test]
    fn rebalance_moves_surplus_to_the_exchange_and_back() {
        let shared = SharedFrames::new(100, 2048);
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
        let shared = SharedFrames::new(100, 2048);
        let mut p = shared.split(1).pop().unwrap();
        p.set_marks(10, 40);
        // 30 frames lent for rx, 70 free: holding 100 > 40.
        p.lend_for_rx(30);
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
        /// complete, rebalance) never loses or duplicates a frame, and in
        /// debug builds every transition starts from the frame's real place.
        #[test]
        fn frames_are_conserved(ops in proptest::collection::vec((0u8..7, 0usize..2, 1usize..8), 1..400)) {
            let shared = SharedFrames::new(64, 2048);
            let mut pools = shared.split(2);
            for p in pools.iter_mut() { p.set_marks(8, 24); }
            let mut kernel = [KernelModel::default(), KernelModel::default()];
            let mut handoff: [VecDeque<u64>; 2] = Default::default();
            let mut in_hand: [Vec<u64>; 2] = Default::default();
            for (op, core, n) in ops {
                let other = 1 - core;
                match op {
                    0 => { // refill: free → fill ring
                        let k = n.min(pools[core].free_len());
                        kernel[core].rx.extend(pools[core].free_tail(k).iter().copied());
                        pools[core].lend_for_rx(k);
                    }
                    1 => for _ in 0..n { // receive
                        if let Some(a) = kernel[core].rx.pop_front() { pools[core].received(a + 256); in_hand[core].push(a + 256); }
                    },
                    2 => for _ in 0..n { // echo: in hand → tx
                        if let Some(a) = in_hand[core].pop() { pools[core].lend_for_tx(a); kernel[core].tx.push_back(a); }
                    },
                    3 => if let Some(a) = in_hand[core].pop() { pools[core].release(a); }, // drop
                    4 => if let Some(a) = in_hand[core].pop() { // hand off to the other core
                        pools[core].handed_off(a); handoff[other].push_back(a);
                    },
                    5 => while let Some(a) = handoff[core].pop_front() { pools[core].adopted(a); in_hand[core].push(a); },
                    _ => { // completions, then rebalance
                        for _ in 0..n { if let Some(a) = kernel[core].tx.pop_front() { pools[core].completed(a); } }
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
        }
    }
}
