//! End-to-end tests: the real `sluiced` in a veth lab, talking to the Linux
//! kernel's own sockets in the peer namespace.
//!
//! They need root, XDP and network namespaces (CI has them); without root they
//! say so in one line and return, and with `CI` set they fail instead. They run
//! one at a time (they share two cores), and every lab is removed on drop,
//! also when a test fails.
mod common;

use common::*;
use sluice_lab::{Lab, Side};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// A payload that differs per flow and per datagram, of length 1..=1400.
fn payload(flow: usize, i: usize) -> Vec<u8> {
    let len = 1 + (flow * 131 + i * 977) % 1400;
    (0..len).map(|k| (k as u8) ^ (flow as u8).wrapping_mul(31) ^ (i as u8)).collect()
}

#[test]
fn udp_echo_over_many_ports_returns_every_byte_and_both_queues_serve() {
    if !sluice_lab::root_or_skip("udp_echo_over_many_ports") {
        return;
    }
    let _g = serial();
    let lab = lab("e2eecho", 2);
    let d = Daemon::start(&lab, "echo", "");
    const FLOWS: usize = 128;
    const PER_FLOW: usize = 8;
    let (sent, mismatches, missing) = lab
        .run_on(Side::Client, || {
            let mut sent = 0;
            let mut mismatches = 0;
            let mut missing = 0;
            for f in 0..FLOWS {
                let s = UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s.connect(SocketAddrV4::new(SERVER, 7)).unwrap();
                for i in 0..PER_FLOW {
                    let p = payload(f, i);
                    s.send(&p).unwrap();
                    sent += 1;
                    let mut buf = [0u8; 2048];
                    match s.recv(&mut buf) {
                        Ok(n) if buf[..n] == p[..] => {}
                        Ok(_) => mismatches += 1,
                        Err(_) => missing += 1,
                    }
                }
            }
            (sent, mismatches, missing)
        })
        .unwrap();
    assert_eq!((mismatches, missing), (0, 0), "of {sent} datagrams");
    let s = d.stats();
    assert_eq!(counter(&s, None, "udp_echoed"), sent as u64);
    for core in 0..2 {
        assert!(counter(&s, Some(core), "rx_packets") > 0, "queue {core} carried no traffic: {:?}", s.cores[core]);
    }
    assert!(s.xdp.total["redirected"] >= sent as u64);
    assert_eq!(s.total.drops.values().sum::<u64>(), 0, "drops: {:?}", s.total.drops);
    // Each socket is one flow and the first core to see a flow owns it:
    // only datagrams sent after the client thread moved to another CPU (XPS
    // then picks the other tx queue) are handed over, a few at most.
    let handed = counter(&s, None, "handoff_out");
    assert!(handed <= sent as u64 / 10, "{handed} of {sent} handed over: {:?}", s.total.counters);
    // Quiet now: every frame is accounted for in exactly one place.
    std::thread::sleep(Duration::from_millis(300));
    assert_quiet(&d.stats());
    let st = d.status();
    assert_eq!((st.queues, st.socket_mode.as_str()), (2, "copy"));
}

#[test]
fn ping_of_the_service_address_is_answered_by_sluice() {
    if !sluice_lab::root_or_skip("ping_answered") {
        return;
    }
    let _g = serial();
    let lab = lab("e2eping", 2);
    let d = Daemon::start(&lab, "ping", "metrics_listen = \"127.0.0.1:9464\"");
    let out = lab
        .command_in(Side::Client, "ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2"])
        .output()
        .expect("ping runs");
    assert!(out.status.success(), "ping failed: {}", String::from_utf8_lossy(&out.stdout));
    assert!(counter(&d.stats(), None, "icmp_echoed") >= 3);
    // The opt-in Prometheus endpoint, on the server namespace's loopback.
    let metrics = lab
        .run_on(Side::Server, || {
            let mut c = TcpStream::connect("127.0.0.1:9464")?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
            let mut body = String::new();
            c.read_to_string(&mut body)?;
            Ok::<_, std::io::Error>(body)
        })
        .unwrap()
        .expect("metrics endpoint answers");
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    let sum: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("sluice_icmp_echoed_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(sum >= 3, "{metrics}");
}

