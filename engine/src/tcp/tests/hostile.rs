//! The engine's TCP core against a hostile peer, by property test: frames
//! with any flags and numbers (sometimes right, sometimes anywhere, now and
//! then with a broken checksum) from a few peer ports to the echo service,
//! mixed with correct handshakes and data, on a moving clock. Whatever
//! comes, every frame is in exactly one place after every pass (the frame
//! table's census agrees with the port's and the connections' counts), and
//! once the core aborts its connections every frame comes home and no
//! frame token was dropped. The owner directory's pins match the state
//! kept (connections, TIME-WAIT and SYN queue entries) after every pass,
//! and every slot is free once all of it is gone.
use super::*;
use proptest::prelude::*;
use smoltcp::wire::{IpProtocol, Ipv4Address, TcpSeqNumber};

const PORTS: u16 = 4;

#[derive(Clone, Debug)]
enum Op {
    /// A SYN from peer port `p` with ISN `isn`.
    Syn { p: u16, isn: u32 },
    /// The right ACK (and data) for what the engine last sent to `p`.
    Good { p: u16, len: u16, fin: bool },
    /// Anything from `p`: `seq`/`ack` off the right ones by these.
    Wild { p: u16, seq: i64, ack: i64, flags: u8, wnd: u16, len: u16, bad_sum: bool },
    /// Time passes.
    Advance { us: u32 },
}

fn off() -> impl Strategy<Value = i64> {
    prop_oneof![3 => -2000i64..2000, 1 => Just(0i64), 1 => any::<u32>().prop_map(i64::from)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..PORTS, any::<u32>()).prop_map(|(p, isn)| Op::Syn { p, isn }),
        4 => (0..PORTS, 0u16..1400, prop::bool::weighted(0.05)).prop_map(|(p, len, fin)| Op::Good { p, len, fin }),
        4 => (0..PORTS, off(), off(), any::<u8>(), any::<u16>(), 0u16..1400, prop::bool::weighted(0.1))
            .prop_map(|(p, seq, ack, flags, wnd, len, bad_sum)| Op::Wild { p, seq, ack, flags, wnd, len, bad_sum }),
        2 => prop_oneof![0u32..2000, 2000u32..400_000, 400_000u32..5_000_000].prop_map(|us| Op::Advance { us }),
    ]
}

/// An IPv4 packet with a TCP segment from the peer's `sport` to the echo
/// port (no options), its checksums right unless `bad_sum`.
#[allow(clippy::too_many_arguments)]
fn segment(sport: u16, seq: u32, ack: u32, flags: u8, wnd: u16, len: u16, bad_sum: bool) -> Vec<u8> {
    let total = 20 + 20 + len as usize;
    let mut b = vec![0u8; total];
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(total as u16);
        ip.set_hop_limit(64);
        ip.set_next_header(IpProtocol::Tcp);
        ip.set_src_addr(Ipv4Address::from(PEER_IP));
        ip.set_dst_addr(Ipv4Address::from(ENGINE_IP));
        ip.fill_checksum();
    }
    {
        let mut t = TcpPacket::new_unchecked(&mut b[20..]);
        t.set_src_port(sport);
        t.set_dst_port(ECHO_PORT);
        t.set_seq_number(TcpSeqNumber(seq as i32));
        t.set_ack_number(TcpSeqNumber(ack as i32));
        t.set_header_len(20);
        // Flags live in the low byte of bytes 12-13 (data offset above).
        t.set_window_len(wnd);
        for (i, v) in t.payload_mut().iter_mut().enumerate() {
            *v = i as u8;
        }
    }
    b[20 + 13] = flags;
    let mut t = TcpPacket::new_unchecked(&mut b[20..]);
    t.fill_checksum(&IpAddress::Ipv4(Ipv4Address::from(PEER_IP)), &IpAddress::Ipv4(Ipv4Address::from(ENGINE_IP)));
    if bad_sum {
        b[20 + 16] ^= 0x5a;
    }
    b
}

