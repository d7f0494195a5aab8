//! End-to-end TCP: sluiced's own TCP stack serving echo and discard to the
//! Linux kernel's sockets in the peer namespace, over a veth pair, with and
//! without loss (nftables drops at random in the client namespace).
//!
//! They need root, XDP and network namespaces (CI has them); without root
//! they say so in one line and return, and with `CI` set they fail instead.
mod common;

use common::*;
use sluice_engine::control::protocol::{Command, ReplyBody};
use sluice_lab::{Lab, Side};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const ECHO: SocketAddrV4 = SocketAddrV4::new(SERVER, 7);
const DISCARD: SocketAddrV4 = SocketAddrV4::new(SERVER, 9);

fn tcp_config(socket: &Path, extra_engine: &str) -> String {
    format!(
        r#"
[engine]
interface = "sluice0"
control_socket = "{}"
frames = 8192
{extra_engine}

[[service]]
name = "echo"
proto = "tcp"
listen = "198.18.0.2:7"
kind = "echo"

[[service]]
name = "discard"
proto = "tcp"
listen = "198.18.0.2:9"
kind = "discard"
"#,
        socket.display()
    )
}

fn start(lab: &Lab, name: &str) -> Daemon {
    Daemon::start_with(lab, name, |s| tcp_config(s, ""))
}

/// Deterministic bytes that differ at every offset of a stream (xorshift).
fn stream(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Writes `data` to `addr`, half-closes, and reads until the server's FIN:
/// what came back. A reader thread drains while the writer writes, as a
/// real client of an echo must.
fn round_trip(addr: SocketAddrV4, data: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut r = s.try_clone()?;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).map(|_| got)
    });
    s.write_all(data)?;
    s.shutdown(Shutdown::Write)?;
    reader.join().expect("reader thread")
}

/// As [`round_trip`], with a slow application behind a small receive
/// buffer (64 KiB, 4 KiB read a millisecond): sluice's sending is held to
/// the peer's window, a few segments in flight, where losses are found by
/// RACK and probes rather than duplicate ACKs.
fn slow_round_trip(addr: SocketAddrV4, data: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_recv_buffer_size(64 << 10)?;
    sock.connect_timeout(&SocketAddr::V4(addr).into(), Duration::from_secs(5))?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut r = s.try_clone()?;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(got),
                n => got.extend_from_slice(&buf[..n]),
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    s.write_all(data)?;
    s.shutdown(Shutdown::Write)?;
    reader.join().expect("reader thread")
}

/// Drops `pct` % of the TCP segments to and from `port` in the client's
/// namespace (both directions), per segment: segmentation offloads are off
/// there so each rule sees wire-sized packets.
fn lossy(lab: &Lab, port: u16, pct: u32) {
    let ethtool = lab
        .command_in(Side::Client, "ethtool")
        .args(["-K", lab.interface(Side::Client), "gso", "off", "tso", "off"])
        .output()
        .expect("ethtool runs");
    assert!(ethtool.status.success(), "ethtool: {}", String::from_utf8_lossy(&ethtool.stderr));
    let rules = format!(
        "table inet sluiceloss {{
  chain out {{ type filter hook output priority 0; ip daddr {SERVER} tcp dport {port} numgen random mod 100 < {pct} counter drop; }}
  chain in {{ type filter hook input priority 0; ip saddr {SERVER} tcp sport {port} numgen random mod 100 < {pct} counter drop; }}
}}"
    );
    let mut nft = lab
        .command_in(Side::Client, "nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft runs");
    nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success(), "nft rules");
}

