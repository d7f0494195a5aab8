//! One core's TIME-WAIT entries: a ring in the order they entered (every
//! entry lasts the same 2 MSL, so the oldest is always the first to end),
//! found by four-tuple. Sized once; when it is full the oldest entry ends
//! early (counted), as Linux does past `tcp_max_tw_buckets`.
use sluice_tcp::listener::Tuple;
use sluice_tcp::TimeWait;
use std::collections::HashMap;

/// One entry.
#[derive(Clone, Copy, Debug)]
pub struct TwEntry {
    /// Its four-tuple.
    pub tuple: Tuple,
    /// The peer's MAC (replies go there).
    pub remote_mac: [u8; 6],
    /// The service it belonged to.
    pub service: u32,
    /// What the state machine keeps of the connection.
    pub tw: TimeWait,
    /// When it ends, µs.
    pub expires: u64,
    /// Still in force (an entry ended early stays in the ring, dead, until
    /// the ring's head passes it).
    live: bool,
    /// Restarted since it entered: when the head reaches it before it
    /// ends, it moves to the tail instead of holding the others back.
    restarted: bool,
}

/// The table.
pub struct TimeWaitTable {
    ring: Vec<TwEntry>,
    head: usize,
    /// Slots between the head and the tail, dead ones included.
    used: usize,
    live: usize,
    by_tuple: HashMap<Tuple, u32>,
}

