//! Runs the built `sluicectl` against a real control server on a temporary
//! socket.
use sluice_engine::control::protocol::{
    Command, ConnEntry, ConnsSnapshot, CoreSnapshot, FramesSnapshot, ReplyBody, ServiceInfo, StatsSnapshot, Status,
    XdpSnapshot,
};
use sluice_engine::control::server::{ControlServer, Handler};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sock(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluicectl-test-{}-{name}.sock", std::process::id()))
}

fn map(kv: &[(&str, u64)]) -> BTreeMap<String, u64> {
    kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn services() -> Vec<ServiceInfo> {
    vec![
        ServiceInfo {
            id: 0,
            name: "echo".into(),
            proto: "udp".into(),
            listen: "198.18.0.2:7".into(),
            kind: "echo".into(),
        },
        ServiceInfo {
            id: 1,
            name: "sink".into(),
            proto: "udp".into(),
            listen: "198.18.0.2:9".into(),
            kind: "discard".into(),
        },
    ]
}

fn status() -> Status {
    Status {
        daemon_version: "0.1.0".into(),
        pid: 4242,
        uptime_s: 3725.0,
        interface: "eth0".into(),
        ifindex: 3,
        queues: 2,
        cpus: vec![2, 3],
        socket_mode: "zero-copy".into(),
        xdp_mode: "driver".into(),
        poll: "busy".into(),
        batch_size: 64,
        frames_total: 4096,
        frame_size: 2048,
        umem_bytes: 4096 * 2048,
        umem_per_core_bytes: 4096 * 2048 / 2,
        arp_answered_for: vec![],
        tcp_max_connections: 65536,
        tcp_bytes_per_connection: 612,
        tcp_bytes_per_time_wait: 80,
        services: services(),
    }
}

/// A snapshot `uptime_s` seconds into a run receiving 1000 packets/s.
fn stats(uptime_s: f64) -> StatsSnapshot {
    let rx = (uptime_s * 1000.0) as u64;
    let core = |i: u32, rx: u64| CoreSnapshot {
        core: Some(i),
        cpu: Some(i as usize + 2),
        counters: map(&[("rx_packets", rx), ("rx_bytes", rx * 100), ("rx_batches", rx / 10), ("sleeps", 1_234_567)]),
        drops: map(&[("udp_bad_checksum", u64::from(i))]),
        gauges: map(&[("fill_ring", 2048), ("xsk_rx_ring_full", 0)]),
        handoff_share: 0.5,
    };
    let mut total = core(0, rx);
    total.core = None;
    total.cpu = None;
    total.drops = map(&[("udp_bad_checksum", 1)]);
    total.counters.insert("from_the_future".into(), 77);
    StatsSnapshot {
        uptime_s,
        socket_mode: "zero-copy".into(),
        cores: vec![core(0, rx / 2), core(1, rx - rx / 2)],
        total,
        frames: FramesSnapshot {
            total: 4096,
            exchange: 64,
            handoff_queued: 0,
            accounted: 4096,
            in_use: 2200,
            ..Default::default()
        },
        xdp: XdpSnapshot { per_cpu: vec![map(&[("redirected", rx)])], total: map(&[("redirected", rx)]) },
    }
}

fn conns() -> ConnsSnapshot {
    let e = |core, port, state: &str, blocked| ConnEntry {
        core,
        service: "echo".into(),
        local: "198.18.0.2:7".into(),
        remote: format!("198.18.0.1:{port}"),
        state: state.into(),
        age_s: 75.0,
        cwnd: 14480,
        ssthresh: None,
        srtt_us: 1250,
        rto_us: 201_250,
        mss: 1448,
        snd_wnd: 65536,
        unacked: 2896,
        bytes_in: 3 << 20,
        bytes_out: (3 << 20) - 2896,
        retransmits: 4,
        recv_queued: 0,
        send_queued: 2896,
        chunks: 2,
        blocked,
        detail: "snd una=1".into(),
    };
    ConnsSnapshot {
        conns: vec![e(0, 40000, "established", false), e(1, 40001, "close-wait", true)],
        total: 5,
        cores_missing: vec![],
    }
}

/// A server answering with the fixtures; each stats request is 0.5 s of
/// uptime later than the previous one.
fn serve(name: &str) -> (ControlServer, PathBuf) {
    let path = sock(name);
    let calls = Arc::new(AtomicU64::new(0));
    let handler: Handler = Arc::new(move |c: &Command| match c {
        Command::Status => ReplyBody::Status(status()),
        Command::Services => ReplyBody::Services(services()),
        Command::Stats => {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            ReplyBody::Stats(stats(3600.0 + n as f64 * 0.5))
        }
        Command::Conns { limit, service, state, .. } => {
            let mut c = conns();
            c.conns.retain(|e| service.as_ref().is_none_or(|s| *s == e.service));
            c.conns.retain(|e| state.as_ref().is_none_or(|s| *s == e.state));
            c.conns.truncate(limit.unwrap_or(1000) as usize);
            ReplyBody::Conns(c)
        }
    });
    (ControlServer::start(&path, handler).expect("control server starts"), path)
}

fn ctl(socket: Option<&Path>, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sluicectl"));
    c.env_remove("SLUICE_CTL_SOCKET");
    if let Some(s) = socket {
        c.arg("--socket").arg(s);
    }
    c.args(args);
    c
}

fn run(socket: Option<&Path>, args: &[&str]) -> Output {
    ctl(socket, args).output().expect("sluicectl runs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "status {:?}, stderr {}", o.status, String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Waits for `child` to exit, at most `limit`.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("sluicectl did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_and_services() {
    let (_server, path) = serve("status");
    let out = stdout(&run(Some(&path), &["status"]));
    for want in [
        "version    0.1.0\n",
        "pid        4242\n",
        "uptime     1h02m\n",
        "interface  eth0 (ifindex 3)\n",
        "queues     2 (q0 on cpu 2, q1 on cpu 3)\n",
        "socket     zero-copy\n",
        "xdp        driver\n",
        "poll       busy\n",
        "batch      64\n",
        "tcp        up to 65536 connections, 612 B each (+ 80 B per TIME-WAIT entry; data is in frames)\n",
        "frames     4096 x 2048 B (8.0 MiB, 4.0 MiB per core)\n",
        "NAME  PROTO  LISTEN        KIND\n",
        "sink  udp    198.18.0.2:9  discard\n",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
    let out = stdout(&run(Some(&path), &["services"]));
    assert_eq!(
        out,
        "NAME  PROTO  LISTEN        KIND\n\
         echo  udp    198.18.0.2:7  echo\n\
         sink  udp    198.18.0.2:9  discard\n"
    );
    // The socket may also come from the environment, or after the subcommand.
    let out = stdout(&ctl(None, &["services"]).env("SLUICE_CTL_SOCKET", &path).output().unwrap());
    assert!(out.contains("sink"));
    let out = stdout(&run(None, &["services", "--socket", path.to_str().unwrap()]));
    assert!(out.contains("sink"));
}

#[test]
fn json_is_the_reply_and_nothing_else() {
    let (_server, path) = serve("json");
    let out = stdout(&run(Some(&path), &["stats", "--json"]));
    let got: StatsSnapshot = serde_json::from_str(&out).expect("stats --json parses");
    assert_eq!(got, stats(3600.0));
    assert!(out.contains("\n  \"uptime_s\""), "pretty: {out}");
    assert_eq!(serde_json::from_str::<Status>(&stdout(&run(Some(&path), &["status", "--json"]))).unwrap(), status());
    let got: Vec<ServiceInfo> = serde_json::from_str(&stdout(&run(Some(&path), &["services", "--json"]))).unwrap();
    assert_eq!(got, services());
}

#[test]
fn conns_table_and_json() {
    let (_server, path) = serve("conns");
    let out = stdout(&run(Some(&path), &["conns"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("CORE") && lines[0].contains("STATE") && lines[0].contains("SRTT"), "{out}");
    assert!(
        lines[1].contains("established") && lines[1].contains("198.18.0.1:40000") && lines[1].contains("1.2ms"),
        "{out}"
    );
    assert!(lines[2].contains("close-wait*"), "a blocked connection is marked: {out}");
    assert!(out.contains("* waiting for a frame to transmit\n"), "{out}");
    assert!(out.ends_with("2 of 5 connections\n"), "{out}");
    let one = stdout(&run(Some(&path), &["conns", "--limit", "1"]));
    assert!(one.ends_with("1 of 5 connections\n"), "{one}");
    let got: ConnsSnapshot = serde_json::from_str(&stdout(&run(Some(&path), &["conns", "--json"]))).unwrap();
    assert_eq!(got, conns());
    let cw = stdout(&run(Some(&path), &["conns", "--state", "close-wait", "--service", "echo"]));
    assert!(cw.contains("close-wait") && !cw.contains("established"), "{cw}");
    let bad = run(Some(&path), &["conns", "--limit", "0"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
}

#[test]
fn stats_tables() {
    let (_server, path) = serve("stats");
    let out = stdout(&run(Some(&path), &["stats"]));
    let row = |label: &str| {
        out.lines()
            .find(|l| l.split("  ").next() == Some(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(out.starts_with("uptime 1h00m  socket zero-copy  cores 2\n"), "{out}");
    assert_eq!(row("rx_packets"), "rx_packets 1.80M 1.80M 3.60M");
    assert_eq!(row("sleeps"), "sleeps 1.23M 1.23M 1.23M");
    assert_eq!(row("rx_batch_avg"), "rx_batch_avg 10.0 10.0 10.0");
    assert_eq!(row("handoff_share"), "handoff_share 50.0% 50.0% 50.0%");
    assert_eq!(row("tx_packets"), "tx_packets - - -");
    assert_eq!(row("from_the_future"), "from_the_future - - 77");
    assert_eq!(row("fill_ring"), "fill_ring 2048 2048 2048");
    assert_eq!(row("udp_bad_checksum"), "udp_bad_checksum 0 1 1");
    assert_eq!(row("xsk_rx_ring_full"), "xsk_rx_ring_full 0 0 0");
    assert_eq!(row("redirected"), "redirected 3.60M 3.60M");
    assert!(out.contains("frames: total 4096  in use 2200  exchange 64  handoff queued 0  accounted 4096 (= total)"));
}

#[test]
fn watch_refreshes_until_killed() {
    let (_server, path) = serve("watch");
    let mut child = ctl(Some(&path), &["stats", "--watch", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let frames = text.matches("every 0.2s, Ctrl-C to quit").count();
    assert!((3..=7).contains(&frames), "{frames} frames in\n{text}");
    assert!(!text.contains("\x1b["), "no ANSI codes when stdout is not a terminal");
    assert_eq!(text.matches("\n\nevery 0.2s").count(), frames - 1, "a blank line between frames");
    // Each request is 0.5 s of uptime and 500 packets later: 1000/s, 0.80 Mbit/s.
    assert!(text.contains("rates over 0.5s: rx 1000/s 0.80 Mbit/s  tx - -  drops 0.0/s\n"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn watch_json_lines() {
    let (_server, path) = serve("watch-json");
    let mut child =
        ctl(Some(&path), &["stats", "--json", "--watch", "--interval", "0.1"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let snaps: Vec<StatsSnapshot> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(snaps.len() >= 2, "{text}");
    assert_eq!(snaps[0], stats(3600.0));
    assert_eq!(snaps[1], stats(3600.5));
}

#[test]
fn watch_ends_with_an_error_when_the_daemon_goes_away() {
    let (server, path) = serve("watch-gone");
    let mut child = ctl(Some(&path), &["stats", "--watch", "--interval", "0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    server.stop();
    let status = wait(&mut child, Duration::from_secs(10));
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with(&format!("sluicectl: cannot reach sluiced at {}", path.display())), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(String::from_utf8(out.stdout).unwrap().contains("rx_packets"));
}

#[test]
fn missing_socket_is_one_line_and_exit_1() {
    let path = sock("nobody-home");
    let out = run(Some(&path), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("sluicectl: cannot reach sluiced at {}: ", path.display())), "{err}");
    assert!(err.contains("is sluiced running"), "{err}");

    if !Path::new("/run/sluice/ctl.sock").exists() {
        let err = stderr(&run(None, &["stats"]));
        assert!(err.starts_with("sluicectl: cannot reach sluiced at /run/sluice/ctl.sock: "), "{err}");
    }
}

#[test]
fn daemon_errors_exit_1() {
    let path = sock("refuses");
    let handler: Handler = Arc::new(|_: &Command| ReplyBody::Error("not today".into()));
    let _server = ControlServer::start(&path, handler).unwrap();
    let out = run(Some(&path), &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "sluicectl: sluiced: not today\n");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["frobnicate"][..],
        &[],
        &["stats", "--watch", "--interval", "0.01"],
        &["stats", "--watch", "--interval", "61"],
        &["stats", "--watch", "--interval", "soon"],
        &["stats", "--interval", "2"],
        &["status", "--bogus"],
        &["conns", "--limit", "lots"],
        &["conns", "--limit", "10001"],
    ] {
        let out = run(None, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let help = stdout(&run(None, &["--help"]));
    for cmd in ["status", "stats", "services", "conns", "--socket"] {
        assert!(help.contains(cmd), "{cmd} not in\n{help}");
    }
}
