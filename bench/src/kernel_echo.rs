//! Kernel-socket UDP echo server: the baseline sluice is compared against.
//!
//! [`KernelEchoServer::start`] opens one `SO_REUSEPORT` socket per thread on the same address
//! and serves each from its own thread with `recvmmsg`/`sendmmsg`, echoing every datagram to
//! its source. To serve inside a lab, call `start` inside
//! `sluice_lab::Lab::run_in(&lab.server_ns, ...)`: the sockets are created on that
//! namespace-joined thread, so they belong to the lab's namespace (a socket keeps the
//! namespace it was created in), and the serving threads spawned from it start in that
//! namespace too.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};

use self::mmsg::MmsgBatch;

/// How often serving threads look at the stop flag (their socket receive/send timeout).
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Largest batch for one `recvmmsg`/`sendmmsg` call (the kernel's `UIO_MAXIOV`).
pub const MAX_BATCH: usize = 1024;

/// Most serving threads [`KernelEchoServer::start`] accepts.
pub const MAX_THREADS: usize = 256;

/// Receive buffer per datagram: the largest UDP payload fits, so nothing is truncated.
const ECHO_SLOT: usize = 65_536;

/// Counters of a running or stopped echo server (sums over all threads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Datagrams received.
    pub received_packets: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Datagrams echoed.
    pub sent_packets: u64,
    /// Payload bytes echoed.
    pub sent_bytes: u64,
    /// Datagrams that could not be echoed (send error or send timeout).
    pub send_errors: u64,
    /// Datagrams received per thread, in thread order (shows the `SO_REUSEPORT` spread).
    pub per_thread_packets: Vec<u64>,
    /// Errors that ended a serving thread early (empty when all ran until stopped).
    pub errors: Vec<String>,
}

/// A kernel UDP echo server running on `threads` `SO_REUSEPORT` sockets.
///
/// Stop it with [`KernelEchoServer::stop`]; dropping it also stops and joins its threads.
#[derive(Debug)]
pub struct KernelEchoServer {
    local_addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    workers: Vec<Worker>,
}

#[derive(Debug)]
struct Worker {
    handle: JoinHandle<io::Result<()>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    received_packets: AtomicU64,
    received_bytes: AtomicU64,
    sent_packets: AtomicU64,
    sent_bytes: AtomicU64,
    send_errors: AtomicU64,
}

impl KernelEchoServer {
    /// Binds `threads` `SO_REUSEPORT` UDP sockets to `bind` and starts one serving thread per
    /// socket, each receiving and echoing up to `batch` datagrams per system call.
    ///
    /// `bind` must be in the lab range 198.18.0.0/15 or on loopback (127.0.0.0/8). Port 0
    /// picks a free port shared by all sockets; see [`KernelEchoServer::local_addr`].
    pub fn start(bind: SocketAddrV4, threads: usize, batch: usize) -> io::Result<Self> {
        check_params(bind, threads, batch)?;
        let sockets = reuseport_sockets(bind, threads)?;
        let local_addr = local_v4(&sockets[0])?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = KernelEchoServer { local_addr, stop, workers: Vec::with_capacity(threads) };
        for (index, socket) in sockets.into_iter().enumerate() {
            // On failure `server` is dropped, which stops the threads already started.
            server.spawn_worker(index, socket, batch)?;
        }
        Ok(server)
    }

    /// The address the sockets are bound to (with the actual port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local_addr
    }

    /// A snapshot of the counters while the server runs.
    pub fn stats(&self) -> EchoStats {
        let mut stats = EchoStats::default();
        for worker in &self.workers {
            stats.add(&worker.counters);
        }
        stats
    }

    /// Stops the serving threads (they notice within [`STOP_POLL_INTERVAL`]), joins them and
    /// returns the final counters.
    pub fn stop(mut self) -> EchoStats {
        self.shutdown()
    }

    fn spawn_worker(&mut self, index: usize, socket: UdpSocket, batch: usize) -> io::Result<()> {
        let counters = Arc::new(Counters::default());
        let (stop, thread_counters) = (Arc::clone(&self.stop), Arc::clone(&counters));
        // Pinned like sluiced's workers (thread i on the i-th CPU this process
        // may use), so the two baselines get the same placement.
        let allowed = sluice_engine::config::allowed_cpus().unwrap_or_default();
        let cpu = if allowed.is_empty() { index } else { allowed[index % allowed.len()] };
        let handle = std::thread::Builder::new().name(format!("kecho-{index}")).spawn(move || {
            let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            serve(&socket, batch, &stop, &thread_counters)
        })?;
        self.workers.push(Worker { handle, counters });
        Ok(())
    }

    fn shutdown(&mut self) -> EchoStats {
        self.stop.store(true, Ordering::Relaxed);
        let mut stats = EchoStats::default();
        for (index, worker) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            match worker.handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => stats.errors.push(format!("thread {index}: {err}")),
                Err(_) => stats.errors.push(format!("thread {index} panicked")),
            }
            stats.add(&worker.counters);
        }
        stats
    }
}