impl TimeWaitTable {
    /// A table for `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        TimeWaitTable {
            ring: Vec::with_capacity(capacity),
            head: 0,
            used: 0,
            live: 0,
            by_tuple: HashMap::with_capacity(capacity),
        }
    }

    /// Entries in force.
    pub fn len(&self) -> usize {
        self.live
    }

    /// None in force.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn cap(&self) -> usize {
        self.ring.capacity()
    }

    /// The entry of `t`.
    pub fn find(&self, t: &Tuple) -> Option<u32> {
        self.by_tuple.get(t).copied()
    }

    /// Entry `i`.
    pub fn get(&mut self, i: u32) -> Option<&mut TwEntry> {
        self.ring.get_mut(i as usize).filter(|e| e.live)
    }

    /// Adds an entry ending at `expires`; when the ring is full, the oldest
    /// ends now and is returned (its owner pin is the caller's to drop).
    pub fn insert(
        &mut self,
        tuple: Tuple,
        remote_mac: [u8; 6],
        service: u32,
        tw: TimeWait,
        expires: u64,
    ) -> Option<TwEntry> {
        if let Some(i) = self.find(&tuple) {
            // The same tuple again (cannot happen: a connection is made
            // only when its TIME-WAIT entry was taken away); keep the newer.
            self.kill(i);
        }
        let mut evicted = None;
        if self.used == self.cap() {
            let e = self.ring[self.head];
            self.pop_front();
            if e.live {
                evicted = Some(e);
            }
        }
        let e = TwEntry { tuple, remote_mac, service, tw, expires, live: true, restarted: false };
        let at = (self.head + self.used) % self.cap();
        if at == self.ring.len() {
            self.ring.push(e);
        } else {
            self.ring[at] = e;
        }
        self.used += 1;
        self.live += 1;
        self.by_tuple.insert(tuple, at as u32);
        evicted
    }

    fn pop_front(&mut self) {
        let e = self.ring[self.head];
        if e.live {
            self.by_tuple.remove(&e.tuple);
            self.live -= 1;
        }
        self.head = (self.head + 1) % self.cap();
        self.used -= 1;
    }

    /// Restarts entry `i`'s 2 MSL to end at `expires`, in place: no slot is
    /// taken and no other entry is pushed out.
    pub fn restart(&mut self, i: u32, expires: u64) {
        if let Some(e) = self.ring.get_mut(i as usize).filter(|e| e.live) {
            e.expires = e.expires.max(expires);
            e.restarted = true;
        }
    }

    /// Ends entry `i` now; returns it.
    pub fn kill(&mut self, i: u32) -> Option<TwEntry> {
        let e = self.ring.get_mut(i as usize).filter(|e| e.live)?;
        e.live = false;
        let out = *e;
        self.by_tuple.remove(&out.tuple);
        self.live -= 1;
        Some(out)
    }

    /// Ends every entry due by `now`, oldest first, giving each to `gone`.
    pub fn expire(&mut self, now: u64, mut gone: impl FnMut(&TwEntry)) -> usize {
        let mut n = 0;
        // Each restarted entry moves to the tail at most once per call.
        let mut moves = self.used;
        while self.used > 0 {
            let e = self.ring[self.head];
            if e.live && e.expires > now {
                if !e.restarted || moves == 0 {
                    break;
                }
                // Restarted: the entries behind it may end sooner. It goes
                // to the tail (it ends no later than anything entered since
                // its restart... or a little later: never too early).
                moves -= 1;
                self.head = (self.head + 1) % self.cap();
                let at = (self.head + self.used - 1) % self.cap();
                let moved = TwEntry { restarted: false, ..e };
                if at == self.ring.len() {
                    self.ring.push(moved);
                } else {
                    self.ring[at] = moved;
                }
                self.by_tuple.insert(e.tuple, at as u32);
                continue;
            }
            self.pop_front();
            if e.live {
                gone(&e);
                n += 1;
            }
        }
        n
    }

    /// When the first entry in force ends: the first one not restarted,
    /// or a restarted one before it.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut best: Option<u64> = None;
        for e in (0..self.used).map(|k| &self.ring[(self.head + k) % self.cap()]).filter(|e| e.live) {
            best = Some(best.map_or(e.expires, |b| b.min(e.expires)));
            if !e.restarted {
                break;
            }
        }
        best
    }

    /// Every entry in force (for teardown and listings).
    pub fn iter(&self) -> impl Iterator<Item = &TwEntry> + '_ {
        (0..self.used).map(|k| &self.ring[(self.head + k) % self.cap()]).filter(|e| e.live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_tcp::Seq;

    fn t(port: u16) -> Tuple {
        Tuple { local_addr: [198, 18, 0, 2], local_port: 80, remote_addr: [198, 18, 0, 1], remote_port: port }
    }

    fn tw() -> TimeWait {
        TimeWait { rcv_nxt: Seq(1), snd_nxt: Seq(2), ts_recent: None, ts_offset: 0, wnd: 0, last_oow_ms: 0 }
    }

    #[test]
    fn entries_end_in_order_and_the_full_ring_ends_the_oldest() {
        let mut w = TimeWaitTable::new(3);
        for p in 0..3 {
            assert!(w.insert(t(p), [0; 6], 0, tw(), 100 + p as u64).is_none());
        }
        assert_eq!((w.len(), w.next_deadline()), (3, Some(100)));
        let gone = w.insert(t(3), [0; 6], 0, tw(), 103).expect("the oldest makes room");
        assert_eq!(gone.tuple, t(0));
        assert!(w.find(&t(0)).is_none());
        // An entry ended early leaves a hole the head skips.
        let i = w.find(&t(2)).unwrap();
        assert_eq!(w.kill(i).unwrap().tuple, t(2));
        assert!(w.get(i).is_none());
        let mut ended = vec![];
        assert_eq!(w.expire(102, |e| ended.push(e.tuple.remote_port)), 1);
        assert_eq!(ended, vec![1]);
        assert_eq!((w.len(), w.next_deadline()), (1, Some(103)));
        assert_eq!(w.iter().map(|e| e.tuple.remote_port).collect::<Vec<_>>(), vec![3]);
        assert_eq!(w.expire(1000, |_| {}), 1);
        assert!(w.is_empty() && w.next_deadline().is_none());
        // Reused after wrapping.
        for p in 10..20 {
            w.insert(t(p), [0; 6], 0, tw(), 2000 + p as u64);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.iter().map(|e| e.tuple.remote_port).collect::<Vec<_>>(), vec![17, 18, 19]);
    }

    #[test]
    fn a_restart_takes_no_slot_and_ends_nothing_early() {
        let mut w = TimeWaitTable::new(4);
        for p in 0..4 {
            assert!(w.insert(t(p), [0; 6], 0, tw(), 100 + p as u64).is_none());
        }
        // The oldest is restarted, many times (a peer repeating its FIN).
        let i = w.find(&t(0)).unwrap();
        for _ in 0..100 {
            w.restart(i, 200);
        }
        assert_eq!(w.len(), 4, "nothing pushed out");
        assert_eq!(w.next_deadline(), Some(101), "the entries behind the restarted one end first");
        let mut ended = vec![];
        assert_eq!(w.expire(102, |e| ended.push(e.tuple.remote_port)), 2);
        assert_eq!(ended, vec![1, 2], "the restarted entry moved out of their way");
        assert!(w.find(&t(0)).is_some());
        assert_eq!(w.next_deadline(), Some(103));
        assert_eq!(w.expire(199, |_| {}), 1);
        assert_eq!(w.next_deadline(), Some(200));
        assert_eq!(w.expire(200, |e| ended.push(e.tuple.remote_port)), 1);
        assert_eq!(ended, vec![1, 2, 0]);
        assert!(w.is_empty());
        // A ring not yet grown to its capacity moves entries too.
        let mut w = TimeWaitTable::new(8);
        w.insert(t(1), [0; 6], 0, tw(), 10);
        w.insert(t(2), [0; 6], 0, tw(), 11);
        w.restart(w.find(&t(1)).unwrap(), 50);
        assert_eq!(w.expire(20, |_| {}), 1);
        assert_eq!(w.iter().map(|e| e.tuple.remote_port).collect::<Vec<_>>(), vec![1]);
        let i = w.find(&t(1)).unwrap();
        assert_eq!(w.get(i).unwrap().expires, 50);
    }
}
