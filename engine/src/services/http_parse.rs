//! An HTTP/1.x request parser that reads a byte stream in pieces of any
//! size and keeps no bytes: a few dozen bytes of state per connection, so
//! requests are parsed in place from the frames they arrived in (RFC 9112).
//!
//! It finds where each request ends (head, then a `Content-Length` or
//! chunked body), what the response must look like (keep-alive or close,
//! HEAD), and what is wrong with a bad request (the status to answer it
//! with). Pipelined requests are parsed one after another: [`Parser::feed`]
//! stops at the end of each, so the caller answers in order.

/// Limits of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest head (request line and headers), bytes: beyond, 431 (414
    /// while still in the request line).
    pub max_head: u32,
    /// Largest body, bytes: beyond, 413.
    pub max_body: u64,
}

/// A complete request, as far as the response cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// `HEAD`: the response carries no body.
    pub head: bool,
    /// The connection stays open after the response.
    pub keep_alive: bool,
    /// HTTP/1.0 (the response says 1.1 either way; keep-alive must then
    /// be said explicitly).
    pub http10: bool,
}

/// What [`Parser::feed`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request ended.
    Request(Request),
    /// The head asked for `100 Continue` before its body: send it now.
    Continue,
    /// The request is malformed or over a limit: answer with this status
    /// and close the connection (nothing after it can be trusted).
    Bad(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Before a request (CRLFs between requests are ignored, RFC 9112 2.2).
    Start,
    Method,
    Target,
    Version(u8),
    VersionCr,
    LineStart,
    HeadCr,
    Name,
    Value,
    ValueCr,
    Body,
    ChunkSize,
    /// Whitespace after a chunk size (only `;`, CR or LF may follow).
    ChunkSizeWs,
    ChunkExt,
    ChunkSizeLf,
    ChunkData,
    ChunkDataCr,
    ChunkDataLf,
    Trailer,
    TrailerLine,
    TrailerCr,
    /// After a bad request: nothing more is parsed.
    Dead,
}

/// Headers the parser looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hdr {
    ContentLength,
    TransferEncoding,
    Connection,
    Host,
    Expect,
    Other,
}

const NAMES: [(&[u8], Hdr); 5] = [
    (b"content-length", Hdr::ContentLength),
    (b"transfer-encoding", Hdr::TransferEncoding),
    (b"connection", Hdr::Connection),
    (b"host", Hdr::Host),
    (b"expect", Hdr::Expect),
];

/// Longest header token the parser keeps to compare (`keep-alive`,
/// `100-continue`, `chunked`; longer ones match none of them).
const TOKEN: usize = 12;

/// "No value" in a u64 field (values are below 2^60).
const NONE: u64 = u64::MAX;

/// The parser of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Parser {
    st: St,
    /// Bytes of the current head so far.
    head_len: u32,
    /// Which known names the current header name still matches (bit i:
    /// NAMES[i]), and how many of its bytes were seen.
    name_mask: u8,
    name_len: u8,
    hdr: Hdr,
    /// The current value token (lower case), for the token headers.
    token: [u8; TOKEN],
    token_len: u8,
    token_long: bool,
    /// The method so far is a prefix of "HEAD".
    method_head: u8,
    http10: bool,
    /// The request's Content-Length ([`NONE`]: none given).
    content_length: u64,
    /// Digits of the current Content-Length value.
    /// Digits of the current Content-Length value ([`NONE`]: none yet).
    cl_value: u64,
    /// Whitespace came after the current Content-Length's digits.
    cl_ws: bool,
    cl_bad: bool,
    /// Transfer-Encoding was given; its last coding is chunked; some
    /// coding is not chunked (and not understood).
    te_seen: bool,
    chunked: bool,
    te_unknown: bool,
    conn_close: bool,
    conn_keep: bool,
    host: bool,
    expect_continue: bool,
    remaining: u64,
    body_total: u64,
    chunk_digits: u8,
    /// Whitespace came after the current token's characters; a character
    /// came after that whitespace (`chun ked`: not one token).
    token_gap: bool,
    token_split: bool,
    /// Tokens in the current header value.
    value_tokens: u8,
    /// A chunked coding was listed already (it may not be applied twice).
    te_chunked_seen: bool,
    /// The head is malformed in a way found only at its end (400): a
    /// second Host, a Transfer-Encoding that is empty, split or repeats
    /// chunked.
    head_bad: bool,
    /// Bytes of chunk extensions and trailers: they count against the
    /// head limit (431), so no body is endless without growing.
    extra: u32,
    /// `step` entered a state with runs ([`run`](Self::run)): the target,
    /// a header value, a name that matches no known one.
    run_due: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            st: St::Start,
            head_len: 0,
            name_mask: 0,
            name_len: 0,
            hdr: Hdr::Other,
            token: [0; TOKEN],
            token_len: 0,
            token_long: false,
            method_head: 0,
            http10: false,
            content_length: NONE,
            cl_value: NONE,
            cl_ws: false,
            cl_bad: false,
            te_seen: false,
            chunked: false,
            te_unknown: false,
            conn_close: false,
            conn_keep: false,
            host: false,
            expect_continue: false,
            remaining: 0,
            body_total: 0,
            chunk_digits: 0,
            token_gap: false,
            token_split: false,
            value_tokens: 0,
            te_chunked_seen: false,
            head_bad: false,
            extra: 0,
            run_due: false,
        }
    }
}

