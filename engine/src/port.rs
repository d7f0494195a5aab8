//! One queue's packet I/O: its AF_XDP socket, its core's free frames, and the
//! steps every loop over a queue runs, written once and used by the engine's
//! workers and by the bench's generators and reflector alike:
//!
//! 1. [`reap`](Port::reap): completions come back; a frame the sender asked
//!    to keep (a retransmission copy) goes back to it by its *route*, every
//!    other frame to the free list;
//! 2. [`receive`](Port::receive): a batch of packets off the rx ring;
//! 3. [`send`](Port::send) any number of packets (replies, timer output) and
//!    [`flush`](Port::flush) them: as many as the tx ring takes, in order, one
//!    `sendto()` kick when the kernel asks. What does not fit stays queued
//!    for the next pass, never dropped;
//! 4. [`refill`](Port::refill): rebalance with the other cores, restock the
//!    fill ring from the free list beyond the reserve, kick when asked.
//!
//! The port also keeps the counts of its frames by place for the gauges.
use crate::afxdp::{Desc, Frame, FrameTable, Packet, RxBatch, XskSocket};
use crate::pool::FramePool;
use crate::stats::{CoreStats, Counter, Gauge};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

/// Bound on tx kicks in one flush (32 frames each on kernels before 6.17).
const MAX_KICKS_PER_FLUSH: usize = 64;

/// Where a sent frame goes when the kernel completes it.
pub type Route = u32;

/// Back to the free list.
pub const ROUTE_FREE: Route = 0;

/// A packet waiting for the tx ring.
#[derive(Debug)]
struct TxItem {
    pkt: Packet,
    route: Route,
    tally: Option<Counter>,
}

/// How many frames the port has in each place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortFrames {
    /// On the free list.
    pub free: u32,
    /// Lent to the kernel for receiving (fill or rx ring).
    pub lent_rx: u32,
    /// Lent to the kernel for sending (tx or completion ring).
    pub lent_tx: u32,
    /// Queued for the tx ring.
    pub tx_backlog: u32,
    /// Handed out and not back: being handled, or held by a connection.
    pub out: u32,
}

/// What one [`Port::flush`] did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Packets put on the tx ring.
    pub sent: usize,
    /// Packets refused because their range was empty or left the frame
    /// (their frames went back to the free list).
    pub refused: usize,
    /// Their bytes.
    pub bytes: u64,
    /// `sendto()` kicks.
    pub kicks: usize,
    /// A kick that failed with a non-transient error.
    pub kick_error: Option<io::Error>,
}

/// What one [`Port::refill`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refilled {
    /// Frames put on the fill ring.
    pub filled: usize,
    /// Frames lent to the exchange.
    pub lent: usize,
    /// Frames borrowed from the exchange.
    pub borrowed: usize,
    /// Whether the fill ring was kicked.
    pub kicked: bool,
}

/// One queue's socket, frames and tx queue.
pub struct Port {
    xsk: XskSocket,
    pool: FramePool,
    backlog: VecDeque<TxItem>,
    /// Per frame index: where the frame goes on completion.
    routes: Box<[Route]>,
    descs: Vec<Desc>,
    addrs: Vec<u64>,
    batch: usize,
    lent_rx: u32,
    lent_tx: u32,
    out: u32,
}

impl Port {
    /// A port over `xsk` with `pool`'s frames, moving `batch` packets per
    /// step.
    pub fn new(xsk: XskSocket, pool: FramePool, batch: usize) -> Port {
        assert!(Arc::ptr_eq(xsk.table(), pool.table()), "socket and pool must share one UMEM");
        let batch = batch.max(1);
        let frames = xsk.table().frame_count() as usize;
        Port {
            routes: vec![ROUTE_FREE; frames].into_boxed_slice(),
            backlog: VecDeque::with_capacity(frames),
            descs: vec![Desc::default(); batch],
            addrs: vec![0; batch.max(64)],
            xsk,
            pool,
            batch,
            lent_rx: 0,
            lent_tx: 0,
            out: 0,
        }
    }

    /// The frame table.
    #[inline]
    pub fn table(&self) -> &Arc<FrameTable> {
        self.pool.table()
    }

