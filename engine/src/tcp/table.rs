//! One core's connections: a slab of connection blocks found by their
//! four-tuple. Sized once, from the configuration; the packet path never
//! grows it. A slot's number is also its timer's id in the core's wheel.
use crate::services::App;
use sluice_tcp::listener::Tuple;
use sluice_tcp::Conn;
use std::collections::HashMap;

/// A connection and what the engine keeps beside it.
pub struct Slot {
    /// The state machine.
    pub conn: Conn,
    /// Its four-tuple.
    pub tuple: Tuple,
    /// The peer's MAC (the rest of a segment's addresses is the tuple's
    /// and the interface's).
    pub remote_mac: [u8; 6],
    /// The service it belongs to.
    pub service: u32,
    /// The service's state for it.
    pub app: App,
    /// When it was created, engine seconds.
    pub since: u32,
    /// It is on the core's list of connections to serve this pass.
    pub dirty: bool,
    /// A transmission was refused (no frame, or its payload still on a tx
    /// ring): it is on the list of connections to try again.
    pub blocked: bool,
}

/// The table.
pub struct ConnTable {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_tuple: HashMap<Tuple, u32>,
    capacity: u32,
}

impl ConnTable {
    /// A table for at most `capacity` connections (memory is reserved now
    /// and touched as slots are first used).
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.max(1);
        ConnTable {
            slots: Vec::with_capacity(capacity as usize),
            free: Vec::with_capacity(capacity as usize),
            by_tuple: HashMap::with_capacity(capacity as usize),
            capacity,
        }
    }

    /// Connections now.
    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// No connections.
    pub fn is_empty(&self) -> bool {
        self.by_tuple.is_empty()
    }

    /// Most connections it holds.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Whether another connection fits.
    pub fn has_room(&self) -> bool {
        (self.by_tuple.len() as u32) < self.capacity
    }

    /// The slot of `t`.
    #[inline]
    pub fn find(&self, t: &Tuple) -> Option<u32> {
        self.by_tuple.get(t).copied()
    }

    /// Slot `id`.
    #[inline]
    pub fn get(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots.get_mut(id as usize).and_then(|s| s.as_mut())
    }

    /// Slot `id`, read only.
    pub fn peek(&self, id: u32) -> Option<&Slot> {
        self.slots.get(id as usize).and_then(|s| s.as_ref())
    }

    /// Adds a connection; `None` when the table is full or the tuple is
    /// taken (the slot is dropped: a new connection holds no chunk).
    pub fn insert(&mut self, slot: Slot) -> Option<u32> {
        if !self.has_room() || self.by_tuple.contains_key(&slot.tuple) {
            return None;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.slots.len() as u32;
                self.slots.push(None);
                id
            }
        };
        self.by_tuple.insert(slot.tuple, id);
        self.slots[id as usize] = Some(slot);
        Some(id)
    }

    /// Removes slot `id` and returns it.
    pub fn remove(&mut self, id: u32) -> Option<Slot> {
        let s = self.slots.get_mut(id as usize)?.take()?;
        self.by_tuple.remove(&s.tuple);
        self.free.push(id);
        Some(s)
    }

    /// The ids of every connection (for the control plane and teardown).
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_tuple.values().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_tcp::{Seq, TcpConfig, TcpStats};
    use std::collections::VecDeque;
    use std::sync::Arc;

    fn slot(cfg: &Arc<TcpConfig>, stats: &mut TcpStats, n: u32) -> Slot {
        let tuple = Tuple {
            local_addr: [198, 18, 0, 2],
            local_port: 7,
            remote_addr: (0xc612_0000 | (n >> 16)).to_be_bytes(),
            remote_port: n as u16,
        };
        Slot {
            conn: Conn::connect(cfg.clone(), Seq(n), 0, 0, stats),
            tuple,
            remote_mac: [0; 6],
            service: 0,
            app: App::Echo(Default::default()),
            since: 0,
            dirty: false,
            blocked: false,
        }
    }

    #[test]
    fn churn_at_the_limit_grows_the_tuple_map_at_most_once_then_never() {
        // The map is std's (SwissTable): removals leave tombstones, and an
        // insert that finds no free bucket rehashes in place while at most
        // half full, else doubles. Held at `capacity` entries, it can double
        // once (an allocation on the packet path, once per table's life)
        // and then always has the room to rehash in place.
        let cfg = Arc::new(TcpConfig::default());
        let mut stats = TcpStats::default();
        let cap = 1_000;
        let mut t = ConnTable::new(cap);
        // capacity() is entries + room before the next rehash (tombstones
        // eat the room); its peak is the buckets' worth.
        let reserved = t.by_tuple.capacity();
        let mut live = VecDeque::new();
        let mut n = 0u32;
        let mut churn = |t: &mut ConnTable, rounds: u32| {
            let mut peak = 0;
            for _ in 0..rounds {
                if !t.has_room() {
                    let old = live.pop_front().expect("full, so not empty");
                    assert!(t.remove(old).is_some());
                }
                n += 1;
                live.push_back(t.insert(slot(&cfg, &mut stats, n)).expect("room was made"));
                peak = peak.max(t.by_tuple.capacity());
            }
            peak
        };
        let first = churn(&mut t, 100_000);
        assert!(first <= 2 * reserved + 1, "grew past one doubling: {reserved} -> {first}");
        let then = churn(&mut t, 100_000);
        assert!(then <= first, "and never again: {first} -> {then}");
        assert_eq!(t.len(), cap as usize);
    }
}
