//! Closed-loop kernel-socket UDP load generator.
//!
//! [`run`] opens `flows` UDP sockets (each bound to `source:0` and connected to `target`),
//! spreads them over `threads` threads, and keeps `window` requests outstanding on every
//! socket with `sendmmsg`/`recvmmsg` on non-blocking sockets and `ppoll`. Each request's
//! payload carries its sequence number and a pattern derived from it ([`fill_payload`]);
//! every reply is checked byte for byte ([`verify_payload`]). The run ends at `duration`
//! exactly (waits are bounded by the time left); requests still outstanding then are lost.
//!
//! To load a lab, call [`run`] inside `sluice_lab::Lab::run_in(&lab.client_ns, ...)`.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use crate::kernel_echo::{allowed_addr, mmsg::MmsgBatch};

/// Smallest payload: the 8-byte sequence number.
pub const MIN_PAYLOAD: usize = 8;

/// Largest UDP payload over IPv4.
pub const MAX_PAYLOAD: usize = 65_507;

/// Largest window (outstanding requests per socket).
pub const MAX_WINDOW: usize = 65_536;

/// A request without a reply for this long is given up (counted in `expired` and `lost`)
/// so that a lost datagram does not shrink the window for the rest of the run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest single wait in `ppoll`, so the loop also expires requests while idle.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// Most datagrams per `sendmmsg`/`recvmmsg` call.
const IO_BATCH: usize = 64;

/// Highest latency the histogram tracks exactly, in µs (larger values saturate).
const MAX_LATENCY_US: u64 = 60_000_000;

/// What to send, from where, to where, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    /// The echo server (lab range 198.18.0.0/15, or loopback).
    pub target: SocketAddrV4,
    /// Local address the sockets bind to (same kind as `target`: lab or loopback).
    pub source: Ipv4Addr,
    /// Number of source sockets (= source ports = flows).
    pub flows: u16,
    /// Requests kept outstanding per socket.
    pub window: usize,
    /// UDP payload length of each request, `MIN_PAYLOAD..=MAX_PAYLOAD`.
    pub payload_len: usize,
    /// How long to run.
    pub duration: Duration,
    /// Threads; each owns about `flows / threads` sockets (capped at `flows`).
    pub threads: usize,
}

/// The outcome of a run. `sent == answered() + lost` and
/// `received == answered() + late + mismatched`.
#[derive(Debug, Clone)]
pub struct GenReport {
    /// Requests sent.
    pub sent: u64,
    /// Datagrams received (valid or not).
    pub received: u64,
    /// Replies whose payload did not match any request byte for byte (wrong length,
    /// corrupted pattern, or a sequence number never sent).
    pub mismatched: u64,
    /// Correct replies to requests that were already answered or given up.
    pub late: u64,
    /// Requests given up after [`REQUEST_TIMEOUT`] during the run.
    pub expired: u64,
    /// Requests still outstanding when the run ended.
    pub outstanding_at_end: u64,
    /// Requests never answered in time: `expired + outstanding_at_end`.
    pub lost: u64,
    /// Send calls that failed (other than "would block").
    pub send_errors: u64,
    /// Receive calls that failed (other than "would block"), e.g. ICMP port unreachable.
    pub recv_errors: u64,
    /// Request→reply latency of answered requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Time from the start of sending to the end of the run.
    pub elapsed: Duration,
    /// Number of sockets used.
    pub flows: u16,
    /// Number of threads used.
    pub threads: usize,
}

impl GenReport {
    /// Requests answered with a correct reply in time.
    pub fn answered(&self) -> u64 {
        self.sent.saturating_sub(self.lost)
    }

    /// Answered requests per second over [`GenReport::elapsed`].
    pub fn answered_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.answered() as f64 / secs
        } else {
            0.0
        }
    }
}

impl GenConfig {
    /// Checks the configuration; [`run`] calls this before opening any socket.
    pub fn validate(&self) -> io::Result<()> {
        self.check_addresses()?;
        check_range("flows", usize::from(self.flows), 1, usize::from(u16::MAX))?;
        check_range("threads", self.threads, 1, usize::from(u16::MAX))?;
        check_range("window", self.window, 1, MAX_WINDOW)?;
        check_range("payload_len", self.payload_len, MIN_PAYLOAD, MAX_PAYLOAD)?;
        if self.duration.is_zero() || Instant::now().checked_add(self.duration).is_none() {
            return Err(invalid(format!("duration {:?} must be positive and representable", self.duration)));
        }
        Ok(())
    }