impl Drop for KernelEchoServer {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.shutdown();
        }
    }
}

impl EchoStats {
    fn add(&mut self, c: &Counters) {
        let received = c.received_packets.load(Ordering::Relaxed);
        self.received_packets += received;
        self.received_bytes += c.received_bytes.load(Ordering::Relaxed);
        self.sent_packets += c.sent_packets.load(Ordering::Relaxed);
        self.sent_bytes += c.sent_bytes.load(Ordering::Relaxed);
        self.send_errors += c.send_errors.load(Ordering::Relaxed);
        self.per_thread_packets.push(received);
    }
}

/// Whether `addr` may be used by the baselines: the lab range or loopback.
pub(crate) fn allowed_addr(addr: std::net::Ipv4Addr) -> bool {
    sluice_lab::is_lab_addr(addr) || addr.is_loopback()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn check_params(bind: SocketAddrV4, threads: usize, batch: usize) -> io::Result<()> {
    if !allowed_addr(*bind.ip()) {
        return Err(invalid(format!(
            "refusing to bind the echo server to {bind}: use an address in the lab range \
             198.18.0.0/15 or loopback"
        )));
    }
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(invalid(format!("threads is {threads}; it must be between 1 and {MAX_THREADS}")));
    }
    if !(1..=MAX_BATCH).contains(&batch) {
        return Err(invalid(format!("batch is {batch}; it must be between 1 and {MAX_BATCH}")));
    }
    Ok(())
}

/// Opens `count` sockets with `SO_REUSEPORT` on `bind`; with port 0 all share the port the
/// first one got.
fn reuseport_sockets(bind: SocketAddrV4, count: usize) -> io::Result<Vec<UdpSocket>> {
    let first = reuseport_socket(bind)?;
    let shared = local_v4(&first)?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(reuseport_socket(shared)?);
    }
    for socket in &sockets {
        socket.set_read_timeout(Some(STOP_POLL_INTERVAL))?;
        socket.set_write_timeout(Some(STOP_POLL_INTERVAL))?;
    }
    Ok(sockets)
}

fn reuseport_socket(addr: SocketAddrV4) -> io::Result<UdpSocket> {
    let fd: OwnedFd = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    Ok(UdpSocket::from(fd))
}

