//! Loads the XDP steering program, fills its maps and attaches it.
//!
//! The program is attached through a bpf_link owned by this process, so the
//! kernel detaches it when the process exits for any reason (even SIGKILL):
//! a crash never leaves the interface black-holed. [`Steering::detach`] does
//! it early on a clean shutdown, before the workers drain.
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode};
use sluice_ebpf::abi::{self, ServiceKey, ServiceValue, XdpCounters};
use std::os::fd::AsRawFd;

/// Why steering could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    /// The object or program failed to load.
    #[error("loading the XDP program: {0} (needs root with CAP_BPF; is this kernel built with BPF?)")]
    Load(String),
    /// A map update failed.
    #[error("XDP map {map}: {detail}")]
    Map {
        /// Which map.
        map: &'static str,
        /// What failed.
        detail: String,
    },
    /// A BPF_PROG_TEST_RUN of the program failed (see [`Steering::test_run`]).
    #[error("test run of the XDP program: {0}")]
    TestRun(String),
    /// Attaching failed.
    #[error("attaching XDP to {interface}: {detail}")]
    Attach {
        /// Interface name.
        interface: String,
        /// What failed, with a hint.
        detail: String,
    },
}

/// The loaded program with its maps.
pub struct Steering {
    bpf: aya::Ebpf,
    xsks: XskMap<MapData>,
    services: BpfHashMap<MapData, [u8; ServiceKey::SIZE], [u8; ServiceValue::SIZE]>,
    link: Option<aya::programs::xdp::XdpLinkId>,
    mode: &'static str,
}

/// Reads the program's per-CPU counters; lives on the control thread.
pub struct XdpCounterReader {
    map: PerCpuArray<MapData, [u64; XdpCounters::FIELDS]>,
}

impl XdpCounterReader {
    /// The counters of every possible CPU.
    pub fn read(&self) -> Vec<XdpCounters> {
        match self.map.get(&0, 0) {
            Ok(values) => values.iter().map(|a| XdpCounters::from_array(*a)).collect(),
            Err(e) => {
                tracing::warn!("reading XDP counters: {e}");
                Vec::new()
            }
        }
    }

    /// The counters summed over every possible CPU (all zero if the map
    /// cannot be read; [`read`](Self::read) logs why).
    pub fn total(&self) -> XdpCounters {
        self.read().iter().fold(XdpCounters::default(), |sum, c| sum.add(c))
    }
}

/// `e` and its sources, joined by ": " (aya's syscall errors keep the errno
/// in their source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> SteeringError {
    move |e| SteeringError::Map { map, detail: e.to_string() }
}