/// Packets the loss rules dropped.
fn dropped_by_rules(lab: &Lab) -> u64 {
    let out = lab.command_in(Side::Client, "nft").args(["list", "table", "inet", "sluiceloss"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split("counter packets ")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn tcp_counter(d: &Daemon, name: &str) -> u64 {
    counter(&d.stats(), None, name)
}

/// Waits until no connection is left (the peer's FIN was answered, or
/// TIME-WAIT ended) and the engine is quiet.
#[track_caller]
fn assert_settles(d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = d.stats();
        let conns = s.total.gauges.get("tcp_conns").copied().unwrap_or(0);
        let tw = s.total.gauges.get("tcp_time_wait").copied().unwrap_or(0);
        if conns == 0 && tw == 0 && s.total.gauges.get("frames_held") == Some(&0) {
            assert_quiet(&s);
            return;
        }
        assert!(Instant::now() < deadline, "connections left: {conns} (+{tw} in TIME-WAIT): {:?}", s.total.gauges);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn echo_returns_64_mib_intact_and_closes_cleanly() {
    if !sluice_lab::root_or_skip("tcp_echo_64mib") {
        return;
    }
    let _g = serial();
    let lab = lab("tcpecho", 2);
    let d = start(&lab, "tcpecho");
    let data = stream(64 << 20, 1);
    let back = lab.run_on(Side::Client, || round_trip(ECHO, &data, Duration::from_secs(60))).unwrap().expect("echo");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs from what was sent");
    assert_eq!(tcp_counter(&d, "tcp_passive_opens"), 1);
    assert_eq!(tcp_counter(&d, "tcp_resets_out") + tcp_counter(&d, "tcp_resets_in"), 0);
    // The peer closed first: sluice went CLOSE-WAIT -> LAST-ACK -> CLOSED,
    // and holds nothing.
    assert_settles(&d);
    assert_eq!(tcp_counter(&d, "tcp_closed"), 1);
}

#[test]
fn echo_through_1_and_5_percent_loss_each_way_returns_every_byte() {
    if !sluice_lab::root_or_skip("tcp_echo_loss") {
        return;
    }
    let _g = serial();
    let lab = lab("tcploss", 2);
    let d = start(&lab, "tcploss");
    // Sizes for an unoptimised build: what a lossy link moves in seconds.
    // Last, a slow reader: few segments in flight.
    for (pct, size, seed, slow) in [(1, 16 << 20, 2, false), (5, 4 << 20, 3, false), (5, 2 << 20, 4, true)] {
        let _ = lab.command_in(Side::Client, "nft").args(["delete", "table", "inet", "sluiceloss"]).output();
        lossy(&lab, 7, pct);
        let data = stream(size, seed);
        let rtos = counter(&d.stats(), None, "tcp_rto_expired");
        let t = Instant::now();
        let trip = if slow { slow_round_trip } else { round_trip };
        let back =
            lab.run_on(Side::Client, || trip(ECHO, &data, Duration::from_secs(60))).unwrap().unwrap_or_else(|e| {
                panic!(
                    "{pct}% loss: {e}: {:?}",
                    d.request(Command::Conns { limit: None, service: None, state: None, detail: true })
                )
            });
        assert!(back == data, "{pct}% loss: {} bytes back of {}, not the same", back.len(), data.len());
        let dropped = dropped_by_rules(&lab);
        assert!(dropped > 0, "{pct}% loss: the rules dropped nothing");
        let rtos = counter(&d.stats(), None, "tcp_rto_expired") - rtos;
        let how = if slow { " to a slow reader" } else { "" };
        eprintln!("{pct}% loss: {size} bytes echoed{how} in {:?}, {dropped} packets dropped, {rtos} RTOs", t.elapsed());
    }
    let s = d.stats();
    assert!(counter(&s, None, "tcp_retrans_fast") + counter(&s, None, "tcp_retrans_rto") > 0, "{:?}", s.total.counters);
    assert_eq!(counter(&s, None, "tcp_resets_out"), 0, "no connection was given up: {:?}", s.total.counters);
    assert_settles(&d);
}

/// A Linux peer writing 100-byte segments (TCP_NODELAY, autocorking off,
/// a pause after each write so each goes out alone) to echo, and reading
/// nothing until it has written all 200 KiB: the echo stops at the
/// peer's closed window, and the rest piles up in sluice's receive queue
/// in small segments. They share frames (receive coalescing); taking one
/// each, they run the connection out of chunks while its window still
/// offers bytes (without coalescing, the same run dropped an in-window
/// segment for a full buffer, and the window shrank to what the chunks
/// left). Every byte comes back in order.
#[test]
fn small_segments_from_a_linux_peer_that_reads_late_are_coalesced_and_echoed_intact() {
    if !sluice_lab::root_or_skip("tcp_small_segments") {
        return;
    }
    let _g = serial();
    let lab = lab("tcpsmall", 2);
    let st = lab.command_in(Side::Client, "sysctl").args(["-qw", "net.ipv4.tcp_autocorking=0"]).status().unwrap();
    assert!(st.success(), "sysctl tcp_autocorking");
    let d = start(&lab, "tcpsmall");
    let data = stream(200 << 10, 21);
    let back = lab
        .run_on(Side::Client, || {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            sock.set_recv_buffer_size(64 << 10)?;
            sock.connect_timeout(&SocketAddr::V4(ECHO).into(), Duration::from_secs(5))?;
            let mut s: TcpStream = sock.into();
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.set_write_timeout(Some(Duration::from_secs(30)))?;
            for piece in data.chunks(100) {
                s.write_all(piece)?;
                std::thread::sleep(Duration::from_micros(20));
            }
            s.shutdown(Shutdown::Write)?;
            let mut got = Vec::new();
            s.read_to_end(&mut got)?;
            Ok::<_, io::Error>(got)
        })
        .unwrap()
        .unwrap_or_else(|e| {
            panic!("{e}: {:?}", d.request(Command::Conns { limit: None, service: None, state: None, detail: true }))
        });
    assert!(back == data, "{} bytes back of {}, not the same", back.len(), data.len());
    let s = d.stats();
    let (segs, coalesced) = (counter(&s, None, "tcp_segs_in"), counter(&s, None, "tcp_rcv_coalesced"));
    let rcv_full = s.total.drops.get("tcp_rcv_buf_full").copied().unwrap_or(0);
    eprintln!("small segments: {segs} segments in, {coalesced} coalesced, {rcv_full} dropped for a full buffer");
    assert!(coalesced > 300, "{coalesced} of {segs} segments coalesced: {:?}", s.total.counters);
    assert_eq!(rcv_full, 0, "in-window data dropped: {:?}", s.total.drops);
    assert_settles(&d);
}

#[test]
fn many_short_connections_from_many_threads_each_get_their_echo() {
    if !sluice_lab::root_or_skip("tcp_many_conns") {
        return;
    }
    let _g = serial();
    let lab = lab("tcpmany", 2);
    let d = start(&lab, "tcpmany");
    const THREADS: usize = 8;
    const PER_THREAD: usize = 64;
    let failures: Vec<String> = lab
        .run_on(Side::Client, || {
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..THREADS)
                    .map(|t| {
                        s.spawn(move || {
                            let mut bad = Vec::new();
                            for i in 0..PER_THREAD {
                                let msg = stream(1 + (t * 7919 + i * 104_729) % 3000, (t * 1000 + i) as u64);
                                match round_trip(ECHO, &msg, Duration::from_secs(10)) {
                                    Ok(b) if b == msg => {}
                                    Ok(b) => bad.push(format!("{t}/{i}: {} bytes back of {}", b.len(), msg.len())),
                                    Err(e) => bad.push(format!("{t}/{i}: {e}")),
                                }
                            }
                            bad
                        })
                    })
                    .collect();
                hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
            })
        })
        .unwrap();
    assert!(failures.is_empty(), "{} of {} failed: {failures:?}", failures.len(), THREADS * PER_THREAD);
    let s = d.stats();
    let n = (THREADS * PER_THREAD) as u64;
    assert_eq!(counter(&s, None, "tcp_passive_opens"), n, "{:?}", s.total.counters);
    assert_eq!(counter(&s, None, "tcp_syncookies_sent"), 0);
    // The connections' flows were claimed and released: both cores served.
    for core in 0..2 {
        assert!(counter(&s, Some(core), "tcp_passive_opens") > 0, "core {core} took no connection");
    }
    assert_settles(&d);
    assert_eq!(tcp_counter(&d, "tcp_closed"), n);
}

#[test]
fn half_close_keeps_the_other_direction_open_and_discard_reads_everything() {
    if !sluice_lab::root_or_skip("tcp_half_close") {
        return;
    }
    let _g = serial();
    let lab = lab("tcphalf", 1);
    let d = start(&lab, "tcphalf");
    let (echoed, discarded) = lab
        .run_on(Side::Client, || {
            // Echo: the request, a half-close, and the answer still comes.
            let mut s = TcpStream::connect(ECHO)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"half a conversation")?;
            s.shutdown(Shutdown::Write)?;
            let mut back = Vec::new();
            s.read_to_end(&mut back)?;
            // Discard: 1 MiB in, nothing out, and sluice's FIN after ours.
            let mut d = TcpStream::connect(DISCARD)?;
            d.set_read_timeout(Some(Duration::from_secs(10)))?;
            d.write_all(&stream(1 << 20, 9))?;
            d.shutdown(Shutdown::Write)?;
            let mut nothing = Vec::new();
            d.read_to_end(&mut nothing)?;
            Ok::<_, io::Error>((back, nothing))
        })
        .unwrap()
        .expect("half-close");
    assert_eq!(echoed, b"half a conversation");
    assert!(discarded.is_empty());
    assert_settles(&d);
}

