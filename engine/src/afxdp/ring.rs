//! Single-producer / single-consumer rings shared with the kernel.
//!
//! A ring is an mmap'd region holding a producer index, a consumer index, a
//! flags word and `size` (a power of two) descriptors. Indices run freely and
//! wrap at 2^32; the slot is `index & (size - 1)`. The side that produces
//! publishes with a release store of the producer index after writing the
//! descriptors; the consumer reads it with an acquire load before reading them,
//! and publishes consumption with a release store of the consumer index.
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// An AF_XDP rx/tx descriptor (`struct xdp_desc`): the UMEM address of the
/// packet's first byte, its length, and option bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Offset of the packet's first byte in the UMEM.
    pub addr: u64,
    /// Packet length in bytes.
    pub len: u32,
    /// Option bits (XDP_PKT_CONTD); zero here.
    pub options: u32,
}

const _: () = assert!(std::mem::size_of::<Desc>() == std::mem::size_of::<libc::xdp_desc>());

/// An mmap'd region, unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it between
// threads moves the ownership (the ring wrapping it is used by one thread).
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of the socket `fd` at page offset `pgoff` shared.
    pub(crate) fn of_socket(fd: libc::c_int, len: usize, pgoff: u64) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the kernel ring; no Rust memory is
        // aliased, and the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// A pointer `offset` bytes in, with room for `count` values of T there.
    fn at<T>(&self, offset: u64, count: usize) -> *mut T {
        let end = (offset as usize).checked_add(count * std::mem::size_of::<T>());
        assert!(
            end.is_some_and(|e| e <= self.len) && (offset as usize).is_multiple_of(std::mem::align_of::<T>()),
            "ring offset {offset} (+{count} x {}) outside the {}-byte mapping",
            std::mem::size_of::<T>(),
            self.len
        );
        // SAFETY: the range lies inside the mapping and is aligned (asserted
        // above; this runs once per ring at set-up).
        unsafe { self.ptr.as_ptr().cast::<u8>().add(offset as usize).cast() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `of_socket`; the ring
        // that pointed into it is being dropped with it.
        unsafe {
            libc::munmap(self.ptr.as_ptr(), self.len);
        }
    }
}

/// Raw pointers into one mapped ring.
struct RingPtrs<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    mask: u32,
    size: u32,
    _map: Mapping,
}

impl<T: Copy> RingPtrs<T> {
    fn new(map: Mapping, off: &libc::xdp_ring_offset, size: u32) -> Self {
        assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
        RingPtrs {
            producer: map.at(off.producer, 1),
            consumer: map.at(off.consumer, 1),
            flags: map.at(off.flags, 1),
            descs: map.at(off.desc, size as usize),
            mask: size - 1,
            size,
            _map: map,
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping held in `_map`; the kernel
        // aligns the index words, and AtomicU32 has u32's layout.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn flags(&self) -> u32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed)
    }

    fn read(&self, idx: u32) -> T {
        // SAFETY: `idx & mask` < size, and the mapping holds `size` slots of T
        // at `descs`; the slot was published by the producer (acquire load of
        // the producer index happened before).
        unsafe { self.descs.add((idx & self.mask) as usize).read_volatile() }
    }

    fn write(&self, idx: u32, v: T) {
        // SAFETY: as in `read`; this slot lies between the consumer and our
        // unpublished producer index, so the kernel does not read it yet.
        unsafe { self.descs.add((idx & self.mask) as usize).write_volatile(v) }
    }
}

// SAFETY: a ring is driven by one thread at a time (its core's worker); the
// pointers are into a mapping owned by the ring.
unsafe impl<T: Send> Send for RingPtrs<T> {}

/// The side of a ring that this process produces into (fill, tx).
pub struct ProducerRing<T> {
    r: RingPtrs<T>,
    cached_prod: u32,
    cached_cons: u32,
    /// Slots reserved by [`reserve`](Self::reserve) and not yet submitted.
    reserved: u32,
    _t: PhantomData<T>,
}

impl<T: Copy> ProducerRing<T> {
    pub(crate) fn new(map: Mapping, off: &libc::xdp_ring_offset, size: u32) -> Self {
        let r = RingPtrs::new(map, off, size);
        let cached_prod = r.producer().load(Ordering::Relaxed);
        let cached_cons = r.consumer().load(Ordering::Acquire);
        ProducerRing { r, cached_prod, cached_cons, reserved: 0, _t: PhantomData }
    }

    /// Slots free for producing, refreshing the consumer index when the
    /// cached view shows fewer than `want`.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.r.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.r.consumer().load(Ordering::Acquire);
        self.r.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Reserves up to `want` free slots and returns how many it got: the
    /// caller then fills slots `0..got` with [`put`](Self::put) and
    /// publishes them with [`submit`](Self::submit). Being the single
    /// producer, nothing can take the reserved slots away meanwhile.
    pub fn reserve(&mut self, want: u32) -> u32 {
        assert_eq!(self.reserved, 0, "a reservation is already open");
        self.reserved = self.free(want).min(want);
        self.reserved
    }

    /// Writes reserved slot `i` (below what [`reserve`](Self::reserve)
    /// returned; checked in every build).
    #[inline]
    pub fn put(&mut self, i: u32, v: T) {
        assert!(i < self.reserved, "slot {i} is not reserved ({} are)", self.reserved);
        self.r.write(self.cached_prod.wrapping_add(i), v);
    }

