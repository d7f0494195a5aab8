//! Cross-core handoff: bounded single-producer queues that move a frame
//! (its UMEM descriptor, not its bytes) to the core that owns its flow, and
//! the eventfds that wake a sleeping owner.
use crate::afxdp::{Desc, EventFd};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};

/// One queue per (to, from) pair of cores, so each has a single producer and
/// a single consumer.
pub struct Handoff {
    cores: usize,
    queues: Vec<ArrayQueue<Desc>>,
    sleeping: Vec<CachePadded<AtomicBool>>,
    wakers: Vec<EventFd>,
}

impl Handoff {
    /// Queues of `capacity` frames between each pair of `cores` cores.
    pub fn new(cores: usize, capacity: usize) -> io::Result<Self> {
        Ok(Handoff {
            cores,
            queues: (0..cores * cores).map(|_| ArrayQueue::new(capacity.max(1))).collect(),
            sleeping: (0..cores).map(|_| CachePadded::new(AtomicBool::new(false))).collect(),
            wakers: (0..cores).map(|_| EventFd::new()).collect::<io::Result<_>>()?,
        })
    }

    fn queue(&self, to: usize, from: usize) -> &ArrayQueue<Desc> {
        &self.queues[to * self.cores + from]
    }

    /// Queues `d` for core `to`; gives it back when that queue is full.
    #[inline]
    pub fn send(&self, from: u16, to: u16, d: Desc) -> Result<(), Desc> {
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

    /// Takes up to `max` frames queued for `me`, calling `f` on each.
    #[inline]
    pub fn receive(&self, me: u16, max: usize, mut f: impl FnMut(Desc)) -> usize {
        let mut n = 0;
        for from in 0..self.cores {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afxdp::poll_fds;
    use std::os::fd::AsFd;

    fn d(addr: u64) -> Desc {
        Desc { addr, len: 60, options: 0 }
    }

    #[test]
    fn frames_reach_their_owner_in_order() {
        let h = Handoff::new(2, 4).unwrap();
        h.send(0, 1, d(1)).unwrap();
        h.send(0, 1, d(2)).unwrap();
        assert!(h.pending(1) && !h.pending(0));
        let mut got = vec![];
        assert_eq!(h.receive(1, 10, |x| got.push(x.addr)), 2);
        assert_eq!(got, vec![1, 2]);
        assert_eq!(h.queued(), 0);
    }

    #[test]
    fn a_full_queue_gives_the_frame_back() {
        let h = Handoff::new(2, 1).unwrap();
        h.send(0, 1, d(1)).unwrap();
        assert_eq!(h.send(0, 1, d(2)), Err(d(2)));
        assert_eq!(h.send(0, 7, d(3)), Err(d(3)), "no such core");
    }

    #[test]
    fn a_sleeping_owner_is_woken_and_a_busy_one_is_not_put_to_sleep() {
        let h = Handoff::new(2, 4).unwrap();
        assert!(h.prepare_sleep(1));
        h.send(0, 1, d(1)).unwrap();
        assert!(poll_fds(&[h.waker(1).as_fd()], 1000).unwrap(), "eventfd signalled");
        h.woke(1);
        assert!(!poll_fds(&[h.waker(1).as_fd()], 0).unwrap());
        assert!(!h.prepare_sleep(1), "a frame waits");
    }
}
