//! Who holds each UMEM frame, and the token that proves it.
//!
//! Every frame has a place tag ([`Place`]) in a table shared by the cores.
//! Tags move with one compare-and-swap from the place the caller says the
//! frame is in to the next; a move from anywhere else fails and changes
//! nothing. The only way to the bytes of a frame is an [`Owned`] token, and
//! the only way to get one is a successful move *into* `InHand`
//! ([`FrameTable::take`]); the token is consumed by the move out
//! ([`FrameTable::put`]). The table maps its UMEM itself and every token
//! names its table, so at most one token exists per frame: a frame freed
//! twice, adopted twice, or named by a descriptor for a frame that is on a
//! free list, in a handoff queue or in someone's hand is refused, never
//! aliased.
//!
//! What the table cannot see is the kernel's side of a ring: `Rx` covers a
//! frame on the fill ring and one back on the rx ring alike (likewise `Tx`),
//! and the rings take raw addresses. A kernel that returned a frame still on
//! the fill ring, or a caller that put a frame it holds a token for onto a
//! ring, would share that frame with the kernel. Ring wrappers that move
//! tokens are the next step; today the worker and the bench put on rings only
//! addresses that `put` returned.
use super::umem::UmemArea;
use std::io;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

/// Source of table ids, so a token names the table that made it.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// A frame's place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// On a core's free list.
    Free(u16),
    /// Lent to the kernel on a core's fill ring (and then its rx ring).
    Rx(u16),
    /// Held by a core between rx and tx (an [`Owned`] token exists).
    InHand(u16),
    /// Lent to the kernel on a core's tx ring until completion.
    Tx(u16),
    /// In a handoff queue between cores.
    Handoff,
    /// On the shared exchange stack.
    Exchange,
}

/// Tag of a frame no pool has claimed yet.
const UNASSIGNED: u16 = 0;

impl Place {
    fn tag(self) -> u16 {
        match self {
            Place::Free(c) => 0x1000 | (c & 0xfff),
            Place::Rx(c) => 0x2000 | (c & 0xfff),
            Place::InHand(c) => 0x3000 | (c & 0xfff),
            Place::Tx(c) => 0x4000 | (c & 0xfff),
            Place::Handoff => 0x5000,
            Place::Exchange => 0x6000,
        }
    }

    fn in_hand(self) -> bool {
        matches!(self, Place::InHand(_))
    }
}

/// Proof that the holder alone may touch one frame. Not `Clone`: it is
/// created by [`FrameTable::take`] and consumed by [`FrameTable::put`].
#[derive(Debug)]
#[must_use = "a frame in hand must be put somewhere (tx, free list, handoff)"]
pub struct Owned {
    addr: u64,
    table: u64,
}

impl Owned {
    /// The UMEM address it was taken at (a descriptor's address: it may
    /// point past the frame's start).
    pub fn addr(&self) -> u64 {
        self.addr
    }
}

/// The place of every frame of one UMEM. The table maps the UMEM itself,
/// so there is exactly one table per UMEM.
pub struct FrameTable {
    area: Arc<UmemArea>,
    places: Box<[AtomicU16]>,
    id: u64,
}

