//! A raw AF_XDP reflector: the ceiling of a UDP echo on this machine.
//!
//! sluice's XDP program steers one service (UDP `addr:port`) into one AF_XDP
//! socket per queue (one shared UMEM). Each queue's thread, pinned to CPU q,
//! takes rx batches, swaps MACs, IPv4 addresses and UDP ports in place
//! (swapping leaves both checksums valid), puts the frames on its tx ring,
//! kicks tx when the kernel asks, and gives completed frames back to the fill
//! ring. No parsing beyond the header offsets, no checks, no state: whatever
//! sluice adds over this is the cost of being an engine.

use anyhow::Context;
use serde::Serialize;
use sluice_ebpf::abi::ServiceKey;
use sluice_engine::afxdp::{open_queues, poll_fds, BindMode, FrameTable, Packet};
use sluice_engine::idle::{IdlePolicy, IdleStreak};
use sluice_engine::pool::SharedFrames;
use sluice_engine::port::{Port, ROUTE_FREE};
use sluice_engine::steering::Steering;
use sluice_engine::wire::{ethernet, ip_proto, ipv4, udp};
use std::net::{IpAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// sluiced's default frame size, so the two differ only in what they do
/// per frame.
const FRAME_SIZE: u32 = 4096;
const RING: u32 = 2048;
const FRAMES_PER_QUEUE: u32 = 2 * RING;
const BATCH: usize = 64;
const SLEEP: Duration = Duration::from_millis(100);
/// Shortest frame that has the headers we swap.
const MIN_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Counters of a reflector, summed over queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReflectCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames put on tx rings.
    pub tx_packets: u64,
    /// Frames dropped (too short for the headers, or a bad descriptor).
    pub dropped: u64,
}

#[derive(Default)]
#[repr(align(128))]
struct QueueCounters {
    rx: AtomicU64,
    tx: AtomicU64,
    dropped: AtomicU64,
}

/// A running reflector; [`Reflector::stop`] (or drop) stops it and detaches.
pub struct Reflector {
    stop: Arc<AtomicBool>,
    counters: Arc<Vec<QueueCounters>>,
    threads: Vec<JoinHandle<Result<(), String>>>,
    steering: Option<Steering>,
    ns: String,
    /// "copy" or "zero-copy".
    pub socket_mode: &'static str,
    /// "driver" or "skb".
    pub xdp_mode: &'static str,
}

impl Reflector {
    /// Starts reflecting UDP to `service` on `queues` queues of `interface`
    /// in namespace `ns`; threads stop by themselves after `max_run`.
    pub fn start(
        ns: &str,
        interface: &str,
        queues: u32,
        service: SocketAddrV4,
        max_run: Duration,
        idle: IdlePolicy,
    ) -> anyhow::Result<Reflector> {
        if !sluice_lab::is_lab_addr(*service.ip()) {
            anyhow::bail!("refusing to reflect {service}: not in 198.18.0.0/15");
        }
        if !(1..=sluice_ebpf::abi::MAX_QUEUES).contains(&queues) {
            anyhow::bail!("queues is {queues}; 1..={} allowed", sluice_ebpf::abi::MAX_QUEUES);
        }
        sluice_lab::Lab::run_in(ns, || start_here(ns, interface, queues, service, max_run, idle))?
    }

    /// Counters now.
    pub fn counters(&self) -> ReflectCounters {
        let mut t = ReflectCounters::default();
        for c in self.counters.iter() {
            t.rx_packets += c.rx.load(Ordering::Relaxed);
            t.tx_packets += c.tx.load(Ordering::Relaxed);
            t.dropped += c.dropped.load(Ordering::Relaxed);
        }
        t
    }

    /// Whether every queue thread still runs.
    pub fn running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stops, detaches, and returns the final counters and thread errors.
    pub fn stop(mut self) -> (ReflectCounters, Vec<String>) {
        let errors = self.shutdown();
        (self.counters(), errors)
    }

    fn shutdown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        // Detach first: the interface goes back to the kernel at once.
        if let Some(mut s) = self.steering.take() {
            if let Err(e) = sluice_lab::Lab::run_in(&self.ns, move || s.detach()) {
                errors.push(format!("detaching: {e}"));
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        for (q, t) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("queue {q}: {e}")),
                Err(_) => errors.push(format!("queue {q}: thread panicked")),
            }
        }
        errors
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.steering.is_some() {
            self.shutdown();
        }
    }
}

