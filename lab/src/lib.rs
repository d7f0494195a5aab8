//! veth labs for sluice's tests and benchmarks.
//!
//! A [`Lab`] is two network namespaces, `sluice-{name}-s` (server) and `sluice-{name}-c`
//! (client), joined by one veth pair with a configurable number of queues and addressed from
//! the benchmarking range 198.18.0.0/15 (RFC 2544). Nothing else is reachable from inside, so
//! traffic in a lab can never leave the machine. A lab removes its namespaces when it is
//! dropped (also while unwinding from a panic) unless [`Lab::keep`] was called.
//!
//! ```no_run
//! use sluice_lab::{Lab, LabConfig};
//! # fn main() -> Result<(), sluice_lab::LabError> {
//! let lab = Lab::up(LabConfig::unique("doc").with_queues(2))?;
//! let socket = Lab::run_in(&lab.server_ns, || std::net::UdpSocket::bind("198.18.0.2:9000"))?;
//! # drop(socket);
//! # Ok(())
//! # }
//! ```

mod addr;
mod cmd;
mod config;
mod error;
mod netns;
mod status;

use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

pub use addr::{check_lab_addr, is_lab_addr, LAB_NET, LAB_NET_PREFIX};
pub use config::{validate_name, LabConfig, MAX_NAME_LEN, MAX_QUEUES, NS_PREFIX};
pub use error::LabError;
pub use netns::{current_netns, ns_exists, validate_ns_name, NETNS_DIR};
pub use status::{LabStatus, SideStatus};

/// How long [`Lab::up`] waits for both veth ends to report carrier.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(3);

/// One side of a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The namespace where the system under test (sluice or a baseline) runs.
    Server,
    /// The namespace where load generators run.
    Client,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Server => "server",
            Side::Client => "client",
        })
    }
}

/// Returns an error unless the process runs as root (needed to create namespaces and veths).
pub fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// For tests that need root: true when running as root. Otherwise, when the environment
/// variable `CI` is set the test fails (panics) so CI never silently skips; without `CI` it
/// prints one line saying why the test is skipped and returns false.
pub fn root_or_skip(test: &str) -> bool {
    match require_root() {
        Ok(()) => true,
        Err(err) if std::env::var_os("CI").is_some() => {
            panic!("{test}: CI is set but the test cannot run: {err}")
        }
        Err(err) => {
            // Written to the real stderr (not `eprintln!`) so the test harness does not
            // capture it: the skip must be visible.
            let _ = writeln!(std::io::stderr(), "skipping {test}: {err}");
            false
        }
    }
}

/// A running lab: two namespaces joined by a veth pair.
///
/// Dropping it removes the namespaces it created (which also removes the veth), unless
/// [`Lab::keep`] was called. Dropping never panics; failures are printed to stderr.
#[derive(Debug)]
pub struct Lab {
    /// The configuration the lab was built with (or, for [`Lab::attach`], discovered).
    pub config: LabConfig,
    /// The server namespace, `sluice-{name}-s`.
    pub server_ns: String,
    /// The client namespace, `sluice-{name}-c`.
    pub client_ns: String,
    keep: bool,
    /// Namespaces this value is responsible for removing (independent of the pub fields).
    owned: Vec<String>,
}

impl Lab {
    /// Builds a lab: both namespaces, the veth pair with `config.queues` rx and tx queues on
    /// each end, addresses, links up (and `lo`), and, unless `client_tx_checksum_offload`,
    /// `ethtool -K <client_if> tx off` in the client namespace.
    ///
    /// The configuration is validated before anything is touched. On any failure everything
    /// created so far is removed and the error names the failed command and its stderr.
    pub fn up(config: LabConfig) -> Result<Lab, LabError> {
        config.validate()?;
        require_root()?;
        let mut lab = Lab {
            server_ns: config.server_ns(),
            client_ns: config.client_ns(),
            config,
            keep: false,
            owned: Vec::new(),
        };
        for ns in [lab.server_ns.clone(), lab.client_ns.clone()] {
            lab.create_namespace(&ns)?;
        }
        lab.create_veth()?;
        lab.configure_side(Side::Server)?;
        lab.configure_side(Side::Client)?;
        if !lab.config.client_tx_checksum_offload {
            lab.disable_client_tx_offload()?;
        }
        lab.wait_links_up()?;
        Ok(lab)
    }

