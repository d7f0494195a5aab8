//! The TCP load generator on sluice's own TCP over AF_XDP: the same engine
//! (worker loop, datapath, `TcpCore`, state machine) as sluiced, run on the
//! client's veth end, with connections it opens itself. A kernel-socket
//! client spends more CPU per transaction than the server under test (the
//! `tcp-echo` figures in BENCHMARKS.md show it), so this one bypasses the
//! client's stack the way sluiced bypasses the server's.
//!
//! On the client interface sluice's XDP program gets one "service" per
//! source port (`client_ip:port`, TCP), so every segment to our
//! connections is steered to the AF_XDP socket of its queue; ARP and
//! everything else stay with the kernel. Each connection keeps `window`
//! requests of `size` bytes in flight and checks every byte of every echo
//! ([`sluice_engine::services::rr_client`]).
use anyhow::Context;
use sluice_ebpf::abi::ServiceKey;
use sluice_engine::afxdp::{open_queues, BindMode, FrameTable};
use sluice_engine::clock::Clock;
use sluice_engine::config::{PollMode, Proto, ServiceKind, TcpSettings};
use sluice_engine::control::conns::ConnQuery;
use sluice_engine::datapath::tcp::flow_of;
use sluice_engine::datapath::{ServiceEntry, ServiceTable};
use sluice_engine::handoff::Handoff;
use sluice_engine::ownership::OwnerDirectory;
use sluice_engine::pool::SharedFrames;
use sluice_engine::port::Port;
use sluice_engine::services::rr_client::{RrSettings, RrSink, MAX_WINDOW};
use sluice_engine::stats::EngineStats;
use sluice_engine::steering::Steering;
use sluice_engine::tcp::{Reopen, ServiceSetup, TcpCore, TcpSetup};
use sluice_engine::wire::{ip_proto, EthernetAddress};
use sluice_engine::worker::{Shared, Worker, WorkerConfig};
use sluice_tcp::{Secrets, Tuple};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// UMEM frame size.
const FRAME_SIZE: u32 = 4096;
/// Rings of each queue.
const RING: u32 = 2048;
/// UMEM frames per queue: a fill ring's worth for receiving, the rest for
/// requests in flight (held until acknowledged).
const FRAMES_PER_QUEUE: u32 = 4 * RING;

/// What the generator runs on and sends.
#[derive(Clone, Debug)]
pub struct TcpXdpGenConfig {
    /// The client interface.
    pub interface: String,
    /// Its queues to use (0..queues), one socket and worker thread each.
    pub queues: u32,
    /// Our address.
    pub client_ip: Ipv4Addr,
    /// More addresses of ours (on the interface, so the kernel answers ARP
    /// for them): connections past the source ports of one address use
    /// the next. Not for crr.
    pub more_ips: Vec<Ipv4Addr>,
    /// The echo server.
    pub server: SocketAddrV4,
    /// The next hop's MAC (the server's veth end).
    pub server_mac: [u8; 6],
    /// Our interface's MAC.
    pub client_mac: [u8; 6],
    /// Connections (source ports `base_port..=65535` of each address in
    /// turn).
    pub conns: u32,
    /// First source port.
    pub base_port: u16,
    /// Bytes per request.
    pub size: u32,
    /// Requests in flight per connection.
    pub window: u8,
    /// How the workers wait.
    pub poll: PollMode,
    /// Open loop: requests per second in all (spread evenly over the
    /// connections); `None`: closed loop.
    pub rate: Option<f64>,
    /// HTTP GETs (keep-alive) instead of echo requests.
    pub http: bool,
    /// A connection per request (connect, request, echo, close; closed
    /// loop): `conns` connections at a time, each replaced when it ends.
    pub crr: bool,
    /// One request per connection, then idle.
    pub once: bool,
}

/// The most connections the generator opens at once (its addresses'
/// source ports run from `base_port` up to 65535).
pub const MAX_CONNS: u32 = 1 << 20;

impl TcpXdpGenConfig {
    /// Source ports of each address from `base_port` up.
    fn ports_from(base_port: u16) -> u32 {
        65536 - u32::from(base_port.max(1))
    }

    /// Source ports of each address.
    pub fn ports_per_address(&self) -> u32 {
        Self::ports_from(self.base_port)
    }

    /// Addresses `n` connections from `base_port` up need.
    pub fn addresses_for(base_port: u16, n: u32) -> u32 {
        n.div_ceil(Self::ports_from(base_port))
    }

