//! The core's TCP stack against smoltcp, an independent TCP, in memory.
//!
//! A real [`TcpCore`] and [`Port`] run over the fake kernel's rings
//! ([`FakeKernel`]) on a simulated clock (µs); the peer is smoltcp on an
//! in-memory IP device. Between them a wire each way delays every packet by
//! [`DELAY`] and drops the ones a test's filter picks. What the peer sends
//! is framed in Ethernet to the service table's MAC and "received" by the
//! fake kernel into a frame from the fill ring; what the engine puts on the
//! tx ring is stripped of Ethernet and given to smoltcp. The fake kernel
//! completes every transmitted frame at once unless a test holds the
//! completions back (the frame stays on the tx ring meanwhile).
//!
//! One engine pass is what the worker's loop does: completions back to
//! their chunks, timers, the rx ring through `handle_frame` into
//! `TcpCore::input`, `TcpCore::flush`, then the port's flush and refill.
//!
//! The engine is 198.18.0.2 with an echo service on port 7; smoltcp is
//! 198.18.0.1 and connects from port 40000 on.
use super::{Input, Io, TcpCore, TcpSetup};
use crate::afxdp::fake::FakeKernel;
use crate::afxdp::{frames_leaked, Desc, FrameTable, Packet};
use crate::config::{Config, Proto};
use crate::datapath::{handle_frame, Arrival, Context, ServiceTable, TcpInput, Verdict};
use crate::ownership::OwnerDirectory;
use crate::pool::SharedFrames;
use crate::port::Port;
use crate::stats::{CoreStats, DropReason};
use crate::wire::ethernet::EthernetAddress;
use sluice_tcp::listener::Secrets;
use sluice_tcp::listener::Tuple;
use sluice_tcp::{TcpCounter, TcpDrop};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Packet, TcpPacket};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

const MS: u64 = 1000;
const S: u64 = 1_000_000;
/// One-way wire delay: a 10 ms RTT.
const DELAY: u64 = 5 * MS;
const ENGINE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const ENGINE_IP: [u8; 4] = [198, 18, 0, 2];
const PEER_IP: [u8; 4] = [198, 18, 0, 1];
const ECHO_PORT: u16 = 7;
const FIRST_PEER_PORT: u16 = 40000;
/// The core under test, and the other core of the ownership tests.
const CORE: u16 = 0;
const OTHER_CORE: u16 = 1;
/// The UMEM and the rings.
const FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 2048;
const RING: u32 = 512;
const BATCH: usize = 64;
/// Frames the fill ring never gets.
const RESERVE: usize = 1024;
/// Ethernet + IPv4 + TCP with the largest options: no data segment of
/// ours is this short.
const BARE_MAX: u32 = 14 + 20 + 60;

// ---------------------------------------------------------------------------
// Randomness and data.

/// splitmix64: the test data and the peer's write sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `n` random bytes (not periodic: misplaced data shows).
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    (0..n).map(|_| r.next() as u8).collect()
}

/// Byte for byte, reporting the first difference rather than dumping.
#[track_caller]
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: bytes differ at offset {i} ({} received, {} expected)", got.len(), want.len());
    }
    assert_eq!(got.len(), want.len(), "{what}: length");
}

// ---------------------------------------------------------------------------
// What went over a wire.

/// A packet's TCP header as smoltcp's parser reads it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    syn: bool,
    fin: bool,
    rst: bool,
    ack: Option<u32>,
    seq: u32,
    len: usize,
    src_port: u16,
    dst_port: u16,
}

impl Seen {
    /// An ACK with nothing else in it.
    fn pure_ack(&self) -> bool {
        self.ack.is_some() && !self.syn && !self.fin && !self.rst && self.len == 0
    }

    /// The peer's end of the connection.
    fn peer_port(&self) -> u16 {
        if self.src_port == ECHO_PORT {
            self.dst_port
        } else {
            self.src_port
        }
    }
}

/// Parses an IPv4 + TCP packet; panics on a bad checksum (neither side
/// sends one here).
#[track_caller]
fn seen(ip: &[u8]) -> Seen {
    let p = Ipv4Packet::new_checked(ip).expect("an IPv4 packet");
    assert!(p.verify_checksum(), "IPv4 checksum");
    let (src, dst) = (IpAddress::Ipv4(p.src_addr()), IpAddress::Ipv4(p.dst_addr()));
    let t = TcpPacket::new_checked(p.payload()).expect("a TCP segment");
    assert!(t.verify_checksum(&src, &dst), "TCP checksum");
    Seen {
        syn: t.syn(),
        fin: t.fin(),
        rst: t.rst(),
        ack: t.ack().then(|| t.ack_number().0 as u32),
        seq: t.seq_number().0 as u32,
        len: t.payload().len(),
        src_port: t.src_port(),
        dst_port: t.dst_port(),
    }
}

/// Decides whether a packet is lost.
type DropIf = Box<dyn FnMut(&Seen) -> bool>;

/// One direction: a fixed delay (so packets stay in order), a log of every
/// packet put on it, and a filter for the ones lost.
#[derive(Default)]
struct Wire {
    queue: VecDeque<(u64, Vec<u8>)>,
    log: Vec<(u64, Seen)>,
    drop_if: Option<DropIf>,
    dropped: u64,
}

impl Wire {
    fn push(&mut self, now: u64, ip: Vec<u8>) {
        let s = seen(&ip);
        self.log.push((now, s));
        if self.drop_if.as_mut().is_some_and(|f| f(&s)) {
            self.dropped += 1;
            return;
        }
        self.queue.push_back((now + DELAY, ip));
    }

    fn next_at(&self) -> Option<u64> {
        self.queue.front().map(|q| q.0)
    }

    fn take_due(&mut self, now: u64) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        while self.queue.front().is_some_and(|q| q.0 <= now) {
            due.extend(self.queue.pop_front().map(|q| q.1));
        }
        due
    }
}

// ---------------------------------------------------------------------------
// The engine's side.

fn config() -> Config {
    Config::parse(
        r#"
[engine]
interface = "sluice0"
[[service]]
name = "echo"
proto = "tcp"
listen = "198.18.0.2:7"
kind = "echo"
"#,
        "test",
    )
    .unwrap()
}

/// The stack's setup for [`config`], as the daemon makes it, with room for
/// `chunks` frames in the core's arena.
fn setup(chunks: u32) -> TcpSetup {
    setup_with(config(), chunks)
}

/// The stack's setup for `cfg`.
fn setup_with(cfg: Config, chunks: u32) -> TcpSetup {
    TcpSetup {
        settings: cfg.tcp.clone(),
        services: cfg
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| crate::tcp::ServiceSetup {
                id: i as u32,
                kind: s.kind,
                tcp: s.proto == Proto::Tcp,
                http: s.http.clone(),
            })
            .collect(),
        secrets: Secrets::from_random([11, 22, 33, 44, 55, 66, 77, 88]),
        local_mac: EthernetAddress(ENGINE_MAC),
        cookie_clock: Default::default(),
        rr: None,
        connections: 64,
        budget: crate::tcp::ConnBudget::new(64),
        time_waits: 64,
        chunks,
    }
}

/// One core: its port over the fake kernel, its TCP stack, and what the
/// worker's loop lends them.
struct Engine {
    shared: Arc<SharedFrames>,
    port: Port,
    kernel: FakeKernel,
    tcp: TcpCore,
    services: ServiceTable,
    owners: OwnerDirectory,
    stats: CoreStats,
    ip_id: Cell<u16>,
    rx: Vec<Packet>,
    /// Hold completions back: what the engine transmits is taken off the
    /// tx ring but not completed (and not delivered: lost on the wire).
    hold: bool,
    held: Vec<Desc>,
    /// Frames the fake kernel had no room for.
    rx_missed: u64,
    /// Verdicts other than `Tcp` (each frame was freed).
    others: Vec<Verdict>,
    /// Owners `TcpCore::input` handed a packet to (each frame was freed).
    handed_off: Vec<u16>,
}

impl Engine {
    fn new(setup: &TcpSetup, now: u64) -> Engine {
        let table = FrameTable::create(FRAMES, FRAME_SIZE).unwrap();
        let shared = SharedFrames::new(table.clone());
        let pool = shared.split(1).pop().unwrap();
        let (sock, kernel) = FakeKernel::socket(&table, CORE as u32, RING);
        let mut port = Port::new(sock, pool, BATCH);
        // The fake kernel stocks whatever the fill ring offers (a real one
        // holds at most a ring's worth): the reserve keeps frames to send
        // with on the free list.
        port.pool_mut().set_reserve(RESERVE);
        port.refill(0);
        let mut services = ServiceTable::from_config(&config());
        services.set_mac(EthernetAddress(ENGINE_MAC));
        Engine {
            // Its own budget: engines made from one setup are separate machines.
            tcp: TcpCore::new(
                CORE,
                &TcpSetup { budget: crate::tcp::ConnBudget::new(setup.connections), ..setup.clone() },
                table,
                now,
            ),
            shared,
            port,
            kernel,
            services,
            owners: OwnerDirectory::new(1024, 30, 7),
            stats: CoreStats::default(),
            ip_id: Cell::new(1),
            rx: Vec::with_capacity(BATCH),
            hold: false,
            held: Vec::new(),
            rx_missed: 0,
            others: Vec::new(),
            handed_off: Vec::new(),
        }
    }

    /// Completions back to their chunks (or the free list).
    fn reap(&mut self) {
        let Engine { port, tcp, .. } = self;
        let (_, bad) = port.reap(|f, route| tcp.restore(f, route));
        assert_eq!(bad, 0, "completions for frames the port had not sent");
    }

    /// One pass of the worker's loop; returns the packets received.
    fn pass(&mut self, now: u64) -> usize {
        self.reap();
        let Engine { port, tcp, owners, ip_id, .. } = self;
        tcp.tick(&mut Io { port, owners, ip_id }, now);
        let mut rx = std::mem::take(&mut self.rx);
        let b = self.port.receive(&mut rx);
        for p in rx.drain(..) {
            self.handle(p, now);
        }
        self.rx = rx;
        let Engine { port, tcp, owners, ip_id, .. } = self;
        tcp.flush(&mut Io { port, owners, ip_id }, now);
        self.port.flush(None);
        self.port.refill(b.descs);
        b.descs
    }