#[test]
fn tcp_to_a_port_that_is_not_a_service_reaches_the_kernel() {
    if !sluice_lab::root_or_skip("tcp_pass_through") {
        return;
    }
    let _g = serial();
    let lab = lab("e2epass", 2);
    let listener = lab.run_on(Side::Server, || TcpListener::bind(SocketAddrV4::new(SERVER, 8080))).unwrap().unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        c.write_all(&buf).unwrap();
    });
    let d = Daemon::start(&lab, "pass", "");
    let before = d.stats().xdp.total["passed"];
    let echoed = lab
        .run_on(Side::Client, || {
            let mut c = TcpStream::connect_timeout(&SocketAddrV4::new(SERVER, 8080).into(), Duration::from_secs(5))?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            c.write_all(b"hello")?;
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>(buf)
        })
        .unwrap()
        .expect("TCP through the kernel");
    assert_eq!(&echoed, b"hello");
    server.join().unwrap();
    assert!(d.stats().xdp.total["passed"] > before, "the XDP program passed the TCP frames");
}

#[test]
fn after_sigterm_the_program_is_gone_and_the_kernel_answers_udp_again() {
    if !sluice_lab::root_or_skip("sigterm_detaches") {
        return;
    }
    let _g = serial();
    let lab = lab("e2eterm", 2);
    // A kernel echo server on the service port: it only sees traffic when
    // sluice is not steering it away.
    let kernel_sock = lab.run_on(Side::Server, || UdpSocket::bind(SocketAddrV4::new(SERVER, 7))).unwrap().unwrap();
    kernel_sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ks, st) = (kernel_sock.try_clone().unwrap(), stop.clone());
    let kernel = std::thread::spawn(move || {
        let mut served = 0u32;
        let mut buf = [0u8; 2048];
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, from)) = ks.recv_from(&mut buf) {
                ks.send_to(&buf[..n], from).unwrap();
                served += 1;
            }
        }
        served
    });
    let ask = |lab: &Lab| {
        lab.run_on(Side::Client, || {
            let s = UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.send_to(b"are you there", SocketAddrV4::new(SERVER, 7)).unwrap();
            let mut buf = [0u8; 64];
            s.recv(&mut buf).map(|n| buf[..n].to_vec())
        })
        .unwrap()
    };
    let mut d = Daemon::start(&lab, "term", "");
    assert!(xdp_attached(&lab));
    assert_eq!(ask(&lab).unwrap(), b"are you there");
    assert_eq!(counter(&d.stats(), None, "udp_echoed"), 1, "sluice, not the kernel, answered");
    let status = d.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "clean exit on SIGTERM: {status}\n{}", d.log_text());
    assert!(!xdp_attached(&lab), "XDP program detached");
    assert!(!d.socket.exists(), "control socket removed");
    assert_eq!(ask(&lab).unwrap(), b"are you there");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(kernel.join().unwrap(), 1, "the kernel answered after sluice stopped");
}

#[test]
fn sigint_and_sigkill_both_leave_the_interface_to_the_kernel() {
    if !sluice_lab::root_or_skip("sigint_sigkill_detach") {
        return;
    }
    let _g = serial();
    let lab = lab("e2ekill", 1);
    let mut d = Daemon::start(&lab, "int", "");
    assert!(d.stop_with(nix::sys::signal::Signal::SIGINT).success());
    assert!(!xdp_attached(&lab));
    // A crash: the bpf link dies with the process, so the kernel detaches.
    let mut d = Daemon::start(&lab, "kill", "");
    assert!(xdp_attached(&lab));
    let _ = d.stop_with(nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdp_attached(&lab) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!xdp_attached(&lab), "XDP program left attached after SIGKILL");
}

#[test]
fn a_second_signal_forces_the_exit_and_the_interface_is_still_handed_back() {
    if !sluice_lab::root_or_skip("second_signal") {
        return;
    }
    let _g = serial();
    let lab = lab("e2esig2", 1);
    let mut d = Daemon::start(&lab, "sig2", "");
    let pid = nix::unistd::Pid::from_raw(d.child.as_ref().unwrap().id() as i32);
    // Two, 2 ms apart (a signal sent while the same one is still pending
    // would merge with it): the first starts the orderly shutdown, seen
    // within the main loop's 50 ms tick; the second, arriving meanwhile,
    // exits at once with status 1, skipping the drain.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = d.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(st.code(), Some(1), "forced exit: {st}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdp_attached(&lab) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!xdp_attached(&lab), "XDP program left attached after a forced exit");
}

