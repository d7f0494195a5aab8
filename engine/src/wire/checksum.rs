//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! A checksum is computed in two steps: accumulate ones'-complement partial
//! sums with [`sum`] / [`pseudo_header_v4`] (partial sums may be added with
//! plain `+`), then [`finish`] them into the value written on the wire. A
//! received header verifies when the sum over all of it, checksum included,
//! folds to `0xFFFF`.
//!
//! Nothing here indexes out of bounds; no function panics.

use std::net::Ipv4Addr;

/// Ones'-complement sum of `data` read as big-endian 16-bit words; an odd
/// trailing byte is padded with a zero byte on the right.
///
/// The result is already folded to at most `0xFFFF`, so up to 65 536 partial
/// sums can be added with `+` before calling [`fold`] or [`finish`].
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u32
}

/// Folds the carries of a partial sum into 16 bits (not inverted).
pub fn fold(sum: u32) -> u16 {
    let mut s = sum;
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s as u16
}

/// Folds a partial sum and inverts it: the value to store in a checksum field.
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP checksums:
/// source and destination address, zero byte, protocol and the upper-layer
/// length (header plus payload).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16) + (s & 0xFFFF) + (d >> 16) + (d & 0xFFFF) + u32::from(proto) + u32::from(len)
}

/// Incrementally updates checksum `csum` after a 16-bit word of the covered
/// data changed from `old` to `new` (RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`).
///
/// The result verifies exactly as a full recomputation would; it may differ
/// from one only in the `0x0000`/`0xFFFF` representation of zero. Eqn. 3
/// yields 0x0000 when the new data sums to zero (e.g. an ICMP echo reply
/// with ident, sequence and data all zero), which would not verify; 0xFFFF
/// always does, so a zero result is returned as 0xFFFF.
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    nonzero(!fold(u32::from(!csum) + u32::from(!old) + u32::from(new)))
}

/// 0x0000 → 0xFFFF: the representation of a zero checksum that verifies
/// whatever the data (and that UDP reads as a checksum, not "none").
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xFFFF
    } else {
        c
    }
}