fn local_v4(socket: &UdpSocket) -> io::Result<SocketAddrV4> {
    match socket.local_addr()? {
        std::net::SocketAddr::V4(addr) => Ok(addr),
        other => Err(io::Error::other(format!("unexpected local address {other}"))),
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// The serving loop of one thread: receive a batch, echo it, until `stop` is set.
fn serve(socket: &UdpSocket, batch: usize, stop: &AtomicBool, c: &Counters) -> io::Result<()> {
    let mut msgs = MmsgBatch::new(batch, ECHO_SLOT);
    while !stop.load(Ordering::Relaxed) {
        let n = match msgs.recv(socket.as_fd(), libc::MSG_WAITFORONE) {
            Ok(n) => n,
            Err(err) if is_timeout(&err) => continue,
            Err(err) => return Err(err),
        };
        let bytes: usize = (0..n).map(|i| msgs.len(i)).sum();
        c.received_packets.fetch_add(n as u64, Ordering::Relaxed);
        c.received_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        echo_batch(socket, &mut msgs, n, c);
    }
    Ok(())
}

/// Sends the first `n` received datagrams back to their sources; a datagram that cannot be
/// sent is counted in `send_errors` and skipped.
fn echo_batch(socket: &UdpSocket, msgs: &mut MmsgBatch, n: usize, c: &Counters) {
    let mut next = 0;
    while next < n {
        match msgs.send(socket.as_fd(), next..n, true) {
            Ok(0) => break,
            Ok(sent) => {
                let bytes: usize = (next..next + sent).map(|i| msgs.len(i)).sum();
                c.sent_packets.fetch_add(sent as u64, Ordering::Relaxed);
                c.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                next += sent;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.send_errors.fetch_add(1, Ordering::Relaxed);
                next += 1;
            }
        }
    }
}

/// Batches of datagrams for `recvmmsg(2)`/`sendmmsg(2)`, shared with the load generator.
///
/// All pointers handed to the kernel are rebuilt from the owned buffers right before each
/// call, so no pointer outlives a borrow of the buffers.
pub(crate) mod mmsg {
    use std::io;
    use std::mem::size_of;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::ops::Range;
    use std::os::fd::{AsRawFd, BorrowedFd};

    const SOCKADDR_IN_LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;

    /// `capacity` datagram slots of `slot` bytes each, with their lengths and addresses.
    pub(crate) struct MmsgBatch {
        slot: usize,
        bufs: Vec<u8>,
        lens: Vec<usize>,
        addrs: Vec<libc::sockaddr_in>,
        iovs: Vec<libc::iovec>,
        hdrs: Vec<libc::mmsghdr>,
    }

    impl MmsgBatch {
        /// A batch of `capacity` (>= 1) slots of `slot` bytes.
        pub(crate) fn new(capacity: usize, slot: usize) -> Self {
            let capacity = capacity.max(1);
            let empty_iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
            MmsgBatch {
                slot,
                bufs: vec![0; capacity * slot],
                lens: vec![0; capacity],
                addrs: vec![sockaddr_in(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); capacity],
                iovs: vec![empty_iov; capacity],
                hdrs: (0..capacity).map(|_| zeroed_mmsghdr()).collect(),
            }
        }

        /// Number of slots.
        pub(crate) fn capacity(&self) -> usize {
            self.lens.len()
        }

        /// The whole buffer of slot `i`, to fill before [`MmsgBatch::send`].
        pub(crate) fn slot_mut(&mut self, i: usize) -> &mut [u8] {
            let start = i * self.slot;
            &mut self.bufs[start..start + self.slot]
        }

        /// The datagram in slot `i` (received bytes, or the bytes to send).
        pub(crate) fn data(&self, i: usize) -> &[u8] {
            let start = i * self.slot;
            &self.bufs[start..start + self.lens[i]]
        }

        /// Length of the datagram in slot `i`.
        pub(crate) fn len(&self, i: usize) -> usize {
            self.lens[i]
        }

        /// Sets the length of the datagram to send from slot `i` (at most the slot size).
        pub(crate) fn set_len(&mut self, i: usize, len: usize) {
            self.lens[i] = len.min(self.slot);
        }

        /// Whether the datagram received into slot `i` was longer than the slot.
        pub(crate) fn truncated(&self, i: usize) -> bool {
            self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
        }

        /// Receives up to `capacity` datagrams with `recvmmsg(2)` and `flags`.
        pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<usize> {
            let count = self.capacity();
            self.prepare(0..count, true, true);
            let vlen = libc::c_uint::try_from(count).unwrap_or(libc::c_uint::MAX);
            // SAFETY: prepare() just pointed every hdrs[i] (i < count = hdrs.len()) at iovs[i],
            // which points at slot i of `bufs` (`slot` bytes, in bounds), and at addrs[i] with
            // msg_namelen = sizeof(sockaddr_in); there is no control buffer. All of these are
            // owned by `self`, which is borrowed mutably for the whole call, so they stay
            // valid and unaliased while the kernel writes them. The timeout pointer is null.
            let rc =
                unsafe { libc::recvmmsg(fd.as_raw_fd(), self.hdrs.as_mut_ptr(), vlen, flags, std::ptr::null_mut()) };
            let received = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
            for i in 0..received {
                self.lens[i] = (self.hdrs[i].msg_len as usize).min(self.slot);
            }
            Ok(received)
        }

        /// Sends slots `range` with `sendmmsg(2)`, to their addresses when `to_addrs` (else
        /// on a connected socket); returns how many were sent.
        pub(crate) fn send(&mut self, fd: BorrowedFd<'_>, range: Range<usize>, to_addrs: bool) -> io::Result<usize> {
            if range.end > self.capacity() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "send range beyond the batch"));
            }
            if range.is_empty() {
                return Ok(0);
            }
            let vlen = libc::c_uint::try_from(range.len()).unwrap_or(libc::c_uint::MAX);
            self.prepare(range.clone(), false, to_addrs);
            let first = self.hdrs[range.start..].as_mut_ptr();
            // SAFETY: `first` points at hdrs[range.start], and range.end <= hdrs.len(), so the
            // kernel reads `vlen` initialised headers. prepare() just pointed each of them at
            // iovs[i] -> slot i of `bufs` with lens[i] <= slot bytes, and at addrs[i] (or a
            // null name when !to_addrs); no control buffer. All are owned by `self`, borrowed
            // mutably for the whole call, so they stay valid while the kernel reads them.
            let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), first, vlen, 0) };
            usize::try_from(rc).map_err(|_| io::Error::last_os_error())
        }

        /// The source address of the datagram received into slot `i`.
        #[cfg(test)]
        pub(crate) fn addr(&self, i: usize) -> Option<SocketAddrV4> {
            let sa = &self.addrs[i];
            (libc::c_int::from(sa.sin_family) == libc::AF_INET)
                .then(|| SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)), u16::from_be(sa.sin_port)))
        }

        /// Points headers `range` at their iovec, slot and address (fresh pointers).
        fn prepare(&mut self, range: Range<usize>, recv: bool, with_addrs: bool) {
            let base = self.bufs.as_mut_ptr();
            for i in range {
                let len = if recv { self.slot } else { self.lens[i] };
                self.iovs[i] = libc::iovec { iov_base: base.wrapping_add(i * self.slot).cast(), iov_len: len };
                let (name, namelen) = if with_addrs {
                    let ptr: *mut libc::sockaddr_in = &mut self.addrs[i];
                    (ptr.cast(), SOCKADDR_IN_LEN)
                } else {
                    (std::ptr::null_mut(), 0)
                };
                let hdr = &mut self.hdrs[i];
                hdr.msg_len = 0;
                hdr.msg_hdr.msg_name = name;
                hdr.msg_hdr.msg_namelen = namelen;
                hdr.msg_hdr.msg_iov = &mut self.iovs[i];
                hdr.msg_hdr.msg_iovlen = 1;
                hdr.msg_hdr.msg_control = std::ptr::null_mut();
                hdr.msg_hdr.msg_controllen = 0;
                hdr.msg_hdr.msg_flags = 0;
            }
        }
    }

    fn zeroed_mmsghdr() -> libc::mmsghdr {
        // SAFETY: mmsghdr is a plain C struct of integers and raw pointers (plus, on some
        // libcs, padding fields); all-zero bytes are a valid value for every field.
        unsafe { std::mem::zeroed() }
    }

    fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
            sin_zero: [0; 8],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn loopback() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
    }

    #[test]
    fn echoes_datagrams_to_their_source() {
        let server = KernelEchoServer::start(loopback(), 2, 8).expect("start");
        let target = server.local_addr();
        assert_ne!(target.port(), 0);
        let client = UdpSocket::bind(loopback()).expect("bind");
        client.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut buf = [0u8; 2048];
        for i in 0..20u32 {
            let msg = format!("datagram {i} {}", "x".repeat(i as usize * 50));
            client.send_to(msg.as_bytes(), target).expect("send");
            let (n, from) = client.recv_from(&mut buf).expect("echo");
            assert_eq!(&buf[..n], msg.as_bytes());
            assert_eq!(from, std::net::SocketAddr::V4(target));
        }
        let stats = server.stop();
        assert_eq!(stats.received_packets, 20, "{stats:?}");
        assert_eq!(stats.sent_packets, 20, "{stats:?}");
        assert_eq!(stats.received_bytes, stats.sent_bytes);
        assert_eq!(stats.per_thread_packets.len(), 2);
        assert!(stats.errors.is_empty(), "{stats:?}");
    }

    #[test]
    fn threads_share_the_port_with_reuseport() {
        let server = KernelEchoServer::start(loopback(), 4, 4).expect("start");
        let port = server.local_addr().port();
        // A fifth plain socket cannot bind the same port: the four hold it via SO_REUSEPORT.
        assert!(UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_err());
        assert_eq!(server.stats().per_thread_packets.len(), 4);
        drop(server); // Drop stops and joins the threads.
    }

    #[test]
    fn refuses_foreign_addresses_and_bad_parameters() {
        let public = SocketAddrV4::new(Ipv4Addr::new(8, 8, 8, 8), 7);
        let err = KernelEchoServer::start(public, 1, 1).expect_err("8.8.8.8 refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("198.18.0.0/15"), "{err}");
        assert!(KernelEchoServer::start(loopback(), 0, 8).is_err());
        assert!(KernelEchoServer::start(loopback(), 1, 0).is_err());
        assert!(KernelEchoServer::start(loopback(), 1, MAX_BATCH + 1).is_err());
    }

    #[test]
    fn mmsg_batch_round_trip() {
        let a = UdpSocket::bind(loopback()).expect("bind");
        let b = UdpSocket::bind(loopback()).expect("bind");
        b.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        a.connect(b.local_addr().expect("addr")).expect("connect");
        let mut out = MmsgBatch::new(3, 16);
        for i in 0..3 {
            out.slot_mut(i)[..5].copy_from_slice(b"hello");
            out.slot_mut(i)[5] = i as u8;
            out.set_len(i, 6);
        }
        assert_eq!(out.send(a.as_fd(), 0..3, false).expect("sendmmsg"), 3);
        assert!(out.send(a.as_fd(), 0..4, false).is_err());
        let mut inb = MmsgBatch::new(4, 4);
        let mut got = 0;
        while got < 3 {
            let n = inb.recv(b.as_fd(), libc::MSG_WAITFORONE).expect("recvmmsg");
            for i in 0..n {
                assert!(inb.truncated(i), "6 bytes into a 4-byte slot");
                assert_eq!(inb.data(i), b"hell");
                assert_eq!(inb.addr(i), Some(local_v4(&a).expect("addr")));
            }
            got += n;
        }
    }
}
