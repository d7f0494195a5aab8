//! An AF_XDP socket bound to one (device, queue), with its four rings.
//!
//! The first socket registers the UMEM and carries the bind flags (zero-copy
//! or copy, need_wakeup); the sockets of the other queues share that UMEM
//! (XDP_SHARED_UMEM), bring their own fill and completion rings, bind with no
//! other flag and inherit the first socket's mode.
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::ring::{ConsumerRing, Desc, Mapping, ProducerRing};
use super::umem::UmemArea;

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

/// An AF_XDP socket and its rings. Fields drop in order: rings are unmapped
/// before the socket is closed, and the UMEM outlives both.
pub struct XskSocket {
    /// Received frames.
    pub rx: ConsumerRing<Desc>,
    /// Frames to send.
    pub tx: ProducerRing<Desc>,
    /// Free frames lent to the kernel for receiving.
    pub fill: ProducerRing<u64>,
    /// Sent frames the kernel gives back.
    pub comp: ConsumerRing<u64>,
    fd: OwnedFd,
    queue: u32,
    mode: SocketMode,
    _umem: Arc<UmemArea>,
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
    pub fn create_first(umem: &Arc<UmemArea>, cfg: &XskConfig) -> Result<Self, XskError> {
        let fd = new_socket(cfg.queue)?;
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
        Self::finish(fd, rings, cfg.queue, umem)
    }

    /// Creates a socket for another queue that shares `first`'s UMEM and
    /// inherits its mode.
    pub fn create_shared(first: &XskSocket, umem: &Arc<UmemArea>, cfg: &XskConfig) -> Result<Self, XskError> {
        let fd = new_socket(cfg.queue)?;
        let rings = Self::map_rings(fd.as_raw_fd(), cfg)?;
        bind(fd.as_raw_fd(), cfg, libc::XDP_SHARED_UMEM, first.fd.as_raw_fd() as u32)?;
        Self::finish(fd, rings, cfg.queue, umem)
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

    fn finish(fd: OwnedFd, r: Rings, queue: u32, umem: &Arc<UmemArea>) -> Result<Self, XskError> {
        let opts: libc::xdp_options = getsockopt_options(fd.as_raw_fd()).map_err(|e| err("XDP_OPTIONS", queue, e))?;
        let mode = if opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0 { SocketMode::ZeroCopy } else { SocketMode::Copy };
        Ok(XskSocket { rx: r.rx, tx: r.tx, fill: r.fill, comp: r.comp, fd, queue, mode, _umem: umem.clone() })
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

/// Opens one socket for each queue `0..queues` of `ifindex`, all on `umem`:
/// the first registers it and binds with `mode`, the others share it and
/// inherit the mode. Sizes every ring `ring_size`.
pub fn open_queues(
    umem: &Arc<UmemArea>,
    ifindex: u32,
    queues: u32,
    ring_size: u32,
    mode: BindMode,
) -> Result<Vec<XskSocket>, XskError> {
    let mut sockets: Vec<XskSocket> = Vec::with_capacity(queues as usize);
    for queue in 0..queues {
        let cfg = XskConfig { ifindex, queue, ring_size, fill_size: ring_size, mode };
        let s = match sockets.first() {
            None => XskSocket::create_first(umem, &cfg)?,
            Some(first) => XskSocket::create_shared(first, umem, &cfg)?,
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
