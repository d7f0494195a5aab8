//! IPv4 packets (RFC 791).
//!
//! Panic rule: accessors of a [`Packet`] built with [`Packet::new_unchecked`]
//! panic if the buffer is shorter than the header (or than `total_len` for
//! the payload); after [`Packet::new_checked`] succeeds no accessor or
//! setter panics, as long as setters do not change `header_len`/`total_len`
//! to values the buffer cannot hold.

use super::checksum;
use super::{read_u16, read_u32, write_u16, write_u32, WireError};
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1FFF;

/// A view of an IPv4 packet over a byte buffer. The buffer may extend past
/// `total_len` (e.g. Ethernet padding); those bytes are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without any validation.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates the buffer: at least 20 bytes ([`WireError::Truncated`]),
    /// version 4 ([`WireError::BadVersion`]), `20 <= header_len <= buffer`
    /// ([`WireError::BadHeaderLen`]) and
    /// `header_len <= total_len <= buffer` ([`WireError::BadTotalLen`]).
    /// The checksum is not checked.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(WireError::BadHeaderLen);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len || total_len > len {
            return Err(WireError::BadTotalLen);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    /// The DSCP/ECN byte (former type of service).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of header plus payload.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) * 8
    }

    /// Whether this packet is a fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Upper-layer protocol (see [`ip_proto`](super::ip_proto)).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::DST))
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.header())) == 0xFFFF
    }

    /// The whole header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// Raw option bytes (empty when `header_len` is 20).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Payload: bytes from `header_len` up to `total_len` (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0F) | (value << 4);
    }

    /// Sets the header length in bytes (stored as `len / 4`).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xF0) | ((len / 4) as u8 & 0x0F);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value);
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value);
    }

    /// Sets the fragment offset in bytes; the low three bits are dropped.
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let flags = self.flags_offset() & !OFFSET_MASK;
        write_u16(self.buffer.as_mut(), field::FLG_OFF, flags | (bytes / 8));
    }

    /// Sets the time to live (checksum untouched; see
    /// [`set_ttl_incremental`](Self::set_ttl_incremental)).
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the time to live and updates the header checksum incrementally
    /// (RFC 1624), so a valid checksum stays valid.
    pub fn set_ttl_incremental(&mut self, value: u8) {
        let protocol = u16::from(self.protocol());
        let old = (u16::from(self.ttl()) << 8) | protocol;
        let new = (u16::from(value) << 8) | protocol;
        let csum = checksum::update_u16(self.checksum(), old, new);
        self.set_ttl(value);
        self.set_checksum(csum);
    }

    /// Sets the upper-layer protocol.
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets the stored header checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::SRC, u32::from(addr));
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::DST, u32::from(addr));
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let csum = checksum::finish(checksum::sum(self.header()));
        self.set_checksum(csum);
    }

    /// Swaps source and destination addresses.
    pub fn swap_addrs(&mut self) {
        // The checksum is a ones'-complement sum of 16-bit words, and
        // addition is commutative: both addresses are word aligned, so
        // exchanging them only reorders the terms and leaves the sum (and
        // thus a valid checksum) unchanged.
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
    }

    /// Mutable header options (empty when `header_len` is 20).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Mutable payload, bounded by `total_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[start..end]
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let word = self.flags_offset();
        let word = if value { word | flag } else { word & !flag };
        write_u16(self.buffer.as_mut(), field::FLG_OFF, word);
    }
}

