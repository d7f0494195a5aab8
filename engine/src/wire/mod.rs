//! Zero-copy typed views over on-the-wire packet formats.
//!
//! Every protocol module offers a view type (`Frame`, `Packet`, `Datagram`,
//! `Segment`) wrapping any `T: AsRef<[u8]>`. Reading a field reads the bytes
//! in place; setters exist only when `T: AsMut<[u8]>`. Nothing here
//! allocates, performs I/O or uses `unsafe`.
//!
//! Views are built with `new_unchecked` (no validation, accessors may panic
//! on a short buffer) or `new_checked` (validates lengths, after which no
//! accessor panics). Some modules also have a `Repr`: a validated, owned
//! summary of a header that can be `parse`d from and `emit`ted into a view.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use arp::{ArpRepr, Operation as ArpOperation, Packet as ArpPacket};
pub use ethernet::{EthernetAddress, Frame as EthernetFrame};
pub use icmpv4::Packet as Icmpv4Packet;
pub use ipv4::{Ipv4Repr, Packet as Ipv4Packet};
pub use tcp::{Segment as TcpSegment, TcpOption, TcpOptions};
pub use udp::{Datagram as UdpDatagram, UdpRepr};

/// Why a buffer could not be interpreted as a packet of some format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the fixed header (or than a length field
    /// inside the packet requires).
    #[error("buffer truncated")]
    Truncated,
    /// The IP version field is not 4.
    #[error("bad IP version")]
    BadVersion,
    /// A header-length field is below the minimum or exceeds the buffer.
    #[error("bad header length")]
    BadHeaderLen,
    /// A total-length field is below the header length or exceeds the buffer.
    #[error("bad total length")]
    BadTotalLen,
    /// A checksum did not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// The packet is well formed but uses a feature this engine does not
    /// handle (e.g. non-Ethernet ARP, IPv4 fragments in a `Repr`).
    #[error("unsupported packet")]
    Unsupported,
    /// A TCP option has a length byte that is invalid for its kind.
    #[error("bad option length")]
    BadOptionLen,
}

/// IP protocol numbers (the IPv4 `protocol` field) used by this engine.
pub mod ip_proto {
    /// Internet Control Message Protocol.
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
}

/// Reads a big-endian `u16` at `at`. Panics if out of bounds.
fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian `u32` at `at`. Panics if out of bounds.
fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Writes a big-endian `u16` at `at`. Panics if out of bounds.
fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian `u32` at `at`. Panics if out of bounds.
fn write_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}
