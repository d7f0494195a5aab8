//! What the end-to-end test files share: the lab, a running sluiced and
//! its stats. Each test binary uses part of it.
#![allow(dead_code)]
use sluice_engine::control::client;
use sluice_engine::control::protocol::{Command, ReplyBody, StatsSnapshot, Status};
use sluice_lab::{Lab, LabConfig, Side};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub static SERIAL: Mutex<()> = Mutex::new(());

pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn lab(prefix: &str, queues: u32) -> Lab {
    Lab::up(LabConfig::unique(prefix).with_queues(queues)).expect("lab up")
}

pub fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-e2e-{}-{name}", std::process::id()))
}

pub fn config_text(socket: &Path, extra_engine: &str) -> String {
    format!(
        r#"
[engine]
interface = "sluice0"
control_socket = "{}"
frames = 8192
{extra_engine}

[[service]]
name = "echo"
proto = "udp"
listen = "198.18.0.2:7"
kind = "echo"

[[service]]
name = "discard"
proto = "udp"
listen = "198.18.0.2:9"
kind = "discard"
"#,
        socket.display()
    )
}

/// A running sluiced in the lab's server namespace, stopped (SIGTERM, then
/// SIGKILL) by PID on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(lab: &Lab, name: &str, extra_engine: &str) -> Daemon {
        Self::start_with(lab, name, |socket| config_text(socket, extra_engine))
    }

    /// Starts with the config `text(control socket path)`.
    pub fn start_with(lab: &Lab, name: &str, text: impl FnOnce(&Path) -> String) -> Daemon {
        let socket = tmp(&format!("{name}.sock"));
        let cfg = tmp(&format!("{name}.toml"));
        let log = tmp(&format!("{name}.log"));
        std::fs::write(&cfg, text(&socket)).unwrap();
        let child = lab
            .command_in(Side::Server, env!("CARGO_BIN_EXE_sluiced"))
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn sluiced");
        let mut d = Daemon { child: Some(child), socket, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // Ready once the program is attached (the control socket answers
            // a moment before that).
            if let Ok(ReplyBody::Status(s)) = client::request(&d.socket, Command::Status, Duration::from_secs(2)) {
                if s.xdp_mode == "driver" || s.xdp_mode == "skb" {
                    return d;
                }
            }
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sluiced exited early ({st}):\n{}", d.log_text());
            }
            assert!(Instant::now() < deadline, "sluiced did not answer in 15 s:\n{}", d.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stats(&self) -> StatsSnapshot {
        match client::request(&self.socket, Command::Stats, Duration::from_secs(5)).expect("stats") {
            ReplyBody::Stats(s) => s,
            other => panic!("{other:?}"),
        }
    }

    /// Asks sluiced `cmd` over the control socket.
    pub fn request(&self, cmd: Command) -> ReplyBody {
        client::request(&self.socket, cmd, Duration::from_secs(5)).expect("control request")
    }

    pub fn status(&self) -> Status {
        match client::request(&self.socket, Command::Status, Duration::from_secs(5)).expect("status") {
            ReplyBody::Status(s) => s,
            other => panic!("{other:?}"),
        }
    }

    /// Sends `sig` and waits for the exit.
    pub fn stop_with(&mut self, sig: nix::sys::signal::Signal) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // It may have exited already (ESRCH); waiting below tells either way.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sluiced did not exit after {sig}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_with(nix::sys::signal::Signal::SIGTERM);
        }
        if std::thread::panicking() {
            eprintln!("--- sluiced log ---\n{}", self.log_text());
        }
    }
}

pub fn counter(s: &StatsSnapshot, core: Option<usize>, name: &str) -> u64 {
    let c = match core {
        Some(i) => &s.cores[i],
        None => &s.total,
    };
    c.counters.get(name).copied().unwrap_or(0)
}

/// A quiet engine: every frame is in exactly one place, none is in anyone's
/// hand, on the tx rings or waiting for them, and no token was ever leaked.
#[track_caller]
pub fn assert_quiet(s: &StatsSnapshot) {
    assert_eq!(s.frames.accounted, s.frames.total, "{:?}", s.frames);
    assert_eq!(s.frames.leaked, 0, "frame tokens leaked: {:?}", s.frames);
    for g in ["frames_in_hand", "frames_tx", "tx_backlog", "handoff_stash", "frames_held"] {
        assert_eq!(s.total.gauges.get(g).copied(), Some(0), "{g} when quiet: {:?}", s.total.gauges);
    }
    assert_eq!(s.frames.kernel_tx, 0, "frames the table still has lent for tx: {:?}", s.frames);
    // The cores' own count of frames lent for rx is the table's.
    assert_eq!(
        s.total.gauges.get("frames_rx").copied(),
        Some(s.frames.kernel_rx),
        "{:?} {:?}",
        s.frames,
        s.total.gauges
    );
    assert_eq!(s.frames.handoff_queued, 0);
}

pub fn xdp_attached(lab: &Lab) -> bool {
    let out = lab.command_in(Side::Server, "ip").args(["link", "show", "dev", "sluice0"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}
