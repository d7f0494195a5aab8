//! Who holds each UMEM frame, and the token that proves it.
//!
//! A frame is either in user space or lent to the kernel. In user space it
//! is held through exactly one [`Frame`] token: a free list, a connection's
//! queue, a handoff queue or a packet being handled holds the token, and the
//! only way to the frame's bytes is through it ([`FrameTable::bytes_mut`]).
//! Tokens are not `Clone`; moving one moves the frame. Every token is made
//! once, by [`FrameTable::take_all`] when the UMEM is created, or by taking a
//! frame back from a kernel ring.
//!
//! The kernel side is the [`FrameTable`]'s business: it keeps a place tag per
//! frame (`User`, or lent on queue q's fill/rx rings, or on its tx/completion
//! rings). A frame goes onto a ring only by giving up its token (the socket's
//! ring methods do that, [`FrameTable::lend`] is private to the AF_XDP
//! layer), and a descriptor the kernel hands back becomes a token only if the
//! table says that frame was lent to that very ring pair: a descriptor for a
//! frame in user space, lent elsewhere, or outside the UMEM is refused (the
//! caller counts it) and never aliased. So "at most one holder per frame" is
//! a property of the types plus one compare-and-swap per ring crossing, in
//! every build.
//!
//! A token that is dropped instead of being given back would lose its frame
//! for good; [`Frame`]'s `Drop` counts it ([`frames_leaked`]) so that tests
//! and `sluicectl stats` see it. Teardown gives frames back explicitly with
//! [`FrameTable::retire`].
use super::umem::UmemArea;
use std::io;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

/// Source of table ids, so a token names the table that made it.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// Tokens dropped without being given back, in this process.
static LEAKED: AtomicU64 = AtomicU64::new(0);

/// Frame tokens dropped instead of being given back (a bug wherever it
/// happens; the frame is lost until the UMEM is unmapped).
pub fn frames_leaked() -> u64 {
    LEAKED.load(Ordering::Relaxed)
}