    /// The socket (for polling and the kernel's statistics).
    pub fn socket(&self) -> &XskSocket {
        &self.xsk
    }

    /// The frame pool.
    pub fn pool_mut(&mut self) -> &mut FramePool {
        &mut self.pool
    }

    /// Packets per step.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Completions come back: each frame goes to the free list, or, if it
    /// was sent with a route, to `retained(frame, route)`, which keeps it or
    /// gives it back (`Some`) for the free list (its keeper is gone).
    /// Returns (completions, refused): a refused completion names a frame
    /// this queue had not lent for sending (nothing changes for it).
    pub fn reap(&mut self, mut retained: impl FnMut(Frame, Route) -> Option<Frame>) -> (usize, usize) {
        let Port { xsk, pool, routes, addrs, lent_tx, out, .. } = self;
        let mut total = (0, 0);
        loop {
            let (n, bad) = xsk.reap(addrs, |f| {
                *lent_tx -= 1;
                let r = std::mem::replace(&mut routes[f.index() as usize], ROUTE_FREE);
                if r == ROUTE_FREE {
                    pool.free(f);
                } else {
                    match retained(f, r) {
                        Some(f) => pool.free(f),
                        None => *out += 1,
                    }
                }
            });
            total.0 += n;
            total.1 += bad;
            if n < addrs.len() {
                return total;
            }
        }
    }

    /// Takes up to one batch of received packets into `into` (which should
    /// have room for a batch). Frames the kernel handed back with a bad
    /// range go straight to the free list (counted in `bad`).
    pub fn receive(&mut self, into: &mut Vec<Packet>) -> RxBatch {
        let Port { xsk, pool, descs, batch, lent_rx, out, .. } = self;
        let b = xsk.receive(descs, *batch, |r| match r {
            Ok(p) => into.push(p),
            Err(f) => pool.free(f),
        });
        // Descriptors for one of our lent frames gave it back, as a packet
        // or (bad range) to the free list; refused ones named none of ours.
        *lent_rx -= (b.descs - b.refused) as u32;
        *out += (b.descs - b.refused - b.bad_range) as u32;
        b
    }

    /// A free frame to build a packet in (the reserve included).
    #[inline]
    pub fn alloc(&mut self) -> Option<Frame> {
        let f = self.pool.alloc()?;
        self.out += 1;
        Some(f)
    }

    /// A frame that was handed out comes back to the free list.
    #[inline]
    pub fn free(&mut self, f: Frame) {
        self.out = self.out.saturating_sub(1);
        self.pool.free(f);
    }

    /// Queues `pkt` for the tx ring. On completion its frame goes to the
    /// free list (`route` = [`ROUTE_FREE`]) or back to the caller through
    /// [`reap`](Self::reap); `tally` is counted when the ring takes it. A
    /// packet whose range is empty or leaves its frame is refused at the
    /// ring (its frame goes back to the free list, counted
    /// `bad_descriptor`).
    #[inline]
    pub fn send(&mut self, pkt: Packet, route: Route, tally: Option<Counter>) {
        self.out = self.out.saturating_sub(1);
        self.backlog.push_back(TxItem { pkt, route, tally });
    }

    /// A packet handed out by this port left for another core.
    #[inline]
    pub fn gave_away(&mut self) {
        self.out = self.out.saturating_sub(1);
    }

    /// A packet from another core is now handled here.
    #[inline]
    pub fn took_over(&mut self) {
        self.out += 1;
    }

