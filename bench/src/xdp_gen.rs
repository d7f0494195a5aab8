//! The AF_XDP closed-loop UDP generator.
//!
//! A kernel-socket generator costs more CPU per transaction than the server
//! under test (design.md, "Measuring on veth"), so this one bypasses the
//! client's stack too. On the client interface it loads sluice's own XDP
//! program with one "service" per generator source port (`client_ip:port`,
//! UDP), so the replies to our flows are steered to one AF_XDP socket per
//! queue; everything else (ARP) stays with the kernel. All sockets share one
//! UMEM, each queue's thread owns its socket and a fixed range of frames.
//!
//! The closed loop: every queue injects `window` requests at start, and any
//! thread turns every reply it receives (on any queue: a kernel server's
//! replies all arrive on one) back into the next request of the same slot,
//! in place, and sends it from its own socket. So `window × queues`
//! requests are in flight. A request unanswered for [`LOSS_TIMEOUT`] is
//! counted lost and its slot re-injected by its owning queue, so losses do
//! not shrink the window.
//!
//! A slot's state (generation and send time) is one atomic word; the reply
//! path and the loss timer race for it with compare-and-swap, so each
//! generation is answered or declared lost exactly once.
use crate::frame::{build_request, check_reply, frame_len, turnaround, FlowAddrs};
use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::Serialize;
use sluice_ebpf::abi::ServiceKey;
use sluice_engine::afxdp::{open_queues, poll_fds, BindMode, FrameTable, Packet};
use sluice_engine::idle::{IdlePolicy, IdleStreak};
use sluice_engine::pool::SharedFrames;
use sluice_engine::port::{Port, ROUTE_FREE};
use sluice_engine::steering::Steering;
use sluice_engine::wire::ip_proto;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request without a reply for this long is lost and sent again.
pub const LOSS_TIMEOUT: Duration = Duration::from_millis(100);
/// How often a queue looks for lost requests.
const SCAN_INTERVAL: Duration = Duration::from_millis(10);
/// UMEM frame size.
const FRAME_SIZE: u32 = 2048;
/// Frames taken from the rx/completion rings per pass.
const BATCH: usize = 64;
/// Longest sleep in poll().
const SLEEP: Duration = Duration::from_millis(10);
/// Largest `window × queues`.
pub const MAX_IN_FLIGHT: u32 = 8192;
/// Largest window per queue.
pub const MAX_WINDOW: u32 = 1024;
/// Largest open-loop rate, requests/s in all.
pub const MAX_RATE: f64 = 50_000_000.0;
/// Requests an open-loop queue sends in one burst at most, when it is behind
/// its schedule.
const MAX_BURST: u64 = 256;
/// How often an open-loop queue wakes up: it sends whatever fell due since
/// and takes whatever replies arrived. Waking per request or per reply (a
/// few µs apart at these rates) would cost the generator a whole core and
/// starve the target on a 2-core machine; a client that sleeps this long
/// adds at most one tick to the latency it measures, the same for every
/// target.
pub const OPEN_LOOP_TICK: Duration = Duration::from_micros(25);
/// Highest latency tracked, µs.
const MAX_LATENCY_US: u64 = 60_000_000;

const SENT_BITS: u32 = 40;
const SENT_MASK: u64 = (1 << SENT_BITS) - 1;
const GEN_MASK: u64 = (1 << (64 - SENT_BITS)) - 1;

/// Packs a slot's generation (24 bits) and send time (µs since the
/// generator's epoch, 40 bits) into one word.
fn pack(gen: u64, sent_us: u64) -> u64 {
    (gen & GEN_MASK) << SENT_BITS | (sent_us & SENT_MASK)
}

fn gen_of(state: u64) -> u64 {
    state >> SENT_BITS
}

fn sent_of(state: u64) -> u64 {
    state & SENT_MASK
}

/// The sequence number a request of `slot`, generation `gen` carries.
pub fn seq_of(slot: u32, gen: u64) -> u64 {
    (slot as u64) << 32 | (gen & GEN_MASK)
}