#[test]
fn tcp_counters_keep_up_with_a_busy_core_under_steady_traffic() {
    if !sluice_lab::root_or_skip("tcp_counters_busy") {
        return;
    }
    let _g = serial();
    let lab = lab("tcpbusy", 1);
    // `busy` never sleeps, so only the worker's 100 ms mark publishes.
    let d = Daemon::start_with(&lab, "tcpbusy", |s| tcp_config(s, "poll = \"busy\""));
    // The socket is made in the client's namespace and used from here.
    let mut s = lab.run_on(Side::Client, || TcpStream::connect(ECHO)).unwrap().expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    // An echo a millisecond: the core has work in every 100 ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut echoes = 0u64;
    let segs_in = loop {
        s.write_all(b"ping ping ping ping").unwrap();
        let mut back = [0u8; 19];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ping ping ping ping");
        echoes += 1;
        std::thread::sleep(Duration::from_millis(1));
        if echoes.is_multiple_of(50) {
            let n = tcp_counter(&d, "tcp_segs_in");
            if tcp_counter(&d, "tcp_passive_opens") == 1 && n >= 200 {
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "after {echoes} echoes the stats say {n} segments in and {} passive opens",
                tcp_counter(&d, "tcp_passive_opens")
            );
        }
    };
    // Counted, not invented: an echo is two segments in at most.
    assert!(segs_in <= 2 * echoes + 2, "{segs_in} segments in for {echoes} echoes");
    drop(s);
    assert_settles(&d);
}