/// RFC 9110 5.6.2's tchar, by table.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~');
        b += 1;
    }
    t
};

fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// How many bytes at the start of `bytes` satisfy `ordinary`.
#[inline(always)]
fn span(bytes: &[u8], ordinary: impl Fn(u8) -> bool) -> usize {
    bytes.iter().position(|&b| !ordinary(b)).unwrap_or(bytes.len())
}

impl Parser {
    /// Whether a request has started and not ended (the peer closing now
    /// would cut it).
    pub fn in_request(&self) -> bool {
        !matches!(self.st, St::Start | St::Dead)
    }

    /// Reads from `input`; returns how many bytes it took and what, if
    /// anything, happened at that point. Call again with the rest.
    pub fn feed(&mut self, input: &[u8], lim: &Limits) -> (usize, Option<Event>) {
        self.feed_with::<true>(input, lim)
    }

    /// [`feed`](Self::feed) with every byte through `step`: the reference
    /// the runs are checked against.
    #[cfg(test)]
    fn feed_bytewise(&mut self, input: &[u8], lim: &Limits) -> (usize, Option<Event>) {
        self.feed_with::<false>(input, lim)
    }

    #[inline(always)]
    fn feed_with<const RUNS: bool>(&mut self, input: &[u8], lim: &Limits) -> (usize, Option<Event>) {
        let mut i = 0;
        while i < input.len() {
            match self.st {
                St::Dead => return (input.len(), None),
                St::Body => {
                    let take = (self.remaining.min((input.len() - i) as u64)) as usize;
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        return (i, Some(self.finish()));
                    }
                    continue;
                }
                St::ChunkData => {
                    let take = (self.remaining.min((input.len() - i) as u64)) as usize;
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.st = St::ChunkDataCr;
                    }
                    continue;
                }
                _ => {}
            }
            // A run may start where this call starts (the last piece ended
            // in one) and where `step` says one may.
            if RUNS && (i == 0 || std::mem::take(&mut self.run_due)) {
                i += self.run(&input[i..], lim);
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            if let Some(ev) = self.step(b, lim) {
                return (i, Some(ev));
            }
        }
        (i, None)
    }

    /// The bytes at the start of `rest` that `step` would only count: a
    /// request target's characters, a header value nothing is read from
    /// (Host's, an unknown header's), the rest of a header name that is
    /// none of [`NAMES`] any more. Most of a real request's head is such
    /// runs (User-Agent, Accept, cookies), taken here without a state
    /// dispatch per byte. A run stops short of the head limit, so the byte
    /// that passes it still goes through `step` and gets its status.
    #[inline(always)]
    fn run(&mut self, rest: &[u8], lim: &Limits) -> usize {
        let room = lim.max_head.saturating_sub(self.head_len) as usize;
        let bytes = &rest[..rest.len().min(room)];
        let n = match self.st {
            St::Target => span(bytes, |b| matches!(b, 0x21..=0x7e | 0x80..=0xff)),
            St::Value if matches!(self.hdr, Hdr::Host | Hdr::Other) => span(bytes, |b| !matches!(b, b'\r' | b'\n' | 0)),
            // No known name matches: its length no longer matters.
            St::Name if self.name_mask == 0 => span(bytes, is_tchar),
            _ => 0,
        };
        self.head_len += n as u32;
        n
    }

    fn bad(&mut self, status: u16) -> Option<Event> {
        self.st = St::Dead;
        Some(Event::Bad(status))
    }

    /// One byte of a head, a chunk header or the trailers.
    fn step(&mut self, b: u8, lim: &Limits) -> Option<Event> {
        let in_head = matches!(
            self.st,
            St::Method
                | St::Target
                | St::Version(_)
                | St::VersionCr
                | St::LineStart
                | St::HeadCr
                | St::Name
                | St::Value
                | St::ValueCr
        );
        if in_head {
            self.head_len += 1;
            if self.head_len > lim.max_head {
                let line = matches!(self.st, St::Method | St::Target | St::Version(_) | St::VersionCr);
                return self.bad(if line { 414 } else { 431 });
            }
        }
        if matches!(self.st, St::ChunkSizeWs | St::ChunkExt | St::Trailer | St::TrailerLine | St::TrailerCr) {
            self.extra += 1;
            if self.extra > lim.max_head {
                return self.bad(431);
            }
        }
        match self.st {
            St::Start => {
                if b == b'\r' || b == b'\n' {
                    return None;
                }
                *self = Parser { st: St::Method, head_len: 1, method_head: 0, ..Parser::default() };
                self.method_char(b)
            }
            St::Method => {
                if b == b' ' {
                    self.st = St::Target;
                    self.run_due = true;
                    None
                } else {
                    self.method_char(b)
                }
            }
            St::Target => match b {
                b' ' => {
                    self.st = St::Version(0);
                    None
                }
                0x21..=0x7e | 0x80..=0xff => None,
                _ => self.bad(400),
            },
            St::Version(k) => {
                const V: &[u8] = b"HTTP/1.";
                if (k as usize) < V.len() {
                    if b != V[k as usize] {
                        return self.bad(if k >= 5 { 505 } else { 400 });
                    }
                    self.st = St::Version(k + 1);
                    None
                } else {
                    match b {
                        b'0' => self.http10 = true,
                        // A later 1.x is answered as 1.1 (RFC 9110 2.5).
                        b'1'..=b'9' => self.http10 = false,
                        _ => return self.bad(400),
                    }
                    self.st = St::VersionCr;
                    None
                }
            }
            St::VersionCr => match b {
                b'\r' => None,
                b'\n' => {
                    self.st = St::LineStart;
                    None
                }
                _ => self.bad(400),
            },
            St::LineStart => match b {
                b'\r' => {
                    self.st = St::HeadCr;
                    None
                }
                b'\n' => self.head_done(lim),
                // obs-fold (RFC 9112 5.2): refused.
                b' ' | b'\t' => self.bad(400),
                _ if is_tchar(b) => {
                    self.st = St::Name;
                    self.name_mask = (1 << NAMES.len()) - 1;
                    self.name_len = 0;
                    self.name_char(b);
                    None
                }
                _ => self.bad(400),
            },
            St::HeadCr => {
                if b == b'\n' {
                    self.head_done(lim)
                } else {
                    self.bad(400)
                }
            }
            St::Name => {
                if b == b':' {
                    self.hdr = NAMES
                        .iter()
                        .enumerate()
                        .find(|(k, (n, _))| self.name_mask & (1 << k) != 0 && n.len() == self.name_len as usize)
                        .map_or(Hdr::Other, |(_, (_, h))| *h);
                    self.token_len = 0;
                    self.token_long = false;
                    self.token_gap = false;
                    self.token_split = false;
                    self.value_tokens = 0;
                    self.cl_value = NONE;
                    self.cl_ws = false;
                    if self.hdr == Hdr::Host {
                        // One Host only (RFC 9112 3.2).
                        self.head_bad |= self.host;
                        self.host = true;
                    }
                    self.st = St::Value;
                    self.run_due = true;
                    None
                } else if is_tchar(b) {
                    self.name_char(b);
                    None
                } else {
                    // No whitespace before the colon (RFC 9112 5.1).
                    self.bad(400)
                }
            }
            St::Value => match b {
                b'\r' => {
                    self.end_value();
                    self.st = St::ValueCr;
                    None
                }
                b'\n' => {
                    self.end_value();
                    self.st = St::LineStart;
                    None
                }
                0 => self.bad(400),
                _ => {
                    self.value_char(b);
                    None
                }
            },
            St::ValueCr => {
                if b == b'\n' {
                    self.st = St::LineStart;
                    None
                } else {
                    self.bad(400)
                }
            }
            St::ChunkSize => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    self.chunk_digits += 1;
                    if self.chunk_digits > 15 {
                        return self.bad(413);
                    }
                    self.remaining = self.remaining * 16 + d;
                    None
                }
                b';' if self.chunk_digits > 0 => {
                    self.st = St::ChunkExt;
                    None
                }
                b' ' | b'\t' if self.chunk_digits > 0 => {
                    self.st = St::ChunkSizeWs;
                    None
                }
                b'\r' if self.chunk_digits > 0 => {
                    self.st = St::ChunkSizeLf;
                    None
                }
                b'\n' if self.chunk_digits > 0 => self.chunk_size_done(lim),
                _ => self.bad(400),
            },
            St::ChunkSizeWs => match b {
                b' ' | b'\t' => None,
                b';' => {
                    self.st = St::ChunkExt;
                    None
                }
                b'\r' => {
                    self.st = St::ChunkSizeLf;
                    None
                }
                b'\n' => self.chunk_size_done(lim),
                // `5 6`: not a chunk size.
                _ => self.bad(400),
            },
            St::ChunkExt => match b {
                b'\r' => {
                    self.st = St::ChunkSizeLf;
                    None
                }
                b'\n' => self.chunk_size_done(lim),
                _ => None,
            },
            St::ChunkSizeLf => {
                if b == b'\n' {
                    self.chunk_size_done(lim)
                } else {
                    self.bad(400)
                }
            }
            St::ChunkDataCr => match b {
                b'\r' => {
                    self.st = St::ChunkDataLf;
                    None
                }
                b'\n' => {
                    self.start_chunk();
                    None
                }
                _ => self.bad(400),
            },
            St::ChunkDataLf => {
                if b == b'\n' {
                    self.start_chunk();
                    None
                } else {
                    self.bad(400)
                }
            }
            St::Trailer => match b {
                b'\r' => {
                    self.st = St::TrailerCr;
                    None
                }
                b'\n' => Some(self.finish()),
                _ => {
                    self.st = St::TrailerLine;
                    None
                }
            },
            St::TrailerLine => {
                if b == b'\n' {
                    self.st = St::Trailer;
                }
                None
            }
            St::TrailerCr => {
                if b == b'\n' {
                    Some(self.finish())
                } else {
                    self.bad(400)
                }
            }
            St::Body | St::ChunkData | St::Dead => None,
        }
    }

    fn method_char(&mut self, b: u8) -> Option<Event> {
        if !is_tchar(b) {
            return self.bad(400);
        }
        let k = self.method_head as usize;
        self.method_head = if k < 4 && b"HEAD"[k] == b { k as u8 + 1 } else { 0xff };
        None
    }

    fn name_char(&mut self, b: u8) {
        let lb = b.to_ascii_lowercase();
        let k = self.name_len as usize;
        for (j, (n, _)) in NAMES.iter().enumerate() {
            if n.get(k) != Some(&lb) {
                self.name_mask &= !(1 << j);
            }
        }
        self.name_len = self.name_len.saturating_add(1);
        self.run_due = self.name_mask == 0;
    }

    fn value_char(&mut self, b: u8) {
        match self.hdr {
            Hdr::ContentLength => match b {
                // A digit after whitespace inside the value ("1 2") is not
                // one number.
                b'0'..=b'9' if self.cl_ws => self.cl_bad = true,
                b'0'..=b'9' => {
                    let v = if self.cl_value == NONE { 0 } else { self.cl_value };
                    match v.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as u64)) {
                        Some(v) if v < (1 << 60) => self.cl_value = v,
                        _ => self.cl_bad = true,
                    }
                }
                b' ' | b'\t' => self.cl_ws = self.cl_value != NONE,
                _ => self.cl_bad = true,
            },
            Hdr::TransferEncoding | Hdr::Connection | Hdr::Expect => {
                if b == b',' {
                    self.end_token();
                } else if b == b' ' || b == b'\t' {
                    // Whitespace around list items is optional; inside one
                    // it ends the token, and nothing may follow but a comma.
                    self.token_gap = self.token_len > 0 || self.token_long;
                } else {
                    self.token_split |= self.token_gap;
                    if (self.token_len as usize) < TOKEN {
                        self.token[self.token_len as usize] = b.to_ascii_lowercase();
                        self.token_len += 1;
                    } else {
                        self.token_long = true;
                    }
                }
            }
            Hdr::Host | Hdr::Other => {}
        }
    }

    fn end_token(&mut self) {
        let t = &self.token[..self.token_len as usize];
        if self.token_len > 0 || self.token_long {
            self.value_tokens = self.value_tokens.saturating_add(1);
            match self.hdr {
                Hdr::TransferEncoding => {
                    // Only a final "chunked" frames the body; a split
                    // token or chunked twice is malformed (RFC 9112 6.1).
                    self.te_seen = true;
                    let chunked = !self.token_long && !self.token_split && t == b"chunked";
                    self.head_bad |= self.token_split || (chunked && self.te_chunked_seen);
                    self.te_chunked_seen |= chunked;
                    self.chunked = chunked;
                    self.te_unknown |= !self.chunked;
                }
                _ if self.token_split => {}
                Hdr::Connection if !self.token_long => {
                    if t == b"close" {
                        self.conn_close = true;
                    } else if t == b"keep-alive" {
                        self.conn_keep = true;
                    }
                }
                Hdr::Expect if !self.token_long && t == b"100-continue" => self.expect_continue = true,
                _ => {}
            }
        }
        self.token_len = 0;
        self.token_long = false;
        self.token_gap = false;
        self.token_split = false;
    }

    fn end_value(&mut self) {
        match self.hdr {
            Hdr::ContentLength => {
                if self.cl_value == NONE {
                    self.cl_bad = true;
                } else if self.content_length != NONE && self.content_length != self.cl_value {
                    // Repeated with different values: which framing the
                    // sender meant cannot be known (RFC 9112 6.3).
                    self.cl_bad = true;
                } else {
                    self.content_length = self.cl_value;
                }
            }
            Hdr::TransferEncoding => {
                self.end_token();
                // An empty Transfer-Encoding frames nothing: refused, not
                // skipped (the body would then be framed some other way).
                self.head_bad |= self.value_tokens == 0;
            }
            Hdr::Connection | Hdr::Expect => self.end_token(),
            _ => {}
        }
    }

    fn head_done(&mut self, lim: &Limits) -> Option<Event> {
        if self.cl_bad || self.head_bad {
            return self.bad(400);
        }
        if self.te_seen {
            // Both framings (a smuggling attempt), chunked not last (no way
            // to find the end), or chunked in HTTP/1.0: 400 (RFC 9112 6.1,
            // 6.3); a coding we do not know: 501.
            if self.content_length != NONE || self.http10 || !self.chunked {
                return self.bad(400);
            }
            if self.te_unknown {
                return self.bad(501);
            }
        }
        if !self.http10 && !self.host {
            return self.bad(400);
        }
        self.body_total = 0;
        if self.chunked {
            self.start_chunk();
        } else {
            let n = if self.content_length == NONE { 0 } else { self.content_length };
            if n > lim.max_body {
                return self.bad(413);
            }
            self.remaining = n;
            if n == 0 {
                return Some(self.finish());
            }
            self.st = St::Body;
        }
        if self.expect_continue && !self.http10 {
            return Some(Event::Continue);
        }
        None
    }

    fn start_chunk(&mut self) {
        self.st = St::ChunkSize;
        self.remaining = 0;
        self.chunk_digits = 0;
    }

    fn chunk_size_done(&mut self, lim: &Limits) -> Option<Event> {
        if self.remaining == 0 {
            self.st = St::Trailer;
            return None;
        }
        self.body_total = self.body_total.saturating_add(self.remaining);
        if self.body_total > lim.max_body {
            return self.bad(413);
        }
        self.st = St::ChunkData;
        None
    }

    fn finish(&mut self) -> Event {
        let keep_alive = if self.http10 { self.conn_keep && !self.conn_close } else { !self.conn_close };
        let r = Request { head: self.method_head == 4, keep_alive, http10: self.http10 };
        self.st = St::Start;
        Event::Request(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIM: Limits = Limits { max_head: 8192, max_body: 1 << 20 };

    /// Every event of `input` fed in pieces of the given sizes (cycled).
    fn events(input: &[u8], pieces: &[usize], lim: &Limits) -> Vec<Event> {
        trace(input, pieces, lim, false).into_iter().map(|(_, e)| e).collect()
    }

    /// Each event with the offset it came at, `input` fed in pieces of the
    /// given sizes (cycled), by `feed` or (`bytewise`) one `step` per byte.
    fn trace(input: &[u8], pieces: &[usize], lim: &Limits, bytewise: bool) -> Vec<(usize, Event)> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < input.len() {
            let end = at + pieces[k % pieces.len()].max(1).min(input.len() - at);
            k += 1;
            while at < end {
                let (used, ev) =
                    if bytewise { p.feed_bytewise(&input[at..end], lim) } else { p.feed(&input[at..end], lim) };
                at += used;
                if let Some(e) = ev {
                    out.push((at, e));
                }
                if used == 0 {
                    break;
                }
            }
            at = end;
        }
        out
    }

    /// `s` with each edit (offset, byte, kind) applied: kind 0 flips the
    /// byte there, 1 inserts one, 2 deletes one.
    fn mutate(s: &mut Vec<u8>, edits: &[(usize, u8, u8)]) {
        for &(at, b, kind) in edits {
            let at = at % (s.len() + 1);
            match kind {
                0 if at < s.len() => s[at] = b,
                1 => s.insert(at, b),
                _ if at < s.len() => {
                    s.remove(at);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn the_tchar_table_is_rfc_9110s() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), want, "{b:#04x}");
        }
    }

    fn req(head: bool, keep_alive: bool, http10: bool) -> Event {
        Event::Request(Request { head, keep_alive, http10 })
    }

    #[test]
    fn what_curl_wrk_and_ab_send() {
        let curl = b"GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
        assert_eq!(events(curl, &[1000], &LIM), vec![req(false, true, false)]);
        let ab = b"GET / HTTP/1.0\r\nHost: 198.18.0.2\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n";
        assert_eq!(events(ab, &[1000], &LIM), vec![req(false, false, true)]);
        let ab_k = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: x\r\n\r\n";
        assert_eq!(events(ab_k, &[3], &LIM), vec![req(false, true, true)]);
        let close = b"HEAD /x HTTP/1.1\r\nhost: a\r\nconnection: foo, Close\r\n\r\n";
        assert_eq!(events(close, &[7], &LIM), vec![req(true, false, false)]);
        assert_eq!(events(b"HEADER / HTTP/1.1\r\nHost: a\r\n\r\n", &[100], &LIM), vec![req(false, true, false)]);
    }

    #[test]
    fn pipelined_requests_with_bodies_end_where_they_should() {
        let mut s = Vec::new();
        s.extend_from_slice(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
        s.extend_from_slice(b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        s.extend_from_slice(b"3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n");
        s.extend_from_slice(b"\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n");
        for pieces in [&[1usize][..], &[2, 3, 5], &[1000]] {
            assert_eq!(events(&s, pieces, &LIM), vec![req(false, true, false); 3], "{pieces:?}");
        }
    }

    #[test]
    fn bad_requests_get_their_status() {
        let bad = |s: &[u8], lim: &Limits| events(s, &[4], lim).last().copied();
        let small = Limits { max_head: 64, max_body: 10 };
        assert_eq!(bad(b"GET / HTTP/1.1\r\n\r\n", &LIM), Some(Event::Bad(400)), "no Host");
        assert_eq!(bad(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", &LIM), Some(Event::Bad(505)));
        assert_eq!(bad(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", &LIM), Some(req(false, true, false)), "1.x is 1.1");
        assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &LIM), Some(Event::Bad(400)), "two Hosts");
        let te = |v: &str| {
            let r = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n0\r\n\r\n");
            events(r.as_bytes(), &[3], &LIM).last().copied()
        };
        assert_eq!(te("chunked"), Some(req(false, true, false)));
        assert_eq!(te(" chunked "), Some(req(false, true, false)), "whitespace around the token");
        assert_eq!(te("chun ked"), Some(Event::Bad(400)), "whitespace inside the token");
        assert_eq!(te("chunked, chunked"), Some(Event::Bad(400)), "chunked twice");
        assert_eq!(te(""), Some(Event::Bad(400)), "empty");
        assert_eq!(te(" , "), Some(Event::Bad(400)), "only a comma");
        let close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: cl ose\r\n\r\n";
        assert_eq!(bad(close, &LIM), Some(req(false, true, false)), "a split token is no close");
        let chunk = |c: &str| {
            let r = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{c}");
            events(r.as_bytes(), &[2], &LIM).last().copied()
        };
        assert_eq!(chunk("5 \r\nhello\r\n0\r\n\r\n"), Some(req(false, true, false)), "BWS after a size");
        assert_eq!(chunk("5 ;x=y\r\nhello\r\n0\r\n\r\n"), Some(req(false, true, false)));
        assert_eq!(chunk("5 6\r\nhello\r\n"), Some(Event::Bad(400)), "junk after a size");
        // Extensions and trailers count against the head limit.
        let small_head = Limits { max_head: 256, max_body: 1 << 20 };
        let ext = format!("1;{}\r\n", "e".repeat(300));
        let r = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{ext}");
        assert_eq!(events(r.as_bytes(), &[7], &small_head).last().copied(), Some(Event::Bad(431)));
        let trailers = "X-T: v\r\n".repeat(40);
        let r = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{trailers}\r\n");
        assert_eq!(events(r.as_bytes(), &[7], &small_head).last().copied(), Some(Event::Bad(431)));
        assert_eq!(bad(b"GET / FTP/1.1\r\n\r\n", &LIM), Some(Event::Bad(400)));
        assert_eq!(bad(b"G(T / HTTP/1.1\r\n", &LIM), Some(Event::Bad(400)));
        assert_eq!(bad(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", &LIM), Some(Event::Bad(400)), "space before colon");
        assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", &LIM), Some(Event::Bad(400)));
        assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", &LIM), Some(Event::Bad(400)));
        assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", &LIM), Some(Event::Bad(400)));
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", &LIM),
            Some(Event::Bad(400))
        );
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", &LIM),
            Some(Event::Bad(400)),
            "both framings"
        );
        assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &LIM), Some(Event::Bad(400)));
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &LIM),
            Some(Event::Bad(501))
        );
        assert_eq!(bad(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", &small), Some(Event::Bad(413)));
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n", &small),
            Some(Event::Bad(413))
        );
        let long_target = [b"GET /".as_slice(), &[b'a'; 100], b" HTTP/1.1\r\n"].concat();
        assert_eq!(bad(&long_target, &small), Some(Event::Bad(414)));
        let many = [b"GET / HTTP/1.1\r\n".as_slice(), &b"X-A: b\r\n".repeat(20), b"\r\n"].concat();
        assert_eq!(bad(&many, &small), Some(Event::Bad(431)));
        // After a bad request, nothing more is parsed.
        let mut p = Parser::default();
        let (_, e) = p.feed(b"BAD\x01 / HTTP/1.1\r\n", &LIM);
        assert_eq!(e, Some(Event::Bad(400)));
        let next = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(p.feed(next, &LIM), (next.len(), None));
    }

    #[test]
    fn expect_100_continue_comes_before_the_body() {
        let s = b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody";
        assert_eq!(events(s, &[5], &LIM), vec![Event::Continue, req(false, true, false)]);
    }

    proptest! {
        /// Any sequence of valid requests, in any pieces, gives one event
        /// per request, in order, with the keep-alive each asked for.
        #[test]
        fn valid_requests_in_any_pieces(
            reqs in proptest::collection::vec((any::<bool>(), any::<bool>(), 0usize..300, any::<bool>(), any::<bool>()), 1..8),
            pieces in proptest::collection::vec(1usize..40, 1..5),
        ) {
            let mut s = Vec::new();
            let mut want = Vec::new();
            for (head, close, body, chunked, http10) in reqs {
                let method = if head { "HEAD" } else { "POST" };
                let version = if http10 { "1.0" } else { "1.1" };
                s.extend_from_slice(format!("{method} /p?q=1 HTTP/{version}\r\nHost: h\r\nX-Junk: a,b;c\r\n").as_bytes());
                if close { s.extend_from_slice(b"Connection: close\r\n"); }
                else if http10 { s.extend_from_slice(b"Connection: keep-alive\r\n"); }
                let chunked = chunked && !http10;
                if chunked {
                    s.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    let mut left = body;
                    while left > 0 {
                        let n = left.min(37);
                        s.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                        s.extend(std::iter::repeat_n(b'z', n));
                        s.extend_from_slice(b"\r\n");
                        left -= n;
                    }
                    s.extend_from_slice(b"0\r\n\r\n");
                } else {
                    s.extend_from_slice(format!("Content-Length: {body}\r\n\r\n").as_bytes());
                    s.extend(std::iter::repeat_n(b'\r', body));
                }
                want.push(req(head, !close, http10));
            }
            prop_assert_eq!(events(&s, &pieces, &LIM), want);
        }

        /// Valid requests with bytes flipped, inserted or deleted reach every
        /// state of the parser (headers, chunks, trailers): never a panic,
        /// only requests or statuses the responder knows, and never more
        /// requests than were sent.
        #[test]
        fn mutated_requests_are_survived(
            edits in proptest::collection::vec((0usize..400, any::<u8>(), 0u8..3), 1..6),
            piece in 1usize..64,
        ) {
            let mut s = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n\
                4;x=1\r\nabcd\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz".to_vec();
            mutate(&mut s, &edits);
            let evs = events(&s, &[piece], &LIM);
            prop_assert!(evs.iter().filter(|e| matches!(e, Event::Request(_))).count() <= 3);
            for e in evs {
                if let Event::Bad(st) = e {
                    prop_assert!([400, 413, 414, 431, 501, 505].contains(&st));
                }
            }
        }

        /// Taking runs of ordinary bytes at once changes nothing: the same
        /// events at the same offsets as one `step` per byte, for browser-like
        /// requests (long values, unknown headers, the known ones) with
        /// bytes flipped, inserted or deleted, in any pieces, and head
        /// limits that cut through a run.
        #[test]
        fn runs_parse_exactly_as_byte_by_byte(
            edits in proptest::collection::vec((0usize..700, any::<u8>(), 0u8..3), 0..6),
            piece in 1usize..200,
            max_head in prop_oneof![1u32..40, 40u32..400, Just(8192u32)],
        ) {
            let mut s = b"GET /some/long/path?q=1&r=%20x HTTP/1.1\r\nHost: example.test:8080\r\n\
                User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
                Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nCookie: a=b; c=d\r\n\
                Connection: keep-alive\r\nContent-Length: 4\r\nX-Y:\r\n\r\nabcd\
                POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n\
                3\r\nxyz\r\n0\r\n\r\nGET / HTTP/1.0\r\n\r\n".to_vec();
            mutate(&mut s, &edits);
            let lim = Limits { max_head, max_body: 1 << 20 };
            prop_assert_eq!(trace(&s, &[piece], &lim, false), trace(&s, &[piece], &lim, true));
        }

        /// Garbage never panics, and what is reported is a request or a
        /// status the responder knows.
        #[test]
        fn garbage_is_survived(bytes in proptest::collection::vec(any::<u8>(), 0..600), piece in 1usize..64) {
            for e in events(&bytes, &[piece], &LIM) {
                match e {
                    Event::Bad(s) => prop_assert!([400, 413, 414, 431, 501, 505].contains(&s)),
                    Event::Request(_) | Event::Continue => {}
                }
            }
        }
    }
}