/// Slot and generation of a sequence number.
pub fn split_seq(seq: u64) -> (u32, u64) {
    ((seq >> 32) as u32, seq & 0xFFFF_FFFF)
}

/// What the generator runs on and sends.
#[derive(Clone, Debug)]
pub struct XdpGenConfig {
    /// The client interface (in the namespace the generator is started in).
    pub interface: String,
    /// Queues of the interface to use (0..queues), one socket and thread each.
    pub queues: u32,
    /// Addresses, ports and flows.
    pub addrs: FlowAddrs,
    /// Requests in flight per queue.
    pub window: u32,
    /// UDP payload bytes.
    pub payload_len: usize,
    /// Pin queue q's thread to CPU q (mod the CPU count).
    pub pin: bool,
    /// Threads stop by themselves after this long, whatever happens.
    pub max_run: Duration,
    /// What a queue thread does when it finds no work.
    pub idle: IdlePolicy,
    /// Open loop: send this many requests per second in all (split evenly
    /// over the queues) on a fixed schedule, whatever the replies do, and
    /// measure latency from each request's *intended* send time (so a
    /// stall of the target or of the generator shows in the latency rather
    /// than silently lowering the load, as wrk2 does). `None`: closed loop.
    pub rate: Option<f64>,
}

impl XdpGenConfig {
    /// Checks sizes and addresses.
    pub fn validate(&self) -> anyhow::Result<()> {
        let a = &self.addrs;
        if !sluice_lab::is_lab_addr(a.client_ip) || !sluice_lab::is_lab_addr(*a.server.ip()) {
            bail!("generator addresses must be in 198.18.0.0/15 ({} -> {})", a.client_ip, a.server);
        }
        if !(1..=sluice_ebpf::abi::MAX_QUEUES).contains(&self.queues) {
            bail!("queues is {}; the generator serves 1..={}", self.queues, sluice_ebpf::abi::MAX_QUEUES);
        }
        if u32::from(a.flows) > sluice_ebpf::abi::MAX_SERVICES {
            bail!("{} flows: the XDP program steers at most {}", a.flows, sluice_ebpf::abi::MAX_SERVICES);
        }
        if u32::from(a.flows) < self.queues {
            bail!("{} flows cannot cover {} queues (each queue needs its own source ports)", a.flows, self.queues);
        }
        if a.base_port.checked_add(a.flows).is_none() || a.base_port == 0 {
            bail!("source ports {}..+{} do not fit", a.base_port, a.flows);
        }
        if !(1..=MAX_WINDOW).contains(&self.window) || self.window * self.queues > MAX_IN_FLIGHT {
            bail!(
                "window {} × {} queues: the window must be 1..={MAX_WINDOW} and window × queues at most {MAX_IN_FLIGHT}",
                self.window,
                self.queues
            );
        }
        if let Some(r) = self.rate {
            if !(1.0..=MAX_RATE).contains(&r) {
                bail!("rate {r} requests/s must be 1..={MAX_RATE}");
            }
        }
        if frame_len(self.payload_len) > (FRAME_SIZE - 256) as usize
            || !(crate::kernel_gen::MIN_PAYLOAD..=crate::frame::MAX_PAYLOAD).contains(&self.payload_len)
        {
            bail!(
                "payload size {} must be {}..={}",
                self.payload_len,
                crate::kernel_gen::MIN_PAYLOAD,
                crate::frame::MAX_PAYLOAD
            );
        }
        Ok(())
    }

    /// Ring size: room for every request in flight on one queue.
    fn ring_size(&self) -> u32 {
        (self.window * self.queues).next_power_of_two().max(2048)
    }

    /// The flow (source port index) of the `k`-th slot of queue `q`: each
    /// queue has its own ports (`i ≡ q mod queues`), so a flow starts on
    /// one queue only.
    pub fn flow_of_slot(&self, q: u32, k: u32) -> u16 {
        flow_of_slot(self.addrs.flows, self.queues, q, k)
    }
}