#[test]
fn conns_lists_open_connections_and_a_stopping_sluiced_resets_them() {
    if !sluice_lab::root_or_skip("tcp_conns_and_reset") {
        return;
    }
    let _g = serial();
    let lab = lab("tcpconns", 2);
    let mut d = start(&lab, "tcpconns");
    let mut socks = lab
        .run_on(Side::Client, || {
            (0..3)
                .map(|i| {
                    let mut s = TcpStream::connect(ECHO)?;
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    let msg = format!("hello {i}");
                    s.write_all(msg.as_bytes())?;
                    let mut buf = vec![0u8; msg.len()];
                    s.read_exact(&mut buf)?;
                    assert_eq!(buf, msg.as_bytes());
                    Ok(s)
                })
                .collect::<io::Result<Vec<_>>>()
        })
        .unwrap()
        .expect("three connections");
    let ReplyBody::Conns(c) = d.request(Command::Conns { limit: None, service: None, state: None, detail: true })
    else {
        panic!("not a conns reply")
    };
    assert_eq!((c.total, c.conns.len()), (3, 3), "{c:?}");
    for e in &c.conns {
        assert_eq!((e.state.as_str(), e.service.as_str(), e.local.as_str()), ("established", "echo", "198.18.0.2:7"));
        assert!(e.remote.starts_with("198.18.0.1:"), "{e:?}");
        assert_eq!((e.bytes_in, e.bytes_out, e.unacked), (7, 7, 0), "{e:?}");
    }
    let ReplyBody::Conns(c) = d.request(Command::Conns { limit: Some(1), service: None, state: None, detail: false })
    else {
        panic!()
    };
    assert_eq!((c.total, c.conns.len()), (3, 1));
    let ask = |service: Option<&str>, state: Option<&str>| {
        d.request(Command::Conns {
            limit: None,
            service: service.map(Into::into),
            state: state.map(Into::into),
            detail: false,
        })
    };
    let ReplyBody::Conns(c) = ask(Some("discard"), None) else { panic!() };
    assert_eq!(c.total, 0, "none on discard");
    let ReplyBody::Conns(c) = ask(Some("echo"), Some("established")) else { panic!() };
    assert_eq!(c.total, 3);
    let refused = |service: Option<&str>, state: Option<&str>| {
        let cmd = Command::Conns {
            limit: None,
            service: service.map(Into::into),
            state: state.map(Into::into),
            detail: false,
        };
        sluice_engine::control::client::request(&d.socket, cmd, Duration::from_secs(5)).unwrap_err().to_string()
    };
    assert!(refused(Some("nope"), None).contains("no service named"));
    assert!(refused(None, Some("dancing")).contains("time-wait"));
    // SIGTERM: each connection gets a RST on the way out.
    let st = d.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(st.success(), "{st}");
    for s in &mut socks {
        let mut buf = [0u8; 8];
        match s.read(&mut buf) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
            Ok(n) => panic!("read {n} bytes instead of a reset"),
        }
    }
}

