//! The per-core run-to-completion loop.
//!
//! One pass: take completions back, take a batch from the rx ring and handle
//! each packet (reply in place, consume, drop, or hand off to the flow's
//! owner), take packets other cores handed over, retry handoffs that found a
//! full queue, put what is to be sent on the tx ring in one batch (one
//! sendto() kick per pass in copy mode), restock the fill ring, publish
//! gauges. The ring steps are [`Port`]'s, shared with the bench.
//!
//! When a pass finds no work the core spins (`busy`), spins a while then
//! sleeps in ppoll() (`adaptive`), or sleeps at once (`interrupt`); a sleep
//! lasts until the socket or the core's eventfd is readable or the earliest
//! timer deadline (at most [`MAX_SLEEP`], so shutdown is noticed).
use crate::afxdp::{poll_fds, Packet};
use crate::clock::Clock;
use crate::config::PollMode;
use crate::control::conns::ConnQuery;
use crate::datapath::{handle_frame, Arrival, Context, ServiceTable, Verdict};
use crate::handoff::Handoff;
use crate::idle::{IdlePolicy, IdleStreak};
use crate::ownership::OwnerDirectory;
use crate::port::{Port, ROUTE_FREE};
use crate::stats::{CoreStats, Counter, DropReason, EngineStats, Gauge};
use crate::tcp::{Input, Io, TcpCore};
use std::cell::Cell;
use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep in poll(), so a sleeping core still notices shutdown.
pub const MAX_SLEEP: Duration = Duration::from_millis(100);
/// How long a stopping core keeps draining its rings.
const DRAIN_TIME: Duration = Duration::from_millis(200);
/// Packets per destination core kept for a retry when its handoff queue is
/// full; beyond this they are dropped (counted `handoff_full`).
const HANDOFF_STASH: usize = 256;

/// Tunables of the loop.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// Frames per rx/tx batch.
    pub batch: usize,
    /// How to wait.
    pub poll: PollMode,
    /// Empty passes before an adaptive core sleeps.
    pub spin: u32,
    /// Longest time, µs, an adaptive core spins without work.
    pub spin_us: u32,
    /// Replies (not TCP segments) are dropped while more than this many
    /// packets wait for the tx ring.
    pub max_tx_backlog: usize,
}

/// What the workers share.
pub struct Shared {
    /// Services by address and port.
    pub services: ServiceTable,
    /// Flow ownership.
    pub owners: OwnerDirectory,
    /// Cross-core queues.
    pub handoff: Handoff,
    /// Everyone's stats.
    pub stats: Arc<EngineStats>,
    /// Set to stop the workers.
    pub stop: AtomicBool,
    /// The engine clock.
    pub clock: Clock,
    /// Questions for the cores' connection lists.
    pub conns: ConnQuery,
    /// The services' names, by id.
    pub service_names: Vec<String>,
}

/// One core's worker.
pub struct Worker {
    core: u16,
    port: Port,
    shared: Arc<Shared>,
    cfg: WorkerConfig,
    rx: Vec<Packet>,
    inbox: Vec<Packet>,
    /// Packets for each core whose handoff queue was full, oldest first.
    stash: Vec<VecDeque<Packet>>,
    ip_id: Cell<u16>,
    idle: IdlePolicy,
    /// The last pass restocked or rebalanced frames.
    moved: bool,
    /// Which core's handoff queue is read first.
    turn: usize,
    /// The core's TCP stack.
    tcp: TcpCore,
    /// The last connection-list question answered.
    conns_answered: u64,
}

impl Worker {
    /// A worker for `core` over its port.
    pub fn new(core: u16, port: Port, shared: Arc<Shared>, cfg: WorkerConfig, ip_id_seed: u16, tcp: TcpCore) -> Self {
        let batch = port.batch();
        let cores = shared.stats.len();
        Worker {
            core,
            port,
            cfg,
            rx: Vec::with_capacity(batch),
            inbox: Vec::with_capacity(batch),
            stash: (0..cores).map(|_| VecDeque::with_capacity(HANDOFF_STASH)).collect(),
            ip_id: Cell::new(ip_id_seed),
            idle: IdlePolicy::of_poll_mode(cfg.poll, cfg.spin, cfg.spin_us),
            moved: false,
            turn: 0,
            tcp,
            conns_answered: 0,
            shared,
        }
    }

