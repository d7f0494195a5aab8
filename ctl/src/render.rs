//! The human output of each command, as pure functions of the daemon's
//! replies (testable without a daemon).
//!
//! Names come from `sluice_engine::stats` (and the XDP ABI) in their declared
//! order; names the daemon sends that this build does not know are shown after
//! them, so a newer daemon's counters are never hidden. A value the daemon did
//! not send shows as "-".
use crate::human::{self, MISSING};
use crate::table::Table;
use sluice_ebpf::abi::XdpCounters;
use sluice_engine::control::protocol::{ConnsSnapshot, CoreSnapshot, ServiceInfo, StatsSnapshot, Status};
use sluice_engine::stats::{Counter, DropReason, Gauge};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Counter names are this prefix for the kernel's XDP_STATISTICS gauges.
const KERNEL_PREFIX: &str = "xsk_";

/// `sluicectl status`: engine identity and settings, then the services.
pub fn render_status(s: &Status) -> String {
    let queues = if s.cpus.is_empty() {
        s.queues.to_string()
    } else {
        let each: Vec<String> = s.cpus.iter().enumerate().map(|(q, c)| format!("q{q} on cpu {c}")).collect();
        format!("{} ({})", s.queues, each.join(", "))
    };
    let umem = u64::from(s.frames_total) * u64::from(s.frame_size);
    let per_core = if s.umem_per_core_bytes > 0 {
        format!(", {} per core", human::bytes(s.umem_per_core_bytes))
    } else {
        String::new()
    };
    let frames = format!("{} x {} B ({}{per_core})", s.frames_total, s.frame_size, human::bytes(umem));
    let arp = if s.arp_answered_for.is_empty() {
        "kernel (service addresses are configured locally)".to_string()
    } else {
        format!("sluice answers for {}", s.arp_answered_for.join(", "))
    };
    let lines = [
        ("version", text(&s.daemon_version)),
        ("pid", s.pid.to_string()),
        ("uptime", human::duration(s.uptime_s)),
        ("interface", format!("{} (ifindex {})", text(&s.interface), s.ifindex)),
        ("queues", queues),
        ("socket", text(&s.socket_mode)),
        ("xdp", text(&s.xdp_mode)),
        ("poll", text(&s.poll)),
        ("batch", s.batch_size.to_string()),
        ("frames", frames),
        ("arp", arp),
    ];
    let tcp = (s.tcp_max_connections > 0).then(|| {
        (
            "tcp",
            format!(
                "up to {} connections, {} B each (+ {} B per TIME-WAIT entry; data is in frames)",
                s.tcp_max_connections, s.tcp_bytes_per_connection, s.tcp_bytes_per_time_wait
            ),
        )
    });
    let lines = lines.into_iter().chain(tcp);
    let mut out = String::new();
    for (k, v) in lines {
        let _ = writeln!(out, "{k:<10} {v}");
    }
    out.push('\n');
    out.push_str(&render_services(&s.services));
    out
}

/// `sluicectl services`: NAME PROTO LISTEN KIND.
pub fn render_services(services: &[ServiceInfo]) -> String {
    if services.is_empty() {
        return "no services\n".to_string();
    }
    let mut t = Table::text(["NAME", "PROTO", "LISTEN", "KIND"]);
    for s in services {
        t.row([text(&s.name), text(&s.proto), text(&s.listen), text(&s.kind)]);
    }
    t.render()
}

