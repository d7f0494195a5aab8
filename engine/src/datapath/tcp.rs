//! TCP segments to the services: checked here (header, checksum, options)
//! and parsed into the state machine's [`Segment`]; the core's TCP stack
//! ([`crate::tcp`]) serves them.
//!
//! Ownership differs from UDP: a segment never claims its flow here. The
//! core that creates state for the flow (a SYN queue entry, a connection,
//! a TIME-WAIT entry) pins it then, and the last unpin frees the slot, so a
//! flood of SYNs answered with cookies, or of stray ACKs, costs no
//! directory slot.
use super::{Arrival, Context, L4Verdict, ServiceEntry};
use crate::config::Proto;
use crate::ownership::FlowKey;
use crate::stats::DropReason;
use crate::wire::{ip_proto, tcp};
use sluice_tcp::segment::{parse_options, Flags, Segment};
use sluice_tcp::{Seq, Tuple};
use std::net::Ipv4Addr;

/// A checked TCP segment for a service, for the core's TCP stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInput {
    /// The service it is for.
    pub service: ServiceEntry,
    /// The connection's four-tuple, from sluice's side.
    pub tuple: Tuple,
    /// The segment.
    pub seg: Segment,
    /// Where its payload starts, counted from the start of the frame's
    /// packet (Ethernet header); `seg.len` bytes.
    pub payload_off: u16,
    /// The peer's MAC (the frame's source).
    pub remote_mac: [u8; 6],
}

impl TcpInput {
    /// The flow as the owner directory knows it.
    pub fn flow(&self) -> FlowKey {
        flow_of(&self.tuple)
    }
}

/// The directory's key of a connection.
pub fn flow_of(t: &Tuple) -> FlowKey {
    FlowKey {
        proto: ip_proto::TCP,
        src: Ipv4Addr::from(t.remote_addr),
        dst: Ipv4Addr::from(t.local_addr),
        src_port: t.remote_port,
        dst_port: t.local_port,
    }
}

/// Checks and parses one segment (`l4` is the IPv4 payload, its length from
/// the IP header). The caller fills in the payload offset and MAC.
pub(super) fn handle(l4: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, arrival: Arrival, cx: &Context<'_>) -> L4Verdict {
    let Ok(seg) = tcp::Segment::new_checked(&*l4) else {
        return L4Verdict::Drop(DropReason::TcpMalformed);
    };
    let Some(service) = cx.services.lookup(Proto::Tcp, dst, seg.dst_port()) else {
        return L4Verdict::Drop(DropReason::NoService);
    };
    if !seg.verify_checksum(src, dst, l4.len()) {
        return L4Verdict::Drop(DropReason::TcpBadChecksum);
    }
    let flags = seg.flags();
    let syn = flags & 0x02 != 0;
    let Ok(opts) = parse_options(seg.options(), syn) else {
        return L4Verdict::Drop(DropReason::TcpBadOptions);
    };
    // Port 0 is never a valid endpoint (RFC 9293 3.1 reserves it): no
    // connection to or from it.
    if seg.src_port() == 0 {
        return L4Verdict::Drop(DropReason::TcpMalformed);
    }
    let tuple = Tuple {
        local_addr: dst.octets(),
        local_port: seg.dst_port(),
        remote_addr: src.octets(),
        remote_port: seg.src_port(),
    };
    match arrival {
        Arrival::HandedOver => cx.owners.touch(&flow_of(&tuple), cx.core, cx.now_s()),
        Arrival::Rx => {
            if let Some(owner) = cx.owners.peek(&flow_of(&tuple), cx.core, cx.now_s()) {
                return L4Verdict::HandOff(owner);
            }
        }
    }
    let parsed = Segment {
        seq: Seq(seg.seq_number()),
        ack: Seq(seg.ack_number()),
        flags: Flags((flags & 0xff) as u8),
        wnd: seg.window_len(),
        opts,
        len: (l4.len() - seg.header_len()) as u32,
    };
    L4Verdict::Tcp(TcpInput { service, tuple, seg: parsed, payload_off: seg.header_len() as u16, remote_mac: [0; 6] })
}

#[cfg(test)]
mod tests {
    use super::super::{handle_frame, Verdict};
    use super::*;
    use crate::config::Config;
    use crate::ownership::OwnerDirectory;
    use crate::stats::CoreStats;
    use crate::wire::checksum;
    use crate::wire::EthernetAddress;
    use std::cell::Cell;

    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn table() -> super::super::ServiceTable {
        let cfg = Config::parse(
            r#"
[engine]
interface = "sluice0"
[[service]]
name = "echo"
proto = "tcp"
listen = "198.18.0.2:7"
kind = "echo"
"#,
            "test",
        )
        .unwrap();
        let mut t = super::super::ServiceTable::from_config(&cfg);
        t.set_mac(EthernetAddress(SERVER_MAC));
        t
    }

