//! One core's TCP stack: the sans-I/O state machine of `sluice-tcp` run over
//! this core's frames.
//!
//! The worker gives it checked segments ([`TcpCore::input`]), the frames of
//! its transmitted segments back ([`TcpCore::restore`]), and the time
//! ([`TcpCore::tick`]); once per pass [`TcpCore::flush`] runs the service
//! of every connection something happened to and transmits what they have,
//! so a batch of segments for one connection is answered with one ACK.
//!
//! Frames: a received segment's payload stays in its frame, as a chunk on
//! the connection's receive queue; echo moves the chunk to the send queue,
//! the emitter writes the headers in front of the payload and lends the
//! frame to the tx ring with a route naming the chunk's arena node, and the
//! completion gives the frame back to that node, where it is the
//! retransmission copy until the peer acknowledges it. The core's arena
//! bounds how many frames its connections hold; a full arena drops payload
//! (counted `tcp_arena_full`) and the peer retransmits.
//!
//! | module | for |
//! |---|---|
//! | `chunk` | payload in a UMEM frame, here or lent to the tx ring |
//! | `emit` | segments to frames (headers, checksums, zero copy or copy) |
//! | `table` | the core's connections by four-tuple |
//! | `time_wait` | the core's TIME-WAIT entries (a few dozen bytes each, not a connection) |
pub mod chunk;
pub mod emit;
mod pace;
pub mod table;
pub mod time_wait;

use crate::afxdp::{Frame, FrameTable, Packet};
use crate::config::{HttpSettings, ServiceKind, TcpSettings};
use crate::control::conns::ConnFilter;
use crate::control::protocol::ConnEntry;
use crate::datapath::TcpInput;
use crate::ownership::OwnerDirectory;
use crate::port::{Port, Route};
use crate::services::http::HttpService;
use crate::services::rr_client::{RrSettings, RrSink};
use crate::services::{App, AppCx, AppStates};
use crate::stats::{CoreStats, Gauge};
use crate::wire::ethernet::EthernetAddress;
use chunk::FrameChunk;
use emit::{node_of, send_bare, EmitCounts, Emitter, Path};
use sluice_tcp::conn::{Env, Events, Limits, State, TwVerdict};
use sluice_tcp::listener::{Listen, Listener, Secrets, SynTimer, Tuple};
use sluice_tcp::{Arena, Conn, TcpConfig, TcpCounter, TcpStats, TimerWheel};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use table::{ConnTable, Slot};
use time_wait::{TimeWaitTable, TwEntry};

/// What the worker's loop lends the stack for a call.
pub struct Io<'a> {
    /// The core's port.
    pub port: &'a mut Port,
    /// Flow ownership.
    pub owners: &'a OwnerDirectory,
    /// The core's IP ID counter.
    pub ip_id: &'a Cell<u16>,
}

/// What became of an input segment.
#[derive(Debug)]
pub enum Input {
    /// Taken (kept, answered or dropped and counted).
    Done,
    /// Another core holds the flow: hand the packet over.
    HandOff(u16, Packet),
}

/// What every core's stack is made from.
#[derive(Clone, Debug)]
pub struct TcpSetup {
    /// The `[tcp]` settings.
    pub settings: TcpSettings,
    /// Every service: (id, kind, whether it is TCP).
    pub services: Vec<ServiceSetup>,
    /// The keys, shared by every core (a SYN cookie one core sent is
    /// checked by another).
    pub secrets: Secrets,
    /// The interface's MAC.
    pub local_mac: EthernetAddress,
    /// When any core last sent a SYN cookie, µs (every core then checks
    /// ACKs for cookies).
    pub cookie_clock: Arc<AtomicU64>,
    /// The load generator's requests, and each core's tallies (sluice-bench
    /// only; `None` in the daemon).
    pub rr: Option<(RrSettings, Vec<Arc<RrSink>>)>,
    /// Connections per core at most (each core's table: reserved at start,
    /// touched as connections come).
    pub connections: u32,
    /// Connections of all cores together at most (`tcp.max_connections`),
    /// shared by the cores. A core may take more than its share: learned
    /// ownership puts a flow on whichever core claimed its slot first, so
    /// the split follows the traffic, not the core count.
    pub budget: Arc<ConnBudget>,
    /// TIME-WAIT entries per core at most (beyond, the oldest ends early,
    /// counted `tcp_time_wait_overflow`).
    pub time_waits: u32,
    /// Chunks (frames) a core's connections hold at most.
    pub chunks: u32,
}

/// The connections every core together may hold: one atomic count, taken
/// when a connection is made and given back when it is freed (never per
/// packet).
#[derive(Debug)]
pub struct ConnBudget {
    max: u32,
    used: AtomicU32,
}

impl ConnBudget {
    /// A budget of `max` connections.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(ConnBudget { max, used: AtomicU32::new(0) })
    }

    /// Whether one more connection would fit now.
    pub fn has_room(&self) -> bool {
        self.used.load(Ordering::Relaxed) < self.max
    }

    /// Takes one connection's place; false when none is left.
    pub fn take(&self) -> bool {
        self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| (u < self.max).then_some(u + 1)).is_ok()
    }

    /// Gives a place back.
    pub fn give(&self) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| u.checked_sub(1));
    }

    /// Places taken.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Where a connection-per-request generator opens its next connection:
/// the same peer and service, the next free local port of this core's share
/// (`first + offset + k * stride`); and when: as each connection ends
/// (closed loop), or on a schedule (open loop, `rate` > 0).
#[derive(Clone, Copy, Debug)]
pub struct Reopen {
    /// The connections' tuple with any local port.
    pub tuple: Tuple,
    /// The peer's MAC.
    pub remote_mac: [u8; 6],
    /// The service (an rr-client one).
    pub service: u32,
    /// The local ports: `first..=last`, this core's every `stride`-th from
    /// `first + offset`.
    pub first: u16,
    /// Last port.
    pub last: u16,
    /// Cores sharing the range.
    pub stride: u16,
    /// This core's place among them.
    pub offset: u16,
    /// The next port to try.
    pub next: u16,
    /// Open loop: connections opened a second on this core, each one a
    /// transaction timed from its intended open (0: closed loop).
    pub rate: f64,
    /// Open loop: the most connections open at once; an open that falls
    /// due beyond them waits (and is late).
    pub max_open: u32,
}

/// An open-loop connection-per-request schedule on one core: open number
/// `issued` is due at `start + issued / rate`.
#[derive(Clone, Copy, Debug, Default)]
struct OpenSchedule {
    /// Engine µs of open 0 (0: not begun).
    start: u64,
    issued: u64,
    /// The open last counted as refused (each is counted once, however
    /// many passes it waits for a port).
    refused: Option<u64>,
}