    /// Publishes the first `n` reserved slots (all of them must have been
    /// written) and ends the reservation.
    pub fn submit(&mut self, n: u32) {
        assert!(n <= self.reserved, "submitting {n} of {} reserved slots", self.reserved);
        self.reserved = 0;
        if n == 0 {
            return;
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.r.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Writes as many of `items` as fit and publishes them; returns how many.
    #[cfg(any(test, feature = "fake-kernel"))]
    pub fn produce(&mut self, items: &[T]) -> usize {
        let n = self.reserve(items.len() as u32);
        for (i, item) in items[..n as usize].iter().enumerate() {
            self.put(i as u32, *item);
        }
        self.submit(n);
        n as usize
    }

    /// Whether the kernel asked for a wakeup (XDP_RING_NEED_WAKEUP). The
    /// full fence orders our producer store before the flag load: the kernel
    /// sets the flag and then reads the producer index, and without it both
    /// sides could miss each other (a store→load pattern).
    pub fn needs_wakeup(&self) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.r.flags() & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Entries produced but not yet consumed by the kernel.
    pub fn occupancy(&self) -> u32 {
        self.cached_prod.wrapping_sub(self.r.consumer().load(Ordering::Relaxed))
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.r.size
    }
}

/// The side of a ring that this process consumes from (rx, completion).
pub struct ConsumerRing<T> {
    r: RingPtrs<T>,
    cached_prod: u32,
    cached_cons: u32,
    _t: PhantomData<T>,
}

impl<T: Copy> ConsumerRing<T> {
    pub(crate) fn new(map: Mapping, off: &libc::xdp_ring_offset, size: u32) -> Self {
        let r = RingPtrs::new(map, off, size);
        let cached_prod = r.producer().load(Ordering::Acquire);
        let cached_cons = r.consumer().load(Ordering::Relaxed);
        ConsumerRing { r, cached_prod, cached_cons, _t: PhantomData }
    }

    /// Moves up to `out.len()` entries into `out`, releases their slots to
    /// the kernel, and returns how many.
    pub fn consume(&mut self, out: &mut [T]) -> usize {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if (avail as usize) < out.len() {
            self.cached_prod = self.r.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        let n = (avail as usize).min(out.len());
        if n == 0 {
            return 0;
        }
        for (i, slot) in out[..n].iter_mut().enumerate() {
            *slot = self.r.read(self.cached_cons.wrapping_add(i as u32));
        }
        self.cached_cons = self.cached_cons.wrapping_add(n as u32);
        self.r.consumer().store(self.cached_cons, Ordering::Release);
        n
    }

    /// Entries the kernel has produced that we have not consumed.
    pub fn occupancy(&self) -> u32 {
        self.r.producer().load(Ordering::Relaxed).wrapping_sub(self.cached_cons)
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.r.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// Two views of one memfd, as the kernel and we see a ring: one side
    /// produces, the other consumes.
    fn ring_pair(size: u32) -> (ProducerRing<u64>, ConsumerRing<u64>) {
        let off = libc::xdp_ring_offset { producer: 0, consumer: 64, flags: 128, desc: 192 };
        let len = 192 + size as usize * 8;
        // SAFETY: memfd_create with a static C string; the result is checked.
        let fd = unsafe { libc::memfd_create(c"sluice-ring-test".as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: fd is a fresh memfd we own.
        assert_eq!(unsafe { libc::ftruncate(fd, len as libc::off_t) }, 0);
        let p = ProducerRing::new(Mapping::of_socket(fd, len, 0).unwrap(), &off, size);
        let c = ConsumerRing::new(Mapping::of_socket(fd, len, 0).unwrap(), &off, size);
        // SAFETY: the mappings keep the memory; the fd is no longer needed.
        unsafe { libc::close(fd) };
        (p, c)
    }

    #[test]
    fn produce_stops_at_capacity_and_consume_frees_slots() {
        let (mut p, mut c) = ring_pair(4);
        assert_eq!(p.produce(&[1, 2, 3, 4, 5, 6]), 4);
        assert_eq!(p.occupancy(), 4);
        assert_eq!(p.produce(&[7]), 0);
        let mut out = [0u64; 3];
        assert_eq!(c.consume(&mut out), 3);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(p.produce(&[7, 8, 9]), 3);
        let mut out = [0u64; 8];
        assert_eq!(c.consume(&mut out), 4);
        assert_eq!(out[..4], [4, 7, 8, 9]);
        assert_eq!(c.consume(&mut out), 0);
    }

    proptest! {
        /// Any interleaving of batched produce/consume matches a FIFO oracle,
        /// including across the 2^32 index wrap (the indices start near it).
        #[test]
        fn rings_behave_as_a_bounded_fifo(ops in proptest::collection::vec((any::<bool>(), 0usize..12), 1..200)) {
            let (mut p, mut c) = ring_pair(8);
            p.cached_prod = u32::MAX - 20;
            p.cached_cons = u32::MAX - 20;
            p.r.producer().store(u32::MAX - 20, Ordering::Relaxed);
            p.r.consumer().store(u32::MAX - 20, Ordering::Relaxed);
            c.cached_prod = u32::MAX - 20;
            c.cached_cons = u32::MAX - 20;
            let mut oracle = VecDeque::new();
            let mut next = 0u64;
            for (is_produce, n) in ops {
                if is_produce {
                    let items: Vec<u64> = (next..next + n as u64).collect();
                    let done = p.produce(&items);
                    prop_assert_eq!(done, n.min(8 - oracle.len()));
                    oracle.extend(&items[..done]);
                    next += done as u64;
                } else {
                    let mut out = vec![0u64; n];
                    let done = c.consume(&mut out);
                    prop_assert_eq!(done, n.min(oracle.len()));
                    for v in &out[..done] {
                        prop_assert_eq!(Some(*v), oracle.pop_front());
                    }
                }
                prop_assert_eq!(p.occupancy() as usize, oracle.len());
            }
        }
    }
}