    /// Ethernet + IPv4 + a TCP header with `opts` and `payload`, checksums
    /// right.
    fn segment(sport: u16, dport: u16, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut l4 = Vec::new();
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&1000u32.to_be_bytes());
        l4.extend_from_slice(&2000u32.to_be_bytes());
        l4.extend_from_slice(&[((hl / 4) as u8) << 4, flags, 0x10, 0x00, 0, 0, 0, 0]);
        l4.extend_from_slice(opts);
        l4.extend_from_slice(payload);
        let c = checksum::finish(checksum::pseudo_header_v4(CLIENT, SERVER, 6, l4.len() as u16) + checksum::sum(&l4));
        l4[16..18].copy_from_slice(&c.to_be_bytes());
        let mut f = Vec::new();
        f.extend_from_slice(&SERVER_MAC);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&CLIENT.octets());
        f.extend_from_slice(&SERVER.octets());
        let c = checksum::finish(checksum::sum(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&l4);
        f
    }

    fn verdict(mut f: Vec<u8>) -> Verdict {
        let services = table();
        let owners = OwnerDirectory::new(64, 30, 1);
        let stats = CoreStats::default();
        let ip_id = Cell::new(0);
        let cx =
            Context { services: &services, owners: &owners, core: 0, now_us: 1_000_000, stats: &stats, ip_id: &ip_id };
        handle_frame(&mut f, Arrival::Rx, &cx)
    }

    #[test]
    fn a_good_segment_is_parsed_for_the_stack_with_its_payload_place() {
        // MSS 1460, NOP, window scale 7.
        let opts = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];
        let mut f = segment(40000, 7, 0x02, &opts, b"");
        f.extend_from_slice(&[0u8; 6]); // Ethernet padding is not payload
        let Verdict::Tcp(t) = verdict(f) else { panic!("not for TCP") };
        assert_eq!((t.tuple.local_port, t.tuple.remote_port, t.tuple.remote_addr), (7, 40000, CLIENT.octets()));
        assert_eq!((t.seg.seq, t.seg.ack, t.seg.wnd, t.seg.len), (Seq(1000), Seq(2000), 0x1000, 0));
        assert!(t.seg.flags.syn() && !t.seg.flags.ack());
        assert_eq!((t.seg.opts.mss, t.seg.opts.wscale), (Some(1460), Some(7)));
        assert_eq!(t.remote_mac, [2, 0, 0, 0, 0, 1]);
        let Verdict::Tcp(t) = verdict(segment(40000, 7, 0x18, &[], b"hello")) else { panic!() };
        assert_eq!((t.seg.len, t.payload_off), (5, 14 + 20 + 20));
    }

    #[test]
    fn bad_segments_are_counted_drops() {
        let drop = |f| match verdict(f) {
            Verdict::Drop(r) => r,
            v => panic!("not dropped: {v:?}"),
        };
        let mut bad_sum = segment(40000, 7, 0x10, &[], b"x");
        *bad_sum.last_mut().unwrap() ^= 1;
        assert_eq!(drop(bad_sum), DropReason::TcpBadChecksum);
        // An option whose length runs past the header.
        assert_eq!(drop(segment(40000, 7, 0x10, &[8, 10, 0, 0], b"")), DropReason::TcpBadOptions);
        assert_eq!(drop(segment(0, 7, 0x02, &[], b"")), DropReason::TcpMalformed);
        assert_eq!(drop(segment(40000, 8, 0x02, &[], b"")), DropReason::NoService);
        // Data offset past the segment's end.
        let mut long_hl = segment(40000, 7, 0x10, &[], b"");
        long_hl[14 + 20 + 12] = 0xf0;
        assert_eq!(drop(long_hl), DropReason::TcpMalformed);
    }

    #[test]
    fn a_segment_of_a_flow_another_core_owns_goes_there_and_never_claims() {
        let services = table();
        let owners = OwnerDirectory::new(64, 30, 1);
        let stats = CoreStats::default();
        let ip_id = Cell::new(0);
        let cx = |core| Context {
            services: &services,
            owners: &owners,
            core,
            now_us: 1_000_000,
            stats: &stats,
            ip_id: &ip_id,
        };
        let f = segment(40000, 7, 0x02, &[], b"");
        assert!(matches!(handle_frame(&mut f.clone(), Arrival::Rx, &cx(0)), Verdict::Tcp(_)));
        // Nothing was claimed: core 1 may take it too.
        assert!(matches!(handle_frame(&mut f.clone(), Arrival::Rx, &cx(1)), Verdict::Tcp(_)));
        let flow = FlowKey { proto: 6, src: CLIENT, dst: SERVER, src_port: 40000, dst_port: 7 };
        owners.pin(&flow, 1, 1).unwrap();
        assert_eq!(handle_frame(&mut f.clone(), Arrival::Rx, &cx(0)), Verdict::HandOff(1));
        assert!(matches!(handle_frame(&mut f.clone(), Arrival::HandedOver, &cx(1)), Verdict::Tcp(_)));
    }
}