    /// Connection `i`'s tuple (from the client's side).
    pub fn tuple(&self, i: u32) -> Tuple {
        let per = self.ports_per_address();
        let addr = match (i / per) as usize {
            0 => self.client_ip,
            k => self.more_ips[k - 1],
        };
        Tuple {
            local_addr: addr.octets(),
            local_port: (u32::from(self.base_port) + i % per) as u16,
            remote_addr: self.server.ip().octets(),
            remote_port: self.server.port(),
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_CONNS).contains(&self.conns) {
            return Err(format!("{} connections: 1..={MAX_CONNS}", self.conns));
        }
        if !(0..=MAX_WINDOW as u8).contains(&self.window) {
            return Err(format!("window {}: 0 (idle connections)..={MAX_WINDOW}", self.window));
        }
        if !(1..=65536).contains(&self.size) {
            return Err(format!("size {}: 1..=65536", self.size));
        }
        if self.crr && u32::from(self.base_port) + self.conns + 4096 > 65536 {
            return Err("crr needs at least 4096 source ports after the first connections'".into());
        }
        if self.base_port == 0 {
            return Err("source ports start at 1".into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0 && r <= 1e8) {
                return Err(format!("rate {r}: more than 0, at most 100 000 000 a second"));
            }
        }
        let need = Self::addresses_for(self.base_port, self.conns);
        if need as usize > 1 + self.more_ips.len() {
            return Err(format!(
                "{} connections from port {} need {need} client addresses, not {}",
                self.conns,
                self.base_port,
                1 + self.more_ips.len()
            ));
        }
        Ok(())
    }
}

/// A running generator; [`TcpXdpGen::stop`] ends it (its connections are
/// reset on the way out).
pub struct TcpXdpGen {
    steering: Option<Steering>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    sinks: Vec<Arc<RrSink>>,
    /// The sockets' mode ("copy" on veth).
    pub socket_mode: &'static str,
}

/// The generator's tallies at one moment.
#[derive(Clone, Debug, Default)]
pub struct RrTotals {
    /// Intact echoes.
    pub ok: u64,
    /// Echoes that differed.
    pub mismatched: u64,
    /// Connections the server ended.
    pub ended: u64,
    /// Connections that failed (reset, timed out, never established).
    pub failed: u64,
    /// Open loop: requests sent late (see `RrSink::deferred`).
    pub deferred: u64,
    /// Latency histogram: (bucket floor µs, count).
    pub hist: Vec<(u64, u64)>,
}

impl RrTotals {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &RrTotals) -> RrTotals {
        let mut hist = self.hist.clone();
        for (b, n) in &mut hist {
            if let Some((_, m)) = earlier.hist.iter().find(|(eb, _)| eb == b) {
                *n -= m;
            }
        }
        hist.retain(|(_, n)| *n > 0);
        RrTotals {
            ok: self.ok - earlier.ok,
            mismatched: self.mismatched - earlier.mismatched,
            ended: self.ended - earlier.ended,
            failed: self.failed - earlier.failed,
            deferred: self.deferred - earlier.deferred,
            hist,
        }
    }

    /// The latency at quantile `q` (a bucket's floor, within an eighth).
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.hist.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.hist {
            seen += n;
            if seen >= want {
                return Some(*b);
            }
        }
        self.hist.last().map(|(b, _)| *b)
    }
}

impl TcpXdpGen {
    /// Starts in namespace `ns` (its interface, its sockets).
    pub fn start(ns: &str, cfg: TcpXdpGenConfig) -> anyhow::Result<TcpXdpGen> {
        cfg.validate().map_err(|e| anyhow::anyhow!(e))?;
        sluice_lab::Lab::run_in(ns, || Self::start_here(cfg))?
    }