/// Like [`update_u16`] for an aligned 32-bit field (e.g. an IPv4 address)
/// changing from `old` to `new`.
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let hi = |v: u32| (v >> 16) as u16;
    let lo = |v: u32| v as u16;
    nonzero(!fold(
        u32::from(!csum) + u32::from(!hi(old)) + u32::from(!lo(old)) + u32::from(hi(new)) + u32::from(lo(new)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn incremental_update_to_all_zero_data_still_verifies() {
        // ICMP echo request, ident 0, seq 0, no data: checksum !0x0800.
        let mut msg = [8u8, 0, 0, 0, 0, 0, 0, 0];
        let c = finish(sum(&msg));
        assert_eq!(c, 0xF7FF);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        // Turn it into a reply: type 8 -> 0 in the first word.
        msg[0] = 0;
        let c2 = update_u16(c, 0x0800, 0x0000);
        msg[2..4].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(c2, 0xFFFF);
        assert_eq!(fold(sum(&msg)), 0xFFFF, "the reply verifies");
    }

    /// IPv4 header 198.18.0.1 -> 198.18.0.2, UDP, total length 33; checksum
    /// 0x925e computed independently.
    const IPV4_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x21, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x92, 0x5e, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
        0x00, 0x02,
    ];

    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), 0x220d);
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0xab]), 0x12 * 256 + 0x34 + 0xab00);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn real_ipv4_header() {
        assert_eq!(fold(sum(&IPV4_HEADER)), 0xffff);
        let mut hdr = IPV4_HEADER;
        hdr[10] = 0;
        hdr[11] = 0;
        assert_eq!(finish(sum(&hdr)), 0x925e);
    }

    #[test]
    fn pseudo_header_udp_example() {
        // UDP 198.18.0.1:40000 -> 198.18.0.2:7 "hello"; checksum 0x9392.
        let udp = [0x9c, 0x40, 0x00, 0x07, 0x00, 0x0d, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o'];
        let ph = pseudo_header_v4(Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2), 17, 13);
        assert_eq!(finish(ph + sum(&udp)), 0x9392);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 section 4: eqn. 3 yields 0x0000 here. The covered data is
        // not all zero, so 0x0000 and 0xFFFF both verify; we always return
        // 0xFFFF for zero, the form that also verifies over all-zero data.
        let c = update_u16(0xdd2f, 0x5555, 0x3285);
        assert_eq!(c, 0xFFFF);
        // The rest of the header sums to !0xdd2f - 0x5555 + 0x3285 in
        // ones' complement; with either checksum the total folds to 0xFFFF.
        let rest = fold(u32::from(!0xdd2fu16) + u32::from(!0x5555u16) + 0x3285);
        assert_eq!(fold(u32::from(rest) + u32::from(c)), 0xFFFF);
        assert_eq!(fold(u32::from(rest)), 0xFFFF, "so 0x0000 would verify too");
    }

    #[test]
    fn incremental_ttl_decrement() {
        let mut hdr = IPV4_HEADER;
        let csum = u16::from_be_bytes([hdr[10], hdr[11]]);
        let new = update_u16(csum, 0x4011, 0x3f11);
        hdr[8] = 0x3f;
        hdr[10..12].copy_from_slice(&new.to_be_bytes());
        assert_eq!(fold(sum(&hdr)), 0xffff);
    }

    /// Writes `csum` at word `at`, returns whether the buffer verifies.
    fn verifies_with(buf: &mut [u8], at: usize, csum: u16) -> bool {
        buf[at..at + 2].copy_from_slice(&csum.to_be_bytes());
        fold(sum(buf)) == 0xffff
    }

    /// Full recomputation of the checksum stored at `at`.
    fn recompute(buf: &mut [u8], at: usize) -> u16 {
        buf[at..at + 2].copy_from_slice(&[0, 0]);
        finish(sum(buf))
    }

    /// True when every byte except the checksum at `at` is zero. Eqn. 3
    /// then yields 0x0000, which cannot verify (the sum is +0, not -0); real
    /// headers are never all zero, so the property skips that input.
    fn covered_all_zero(buf: &[u8], at: usize) -> bool {
        buf.iter().enumerate().all(|(i, &b)| b == 0 || i == at || i == at + 1)
    }

    fn same_checksum(a: u16, b: u16) -> bool {
        a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
    }

    proptest! {
        #[test]
        fn incremental_u16_matches_full(
            mut buf in proptest::collection::vec(any::<u8>(), 4..256),
            csum_word in any::<prop::sample::Index>(),
            changed_word in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            let words = buf.len() / 2;
            let c = csum_word.index(words) * 2;
            let mut w = changed_word.index(words) * 2;
            if w == c {
                w = (w + 2) % (words * 2);
            }
            let csum = recompute(&mut buf, c);
            prop_assert!(verifies_with(&mut buf, c, csum));

            let old = u16::from_be_bytes([buf[w], buf[w + 1]]);
            buf[w..w + 2].copy_from_slice(&new.to_be_bytes());
            prop_assume!(!covered_all_zero(&buf, c));
            let inc = update_u16(csum, old, new);
            prop_assert!(verifies_with(&mut buf, c, inc));
            let full = recompute(&mut buf, c);
            prop_assert!(verifies_with(&mut buf, c, full));
            prop_assert!(same_checksum(inc, full), "inc {inc:#06x} full {full:#06x}");
        }

        #[test]
        fn incremental_u32_matches_full(
            mut buf in proptest::collection::vec(any::<u8>(), 8..256),
            field in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            // Checksum in word 0, the changed aligned 32-bit field after it.
            let quads = (buf.len() - 2) / 4;
            let f = 2 + field.index(quads) * 4;
            let csum = recompute(&mut buf, 0);
            let old = u32::from_be_bytes([buf[f], buf[f + 1], buf[f + 2], buf[f + 3]]);
            buf[f..f + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(!covered_all_zero(&buf, 0));
            let inc = update_u32(csum, old, new);
            prop_assert!(verifies_with(&mut buf, 0, inc));
            let full = recompute(&mut buf, 0);
            prop_assert!(verifies_with(&mut buf, 0, full));
            prop_assert!(same_checksum(inc, full));
        }
    }
}
