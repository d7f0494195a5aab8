//! Kernel-socket TCP request/response load generator, as real clients do it.
//!
//! [`run`] spreads `conns` TCP connections over `threads` threads; each thread
//! sleeps in `epoll_wait` until a socket is ready or its pacing timer fires.
//! A request is `size` bytes carrying its sequence number and a pattern
//! derived from it ([`crate::kernel_gen::fill_payload`]); the echo must come
//! back byte for byte, in order.
//!
//! Modes:
//! - `rr`: persistent connections, `window` requests in flight on each
//!   (closed loop), or requests issued at a fixed total `rate` on whichever
//!   connection has room (open loop; latency counts from the request's
//!   intended time, so a server that falls behind shows it).
//! - `crr`: a new connection per request: connect, send, read the echo,
//!   close (the client closes first, so TIME-WAIT stays with the client;
//!   set `net.ipv4.tcp_tw_reuse` in the client's namespace for long runs).
use crate::kernel_gen::{fill_payload, verify_payload, MIN_PAYLOAD};
use hdrhistogram::Histogram;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Largest request.
pub const MAX_SIZE: usize = 1 << 20;
/// Open loop: a request that waited longer than this past its time (for
/// a connection with room) is counted late, as the AF_XDP generator's.
const LATE: Duration = Duration::from_micros(sluice_engine::services::rr_client::LATE_US);
/// Token of the pacing timer in the epoll set.
const TIMER: u64 = u64::MAX;
/// Highest latency tracked exactly, µs.
const MAX_LATENCY_US: u64 = 60_000_000;
/// A connection that failed waits this long before it is opened again.
const RECONNECT_AFTER: Duration = Duration::from_millis(10);

/// How connections are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Persistent connections.
    Rr,
    /// A connection per request.
    Crr,
}

impl Mode {
    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rr => "rr",
            Mode::Crr => "crr",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct TcpGenConfig {
    /// The echo service.
    pub target: SocketAddrV4,
    /// The client address (lab range, as the target).
    pub source: Ipv4Addr,
    /// Connections (at once, in crr mode).
    pub conns: usize,
    /// Requests in flight per connection (rr, closed loop).
    pub window: usize,
    /// Bytes per request (and echo).
    pub size: usize,
    /// How long to measure.
    pub duration: Duration,
    /// Threads.
    pub threads: usize,
    /// rr or crr.
    pub mode: Mode,
    /// Open loop: requests per second in total; `None`: closed loop.
    pub rate: Option<f64>,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct TcpGenReport {
    /// Requests whose echo came back intact.
    pub ok: u64,
    /// Echoes that differed from the request.
    pub mismatched: u64,
    /// Connections that failed (refused, reset, timed out, closed early).
    pub errors: u64,
    /// Connections opened.
    pub connects: u64,
    /// Open loop: requests that found no connection with room at their
    /// time and waited (a sign the offered rate is beyond what is served).
    pub deferred: u64,
    /// Requests issued and not answered when the run ended.
    pub outstanding_at_end: u64,
    /// Latency of intact echoes, µs (open loop: from the intended time).
    pub latency_us: Histogram<u64>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl TcpGenReport {
    /// Intact echoes per second.
    pub fn per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.ok as f64 / s
        } else {
            0.0
        }
    }
}

impl TcpGenConfig {
    /// Checks the settings (addresses in the lab range only).
    pub fn validate(&self) -> Result<(), String> {
        if !crate::kernel_echo::allowed_addr(*self.target.ip()) || !crate::kernel_echo::allowed_addr(self.source) {
            return Err(format!(
                "refusing to connect from {} to {}: both must be in 198.18.0.0/15 (or loopback)",
                self.source, self.target
            ));
        }
        let range = |what: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} is {v}; it must be between {lo} and {hi}"))
            }
        };
        range("conns", self.conns, 1, 60_000)?;
        range("window", self.window, 1, 1024)?;
        range("size", self.size, MIN_PAYLOAD, MAX_SIZE)?;
        range("threads", self.threads, 1, 256)?;
        if self.duration.is_zero() {
            return Err("duration must be positive".into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("rate {r} must be a positive number"));
            }
        }
        Ok(())
    }
}