/// `sluicectl conns`: one line per TCP connection.
pub fn render_conns(s: &ConnsSnapshot) -> String {
    let mut out = String::new();
    if s.conns.is_empty() {
        out.push_str("no connections\n");
    } else {
        let mut t = Table::new([
            "CORE", "STATE", "LOCAL", "REMOTE", "SERVICE", "AGE", "SRTT", "RTO", "CWND", "SND_WND", "UNACKED",
            "RETRANS", "IN", "OUT", "RECV_Q", "SEND_Q",
        ]);
        for c in &s.conns {
            let ms = |us: u32| format!("{:.1}ms", us as f64 / 1000.0);
            t.row([
                c.core.to_string(),
                text(&c.state) + if c.blocked { "*" } else { "" },
                text(&c.local),
                text(&c.remote),
                text(&c.service),
                human::duration(c.age_s),
                ms(c.srtt_us),
                ms(c.rto_us),
                human::bytes(c.cwnd as u64),
                human::bytes(c.snd_wnd as u64),
                human::bytes(c.unacked as u64),
                c.retransmits.to_string(),
                human::bytes(c.bytes_in),
                human::bytes(c.bytes_out),
                human::bytes(c.recv_queued as u64),
                human::bytes(c.send_queued as u64),
            ]);
        }
        out.push_str(&t.render());
        for c in s.conns.iter().filter(|c| !c.detail.is_empty()) {
            let _ = writeln!(out, "{} <-> {}: {}", c.local, c.remote, c.detail);
        }
        if s.conns.iter().any(|c| c.blocked) {
            out.push_str("* waiting for a frame to transmit\n");
        }
    }
    let _ = writeln!(out, "{} of {} connections", s.conns.len(), s.total);
    if !s.cores_missing.is_empty() {
        let _ = writeln!(out, "cores {:?} did not answer in time: their connections are missing", s.cores_missing);
    }
    out
}