    fn check_addresses(&self) -> io::Result<()> {
        let (target, source) = (*self.target.ip(), self.source);
        if !allowed_addr(target) || !allowed_addr(source) {
            return Err(invalid(format!(
                "refusing to send from {source} to {target}: both must be in the lab range \
                 198.18.0.0/15 (or both on loopback)"
            )));
        }
        if target.is_loopback() != source.is_loopback() {
            return Err(invalid(format!(
                "source {source} and target {target} must both be lab or both be loopback \
                 addresses"
            )));
        }
        if self.target.port() == 0 {
            return Err(invalid("target port is 0".to_string()));
        }
        Ok(())
    }
}

/// Runs the closed-loop load described by `cfg` and reports what happened.
pub fn run(cfg: &GenConfig) -> io::Result<GenReport> {
    cfg.validate()?;
    let threads = cfg.threads.min(usize::from(cfg.flows));
    let groups = open_flows(cfg, threads)?;
    let start = Instant::now();
    let deadline = start.checked_add(cfg.duration).ok_or_else(|| invalid("duration too long".to_string()))?;
    let reports = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for (index, flows) in groups.into_iter().enumerate() {
            let handle = std::thread::Builder::new()
                .name(format!("kgen-{index}"))
                .spawn_scoped(scope, move || run_thread(cfg, flows, deadline))?;
            handles.push(handle);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("thread panicked"))))
            .collect::<io::Result<Vec<ThreadReport>>>()
    })?;
    merge(cfg, threads, start.elapsed(), reports)
}

/// Writes the request payload for sequence number `seq` of flow `flow` into `buf`: the
/// sequence number (little endian) followed by a pattern derived from `flow` and `seq`.
/// Buffers shorter than [`MIN_PAYLOAD`] get a truncated sequence number.
pub fn fill_payload(buf: &mut [u8], flow: u16, seq: u64) {
    let head = buf.len().min(MIN_PAYLOAD);
    buf[..head].copy_from_slice(&seq.to_le_bytes()[..head]);
    let key = pattern_key(flow, seq);
    for (i, byte) in buf.iter_mut().enumerate().skip(MIN_PAYLOAD) {
        *byte = pattern_byte(key, i);
    }
}

/// Checks a reply of flow `flow` byte for byte; returns its sequence number when it is
/// exactly what [`fill_payload`] wrote for that sequence number and `expected_len` bytes.
pub fn verify_payload(reply: &[u8], flow: u16, expected_len: usize) -> Option<u64> {
    if reply.len() != expected_len || reply.len() < MIN_PAYLOAD {
        return None;
    }
    let seq = u64::from_le_bytes(reply[..MIN_PAYLOAD].try_into().ok()?);
    let key = pattern_key(flow, seq);
    let ok = reply.iter().enumerate().skip(MIN_PAYLOAD).all(|(i, b)| *b == pattern_byte(key, i));
    ok.then_some(seq)
}

fn pattern_key(flow: u16, seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(flow) << 48) ^ 0x5A5A_5A5A
}

fn pattern_byte(key: u64, i: usize) -> u8 {
    (key >> ((i % 8) * 8)) as u8 ^ (i as u8)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn check_range(what: &str, value: usize, min: usize, max: usize) -> io::Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(format!("{what} is {value}; it must be between {min} and {max}")))
    }
}

/// One request in flight (or answered but not yet popped from the front).
#[derive(Debug, Clone, Copy)]
struct Slot {
    sent_at: Instant,
    answered: bool,
}

/// One socket and its window. `slots[k]` is request `base_seq + k`; the deque holds every
/// sequence number from `base_seq` to `next_seq - 1`.
#[derive(Debug)]
struct Flow {
    socket: UdpSocket,
    id: u16,
    next_seq: u64,
    base_seq: u64,
    slots: VecDeque<Slot>,
    outstanding: usize,
    send_blocked: bool,
}

/// Counters of one thread.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sent: u64,
    received: u64,
    mismatched: u64,
    late: u64,
    expired: u64,
    outstanding_at_end: u64,
    send_errors: u64,
    recv_errors: u64,
}

struct ThreadReport {
    counts: Counts,
    latency_us: Histogram<u64>,
}

