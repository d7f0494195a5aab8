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
pub mod chunk;
pub mod emit;
pub mod table;

use crate::afxdp::{Frame, FrameTable, Packet};
use crate::config::{HttpSettings, ServiceKind, TcpSettings};
use crate::control::conns::ConnFilter;
use crate::control::protocol::ConnEntry;
use crate::datapath::TcpInput;
use crate::ownership::{OwnerDirectory, Ownership};
use crate::port::{Port, Route};
use crate::services::http::HttpService;
use crate::services::{App, AppCx};
use crate::stats::{CoreStats, Gauge};
use crate::wire::ethernet::EthernetAddress;
use chunk::FrameChunk;
use emit::{node_of, send_bare, EmitCounts, Emitter, Path};
use sluice_tcp::conn::{Env, Events, Limits, State};
use sluice_tcp::listener::{Listen, Listener, Secrets, Tuple};
use sluice_tcp::{Arena, Conn, TcpConfig, TcpCounter, TcpStats, TimerWheel};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use table::{ConnTable, Slot};

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
    /// Connections per core at most.
    pub connections: u32,
    /// Chunks (frames) a core's connections hold at most.
    pub chunks: u32,
}

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
    cfg: TcpConfig,
    local_mac: EthernetAddress,
    frames: Arc<FrameTable>,
    table: ConnTable,
    /// By service id; `None` for services that are not TCP.
    listeners: Vec<Option<Listening>>,
    arena: Arena<FrameChunk>,
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
    time_wait: u32,
    /// When any core last sent a SYN cookie (shared by all cores).
    cookie_clock: Arc<AtomicU64>,
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
        for s in &setup.services {
            if s.tcp && App::new(s.kind).is_some() {
                let mut l = Listener::new(settings.conn, setup.secrets, settings.syn_backlog);
                l.cookies = settings.syncookies;
                let http = s.http.as_ref().map(|h| Arc::new(HttpService::new(h)));
                listeners[s.id as usize] = Some(Listening { listener: l, kind: s.kind, http });
            }
        }
        let conns = setup.connections.max(1);
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
            cfg,
            local_mac: setup.local_mac,
            frames,
            table: ConnTable::new(conns),
            listeners,
            arena: Arena::new(chunks),
            stats: TcpStats::default(),
            limits: Limits::default(),
            wheel: TimerWheel::new(conns, now),
            listen_at: None,
            dirty: Vec::with_capacity(conns as usize),
            blocked: Vec::with_capacity(conns as usize),
            scratch: Vec::with_capacity(conns as usize),
            released: Vec::with_capacity(chunks as usize),
            counts: EmitCounts::default(),
            time_wait: 0,
            cookie_clock: setup.cookie_clock.clone(),
            draining: false,
            retry: Vec::with_capacity(conns as usize),
        }
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
        Path {
            local_mac: self.local_mac,
            remote_mac: EthernetAddress(remote_mac),
            local_ip: Ipv4Addr::from(t.local_addr),
            remote_ip: Ipv4Addr::from(t.remote_addr),
            local_port: t.local_port,
            remote_port: t.remote_port,
        }
    }

    fn give_back_released(&mut self, port: &mut Port, gone_lent: u32) {
        self.counts.lent = self.counts.lent.saturating_sub(gone_lent);
        for f in self.released.drain(..) {
            port.free(f);
        }
    }

    /// A checked segment for a TCP service (the frame comes with it).
    pub fn input(&mut self, io: &mut Io<'_>, pkt: Packet, m: &TcpInput, now: u64) -> Input {
        if let Some(id) = self.table.find(&m.tuple) {
            let reopen = self.table.peek(id).is_some_and(|s| s.conn.time_wait_takes_syn(&m.seg));
            if !reopen {
                self.deliver(io, id, pkt, m, now);
                return Input::Done;
            }
            // A new SYN for a tuple in TIME-WAIT: the old connection makes
            // way (Linux's TCP_TW_SYN) and the listener takes the SYN.
            self.free(io, id, now);
        }
        let now_s = now / 1_000_000;
        let path = self.path_of(&m.tuple, m.remote_mac);
        let has_room = self.table.has_room();
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
        match l.listener.on_segment(&m.tuple, &m.seg, now, &mut self.stats, ctx) {
            Listen::SynAck { seg, kept } => {
                self.stats.add(TcpCounter::SegsIn, 1);
                io.port.free(pkt.into_frame());
                if !kept && self.cookie_clock.load(Ordering::Relaxed) + 1_000_000 <= now {
                    // At most once a second: every core checks cookies now.
                    self.cookie_clock.fetch_max(now, Ordering::Relaxed);
                }
                if kept {
                    // State is kept for the flow now: claim it, so its
                    // retransmitted SYN and final ACK come here.
                    if let Ownership::Other(o) = io.owners.lookup(&m.flow(), self.core, now_s) {
                        tracing::debug!(
                            core = self.core,
                            owner = o,
                            "a SYN queue entry for a flow another core claimed meanwhile"
                        );
                    }
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
                    return Input::Done;
                }
                let flow = m.flow();
                if let Err(o) = io.owners.pin(&flow, self.core, now_s) {
                    return Input::HandOff(o, pkt);
                }
                let slot = Slot {
                    conn: Conn::accept(self.cfg, &h, now),
                    tuple: m.tuple,
                    path,
                    flow,
                    service: m.service.id,
                    app: App::new(kind).expect("listeners exist only for served kinds"),
                    since: now,
                    dirty: false,
                    blocked: false,
                    in_time_wait: false,
                };
                match self.table.insert(slot) {
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
                        // has_room was checked and find() found no slot.
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
            let TcpCore { table, arena, stats, limits, released, dirty, .. } = self;
            let slot = table.get(id).expect("looked up above");
            let mut release = release_into(released, &mut gone_lent);
            let mut env = Env { now, arena, stats, limits, release: &mut release };
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

    /// Runs the timers due at `now`; returns how many fired.
    pub fn tick(&mut self, io: &mut Io<'_>, now: u64) -> usize {
        let mut fired = std::mem::take(&mut self.scratch);
        self.wheel.advance(now, |id| fired.push(id));
        let n = fired.len();
        for &id in &fired {
            let mut gone_lent = 0;
            {
                let TcpCore { table, arena, stats, limits, released, .. } = self;
                let Some(slot) = table.get(id) else { continue };
                let mut release = release_into(released, &mut gone_lent);
                let mut env = Env { now, arena, stats, limits, release: &mut release };
                slot.conn.on_timer(&mut env);
            }
            self.give_back_released(io.port, gone_lent);
            self.serve(io, id, now);
        }
        fired.clear();
        self.scratch = fired;
        if self.listen_at.is_some_and(|t| t <= now) {
            self.listener_timers(io, now);
        }
        n
    }

    /// SYN-ACK retransmissions; each keeps its flow's claim fresh.
    fn listener_timers(&mut self, io: &mut Io<'_>, now: u64) {
        let TcpCore { listeners, stats, local_mac, frames, counts, core, .. } = self;
        let mut next: Option<u64> = None;
        for l in listeners.iter_mut().flatten() {
            let mut out = |t: &Tuple, ctx: u64, seg: sluice_tcp::OutSegment| {
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
                io.owners.touch(&crate::datapath::tcp::flow_of(t), *core, now / 1_000_000);
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
                time_wait,
                listeners,
                ..
            } = self;
            let Some(slot) = table.get(id) else { return };
            slot.dirty = false;
            let mut release = release_into(released, &mut gone_lent);
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
                };
                slot.app.run(&mut slot.conn, &mut cx);
            }
            let mut env = Env { now, arena, stats, limits, release: &mut release };
            let mut em = Emitter { port: io.port, table: frames, path: &slot.path, ip_id: io.ip_id, counts };
            let t = slot.conn.transmit(&mut env, &mut em);
            if t.blocked && !slot.blocked {
                slot.blocked = true;
                blocked.push(id);
            }
            let ev = slot.conn.take_events();
            closed = ev.has(Events::CLOSED) || slot.conn.state() == State::Closed;
            let tw = slot.conn.state() == State::TimeWait;
            if tw != slot.in_time_wait {
                slot.in_time_wait = tw;
                if tw {
                    *time_wait += 1;
                } else {
                    *time_wait -= 1;
                }
            }
            if !closed {
                wheel.set(id, slot.conn.poll_at());
            }
        }
        self.give_back_released(io.port, gone_lent);
        if closed {
            self.free(io, id, now);
        }
    }

    /// Frees connection `id`: its chunks, its slot, its timer, its pin.
    fn free(&mut self, io: &mut Io<'_>, id: u32, now: u64) {
        let mut gone_lent = 0;
        let Some(mut slot) = self.table.remove(id) else { return };
        {
            let mut release = release_into(&mut self.released, &mut gone_lent);
            slot.conn.release_all(&mut self.arena, &mut release);
        }
        self.give_back_released(io.port, gone_lent);
        if slot.in_time_wait {
            self.time_wait -= 1;
        }
        self.wheel.cancel(id);
        io.owners.unpin(&slot.flow, self.core, now / 1_000_000);
        self.stats.add(TcpCounter::Closed, 1);
    }

    /// Resets every connection (the engine is stopping): each gets its RST
    /// with the next flush.
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

    /// Frees every connection left (the engine stops; TIME-WAIT ones too).
    pub fn free_all(&mut self, io: &mut Io<'_>, now: u64) {
        let ids: Vec<u32> = self.table.ids().collect();
        for id in ids {
            self.free(io, id, now);
        }
    }

    /// The earliest time a timer wants to run, engine µs.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.wheel.next_deadline(), self.listen_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
            let p = &s.path;
            out.push(ConnEntry {
                core: self.core as u32,
                service: names.get(s.service as usize).cloned().unwrap_or_default(),
                local: format!("{}:{}", p.local_ip, p.local_port),
                remote: format!("{}:{}", p.remote_ip, p.remote_port),
                state: s.conn.state().name().to_string(),
                age_s: now.saturating_sub(s.since) as f64 / 1e6,
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
        total
    }

    /// Publishes the stack's counters (about 40 stores: the worker does it
    /// every 100 ms and before it sleeps, not every pass).
    pub fn publish_counters(&self, st: &CoreStats) {
        st.publish_tcp(&self.stats);
    }

    /// Publishes the stack's gauges.
    pub fn publish(&self, st: &CoreStats) {
        st.set(Gauge::TcpConns, (self.table.len() as u64).saturating_sub(self.time_wait as u64));
        st.set(Gauge::TcpTimeWait, self.time_wait as u64);
        let half: u32 = self.listeners.iter().flatten().map(|l| l.listener.half_open()).sum();
        st.set(Gauge::TcpHalfOpen, half as u64);
    }
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
