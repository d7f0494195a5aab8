//! A TCP segment as the state machine sees it: the header fields and options
//! in validated form, without the bytes. The engine parses received bytes
//! into a [`Segment`] and turns an [`OutSegment`] into bytes; the state
//! machine never touches a buffer.
use crate::seq::Seq;

/// Flag bits (RFC 9293 3.1; ECN bits RFC 3168).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push function.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN echo.
    pub const ECE: Flags = Flags(0x40);
    /// Congestion window reduced.
    pub const CWR: Flags = Flags(0x80);

    /// Whether every bit of `f` is set.
    #[inline]
    pub fn has(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }

    /// FIN set.
    #[inline]
    pub fn fin(self) -> bool {
        self.has(Flags::FIN)
    }
    /// SYN set.
    #[inline]
    pub fn syn(self) -> bool {
        self.has(Flags::SYN)
    }
    /// RST set.
    #[inline]
    pub fn rst(self) -> bool {
        self.has(Flags::RST)
    }
    /// ACK set.
    #[inline]
    pub fn ack(self) -> bool {
        self.has(Flags::ACK)
    }
    /// PSH set.
    #[inline]
    pub fn psh(self) -> bool {
        self.has(Flags::PSH)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    #[inline]
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    #[inline]
    fn bitor_assign(&mut self, o: Flags) {
        self.0 |= o.0;
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [(Flags::SYN, "S"), (Flags::FIN, "F"), (Flags::RST, "R"), (Flags::PSH, "P"), (Flags::ACK, ".")];
        let mut s = String::new();
        for (fl, n) in names {
            if self.has(fl) {
                s.push_str(n);
            }
        }
        if self.has(Flags::URG) {
            s.push('U');
        }
        if self.has(Flags::ECE) {
            s.push('E');
        }
        if self.has(Flags::CWR) {
            s.push('W');
        }
        write!(f, "[{s}]")
    }
}

/// A SACK block (RFC 2018): bytes `left .. right` were received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlock {
    /// First sequence number of the block.
    pub left: Seq,
    /// The sequence number after the block.
    pub right: Seq,
}

/// Up to four SACK blocks, in the order they were (or are to be) sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackList {
    blocks: [SackBlock; 4],
    len: u8,
}

impl SackList {
    /// The blocks.
    #[inline]
    pub fn blocks(&self) -> &[SackBlock] {
        &self.blocks[..self.len as usize]
    }

    /// Adds a block; false when four are there already.
    pub fn push(&mut self, b: SackBlock) -> bool {
        if self.len as usize == self.blocks.len() {
            return false;
        }
        self.blocks[self.len as usize] = b;
        self.len += 1;
        true
    }

    /// No blocks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `n`.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n as u8);
    }
}

/// The timestamp option (RFC 7323 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp {
    /// TSval: the sender's clock.
    pub val: u32,
    /// TSecr: the TSval echoed.
    pub ecr: u32,
}

/// The options the state machine uses; others are ignored on input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only; values above 14 are taken as 14,
    /// RFC 7323 2.3).
    pub wscale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// Timestamps.
    pub timestamp: Option<Timestamp>,
    /// SACK blocks.
    pub sack: SackList,
}