/// Held by tests that leak on purpose or assert that nothing leaked, so the
/// process-wide count is theirs while they run.
#[cfg(test)]
pub(crate) static LEAK_CHECK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`LEAK_CHECK`] (a test that panicked while holding it poisoned it
/// harmlessly).
#[cfg(test)]
pub(crate) fn leak_check() -> std::sync::MutexGuard<'static, ()> {
    LEAK_CHECK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the kernel holds a lent frame: the rings of one socket (queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lent {
    /// On queue q's fill ring, or back on its rx ring.
    Rx(u16),
    /// On queue q's tx ring, or back on its completion ring.
    Tx(u16),
}

const UNASSIGNED: u16 = 0;
const USER: u16 = 0x1000;
const RETIRED: u16 = 0x2000;
const RX: u16 = 0x4000;
const TX: u16 = 0x8000;
/// Queue numbers fit in 12 bits of a tag.
pub const MAX_QUEUE: u16 = 0x0fff;

impl Lent {
    fn tag(self) -> u16 {
        match self {
            Lent::Rx(q) => RX | (q & MAX_QUEUE),
            Lent::Tx(q) => TX | (q & MAX_QUEUE),
        }
    }
}

/// The one token for one frame in user space. Not `Clone`.
#[derive(Debug)]
#[must_use = "a frame must be given back (free list, ring, queue); dropping it loses the frame"]
pub struct Frame {
    /// Index of the frame in its UMEM.
    index: u32,
    /// The table that made the token (64 bits: never reused).
    table: u64,
}

impl Frame {
    /// The frame's index in its UMEM.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Consumes the token without counting a leak (only for the table's
    /// own moves, which record where the frame went).
    fn forget(self) -> u32 {
        let i = self.index;
        std::mem::forget(self);
        i
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        LEAKED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A packet in a frame: the frame's token and the byte range `off .. off +
/// len` within the frame that holds the packet.
#[derive(Debug)]
#[must_use = "a packet holds a frame that must be given back"]
pub struct Packet {
    /// The frame.
    pub frame: Frame,
    off: u16,
    len: u16,
}

impl Packet {
    /// A packet at `off .. off + len` of `frame`; the range is checked
    /// against the frame size when the bytes are reached.
    #[inline]
    pub fn new(frame: Frame, off: u16, len: u16) -> Packet {
        Packet { frame, off, len }
    }

    /// Offset of the first byte in the frame.
    #[inline]
    pub fn off(&self) -> u16 {
        self.off
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        self.len
    }

    /// Whether the packet is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Moves the range (the bytes are checked when reached).
    #[inline]
    pub fn set_range(&mut self, off: u16, len: u16) {
        self.off = off;
        self.len = len;
    }

    /// The frame, without the range.
    #[inline]
    pub fn into_frame(self) -> Frame {
        self.frame
    }
}

/// How many frames are in each kind of place (a scan of the table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// In user space (a token exists, or was leaked).
    pub user: u32,
    /// Lent for receiving (fill or rx ring).
    pub lent_rx: u32,
    /// Lent for sending (tx or completion ring).
    pub lent_tx: u32,
    /// Given back at teardown.
    pub retired: u32,
    /// Never handed out.
    pub unassigned: u32,
}

/// The place of every frame of one UMEM, and the only way to its bytes. The
/// table maps the UMEM itself, so there is exactly one table per UMEM.
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

    /// The UMEM.
    pub fn area(&self) -> &Arc<UmemArea> {
        &self.area
    }

    /// Bytes per frame.
    #[inline]
    pub fn frame_size(&self) -> u32 {
        self.area.frame_size()
    }

    /// Number of frames.
    pub fn frame_count(&self) -> u32 {
        self.area.frame_count()
    }

    /// Panics on a token another table made: using it here could alias a
    /// frame of this table. Checked in every build.
    #[inline]
    fn check(&self, f: &Frame) {
        assert_eq!(f.table, self.id, "frame token from another frame table");
    }

    /// The token of every frame that has none yet, each made exactly once:
    /// a second call returns nothing. Frames `first..first + n` only.
    pub fn take_range(&self, first: u32, n: u32) -> Vec<Frame> {
        let end = first.saturating_add(n).min(self.frame_count());
        (first..end)
            .filter(|&i| {
                self.places[i as usize].compare_exchange(UNASSIGNED, USER, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            })
            .map(|i| Frame { index: i, table: self.id })
            .collect()
    }

    /// The tokens of all frames (see [`take_range`](Self::take_range)).
    pub fn take_all(&self) -> Vec<Frame> {
        self.take_range(0, self.frame_count())
    }

    /// Gives a token up to the kernel: the frame is recorded as lent to
    /// `to` and its address returned for the ring. Only the socket's ring
    /// methods call this, with a slot reserved for the address.
    pub(super) fn lend(&self, f: Frame, to: Lent) -> u64 {
        self.check(&f);
        let i = f.index as usize;
        // The token proves the tag is USER (tokens are made only by moves to
        // USER, and consumed by moves out), so a plain store cannot overwrite
        // another move.
        self.places[i].store(to.tag(), Ordering::Release);
        self.area.frame_addr(f.forget())
    }

    /// The frame holding UMEM address `addr`, back from the kernel ring pair
    /// `from`: a token if (and only if) the table has it lent there.
    pub(super) fn reclaim(&self, addr: u64, from: Lent) -> Option<Frame> {
        let index = usize::try_from(addr / self.frame_size() as u64).ok()?;
        let slot = self.places.get(index)?;
        slot.compare_exchange(from.tag(), USER, Ordering::AcqRel, Ordering::Relaxed).ok()?;
        Some(Frame { index: index as u32, table: self.id })
    }

    /// Gives a token back for good (teardown): the frame is retired.
    pub fn retire(&self, f: Frame) {
        self.check(&f);
        self.places[f.index as usize].store(RETIRED, Ordering::Release);
        f.forget();
    }

    /// The bytes `off .. off + len` of `f`'s frame, if they lie in it.
    #[inline]
    pub fn bytes_mut<'a>(&'a self, f: &'a mut Frame, off: u16, len: u16) -> Option<&'a mut [u8]> {
        self.check(f);
        let end = off as u32 + len as u32;
        (end <= self.frame_size()).then(|| {
            // SAFETY: `off .. end` of the frame lies inside one frame of the
            // mapping (end <= frame size, and the token names a frame of this
            // table), and the mapping lives as long as `self` (it holds the
            // area's Arc). `f` is the only token for that frame (see the
            // module doc), it is borrowed mutably for the slice's lifetime,
            // and while a token exists the frame is on no kernel ring, so
            // nothing else reads or writes it.
            unsafe {
                std::slice::from_raw_parts_mut(
                    self.area.ptr_at(self.area.frame_addr(f.index) + off as u64),
                    len as usize,
                )
            }
        })
    }

    /// The bytes of packet `p`, if its range lies in its frame.
    #[inline]
    pub fn packet_mut<'a>(&'a self, p: &'a mut Packet) -> Option<&'a mut [u8]> {
        let (off, len) = (p.off, p.len);
        self.bytes_mut(&mut p.frame, off, len)
    }

    /// The whole frame of `f`, for building a packet in.
    #[inline]
    pub fn frame_mut<'a>(&'a self, f: &'a mut Frame) -> &'a mut [u8] {
        let size = self.frame_size();
        self.check(f);
        // SAFETY: as in `bytes_mut`, for the whole frame.
        unsafe { std::slice::from_raw_parts_mut(self.area.ptr_at(self.area.frame_addr(f.index)), size as usize) }
    }

    /// The whole frame of `f`, read only.
    #[inline]
    pub fn frame(&self, f: &Frame) -> &[u8] {
        let size = self.frame_size();
        self.check(f);
        // SAFETY: as in `bytes_mut`; `f` is borrowed shared for the slice's
        // lifetime, so no mutable slice of the frame exists meanwhile.
        unsafe { std::slice::from_raw_parts(self.area.ptr_at(self.area.frame_addr(f.index)), size as usize) }
    }

    /// Counts the frames in each kind of place (a scan of every tag; for the
    /// control plane, not the packet path).
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        for s in self.places.iter() {
            let t = s.load(Ordering::Relaxed);
            match t {
                UNASSIGNED => c.unassigned += 1,
                USER => c.user += 1,
                RETIRED => c.retired += 1,
                t if t & RX != 0 => c.lent_rx += 1,
                _ => c.lent_tx += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_made_once_and_lent_frames_come_back_once() {
        let t = FrameTable::create(4, 2048).unwrap();
        let mut all = t.take_all();
        assert_eq!(all.len(), 4);
        assert!(t.take_all().is_empty(), "every token is made once");
        let mut f = all.pop().unwrap();
        assert_eq!(f.index(), 3);
        t.bytes_mut(&mut f, 100, 4).unwrap().copy_from_slice(b"abcd");
        let addr = t.lend(f, Lent::Tx(0));
        assert_eq!(addr, 3 * 2048);
        assert!(t.reclaim(addr, Lent::Rx(0)).is_none(), "lent for tx, not rx");
        assert!(t.reclaim(addr, Lent::Tx(1)).is_none(), "lent to queue 0, not 1");
        let mut f = t.reclaim(addr + 256, Lent::Tx(0)).expect("an address inside the frame names it");
        assert!(t.reclaim(addr, Lent::Tx(0)).is_none(), "taken back once only");
        assert_eq!(&t.bytes_mut(&mut f, 100, 4).unwrap()[..], b"abcd");
        all.push(f);
        assert_eq!(t.census(), Census { user: 4, ..Default::default() });
        for f in all {
            t.retire(f);
        }
        assert_eq!(t.census().retired, 4);
    }

    #[test]
    fn descriptors_for_frames_in_user_space_or_outside_are_refused() {
        let t = FrameTable::create(2, 2048).unwrap();
        let all = t.take_all();
        assert!(t.reclaim(0, Lent::Rx(0)).is_none(), "in user space: a token exists");
        assert!(t.reclaim(5 * 2048, Lent::Rx(0)).is_none(), "outside the UMEM");
        assert!(t.reclaim(u64::MAX, Lent::Rx(0)).is_none());
        for f in all {
            t.retire(f);
        }
    }

    #[test]
    fn byte_ranges_stay_inside_the_frame() {
        let t = FrameTable::create(2, 2048).unwrap();
        let mut all = t.take_all();
        let f = &mut all[0];
        assert!(t.bytes_mut(f, 2000, 48).is_some());
        assert!(t.bytes_mut(f, 2000, 49).is_none(), "crosses into the next frame");
        assert_eq!(t.frame_mut(f).len(), 2048);
        let mut p = Packet::new(all.pop().unwrap(), 256, 60);
        assert_eq!(t.packet_mut(&mut p).unwrap().len(), 60);
        p.set_range(2040, 60);
        assert!(t.packet_mut(&mut p).is_none());
        all.push(p.into_frame());
        for f in all {
            t.retire(f);
        }
    }

    #[test]
    #[should_panic(expected = "frame token from another frame table")]
    fn a_token_from_another_table_is_refused() {
        let a = FrameTable::create(2, 2048).unwrap();
        let b = FrameTable::create(2, 2048).unwrap();
        let mut theirs = a.take_all();
        let _mine = b.take_all();
        let _ = b.bytes_mut(&mut theirs[0], 0, 4);
    }

    #[test]
    fn a_dropped_token_is_counted_as_leaked() {
        let _g = leak_check();
        let t = FrameTable::create(1, 2048).unwrap();
        let before = frames_leaked();
        drop(t.take_all());
        assert_eq!(frames_leaked(), before + 1);
        assert_eq!(t.census().user, 1, "the table still has it in user space: lost, not reused");
    }

    #[test]
    fn racing_reclaims_of_one_descriptor_yield_one_token() {
        let t = FrameTable::create(64, 2048).unwrap();
        let addrs: Vec<u64> = t.take_all().into_iter().map(|f| t.lend(f, Lent::Rx(0))).collect();
        let won: Vec<Vec<Frame>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let (t, addrs) = (&t, &addrs);
                    s.spawn(move || addrs.iter().filter_map(|&a| t.reclaim(a, Lent::Rx(0))).collect::<Vec<_>>())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().map(|v| v.len()).sum::<usize>(), 64, "every frame reclaimed exactly once");
        for f in won.into_iter().flatten() {
            t.retire(f);
        }
    }
}
