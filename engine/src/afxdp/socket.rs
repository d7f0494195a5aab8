//! An AF_XDP socket bound to one (device, queue), with its four rings.
//!
//! The first socket registers the UMEM and carries the bind flags (zero-copy
//! or copy, need_wakeup); the sockets of the other queues share that UMEM
//! (XDP_SHARED_UMEM), bring their own fill and completion rings, bind with no
//! other flag and inherit the first socket's mode.
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::frames::{Frame, FrameTable, Lent, Packet, MAX_QUEUE};
use super::ring::{ConsumerRing, Desc, Mapping, ProducerRing};

/// How to bind the first socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy if the driver supports it, else copy mode.
    Auto,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode.
    Copy,
}

/// The mode the kernel bound the socket in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketMode {
    /// Frames are DMA'd straight into the UMEM.
    ZeroCopy,
    /// The kernel copies frames into and out of the UMEM.
    Copy,
}

impl SocketMode {
    /// "zero-copy" or "copy".
    pub fn as_str(self) -> &'static str {
        match self {
            SocketMode::ZeroCopy => "zero-copy",
            SocketMode::Copy => "copy",
        }
    }
}

/// Sizes and place of one socket. Ring sizes are powers of two.
#[derive(Clone, Copy, Debug)]
pub struct XskConfig {
    /// Interface index.
    pub ifindex: u32,
    /// Queue of the interface.
    pub queue: u32,
    /// Slots of the rx and tx rings.
    pub ring_size: u32,
    /// Slots of the fill and completion rings.
    pub fill_size: u32,
    /// Bind mode (only the first socket's counts).
    pub mode: BindMode,
}

/// A failed step of socket set-up, with the kernel's error and a hint.
#[derive(Debug, thiserror::Error)]
#[error("AF_XDP {step} (queue {queue}): {source}{hint}")]
pub struct XskError {
    /// The step that failed.
    pub step: &'static str,
    /// The queue of the socket.
    pub queue: u32,
    /// What the kernel said.
    #[source]
    pub source: io::Error,
    /// What to do about it, with a leading separator, or empty.
    pub hint: &'static str,
}

/// The kernel's per-socket drop counters (XDP_STATISTICS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStatistics {
    /// Frames dropped for other reasons than a full ring.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the tx ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Times the tx ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// An AF_XDP socket bound to one queue, with its four rings. Fields drop in
/// order: rings are unmapped before the socket is closed, and the UMEM (held
/// by the frame table) outlives both.
///
/// The rings are private: frames go onto the fill and tx rings only by
/// giving up their tokens ([`fill`](Self::fill), [`transmit`](Self::transmit)),
/// and come back as tokens only from the rx and completion rings
/// ([`receive`](Self::receive), [`reap`](Self::reap)), each checked against
/// the frame table.
pub struct XskSocket {
    rx: ConsumerRing<Desc>,
    tx: ProducerRing<Desc>,
    fill: ProducerRing<u64>,
    comp: ConsumerRing<u64>,
    fd: OwnedFd,
    queue: u32,
    mode: SocketMode,
    table: Arc<FrameTable>,
}

/// What one [`XskSocket::receive`] call took from the rx ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxBatch {
    /// Descriptors consumed.
    pub descs: usize,
    /// Bytes they described.
    pub bytes: u64,
    /// Descriptors refused: not a frame lent to this queue's fill ring
    /// (nothing is aliased; nothing changes for that frame).
    pub refused: usize,
    /// Descriptors for one of our frames with a range outside it: the frame
    /// went to `f` as `Err(frame)`.
    pub bad_range: usize,
}

/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h, kernel 6.17+): frames one
/// copy-mode sendto() may send.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