    fn start_here(cfg: TcpXdpGenConfig) -> anyhow::Result<TcpXdpGen> {
        let ifindex = nix::net::if_::if_nametoindex(cfg.interface.as_str())
            .with_context(|| format!("interface {}", cfg.interface))?;
        let (mut steering, _counters) = Steering::load()?;
        let mut services = ServiceTable::default();
        services.set_mac(EthernetAddress(cfg.client_mac));
        // Every TCP port of the client's address is the generator's (one
        // port-0 key): connections may come from any source port.
        for &ip in std::iter::once(&cfg.client_ip).chain(&cfg.more_ips) {
            steering.add_service(ServiceKey::new(ip_proto::TCP, IpAddr::V4(ip), 0), 0)?;
            services.add(Proto::Tcp, ip, 0, ServiceEntry { id: 0, kind: ServiceKind::RrClient });
        }
        let n = cfg.queues as usize;
        let table =
            FrameTable::create(FRAMES_PER_QUEUE * cfg.queues.max(2), FRAME_SIZE).context("the generator's UMEM")?;
        let sockets = open_queues(&table, ifindex, cfg.queues, RING, BindMode::Auto)?;
        for (q, s) in sockets.iter().enumerate() {
            steering.set_socket(q as u32, s)?;
        }
        let socket_mode = sockets[0].mode().as_str();
        let shared = Arc::new(Shared {
            services,
            // Roomy: a crr generator pins every connection and TIME-WAIT
            // entry of the last second.
            owners: OwnerDirectory::new(1 << 20, 30, seed()),
            handoff: Handoff::new(n, 1024).context("handoff eventfds")?.with_table(table.clone()),
            stats: Arc::new(EngineStats::new(n)),
            stop: Default::default(),
            clock: Clock::new(),
            conns: ConnQuery::new(n),
            service_names: vec!["rr-client".into()],
        });
        let sinks: Vec<Arc<RrSink>> = (0..n).map(|_| Arc::new(RrSink::default())).collect();
        // crr: room for a second's TIME-WAIT entries at any rate the ports allow.
        let capacity = if cfg.crr { 32_768 } else { cfg.conns + 64 };
        let mut settings = TcpSettings {
            max_connections: capacity,
            syn_backlog: 16,
            syncookies: false,
            conn: sluice_tcp::TcpConfig::default(),
        };
        // A client does not delay its ACKs behind the next request.
        settings.conn.delayed_ack = 0;
        if cfg.crr {
            // We close first, so TIME-WAIT is ours. At tens of thousands
            // of connections a second a core's share of the source ports
            // comes round in well under a second: 100 ms of TIME-WAIT on
            // veth (no old duplicates can be in flight) keeps them coming,
            // as tcp_tw_reuse does for the kernel-socket client.
            settings.conn.time_wait = 100_000;
        }
        let setup = TcpSetup {
            settings,
            services: vec![ServiceSetup { id: 0, kind: ServiceKind::RrClient, tcp: true, http: None }],
            secrets: Secrets::from_random(std::array::from_fn(|i| seed() ^ i as u64)),
            local_mac: EthernetAddress(cfg.client_mac),
            cookie_clock: Default::default(),
            rr: Some((
                RrSettings {
                    size: cfg.size,
                    window: cfg.window,
                    // crr's open loop schedules the opens (`Reopen::rate`):
                    // each connection sends its one request at once.
                    rate_per_conn: if cfg.crr { 0.0 } else { cfg.rate.map_or(0.0, |r| r / f64::from(cfg.conns)) },
                    http: cfg.http,
                    crr: cfg.crr,
                    once: cfg.once,
                },
                sinks.clone(),
            )),
            connections: capacity,
            budget: sluice_engine::tcp::ConnBudget::new(capacity.saturating_mul(n as u32)),
            time_waits: capacity,
            chunks: sluice_engine::tcp::chunk_budget(table.frame_count() / n as u32, RING),
        };
        let wcfg = WorkerConfig { batch: 64, poll: cfg.poll, spin: 200, spin_us: 3, max_tx_backlog: 2 * RING as usize };
        let pools = SharedFrames::new(table.clone()).split(n as u16);
        let ncpu = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
        let mut threads = Vec::new();
        for (q, (xsk, mut pool)) in sockets.into_iter().zip(pools).enumerate() {
            let ring = RING as usize;
            // As sluiced: a core lends what it holds for receiving beyond
            // its share and half a ring.
            pool.set_marks(ring / 2, table.frame_count() as usize / n + ring / 2);
            pool.set_reserve(ring / 8);
            let port = Port::new(xsk, pool, 64);
            let mut tcp = TcpCore::new(q as u16, &setup, port.table().clone(), shared.clock.now_us());
            // A connection opens on the core its owner-directory slot maps
            // to (the directory then hands its segments there, whichever
            // queue they arrive on): flows that share a slot share a core,
            // so no open is refused for a slot another core holds.
            // Open loop crr: the schedule makes every connection.
            let scheduled = cfg.crr && cfg.rate.is_some();
            for t in (0..cfg.conns).map(|i| cfg.tuple(i)).filter(|_| !scheduled) {
                let slot = shared.owners.slot_index(&flow_of(&t)).unwrap_or(0);
                if slot % n == q {
                    tcp.queue_connect(t, cfg.server_mac, 0);
                }
            }
            if cfg.crr {
                // Each connection that ends is replaced from the ports after
                // the first ones, this core taking every n-th; open loop,
                // a connection opens when due, `conns` open at most.
                tcp.set_reopen(Reopen {
                    tuple: cfg.tuple(0),
                    remote_mac: cfg.server_mac,
                    service: 0,
                    first: cfg.base_port + cfg.conns as u16,
                    last: u16::MAX,
                    stride: n as u16,
                    offset: q as u16,
                    next: 0,
                    rate: cfg.rate.map_or(0.0, |r| r / n as f64),
                    max_open: cfg.conns.div_ceil(n as u32),
                });
            }
            let w = Worker::new(q as u16, port, shared.clone(), wcfg, (seed() >> 16) as u16, tcp);
            let cpu = q % ncpu;
            let h = std::thread::Builder::new()
                .name(format!("tgen-{q}"))
                .spawn(move || {
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                    w.run();
                })
                .context("spawning a generator worker")?;
            threads.push(h);
        }
        steering.attach(&cfg.interface, ifindex)?;
        Ok(TcpXdpGen { steering: Some(steering), shared, threads, sinks, socket_mode })
    }