    /// Packets queued for the tx ring.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Moves the queued packets onto the tx ring, in order and as many as
    /// fit, counting them (and their tallies) in `stats`; kicks the kernel
    /// when it asks.
    pub fn flush(&mut self, stats: Option<&CoreStats>) -> Flushed {
        let mut r = Flushed::default();
        if !self.backlog.is_empty() {
            let Port { xsk, backlog, routes, pool, .. } = self;
            let mut bytes = 0u64;
            let mut refused = 0usize;
            let size = pool.table().frame_size();
            // What goes on the ring is counted here; a refused packet (never
            // made by the engine, but checked in every build) is not.
            let n = xsk.transmit(
                backlog.len(),
                || {
                    let it = backlog.pop_front()?;
                    let (off, len) = (it.pkt.off() as u32, it.pkt.len() as u32);
                    // A bad range goes to `refused` below, uncounted.
                    if len > 0 && off + len <= size {
                        if it.route != ROUTE_FREE {
                            routes[it.pkt.frame.index() as usize] = it.route;
                        }
                        if let (Some(t), Some(st)) = (it.tally, stats) {
                            st.add(t, 1);
                        }
                        bytes += len as u64;
                    }
                    Some(it.pkt)
                },
                |p| {
                    refused += 1;
                    pool.free(p.into_frame());
                },
            );
            r.refused = refused;
            if let (Some(st), true) = (stats, refused > 0) {
                st.drop_frames(crate::stats::DropReason::BadDescriptor, refused as u64);
            }
            self.lent_tx += n as u32;
            r.sent = n;
            r.bytes = bytes;
            if let (Some(st), true) = (stats, n > 0) {
                st.add(Counter::TxPackets, n as u64);
                st.add(Counter::TxBytes, bytes);
                st.add(Counter::TxBatches, 1);
            }
        }
        // One kick sends the whole ring when the kernel took our
        // XDP_MAX_TX_SKB_BUDGET; older kernels stop after 32 frames, so kick
        // again while the ring keeps draining (bounded).
        let mut pending = self.xsk.tx_occupancy();
        for _ in 0..MAX_KICKS_PER_FLUSH {
            if pending == 0 || !self.xsk.tx_needs_wakeup() {
                break;
            }
            r.kicks += 1;
            if let Err(e) = self.xsk.kick_tx() {
                r.kick_error = Some(e);
                break;
            }
            let left = self.xsk.tx_occupancy();
            if left >= pending {
                break;
            }
            pending = left;
        }
        if let Some(st) = stats {
            if r.kicks > 0 {
                st.add(Counter::TxKicks, r.kicks as u64);
            }
            if r.kick_error.is_some() {
                st.add(Counter::TxKickErrors, 1);
            }
        }
        r
    }

    /// Rebalances with the other cores and restocks the fill ring from the
    /// free list beyond the reserve. The fill ring is kicked whenever the
    /// kernel asks and nothing arrived this pass (`received == 0`), not only
    /// after producing: a wakeup lost to a race is retried.
    pub fn refill(&mut self, received: usize) -> Refilled {
        let (lent, borrowed) = self.pool.rebalance(self.lent_rx as usize);
        let (free, may) = self.pool.lendable();
        let filled = self.xsk.fill(free, may);
        self.lent_rx += filled as u32;
        let kicked = (filled > 0 || received == 0) && self.xsk.fill_occupancy() > 0 && self.xsk.fill_needs_wakeup();
        if kicked {
            self.xsk.kick_rx();
        }
        Refilled { filled, lent, borrowed, kicked }
    }

    /// Whether the port has packets on or for the tx ring.
    pub fn tx_pending(&self) -> bool {
        !self.backlog.is_empty() || self.xsk.tx_occupancy() > 0
    }

    /// Frames by place.
    pub fn frames(&self) -> PortFrames {
        PortFrames {
            free: self.pool.free_len() as u32,
            lent_rx: self.lent_rx,
            lent_tx: self.lent_tx,
            tx_backlog: self.backlog.len() as u32,
            out: self.out,
        }
    }