fn err(step: &'static str, queue: u32, source: io::Error) -> XskError {
    let hint = match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => ": AF_XDP needs root (CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF)",
        Some(libc::EAFNOSUPPORT) => ": this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)",
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) if step == "UMEM registration" => {
            ": the UMEM exceeds the locked-memory limit; run as root with CAP_IPC_LOCK or lower engine.frames"
        }
        Some(libc::EBUSY) if step == "bind" => ": another AF_XDP socket is bound to this queue",
        Some(libc::EOPNOTSUPP) if step == "bind" => ": the driver does not support zero-copy; use zero_copy = \"auto\"",
        Some(libc::EINVAL) if step == "bind" => ": the queue does not exist on this interface",
        _ => "",
    };
    XskError { step, queue, source, hint }
}

/// Queue numbers above what a frame's place tag holds are refused.
fn check_queue(queue: u32) -> Result<(), XskError> {
    if queue > MAX_QUEUE as u32 {
        return Err(err("set-up", queue, io::Error::new(io::ErrorKind::InvalidInput, "queue number too large")));
    }
    Ok(())
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to a live, initialised T and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn new_socket(queue: u32) -> Result<OwnedFd, XskError> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("socket", queue, io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mmap_offsets(fd: RawFd, queue: u32) -> Result<libc::xdp_mmap_offsets, XskError> {
    let zero = libc::xdp_ring_offset { producer: 0, consumer: 0, desc: 0, flags: 0 };
    let mut off = libc::xdp_mmap_offsets { rx: zero, tx: zero, fr: zero, cr: zero };
    let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `off`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&mut off as *mut libc::xdp_mmap_offsets).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(err("XDP_MMAP_OFFSETS", queue, io::Error::last_os_error()));
    }
    Ok(off)
}

impl XskSocket {
    /// Creates the first socket: registers `umem` and binds with `cfg.mode`.
    pub fn create_first(table: &Arc<FrameTable>, cfg: &XskConfig) -> Result<Self, XskError> {
        check_queue(cfg.queue)?;
        let fd = new_socket(cfg.queue)?;
        let umem = table.area();
        let reg = libc::xdp_umem_reg {
            addr: umem.base(),
            len: umem.len() as u64,
            chunk_size: umem.frame_size(),
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd.as_raw_fd(), libc::XDP_UMEM_REG, &reg).map_err(|e| err("UMEM registration", cfg.queue, e))?;
        let rings = Self::map_rings(fd.as_raw_fd(), cfg)?;
        let flags = libc::XDP_USE_NEED_WAKEUP;
        match cfg.mode {
            BindMode::ZeroCopy => bind(fd.as_raw_fd(), cfg, flags | libc::XDP_ZEROCOPY, 0)?,
            BindMode::Copy => bind(fd.as_raw_fd(), cfg, flags | libc::XDP_COPY, 0)?,
            BindMode::Auto => {
                if bind(fd.as_raw_fd(), cfg, flags | libc::XDP_ZEROCOPY, 0).is_err() {
                    bind(fd.as_raw_fd(), cfg, flags | libc::XDP_COPY, 0)?;
                }
            }
        }
        Self::finish(fd, rings, cfg.queue, table)
    }

    /// Creates a socket for another queue that shares `first`'s UMEM and
    /// inherits its mode.
    pub fn create_shared(first: &XskSocket, cfg: &XskConfig) -> Result<Self, XskError> {
        check_queue(cfg.queue)?;
        let fd = new_socket(cfg.queue)?;
        let rings = Self::map_rings(fd.as_raw_fd(), cfg)?;
        bind(fd.as_raw_fd(), cfg, libc::XDP_SHARED_UMEM, first.fd.as_raw_fd() as u32)?;
        Self::finish(fd, rings, cfg.queue, &first.table)
    }

