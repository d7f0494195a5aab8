//! ARP requests for the service addresses no local interface has (VIPs).
use super::{is_martian, Context, Verdict};
use crate::stats::{Counter, DropReason};
use crate::wire::{arp, ethernet};

/// Answers an ARP request for an address sluice answers for (RFC 826), in
/// place: the requester learns the interface's MAC for the service address.
/// Requests are broadcast, so this runs before the unicast check; the reply
/// is unicast to the requester. Stateless: no flow owner is involved.
///
/// As Linux does: only requests sent to the broadcast address or to our MAC
/// are answered (not ones meant for another host on a shared segment); an
/// RFC 5227 probe (sender address 0.0.0.0) gets a reply whose target address
/// is 0.0.0.0; a gratuitous request (sender address = the service address,
/// i.e. another host claiming it) is not answered.
pub(super) fn handle<T: AsRef<[u8]> + AsMut<[u8]>>(
    eth: &mut ethernet::Frame<T>,
    frame_len: u32,
    cx: &Context<'_>,
) -> Verdict {
    let requester = eth.src_addr();
    if !requester.is_unicast() {
        return Verdict::Drop(DropReason::NotUnicast);
    }
    let mac = cx.services.mac();
    let to = eth.dst_addr();
    if !to.is_broadcast() && to != mac {
        return Verdict::Drop(DropReason::ArpUnsupported);
    }
    let Ok(mut a) = arp::Packet::new_checked(eth.payload_mut()) else {
        return Verdict::Drop(DropReason::ArpUnsupported);
    };
    let target = a.target_proto_addr();
    if a.operation() != arp::Operation::Request as u16 || !cx.services.answers_arp_for(target) {
        return Verdict::Drop(DropReason::ArpUnsupported);
    }
    let (sha, spa) = (a.sender_hw_addr(), a.sender_proto_addr());
    let probe = spa.is_unspecified();
    if sha != requester || spa == target || (!probe && is_martian(spa)) {
        return Verdict::Drop(DropReason::ArpUnsupported);
    }
    a.set_operation(arp::Operation::Reply as u16);
    a.set_target_hw_addr(sha);
    a.set_target_proto_addr(spa); // 0.0.0.0 for a probe, as RFC 5227 expects
    a.set_sender_hw_addr(mac);
    a.set_sender_proto_addr(target);
    eth.set_dst_addr(requester);
    eth.set_src_addr(mac);
    // The reply is as long as the request: 42 bytes, or the padded 60 of a
    // frame that crossed a real wire (its padding is sent back as it came),
    // never more than that minimum frame.
    Verdict::Reply { len: frame_len.min(60), tally: Counter::ArpReplied }
}