/// Opens all sockets up front (in the calling thread, hence its namespace) and deals them
/// round-robin to `threads` groups.
fn open_flows(cfg: &GenConfig, threads: usize) -> io::Result<Vec<Vec<Flow>>> {
    let mut groups: Vec<Vec<Flow>> = (0..threads).map(|_| Vec::new()).collect();
    for id in 0..cfg.flows {
        let socket = UdpSocket::bind(SocketAddrV4::new(cfg.source, 0))?;
        socket.connect(cfg.target)?;
        socket.set_nonblocking(true)?;
        let flow = Flow {
            socket,
            id,
            next_seq: 0,
            base_seq: 0,
            slots: VecDeque::with_capacity(cfg.window),
            outstanding: 0,
            send_blocked: false,
        };
        groups[usize::from(id) % threads].push(flow);
    }
    Ok(groups)
}

fn new_histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| io::Error::other(e.to_string()))
}

/// The loop of one thread: expire, refill windows, wait, drain replies; until `deadline`.
fn run_thread(cfg: &GenConfig, mut flows: Vec<Flow>, deadline: Instant) -> io::Result<ThreadReport> {
    let batch = cfg.window.min(IO_BATCH);
    let mut tx = MmsgBatch::new(batch, cfg.payload_len);
    let mut rx = MmsgBatch::new(batch, cfg.payload_len + 1);
    let mut counts = Counts::default();
    let mut latency_us = new_histogram()?;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        for flow in &mut flows {
            expire(flow, now, &mut counts);
            fill_window(flow, cfg, &mut tx, &mut counts);
        }
        let ready = wait(&mut flows, deadline - now)?;
        for index in ready {
            drain(&mut flows[index], cfg, &mut rx, &mut counts, &mut latency_us);
        }
    }
    counts.outstanding_at_end = flows.iter().map(|f| f.outstanding as u64).sum();
    Ok(ThreadReport { counts, latency_us })
}

/// Gives up requests older than [`REQUEST_TIMEOUT`] and pops answered ones from the front.
fn expire(flow: &mut Flow, now: Instant, counts: &mut Counts) {
    while let Some(front) = flow.slots.front() {
        if !front.answered {
            if now.saturating_duration_since(front.sent_at) < REQUEST_TIMEOUT {
                break;
            }
            flow.outstanding -= 1;
            counts.expired += 1;
        }
        flow.slots.pop_front();
        flow.base_seq += 1;
    }
}

/// Sends requests until `window` are outstanding or the socket would block.
fn fill_window(flow: &mut Flow, cfg: &GenConfig, tx: &mut MmsgBatch, counts: &mut Counts) {
    while flow.outstanding < cfg.window {
        let count = (cfg.window - flow.outstanding).min(tx.capacity());
        for j in 0..count {
            fill_payload(tx.slot_mut(j), flow.id, flow.next_seq + j as u64);
            tx.set_len(j, cfg.payload_len);
        }
        let sent_at = Instant::now();
        match tx.send(flow.socket.as_fd(), 0..count, false) {
            Ok(sent) => {
                record_sent(flow, sent, sent_at, counts);
                if sent < count {
                    flow.send_blocked = true;
                    return;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                flow.send_blocked = true;
                return;
            }
            Err(_) => {
                counts.send_errors += 1;
                return;
            }
        }
    }
}

fn record_sent(flow: &mut Flow, sent: usize, sent_at: Instant, counts: &mut Counts) {
    let slot = Slot { sent_at, answered: false };
    flow.slots.extend(std::iter::repeat_n(slot, sent));
    flow.next_seq += sent as u64;
    flow.outstanding += sent;
    counts.sent += sent as u64;
}

/// Waits (at most `left`, at most [`POLL_SLICE`]) for replies or send space; returns the
/// indices of flows with something to read (or an error to collect).
fn wait(flows: &mut [Flow], left: Duration) -> io::Result<Vec<usize>> {
    let timeout = TimeSpec::from(left.min(POLL_SLICE));
    let mut fds: Vec<PollFd<'_>> = flows
        .iter()
        .map(|flow| {
            let mut events = PollFlags::POLLIN;
            if flow.send_blocked {
                events |= PollFlags::POLLOUT;
            }
            PollFd::new(flow.socket.as_fd(), events)
        })
        .collect();
    match ppoll(&mut fds, Some(timeout), None) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(err) => return Err(err.into()),
    }
    let revents: Vec<PollFlags> = fds.iter().map(|fd| fd.revents().unwrap_or(PollFlags::empty())).collect();
    drop(fds);
    let mut ready = Vec::new();
    for (index, (flow, ev)) in flows.iter_mut().zip(revents).enumerate() {
        if ev.contains(PollFlags::POLLOUT) {
            flow.send_blocked = false;
        }
        if ev.intersects(PollFlags::POLLIN | PollFlags::POLLERR) {
            ready.push(index);
        }
    }
    Ok(ready)
}