    fn map_rings(fd: RawFd, cfg: &XskConfig) -> Result<Rings, XskError> {
        let q = cfg.queue;
        for (name, opt, size) in [
            ("fill ring", libc::XDP_UMEM_FILL_RING, cfg.fill_size),
            ("completion ring", libc::XDP_UMEM_COMPLETION_RING, cfg.fill_size),
            ("rx ring", libc::XDP_RX_RING, cfg.ring_size),
            ("tx ring", libc::XDP_TX_RING, cfg.ring_size),
        ] {
            setsockopt(fd, opt, &size).map_err(|e| err(name, q, e))?;
        }
        // Copy mode sends at most this many frames per sendto() (32 by
        // default since 6.17, EAGAIN after); let one kick send a whole ring.
        // Older kernels do not know the option: the worker then kicks again
        // while the ring drains.
        if let Err(e) = setsockopt(fd, XDP_MAX_TX_SKB_BUDGET, &cfg.ring_size) {
            tracing::debug!(queue = q, "XDP_MAX_TX_SKB_BUDGET not set: {e}");
        }
        let off = mmap_offsets(fd, q)?;
        let desc = std::mem::size_of::<Desc>();
        let map = |name, o: &libc::xdp_ring_offset, size: u32, elem: usize, pgoff: u64| {
            Mapping::of_socket(fd, o.desc as usize + size as usize * elem, pgoff).map_err(|e| err(name, q, e))
        };
        let rx = ConsumerRing::new(
            map("rx ring mmap", &off.rx, cfg.ring_size, desc, libc::XDP_PGOFF_RX_RING as u64)?,
            &off.rx,
            cfg.ring_size,
        );
        let tx = ProducerRing::new(
            map("tx ring mmap", &off.tx, cfg.ring_size, desc, libc::XDP_PGOFF_TX_RING as u64)?,
            &off.tx,
            cfg.ring_size,
        );
        let fill = ProducerRing::new(
            map("fill ring mmap", &off.fr, cfg.fill_size, 8, libc::XDP_UMEM_PGOFF_FILL_RING)?,
            &off.fr,
            cfg.fill_size,
        );
        let comp = ConsumerRing::new(
            map("completion ring mmap", &off.cr, cfg.fill_size, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
            &off.cr,
            cfg.fill_size,
        );
        Ok(Rings { rx, tx, fill, comp })
    }

    fn finish(fd: OwnedFd, r: Rings, queue: u32, table: &Arc<FrameTable>) -> Result<Self, XskError> {
        let opts: libc::xdp_options = getsockopt_options(fd.as_raw_fd()).map_err(|e| err("XDP_OPTIONS", queue, e))?;
        let mode = if opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0 { SocketMode::ZeroCopy } else { SocketMode::Copy };
        Ok(XskSocket { rx: r.rx, tx: r.tx, fill: r.fill, comp: r.comp, fd, queue, mode, table: table.clone() })
    }

    /// A socket over rings the test's fake kernel drives (see `fake.rs`).
    #[cfg(any(test, feature = "fake-kernel"))]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_parts(
        rx: ConsumerRing<Desc>,
        tx: ProducerRing<Desc>,
        fill: ProducerRing<u64>,
        comp: ConsumerRing<u64>,
        fd: OwnedFd,
        queue: u32,
        mode: SocketMode,
        table: Arc<FrameTable>,
    ) -> Self {
        XskSocket { rx, tx, fill, comp, fd, queue, mode, table }
    }

    /// The place tag queue number of this socket.
    fn q(&self) -> u16 {
        // open_queues refuses queues above MAX_QUEUE.
        self.queue as u16
    }

    /// The frame table of the UMEM this socket is bound to.
    pub fn table(&self) -> &Arc<FrameTable> {
        &self.table
    }

    /// Lends frames from the end of `free` to the fill ring, at most `max`
    /// and as many as fit; returns how many.
    pub fn fill(&mut self, free: &mut Vec<Frame>, max: usize) -> usize {
        let want = max.min(free.len()) as u32;
        if want == 0 {
            return 0;
        }
        let got = self.fill.reserve(want);
        let q = self.q();
        for i in 0..got {
            // got <= want <= free.len(): the pop always yields.
            let f = free.pop().expect("reserved no more slots than frames");
            let addr = self.table.lend(f, Lent::Rx(q));
            self.fill.put(i, addr);
        }
        self.fill.submit(got);
        got as usize
    }

