//! The per-core run-to-completion loop.
//!
//! One pass: take completions back, take a batch from the rx ring and handle
//! each frame (reply in place, consume, drop, or hand off to the flow's
//! owner), take frames other cores handed over, put the replies on the tx ring
//! in one batch (one sendto() kick per pass in copy mode), restock the fill
//! ring, publish gauges. When a pass finds no work the core spins (`busy`),
//! spins a while then sleeps in poll() (`adaptive`), or sleeps at once
//! (`interrupt`).
use crate::afxdp::{poll_fds, Desc, FrameTable, Owned, XskSocket};
use crate::config::PollMode;
use crate::datapath::{handle_frame, Arrival, Context, ServiceTable, Verdict};
use crate::handoff::Handoff;
use crate::ownership::OwnerDirectory;
use crate::pool::FramePool;
use crate::stats::{CoreStats, Counter, DropReason, EngineStats, Gauge};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest sleep in poll(), so a sleeping core still notices shutdown.
const MAX_SLEEP_MS: i32 = 100;
/// Bound on tx kicks in one pass (32 frames each on kernels before 6.17).
const MAX_KICKS_PER_PASS: usize = 64;
/// How long a stopping core keeps draining its rings.
const DRAIN_TIME: Duration = Duration::from_millis(200);

/// Tunables of the loop.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// Frames per rx/tx batch.
    pub batch: usize,
    /// How to wait.
    pub poll: PollMode,
    /// Empty passes before an adaptive core sleeps.
    pub spin: u32,
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
    /// The engine's start, the zero of `now`.
    pub epoch: Instant,
}

/// One core's worker.
pub struct Worker {
    core: u16,
    xsk: XskSocket,
    pool: FramePool,
    frames: Arc<FrameTable>,
    shared: Arc<Shared>,
    cfg: WorkerConfig,
    rx: Vec<Desc>,
    /// Replies waiting for the tx ring: the frame and its length.
    tx: Vec<(Owned, u32)>,
    descs: Vec<Desc>,
    addrs: Vec<u64>,
}

impl Worker {
    /// A worker for `core` over its socket and frames.
    pub fn new(
        core: u16,
        xsk: XskSocket,
        pool: FramePool,
        frames: Arc<FrameTable>,
        shared: Arc<Shared>,
        cfg: WorkerConfig,
    ) -> Self {
        let batch = cfg.batch.max(1);
        Worker {
            core,
            xsk,
            pool,
            frames,
            shared,
            cfg,
            rx: vec![Desc::default(); batch],
            // Room for a batch from the rx ring plus a batch from the inbox.
            tx: Vec::with_capacity(2 * batch + 64),
            descs: Vec::with_capacity(2 * batch + 64),
            addrs: vec![0; 2 * batch.max(64)],
        }
    }

    fn stats(&self) -> &CoreStats {
        self.shared.stats.core(self.core as usize)
    }

