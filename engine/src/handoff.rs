//! Cross-core handoff: bounded single-producer queues that move a packet
//! (its frame token and range, not its bytes) to the core that owns its
//! flow, and the eventfds that wake a sleeping owner.
use crate::afxdp::{EventFd, FrameTable, Packet};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};

/// One queue per (to, from) pair of cores, so each has a single producer and
/// a single consumer.
pub struct Handoff {
    cores: usize,
    queues: Vec<ArrayQueue<Packet>>,
    /// Where packets still queued at teardown go back to.
    table: Option<std::sync::Arc<FrameTable>>,
    sleeping: Vec<CachePadded<AtomicBool>>,
    wakers: Vec<EventFd>,
}

impl Handoff {
    /// Queues of `capacity` frames between each pair of `cores` cores.
    pub fn new(cores: usize, capacity: usize) -> io::Result<Self> {
        Ok(Handoff {
            cores,
            table: None,
            queues: (0..cores * cores).map(|_| ArrayQueue::new(capacity.max(1))).collect(),
            sleeping: (0..cores).map(|_| CachePadded::new(AtomicBool::new(false))).collect(),
            wakers: (0..cores).map(|_| EventFd::new()).collect::<io::Result<_>>()?,
        })
    }

    /// Packets still queued when the handoff is dropped go back to `table`
    /// (retired) instead of counting as leaked.
    pub fn with_table(mut self, table: std::sync::Arc<FrameTable>) -> Self {
        self.table = Some(table);
        self
    }

    fn queue(&self, to: usize, from: usize) -> &ArrayQueue<Packet> {
        &self.queues[to * self.cores + from]
    }

    /// Queues `d` for core `to`; gives it back when that queue is full.
    #[inline]
    pub fn send(&self, from: u16, to: u16, d: Packet) -> Result<(), Packet> {
        let (from, to) = (from as usize, to as usize);
        if to >= self.cores {
            return Err(d);
        }
        self.queue(to, from).push(d)?;
        // Pairs with the fence in `prepare_sleep` (store sleeping, fence,
        // check queues): either the owner sees the frame before sleeping or
        // we see it asleep. The fences make this independent of how the
        // queue orders its own accesses.
        fence(Ordering::SeqCst);
        if self.sleeping[to].load(Ordering::SeqCst) {
            self.wakers[to].signal();
        }
        Ok(())
    }

    /// Takes up to `max` frames queued for `me`, calling `f` on each. The
    /// sources take turns being first (by `max`'s worth, the caller's pass
    /// counter `turn`), so none is starved when more than two cores send.
    #[inline]
    pub fn receive(&self, me: u16, max: usize, turn: usize, mut f: impl FnMut(Packet)) -> usize {
        let mut n = 0;
        for k in 0..self.cores {
            let from = (turn + k) % self.cores;
            let q = self.queue(me as usize, from);
            while n < max {
                let Some(d) = q.pop() else { break };
                f(d);
                n += 1;
            }
        }
        n
    }

    /// Whether frames wait for `me`.
    pub fn pending(&self, me: u16) -> bool {
        (0..self.cores).any(|from| !self.queue(me as usize, from).is_empty())
    }

    /// Frames in all queues now.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }

    /// Marks `me` as about to sleep; returns false (and unmarks) when frames
    /// already wait, so the caller must not sleep.
    pub fn prepare_sleep(&self, me: u16) -> bool {
        self.sleeping[me as usize].store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.pending(me) {
            self.sleeping[me as usize].store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Marks `me` awake and resets its eventfd.
    pub fn woke(&self, me: u16) {
        self.sleeping[me as usize].store(false, Ordering::SeqCst);
        self.wakers[me as usize].drain();
    }

    /// The eventfd that wakes `me`.
    pub fn waker(&self, me: u16) -> &EventFd {
        &self.wakers[me as usize]
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        for q in &self.queues {
            while let Some(p) = q.pop() {
                match &self.table {
                    Some(t) => t.retire(p.into_frame()),
                    // Counted as leaked by the frame's drop.
                    None => drop(p),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afxdp::{poll_fds, Frame};
    use std::os::fd::AsFd;
    use std::sync::Arc;
    use std::time::Duration;

    fn frames(n: u32) -> (Arc<FrameTable>, Vec<Frame>) {
        let t = FrameTable::create(n, 2048).unwrap();
        let f = t.take_all();
        (t, f)
    }

    fn pkt(f: Frame) -> Packet {
        Packet::new(f, 256, 60)
    }

    #[test]
    fn packets_reach_their_owner_in_order() {
        let (t, mut fs) = frames(2);
        let h = Handoff::new(2, 4).unwrap().with_table(t.clone());
        let (b, a) = (fs.pop().unwrap(), fs.pop().unwrap());
        let (ia, ib) = (a.index(), b.index());
        h.send(0, 1, pkt(a)).unwrap();
        h.send(0, 1, pkt(b)).unwrap();
        assert!(h.pending(1) && !h.pending(0));
        let mut got = vec![];
        assert_eq!(h.receive(1, 10, 0, |p| got.push(p)), 2);
        assert_eq!(got.iter().map(|p| p.frame.index()).collect::<Vec<_>>(), vec![ia, ib]);
        assert_eq!(h.queued(), 0);
        for p in got {
            t.retire(p.into_frame());
        }
    }

    #[test]
    fn every_source_gets_a_turn_to_be_first() {
        let (t, mut fs) = frames(6);
        let h = Handoff::new(3, 4).unwrap().with_table(t.clone());
        for from in [0u16, 1, 2, 0, 1, 2] {
            h.send(from, 2, pkt(fs.pop().unwrap())).unwrap();
        }
        let mut order = vec![];
        for turn in 0..3 {
            let mut first = None;
            h.receive(2, 1, turn, |p| {
                first = Some(p);
            });
            order.push(first.map(|p| {
                let i = p.frame.index();
                t.retire(p.into_frame());
                i
            }));
        }
        assert!(order.iter().all(|o| o.is_some()), "each turn takes one");
        let mut rest = vec![];
        h.receive(2, 10, 0, |p| rest.push(p));
        assert_eq!(rest.len(), 3);
        for p in rest {
            t.retire(p.into_frame());
        }
    }

    #[test]
    fn a_full_queue_gives_the_packet_back() {
        let (t, mut fs) = frames(3);
        let h = Handoff::new(2, 1).unwrap().with_table(t.clone());
        h.send(0, 1, pkt(fs.pop().unwrap())).unwrap();
        let back = h.send(0, 1, pkt(fs.pop().unwrap())).unwrap_err();
        let back2 = h.send(0, 7, pkt(fs.pop().unwrap())).unwrap_err();
        for p in [back, back2] {
            t.retire(p.into_frame());
        }
        drop(h);
        assert_eq!(t.census().retired, 3, "the queued packet went back to the table on drop");
    }

    #[test]
    fn a_sleeping_owner_is_woken_and_a_busy_one_is_not_put_to_sleep() {
        let (t, mut fs) = frames(1);
        let h = Handoff::new(2, 4).unwrap().with_table(t);
        assert!(h.prepare_sleep(1));
        h.send(0, 1, pkt(fs.pop().unwrap())).unwrap();
        assert!(poll_fds(&[h.waker(1).as_fd()], Some(Duration::from_secs(1))).unwrap(), "eventfd signalled");
        h.woke(1);
        assert!(!poll_fds(&[h.waker(1).as_fd()], Some(Duration::ZERO)).unwrap());
        assert!(!h.prepare_sleep(1), "a packet waits");
    }
}