/// What the peer knows of one of its connections: its next sequence
/// number, and the engine's (from the last segment it saw).
#[derive(Clone, Copy, Default)]
struct PeerPort {
    next: u32,
    theirs: u32,
}

proptest! {
    // 256 cases unless PROPTEST_CASES says more.
    #[test]
    fn whatever_the_peer_sends_every_frame_stays_accounted_and_comes_home(
        ops in prop::collection::vec(op(), 1..120),
        // 2: one entry, then SYN cookies (and their handshakes); 128: room.
        backlog in prop_oneof![Just(2u32), Just(128u32)],
    ) {
        let _g = crate::afxdp::frames::leak_check();
        let leaked = frames_leaked();
        let mut now = S;
        let tuples: Vec<Tuple> = (0..PORTS).map(|p| echo_tuple(FIRST_PEER_PORT + p)).collect();
        {
            let mut s = setup(512);
            s.settings.syn_backlog = backlog;
            let mut e = Engine::new(&s, now);
            let mut peers = [PeerPort::default(); PORTS as usize];
            for op in ops {
                let ip = match op {
                    Op::Syn { p, isn } => {
                        peers[p as usize].next = isn.wrapping_add(1);
                        segment(FIRST_PEER_PORT + p, isn, 0, 0x02, 65535, 0, false)
                    }
                    Op::Good { p, len, fin } => {
                        let pp = &mut peers[p as usize];
                        let flags = 0x10 | if len > 0 { 0x08 } else { 0 } | if fin { 0x01 } else { 0 };
                        let ip = segment(FIRST_PEER_PORT + p, pp.next, pp.theirs, flags, 65535, len, false);
                        pp.next = pp.next.wrapping_add(u32::from(len) + u32::from(fin));
                        ip
                    }
                    Op::Wild { p, seq, ack, flags, wnd, len, bad_sum } => {
                        let pp = peers[p as usize];
                        let seq = (i64::from(pp.next) + seq) as u32;
                        let ack = (i64::from(pp.theirs) + ack) as u32;
                        segment(FIRST_PEER_PORT + p, seq, ack, flags, wnd, len, bad_sum)
                    }
                    Op::Advance { us } => {
                        now += u64::from(us);
                        e.pass(now);
                        Vec::new()
                    }
                };
                if !ip.is_empty() {
                    e.deliver(&ip, now);
                }
                e.pass(now);
                for out in e.transmit() {
                    let s = seen(&out);
                    let i = s.dst_port.wrapping_sub(FIRST_PEER_PORT);
                    if i < PORTS {
                        // The peer acknowledges what the engine sent.
                        let end = s.seq.wrapping_add(s.len as u32).wrapping_add(u32::from(s.syn) + u32::from(s.fin));
                        peers[i as usize].theirs = end;
                    }
                }
                e.assert_census();
                e.assert_pins(&tuples);
            }
            // The core gives up its connections: every frame comes home.
            let Engine { port, tcp, owners, ip_id, .. } = &mut e;
            tcp.abort_all(&mut Io { port, owners, ip_id }, now);
            tcp.flush(&mut Io { port, owners, ip_id }, now);
            e.port.flush(None);
            let _ = e.transmit();
            e.pass(now);
            let _ = e.transmit();
            prop_assert_eq!(e.tcp.connections(), 0);
            e.assert_frames_home();
            // The SYN queue's entries give up in time (5 retries, 63 s);
            // TIME-WAIT ends. Then nothing holds any slot.
            for _ in 0..70 {
                now += S;
                e.pass(now);
                let _ = e.transmit();
            }
            e.assert_pins(&tuples);
            prop_assert_eq!(e.owners.owned_per_core(2, now / S), vec![0, 0]);
        }
        prop_assert_eq!(frames_leaked(), leaked, "frame tokens dropped");
    }
}
