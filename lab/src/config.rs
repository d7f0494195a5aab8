//! Lab configuration and its validation.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::addr::{check_lab_addr, is_network_or_broadcast, same_subnet, LAB_NET_PREFIX};
use crate::LabError;

/// Longest allowed lab name.
pub const MAX_NAME_LEN: usize = 12;

/// Most queues a lab veth may have.
pub const MAX_QUEUES: u32 = 128;

/// Longest Linux interface name (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Width of the base-36 process id in [`LabConfig::unique`] names (36^5 > 2^22, the pid limit).
const PID_WIDTH: usize = 5;

/// Prefix of every namespace a lab creates.
pub const NS_PREFIX: &str = "sluice-";

/// How a lab is built: names, queue count and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Unique suffix of the namespace names; `[a-z0-9-]`, at most 12 characters.
    pub name: String,
    /// Number of rx and tx queues on both ends of the veth.
    pub queues: u32,
    /// Interface name in the server namespace.
    pub server_if: String,
    /// Interface name in the client namespace.
    pub client_if: String,
    /// Address of the server interface (in 198.18.0.0/15).
    pub server_addr: Ipv4Addr,
    /// Address of the client interface (in 198.18.0.0/15).
    pub client_addr: Ipv4Addr,
    /// Prefix length of both addresses (15..=31, so the subnet stays inside 198.18.0.0/15).
    pub prefix_len: u8,
    /// Keep tx checksum offload on the client interface; when false (the default) the lab runs
    /// `ethtool -K <client_if> tx off` so the frames the server sees carry full checksums.
    pub client_tx_checksum_offload: bool,
}

impl LabConfig {
    /// A configuration with the given name and the defaults: 1 queue, `sluice0` (server,
    /// 198.18.0.2/24) and `sluice1` (client, 198.18.0.1/24), client tx checksum offload off.
    pub fn new(name: impl Into<String>) -> Self {
        LabConfig {
            name: name.into(),
            queues: 1,
            server_if: "sluice0".to_string(),
            client_if: "sluice1".to_string(),
            server_addr: Ipv4Addr::new(198, 18, 0, 2),
            client_addr: Ipv4Addr::new(198, 18, 0, 1),
            prefix_len: 24,
            client_tx_checksum_offload: false,
        }
    }

    /// A configuration whose name is built from `prefix`, the process id and a per-process
    /// counter, so concurrent tests and processes get distinct labs. Characters of `prefix`
    /// outside `[a-z0-9-]` are dropped and it is shortened so the name stays <= 12 characters.
    pub fn unique(prefix: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        LabConfig::new(unique_name(prefix, std::process::id(), count))
    }

    /// Sets the number of queues (builder style).
    pub fn with_queues(mut self, queues: u32) -> Self {
        self.queues = queues;
        self
    }

    /// The server namespace name, `sluice-{name}-s`.
    pub fn server_ns(&self) -> String {
        server_ns_name(&self.name)
    }

    /// The client namespace name, `sluice-{name}-c`.
    pub fn client_ns(&self) -> String {
        client_ns_name(&self.name)
    }

    /// Checks every field; [`crate::Lab::up`] calls this before touching the system.
    pub fn validate(&self) -> Result<(), LabError> {
        validate_name(&self.name)?;
        validate_queues(self.queues)?;
        validate_ifname(&self.server_if)?;
        validate_ifname(&self.client_if)?;
        self.validate_addrs()
    }

    fn validate_addrs(&self) -> Result<(), LabError> {
        check_lab_addr(self.server_addr)?;
        check_lab_addr(self.client_addr)?;
        if !(LAB_NET_PREFIX..=31).contains(&self.prefix_len) {
            return Err(LabError::InvalidConfig(format!(
                "prefix length {} must be between {LAB_NET_PREFIX} and 31 so the subnet stays \
                 inside 198.18.0.0/15",
                self.prefix_len
            )));
        }
        if self.server_addr == self.client_addr {
            return Err(LabError::InvalidConfig(format!(
                "server and client both use {}; give them different addresses",
                self.server_addr
            )));
        }
        if !same_subnet(self.server_addr, self.client_addr, self.prefix_len) {
            return Err(LabError::InvalidConfig(format!(
                "{} and {} are not in the same /{} subnet",
                self.server_addr, self.client_addr, self.prefix_len
            )));
        }
        for addr in [self.server_addr, self.client_addr] {
            if is_network_or_broadcast(addr, self.prefix_len) {
                return Err(LabError::InvalidConfig(format!(
                    "{addr} is the network or broadcast address of its /{} subnet",
                    self.prefix_len
                )));
            }
        }
        Ok(())
    }
}

/// `sluice-{name}-s`.
pub(crate) fn server_ns_name(name: &str) -> String {
    format!("{NS_PREFIX}{name}-s")
}

