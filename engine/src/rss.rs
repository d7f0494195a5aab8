//! The NIC's receive-side scaling, computed in user space: the Toeplitz
//! hash of a flow under the NIC's key, and the queue its indirection table
//! gives (what `ethtool -x IFACE` prints). With it the engine knows, before
//! a packet arrives, which queue (and so which core) a flow's packets will
//! come in on: an active open picks a local port whose replies land on the
//! opening core (no handoff of any of the connection's segments), and
//! `engine.flow_owner = "rss"` makes that queue the flow's fixed owner.
//!
//! veth has no RSS (the receiving queue is the sender's transmit queue), so
//! on the lab this is configured only to test it; on a NIC it must match
//! the NIC's settings, or every flow's packets are handed off.
use crate::ownership::FlowKey;

/// Bytes a key needs: 12 input bytes (IPv4 addresses and ports) and the
/// 32-bit window that slides over them.
pub const MIN_KEY_LEN: usize = 16;
/// The longest key a NIC uses (52 bytes on Intel's 700 series).
pub const MAX_KEY_LEN: usize = 52;

/// The Toeplitz hash of `input` under `key`, bit by bit (Microsoft's RSS
/// specification): for every set bit of the input, left to right, the 32
/// bits of the key starting at that bit's position are XORed into the
/// result. `key` must hold `input.len() + 4` bytes.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    assert!(key.len() >= input.len() + 4, "a {}-byte key for {} input bytes", key.len(), input.len());
    let mut result = 0u32;
    for (i, &b) in input.iter().enumerate() {
        for bit in 0..8 {
            if b & (0x80 >> bit) != 0 {
                result ^= window(key, i * 8 + bit);
            }
        }
    }
    result
}

/// The 32 bits of `key` from bit `pos` on.
fn window(key: &[u8], pos: usize) -> u32 {
    let (byte, shift) = (pos / 8, pos % 8);
    let five = u64::from_be_bytes([
        key[byte],
        key[byte + 1],
        key[byte + 2],
        key[byte + 3],
        key.get(byte + 4).copied().unwrap_or(0),
        0,
        0,
        0,
    ]);
    ((five << shift) >> 32) as u32
}

/// A NIC's RSS settings: its key (as tables, one per input byte, so a hash
/// is 12 lookups) and its indirection table.
#[derive(Clone)]
pub struct RssMap {
    /// `tables[i][v]`: the hash contribution of input byte `i` being `v`.
    tables: Box<[[u32; 256]; 12]>,
    indirection: Box<[u16]>,
    udp_l4: bool,
}

impl std::fmt::Debug for RssMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RssMap").field("indirection", &self.indirection.len()).field("udp_l4", &self.udp_l4).finish()
    }
}

impl RssMap {
    /// The settings of a NIC hashing with `key` into `indirection` (queue
    /// numbers); `udp_l4`: UDP is hashed with its ports (TCP always is,
    /// other protocols never are).
    pub fn new(key: &[u8], indirection: Vec<u16>, udp_l4: bool) -> Result<RssMap, String> {
        check_key(key)?;
        if indirection.is_empty() {
            return Err("an empty indirection table".into());
        }
        let mut tables = Box::new([[0u32; 256]; 12]);
        for (i, table) in tables.iter_mut().enumerate() {
            for (v, h) in table.iter_mut().enumerate() {
                let mut input = [0u8; 12];
                input[i] = v as u8;
                *h = toeplitz(&key[..MIN_KEY_LEN], &input);
            }
        }
        Ok(RssMap { tables, indirection: indirection.into_boxed_slice(), udp_l4 })
    }

    /// The hash of a 12-byte IPv4 input (`l4`) or of its first 8 (the
    /// addresses alone).
    fn hash(&self, input: &[u8; 12], l4: bool) -> u32 {
        let n = if l4 { 12 } else { 8 };
        let mut h = 0;
        for (i, &v) in input[..n].iter().enumerate() {
            h ^= self.tables[i][v as usize];
        }
        h
    }

    /// The RSS hash of `flow` as it arrives (remote to local).
    pub fn flow_hash(&self, flow: &FlowKey) -> u32 {
        let mut input = [0u8; 12];
        input[..4].copy_from_slice(&flow.src.octets());
        input[4..8].copy_from_slice(&flow.dst.octets());
        input[8..10].copy_from_slice(&flow.src_port.to_be_bytes());
        input[10..12].copy_from_slice(&flow.dst_port.to_be_bytes());
        let l4 = match flow.proto {
            6 => true,
            17 => self.udp_l4,
            _ => false,
        };
        self.hash(&input, l4)
    }

    /// The queue `flow`'s packets arrive on.
    #[inline]
    pub fn queue_of(&self, flow: &FlowKey) -> u16 {
        self.indirection[self.flow_hash(flow) as usize % self.indirection.len()]
    }
}

/// Whether `key` has a length a Toeplitz key of a NIC has.
pub fn check_key(key: &[u8]) -> Result<(), String> {
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err(format!("a {}-byte key: {MIN_KEY_LEN}..={MAX_KEY_LEN} bytes", key.len()));
    }
    Ok(())
}

