//! TCP segments (RFC 9293) over IPv4, plus an allocation-free option
//! iterator.
//!
//! TCP has no length field: build a [`Segment`] over exactly the IPv4
//! payload, so that [`Segment::payload`] ends where the segment does. The
//! checksum helpers take the segment length explicitly, which also allows a
//! larger transmit buffer.
//!
//! Panic rule: accessors of a [`Segment`] built with
//! [`Segment::new_unchecked`] panic if the buffer is shorter than the header;
//! after [`Segment::new_checked`] succeeds no accessor or setter panics, as
//! long as `set_header_len` is not given a length the buffer cannot hold.
//! [`TcpOptions`] never panics.

use super::checksum;
use super::{ip_proto, read_u16, read_u32, write_u16, write_u32, WireError};
use std::iter::FusedIterator;
use std::net::Ipv4Addr;

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Flag bits of [`Segment::flags`].
pub mod flags {
    /// No more data from sender.
    pub const FIN: u16 = 0x001;
    /// Synchronize sequence numbers.
    pub const SYN: u16 = 0x002;
    /// Reset the connection.
    pub const RST: u16 = 0x004;
    /// Push function.
    pub const PSH: u16 = 0x008;
    /// Acknowledgment field is significant.
    pub const ACK: u16 = 0x010;
    /// Urgent pointer field is significant.
    pub const URG: u16 = 0x020;
    /// ECN echo.
    pub const ECE: u16 = 0x040;
    /// Congestion window reduced.
    pub const CWR: u16 = 0x080;
    /// Accurate-ECN bit (formerly the experimental NS bit).
    pub const AE: u16 = 0x100;
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Mask of the flag bits (everything below the data offset nibble).
const FLAGS_MASK: u16 = 0x0FFF;

/// A view of a TCP segment over a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Segment<T> {
    /// Wraps `buffer` without any validation.
    pub const fn new_unchecked(buffer: T) -> Segment<T> {
        Segment { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Segment<T>, WireError> {
        let segment = Self::new_unchecked(buffer);
        segment.check_len()?;
        Ok(segment)
    }

    /// Checks the buffer holds 20 bytes ([`WireError::Truncated`]) and that
    /// `20 <= header_len <= buffer` ([`WireError::BadHeaderLen`]).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(WireError::BadHeaderLen);
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

    /// Raw sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Raw acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF_FLAGS] >> 4) * 4
    }

    /// Raw flag bits (low 12 bits of the offset/flags word; see [`flags`]).
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OFF_FLAGS) & FLAGS_MASK
    }

    /// FIN flag.
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// PSH flag.
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }

    /// ACK flag.
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// URG flag.
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }

    /// ECE flag.
    pub fn ece(&self) -> bool {
        self.flags() & flags::ECE != 0
    }

    /// CWR flag.
    pub fn cwr(&self) -> bool {
        self.flags() & flags::CWR != 0
    }

    /// Receive window (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Raw option bytes (between byte 20 and `header_len`).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// Iterator over the parsed options.
    pub fn options_iter(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options())
    }

    /// Everything after the header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum is correct for a segment of `len` bytes (header
    /// plus payload, normally the IPv4 payload length) between the given
    /// addresses. False if `len` is shorter than the header or longer than
    /// the buffer.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> bool {
        if len < self.header_len() || len > self.buffer.as_ref().len() {
            return false;
        }
        match self.checksum_sum(src, dst, len) {
            Some(sum) => checksum::fold(sum) == 0xFFFF,
            None => false,
        }
    }

    /// Pseudo-header plus the first `len` bytes; `None` if `len` > 65535.
    fn checksum_sum(&self, src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Option<u32> {
        let len16 = u16::try_from(len).ok()?;
        let bytes = &self.buffer.as_ref()[..len];
        Some(checksum::pseudo_header_v4(src, dst, ip_proto::TCP, len16) + checksum::sum(bytes))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Segment<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Swaps source and destination ports (a valid checksum stays valid).
    pub fn swap_ports(&mut self) {
        let (src, dst) = (self.src_port(), self.dst_port());
        self.set_src_port(dst);
        self.set_dst_port(src);
    }

    /// Sets the raw sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Sets the raw acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    /// Sets the header length in bytes (stored as `len / 4`), keeping flags.
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::OFF_FLAGS];
        *b = (*b & 0x0F) | (((len / 4) as u8 & 0x0F) << 4);
    }

    /// Sets all flag bits at once, keeping the data offset.
    pub fn set_flags(&mut self, value: u16) {
        let word = read_u16(self.buffer.as_ref(), field::OFF_FLAGS);
        let word = (word & !FLAGS_MASK) | (value & FLAGS_MASK);
        write_u16(self.buffer.as_mut(), field::OFF_FLAGS, word);
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let flags = self.flags();
        self.set_flags(if value { flags | flag } else { flags & !flag });
    }

    /// Sets or clears FIN.
    pub fn set_fin(&mut self, value: bool) {
        self.set_flag(flags::FIN, value);
    }

    /// Sets or clears SYN.
    pub fn set_syn(&mut self, value: bool) {
        self.set_flag(flags::SYN, value);
    }

    /// Sets or clears RST.
    pub fn set_rst(&mut self, value: bool) {
        self.set_flag(flags::RST, value);
    }

    /// Sets or clears PSH.
    pub fn set_psh(&mut self, value: bool) {
        self.set_flag(flags::PSH, value);
    }

    /// Sets or clears ACK.
    pub fn set_ack(&mut self, value: bool) {
        self.set_flag(flags::ACK, value);
    }

    /// Sets or clears URG.
    pub fn set_urg(&mut self, value: bool) {
        self.set_flag(flags::URG, value);
    }

    /// Sets or clears ECE.
    pub fn set_ece(&mut self, value: bool) {
        self.set_flag(flags::ECE, value);
    }

    /// Sets or clears CWR.
    pub fn set_cwr(&mut self, value: bool) {
        self.set_flag(flags::CWR, value);
    }

    /// Sets the receive window.
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Mutable option bytes (between byte 20 and `header_len`).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    /// Mutable payload: everything after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and stores the checksum for a segment of `len` bytes
    /// (header plus payload) between the given addresses. `len` is clamped
    /// to the buffer length and to 65535.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr, len: usize) {
        let len = len.min(self.buffer.as_ref().len()).min(usize::from(u16::MAX));
        self.set_checksum(0);
        let sum = self.checksum_sum(src, dst, len).unwrap_or(0);
        self.set_checksum(checksum::finish(sum));
    }
}