    /// Publishes ring occupancy and frames by place as gauges; `held` of
    /// the frames out are held by connections, the rest are in hand.
    pub fn publish_gauges(&self, st: &CoreStats, held: u32) {
        st.set(Gauge::FillRing, self.xsk.fill_occupancy() as u64);
        st.set(Gauge::RxRing, self.xsk.rx_occupancy() as u64);
        st.set(Gauge::TxRing, self.xsk.tx_occupancy() as u64);
        st.set(Gauge::CompRing, self.xsk.comp_occupancy() as u64);
        let f = self.frames();
        st.set(Gauge::FramesFree, f.free as u64);
        st.set(Gauge::FramesRx, f.lent_rx as u64);
        st.set(Gauge::FramesTx, f.lent_tx as u64);
        st.set(Gauge::TxBacklog, f.tx_backlog as u64);
        st.set(Gauge::FramesHeld, held as u64);
        st.set(Gauge::FramesInHand, f.out.saturating_sub(held) as u64);
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // Queued packets' frames go back to the pool, which retires them.
        while let Some(it) = self.backlog.pop_front() {
            self.pool.free(it.pkt.into_frame());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afxdp::fake::{FakeKernel, RX_HEADROOM};
    use crate::afxdp::frames_leaked;
    use crate::pool::SharedFrames;
    use proptest::prelude::*;

    /// `cores` ports on one UMEM of `frames` frames, rings of `ring` slots.
    fn ports(frames: u32, cores: u16, ring: u32) -> (Arc<SharedFrames>, Vec<(Port, FakeKernel)>) {
        let table = FrameTable::create(frames, 2048).unwrap();
        let shared = SharedFrames::new(table.clone());
        let pools = shared.split(cores);
        let v = pools
            .into_iter()
            .enumerate()
            .map(|(q, pool)| {
                let (sock, k) = FakeKernel::socket(&table, q as u32, ring);
                (Port::new(sock, pool, 16), k)
            })
            .collect();
        (shared, v)
    }

    fn echo_all(port: &mut Port) -> usize {
        let mut rx = Vec::new();
        port.receive(&mut rx);
        let n = rx.len();
        for p in rx {
            port.send(p, ROUTE_FREE, None);
        }
        n
    }

    #[test]
    fn packets_go_round_and_every_frame_comes_home() {
        let (shared, mut v) = ports(64, 1, 16);
        let (port, k) = &mut v[0];
        assert_eq!(port.refill(0).filled, 16, "the fill ring takes what fits");
        for i in 0..10u8 {
            assert!(k.deliver(&[i; 60]));
        }
        assert_eq!(port.frames().lent_rx, 16);
        assert_eq!(echo_all(port), 10);
        assert_eq!(port.frames().tx_backlog, 10);
        let f = port.flush(None);
        assert_eq!((f.sent, f.bytes), (10, 600));
        let sent = k.take_sent(true);
        assert_eq!(sent.len(), 10);
        assert!(sent.iter().enumerate().all(|(i, b)| b == &vec![i as u8; 60]), "in order, byte for byte");
        assert_eq!(port.reap(|f, _| Some(f)), (10, 0));
        let pf = port.frames();
        assert_eq!((pf.lent_rx, pf.lent_tx, pf.out, pf.tx_backlog, pf.free), (6, 0, 0, 0, 58));
        assert_eq!(shared.table().census().lent_rx, 6);
    }

    #[test]
    fn what_the_tx_ring_cannot_take_waits_in_order() {
        let (_shared, mut v) = ports(64, 1, 8);
        let (port, k) = &mut v[0];
        let mut frames = Vec::new();
        for i in 0..20u8 {
            let mut f = port.alloc().unwrap();
            port.table().frame_mut(&mut f)[0] = i;
            frames.push(f);
        }
        for f in frames {
            port.send(Packet::new(f, 0, 1), ROUTE_FREE, None);
        }
        assert_eq!(port.flush(None).sent, 8, "the ring has 8 slots");
        assert_eq!(port.backlog(), 12, "the rest waits, nothing is dropped");
        let mut got: Vec<u8> = k.take_sent(true).into_iter().map(|b| b[0]).collect();
        port.reap(|f, _| Some(f));
        assert_eq!(port.flush(None).sent, 8);
        got.extend(k.take_sent(true).into_iter().map(|b| b[0]));
        port.reap(|f, _| Some(f));
        assert_eq!(port.flush(None).sent, 4);
        got.extend(k.take_sent(true).into_iter().map(|b| b[0]));
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
    }

    #[test]
    fn a_retained_frame_comes_back_to_its_keeper_not_the_free_list() {
        let (_shared, mut v) = ports(32, 1, 8);
        let (port, k) = &mut v[0];
        let mut f = port.alloc().unwrap();
        port.table().frame_mut(&mut f)[..3].copy_from_slice(b"seg");
        let idx = f.index();
        port.send(Packet::new(f, 0, 3), 7, None);
        port.flush(None);
        assert_eq!(k.take_sent(true), vec![b"seg".to_vec()]);
        let mut kept = None;
        port.reap(|f, route| {
            assert_eq!(route, 7);
            kept = Some(f);
            None
        });
        let mut f = kept.expect("the keeper got its frame back");
        assert_eq!(f.index(), idx);
        assert_eq!(&port.table().frame_mut(&mut f)[..3], b"seg", "the retransmission copy is intact");
        assert_eq!(port.frames().out, 1, "held by its keeper");
        // Sent again without a route: this time it goes to the free list.
        port.send(Packet::new(f, 0, 3), ROUTE_FREE, None);
        port.flush(None);
        k.take_sent(true);
        port.reap(|_, _| panic!("no route any more"));
        assert_eq!(port.frames().out, 0);
        // A keeper that is gone gives the frame back.
        let f = port.alloc().unwrap();
        port.send(Packet::new(f, 0, 1), 9, None);
        port.flush(None);
        k.take_sent(true);
        port.reap(|f, _| Some(f));
        assert_eq!(port.frames().out, 0);
        assert_eq!(port.frames().free, 32);
    }

    #[test]
    fn a_packet_whose_range_leaves_its_frame_never_reaches_the_ring() {
        let (shared, mut v) = ports(8, 1, 8);
        let (port, k) = &mut v[0];
        let a = port.alloc().unwrap();
        let b = port.alloc().unwrap();
        let c = port.alloc().unwrap();
        port.send(Packet::new(a, 2048, 60), ROUTE_FREE, None); // would name the next frame
        port.send(Packet::new(b, 2000, 60), ROUTE_FREE, None); // runs past the end
        port.send(Packet::new(c, 0, 0), ROUTE_FREE, None); // empty
        let f = port.flush(None);
        assert_eq!((f.sent, f.refused), (0, 3));
        assert!(k.take_sent_descs().is_empty(), "the kernel saw none of them");
        assert_eq!(port.frames().free, 8, "their frames are back");
        assert_eq!(shared.table().census().lent_tx, 0);
    }

    #[test]
    fn the_reserve_never_reaches_the_fill_ring() {
        let (_shared, mut v) = ports(40, 1, 64);
        let (port, k) = &mut v[0];
        port.pool_mut().set_reserve(8);
        assert_eq!(port.refill(0).filled, 32);
        assert_eq!(port.refill(0).filled, 0);
        assert_eq!(k.take_fill(), 32);
        let held: Vec<Frame> = (0..8).map(|_| port.alloc().expect("the reserve is there to send with")).collect();
        assert!(port.alloc().is_none());
        for f in held {
            port.free(f);
        }
    }

    #[test]
    fn descriptors_the_kernel_should_not_give_are_refused() {
        let (shared, mut v) = ports(16, 1, 8);
        let (port, k) = &mut v[0];
        port.refill(0);
        k.take_fill();
        let lent = *k.stocked.front().unwrap();
        // A frame still on the free list (not lent), one outside the UMEM,
        // and a lent one with a range across its end.
        let free_frame = (0..16u64).map(|i| i * 2048).find(|a| !k.stocked.contains(a)).unwrap();
        k.deliver_raw(Desc { addr: free_frame + 256, len: 60, options: 0 });
        k.deliver_raw(Desc { addr: 99 * 2048, len: 60, options: 0 });
        k.deliver_raw(Desc { addr: lent + RX_HEADROOM, len: 2000, options: 0 });
        let mut rx = Vec::new();
        let b = port.receive(&mut rx);
        assert_eq!((b.descs, b.refused, b.bad_range, rx.len()), (3, 2, 1, 0));
        assert_eq!(port.frames().free, 16 - 8 + 1, "the bad-range frame went back to the free list");
        assert_eq!(shared.table().census().lent_rx, 7);
    }

    #[test]
    fn dropping_a_port_gives_queued_frames_back() {
        let _g = crate::afxdp::frames::leak_check();
        let before = frames_leaked();
        let (shared, mut v) = ports(16, 1, 8);
        {
            let (port, _k) = &mut v[0];
            for _ in 0..4 {
                let f = port.alloc().unwrap();
                port.send(Packet::new(f, 0, 1), ROUTE_FREE, None);
            }
        }
        drop(v);
        assert_eq!(shared.table().census().retired, 16);
        assert_eq!(frames_leaked(), before);
    }

    proptest! {
        /// Random traffic over two cores sharing a UMEM (receive, echo,
        /// drop, hand off, flush, complete, refill with rebalancing), with
        /// rings smaller than the free lists so rings take only part of
        /// what is offered: no frame is ever lost, duplicated or leaked, and
        /// the ports' counts match the frame table's census.
        #[test]
        fn frames_are_conserved(ops in proptest::collection::vec((0u8..8, 0usize..2, 1usize..12), 1..300)) {
            let _g = crate::afxdp::frames::leak_check();
            let leaked = frames_leaked();
            let (shared, mut v) = ports(96, 2, 16);
            for (p, _) in v.iter_mut() {
                p.pool_mut().set_marks(8, 40);
                p.pool_mut().set_reserve(4);
            }
            let mut hands: [Vec<Packet>; 2] = Default::default();
            let mut queue: [Vec<Packet>; 2] = Default::default(); // a handoff queue per destination
            // Sent by the kernel, not yet completed.
            let mut inflight: [std::collections::VecDeque<u64>; 2] = Default::default();
            for (op, c, n) in ops {
                let other = 1 - c;
                match op {
                    0 => { v[c].0.refill(0); }
                    1 => for i in 0..n { // the kernel receives
                        let _ = v[c].1.deliver(&[i as u8; 64]);
                    },
                    2 => { let p = &mut v[c].0; let mut rx = Vec::new(); p.receive(&mut rx); hands[c].extend(rx); }
                    3 => for _ in 0..n { // reply
                        if let Some(p) = hands[c].pop() { v[c].0.send(p, ROUTE_FREE, None); }
                    },
                    4 => if let Some(p) = hands[c].pop() { v[c].0.free(p.into_frame()); },
                    5 => if let Some(p) = hands[c].pop() { v[c].0.gave_away(); queue[other].push(p); },
                    6 => for p in queue[c].drain(..) { v[c].0.took_over(); hands[c].push(p); },
                    _ => { // flush; the kernel sends and completes some of what is
                        // on the tx ring (the rest stays lent across ops); reap
                        v[c].0.flush(None);
                        let d = v[c].1.take_sent_descs();
                        inflight[c].extend(d.iter().map(|x| x.addr));
                        let k = n.min(inflight[c].len());
                        let done: Vec<u64> = inflight[c].drain(..k).collect();
                        v[c].1.complete(&done);
                        prop_assert_eq!(v[c].0.reap(|f, _| Some(f)).1, 0);
                    }
                }
                let census = shared.table().census();
                let mut user = shared.exchanged() as u32;
                let mut lent_rx = 0;
                let mut lent_tx = 0;
                for (c, (p, _)) in v.iter().enumerate() {
                    let f = p.frames();
                    prop_assert_eq!(f.out as usize, hands[c].len(), "core {} out", c);
                    user += f.free + f.out + f.tx_backlog;
                    lent_rx += f.lent_rx;
                    lent_tx += f.lent_tx;
                }
                user += (queue[0].len() + queue[1].len()) as u32;
                prop_assert_eq!(census.user, user);
                prop_assert_eq!(census.lent_rx, lent_rx);
                prop_assert_eq!(census.lent_tx, lent_tx);
                prop_assert_eq!(census.user + census.lent_rx + census.lent_tx, 96);
            }
            for (c, (p, _)) in v.iter_mut().enumerate() {
                for x in hands[c].drain(..) {
                    p.free(x.into_frame());
                }
                for x in queue[c].drain(..) {
                    p.took_over();
                    p.free(x.into_frame());
                }
            }
            drop(v);
            prop_assert_eq!(frames_leaked(), leaked, "no token was dropped");
        }
    }
}
