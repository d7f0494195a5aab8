//! Smoke tests of every `sluice-bench run` scenario in a real lab: about a
//! second per measurement, no figure asserted; every output file is
//! produced and parsed back, the HTML report is opened in headless
//! Chromium and its plots found rendered, and `compare` runs on two of
//! the runs.
//!
//! Needs root (namespaces, XDP, AF_XDP) and Chromium; without them it says
//! so and returns (with `CI` set it fails instead). The `sluice` target
//! needs the sluiced binary, which another package builds: it is looked for
//! in this test's target directory (target/debug/sluiced), and its absence
//! fails under CI.
use sluice_bench::results::{Phase, Results, SCHEMA};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sluiced_next_to_us() -> Option<PathBuf> {
    // target/debug/deps/smoke-… → target/debug/sluiced
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("sluiced");
    if !p.is_file() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but there is no sluiced at {}", p.display());
        let _ = writeln!(
            std::io::stderr(),
            "smoke: no sluiced in the target directory; the sluice target is left out (cargo build -p sluice-engine)"
        );
        return None;
    }
    Some(p)
}

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            }
        }
    }
    assert!(std::env::var_os("CI").is_none(), "CI is set but chromium is not installed (scripts/test.sh installs it)");
    let _ = writeln!(std::io::stderr(), "smoke: no chromium; the HTML reports are checked without a browser");
    None
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-bench-smoke-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `sluice-bench ARGS --report DIR --json DIR/run.json` and checks
/// every file it wrote; returns the results.
fn run_scenario(args: &[&str], dir: &Path, sluiced: Option<&Path>) -> Results {
    let bench = env!("CARGO_BIN_EXE_sluice-bench");
    let mut cmd = Command::new(bench);
    cmd.args(args).arg("--report").arg(dir).arg("--json").arg(dir.join("run.json"));
    if let Some(p) = sluiced {
        cmd.arg("--sluiced").arg(p);
    }
    let out = cmd.output().expect("run sluice-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{args:?}\n{stdout}\n{stderr}");
    assert!(out.status.success(), "{args:?}: {}:\n{stdout}\n{stderr}", out.status);

    let r = Results::read(&dir.join("results.json")).expect("results.json parses back");
    let again = Results::read(&dir.join("run.json")).expect("--json parses back");
    assert_eq!(r.measurements, again.measurements, "--json and --report write the same results");
    assert_eq!(r.schema, SCHEMA);
    assert_eq!(r.command_line[1], "run");
    assert!(r.commit.is_some(), "the commit is recorded");
    assert!(!r.measurements.is_empty());
    for m in &r.measurements {
        assert!(m.ok, "{args:?}: {m:?}");
        assert!(m.per_s.unwrap_or(0.0) > 0.0 && m.transactions > 0, "{m:?}");
        assert_eq!(m.mismatched, 0, "{m:?}");
        let cpu = m.cpu.expect("CPU figures");
        assert!(cpu.busy_s_per_m > 0.0, "{m:?}");
        assert!(cpu.server_us.is_some() && cpu.generator_us.is_some(), "{m:?}");
        assert!(cpu.generator_cores.is_some() && cpu.server_cores.is_some(), "{m:?}");
        // wrk prints no p99.9: its rows carry no latency rather than a made-up one.
        assert!(m.latency.is_some() || r.generator.starts_with("wrk"), "{m:?}");
        assert!(!m.limit.is_empty() && m.limit != "-", "{m:?}");
        if m.target.starts_with("sluice") {
            assert!(m.server_rss_kib.unwrap_or(0) > 0, "sluiced's RSS: {m:?}");
        }
    }
    for s in &r.summary {
        assert_eq!(s.rounds_failed, 0, "{s:?}");
        for b in &r.baselines {
            if s.phase != Phase::Sweep || r.summary.iter().any(|x| &x.target == b && x.rate == s.rate) {
                assert!(s.ratios.iter().any(|x| &x.baseline == b), "ratio to {b}: {s:?}");
            }
        }
    }

    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.starts_with(&format!("## {}", r.scenario)), "{md}");
    for t in r.summary.iter().map(|s| &s.target) {
        assert!(md.contains(&format!("`{t}`")), "{t} in the Markdown:\n{md}");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    let plots: usize = html
        .split("data-plots=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("data-plots");
    assert!(plots >= 2, "at least throughput and CPU plots: {plots}");
    assert_eq!(html.matches("<svg").count(), plots);
    if let Some(c) = chromium() {
        assert_eq!(rendered_plots(&c, &dir.join("report.html")), plots, "every plot rendered in Chromium");
    }
    // The lab is gone.
    let list = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    if let Some(lab) = r.detail.get("lab").and_then(|l| l.as_str()) {
        for ns in [format!("sluice-{lab}-s"), format!("sluice-{lab}-c")] {
            assert!(!sluice_lab::ns_exists(&ns), "{ns} left behind");
        }
    }
    assert!(!list.contains("sluice-bench") && !list.contains("sluice-tcpbench"), "a lab is left:\n{list}");
    r
}

/// Loads the page in headless Chromium and reads back how many plots its
/// script found laid out with shapes in them.
fn rendered_plots(chromium: &Path, page: &Path) -> usize {
    let profile = scratch("chromium-profile");
    let out = Command::new("timeout")
        .arg("90")
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chromium: {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    dom.split("data-plots-rendered=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the page's script did not run:\n{}", &dom[..dom.len().min(2000)]))
}

#[test]
fn every_scenario_reports() {
    if !sluice_lab::root_or_skip("every_scenario_reports") {
        return;
    }
    let sluiced = sluiced_next_to_us();
    let with = |s: &'static str| if sluiced.is_some() { format!("sluice,{s}") } else { s.to_string() };
    let short = ["--rounds", "1", "--duration", "1", "--warmup", "0.5"];

    let udp = scratch("udp");
    let targets = with("kernel,reflect");
    let mut args = vec!["run", "udp-echo", "--queues", "2", "--targets", &targets];
    args.extend(short);
    let r = run_scenario(&args, &udp, sluiced.as_deref());
    assert_eq!(r.scenario, "udp-echo");
    assert_eq!(r.baselines, vec!["kernel".to_string(), "reflect".to_string()]);
    assert!(r.measurements.iter().any(|m| m.phase == Phase::Open), "auto rate ran the open loop");

    // tcp-rr with both generators; the afxdp one open loop at a fixed rate
    // (only the upper bound is a property of the code: the schedule never
    // runs ahead; falling short is a debug build on two busy cores).
    let targets = with("kernel");
    let rr_afxdp = scratch("rr-afxdp");
    let mut args = vec!["run", "tcp-rr", "--conns", "16", "--rate", "5000", "--targets", &targets];
    args.extend(short);
    let a = run_scenario(&args, &rr_afxdp, sluiced.as_deref());
    assert_eq!(a.scenario, "tcp-rr");
    assert!(a.generator.contains("AF_XDP"), "{}", a.generator);
    for m in a.measurements.iter().filter(|m| m.phase == Phase::Open) {
        assert_eq!(m.rate, Some(5000.0));
        assert!(m.per_s.unwrap() <= 5000.0 * 1.1, "the open loop sends ahead of its schedule: {m:?}");
    }

    let rr_kernel = scratch("rr-kernel");
    let mut args = vec!["run", "tcp-rr", "--generator", "kernel", "--conns", "16", "--rate", "sweep"];
    args.extend(["--targets", &targets, "--rounds", "1", "--duration", "0.5", "--warmup", "0.3"]);
    let k = run_scenario(&args, &rr_kernel, sluiced.as_deref());
    assert!(k.generator.contains("kernel TCP sockets"), "{}", k.generator);
    assert!(k.measurements.iter().any(|m| m.phase == Phase::Sweep), "the sweep ran");
    assert!(!k.knees.is_empty(), "knees are reported");
    let html = std::fs::read_to_string(rr_kernel.join("report.html")).unwrap();
    assert!(html.contains("p99 latency vs offered load"), "the sweep's plot");

    let crr = scratch("crr");
    // The afxdp generator's crr open loop opens connections on a schedule.
    let mut args = vec!["run", "tcp-crr", "--conns", "16", "--rate", "2000", "--targets", &targets];
    args.extend(short);
    let c = run_scenario(&args, &crr, sluiced.as_deref());
    assert_eq!((c.scenario.as_str(), c.unit.as_str()), ("tcp-crr", "connection"));
    let open: Vec<_> = c.measurements.iter().filter(|m| m.phase == Phase::Open).collect();
    assert!(!open.is_empty(), "the open loop ran");
    for m in open {
        assert_eq!(m.rate, Some(2000.0));
        assert!(m.per_s.unwrap() <= 2000.0 * 1.1, "opens ahead of their schedule: {m:?}");
    }

    // http: sluice's HTTP service and nginx, keep-alive from the AF_XDP
    // generator (open loop too), and a connection per request from wrk.
    let targets = with("nginx");
    let http = scratch("http");
    let mut args = vec!["run", "http", "--conns", "16", "--rate", "3000", "--targets", &targets];
    args.extend(short);
    let h = run_scenario(&args, &http, sluiced.as_deref());
    assert_eq!((h.scenario.as_str(), h.unit.as_str()), ("http", "request"));
    assert_eq!(h.baselines, vec!["nginx".to_string()]);
    let http_close = scratch("http-close");
    let mut args = vec!["run", "http", "--close", "--rate", "none", "--conns", "16", "--targets", &targets];
    args.extend(short);
    let hc = run_scenario(&args, &http_close, sluiced.as_deref());
    assert_eq!(hc.scenario, "http-close");
    assert!(hc.generator.contains("Connection: close"), "{}", hc.generator);

    // conn-scale: a few hundred idle connections to each server.
    let scale = scratch("scale");
    let targets = with("kernel");
    let bench = env!("CARGO_BIN_EXE_sluice-bench");
    let mut cmd = Command::new(bench);
    cmd.args(["run", "conn-scale", "--conns", "300", "--settle", "0.3", "--targets", &targets]);
    cmd.arg("--report").arg(&scale);
    if let Some(p) = &sluiced {
        cmd.arg("--sluiced").arg(p);
    }
    let out = cmd.output().expect("conn-scale");
    assert!(
        out.status.success(),
        "conn-scale: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cs = Results::read(&scale.join("results.json")).expect("conn-scale results");
    assert_eq!(cs.scenario, "conn-scale");
    for m in &cs.measurements {
        assert!(m.ok && m.transactions == 300, "every connection held: {m:?}");
        assert!(m.memory_per_conn_b.is_some(), "{m:?}");
    }
    if let Some(c) = chromium() {
        let html = std::fs::read_to_string(scale.join("report.html")).unwrap();
        assert!(html.contains("Idle connections held"));
        assert_eq!(rendered_plots(&c, &scale.join("report.html")), 1, "the memory plot rendered");
    }

    // conn-scale past one process's descriptors: the kernel's server runs in
    // several processes sharing the port (a low descriptor budget forces it).
    let scale_procs = scratch("scale-procs");
    let out = Command::new(bench)
        .args(["run", "conn-scale", "--conns", "300", "--settle", "0.3", "--targets", "kernel"])
        .args(["--fds-per-process", "500", "--report"])
        .arg(&scale_procs)
        .output()
        .expect("conn-scale");
    assert!(
        out.status.success(),
        "conn-scale in processes: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cs = Results::read(&scale_procs.join("results.json")).expect("conn-scale results");
    let m = &cs.measurements[0];
    assert!(m.ok && m.transactions == 300, "every connection held: {m:?}");
    assert!(m.limit.contains("the epoll server in 2 processes"), "{}", m.limit);

    // compare: the two tcp-rr runs share their closed-loop figures.
    let changes = rr_kernel.join("changes.json");
    let out = Command::new(bench)
        .arg("compare")
        .arg(rr_afxdp.join("results.json"))
        .arg(rr_kernel.join("results.json"))
        .arg("--json")
        .arg(&changes)
        .output()
        .expect("compare");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "compare: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("figures changed beyond the noise"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&changes).unwrap()).unwrap();
    let closed: Vec<&serde_json::Value> = v.as_array().unwrap().iter().filter(|c| c["phase"] == "closed").collect();
    assert!(closed.iter().any(|c| c["figure"] == "per_s" && c["target"] == "kernel"), "{v}");
    // A file from elsewhere is refused with a reason.
    let bogus = rr_kernel.join("bogus.json");
    std::fs::write(&bogus, "{\"rounds\": []}").unwrap();
    let out = Command::new(bench).arg("compare").arg(&bogus).arg(&bogus).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema"), "{}", String::from_utf8_lossy(&out.stderr));

    // report: the Markdown of several runs after a preamble, and HTML pages.
    let md = rr_kernel.join("all.md");
    let pre = rr_kernel.join("pre.md");
    std::fs::write(&pre, "# Benchmarks\n\nprose\n").unwrap();
    let pages = rr_kernel.join("pages");
    let out = Command::new(bench)
        .args(["report", "--markdown"])
        .arg(&md)
        .arg("--preamble")
        .arg(&pre)
        .arg("--html")
        .arg(&pages)
        .arg(udp.join("results.json"))
        .arg(crr.join("results.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all = std::fs::read_to_string(&md).unwrap();
    assert!(all.starts_with("# Benchmarks\n\nprose\n\n## udp-echo"), "{all}");
    assert!(all.contains("## tcp-crr"));
    assert!(pages.join("udp-echo.html").is_file() && pages.join("tcp-crr.html").is_file());

    for d in [udp, rr_afxdp, rr_kernel, crr, http, http_close, scale] {
        let _ = std::fs::remove_dir_all(d);
    }
}
