//! ICMPv4 messages (RFC 792). The view covers the whole ICMP message (the
//! IPv4 payload), since the checksum spans all of it.
//!
//! Panic rule: accessors of a [`Packet`] built with [`Packet::new_unchecked`]
//! panic if the buffer is shorter than [`HEADER_LEN`]; after
//! [`Packet::new_checked`] succeeds no accessor or setter panics.

use super::checksum;
use super::{read_u16, write_u16, WireError};

/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of
/// type-specific data such as the echo identifier and sequence number).
pub const HEADER_LEN: usize = 8;

/// ICMP message types used by this engine.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const DATA: usize = 8;
}

/// A view of an ICMPv4 message over a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without any validation.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds [`HEADER_LEN`] bytes ([`WireError::Truncated`]).
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type (see [`msg_type`]).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Everything after the 8-byte header (echo data, or the offending
    /// datagram's header for error messages).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type (checksum untouched).
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message type and updates the checksum incrementally
    /// (RFC 1624), e.g. to turn an echo request into a reply in place.
    pub fn set_msg_type_incremental(&mut self, value: u8) {
        let code = u16::from(self.code());
        let old = (u16::from(self.msg_type()) << 8) | code;
        let new = (u16::from(value) << 8) | code;
        let csum = checksum::update_u16(self.checksum(), old, new);
        self.set_msg_type(value);
        self.set_checksum(csum);
    }

    /// Sets the message code.
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Mutable access to everything after the 8-byte header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes and stores the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let csum = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(csum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// Echo request id 0x1234 seq 1 data "abcdefgh"; checksum 0x5435 (and
    /// 0x5c35 for the matching reply), computed independently.
    const ECHO_REQUEST: [u8; 16] =
        [0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h'];

    /// IPv4 198.18.0.1 -> 198.18.0.2 carrying ECHO_REQUEST (checksum 0xefc1).
    const IP_ECHO: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x01, 0xef, 0xc1, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
        0x00, 0x02, // ip
        0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h',
    ];

    #[test]
    fn parse_echo_request() {
        let p = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x5435);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcdefgh");
        assert!(p.verify_checksum());
    }

    #[test]
    fn build_matches_literal() {
        let mut buf = [0u8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(msg_type::ECHO_REQUEST);
        p.set_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"abcdefgh");
        p.fill_checksum();
        assert_eq!(buf, ECHO_REQUEST);
    }

    #[test]
    fn echo_reply_in_place() {
        let mut buf = IP_ECHO;
        let mut ip = ipv4::Packet::new_checked(&mut buf[..]).unwrap();
        assert!(ip.verify_checksum());
        ip.swap_addrs();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), Ipv4Addr::new(198, 18, 0, 2));
        let mut icmp = Packet::new_checked(ip.payload_mut()).unwrap();
        icmp.set_msg_type_incremental(msg_type::ECHO_REPLY);
        assert_eq!(icmp.msg_type(), msg_type::ECHO_REPLY);
        assert_eq!(icmp.checksum(), 0x5c35);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn malformed() {
        assert_eq!(Packet::new_checked(&ECHO_REQUEST[..7]), Err(WireError::Truncated));
        let p = Packet::new_checked(&ECHO_REQUEST[..8]).unwrap();
        assert!(p.data().is_empty());
        let mut buf = ECHO_REQUEST;
        buf[15] ^= 0x40;
        assert!(!Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut buf in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(mut p) = Packet::new_checked(&mut buf[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.echo_ident());
                let _ = (p.echo_seq_no(), p.data().len(), p.verify_checksum());
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
                p.set_msg_type_incremental(p.msg_type() ^ 8);
                // RFC 1624 eqn. 3 cannot make an all-zero message verify.
                let all_zero = p.msg_type() == 0
                    && p.code() == 0
                    && p.echo_ident() == 0
                    && p.echo_seq_no() == 0
                    && p.data().iter().all(|&b| b == 0);
                prop_assert!(all_zero || p.verify_checksum());
                let _ = p.data_mut().len();
            }
        }
    }
}