/// Option kinds understood by [`TcpOptions`].
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption {
    /// End of option list (kind 0); nothing after it is parsed.
    EndOfList,
    /// Padding (kind 1).
    NoOperation,
    /// Maximum segment size (kind 2).
    MaxSegmentSize(u16),
    /// Window scale shift count (kind 3).
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// Selective acknowledgment blocks (kind 5) as `(left, right)` edges.
    /// Only `blocks[..count]` are meaningful; a fourth block, if present,
    /// is dropped.
    SackRange {
        /// Block edges; entries at and after `count` are zero.
        blocks: [(u32, u32); 3],
        /// Number of valid blocks (1 to 3).
        count: u8,
    },
    /// Timestamps (kind 8).
    Timestamps {
        /// Timestamp value of the sender.
        tsval: u32,
        /// Echoed timestamp.
        tsecr: u32,
    },
    /// An option this parser does not interpret.
    Unknown {
        /// Option kind.
        kind: u8,
        /// Total option length, kind and length bytes included.
        len: u8,
    },
}

impl TcpOption {
    /// Bytes [`emit`](Self::emit) writes for this option.
    pub fn buffer_len(&self) -> usize {
        match *self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange { count, .. } => 2 + 8 * usize::from(count.min(3)),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::Unknown { len, .. } => usize::from(len.max(2)),
        }
    }

    /// Writes the option at the start of `buf` and returns its length. The
    /// body of an `Unknown` option is zero-filled. Panics if `buf` is
    /// shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let out = &mut buf[..len];
        match *self {
            TcpOption::EndOfList => out[0] = kind::END,
            TcpOption::NoOperation => out[0] = kind::NOP,
            TcpOption::MaxSegmentSize(mss) => {
                out[..2].copy_from_slice(&[kind::MSS, 4]);
                write_u16(out, 2, mss);
            }
            TcpOption::WindowScale(shift) => out.copy_from_slice(&[kind::WINDOW_SCALE, 3, shift]),
            TcpOption::SackPermitted => out.copy_from_slice(&[kind::SACK_PERMITTED, 2]),
            TcpOption::SackRange { blocks, count } => {
                out[..2].copy_from_slice(&[kind::SACK, len as u8]);
                for (i, &(left, right)) in blocks.iter().take(usize::from(count)).enumerate() {
                    write_u32(out, 2 + 8 * i, left);
                    write_u32(out, 6 + 8 * i, right);
                }
            }
            TcpOption::Timestamps { tsval, tsecr } => {
                out[..2].copy_from_slice(&[kind::TIMESTAMPS, 10]);
                write_u32(out, 2, tsval);
                write_u32(out, 6, tsecr);
            }
            TcpOption::Unknown { kind: code, .. } => {
                out.fill(0);
                out[..2].copy_from_slice(&[code, len as u8]);
            }
        }
        len
    }

    /// Interprets a length-prefixed option given its kind and body (the
    /// bytes after the length byte).
    fn parse(code: u8, body: &[u8]) -> Result<TcpOption, WireError> {
        let option = match (code, body.len()) {
            (kind::MSS, 2) => TcpOption::MaxSegmentSize(read_u16(body, 0)),
            (kind::WINDOW_SCALE, 1) => TcpOption::WindowScale(body[0]),
            (kind::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
            (kind::SACK, n) if n % 8 == 0 && (8..=32).contains(&n) => {
                let mut blocks = [(0, 0); 3];
                for (block, raw) in blocks.iter_mut().zip(body.chunks_exact(8)) {
                    *block = (read_u32(raw, 0), read_u32(raw, 4));
                }
                let count = (n / 8).min(3) as u8;
                TcpOption::SackRange { blocks, count }
            }
            (kind::TIMESTAMPS, 8) => TcpOption::Timestamps { tsval: read_u32(body, 0), tsecr: read_u32(body, 4) },
            (kind::MSS | kind::WINDOW_SCALE | kind::SACK_PERMITTED | kind::SACK | kind::TIMESTAMPS, _) => {
                return Err(WireError::BadOptionLen)
            }
            (other, n) => TcpOption::Unknown { kind: other, len: (n + 2) as u8 },
        };
        Ok(option)
    }
}