/// One connection.
struct Conn {
    sock: Option<TcpStream>,
    id: u16,
    connecting: bool,
    /// Request bytes still to write (the front request first).
    out: Vec<u8>,
    out_off: usize,
    /// Echo bytes of the front request read so far.
    inbuf: Vec<u8>,
    /// Requests sent (or being sent), oldest first: (seq, latency origin).
    inflight: VecDeque<(u64, Instant)>,
    next_seq: u64,
    /// Not before this time (after a failure).
    retry_at: Option<Instant>,
    /// The crr request's origin (connect time, or intended time).
    crr_origin: Option<Instant>,
}

#[derive(Default)]
struct Counts {
    ok: u64,
    mismatched: u64,
    errors: u64,
    connects: u64,
    deferred: u64,
}

/// Runs the load; call it in the client's network namespace.
pub fn run(cfg: &TcpGenConfig) -> io::Result<TcpGenReport> {
    cfg.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let threads = cfg.threads.min(cfg.conns);
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let results = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let ids: Vec<u16> = (0..cfg.conns).filter(|i| i % threads == t).map(|i| i as u16).collect();
                let rate = cfg.rate.map(|r| r / threads as f64);
                std::thread::Builder::new()
                    .name(format!("tcpgen-{t}"))
                    .spawn_scoped(s, move || run_thread(cfg, ids, rate, start, deadline))
            })
            .collect::<io::Result<Vec<_>>>()?;
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("generator thread panicked"))))
            .collect::<io::Result<Vec<_>>>()
    })?;
    let mut latency_us = histogram()?;
    let mut c = Counts::default();
    let mut outstanding = 0;
    for (tc, h, o) in results {
        c.ok += tc.ok;
        c.mismatched += tc.mismatched;
        c.errors += tc.errors;
        c.connects += tc.connects;
        c.deferred += tc.deferred;
        outstanding += o;
        latency_us.add(&h).map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(TcpGenReport {
        ok: c.ok,
        mismatched: c.mismatched,
        errors: c.errors,
        connects: c.connects,
        deferred: c.deferred,
        outstanding_at_end: outstanding,
        latency_us,
        elapsed: start.elapsed(),
    })
}

fn histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| io::Error::other(e.to_string()))
}

fn interest(c: &Conn) -> EpollFlags {
    let mut f = EpollFlags::EPOLLIN;
    if c.connecting || c.out_off < c.out.len() {
        f |= EpollFlags::EPOLLOUT;
    }
    f
}

struct Thread<'a> {
    cfg: &'a TcpGenConfig,
    epoll: Epoll,
    conns: Vec<Conn>,
    counts: Counts,
    latency: Histogram<u64>,
    /// Open loop: intended times of requests not yet given to a connection.
    backlog: VecDeque<Instant>,
    scratch: Vec<u8>,
}

