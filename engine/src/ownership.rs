//! Which core owns a flow, found from any core for every packet.
//!
//! A flow's packets may arrive on any queue (on veth the queue follows the
//! sender's hash, which a kernel peer changes after an RTO), but its state
//! lives on exactly one core. The [`OwnerDirectory`] is a shared, read-mostly
//! table of slots indexed by the flow's hash: the first core to see a flow in
//! a free (or expired) slot claims it with one compare-and-swap, and every
//! core reads the owner with one relaxed load afterwards. The owner refreshes
//! the slot's timestamp at most once a second while the flow is active, so a
//! slot is written rarely and its cache line stays shared.
//!
//! Flows that hash to one slot share its owner; that keeps the table a fixed
//! size with no deletion, and only costs a handoff when two such flows first
//! arrived on different cores. A slot idle for longer than the idle timeout is
//! free to claim again, unless it is *pinned*: whatever keeps state for a
//! flow (TCP: a SYN queue entry, a connection, a TIME-WAIT entry) pins its
//! slot when it is made and unpins it when it is gone, so however long a
//! connection idles, no other core can take its flow. The last unpin frees
//! the slot at once: a new connection whose flow shares it is then owned by
//! the core it arrives on, not by the one an earlier connection was on
//! (with connections coming and going faster than the idle timeout, every
//! slot would otherwise be held by a closed connection's core, and on veth
//! half of all new connections would be handed off for their whole life).
//! Stateless flows sharing the slot (UDP echo) merely claim it again where
//! they next arrive. A SYN flood cannot fill the table with pins: the SYN
//! queue is bounded, and SYN cookies keep nothing.
//!
//! Why learned ownership rather than a fixed hash of the flow: on veth the
//! arrival queue is the sender's choice, so a fixed function of the flow would
//! hand off about (n-1)/n of all frames; learned ownership hands off only the
//! frames that change queue mid-flow. (On a NIC with a known RSS key a fixed
//! function matching the NIC's hash is the alternative; see ARCHITECTURE.md.)
use crate::rss::RssMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A flow as the service sees it: protocol and both endpoints, as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IP protocol number.
    pub proto: u8,
    /// Remote address.
    pub src: Ipv4Addr,
    /// Local (service) address.
    pub dst: Ipv4Addr,
    /// Remote port (0 for ICMP: the echo identifier goes here instead).
    pub src_port: u16,
    /// Local port.
    pub dst_port: u16,
}

impl FlowKey {
    /// A 64-bit hash of the flow, keyed by `seed` so outsiders cannot aim
    /// many flows at one slot.
    #[inline]
    pub fn hash(&self, seed: u64) -> u64 {
        let a = (u32::from(self.src) as u64) << 32 | u32::from(self.dst) as u64;
        let b = (self.src_port as u64) << 32 | (self.dst_port as u64) << 16 | self.proto as u64;
        mix(mix(a ^ seed) ^ b.rotate_left(17))
    }
}

/// splitmix64's finaliser: a cheap full-avalanche mixer.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the directory says about a flow for the asking core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The asking core owns it; `claimed` if it just became the owner.
    Mine {
        /// The claim happened on this lookup.
        claimed: bool,
    },
    /// Another core owns it: hand the frame to that core.
    Other(u16),
}

const SEEN_BITS: u32 = 32;
const SEEN_MASK: u64 = (1 << SEEN_BITS) - 1;
const PIN_BITS: u32 = 20;
const PIN_SHIFT: u32 = SEEN_BITS;
const PIN_MAX: u64 = (1 << PIN_BITS) - 1;
const OWNER_SHIFT: u32 = SEEN_BITS + PIN_BITS;

/// Largest core number a slot can name.
pub const MAX_CORE: u16 = (1 << (64 - OWNER_SHIFT)) - 2;

/// A slot: owner core + 1 in the top 12 bits (0 = none), the number of
/// connections pinning it in the next 20 (saturating: a slot pinned
/// 2^20 - 1 times stays pinned), last-seen second + 1 in the low 32.
#[inline]
fn encode(owner: u16, pins: u64, now_s: u64) -> u64 {
    ((owner as u64 + 1) << OWNER_SHIFT) | (pins.min(PIN_MAX) << PIN_SHIFT) | ((now_s + 1) & SEEN_MASK)
}