/// A TCP header (no options) from the client's `sport` to `dport`, its
/// checksum over the pseudo-header filled in.
fn raw_tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&CLIENT.octets());
    add(&SERVER.octets());
    add(&[0, 6, 0, 20]);
    add(&t);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    t[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    t
}

#[test]
fn a_segment_for_no_connection_gets_a_reset_as_rfc_9293_says() {
    if !sluice_lab::root_or_skip("tcp_reset_unknown") {
        return;
    }
    let _g = serial();
    let lab = lab("tcprst", 1);
    let d = start(&lab, "tcprst");
    let got = lab
        .run_on(Side::Client, || {
            use socket2::{Domain, Protocol, SockAddr, Socket, Type};
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))?;
            s.set_read_timeout(Some(Duration::from_millis(300)))?;
            let to = SockAddr::from(SocketAddrV4::new(SERVER, 0));
            // An ACK for nothing, and a SYN-ACK nobody asked for: to a
            // listener "any acknowledgment is bad", <SEQ=SEG.ACK><CTL=RST>
            // (RFC 9293 3.10.7.2). A segment with neither SYN nor ACK is
            // dropped there (as Linux does): no answer.
            s.send_to(&raw_tcp(45000, 7, 1000, 0xdead_beef, 0x10), &to)?;
            s.send_to(&raw_tcp(45001, 7, 5000, 0x1234_5678, 0x12), &to)?;
            s.send_to(&raw_tcp(45002, 7, 9000, 0, 0x08), &to)?;
            let mut seen = Vec::new();
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                let mut buf = [0u8; 1500];
                let Ok(n) = (&s).read(&mut buf) else { continue };
                let b = &buf[..n];
                let ihl = usize::from(b[0] & 0x0f) * 4;
                let t = &b[ihl..];
                let (sport, dport) = (u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]]));
                if b[12..16] == SERVER.octets() && sport == 7 && (45000..=45002).contains(&dport) {
                    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
                    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
                    seen.push((dport, t[13], seq, ack));
                }
            }
            Ok::<_, io::Error>(seen)
        })
        .unwrap()
        .expect("raw socket");
    assert!(got.contains(&(45000, 0x04, 0xdead_beef, 0)), "RST with SEQ=SEG.ACK: {got:x?}");
    assert!(got.contains(&(45001, 0x04, 0x1234_5678, 0)), "RST for the SYN-ACK: {got:x?}");
    assert_eq!(got.len(), 2, "nothing else: {got:x?}");
    assert_eq!(tcp_counter(&d, "tcp_resets_out"), 2);
    assert_settles(&d);
}

fn http_config(socket: &Path) -> String {
    format!(
        r#"
[engine]
interface = "sluice0"
control_socket = "{}"
frames = 8192

[[service]]
name = "web"
proto = "tcp"
listen = "198.18.0.2:80"
kind = "http"
[service.http]
status = 200
body = "hello from sluice\n"
content_type = "text/plain"
max_header_bytes = 1024
max_body_kb = 1
"#,
        socket.display()
    )
}

const WEB: SocketAddrV4 = SocketAddrV4::new(SERVER, 80);

