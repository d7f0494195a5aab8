//! UDP services: echo (RFC 862) and discard (RFC 863).
use super::{Arrival, Context, L4Verdict};
use crate::config::{Proto, ServiceKind};
use crate::ownership::FlowKey;
use crate::stats::{Counter, DropReason};
use crate::wire::{ip_proto, udp};
use std::net::Ipv4Addr;

/// Source ports an echo never answers: a reply would start a loop with
/// another small service (echo, chargen, daytime, time, qotd, ...) or feed a
/// service that answers anything (DNS, NTP, SNMP, NetBIOS, SSDP, ...), so a
/// datagram spoofed from one of them could make two servers bounce packets
/// at each other for ever. As inetd refuses its internal UDP services to
/// these ports; port 0 is never a valid source.
pub const LOOP_PORTS: &[u16] = &[
    0,     // reserved, never a real source
    7,     // echo
    9,     // discard
    11,    // systat
    13,    // daytime
    17,    // qotd
    19,    // chargen
    37,    // time
    53,    // domain
    69,    // tftp
    111,   // sunrpc
    123,   // ntp
    137,   // netbios-ns
    138,   // netbios-dgm
    161,   // snmp
    162,   // snmptrap
    389,   // cldap
    520,   // rip
    1900,  // ssdp
    5353,  // mdns
    11211, // memcached
];

/// Whether an echo to a datagram from `port` could loop or amplify.
#[inline]
pub fn is_loop_port(port: u16) -> bool {
    // Sorted and short: a binary search is a handful of compares.
    LOOP_PORTS.binary_search(&port).is_ok()
}

/// Serves one datagram in place: echo swaps the ports (the caller builds the
/// IP and Ethernet headers), discard consumes it.
pub(super) fn handle(l4: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, arrival: Arrival, cx: &Context<'_>) -> L4Verdict {
    let Ok(mut dgram) = udp::Datagram::new_checked(l4) else {
        return L4Verdict::Drop(DropReason::UdpMalformed);
    };
    let Some(service) = cx.services.lookup(Proto::Udp, dst, dgram.dst_port()) else {
        return L4Verdict::Drop(DropReason::NoService);
    };
    // Verify before the flow may claim a directory slot.
    if !dgram.verify_checksum(src, dst) {
        return L4Verdict::Drop(DropReason::UdpBadChecksum);
    }
    // Refused before the flow may claim an owner slot.
    if service.kind == ServiceKind::Echo && is_loop_port(dgram.src_port()) {
        return L4Verdict::Drop(DropReason::UdpLoopPort);
    }
    let flow = FlowKey { proto: ip_proto::UDP, src, dst, src_port: dgram.src_port(), dst_port: dgram.dst_port() };
    if let Some(owner) = cx.owner_elsewhere(&flow, arrival) {
        return L4Verdict::HandOff(owner);
    }
    match service.kind {
        ServiceKind::Echo => {
            // Swapping the ports (and, in the caller, the addresses) leaves
            // the one's-complement sum, and so the checksum, unchanged.
            dgram.swap_ports();
            L4Verdict::Reply(Counter::UdpEchoed)
        }
        ServiceKind::Discard => {
            cx.stats.add(Counter::UdpDiscarded, 1);
            L4Verdict::Consumed
        }
        // Config validation admits only echo and discard for UDP today.
        _ => L4Verdict::Drop(DropReason::NoService),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_ports_are_sorted_and_found() {
        assert!(LOOP_PORTS.windows(2).all(|w| w[0] < w[1]), "binary search needs a sorted list");
        for p in [0, 7, 19, 53, 123, 11211] {
            assert!(is_loop_port(p), "{p}");
        }
        for p in [1, 8, 80, 1024, 40000, 65535] {
            assert!(!is_loop_port(p), "{p}");
        }
    }
}
