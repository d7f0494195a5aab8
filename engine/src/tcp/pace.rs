//! The open-loop generator's schedule on one core: when each connection's
//! next request falls due, so a request is released at its time (on the
//! first pass at or after it) rather than on a tick, and a pass looks only
//! at connections whose time came.
//!
//! An indexed min-heap: at most one entry per connection id, moved in
//! place when the connection's time changes and taken out when the
//! connection is freed, so nothing goes stale and nothing overflows. Both
//! arrays are sized at start from the core's connection table (16 B a
//! connection, on generator cores only) and never grow.

const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(crate) struct PaceQueue {
    /// (time, id), a binary min-heap by time.
    heap: Vec<(u64, u32)>,
    /// By id: its place in `heap`, or `NONE`.
    pos: Vec<u32>,
}

impl PaceQueue {
    /// A queue for connection ids `0..conns`.
    pub(crate) fn with_connections(conns: usize) -> Self {
        PaceQueue { heap: Vec::with_capacity(conns), pos: vec![NONE; conns] }
    }

    /// Connection `id` next wants to run at `at`, engine µs (replacing any
    /// time it had). An id beyond the queue's size is ignored: the table
    /// makes none.
    pub(crate) fn schedule(&mut self, id: u32, at: u64) {
        let Some(&p) = self.pos.get(id as usize) else { return };
        if p == NONE {
            // One entry per id and ids below `pos.len()`: always room.
            let i = self.heap.len();
            self.heap.push((at, id));
            self.pos[id as usize] = i as u32;
            self.up(i);
        } else {
            let i = p as usize;
            let was = self.heap[i].0;
            self.heap[i].0 = at;
            if at < was {
                self.up(i);
            } else {
                self.down(i);
            }
        }
    }

    /// Forgets connection `id`'s time, if it had one.
    pub(crate) fn remove(&mut self, id: u32) {
        let Some(&p) = self.pos.get(id as usize) else { return };
        if p == NONE {
            return;
        }
        self.take_at(p as usize);
    }

    /// The earliest time given, engine µs.
    pub(crate) fn next(&self) -> Option<u64> {
        self.heap.first().map(|e| e.0)
    }

    /// Takes the earliest entry if it is due by `now`, as (id, time).
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u32, u64)> {
        let &(at, id) = self.heap.first()?;
        if at > now {
            return None;
        }
        self.take_at(0);
        Some((id, at))
    }

    fn take_at(&mut self, i: usize) {
        let last = self.heap.len() - 1;
        self.swap(i, last);
        let (_, id) = self.heap.pop().expect("not empty");
        self.pos[id as usize] = NONE;
        if i < self.heap.len() {
            self.down(i);
            self.up(i);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32;
        self.pos[self.heap[b].1 as usize] = b as u32;
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.heap[l].0 < self.heap[least].0 {
                least = l;
            }
            if r < self.heap.len() && self.heap[r].0 < self.heap[least].0 {
                least = r;
            }
            if least == i {
                return;
            }
            self.swap(i, least);
            i = least;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn a_connection_has_one_entry_moved_in_place_and_removed_when_freed() {
        let mut q = PaceQueue::with_connections(2);
        q.schedule(0, 500);
        q.schedule(0, 50);
        q.schedule(1, 100);
        q.schedule(0, 700);
        assert_eq!(q.len(), 2, "rescheduling moves the entry, never adds one");
        assert_eq!(q.pop_due(1_000), Some((1, 100)));
        q.remove(0);
        assert_eq!((q.len(), q.next()), (0, None));
        q.remove(0);
        q.schedule(9, 1);
        assert_eq!(q.len(), 0, "an id beyond the size is ignored");
        assert_eq!(q.heap.capacity(), 2, "never grows");
    }

    proptest! {
        #[test]
        fn it_agrees_with_a_map_of_times(ops in proptest::collection::vec((0u32..16, 0u64..1_000, 0u8..4), 1..300)) {
            let mut q = PaceQueue::with_connections(16);
            let mut model: std::collections::BTreeMap<u32, u64> = Default::default();
            for (id, at, op) in ops {
                match op {
                    0 | 1 => {
                        q.schedule(id, at);
                        model.insert(id, at);
                    }
                    2 => {
                        q.remove(id);
                        model.remove(&id);
                    }
                    _ => {
                        let want = model.iter().map(|(&i, &t)| (t, i)).min().filter(|&(t, _)| t <= at);
                        let got = q.pop_due(at);
                        prop_assert_eq!(got.map(|(_, t)| t), want.map(|(t, _)| t));
                        if let Some((i, _)) = got {
                            prop_assert_eq!(model.remove(&i), got.map(|(_, t)| t));
                        }
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.next(), model.values().min().copied());
            }
        }
    }
}
