//! SipHash-2-4 (Aumasson and Bernstein), the keyed hash Linux uses for SYN
//! cookies, initial sequence numbers and timestamp offsets: an attacker who
//! does not know the key cannot predict or forge its output.

/// A SipHash-2-4 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipKey(pub u64, pub u64);

#[inline]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4 of `msg` under `k`.
pub fn siphash(k: SipKey, msg: &[u8]) -> u64 {
    let mut v = [
        k.0 ^ 0x736f_6d65_7073_6575,
        k.1 ^ 0x646f_7261_6e64_6f6d,
        k.0 ^ 0x6c79_6765_6e65_7261,
        k.1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut last = (msg.len() as u64 & 0xff) << 56;
    for (i, b) in rest.iter().enumerate() {
        last |= (*b as u64) << (8 * i);
    }
    v[3] ^= last;
    round(&mut v);
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_vectors() {
        // The paper's test key 00 01 .. 0f and messages 00 01 .. (n-1)
        // (vectors from the reference implementation, vectors.h).
        let k =
            SipKey(u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]), u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]));
        let msg: Vec<u8> = (0..64u8).collect();
        assert_eq!(siphash(k, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash(k, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash(k, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash(k, &msg[..15]), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash(k, &msg[..63]), 0x958a_324c_eb06_4572);
    }
}
