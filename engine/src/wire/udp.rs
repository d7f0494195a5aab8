//! UDP datagrams (RFC 768) over IPv4.
//!
//! Panic rule: accessors of a [`Datagram`] built with
//! [`Datagram::new_unchecked`] panic if the buffer is shorter than the header
//! (or than the length field, for the payload and checksum); after
//! [`Datagram::new_checked`] succeeds no accessor or setter panics, as long
//! as `set_len` is not given a length the buffer cannot hold.

use super::checksum;
use super::{ip_proto, read_u16, write_u16, WireError};
use std::net::Ipv4Addr;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// A view of a UDP datagram over a byte buffer. The buffer may extend past
/// the length field; those bytes are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Datagram<T> {
    /// Wraps `buffer` without any validation.
    pub const fn new_unchecked(buffer: T) -> Datagram<T> {
        Datagram { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Datagram<T>, WireError> {
        let datagram = Self::new_unchecked(buffer);
        datagram.check_len()?;
        Ok(datagram)
    }

    /// Checks the buffer holds the header ([`WireError::Truncated`]) and
    /// that `8 <= len <= buffer` ([`WireError::BadTotalLen`]).
    pub fn check_len(&self) -> Result<(), WireError> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN || len > buf_len {
            return Err(WireError::BadTotalLen);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field: header plus payload, in bytes.
    #[allow(clippy::len_without_is_empty)] // a header field, not a collection
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Checksum as stored (0 means "no checksum").
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Payload, bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.len())]
    }

    /// Whether the checksum is correct for the given IPv4 addresses. A
    /// stored checksum of 0 means the sender computed none and is accepted.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        checksum::fold(self.checksum_sum(src, dst)) == 0xFFFF
    }

    /// Pseudo-header plus datagram partial sum.
    fn checksum_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let len = self.len();
        let bytes = &self.buffer.as_ref()[..usize::from(len)];
        checksum::pseudo_header_v4(src, dst, ip_proto::UDP, len) + checksum::sum(bytes)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Datagram<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field (header plus payload).
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Swaps source and destination ports. A valid checksum stays valid:
    /// the ones'-complement sum does not depend on word order.
    pub fn swap_ports(&mut self) {
        let (src, dst) = (self.src_port(), self.dst_port());
        self.set_src_port(dst);
        self.set_dst_port(src);
    }

    /// Mutable payload, bounded by the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }

    /// Computes and stores the checksum over the pseudo-header and the
    /// datagram (up to the length field). A computed 0 is sent as 0xFFFF,
    /// since 0 on the wire means "no checksum".
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let csum = match checksum::finish(self.checksum_sum(src, dst)) {
            0 => 0xFFFF,
            csum => csum,
        };
        self.set_checksum(csum);
    }
}

/// A validated UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes (length field minus 8).
    pub payload_len: usize,
}

impl UdpRepr {
    /// Parses a datagram, validating lengths first. With `verify_checksum`
    /// a wrong checksum is [`WireError::BadChecksum`] (a stored 0 is
    /// accepted); pass `false` to skip the check.
    pub fn parse<T: AsRef<[u8]>>(
        datagram: &Datagram<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<UdpRepr, WireError> {
        datagram.check_len()?;
        if verify_checksum && !datagram.verify_checksum(src, dst) {
            return Err(WireError::BadChecksum);
        }
        Ok(UdpRepr {
            src_port: datagram.src_port(),
            dst_port: datagram.dst_port(),
            payload_len: usize::from(datagram.len()) - HEADER_LEN,
        })
    }

    /// Length of the header (8).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the whole datagram: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header and fills the checksum. The payload must already be
    /// in place at `HEADER_LEN..buffer_len()` of the buffer (write it there
    /// first, e.g. into the raw buffer), as the checksum covers it.
    ///
    /// Panics if the buffer is shorter than [`buffer_len`](Self::buffer_len)
    /// or if `payload_len > 65527`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, datagram: &mut Datagram<T>, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = u16::try_from(self.buffer_len()).expect("UDP payload_len exceeds 65527 bytes");
        datagram.set_src_port(self.src_port);
        datagram.set_dst_port(self.dst_port);
        datagram.set_len(len);
        datagram.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ethernet, ipv4, EthernetAddress};
    use proptest::prelude::*;

    const A1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const A2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// Minimum-size Ethernet frame: IPv4 198.18.0.1:40000 -> 198.18.0.2:7,
    /// UDP payload "hello", then 13 bytes of padding. IPv4 checksum 0x925e,
    /// UDP checksum 0x9392 (computed independently).
    const FRAME: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, // eth
        0x45, 0x00, 0x00, 0x21, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x92, 0x5e, // ipv4
        0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, // addresses
        0x9c, 0x40, 0x00, 0x07, 0x00, 0x0d, 0x93, 0x92, // udp
        b'h', b'e', b'l', b'l', b'o', // payload
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    #[test]
    fn parse_full_frame() {
        let eth = ethernet::Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(eth.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(eth.ethertype(), ethernet::ethertype::IPV4);
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        let ip_repr = ipv4::Ipv4Repr::parse(&ip, true).unwrap();
        assert_eq!((ip_repr.src_addr, ip_repr.dst_addr), (A1, A2));
        assert_eq!(ip_repr.protocol, ip_proto::UDP);
        let udp = Datagram::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.src_port(), 40000);
        assert_eq!(udp.dst_port(), 7);
        assert_eq!(udp.len(), 13);
        assert_eq!(udp.checksum(), 0x9392);
        assert_eq!(udp.payload(), b"hello");
        assert!(udp.verify_checksum(A1, A2));
        assert!(!udp.verify_checksum(A2, Ipv4Addr::new(198, 19, 0, 2)));
        let repr = UdpRepr::parse(&udp, A1, A2, true).unwrap();
        assert_eq!(repr, UdpRepr { src_port: 40000, dst_port: 7, payload_len: 5 });
        assert_eq!(repr.buffer_len(), 13);
        assert_eq!(repr.header_len(), 8);
    }

