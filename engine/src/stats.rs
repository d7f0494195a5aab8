//! Per-core counters and gauges, written only by their core and summed by
//! the control thread at read time.
//!
//! Each core owns one cache-padded [`CoreStats`]; its worker bumps counters
//! with a relaxed load + store (single writer, no read-modify-write needed)
//! and the control thread reads them with relaxed loads. Every dropped frame
//! has a [`DropReason`] and its own counter.
use crossbeam_utils::CachePadded;
pub use sluice_tcp::stats::{TcpCounter, TcpDrop, TcpStats};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

// The enum-with-names macro is the TCP crate's, so both name their
// counters one way.
use sluice_tcp::named_enum;

named_enum! {
    /// Monotonic per-core counters.
    Counter {
        /// Frames taken from the rx ring.
        RxPackets = "rx_packets",
        /// Bytes of those frames.
        RxBytes = "rx_bytes",
        /// Frames put on the tx ring.
        TxPackets = "tx_packets",
        /// Bytes of those frames.
        TxBytes = "tx_bytes",
        /// Non-empty rx batches.
        RxBatches = "rx_batches",
        /// Non-empty tx batches.
        TxBatches = "tx_batches",
        /// sendto() kicks of the tx ring.
        TxKicks = "tx_kicks",
        /// sendto() kicks that failed with a non-transient error.
        TxKickErrors = "tx_kick_errors",
        /// recvfrom() kicks of the fill ring.
        RxKicks = "rx_kicks",
        /// Times the core went to sleep in poll().
        Sleeps = "sleeps",
        /// Times poll() returned because of work.
        Wakeups = "wakeups",
        /// Completions for frames this core had not lent for sending (ignored).
        BadCompletions = "bad_completions",
        /// Frames this core handed to the flow's owner core.
        HandoffOut = "handoff_out",
        /// Frames other cores handed to this core.
        HandoffIn = "handoff_in",
        /// UDP echo replies sent.
        UdpEchoed = "udp_echoed",
        /// UDP datagrams counted and dropped by a discard service.
        UdpDiscarded = "udp_discarded",
        /// ICMP echo replies sent.
        IcmpEchoed = "icmp_echoed",
        /// ARP replies sent for service addresses.
        ArpReplied = "arp_replied",
        /// Flows whose ownership this core claimed.
        FlowsClaimed = "flows_claimed",
        /// Frames moved from this core's free list to the shared stack.
        FramesLent = "frames_lent",
        /// Frames taken from the shared stack.
        FramesBorrowed = "frames_borrowed",
    }
}

named_enum! {
    /// Why a frame was dropped. Every drop has one.
    DropReason {
        /// Shorter than an Ethernet header.
        EthTruncated = "eth_truncated",
        /// Ethernet destination or source is not a unicast address.
        NotUnicast = "not_unicast",
        /// Ethernet destination is another host's unicast address.
        NotForUs = "not_for_us",
        /// IPv4 source is 0/8, loopback, multicast or reserved.
        MartianSource = "martian_source",
        /// IPv4 header carries options (not answered).
        Ipv4Options = "ipv4_options",
        /// ARP that is not a request for an address sluice answers for.
        ArpUnsupported = "arp_unsupported",
        /// Not IPv4 (the XDP program only steers IPv4 now).
        NotIpv4 = "not_ipv4",
        /// IPv4 header malformed (version, header or total length).
        Ipv4Malformed = "ipv4_malformed",
        /// IPv4 header checksum wrong.
        Ipv4BadChecksum = "ipv4_bad_checksum",
        /// IPv4 fragment (not reassembled).
        Ipv4Fragment = "ipv4_fragment",
        /// UDP header malformed.
        UdpMalformed = "udp_malformed",
        /// UDP checksum wrong.
        UdpBadChecksum = "udp_bad_checksum",
        /// ICMP message malformed.
        IcmpMalformed = "icmp_malformed",
        /// ICMP checksum wrong.
        IcmpBadChecksum = "icmp_bad_checksum",
        /// ICMP message other than echo request.
        IcmpUnsupported = "icmp_unsupported",
        /// Address/port/protocol has no service (a stale steering entry).
        NoService = "no_service",
        /// IP protocol not served (neither TCP, UDP nor ICMP).
        ProtoUnsupported = "proto_unsupported",
        /// TCP header malformed (too short, bad data offset, port 0).
        TcpMalformed = "tcp_malformed",
        /// TCP checksum wrong.
        TcpBadChecksum = "tcp_bad_checksum",
        /// TCP option list malformed (a length running past the header, a
        /// bad length for a known option).
        TcpBadOptions = "tcp_bad_options",
        /// A stateless reply found the tx backlog over its bound (the tx ring
        /// has not drained for a while); TCP segments are never dropped so.
        TxBacklogFull = "tx_backlog_full",
        /// UDP echo request from a source port that could loop or amplify
        /// (0, 7, 13, 19, 37, 53, 123, ...): not answered.
        UdpLoopPort = "udp_loop_port",
        /// The owner core's handoff queue was full.
        HandoffFull = "handoff_full",
        /// The rx descriptor named a frame not lent to this queue, or a range
        /// across frames.
        BadDescriptor = "bad_descriptor",
    }
}