/// See [`XdpGenConfig::flow_of_slot`].
pub fn flow_of_slot(flows: u16, queues: u32, q: u32, k: u32) -> u16 {
    let flows = u32::from(flows);
    let per_queue = (flows - q).div_ceil(queues).max(1);
    (q + queues * (k % per_queue)) as u16
}

/// Counters, summed over queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GenCounters {
    /// Correct replies to the current request of their slot.
    pub replies: u64,
    /// Requests sent (initial, turned around, re-injected).
    pub sent: u64,
    /// Requests declared lost after [`LOSS_TIMEOUT`] (and re-injected).
    pub lost: u64,
    /// Frames that were not a correct reply (wrong payload, length, addresses).
    pub mismatched: u64,
    /// Correct replies to a request already declared lost.
    pub late: u64,
    /// Passes that left requests waiting for room on the tx ring.
    pub tx_full: u64,
    /// Frames received.
    pub received: u64,
}

impl GenCounters {
    /// `self - earlier`, field by field.
    pub fn since(&self, e: &GenCounters) -> GenCounters {
        GenCounters {
            replies: self.replies - e.replies,
            sent: self.sent - e.sent,
            lost: self.lost - e.lost,
            mismatched: self.mismatched - e.mismatched,
            late: self.late - e.late,
            tx_full: self.tx_full - e.tx_full,
            received: self.received - e.received,
        }
    }
}

#[derive(Default)]
#[repr(align(128))]
struct QueueCounters {
    replies: AtomicU64,
    sent: AtomicU64,
    lost: AtomicU64,
    mismatched: AtomicU64,
    late: AtomicU64,
    tx_full: AtomicU64,
    received: AtomicU64,
}

impl QueueCounters {
    fn publish(&self, c: &GenCounters) {
        self.replies.store(c.replies, Ordering::Relaxed);
        self.sent.store(c.sent, Ordering::Relaxed);
        self.lost.store(c.lost, Ordering::Relaxed);
        self.mismatched.store(c.mismatched, Ordering::Relaxed);
        self.late.store(c.late, Ordering::Relaxed);
        self.tx_full.store(c.tx_full, Ordering::Relaxed);
        self.received.store(c.received, Ordering::Relaxed);
    }

    fn read(&self) -> GenCounters {
        GenCounters {
            replies: self.replies.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            mismatched: self.mismatched.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            tx_full: self.tx_full.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }
}

/// What the queues share.
struct Shared {
    cfg: XdpGenConfig,
    /// Open loop: how late the queue threads woke from their sleeps, µs
    /// (merged at the end; not on the packet path).
    wake_late: std::sync::Mutex<Histogram<u64>>,
    slots: Vec<AtomicU64>,
    counters: Vec<QueueCounters>,
    stop: AtomicBool,
    measuring: AtomicBool,
    epoch: Instant,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// What a finished run leaves.
#[derive(Debug)]
pub struct GenFinal {
    /// Request→reply latency (µs) of replies received while measuring.
    pub latency_us: Histogram<u64>,
    /// Open loop: how late the generator woke from its sleeps while
    /// measuring, µs (its own share of the latencies).
    pub wake_late_us: Histogram<u64>,
    /// Errors of queue threads.
    pub errors: Vec<String>,
}

/// A running generator. Stop it with [`XdpGen::stop`]; dropping it stops it too.
pub struct XdpGen {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<Histogram<u64>, String>>>,
    steering: Option<Steering>,
    ns: String,
    /// "copy" or "zero-copy".
    pub socket_mode: &'static str,
    /// "driver" or "skb".
    pub xdp_mode: &'static str,
}

impl XdpGen {
    /// Sets up steering, UMEM and sockets in namespace `ns` and starts one
    /// thread per queue (in `ns`), which begin sending at once.
    pub fn start(ns: &str, cfg: XdpGenConfig) -> anyhow::Result<XdpGen> {
        cfg.validate()?;
        sluice_lab::Lab::run_in(ns, || Self::start_here(ns, cfg))?
    }