fn run_thread(
    cfg: &TcpGenConfig,
    ids: Vec<u16>,
    rate: Option<f64>,
    start: Instant,
    deadline: Instant,
) -> io::Result<(Counts, Histogram<u64>, u64)> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
    let conns = ids
        .iter()
        .map(|&id| Conn {
            sock: None,
            id,
            connecting: false,
            out: Vec::with_capacity(cfg.size * cfg.window),
            out_off: 0,
            inbuf: Vec::with_capacity(cfg.size),
            inflight: VecDeque::with_capacity(cfg.window),
            next_seq: 0,
            retry_at: None,
            crr_origin: None,
        })
        .collect();
    let mut t = Thread {
        cfg,
        epoll,
        conns,
        counts: Counts::default(),
        latency: histogram()?,
        backlog: VecDeque::new(),
        scratch: vec![0u8; 64 * 1024],
    };
    let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)
        .map_err(io::Error::from)?;
    if rate.is_some() {
        // Armed for the next request's time on every pass (one shot): the
        // thread sleeps in epoll_wait until a request is due or a socket
        // is ready, never on a tick.
        t.epoll.add(timer.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, TIMER)).map_err(io::Error::from)?;
    }
    // Persistent connections open at once; crr ones when a request needs one.
    if cfg.mode == Mode::Rr {
        for i in 0..t.conns.len() {
            t.open(i);
        }
    }
    let mut issued = 0u64;
    // The request the timer is armed for: re-armed only when that changes
    // or the timer went off (not one timerfd_settime every pass).
    let mut armed_for: Option<u64> = None;
    let mut events = vec![EpollEvent::empty(); 256];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match rate {
            None => {
                for i in 0..t.conns.len() {
                    t.fill(i, now, None);
                }
            }
            Some(r) => {
                // Every request due by now (request k at k / r), each with
                // its intended time.
                let due = ((now - start).as_secs_f64() * r) as u64 + 1;
                while issued < due {
                    let at = start + Duration::from_secs_f64(issued as f64 / r);
                    t.backlog.push_back(at);
                    issued += 1;
                }
                t.dispatch(now);
                if armed_for != Some(issued) {
                    let next = start + Duration::from_secs_f64(issued as f64 / r);
                    let wait = next.saturating_duration_since(Instant::now()).max(Duration::from_micros(1));
                    timer
                        .set(Expiration::OneShot(TimeSpec::from_duration(wait)), TimerSetTimeFlags::empty())
                        .map_err(io::Error::from)?;
                    armed_for = Some(issued);
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = EpollTimeout::try_from(left.min(Duration::from_millis(100))).unwrap_or(EpollTimeout::NONE);
        let n = match t.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        for ev in &events[..n] {
            let tok = ev.data();
            if tok == TIMER {
                let _ = timer.wait();
                armed_for = None;
                continue;
            }
            let i = tok as usize;
            if i < t.conns.len() {
                t.ready(i, ev.events());
            }
        }
    }
    let outstanding = t.conns.iter().map(|c| c.inflight.len() as u64).sum::<u64>() + t.backlog.len() as u64;
    Ok((t.counts, t.latency, outstanding))
}

impl Thread<'_> {
    /// Opens connection `i` (non-blocking connect).
    fn open(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        c.retry_at = None;
        let sock = match connect_nonblocking(self.cfg.source, self.cfg.target) {
            Ok(s) => s,
            Err(_) => {
                self.counts.errors += 1;
                c.retry_at = Some(Instant::now() + RECONNECT_AFTER);
                return;
            }
        };
        self.counts.connects += 1;
        c.connecting = true;
        c.out.clear();
        c.out_off = 0;
        c.inbuf.clear();
        let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT, i as u64);
        if self.epoll.add(sock.as_fd(), ev).is_err() {
            self.counts.errors += 1;
            return;
        }
        c.sock = Some(sock);
    }

    fn close(&mut self, i: usize, failed: bool) {
        let c = &mut self.conns[i];
        if let Some(s) = c.sock.take() {
            let _ = self.epoll.delete(s.as_fd());
        }
        c.connecting = false;
        c.out.clear();
        c.out_off = 0;
        c.inbuf.clear();
        if failed {
            self.counts.errors += 1;
            c.inflight.clear();
            c.crr_origin = None;
            c.retry_at = Some(Instant::now() + RECONNECT_AFTER);
        }
    }

    fn update(&mut self, i: usize) {
        let c = &self.conns[i];
        if let Some(s) = &c.sock {
            let mut ev = EpollEvent::new(interest(c), i as u64);
            let _ = self.epoll.modify(s.as_fd(), &mut ev);
        }
    }

    /// Whether connection `i` takes another request now.
    fn has_room(&self, i: usize) -> bool {
        let c = &self.conns[i];
        match self.cfg.mode {
            Mode::Rr => c.inflight.len() < self.cfg.window && c.sock.is_some() && !c.connecting,
            Mode::Crr => c.sock.is_none() && c.inflight.is_empty() && c.retry_at.is_none_or(|t| Instant::now() >= t),
        }
    }

    /// Queues a request on connection `i` with latency origin `origin`.
    fn issue(&mut self, i: usize, origin: Instant) {
        if self.cfg.mode == Mode::Crr {
            self.open(i);
            if self.conns[i].sock.is_none() {
                return;
            }
            self.conns[i].crr_origin = Some(origin);
        }
        let size = self.cfg.size;
        let c = &mut self.conns[i];
        let seq = c.next_seq;
        c.next_seq += 1;
        let at = c.out.len();
        c.out.resize(at + size, 0);
        fill_payload(&mut c.out[at..], c.id, seq);
        c.inflight.push_back((seq, origin));
        if !c.connecting {
            self.flush_out(i);
        }
    }

    /// Closed loop: tops connection `i` up to its window.
    fn fill(&mut self, i: usize, now: Instant, _: Option<()>) {
        if self.cfg.mode == Mode::Rr && self.conns[i].sock.is_none() {
            self.open(i);
            return;
        }
        while self.has_room(i) {
            self.issue(i, now);
            if self.cfg.mode == Mode::Crr {
                break;
            }
        }
    }

    /// Open loop: gives waiting requests to connections with room.
    fn dispatch(&mut self, now: Instant) {
        let n = self.conns.len();
        let mut i = 0;
        while let Some(&at) = self.backlog.front() {
            let mut found = None;
            for k in 0..n {
                let j = (i + k) % n;
                if self.cfg.mode == Mode::Rr && self.conns[j].sock.is_none() {
                    self.open(j);
                }
                if self.has_room(j) {
                    found = Some(j);
                    break;
                }
            }
            let Some(j) = found else {
                if now.saturating_duration_since(at) > LATE {
                    self.counts.deferred += 1;
                }
                break;
            };
            self.backlog.pop_front();
            self.issue(j, at);
            i = j + 1;
        }
    }

    fn flush_out(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(s) = c.sock.as_mut() else { return };
        while c.out_off < c.out.len() {
            match s.write(&c.out[c.out_off..]) {
                Ok(0) => break,
                Ok(n) => c.out_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.close(i, true);
                    return;
                }
            }
        }
        if c.out_off == c.out.len() {
            c.out.clear();
            c.out_off = 0;
        }
        self.update(i);
    }

    fn ready(&mut self, i: usize, ev: EpollFlags) {
        if self.conns[i].sock.is_none() {
            return;
        }
        if self.conns[i].connecting && ev.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP)
        {
            let err = self.conns[i].sock.as_ref().and_then(|s| s.take_error().ok().flatten());
            if err.is_some() || ev.contains(EpollFlags::EPOLLERR) {
                self.close(i, true);
                return;
            }
            self.conns[i].connecting = false;
        }
        if ev.contains(EpollFlags::EPOLLOUT) {
            self.flush_out(i);
            if self.conns[i].sock.is_none() {
                return;
            }
        }
        if ev.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            self.read(i);
        }
        if self.conns[i].sock.is_some() {
            self.update(i);
        }
    }

    fn read(&mut self, i: usize) {
        let size = self.cfg.size;
        loop {
            let c = &mut self.conns[i];
            let Some(s) = c.sock.as_mut() else { return };
            let n = match s.read(&mut self.scratch) {
                Ok(0) => {
                    // The server closed: fine only in crr with nothing due.
                    let clean = self.cfg.mode == Mode::Crr && c.inflight.is_empty();
                    self.close(i, !clean);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(i, true);
                    return;
                }
            };
            let mut off = 0;
            while off < n {
                let c = &mut self.conns[i];
                let take = (size - c.inbuf.len()).min(n - off);
                c.inbuf.extend_from_slice(&self.scratch[off..off + take]);
                off += take;
                if c.inbuf.len() < size {
                    continue;
                }
                let Some((seq, origin)) = c.inflight.pop_front() else {
                    // Bytes nobody asked for.
                    self.counts.mismatched += 1;
                    self.close(i, true);
                    return;
                };
                if verify_payload(&c.inbuf, c.id, size) == Some(seq) {
                    self.counts.ok += 1;
                    let us = origin.elapsed().as_micros().clamp(1, MAX_LATENCY_US as u128) as u64;
                    let _ = self.latency.record(us);
                } else {
                    self.counts.mismatched += 1;
                }
                c.inbuf.clear();
                if self.cfg.mode == Mode::Crr {
                    // Done with it: the client closes first.
                    self.close(i, false);
                    return;
                }
            }
        }
    }
}

