//! Puts the engine together and takes it apart again.
//!
//! Start-up order, each step undone if a later one fails: check the config
//! against the system, load the XDP program (verifier), fill the services map,
//! map the UMEM, open one AF_XDP socket per queue (the first registers the
//! UMEM, the rest share it), point the XSKMAP at them, start one pinned worker
//! per queue, attach the program, start the control server. Shutdown (signal,
//! worker failure) runs it backwards: detach XDP first so the kernel has the
//! interface back at once, then stop and drain the workers, then close.
use crate::afxdp::{open_queues, BindMode, FrameTable, XskSocket};
use crate::clock::Clock;
use crate::config::{ArpMode, Config, FlowOwner, Proto, SystemPlan, ZeroCopy};
use crate::control::conns::{ConnFilter, ConnQuery};
use crate::control::metrics::MetricsServer;
use crate::control::protocol::{
    Command, CoreSnapshot, FramesSnapshot, ReplyBody, ServiceInfo, StatsSnapshot, Status, XdpSnapshot,
    DEFAULT_CONNS_LIMIT, MAX_CONNS_LIMIT,
};
use crate::control::server::{ControlServer, Handler};
use crate::datapath::ServiceTable;
use crate::handoff::Handoff;
use crate::ownership::OwnerDirectory;
use crate::pool::SharedFrames;
use crate::port::Port;
use crate::rss::RssMap;
use crate::stats::{Counter, EngineStats, Gauge};
use crate::steering::{Steering, XdpCounterReader};
use crate::tcp::{ServiceSetup, TcpCore, TcpSetup};
use crate::wire::ethernet::EthernetAddress;
use crate::worker::{Shared, Worker, WorkerConfig};
use anyhow::Context as _;
use sluice_ebpf::abi::{ServiceKey, XdpCounters};
use sluice_tcp::Secrets;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames each handoff queue between two cores holds.
const HANDOFF_CAPACITY: usize = 1024;
/// Slots of the flow owner directory, at least.
const OWNER_SLOTS: usize = 1 << 16;