impl OpenSchedule {
    fn at(&self, rate: f64, k: u64) -> u64 {
        self.start + (k as f64 * 1e6 / rate) as u64
    }
}

impl Reopen {
    /// The next port of the share: every `stride`-th, or (`all`) every one
    /// of the range.
    fn advance(&mut self, all: bool) -> u16 {
        let p = self.next;
        let stride = if all { 1 } else { self.stride.max(1) };
        let n = u32::from(self.next) + u32::from(stride);
        self.next = if n > u32::from(self.last) { self.first + if all { 0 } else { self.offset } } else { n as u16 };
        p
    }
}

/// Arena chunks (frames connections may hold: received bytes not yet
/// consumed, sent bytes not yet acknowledged) for a core with
/// `frames_per_core` frames and rings of `ring`: all but what receiving
/// needs (a full fill ring and half a ring in hand). Holding more could
/// starve the fill ring, and then no ACK that would free a frame gets in.
pub fn chunk_budget(frames_per_core: u32, ring: u32) -> u32 {
    frames_per_core.saturating_sub(ring + ring / 2).max(64)
}

/// Active opens a core keeps in SYN-SENT at once (see `TcpCore::opening`).
pub const MAX_OPENING: usize = 1024;

/// Ports a reopen tries before it counts a refused open.
const REOPEN_TRIES: usize = 64;
/// ... times this when RSS decides (most ports' replies land on other
/// queues: a port in `queues` is this core's; up to 64 queues).
const RSS_TRIES_FACTOR: usize = 64;
/// Ports `connect_from` looks at, at most, before it gives up (a bounded
/// stall of the core, however full the range is).
const CONNECT_FROM_TRIES: u32 = 8192;

/// One listening service on a core.
struct Listening {
    listener: Listener,
    kind: ServiceKind,
    /// An HTTP service's prepared answers.
    http: Option<Arc<HttpService>>,
}

/// Where a service writes payload in a fresh frame: room in front for the
/// headers (so the frame is sent as it is) and the rx headroom's size.
const APP_HEADROOM: u16 = 256;

/// A service as every core's stack needs it.
#[derive(Clone, Debug)]
pub struct ServiceSetup {
    /// Its index in the configuration.
    pub id: u32,
    /// What it does.
    pub kind: ServiceKind,
    /// Whether it is a TCP service.
    pub tcp: bool,
    /// For HTTP: what it answers.
    pub http: Option<HttpSettings>,
}

/// The stack of one core.
pub struct TcpCore {
    core: u16,
    /// Every connection's settings, shared.
    cfg: Arc<TcpConfig>,
    /// Each TCP service's kind, by id.
    kinds: Vec<Option<ServiceKind>>,
    /// ISNs and timestamp offsets of active opens.
    secrets: Secrets,
    /// The load generator's settings and this core's tallies.
    rr: Option<(RrSettings, Arc<RrSink>)>,
    /// Active opens asked for before the loop ran (done on the next tick).
    connect_queue: std::collections::VecDeque<(Tuple, [u8; 6], u32)>,
    /// Queued active opens not past SYN-SENT yet (id, tuple): more start
    /// only while fewer than [`MAX_OPENING`] are, so a generator asked for
    /// a million connections ramps up like a client with a bounded
    /// connect pool instead of bursting every SYN at once (and
    /// retransmitting them in lockstep).
    opening: Vec<(u32, Tuple)>,
    /// The generator's connection-per-request mode: where the next
    /// connection comes from when one ends.
    reopen: Option<Reopen>,
    /// Connections a reopen found no free port for yet (every port of the
    /// share in use or in TIME-WAIT): tried again on every tick.
    reopen_owed: u32,
    /// Where `connect_from` looks for a port next.
    port_cursor: u16,
    /// The open-loop reopen's schedule.
    opens: OpenSchedule,
    /// Open-loop generator: when each connection's next request falls due.
    pace: pace::PaceQueue,
    local_mac: EthernetAddress,
    frames: Arc<FrameTable>,
    table: ConnTable,
    /// By service id; `None` for services that are not TCP.
    listeners: Vec<Option<Listening>>,
    arena: Arena<FrameChunk>,
    /// HTTP and rr-client connections' service state, by connection id.
    apps: AppStates,
    stats: TcpStats,
    limits: Limits,
    wheel: TimerWheel,
    /// When the listeners' SYN-ACK timers want to run next.
    listen_at: Option<u64>,
    /// Connections to serve at the end of the pass.
    dirty: Vec<u32>,
    /// Connections whose transmission was refused, to try again.
    blocked: Vec<u32>,
    /// Scratch for the lists above and the timers fired.
    scratch: Vec<u32>,
    /// Frames of released chunks, given to the port after each call.
    released: Vec<Frame>,
    counts: EmitCounts,
    /// Connections in TIME-WAIT, reduced to what answering them needs.
    tw: TimeWaitTable,
    /// When any core last sent a SYN cookie (shared by all cores).
    cookie_clock: Arc<AtomicU64>,
    budget: Arc<ConnBudget>,
    /// Stopping: listeners answer with RSTs.
    draining: bool,
    /// Scratch for the blocked list while it is retried.
    retry: Vec<u32>,
}

/// Frames a released chunk gives back (none while it is on a tx ring: the
/// completion frees that frame), and how many lent chunks were released.
fn release_into<'a>(released: &'a mut Vec<Frame>, gone_lent: &'a mut u32) -> impl FnMut(FrameChunk) + 'a {
    move |c: FrameChunk| match c.into_frame() {
        Some(f) => released.push(f),
        None => *gone_lent += 1,
    }
}