    fn start_here(ns: &str, cfg: XdpGenConfig) -> anyhow::Result<XdpGen> {
        let ifindex = nix::net::if_::if_nametoindex(cfg.interface.as_str())
            .with_context(|| format!("interface {} in {ns}", cfg.interface))?;
        let (mut steering, _counters) = Steering::load()?;
        let a = cfg.addrs;
        for i in 0..a.flows {
            steering.add_service(ServiceKey::new(ip_proto::UDP, IpAddr::V4(a.client_ip), a.port(i)), u32::from(i))?;
        }
        let ring = cfg.ring_size();
        let frames_per_queue = 2 * ring;
        let table =
            FrameTable::create(frames_per_queue * cfg.queues, FRAME_SIZE).context("mapping the generator's UMEM")?;
        let sockets = open_queues(&table, ifindex, cfg.queues, ring, BindMode::Auto)?;
        for (q, s) in sockets.iter().enumerate() {
            steering.set_socket(q as u32, s)?;
        }
        let socket_mode = sockets[0].mode().as_str();
        let window = cfg.window;
        let queues = cfg.queues;
        let shared = Arc::new(Shared {
            slots: (0..window * queues).map(|_| AtomicU64::new(0)).collect(),
            counters: (0..queues).map(|_| QueueCounters::default()).collect(),
            stop: AtomicBool::new(false),
            measuring: AtomicBool::new(false),
            epoch: Instant::now(),
            wake_late: std::sync::Mutex::new(new_histogram()),
            cfg,
        });
        let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut gen = XdpGen {
            shared: shared.clone(),
            threads: Vec::new(),
            steering: None,
            ns: ns.to_string(),
            socket_mode,
            xdp_mode: "none",
        };
        let pools = SharedFrames::new(table.clone()).split(queues as u16);
        for (q, (xsk, pool)) in sockets.into_iter().zip(pools).enumerate() {
            let q = q as u32;
            let ctx = QueueCtx {
                q,
                port: Port::new(xsk, pool, BATCH),
                shared: shared.clone(),
                cpu: shared.cfg.pin.then_some(q as usize % ncpu),
            };
            let h = std::thread::Builder::new()
                .name(format!("xgen-{q}"))
                .spawn(move || run_queue(ctx))
                .context("spawning a generator thread")?;
            gen.threads.push(h);
        }
        // Attach last: the sockets are in the map and their fill rings stocked
        // soon after; until then the program passes frames to the kernel.
        steering.attach(&shared.cfg.interface, ifindex)?;
        gen.xdp_mode = steering.mode();
        gen.steering = Some(steering);
        Ok(gen)
    }

    /// The counters now, summed over queues.
    pub fn counters(&self) -> GenCounters {
        let mut t = GenCounters::default();
        for c in &self.shared.counters {
            let c = c.read();
            t.replies += c.replies;
            t.sent += c.sent;
            t.lost += c.lost;
            t.mismatched += c.mismatched;
            t.late += c.late;
            t.tx_full += c.tx_full;
            t.received += c.received;
        }
        t
    }

    /// Latencies are recorded only while measuring.
    pub fn set_measuring(&self, on: bool) {
        self.shared.measuring.store(on, Ordering::Relaxed);
    }

    /// Whether every queue thread is still running.
    pub fn running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stops the threads, detaches the program (in its namespace) and
    /// returns the merged latency histogram and any thread errors.
    pub fn stop(mut self) -> GenFinal {
        self.shutdown()
    }

