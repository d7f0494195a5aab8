//! Smoke test of `sluice-bench run udp-echo` in a real lab: short, one round.
//!
//! Needs root (namespaces, XDP, AF_XDP); without it, it says so and returns
//! (with `CI` set it fails instead). The `sluice` target needs the sluiced
//! binary, which another package builds: it is looked for in this test's
//! target directory (target/debug/sluiced) and left out, with a printed
//! line, when it is not there.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sluiced_next_to_us() -> Option<PathBuf> {
    // target/debug/deps/smoke-… → target/debug/sluiced
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("sluiced");
    p.is_file().then_some(p)
}

#[test]
fn udp_echo_smoke() {
    if !sluice_lab::root_or_skip("udp_echo_smoke") {
        return;
    }
    let bench = env!("CARGO_BIN_EXE_sluice-bench");
    let mut targets = vec!["kernel", "reflect"];
    let sluiced = sluiced_next_to_us();
    match &sluiced {
        Some(_) => targets.push("sluice"),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "udp_echo_smoke: no sluiced in the target directory; skipping the sluice target \
                 (cargo build -p sluice-engine to include it)"
            );
        }
    }
    let json = std::env::temp_dir().join(format!("sluice-bench-smoke-{}.json", std::process::id()));
    let targets_arg = targets.join(",");
    let mut cmd = Command::new(bench);
    cmd.args(["run", "udp-echo", "--rounds", "1", "--duration", "1", "--targets", &targets_arg, "--queues", "2"]);
    cmd.arg("--json").arg(&json);
    if let Some(p) = &sluiced {
        cmd.arg("--sluiced").arg(p);
    }
    let out = cmd.output().expect("run sluice-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "sluice-bench failed ({}):\n{stdout}\n{stderr}", out.status);

    let text = std::fs::read_to_string(&json).expect("JSON report");
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let rounds = v["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), targets.len(), "one round of each target");
    for t in &targets {
        let r = rounds.iter().find(|r| r["target"] == *t).unwrap_or_else(|| panic!("no row for {t}"));
        assert_eq!(r["ok"], true, "{t}: {r}");
        assert!(r["replies"].as_u64().unwrap_or(0) > 0, "{t} got no replies: {r}");
        assert!(r["replies_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{t}: {r}");
        assert!(r["cpu_us_per_reply"].as_f64().unwrap_or(0.0) > 0.0, "{t}: {r}");
        assert_eq!(r["mismatched"], 0, "{t}: {r}");
        let s = v["summary"].as_array().unwrap().iter().find(|s| s["target"] == *t).expect("summary row");
        assert_eq!(s["rounds_ok"], 1, "{t}: {s}");
    }
    assert_eq!(v["command_line"][1], "run");

    // The lab is gone: neither of its namespaces is left.
    let lab = v["lab"].as_str().expect("lab name");
    assert!(lab.starts_with("bench"), "{lab}");
    for ns in [format!("sluice-{lab}-s"), format!("sluice-{lab}-c")] {
        assert!(!sluice_lab::ns_exists(&ns), "{ns} left behind");
        assert!(!Path::new("/run/netns").join(&ns).exists(), "{ns} left behind");
    }
    let list = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(lab), "lab {lab} still listed:\n{list}");
}

/// `run tcp-echo` with both generators, briefly: every target answers,
/// nothing differs, the JSON has what the tables show.
#[test]
fn tcp_echo_smoke() {
    if !sluice_lab::root_or_skip("tcp_echo_smoke") {
        return;
    }
    let bench = env!("CARGO_BIN_EXE_sluice-bench");
    let sluiced = sluiced_next_to_us();
    let targets = if sluiced.is_some() { "sluice,kernel" } else { "kernel" };
    for (generator, extra) in [("afxdp", &["--rate", "5000"][..]), ("kernel", &["--rate", "none"][..])] {
        let json = std::env::temp_dir().join(format!("sluice-bench-tcp-smoke-{}-{generator}.json", std::process::id()));
        let mut cmd = Command::new(bench);
        cmd.args(["run", "tcp-echo", "--rounds", "1", "--duration", "1", "--warmup", "0.5", "--conns", "16"]);
        cmd.args(["--generator", generator, "--targets", targets]).args(extra).arg("--json").arg(&json);
        if let Some(p) = &sluiced {
            cmd.arg("--sluiced").arg(p);
        }
        let out = cmd.output().expect("run sluice-bench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{generator}: {}:\n{stdout}\n{stderr}", out.status);
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let _ = std::fs::remove_file(&json);
        for r in v["closed"].as_array().unwrap().iter().chain(v["open"].as_array().unwrap()) {
            assert!(r["error"].is_null(), "{generator}: {r}");
            assert!(r["per_s"].as_f64().unwrap_or(0.0) > 0.0, "{generator}: {r}");
            assert_eq!(r["mismatched"], 0, "{generator}: {r}");
        }
        if generator == "afxdp" {
            let open = v["open"].as_array().unwrap();
            assert!(!open.is_empty(), "open loop ran");
            for r in open {
                // Only the upper bound is a property of the code (the schedule
                // never sends ahead of itself); falling short of the rate is the
                // machine's business (a debug build on two busy cores), not a bug.
                assert_eq!(r["rate"].as_f64(), Some(5000.0), "{r}");
                let per_s = r["per_s"].as_f64().unwrap();
                assert!(per_s <= 5000.0 * 1.1, "the open loop sends ahead of its schedule: {r}");
            }
        }
    }
}