fn connect_nonblocking(source: Ipv4Addr, target: SocketAddrV4) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    s.set_tcp_nodelay(true)?;
    // The port is chosen at connect time, by the 4-tuple (a plain bind to
    // port 0 would need a port free of every TIME-WAIT socket, a search
    // that grows with them and runs out, as real load generators avoid).
    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::IpBindAddressNoPort, &true)?;
    s.bind(&SockAddr::from(SocketAddrV4::new(source, 0)))?;
    match s.connect(&SockAddr::from(SocketAddr::V4(target))) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A kernel echo server on loopback for the generator to talk to.
    fn echo_server() -> (SocketAddrV4, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = match l.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let h = std::thread::spawn(move || {
            l.set_nonblocking(false).unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            for c in l.incoming() {
                let Ok(mut c) = c else { break };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                if Instant::now() > deadline {
                    break;
                }
            }
        });
        (addr, h)
    }

    fn cfg(target: SocketAddrV4, mode: Mode, rate: Option<f64>) -> TcpGenConfig {
        TcpGenConfig {
            target,
            source: Ipv4Addr::LOCALHOST,
            conns: 4,
            window: 2,
            size: 300,
            duration: Duration::from_millis(400),
            threads: 2,
            mode,
            rate,
        }
    }

    #[test]
    fn closed_loop_rr_gets_intact_echoes() {
        let (addr, _h) = echo_server();
        let r = run(&cfg(addr, Mode::Rr, None)).unwrap();
        assert!(r.ok > 50, "{r:?}");
        assert_eq!((r.mismatched, r.errors, r.connects), (0, 0, 4), "{r:?}");
        assert!(r.latency_us.len() == r.ok);
    }

    #[test]
    fn open_loop_issues_about_the_rate_and_crr_connects_per_request() {
        let (addr, _h) = echo_server();
        let r = run(&cfg(addr, Mode::Rr, Some(2000.0))).unwrap();
        // 0.4 s at 2000/s: about 800, give or take start-up and the tick.
        assert!((600..=820).contains(&r.ok), "{r:?}");
        assert_eq!(r.mismatched, 0);
        let r = run(&cfg(addr, Mode::Crr, None)).unwrap();
        assert!(r.ok > 20, "{r:?}");
        assert!(r.connects >= r.ok, "a connection per request: {r:?}");
        assert_eq!(r.mismatched, 0, "{r:?}");
    }

    #[test]
    fn refuses_addresses_outside_the_lab() {
        let mut c = cfg(SocketAddrV4::new(Ipv4Addr::new(8, 8, 8, 8), 7), Mode::Rr, None);
        assert!(c.validate().unwrap_err().contains("198.18.0.0/15"));
        c.target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7);
        c.size = 2;
        assert!(c.validate().is_err());
    }
}