    fn shutdown(&mut self) -> GenFinal {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        let mut latency_us = new_histogram();
        for (q, t) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            match t.join() {
                Ok(Ok(h)) => {
                    if let Err(e) = latency_us.add(&h) {
                        errors.push(format!("queue {q}: merging latencies: {e}"));
                    }
                }
                Ok(Err(e)) => errors.push(format!("queue {q}: {e}")),
                Err(_) => errors.push(format!("queue {q}: thread panicked")),
            }
        }
        if let Some(mut s) = self.steering.take() {
            // Detach from inside the namespace (netlink-based links need it).
            let detached = sluice_lab::Lab::run_in(&self.ns, move || s.detach());
            if let Err(e) = detached {
                errors.push(format!("detaching the generator's XDP program: {e}"));
            }
        }
        let wake_late_us = self.shared.wake_late.lock().map(|h| h.clone()).unwrap_or_else(|_| new_histogram());
        GenFinal { latency_us, wake_late_us, errors }
    }
}

impl Drop for XdpGen {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.steering.is_some() {
            self.shutdown();
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

struct QueueCtx {
    q: u32,
    port: Port,
    shared: Arc<Shared>,
    cpu: Option<usize>,
}

fn run_queue(mut c: QueueCtx) -> Result<Histogram<u64>, String> {
    if let Some(cpu) = c.cpu {
        // Not fatal: an unpinned generator still measures, just less steadily.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    if let Some(rate) = c.shared.cfg.rate {
        return run_open_loop(c, rate);
    }
    let sh = c.shared.clone();
    let cfg = &sh.cfg;
    let deadline = Instant::now() + cfg.max_run;
    let mut hist = new_histogram();
    let mut n = GenCounters::default();
    let mut rx: Vec<Packet> = Vec::with_capacity(BATCH);
    let payload = cfg.payload_len;
    let window = cfg.window;
    let my_slots = c.q * window..(c.q + 1) * window;
    let port = &mut c.port;

    // The first window, then stock the fill ring.
    let now_us = sh.now_us();
    for slot in my_slots.clone() {
        let flow = cfg.flow_of_slot(c.q, slot - my_slots.start);
        let mut f = port.alloc().ok_or("no free frame for the first window")?;
        sh.slots[slot as usize].store(pack(0, now_us), Ordering::Relaxed);
        let buf = port.table().frame_mut(&mut f);
        let Some(len) = build_request(buf, &cfg.addrs, flow, seq_of(slot, 0), payload) else {
            port.free(f);
            return Err("cannot build a request".into());
        };
        port.send(Packet::new(f, 0, len as u16), ROUTE_FREE, None);
    }
    port.refill(0);

    let mut idle = IdleStreak::default();
    let clock = Instant::now();
    let mut next_scan = Instant::now() + SCAN_INTERVAL;
    let mut published = GenCounters::default();
    while !sh.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("still running after {:?}; stopped", cfg.max_run));
        }
        // Completions: sent frames come back.
        let mut work = port.reap(|f, _| Some(f)).0;

        // Replies: each becomes the next request of its slot.
        let b = port.receive(&mut rx);
        n.mismatched += (b.refused + b.bad_range) as u64;
        if b.descs > 0 {
            work += b.descs;
            n.received += b.descs as u64;
            let now_us = sh.now_us();
            let measuring = sh.measuring.load(Ordering::Relaxed);
            for mut p in rx.drain(..) {
                match on_reply(port.table(), &mut p, &sh, now_us) {
                    Reply::Next { len, latency_us } => {
                        n.replies += 1;
                        if measuring {
                            hist.saturating_record(latency_us.max(1));
                        }
                        let off = p.off();
                        p.set_range(off, len as u16);
                        port.send(p, ROUTE_FREE, None);
                    }
                    Reply::Late => {
                        n.late += 1;
                        port.free(p.into_frame());
                    }
                    Reply::Mismatched => {
                        n.mismatched += 1;
                        port.free(p.into_frame());
                    }
                }
            }
        }

