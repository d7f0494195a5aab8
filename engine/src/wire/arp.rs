//! ARP for IPv4 over Ethernet (RFC 826); other hardware/protocol
//! combinations are rejected as [`WireError::Unsupported`].
//!
//! Panic rule: accessors of a [`Packet`] built with [`Packet::new_unchecked`]
//! panic if the buffer is shorter than [`PACKET_LEN`]; after
//! [`Packet::new_checked`] succeeds no accessor or setter panics.

use super::{read_u16, read_u32, write_u16, write_u32, EthernetAddress, WireError};
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet. Trailing bytes (Ethernet padding)
/// are ignored.
pub const PACKET_LEN: usize = 28;

/// ARP hardware type for Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

/// ARP protocol type for IPv4 (same value as the EtherType).
pub const PROTOCOL_IPV4: u16 = super::ethernet::ethertype::IPV4;

mod field {
    use std::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Operation {
    /// Who has `target_proto_addr`? (1)
    Request = 1,
    /// `sender_proto_addr` is at `sender_hw_addr`. (2)
    Reply = 2,
}

impl Operation {
    /// Decodes a raw operation field; `None` for anything but 1 and 2.
    pub fn from_u16(value: u16) -> Option<Operation> {
        match value {
            1 => Some(Operation::Request),
            2 => Some(Operation::Reply),
            _ => None,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet over a byte buffer.
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

    /// Checks the buffer holds [`PACKET_LEN`] bytes ([`WireError::Truncated`])
    /// and that the packet is Ethernet/IPv4 with address lengths 6 and 4
    /// ([`WireError::Unsupported`]).
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if self.hardware_type() != HARDWARE_ETHERNET
            || self.protocol_type() != PROTOCOL_IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 for IPv4).
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length in bytes.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length in bytes.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Raw operation field (1 request, 2 reply; see [`Operation`]).
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    pub fn sender_hw_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address.
    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::SPA))
    }

    /// Target hardware address.
    pub fn target_hw_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address.
    pub fn target_proto_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value);
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the raw operation field.
    pub fn set_operation(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::OPER, value);
    }

    /// Sets the sender hardware address.
    pub fn set_sender_hw_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_proto_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::SPA, u32::from(addr));
    }

    /// Sets the target hardware address.
    pub fn set_target_hw_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_proto_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::TPA, u32::from(addr));
    }
}

/// A validated Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: Operation,
    /// Hardware address of the sender.
    pub sender_hw_addr: EthernetAddress,
    /// IPv4 address of the sender.
    pub sender_proto_addr: Ipv4Addr,
    /// Hardware address of the target (zero in requests).
    pub target_hw_addr: EthernetAddress,
    /// IPv4 address of the target.
    pub target_proto_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a packet, validating it first; an operation other than
    /// request/reply is [`WireError::Unsupported`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<ArpRepr, WireError> {
        packet.check_len()?;
        let operation = Operation::from_u16(packet.operation()).ok_or(WireError::Unsupported)?;
        Ok(ArpRepr {
            operation,
            sender_hw_addr: packet.sender_hw_addr(),
            sender_proto_addr: packet.sender_proto_addr(),
            target_hw_addr: packet.target_hw_addr(),
            target_proto_addr: packet.target_proto_addr(),
        })
    }

    /// Bytes needed to emit this message ([`PACKET_LEN`]).
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes every field of the packet. Panics if the buffer is shorter
    /// than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(PROTOCOL_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation as u16);
        packet.set_sender_hw_addr(self.sender_hw_addr);
        packet.set_sender_proto_addr(self.sender_proto_addr);
        packet.set_target_hw_addr(self.target_hw_addr);
        packet.set_target_proto_addr(self.target_proto_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Who has 198.18.0.2? Tell 198.18.0.1 — followed by 18 bytes of
    /// Ethernet padding, as received in a minimum-size frame.
    const REQUEST: [u8; 46] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x01, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x02, // target
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// 198.18.0.2 is at 02:00:00:00:00:02.
    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // eth/ipv4, reply
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc6, 0x12, 0x00, 0x02, // sender
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x01, // target
    ];

    const A1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const A2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const M1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const M2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), 1);
        let repr = ArpRepr::parse(&p).unwrap();
        assert_eq!(
            repr,
            ArpRepr {
                operation: Operation::Request,
                sender_hw_addr: M1,
                sender_proto_addr: A1,
                target_hw_addr: EthernetAddress([0; 6]),
                target_proto_addr: A2,
            }
        );
    }

    #[test]
    fn emit_reply_matches_literal() {
        let repr = ArpRepr {
            operation: Operation::Reply,
            sender_hw_addr: M2,
            sender_proto_addr: A2,
            target_hw_addr: M1,
            target_proto_addr: A1,
        };
        let mut buf = [0xffu8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REPLY);
        assert_eq!(repr.buffer_len(), 28);
        assert_eq!(ArpRepr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn reply_in_place_via_setters() {
        let mut buf = REQUEST;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_operation(Operation::Reply as u16);
        p.set_target_hw_addr(p.sender_hw_addr());
        p.set_target_proto_addr(p.sender_proto_addr());
        p.set_sender_hw_addr(M2);
        p.set_sender_proto_addr(A2);
        assert_eq!(&buf[..28], &REPLY[..]);
    }

    #[test]
    fn malformed() {
        assert_eq!(Packet::new_checked(&REQUEST[..27]), Err(WireError::Truncated));
        for (at, value) in [(1, 6), (3, 0xdd), (4, 8), (5, 16)] {
            let mut buf = REQUEST;
            buf[at] = value;
            assert_eq!(Packet::new_checked(&buf[..]), Err(WireError::Unsupported));
        }
        let mut buf = REQUEST;
        buf[7] = 3; // RARP request
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p), Err(WireError::Unsupported));
        let short = Packet::new_unchecked(&REQUEST[..10]);
        assert_eq!(ArpRepr::parse(&short), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            mut buf in proptest::collection::vec(any::<u8>(), 0..48),
            valid_prefix in any::<bool>(),
        ) {
            if valid_prefix && buf.len() >= 6 {
                buf[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            let _ = ArpRepr::parse(&Packet::new_unchecked(&buf[..]));
            if let Ok(p) = Packet::new_checked(&buf[..]) {
                let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len());
                let _ = (p.protocol_len(), p.operation(), p.sender_hw_addr());
                let _ = (p.sender_proto_addr(), p.target_hw_addr(), p.target_proto_addr());
            }
        }
    }
}