impl FrameTable {
    /// Maps a UMEM of `frame_count` frames of `frame_size` bytes (2048 or
    /// 4096), every frame unassigned.
    pub fn create(frame_count: u32, frame_size: u32) -> io::Result<Arc<Self>> {
        let area = UmemArea::new(frame_count, frame_size)?;
        let places = (0..area.frame_count()).map(|_| AtomicU16::new(UNASSIGNED)).collect();
        let id = NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(FrameTable { area, places, id }))
    }

    /// Panics on a token another table made: using it here could alias a
    /// frame of this table.
    fn check(&self, f: &Owned) {
        assert_eq!(f.table, self.id, "frame token from another frame table");
    }

    /// The UMEM.
    pub fn area(&self) -> &Arc<UmemArea> {
        &self.area
    }

    fn slot(&self, addr: u64) -> Option<&AtomicU16> {
        self.places.get(usize::try_from(addr / self.area.frame_size() as u64).ok()?)
    }

    fn cas(&self, addr: u64, from: u16, to: u16) -> bool {
        self.slot(addr).is_some_and(|s| s.compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed).is_ok())
    }

    /// Gives an unassigned frame its first place (pools do this once).
    pub fn assign(&self, addr: u64, to: Place) -> bool {
        assert!(!to.in_hand(), "frames enter InHand only through take()");
        self.cas(addr, UNASSIGNED, to.tag())
    }

    /// Moves a frame that is not in hand from `from` to `to`; false (and no
    /// change) if it was not at `from` or is not in the UMEM.
    pub fn moved(&self, addr: u64, from: Place, to: Place) -> bool {
        assert!(!from.in_hand() && !to.in_hand(), "InHand moves go through take() and put()");
        self.cas(addr, from.tag(), to.tag())
    }

    /// Takes the frame at `addr` from `from` into `core`'s hand; `None` if it
    /// was not at `from` (or not in the UMEM).
    pub fn take(&self, addr: u64, from: Place, core: u16) -> Option<Owned> {
        assert!(!from.in_hand());
        self.cas(addr, from.tag(), Place::InHand(core).tag()).then_some(Owned { addr, table: self.id })
    }

    /// Puts a frame in hand at `to` and returns its address for the ring or
    /// queue it goes to.
    pub fn put(&self, f: Owned, to: Place) -> u64 {
        assert!(!to.in_hand());
        self.check(&f);
        let slot = self.slot(f.addr).expect("a token is only made for a frame of this UMEM");
        // The token proves the tag is InHand (only `take` makes tokens, and it
        // moved the tag there), so a plain store cannot overwrite a move.
        slot.store(to.tag(), Ordering::Release);
        f.addr
    }

    /// The bytes `f.addr() .. f.addr() + len`, if they lie in the frame.
    pub fn bytes_mut<'a>(&'a self, f: &'a mut Owned, len: u32) -> Option<&'a mut [u8]> {
        self.check(f);
        self.area.in_one_frame(f.addr, len).then(|| {
            // SAFETY: the range lies inside the mapping and inside one frame
            // (checked above), and the mapping lives as long as `self` (it
            // holds the area's Arc). `f` is the only token for that frame (see
            // the module doc), it is borrowed mutably for the slice's lifetime,
            // and while a token exists the kernel has no descriptor for the
            // frame (it is on no ring), so nothing else reads or writes it.
            unsafe { std::slice::from_raw_parts_mut(self.area.ptr_at(f.addr), len as usize) }
        })
    }

    /// The whole frame of `f`, from its start, for building a packet.
    pub fn frame_mut<'a>(&'a self, f: &'a mut Owned) -> &'a mut [u8] {
        self.check(f);
        let base = self.area.frame_base(f.addr);
        assert!(self.area.in_one_frame(base, self.area.frame_size()));
        // SAFETY: as in `bytes_mut`; the whole frame is inside the area
        // (asserted above; `f` was taken from this table for a frame it has).
        unsafe { std::slice::from_raw_parts_mut(self.area.ptr_at(base), self.area.frame_size() as usize) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: u32) -> Arc<FrameTable> {
        let t = FrameTable::create(n, 2048).unwrap();
        for i in 0..n {
            assert!(t.assign(t.area().frame_addr(i), Place::Free(0)));
        }
        t
    }

    #[test]
    fn one_token_per_frame() {
        let t = table(2);
        let mut f = t.take(0, Place::Free(0), 0).expect("free frame");
        assert!(t.take(0, Place::Free(0), 0).is_none(), "already in hand");
        t.bytes_mut(&mut f, 4).unwrap().copy_from_slice(b"abcd");
        assert_eq!(t.put(f, Place::Tx(0)), 0);
        assert!(t.take(0, Place::Free(0), 0).is_none(), "on the tx ring now");
        assert!(t.moved(0, Place::Tx(0), Place::Free(0)));
        let mut f = t.take(0, Place::Free(0), 1).unwrap();
        assert_eq!(&t.bytes_mut(&mut f, 4).unwrap()[..], b"abcd");
        let _ = t.put(f, Place::Free(1));
    }

    #[test]
    fn bogus_addresses_and_wrong_places_are_refused() {
        let t = table(2);
        assert!(t.take(5 * 2048, Place::Free(0), 0).is_none(), "outside the UMEM");
        assert!(t.take(2048, Place::Rx(0), 0).is_none(), "not on the rx ring");
        assert!(!t.moved(2048, Place::Tx(0), Place::Free(0)), "not on the tx ring");
        assert!(!t.assign(2048, Place::Free(1)), "already assigned");
        let mut f = t.take(2048 + 256, Place::Free(0), 0).unwrap();
        assert!(t.bytes_mut(&mut f, 2048).is_none(), "crosses into the next frame");
        assert_eq!(t.frame_mut(&mut f).len(), 2048);
        let _ = t.put(f, Place::Free(0));
    }

    #[test]
    #[should_panic(expected = "frame token from another frame table")]
    fn a_token_from_another_table_is_refused() {
        let a = table(2);
        let b = table(2);
        let _mine = b.take(0, Place::Free(0), 0).unwrap();
        let mut theirs = a.take(0, Place::Free(0), 0).unwrap();
        let _ = b.bytes_mut(&mut theirs, 4);
    }

    #[test]
    fn racing_takers_get_one_token() {
        let t = table(64);
        let won: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u16)
                .map(|core| {
                    let t = &t;
                    s.spawn(move || {
                        let mut got = Vec::new();
                        for i in 0..64u32 {
                            if let Some(f) = t.take(t.area().frame_addr(i), Place::Free(0), core) {
                                got.push(f);
                            }
                        }
                        let n = got.len();
                        for f in got {
                            let _ = t.put(f, Place::Exchange);
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(won, 64, "every frame taken exactly once");
    }
}
