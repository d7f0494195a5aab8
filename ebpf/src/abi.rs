//! Rust mirror of `c/sluice_abi.h`. Keep the two in step: the tests in
//! `lib.rs` compare these sizes with the maps of the compiled object.
use std::net::{IpAddr, Ipv4Addr};

/// Name of the XDP program in the object.
pub const PROGRAM_NAME: &str = "sluice_steer";
/// XSKMAP keyed by rx queue index.
pub const MAP_XSKS: &str = "xsks";
/// Hash map of [`ServiceKey`] → [`ServiceValue`].
pub const MAP_SERVICES: &str = "services";
/// Per-CPU array (one entry) of [`XdpCounters`].
pub const MAP_COUNTERS: &str = "counters";

/// `SLUICE_MAX_QUEUES`: entries of the XSKMAP.
pub const MAX_QUEUES: u32 = 64;
/// `SLUICE_MAX_SERVICES`: entries of the services map.
pub const MAX_SERVICES: u32 = 4096;

/// `SLUICE_KEY_ARP`: the `proto` of keys that steer ARP requests for a
/// service address the kernel does not own.
pub const KEY_ARP: u8 = 0;

/// Address family tag in [`ServiceKey::family`].
pub const FAMILY_IPV4: u8 = 4;
/// Address family tag for IPv6 (parsed and passed by the program for now).
pub const FAMILY_IPV6: u8 = 6;

/// `struct sluice_service_key`: which (family, protocol, address, port) is
/// steered to sluice. `port` is host order here; [`ServiceKey::to_bytes`]
/// writes it in network order as the program compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// IP protocol number (1 ICMP, 6 TCP, 17 UDP).
    pub proto: u8,
    /// Port in host byte order (0 for ICMP echo).
    pub port: u16,
    /// Address; IPv4 in the first four bytes, the rest zero.
    pub addr: [u8; 16],
}

impl ServiceKey {
    /// Size of the C struct.
    pub const SIZE: usize = 20;

    /// The key of a service on `addr:port` with protocol `proto`.
    pub fn new(proto: u8, addr: IpAddr, port: u16) -> Self {
        let mut a = [0u8; 16];
        let family = match addr {
            IpAddr::V4(v4) => {
                a[..4].copy_from_slice(&v4.octets());
                FAMILY_IPV4
            }
            IpAddr::V6(v6) => {
                a.copy_from_slice(&v6.octets());
                FAMILY_IPV6
            }
        };
        ServiceKey { family, proto, port, addr: a }
    }

    /// The key of ICMP echo requests to `addr`.
    pub fn icmp_echo(addr: Ipv4Addr) -> Self {
        Self::new(1, IpAddr::V4(addr), 0)
    }

    /// The key of ARP requests for `addr`.
    pub fn arp(addr: Ipv4Addr) -> Self {
        Self::new(KEY_ARP, IpAddr::V4(addr), 0)
    }

    /// The C layout: family, proto, port (network order), addr.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0] = self.family;
        b[1] = self.proto;
        b[2..4].copy_from_slice(&self.port.to_be_bytes());
        b[4..].copy_from_slice(&self.addr);
        b
    }
}

/// `struct sluice_service_value`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceValue {
    /// Index of the service in the engine's configuration.
    pub service_id: u32,
    /// Reserved, zero.
    pub flags: u32,
}

impl ServiceValue {
    /// Size of the C struct.
    pub const SIZE: usize = 8;

    /// The C layout in native byte order.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..4].copy_from_slice(&self.service_id.to_ne_bytes());
        b[4..].copy_from_slice(&self.flags.to_ne_bytes());
        b
    }
}

/// `struct sluice_xdp_counters`, one per CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Frames steered to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that are not for a service, handed to the kernel.
    pub passed: u64,
    /// Frames too short or with a bad header, handed to the kernel.
    pub malformed: u64,
    /// Service frames that arrived on a queue without a socket.
    pub no_socket: u64,
    /// IPv4 fragments, handed to the kernel.
    pub fragments: u64,
    /// IPv6 frames, handed to the kernel (IPv6 services come later).
    pub ipv6: u64,
    /// IPv4 packets with options, handed to the kernel.
    pub ip_options: u64,
    /// VLAN-tagged frames, handed to the kernel.
    pub vlan: u64,
}

impl XdpCounters {
    /// Number of u64 fields.
    pub const FIELDS: usize = 8;
    /// Size of the C struct.
    pub const SIZE: usize = Self::FIELDS * 8;

    /// From the map's value seen as `[u64; FIELDS]` in field order.
    pub fn from_array(a: [u64; Self::FIELDS]) -> Self {
        let [redirected, passed, malformed, no_socket, fragments, ipv6, ip_options, vlan] = a;
        XdpCounters { redirected, passed, malformed, no_socket, fragments, ipv6, ip_options, vlan }
    }

    /// Field names and values, in the C order.
    pub fn fields(&self) -> [(&'static str, u64); Self::FIELDS] {
        [
            ("redirected", self.redirected),
            ("passed", self.passed),
            ("malformed", self.malformed),
            ("no_socket", self.no_socket),
            ("fragments", self.fragments),
            ("ipv6", self.ipv6),
            ("ip_options", self.ip_options),
            ("vlan", self.vlan),
        ]
    }

    /// Field-wise sum.
    pub fn add(&self, o: &Self) -> Self {
        XdpCounters {
            redirected: self.redirected + o.redirected,
            passed: self.passed + o.passed,
            malformed: self.malformed + o.malformed,
            no_socket: self.no_socket + o.no_socket,
            fragments: self.fragments + o.fragments,
            ipv6: self.ipv6 + o.ipv6,
            ip_options: self.ip_options + o.ip_options,
            vlan: self.vlan + o.vlan,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_key_bytes_put_the_port_in_network_order() {
        let k = ServiceKey::new(17, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 7);
        let b = k.to_bytes();
        assert_eq!(b[..4], [4, 17, 0, 7]);
        assert_eq!(b[4..8], [198, 18, 0, 2]);
        assert!(b[8..].iter().all(|&x| x == 0));
    }

    #[test]
    fn arp_key_has_proto_zero_and_the_target_address() {
        let b = ServiceKey::arp(Ipv4Addr::new(198, 18, 0, 3)).to_bytes();
        assert_eq!(b[..8], [4, 0, 0, 0, 198, 18, 0, 3]);
    }

    #[test]
    fn icmp_key_has_port_zero() {
        let b = ServiceKey::icmp_echo(Ipv4Addr::new(198, 18, 0, 2)).to_bytes();
        assert_eq!(b[..4], [4, 1, 0, 0]);
    }
}