/// Parses a key as `ethtool -x` prints it (`6d:5a:56:...`), or as plain
/// hex.
pub fn parse_key(s: &str) -> Result<Vec<u8>, String> {
    let hex: String = s.chars().filter(|c| !matches!(c, ':' | ' ' | '\n' | '\t')).collect();
    if let Some(c) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("{s:?}: not hex at {c:?}"));
    }
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return Err(format!("{:?} is not a key in hex (`6d:5a:...`, as `ethtool -x` prints it)", s));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| format!("{:?}: not hex at {:?}", s, &hex[i..i + 2]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Microsoft's default key, which the RSS verification suite (also in
    /// Intel's 82599 datasheet, 7.1.2.8.3) hashes with.
    const KEY: &str = "6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa";

    fn input(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> [u8; 12] {
        let mut i = [0u8; 12];
        i[..4].copy_from_slice(&src);
        i[4..8].copy_from_slice(&dst);
        i[8..10].copy_from_slice(&sport.to_be_bytes());
        i[10..].copy_from_slice(&dport.to_be_bytes());
        i
    }

    /// (source, destination, source port, destination port, IPv4 hash,
    /// IPv4 with TCP hash): one case of the verification suite.
    type Case = ([u8; 4], [u8; 4], u16, u16, u32, u32);

    const SUITE: [Case; 4] = [
        ([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766, 0x323e_8fc2, 0x51cc_c178),
        ([199, 92, 111, 2], [65, 69, 140, 83], 14230, 4739, 0xd718_262a, 0xc626_b0ea),
        ([24, 19, 198, 95], [12, 22, 207, 184], 12898, 38024, 0xd2d0_a5de, 0x5c2b_394a),
        ([38, 27, 205, 30], [209, 142, 163, 6], 48228, 2217, 0x8298_9176, 0xafc7_327f),
    ];

    #[test]
    fn the_verification_suite_hashes_as_published() {
        let key = parse_key(KEY).unwrap();
        assert_eq!(key.len(), 40);
        let map = RssMap::new(&key, vec![0], false).unwrap();
        for (src, dst, sport, dport, l3, l4) in SUITE {
            let i = input(src, dst, sport, dport);
            assert_eq!(toeplitz(&key, &i[..8]), l3, "{src:?} -> {dst:?}");
            assert_eq!(toeplitz(&key, &i), l4, "{src:?}:{sport} -> {dst:?}:{dport}");
            assert_eq!(map.hash(&i, false), l3);
            assert_eq!(map.hash(&i, true), l4);
            let tcp = FlowKey {
                proto: 6,
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                src_port: sport,
                dst_port: dport,
            };
            assert_eq!(map.flow_hash(&tcp), l4);
            assert_eq!(map.flow_hash(&FlowKey { proto: 17, ..tcp }), l3, "UDP by addresses unless udp_l4");
            assert_eq!(map.flow_hash(&FlowKey { proto: 1, ..tcp }), l3);
        }
    }

    #[test]
    fn a_repeated_two_byte_key_hashes_both_directions_alike() {
        let key: Vec<u8> = [0x6d, 0x5a].repeat(20);
        let map = RssMap::new(&key, (0..128).map(|i| i % 4).collect(), true).unwrap();
        for (src, dst, sport, dport, _, _) in SUITE {
            let there = FlowKey {
                proto: 6,
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                src_port: sport,
                dst_port: dport,
            };
            let back = FlowKey { proto: 6, src: there.dst, dst: there.src, src_port: dport, dst_port: sport };
            assert_eq!(map.flow_hash(&there), map.flow_hash(&back));
            assert_eq!(map.queue_of(&there), map.queue_of(&back));
        }
    }

    #[test]
    fn queues_follow_the_indirection_table() {
        let key = parse_key(KEY).unwrap();
        let table: Vec<u16> = (0..128).map(|i| (i % 3) as u16).collect();
        let map = RssMap::new(&key, table.clone(), false).unwrap();
        let mut seen = [0u32; 3];
        for port in 1024..4096u16 {
            let f = FlowKey {
                proto: 6,
                src: Ipv4Addr::new(198, 18, 0, 2),
                dst: Ipv4Addr::new(198, 18, 0, 1),
                src_port: 80,
                dst_port: port,
            };
            let h = toeplitz(&key, &input(f.src.octets(), f.dst.octets(), 80, port));
            assert_eq!(map.queue_of(&f), table[h as usize % 128]);
            seen[map.queue_of(&f) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "ports spread over the queues: {seen:?}");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        assert!(RssMap::new(&[0; 15], vec![0], false).unwrap_err().contains("15-byte key"));
        assert!(RssMap::new(&[0; 53], vec![0], false).is_err());
        assert!(RssMap::new(&[0; 40], vec![], false).unwrap_err().contains("indirection"));
        assert!(parse_key("6d:5").is_err());
        assert!(parse_key("zz").unwrap_err().contains("not hex"));
        assert!(parse_key("aéb").unwrap_err().contains("not hex"));
        assert!(parse_key("+a").unwrap_err().contains("not hex"));
        assert!(parse_key("").is_err());
        assert_eq!(parse_key("6D5a 01").unwrap(), vec![0x6d, 0x5a, 0x01]);
    }
}
