//! Turning the state machine's segments into frames: Ethernet, IPv4 and TCP
//! headers (checksums in software) in front of the payload.
//!
//! A segment whose payload is exactly one held chunk with room in front of
//! it is sent from that chunk's own frame (the received frame, for echo,
//! holding one segment or several small ones coalesced):
//! the headers are written before the payload, the frame goes to the tx ring
//! with the connection's route, and it comes back to the connection as the
//! retransmission copy. Any other payload is copied into a fresh frame. A
//! segment that needs a frame the pool cannot give, or a chunk that is still
//! on a tx ring, is refused (`Blocked`) and sent on a later pass.
use super::chunk::FrameChunk;
use crate::afxdp::{FrameTable, Packet};
use crate::port::{Port, Route, ROUTE_FREE};
use crate::wire::ethernet::{self, EthernetAddress};
use crate::wire::{ip_proto, ipv4, tcp};
use sluice_tcp::buf::{Arena, NIL};
use sluice_tcp::conn::{Blocked, Emit, PayloadRef};
use sluice_tcp::segment::OutSegment;
use std::cell::Cell;
use std::net::Ipv4Addr;

/// Where a connection's frames go: both ends' MAC, address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    /// Our interface's MAC.
    pub local_mac: EthernetAddress,
    /// The peer's (the source MAC of its frames).
    pub remote_mac: EthernetAddress,
    /// Our address.
    pub local_ip: Ipv4Addr,
    /// The peer's address.
    pub remote_ip: Ipv4Addr,
    /// Our port.
    pub local_port: u16,
    /// The peer's port.
    pub remote_port: u16,
}

/// TTL of the segments sluice sends.
pub const TTL: u8 = 64;
/// Where a copied segment's headers start in a fresh frame.
const FRESH_OFF: u16 = 0;

/// Bytes of the Ethernet, IPv4 and TCP headers of `seg`.
pub fn header_len(seg: &OutSegment) -> usize {
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp::HEADER_LEN + seg.opts.encoded_len()
}

/// Writes the headers of `seg` into `buf[..header_len(seg)]`, in front of
/// the `payload_len` bytes of payload already at `buf[header_len..]`, and
/// fills both checksums. `buf` must hold headers and payload.
pub fn write_headers(buf: &mut [u8], path: &Path, seg: &OutSegment, payload_len: usize, ip_id: u16) {
    let hl = header_len(seg);
    let tcp_hl = hl - ethernet::HEADER_LEN - ipv4::HEADER_LEN;
    let ip_total = ipv4::HEADER_LEN + tcp_hl + payload_len;
    let buf = &mut buf[..hl + payload_len];
    let mut eth = ethernet::Frame::new_unchecked(&mut *buf);
    eth.set_dst_addr(path.remote_mac);
    eth.set_src_addr(path.local_mac);
    eth.set_ethertype(ethernet::ethertype::IPV4);
    let repr = ipv4::Ipv4Repr {
        src_addr: path.local_ip,
        dst_addr: path.remote_ip,
        protocol: ip_proto::TCP,
        payload_len: tcp_hl + payload_len,
        ttl: TTL,
    };
    let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
    repr.emit(&mut ip);
    ip.set_ident(ip_id);
    ip.fill_checksum();
    debug_assert_eq!(ip.total_len() as usize, ip_total);
    let l4 = ip.payload_mut();
    let mut t = tcp::Segment::new_unchecked(&mut l4[..tcp_hl + payload_len]);
    t.set_src_port(path.local_port);
    t.set_dst_port(path.remote_port);
    t.set_seq_number(seg.seq.0);
    t.set_ack_number(if seg.flags.ack() { seg.ack.0 } else { 0 });
    t.set_header_len(tcp_hl);
    t.set_flags(seg.flags.0 as u16);
    t.set_window_len(seg.wnd);
    t.set_urgent_at(0);
    let n = seg.opts.write(t.options_mut());
    debug_assert_eq!(n, tcp_hl - tcp::HEADER_LEN);
    t.fill_checksum(path.local_ip, path.remote_ip, tcp_hl + payload_len);
}

/// Sends a segment without payload or connection (SYN-ACK, RST) in a fresh
/// frame; false when no frame was free (the caller counts it).
pub fn send_bare(port: &mut Port, table: &FrameTable, path: &Path, seg: &OutSegment, ip_id: u16) -> bool {
    let Some(mut f) = port.alloc() else { return false };
    let hl = header_len(seg);
    write_headers(&mut table.frame_mut(&mut f)[FRESH_OFF as usize..], path, seg, 0, ip_id);
    port.send(Packet::new(f, FRESH_OFF, hl as u16), ROUTE_FREE, None);
    true
}

/// The route of a frame lent from arena node `node`: its completion goes
/// back to that node (0 is [`ROUTE_FREE`]).
#[inline]
pub fn route_of(node: u32) -> Route {
    node + 1
}

/// The arena node a route names, if it names one.
#[inline]
pub fn node_of(route: Route) -> Option<u32> {
    route.checked_sub(1)
}

/// What the emitters of one core did.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmitCounts {
    /// Chunks whose frame is on a tx ring now.
    pub lent: u32,
    /// Segments sent from their chunk's own frame.
    pub zero_copy: u64,
    /// Payload bytes copied into fresh frames.
    pub copied_bytes: u64,
    /// Segments refused for want of a free frame.
    pub no_frame: u64,
}