/// Receives every queued reply of `flow` and accounts for each.
fn drain(flow: &mut Flow, cfg: &GenConfig, rx: &mut MmsgBatch, counts: &mut Counts, latency_us: &mut Histogram<u64>) {
    loop {
        match rx.recv(flow.socket.as_fd(), libc::MSG_DONTWAIT) {
            Ok(n) => {
                let now = Instant::now();
                for j in 0..n {
                    let seq = if rx.truncated(j) { None } else { verify_payload(rx.data(j), flow.id, cfg.payload_len) };
                    account_reply(flow, seq, now, counts, latency_us);
                }
                if n < rx.capacity() {
                    return;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                counts.recv_errors += 1;
                return;
            }
        }
    }
}

/// Classifies one reply: `seq` is `None` when the payload did not verify.
fn account_reply(
    flow: &mut Flow,
    seq: Option<u64>,
    now: Instant,
    counts: &mut Counts,
    latency_us: &mut Histogram<u64>,
) {
    counts.received += 1;
    let Some(seq) = seq.filter(|s| *s < flow.next_seq) else {
        counts.mismatched += 1;
        return;
    };
    let slot = seq.checked_sub(flow.base_seq).and_then(|k| usize::try_from(k).ok()).and_then(|k| flow.slots.get_mut(k));
    match slot {
        Some(slot) if !slot.answered => {
            slot.answered = true;
            flow.outstanding -= 1;
            let us = now.saturating_duration_since(slot.sent_at).as_micros();
            latency_us.saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
        }
        _ => counts.late += 1,
    }
}

fn merge(cfg: &GenConfig, threads: usize, elapsed: Duration, reports: Vec<ThreadReport>) -> io::Result<GenReport> {
    let mut total = Counts::default();
    let mut latency_us = new_histogram()?;
    for report in reports {
        let c = report.counts;
        total.sent += c.sent;
        total.received += c.received;
        total.mismatched += c.mismatched;
        total.late += c.late;
        total.expired += c.expired;
        total.outstanding_at_end += c.outstanding_at_end;
        total.send_errors += c.send_errors;
        total.recv_errors += c.recv_errors;
        latency_us.add(&report.latency_us).map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(GenReport {
        sent: total.sent,
        received: total.received,
        mismatched: total.mismatched,
        late: total.late,
        expired: total.expired,
        outstanding_at_end: total.outstanding_at_end,
        lost: total.expired + total.outstanding_at_end,
        send_errors: total.send_errors,
        recv_errors: total.recv_errors,
        latency_us,
        elapsed,
        flows: cfg.flows,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_echo::KernelEchoServer;

    fn config(target: SocketAddrV4) -> GenConfig {
        GenConfig {
            target,
            source: *target.ip(),
            flows: 4,
            window: 8,
            payload_len: 64,
            duration: Duration::from_millis(300),
            threads: 2,
        }
    }

    fn assert_consistent(report: &GenReport) {
        eprintln!(
            "sent {} received {} answered {} lost {} late {} p50 {}us p99 {}us in {:?}",
            report.sent,
            report.received,
            report.answered(),
            report.lost,
            report.late,
            report.latency_us.value_at_quantile(0.5),
            report.latency_us.value_at_quantile(0.99),
            report.elapsed
        );
        assert!(report.received > 0, "{report:?}");
        assert_eq!(report.mismatched, 0, "{report:?}");
        assert_eq!(report.sent, report.answered() + report.lost, "{report:?}");
        assert_eq!(report.received, report.answered() + report.late + report.mismatched, "{report:?}");
        assert_eq!(report.latency_us.len(), report.answered(), "{report:?}");
    }

    #[test]
    fn generator_against_echo_server_on_loopback() {
        let server = KernelEchoServer::start(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), 2, 32).expect("echo");
        let cfg = config(server.local_addr());
        let report = run(&cfg).expect("run");
        let stats = server.stop();
        assert_consistent(&report);
        assert!(report.lost <= 4 * 8, "only the final windows may be lost: {report:?}");
        assert!(report.elapsed >= cfg.duration, "{report:?}");
        assert!(report.elapsed < cfg.duration + Duration::from_millis(200), "not bounded: {report:?}");
        assert!(stats.received_packets >= report.received, "{stats:?}");
        assert_eq!(report.threads, 2);
    }

    #[test]
    fn replies_are_checked_byte_for_byte() {
        let mut buf = vec![0u8; 100];
        fill_payload(&mut buf, 3, 12345);
        assert_eq!(verify_payload(&buf, 3, 100), Some(12345));
        assert_eq!(verify_payload(&buf, 4, 100), None, "other flow");
        assert_eq!(verify_payload(&buf[..99], 3, 100), None, "short");
        for i in [0, 7, 8, 50, 99] {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert_ne!(verify_payload(&bad, 3, 100), Some(12345), "flip at {i}");
        }
        let mut small = [0u8; 8];
        fill_payload(&mut small, 0, 7);
        assert_eq!(verify_payload(&small, 0, 8), Some(7));
        let mut tiny = [0u8; 3];
        fill_payload(&mut tiny, 0, 7); // must not panic
        assert_eq!(verify_payload(&tiny, 0, 3), None);
    }

    #[test]
    fn refuses_foreign_targets_and_bad_config() {
        let lab_target = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7);
        let mut cfg = config(lab_target);
        assert!(cfg.validate().is_ok());
        cfg.target = SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 53);
        let err = run(&cfg).expect_err("1.1.1.1 refused");
        assert!(err.to_string().contains("198.18.0.0/15"), "{err}");
        let mut cfg = config(lab_target);
        cfg.source = Ipv4Addr::new(192, 168, 0, 1);
        assert!(run(&cfg).is_err());
        let mut cfg = config(lab_target);
        cfg.source = Ipv4Addr::LOCALHOST;
        assert!(run(&cfg).is_err(), "mixed loopback and lab");
        for bad in [
            GenConfig { flows: 0, ..config(lab_target) },
            GenConfig { threads: 0, ..config(lab_target) },
            GenConfig { window: 0, ..config(lab_target) },
            GenConfig { payload_len: 7, ..config(lab_target) },
            GenConfig { payload_len: MAX_PAYLOAD + 1, ..config(lab_target) },
            GenConfig { duration: Duration::ZERO, ..config(lab_target) },
            GenConfig { duration: Duration::MAX, ..config(lab_target) },
            GenConfig { target: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 0), ..config(lab_target) },
        ] {
            let err = run(&bad).expect_err("invalid config accepted");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn unanswered_requests_are_lost_not_mismatched() {
        // A bound socket that never replies: everything sent stays outstanding.
        let sink = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let target = match sink.local_addr().expect("addr") {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other}"),
        };
        let cfg = GenConfig { duration: Duration::from_millis(50), threads: 1, ..config(target) };
        let report = run(&cfg).expect("run");
        assert_eq!(report.received, 0);
        assert_eq!(report.sent, 4 * 8, "exactly one window per flow: {report:?}");
        assert_eq!(report.lost, report.sent);
        assert_eq!(report.outstanding_at_end, report.sent);
    }

    #[test]
    fn echo_and_generator_in_a_lab() {
        if !sluice_lab::root_or_skip("echo_and_generator_in_a_lab") {
            return;
        }
        use sluice_lab::{current_netns, Lab, LabConfig, Side};
        let lab = Lab::up(LabConfig::unique("kbench").with_queues(2)).expect("lab");
        let bind = SocketAddrV4::new(lab.addr(Side::Server), 0);
        // The bench relies on threads spawned from a run_in thread staying in the namespace.
        let (server, inside, child) = Lab::run_in(&lab.server_ns, || {
            let inside = current_netns().expect("netns");
            let child = std::thread::spawn(current_netns).join().expect("join");
            (KernelEchoServer::start(bind, 2, 32), inside, child.expect("netns"))
        })
        .expect("run_in server");
        let server = server.expect("echo in lab");
        assert_eq!(inside, child, "spawned thread left the namespace");
        assert_ne!(inside, current_netns().expect("netns"));

        let cfg = GenConfig { source: lab.addr(Side::Client), ..config(server.local_addr()) };
        let report = Lab::run_in(&lab.client_ns, || run(&cfg)).expect("run_in client").expect("generator in lab");
        let stats = server.stop();
        assert_consistent(&report);
        assert!(stats.received_packets > 0 && stats.per_thread_packets.len() == 2);
        drop(lab);
    }
}