/// (owner, pins, last seen second) of an owned slot.
#[inline]
fn decode(v: u64) -> Option<(u16, u64, u64)> {
    let owner = (v >> OWNER_SHIFT) as u16;
    (owner != 0).then(|| (owner - 1, (v >> PIN_SHIFT) & PIN_MAX, (v & SEEN_MASK).saturating_sub(1)))
}

/// The shared owner table.
pub struct OwnerDirectory {
    slots: Box<[AtomicU64]>,
    mask: u64,
    seed: u64,
    idle_s: u64,
    /// `Some`: ownership is a fixed function of the flow, no table.
    fixed: Option<Fixed>,
    /// The NIC's RSS, when known: the queue each flow arrives on.
    rss: Option<Arc<RssMap>>,
}

/// A fixed function from a flow to its owner.
enum Fixed {
    /// The flow's hash modulo this many cores.
    Hash(u16),
    /// The queue the NIC's RSS delivers the flow to.
    Rss(Arc<RssMap>),
}

#[cfg(test)]
thread_local! {
    /// Slots this thread's unpins freed, for tests that check a slot was
    /// never free for a moment (another core could have claimed it then).
    pub(crate) static SLOTS_FREED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl OwnerDirectory {
    /// A table of `slots` (rounded up to a power of two) slots; an unpinned
    /// claim lapses after `idle_s` seconds without traffic.
    pub fn new(slots: usize, idle_s: u64, seed: u64) -> Self {
        let n = slots.max(1).next_power_of_two();
        OwnerDirectory {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n as u64 - 1,
            seed,
            idle_s,
            fixed: None,
            rss: None,
        }
    }

    /// A directory that does not learn: the owner of a flow is its hash
    /// modulo `cores` (option (a) of the design, kept to measure against).
    pub fn hashed(cores: u16, seed: u64) -> Self {
        OwnerDirectory {
            slots: Box::new([]),
            mask: 0,
            seed,
            idle_s: 0,
            fixed: Some(Fixed::Hash(cores.max(1))),
            rss: None,
        }
    }

    /// A directory that does not learn: a flow's owner is the queue the
    /// NIC's RSS delivers it to (`engine.flow_owner = "rss"`).
    pub fn rss_owned(rss: Arc<RssMap>, seed: u64) -> Self {
        OwnerDirectory {
            slots: Box::new([]),
            mask: 0,
            seed,
            idle_s: 0,
            fixed: Some(Fixed::Rss(rss.clone())),
            rss: Some(rss),
        }
    }

    /// Makes the NIC's RSS known to a learning directory (active opens then
    /// pick ports whose packets arrive on the opening core).
    pub fn with_rss(mut self, rss: Option<Arc<RssMap>>) -> Self {
        self.rss = rss;
        self
    }

    /// Whether the NIC's RSS is known.
    pub fn knows_arrivals(&self) -> bool {
        self.rss.is_some()
    }

    /// The queue `flow`'s packets arrive on, when the NIC's RSS is known.
    #[inline]
    pub fn arrival_queue(&self, flow: &FlowKey) -> Option<u16> {
        self.rss.as_ref().map(|r| r.queue_of(flow))
    }

    /// The owner of `flow` when ownership is a fixed function.
    #[inline]
    fn fixed_owner(&self, flow: &FlowKey) -> Option<u16> {
        match self.fixed.as_ref()? {
            Fixed::Hash(cores) => Some((flow.hash(self.seed) % *cores as u64) as u16),
            Fixed::Rss(rss) => Some(rss.queue_of(flow)),
        }
    }

    /// The index of `flow`'s slot (`None` for a fixed function): flows
    /// with the same index share an owner, so whoever opens connections
    /// from several cores spreads them by it and never collides.
    pub fn slot_index(&self, flow: &FlowKey) -> Option<usize> {
        self.fixed.is_none().then(|| (flow.hash(self.seed) & self.mask) as usize)
    }

    /// The seed flows are hashed with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Who owns `flow`, claiming it for `me` when its slot is free or has
    /// lapsed. `now_s` is the engine's clock in whole seconds.
    #[inline]
    pub fn lookup(&self, flow: &FlowKey, me: u16, now_s: u64) -> Ownership {
        if let Some(owner) = self.fixed_owner(flow) {
            return if owner == me { Ownership::Mine { claimed: false } } else { Ownership::Other(owner) };
        }
        let slot = self.slot(flow);
        let v = slot.load(Ordering::Acquire);
        match decode(v) {
            Some((owner, pins, seen)) if owner == me => {
                if now_s > seen {
                    // Refresh at most once a second. Losing the race means
                    // another core claimed the lapsed slot (or a pin moved):
                    // look again.
                    if let Err(now_v) =
                        slot.compare_exchange(v, encode(me, pins, now_s), Ordering::AcqRel, Ordering::Acquire)
                    {
                        if let Some((o, _, _)) = decode(now_v).filter(|(o, _, _)| *o != me) {
                            return Ownership::Other(o);
                        }
                    }
                }
                return Ownership::Mine { claimed: false };
            }
            Some((owner, pins, seen)) if pins > 0 || now_s.saturating_sub(seen) <= self.idle_s => {
                return Ownership::Other(owner)
            }
            _ => {}
        }
        match slot.compare_exchange(v, encode(me, 0, now_s), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ownership::Mine { claimed: true },
            Err(now_v) => match decode(now_v) {
                Some((owner, _, _)) if owner != me => Ownership::Other(owner),
                _ => Ownership::Mine { claimed: false },
            },
        }
    }

    /// The other core that owns `flow`, if one does, without claiming it
    /// (TCP claims only when it keeps state for the flow). The asking
    /// core's own claim is refreshed as by [`lookup`](Self::lookup).
    #[inline]
    pub fn peek(&self, flow: &FlowKey, me: u16, now_s: u64) -> Option<u16> {
        if let Some(owner) = self.fixed_owner(flow) {
            return (owner != me).then_some(owner);
        }
        match decode(self.slot(flow).load(Ordering::Acquire)) {
            Some((owner, _, _)) if owner == me => {
                self.touch(flow, me, now_s);
                None
            }
            Some((owner, pins, seen)) if pins > 0 || now_s.saturating_sub(seen) <= self.idle_s => Some(owner),
            _ => None,
        }
    }

    fn slot(&self, flow: &FlowKey) -> &AtomicU64 {
        &self.slots[(flow.hash(self.seed) & self.mask) as usize]
    }

    /// Pins `flow`'s slot for `me` (state for the flow is made on `me`):
    /// claims it if free or lapsed, and from then on it stays `me`'s until
    /// every pin is released with [`unpin`](Self::unpin), the last of which
    /// frees it. `Err(owner)` when another core owns the slot: the state
    /// belongs there.
    pub fn pin(&self, flow: &FlowKey, me: u16, now_s: u64) -> Result<(), u16> {
        if let Some(owner) = self.fixed_owner(flow) {
            return if owner == me { Ok(()) } else { Err(owner) };
        }
        let slot = self.slot(flow);
        let mut v = slot.load(Ordering::Acquire);
        loop {
            let next = match decode(v) {
                Some((owner, pins, _)) if owner == me => encode(me, pins.saturating_add(1), now_s),
                Some((owner, pins, seen)) if pins > 0 || now_s.saturating_sub(seen) <= self.idle_s => {
                    return Err(owner)
                }
                _ => encode(me, 1, now_s),
            };
            match slot.compare_exchange_weak(v, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now_v) => v = now_v,
            }
        }
    }

    /// Releases one pin of `me` on `flow`'s slot (the state is gone); the
    /// last one frees the slot. A saturated count stays.
    pub fn unpin(&self, flow: &FlowKey, me: u16, now_s: u64) {
        if self.fixed.is_some() {
            return;
        }
        let slot = self.slot(flow);
        let mut v = slot.load(Ordering::Acquire);
        loop {
            let next = match decode(v) {
                Some((owner, 1, _)) if owner == me => 0,
                Some((owner, pins, _)) if owner == me && pins > 1 && pins < PIN_MAX => encode(me, pins - 1, now_s),
                _ => return,
            };
            match slot.compare_exchange_weak(v, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    #[cfg(test)]
                    if next == 0 {
                        SLOTS_FREED.with(|n| n.set(n.get() + 1));
                    }
                    return;
                }
                Err(now_v) => v = now_v,
            }
        }
    }

    /// Keeps `me`'s claim on `flow` fresh for traffic that reached `me`
    /// through a handoff (the owner sees none of it in `lookup`).
    #[inline]
    pub fn touch(&self, flow: &FlowKey, me: u16, now_s: u64) {
        if self.fixed.is_some() {
            return;
        }
        let slot = self.slot(flow);
        let v = slot.load(Ordering::Relaxed);
        if let Some((owner, pins, seen)) = decode(v) {
            if owner == me && now_s > seen {
                let _ = slot.compare_exchange(v, encode(me, pins, now_s), Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// The owner and pin count of `flow`'s slot, `None` when it is free
    /// (for the tests' accounting of who pins what).
    #[cfg(test)]
    pub(crate) fn slot_state(&self, flow: &FlowKey) -> Option<(u16, u64)> {
        decode(self.slot(flow).load(Ordering::Acquire)).map(|(o, pins, _)| (o, pins))
    }

    /// Slots currently owned (not lapsed) by each of `cores` cores.
    pub fn owned_per_core(&self, cores: usize, now_s: u64) -> Vec<u64> {
        let mut n = vec![0u64; cores];
        for s in self.slots.iter() {
            if let Some((o, pins, seen)) = decode(s.load(Ordering::Relaxed)) {
                if (pins > 0 || now_s.saturating_sub(seen) <= self.idle_s) && (o as usize) < cores {
                    n[o as usize] += 1;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(port: u16) -> FlowKey {
        FlowKey {
            proto: 17,
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            src_port: port,
            dst_port: 7,
        }
    }

    #[test]
    fn first_core_to_see_a_flow_owns_it() {
        let d = OwnerDirectory::new(1024, 30, 7);
        assert_eq!(d.lookup(&flow(1000), 1, 5), Ownership::Mine { claimed: true });
        assert_eq!(d.lookup(&flow(1000), 1, 5), Ownership::Mine { claimed: false });
        assert_eq!(d.lookup(&flow(1000), 0, 6), Ownership::Other(1));
    }

    #[test]
    fn ownership_lapses_after_the_idle_timeout_only() {
        let d = OwnerDirectory::new(16, 30, 7);
        d.lookup(&flow(1), 0, 100);
        assert_eq!(d.lookup(&flow(1), 1, 130), Ownership::Other(0));
        // The owner's traffic refreshes the slot.
        d.lookup(&flow(1), 0, 125);
        assert_eq!(d.lookup(&flow(1), 1, 150), Ownership::Other(0));
        assert_eq!(d.lookup(&flow(1), 1, 156), Ownership::Mine { claimed: true });
        assert_eq!(d.lookup(&flow(1), 0, 157), Ownership::Other(1));
    }

    #[test]
    fn hashed_ownership_is_a_fixed_function_of_the_flow() {
        let d = OwnerDirectory::hashed(2, 5);
        let mut owners = [0u32; 2];
        for p in 0..1000 {
            let owner = match d.lookup(&flow(p), 0, 1) {
                Ownership::Mine { claimed } => {
                    assert!(!claimed);
                    0
                }
                Ownership::Other(o) => o,
            };
            assert_eq!(
                d.lookup(&flow(p), 1, 99),
                if owner == 1 { Ownership::Mine { claimed: false } } else { Ownership::Other(0) }
            );
            owners[owner as usize] += 1;
        }
        assert!(owners.iter().all(|&n| n > 400), "spread: {owners:?}");
        assert_eq!(d.owned_per_core(2, 1), vec![0, 0]);
    }

    #[test]
    fn handed_over_traffic_keeps_the_owner_fresh() {
        let d = OwnerDirectory::new(16, 30, 7);
        d.lookup(&flow(1), 0, 100);
        // Every later frame arrives on core 1 and is handed to core 0.
        for t in 101..200 {
            assert_eq!(d.lookup(&flow(1), 1, t), Ownership::Other(0), "t = {t}");
            d.touch(&flow(1), 0, t);
        }
        // touch never claims for a core that does not own the slot.
        d.touch(&flow(1), 1, 300);
        assert_eq!(d.lookup(&flow(1), 0, 200), Ownership::Mine { claimed: false });
    }

    #[test]
    fn a_lapsed_owner_learns_the_new_owner() {
        let d = OwnerDirectory::new(1, 30, 7);
        d.lookup(&flow(1), 0, 10);
        assert_eq!(d.lookup(&flow(1), 1, 100), Ownership::Mine { claimed: true });
        assert_eq!(d.lookup(&flow(1), 0, 100), Ownership::Other(1));
    }

    #[test]
    fn concurrent_claims_agree_on_one_owner() {
        let d = std::sync::Arc::new(OwnerDirectory::new(4096, 30, 99));
        let results: Vec<Vec<Ownership>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u16)
                .map(|me| {
                    let d = d.clone();
                    s.spawn(move || (0..2000u16).map(|p| d.lookup(&flow(p), me, 1)).collect::<Vec<_>>())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for p in 0..2000usize {
            let owners: Vec<u16> = (0..4u16)
                .zip(&results)
                .map(|(me, r)| match r[p] {
                    Ownership::Mine { .. } => me,
                    Ownership::Other(o) => o,
                })
                .collect();
            assert!(owners.windows(2).all(|w| w[0] == w[1]), "flow {p}: {owners:?}");
        }
    }

    #[test]
    fn a_pinned_slot_never_lapses_until_its_last_pin_is_released() {
        let d = OwnerDirectory::new(16, 30, 7);
        assert_eq!(d.pin(&flow(1), 0, 100), Ok(()));
        assert_eq!(d.pin(&flow(1), 0, 100), Ok(()), "a second connection in the same slot");
        assert_eq!(d.pin(&flow(1), 1, 100), Err(0));
        // An idle connection: a day later the slot is still core 0's.
        assert_eq!(d.lookup(&flow(1), 1, 100 + 86_400), Ownership::Other(0));
        d.unpin(&flow(1), 0, 100 + 86_400);
        assert_eq!(d.lookup(&flow(1), 1, 100 + 86_400 + 100), Ownership::Other(0), "one pin left");
        d.unpin(&flow(1), 1, 100 + 86_400 + 100); // not the owner: ignored
        assert_eq!(d.peek(&flow(1), 1, 100 + 86_400 + 100), Some(0));
        d.unpin(&flow(1), 0, 100 + 86_400 + 100);
        // The last pin gone, the slot is free at once: the next flow in it
        // belongs to the core it arrives on, with no idle timeout to wait.
        assert_eq!(d.peek(&flow(1), 1, 100 + 86_400 + 100), None);
        assert_eq!(d.owned_per_core(2, 100 + 86_400 + 100), vec![0, 0]);
        assert_eq!(d.pin(&flow(1), 1, 100 + 86_400 + 101), Ok(()));
        assert_eq!(d.owned_per_core(2, 100 + 86_400 + 131), vec![0, 1]);
        assert_eq!(d.lookup(&flow(1), 0, 100 + 86_400 + 200), Ownership::Other(1));
        // A learned (unpinned) claim that a pin joined is freed with it.
        let d = OwnerDirectory::new(16, 30, 7);
        assert_eq!(d.lookup(&flow(2), 0, 10), Ownership::Mine { claimed: true });
        assert_eq!(d.pin(&flow(2), 0, 11), Ok(()));
        d.unpin(&flow(2), 0, 12);
        assert_eq!(d.peek(&flow(2), 1, 12), None);
    }

    #[test]
    fn peek_names_the_owner_and_never_claims() {
        let d = OwnerDirectory::new(16, 30, 7);
        assert_eq!(d.peek(&flow(1), 1, 100), None, "unowned");
        assert_eq!(d.lookup(&flow(1), 0, 101), Ownership::Mine { claimed: true }, "peek left it free");
        assert_eq!(d.peek(&flow(1), 1, 102), Some(0));
        assert_eq!(d.peek(&flow(1), 0, 120), None, "its own");
        // The owner's peek refreshed the claim: still core 0's at 140.
        assert_eq!(d.peek(&flow(1), 1, 140), Some(0));
        assert_eq!(d.peek(&flow(1), 1, 151), None, "lapsed");
        let h = OwnerDirectory::hashed(2, 5);
        for p in 0..50 {
            let owner = match h.lookup(&flow(p), 0, 1) {
                Ownership::Mine { .. } => 0,
                Ownership::Other(o) => o,
            };
            assert_eq!(h.peek(&flow(p), 0, 1), (owner != 0).then_some(owner));
        }
    }

    #[test]
    fn rss_ownership_is_the_queue_the_nic_delivers_to() {
        let key: Vec<u8> = (0..40).map(|i| (i * 37 + 11) as u8).collect();
        // UDP by addresses alone (`udp_l4 = false`): one queue for all of
        // these flows, whatever their ports, as the NIC would.
        let by_addr = RssMap::new(&key, (0..128).map(|i| i % 2).collect(), false).unwrap();
        assert!((0..200).all(|p| by_addr.queue_of(&flow(p)) == by_addr.queue_of(&flow(0))));
        let rss = Arc::new(RssMap::new(&key, (0..128).map(|i| i % 2).collect(), true).unwrap());
        let d = OwnerDirectory::rss_owned(rss.clone(), 5);
        let learned = OwnerDirectory::new(16, 30, 7).with_rss(Some(rss.clone()));
        let mut per_queue = [0u32; 2];
        for p in 0..200 {
            let q = rss.queue_of(&flow(p));
            per_queue[q as usize] += 1;
            assert_eq!(d.arrival_queue(&flow(p)), Some(q));
            assert_eq!(learned.arrival_queue(&flow(p)), Some(q));
            assert_eq!(d.lookup(&flow(p), q, 1), Ownership::Mine { claimed: false });
            assert_eq!(d.lookup(&flow(p), 1 - q, 1), Ownership::Other(q));
            assert_eq!(d.pin(&flow(p), 1 - q, 1), Err(q));
            assert_eq!(d.pin(&flow(p), q, 1), Ok(()));
            assert_eq!(d.peek(&flow(p), 1 - q, 1), Some(q));
            assert_eq!(d.slot_index(&flow(p)), None);
        }
        assert!(per_queue.iter().all(|&n| n > 60), "{per_queue:?}");
        assert_eq!(OwnerDirectory::new(16, 30, 7).arrival_queue(&flow(1)), None, "RSS unknown");
    }

    #[test]
    fn pins_saturate_and_the_slot_stays_pinned() {
        let d = OwnerDirectory::new(1, 30, 7);
        let v = encode(3, PIN_MAX, 5);
        d.slots[0].store(v, Ordering::Relaxed);
        assert_eq!(d.pin(&flow(9), 3, 6), Ok(()));
        d.unpin(&flow(9), 3, 7);
        assert_eq!(decode(d.slots[0].load(Ordering::Relaxed)).unwrap().1, PIN_MAX, "saturated: sticky");
        assert_eq!(decode(encode(MAX_CORE, 0, 0)).unwrap().0, MAX_CORE);
    }

    #[test]
    fn hash_spreads_ports_and_depends_on_the_seed() {
        let a: std::collections::HashSet<u64> = (0..1000).map(|p| flow(p).hash(1) & 255).collect();
        assert!(a.len() > 200, "only {} of 256 slots hit", a.len());
        assert_ne!(flow(5).hash(1), flow(5).hash(2));
    }
}