/// Runs sluiced on a bad config in the server namespace; returns (exit ok, stderr).
fn run_bad_config(lab: &Lab, name: &str, text: &str) -> (bool, String) {
    let cfg = tmp(&format!("{name}.toml"));
    std::fs::write(&cfg, text).unwrap();
    let out = lab.command_in(Side::Server, env!("CARGO_BIN_EXE_sluiced")).arg("--config").arg(&cfg).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_configs_fail_clearly_and_attach_nothing() {
    if !sluice_lab::root_or_skip("bad_configs") {
        return;
    }
    let _g = serial();
    let lab = lab("e2ecfg", 1);
    let good = config_text(&tmp("cfg.sock"), "");
    let cases = [
        ("unknown", good.replace("frames = 8192", "frames = 8192\nturbo = true"), "unknown field `turbo`"),
        ("badaddr", good.replace("198.18.0.2:7", "198.18.0.256:7"), "service[0].listen"),
        ("noif", good.replace("\"sluice0\"", "\"sluice9\""), "no interface \"sluice9\""),
        ("queues", good.replace("frames = 8192", "frames = 8192\nqueues = 4"), "4 queues requested but sluice0 has 1"),
    ];
    for (name, text, want) in cases {
        let (ok, err) = run_bad_config(&lab, name, &text);
        assert!(!ok, "{name}: sluiced accepted a bad config");
        assert!(err.contains(want), "{name}: stderr lacks {want:?}:\n{err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line, not a backtrace:\n{err}");
        assert!(!xdp_attached(&lab), "{name}: left a program attached");
    }
    // Without privileges: one line that says what is missing.
    let cfg = tmp("nopriv.toml");
    std::fs::write(&cfg, &good).unwrap();
    let out = lab
        .command_in(Side::Server, "setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_sluiced"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("sluiced needs root (CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF)"), "{err}");
    assert!(!xdp_attached(&lab));
    // --check-config says the same and exits non-zero, and accepts the good one.
    let cfg = tmp("check.toml");
    std::fs::write(&cfg, good.replace("198.18.0.2:7", "nonsense")).unwrap();
    let out =
        lab.command_in(Side::Server, env!("CARGO_BIN_EXE_sluiced")).arg("--check-config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("service[0].listen"));
    std::fs::write(&cfg, &good).unwrap();
    let out =
        lab.command_in(Side::Server, env!("CARGO_BIN_EXE_sluiced")).arg("--check-config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 2 service(s) on sluice0"));
}

/// Builds an IPv4/UDP packet by hand (header checksum left to the kernel, as
/// IP_HDRINCL does) with a chosen UDP checksum and length field.
fn raw_udp(dport: u16, payload: &[u8], udp_csum: u16, udp_len: u16) -> Vec<u8> {
    let total = 20 + 8 + payload.len() as u16;
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&CLIENT.octets());
    p.extend_from_slice(&SERVER.octets());
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&udp_csum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn malformed_datagrams_are_counted_drops_and_service_goes_on() {
    if !sluice_lab::root_or_skip("malformed_input") {
        return;
    }
    let _g = serial();
    let lab = lab("e2ebad", 2);
    let d = Daemon::start(&lab, "bad", "");
    lab.run_on(Side::Client, || {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc_ipproto_raw()))).unwrap();
        let to = SockAddr::from(SocketAddrV4::new(SERVER, 0));
        for i in 0..50u16 {
            s.send_to(&raw_udp(7, b"bad checksum", 0x1234 ^ i, 20), &to).unwrap();
            s.send_to(&raw_udp(7, b"too long", 0, 200), &to).unwrap();
        }
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let s = d.stats();
    assert_eq!(s.total.drops["udp_bad_checksum"], 50, "{:?}", s.total.drops);
    assert_eq!(s.total.drops["udp_malformed"], 50, "{:?}", s.total.drops);
    assert_eq!(counter(&s, None, "udp_echoed"), 0);
    // Still serving.
    let back = lab
        .run_on(Side::Client, || {
            let u = UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            u.send_to(b"still there?", SocketAddrV4::new(SERVER, 7)).unwrap();
            let mut buf = [0u8; 64];
            u.recv(&mut buf).map(|n| buf[..n].to_vec())
        })
        .unwrap()
        .unwrap();
    assert_eq!(back, b"still there?");
}

/// IPPROTO_RAW (255): a raw socket that sends complete IPv4 packets.
fn libc_ipproto_raw() -> i32 {
    255
}