/// A validated, unfragmented IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Upper-layer protocol (see [`ip_proto`](super::ip_proto)).
    pub protocol: u8,
    /// Payload length in bytes (`total_len - header_len`).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Parses a packet, validating lengths first. With `verify_checksum` a
    /// wrong header checksum is [`WireError::BadChecksum`]; pass `false` to
    /// skip the check (e.g. when the NIC already verified it). Fragments are
    /// [`WireError::Unsupported`]; options are skipped.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, verify_checksum: bool) -> Result<Ipv4Repr, WireError> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(WireError::Unsupported);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
        })
    }

    /// Length of the header [`emit`](Self::emit) writes (20).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the whole packet: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (DSCP/ECN 0, ident 0, DF set, no options) and
    /// fills its checksum. The payload is not touched.
    ///
    /// Panics if the buffer is shorter than 20 bytes or if
    /// `payload_len > 65515` (the total length would not fit the field).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let total_len = u16::try_from(self.buffer_len()).expect("IPv4 payload_len exceeds 65515 bytes");
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp_ecn(0);
        packet.set_total_len(total_len);
        packet.set_ident(0);
        write_u16(packet.buffer.as_mut(), field::FLG_OFF, FLAG_DF);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip_proto;
    use proptest::prelude::*;

    const A1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const A2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// 198.18.0.1 -> 198.18.0.2 UDP, total length 33 (checksum 0x925e,
    /// computed independently), then 13 bytes of Ethernet padding.
    const PACKET: [u8; 46] = [
        0x45, 0x00, 0x00, 0x21, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x92, 0x5e, // header
        0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, // addresses
        0x9c, 0x40, 0x00, 0x07, 0x00, 0x0d, 0x93, 0x92, b'h', b'e', b'l', b'l', b'o', // udp
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    /// 198.18.0.1 -> 198.18.0.2 ICMP, ttl 64, checksum 0xefc1; with ttl 63
    /// the checksum is 0xf0c1 (both computed independently).
    const ICMP_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x24, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x01, 0xef, 0xc1, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
        0x00, 0x02,
    ];

    #[test]
    fn parse_fields() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 33);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_proto::UDP);
        assert_eq!(p.checksum(), 0x925e);
        assert_eq!(p.src_addr(), A1);
        assert_eq!(p.dst_addr(), A2);
        assert!(p.verify_checksum());
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &PACKET[20..33]);
        let repr = Ipv4Repr::parse(&p, true).unwrap();
        assert_eq!(repr, Ipv4Repr { src_addr: A1, dst_addr: A2, protocol: ip_proto::UDP, payload_len: 13, ttl: 64 });
        assert_eq!(repr.buffer_len(), 33);
        assert_eq!(repr.header_len(), 20);
    }

    #[test]
    fn build_with_setters_matches_literal() {
        let mut buf = [0u8; 33];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(33);
        p.set_ident(0x1c46);
        p.set_dont_frag(true);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_ttl(64);
        p.set_protocol(ip_proto::UDP);
        p.set_src_addr(A1);
        p.set_dst_addr(A2);
        p.fill_checksum();
        p.payload_mut().copy_from_slice(&PACKET[20..33]);
        assert_eq!(&buf[..], &PACKET[..33]);
    }

    #[test]
    fn emit_repr() {
        let repr = Ipv4Repr { src_addr: A1, dst_addr: A2, protocol: ip_proto::UDP, payload_len: 13, ttl: 64 };
        let mut buf = [0xaau8; 33];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        // Same as PACKET but ident 0; checksum 0xaea4 computed independently.
        let expected = [
            0x45, 0x00, 0x00, 0x21, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xae, 0xa4, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
            0x00, 0x02,
        ];
        assert_eq!(&buf[..20], &expected[..]);
        assert!(buf[20..].iter().all(|&b| b == 0xaa));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, true), Ok(repr));
    }

    #[test]
    fn ttl_incremental() {
        let mut buf = ICMP_HEADER;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        assert!(p.verify_checksum());
        p.set_ttl_incremental(63);
        assert_eq!(p.ttl(), 63);
        assert_eq!(p.checksum(), 0xf0c1);
        assert!(p.verify_checksum());
        for ttl in (0..=62u8).rev() {
            p.set_ttl_incremental(ttl);
            assert!(p.verify_checksum());
        }
    }

    #[test]
    fn swap_addrs_keeps_checksum() {
        let mut buf = PACKET;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.swap_addrs();
        assert_eq!((p.src_addr(), p.dst_addr()), (A2, A1));
        assert_eq!(p.checksum(), 0x925e);
        assert!(p.verify_checksum());
    }

    #[test]
    fn fragments() {
        let mut buf = PACKET;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.fill_checksum();
        assert_eq!(&buf[6..8], &[0x20, 185]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(Ipv4Repr::parse(&p, true), Err(WireError::Unsupported));
        // Last fragment: offset only.
        let mut buf = PACKET;
        buf[6..8].copy_from_slice(&[0x00, 0x01]);
        let p = Packet::new_unchecked(&buf[..]);
        assert!(p.is_fragment() && !p.more_frags());
        assert_eq!(p.frag_offset(), 8);
    }

    #[test]
    fn options_are_skipped() {
        // ihl 6: four NOP option bytes, then 4 payload bytes.
        let mut buf = [0u8; 28];
        buf[..20].copy_from_slice(&ICMP_HEADER);
        buf[0] = 0x46;
        buf[3] = 28;
        buf[20..24].copy_from_slice(&[1, 1, 1, 1]);
        buf[24..].copy_from_slice(b"data");
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.options(), &[1, 1, 1, 1]);
        assert_eq!(p.options_mut().len(), 4);
        assert_eq!(p.payload(), b"data");
        let repr = Ipv4Repr::parse(&p, true).unwrap();
        assert_eq!(repr.payload_len, 4);
    }

    #[test]
    fn malformed() {
        let err = |buf: &[u8]| Packet::new_checked(buf).unwrap_err();
        assert_eq!(err(&PACKET[..19]), WireError::Truncated);
        let mut b = PACKET;
        b[0] = 0x65;
        assert_eq!(err(&b), WireError::BadVersion);
        b[0] = 0x44;
        assert_eq!(err(&b), WireError::BadHeaderLen);
        b[0] = 0x4f; // 60 bytes > 46
        assert_eq!(err(&b), WireError::BadHeaderLen);
        let mut b = PACKET;
        b[3] = 19;
        assert_eq!(err(&b), WireError::BadTotalLen);
        b[3] = 47;
        assert_eq!(err(&b), WireError::BadTotalLen);
        assert_eq!(err(&PACKET[..32]), WireError::BadTotalLen);
        assert!(Packet::new_checked(&PACKET[..33]).is_ok());

        let mut b = PACKET;
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p, true), Err(WireError::BadChecksum));
        assert_eq!(Ipv4Repr::parse(&p, false).unwrap().payload_len, 13);
        let short = Packet::new_unchecked(&PACKET[..10]);
        assert_eq!(Ipv4Repr::parse(&short, false), Err(WireError::Truncated));
    }

    fn touch_all<T: AsRef<[u8]> + AsMut<[u8]>>(p: &mut Packet<T>) {
        let _ = (p.version(), p.header_len(), p.dscp_ecn(), p.total_len());
        let _ = (p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset());
        let _ = (p.is_fragment(), p.ttl(), p.protocol(), p.checksum());
        let _ = (p.src_addr(), p.dst_addr(), p.verify_checksum());
        let _ = (p.header().len(), p.options().len(), p.payload().len());
        let _ = Ipv4Repr::parse(p, true);
        let _ = Ipv4Repr::parse(p, false);
        p.set_ttl_incremental(p.ttl().wrapping_sub(1));
        p.swap_addrs();
        p.fill_checksum();
        let _ = (p.options_mut().len(), p.payload_mut().len());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            mut buf in proptest::collection::vec(any::<u8>(), 0..96),
            plausible in any::<bool>(),
        ) {
            if plausible && buf.len() >= 4 {
                // Raise the odds of passing check_len to exercise accessors.
                buf[0] = 0x40 | (buf[0] & 0x0F);
                let len = buf.len() as u16;
                buf[2..4].copy_from_slice(&len.to_be_bytes());
            }
            let _ = Ipv4Repr::parse(&Packet::new_unchecked(&buf[..]), true);
            if let Ok(mut p) = Packet::new_checked(&mut buf[..]) {
                touch_all(&mut p);
            }
        }
    }
}
