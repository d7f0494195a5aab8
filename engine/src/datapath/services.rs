//! The configured services, by (protocol, address, port), and the addresses
//! sluice answers ICMP echo and ARP for. Built once at start; read-only on
//! the packet path.
use crate::config::{Config, Proto, ServiceKind};
use crate::wire::ethernet::EthernetAddress;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr};

/// A multiply-rotate hasher for the small integer keys of the service table
/// (the keys come from the config, not from the wire).
#[derive(Default)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

fn service_key(proto: u8, addr: Ipv4Addr, port: u16) -> u64 {
    (u32::from(addr) as u64) << 32 | (port as u64) << 8 | proto as u64
}

/// A configured service as the datapath needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Index in the configuration.
    pub id: u32,
    /// What it does.
    pub kind: ServiceKind,
}

/// The services and the addresses sluice answers for.
#[derive(Clone, Debug, Default)]
pub struct ServiceTable {
    by_key: HashMap<u64, ServiceEntry, BuildHasherDefault<IntHasher>>,
    addrs: Vec<Ipv4Addr>,
    arp_addrs: Vec<Ipv4Addr>,
    mac: EthernetAddress,
    /// Some entry has port 0 (every port of its address): lookups that miss
    /// try it.
    any_port: bool,
}

impl ServiceTable {
    /// The table of a validated configuration.
    pub fn from_config(cfg: &Config) -> Self {
        let mut t = ServiceTable::default();
        for (id, s) in cfg.services.iter().enumerate() {
            if let IpAddr::V4(a) = s.listen.ip() {
                t.by_key.insert(
                    service_key(s.proto.number(), a, s.listen.port()),
                    ServiceEntry { id: id as u32, kind: s.kind },
                );
            }
        }
        t.addrs = cfg.service_addrs();
        t
    }

    /// Adds a service by hand (sluice-bench's generator: its own source
    /// ports, so the replies to them reach its TCP).
    /// Port 0 takes every port of `addr` for `proto`.
    pub fn add(&mut self, proto: Proto, addr: Ipv4Addr, port: u16, entry: ServiceEntry) {
        self.any_port |= port == 0;
        self.by_key.insert(service_key(proto.number(), addr, port), entry);
    }

    /// The service on `addr:port` for `proto`.
    #[inline]
    pub fn lookup(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> Option<ServiceEntry> {
        let p = proto.number();
        match self.by_key.get(&service_key(p, addr, port)) {
            Some(e) => Some(*e),
            // Port 0: every port of the address (as the XDP program does;
            // only sluice-bench's generator adds such an entry).
            None if self.any_port => self.by_key.get(&service_key(p, addr, 0)).copied(),
            None => None,
        }
    }

    /// Makes sluice answer ARP requests for `addrs` (service addresses no
    /// local interface has) with `mac`, the interface's address.
    pub fn answer_arp(&mut self, addrs: Vec<Ipv4Addr>, mac: EthernetAddress) {
        self.arp_addrs = addrs;
        self.mac = mac;
    }

    /// The interface's MAC: frames to any other unicast address are not
    /// sluice's to answer, and replies carry this one.
    pub fn set_mac(&mut self, mac: EthernetAddress) {
        self.mac = mac;
    }

    /// The addresses sluice answers ARP for.
    pub fn arp_addrs(&self) -> &[Ipv4Addr] {
        &self.arp_addrs
    }

    /// The interface MAC (the source of every reply).
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// Whether sluice answers ARP requests for `addr`.
    #[inline]
    pub fn answers_arp_for(&self, addr: Ipv4Addr) -> bool {
        self.arp_addrs.contains(&addr)
    }

    /// Whether `addr` is a service address (answers ICMP echo).
    #[inline]
    pub fn is_service_addr(&self, addr: Ipv4Addr) -> bool {
        self.addrs.contains(&addr)
    }
}