/// Slots of the flow owner directory for `max_connections` (one per
/// connection, a power of two). Flows sharing a slot share its owner, and a
/// slot a connection pins stays with the core that claimed it first: with
/// far more long-lived flows than slots, nearly every slot is pinned and
/// new flows follow the early claims instead of their rx queue. That
/// skewed 125,000 idle connections 9:1 onto one core, whose table (sized
/// max_connections / cores) overflowed. 8 bytes a slot.
pub fn owner_slots(max_connections: u32) -> usize {
    (max_connections as usize).next_power_of_two().clamp(OWNER_SLOTS, 1 << 24)
}
/// How long a connection listing waits for the cores.
const CONNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the engine until `terminate` is set (by a signal) or a worker dies.
pub fn run(cfg: Config, terminate: Arc<AtomicBool>) -> anyhow::Result<()> {
    let plan = cfg.check_system()?;
    let mut engine = Engine::start(&cfg, &plan)?;
    tracing::info!(
        interface = %cfg.engine.interface, queues = plan.queues, socket_mode = engine.socket_mode,
        xdp_mode = engine.steering.mode(), control = %cfg.engine.control_socket.display(),
        "sluiced running"
    );
    let mut next_link_check = Instant::now();
    let mut arp_watch = engine.arp_watch.take();
    let result = loop {
        if terminate.load(Ordering::Relaxed) {
            tracing::info!("signal received, shutting down");
            break Ok(());
        }
        if let Some(i) = engine.workers.iter().position(|w| w.is_finished()) {
            break Err(anyhow::anyhow!("worker {i} stopped unexpectedly (see the log above)"));
        }
        if Instant::now() >= next_link_check {
            next_link_check = Instant::now() + Duration::from_secs(1);
            let ifname = &cfg.engine.interface;
            if crate::config::interface_index(ifname) != Some(plan.ifindex) {
                break Err(anyhow::anyhow!(
                    "interface {ifname} (ifindex {}) disappeared; its sockets are dead, exiting",
                    plan.ifindex
                ));
            }
            if let Some(w) = arp_watch.as_mut() {
                w.check(&cfg);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    engine.shutdown();
    result
}

struct Engine {
    steering: Steering,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    control: Option<ControlServer>,
    metrics: Option<MetricsServer>,
    socket_mode: &'static str,
    arp_watch: Option<ArpWatch>,
}

impl Engine {
    fn start(cfg: &Config, plan: &SystemPlan) -> anyhow::Result<Engine> {
        let e = &cfg.engine;
        let (mut steering, counters) = Steering::load()?;
        for (id, s) in cfg.services.iter().enumerate() {
            steering.add_service(ServiceKey::new(s.proto.number(), s.listen.ip(), s.listen.port()), id as u32)?;
        }
        for a in cfg.service_addrs() {
            steering.add_service(ServiceKey::icmp_echo(a), u32::MAX)?;
        }
        let mut services = ServiceTable::from_config(cfg);
        let mac = interface_mac(&e.interface)?;
        services.set_mac(mac);
        let arp_addrs = arp_addresses(cfg)?;
        let arp_watch = ArpWatch { addrs: arp_addrs.clone(), mac: Some(mac), warned: false };
        if !arp_addrs.is_empty() {
            for a in &arp_addrs {
                steering.add_service(ServiceKey::arp(*a), u32::MAX)?;
            }
            tracing::info!(addresses = ?arp_addrs, %mac, "sluice answers ARP for service addresses no local interface has");
            services.answer_arp(arp_addrs, mac);
        }

        let table = FrameTable::create(plan.frames, e.frame_size).context("mapping the UMEM")?;
        let mode = match e.zero_copy {
            ZeroCopy::Auto => BindMode::Auto,
            ZeroCopy::On => BindMode::ZeroCopy,
            ZeroCopy::Off => BindMode::Copy,
        };
        let sockets = open_queues(&table, plan.ifindex, plan.queues, e.ring_size, mode)?;
        for (q, s) in sockets.iter().enumerate() {
            steering.set_socket(q as u32, s)?;
        }
        let socket_mode = sockets[0].mode().as_str();

        let n = plan.queues as usize;
        let stats = Arc::new(EngineStats::new(n));
        let shared = Arc::new(Shared {
            services,
            owners: {
                let rss = match (&e.rss, &plan.rss_table) {
                    (Some(r), Some(table)) => Some(Arc::new(
                        RssMap::new(&r.key, table.clone(), r.udp_l4).map_err(|p| anyhow::anyhow!("engine.rss: {p}"))?,
                    )),
                    _ => None,
                };
                match (e.flow_owner, rss) {
                    (FlowOwner::Rss, Some(rss)) => OwnerDirectory::rss_owned(rss, random_seed()),
                    (FlowOwner::Rss, None) => {
                        unreachable!("the config refuses flow_owner = \"rss\" without [engine.rss]")
                    }
                    (FlowOwner::Hash, rss) => OwnerDirectory::hashed(n as u16, random_seed()).with_rss(rss),
                    (FlowOwner::Learned, rss) => {
                        let max = if cfg.serves_tcp() { cfg.tcp.max_connections } else { 0 };
                        OwnerDirectory::new(owner_slots(max), e.flow_idle_timeout_s, random_seed()).with_rss(rss)
                    }
                }
            },
            handoff: Handoff::new(n, HANDOFF_CAPACITY).context("creating handoff eventfds")?.with_table(table.clone()),
            stats: stats.clone(),
            stop: AtomicBool::new(false),
            clock: Clock::new(),
            conns: ConnQuery::new(n),
            service_names: cfg.services.iter().map(|s| s.name.clone()).collect(),
        });
        let frames = SharedFrames::new(table.clone());
        let mut pools = frames.split(n as u16);
        let per_core = plan.frames as usize / n;
        let ring = e.ring_size as usize;
        for p in pools.iter_mut() {
            // Keep half a ring free for restocking; hold at most a fair share
            // plus half a ring for receiving (free + fill/rx), lend the rest.
            // An eighth of a ring stays off the fill ring for sending
            // without input (timers, bursts of replies).
            p.set_marks(ring / 2, per_core + ring / 2);
            p.set_reserve(ring / 8);
        }
        let wcfg = WorkerConfig {
            batch: e.batch_size as usize,
            poll: e.poll,
            spin: e.spin_iterations,
            spin_us: e.spin_us,
            max_tx_backlog: 2 * ring,
        };
        let mut engine = Engine {
            steering,
            shared,
            workers: Vec::with_capacity(n),
            control: None,
            metrics: None,
            socket_mode,
            arp_watch: Some(arp_watch),
        };
        // From here on, any failure goes through `shutdown`, which stops and
        // joins the workers started so far and detaches XDP if attached.
        match engine.finish_start(cfg, plan, sockets, pools, frames, counters, wcfg) {
            Ok(()) => Ok(engine),
            Err(err) => {
                engine.shutdown();
                Err(err)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_start(
        &mut self,
        cfg: &Config,
        plan: &SystemPlan,
        sockets: Vec<XskSocket>,
        pools: Vec<crate::pool::FramePool>,
        frames: Arc<SharedFrames>,
        counters: XdpCounterReader,
        wcfg: WorkerConfig,
    ) -> anyhow::Result<()> {
        let e = &cfg.engine;
        let seeds = random_seed();
        // One set of TCP keys for every core: a SYN cookie sent by one core
        // is checked by whichever receives the ACK.
        let secrets = Secrets::from_random(std::array::from_fn(|_| random_seed()));
        let services: Vec<ServiceSetup> = cfg
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| ServiceSetup { id: i as u32, kind: s.kind, tcp: s.proto == Proto::Tcp, http: s.http.clone() })
            .collect();
        let serves_tcp = cfg.serves_tcp();
        let n = plan.queues as usize;
        let per_core = plan.frames as usize / n.max(1);
        let ring = e.ring_size as usize;
        let (connections, chunks) = if serves_tcp {
            // Connections may hold the core's share of frames but what
            // receiving needs (the fill ring, a batch in hand).
            // Each core's table may take all of them (see TcpSetup::budget).
            (cfg.tcp.max_connections, crate::tcp::chunk_budget(per_core as u32, ring as u32))
        } else {
            (1, 16)
        };
        let tcp_setup = TcpSetup {
            settings: cfg.tcp.clone(),
            services,
            secrets,
            local_mac: self.shared.services.mac(),
            cookie_clock: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            rr: None,
            connections,
            budget: crate::tcp::ConnBudget::new(cfg.tcp.max_connections),
            time_waits: cfg.tcp.max_connections.div_ceil(n.max(1) as u32),
            chunks,
        };
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel::<(usize, Result<(), String>)>();
        for (q, (sock, pool)) in sockets.into_iter().zip(pools).enumerate() {
            let cpu = plan.cpus[q];
            let port = Port::new(sock, pool, wcfg.batch);
            // Each core its own IP ID sequence, from the seed and its number.
            let ip_id = (seeds ^ (q as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(q as u32 * 7) as u16;
            let tcp = TcpCore::new(q as u16, &tcp_setup, port.table().clone(), self.shared.clock.now_us());
            let w = Worker::new(q as u16, port, self.shared.clone(), wcfg, ip_id, tcp);
            let pinned = pinned_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("sluice-core{q}"))
                .spawn(move || {
                    // A worker that is not on its CPU breaks the one-core-per-
                    // queue plan: say so and do not run.
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                        let _ = pinned.send((q, Err(format!("cannot pin worker {q} to CPU {cpu}"))));
                        return;
                    }
                    let _ = pinned.send((q, Ok(())));
                    w.run();
                })
                .context("spawning a worker thread")?;
            self.workers.push(h);
        }
        drop(pinned_tx);
        for _ in 0..self.workers.len() {
            match pinned_rx.recv_timeout(Duration::from_secs(10)) {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(msg))) => anyhow::bail!("{msg} (engine.cores; see `taskset -p $$`)"),
                Err(_) => anyhow::bail!("a worker did not start"),
            }
        }
        let info = Arc::new(EngineInfo {
            cfg: cfg.clone(),
            plan: plan.clone(),
            socket_mode: self.socket_mode,
            xdp_mode: OnceLock::new(),
            counters,
            frames,
            shared: self.shared.clone(),
            started: Instant::now(),
        });
        // The control plane comes up before XDP is attached: if its socket is
        // taken, sluiced fails without ever having steered a frame.
        if let Some(addr) = e.metrics_listen {
            let i = info.clone();
            let m = MetricsServer::start(addr, Arc::new(move || i.stats()))
                .with_context(|| format!("engine.metrics_listen {addr}"))?;
            tracing::info!("Prometheus metrics on http://{}/metrics", m.addr());
            self.metrics = Some(m);
        }
        let i = info.clone();
        let handler: Handler = Arc::new(move |c: &Command| i.answer(c));
        self.control = Some(ControlServer::start(&e.control_socket, handler)?);
        self.steering.attach(&e.interface, plan.ifindex)?;
        let _ = info.xdp_mode.set(self.steering.mode());
        Ok(())
    }

    fn shutdown(&mut self) {
        self.steering.detach();
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                tracing::error!("a worker panicked");
            }
        }
        if let Some(c) = self.control.take() {
            c.stop();
        }
        self.metrics = None;
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The service addresses sluice answers ARP for: per `engine.answer_arp`,
/// those no interface in this namespace has (`auto`), all, or none.
fn arp_addresses(cfg: &Config) -> anyhow::Result<Vec<Ipv4Addr>> {
    let all = cfg.service_addrs();
    match cfg.engine.answer_arp {
        ArpMode::Never => Ok(Vec::new()),
        ArpMode::Always => Ok(all),
        ArpMode::Auto => {
            let local: Vec<Ipv4Addr> = nix::ifaddrs::getifaddrs()
                .context("listing local addresses")?
                .filter_map(|i| i.address.and_then(|a| a.as_sockaddr_in().map(|s| s.ip())))
                .collect();
            Ok(all.into_iter().filter(|a| !local.contains(a)).collect())
        }
    }
}

/// The MAC address of `ifname` in this network namespace (its AF_PACKET
/// entry from getifaddrs; /sys may show another namespace's interfaces).
fn interface_mac(ifname: &str) -> anyhow::Result<EthernetAddress> {
    nix::ifaddrs::getifaddrs()
        .context("listing interfaces")?
        .filter(|i| i.interface_name == ifname)
        .find_map(|i| i.address.and_then(|a| a.as_link_addr().and_then(|l| l.addr())))
        .map(EthernetAddress)
        .with_context(|| format!("no Ethernet address for {ifname}"))
}

/// Watches what sluice's ARP answers were decided from, and says once when
/// it changed: the decision is taken at start.
struct ArpWatch {
    addrs: Vec<Ipv4Addr>,
    mac: Option<EthernetAddress>,
    warned: bool,
}

impl ArpWatch {
    fn check(&mut self, cfg: &Config) {
        if self.warned {
            return;
        }
        let addrs = arp_addresses(cfg).unwrap_or_else(|_| self.addrs.clone());
        let mac = if self.mac.is_some() { interface_mac(&cfg.engine.interface).ok() } else { None };
        if addrs != self.addrs || mac != self.mac {
            tracing::warn!(
                started_with = ?self.addrs, now = ?addrs, mac_then = ?self.mac, mac_now = ?mac,
                "the service addresses sluice should answer ARP for, or the interface MAC, changed since start; \
                 sluice keeps answering (and only frames to the MAC) as it started: restart it to follow the change"
            );
            self.warned = true;
        }
    }
}

/// A seed for flow hashing and IP IDs from the kernel's random pool
/// (getrandom(2)); should that fail, from /dev/urandom, and failing that from
/// the randomly keyed hasher std seeds from the OS. Never from the clock.
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_ok()
        || std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok()
    {
        return u64::from_ne_bytes(b);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

/// What the control thread answers from.
struct EngineInfo {
    cfg: Config,
    plan: SystemPlan,
    socket_mode: &'static str,
    xdp_mode: OnceLock<&'static str>,
    counters: XdpCounterReader,
    frames: Arc<SharedFrames>,
    shared: Arc<Shared>,
    started: Instant,
}

impl EngineInfo {
    fn answer(&self, c: &Command) -> ReplyBody {
        match c {
            Command::Status => ReplyBody::Status(self.status()),
            Command::Stats => ReplyBody::Stats(self.stats()),
            Command::Services => ReplyBody::Services(self.services()),
            Command::Conns { limit, service, state, detail } => {
                self.conns(*limit, service.as_deref(), state.as_deref(), *detail)
            }
        }
    }

    fn conns(&self, limit: Option<u32>, service: Option<&str>, state: Option<&str>, detail: bool) -> ReplyBody {
        let limit = limit.unwrap_or(DEFAULT_CONNS_LIMIT).min(MAX_CONNS_LIMIT);
        let service = match service {
            None => None,
            Some(name) => match self.cfg.services.iter().position(|s| s.name == name) {
                Some(i) => Some(i as u32),
                None => return ReplyBody::Error(format!("no service named {name:?}")),
            },
        };
        if let Some(st) = state {
            if !sluice_tcp::State::ALL.iter().any(|s| s.name() == st) {
                let names: Vec<&str> = sluice_tcp::State::ALL.iter().map(|s| s.name()).collect();
                return ReplyBody::Error(format!("no state {st:?} (one of {})", names.join(", ")));
            }
        }
        let filter = ConnFilter { service, state: state.map(str::to_string), detail };
        let h = &self.shared.handoff;
        ReplyBody::Conns(self.shared.conns.ask(limit, filter, CONNS_TIMEOUT, |core| h.waker(core as u16).signal()))
    }

    fn services(&self) -> Vec<ServiceInfo> {
        self.cfg
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| ServiceInfo {
                id: i as u32,
                name: s.name.clone(),
                proto: s.proto.as_str().into(),
                listen: s.listen.to_string(),
                kind: s.kind.as_str().into(),
            })
            .collect()
    }

    fn status(&self) -> Status {
        let e = &self.cfg.engine;
        Status {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            interface: e.interface.clone(),
            ifindex: self.plan.ifindex,
            queues: self.plan.queues,
            cpus: self.plan.cpus.clone(),
            socket_mode: self.socket_mode.into(),
            xdp_mode: self.xdp_mode.get().copied().unwrap_or("not attached").into(),
            poll: format!("{:?}", e.poll).to_lowercase(),
            batch_size: e.batch_size,
            frames_total: self.plan.frames,
            frame_size: e.frame_size,
            umem_bytes: self.plan.frames as u64 * e.frame_size as u64,
            umem_per_core_bytes: self.plan.frames as u64 * e.frame_size as u64 / self.plan.queues.max(1) as u64,
            services: self.services(),
            arp_answered_for: self.shared.services.arp_addrs().iter().map(|a| a.to_string()).collect(),
            tcp_max_connections: if self.cfg.serves_tcp() { u64::from(self.cfg.tcp.max_connections) } else { 0 },
            tcp_bytes_per_connection: TcpCore::BYTES_PER_CONNECTION as u64,
            tcp_bytes_per_time_wait: TcpCore::BYTES_PER_TIME_WAIT as u64,
        }
    }

    fn stats(&self) -> StatsSnapshot {
        let st: &EngineStats = &self.shared.stats;
        let mut cores = Vec::with_capacity(st.len());
        let mut total = CoreSnapshot::default();
        for i in 0..st.len() {
            let c = st.core(i);
            let mut snap =
                CoreSnapshot { core: Some(i as u32), cpu: self.plan.cpus.get(i).copied(), ..Default::default() };
            c.add_named(&mut snap.counters, &mut snap.drops, &mut snap.gauges);
            snap.handoff_share = share(c.counter(Counter::HandoffOut), c.counter(Counter::RxPackets));
            add_into(&mut total.counters, &snap.counters);
            add_into(&mut total.drops, &snap.drops);
            add_into(&mut total.gauges, &snap.gauges);
            cores.push(snap);
        }
        total.handoff_share = share(
            total.counters.get(Counter::HandoffOut.name()).copied().unwrap_or(0),
            total.counters.get(Counter::RxPackets.name()).copied().unwrap_or(0),
        );
        let g = |name: Gauge| total.gauges.get(name.name()).copied().unwrap_or(0);
        let exchange = self.frames.exchanged() as u64;
        let handoff_queued = self.shared.handoff.queued() as u64;
        let free = g(Gauge::FramesFree);
        let on_cores = free
            + g(Gauge::FramesRx)
            + g(Gauge::FramesTx)
            + g(Gauge::FramesInHand)
            + g(Gauge::FramesHeld)
            + g(Gauge::TxBacklog)
            + g(Gauge::HandoffStash);
        let census = self.frames.table().census();
        let frames = FramesSnapshot {
            total: self.frames.total() as u64,
            exchange,
            handoff_queued,
            accounted: on_cores + exchange + handoff_queued,
            in_use: (self.frames.total() as u64).saturating_sub(free + exchange),
            leaked: crate::afxdp::frames_leaked(),
            kernel_rx: census.lent_rx as u64,
            kernel_tx: census.lent_tx as u64,
        };
        let per_cpu_raw = self.counters.read();
        let mut xdp = XdpSnapshot::default();
        let mut sum = XdpCounters::default();
        for c in &per_cpu_raw {
            sum = sum.add(c);
            xdp.per_cpu.push(c.fields().iter().map(|(k, v)| (k.to_string(), *v)).collect());
        }
        xdp.total = sum.fields().iter().map(|(k, v)| (k.to_string(), *v)).collect();
        StatsSnapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            socket_mode: self.socket_mode.into(),
            cores,
            total,
            frames,
            xdp,
        }
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn add_into(total: &mut BTreeMap<String, u64>, part: &BTreeMap<String, u64>) {
    for (k, v) in part {
        *total.entry(k.clone()).or_insert(0) += v;
    }
}

/// Validates `cfg` fully (file and system) without attaching anything; the
/// message `sluiced --check-config` prints on success.
pub fn check(cfg: &Config) -> anyhow::Result<String> {
    // IPv6 listeners were already refused by Config::parse.
    let plan = cfg.check_system()?;
    Ok(format!(
        "{}: ok: {} service(s) on {} (ifindex {}), {} queue(s) on CPUs {:?}",
        cfg.source_name,
        cfg.services.len(),
        cfg.engine.interface,
        plan.ifindex,
        plan.queues,
        plan.cpus
    ))
}