named_enum! {
    /// Point-in-time values a core publishes.
    Gauge {
        /// Frames on the fill ring.
        FillRing = "fill_ring",
        /// Frames waiting on the rx ring.
        RxRing = "rx_ring",
        /// Frames on the tx ring not yet taken by the kernel.
        TxRing = "tx_ring",
        /// Completions waiting on the completion ring.
        CompRing = "completion_ring",
        /// Frames on this core's free list.
        FramesFree = "frames_free",
        /// Frames lent to the kernel for receiving (fill ring + rx ring).
        FramesRx = "frames_rx",
        /// Frames given to the kernel for sending, not yet completed.
        FramesTx = "frames_tx",
        /// Frames the core holds between rx and tx (0 between batches).
        FramesInHand = "frames_in_hand",
        /// Frames held by connections (received data not yet consumed, sent
        /// data not yet acknowledged).
        FramesHeld = "frames_held",
        /// Packets waiting for room on the tx ring.
        TxBacklog = "tx_backlog",
        /// Packets waiting for room in another core's full handoff queue.
        HandoffStash = "handoff_stash",
        /// TCP connections (every state but TIME-WAIT).
        TcpConns = "tcp_conns",
        /// TCP connections in TIME-WAIT.
        TcpTimeWait = "tcp_time_wait",
        /// Half-open TCP connections in the SYN queues.
        TcpHalfOpen = "tcp_half_open",
        /// Kernel drops: rx ring full (XDP_STATISTICS).
        XskRxRingFull = "xsk_rx_ring_full",
        /// Kernel drops: other (XDP_STATISTICS rx_dropped).
        XskRxDropped = "xsk_rx_dropped",
        /// Kernel: fill ring found empty (XDP_STATISTICS).
        XskFillRingEmpty = "xsk_fill_ring_empty",
        /// Kernel: invalid tx descriptors (XDP_STATISTICS).
        XskTxInvalid = "xsk_tx_invalid",
    }
}

impl Gauge {
    /// Whether the value only grows (the kernel's XDP_STATISTICS counts,
    /// which the worker copies): exported as a counter, not a gauge.
    pub fn is_cumulative(self) -> bool {
        matches!(self, Gauge::XskRxRingFull | Gauge::XskRxDropped | Gauge::XskFillRingEmpty | Gauge::XskTxInvalid)
    }
}

/// One core's counters, drops and gauges, and its TCP stack's counters
/// (kept by the stack in plain integers, copied here when gauges are).
pub struct CoreStats {
    counters: [AtomicU64; Counter::COUNT],
    drops: [AtomicU64; DropReason::COUNT],
    gauges: [AtomicU64; Gauge::COUNT],
    tcp: [AtomicU64; TcpCounter::COUNT],
    tcp_drops: [AtomicU64; TcpDrop::COUNT],
}

