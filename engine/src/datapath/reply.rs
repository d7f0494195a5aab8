//! The Ethernet and IPv4 headers of every reply sluice builds from a request
//! in place (UDP echo, ICMP echo): written here and nowhere else.
use crate::wire::{ethernet, ipv4};

/// TTL of the packets sluice sends.
pub const REPLY_TTL: u8 = 64;

/// Mask of the ECN bits of the DSCP/ECN byte (RFC 3168).
const ECN_MASK: u8 = 0b11;

/// Turns the headers of a received IPv4 packet into those of its reply: the
/// Ethernet and IP addresses swapped, TTL [`REPLY_TTL`], the IP ID `ip_id`
/// (not the request's: IDs are the sender's, RFC 6864), the ECN field
/// cleared (sluice's replies are not ECN-capable, and a CE mark on the
/// request must not be echoed as if the reply had met congestion), DSCP, DF
/// and the total length kept, and the header checksum recomputed. The
/// transport header and payload are the caller's. Returns the frame length
/// (Ethernet padding of the request is not part of it).
pub(super) fn turn_around<T: AsRef<[u8]> + AsMut<[u8]>>(eth: &mut ethernet::Frame<T>, ip_id: u16) -> u32 {
    eth.swap_addrs();
    let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
    ip.swap_addrs();
    ip.set_ttl(REPLY_TTL);
    ip.set_ident(ip_id);
    ip.set_dscp_ecn(ip.dscp_ecn() & !ECN_MASK);
    ip.fill_checksum();
    ethernet::HEADER_LEN as u32 + ip.total_len() as u32
}