    #[test]
    fn emit_full_frame() {
        let mut buf = [0u8; 60];
        let mut eth = ethernet::Frame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(EthernetAddress([2, 0, 0, 0, 0, 2]));
        eth.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        eth.set_ethertype(ethernet::ethertype::IPV4);
        let udp_repr = UdpRepr { src_port: 40000, dst_port: 7, payload_len: 5 };
        let ip_repr = ipv4::Ipv4Repr {
            src_addr: A1,
            dst_addr: A2,
            protocol: ip_proto::UDP,
            payload_len: udp_repr.buffer_len(),
            ttl: 64,
        };
        let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
        ip_repr.emit(&mut ip);
        ip.set_ident(0x1c46);
        ip.fill_checksum();
        let udp_buf = ip.payload_mut();
        udp_buf[HEADER_LEN..].copy_from_slice(b"hello");
        udp_repr.emit(&mut Datagram::new_unchecked(udp_buf), A1, A2);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn swap_ports_keeps_checksum() {
        let mut buf = FRAME;
        let mut udp = Datagram::new_checked(&mut buf[34..]).unwrap();
        udp.swap_ports();
        assert_eq!((udp.src_port(), udp.dst_port()), (7, 40000));
        assert_eq!(udp.checksum(), 0x9392);
        assert!(udp.verify_checksum(A2, A1));
        udp.payload_mut()[0] = b'j';
        assert!(!udp.verify_checksum(A2, A1));
    }

    #[test]
    fn zero_checksum() {
        // Stored 0: "no checksum", accepted whatever the contents.
        let mut buf = FRAME;
        buf[40..42].copy_from_slice(&[0, 0]);
        let udp = Datagram::new_checked(&buf[34..]).unwrap();
        assert!(udp.verify_checksum(A1, A2));
        assert!(UdpRepr::parse(&udp, A1, A2, true).is_ok());

        // Choose the last payload word so the computed checksum is 0: it
        // must then be sent as 0xFFFF.
        let mut buf = [0u8; 10];
        let mut udp = Datagram::new_unchecked(&mut buf[..]);
        udp.set_src_port(40000);
        udp.set_dst_port(7);
        udp.set_len(10);
        udp.fill_checksum(A1, A2);
        let filler = udp.checksum();
        udp.payload_mut().copy_from_slice(&filler.to_be_bytes());
        udp.fill_checksum(A1, A2);
        assert_eq!(udp.checksum(), 0xffff);
        assert!(udp.verify_checksum(A1, A2));
    }

    #[test]
    fn malformed() {
        let udp = &FRAME[34..];
        assert_eq!(Datagram::new_checked(&udp[..7]), Err(WireError::Truncated));
        assert_eq!(Datagram::new_checked(&udp[..12]), Err(WireError::BadTotalLen));
        let mut buf = FRAME;
        buf[39] = 7;
        assert_eq!(Datagram::new_checked(&buf[34..]), Err(WireError::BadTotalLen));
        buf[38..40].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(Datagram::new_checked(&buf[34..]), Err(WireError::BadTotalLen));

        let mut buf = FRAME;
        buf[46] ^= 0x20; // corrupt payload
        let udp = Datagram::new_checked(&buf[34..]).unwrap();
        assert_eq!(UdpRepr::parse(&udp, A1, A2, true), Err(WireError::BadChecksum));
        assert!(UdpRepr::parse(&udp, A1, A2, false).is_ok());
        let short = Datagram::new_unchecked(&FRAME[34..38]);
        assert_eq!(UdpRepr::parse(&short, A1, A2, false), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            mut buf in proptest::collection::vec(any::<u8>(), 0..48),
            plausible in any::<bool>(),
        ) {
            if plausible && buf.len() >= 6 {
                let len = buf.len() as u16;
                buf[4..6].copy_from_slice(&len.to_be_bytes());
            }
            let _ = UdpRepr::parse(&Datagram::new_unchecked(&buf[..]), A1, A2, true);
            if let Ok(mut d) = Datagram::new_checked(&mut buf[..]) {
                let _ = (d.src_port(), d.dst_port(), d.len(), d.checksum());
                let _ = (d.payload().len(), d.verify_checksum(A1, A2));
                let _ = UdpRepr::parse(&d, A1, A2, true);
                d.swap_ports();
                d.fill_checksum(A1, A2);
                prop_assert!(d.verify_checksum(A1, A2));
                prop_assert_ne!(d.checksum(), 0);
                let _ = d.payload_mut().len();
            }
        }
    }
}