impl Options {
    /// Bytes these options take in a header, as [`write`](Self::write)
    /// lays them out (Linux's layout: NOP padding keeps timestamps and SACK
    /// blocks 4-byte aligned), a multiple of 4.
    pub fn encoded_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        n += match (self.sack_permitted, self.timestamp.is_some()) {
            (_, true) => 12,
            (true, false) => 4,
            (false, false) => 0,
        };
        if self.wscale.is_some() {
            n += 4;
        }
        if !self.sack.is_empty() {
            n += 4 + 8 * self.sack.blocks().len();
        }
        n
    }

    /// Writes the options into `out` (at least [`encoded_len`](Self::encoded_len)
    /// bytes) and returns how many bytes were written (a multiple of 4,
    /// padded with EOL). The engine calls this to build headers; it does not
    /// allocate.
    pub fn write(&self, out: &mut [u8]) -> usize {
        let mut at = 0;
        let mut put = |b: &[u8]| {
            out[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        };
        // MSS, SACK-permitted/timestamps, window scale, SACK blocks.
        if let Some(m) = self.mss {
            put(&[2, 4]);
            put(&m.to_be_bytes());
        }
        let ts = |put: &mut dyn FnMut(&[u8]), t: Timestamp| {
            put(&[8, 10]);
            put(&t.val.to_be_bytes());
            put(&t.ecr.to_be_bytes());
        };
        match (self.sack_permitted, self.timestamp) {
            (true, Some(t)) => {
                put(&[4, 2]);
                ts(&mut put, t);
            }
            (false, Some(t)) => {
                put(&[1, 1]);
                ts(&mut put, t);
            }
            (true, None) => put(&[1, 1, 4, 2]),
            (false, None) => {}
        }
        if let Some(ws) = self.wscale {
            put(&[1, 3, 3, ws]);
        }
        if !self.sack.is_empty() {
            put(&[1, 1, 5, 2 + 8 * self.sack.len]);
            for b in self.sack.blocks() {
                put(&b.left.0.to_be_bytes());
                put(&b.right.0.to_be_bytes());
            }
        }
        while at % 4 != 0 {
            out[at] = 0;
            at += 1;
        }
        at
    }
}

/// A received segment: header fields, options, and how much payload it
/// carries (the payload itself travels beside it, as the caller's chunk).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Sequence number.
    pub seq: Seq,
    /// Acknowledgment number (meaningful with ACK).
    pub ack: Seq,
    /// Flags.
    pub flags: Flags,
    /// Window field, unscaled.
    pub wnd: u16,
    /// Options.
    pub opts: Options,
    /// Payload bytes.
    pub len: u32,
}

impl Segment {
    /// Sequence space the segment occupies: payload plus one for SYN and
    /// one for FIN.
    #[inline]
    pub fn seg_len(&self) -> u32 {
        self.len + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

/// Where a segment's payload comes from: `len` bytes starting `offset` bytes
/// after the first byte of the send queue (SND.UNA, or ISS + 1 before the
/// SYN is acknowledged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataRange {
    /// Offset from the head of the send queue.
    pub offset: u32,
    /// Bytes.
    pub len: u32,
}

/// A segment to send. The engine writes the headers (addresses and ports
/// are the connection's) and, if `data` is set, the payload from the send
/// queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutSegment {
    /// Sequence number.
    pub seq: Seq,
    /// Acknowledgment number (sent when `flags` has ACK).
    pub ack: Seq,
    /// Flags.
    pub flags: Flags,
    /// Window field, already scaled down.
    pub wnd: u16,
    /// Options.
    pub opts: Options,
    /// Payload, if any.
    pub data: Option<DataRange>,
}

impl OutSegment {
    /// Payload bytes.
    pub fn data_len(&self) -> u32 {
        self.data.map_or(0, |d| d.len)
    }