    /// Takes charge of an existing lab (one created with [`Lab::keep`]), e.g. to remove it
    /// with [`Lab::down`]. The configuration is read back from the namespaces where possible;
    /// what cannot be read keeps the defaults of [`LabConfig::new`]. A lab of which only one
    /// namespace is left is attached too, so it can be removed.
    pub fn attach(name: &str) -> Result<Lab, LabError> {
        validate_name(name)?;
        let mut config = LabConfig::new(name);
        let (server_ns, client_ns) = (config.server_ns(), config.client_ns());
        let owned: Vec<String> = [&server_ns, &client_ns].into_iter().filter(|ns| ns_exists(ns)).cloned().collect();
        if owned.is_empty() {
            return Err(LabError::NotFound { name: name.to_string(), ns: server_ns });
        }
        discover_side(&mut config, Side::Server, &server_ns);
        discover_side(&mut config, Side::Client, &client_ns);
        Ok(Lab { config, server_ns, client_ns, keep: false, owned })
    }

    /// Leaves the lab in place when this value is dropped (for `sluice-bench lab up`).
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }

    /// Whether [`Lab::keep`] was called.
    pub fn is_kept(&self) -> bool {
        self.keep
    }

    /// Removes both namespaces (which removes the veth), reporting failures.
    ///
    /// Without root nothing can be removed: the lab is left as it is and
    /// [`LabError::NotRoot`] returned.
    pub fn down(mut self) -> Result<(), LabError> {
        if let Err(err) = require_root() {
            self.keep = true;
            return Err(err);
        }
        let errors = self.remove_namespaces();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown { name: self.config.name.clone(), errors })
        }
    }

    /// Names of the labs that exist now (namespaces `sluice-{name}-s`/`-c` in
    /// `ip netns list`), sorted. Empty if `ip netns list` fails.
    pub fn list() -> Vec<String> {
        let out = cmd::run(&mut cmd::ip(&["netns", "list"])).unwrap_or_default();
        parse_lab_names(&out)
    }

    /// Interfaces, queue counts (from `/sys` via `ip netns exec`), link state and addresses.
    pub fn status(&self) -> Result<LabStatus, LabError> {
        Ok(LabStatus {
            name: self.config.name.clone(),
            server: status::side_status(Side::Server, &self.server_ns, &self.config.server_if)?,
            client: status::side_status(Side::Client, &self.client_ns, &self.config.client_if)?,
        })
    }

    /// `ip netns exec <ns> <program>` for the given side; add arguments and run it.
    pub fn command_in(&self, side: Side, program: &str) -> Command {
        cmd::exec_in(self.ns(side), program)
    }

    /// Runs `f` on a new scoped thread that first joined namespace `ns` with
    /// `setns(CLONE_NEWNET)` (opening `/run/netns/<ns>`): sockets created in `f`, and threads
    /// spawned from it, live in `ns`. The calling thread is not affected.
    ///
    /// Fails if `ns` is not a `sluice-…` namespace, does not exist, or cannot be joined.
    /// A panic in `f` is resumed on the caller.
    pub fn run_in<F, R>(ns: &str, f: F) -> Result<R, LabError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        netns::run_in(ns, f)
    }

    /// [`Lab::run_in`] for one side of this lab.
    pub fn run_on<F, R>(&self, side: Side, f: F) -> Result<R, LabError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        netns::run_in(self.ns(side), f)
    }

    /// The lab name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The namespace of `side`.
    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Server => &self.server_ns,
            Side::Client => &self.client_ns,
        }
    }

    /// The veth interface of `side`.
    pub fn interface(&self, side: Side) -> &str {
        match side {
            Side::Server => &self.config.server_if,
            Side::Client => &self.config.client_if,
        }
    }

    /// The address of `side`.
    pub fn addr(&self, side: Side) -> Ipv4Addr {
        match side {
            Side::Server => self.config.server_addr,
            Side::Client => self.config.client_addr,
        }
    }

    /// Number of rx queues of the server interface (as configured).
    pub fn server_rx_queues(&self) -> u32 {
        self.config.queues
    }

    /// Number of tx queues of the client interface (as configured).
    pub fn client_tx_queues(&self) -> u32 {
        self.config.queues
    }

    fn create_namespace(&mut self, ns: &str) -> Result<(), LabError> {
        if ns_exists(ns) {
            return Err(LabError::AlreadyExists { name: self.config.name.clone(), ns: ns.to_string() });
        }
        cmd::run(&mut cmd::ip(&["netns", "add", ns]))?;
        self.owned.push(ns.to_string());
        Ok(())
    }

    fn create_veth(&self) -> Result<(), LabError> {
        let q = self.config.queues.to_string();
        let c = &self.config;
        cmd::run(&mut cmd::ip_in(
            &self.server_ns,
            &[
                "link",
                "add",
                &c.server_if,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &c.client_if,
                "netns",
                &self.client_ns,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ],
        ))?;
        Ok(())
    }

    fn configure_side(&self, side: Side) -> Result<(), LabError> {
        let (ns, ifname) = (self.ns(side), self.interface(side));
        let cidr = format!("{}/{}", self.addr(side), self.config.prefix_len);
        cmd::run(&mut cmd::ip_in(ns, &["addr", "add", &cidr, "dev", ifname]))?;
        cmd::run(&mut cmd::ip_in(ns, &["link", "set", "lo", "up"]))?;
        cmd::run(&mut cmd::ip_in(ns, &["link", "set", ifname, "up"]))?;
        Ok(())
    }

    fn disable_client_tx_offload(&self) -> Result<(), LabError> {
        let mut cmd = self.command_in(Side::Client, "ethtool");
        cmd.args(["-K", &self.config.client_if, "tx", "off"]);
        cmd::run(&mut cmd)?;
        Ok(())
    }

    fn wait_links_up(&self) -> Result<(), LabError> {
        let deadline = Instant::now() + LINK_UP_TIMEOUT;
        for side in [Side::Server, Side::Client] {
            loop {
                let (admin_up, state) = status::link_state(self.ns(side), self.interface(side))?;
                if admin_up && state == "UP" {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(LabError::LinkNotUp {
                        ns: self.ns(side).to_string(),
                        interface: self.interface(side).to_string(),
                        state,
                        waited: LINK_UP_TIMEOUT,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Deletes the owned namespaces that still exist; returns one message per failure.
    fn remove_namespaces(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for ns in std::mem::take(&mut self.owned).iter().rev() {
            if validate_ns_name(ns).is_err() || !ns_exists(ns) {
                continue;
            }
            if let Err(err) = cmd::run(&mut cmd::ip(&["netns", "del", ns])) {
                errors.push(err.to_string());
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for err in self.remove_namespaces() {
            let _ = writeln!(std::io::stderr(), "sluice-lab: cleanup failed: {err}");
        }
    }
}

/// Fills `config` with what can be read back from one side of an existing lab.
fn discover_side(config: &mut LabConfig, side: Side, ns: &str) {
    if !ns_exists(ns) {
        return;
    }
    let Some(ifname) = status::veth_interfaces(ns).ok().and_then(|v| v.into_iter().next()) else {
        return;
    };
    let addr = status::addresses(ns, &ifname).ok().and_then(|v| v.into_iter().next());
    let queues = status::queue_counts(ns, &ifname).ok();
    match side {
        Side::Server => {
            if let Some((rx, _)) = queues.filter(|(rx, _)| *rx > 0) {
                config.queues = rx;
            }
            if let Some((a, p)) = addr {
                config.server_addr = a;
                config.prefix_len = p;
            }
            config.server_if = ifname;
        }
        Side::Client => {
            if let Some((a, _)) = addr {
                config.client_addr = a;
            }
            config.client_if = ifname;
        }
    }
}

/// Lab names from `ip netns list` output (lines like `sluice-x-s (id: 3)`).
fn parse_lab_names(out: &str) -> Vec<String> {
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|ns| {
            let rest = ns.strip_prefix(NS_PREFIX)?;
            let name = rest.strip_suffix("-s").or_else(|| rest.strip_suffix("-c"))?;
            validate_name(name).is_ok().then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests;