#[test]
fn every_poll_mode_serves_and_wakes_up_after_idling() {
    if !sluice_lab::root_or_skip("poll_modes") {
        return;
    }
    let _g = serial();
    let lab = lab("e2epoll", 2);
    for mode in ["busy", "adaptive", "interrupt"] {
        let d = Daemon::start(&lab, &format!("poll-{mode}"), &format!("poll = \"{mode}\"\nspin_iterations = 100"));
        for round in 0..3 {
            // Idle long enough for adaptive/interrupt cores to be asleep in poll().
            std::thread::sleep(Duration::from_millis(300));
            let got = lab
                .run_on(Side::Client, || {
                    let mut ok = 0;
                    for p in 0..16 {
                        let u = UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
                        u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let msg = format!("{mode} {round} {p}");
                        u.send_to(msg.as_bytes(), SocketAddrV4::new(SERVER, 7)).unwrap();
                        let mut buf = [0u8; 64];
                        if matches!(u.recv(&mut buf), Ok(n) if &buf[..n] == msg.as_bytes()) {
                            ok += 1;
                        }
                    }
                    ok
                })
                .unwrap();
            assert_eq!(got, 16, "poll = {mode}, round {round}");
        }
        // Quiet again: every mode publishes its frames (busy cores too,
        // which never sleep).
        std::thread::sleep(Duration::from_millis(300));
        assert_quiet(&d.stats());
        let s = d.stats();
        assert_eq!(d.status().poll, mode);
        if mode != "busy" {
            assert!(counter(&s, None, "sleeps") > 0, "{mode}: cores never slept");
        } else {
            assert_eq!(counter(&s, None, "sleeps"), 0, "busy cores never sleep");
        }
    }
}