fn start_here(
    ns: &str,
    interface: &str,
    queues: u32,
    service: SocketAddrV4,
    max_run: Duration,
    idle: IdlePolicy,
) -> anyhow::Result<Reflector> {
    let ifindex = nix::net::if_::if_nametoindex(interface).with_context(|| format!("interface {interface} in {ns}"))?;
    let (mut steering, _counters) = Steering::load()?;
    steering.add_service(ServiceKey::new(ip_proto::UDP, IpAddr::V4(*service.ip()), service.port()), 0)?;
    let table = FrameTable::create(FRAMES_PER_QUEUE * queues, FRAME_SIZE).context("mapping the reflector's UMEM")?;
    let sockets = open_queues(&table, ifindex, queues, RING, BindMode::Auto)?;
    for (q, s) in sockets.iter().enumerate() {
        steering.set_socket(q as u32, s)?;
    }
    let socket_mode = sockets[0].mode().as_str();
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<Vec<QueueCounters>> = Arc::new((0..queues).map(|_| QueueCounters::default()).collect());
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut r = Reflector {
        stop: stop.clone(),
        counters: counters.clone(),
        threads: Vec::new(),
        steering: None,
        ns: ns.to_string(),
        socket_mode,
        xdp_mode: "none",
    };
    let pools = SharedFrames::new(table.clone()).split(queues as u16);
    for (q, (xsk, pool)) in sockets.into_iter().zip(pools).enumerate() {
        let port = Port::new(xsk, pool, BATCH);
        let (stop, counters) = (stop.clone(), counters.clone());
        let cpu = q % ncpu;
        let h = std::thread::Builder::new()
            .name(format!("reflect-{q}"))
            .spawn(move || {
                let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                reflect_queue(port, &stop, &counters[q], max_run, idle)
            })
            .context("spawning a reflector thread")?;
        r.threads.push(h);
    }
    steering.attach(interface, ifindex)?;
    r.xdp_mode = steering.mode();
    r.steering = Some(steering);
    Ok(r)
}

/// Swaps the Ethernet and IPv4 addresses and the UDP ports of `frame` in
/// place. Both checksums stay valid (ones'-complement sums do not depend on
/// the order of their words). Returns false for a frame too short to hold
/// the headers; nothing else is looked at.
pub fn reflect_in_place(frame: &mut [u8]) -> bool {
    if frame.len() < MIN_LEN {
        return false;
    }
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.swap_addrs();
    let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
    ip.swap_addrs();
    let hl = ip.header_len();
    let l4 = &mut ip.into_inner()[..];
    if l4.len() < hl + udp::HEADER_LEN {
        return false;
    }
    udp::Datagram::new_unchecked(&mut l4[hl..]).swap_ports();
    true
}

fn reflect_queue(
    mut port: Port,
    stop: &AtomicBool,
    c: &QueueCounters,
    max_run: Duration,
    policy: IdlePolicy,
) -> Result<(), String> {
    let deadline = Instant::now() + max_run;
    let mut rx: Vec<Packet> = Vec::with_capacity(BATCH);
    let (mut nrx, mut ntx, mut ndrop) = (0u64, 0u64, 0u64);
    let mut idle = IdleStreak::default();
    let clock = Instant::now();
    port.refill(0);
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= deadline {
            return Err(format!("still running after {max_run:?}; stopped"));
        }
        let mut work = port.reap(|f, _| Some(f)).0;
        let b = port.receive(&mut rx);
        ndrop += (b.refused + b.bad_range) as u64;
        if b.descs > 0 {
            work += b.descs;
            nrx += b.descs as u64;
            for mut p in rx.drain(..) {
                if port.table().packet_mut(&mut p).is_some_and(reflect_in_place) {
                    port.send(p, ROUTE_FREE, None);
                } else {
                    ndrop += 1;
                    port.free(p.into_frame());
                }
            }
        }
        let flushed = port.flush(None);
        if let Some(e) = flushed.kick_error {
            return Err(format!("tx kick: {e}"));
        }
        if b.descs + flushed.sent > 0 {
            ntx += flushed.sent as u64;
            c.rx.store(nrx, Ordering::Relaxed);
            c.tx.store(ntx, Ordering::Relaxed);
            c.dropped.store(ndrop, Ordering::Relaxed);
        }
        port.refill(b.descs);
        if work > 0 || port.tx_pending() {
            idle.reset();
            continue;
        }
        let xsk = port.socket();
        if policy.on_idle(&mut idle, clock.elapsed().as_micros() as u64)
            && xsk.rx_occupancy() == 0
            && xsk.comp_occupancy() == 0
        {
            poll_fds(&[xsk.as_fd()], Some(SLEEP)).map_err(|e| format!("poll: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{build_request, check_reply, FlowAddrs};
    use std::net::Ipv4Addr;

    #[test]
    fn reflected_request_is_a_valid_reply() {
        let a = FlowAddrs {
            client_mac: [2, 0, 0, 0, 0, 1],
            server_mac: [2, 0, 0, 0, 0, 2],
            client_ip: Ipv4Addr::new(198, 18, 0, 1),
            server: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7),
            base_port: 40000,
            flows: 4,
        };
        let mut buf = [0u8; 256];
        let len = build_request(&mut buf, &a, 3, 99, 64).unwrap();
        assert!(reflect_in_place(&mut buf[..len]));
        assert_eq!(check_reply(&buf[..len], &a, 64), Some((3, 99)));
        let eth = ethernet::Frame::new_checked(&buf[..len]).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        let d = udp::Datagram::new_checked(ip.payload()).unwrap();
        assert!(d.verify_checksum(ip.src_addr(), ip.dst_addr()), "UDP checksum still valid");
        assert!(!reflect_in_place(&mut [0u8; MIN_LEN - 1]));
    }
}
