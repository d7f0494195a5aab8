//! ICMP echo on the service addresses (RFC 792).
use super::{Arrival, Context, L4Verdict};
use crate::ownership::FlowKey;
use crate::stats::{Counter, DropReason};
use crate::wire::{icmpv4, ip_proto};
use std::net::Ipv4Addr;

/// Turns an echo request into its reply in place (type 8 → 0, the checksum
/// updated incrementally); the caller builds the IP and Ethernet headers.
pub(super) fn handle(l4: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, arrival: Arrival, cx: &Context<'_>) -> L4Verdict {
    let Ok(mut icmp) = icmpv4::Packet::new_checked(l4) else {
        return L4Verdict::Drop(DropReason::IcmpMalformed);
    };
    if icmp.msg_type() != icmpv4::msg_type::ECHO_REQUEST || icmp.code() != 0 {
        return L4Verdict::Drop(DropReason::IcmpUnsupported);
    }
    if !cx.services.is_service_addr(dst) {
        return L4Verdict::Drop(DropReason::NoService);
    }
    if !icmp.verify_checksum() {
        return L4Verdict::Drop(DropReason::IcmpBadChecksum);
    }
    let flow = FlowKey { proto: ip_proto::ICMP, src, dst, src_port: icmp.echo_ident(), dst_port: 0 };
    if let Some(owner) = cx.owner_elsewhere(&flow, arrival) {
        return L4Verdict::HandOff(owner);
    }
    icmp.set_msg_type_incremental(icmpv4::msg_type::ECHO_REPLY);
    L4Verdict::Reply(Counter::IcmpEchoed)
}