        // Lost requests of our slots: declare and re-inject.
        if now >= next_scan {
            next_scan = now + SCAN_INTERVAL;
            let now_us = sh.now_us();
            let timeout = LOSS_TIMEOUT.as_micros() as u64;
            for slot in my_slots.clone() {
                let st = sh.slots[slot as usize].load(Ordering::Acquire);
                if now_us.saturating_sub(sent_of(st)) < timeout {
                    continue;
                }
                let Some(mut f) = port.alloc() else { break };
                let gen = (gen_of(st) + 1) & GEN_MASK;
                if sh.slots[slot as usize]
                    .compare_exchange(st, pack(gen, now_us), Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    port.free(f);
                    continue;
                }
                n.lost += 1;
                let flow = cfg.flow_of_slot(c.q, slot - my_slots.start);
                let buf = port.table().frame_mut(&mut f);
                let Some(len) = build_request(buf, &cfg.addrs, flow, seq_of(slot, gen), payload) else {
                    port.free(f);
                    return Err("cannot build a request".into());
                };
                port.send(Packet::new(f, 0, len as u16), ROUTE_FREE, None);
            }
        }

        // Send.
        let flushed = port.flush(None);
        n.sent += flushed.sent as u64;
        n.tx_full += u64::from(port.backlog() > 0);
        if let Some(e) = flushed.kick_error {
            return Err(format!("tx kick: {e}"));
        }
        port.refill(b.descs);

        if n != published {
            sh.counters[c.q as usize].publish(&n);
            published = n;
        }
        let pending_tx = port.tx_pending();
        if work > 0 || pending_tx {
            idle.reset();
            continue;
        }
        let xsk = port.socket();
        if cfg.idle.on_idle(&mut idle, clock.elapsed().as_micros() as u64)
            && xsk.rx_occupancy() == 0
            && xsk.comp_occupancy() == 0
        {
            poll_fds(&[xsk.as_fd()], Some(SLEEP)).map_err(|e| format!("poll: {e}"))?;
        }
    }
    sh.counters[c.q as usize].publish(&n);
    Ok(hist)
}