/// Allocation-free iterator over the options of a TCP header.
///
/// Yields `Err(WireError::Truncated)` when an option runs past the end of
/// the option bytes, `Err(WireError::BadOptionLen)` for a length byte below
/// 2 or a length invalid for a known kind; iteration stops after any error
/// and after [`TcpOption::EndOfList`]. Every step consumes at least one
/// byte, so it always terminates.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Iterates over raw option bytes (e.g. [`Segment::options`]).
    pub fn new(options: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions { rest: options }
    }

    /// Stops the iteration and returns `err`.
    fn fail(&mut self, err: WireError) -> Option<Result<TcpOption, WireError>> {
        self.rest = &[];
        Some(Err(err))
    }
}

impl Iterator for TcpOptions<'_> {
    type Item = Result<TcpOption, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.rest;
        match *data.first()? {
            kind::END => {
                self.rest = &[];
                Some(Ok(TcpOption::EndOfList))
            }
            kind::NOP => {
                self.rest = &data[1..];
                Some(Ok(TcpOption::NoOperation))
            }
            code => {
                let Some(&len) = data.get(1) else {
                    return self.fail(WireError::Truncated);
                };
                let len = usize::from(len);
                if len < 2 {
                    return self.fail(WireError::BadOptionLen);
                }
                let Some(option) = data.get(..len) else {
                    return self.fail(WireError::Truncated);
                };
                self.rest = &data[len..];
                match TcpOption::parse(code, &option[2..]) {
                    Ok(option) => Some(Ok(option)),
                    Err(err) => self.fail(err),
                }
            }
        }
    }
}