    /// The tallies now (summed over cores).
    pub fn totals(&self) -> RrTotals {
        let mut t = RrTotals::default();
        let mut hist: std::collections::BTreeMap<u64, u64> = Default::default();
        for s in &self.sinks {
            t.ok += s.ok.load(Ordering::Relaxed);
            t.mismatched += s.mismatched.load(Ordering::Relaxed);
            t.ended += s.ended.load(Ordering::Relaxed);
            t.failed += s.failed.load(Ordering::Relaxed);
            t.deferred += s.deferred.load(Ordering::Relaxed);
            for (b, n) in s.histogram() {
                *hist.entry(b).or_default() += n;
            }
        }
        t.hist = hist.into_iter().collect();
        t
    }

    /// The largest latency of any core since the last call, µs (0: none).
    pub fn take_max_us(&self) -> u64 {
        self.sinks.iter().map(|s| s.take_max_us()).max().unwrap_or(0)
    }

    /// Active opens refused (summed over cores; published every 100 ms).
    pub fn connect_failures(&self) -> u64 {
        (0..self.shared.stats.len())
            .map(|c| self.shared.stats.core(c).tcp_counter(sluice_tcp::TcpCounter::ConnectFailed))
            .sum()
    }

    /// The generator's nonzero counters, drops and gauges that say where
    /// handshakes went (summed over cores; see [`crate::conn_scale::is_clue`]).
    pub fn clues(&self) -> Vec<(String, u64)> {
        let st = &self.shared.stats;
        let mut all = std::collections::BTreeMap::new();
        let (mut drops, mut gauges) = (Default::default(), Default::default());
        for i in 0..st.len() {
            st.core(i).add_named(&mut all, &mut drops, &mut gauges);
        }
        all.extend(drops);
        all.extend(gauges);
        all.into_iter().filter(|(k, v)| *v > 0 && crate::conn_scale::is_clue(k)).collect()
    }

    /// Connections open now on each core.
    pub fn connections_per_core(&self) -> Vec<u64> {
        (0..self.shared.stats.len())
            .map(|c| self.shared.stats.core(c).gauge(sluice_engine::stats::Gauge::TcpConns))
            .collect()
    }

    /// Connections open now (in the generator's own table).
    pub fn connections(&self) -> u64 {
        self.connections_per_core().iter().sum()
    }

    /// Stops: detaches, stops the workers (which reset their connections).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut s) = self.steering.take() {
            s.detach();
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for TcpXdpGen {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_ne_bytes(b) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(conns: u32, more: usize) -> TcpXdpGenConfig {
        TcpXdpGenConfig {
            interface: "sluice1".into(),
            queues: 2,
            client_ip: Ipv4Addr::new(198, 18, 0, 1),
            more_ips: (0..more).map(|k| Ipv4Addr::new(198, 18, 0, 10 + k as u8)).collect(),
            server: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7),
            server_mac: [2; 6],
            client_mac: [4; 6],
            conns,
            base_port: 1024,
            size: 64,
            window: 1,
            poll: PollMode::Adaptive,
            rate: None,
            http: false,
            crr: false,
            once: true,
        }
    }

    #[test]
    fn connections_past_one_addresss_ports_use_the_next_address() {
        let c = cfg(200_000, 3);
        assert!(c.validate().is_ok());
        assert_eq!(TcpXdpGenConfig::addresses_for(1024, 200_000), 4);
        let first = c.tuple(0);
        assert_eq!((first.local_addr, first.local_port), ([198, 18, 0, 1], 1024));
        let last_of_first = c.tuple(64_511);
        assert_eq!((last_of_first.local_addr, last_of_first.local_port), ([198, 18, 0, 1], 65535));
        let next = c.tuple(64_512);
        assert_eq!((next.local_addr, next.local_port), ([198, 18, 0, 10], 1024));
        let last = c.tuple(199_999);
        assert_eq!(last.local_addr, [198, 18, 0, 12]);
        // Every tuple distinct.
        let all: std::collections::HashSet<_> = (0..200_000).map(|i| c.tuple(i)).collect();
        assert_eq!(all.len(), 200_000);
        // Too few addresses, or too many connections: refused with the count.
        let e = cfg(200_000, 2).validate().unwrap_err();
        assert!(e.contains("need 4 client addresses, not 3"), "{e}");
        assert!(cfg(MAX_CONNS + 1, 20).validate().is_err());
        assert!(cfg(64_512, 0).validate().is_ok());
        assert!(cfg(64_513, 0).validate().is_err());
    }
}