#[test]
fn a_flood_is_survived_and_every_frame_is_accounted_for() {
    if !sluice_lab::root_or_skip("flood") {
        return;
    }
    let _g = serial();
    let lab = lab("e2eflood", 2);
    let d = Daemon::start(&lab, "flood", "ring_size = 256\nbatch_size = 32");
    // Four unthrottled senders that never read their replies, at echo and
    // discard, for 1.5 s (bounded by time and count).
    let sent: u64 = lab
        .run_on(Side::Client, || {
            std::thread::scope(|sc| {
                let hs: Vec<_> = (0..4)
                    .map(|t| {
                        sc.spawn(move || {
                            let u = UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
                            u.set_nonblocking(true).unwrap();
                            let port = if t % 2 == 0 { 7 } else { 9 };
                            let until = Instant::now() + Duration::from_millis(1500);
                            let mut n = 0u64;
                            while Instant::now() < until && n < 5_000_000 {
                                if u.send_to(&[0x5a; 64], SocketAddrV4::new(SERVER, port)).is_ok() {
                                    n += 1;
                                }
                            }
                            n
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            })
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let s = d.stats();
    let served = counter(&s, None, "udp_echoed") + counter(&s, None, "udp_discarded");
    assert!(served > 0 && served <= sent, "served {served} of {sent}");
    assert_quiet(&s);
    // Nothing the engine received vanished: every frame taken from an rx
    // ring or an inbox was served, dropped for a reason, or handed on.
    let drops: u64 = s.total.drops.values().sum();
    let (rx, hin, hout) =
        (counter(&s, None, "rx_packets"), counter(&s, None, "handoff_in"), counter(&s, None, "handoff_out"));
    assert_eq!(rx + hin, served + drops + hout, "{:?} {:?}", s.total.counters, s.total.drops);
    assert_eq!(hin, hout, "handoff queues are empty when quiet");
    eprintln!("flood: sent {sent}, rx {rx}, served {served}, drops {:?}, handoff {hout}", s.total.drops);
    // And it still answers.
    let back = lab
        .run_on(Side::Client, || {
            let u = UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            u.send_to(b"after the flood", SocketAddrV4::new(SERVER, 7)).unwrap();
            let mut buf = [0u8; 64];
            u.recv(&mut buf).map(|n| buf[..n].to_vec())
        })
        .unwrap()
        .unwrap();
    assert_eq!(back, b"after the flood");
}

/// Whether the handoff tests can run: root, and two CPUs to steer one flow
/// onto two queues (CI machines have two: there it is a failure).
fn can_steer_onto_two_queues(name: &str) -> bool {
    if !sluice_lab::root_or_skip(name) {
        return false;
    }
    if std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) < 2 {
        assert!(std::env::var_os("CI").is_none(), "{name}: CI is set but this machine has one CPU");
        let _ = writeln!(std::io::stderr(), "skipping {name}: needs 2 CPUs to steer one flow onto two queues");
        return false;
    }
    true
}

/// XPS on the client veth: what CPU 0 sends leaves on tx queue 0, CPU 1's
/// on tx queue 1, and the sender's tx queue is our rx queue.
fn steer_by_cpu(lab: &Lab) {
    for (q, mask) in [(0, "1"), (1, "2")] {
        let st = lab
            .command_in(Side::Client, "sh")
            .arg("-c")
            .arg(format!("echo {mask} > /sys/class/net/sluice1/queues/tx-{q}/xps_cpus"))
            .status()
            .unwrap();
        assert!(st.success(), "setting XPS for tx-{q}");
    }
}

/// One unconnected socket on `port` (so the kernel picks the queue per
/// packet by XPS), one flow to the echo service, sent from CPU 0 in even
/// rounds and CPU 1 in odd ones (so arriving on queue 0, then 1, ...):
/// (echoes that came back right, datagrams sent).
fn one_flow_from_both_queues(lab: &Lab, port: u16) -> (u32, u32) {
    lab.run_on(Side::Client, || {
        let u = UdpSocket::bind(SocketAddrV4::new(CLIENT, port)).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut ok = 0;
        let mut total = 0;
        for round in 0..20 {
            let cpu = round % 2;
            let u = &u;
            ok += std::thread::scope(|sc| {
                sc.spawn(move || {
                    assert!(core_affinity::set_for_current(core_affinity::CoreId { id: cpu }));
                    let mut ok = 0;
                    for i in 0..10 {
                        let msg = format!("round {round} cpu {cpu} msg {i}");
                        u.send_to(msg.as_bytes(), SocketAddrV4::new(SERVER, 7)).unwrap();
                        let mut buf = [0u8; 64];
                        if matches!(u.recv(&mut buf), Ok(n) if &buf[..n] == msg.as_bytes()) {
                            ok += 1;
                        }
                    }
                    ok
                })
                .join()
                .unwrap()
            });
            total += 10;
        }
        (ok, total)
    })
    .unwrap()
}

#[test]
fn a_flow_that_changes_queue_is_handed_to_its_owner_and_answered() {
    if !can_steer_onto_two_queues("handoff") {
        return;
    }
    let _g = serial();
    let lab = lab("e2ehand", 2);
    steer_by_cpu(&lab);
    let d = Daemon::start(&lab, "hand", "");
    let (ok, total) = one_flow_from_both_queues(&lab, 40_123);
    assert_eq!(ok, total, "every datagram of the flow answered");
    let s = d.stats();
    for core in 0..2 {
        assert!(counter(&s, Some(core), "rx_packets") > 0, "queue {core} saw none of the flow");
    }
    let (hout, hin) = (counter(&s, None, "handoff_out"), counter(&s, None, "handoff_in"));
    // Round 0 (CPU 0, queue 0) made core 0 the owner; the odd rounds, sent
    // from CPU 1, arrive on queue 1 and are handed over: exactly half.
    assert_eq!(hout, total as u64 / 2, "the odd rounds' datagrams arrive at the non-owner");
    assert_eq!(hout, hin);
    assert_eq!(counter(&s, Some(1), "handoff_out"), hout, "only queue 1's core hands off");
    assert_eq!(counter(&s, None, "flows_claimed"), 1, "one flow, one owner");
    assert_eq!(counter(&s, None, "udp_echoed"), total as u64);
    assert_eq!(s.total.handoff_share, 0.5);
    std::thread::sleep(Duration::from_millis(300));
    assert_quiet(&d.stats());
}

/// `flow_owner = "rss"` with `[engine.rss]`: the flow's owner is the queue
/// the NIC's hash names (computed here the same way; UDP by its addresses
/// and, with `udp_l4`, its ports), whichever queue a datagram arrives on
/// and whichever came first; nothing is claimed.
#[test]
fn with_rss_ownership_the_queue_the_nics_hash_names_owns_the_flow() {
    if !can_steer_onto_two_queues("rss_owner") {
        return;
    }
    let _g = serial();
    let lab = lab("e2erss", 2);
    steer_by_cpu(&lab);
    let key = "6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa";
    let map = |udp_l4| {
        let table = (0..128).map(|i| i % 2).collect();
        sluice_engine::rss::RssMap::new(&sluice_engine::rss::parse_key(key).unwrap(), table, udp_l4).unwrap()
    };
    let (rss, by_addr) = (map(true), map(false));
    let flow =
        |port| sluice_engine::ownership::FlowKey { proto: 17, src: CLIENT, dst: SERVER, src_port: port, dst_port: 7 };
    let back =
        |port| sluice_engine::ownership::FlowKey { proto: 17, src: SERVER, dst: CLIENT, src_port: 7, dst_port: port };
    // A port whose owner would differ had sluiced hashed the other
    // direction or left out the ports (udp_l4): the test tells them apart.
    let port = (40_120..)
        .find(|&p| {
            rss.queue_of(&flow(p)) != rss.queue_of(&back(p)) && rss.queue_of(&flow(p)) != by_addr.queue_of(&flow(p))
        })
        .unwrap();
    let owner = rss.queue_of(&flow(port)) as usize;
    let extra = format!("flow_owner = \"rss\"\n[engine.rss]\nkey = \"{key}\"\ntable_size = 128\nudp_l4 = true\n");
    let d = Daemon::start(&lab, "rss", &extra);
    let (ok, total) = one_flow_from_both_queues(&lab, port);
    assert_eq!(ok, total, "every datagram of the flow answered");
    let s = d.stats();
    let (hout, hin) = (counter(&s, None, "handoff_out"), counter(&s, None, "handoff_in"));
    assert_eq!(hout, total as u64 / 2, "the datagrams that arrive on the other queue are handed over");
    assert_eq!(hout, hin);
    assert_eq!(counter(&s, Some(1 - owner), "handoff_out"), hout, "only the non-owner hands off (owner: {owner})");
    assert_eq!(counter(&s, None, "flows_claimed"), 0, "a fixed function claims nothing");
    assert_eq!(counter(&s, None, "udp_echoed"), total as u64);
    std::thread::sleep(Duration::from_millis(300));
    assert_quiet(&d.stats());
}

#[test]
fn a_service_address_no_interface_has_is_reachable_through_sluices_arp() {
    if !sluice_lab::root_or_skip("arp_vip") {
        return;
    }
    let _g = serial();
    let lab = lab("e2earp", 2);
    let vip = Ipv4Addr::new(198, 18, 0, 3);
    // Echo on .3 (on no interface: sluice answers ARP), discard on .2 (the kernel's).
    let d = Daemon::start_with(&lab, "arp", |sock| config_text(sock, "").replace("198.18.0.2:7", "198.18.0.3:7"));
    assert_eq!(d.status().arp_answered_for, vec!["198.18.0.3".to_string()]);
    let back = lab
        .run_on(Side::Client, || {
            let u = UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
            u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            u.send_to(b"to the vip", SocketAddrV4::new(vip, 7)).unwrap();
            let mut buf = [0u8; 64];
            u.recv(&mut buf).map(|n| buf[..n].to_vec())
        })
        .unwrap()
        .expect("echo from the VIP");
    assert_eq!(back, b"to the vip");
    let ping =
        lab.command_in(Side::Client, "ping").args(["-c", "2", "-i", "0.2", "-W", "2", "198.18.0.3"]).output().unwrap();
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
    let s = d.stats();
    assert!(counter(&s, None, "arp_replied") >= 1);
    // The client learned the server interface's MAC for the VIP.
    let neigh = lab.command_in(Side::Client, "ip").args(["neigh", "show", "198.18.0.3"]).output().unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    let server_mac = lab.command_in(Side::Server, "cat").arg("/sys/class/net/sluice0/address").output().unwrap();
    let server_mac = String::from_utf8_lossy(&server_mac.stdout).trim().to_string();
    assert!(neigh.contains(&server_mac), "neighbour entry {neigh:?} lacks {server_mac}");
    // ARP for the kernel's own address is still the kernel's.
    let arping = lab.command_in(Side::Client, "ping").args(["-c", "1", "-W", "2", "198.18.0.2"]).output().unwrap();
    assert!(arping.status.success());
    assert_eq!(counter(&d.stats(), None, "arp_replied"), counter(&s, None, "arp_replied"), "no ARP answered for .2");
}

#[test]
fn when_the_interface_disappears_sluiced_says_so_and_exits_non_zero() {
    if !sluice_lab::root_or_skip("interface_gone") {
        return;
    }
    let _g = serial();
    let lab = lab("e2egone", 1);
    let mut d = Daemon::start(&lab, "gone", "");
    let del = lab.command_in(Side::Server, "ip").args(["link", "del", "sluice0"]).status().unwrap();
    assert!(del.success());
    let mut child = d.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "sluiced kept running without its interface:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = d.log_text();
    assert!(log.contains("interface sluice0 (ifindex") && log.contains("disappeared"), "{log}");
    assert!(!d.socket.exists(), "control socket removed");
}