impl TcpCore {
    /// The stack of `core`, over the UMEM `frames`, its clock at `now`.
    pub fn new(core: u16, setup: &TcpSetup, frames: Arc<FrameTable>, now: u64) -> Self {
        let settings = &setup.settings;
        let n = setup.services.iter().map(|s| s.id as usize + 1).max().unwrap_or(0);
        let mut listeners: Vec<Option<Listening>> = (0..n).map(|_| None).collect();
        let mut kinds = vec![None; n];
        for s in &setup.services {
            if s.tcp {
                kinds[s.id as usize] = Some(s.kind);
            }
            if s.tcp && App::listens(s.kind) {
                let mut l = Listener::new(settings.conn, setup.secrets, settings.syn_backlog);
                l.cookies = settings.syncookies;
                let http = s.http.as_ref().map(|h| Arc::new(HttpService::new(h)));
                listeners[s.id as usize] = Some(Listening { listener: l, kind: s.kind, http });
            }
        }
        let conns = setup.connections.max(1);
        let apps = AppStates::new(conns, kinds.iter().flatten().copied());
        let chunks = setup.chunks.max(16);
        // No connection may hold more than a quarter of the core's chunks
        // per queue: a peer sending tiny segments (each one a frame) and
        // never reading cannot take every frame from the core's other
        // connections (it can take half; coalescing small segments into
        // one frame is what would close this).
        let mut cfg = settings.conn;
        let cap = (chunks / 4).max(16);
        cfg.rcv_chunks = cfg.rcv_chunks.min(cap);
        cfg.ooo_chunks = cfg.ooo_chunks.min(cfg.rcv_chunks / 2).max(4);
        cfg.snd_chunks = cfg.snd_chunks.min(cap);
        TcpCore {
            core,
            cfg: Arc::new(cfg),
            kinds,
            secrets: setup.secrets,
            rr: setup.rr.as_ref().map(|(set, sinks)| (*set, sinks[core as usize % sinks.len().max(1)].clone())),
            connect_queue: Default::default(),
            opening: Vec::with_capacity(MAX_OPENING),
            reopen: None,
            reopen_owed: 0,
            port_cursor: 0,
            opens: OpenSchedule::default(),
            pace: if setup.rr.as_ref().is_some_and(|(s, _)| s.rate_per_conn > 0.0) {
                pace::PaceQueue::with_connections(conns as usize)
            } else {
                pace::PaceQueue::default()
            },
            local_mac: setup.local_mac,
            frames,
            table: ConnTable::new(conns),
            listeners,
            arena: Arena::new(chunks),
            apps,
            stats: TcpStats::default(),
            limits: Limits::default(),
            wheel: TimerWheel::new(conns, now),
            listen_at: None,
            dirty: Vec::with_capacity(conns as usize),
            blocked: Vec::with_capacity(conns as usize),
            scratch: Vec::with_capacity(conns as usize),
            released: Vec::with_capacity(chunks as usize),
            counts: EmitCounts::default(),
            tw: TimeWaitTable::new(setup.time_waits.max(1) as usize),
            cookie_clock: setup.cookie_clock.clone(),
            budget: setup.budget.clone(),
            draining: false,
            retry: Vec::with_capacity(conns as usize),
        }
    }

    /// Bytes each connection takes besides its frames: its block, its
    /// table entry (hashbrown: key, value and a control byte, at most 7/8
    /// full), its timer link and its places in the per-pass lists. An HTTP
    /// connection keeps `AppStates::bytes_for(Http)` more beside it.
    pub const BYTES_PER_CONNECTION: usize = std::mem::size_of::<Option<Slot>>()
        + (std::mem::size_of::<(Tuple, u32)>() + 1) * 8 / 7
        + sluice_tcp::timer_wheel::BYTES_PER_TIMER
        + 4 * std::mem::size_of::<u32>();

    /// Bytes each TIME-WAIT entry takes: the entry and its table entry.
    pub const BYTES_PER_TIME_WAIT: usize =
        std::mem::size_of::<TwEntry>() + (std::mem::size_of::<(Tuple, u32)>() + 1) * 8 / 7;

    /// Places of the shared connection budget taken now (every core's).
    pub fn budget_used(&self) -> u32 {
        self.budget.used()
    }

    /// Whether the core serves any TCP service.
    pub fn is_listening(&self) -> bool {
        self.listeners.iter().any(Option::is_some)
    }

    /// The counters.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Connections now (TIME-WAIT included).
    pub fn connections(&self) -> usize {
        self.table.len()
    }

    /// Frames the connections hold here (not those on a tx ring).
    pub fn frames_held(&self) -> u32 {
        self.arena.used().saturating_sub(self.counts.lent)
    }

    /// The emitters' tallies.
    pub fn emit_counts(&self) -> EmitCounts {
        self.counts
    }

    fn path_of(&self, t: &Tuple, remote_mac: [u8; 6]) -> Path {
        path_for(self.local_mac, t, remote_mac)
    }

    fn give_back_released(&mut self, port: &mut Port, gone_lent: u32) {
        self.counts.lent = self.counts.lent.saturating_sub(gone_lent);
        for f in self.released.drain(..) {
            port.free(f);
        }
    }

    /// A checked segment for a TCP service (the frame comes with it).
    pub fn input(&mut self, io: &mut Io<'_>, pkt: Packet, m: &TcpInput, now: u64) -> Input {
        // A tuple is in one table or the other, never both: the connections
        // first (every segment of an established flow), TIME-WAIT after.
        if let Some(id) = self.table.find(&m.tuple) {
            self.deliver(io, id, pkt, m, now);
            return Input::Done;
        }
        if let Some(i) = self.tw.find(&m.tuple) {
            if !self.time_wait_segment(io, i, m, now) {
                io.port.free(pkt.into_frame());
                return Input::Done;
            }
            // A new connection in place of the TIME-WAIT one (Linux's
            // TCP_TW_SYN): the listener takes the SYN. The ended entry's pin
            // is let go only after, so no other core can claim the slot in
            // between and have the SYN handed off to it.
            let r = self.listen(io, pkt, m, now);
            unpin_flow(io.owners, &m.tuple, self.core, now);
            return r;
        }
        self.listen(io, pkt, m, now)
    }

    /// A segment of a TIME-WAIT entry; true when it is a SYN that ended the
    /// entry and should go to the listener (the entry's pin still held).
    fn time_wait_segment(&mut self, io: &mut Io<'_>, i: u32, m: &TcpInput, now: u64) -> bool {
        let Some(e) = self.tw.get(i) else { return false };
        let mac = e.remote_mac;
        let verdict = e.tw.on_segment(&m.seg, now);
        if verdict != TwVerdict::Reopen {
            // A reopening SYN is counted by the listener.
            self.stats.add(TcpCounter::SegsIn, 1);
        }
        let path = self.path_of(&m.tuple, mac);
        match verdict {
            TwVerdict::Ignore => false,
            TwVerdict::Ack(seg) => {
                self.send_bare(io, &path, &seg);
                false
            }
            TwVerdict::AckAndRestart(seg) => {
                self.send_bare(io, &path, &seg);
                // The 2 MSL start again (RFC 9293 3.10.7.4), in place; the pin stays.
                self.tw.restart(i, now + self.cfg.time_wait);
                false
            }
            TwVerdict::Close => {
                self.stats.add(TcpCounter::ResetsIn, 1);
                if let Some(e) = self.tw.kill(i) {
                    self.end_time_wait(io, &e, now);
                }
                false
            }
            TwVerdict::Reopen => {
                // The entry's pin stays for the caller to let go.
                self.tw.kill(i).is_some()
            }
        }
    }

    /// A TIME-WAIT entry ended: its flow's pin goes.
    fn end_time_wait(&mut self, io: &mut Io<'_>, e: &TwEntry, now: u64) {
        unpin_flow(io.owners, &e.tuple, self.core, now);
    }