impl FusedIterator for TcpOptions<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;
    use proptest::prelude::*;

    const A1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const A2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// IPv4 198.18.0.1:40000 -> 198.18.0.2:80 SYN, seq 0x12345678, window
    /// 64240, options MSS 1460, SACK-permitted, TS 123456/0, NOP, WS 7.
    /// IPv4 checksum 0xae94, TCP checksum 0xd968 (computed independently).
    const SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xae, 0x94, // ipv4
        0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, // addresses
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, // ports seq ack
        0xa0, 0x02, 0xfa, 0xf0, 0xd9, 0x68, 0x00, 0x00, // off/flags window csum urg
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, // options
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    const SYN_OPTIONS: [TcpOption; 5] = [
        TcpOption::MaxSegmentSize(1460),
        TcpOption::SackPermitted,
        TcpOption::Timestamps { tsval: 123_456, tsecr: 0 },
        TcpOption::NoOperation,
        TcpOption::WindowScale(7),
    ];

    fn collect(bytes: &[u8]) -> Vec<Result<TcpOption, WireError>> {
        TcpOptions::new(bytes).collect()
    }

    #[test]
    fn parse_syn() {
        let ip = ipv4::Packet::new_checked(&SYN[..]).unwrap();
        assert!(ip.verify_checksum());
        let len = ip.payload().len();
        let tcp = Segment::new_checked(ip.payload()).unwrap();
        assert_eq!(tcp.src_port(), 40000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq_number(), 0x1234_5678);
        assert_eq!(tcp.ack_number(), 0);
        assert_eq!(tcp.header_len(), 40);
        assert_eq!(tcp.flags(), flags::SYN);
        assert!(tcp.syn());
        assert!(!(tcp.fin() || tcp.rst() || tcp.psh() || tcp.ack()));
        assert!(!(tcp.urg() || tcp.ece() || tcp.cwr()));
        assert_eq!(tcp.window_len(), 64240);
        assert_eq!(tcp.checksum(), 0xd968);
        assert_eq!(tcp.urgent_at(), 0);
        assert_eq!(tcp.options(), &SYN[40..]);
        assert!(tcp.payload().is_empty());
        assert!(tcp.verify_checksum(A1, A2, len));
        assert!(!tcp.verify_checksum(A2, Ipv4Addr::new(198, 18, 0, 3), len));
        assert!(!tcp.verify_checksum(A1, A2, len - 1));
        assert!(!tcp.verify_checksum(A1, A2, len + 1));
        let options: Vec<_> = tcp.options_iter().map(Result::unwrap).collect();
        assert_eq!(options, SYN_OPTIONS);
    }

    #[test]
    fn build_syn_matches_literal() {
        let mut buf = [0u8; 40];
        let mut tcp = Segment::new_unchecked(&mut buf[..]);
        tcp.set_src_port(40000);
        tcp.set_dst_port(80);
        tcp.set_seq_number(0x1234_5678);
        tcp.set_ack_number(0);
        tcp.set_header_len(40);
        tcp.set_syn(true);
        tcp.set_window_len(64240);
        tcp.set_urgent_at(0);
        let mut at = 0;
        for option in SYN_OPTIONS {
            at += option.emit(&mut tcp.options_mut()[at..]);
        }
        assert_eq!(at, 20);
        tcp.fill_checksum(A1, A2, 40);
        assert_eq!(&buf[..], &SYN[20..]);
    }

    #[test]
    fn flag_setters() {
        let mut buf = SYN;
        let mut tcp = Segment::new_checked(&mut buf[20..]).unwrap();
        tcp.set_ack(true);
        tcp.set_syn(false);
        assert_eq!(tcp.flags(), flags::ACK);
        tcp.set_flags(0xffff);
        assert_eq!(tcp.flags(), 0x0fff);
        assert_eq!(tcp.header_len(), 40);
        tcp.set_fin(false);
        tcp.set_rst(false);
        tcp.set_psh(false);
        tcp.set_urg(false);
        tcp.set_ece(false);
        tcp.set_cwr(false);
        let cleared = flags::FIN | flags::RST | flags::PSH | flags::URG | flags::ECE | flags::CWR;
        assert_eq!(tcp.flags(), 0x0fff & !cleared);
        assert!(!(tcp.fin() || tcp.rst() || tcp.psh() || tcp.urg() || tcp.ece() || tcp.cwr()));
        tcp.set_fin(true);
        tcp.set_rst(true);
        tcp.set_psh(true);
        tcp.set_urg(true);
        tcp.set_ece(true);
        tcp.set_cwr(true);
        assert!(tcp.fin() && tcp.rst() && tcp.psh() && tcp.urg() && tcp.ece() && tcp.cwr());
        tcp.set_header_len(20);
        assert_eq!(tcp.flags(), 0x0fff);
        assert_eq!(tcp.options().len(), 0);
        assert_eq!(tcp.payload().len(), 20);
    }

    #[test]
    fn swap_ports_and_payload() {
        let mut buf = [0u8; 25];
        buf[..20].copy_from_slice(&SYN[20..40]);
        buf[12] = 0x50; // data offset 5
        buf[20..].copy_from_slice(b"hello");
        let mut tcp = Segment::new_checked(&mut buf[..]).unwrap();
        tcp.fill_checksum(A1, A2, 25);
        assert!(tcp.verify_checksum(A1, A2, 25));
        tcp.swap_ports();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (80, 40000));
        assert!(tcp.verify_checksum(A2, A1, 25));
        assert_eq!(tcp.payload(), b"hello");
        tcp.payload_mut()[0] = b'j';
        assert!(!tcp.verify_checksum(A2, A1, 25));
        // A larger transmit buffer: only `len` bytes are covered.
        let mut big = [0xeeu8; 64];
        big[..25].copy_from_slice(&buf);
        let mut tcp = Segment::new_checked(&mut big[..]).unwrap();
        tcp.fill_checksum(A2, A1, 25);
        assert!(tcp.verify_checksum(A2, A1, 25));
    }

    #[test]
    fn malformed_segment() {
        let tcp = &SYN[20..];
        assert_eq!(Segment::new_checked(&tcp[..19]), Err(WireError::Truncated));
        assert_eq!(Segment::new_checked(&tcp[..39]), Err(WireError::BadHeaderLen));
        let mut buf = SYN;
        buf[32] = 0x40;
        assert_eq!(Segment::new_checked(&buf[20..]), Err(WireError::BadHeaderLen));
        buf[32] = 0xf0;
        assert_eq!(Segment::new_checked(&buf[20..]), Err(WireError::BadHeaderLen));
        buf[32] = 0x50;
        assert!(Segment::new_checked(&buf[20..]).is_ok());
    }

    #[test]
    fn malformed_options() {
        use TcpOption::*;
        use WireError::{BadOptionLen, Truncated};
        assert_eq!(collect(&[2]), [Err(Truncated)]);
        assert_eq!(collect(&[2, 0, 1, 1]), [Err(BadOptionLen)]);
        assert_eq!(collect(&[1, 30, 1, 1]), [Ok(NoOperation), Err(BadOptionLen)]);
        assert_eq!(collect(&[8, 10, 0, 0, 0]), [Err(Truncated)]);
        assert_eq!(collect(&[2, 3, 5, 1]), [Err(BadOptionLen)]);
        assert_eq!(collect(&[3, 4, 7, 0]), [Err(BadOptionLen)]);
        assert_eq!(collect(&[4, 3, 0]), [Err(BadOptionLen)]);
        assert_eq!(collect(&[8, 6, 0, 0, 0, 0]), [Err(BadOptionLen)]);
        assert_eq!(collect(&[5, 2, 1, 1]), [Err(BadOptionLen)]);
        assert_eq!(collect(&[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0]), [Err(BadOptionLen)]);
    }

    #[test]
    fn option_edge_cases() {
        use TcpOption::*;
        assert!(collect(&[]).is_empty());
        assert_eq!(collect(&[0, 2, 4, 5, 180]), [Ok(EndOfList)]);
        assert_eq!(collect(&[30, 4, 0xab, 0xcd, 1]), [Ok(Unknown { kind: 30, len: 4 }), Ok(NoOperation)]);
        assert_eq!(collect(&[253, 2]), [Ok(Unknown { kind: 253, len: 2 })]);

        // Four SACK blocks: the first three are kept.
        let mut sack = vec![5, 34];
        for v in 1..=8u32 {
            sack.extend_from_slice(&(v * 1000).to_be_bytes());
        }
        let blocks = [(1000, 2000), (3000, 4000), (5000, 6000)];
        assert_eq!(collect(&sack), [Ok(SackRange { blocks, count: 3 })]);

        let one = SackRange { blocks: [(7, 9), (0, 0), (0, 0)], count: 1 };
        let mut buf = [0u8; 10];
        assert_eq!(one.emit(&mut buf), 10);
        assert_eq!(buf, [5, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
        assert_eq!(collect(&buf), [Ok(one)]);

        let mut buf = [0xffu8; 4];
        assert_eq!(Unknown { kind: 30, len: 4 }.emit(&mut buf), 4);
        assert_eq!(buf, [30, 4, 0, 0]);
        assert_eq!(EndOfList.emit(&mut buf), 1);
        assert_eq!(buf[0], 0);
    }

    fn touch_all<T: AsRef<[u8]> + AsMut<[u8]>>(s: &mut Segment<T>, len: usize) {
        let _ = (s.src_port(), s.dst_port(), s.seq_number(), s.ack_number());
        let _ = (s.header_len(), s.flags(), s.fin(), s.syn(), s.rst(), s.psh());
        let _ = (s.ack(), s.urg(), s.ece(), s.cwr(), s.window_len());
        let _ = (s.checksum(), s.urgent_at(), s.options().len(), s.payload().len());
        for l in [0, 1, 19, 20, len / 2, len, len + 1, usize::MAX] {
            let _ = s.verify_checksum(A1, A2, l);
            s.fill_checksum(A1, A2, l);
        }
        assert!(s.options_iter().count() <= s.options().len());
        s.swap_ports();
        s.set_flags(s.flags() ^ flags::ACK);
        let _ = (s.options_mut().len(), s.payload_mut().len());
    }

    proptest! {
        #[test]
        fn random_segment_never_panics(
            mut buf in proptest::collection::vec(any::<u8>(), 0..96),
        ) {
            let len = buf.len();
            if let Ok(mut s) = Segment::new_checked(&mut buf[..]) {
                touch_all(&mut s, len);
            }
        }

        #[test]
        fn random_options_terminate(
            raw in proptest::collection::vec(any::<u8>(), 0..60),
            plausible in any::<bool>(),
        ) {
            // Mostly-known kinds exercise the length checks more often.
            let bytes: Vec<u8> = if plausible {
                raw.iter().map(|b| if b % 3 == 0 { b % 9 } else { *b }).collect()
            } else {
                raw
            };
            let mut n = 0;
            for item in TcpOptions::new(&bytes) {
                n += 1;
                prop_assert!(n <= bytes.len());
                if let Ok(option) = item {
                    let mut out = [0u8; 256];
                    let len = option.emit(&mut out);
                    prop_assert_eq!(len, option.buffer_len());
                }
            }
        }
    }
}
