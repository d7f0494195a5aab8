//! The open-loop generator's schedule on one core: when each connection's
//! next request falls due, in a min-heap, so a request is released at its
//! time (on the first pass at or after it) rather than on a tick, and a pass
//! looks only at connections whose time came.
//!
//! A connection is in the queue at most once for each time it was given
//! (`RrClient::next_wake` gives a time only once). An entry whose connection
//! moved on (it sent that request on an earlier pass, closed, or its id now
//! names another connection) is found stale when it comes up and dropped.
//! Stale entries are bounded by one per connection, so the heap is reserved
//! at twice the connections it may hold and never grows on the packet path:
//! past that, `schedule` refuses and the core falls back to a scan of every
//! connection on its next pass.
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug, Default)]
pub(crate) struct PaceQueue {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// A schedule was refused for want of room: the core must scan.
    overflowed: bool,
}

impl PaceQueue {
    /// A queue for up to `conns` connections (room for one stale entry each).
    pub(crate) fn with_connections(conns: usize) -> Self {
        PaceQueue { heap: BinaryHeap::with_capacity(conns.saturating_mul(2)), overflowed: false }
    }

    /// Connection `id` wants to run at `at`, engine µs.
    pub(crate) fn schedule(&mut self, id: u32, at: u64) {
        if self.heap.len() < self.heap.capacity() {
            self.heap.push(Reverse((at, id)));
        } else {
            self.overflowed = true;
        }
    }

    /// The earliest time given, engine µs.
    pub(crate) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest entry if it is due by `now`, as (id, time).
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u32, u64)> {
        match self.heap.peek() {
            Some(&Reverse((at, id))) if at <= now => {
                self.heap.pop();
                Some((id, at))
            }
            _ => None,
        }
    }

    /// Whether a schedule was refused since the last call (and so a scan of
    /// every connection is owed); clears the mark.
    pub(crate) fn take_overflow(&mut self) -> bool {
        std::mem::take(&mut self.overflowed)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_by_time_once_due() {
        let mut q = PaceQueue::with_connections(4);
        q.schedule(1, 300);
        q.schedule(2, 100);
        q.schedule(3, 200);
        assert_eq!(q.next(), Some(100));
        assert_eq!(q.pop_due(99), None, "nothing is due before its time");
        assert_eq!(q.pop_due(200), Some((2, 100)));
        assert_eq!(q.pop_due(200), Some((3, 200)));
        assert_eq!(q.pop_due(200), None);
        assert_eq!(q.next(), Some(300));
    }

    #[test]
    fn a_full_queue_refuses_and_owes_a_scan_without_growing() {
        let mut q = PaceQueue::with_connections(1);
        let cap = q.heap.capacity();
        for i in 0..cap as u32 {
            q.schedule(i, 10);
        }
        assert!(!q.take_overflow());
        q.schedule(99, 5);
        assert_eq!(q.heap.capacity(), cap, "never grows");
        assert_eq!(q.len(), cap);
        assert!(q.take_overflow());
        assert!(!q.take_overflow(), "the mark clears once taken");
    }
}