    /// A segment for no connection: the listener's.
    fn listen(&mut self, io: &mut Io<'_>, pkt: Packet, m: &TcpInput, now: u64) -> Input {
        let now_s = now / 1_000_000;
        let path = self.path_of(&m.tuple, m.remote_mac);
        let has_room = self.table.has_room() && self.budget.has_room();
        let Some(l) = self.listeners.get_mut(m.service.id as usize).and_then(Option::as_mut) else {
            io.port.free(pkt.into_frame());
            return Input::Done;
        };
        let f = m.seg.flags;
        if self.draining {
            // Stopping: no new connection; the peer learns at once.
            self.stats.add(TcpCounter::SegsIn, 1);
            io.port.free(pkt.into_frame());
            if let Some(rst) = sluice_tcp::conn::reset_for(&m.seg) {
                self.stats.add(TcpCounter::ResetsOut, 1);
                self.send_bare(io, &path, &rst);
            }
            return Input::Done;
        }
        if !f.syn() && f.ack() {
            // A cookie sent by another core may come back here.
            l.listener.cookies_sent_at(self.cookie_clock.load(Ordering::Relaxed));
        }
        if !f.syn() && f.ack() && !f.rst() && !has_room {
            // The handshake's ACK with no room for its connection: dropped
            // before the listener lets go of the entry (as Linux with a full
            // accept queue), so the SYN-ACK is retransmitted and the peer's
            // ACK comes again, perhaps when there is room.
            self.stats.add(TcpCounter::SegsIn, 1);
            self.stats.add(TcpCounter::ListenOverflows, 1);
            io.port.free(pkt.into_frame());
            return Input::Done;
        }
        if f.syn() && !f.ack() && !f.rst() && !has_room {
            // No room for the connection the handshake would make: as
            // Linux with a full accept queue, the SYN goes unanswered.
            self.stats.add(TcpCounter::SegsIn, 1);
            self.stats.add(TcpCounter::ListenOverflows, 1);
            io.port.free(pkt.into_frame());
            return Input::Done;
        }
        let kind = l.kind;
        let ctx = mac_word(m.remote_mac);
        // A SYN queue entry pins its flow's owner slot, as a connection
        // does, so the handshake's later segments come to this core and the
        // slot is free again the moment nothing is kept for any of its
        // flows. A SYN that will make one (a new one, no FIN, room in the
        // queue: cookies and drops keep nothing) pins first: if another
        // core has just claimed the slot, the SYN goes there untouched.
        // An ACK that may complete a handshake by its cookie pins first
        // too: the listener counts the open when it accepts, so the ACK must
        // not be handed off after that (the owner would count it again).
        let flow = m.flow();
        let had = l.listener.holds(&m.tuple);
        let syn_pin = f.syn() && !f.ack() && !f.rst() && !f.fin() && !had && l.listener.has_room();
        let cookie_pin = !f.syn() && f.ack() && !f.rst() && !had && l.listener.checks_cookies(now);
        if syn_pin || cookie_pin {
            if let Err(o) = io.owners.pin(&flow, self.core, now_s) {
                return Input::HandOff(o, pkt);
            }
        }
        let verdict = l.listener.on_segment(&m.tuple, &m.seg, now, &mut self.stats, ctx);
        let holds = l.listener.holds(&m.tuple);
        if holds && !had && !syn_pin {
            // Only such a SYN makes an entry (`Listener::holds`); should
            // that ever change, the entry still pins, here.
            tracing::warn!(core = self.core, "a SYN queue entry from a segment that did not pin");
            let _ = io.owners.pin(&flow, self.core, now_s);
        }
        // An entry gone other than into a connection (a RST, a SYN that
        // replaced it and got a cookie), a SYN that made none or an ACK
        // whose cookie failed lets go.
        if (had || syn_pin || cookie_pin) && !holds && !matches!(verdict, Listen::Accept(_)) {
            io.owners.unpin(&flow, self.core, now_s);
        }
        match verdict {
            Listen::SynAck { seg, kept } => {
                self.stats.add(TcpCounter::SegsIn, 1);
                io.port.free(pkt.into_frame());
                if !kept && self.cookie_clock.load(Ordering::Relaxed) + 1_000_000 <= now {
                    // At most once a second: every core checks cookies now.
                    self.cookie_clock.fetch_max(now, Ordering::Relaxed);
                }
                if kept {
                    let at = now + self.cfg.rto_initial as u64;
                    self.listen_at = Some(self.listen_at.map_or(at, |t| t.min(at)));
                }
                self.send_bare(io, &path, &seg);
                Input::Done
            }
            Listen::Accept(h) => {
                if !has_room {
                    self.stats.add(TcpCounter::SegsIn, 1);
                    self.stats.add(TcpCounter::ListenOverflows, 1);
                    io.port.free(pkt.into_frame());
                    if had || cookie_pin {
                        io.owners.unpin(&flow, self.core, now_s);
                    }
                    return Input::Done;
                }
                // The entry's pin (`had`) or the cookie ACK's becomes the
                // connection's. Only those two accept (`checks_cookies`);
                // should that ever change, the connection still pins, here.
                if !had && !cookie_pin {
                    tracing::warn!(core = self.core, "a handshake accepted from a segment that did not pin");
                    if let Err(o) = io.owners.pin(&flow, self.core, now_s) {
                        return Input::HandOff(o, pkt);
                    }
                }
                let slot = Slot {
                    conn: Conn::accept(self.cfg.clone(), &h, now),
                    tuple: m.tuple,
                    remote_mac: m.remote_mac,
                    service: m.service.id,
                    app: App::new(kind).expect("listeners exist only for served kinds"),
                    since: sluice_tcp::conn::secs(now),
                    dirty: false,
                    blocked: false,
                };
                match self.admit(slot, now) {
                    Some(id) => {
                        self.deliver(io, id, pkt, m, now);
                        // The handshake's ACK was refused after all (PAWS, a
                        // bad ACK): no connection stays half made, with no
                        // timer to end it. The peer's retransmission finds
                        // the listener again.
                        if self.table.peek(id).is_some_and(|s| s.conn.state() == State::SynReceived) {
                            self.free(io, id, now);
                        }
                    }
                    None => {
                        // Another core took the budget's last place since
                        // has_room (find() found no slot, so not a duplicate).
                        self.stats.add(TcpCounter::ListenOverflows, 1);
                        io.owners.unpin(&flow, self.core, now_s);
                        io.port.free(pkt.into_frame());
                    }
                }
                Input::Done
            }
            Listen::Reset(seg) => {
                self.stats.add(TcpCounter::SegsIn, 1);
                io.port.free(pkt.into_frame());
                self.stats.add(TcpCounter::ResetsOut, 1);
                self.send_bare(io, &path, &seg);
                Input::Done
            }
            Listen::Drop => {
                self.stats.add(TcpCounter::SegsIn, 1);
                io.port.free(pkt.into_frame());
                Input::Done
            }
        }
    }