    /// Runs until the shared stop flag is set, then drains for a moment.
    pub fn run(mut self) {
        let mut idle: u32 = 0;
        let mut next_kernel_stats = Instant::now();
        self.refill(0);
        loop {
            let now = Instant::now();
            let work = self.pass(now);
            if now >= next_kernel_stats {
                self.publish_kernel_stats();
                next_kernel_stats = now + Duration::from_secs(1);
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            if work > 0 {
                idle = 0;
                self.publish_gauges();
                continue;
            }
            match self.cfg.poll {
                PollMode::Busy => std::hint::spin_loop(),
                PollMode::Adaptive if idle < self.cfg.spin => {
                    // Yield rather than pause: on a shared core the thread
                    // with work (on veth, the softirq doing our receive side)
                    // gets the CPU at once; with nobody else runnable this is
                    // one cheap syscall per empty pass.
                    idle += 1;
                    std::thread::yield_now();
                }
                PollMode::Adaptive | PollMode::Interrupt => {
                    self.sleep();
                    idle = 0;
                }
            }
        }
        self.drain();
    }

    /// One pass over the rings; returns how many frames it moved.
    fn pass(&mut self, now: Instant) -> usize {
        let now_s = now.duration_since(self.shared.epoch).as_secs();
        let mut work = self.complete();
        let received = self.receive(now_s);
        work += received + self.adopt(now_s);
        self.transmit();
        // Restocking is bookkeeping, not traffic: it does not keep the core awake.
        self.refill(received);
        work
    }

    /// Completion ring → free list.
    fn complete(&mut self) -> usize {
        let n = self.xsk.comp.consume(&mut self.addrs);
        let mut bogus = 0;
        for &a in &self.addrs[..n] {
            if !self.pool.completed(a) {
                bogus += 1;
            }
        }
        if bogus > 0 {
            self.stats().add(Counter::BadCompletions, bogus);
        }
        n
    }

    /// Rx ring → handle each frame.
    fn receive(&mut self, now_s: u64) -> usize {
        let n = self.xsk.rx.consume(&mut self.rx);
        if n == 0 {
            return 0;
        }
        let mut bytes = 0u64;
        for i in 0..n {
            let d = self.rx[i];
            bytes += d.len as u64;
            match self.pool.received(d.addr) {
                Some(f) => self.handle(f, d.len, Arrival::Rx, now_s),
                // Not a frame this core lent for rx: nothing to account or give back.
                None => self.stats().drop_frames(DropReason::BadDescriptor, 1),
            }
        }
        let st = self.stats();
        st.add(Counter::RxBatches, 1);
        st.add(Counter::RxPackets, n as u64);
        st.add(Counter::RxBytes, bytes);
        n
    }

    /// Inbox → handle each frame handed over by another core.
    fn adopt(&mut self, now_s: u64) -> usize {
        let mut taken = [Desc::default(); 64];
        let max = self.cfg.batch.min(taken.len());
        let mut k = 0;
        let n = self.shared.handoff.receive(self.core, max, |d| {
            taken[k] = d;
            k += 1;
        });
        for &d in &taken[..n] {
            match self.pool.adopted(d.addr) {
                Some(f) => self.handle(f, d.len, Arrival::HandedOver, now_s),
                None => self.stats().drop_frames(DropReason::BadDescriptor, 1),
            }
        }
        if n > 0 {
            self.stats().add(Counter::HandoffIn, n as u64);
        }
        n
    }

    fn handle(&mut self, mut f: Owned, len: u32, arrival: Arrival, now_s: u64) {
        let Worker { core, frames, shared, pool, tx, .. } = self;
        let st = shared.stats.core(*core as usize);
        let cx = Context { services: &shared.services, owners: &shared.owners, core: *core, now_s, stats: st };
        let verdict = match frames.bytes_mut(&mut f, len) {
            Some(bytes) => handle_frame(bytes, arrival, &cx),
            // Crosses a frame boundary: the kernel never makes such descriptors.
            None => Verdict::Drop(DropReason::BadDescriptor),
        };
        match verdict {
            // A reply never grows past the frame it was received in.
            Verdict::Send(out) if out > len => {
                st.drop_frames(DropReason::BadDescriptor, 1);
                pool.release(f);
            }
            Verdict::Send(out) => tx.push((f, out)),
            Verdict::Consumed => pool.release(f),
            Verdict::Drop(r) => {
                st.drop_frames(r, 1);
                pool.release(f);
            }
            Verdict::HandOff(owner) => {
                let addr = pool.handed_off(f);
                match shared.handoff.send(*core, owner, Desc { addr, len, options: 0 }) {
                    Ok(()) => st.add(Counter::HandoffOut, 1),
                    Err(d) => {
                        if let Some(f) = pool.adopted(d.addr) {
                            pool.release(f);
                        }
                        st.drop_frames(DropReason::HandoffFull, 1);
                    }
                }
            }
        }
    }

    /// Pending replies → tx ring, and one kick if the kernel wants it.
    fn transmit(&mut self) {
        if !self.tx.is_empty() {
            let room = self.xsk.tx.free(self.tx.len() as u32) as usize;
            let k = room.min(self.tx.len());
            let st = self.shared.stats.core(self.core as usize);
            self.descs.clear();
            let mut bytes = 0u64;
            for (f, len) in self.tx.drain(..k) {
                bytes += len as u64;
                let addr = self.pool.lend_for_tx(f);
                self.descs.push(Desc { addr, len, options: 0 });
            }
            // Single producer and `free` said there was room for all k, so
            // n == k; should the ring still take fewer, the rest are not lost.
            let n = self.xsk.tx.produce(&self.descs);
            for d in &self.descs[n..] {
                st.drop_frames(DropReason::TxRingFull, 1);
                self.pool.completed(d.addr);
            }
            for (f, _) in self.tx.drain(..) {
                st.drop_frames(DropReason::TxRingFull, 1);
                self.pool.release(f);
            }
            if n > 0 {
                st.add(Counter::TxPackets, n as u64);
                st.add(Counter::TxBytes, bytes);
                st.add(Counter::TxBatches, 1);
            }
        }
        // One kick sends the whole ring when the kernel took our
        // XDP_MAX_TX_SKB_BUDGET; older kernels stop after 32 frames, so kick
        // again while the ring keeps draining (bounded).
        let mut pending = self.xsk.tx.occupancy();
        for _ in 0..MAX_KICKS_PER_PASS {
            if pending == 0 || !self.xsk.tx.needs_wakeup() {
                break;
            }
            self.stats().add(Counter::TxKicks, 1);
            if let Err(e) = self.xsk.kick_tx() {
                // Logged once; the counter tells whether it persists.
                if self.stats().counter(Counter::TxKickErrors) == 0 {
                    tracing::warn!(core = self.core, "tx kick failed (further failures are only counted): {e}");
                }
                self.stats().add(Counter::TxKickErrors, 1);
                break;
            }
            let left = self.xsk.tx.occupancy();
            if left >= pending {
                break;
            }
            pending = left;
        }
    }

    /// Free list → fill ring, after rebalancing with the other cores. The
    /// fill ring is kicked whenever the kernel asks and nothing arrived this
    /// pass, not only after producing: a wakeup lost to a race is retried.
    fn refill(&mut self, received: usize) {
        let (lent, borrowed) = self.pool.rebalance();
        if lent + borrowed > 0 {
            let st = self.stats();
            st.add(Counter::FramesLent, lent as u64);
            st.add(Counter::FramesBorrowed, borrowed as u64);
        }
        let room = self.xsk.fill.free(self.cfg.batch as u32) as usize;
        let k = room.min(self.pool.free_len());
        let n = if k > 0 { self.xsk.fill.produce(self.pool.free_tail(k)) } else { 0 };
        self.pool.lend_for_rx(k, n);
        if (n > 0 || received == 0) && self.xsk.fill.occupancy() > 0 && self.xsk.fill.needs_wakeup() {
            self.stats().add(Counter::RxKicks, 1);
            self.xsk.kick_rx();
        }
    }

    fn sleep(&mut self) {
        self.publish_gauges();
        let shared = self.shared.clone();
        if !shared.handoff.prepare_sleep(self.core) {
            return;
        }
        if self.xsk.rx.occupancy() > 0 || self.xsk.comp.occupancy() > 0 {
            shared.handoff.woke(self.core);
            return;
        }
        self.stats().add(Counter::Sleeps, 1);
        // A tx backlog does not make the socket readable: come back soon to
        // kick it again (briefly, so a link that is down cannot make us spin).
        // (Counted by the pool, not the ring: in zero-copy mode frames the
        // driver took but has not completed are off the ring yet not back.)
        let timeout = if self.pool.counts().tx > 0 { 1 } else { MAX_SLEEP_MS };
        let fds = [self.xsk.as_fd(), shared.handoff.waker(self.core).as_fd()];
        match poll_fds(&fds, timeout) {
            Ok(true) => self.stats().add(Counter::Wakeups, 1),
            Ok(false) => {}
            Err(e) => tracing::warn!(core = self.core, "poll: {e}"),
        }
        shared.handoff.woke(self.core);
    }

    /// After stop: keep serving what is already on the rings for a moment,
    /// so in-flight requests get their answers, then hand frames back.
    fn drain(&mut self) {
        let until = Instant::now() + DRAIN_TIME;
        while Instant::now() < until {
            let work = self.pass(Instant::now());
            if work == 0 && self.xsk.tx.occupancy() == 0 && !self.shared.handoff.pending(self.core) {
                break;
            }
        }
        self.publish_gauges();
    }

    fn publish_gauges(&self) {
        let st = self.stats();
        st.set(Gauge::FillRing, self.xsk.fill.occupancy() as u64);
        st.set(Gauge::RxRing, self.xsk.rx.occupancy() as u64);
        st.set(Gauge::TxRing, self.xsk.tx.occupancy() as u64);
        st.set(Gauge::CompRing, self.xsk.comp.occupancy() as u64);
        let c = self.pool.counts();
        st.set(Gauge::FramesFree, c.free as u64);
        st.set(Gauge::FramesRx, c.rx as u64);
        st.set(Gauge::FramesTx, c.tx as u64);
        st.set(Gauge::FramesInHand, c.in_hand as u64);
    }

    fn publish_kernel_stats(&self) {
        if let Ok(k) = self.xsk.statistics() {
            let st = self.stats();
            st.set(Gauge::XskRxRingFull, k.rx_ring_full);
            st.set(Gauge::XskRxDropped, k.rx_dropped);
            st.set(Gauge::XskFillRingEmpty, k.rx_fill_ring_empty);
            st.set(Gauge::XskTxInvalid, k.tx_invalid_descs);
        }
    }
}
