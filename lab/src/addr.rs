//! The address range that labs are allowed to use: 198.18.0.0/15 (RFC 2544 benchmarking).

use std::net::Ipv4Addr;

use crate::LabError;

/// Network address of the only range labs may use.
pub const LAB_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);

/// Prefix length of [`LAB_NET`].
pub const LAB_NET_PREFIX: u8 = 15;

/// The netmask for a prefix length (0..=32); longer prefixes are treated as 32.
pub fn netmask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

/// Whether `addr` lies in 198.18.0.0/15.
pub fn is_lab_addr(addr: Ipv4Addr) -> bool {
    let mask = netmask(LAB_NET_PREFIX);
    u32::from(addr) & mask == u32::from(LAB_NET)
}

/// Returns an error unless `addr` lies in 198.18.0.0/15.
pub fn check_lab_addr(addr: Ipv4Addr) -> Result<(), LabError> {
    if is_lab_addr(addr) {
        Ok(())
    } else {
        Err(LabError::AddressOutOfRange { addr })
    }
}

/// Whether `a` and `b` are in the same subnet of length `prefix_len`.
pub fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix_len: u8) -> bool {
    let mask = netmask(prefix_len);
    u32::from(a) & mask == u32::from(b) & mask
}

/// Whether `addr` is the network or broadcast address of its subnet (only for prefixes <= 30).
pub fn is_network_or_broadcast(addr: Ipv4Addr, prefix_len: u8) -> bool {
    if prefix_len > 30 {
        return false;
    }
    let mask = netmask(prefix_len);
    let host = u32::from(addr) & !mask;
    host == 0 || host == !mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_range_is_198_18_slash_15() {
        assert!(is_lab_addr(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(is_lab_addr(Ipv4Addr::new(198, 19, 255, 254)));
        assert!(!is_lab_addr(Ipv4Addr::new(198, 17, 255, 255)));
        assert!(!is_lab_addr(Ipv4Addr::new(198, 20, 0, 0)));
        assert!(!is_lab_addr(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!is_lab_addr(Ipv4Addr::LOCALHOST));
        assert!(check_lab_addr(Ipv4Addr::new(8, 8, 8, 8)).is_err());
    }

    #[test]
    fn subnet_helpers() {
        assert_eq!(netmask(24), 0xffff_ff00);
        assert_eq!(netmask(0), 0);
        assert_eq!(netmask(32), u32::MAX);
        let a = Ipv4Addr::new(198, 18, 0, 1);
        let b = Ipv4Addr::new(198, 18, 0, 2);
        assert!(same_subnet(a, b, 24));
        assert!(!same_subnet(a, Ipv4Addr::new(198, 18, 1, 2), 24));
        assert!(is_network_or_broadcast(Ipv4Addr::new(198, 18, 0, 0), 24));
        assert!(is_network_or_broadcast(Ipv4Addr::new(198, 18, 0, 255), 24));
        assert!(!is_network_or_broadcast(a, 24));
        assert!(!is_network_or_broadcast(Ipv4Addr::new(198, 18, 0, 0), 31));
    }
}