    /// The datapath's view of this core at `now`.
    fn context(&self, now: u64) -> Context<'_> {
        Context {
            services: &self.services,
            owners: &self.owners,
            core: CORE,
            now_us: now,
            stats: &self.stats,
            ip_id: &self.ip_id,
        }
    }

    /// `ip` received and checked by the datapath as on this core, then
    /// another core pins its flow before the stack sees it (the race
    /// between the datapath's look and the stack's): what the stack does.
    fn input_raced_by_other_core(&mut self, ip: &[u8], now: u64) -> (Input, TcpInput) {
        self.deliver(ip, now);
        let mut rx = Vec::new();
        assert_eq!(self.port.receive(&mut rx).descs, 1);
        let mut p = rx.pop().unwrap();
        let table = self.port.table().clone();
        let m = {
            let cx = self.context(now);
            match handle_frame(table.packet_mut(&mut p).unwrap(), Arrival::Rx, &cx) {
                Verdict::Tcp(m) => m,
                v => panic!("not for TCP: {v:?}"),
            }
        };
        self.owners.pin(&m.flow(), OTHER_CORE, now / S).unwrap();
        let Engine { port, tcp, owners, ip_id, .. } = self;
        (tcp.input(&mut Io { port, owners, ip_id }, p, &m, now), m)
    }

    /// A received packet through the datapath's checks into the stack.
    fn handle(&mut self, mut p: Packet, now: u64) {
        let table = self.port.table().clone();
        let verdict = {
            let cx = self.context(now);
            match table.packet_mut(&mut p) {
                Some(bytes) => handle_frame(bytes, Arrival::Rx, &cx),
                None => Verdict::Drop(DropReason::BadDescriptor),
            }
        };
        match verdict {
            Verdict::Tcp(m) => {
                let Engine { port, tcp, owners, ip_id, .. } = self;
                if let Input::HandOff(owner, p) = tcp.input(&mut Io { port, owners, ip_id }, p, &m, now) {
                    self.handed_off.push(owner);
                    self.port.free(p.into_frame());
                }
            }
            v => {
                self.others.push(v);
                self.port.free(p.into_frame());
            }
        }
    }

    /// "Receives" an IPv4 packet from the peer, in an Ethernet frame to
    /// the service table's MAC.
    fn deliver(&mut self, ip: &[u8], now: u64) {
        let mut f = Vec::with_capacity(14 + ip.len());
        f.extend_from_slice(&self.services.mac().0);
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(ip);
        if !self.kernel.deliver(&f) {
            // The rx ring is full or the fill ring empty: a pass makes room.
            self.pass(now);
            if !self.kernel.deliver(&f) {
                self.rx_missed += 1;
            }
        }
    }

    /// What the engine put on the tx ring, as IPv4 packets: completed at
    /// once, or (holding) kept on the ring and lost.
    fn transmit(&mut self) -> Vec<Vec<u8>> {
        if self.hold {
            let d = self.kernel.take_sent_descs();
            self.held.extend(d);
            return Vec::new();
        }
        let frames = self.kernel.take_sent(true);
        frames
            .into_iter()
            .map(|f| {
                assert!(f.len() > 14, "a frame of {} bytes", f.len());
                assert_eq!((&f[..6], &f[6..12], &f[12..14]), (&PEER_MAC[..], &ENGINE_MAC[..], &[8u8, 0][..]));
                f[14..].to_vec()
            })
            .collect()
    }

    /// The held completions come back.
    fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        for chunk in held.chunks(RING as usize / 2) {
            let addrs: Vec<u64> = chunk.iter().map(|d| d.addr).collect();
            self.kernel.complete(&addrs);
            self.reap();
        }
    }

    /// Frames by place agree with the frame table's census.
    #[track_caller]
    fn assert_census(&self) {
        let f = self.port.frames();
        let c = self.shared.table().census();
        assert_eq!(c.user, f.free + f.out + f.tx_backlog + self.shared.exchanged() as u32, "{c:?} {f:?}");
        assert_eq!((c.lent_rx, c.lent_tx), (f.lent_rx, f.lent_tx), "{c:?} {f:?}");
        assert_eq!(c.user + c.lent_rx + c.lent_tx, FRAMES, "{c:?}");
    }

    /// The owner directory's pins agree with the state kept for these
    /// flows (a connection, a TIME-WAIT entry, a SYN queue entry: one pin
    /// each, on this core), and a slot none of them keeps is free.
    #[track_caller]
    fn assert_pins(&self, tuples: &[Tuple]) {
        let mut kept: HashMap<usize, u64> = HashMap::new();
        for t in tuples {
            let flow = crate::datapath::tcp::flow_of(t);
            let n = u64::from(self.tcp.table.find(t).is_some())
                + u64::from(self.tcp.tw.find(t).is_some())
                + self.tcp.listeners.iter().flatten().filter(|l| l.listener.holds(t)).count() as u64;
            *kept.entry(self.owners.slot_index(&flow).unwrap()).or_default() += n;
        }
        for t in tuples {
            let flow = crate::datapath::tcp::flow_of(t);
            let n = kept[&self.owners.slot_index(&flow).unwrap()];
            let state = self.owners.slot_state(&flow);
            if n == 0 {
                assert_eq!(state, None, "{t:?}: nothing kept, yet the slot is held");
            } else {
                assert_eq!(state, Some((CORE, n)), "{t:?}: {n} pins expected");
            }
        }
    }

    /// Every frame is back: none out of the port's hands, none held by a
    /// connection, none on the tx ring; the census agrees.
    #[track_caller]
    fn assert_frames_home(&self) {
        let f = self.port.frames();
        assert_eq!((f.out, f.tx_backlog, f.lent_tx), (0, 0, 0), "frames by place: {f:?}");
        assert_eq!(self.tcp.frames_held(), 0);
        self.assert_census();
    }

    fn counter(&self, c: TcpCounter) -> u64 {
        self.tcp.stats().counter(c)
    }

    fn drops(&self, d: TcpDrop) -> u64 {
        self.tcp.stats().drops(d)
    }

    fn describe(&self) -> String {
        let counters: Vec<_> =
            TcpCounter::ALL.iter().filter(|c| self.counter(**c) > 0).map(|c| (c.name(), self.counter(*c))).collect();
        let drops: Vec<_> =
            TcpDrop::ALL.iter().filter(|d| self.drops(**d) > 0).map(|d| (d.name(), self.drops(*d))).collect();
        let conns: Vec<String> = self
            .tcp
            .table
            .ids()
            .filter_map(|id| self.tcp.table.peek(id))
            .map(|s| {
                let c = &s.conn;
                format!(
                    "{} {}: rcvq {} chunks/{} B, sndq {} chunks/{} B",
                    s.tuple.remote_port,
                    c.state().name(),
                    c.recv_queue().count(),
                    c.recv_queue().bytes(),
                    c.send_queue().count(),
                    c.send_queued()
                )
            })
            .collect();
        format!(
            "engine: {} connections {conns:?}, {} frames held, {:?}, {:?}; counters {counters:?}; drops {drops:?}",
            self.tcp.connections(),
            self.tcp.frames_held(),
            self.port.frames(),
            self.tcp.emit_counts(),
        )
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // What connections still hold goes back before the stack goes (a
        // dropped frame token counts as leaked).
        self.hold = false;
        self.release();
        let Engine { port, tcp, owners, ip_id, .. } = self;
        tcp.free_all(&mut Io { port, owners, ip_id }, 0);
        self.reap();
        for p in self.rx.drain(..) {
            self.port.free(p.into_frame());
        }
    }
}

// ---------------------------------------------------------------------------
// smoltcp's side.

thread_local! {
    /// The simulated clock, µs, for smoltcp's timestamp generator (a plain
    /// `fn() -> u32`). Each test runs on its own thread.
    static NOW: Cell<u64> = const { Cell::new(0) };
}

fn smol_tsval() -> u32 {
    (NOW.with(|n| n.get()) / 1000) as u32
}

