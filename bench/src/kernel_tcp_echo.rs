//! Kernel-socket TCP echo server: the baseline sluice's TCP is compared with.
//!
//! One `SO_REUSEPORT` listener per thread on the same address; each thread
//! sleeps in `epoll_wait`, accepts, and echoes what it reads on each of its
//! connections (non-blocking, `TCP_NODELAY`; what cannot be written at once
//! waits for `EPOLLOUT`, and reading pauses meanwhile, so a client that does
//! not read sees the window close, as with sluice). Threads are pinned to
//! CPUs `0..threads` like sluiced's workers. Start it inside the server's
//! namespace (`Lab::run_in`): the sockets belong to the namespace they are
//! created in.
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const LISTENER: u64 = u64::MAX;

/// Counters (sums over the threads).
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    bytes: AtomicU64,
}

/// What the server did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpEchoStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes echoed.
    pub bytes: u64,
}

/// A running kernel TCP echo server; stop it with [`KernelTcpEcho::stop`].
pub struct KernelTcpEcho {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl KernelTcpEcho {
    /// Listens on `addr` with `threads` threads.
    pub fn start(addr: SocketAddrV4, threads: usize) -> io::Result<KernelTcpEcho> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let mut handles = Vec::new();
        for t in 0..threads.max(1) {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.bind(&SockAddr::from(addr))?;
            s.listen(1024)?;
            s.set_nonblocking(true)?;
            let listener: TcpListener = s.into();
            let (stop, counters) = (stop.clone(), counters.clone());
            let h = std::thread::Builder::new().name(format!("kecho-tcp-{t}")).spawn(move || {
                let _ = core_affinity::set_for_current(core_affinity::CoreId { id: t });
                serve(listener, &stop, &counters)
            })?;
            handles.push(h);
        }
        Ok(KernelTcpEcho { stop, counters, threads: handles })
    }

    /// Counters so far.
    pub fn stats(&self) -> TcpEchoStats {
        TcpEchoStats {
            accepted: self.counters.accepted.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// Stops and joins the threads; returns what went wrong in them.
    pub fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .drain(..)
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("kernel TCP echo thread: {e}")),
                Err(_) => Some("kernel TCP echo thread panicked".into()),
            })
            .collect()
    }
}

impl Drop for KernelTcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

struct Conn {
    s: TcpStream,
    /// Read but not yet written back.
    pending: Vec<u8>,
    off: usize,
}

fn serve(listener: TcpListener, stop: &AtomicBool, counters: &Counters) -> io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
    epoll.add(listener.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, LISTENER)).map_err(io::Error::from)?;
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = vec![EpollEvent::empty(); 256];
    while !stop.load(Ordering::Relaxed) {
        let n = match epoll.wait(&mut events, EpollTimeout::from(100u16)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        for ev in &events[..n] {
            let tok = ev.data();
            if tok == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true)?;
                            s.set_nodelay(true)?;
                            let t = next;
                            next += 1;
                            epoll.add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, t)).map_err(io::Error::from)?;
                            conns.insert(t, Conn { s, pending: Vec::new(), off: 0 });
                            counters.accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let Some(c) = conns.get_mut(&tok) else { continue };
            if !step(c, &mut buf, counters) {
                let _ = epoll.delete(c.s.as_fd());
                conns.remove(&tok);
                continue;
            }
            let want = if c.off < c.pending.len() { EpollFlags::EPOLLOUT } else { EpollFlags::EPOLLIN };
            let _ = epoll.modify(c.s.as_fd(), &mut EpollEvent::new(want, tok));
        }
    }
    Ok(())
}

/// Writes what waits, then reads and echoes while it can; false when the
/// connection is done (closed by the peer, or failed).
fn step(c: &mut Conn, buf: &mut [u8], counters: &Counters) -> bool {
    loop {
        while c.off < c.pending.len() {
            match c.s.write(&c.pending[c.off..]) {
                Ok(n) => {
                    c.off += n;
                    counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        c.pending.clear();
        c.off = 0;
        match c.s.read(buf) {
            Ok(0) => return false,
            Ok(n) => c.pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn echoes_on_loopback_from_two_threads() {
        // A free port: bind, read it back, close, reuse.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let srv = KernelTcpEcho::start(addr, 2).unwrap();
        for i in 0..4u8 {
            let mut c = TcpStream::connect(addr).unwrap();
            let msg = vec![i; 100_000];
            let mut r = c.try_clone().unwrap();
            let h = std::thread::spawn(move || {
                let mut got = vec![0u8; 100_000];
                r.read_exact(&mut got).map(|_| got)
            });
            c.write_all(&msg).unwrap();
            assert_eq!(h.join().unwrap().unwrap(), msg);
        }
        // The server threads publish their counts after writing: the last
        // echo may be back before its bytes are counted.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut s = srv.stats();
        while (s.accepted, s.bytes) != (4, 400_000) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            s = srv.stats();
        }
        assert_eq!((s.accepted, s.bytes), (4, 400_000));
        assert!(srv.stop().is_empty());
    }
}