    /// Takes up to `max` received packets off the rx ring, handing each to
    /// `f` as a token: `Ok(packet)`, or `Err(frame)` for a descriptor whose
    /// range leaves its frame (the kernel never makes one; the frame is ours
    /// again and should go back to the free list). Descriptors that name a
    /// frame not lent to this queue's fill ring are refused and reach `f`
    /// not at all: nothing is aliased.
    pub fn receive(&mut self, descs: &mut [Desc], max: usize, mut f: impl FnMut(Result<Packet, Frame>)) -> RxBatch {
        let max = max.min(descs.len());
        let n = self.rx.consume(&mut descs[..max]);
        let mut b = RxBatch { descs: n, ..Default::default() };
        let size = self.table.frame_size() as u64;
        let q = self.q();
        for d in &descs[..n] {
            b.bytes += d.len as u64;
            let Some(frame) = self.table.reclaim(d.addr, Lent::Rx(q)) else {
                b.refused += 1;
                continue;
            };
            let off = d.addr % size;
            if off + d.len as u64 > size {
                b.bad_range += 1;
                f(Err(frame));
            } else {
                f(Ok(Packet::new(frame, off as u16, d.len as u16)));
            }
        }
        b
    }

    /// Puts packets on the tx ring: as many as fit, at most `max`, each
    /// taken from `next` only once its slot is reserved. A packet whose
    /// range is empty or leaves its frame (its descriptor would name another
    /// frame, or be refused by the kernel) goes to `refused` instead:
    /// checked in every build, since a descriptor past the frame's end would
    /// let the kernel read a frame someone else holds. Returns how many went
    /// on the ring.
    pub fn transmit(
        &mut self,
        max: usize,
        mut next: impl FnMut() -> Option<Packet>,
        mut refused: impl FnMut(Packet),
    ) -> usize {
        if max == 0 {
            return 0;
        }
        let got = self.tx.reserve(max.min(u32::MAX as usize) as u32);
        let q = self.q();
        let size = self.table.frame_size();
        let mut n = 0;
        while n < got {
            let Some(p) = next() else { break };
            let (off, len) = (p.off(), p.len());
            if len == 0 || off as u32 + len as u32 > size {
                refused(p);
                continue;
            }
            let addr = self.table.lend(p.into_frame(), Lent::Tx(q));
            self.tx.put(n, Desc { addr: addr + off as u64, len: len as u32, options: 0 });
            n += 1;
        }
        self.tx.submit(n);
        n as usize
    }

    /// Takes sent frames back from the completion ring, handing each to `f`
    /// as a token; returns (completions, refused). A refused completion names
    /// a frame not lent to this queue's tx ring.
    pub fn reap(&mut self, addrs: &mut [u64], mut f: impl FnMut(Frame)) -> (usize, usize) {
        let n = self.comp.consume(addrs);
        let q = self.q();
        let mut bad = 0;
        for &a in &addrs[..n] {
            match self.table.reclaim(a, Lent::Tx(q)) {
                Some(frame) => f(frame),
                None => bad += 1,
            }
        }
        (n, bad)
    }

    /// Free slots of the tx ring (refreshed when fewer than `want` show).
    pub fn tx_room(&mut self, want: u32) -> u32 {
        self.tx.free(want)
    }

    /// Whether the kernel wants a `sendto()` to move the tx ring.
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Whether the kernel wants a `recvfrom()` after the fill ring was stocked.
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Entries on the fill ring not yet used by the kernel.
    pub fn fill_occupancy(&self) -> u32 {
        self.fill.occupancy()
    }

