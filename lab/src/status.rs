//! Inspecting a lab: interfaces, queues, link state and addresses.

use std::fmt;
use std::net::Ipv4Addr;

use crate::cmd::{self, describe};
use crate::{LabError, Side};

/// The state of one side of a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideStatus {
    /// Which side this is.
    pub side: Side,
    /// The network namespace.
    pub namespace: String,
    /// The veth interface in that namespace.
    pub interface: String,
    /// Number of `rx-*` directories in `/sys/class/net/<if>/queues`.
    pub rx_queues: u32,
    /// Number of `tx-*` directories in `/sys/class/net/<if>/queues`.
    pub tx_queues: u32,
    /// Whether the interface is administratively up (`UP` flag).
    pub admin_up: bool,
    /// The operational state reported by `ip link` (`UP`, `DOWN`, `UNKNOWN`, …).
    pub oper_state: String,
    /// IPv4 addresses with their prefix lengths.
    pub addresses: Vec<(Ipv4Addr, u8)>,
}

impl SideStatus {
    /// Whether the link is usable: administratively up and operationally `UP`.
    pub fn link_up(&self) -> bool {
        self.admin_up && self.oper_state == "UP"
    }
}

/// The state of a whole lab, as shown by `sluice-bench lab status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStatus {
    /// The lab name.
    pub name: String,
    /// The server side.
    pub server: SideStatus,
    /// The client side.
    pub client: SideStatus,
}

impl fmt::Display for SideStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs: Vec<String> = self.addresses.iter().map(|(a, p)| format!("{a}/{p}")).collect();
        write!(
            f,
            "{:<6} {} {}: {} (admin {}), rx queues {}, tx queues {}, addresses [{}]",
            self.side.to_string(),
            self.namespace,
            self.interface,
            self.oper_state,
            if self.admin_up { "up" } else { "down" },
            self.rx_queues,
            self.tx_queues,
            addrs.join(", ")
        )
    }
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lab {}", self.name)?;
        writeln!(f, "  {}", self.server)?;
        write!(f, "  {}", self.client)
    }
}

/// Reads the status of `interface` in namespace `ns`.
pub(crate) fn side_status(side: Side, ns: &str, interface: &str) -> Result<SideStatus, LabError> {
    let (admin_up, oper_state) = link_state(ns, interface)?;
    let (rx_queues, tx_queues) = queue_counts(ns, interface)?;
    Ok(SideStatus {
        side,
        namespace: ns.to_string(),
        interface: interface.to_string(),
        rx_queues,
        tx_queues,
        admin_up,
        oper_state,
        addresses: addresses(ns, interface)?,
    })
}

/// `(admin up, operational state)` from `ip -o link show dev <if>`.
pub(crate) fn link_state(ns: &str, interface: &str) -> Result<(bool, String), LabError> {
    let mut cmd = cmd::ip_in(ns, &["-o", "link", "show", "dev", interface]);
    let out = cmd::run(&mut cmd)?;
    parse_link_line(&out).ok_or_else(|| LabError::Parse {
        command: describe(&cmd),
        detail: format!("no flags/state in {:?}", out.trim()),
    })
}

/// IPv4 addresses from `ip -o -4 addr show dev <if>`.
pub(crate) fn addresses(ns: &str, interface: &str) -> Result<Vec<(Ipv4Addr, u8)>, LabError> {
    let mut cmd = cmd::ip_in(ns, &["-o", "-4", "addr", "show", "dev", interface]);
    Ok(parse_addresses(&cmd::run(&mut cmd)?))
}

/// `(rx, tx)` queue counts from `ls /sys/class/net/<if>/queues`, run via `ip netns exec` so
/// that `/sys` shows the namespace's interfaces.
pub(crate) fn queue_counts(ns: &str, interface: &str) -> Result<(u32, u32), LabError> {
    let mut cmd = cmd::exec_in(ns, "ls");
    cmd.arg(format!("/sys/class/net/{interface}/queues"));
    Ok(parse_queue_listing(&cmd::run(&mut cmd)?))
}

/// Names of the veth interfaces in `ns`, from `ip -o link show type veth`.
pub(crate) fn veth_interfaces(ns: &str) -> Result<Vec<String>, LabError> {
    let mut cmd = cmd::ip_in(ns, &["-o", "link", "show", "type", "veth"]);
    Ok(parse_link_names(&cmd::run(&mut cmd)?))
}

fn parse_link_line(out: &str) -> Option<(bool, String)> {
    let line = out.lines().next()?;
    let flags = line.split_once('<')?.1.split_once('>')?.0;
    let admin_up = flags.split(',').any(|f| f == "UP");
    let mut words = line.split_whitespace();
    words.by_ref().find(|w| *w == "state")?;
    Some((admin_up, words.next()?.to_string()))
}

fn parse_addresses(out: &str) -> Vec<(Ipv4Addr, u8)> {
    let mut found = Vec::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if word != "inet" {
                continue;
            }
            let parsed = words.next().and_then(|cidr| {
                let (addr, len) = cidr.split_once('/')?;
                Some((addr.parse().ok()?, len.parse().ok()?))
            });
            found.extend(parsed);
        }
    }
    found
}

fn parse_queue_listing(out: &str) -> (u32, u32) {
    let count = |prefix: &str| {
        let n = out.split_whitespace().filter(|e| e.starts_with(prefix)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    (count("rx-"), count("tx-"))
}

fn parse_link_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| {
            let name = line.split(':').nth(1)?.trim();
            let name = name.split('@').next()?;
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "2: sluice0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue \
        state UP mode DEFAULT group default qlen 1000\\    link/ether 5e:2d:aa:bb:cc:dd brd \
        ff:ff:ff:ff:ff:ff link-netns sluice-x-c\n";

    #[test]
    fn parses_link_state() {
        assert_eq!(parse_link_line(LINK), Some((true, "UP".to_string())));
        let down = "3: sluice1@if2: <BROADCAST,MULTICAST> mtu 1500 state DOWN mode DEFAULT";
        assert_eq!(parse_link_line(down), Some((false, "DOWN".to_string())));
        assert_eq!(parse_link_line("garbage"), None);
    }

    #[test]
    fn parses_link_names() {
        assert_eq!(parse_link_names(LINK), vec!["sluice0".to_string()]);
        assert!(parse_link_names("").is_empty());
    }

    #[test]
    fn parses_addresses() {
        let out = "2: sluice0    inet 198.18.0.2/24 scope global sluice0\\       valid_lft \
                   forever preferred_lft forever\n";
        assert_eq!(parse_addresses(out), vec![(Ipv4Addr::new(198, 18, 0, 2), 24)]);
        assert!(parse_addresses("inet nonsense").is_empty());
    }

    #[test]
    fn counts_queues() {
        assert_eq!(parse_queue_listing("rx-0\nrx-1\ntx-0\ntx-1\ntx-2\n"), (2, 3));
        assert_eq!(parse_queue_listing(""), (0, 0));
    }
}