impl Steering {
    /// Loads the embedded object and its program into the kernel (the
    /// verifier runs here) without attaching it; returns the counter reader
    /// separately so the control thread can own it.
    pub fn load() -> Result<(Self, XdpCounterReader), SteeringError> {
        let mut bpf = aya::Ebpf::load(sluice_ebpf::xdp_object()).map_err(|e| SteeringError::Load(e.to_string()))?;
        let prog: &mut Xdp = bpf
            .program_mut(abi::PROGRAM_NAME)
            .ok_or_else(|| SteeringError::Load(format!("no program {} in the object", abi::PROGRAM_NAME)))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| SteeringError::Load(e.to_string()))?;
        prog.load().map_err(|e| SteeringError::Load(format!("{e:#}")))?;
        let take = |bpf: &mut aya::Ebpf, name: &'static str| {
            bpf.take_map(name).ok_or_else(|| SteeringError::Map { map: name, detail: "missing from the object".into() })
        };
        let xsks = XskMap::try_from(take(&mut bpf, abi::MAP_XSKS)?).map_err(map_err(abi::MAP_XSKS))?;
        let services = BpfHashMap::try_from(take(&mut bpf, abi::MAP_SERVICES)?).map_err(map_err(abi::MAP_SERVICES))?;
        let counters = PerCpuArray::try_from(take(&mut bpf, abi::MAP_COUNTERS)?).map_err(map_err(abi::MAP_COUNTERS))?;
        Ok((Steering { bpf, xsks, services, link: None, mode: "none" }, XdpCounterReader { map: counters }))
    }

    /// Steers `key` to sluice.
    pub fn add_service(&mut self, key: ServiceKey, service_id: u32) -> Result<(), SteeringError> {
        let v = ServiceValue { service_id, flags: 0 };
        self.services.insert(key.to_bytes(), v.to_bytes(), 0).map_err(map_err(abi::MAP_SERVICES))
    }

    /// Points queue `queue` at the AF_XDP socket `fd`.
    pub fn set_socket(&mut self, queue: u32, fd: &impl AsRawFd) -> Result<(), SteeringError> {
        self.xsks.set(queue, fd.as_raw_fd(), 0).map_err(map_err(abi::MAP_XSKS))
    }

    /// Runs the loaded program once on `frame` with BPF_PROG_TEST_RUN, for
    /// tests; returns the program's return value (`XDP_PASS` = 2,
    /// `XDP_REDIRECT` = 4, ...). The program need not be attached, and the
    /// maps are the live ones, so the run moves the counters.
    ///
    /// `ctx` is an optional `struct xdp_md` (six native-endian u32: data,
    /// data_end, data_meta, ingress_ifindex, rx_queue_index,
    /// egress_ifindex), offsets counted from the start of `frame`. The kernel
    /// takes the first `data` bytes as metadata (a multiple of 4, at most
    /// 32), wants `data_end` at most `frame.len()` (older kernels: equal; on
    /// newer ones bytes past it form a fragment the program does not see
    /// directly), and looks `ingress_ifindex` up in the calling thread's
    /// network namespace. Without `ctx` the frame arrives on queue 0 of the
    /// namespace's loopback device. Fewer than 14 bytes of packet are
    /// refused (EINVAL) before the program runs.
    pub fn test_run(&self, frame: &[u8], ctx: Option<&[u8]>) -> Result<u32, SteeringError> {
        let prog: &Xdp = self
            .bpf
            .program(abi::PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| SteeringError::Load("program vanished".into()))?;
        let opts = TestRunOptions { data_in: Some(frame), ctx_in: ctx, repeat: 1, ..TestRunOptions::new() };
        let r = prog.test_run(opts).map_err(|e| SteeringError::TestRun(error_chain(&e)))?;
        Ok(r.return_value)
    }

    /// Attaches to `ifindex` in driver mode, falling back to generic (skb)
    /// mode when the driver has no XDP support.
    pub fn attach(&mut self, interface: &str, ifindex: u32) -> Result<(), SteeringError> {
        let prog: &mut Xdp = self
            .bpf
            .program_mut(abi::PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| SteeringError::Load("program vanished".into()))?;
        let attach_err = |e: aya::programs::ProgramError| {
            let s = format!("{e:#}");
            let hint = if s.contains("busy") || s.contains("EBUSY") || s.contains("os error 16") {
                " (another XDP program is attached: `ip link set dev IF xdp off` if it is stale)"
            } else {
                ""
            };
            SteeringError::Attach { interface: interface.to_string(), detail: format!("{s}{hint}") }
        };
        match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(id) => {
                self.link = Some(id);
                self.mode = "driver";
            }
            Err(driver_err) => {
                tracing::warn!("driver-mode XDP failed on {interface} ({driver_err}); trying generic mode");
                let id = prog.attach_to_if_index(ifindex, XdpMode::Skb).map_err(attach_err)?;
                self.link = Some(id);
                self.mode = "skb";
            }
        }
        Ok(())
    }

    /// "driver", "skb" or "none".
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// Detaches the program (idempotent). Dropping `Steering` does the same.
    pub fn detach(&mut self) {
        if let Some(id) = self.link.take() {
            if let Some(prog) = self.bpf.program_mut(abi::PROGRAM_NAME) {
                let prog: Result<&mut Xdp, _> = prog.try_into();
                if let Ok(prog) = prog {
                    if let Err(e) = prog.detach(id) {
                        tracing::warn!("detaching XDP: {e}");
                    }
                }
            }
            self.mode = "none";
        }
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        self.detach();
    }
}