/// The [`Emit`] of one connection.
pub struct Emitter<'a> {
    /// The core's port.
    pub port: &'a mut Port,
    /// The UMEM.
    pub table: &'a FrameTable,
    /// The connection's addresses.
    pub path: &'a Path,
    /// The core's IP ID counter.
    pub ip_id: &'a Cell<u16>,
    /// The core's tallies.
    pub counts: &'a mut EmitCounts,
}

impl Emitter<'_> {
    fn next_id(&mut self) -> u16 {
        let id = self.ip_id.get();
        self.ip_id.set(id.wrapping_add(1));
        id
    }
}

impl Emit<FrameChunk> for Emitter<'_> {
    fn emit(
        &mut self,
        seg: &OutSegment,
        payload: Option<PayloadRef>,
        arena: &mut Arena<FrameChunk>,
    ) -> Result<(), Blocked> {
        let hl = header_len(seg);
        let Some(p) = payload.filter(|p| p.len > 0) else {
            let id = self.next_id();
            if send_bare(self.port, self.table, self.path, seg, id) {
                return Ok(());
            }
            self.counts.no_frame += 1;
            return Err(Blocked);
        };
        // Zero copy: the payload is exactly one chunk, with room in front.
        {
            let node = arena.node_mut(p.node);
            let exact = p.offset == 0 && p.len as usize == sluice_tcp::Chunk::len(node.chunk());
            if exact && node.chunk().off() as usize >= hl {
                let Some(mut pkt) = node.chunk_mut().lend() else {
                    // The previous copy is still on a tx ring: later.
                    return Err(Blocked);
                };
                let start = pkt.off() - hl as u16;
                pkt.set_range(start, hl as u16 + p.len as u16);
                let id = self.next_id();
                match self.table.packet_mut(&mut pkt) {
                    Some(buf) => write_headers(buf, self.path, seg, p.len as usize, id),
                    None => unreachable!("a chunk's range lies in its frame"),
                }
                self.port.send(pkt, route_of(p.node), None);
                self.counts.lent += 1;
                self.counts.zero_copy += 1;
                return Ok(());
            }
        }
        // Copy into a fresh frame.
        let total = hl + p.len as usize;
        if total > self.table.frame_size() as usize {
            return Err(Blocked);
        }
        let Some(mut f) = self.port.alloc() else {
            self.counts.no_frame += 1;
            return Err(Blocked);
        };
        let mut ok = true;
        {
            let dst = &mut self.table.frame_mut(&mut f)[FRESH_OFF as usize..];
            let mut at = hl;
            let mut i = p.node;
            let mut off = p.offset as usize;
            let mut left = p.len as usize;
            while left > 0 {
                if i == NIL {
                    ok = false;
                    break;
                }
                let node = arena.node_mut(i);
                let next = node.next();
                let Some(src) = node.chunk_mut().bytes(self.table) else {
                    ok = false;
                    break;
                };
                let take = (src.len() - off).min(left);
                dst[at..at + take].copy_from_slice(&src[off..off + take]);
                at += take;
                left -= take;
                off = 0;
                i = next;
            }
            if ok {
                let id = self.ip_id.get();
                self.ip_id.set(id.wrapping_add(1));
                write_headers(dst, self.path, seg, p.len as usize, id);
            }
        }
        if !ok {
            self.port.free(f);
            return Err(Blocked);
        }
        self.counts.copied_bytes += p.len as u64;
        self.port.send(Packet::new(f, FRESH_OFF, total as u16), ROUTE_FREE, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_tcp::segment::{Flags, Options, SackBlock, Timestamp};
    use sluice_tcp::Seq;

    fn path() -> Path {
        Path {
            local_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            remote_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            local_ip: Ipv4Addr::new(198, 18, 0, 2),
            remote_ip: Ipv4Addr::new(198, 18, 0, 1),
            local_port: 80,
            remote_port: 40000,
        }
    }

    #[test]
    fn headers_parse_back_with_valid_checksums() {
        let mut opts = Options { timestamp: Some(Timestamp { val: 7, ecr: 9 }), ..Options::default() };
        opts.sack.push(SackBlock { left: Seq(10), right: Seq(20) });
        let seg =
            OutSegment { seq: Seq(1000), ack: Seq(2000), flags: Flags::ACK | Flags::PSH, wnd: 512, opts, data: None };
        let hl = header_len(&seg);
        assert_eq!(hl, 14 + 20 + 20 + 12 + 12);
        let mut buf = vec![0u8; hl + 5];
        buf[hl..].copy_from_slice(b"hello");
        write_headers(&mut buf, &path(), &seg, 5, 0x4242);
        let eth = ethernet::Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(eth.dst_addr(), path().remote_mac);
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.total_len() as usize, ip.ident(), ip.ttl(), ip.dont_frag()), (hl - 14 + 5, 0x4242, 64, true));
        let t = tcp::Segment::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum(ip.src_addr(), ip.dst_addr(), ip.payload().len()));
        assert_eq!((t.src_port(), t.dst_port(), t.seq_number(), t.ack_number()), (80, 40000, 1000, 2000));
        assert_eq!((t.window_len(), t.payload()), (512, &b"hello"[..]));
        let o = sluice_tcp::segment::parse_options(t.options(), false).unwrap();
        assert_eq!(o, seg.opts);
    }
}