    fn stats(&self) -> &CoreStats {
        self.shared.stats.core(self.core as usize)
    }

    /// Runs until the shared stop flag is set, then drains for a moment.
    pub fn run(mut self) {
        let mut idle = IdleStreak::default();
        let mut next_kernel_stats = 0u64;
        let mut next_gauges = 0u64;
        self.port.refill(0);
        loop {
            let now = self.shared.clock.now_us();
            let work = self.pass(now);
            if self.shared.conns.asked() != self.conns_answered {
                self.answer_conns(now);
            }
            if now >= next_kernel_stats {
                self.publish_kernel_stats();
                next_kernel_stats = now + 1_000_000;
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            // Gauges follow every pass that moved anything (frames on or off
            // rings, rebalancing) and, for a core that never sleeps, at
            // least every 100 ms.
            // The 100 ms mark moves only when it is reached: were it pushed
            // on by every busy pass, a core with work in every 100 ms (all
            // of them under load in `busy` mode, which never sleeps) would
            // never publish its TCP counters.
            let due = now >= next_gauges;
            if work > 0 || self.moved || due {
                self.publish_gauges();
                if due {
                    self.tcp.publish_counters(self.stats());
                    next_gauges = now + 100_000;
                }
            }
            if work > 0 {
                idle.reset();
                continue;
            }
            // `adaptive` yields rather than pauses while it spins (a bounded
            // time): on a shared core the thread with work (on veth, the
            // softirq doing our receive side) gets the CPU at once; with
            // nobody else runnable this is one cheap syscall per empty pass.
            if self.idle.on_idle(&mut idle, now) {
                self.sleep();
            }
        }
        self.drain();
    }

    /// One pass over the rings; returns how many packets (and TCP timer
    /// and connection events) it handled.
    fn pass(&mut self, now_us: u64) -> usize {
        // Frames TCP sent from its chunks come back to their chunks.
        let tcp = &mut self.tcp;
        let (completed, bad) = self.port.reap(|f, route| tcp.restore(f, route));
        if bad > 0 {
            self.stats().add(Counter::BadCompletions, bad as u64);
        }
        let fired =
            self.tcp.tick(&mut Io { port: &mut self.port, owners: &self.shared.owners, ip_id: &self.ip_id }, now_us);
        let received = self.receive(now_us);
        let adopted = self.adopt(now_us);
        // One answer per connection for the whole batch.
        self.tcp.flush(&mut Io { port: &mut self.port, owners: &self.shared.owners, ip_id: &self.ip_id }, now_us);
        self.retry_stash();
        let flushed = self.port.flush(Some(self.shared.stats.core(self.core as usize)));
        if let Some(e) = &flushed.kick_error {
            if self.stats().counter(Counter::TxKickErrors) == 1 {
                tracing::warn!(core = self.core, "tx kick failed (further failures are only counted): {e}");
            }
        }
        // Restocking is bookkeeping, not traffic: it does not keep the core
        // awake, but the gauges show it.
        let r = self.port.refill(received);
        self.moved = r.filled + r.lent + r.borrowed > 0;
        let st = self.stats();
        if r.lent + r.borrowed > 0 {
            st.add(Counter::FramesLent, r.lent as u64);
            st.add(Counter::FramesBorrowed, r.borrowed as u64);
        }
        if r.kicked {
            st.add(Counter::RxKicks, 1);
        }
        completed + received + adopted + flushed.sent + fired
    }

    /// Rx ring → handle each packet.
    fn receive(&mut self, now_us: u64) -> usize {
        let mut rx = std::mem::take(&mut self.rx);
        let b = self.port.receive(&mut rx);
        if b.descs > 0 {
            let st = self.stats();
            st.add(Counter::RxBatches, 1);
            st.add(Counter::RxPackets, b.descs as u64);
            st.add(Counter::RxBytes, b.bytes);
            if b.refused + b.bad_range > 0 {
                st.drop_frames(DropReason::BadDescriptor, (b.refused + b.bad_range) as u64);
            }
        }
        for p in rx.drain(..) {
            self.handle(p, Arrival::Rx, now_us);
        }
        self.rx = rx;
        b.descs
    }

    /// Inbox → handle each packet handed over by another core.
    fn adopt(&mut self, now_us: u64) -> usize {
        let mut inbox = std::mem::take(&mut self.inbox);
        let max = self.port.batch();
        self.turn = self.turn.wrapping_add(1);
        let n = self.shared.handoff.receive(self.core, max, self.turn, |p| inbox.push(p));
        if n > 0 {
            self.stats().add(Counter::HandoffIn, n as u64);
        }
        for p in inbox.drain(..) {
            self.port.took_over();
            self.handle(p, Arrival::HandedOver, now_us);
        }
        self.inbox = inbox;
        n
    }

    fn handle(&mut self, mut p: Packet, arrival: Arrival, now_us: u64) {
        let shared = &*self.shared;
        let st = shared.stats.core(self.core as usize);
        let cx = Context {
            services: &shared.services,
            owners: &shared.owners,
            core: self.core,
            now_us,
            stats: st,
            ip_id: &self.ip_id,
        };
        let verdict = match self.port.table().packet_mut(&mut p) {
            Some(bytes) => handle_frame(bytes, arrival, &cx),
            // Outside its frame: the socket never makes such packets.
            None => Verdict::Drop(DropReason::BadDescriptor),
        };
        match verdict {
            // A reply never grows past the packet it was built from.
            Verdict::Reply { len, .. } if len > p.len() as u32 => {
                st.drop_frames(DropReason::BadDescriptor, 1);
                self.port.free(p.into_frame());
            }
            Verdict::Reply { .. } if self.port.backlog() >= self.cfg.max_tx_backlog => {
                st.drop_frames(DropReason::TxBacklogFull, 1);
                self.port.free(p.into_frame());
            }
            Verdict::Reply { len, tally } => {
                let off = p.off();
                p.set_range(off, len as u16);
                self.port.send(p, ROUTE_FREE, Some(tally));
            }
            Verdict::Consumed => self.port.free(p.into_frame()),
            Verdict::Drop(r) => {
                st.drop_frames(r, 1);
                self.port.free(p.into_frame());
            }
            Verdict::HandOff(owner) => self.hand_off(owner, p),
            Verdict::Tcp(m) => {
                let io = &mut Io { port: &mut self.port, owners: &shared.owners, ip_id: &self.ip_id };
                if let Input::HandOff(owner, p) = self.tcp.input(io, p, &m, now_us) {
                    self.hand_off(owner, p);
                }
            }
        }
    }

    /// Sends `p` to `owner`'s inbox, behind anything already waiting for
    /// that core; a full queue keeps it for a retry.
    fn hand_off(&mut self, owner: u16, p: Packet) {
        let st = self.shared.stats.core(self.core as usize);
        let stash = &mut self.stash[owner as usize];
        self.port.gave_away();
        if stash.is_empty() {
            match self.shared.handoff.send(self.core, owner, p) {
                Ok(()) => st.add(Counter::HandoffOut, 1),
                Err(p) => stash.push_back(p),
            }
        } else if stash.len() < HANDOFF_STASH {
            stash.push_back(p);
        } else {
            st.drop_frames(DropReason::HandoffFull, 1);
            self.port.took_over();
            self.port.free(p.into_frame());
        }
    }

    /// Retries the stashed handoffs, oldest first, while the queues take them.
    fn retry_stash(&mut self) {
        let st = self.shared.stats.core(self.core as usize);
        for (owner, stash) in self.stash.iter_mut().enumerate() {
            while let Some(p) = stash.pop_front() {
                match self.shared.handoff.send(self.core, owner as u16, p) {
                    Ok(()) => st.add(Counter::HandoffOut, 1),
                    Err(p) => {
                        stash.push_front(p);
                        break;
                    }
                }
            }
        }
    }

    fn stashed(&self) -> usize {
        self.stash.iter().map(|s| s.len()).sum()
    }

    /// The earliest time something on this core must run without input, in
    /// engine microseconds: the TCP timers.
    fn next_deadline(&self) -> Option<u64> {
        self.tcp.next_deadline()
    }

    /// How long to sleep at `now_us`: until the next deadline, at most
    /// [`MAX_SLEEP`]; briefly when transmissions or handoffs are pending.
    fn sleep_for(&self, now_us: u64) -> Duration {
        if self.port.tx_pending() || self.stashed() > 0 || self.tcp.has_blocked() {
            // A tx backlog or a full handoff queue does not make anything
            // readable: come back soon (briefly, so a link that is down
            // cannot make us spin).
            return Duration::from_millis(1);
        }
        match self.next_deadline() {
            Some(t) => Duration::from_micros(t.saturating_sub(now_us)).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }

    fn sleep(&mut self) {
        self.publish_gauges();
        self.tcp.publish_counters(self.stats());
        // The pass's time is stale after the spin: the deadline is reckoned
        // from now.
        let now_us = self.shared.clock.now_us();
        let shared = self.shared.clone();
        if !shared.handoff.prepare_sleep(self.core) {
            return;
        }
        let xsk = self.port.socket();
        if xsk.rx_occupancy() > 0 || xsk.comp_occupancy() > 0 {
            shared.handoff.woke(self.core);
            return;
        }
        let timeout = self.sleep_for(now_us);
        if timeout.is_zero() {
            shared.handoff.woke(self.core);
            return;
        }
        self.stats().add(Counter::Sleeps, 1);
        let fds = [xsk.as_fd(), shared.handoff.waker(self.core).as_fd()];
        match poll_fds(&fds, Some(timeout)) {
            Ok(true) => self.stats().add(Counter::Wakeups, 1),
            Ok(false) => {}
            Err(e) => tracing::warn!(core = self.core, "poll: {e}"),
        }
        shared.handoff.woke(self.core);
    }

    /// After stop: keep serving what is already on the rings for a moment,
    /// so in-flight requests get their answers.
    fn drain(&mut self) {
        // Every connection is reset: the peers learn at once rather than by
        // timing out.
        let now = self.shared.clock.now_us();
        let shared = self.shared.clone();
        let io = &mut Io { port: &mut self.port, owners: &shared.owners, ip_id: &self.ip_id };
        self.tcp.abort_all(io, now);
        self.tcp.flush(io, now);
        let until = self.shared.clock.now_us() + DRAIN_TIME.as_micros() as u64;
        loop {
            let now = self.shared.clock.now_us();
            if now >= until {
                break;
            }
            let work = self.pass(now);
            if work == 0 && !self.port.tx_pending() && !self.shared.handoff.pending(self.core) && self.stashed() == 0 {
                break;
            }
        }
        // Stashed handoffs that never got through go back to the pool,
        // counted as the drops they are.
        let st = self.shared.stats.core(self.core as usize);
        for s in std::mem::take(&mut self.stash) {
            for p in s {
                st.drop_frames(DropReason::HandoffFull, 1);
                self.port.took_over();
                self.port.free(p.into_frame());
            }
        }
        // What TIME-WAIT and unanswered resets still held goes back.
        let now = self.shared.clock.now_us();
        self.tcp.free_all(&mut Io { port: &mut self.port, owners: &shared.owners, ip_id: &self.ip_id }, now);
        let tcp = &mut self.tcp;
        self.port.reap(|f, route| tcp.restore(f, route));
        self.publish_gauges();
        self.tcp.publish_counters(self.stats());
    }

    fn publish_gauges(&self) {
        let st = self.stats();
        self.port.publish_gauges(st, self.tcp.frames_held());
        st.set(Gauge::HandoffStash, self.stashed() as u64);
        self.tcp.publish(st);
    }

    /// Lists this core's connections for the control thread.
    fn answer_conns(&mut self, now: u64) {
        let q = &self.shared.conns;
        let generation = q.asked();
        let mut list = Vec::new();
        let total = self.tcp.snapshot(now, q.limit(), &q.filter(), &self.shared.service_names, &mut list);
        q.answer(self.core as usize, generation, list, total);
        self.conns_answered = generation;
    }

    fn publish_kernel_stats(&self) {
        if let Ok(k) = self.port.socket().statistics() {
            let st = self.stats();
            st.set(Gauge::XskRxRingFull, k.rx_ring_full);
            st.set(Gauge::XskRxDropped, k.rx_dropped);
            st.set(Gauge::XskFillRingEmpty, k.rx_fill_ring_empty);
            st.set(Gauge::XskTxInvalid, k.tx_invalid_descs);
        }
    }
}