/// Sends `req` on a fresh connection and reads until the server closes
/// (or `timeout`): everything it answered.
fn http_exchange(req: &[u8], timeout: Duration) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(WEB), Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(req)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn curl_gets_the_answer_twice_over_one_kept_connection() {
    if !sluice_lab::root_or_skip("http_curl") {
        return;
    }
    let _g = serial();
    let lab = lab("httpcurl", 2);
    let d = Daemon::start_with(&lab, "httpcurl", http_config);
    let out = lab
        .command_in(Side::Client, "curl")
        .args(["-sS", "-w", "|%{http_code} %{num_connects}\\n", "http://198.18.0.2/a", "http://198.18.0.2/b"])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {text} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        text, "hello from sluice\n|200 1\nhello from sluice\n|200 0\n",
        "the second request reused the connection"
    );
    assert_eq!(tcp_counter(&d, "tcp_passive_opens"), 1);
    // HEAD: the headers, no body.
    let out = lab.command_in(Side::Client, "curl").args(["-sSI", "http://198.18.0.2/"]).output().unwrap();
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("Content-Length: 18\r\n"), "{head}");
}

#[test]
fn pipelined_requests_are_answered_in_order_and_bad_ones_get_a_status_and_a_close() {
    if !sluice_lab::root_or_skip("http_pipeline") {
        return;
    }
    let _g = serial();
    let lab = lab("httppipe", 1);
    let d = Daemon::start_with(&lab, "httppipe", http_config);
    let t = Duration::from_secs(3);
    let answers = lab
        .run_on(Side::Client, || {
            let piped = http_exchange(
                b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloHEAD /3 HTTP/1.1\r\nHost: a\r\n\r\nGET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                t,
            )?;
            let garbage = http_exchange(b"GET / HTTP/1.1\r\nHost : bad\r\n\r\n", t)?;
            let mut long = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
            long.extend(std::iter::repeat_n(b'a', 2000));
            long.extend_from_slice(b"\r\n\r\n");
            let long = http_exchange(&long, t)?;
            let big = http_exchange(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", t)?;
            let v2 = http_exchange(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", t)?;
            Ok::<_, io::Error>((piped, garbage, long, big, v2))
        })
        .unwrap()
        .expect("exchanges");
    let (piped, garbage, long, big, v2) = answers;
    assert_eq!(piped.matches("HTTP/1.1 200 OK\r\n").count(), 4, "{piped}");
    assert_eq!(piped.matches("hello from sluice\n").count(), 3, "HEAD has no body: {piped}");
    assert!(piped.ends_with("Connection: close\r\n\r\nhello from sluice\n"), "the last one closes: {piped}");
    for (what, got, status) in
        [("garbage", &garbage, "400"), ("long", &long, "431"), ("big", &big, "413"), ("v2", &v2, "505")]
    {
        assert!(got.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {got}");
        assert!(got.contains("Connection: close\r\n"), "{what}: {got}");
    }
    assert_eq!(tcp_counter(&d, "tcp_resets_out"), 0, "closed with FIN, not reset");
}

#[test]
fn ab_completes_every_request_with_and_without_keep_alive() {
    if !sluice_lab::root_or_skip("http_ab") {
        return;
    }
    let _g = serial();
    let lab = lab("httpab", 2);
    let d = Daemon::start_with(&lab, "httpab", |sock| {
        http_config(sock).replace("[engine]", "[tcp]\ntime_wait_s = 2\n\n[engine]")
    });
    for keep in [true, false] {
        let mut c = lab.command_in(Side::Client, "ab");
        c.args(["-q", "-n", "2000", "-c", "8", "-s", "5"]);
        if keep {
            c.arg("-k");
        }
        let out = c.arg("http://198.18.0.2/").output().expect("ab runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "ab: {text} {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("Complete requests:      2000"), "{text}");
        assert!(text.contains("Failed requests:        0"), "{text}");
        assert!(!text.contains("Non-2xx"), "{text}");
    }
    let s = d.stats();
    assert_eq!(counter(&s, None, "tcp_resets_out"), 0, "{:?}", s.total.counters);
    assert!(counter(&s, None, "tcp_passive_opens") >= 2008, "{:?}", s.total.counters);
    // Without keep-alive sluice closes first: each connection left a small
    // TIME-WAIT entry, not a connection block, and holds no frame. (How
    // many are still in force depends on how long ab took: the counter
    // says how many there were.)
    std::thread::sleep(Duration::from_millis(300));
    let s = d.stats();
    let g = |k: &str| s.total.gauges.get(k).copied().unwrap_or(0);
    assert!(counter(&s, None, "tcp_time_waits") >= 2000, "{:?}", s.total.counters);
    assert!(g("tcp_time_wait") > 0, "{:?}", s.total.gauges);
    assert_eq!((g("tcp_conns"), g("frames_held")), (0, 0), "{:?}", s.total.gauges);
    assert_eq!(counter(&s, None, "tcp_time_wait_overflow"), 0);
    // time_wait_s = 2 here: soon after they are all gone.
    std::thread::sleep(Duration::from_millis(2500));
    assert_settles(&d);
}

/// An IPv4 + TCP SYN from `src:sport` to the echo service, both checksums
/// filled (IP_HDRINCL: the kernel sends it as it is).
fn spoofed_syn(src: std::net::Ipv4Addr, sport: u16, seq: u32) -> Vec<u8> {
    let sum = |b: &[u8], mut s: u32| {
        for c in b.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    let mut t = Vec::with_capacity(24);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&7u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[6 << 4, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    let mut pseudo = Vec::with_capacity(12 + 24);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&SERVER.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 24]);
    pseudo.extend_from_slice(&t);
    let c = sum(&pseudo, 0);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&SERVER.octets());
    let c = sum(&p, 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&t);
    p
}

#[test]
fn a_syn_flood_from_many_addresses_is_met_with_cookies_and_real_clients_still_connect() {
    if !sluice_lab::root_or_skip("tcp_syn_flood") {
        return;
    }
    let _g = serial();
    let lab = lab("tcpflood", 2);
    // The smallest SYN queue the config allows, so cookies start at once.
    let d = Daemon::start_with(&lab, "tcpflood", |s| {
        tcp_config(s, "").replace("[engine]", "[tcp]\nsyn_backlog = 16\n\n[engine]")
    });
    const FLOOD: u32 = 100_000;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sent, ok, failed) = lab
        .run_on(Side::Client, || {
            std::thread::scope(|s| {
                let flood = s.spawn(|| {
                    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
                    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).unwrap();
                    let to = SockAddr::from(SocketAddrV4::new(SERVER, 0));
                    let mut n = 0u32;
                    let mut x = 0x9e37_79b9u32;
                    while n < FLOOD && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        // Sources all over 198.18.0.0/15 but the lab's own /24.
                        let src = std::net::Ipv4Addr::new(
                            198,
                            18 + (x & 1) as u8,
                            1 + (x >> 8) as u8 % 254,
                            1 + (x >> 16) as u8 % 254,
                        );
                        if raw.send_to(&spoofed_syn(src, 1024 + (x % 60000) as u16, x), &to).is_ok() {
                            n += 1;
                        }
                    }
                    n
                });
                // Meanwhile a real client opens connection after connection.
                let mut ok = 0;
                let mut failed = Vec::new();
                for i in 0..200 {
                    let msg = format!("real client {i}");
                    match round_trip(ECHO, msg.as_bytes(), Duration::from_secs(10)) {
                        Ok(b) if b == msg.as_bytes() => ok += 1,
                        Ok(b) => failed.push(format!("{i}: {} bytes back", b.len())),
                        Err(e) => failed.push(format!("{i}: {e}")),
                    }
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                (flood.join().unwrap(), ok, failed)
            })
        })
        .unwrap();
    assert!(failed.is_empty(), "{} of 200 real connections failed during the flood: {failed:?}", failed.len());
    assert_eq!(ok, 200);
    let s = d.stats();
    let c = |k: &str| counter(&s, None, k);
    let g = |k: &str| s.total.gauges.get(k).copied().unwrap_or(0);
    eprintln!(
        "{sent} spoofed SYNs; cookies sent {}, valid {}; half-open {}",
        c("tcp_syncookies_sent"),
        c("tcp_syncookies_valid"),
        g("tcp_half_open")
    );
    assert!(sent > 1000, "the flood ran: {sent}");
    assert!(c("tcp_syncookies_sent") > 0, "the full SYN queue switched to cookies: {:?}", s.total.counters);
    // Memory stays flat: at most the SYN queues' entries are held, never a
    // connection per SYN, and every connection that finished is gone.
    assert!(g("tcp_half_open") <= 2 * 16, "{:?}", s.total.gauges);
    assert_eq!(g("tcp_conns"), 0, "{:?}", s.total.gauges);
    assert_eq!(c("tcp_passive_opens"), 200, "only the real clients made connections: {:?}", s.total.counters);
    assert_settles(&d);
}
