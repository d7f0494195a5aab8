//! A stand-in for the kernel's side of an AF_XDP socket, for tests and
//! microbenchmarks without root: the four rings are shared memory the test
//! drives from the other side, exactly as the kernel would (consume fill,
//! produce rx, consume tx, produce completions), over the real ring and
//! frame-table code. Outside the crate's own tests it is built with the
//! `fake-kernel` feature (the criterion benches turn it on), and only as
//! [`FakeKernel::standalone`], whose socket is the only one on its UMEM.
//!
//! What keeps it sound: the fake writes only into frames it took off the
//! fill ring (lent to it, so no token exists), and forgets a frame as soon
//! as a descriptor naming it goes on the rx ring, raw or not (taking what
//! the fill ring offers first, so a frame still on it is forgotten too).
//! On the send side, outside the crate it only completes what it took off
//! the tx ring itself, at once, and never reads a frame: `take_sent` and an
//! arbitrary `complete` are the crate's tests' own. One limit: the frame
//! table's tags name a queue, not a socket, so a real AF_XDP socket made on
//! a standalone table (`XskSocket::create_first`, root only) would share
//! queue 0's tags with the fake; don't.
use super::frames::FrameTable;
use super::ring::{ConsumerRing, Desc, Mapping, ProducerRing};
use super::socket::{SocketMode, XskSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

/// Where the kernel puts a received packet in its frame (copy mode).
pub const RX_HEADROOM: u64 = 256;

/// The kernel's ends of one socket's rings.
pub struct FakeKernel {
    /// The kernel consumes the fill ring.
    fill: ConsumerRing<u64>,
    /// The kernel produces into the rx ring.
    rx: ProducerRing<Desc>,
    /// The kernel consumes the tx ring.
    tx: ConsumerRing<Desc>,
    /// The kernel produces completions.
    comp: ProducerRing<u64>,
    table: Arc<FrameTable>,
    /// Frames taken off the fill ring, not yet used for a received packet.
    pub(crate) stocked: std::collections::VecDeque<u64>,
    _peer: OwnedFd,
}

fn memfd(len: usize) -> i32 {
    // SAFETY: memfd_create with a static C string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"sluice-fake-ring".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: fd is a fresh memfd we own.
    assert_eq!(unsafe { libc::ftruncate(fd, len as libc::off_t) }, 0);
    fd
}

impl FakeKernel {
    /// A fresh UMEM of `frames` frames of `frame_size` bytes, one socket on
    /// it (queue 0) with rings of `ring` slots, and the fake kernel behind
    /// that socket. The socket is the UMEM's only one, so no other ring can
    /// name its frames.
    pub fn standalone(
        frames: u32,
        frame_size: u32,
        ring: u32,
    ) -> std::io::Result<(Arc<FrameTable>, XskSocket, FakeKernel)> {
        let table = FrameTable::create(frames, frame_size)?;
        let (sock, k) = Self::socket(&table, 0, ring);
        Ok((table, sock, k))
    }

    /// A socket for queue `queue` over `table`'s UMEM with rings of `size`
    /// slots, and the fake kernel behind it. Kicks go to a socketpair and do
    /// nothing. Crate-only: two of these on one queue of one table could
    /// each name the other's frames.
    pub(crate) fn socket(table: &Arc<FrameTable>, queue: u32, size: u32) -> (XskSocket, FakeKernel) {
        let off = libc::xdp_ring_offset { producer: 0, consumer: 64, flags: 128, desc: 192 };
        let two = |elem: usize| {
            let len = 192 + size as usize * elem;
            let fd = memfd(len);
            let a = Mapping::of_socket(fd, len, 0).unwrap();
            let b = Mapping::of_socket(fd, len, 0).unwrap();
            // SAFETY: the mappings keep the memory; the fd is no longer needed.
            unsafe { libc::close(fd) };
            (a, b)
        };
        let (fill_u, fill_k) = two(8);
        let (rx_u, rx_k) = two(std::mem::size_of::<Desc>());
        let (tx_u, tx_k) = two(std::mem::size_of::<Desc>());
        let (comp_u, comp_k) = two(8);
        let mut fds = [0i32; 2];
        // SAFETY: socketpair writes two descriptors into the live array.
        assert_eq!(
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) },
            0
        );
        // SAFETY: both descriptors are fresh and owned by nobody else.
        let (mine, peer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let sock = XskSocket::from_parts(
            ConsumerRing::new(rx_u, &off, size),
            ProducerRing::new(tx_u, &off, size),
            ProducerRing::new(fill_u, &off, size),
            ConsumerRing::new(comp_u, &off, size),
            mine,
            queue,
            SocketMode::Copy,
            table.clone(),
        );
        let k = FakeKernel {
            fill: ConsumerRing::new(fill_k, &off, size),
            rx: ProducerRing::new(rx_k, &off, size),
            tx: ConsumerRing::new(tx_k, &off, size),
            comp: ProducerRing::new(comp_k, &off, size),
            table: table.clone(),
            stocked: Default::default(),
            _peer: peer,
        };
        (sock, k)
    }

    /// Takes what the fill ring offers into the kernel's stock.
    pub fn take_fill(&mut self) -> usize {
        let mut a = [0u64; 64];
        let mut total = 0;
        loop {
            let n = self.fill.consume(&mut a);
            if n == 0 {
                return total;
            }
            self.stocked.extend(&a[..n]);
            total += n;
        }
    }

    /// "Receives" `frame` into a stocked frame and puts it on the rx ring;
    /// false when no frame is stocked or the rx ring is full.
    pub fn deliver(&mut self, frame: &[u8]) -> bool {
        self.deliver_many(frame, 1) == 1
    }

    /// Delivers `frame` into up to `n` stocked frames, in one batch on the
    /// rx ring; returns how many went (fewer when the stock or the ring runs
    /// out).
    pub fn deliver_many(&mut self, frame: &[u8], n: u32) -> u32 {
        self.take_fill();
        assert!(RX_HEADROOM as usize + frame.len() <= self.table.frame_size() as usize);
        let got = self.rx.reserve(n.min(self.stocked.len() as u32));
        for i in 0..got {
            let at = self.stocked.pop_front().expect("reserved no more than stocked") + RX_HEADROOM;
            self.write(at, frame);
            self.rx.put(i, Desc { addr: at, len: frame.len() as u32, options: 0 });
        }
        self.rx.submit(got);
        got
    }

    /// Puts a raw descriptor on the rx ring (to test refusals). A stocked
    /// frame it names is forgotten: once the socket may hold a token for it,
    /// the fake must not write into it.
    pub fn deliver_raw(&mut self, d: Desc) {
        self.take_fill();
        let size = self.table.frame_size() as u64;
        self.stocked.retain(|&a| a / size != d.addr / size);
        assert_eq!(self.rx.produce(&[d]), 1);
    }

    /// Completes what is on the tx ring, as copy mode does inside sendto(),
    /// without copying the packets out, as far as the completion ring has
    /// room; returns how many.
    pub fn complete_sent(&mut self) -> usize {
        let mut d = [Desc::default(); 64];
        let mut a = [0u64; 64];
        let mut total = 0;
        loop {
            let room = self.comp.free(64).min(64) as usize;
            let n = self.tx.consume(&mut d[..room]);
            if n == 0 {
                return total;
            }
            for (addr, desc) in a.iter_mut().zip(&d[..n]) {
                *addr = desc.addr;
            }
            assert_eq!(self.comp.produce(&a[..n]), n, "the room was counted first");
            total += n;
        }
    }

    /// The packets on the tx ring, copied out; each frame is completed at
    /// once when `complete` is set (copy mode does that inside sendto()).
    #[cfg(test)]
    pub(crate) fn take_sent(&mut self, complete: bool) -> Vec<Vec<u8>> {
        let descs = self.take_sent_descs();
        let out = descs.iter().map(|x| self.read(x.addr, x.len)).collect();
        if complete {
            let addrs: Vec<u64> = descs.iter().map(|x| x.addr).collect();
            self.complete(&addrs);
        }
        out
    }

    /// Addresses on the tx ring, not completed (for a later `complete`).
    #[cfg(test)]
    pub(crate) fn take_sent_descs(&mut self) -> Vec<Desc> {
        let mut out = Vec::new();
        let mut d = [Desc::default(); 64];
        loop {
            let n = self.tx.consume(&mut d);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&d[..n]);
        }
    }

    /// Completes `addrs`.
    #[cfg(test)]
    pub(crate) fn complete(&mut self, addrs: &[u64]) {
        assert_eq!(self.comp.produce(addrs), addrs.len());
    }

    fn write(&self, addr: u64, bytes: &[u8]) {
        assert!(self.table.area().in_one_frame(addr, bytes.len() as u32));
        // SAFETY: the range lies in one frame of the live mapping (asserted),
        // and that frame is lent to the kernel (taken off the fill ring), so
        // no token exists for it and no Rust slice of it is alive.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.table.area().ptr_at(addr), bytes.len()) }
    }

    #[cfg(test)]
    fn read(&self, addr: u64, len: u32) -> Vec<u8> {
        assert!(self.table.area().in_one_frame(addr, len));
        let mut v = vec![0u8; len as usize];
        // SAFETY: as in `write`: the frame is on the tx ring, lent to the
        // kernel, so no token or slice of it exists.
        unsafe { std::ptr::copy_nonoverlapping(self.table.area().ptr_at(addr), v.as_mut_ptr(), len as usize) }
        v
    }
}