    /// Sequence space it occupies.
    pub fn seg_len(&self) -> u32 {
        self.data_len() + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

/// Parses TCP options from the bytes between the fixed header and the data
/// (RFC 9293 3.2). Unknown options are skipped; a malformed list (a length
/// below 2 or past the end) is an error, as Linux drops such options.
pub fn parse_options(mut b: &[u8], syn: bool) -> Result<Options, OptionError> {
    let mut o = Options::default();
    while let Some((&kind, rest)) = b.split_first() {
        match kind {
            0 => break,
            1 => {
                b = rest;
                continue;
            }
            _ => {}
        }
        let &len = rest.first().ok_or(OptionError)?;
        let len = len as usize;
        if len < 2 || len > b.len() {
            return Err(OptionError);
        }
        let body = &b[2..len];
        // Known kinds with a wrong length are malformed (RFC 9293 3.2,
        // "MUST be prepared to handle an illegal option length").
        let want = match kind {
            2 => Some(4),
            3 => Some(3),
            4 => Some(2),
            8 => Some(10),
            _ => None,
        };
        if want.is_some_and(|w| w != len) || (kind == 5 && (len < 10 || !(len - 2).is_multiple_of(8))) {
            return Err(OptionError);
        }
        match kind {
            2 if syn => o.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            3 if syn => o.wscale = Some(body[0].min(14)),
            4 if syn => o.sack_permitted = true,
            5 => {
                for c in body.chunks_exact(8) {
                    let left = Seq(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    let right = Seq(u32::from_be_bytes([c[4], c[5], c[6], c[7]]));
                    if !o.sack.push(SackBlock { left, right }) {
                        break;
                    }
                }
            }
            8 => {
                o.timestamp = Some(Timestamp {
                    val: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    ecr: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                })
            }
            _ => {}
        }
        b = &b[len..];
    }
    Ok(o)
}

/// An option list that cannot be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionError;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn linux_syn_options_parse() {
        // A Linux SYN: MSS 1460, SACK permitted, TS, NOP, wscale 7.
        let b = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 42, 0, 0, 0, 0, 1, 3, 3, 7];
        let o = parse_options(&b, true).unwrap();
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamp, Some(Timestamp { val: 42, ecr: 0 }));
        assert_eq!(o.wscale, Some(7));
        // Our encoding of the same options is Linux's byte for byte.
        let mut out = [0u8; 40];
        let n = o.write(&mut out);
        assert_eq!(&out[..n], &b);
        assert_eq!(n, o.encoded_len());
    }

    #[test]
    fn syn_only_options_are_ignored_elsewhere_and_bad_lengths_refused() {
        let b = [2, 4, 5, 180, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let o = parse_options(&b, false).unwrap();
        assert_eq!((o.mss, o.timestamp.map(|t| t.ecr)), (None, Some(2)));
        assert_eq!(parse_options(&[2, 3, 5], true), Err(OptionError));
        assert_eq!(parse_options(&[8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], false), Err(OptionError));
        assert_eq!(parse_options(&[5], false), Err(OptionError));
        assert_eq!(parse_options(&[99, 1], false), Err(OptionError));
        assert_eq!(parse_options(&[99, 2, 0, 7], false).unwrap(), Options::default(), "EOL ends the list");
        assert_eq!(parse_options(&[3, 3, 30], true).unwrap().wscale, Some(14), "clamped at 14");
    }

    #[test]
    fn sack_blocks_round_trip() {
        let mut o = Options { timestamp: Some(Timestamp { val: 1, ecr: 2 }), ..Default::default() };
        for i in 0..3 {
            o.sack.push(SackBlock { left: Seq(100 * i), right: Seq(100 * i + 50) });
        }
        let mut out = [0u8; 40];
        let n = o.write(&mut out);
        assert_eq!(n, 12 + 4 + 24);
        let back = parse_options(&out[..n], false).unwrap();
        assert_eq!(back, o);
    }

    proptest! {
        #[test]
        fn random_option_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40), syn in any::<bool>()) {
            let _ = parse_options(&b, syn);
        }

        #[test]
        fn written_options_parse_back(mss in proptest::option::of(any::<u16>()), ws in proptest::option::of(0u8..15),
            sp in any::<bool>(), ts in proptest::option::of((any::<u32>(), any::<u32>())), n in 0usize..4) {
            let mut o = Options { mss, wscale: ws, sack_permitted: sp, timestamp: ts.map(|(val, ecr)| Timestamp { val, ecr }), ..Default::default() };
            for i in 0..n { o.sack.push(SackBlock { left: Seq(i as u32 * 10), right: Seq(i as u32 * 10 + 5) }); }
            let len = o.encoded_len();
            prop_assume!(len <= 40);
            let mut out = [0u8; 40];
            let w = o.write(&mut out);
            prop_assert_eq!(w, len);
            prop_assert_eq!(w % 4, 0);
            prop_assert_eq!(parse_options(&out[..w], true).unwrap(), o);
        }
    }
}