/// Open loop on one queue: request k of this queue is due at `start + k /
/// rate_q`; whatever is due is sent (in bursts of at most [`MAX_BURST`] when
/// behind), and each request's sequence number is its intended send time in
/// µs, so a reply's latency is measured from when it *should* have left.
/// Replies are checked byte for byte like the closed loop's; their frames go
/// back to the free list. Between passes the thread sleeps for
/// [`OPEN_LOOP_TICK`] (or until the next request is due, if later), on a
/// timer only (no spinning, and no wakeup per reply: a generator that burns
/// a core makes every target look as busy as itself).
fn run_open_loop(mut c: QueueCtx, rate: f64) -> Result<Histogram<u64>, String> {
    // (Pinned by run_queue.) Like a real client, the thread sleeps until its next request is due;
    // the default 50 µs timer slack would make it late by that much.
    let _ = nix::sys::prctl::set_timerslack(1_000);
    let sh = c.shared.clone();
    let cfg = &sh.cfg;
    let deadline = Instant::now() + cfg.max_run;
    let mut hist = new_histogram();
    let mut n = GenCounters::default();
    let mut published = GenCounters::default();
    let mut rx: Vec<Packet> = Vec::with_capacity(BATCH);
    let port = &mut c.port;
    let per_queue = rate / cfg.queues as f64;
    let interval_us = 1e6 / per_queue;
    // Each queue starts at its own offset within one interval, so the queues
    // do not send in lockstep.
    let start_us = sh.now_us() as f64 + interval_us * c.q as f64 / cfg.queues as f64;
    let flows: Vec<u16> = (0..cfg.window.max(1)).map(|k| cfg.flow_of_slot(c.q, k)).collect();
    let mut issued: u64 = 0;
    let mut late_hist = new_histogram();
    port.refill(0);
    while !sh.stop.load(Ordering::Relaxed) {
        if Instant::now() >= deadline {
            return Err(format!("still running after {:?}; stopped", cfg.max_run));
        }
        port.reap(|f, _| Some(f));
        let b = port.receive(&mut rx);
        n.mismatched += (b.refused + b.bad_range) as u64;
        let now_us = sh.now_us();
        if b.descs > 0 {
            n.received += b.descs as u64;
            let measuring = sh.measuring.load(Ordering::Relaxed);
            for mut p in rx.drain(..) {
                let checked =
                    port.table().packet_mut(&mut p).and_then(|buf| check_reply(buf, &cfg.addrs, cfg.payload_len));
                match checked {
                    Some((_, intended_us)) if intended_us <= now_us => {
                        let latency = now_us - intended_us;
                        if latency > LOSS_TIMEOUT.as_micros() as u64 {
                            n.late += 1;
                        } else {
                            n.replies += 1;
                        }
                        if measuring {
                            hist.saturating_record(latency.max(1));
                        }
                    }
                    _ => n.mismatched += 1,
                }
                port.free(p.into_frame());
            }
        }
        // Whatever is due by now, in intended-time order.
        let due = (((now_us as f64 - start_us) / interval_us).floor().max(-1.0) + 1.0) as u64;
        let mut burst = 0;
        while issued < due && burst < MAX_BURST {
            let Some(mut f) = port.alloc() else { break };
            let intended = (start_us + issued as f64 * interval_us) as u64;
            let flow = flows[(issued % flows.len() as u64) as usize];
            let buf = port.table().frame_mut(&mut f);
            let Some(len) = build_request(buf, &cfg.addrs, flow, intended, cfg.payload_len) else {
                port.free(f);
                return Err("cannot build a request".into());
            };
            port.send(Packet::new(f, 0, len as u16), ROUTE_FREE, None);
            issued += 1;
            burst += 1;
        }
        let flushed = port.flush(None);
        n.sent += flushed.sent as u64;
        n.tx_full += u64::from(port.backlog() > 0);
        if let Some(e) = flushed.kick_error {
            return Err(format!("tx kick: {e}"));
        }
        port.refill(b.descs);
        if n != published {
            sh.counters[c.q as usize].publish(&n);
            published = n;
        }
        if port.tx_pending() || burst == MAX_BURST {
            continue;
        }
        let next_us = start_us + issued as f64 * interval_us;
        let until_due = Duration::from_micros((next_us - sh.now_us() as f64).max(0.0) as u64);
        let planned = until_due.clamp(OPEN_LOOP_TICK, SLEEP);
        let t0 = Instant::now();
        std::thread::sleep(planned);
        // How late the generator itself woke: its share of the latencies.
        if sh.measuring.load(Ordering::Relaxed) {
            late_hist.saturating_record((t0.elapsed().saturating_sub(planned).as_micros() as u64).max(1));
        }
    }
    sh.counters[c.q as usize].publish(&n);
    if let Ok(mut w) = sh.wake_late.lock() {
        let _ = w.add(&late_hist);
    }
    Ok(hist)
}

enum Reply {
    /// The next request is in the frame, `len` bytes.
    Next { len: u32, latency_us: u64 },
    /// A correct reply to a request already given up.
    Late,
    /// Not a correct reply.
    Mismatched,
}