impl Default for CoreStats {
    fn default() -> Self {
        CoreStats {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            gauges: std::array::from_fn(|_| AtomicU64::new(0)),
            tcp: std::array::from_fn(|_| AtomicU64::new(0)),
            tcp_drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[inline]
fn bump(a: &AtomicU64, n: u64) {
    // Single writer: a plain load + store is enough and avoids a locked RMW.
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl CoreStats {
    /// Adds `n` to counter `c`. Only the owning core calls this.
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        bump(&self.counters[c as usize], n);
    }

    /// Counts `n` frames dropped for `r`. Only the owning core calls this.
    #[inline]
    pub fn drop_frames(&self, r: DropReason, n: u64) {
        bump(&self.drops[r as usize], n);
    }

    /// Sets gauge `g`. Only the owning core calls this.
    #[inline]
    pub fn set(&self, g: Gauge, v: u64) {
        self.gauges[g as usize].store(v, Ordering::Relaxed);
    }

    /// Reads counter `c`.
    pub fn counter(&self, c: Counter) -> u64 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }

    /// Reads the drop counter of `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize].load(Ordering::Relaxed)
    }

    /// Reads gauge `g`.
    pub fn gauge(&self, g: Gauge) -> u64 {
        self.gauges[g as usize].load(Ordering::Relaxed)
    }

    /// Copies the TCP stack's counters. Only the owning core calls this.
    pub fn publish_tcp(&self, t: &TcpStats) {
        for c in TcpCounter::ALL {
            self.tcp[*c as usize].store(t.counter(*c), Ordering::Relaxed);
        }
        for r in TcpDrop::ALL {
            self.tcp_drops[*r as usize].store(t.drops(*r), Ordering::Relaxed);
        }
    }

    /// Reads TCP counter `c`.
    pub fn tcp_counter(&self, c: TcpCounter) -> u64 {
        self.tcp[c as usize].load(Ordering::Relaxed)
    }

    /// Reads the TCP drop counter of `r`.
    pub fn tcp_drops(&self, r: TcpDrop) -> u64 {
        self.tcp_drops[r as usize].load(Ordering::Relaxed)
    }

    /// Sum of all drop counters (frames; TCP's segment drops apart).
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }

    /// Every value by its name: `counters` (the engine's and TCP's),
    /// `drops` (frames by reason and TCP segments by reason) and `gauges`,
    /// each `+=` into the maps given (so cores can be summed into one).
    pub fn add_named(
        &self,
        counters: &mut BTreeMap<String, u64>,
        drops: &mut BTreeMap<String, u64>,
        gauges: &mut BTreeMap<String, u64>,
    ) {
        let add = |m: &mut BTreeMap<String, u64>, k: &str, v: u64| *m.entry(k.to_string()).or_insert(0) += v;
        for k in Counter::ALL {
            add(counters, k.name(), self.counter(*k));
        }
        for k in TcpCounter::ALL {
            add(counters, k.name(), self.tcp_counter(*k));
        }
        for r in DropReason::ALL {
            add(drops, r.name(), self.drops(*r));
        }
        for r in TcpDrop::ALL {
            add(drops, r.name(), self.tcp_drops(*r));
        }
        for g in Gauge::ALL {
            add(gauges, g.name(), self.gauge(*g));
        }
    }
}

/// The stats of every core, each on its own cache lines.
pub struct EngineStats {
    cores: Vec<CachePadded<CoreStats>>,
}

impl EngineStats {
    /// Stats for `n` cores, all zero.
    pub fn new(n: usize) -> Self {
        EngineStats { cores: (0..n).map(|_| CachePadded::new(CoreStats::default())).collect() }
    }

    /// Core `i`'s stats.
    pub fn core(&self, i: usize) -> &CoreStats {
        &self.cores[i]
    }

    /// Number of cores.
    pub fn len(&self) -> usize {
        self.cores.len()
    }

    /// Whether there are no cores.
    pub fn is_empty(&self) -> bool {
        self.cores.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.extend(DropReason::ALL.iter().map(|d| d.name()));
        names.extend(Gauge::ALL.iter().map(|g| g.name()));
        names.extend(TcpCounter::ALL.iter().map(|g| g.name()));
        names.extend(TcpDrop::ALL.iter().map(|g| g.name()));
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{n}");
        }
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn every_name_has_a_help_text() {
        assert_eq!(Counter::RxPackets.help(), "Frames taken from the rx ring.");
        assert!(Counter::ALL.iter().all(|c| !c.help().is_empty()));
        assert!(DropReason::ALL.iter().all(|c| !c.help().is_empty()));
        assert!(Gauge::ALL.iter().all(|c| !c.help().is_empty()));
        assert_eq!(Gauge::by_name("tx_backlog"), Some(Gauge::TxBacklog));
    }

    #[test]
    fn counters_add_and_read_back() {
        let s = EngineStats::new(2);
        s.core(1).add(Counter::RxPackets, 3);
        s.core(1).add(Counter::RxPackets, 4);
        s.core(1).drop_frames(DropReason::UdpBadChecksum, 2);
        s.core(0).set(Gauge::FillRing, 9);
        assert_eq!(s.core(1).counter(Counter::RxPackets), 7);
        assert_eq!(s.core(0).counter(Counter::RxPackets), 0);
        assert_eq!(s.core(1).total_drops(), 2);
        assert_eq!(s.core(0).gauge(Gauge::FillRing), 9);
    }
}