    /// Received packets waiting on the rx ring.
    pub fn rx_occupancy(&self) -> u32 {
        self.rx.occupancy()
    }

    /// Packets on the tx ring the kernel has not taken yet.
    pub fn tx_occupancy(&self) -> u32 {
        self.tx.occupancy()
    }

    /// Completions waiting on the completion ring.
    pub fn comp_occupancy(&self) -> u32 {
        self.comp.occupancy()
    }

    /// Slots of the rx and tx rings.
    pub fn ring_size(&self) -> u32 {
        self.rx.size()
    }

    /// Slots of the fill and completion rings.
    pub fn fill_size(&self) -> u32 {
        self.fill.size()
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Zero-copy or copy, as the kernel bound it.
    pub fn mode(&self) -> SocketMode {
        self.mode
    }

    /// Tells the kernel to send what is on the tx ring (copy mode moves
    /// frames only inside this call). Transient refusals are not errors.
    pub fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length sendto on our own socket, no buffers passed.
        let rc =
            unsafe { libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN) => Ok(()),
            _ => Err(e),
        }
    }

    /// Tells the kernel the fill ring has frames again (need_wakeup on rx).
    pub fn kick_rx(&self) {
        // SAFETY: a zero-length, non-blocking recvfrom on our own socket.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    /// The kernel's drop counters for this socket.
    pub fn statistics(&self) -> io::Result<XskStatistics> {
        let s: libc::xdp_statistics = getsockopt_stats(self.fd.as_raw_fd())?;
        Ok(XskStatistics {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }
}

/// Opens one socket for each queue `0..queues` of `ifindex`, all on the UMEM
/// of `table`: the first registers it and binds with `mode`, the others
/// share it and inherit the mode. Sizes every ring `ring_size`.
pub fn open_queues(
    table: &Arc<FrameTable>,
    ifindex: u32,
    queues: u32,
    ring_size: u32,
    mode: BindMode,
) -> Result<Vec<XskSocket>, XskError> {
    if queues > MAX_QUEUE as u32 + 1 {
        return Err(err("set-up", queues, io::Error::new(io::ErrorKind::InvalidInput, "too many queues")));
    }
    let mut sockets: Vec<XskSocket> = Vec::with_capacity(queues as usize);
    for queue in 0..queues {
        let cfg = XskConfig { ifindex, queue, ring_size, fill_size: ring_size, mode };
        let s = match sockets.first() {
            None => XskSocket::create_first(table, &cfg)?,
            Some(first) => XskSocket::create_shared(first, &cfg)?,
        };
        sockets.push(s);
    }
    Ok(sockets)
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

struct Rings {
    rx: ConsumerRing<Desc>,
    tx: ProducerRing<Desc>,
    fill: ProducerRing<u64>,
    comp: ConsumerRing<u64>,
}

fn bind(fd: RawFd, cfg: &XskConfig, flags: u16, shared_fd: u32) -> Result<(), XskError> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: cfg.ifindex,
        sxdp_queue_id: cfg.queue,
        sxdp_shared_umem_fd: shared_fd,
    };
    // SAFETY: passes a live sockaddr_xdp and its exact size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(err("bind", cfg.queue, io::Error::last_os_error()))
    }
}

fn getsockopt_options(fd: RawFd) -> io::Result<libc::xdp_options> {
    let mut v = libc::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v`.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_XDP, libc::XDP_OPTIONS, (&mut v as *mut libc::xdp_options).cast(), &mut len)
    };
    if rc == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_stats(fd: RawFd) -> io::Result<libc::xdp_statistics> {
    let mut v = libc::xdp_statistics {
        rx_dropped: 0,
        rx_invalid_descs: 0,
        tx_invalid_descs: 0,
        rx_ring_full: 0,
        rx_fill_ring_empty_descs: 0,
        tx_ring_empty_descs: 0,
    };
    let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&mut v as *mut libc::xdp_statistics).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}