fn on_reply(table: &FrameTable, p: &mut Packet, sh: &Shared, now_us: u64) -> Reply {
    let cfg = &sh.cfg;
    let Some(buf) = table.packet_mut(p) else { return Reply::Mismatched };
    let Some((flow, seq)) = check_reply(buf, &cfg.addrs, cfg.payload_len) else { return Reply::Mismatched };
    let (slot, gen) = split_seq(seq);
    let Some(state) = sh.slots.get(slot as usize) else { return Reply::Mismatched };
    // A slot's flow is fixed: a reply naming another flow is corrupt.
    if cfg.flow_of_slot(slot / cfg.window, slot % cfg.window) != flow {
        return Reply::Mismatched;
    }
    let st = state.load(Ordering::Acquire);
    if gen_of(st) != gen {
        return Reply::Late;
    }
    let next = (gen + 1) & GEN_MASK;
    if state.compare_exchange(st, pack(next, now_us), Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return Reply::Late;
    }
    match turnaround(buf, flow, seq_of(slot, next), cfg.payload_len) {
        Some(len) => Reply::Next { len: len as u32, latency_us: now_us.saturating_sub(sent_of(st)) },
        // Cannot happen after check_reply; the slot would time out and be re-sent.
        None => Reply::Mismatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn cfg(queues: u32, flows: u16, window: u32) -> XdpGenConfig {
        XdpGenConfig {
            interface: "sluice1".into(),
            queues,
            addrs: FlowAddrs {
                client_mac: [2, 0, 0, 0, 0, 1],
                server_mac: [2, 0, 0, 0, 0, 2],
                client_ip: Ipv4Addr::new(198, 18, 0, 1),
                server: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7),
                base_port: 40000,
                flows,
            },
            window,
            payload_len: 64,
            pin: false,
            max_run: Duration::from_secs(10),
            idle: IdlePolicy::spin(10),
            rate: None,
        }
    }

    #[test]
    fn slot_state_packs_and_sequence_numbers_split() {
        let st = pack(0xABCDEF, 123_456_789);
        assert_eq!(gen_of(st), 0xABCDEF);
        assert_eq!(sent_of(st), 123_456_789);
        assert_eq!(gen_of(pack(GEN_MASK + 5, 0)), 4, "generations wrap at 24 bits");
        assert_eq!(split_seq(seq_of(77, 0x123456)), (77, 0x123456));
    }

    #[test]
    fn each_queue_has_its_own_flows() {
        for (q, f) in [(2u32, 64u16), (3, 64), (2, 3), (4, 4), (1, 64)] {
            let c = cfg(q, f, 64);
            let mut seen: Vec<HashSet<u16>> = vec![HashSet::new(); q as usize];
            for queue in 0..q {
                for k in 0..64 {
                    let flow = c.flow_of_slot(queue, k);
                    assert!(flow < f, "flow {flow} of {f}");
                    assert_eq!(u32::from(flow) % q, queue, "flow {flow} belongs to queue {}", u32::from(flow) % q);
                    seen[queue as usize].insert(flow);
                }
            }
            let all: usize = seen.iter().map(|s| s.len()).sum();
            assert_eq!(all, usize::from(f).min(64 * q as usize), "every flow used ({q} queues, {f} flows)");
        }
    }

    #[test]
    fn configs_are_validated() {
        assert!(cfg(2, 64, 64).validate().is_ok());
        assert!(cfg(2, 1, 64).validate().is_err(), "fewer flows than queues");
        assert!(cfg(2, 64, 0).validate().is_err());
        assert!(cfg(2, 64, MAX_WINDOW + 1).validate().is_err());
        assert!(cfg(16, 64, 1024).validate().is_err(), "too many in flight");
        let mut c = cfg(2, 64, 64);
        c.payload_len = 4;
        assert!(c.validate().is_err());
        let mut c = cfg(2, 64, 64);
        c.addrs.client_ip = Ipv4Addr::new(10, 0, 0, 1);
        assert!(c.validate().is_err(), "outside 198.18.0.0/15");
        let mut c = cfg(2, 64, 64);
        c.addrs.base_port = 65500;
        assert!(c.validate().is_err());
        let mut c = cfg(2, 64, 64);
        c.rate = Some(0.0);
        assert!(c.validate().is_err(), "a rate of zero");
        c.rate = Some(f64::NAN);
        assert!(c.validate().is_err());
        c.rate = Some(100_000.0);
        assert!(c.validate().is_ok());
        assert_eq!(cfg(2, 64, 64).ring_size(), 2048);
        assert_eq!(cfg(4, 64, 1024).ring_size(), 4096);
    }

    #[test]
    fn counters_subtract() {
        let a = GenCounters { replies: 10, sent: 20, lost: 1, mismatched: 2, late: 3, tx_full: 0, received: 15 };
        let b = GenCounters { replies: 15, sent: 26, lost: 1, mismatched: 2, late: 4, tx_full: 1, received: 21 };
        let d = b.since(&a);
        assert_eq!((d.replies, d.sent, d.late, d.tx_full, d.received), (5, 6, 1, 1, 6));
    }
}