/// `sluicectl stats`: per-core counters, rings and frames, drops, kernel
/// socket counters and the XDP program's counters. With `prev` (an earlier
/// snapshot of the same daemon) it adds rates over the time between the two.
pub fn render_stats(s: &StatsSnapshot, prev: Option<&StatsSnapshot>) -> String {
    let dt = prev.and_then(|p| interval(p, s));
    let rates = dt.and_then(|dt| prev.map(|p| (&p.total, dt)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "uptime {}  socket {}  cores {}",
        human::duration(s.uptime_s),
        text(&s.socket_mode),
        s.cores.len()
    );
    if let Some(p) = prev {
        out.push_str(&rate_line(s, p, dt));
    }
    out.push('\n');
    out.push_str(&counters_table(s, rates).render());
    out.push('\n');
    out.push_str(&gauges_table(s).render());
    out.push_str(&frames_line(s));
    out.push('\n');
    match drops_table(s, rates) {
        Some(t) => out.push_str(&t.render()),
        None => out.push_str("DROPS  no drops\n"),
    }
    out.push('\n');
    out.push_str(&kernel_table(s, rates).render());
    out.push('\n');
    out.push_str(&xdp_section(s, prev, dt));
    out
}

/// Seconds between two snapshots, if `s` is later than `p` (a daemon
/// restart makes uptime go back: no rates then).
pub fn interval(p: &StatsSnapshot, s: &StatsSnapshot) -> Option<f64> {
    let dt = s.uptime_s - p.uptime_s;
    (dt.is_finite() && dt > 0.0).then_some(dt)
}

/// Per-second rate of a monotonic counter between two readings; `None` if a
/// reading is missing or the counter went back.
pub fn per_second(now: Option<u64>, before: Option<u64>, dt: f64) -> Option<f64> {
    let d = now?.checked_sub(before?)?;
    (dt > 0.0).then(|| d as f64 / dt)
}

fn text(s: &str) -> String {
    if s.is_empty() {
        MISSING.to_string()
    } else {
        s.to_string()
    }
}

fn get(m: &BTreeMap<String, u64>, k: &str) -> Option<u64> {
    m.get(k).copied()
}

fn rate_line(s: &StatsSnapshot, p: &StatsSnapshot, dt: Option<f64>) -> String {
    let Some(dt) = dt else {
        return "rates: - (uptime did not advance: daemon restarted?)\n".to_string();
    };
    let c = |k: Counter| per_second(get(&s.total.counters, k.name()), get(&p.total.counters, k.name()), dt);
    let pkts = |r: Option<f64>| r.map(human::rate).unwrap_or_else(|| MISSING.into());
    let bits = |r: Option<f64>| r.map(human::mbit).unwrap_or_else(|| MISSING.into());
    let drops = |m: &BTreeMap<String, u64>| m.values().try_fold(0u64, |a, v| a.checked_add(*v));
    let d = per_second(drops(&s.total.drops), drops(&p.total.drops), dt);
    format!(
        "rates over {dt:.1}s: rx {} {}  tx {} {}  drops {}\n",
        pkts(c(Counter::RxPackets)),
        bits(c(Counter::RxBytes)),
        pkts(c(Counter::TxPackets)),
        bits(c(Counter::TxBytes)),
        pkts(d),
    )
}

/// The known names (all of them, in order) then the unknown ones found in
/// any of `maps`, both kept only if `keep` says so.
fn names<'a>(
    known: &[&'static str],
    maps: impl Iterator<Item = &'a BTreeMap<String, u64>>,
    keep: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out: Vec<String> = known.iter().filter(|n| keep(n)).map(|n| n.to_string()).collect();
    let unknown: BTreeSet<&String> =
        maps.flat_map(|m| m.keys()).filter(|k| !known.contains(&k.as_str()) && keep(k)).collect();
    out.extend(unknown.into_iter().cloned());
    out
}

fn all_maps(
    s: &StatsSnapshot,
    pick: fn(&CoreSnapshot) -> &BTreeMap<String, u64>,
) -> impl Iterator<Item = &BTreeMap<String, u64>> {
    s.cores.iter().chain(std::iter::once(&s.total)).map(pick)
}

fn core_header(first: &str, s: &StatsSnapshot, rate: bool) -> Vec<String> {
    let mut h = vec![first.to_string()];
    for (i, c) in s.cores.iter().enumerate() {
        h.push(format!("core {}", c.core.map(|n| n.to_string()).unwrap_or_else(|| i.to_string())));
    }
    h.push("TOTAL".into());
    if rate {
        h.push("RATE".into());
    }
    h
}

/// One row: `label`, a cell per core, the total's cell.
fn core_row(label: &str, s: &StatsSnapshot, cell: impl Fn(&CoreSnapshot) -> String) -> Vec<String> {
    let mut r = vec![label.to_string()];
    r.extend(s.cores.iter().map(&cell));
    r.push(cell(&s.total));
    r
}

/// A row of counter `name` from the maps `pick` selects, with a rate cell
/// when `rates` holds the previous total and the interval.
fn counter_row(
    name: &str,
    s: &StatsSnapshot,
    pick: fn(&CoreSnapshot) -> &BTreeMap<String, u64>,
    rates: Option<(&CoreSnapshot, f64)>,
) -> Vec<String> {
    let mut r = core_row(name, s, |c| human::opt_count(get(pick(c), name)));
    if let Some((p, dt)) = rates {
        let v = per_second(get(pick(&s.total), name), get(pick(p), name), dt);
        r.push(match v {
            Some(v) if name.ends_with("_bytes") => human::mbit(v),
            Some(v) => human::rate(v),
            None => MISSING.into(),
        });
    }
    r
}

fn ratio(num: Option<u64>, den: Option<u64>) -> String {
    match (num, den) {
        (Some(n), Some(d)) if d > 0 => format!("{:.1}", n as f64 / d as f64),
        _ => MISSING.into(),
    }
}

fn counters_table(s: &StatsSnapshot, rates: Option<(&CoreSnapshot, f64)>) -> Table {
    let pick: fn(&CoreSnapshot) -> &BTreeMap<String, u64> = |c| &c.counters;
    let known: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
    let mut t = Table::new(core_header("COUNTER", s, rates.is_some()));
    let mut cpu = vec!["cpu".to_string()];
    cpu.extend(s.cores.iter().map(|c| c.cpu.map(|n| n.to_string()).unwrap_or_else(|| MISSING.into())));
    t.row(cpu);
    let (rxp, rxb, txp, txb) =
        (Counter::RxPackets.name(), Counter::RxBatches.name(), Counter::TxPackets.name(), Counter::TxBatches.name());
    let avg_rx = |c: &CoreSnapshot| ratio(get(&c.counters, rxp), get(&c.counters, rxb));
    let avg_tx = |c: &CoreSnapshot| ratio(get(&c.counters, txp), get(&c.counters, txb));
    let share = |c: &CoreSnapshot| human::percent(c.handoff_share);
    let (mut batches_done, mut share_done) = (false, false);
    for name in names(&known, all_maps(s, pick), |_| true) {
        t.row(counter_row(&name, s, pick, rates));
        if name == txb {
            t.row(core_row("rx_batch_avg", s, avg_rx));
            t.row(core_row("tx_batch_avg", s, avg_tx));
            batches_done = true;
        }
        if name == Counter::HandoffIn.name() {
            t.row(core_row("handoff_share", s, share));
            share_done = true;
        }
    }
    if !batches_done {
        t.row(core_row("rx_batch_avg", s, avg_rx));
        t.row(core_row("tx_batch_avg", s, avg_tx));
    }
    if !share_done {
        t.row(core_row("handoff_share", s, share));
    }
    t
}

fn gauges_table(s: &StatsSnapshot) -> Table {
    let pick: fn(&CoreSnapshot) -> &BTreeMap<String, u64> = |c| &c.gauges;
    let known: Vec<&str> = Gauge::ALL.iter().map(|g| g.name()).collect();
    let mut t = Table::new(core_header("RING/FRAMES", s, false));
    for name in names(&known, all_maps(s, pick), |n| !n.starts_with(KERNEL_PREFIX)) {
        t.row(counter_row(&name, s, pick, None));
    }
    t
}

fn frames_line(s: &StatsSnapshot) -> String {
    let f = &s.frames;
    let check = if f.accounted == f.total {
        "(= total)".to_string()
    } else {
        let (sign, d) = if f.accounted > f.total { ('+', f.accounted - f.total) } else { ('-', f.total - f.accounted) };
        format!("(total {sign}{d}: cores publish at slightly different instants)")
    };
    let leaked = if f.leaked > 0 { format!("  LEAKED {} (a bug: please report)", f.leaked) } else { String::new() };
    format!(
        "frames: total {}  in use {}  exchange {}  handoff queued {}  accounted {} {check}{leaked}\n",
        f.total, f.in_use, f.exchange, f.handoff_queued, f.accounted
    )
}

/// Only reasons with a non-zero count somewhere; `None` if there are none.
fn drops_table(s: &StatsSnapshot, rates: Option<(&CoreSnapshot, f64)>) -> Option<Table> {
    let pick: fn(&CoreSnapshot) -> &BTreeMap<String, u64> = |c| &c.drops;
    let known: Vec<&str> = DropReason::ALL.iter().map(|d| d.name()).collect();
    let nonzero = |n: &str| all_maps(s, pick).any(|m| get(m, n).is_some_and(|v| v > 0));
    let rows = names(&known, all_maps(s, pick), nonzero);
    if rows.is_empty() {
        return None;
    }
    let mut t = Table::new(core_header("DROPS", s, rates.is_some()));
    for name in rows {
        t.row(counter_row(&name, s, pick, rates));
    }
    Some(t)
}

fn kernel_table(s: &StatsSnapshot, rates: Option<(&CoreSnapshot, f64)>) -> Table {
    let pick: fn(&CoreSnapshot) -> &BTreeMap<String, u64> = |c| &c.gauges;
    let known: Vec<&str> = Gauge::ALL.iter().map(|g| g.name()).collect();
    let mut t = Table::new(core_header("KERNEL SOCKET", s, rates.is_some()));
    for name in names(&known, all_maps(s, pick), |n| n.starts_with(KERNEL_PREFIX)) {
        t.row(counter_row(&name, s, pick, rates));
    }
    t
}

/// The XDP program's counters for each CPU that counted anything, and the
/// total (with rates when `prev` is given).
fn xdp_section(s: &StatsSnapshot, prev: Option<&StatsSnapshot>, dt: Option<f64>) -> String {
    let x = &s.xdp;
    if x.per_cpu.is_empty() && x.total.is_empty() {
        return "XDP PROGRAM  no counters reported\n".to_string();
    }
    let known: Vec<&str> = XdpCounters::default().fields().iter().map(|(n, _)| *n).collect();
    let rows = names(&known, x.per_cpu.iter().chain(std::iter::once(&x.total)), |_| true);
    let busy: Vec<usize> = (0..x.per_cpu.len()).filter(|&i| x.per_cpu[i].values().any(|v| *v > 0)).collect();
    let rate = match (prev, dt) {
        (Some(p), Some(dt)) => Some((&p.xdp.total, dt)),
        _ => None,
    };
    let mut h = vec!["XDP PROGRAM".to_string()];
    h.extend(busy.iter().map(|i| format!("cpu {i}")));
    h.push("TOTAL".into());
    if rate.is_some() {
        h.push("RATE".into());
    }
    let mut t = Table::new(h);
    for name in &rows {
        let mut r = vec![name.clone()];
        r.extend(busy.iter().map(|&i| human::opt_count(get(&x.per_cpu[i], name))));
        r.push(human::opt_count(get(&x.total, name)));
        if let Some((p, dt)) = rate {
            r.push(
                per_second(get(&x.total, name), get(p, name), dt).map(human::rate).unwrap_or_else(|| MISSING.into()),
            );
        }
        t.row(r);
    }
    let mut out = t.render();
    let idle = x.per_cpu.len() - busy.len();
    if idle > 0 {
        let _ = writeln!(out, "({idle} of {} CPUs counted nothing and are not shown)", x.per_cpu.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::control::protocol::{FramesSnapshot, XdpSnapshot};

    fn map(kv: &[(&str, u64)]) -> BTreeMap<String, u64> {
        kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn core(i: u32, counters: &[(&str, u64)], drops: &[(&str, u64)], gauges: &[(&str, u64)]) -> CoreSnapshot {
        CoreSnapshot {
            core: Some(i),
            cpu: Some(i as usize + 2),
            counters: map(counters),
            drops: map(drops),
            gauges: map(gauges),
            handoff_share: 0.25,
        }
    }

    fn snapshot() -> StatsSnapshot {
        let c0 = core(
            0,
            &[("rx_packets", 1_234_567), ("rx_bytes", 80_000_000), ("rx_batches", 100), ("handoff_out", 10)],
            &[("ipv4_bad_checksum", 3)],
            &[("fill_ring", 2048), ("xsk_rx_ring_full", 7)],
        );
        let c1 = core(
            1,
            &[("rx_packets", 5), ("rx_batches", 0), ("future_counter", 42)],
            &[("ipv4_bad_checksum", 0), ("future_drop", 2)],
            &[("fill_ring", 100), ("future_gauge", 9), ("xsk_future", 1)],
        );
        let mut total = core(
            0,
            &[("rx_packets", 1_234_572), ("rx_bytes", 80_000_000), ("rx_batches", 100), ("future_counter", 42)],
            &[("ipv4_bad_checksum", 3), ("future_drop", 2)],
            &[("fill_ring", 2148), ("xsk_rx_ring_full", 7)],
        );
        total.core = None;
        total.cpu = None;
        let xdp = XdpSnapshot {
            per_cpu: vec![map(&[("redirected", 0)]), map(&[("redirected", 1000), ("passed", 12), ("new_xdp", 1)])],
            total: map(&[("redirected", 1000), ("passed", 12), ("new_xdp", 1)]),
        };
        StatsSnapshot {
            uptime_s: 3720.0,
            socket_mode: "zero-copy".into(),
            cores: vec![c0, c1],
            total,
            frames: FramesSnapshot {
                total: 4096,
                exchange: 100,
                handoff_queued: 0,
                accounted: 4096,
                in_use: 300,
                ..Default::default()
            },
            xdp,
        }
    }

    /// The cells of the first line starting with `label` (split on 2+ spaces).
    fn cells(out: &str, label: &str) -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.split("  ").next() == Some(label))
            .unwrap_or_else(|| panic!("no row {label:?} in\n{out}"));
        line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect()
    }

    #[test]
    fn stats_cells() {
        let out = render_stats(&snapshot(), None);
        assert!(out.starts_with("uptime 1h02m  socket zero-copy  cores 2\n"), "{out}");
        assert_eq!(cells(&out, "COUNTER"), ["COUNTER", "core 0", "core 1", "TOTAL"]);
        assert_eq!(cells(&out, "cpu"), ["cpu", "2", "3"]);
        assert_eq!(cells(&out, "rx_packets"), ["rx_packets", "1.23M", "5", "1.23M"]);
        assert_eq!(cells(&out, "rx_bytes"), ["rx_bytes", "80.0M", "-", "80.0M"]);
        // Missing keys are "-"; a zero denominator is "-".
        assert_eq!(cells(&out, "tx_packets"), ["tx_packets", "-", "-", "-"]);
        assert_eq!(cells(&out, "rx_batch_avg"), ["rx_batch_avg", "12345.7", "-", "12345.7"]);
        assert_eq!(cells(&out, "handoff_share"), ["handoff_share", "25.0%", "25.0%", "25.0%"]);
        assert_eq!(cells(&out, "fill_ring"), ["fill_ring", "2048", "100", "2148"]);
        assert_eq!(cells(&out, "xsk_rx_ring_full"), ["xsk_rx_ring_full", "7", "-", "7"]);
        assert_eq!(cells(&out, "redirected"), ["redirected", "1000", "1000"], "idle cpu 0 hidden");
        assert_eq!(cells(&out, "XDP PROGRAM"), ["XDP PROGRAM", "cpu 1", "TOTAL"]);
        assert!(out.contains("(1 of 2 CPUs counted nothing and are not shown)"));
        assert!(
            out.contains("frames: total 4096  in use 300  exchange 100  handoff queued 0  accounted 4096 (= total)")
        );
        assert!(!out.contains("RATE"), "no rates without a previous snapshot");
    }

    #[test]
    fn known_names_keep_their_order_and_unknown_ones_follow() {
        let out = render_stats(&snapshot(), None);
        let pos = |s: &str| out.find(&format!("\n{s} ")).unwrap_or_else(|| panic!("{s} missing in\n{out}"));
        let mut last = 0;
        for c in Counter::ALL {
            let p = pos(c.name());
            assert!(p > last, "{} out of order", c.name());
            last = p;
        }
        assert!(pos("future_counter") > pos(Counter::ALL.last().unwrap().name()));
        assert_eq!(cells(&out, "future_counter"), ["future_counter", "-", "42", "42"]);
        assert_eq!(cells(&out, "future_gauge"), ["future_gauge", "-", "9", "-"]);
        assert_eq!(cells(&out, "xsk_future"), ["xsk_future", "-", "1", "-"]);
        assert!(pos("xsk_future") > pos("xsk_tx_invalid"), "kernel section, after the known");
        assert_eq!(cells(&out, "future_drop"), ["future_drop", "-", "2", "2"]);
        assert_eq!(cells(&out, "new_xdp"), ["new_xdp", "1", "1"]);
        assert!(pos("new_xdp") > pos("ipv6"));
    }

    #[test]
    fn drops_list_only_nonzero_reasons() {
        let out = render_stats(&snapshot(), None);
        assert_eq!(cells(&out, "ipv4_bad_checksum"), ["ipv4_bad_checksum", "3", "0", "3"]);
        assert!(!out.contains("eth_truncated"));
        assert!(!out.contains("no drops"));

        let mut s = snapshot();
        for c in s.cores.iter_mut().chain(std::iter::once(&mut s.total)) {
            c.drops.values_mut().for_each(|v| *v = 0);
        }
        let out = render_stats(&s, None);
        assert!(out.contains("DROPS  no drops\n"), "{out}");
        assert!(!out.contains("ipv4_bad_checksum"));
        // An empty snapshot renders without panicking, with "-" everywhere.
        let out = render_stats(&StatsSnapshot::default(), None);
        assert!(out.contains("no drops") && out.contains("XDP PROGRAM  no counters reported"));
        assert_eq!(cells(&out, "rx_packets"), ["rx_packets", "-"]);
    }

    #[test]
    fn rates_come_from_the_difference_over_uptime() {
        let prev = snapshot();
        let mut now = snapshot();
        now.uptime_s += 2.0;
        *now.total.counters.get_mut("rx_packets").unwrap() += 2_000_000; // 1M/s
        *now.total.counters.get_mut("rx_bytes").unwrap() += 250_000_000; // 125 MB/s = 1000 Mbit/s
        *now.total.drops.get_mut("future_drop").unwrap() += 4; // 2/s
        now.total.counters.insert("tx_packets".into(), 1); // absent before: no rate
        *now.xdp.total.get_mut("redirected").unwrap() += 3000;
        let out = render_stats(&now, Some(&prev));
        assert!(out.contains("rates over 2.0s: rx 1.00M/s 1000 Mbit/s  tx - -  drops 2.0/s\n"), "{out}");
        assert_eq!(cells(&out, "COUNTER"), ["COUNTER", "core 0", "core 1", "TOTAL", "RATE"]);
        assert_eq!(cells(&out, "rx_packets").last().unwrap(), "1.00M/s");
        assert_eq!(cells(&out, "rx_bytes").last().unwrap(), "1000 Mbit/s");
        assert_eq!(cells(&out, "rx_batches").last().unwrap(), "0.0/s");
        assert_eq!(cells(&out, "tx_packets").last().unwrap(), "-");
        assert_eq!(cells(&out, "future_drop").last().unwrap(), "2.0/s");
        assert_eq!(cells(&out, "redirected").last().unwrap(), "1500/s");

        assert_eq!(per_second(Some(10), Some(4), 2.0), Some(3.0));
        assert_eq!(per_second(Some(3), Some(4), 2.0), None, "counter went back");
        assert_eq!(per_second(None, Some(4), 2.0), None);
        // A restarted daemon (uptime went back) gives no rates.
        let out = render_stats(&prev, Some(&now));
        assert!(out.contains("rates: - (uptime did not advance"), "{out}");
        assert!(!out.contains("RATE"));
    }

    fn status() -> Status {
        Status {
            daemon_version: "0.1.0".into(),
            pid: 4242,
            uptime_s: 3725.5,
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
            umem_per_core_bytes: 4096 * 1024,
            arp_answered_for: vec!["198.18.0.3".into()],
            tcp_max_connections: 0,
            tcp_bytes_per_connection: 0,
            tcp_bytes_per_time_wait: 0,
            services: vec![ServiceInfo {
                id: 0,
                name: "echo".into(),
                proto: "udp".into(),
                listen: "198.18.0.2:7".into(),
                kind: "echo".into(),
            }],
        }
    }

    #[test]
    fn status_lines_and_services() {
        let out = render_status(&status());
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
            "frames     4096 x 2048 B (8.0 MiB, 4.0 MiB per core)\n",
            "arp        sluice answers for 198.18.0.3\n",
            "\nNAME  PROTO  LISTEN        KIND\necho  udp    198.18.0.2:7  echo\n",
        ] {
            assert!(out.contains(want), "{want:?} not in\n{out}");
        }
        let mut s = status();
        s.services.clear();
        s.interface.clear();
        let out = render_status(&s);
        assert!(out.contains("interface  - (ifindex 3)\n") && out.ends_with("no services\n"), "{out}");
    }
}