    fn send_bare(&mut self, io: &mut Io<'_>, path: &Path, seg: &sluice_tcp::OutSegment) {
        let id = io.ip_id.get();
        io.ip_id.set(id.wrapping_add(1));
        if send_bare(io.port, &self.frames, path, seg, id) {
            self.stats.add(TcpCounter::SegsOut, 1);
        } else {
            // A handshake or reset segment is not retried: the peer's
            // retransmission asks again.
            self.counts.no_frame += 1;
        }
    }

    /// Gives connection `id` its segment.
    fn deliver(&mut self, io: &mut Io<'_>, id: u32, pkt: Packet, m: &TcpInput, now: u64) {
        if self.table.peek(id).is_none() {
            io.port.free(pkt.into_frame());
            return;
        }
        let payload = if m.seg.len > 0 {
            let off = pkt.off() + m.payload_off;
            Some(FrameChunk::new(pkt.into_frame(), off, m.seg.len as u16))
        } else {
            io.port.free(pkt.into_frame());
            None
        };
        let mut gone_lent = 0;
        {
            let TcpCore { table, arena, stats, limits, released, dirty, frames, .. } = self;
            let slot = table.get(id).expect("looked up above");
            let mut release = release_into(released, &mut gone_lent);
            let mut absorb = |a: &mut FrameChunk, b: &FrameChunk| a.absorb(b, frames);
            let mut env = Env { now, arena, stats, limits, release: &mut release, absorb: &mut absorb };
            slot.conn.on_segment(&m.seg, payload, &mut env);
            if !slot.dirty {
                slot.dirty = true;
                dirty.push(id);
            }
        }
        self.give_back_released(io.port, gone_lent);
    }

    /// A transmitted frame that was sent with a route came back: it goes to
    /// the chunk waiting for it, or (`Some`) to the free list when none is.
    pub fn restore(&mut self, f: Frame, route: Route) -> Option<Frame> {
        let Some(node) = node_of(route) else { return Some(f) };
        let Some(c) = self.arena.chunk_at(node) else { return Some(f) };
        match c.restore(f) {
            Ok(()) => {
                self.counts.lent = self.counts.lent.saturating_sub(1);
                None
            }
            Err(f) => Some(f),
        }
    }

    /// The generator's connection-per-request mode: whenever one of this
    /// core's connections ends, `r` says where the next comes from.
    pub fn set_reopen(&mut self, mut r: Reopen) {
        r.next = r.first + r.offset;
        self.reopen = Some(r);
        self.opens = OpenSchedule::default();
    }

    /// The open-loop reopen, if one runs.
    fn scheduled_reopen(&self) -> Option<Reopen> {
        self.reopen.filter(|r| r.rate > 0.0)
    }