/// `sluice-{name}-c`.
pub(crate) fn client_ns_name(name: &str) -> String {
    format!("{NS_PREFIX}{name}-c")
}

/// Checks a lab name: 1..=12 characters from `[a-z0-9-]`.
pub fn validate_name(name: &str) -> Result<(), LabError> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("it is longer than {MAX_NAME_LEN} characters"))
    } else if !name.bytes().all(is_name_byte) {
        Some("only lowercase letters, digits and '-' are allowed".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LabError::InvalidName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

fn validate_queues(queues: u32) -> Result<(), LabError> {
    if (1..=MAX_QUEUES).contains(&queues) {
        Ok(())
    } else {
        Err(LabError::InvalidConfig(format!("queues is {queues}; it must be between 1 and {MAX_QUEUES}")))
    }
}

/// Checks an interface name: 1..=15 characters from `[A-Za-z0-9_.-]`, not starting with '-'.
fn validate_ifname(ifname: &str) -> Result<(), LabError> {
    let ok_chars = ifname.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let ok = !ifname.is_empty()
        && ifname.len() <= MAX_IFNAME_LEN
        && ok_chars
        && !ifname.starts_with('-')
        && ifname != "."
        && ifname != "..";
    if ok {
        Ok(())
    } else {
        Err(LabError::InvalidConfig(format!(
            "interface name {ifname:?} must be 1-{MAX_IFNAME_LEN} characters from [A-Za-z0-9_.-] \
             and not start with '-'"
        )))
    }
}

/// Builds `{prefix}{pid in base 36, 5 wide}{counter in base 36}`, shortening the prefix to fit.
fn unique_name(prefix: &str, pid: u32, count: u32) -> String {
    let pid = format!("{:0>width$}", base36(pid), width = PID_WIDTH);
    let count = base36(count);
    let room = MAX_NAME_LEN.saturating_sub(pid.len() + count.len());
    let prefix: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii() && is_name_byte(*c as u8))
        .take(room)
        .collect();
    let mut name = format!("{prefix}{pid}{count}");
    // A pid above 36^5 cannot happen on Linux (pid_max <= 2^22), but never exceed the limit.
    name.truncate(MAX_NAME_LEN);
    name
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        let cfg = LabConfig::new("t1");
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.server_ns(), "sluice-t1-s");
        assert_eq!(cfg.client_ns(), "sluice-t1-c");
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", "UPPER", "has space", "a/b", "thirteen-char", "x_y", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "lab-1", "twelve-chars"] {
            assert!(validate_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn unique_names_fit_and_differ() {
        let a = LabConfig::unique("a-very-long-prefix!");
        let b = LabConfig::unique("a-very-long-prefix!");
        assert_ne!(a.name, b.name);
        for cfg in [&a, &b] {
            assert!(cfg.name.len() <= MAX_NAME_LEN, "{}", cfg.name);
            assert!(validate_name(&cfg.name).is_ok(), "{}", cfg.name);
        }
        assert_eq!(unique_name("t", 4_194_304, 0).len(), 7);
        assert_eq!(unique_name("", u32::MAX, u32::MAX).len(), MAX_NAME_LEN);
        assert_eq!(unique_name("pre", 35, 37), "pre0000z11");
    }

    #[test]
    fn addresses_outside_198_18_are_refused() {
        let mut cfg = LabConfig::new("x");
        cfg.server_addr = Ipv4Addr::new(10, 0, 0, 2);
        assert!(matches!(cfg.validate(), Err(LabError::AddressOutOfRange { .. })));
        let mut cfg = LabConfig::new("x");
        cfg.client_addr = Ipv4Addr::new(192, 168, 1, 1);
        assert!(matches!(cfg.validate(), Err(LabError::AddressOutOfRange { .. })));
        let mut cfg = LabConfig::new("x");
        cfg.prefix_len = 8;
        assert!(cfg.validate().is_err(), "a /8 would leave 198.18.0.0/15");
    }

    #[test]
    fn other_fields_are_validated() {
        let mut cfg = LabConfig::new("x");
        cfg.queues = 0;
        assert!(cfg.validate().is_err());
        let mut cfg = LabConfig::new("x");
        cfg.server_if = "a-name-that-is-too-long".into();
        assert!(cfg.validate().is_err());
        let mut cfg = LabConfig::new("x");
        cfg.client_if = "-x".into();
        assert!(cfg.validate().is_err());
        let mut cfg = LabConfig::new("x");
        cfg.client_addr = cfg.server_addr;
        assert!(cfg.validate().is_err());
        let mut cfg = LabConfig::new("x");
        cfg.client_addr = Ipv4Addr::new(198, 18, 1, 1);
        assert!(cfg.validate().is_err(), "different /24");
        let mut cfg = LabConfig::new("x");
        cfg.client_addr = Ipv4Addr::new(198, 18, 0, 255);
        assert!(cfg.validate().is_err(), "broadcast");
    }
}