/// The in-memory device: what the wire delivered, what smoltcp sent.
struct Dev {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct RxTok(Vec<u8>);
struct TxTok<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl Device for Dev {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _t: Instant) -> Option<(RxTok, TxTok<'_>)> {
        let p = self.rx.pop_front()?;
        Some((RxTok(p), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _t: Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1500;
        c.checksum = ChecksumCapabilities::default();
        c
    }
}

/// One of smoltcp's connections and its application: it writes `to_send`
/// in pieces of random size, reads everything, and closes once all it sent
/// came back (when asked to).
struct PeerConn {
    h: SocketHandle,
    port: u16,
    to_send: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    close_when_echoed: bool,
    closed: bool,
    rng: Rng,
    /// Writes at most one piece of 1..=N bytes a turn (Nagle off), so each
    /// goes out as a segment of its own: a peer typing small writes.
    trickle: Option<usize>,
    /// Reads nothing until it has sent everything.
    read_after_sending: bool,
}

struct Peer {
    iface: Interface,
    dev: Dev,
    sockets: SocketSet<'static>,
    conns: Vec<PeerConn>,
}

impl Peer {
    fn new(now: u64, seed: u64) -> Peer {
        let mut dev = Dev { rx: VecDeque::new(), tx: Vec::new() };
        let mut config = IfaceConfig::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut dev, Instant::from_micros(now as i64));
        iface.update_ip_addrs(|a| {
            let [a0, a1, a2, a3] = PEER_IP;
            a.push(IpCidr::new(IpAddress::v4(a0, a1, a2, a3), 24)).unwrap();
        });
        Peer { iface, dev, sockets: SocketSet::new(vec![]), conns: Vec::new() }
    }

    /// Opens a connection to the echo service; returns its index.
    fn connect(&mut self, to_send: Vec<u8>, close_when_echoed: bool, seed: u64) -> usize {
        let port = FIRST_PEER_PORT + self.conns.len() as u16;
        self.connect_from(port, to_send, close_when_echoed, seed)
    }

    /// A connection from this local port (one whose earlier connection has
    /// closed, say).
    fn connect_from(&mut self, port: u16, to_send: Vec<u8>, close_when_echoed: bool, seed: u64) -> usize {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; 256 * 1024]),
            tcp::SocketBuffer::new(vec![0u8; 256 * 1024]),
        );
        s.set_tsval_generator(Some(smol_tsval));
        let [a0, a1, a2, a3] = ENGINE_IP;
        s.connect(self.iface.context(), (IpAddress::v4(a0, a1, a2, a3), ECHO_PORT), port).unwrap();
        let h = self.sockets.add(s);
        self.conns.push(PeerConn {
            h,
            port,
            to_send,
            sent: 0,
            received: Vec::new(),
            close_when_echoed,
            closed: false,
            rng: Rng(seed),
            trickle: None,
            read_after_sending: false,
        });
        self.conns.len() - 1
    }

    fn state(&self, i: usize) -> tcp::State {
        self.sockets.get::<tcp::Socket>(self.conns[i].h).state()
    }

    /// Whether connection `i` is done: closed, or waiting out TIME-WAIT.
    fn finished(&self, i: usize) -> bool {
        matches!(self.state(i), tcp::State::Closed | tcp::State::TimeWait)
    }

    fn poll(&mut self, now: u64) {
        self.iface.poll(Instant::from_micros(now as i64), &mut self.dev, &mut self.sockets);
    }

    fn poll_at(&mut self, now: u64) -> Option<u64> {
        self.iface.poll_at(Instant::from_micros(now as i64), &self.sockets).map(|t| t.total_micros().max(0) as u64)
    }

    /// The applications' turn.
    fn app(&mut self) {
        for c in &mut self.conns {
            let s = self.sockets.get_mut::<tcp::Socket>(c.h);
            let may_read = !c.read_after_sending || c.sent == c.to_send.len();
            while may_read && s.can_recv() {
                let got = s.recv(|b| (b.len(), b.to_vec())).unwrap();
                if got.is_empty() {
                    break;
                }
                c.received.extend_from_slice(&got);
            }
            s.set_nagle_enabled(c.trickle.is_none());
            while c.sent < c.to_send.len() && s.can_send() {
                let piece = 1 + c.rng.below(c.trickle.unwrap_or(4000) as u64) as usize;
                let end = (c.sent + piece).min(c.to_send.len());
                let n = s.send_slice(&c.to_send[c.sent..end]).unwrap();
                if n == 0 || c.trickle.is_some() {
                    c.sent += n;
                    break;
                }
                c.sent += n;
            }
            let echoed = c.sent == c.to_send.len() && c.received.len() >= c.to_send.len();
            if c.close_when_echoed && !c.closed && echoed && s.may_send() {
                s.close();
                c.closed = true;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The world.

struct World {
    now: u64,
    engine: Engine,
    peer: Peer,
    /// smoltcp → engine.
    to_engine: Wire,
    /// engine → smoltcp.
    to_peer: Wire,
    steps: u64,
}

impl World {
    fn new(setup: &TcpSetup, seed: u64) -> World {
        let now = S;
        NOW.with(|n| n.set(now));
        World {
            now,
            engine: Engine::new(setup, now),
            peer: Peer::new(now, seed),
            to_engine: Wire::default(),
            to_peer: Wire::default(),
            steps: 0,
        }
    }

    /// A world whose engine's arena holds plenty of frames.
    fn roomy(seed: u64) -> World {
        World::new(&setup(2048), seed)
    }

    /// The engine's passes, then smoltcp's turn; what each sent goes on
    /// its wire.
    fn service(&mut self) {
        self.engine_passes();
        self.exchange();
    }

    /// Engine passes until the rx ring is empty.
    fn engine_passes(&mut self) {
        while self.engine.pass(self.now) == BATCH {}
    }

    /// What the engine transmitted goes on the wire, then smoltcp's turn.
    fn exchange(&mut self) {
        let now = self.now;
        for ip in self.engine.transmit() {
            self.to_peer.push(now, ip);
        }
        self.peer.poll(now);
        self.peer.app();
        self.peer.poll(now);
        for ip in std::mem::take(&mut self.peer.dev.tx) {
            self.to_engine.push(now, ip);
        }
    }

    fn next_event(&mut self) -> Option<u64> {
        let now = self.now;
        // A core with a refused transmission comes back within a
        // millisecond (as the worker's sleep does).
        let retry = (self.engine.tcp.has_blocked() || self.engine.port.tx_pending()).then_some(now + MS);
        [
            self.to_engine.next_at(),
            self.to_peer.next_at(),
            self.peer.poll_at(now),
            self.engine.tcp.next_deadline(),
            retry,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn step(&mut self) -> bool {
        let more = self.advance();
        if more {
            self.service();
        }
        more
    }

    /// To the next event: the clock moves and what is due is delivered.
    fn advance(&mut self) -> bool {
        let Some(t) = self.next_event() else { return false };
        self.steps += 1;
        assert!(self.steps < 2_000_000, "runaway simulation at {} ms", self.now / MS);
        self.now = t.max(self.now + 1);
        let now = self.now;
        NOW.with(|n| n.set(now));
        for ip in self.to_engine.take_due(now) {
            self.engine.deliver(&ip, now);
        }
        for ip in self.to_peer.take_due(now) {
            self.peer.dev.rx.push_back(ip);
        }
        true
    }

    /// Steps until `done` or `limit` µs passed; whether `done` held.
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&World) -> bool) -> bool {
        let end = self.now + limit;
        self.service();
        while self.now < end {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    /// Runs until every one of the peer's connections finished and the
    /// engine holds none; then lets the last completions come back.
    #[track_caller]
    fn run_to_close(&mut self, limit: u64) {
        let n = self.peer.conns.len();
        let ok = self.run_until(limit, |w| (0..n).all(|i| w.peer.finished(i)) && w.engine.tcp.connections() == 0);
        assert!(ok, "not closed: {}", self.describe());
        self.quiesce();
    }

    /// Engine passes at the current time until nothing is on the tx ring or
    /// waits for a completion.
    fn quiesce(&mut self) {
        for _ in 0..16 {
            self.engine.pass(self.now);
            let sent = self.engine.transmit();
            let idle = sent.is_empty() && self.engine.port.frames().lent_tx == 0;
            for ip in sent {
                self.to_peer.push(self.now, ip);
            }
            if idle {
                return;
            }
        }
    }

    /// Data segments the engine put on the wire.
    fn engine_data_segments(&self) -> usize {
        self.to_peer.log.iter().filter(|(_, s)| s.len > 0).count()
    }

    fn describe(&self) -> String {
        let peers: Vec<_> = (0..self.peer.conns.len())
            .map(|i| {
                let c = &self.peer.conns[i];
                format!(
                    "{}: {} sent {}/{} rcvd {}",
                    c.port,
                    self.peer.state(i),
                    c.sent,
                    c.to_send.len(),
                    c.received.len()
                )
            })
            .collect();
        format!(
            "t={} ms; peers [{}]; wire to engine {} packets ({} dropped), to peer {} ({} dropped); {}",
            self.now / MS,
            peers.join(", "),
            self.to_engine.log.len(),
            self.to_engine.dropped,
            self.to_peer.log.len(),
            self.to_peer.dropped,
            self.engine.describe(),
        )
    }
}

/// Every packet the engine received was a TCP segment for it, and none
/// went to another core.
#[track_caller]
fn assert_all_tcp(w: &World) {
    assert!(w.engine.others.is_empty(), "not for TCP: {:?}", w.engine.others);
    assert!(w.engine.handed_off.is_empty(), "handed off to {:?}", w.engine.handed_off);
    assert_eq!(w.engine.rx_missed, 0, "frames the fake kernel had no room for");
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn a_mebibyte_echoed_in_random_writes_comes_back_whole_and_every_frame_comes_home() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut w = World::roomy(1);
    let body = data(1 << 20, 1);
    w.peer.connect(body.clone(), true, 1);
    w.run_to_close(60 * S);
    assert_same("echo", &w.peer.conns[0].received, &body);
    assert_all_tcp(&w);
    let e = &w.engine;
    assert_eq!(e.port.frames().out, 0, "{}", e.describe());
    e.assert_frames_home();
    assert_eq!(e.tcp.connections(), 0);
    assert_eq!(e.tcp.frames_held(), 0);
    assert_eq!((e.counter(TcpCounter::PassiveOpens), e.counter(TcpCounter::Closed)), (1, 1));
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

#[test]
fn echo_sends_from_the_received_frame_and_a_retransmission_waits_for_its_completion() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut w = World::roomy(2);
    let body = data(512 << 10, 2);
    w.peer.connect(body.clone(), true, 2);
    assert!(w.run_until(30 * S, |w| w.peer.conns[0].received.len() >= 128 << 10), "{}", w.describe());
    // Zero copy: most data segments left from the frame their payload came
    // in; what was copied is a small part of the bytes.
    let counts = w.engine.tcp.emit_counts();
    let segments = w.engine_data_segments() as u64;
    assert!(counts.zero_copy * 10 >= segments * 9, "{} of {segments} data segments zero copy", counts.zero_copy);
    assert!(counts.copied_bytes * 10 < (128 << 10), "{counts:?}");

    // From now on whatever the engine transmits is lost on the wire and
    // stays on the tx ring: its retransmission timer fires while the
    // frames of the data to retransmit have not come back.
    w.engine.hold = true;
    let rto = w.engine.counter(TcpCounter::RtoExpired);
    assert!(w.run_until(10 * S, |w| w.engine.counter(TcpCounter::RtoExpired) > rto), "{}", w.describe());
    let data_held = |e: &Engine| e.held.iter().filter(|d| d.len > BARE_MAX).count();
    let held_at_rto = data_held(&w.engine);
    assert!(held_at_rto > 0, "data segments went out before the timeout");
    assert!(w.engine.tcp.has_blocked(), "the retransmission is refused while its frame is out");
    // It stays refused while the completions are held (the core retries
    // every millisecond).
    let zero_copy = w.engine.tcp.emit_counts().zero_copy;
    w.run_until(50 * MS, |_| false);
    assert_eq!(data_held(&w.engine), held_at_rto, "a data segment was sent while its frame was on the tx ring");
    assert!(w.engine.tcp.has_blocked());
    assert_eq!(w.engine.tcp.emit_counts().zero_copy, zero_copy);

    // The completions come back: the next pass sends the retransmission,
    // from the same frame, starting at SND.UNA.
    let id = w.engine.tcp.table.ids().next().expect("the connection");
    let una = w.engine.tcp.table.peek(id).unwrap().conn.snd_una();
    w.engine.hold = false;
    w.engine.release();
    let logged = w.to_peer.log.len();
    w.service();
    let first = w.to_peer.log[logged..].iter().find(|(_, s)| s.len > 0).map(|(_, s)| *s);
    assert_eq!(first.map(|s| s.seq), Some(una.0), "the first data segment after the completions came back");
    assert!(w.engine.tcp.emit_counts().zero_copy > zero_copy, "{:?}", w.engine.tcp.emit_counts());
    assert!(w.engine.counter(TcpCounter::RetransRto) >= 1);

    w.run_to_close(120 * S);
    assert_same("echo", &w.peer.conns[0].received, &body);
    assert_all_tcp(&w);
    w.engine.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

#[test]
fn a_transfer_over_a_lossy_wire_completes_intact_and_the_engine_retransmits() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut w = World::roomy(3);
    // Deterministic loss each way: every 29th data segment and every 13th
    // pure ACK of the engine's, every 31st data segment and every 17th
    // pure ACK of the peer's.
    let lossy = |data_every: u64, ack_every: u64| -> DropIf {
        let (mut d, mut a) = (0u64, 0u64);
        Box::new(move |s: &Seen| {
            if s.len > 0 {
                d += 1;
                d % data_every == 7
            } else if s.pure_ack() {
                a += 1;
                a % ack_every == 5
            } else {
                false
            }
        })
    };
    w.to_peer.drop_if = Some(lossy(29, 13));
    w.to_engine.drop_if = Some(lossy(31, 17));
    let body = data(512 << 10, 3);
    w.peer.connect(body.clone(), true, 3);
    w.run_to_close(300 * S);
    assert_same("echo", &w.peer.conns[0].received, &body);
    assert!(w.to_peer.dropped > 0 && w.to_engine.dropped > 0);
    let e = &w.engine;
    let retrans =
        e.counter(TcpCounter::RetransFast) + e.counter(TcpCounter::RetransRto) + e.counter(TcpCounter::TlpProbes);
    assert!(retrans > 0, "{}", e.describe());
    assert!(e.counter(TcpCounter::OutOfOrder) > 0, "the peer's losses left holes: {}", e.describe());
    assert_all_tcp(&w);
    e.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

#[test]
fn a_segment_of_a_flow_another_core_pinned_is_handed_off_with_its_frame() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    // SYN cookies (no SYN queue entry) so the handshake claims nothing:
    // the ACK that completes it creates the connection.
    let mut s = setup(2048);
    s.settings.syn_backlog = 1;
    let mut w = World::new(&s, 4);
    w.peer.connect(Vec::new(), false, 4);
    // Run until the peer's ACK of the SYN-ACK is on its way, and keep it.
    let ok = w.run_until(5 * S, |w| w.to_engine.queue.iter().any(|(_, ip)| seen(ip).pure_ack()));
    assert!(ok, "{}", w.describe());
    let ack = w.to_engine.queue.pop_front().map(|q| q.1).unwrap();
    assert!(seen(&ack).pure_ack());
    assert_eq!(w.engine.counter(TcpCounter::SynCookiesSent), 1);
    // Meanwhile another core created the connection's state.
    let table = w.engine.port.table().clone();
    let (input, m) = w.engine.input_raced_by_other_core(&ack, w.now);
    let Input::HandOff(owner, mut p) = input else { panic!("not handed off") };
    let e = &mut w.engine;
    assert_eq!(owner, OTHER_CORE);
    assert_eq!(table.packet_mut(&mut p).unwrap()[14..], ack[..], "the packet is the segment, untouched");
    assert_eq!(e.tcp.connections(), 0, "no connection here");
    assert_eq!(e.port.frames().out, 1, "the packet is in hand");
    // Nor counted here: the owner counts the open when it accepts.
    assert_eq!(e.counter(TcpCounter::PassiveOpens), 0);
    assert_eq!(e.counter(TcpCounter::SynCookiesValid), 0);
    let flow = m.flow();
    assert_eq!(e.owners.slot_state(&flow), Some((OTHER_CORE, 1)), "and no pin of ours");
    // Should the owner hand it back (its state gone, the slot free), the
    // handshake completes once, and counts once.
    e.owners.unpin(&flow, OTHER_CORE, w.now / S);
    e.handle(p, w.now);
    assert_eq!(e.tcp.connections(), 1);
    assert_eq!(e.counter(TcpCounter::PassiveOpens), 1);
    assert_eq!(e.counter(TcpCounter::SynCookiesValid), 1);
    assert_eq!(e.owners.slot_state(&flow), Some((CORE, 1)), "the connection's pin");
    e.assert_pins(&[m.tuple]);
    e.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

#[test]
fn the_listener_retransmits_a_syn_ack_whose_ack_was_lost() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut w = World::roomy(5);
    // The peer's first ACK (the handshake's third segment) is lost; it
    // sends nothing else until the engine speaks again.
    let mut first = true;
    w.to_engine.drop_if = Some(Box::new(move |s: &Seen| {
        let hit = first && s.pure_ack();
        first &= !hit;
        hit
    }));
    w.peer.connect(Vec::new(), false, 5);
    assert!(w.run_until(5 * S, |w| w.engine.tcp.connections() == 1), "{}", w.describe());
    assert_eq!(w.to_engine.dropped, 1);
    let syn_acks: Vec<(u64, Seen)> = w.to_peer.log.iter().filter(|(_, s)| s.syn).copied().collect();
    assert_eq!(syn_acks.len(), 2, "{syn_acks:?}");
    let rto_initial = setup(2048).settings.conn.rto_initial as u64;
    assert!(syn_acks[1].0 - syn_acks[0].0 >= rto_initial, "retransmitted after {} µs", syn_acks[1].0 - syn_acks[0].0);
    assert_eq!((syn_acks[0].1.seq, syn_acks[0].1.ack), (syn_acks[1].1.seq, syn_acks[1].1.ack), "the same SYN-ACK");
    assert_eq!(w.engine.counter(TcpCounter::RetransSyn), 1);
    assert_eq!(w.engine.counter(TcpCounter::PassiveOpens), 1);
    // The connection works.
    let body = data(64 << 10, 5);
    w.peer.conns[0].to_send = body.clone();
    w.peer.conns[0].close_when_echoed = true;
    w.run_to_close(30 * S);
    assert_same("echo", &w.peer.conns[0].received, &body);
    assert_all_tcp(&w);
    w.engine.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

/// The tuple of the engine's echo connection from the peer's `port`.
fn echo_tuple(port: u16) -> Tuple {
    Tuple { local_addr: ENGINE_IP, local_port: ECHO_PORT, remote_addr: PEER_IP, remote_port: port }
}

#[test]
fn a_flow_is_pinned_from_its_syn_to_its_end_and_its_slot_is_free_the_moment_after() {
    let mut w = World::roomy(11);
    // The handshake's ACK is lost once, so the SYN queue entry lives a while.
    let mut first = true;
    w.to_engine.drop_if = Some(Box::new(move |s: &Seen| {
        let hit = first && s.pure_ack();
        first &= !hit;
        hit
    }));
    w.peer.connect(Vec::new(), false, 11);
    assert!(w.run_until(S, |w| w.to_peer.log.iter().any(|(_, s)| s.syn)), "{}", w.describe());
    let port = w.to_peer.log.iter().find(|(_, s)| s.syn).unwrap().1.peer_port();
    let flow = crate::datapath::tcp::flow_of(&echo_tuple(port));
    assert_eq!(w.engine.tcp.connections(), 0);
    assert_eq!(w.engine.owners.slot_state(&flow), Some((CORE, 1)), "the SYN queue entry pins the flow");
    // The retransmitted SYN-ACK brings the ACK: the entry's pin is the
    // connection's now, not a second one.
    assert!(w.run_until(5 * S, |w| w.engine.tcp.connections() == 1), "{}", w.describe());
    assert_eq!(w.engine.owners.slot_state(&flow), Some((CORE, 1)));
    let body = data(8 << 10, 11);
    w.peer.conns[0].to_send = body.clone();
    w.peer.conns[0].close_when_echoed = true;
    w.run_to_close(30 * S);
    assert_same("echo", &w.peer.conns[0].received, &body);
    // The peer closed first: no TIME-WAIT here, and nothing keeps the slot,
    // so a new flow in it belongs to whichever core it arrives on.
    assert_eq!((w.engine.tcp.connections(), w.engine.tcp.tw.len()), (0, 0));
    assert_eq!(w.engine.owners.slot_state(&flow), None);
    assert_eq!(w.engine.owners.peek(&flow, OTHER_CORE, w.now / S), None);
}

#[test]
fn a_stopping_core_lets_go_of_its_syn_queue_entries_pins() {
    let mut w = World::roomy(13);
    w.to_engine.drop_if = Some(Box::new(|s: &Seen| s.pure_ack()));
    w.peer.connect(Vec::new(), false, 13);
    assert!(w.run_until(S, |w| w.to_peer.log.iter().any(|(_, s)| s.syn)), "{}", w.describe());
    let port = w.to_peer.log.iter().find(|(_, s)| s.syn).unwrap().1.peer_port();
    let flow = crate::datapath::tcp::flow_of(&echo_tuple(port));
    assert_eq!(w.engine.owners.slot_state(&flow), Some((CORE, 1)));
    let now = w.now;
    let e = &mut w.engine;
    e.tcp.free_all(&mut Io { port: &mut e.port, owners: &e.owners, ip_id: &e.ip_id }, now);
    assert_eq!(e.owners.slot_state(&flow), None);
    assert!(e.tcp.listeners.iter().flatten().all(|l| l.listener.half_open() == 0));
}

#[test]
fn a_syn_for_a_flow_another_core_just_pinned_goes_there_and_leaves_no_entry() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut w = World::roomy(12);
    w.peer.connect(Vec::new(), false, 12);
    let ok = w.run_until(S, |w| w.to_engine.queue.iter().any(|(_, ip)| seen(ip).syn));
    assert!(ok, "{}", w.describe());
    let syn = w.to_engine.queue.pop_front().map(|q| q.1).unwrap();
    assert!(seen(&syn).syn);
    // Between the datapath's look and the listener, another core claimed
    // the slot for a flow of its own.
    let (input, m) = w.engine.input_raced_by_other_core(&syn, w.now);
    let Input::HandOff(owner, p) = input else { panic!("not handed off") };
    let e = &mut w.engine;
    assert_eq!(owner, OTHER_CORE);
    assert!(!e.tcp.listeners.iter().flatten().any(|l| l.listener.holds(&m.tuple)), "no entry here");
    assert_eq!(e.owners.slot_state(&m.flow()), Some((OTHER_CORE, 1)), "and no pin of ours");
    assert_eq!(e.counter(TcpCounter::SegsOut), 0, "no SYN-ACK");
    e.port.free(p.into_frame());
    e.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

#[test]
fn a_tiny_syn_backlog_answers_with_syn_cookies_that_complete() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut s = setup(2048);
    s.settings.syn_backlog = 1;
    assert!(s.settings.syncookies);
    let mut w = World::new(&s, 6);
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| data(64 << 10, 60 + i)).collect();
    for (i, b) in bodies.iter().enumerate() {
        w.peer.connect(b.clone(), true, 60 + i as u64);
    }
    // While the handshakes are under way the listener keeps no state.
    assert!(w.run_until(5 * S, |w| w.engine.counter(TcpCounter::SynCookiesSent) == 3), "{}", w.describe());
    let half_open: u32 = w.engine.tcp.listeners.iter().flatten().map(|l| l.listener.half_open()).sum();
    assert_eq!(half_open, 0);
    w.run_to_close(60 * S);
    for (i, b) in bodies.iter().enumerate() {
        assert_same(&format!("echo {i}"), &w.peer.conns[i].received, b);
    }
    let e = &w.engine;
    assert_eq!(e.counter(TcpCounter::SynCookiesValid), 3, "{}", e.describe());
    assert_eq!(e.counter(TcpCounter::SynCookiesFailed), 0);
    assert_eq!(e.counter(TcpCounter::PassiveOpens), 3);
    assert_all_tcp(&w);
    e.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

#[test]
fn abort_all_resets_every_open_connection_and_every_frame_returns() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut w = World::roomy(7);
    for i in 0..3 {
        w.peer.connect(data(512 << 10, 70 + i), false, 70 + i);
    }
    let ok = w.run_until(30 * S, |w| w.peer.conns.iter().all(|c| c.received.len() >= 32 << 10));
    assert!(ok, "{}", w.describe());
    // Up to a pass that leaves data segments on the tx ring (not yet taken
    // by the kernel): connections hold chunks whose frames are out when
    // they are reset.
    loop {
        assert!(w.advance(), "{}", w.describe());
        w.engine_passes();
        if w.engine.tcp.emit_counts().lent > 0 {
            break;
        }
        w.exchange();
    }
    let now = w.now;
    let e = &mut w.engine;
    e.tcp.abort_all(&mut Io { port: &mut e.port, owners: &e.owners, ip_id: &e.ip_id }, now);
    e.tcp.flush(&mut Io { port: &mut e.port, owners: &e.owners, ip_id: &e.ip_id }, now);
    e.port.flush(None);
    assert_eq!(e.tcp.connections(), 0);
    assert_eq!(e.tcp.frames_held(), 0);
    let logged = w.to_peer.log.len();
    for ip in w.engine.transmit() {
        w.to_peer.push(now, ip);
    }
    let mut reset: Vec<u16> =
        w.to_peer.log[logged..].iter().filter(|(_, s)| s.rst).map(|(_, s)| s.peer_port()).collect();
    reset.sort_unstable();
    assert_eq!(reset, vec![FIRST_PEER_PORT, FIRST_PEER_PORT + 1, FIRST_PEER_PORT + 2], "one RST each");
    // The peer takes the resets (and answers whatever was still on its way
    // with segments the listener resets in turn).
    assert!(w.run_until(5 * S, |w| (0..3).all(|i| w.peer.state(i) == tcp::State::Closed)), "{}", w.describe());
    w.run_until(100 * MS, |_| false);
    w.quiesce();
    assert_eq!(w.engine.tcp.connections(), 0);
    assert_all_tcp(&w);
    w.engine.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

/// An echo of `n` bytes through a core whose arena holds only 16 chunks
/// (the fewest `TcpCore::new` takes): the window and the arena hold the
/// peer back (what still does not fit is dropped and retransmitted), and
/// the transfer completes intact.
fn arena_pressure(s: &TcpSetup, n: usize, seed: u64, to_peer_loss: Option<DropIf>) -> World {
    let mut w = World::new(s, seed);
    w.to_peer.drop_if = to_peer_loss;
    let body = data(n, seed);
    w.peer.connect(body.clone(), true, seed);
    w.run_to_close(600 * S);
    assert_same("echo", &w.peer.conns[0].received, &body);
    let e = &w.engine;
    assert_all_tcp(&w);
    e.assert_frames_home();
    w
}

/// The receive queue alone could fill the arena (16 segments before the
/// first is echoed back and acknowledged): the window, which offers no
/// more segments than the connection has chunks, keeps the peer within
/// it, and echo moves chunks even when no node is free (this deadlocked
/// before).
#[test]
fn a_full_arena_holds_the_peer_back_and_the_transfer_still_completes() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let w = arena_pressure(&setup(16), 1 << 20, 8, None);
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

/// A connection holds fewer received chunks than the arena has, and some
/// of the echo is lost on its way, so the arena fills with the echo's
/// unacknowledged chunks and received ones together (the acknowledgements
/// free it again).
#[test]
fn an_arena_full_of_unacknowledged_echo_drops_payload_and_the_transfer_still_completes() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut s = setup(16);
    s.settings.conn.rcv_chunks = 12;
    s.settings.conn.ooo_chunks = 2;
    let mut n = 0u64;
    let loss: DropIf = Box::new(move |s: &Seen| {
        n += u64::from(s.len > 0);
        s.len > 0 && n % 20 == 10
    });
    let w = arena_pressure(&s, 1 << 20, 9, Some(loss));
    assert!(w.engine.drops(TcpDrop::ArenaFull) > 0, "{}", w.engine.describe());
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

/// A peer writing small segments (1..=100 bytes each) that reads nothing
/// until it has sent all: echo's sends stop at the peer's closed window,
/// so received data piles up, each small segment copied behind the one
/// before it in that one's frame (receive coalescing, through
/// `FrameChunk::absorb` on real frames), and every byte comes back in
/// order once the peer reads.
#[test]
fn small_segments_to_a_stalled_echo_share_frames_and_come_back_whole() {
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let mut w = World::roomy(21);
    let body = data(400 << 10, 21);
    let i = w.peer.connect(body.clone(), true, 21);
    w.peer.conns[i].trickle = Some(100);
    w.peer.conns[i].read_after_sending = true;
    w.run_to_close(600 * S);
    assert_same("echo", &w.peer.conns[i].received, &body);
    let e = &w.engine;
    let coalesced = e.counter(TcpCounter::RcvCoalesced);
    assert!(coalesced > 1000, "{coalesced} segments coalesced: {}", e.describe());
    assert_eq!(e.drops(TcpDrop::RcvBufFull), 0, "{}", e.describe());
    assert_all_tcp(&w);
    e.assert_frames_home();
    drop(w);
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

/// sluice against sluice, in memory: a core whose connections are opened
/// by `TcpCore::connect` and driven by the generator's `rr-client` service,
/// and a core serving echo; frames cross between their fake kernels. Every
/// echo comes back intact, and both sides end quiet.
fn http_world(seed: u64) -> World {
    let cfg = Config::parse(
        r#"
[engine]
interface = "sluice0"
[tcp]
fin_wait2_s = 3
[[service]]
name = "web"
proto = "tcp"
listen = "198.18.0.2:7"
kind = "http"
[service.http]
body = "hello\n"
idle_timeout_s = 2
request_timeout_s = 1
"#,
        "test",
    )
    .unwrap();
    World::new(&setup_with(cfg, 1024), seed)
}

const CLOSE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

#[test]
fn an_http_client_that_never_closes_after_connection_close_does_not_hold_its_connection() {
    // The answer closes (FIN after it); the peer acks the FIN and never
    // sends its own. The lingering close ends after 5 s without input, and
    // the orphan's FIN-WAIT-2 after fin_wait2_s (3 s).
    let mut w = http_world(1);
    w.peer.connect(CLOSE_REQUEST.to_vec(), false, 1);
    assert!(w.run_until(S, |w| w.peer.state(0) == tcp::State::CloseWait), "{}", w.describe());
    let got = String::from_utf8_lossy(&w.peer.conns[0].received).to_string();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with("hello\n"), "{got}");
    let t0 = w.now;
    assert_eq!(w.engine.tcp.connections(), 1, "lingering");
    assert!(w.run_until(20 * S, |w| w.engine.tcp.connections() == 0), "held forever: {}", w.describe());
    let took = w.now - t0;
    assert!(took >= crate::services::http::LINGER_IDLE, "not before the linger: {} ms", took / MS);
    assert!(took <= crate::services::http::LINGER_IDLE + 4 * S, "{} ms", took / MS);
    w.engine.assert_census();
}

#[test]
fn a_syn_that_reopens_a_time_wait_flow_keeps_its_slot_pinned_throughout() {
    // The server closes first (`Connection: close`), so the flow waits out
    // TIME-WAIT here; the same peer port then opens again (Linux's
    // TCP_TW_SYN). The TIME-WAIT entry's pin is let go only after the
    // listener has pinned for the new SYN: the slot is never free between
    // the two, so no other core can take the flow in between.
    let mut w = http_world(4);
    w.peer.connect(CLOSE_REQUEST.to_vec(), true, 4);
    let port = w.peer.conns[0].port;
    let t = echo_tuple(port);
    let flow = crate::datapath::tcp::flow_of(&t);
    assert!(w.run_until(5 * S, |w| w.engine.tcp.tw.len() == 1 && w.peer.finished(0)), "{}", w.describe());
    assert_eq!(w.engine.tcp.connections(), 0);
    assert_eq!(w.engine.owners.slot_state(&flow), Some((CORE, 1)), "the TIME-WAIT entry pins");
    let syns = w.engine.counter(TcpCounter::PassiveOpens);
    let freed = crate::ownership::SLOTS_FREED.with(|n| n.get());
    w.peer.connect_from(port, CLOSE_REQUEST.to_vec(), true, 5);
    let ok = w.run_until(S, |w| w.engine.tcp.tw.is_empty());
    assert!(ok, "the SYN did not reopen the flow: {}", w.describe());
    assert_eq!(crate::ownership::SLOTS_FREED.with(|n| n.get()), freed, "the slot was free for a moment");
    w.engine.assert_pins(&[t]);
    assert_eq!(w.engine.owners.slot_state(&flow), Some((CORE, 1)), "the new handshake's pin, and only it");
    assert!(w.run_until(5 * S, |w| w.engine.tcp.tw.len() == 1 && w.peer.finished(1)), "{}", w.describe());
    let got = String::from_utf8_lossy(&w.peer.conns[1].received).to_string();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with("hello\n"), "{got}");
    assert_eq!(w.engine.counter(TcpCounter::PassiveOpens), syns + 1);
    assert!(w.engine.handed_off.is_empty(), "handed off to {:?}", w.engine.handed_off);
    w.engine.assert_pins(&[t]);
    // TIME-WAIT runs out: the slot is free.
    assert!(w.run_until(130 * S, |w| w.engine.tcp.tw.is_empty()), "{}", w.describe());
    assert_eq!(w.engine.owners.slot_state(&flow), None);
    w.engine.assert_census();
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let mut w = http_world(2);
    w.peer.connect(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), false, 2);
    assert!(w.run_until(S, |w| !w.peer.conns[0].received.is_empty()), "{}", w.describe());
    let t0 = w.now;
    // The server's FIN comes after idle_timeout_s (2 s) ...
    assert!(w.run_until(10 * S, |w| w.peer.state(0) == tcp::State::CloseWait), "{}", w.describe());
    let took = w.now - t0;
    assert!((2 * S - 50 * MS..=3 * S).contains(&took), "closed after {} ms, idle_timeout_s = 2", took / MS);
    // ... and the peer that never answers it is let go after fin_wait2_s.
    assert!(w.run_until(5 * S, |w| w.engine.tcp.connections() == 0), "{}", w.describe());
    w.engine.assert_census();
}

#[test]
fn a_request_that_does_not_arrive_whole_in_time_gets_408() {
    let mut w = http_world(3);
    w.peer.connect(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ".to_vec(), false, 3);
    assert!(w.run_until(3 * S, |w| w.peer.state(0) == tcp::State::CloseWait), "{}", w.describe());
    let got = String::from_utf8_lossy(&w.peer.conns[0].received).to_string();
    assert!(got.starts_with("HTTP/1.1 408 Request Timeout\r\n") && got.contains("Connection: close"), "{got}");
}

/// A client engine running sluice-bench's rr-client with `set` (one core,
/// the peer's MAC and address), and its core's tallies. Its service table
/// has no entries yet: the test adds the client's ports.
fn generator(
    set: crate::services::rr_client::RrSettings,
    now: u64,
) -> (Engine, Arc<crate::services::rr_client::RrSink>) {
    generator_sized(set, now, setup(1024).connections)
}

/// [`generator`] with room for `conns` connections.
fn generator_sized(
    set: crate::services::rr_client::RrSettings,
    now: u64,
    conns: u32,
) -> (Engine, Arc<crate::services::rr_client::RrSink>) {
    use crate::config::ServiceKind;
    use crate::tcp::ServiceSetup;
    let sink = Arc::new(crate::services::rr_client::RrSink::default());
    let mut cs = setup(1024);
    cs.connections = conns;
    cs.services = vec![ServiceSetup { id: 0, kind: ServiceKind::RrClient, tcp: true, http: None }];
    cs.local_mac = EthernetAddress(PEER_MAC);
    cs.rr = Some((set, vec![sink.clone()]));
    let mut client = Engine::new(&cs, now);
    client.services = ServiceTable::default();
    client.services.set_mac(EthernetAddress(PEER_MAC));
    (client, sink)
}

/// The generator opens `n` connections to the engine's echo port, from
/// `FIRST_PEER_PORT` on.
fn open_from_ports(client: &mut Engine, n: u16) {
    for i in 0..n {
        serve_port(client, FIRST_PEER_PORT + i);
        client.tcp.queue_connect(client_tuple(FIRST_PEER_PORT + i), ENGINE_MAC, 0);
    }
}

/// The generator's client tuple from `port` to the engine's echo port.
fn client_tuple(port: u16) -> sluice_tcp::Tuple {
    sluice_tcp::Tuple { local_addr: PEER_IP, local_port: port, remote_addr: ENGINE_IP, remote_port: ECHO_PORT }
}

/// A closed-loop connection-per-request reopen of the client's address
/// to the echo service, from port `first` up, this core taking every
/// `stride`-th (the first of them).
fn crr_reopen(first: u16, stride: u16) -> crate::tcp::Reopen {
    crate::tcp::Reopen {
        tuple: client_tuple(0),
        remote_mac: ENGINE_MAC,
        service: 0,
        first,
        last: u16::MAX,
        stride,
        offset: 0,
        next: 0,
        rate: 0.0,
        max_open: 0,
    }
}

/// The client's port `port` (0: every port) is the rr-client service's.
fn serve_port(client: &mut Engine, port: u16) {
    use crate::config::ServiceKind;
    use crate::datapath::ServiceEntry;
    client.services.add(Proto::Tcp, PEER_IP.into(), port, ServiceEntry { id: 0, kind: ServiceKind::RrClient });
}

/// Client and server passes 50 µs apart from `from` until `until`, every
/// frame each sends delivered to the other; `before` runs ahead of each
/// step (it may replace the server).
fn run_pair(client: &mut Engine, server: &mut Engine, from: u64, until: u64, mut before: impl FnMut(u64, &mut Engine)) {
    let mut now = from;
    while now < until {
        before(now, server);
        client.pass(now);
        for f in client.kernel.take_sent(true) {
            assert!(server.kernel.deliver(&f), "server rx full");
        }
        server.pass(now);
        for f in server.kernel.take_sent(true) {
            assert!(client.kernel.deliver(&f), "client rx full");
        }
        now += 50;
    }
}

#[test]
fn active_opens_from_one_core_get_every_echo_from_a_sluice_server() {
    use crate::services::rr_client::RrSettings;
    let _g = crate::afxdp::frames::leak_check();
    let leaked = frames_leaked();
    let now0 = 1_000_000;
    let mut server = Engine::new(&setup(1024), now0);
    let set = RrSettings { size: 300, window: 2, rate_per_conn: 0.0, http: false, crr: false, once: false };
    let (mut client, sink) = generator(set, now0);
    const CONNS: u16 = 4;
    open_from_ports(&mut client, CONNS);
    run_pair(&mut client, &mut server, now0, now0 + S / 2, |_, _| {});
    use std::sync::atomic::Ordering;
    let ok = sink.ok.load(Ordering::Relaxed);
    assert!(ok > 200, "echoes: {ok}; client {}", client.tcp.connections());
    assert_eq!(sink.mismatched.load(Ordering::Relaxed), 0);
    assert_eq!(client.tcp.stats().counter(TcpCounter::ActiveOpens), CONNS as u64);
    assert_eq!(server.tcp.stats().counter(TcpCounter::PassiveOpens), CONNS as u64);
    assert_eq!((client.tcp.connections(), server.tcp.connections()), (CONNS as usize, CONNS as usize));
    // Every latency was recorded, and sensible (the wire here is instant).
    let hist = sink.histogram();
    assert_eq!(hist.iter().map(|(_, n)| n).sum::<u64>(), ok);
    drop((client, server));
    assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
}

#[test]
fn refused_opens_and_reset_connections_are_counted_by_the_generator() {
    use crate::services::rr_client::RrSettings;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    let mut server = Engine::new(&setup(1024), now0);
    let set = RrSettings { size: 64, window: 1, rate_per_conn: 0.0, http: false, crr: false, once: false };
    let (mut client, sink) = generator(set, now0);
    serve_port(&mut client, FIRST_PEER_PORT);
    let t = client_tuple(FIRST_PEER_PORT);
    client.tcp.queue_connect(t, ENGINE_MAC, 0);
    // The same tuple twice: the second open is refused.
    client.tcp.queue_connect(t, ENGINE_MAC, 0);
    run_pair(&mut client, &mut server, now0, now0 + S / 10, |now, server| {
        if now == now0 + S / 20 {
            // The server restarts: the client's next request finds no
            // connection and gets a reset.
            assert!(sink.ok.load(Ordering::Relaxed) > 0, "echoes before the restart");
            *server = Engine::new(&setup(1024), now);
        }
    });
    assert_eq!(client.tcp.stats().counter(TcpCounter::ActiveOpens), 1);
    assert_eq!(client.tcp.stats().counter(TcpCounter::ConnectFailed), 1, "the duplicate open");
    assert_eq!(sink.failed.load(Ordering::Relaxed), 1, "the reset connection");
    assert_eq!(sink.ended.load(Ordering::Relaxed), 0);
    assert_eq!(client.tcp.connections(), 0);
    assert_eq!(client.tcp.budget_used(), 0, "every place given back");
}

#[test]
fn an_http_generator_on_sluice_tcp_gets_every_answer_from_the_http_service() {
    use crate::services::rr_client::RrSettings;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    let server_setup = setup_with(
        Config::parse(
            "[engine]\ninterface = \"sluice0\"\n[[service]]\nname = \"web\"\nproto = \"tcp\"\nlisten = \"198.18.0.2:7\"\nkind = \"http\"\n",
            "test",
        )
        .unwrap(),
        1024,
    );
    let mut server = Engine::new(&server_setup, now0);
    let set = RrSettings { size: 0, window: 4, rate_per_conn: 0.0, http: true, crr: false, once: false };
    let (mut client, sink) = generator(set, now0);
    open_from_ports(&mut client, 3);
    run_pair(&mut client, &mut server, now0, now0 + S / 4, |_, _| {});
    let ok = sink.ok.load(Ordering::Relaxed);
    assert!(ok > 100, "answers: {ok}");
    assert_eq!(sink.mismatched.load(Ordering::Relaxed), 0);
    assert_eq!(sink.failed.load(Ordering::Relaxed), 0);
    assert_eq!((client.tcp.connections(), server.tcp.connections()), (3, 3), "keep-alive: no connection ends");
}

#[test]
fn memory_per_connection_does_not_grow_unnoticed() {
    // The goal: at most 512 B per idle established connection (an echo
    // or discard one; HTTP keeps its parser beside it, in AppStates).
    let (conn, tw) = (TcpCore::BYTES_PER_CONNECTION, TcpCore::BYTES_PER_TIME_WAIT);
    assert!(conn <= 512, "{conn} B per connection (block {} B)", std::mem::size_of::<sluice_tcp::Conn>());
    let http = crate::services::AppStates::bytes_for(crate::config::ServiceKind::Http);
    assert!(http <= 128, "{http} B of HTTP state per connection");
    assert!(tw <= 84, "{tw} B per TIME-WAIT entry");
}

#[test]
fn a_connection_per_request_generator_reopens_on_fresh_ports_and_every_echo_is_whole() {
    use crate::services::rr_client::RrSettings;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    let mut server = Engine::new(&setup(1024), now0);
    let set = RrSettings { size: 100, window: 1, rate_per_conn: 0.0, http: false, crr: true, once: false };
    let (mut client, sink) = generator(set, now0);
    // One entry for every port of the client's address.
    serve_port(&mut client, 0);
    client.tcp.set_reopen(crr_reopen(41_000, 2));
    for i in 0..4 {
        client.tcp.queue_connect(client_tuple(40_000 + i), ENGINE_MAC, 0);
    }
    // A second: several laps of the port share (TIME-WAIT entries end
    // early when the small table overflows, freeing their ports).
    run_pair(&mut client, &mut server, now0, now0 + S, |_, _| {});
    let ok = sink.ok.load(Ordering::Relaxed);
    let opens = client.tcp.stats().counter(TcpCounter::ActiveOpens);
    assert!(ok > 20, "echoes: {ok}");
    assert!(opens >= ok && opens <= ok + 4, "a connection per echo: {opens} opens, {ok} echoes");
    assert_eq!(sink.mismatched.load(Ordering::Relaxed), 0);
    assert_eq!(sink.failed.load(Ordering::Relaxed), 0);
    assert_eq!(client.tcp.stats().counter(TcpCounter::ConnectFailed), 0);
    assert!(client.tcp.connections() <= 4, "never more than the 4 asked for");
    assert!(server.tcp.stats().counter(TcpCounter::PassiveOpens) <= opens);
    assert!(server.tcp.connections() <= 4, "the server keeps no closed connection");
    // The budget counts live connections only (TIME-WAIT entries gave
    // theirs back).
    assert_eq!(client.tcp.budget_used() as usize, client.tcp.connections());
    assert_eq!(server.tcp.budget_used() as usize, server.tcp.connections());
}

#[test]
fn queued_opens_start_while_fewer_than_max_opening_are_in_syn_sent() {
    use crate::services::rr_client::RrSettings;
    use crate::tcp::MAX_OPENING;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    const CONNS: usize = MAX_OPENING + 76;
    let set = RrSettings { size: 8, window: 1, rate_per_conn: 0.0, http: false, crr: false, once: true };
    let (mut client, sink) = generator_sized(set, now0, 2 * CONNS as u32);
    let mut cs = setup(1024);
    cs.connections = 2 * CONNS as u32;
    serve_port(&mut client, 0);
    for i in 0..CONNS as u16 {
        client.tcp.queue_connect(client_tuple(FIRST_PEER_PORT + i), ENGINE_MAC, 0);
    }
    // Nobody answers yet: the first MAX_OPENING open, the rest wait.
    for k in 0..3 {
        client.pass(now0 + k * 50);
        let _ = client.kernel.take_sent(true);
    }
    assert_eq!(client.tcp.connections(), MAX_OPENING);
    // A server that answers (frames beyond its rx ring are lost, as a
    // kernel's would be): as handshakes finish the rest open, and all end
    // answered.
    let mut server = Engine::new(&cs, now0);
    let mut now = now0 + 200;
    while now < now0 + 10 * S && (sink.ok.load(Ordering::Relaxed) as usize) < CONNS {
        client.pass(now);
        for f in client.kernel.take_sent(true) {
            server.kernel.deliver(&f);
        }
        server.pass(now);
        for f in server.kernel.take_sent(true) {
            client.kernel.deliver(&f);
        }
        now += 50;
    }
    assert_eq!(sink.ok.load(Ordering::Relaxed) as usize, CONNS, "client {}", client.tcp.connections());
    assert_eq!((client.tcp.connections(), server.tcp.connections()), (CONNS, CONNS));
    assert_eq!(client.tcp.stats().counter(TcpCounter::ConnectFailed), 0);
}

#[test]
fn the_connection_budget_is_shared_and_never_overdrawn() {
    use crate::tcp::ConnBudget;
    let b = ConnBudget::new(3);
    assert!(b.take() && b.take() && b.take());
    assert!(!b.take() && !b.has_room());
    b.give();
    assert!(b.has_room() && b.take());
    let b = ConnBudget::new(10_000);
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || (0..5_000).filter(|_| b.take()).count())
        })
        .collect();
    let taken: usize = takers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!((taken, b.used()), (10_000, 10_000));
    for _ in 0..10_001 {
        b.give();
    }
    assert_eq!(b.used(), 0, "an extra give does not wrap");
}

#[test]
fn an_open_loop_generator_counts_requests_that_went_out_late() {
    use crate::services::rr_client::RrSettings;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    let run = |rate_per_conn: f64| {
        let mut server = Engine::new(&setup(1024), now0);
        let set = RrSettings { size: 64, window: 1, rate_per_conn, http: false, crr: false, once: false };
        let (mut client, sink) = generator(set, now0);
        open_from_ports(&mut client, 2);
        run_pair(&mut client, &mut server, now0, now0 + S / 5, |_, _| {});
        (sink.ok.load(Ordering::Relaxed), sink.deferred.load(Ordering::Relaxed))
    };
    // 1 000 requests a second a connection: a window of one keeps up.
    let (ok, late) = run(1_000.0);
    assert!(ok >= 2 * 190, "answers on schedule: {ok}");
    assert_eq!(late, 0, "none late at a rate the round trip allows");
    // 50 000 a second a connection, one in flight: most must wait.
    let (ok, late) = run(50_000.0);
    assert!(ok > 0 && late > ok / 2, "{ok} answered, {late} late");
}

#[test]
fn an_open_loop_generator_wakes_when_a_request_falls_due_and_sends_it_on_time() {
    use crate::services::rr_client::RrSettings;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    let mut server = Engine::new(&setup(1024), now0);
    // One request a millisecond on each of two connections.
    let set = RrSettings { size: 64, window: 1, rate_per_conn: 1_000.0, http: false, crr: false, once: false };
    let (mut client, sink) = generator(set, now0);
    open_from_ports(&mut client, 2);
    // Established, and the schedules begun.
    run_pair(&mut client, &mut server, now0, now0 + 2_000, |_, _| {});
    let before = sink.ok.load(Ordering::Relaxed);
    sink.take_max_us();
    // Now as a core that sleeps until its next deadline: it runs only when
    // a timer or a request wants it, over an instant wire.
    let mut now = now0 + 2_000;
    let end = now + S / 10;
    let mut wakes = 0;
    while now < end {
        let next = [client.tcp.next_deadline(), server.tcp.next_deadline()].into_iter().flatten().min();
        now = next.expect("a paced generator always has a next request").max(now + 1);
        wakes += 1;
        assert!(wakes < 10_000, "a deadline that never moves on");
        client.pass(now);
        for f in client.kernel.take_sent(true) {
            assert!(server.kernel.deliver(&f));
        }
        server.pass(now);
        for f in server.kernel.take_sent(true) {
            assert!(client.kernel.deliver(&f));
        }
        client.pass(now);
    }
    let ok = sink.ok.load(Ordering::Relaxed) - before;
    assert!((195..=201).contains(&ok), "two a millisecond for 100 ms: {ok}");
    // Each request left at its time and its echo came back at once (a
    // request released on a tick would be up to the tick late, and the
    // latency counts from its time).
    assert!(sink.take_max_us() <= 1, "latency from the intended time");
    assert_eq!(sink.deferred.load(Ordering::Relaxed), 0);
    // About one wake-up per request and its ACK, not one per tick.
    assert!(wakes <= 3 * ok, "{wakes} wake-ups for {ok} requests");
}

#[test]
fn a_service_starved_of_frames_is_served_again_once_a_frame_is_free_without_new_input() {
    // The answer needs fresh frames and too few are free: the connection
    // must wait on the core's blocked list, not for the peer's next segment
    // (which may never come: its window can be open and nothing of ours
    // unacknowledged but what the peer has already acknowledged).
    const BODY: usize = 6000;
    let cfg = Config::parse(
        &format!(
            r#"
[engine]
interface = "sluice0"
[[service]]
name = "web"
proto = "tcp"
listen = "198.18.0.2:7"
kind = "http"
[service.http]
body = "{}"
"#,
            "x".repeat(BODY)
        ),
        "test",
    )
    .unwrap();
    let mut w = World::new(&setup_with(cfg, 1024), 5);
    w.peer.connect(CLOSE_REQUEST.to_vec(), false, 5);
    assert!(w.run_until(S, |w| w.peer.state(0) == tcp::State::Established), "{}", w.describe());
    assert!(w.to_engine.next_at().is_some(), "the ACK and the request are on their way");
    // Every frame the core could send with, taken (the SYN-ACK's too, once
    // its completion is reaped). The pure ACK's frame comes free on
    // receipt; the request's holds the request.
    w.engine.reap();
    let mut held = Vec::new();
    while let Some(f) = w.engine.port.alloc() {
        held.push(f);
    }
    assert!(w.advance());
    w.engine_passes();
    assert_eq!(w.engine.tcp.connections(), 1, "established on the final ACK");
    assert!(w.engine.tcp.has_blocked(), "the service could not queue its answer: blocked");
    let first: usize = w.engine.transmit().iter().map(|ip| seen(ip).len).sum();
    assert!(first < BODY, "not all of it went: {first} B");
    // Passes go on without input, and every frame that comes free (the
    // request's, once parsed) is taken too: soon nothing is sent.
    let mut grab = |w: &mut World| {
        w.engine.reap();
        while let Some(f) = w.engine.port.alloc() {
            held.push(f);
        }
    };
    let mut quiet = 0;
    for _ in 0..10 {
        w.now += MS;
        grab(&mut w);
        w.engine.pass(w.now);
        let n: usize = w.engine.transmit().iter().map(|ip| seen(ip).len).sum();
        quiet = if n == 0 { quiet + 1 } else { 0 };
        assert!(w.engine.tcp.has_blocked(), "still waiting");
    }
    assert!(quiet >= 5, "no frame, nothing sent, for passes on end");
    assert!(w.to_engine.next_at().is_none(), "no input came meanwhile");
    for f in held {
        w.engine.port.free(f);
    }
    // One pass, no input: the blocked connection is served.
    w.engine.pass(w.now);
    let sent = w.engine.transmit();
    let more: usize = sent.iter().map(|ip| seen(ip).len).sum();
    assert!(more > 0, "the rest went out on the pass after frames came back");
    for ip in sent {
        w.to_peer.push(w.now, ip);
    }
    assert!(w.run_until(S, |w| w.peer.state(0) == tcp::State::CloseWait), "{}", w.describe());
    let got = &w.peer.conns[0].received;
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n") && got.ends_with(&[b'x'; BODY]), "{} B", got.len());
    assert!(!w.engine.tcp.has_blocked());
}

#[test]
fn an_open_loop_connection_per_request_generator_opens_on_schedule_and_counts_late_opens() {
    use crate::services::rr_client::RrSettings;
    use crate::tcp::Reopen;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    // `rate` opens a second, at most `max_open` at once, for 200 ms.
    let run = |rate: f64, max_open: u32| {
        let mut server = Engine::new(&setup(1024), now0);
        let set = RrSettings { size: 100, window: 1, rate_per_conn: 0.0, http: false, crr: true, once: false };
        let (mut client, sink) = generator(set, now0);
        serve_port(&mut client, 0);
        client.tcp.set_reopen(Reopen {
            tuple: client_tuple(0),
            remote_mac: ENGINE_MAC,
            service: 0,
            first: 41_000,
            last: u16::MAX,
            stride: 1,
            offset: 0,
            next: 0,
            rate,
            max_open,
        });
        run_pair(&mut client, &mut server, now0, now0 + S / 5, |_, _| {});
        let opens = client.tcp.stats().counter(TcpCounter::ActiveOpens);
        let late = sink.deferred.load(Ordering::Relaxed);
        assert_eq!(sink.mismatched.load(Ordering::Relaxed), 0);
        assert_eq!(sink.failed.load(Ordering::Relaxed), 0);
        assert!(client.tcp.connections() <= max_open as usize);
        (sink.ok.load(Ordering::Relaxed), opens, late, sink.take_max_us())
    };
    // 2 000 a second with room for 8 at once: every open on time (the step
    // here is 50 µs, the round trip one step), one echo each.
    let (ok, opens, late, max_us) = run(2_000.0, 8);
    assert!((395..=401).contains(&opens), "opens on schedule: {opens}");
    assert!(ok + 2 >= opens && ok <= opens, "{ok} echoes of {opens} opens");
    assert_eq!(late, 0);
    assert!(max_us <= 200, "each transaction from its intended open: {max_us} µs");
    // 20 000 a second, one at a time: the schedule runs ahead of what one
    // connection can do, opens wait and are counted late, and their
    // latency counts from when they were due.
    let (ok, opens, late, max_us) = run(20_000.0, 1);
    assert!(opens < 4_000 / 2, "one at a time cannot keep up: {opens}");
    assert!(late > opens / 2, "{late} of {opens} late");
    assert!(ok > 0 && max_us > 50_000, "latency grows with the backlog: {max_us} µs");
}

/// A NIC's RSS over two queues, this core (0) being one.
fn two_queue_rss() -> Arc<crate::rss::RssMap> {
    let key: Vec<u8> = (0..40).map(|i| (i * 53 + 7) as u8).collect();
    Arc::new(crate::rss::RssMap::new(&key, (0..128).map(|i| i % 2).collect(), false).unwrap())
}

/// The queue the engine's packets of `port` (the client's port) arrive on.
fn queue_of_client_port(rss: &crate::rss::RssMap, port: u16) -> u16 {
    rss.queue_of(&crate::datapath::tcp::flow_of(&client_tuple(port)))
}

/// With the NIC's RSS known, the connection-per-request generator takes
/// only ports whose replies arrive on its own queue: every connection the
/// server saw came from one, and none was refused for want of a port.
#[test]
fn with_rss_known_reopens_take_only_ports_whose_replies_land_on_the_opening_core() {
    use crate::control::conns::ConnFilter;
    use crate::services::rr_client::RrSettings;
    use std::collections::BTreeSet;
    use std::sync::atomic::Ordering;
    let now0 = 1_000_000;
    let rss = two_queue_rss();
    let mut server = Engine::new(&setup(1024), now0);
    let set = RrSettings { size: 100, window: 1, rate_per_conn: 0.0, http: false, crr: true, once: false };
    let (mut client, sink) = generator(set, now0);
    client.owners = OwnerDirectory::new(1024, 30, 7).with_rss(Some(rss.clone()));
    serve_port(&mut client, 0);
    // The stride says 2 cores, this one the first: RSS overrides it.
    client.tcp.set_reopen(crr_reopen(41_000, 2));
    let firsts: Vec<u16> = (40_000..).filter(|&p| queue_of_client_port(&rss, p) == CORE).take(4).collect();
    for &p in &firsts {
        client.tcp.queue_connect(client_tuple(p), ENGINE_MAC, 0);
    }
    let mut ports = BTreeSet::new();
    let filter = ConnFilter { service: None, state: None, detail: false };
    run_pair(&mut client, &mut server, now0, now0 + S / 2, |now, server| {
        let mut out = Vec::new();
        server.tcp.snapshot(now, 64, &filter, &["echo".into()], &mut out);
        for c in out {
            ports.insert(c.remote.rsplit(':').next().unwrap().parse::<u16>().unwrap());
        }
    });
    let ok = sink.ok.load(Ordering::Relaxed);
    assert!(ok > 20, "echoes: {ok}");
    assert_eq!(sink.mismatched.load(Ordering::Relaxed), 0);
    assert_eq!(client.tcp.stats().counter(TcpCounter::ConnectFailed), 0);
    assert!(ports.len() > 20, "{} ports seen", ports.len());
    let odd: Vec<u16> = ports.iter().copied().filter(|&p| queue_of_client_port(&rss, p) != CORE).collect();
    assert!(odd.is_empty(), "ports whose replies land on the other queue: {odd:?}");
    // The reopens (from 41 000) took ports of both parities: the stride's
    // share (every other port) was not used.
    let reopened: Vec<u16> = ports.iter().copied().filter(|&p| p >= 41_000).collect();
    assert!(reopened.len() > 16, "{reopened:?}");
    assert!(reopened.iter().any(|p| p % 2 == 1) && reopened.iter().any(|p| p % 2 == 0), "{reopened:?}");
}

/// `connect_from` picks a free port whose packets arrive on this core,
/// moves on from the last one it chose, and says so when none is left.
#[test]
fn connect_from_picks_free_ports_that_land_on_this_core() {
    let now0 = 1_000_000;
    let rss = two_queue_rss();
    let set = crate::services::rr_client::RrSettings {
        size: 8,
        window: 1,
        rate_per_conn: 0.0,
        http: false,
        crr: false,
        once: true,
    };
    let (mut client, _sink) = generator(set, now0);
    client.owners = OwnerDirectory::new(1024, 30, 7).with_rss(Some(rss.clone()));
    let range = 50_000..=50_063u16;
    let landing: Vec<u16> = range.clone().filter(|&p| queue_of_client_port(&rss, p) == CORE).collect();
    assert!(landing.len() > 16 && landing.len() < 48, "about half of 64: {}", landing.len());
    let mut got = Vec::new();
    for _ in 0..landing.len() {
        let Engine { port, tcp, owners, ip_id, .. } = &mut client;
        let id = tcp.connect_from(
            &mut Io { port, owners, ip_id },
            PEER_IP,
            (ENGINE_IP, ECHO_PORT),
            range.clone(),
            ENGINE_MAC,
            0,
            now0,
        );
        assert!(id.is_some(), "{} of {} opened", got.len(), landing.len());
        got.push(id.unwrap());
    }
    assert_eq!(client.tcp.connections(), landing.len());
    // Every landing port is in use now: the next open finds none.
    let Engine { port, tcp, owners, ip_id, .. } = &mut client;
    let io = &mut Io { port, owners, ip_id };
    assert!(tcp.connect_from(io, PEER_IP, (ENGINE_IP, ECHO_PORT), range.clone(), ENGINE_MAC, 0, now0).is_none());
    assert_eq!(tcp.stats().counter(TcpCounter::ConnectFailed), 1);
    // An empty range is refused, not searched.
    #[allow(clippy::reversed_empty_ranges)]
    let empty = 2..=1u16;
    assert!(tcp.connect_from(io, PEER_IP, (ENGINE_IP, ECHO_PORT), empty, ENGINE_MAC, 0, now0).is_none());
    // Which ports, in which order: the SYNs on the wire, each port the next
    // landing one after the last.
    let mut syn_ports: Vec<u16> = Vec::new();
    client.pass(now0);
    for f in client.kernel.take_sent(true) {
        let s = seen(&f[14..]);
        assert!(s.syn);
        syn_ports.push(s.src_port);
    }
    assert_eq!(syn_ports, landing);
    // A wider range goes on from the cursor (past 50 063), not from its
    // start; a range the cursor is beyond starts at its last port and wraps.
    let Engine { port, tcp, owners, ip_id, .. } = &mut client;
    let io = &mut Io { port, owners, ip_id };
    let next = (50_064..).find(|&p| queue_of_client_port(&rss, p) == CORE).unwrap();
    tcp.connect_from(io, PEER_IP, (ENGINE_IP, ECHO_PORT), 49_000..=51_000, ENGINE_MAC, 0, now0).unwrap();
    let low: Vec<u16> = (40_000..=40_100).filter(|&p| queue_of_client_port(&rss, p) == CORE).collect();
    let wrap_start = if low.contains(&40_100) { 40_100 } else { low[0] };
    tcp.connect_from(io, PEER_IP, (ENGINE_IP, ECHO_PORT), 40_000..=40_100, ENGINE_MAC, 0, now0).unwrap();
    client.pass(now0);
    let more: Vec<u16> = client.kernel.take_sent(true).iter().map(|f| seen(&f[14..]).src_port).collect();
    assert_eq!(more, [next, wrap_start]);
}

mod hostile;