    /// Open loop, connection per request: opens whatever fell due by `now`
    /// while fewer than `max_open` are open; each connection's transaction
    /// is timed from its intended open, and one opened later than
    /// `LATE_US` after it is counted late.
    fn open_due(&mut self, io: &mut Io<'_>, r: Reopen, now: u64) {
        if self.opens.start == 0 {
            // The cores' schedules interleave: core k starts k/stride of an
            // interval in.
            let phase = f64::from(r.offset) / f64::from(r.stride.max(1)) * 1e6 / r.rate;
            self.opens.start = now.max(1) + phase as u64;
        }
        let due = if now < self.opens.start { 0 } else { ((now - self.opens.start) as f64 * r.rate / 1e6) as u64 + 1 };
        let mut burst = 0;
        while self.opens.issued < due && burst < MAX_OPENING && self.table.len() < r.max_open as usize {
            let origin = self.opens.at(r.rate, self.opens.issued);
            let Some(id) = self.open_next(io, now) else {
                if self.opens.refused != Some(self.opens.issued) {
                    self.opens.refused = Some(self.opens.issued);
                    self.stats.add(TcpCounter::ConnectFailed, 1);
                }
                return;
            };
            self.apps.rr(id).set_origin(origin);
            if now.saturating_sub(origin) > crate::services::rr_client::LATE_US {
                if let Some((_, sink)) = &self.rr {
                    sink.deferred.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.opens.issued += 1;
            burst += 1;
        }
    }

    /// Opens the next connection of a connection-per-request generator on a
    /// free port of this core's share.
    fn open_next(&mut self, io: &mut Io<'_>, now: u64) -> Option<u32> {
        let mut r = self.reopen?;
        let mut opened = None;
        // With the NIC's RSS known, the cores share the range by where each
        // port's replies arrive (disjoint shares, as the stride's are): a
        // core takes only ports whose packets come in on its own queue, so
        // none of the connection's segments is handed off.
        let by_rss = io.owners.knows_arrivals();
        let tries = if by_rss { REOPEN_TRIES * RSS_TRIES_FACTOR } else { REOPEN_TRIES };
        for _ in 0..tries {
            let t = Tuple { local_port: r.advance(by_rss), ..r.tuple };
            if by_rss && !self.lands_here(io, &t) {
                continue;
            }
            opened = self.try_connect(io, t, r.remote_mac, r.service, now);
            if opened.is_some() {
                break;
            }
        }
        self.reopen = Some(r);
        opened
    }

    /// Whether `tuple`'s packets arrive on this core's queue (always, when
    /// the NIC's RSS is not known).
    fn lands_here(&self, io: &Io<'_>, tuple: &Tuple) -> bool {
        io.owners.arrival_queue(&crate::datapath::tcp::flow_of(tuple)).is_none_or(|q| q == self.core)
    }

    /// An active open from `local_addr` to `remote` on a port of `ports`
    /// chosen so that the connection stays on this core: with the NIC's RSS
    /// known, its packets arrive on this core's queue; and its flow is
    /// free for this core to own (not in use, not in TIME-WAIT, no other
    /// core's). The search starts after the last port this core chose and
    /// looks at `CONNECT_FROM_TRIES` ports at most. `None` (counted
    /// `tcp_connect_failed`) when none of those is.
    #[allow(clippy::too_many_arguments)]
    pub fn connect_from(
        &mut self,
        io: &mut Io<'_>,
        local_addr: [u8; 4],
        remote: ([u8; 4], u16),
        ports: std::ops::RangeInclusive<u16>,
        remote_mac: [u8; 6],
        service: u32,
        now: u64,
    ) -> Option<u32> {
        let (first, last) = (*ports.start(), *ports.end());
        if first > last {
            self.stats.add(TcpCounter::ConnectFailed, 1);
            return None;
        }
        let span = u32::from(last - first) + 1;
        let start = u32::from(self.port_cursor.clamp(first, last) - first);
        for k in 0..span.min(CONNECT_FROM_TRIES) {
            let port = first + ((start + k) % span) as u16;
            let t = Tuple { local_addr, local_port: port, remote_addr: remote.0, remote_port: remote.1 };
            if !self.lands_here(io, &t) {
                continue;
            }
            if let Some(id) = self.try_connect(io, t, remote_mac, service, now) {
                self.port_cursor = if port == last { first } else { port + 1 };
                return Some(id);
            }
        }
        self.stats.add(TcpCounter::ConnectFailed, 1);
        None
    }

    /// A generator connection ended: the next one opens now, or (every port
    /// of the share in use or in TIME-WAIT) is owed and tried on the next
    /// ticks, as TIME-WAIT entries end; counted as a refused open.
    fn reopen(&mut self, io: &mut Io<'_>, now: u64) {
        if self.open_next(io, now).is_none() {
            self.reopen_owed += 1;
            self.stats.add(TcpCounter::ConnectFailed, 1);
        }
    }

    /// Asks for an active open of `tuple` (to a peer at `remote_mac`) for
    /// service `service`, made on the next tick (when the loop runs).
    pub fn queue_connect(&mut self, tuple: Tuple, remote_mac: [u8; 6], service: u32) {
        self.connect_queue.push_back((tuple, remote_mac, service));
    }

    /// Opens a connection from `tuple`'s local end (an active open: our SYN
    /// goes with the next flush). Fails when the table is full, the tuple
    /// is in use, another core owns the flow, or the service is no TCP one.
    pub fn connect(
        &mut self,
        io: &mut Io<'_>,
        tuple: Tuple,
        remote_mac: [u8; 6],
        service: u32,
        now: u64,
    ) -> Option<u32> {
        let id = self.try_connect(io, tuple, remote_mac, service, now);
        if id.is_none() {
            self.stats.add(TcpCounter::ConnectFailed, 1);
        }
        id
    }

    fn try_connect(
        &mut self,
        io: &mut Io<'_>,
        tuple: Tuple,
        remote_mac: [u8; 6],
        service: u32,
        now: u64,
    ) -> Option<u32> {
        let kind = self.kinds.get(service as usize).copied().flatten()?;
        let app = App::new(kind)?;
        if !self.table.has_room()
            || !self.budget.has_room()
            || self.table.find(&tuple).is_some()
            || self.tw.find(&tuple).is_some()
        {
            return None;
        }
        let flow = crate::datapath::tcp::flow_of(&tuple);
        if io.owners.pin(&flow, self.core, now / 1_000_000).is_err() {
            return None;
        }
        let iss = self.secrets.isn(&tuple, now);
        let conn = Conn::connect(self.cfg.clone(), iss, self.secrets.ts_offset(&tuple), now, &mut self.stats);
        let slot = Slot {
            conn,
            tuple,
            remote_mac,
            service,
            app,
            since: sluice_tcp::conn::secs(now),
            dirty: true,
            blocked: false,
        };
        match self.admit(slot, now) {
            Some(id) => {
                self.dirty.push(id);
                Some(id)
            }
            None => {
                io.owners.unpin(&flow, self.core, now / 1_000_000);
                None
            }
        }
    }

    /// Puts a new connection in the table: a place of the shared budget
    /// taken (given back if the table refuses it) and its service state
    /// started. `None`: no place, or the tuple is in the table already.
    fn admit(&mut self, slot: Slot, now: u64) -> Option<u32> {
        if !self.budget.take() {
            return None;
        }
        let app = slot.app;
        let Some(id) = self.table.insert(slot) else {
            self.budget.give();
            return None;
        };
        self.apps.start(id, &app, now);
        Some(id)
    }

    /// Runs the timers due at `now`; returns how many fired.
    pub fn tick(&mut self, io: &mut Io<'_>, now: u64) -> usize {
        while self.reopen_owed > 0 && self.open_next(io, now).is_some() {
            self.reopen_owed -= 1;
        }
        if let Some(r) = self.scheduled_reopen() {
            self.open_due(io, r, now);
        }
        if !self.connect_queue.is_empty() {
            if self.opening.len() >= MAX_OPENING {
                let table = &self.table;
                self.opening.retain(|(id, t)| {
                    table.peek(*id).is_some_and(|s| s.tuple == *t && s.conn.state() == State::SynSent)
                });
            }
            while self.opening.len() < MAX_OPENING {
                let Some((t, mac, service)) = self.connect_queue.pop_front() else { break };
                if let Some(id) = self.connect(io, t, mac, service, now) {
                    self.opening.push((id, t));
                }
            }
        }
        if self.paced() {
            self.release_due(now);
        }
        let mut fired = std::mem::take(&mut self.scratch);
        self.wheel.advance(now, |id| fired.push(id));
        let n = fired.len();
        for &id in &fired {
            let mut gone_lent = 0;
            {
                let TcpCore { table, arena, stats, limits, released, frames, .. } = self;
                let Some(slot) = table.get(id) else { continue };
                let mut release = release_into(released, &mut gone_lent);
                let mut absorb = |a: &mut FrameChunk, b: &FrameChunk| a.absorb(b, frames);
                let mut env = Env { now, arena, stats, limits, release: &mut release, absorb: &mut absorb };
                slot.conn.on_timer(&mut env);
            }
            self.give_back_released(io.port, gone_lent);
            self.serve(io, id, now);
        }
        fired.clear();
        self.scratch = fired;
        let core = self.core;
        self.tw.expire(now, |e| unpin_flow(io.owners, &e.tuple, core, now));
        if self.listen_at.is_some_and(|t| t <= now) {
            self.listener_timers(io, now);
        }
        n
    }

    /// SYN-ACK retransmissions; an entry that gave up lets go of its
    /// flow's owner slot.
    fn listener_timers(&mut self, io: &mut Io<'_>, now: u64) {
        let TcpCore { listeners, stats, local_mac, frames, counts, core, .. } = self;
        let mut next: Option<u64> = None;
        for l in listeners.iter_mut().flatten() {
            let mut out = |t: &Tuple, ctx: u64, ev: SynTimer| {
                let seg = match ev {
                    SynTimer::Resend(seg) => seg,
                    SynTimer::Expired => {
                        unpin_flow(io.owners, t, *core, now);
                        return;
                    }
                };
                let path = Path {
                    local_mac: *local_mac,
                    remote_mac: EthernetAddress(mac_of_word(ctx)),
                    local_ip: Ipv4Addr::from(t.local_addr),
                    remote_ip: Ipv4Addr::from(t.remote_addr),
                    local_port: t.local_port,
                    remote_port: t.remote_port,
                };
                let id = io.ip_id.get();
                io.ip_id.set(id.wrapping_add(1));
                if !send_bare(io.port, frames, &path, &seg, id) {
                    counts.no_frame += 1;
                }
            };
            let before = stats.counter(TcpCounter::RetransSyn);
            if let Some(t) = l.listener.on_timer(now, stats, &mut out) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            let sent = stats.counter(TcpCounter::RetransSyn) - before;
            stats.add(TcpCounter::SegsOut, sent);
        }
        self.listen_at = next;
    }

    /// Serves every connection something happened to this pass, and tries
    /// again those whose transmission was refused; returns how many.
    pub fn flush(&mut self, io: &mut Io<'_>, now: u64) -> usize {
        // The blocked list as it was: a connection that blocks while it is
        // served now waits for the next pass.
        let mut retry = std::mem::take(&mut self.retry);
        std::mem::swap(&mut retry, &mut self.blocked);
        let mut ids = std::mem::take(&mut self.scratch);
        std::mem::swap(&mut ids, &mut self.dirty);
        let n = ids.len() + retry.len();
        for &id in &ids {
            if self.table.peek(id).is_some() {
                self.serve(io, id, now);
            }
        }
        ids.clear();
        self.scratch = ids;
        for &id in &retry {
            let Some(slot) = self.table.get(id) else { continue };
            if !slot.blocked {
                continue;
            }
            slot.blocked = false;
            self.serve(io, id, now);
        }
        retry.clear();
        self.retry = retry;
        n
    }

    /// Runs connection `id`'s service, transmits, and frees it if it closed.
    fn serve(&mut self, io: &mut Io<'_>, id: u32, now: u64) {
        let mut gone_lent = 0;
        let closed;
        let entering_tw;
        {
            let TcpCore {
                table,
                arena,
                stats,
                limits,
                released,
                blocked,
                frames,
                counts,
                wheel,
                listeners,
                local_mac,
                rr,
                apps,
                pace,
                ..
            } = self;
            let Some(slot) = table.get(id) else { return };
            slot.dirty = false;
            let mut release = release_into(released, &mut gone_lent);
            let starved;
            {
                let http =
                    listeners.get(slot.service as usize).and_then(|l| l.as_ref()).and_then(|l| l.http.as_deref());
                let port = &mut *io.port;
                let table_ref: &FrameTable = frames;
                let mut write = |bytes: &[u8]| -> Option<FrameChunk> {
                    let mut f = port.alloc()?;
                    let at = APP_HEADROOM as usize;
                    table_ref.frame_mut(&mut f)[at..at + bytes.len()].copy_from_slice(bytes);
                    Some(FrameChunk::new(f, APP_HEADROOM, bytes.len() as u16))
                };
                let mut cx = AppCx {
                    arena,
                    release: &mut release,
                    table: table_ref,
                    write: &mut write,
                    chunk_room: frames.frame_size() as usize - APP_HEADROOM as usize,
                    http,
                    rr: rr.as_ref().map(|(set, sink)| (set, &**sink)),
                    now,
                    starved: false,
                };
                slot.app.run(id, apps, &mut slot.conn, &mut cx);
                starved = cx.starved;
                if let (App::RrClient, Some((set, _))) = (&slot.app, rr.as_ref()) {
                    if let Some(at) = apps.rr(id).next_wake(set, now) {
                        pace.schedule(id, at);
                    }
                }
            }
            let mut absorb = |a: &mut FrameChunk, b: &FrameChunk| a.absorb(b, frames);
            let mut env = Env { now, arena, stats, limits, release: &mut release, absorb: &mut absorb };
            let path = path_for(*local_mac, &slot.tuple, slot.remote_mac);
            let mut em = Emitter { port: io.port, table: frames, path: &path, ip_id: io.ip_id, counts };
            let t = slot.conn.transmit(&mut env, &mut em);
            if (t.blocked || starved) && !slot.blocked {
                slot.blocked = true;
                blocked.push(id);
            }
            let ev = slot.conn.take_events();
            closed = ev.has(Events::CLOSED) || slot.conn.state() == State::Closed;

            // TIME-WAIT once its last ACK is out: the block makes way for a
            // small entry (which keeps the flow's pin).
            entering_tw = if t.blocked {
                None
            } else {
                slot.conn.time_wait().map(|tw| (slot.tuple, slot.remote_mac, slot.service, tw))
            };
            if !closed && entering_tw.is_none() {
                let at = match (slot.conn.poll_at(), slot.app.deadline(id, apps)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                wheel.set(id, at);
            }
        }
        self.give_back_released(io.port, gone_lent);
        let ended = entering_tw.is_some() || closed;
        if let Some((tuple, mac, service, tw)) = entering_tw {
            self.free_block(io, id, now, false);
            let expires = now + self.cfg.time_wait;
            if let Some(old) = self.tw.insert(tuple, mac, service, tw, expires) {
                self.stats.add(TcpCounter::TimeWaitOverflow, 1);
                self.end_time_wait(io, &old, now);
            }
        } else if closed {
            self.free(io, id, now);
        }
        if ended && self.reopen.is_some_and(|r| r.rate <= 0.0) && !self.draining {
            self.reopen(io, now);
        }
    }

    /// Frees connection `id`: its chunks, its slot, its timer, its pin.
    fn free(&mut self, io: &mut Io<'_>, id: u32, now: u64) {
        self.free_block(io, id, now, true);
    }

    /// Frees connection `id`'s block (chunks, slot, timer), and its pin
    /// unless a TIME-WAIT entry takes it over.
    fn free_block(&mut self, io: &mut Io<'_>, id: u32, now: u64, unpin: bool) {
        let mut gone_lent = 0;
        let Some(mut slot) = self.table.remove(id) else { return };
        self.budget.give();
        {
            let mut release = release_into(&mut self.released, &mut gone_lent);
            slot.conn.release_all(&mut self.arena, &mut release);
        }
        self.give_back_released(io.port, gone_lent);
        self.wheel.cancel(id);
        self.pace.remove(id);
        if unpin {
            unpin_flow(io.owners, &slot.tuple, self.core, now);
        }
        self.stats.add(TcpCounter::Closed, 1);
    }

    /// Aborts every connection (the engine is stopping): those whose peer
    /// may still send (SYN-RECEIVED, ESTABLISHED, FIN-WAIT, CLOSE-WAIT) get
    /// their RST with this flush; the rest (SYN-SENT, CLOSING, LAST-ACK)
    /// just end, as RFC 9293 3.10.5's ABORT has it.
    pub fn abort_all(&mut self, io: &mut Io<'_>, now: u64) {
        self.draining = true;
        let ids: Vec<u32> = self.table.ids().collect();
        for id in ids {
            if let Some(slot) = self.table.get(id) {
                slot.conn.abort();
            }
            self.serve(io, id, now);
        }
    }

    /// Frees every connection left (the engine stops; TIME-WAIT ones and
    /// SYN queue entries too): every pin of this core is released.
    pub fn free_all(&mut self, io: &mut Io<'_>, now: u64) {
        let ids: Vec<u32> = self.table.ids().collect();
        for id in ids {
            self.free(io, id, now);
        }
        let core = self.core;
        self.tw.expire(u64::MAX, |e| unpin_flow(io.owners, &e.tuple, core, now));
        for l in self.listeners.iter_mut().flatten() {
            l.listener.clear(&mut |t| unpin_flow(io.owners, t, core, now));
        }
    }

    /// Open-loop generator: marks for service the connections whose next
    /// request fell due by `now` (from the pace queue).
    fn release_due(&mut self, now: u64) {
        let set = self.rr.as_ref().map(|(s, _)| *s).expect("paced");
        let TcpCore { table, dirty, apps, pace, .. } = self;
        while let Some((id, _)) = pace.pop_due(now) {
            let Some(s) = table.get(id).filter(|s| matches!(s.app, App::RrClient)) else { continue };
            // An entry comes up at its time, and serving a connection moves
            // its entry in place: not due now means a full window (the echo
            // that frees it wakes it) or no longer ESTABLISHED.
            if s.conn.state() == State::Established && apps.rr(id).due(&set, now) && !s.dirty {
                s.dirty = true;
                dirty.push(id);
            }
        }
    }

    /// The earliest time a timer wants to run, engine µs.
    pub fn next_deadline(&self) -> Option<u64> {
        let pace = if self.paced() { self.pace.next() } else { None };
        // The next scheduled open, while there is room for it (at the cap,
        // a connection that ends wakes the core; out of ports, a TIME-WAIT
        // entry that expires).
        let open = self.scheduled_reopen().and_then(|r| {
            let room = self.table.len() < r.max_open as usize && self.opens.refused != Some(self.opens.issued);
            room.then(|| self.opens.at(r.rate, self.opens.issued))
        });
        [self.wheel.next_deadline(), self.listen_at, self.tw.next_deadline(), pace, open].into_iter().flatten().min()
    }

    /// Whether an open-loop generator schedule runs on this core.
    fn paced(&self) -> bool {
        self.rr.as_ref().is_some_and(|(s, _)| s.rate_per_conn > 0.0)
    }

    /// Whether a connection waits to transmit (no frame was free, or its
    /// payload was still on a tx ring).
    pub fn has_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// The first `limit` connections for the control plane (`names`: the
    /// services' names by id); returns how many there are in all.
    pub fn snapshot(
        &self,
        now: u64,
        limit: usize,
        filter: &ConnFilter,
        names: &[String],
        out: &mut Vec<ConnEntry>,
    ) -> u64 {
        let mut total = 0;
        for id in self.table.ids() {
            let Some(s) = self.table.peek(id) else { continue };
            if filter.service.is_some_and(|f| f != s.service)
                || filter.state.as_deref().is_some_and(|f| f != s.conn.state().name())
            {
                continue;
            }
            total += 1;
            if out.len() >= limit {
                continue;
            }
            let i = s.conn.info();
            let p = path_for(self.local_mac, &s.tuple, s.remote_mac);
            out.push(ConnEntry {
                core: self.core as u32,
                service: names.get(s.service as usize).cloned().unwrap_or_default(),
                local: format!("{}:{}", p.local_ip, p.local_port),
                remote: format!("{}:{}", p.remote_ip, p.remote_port),
                state: s.conn.state().name().to_string(),
                age_s: f64::from(sluice_tcp::conn::secs(now).saturating_sub(s.since)),
                cwnd: i.cwnd,
                ssthresh: (i.ssthresh != u32::MAX).then_some(i.ssthresh),
                srtt_us: i.srtt_us,
                rto_us: i.rto_us,
                mss: i.mss,
                snd_wnd: i.snd_wnd,
                unacked: i.unacked,
                bytes_in: i.bytes_in,
                bytes_out: i.bytes_out,
                retransmits: i.retransmits,
                recv_queued: s.conn.recv_queue().bytes(),
                send_queued: s.conn.send_queued(),
                chunks: s.conn.chunks_held(),
                blocked: s.blocked,
                detail: if filter.detail { s.conn.detail(now) } else { String::new() },
            });
        }
        for e in self.tw.iter() {
            if filter.service.is_some_and(|f| f != e.service)
                || filter.state.as_deref().is_some_and(|f| f != "time-wait")
            {
                continue;
            }
            total += 1;
            if out.len() >= limit {
                continue;
            }
            let t = &e.tuple;
            out.push(ConnEntry {
                core: self.core as u32,
                service: names.get(e.service as usize).cloned().unwrap_or_default(),
                local: format!("{}:{}", Ipv4Addr::from(t.local_addr), t.local_port),
                remote: format!("{}:{}", Ipv4Addr::from(t.remote_addr), t.remote_port),
                state: State::TimeWait.name().to_string(),
                age_s: 0.0,
                detail: if filter.detail {
                    format!(
                        "time-wait entry: rcv nxt={} snd nxt={} ends in {} ms",
                        e.tw.rcv_nxt.0,
                        e.tw.snd_nxt.0,
                        e.expires.saturating_sub(now) / 1000
                    )
                } else {
                    String::new()
                },
                ..ConnEntry::default()
            });
        }
        total
    }

    /// Publishes the stack's counters (about 40 stores: the worker does it
    /// every 100 ms and before it sleeps, not every pass).
    pub fn publish_counters(&self, st: &CoreStats) {
        st.publish_tcp(&self.stats);
    }

    /// Publishes the stack's gauges.
    pub fn publish(&self, st: &CoreStats) {
        st.set(Gauge::TcpConns, self.table.len() as u64);
        st.set(Gauge::TcpTimeWait, self.tw.len() as u64);
        let half: u32 = self.listeners.iter().flatten().map(|l| l.listener.half_open()).sum();
        st.set(Gauge::TcpHalfOpen, half as u64);
    }
}

/// Where a connection's segments go.
fn path_for(local_mac: EthernetAddress, t: &Tuple, remote_mac: [u8; 6]) -> Path {
    Path {
        local_mac,
        remote_mac: EthernetAddress(remote_mac),
        local_ip: Ipv4Addr::from(t.local_addr),
        remote_ip: Ipv4Addr::from(t.remote_addr),
        local_port: t.local_port,
        remote_port: t.remote_port,
    }
}

/// Releases `core`'s pin on the owner slot of `t`'s flow (its state is
/// gone), at `now` µs.
fn unpin_flow(owners: &OwnerDirectory, t: &Tuple, core: u16, now: u64) {
    owners.unpin(&crate::datapath::tcp::flow_of(t), core, now / 1_000_000);
}

/// A MAC as the listener's context word.
fn mac_word(m: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&m);
    u64::from_le_bytes(b)
}

fn mac_of_word(w: u64) -> [u8; 6] {
    let b = w.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests;
