//! The client side of request/response load, for sluice-bench's generator
//! on sluice's own TCP: on each connection it opens, keep `window` requests
//! of `size` bytes in flight, check every byte of each echo against what
//! was sent, and record the round trip. Requests carry a pattern derived
//! from the connection's request number, so an echo out of order or
//! corrupted is caught (not only a short one).
//!
//! In HTTP mode each request is a keep-alive `GET /`, and each answer is
//! taken whole by its framing (status line, headers up to the empty line,
//! `Content-Length` bytes of body): a status other than 2xx counts as
//! mismatched.
use super::AppCx;
use sluice_tcp::buf::Chunk;
use sluice_tcp::{Conn, State};
use std::sync::atomic::{AtomicU64, Ordering};

/// Most requests in flight on one connection.
pub const MAX_WINDOW: usize = 8;

/// What the generator's connections send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RrSettings {
    /// Bytes per request (and echo).
    pub size: u32,
    /// Requests in flight per connection at most (1..=[`MAX_WINDOW`]).
    pub window: u8,
    /// Open loop: requests per second on each connection, on a fixed
    /// schedule from its first request (latency then counts from each
    /// request's intended time); 0: closed loop (back to back).
    pub rate_per_conn: f64,
    /// Speak HTTP/1.1 (GET, keep-alive) instead of echo.
    pub http: bool,
    /// A connection per request: connect, one request, its echo, close
    /// (the core then opens the next; latency counts from the connect).
    pub crr: bool,
    /// One request per connection, then idle (conn-scale: the echo proves
    /// the server holds the connection; a lost handshake ACK is recovered
    /// by the request).
    pub once: bool,
}

/// The request of HTTP mode.
pub const HTTP_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: sluice-bench\r\nUser-Agent: sluice-bench\r\n\r\n";

impl RrSettings {
    /// Bytes of one request.
    pub fn request_len(&self) -> u32 {
        if self.http {
            HTTP_REQUEST.len() as u32
        } else {
            self.size
        }
    }
}

/// Where an HTTP answer is, byte by byte.
#[derive(Clone, Copy, Debug, Default)]
struct Answer {
    /// Bytes of "HTTP/1.1 2" matched; [`BAD`] once one differed.
    status: u8,
    /// Progress through CR LF CR LF.
    eoh: u8,
    /// Progress through "\ncontent-length:" (case-insensitive).
    cl: u8,
    /// In the Content-Length value.
    in_cl: bool,
    clen: u32,
    /// In the body, `left` bytes to go.
    in_body: bool,
    left: u32,
}

const BAD: u8 = 0xff;
const STATUS: &[u8] = b"HTTP/1.1 2";
const CONTENT_LENGTH: &[u8] = b"\ncontent-length:";
const EOH: &[u8] = b"\r\n\r\n";

impl Answer {
    /// Takes bytes of `input` up to the end of an answer; returns how many
    /// it took and, at an answer's end, whether it was a 2xx.
    fn feed(&mut self, input: &[u8]) -> (usize, Option<bool>) {
        let mut i = 0;
        while i < input.len() {
            if self.in_body {
                let n = (self.left as usize).min(input.len() - i);
                i += n;
                self.left -= n as u32;
                if self.left == 0 {
                    return (i, Some(self.end()));
                }
                continue;
            }
            let b = input[i];
            i += 1;
            if (self.status as usize) < STATUS.len() {
                self.status = if b == STATUS[self.status as usize] { self.status + 1 } else { BAD };
            }
            if self.in_cl {
                match b {
                    b'0'..=b'9' => self.clen = self.clen.saturating_mul(10).saturating_add(u32::from(b - b'0')),
                    b' ' | b'\t' => {}
                    _ => self.in_cl = false,
                }
            }
            let lb = b.to_ascii_lowercase();
            self.cl = if lb == CONTENT_LENGTH[self.cl as usize] {
                self.cl + 1
            } else if lb == b'\n' {
                1
            } else {
                0
            };
            if self.cl as usize == CONTENT_LENGTH.len() {
                self.in_cl = true;
                self.clen = 0;
                self.cl = 0;
            }
            self.eoh = if b == EOH[self.eoh as usize] {
                self.eoh + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.eoh as usize == EOH.len() {
                self.in_body = true;
                self.left = self.clen;
                if self.left == 0 {
                    return (i, Some(self.end()));
                }
            }
        }
        (i, None)
    }

    fn end(&mut self) -> bool {
        let ok = self.status as usize == STATUS.len();
        *self = Answer::default();
        ok
    }
}

/// Latency buckets: 8 per power of two of µs, up to 2^30 µs.
const SUB: usize = 8;
const BUCKETS: usize = 31 * SUB;

/// How late an open-loop request may go out and still be on time, µs: a
/// core releases a request on its first pass at or after the request's
/// time, and a sleeping core wakes up to a timer's slack late.
pub const LATE_US: u64 = 200;

/// One core's tallies (written by its core only, read by the bench).
#[derive(Debug)]
pub struct RrSink {
    /// Echoes that came back intact.
    pub ok: AtomicU64,
    /// Echoes that differed from their request.
    pub mismatched: AtomicU64,
    /// Connections the server closed (FIN) before the bench stopped them.
    pub ended: AtomicU64,
    /// Connections that failed: reset, timed out, or never established.
    pub failed: AtomicU64,
    /// Open loop: requests that went out more than [`LATE_US`] after their
    /// time (the window was full, or the core was behind): a sign the
    /// offered rate is beyond what is served. Their latency still counts
    /// from their time.
    pub deferred: AtomicU64,
    /// Open-loop schedules begun (each new one takes the next phase).
    starts: AtomicU64,
    /// The largest latency since the bench last took it, µs (exact: the
    /// histogram only knows each bucket's floor).
    max_us: AtomicU64,
    hist: Vec<AtomicU64>,
}

impl Default for RrSink {
    fn default() -> Self {
        RrSink {
            ok: AtomicU64::new(0),
            mismatched: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
            starts: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            hist: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.store(a.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn bucket_of(us: u64) -> usize {
    let us = us.max(1);
    let p = 63 - us.leading_zeros() as usize;
    let sub = if p >= 3 { ((us >> (p - 3)) & 7) as usize } else { ((us << (3 - p)) & 7) as usize };
    (p * SUB + sub).min(BUCKETS - 1)
}

/// The smallest latency, µs, of bucket `b`.
fn bucket_floor(b: usize) -> u64 {
    let (p, sub) = (b / SUB, (b % SUB) as u64);
    if p >= 3 {
        (8 + sub) << (p - 3)
    } else {
        (8 + sub) >> (3 - p)
    }
}

impl RrSink {
    fn record(&self, us: u64) {
        bump(&self.ok);
        bump(&self.hist[bucket_of(us)]);
        if us > self.max_us.load(Ordering::Relaxed) {
            self.max_us.store(us, Ordering::Relaxed);
        }
    }

    /// The largest latency recorded since the last call, µs (0: none), and
    /// a fresh start for the next interval.
    pub fn take_max_us(&self) -> u64 {
        self.max_us.swap(0, Ordering::Relaxed)
    }

    /// The latency histogram so far: (bucket floor µs, count), in order.
    pub fn histogram(&self) -> Vec<(u64, u64)> {
        self.hist
            .iter()
            .enumerate()
            .map(|(b, n)| (bucket_floor(b), n.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// The byte at `i` of request `n`.
#[inline]
fn pattern(n: u32, i: u32) -> u8 {
    (n.wrapping_mul(0x9E37_79B1) >> 24) as u8 ^ (i as u8) ^ ((i >> 8) as u8).wrapping_mul(7)
}

/// One connection's client state.
#[derive(Clone, Copy, Debug, Default)]
pub struct RrClient {
    /// Requests sent, and echoes taken in full.
    sent: u32,
    done: u32,
    /// Bytes of the current request still to queue.
    out_off: u32,
    /// Bytes of the oldest echo checked so far.
    in_off: u32,
    /// Send time (open loop: intended send time) of each request in
    /// flight, µs, by request number mod the window's limit.
    sent_at: [u64; MAX_WINDOW],
    /// Open loop: when the schedule began (0: not yet).
    start: u64,
    /// When the connection was opened (its SYN), engine µs.
    opened: u64,
    closed: bool,
    /// HTTP mode: the answer being read.
    answer: Answer,
}

impl RrClient {
    /// A connection opened at `now` (engine µs).
    pub fn opened_at(now: u64) -> Self {
        RrClient { opened: now, ..RrClient::default() }
    }

    /// Open loop, connection per request: the transaction began at `at`,
    /// when the connection was meant to open (it may have opened later).
    pub fn set_origin(&mut self, at: u64) {
        self.opened = at;
    }

    /// Open loop: whether another request may go at all: the connection
    /// is open, the window has room, and it is not a one-request one that
    /// sent its request.
    fn may_send(&self, set: &RrSettings) -> bool {
        !self.closed
            && set.rate_per_conn > 0.0
            && (self.sent - self.done) < u32::from(set.window)
            && !((set.crr || set.once) && self.sent >= 1)
    }

    /// Open loop: whether a request is due at `now` and the window has room
    /// for it (so the connection is worth serving).
    pub fn due(&self, set: &RrSettings, now: u64) -> bool {
        self.may_send(set) && (self.start == 0 || Self::scheduled(self.start, set, self.sent) <= now)
    }

    /// Open loop: when this connection next wants to run, if the core's
    /// pace queue should hear of it: the time of its next request, only
    /// while the window has room for it (a full
    /// window is woken by the echo that frees it) and the time is still to
    /// come (a due request that could not go waits on what stopped it).
    pub(crate) fn next_wake(&self, set: &RrSettings, now: u64) -> Option<u64> {
        if self.start == 0 || !self.may_send(set) {
            return None;
        }
        let at = Self::scheduled(self.start, set, self.sent);
        (at > now).then_some(at)
    }

    /// Open loop: when request number `sent` of a schedule begun at `start`
    /// is meant to go, engine µs.
    fn scheduled(start: u64, set: &RrSettings, sent: u32) -> u64 {
        start + (f64::from(sent) * 1e6 / set.rate_per_conn) as u64
    }

    pub(super) fn run(&mut self, conn: &mut Conn, cx: &mut AppCx<'_>) {
        let Some((set, sink)) = cx.rr else { return };
        if conn.state() == State::SynSent || conn.state() == State::SynReceived {
            return;
        }
        if conn.state() == State::Closed && !self.closed && !conn.read_closed() {
            // Reset, timed out, or refused before it was ever established.
            self.closed = true;
            bump(&sink.failed);
            return;
        }
        // The echoes (or answers), checked in place.
        while !conn.recv_queue().is_empty() {
            let head = conn.recv_queue().head();
            if set.http {
                let (take, done) = {
                    let Some(bytes) = cx.arena.node_mut(head).chunk_mut().bytes(cx.table) else { break };
                    self.answer.feed(bytes)
                };
                conn.consume(take as u32, cx.arena, cx.release);
                match done {
                    None => {}
                    Some(_) if self.done == self.sent => {
                        // An answer nobody asked for.
                        bump(&sink.mismatched);
                        conn.abort();
                        return;
                    }
                    Some(ok) => {
                        let at = self.sent_at[self.done as usize % MAX_WINDOW];
                        if ok {
                            sink.record(cx.now.saturating_sub(at));
                        } else {
                            bump(&sink.mismatched);
                        }
                        self.done += 1;
                    }
                }
                continue;
            }
            let (take, bad) = {
                let Some(bytes) = cx.arena.node_mut(head).chunk_mut().bytes(cx.table) else { break };
                let mut bad = false;
                let mut k = 0;
                while k < bytes.len() {
                    if self.done == self.sent {
                        // Bytes nobody asked for.
                        bad = true;
                        break;
                    }
                    let n = (bytes.len() - k).min((set.size - self.in_off) as usize);
                    for (j, &b) in bytes[k..k + n].iter().enumerate() {
                        if b != pattern(self.done, self.in_off + j as u32) {
                            bad = true;
                        }
                    }
                    k += n;
                    self.in_off += n as u32;
                    if self.in_off == set.size {
                        let at = self.sent_at[self.done as usize % MAX_WINDOW];
                        if bad {
                            bump(&sink.mismatched);
                        } else {
                            sink.record(cx.now.saturating_sub(at));
                        }
                        bad = false;
                        self.done += 1;
                        self.in_off = 0;
                    }
                }
                (bytes.len() as u32, bad)
            };
            conn.consume(take, cx.arena, cx.release);
            if bad {
                bump(&sink.mismatched);
                conn.abort();
                return;
            }
        }
        // Requests, while the window and the send buffer take them (and,
        // open loop, while any is due).
        if set.rate_per_conn > 0.0 && self.start == 0 {
            // Connections opened together would otherwise send in phase, in
            // bursts of one request each: each schedule starts at its own
            // offset into the period (golden-ratio spacing), so the
            // requests of all of them come evenly spread.
            let k = sink.starts.load(Ordering::Relaxed);
            sink.starts.store(k + 1, Ordering::Relaxed);
            let frac = (k as f64 * 0.618_033_988_749_895).fract();
            self.start = (cx.now + (frac * 1e6 / set.rate_per_conn) as u64).max(1);
        }
        let due = |sent: u32| -> Option<u64> {
            if set.rate_per_conn <= 0.0 {
                return Some(cx.now);
            }
            let at = Self::scheduled(self.start, set, sent);
            (at <= cx.now).then_some(at)
        };
        if set.crr && self.done >= 1 && !self.closed {
            // Its one echo came back: close (we close first, as the
            // kernel-socket client does), and the core opens the next.
            self.closed = true;
            conn.close(cx.arena, cx.release);
            return;
        }
        while !self.closed
            && (self.sent - self.done) < u32::from(set.window)
            && !((set.crr || set.once) && self.sent >= 1)
        {
            let Some(origin) = due(self.sent) else { break };
            let room = (conn.send_mss() as usize).min(cx.chunk_room).max(1) as u32;
            let n = (set.request_len() - self.out_off).min(room);
            if conn.send_space() < n {
                break;
            }
            if cx.arena.available() == 0 {
                cx.starved = true;
                break;
            }
            let mut buf = [0u8; 2048];
            let n = n.min(buf.len() as u32);
            if set.http {
                let at = self.out_off as usize;
                buf[..n as usize].copy_from_slice(&HTTP_REQUEST[at..at + n as usize]);
            } else {
                for (j, b) in buf[..n as usize].iter_mut().enumerate() {
                    *b = pattern(self.sent, self.out_off + j as u32);
                }
            }
            let Some(c) = (cx.write)(&buf[..n as usize]) else {
                cx.starved = true;
                break;
            };
            let len = c.len() as u32;
            if let Err(c) = conn.send(c, cx.arena) {
                (cx.release)(c);
                cx.starved = true;
                break;
            }
            if self.out_off == 0 && set.rate_per_conn > 0.0 && cx.now.saturating_sub(origin) > LATE_US {
                sink.deferred.fetch_add(1, Ordering::Relaxed);
            }
            if self.out_off == 0 {
                // crr: the transaction began with the connect.
                self.sent_at[self.sent as usize % MAX_WINDOW] = if set.crr { self.opened } else { origin };
            }
            self.out_off += len;
            if self.out_off == set.request_len() {
                self.out_off = 0;
                self.sent += 1;
            }
        }
        if !self.closed && conn.read_closed() {
            // The server closed: the bench counts it.
            self.closed = true;
            bump(&sink.ended);
            conn.close(cx.arena, cx.release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_within_an_eighth() {
        let mut last = 0;
        for us in [1u64, 2, 7, 8, 9, 15, 16, 100, 1000, 12_345, 1 << 20] {
            let b = bucket_of(us);
            assert!(b >= last, "{us}");
            last = b;
            let floor = bucket_floor(b);
            assert!(floor <= us && us - floor <= us / 8 + 1, "{us} in bucket from {floor}");
        }
    }

    #[test]
    fn http_answers_are_taken_whole_in_any_pieces() {
        let one = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 18\r\n\r\nhello from sluice\n";
        let bad = b"HTTP/1.1 404 Not Found\r\ncontent-length:  3\r\n\r\nno\n";
        let empty = b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n";
        let all = [one.as_slice(), bad, empty, one].concat();
        for piece in [1usize, 2, 7, 1000] {
            let mut a = Answer::default();
            let mut got = Vec::new();
            for chunk in all.chunks(piece) {
                let mut c = chunk;
                while !c.is_empty() {
                    let (n, done) = a.feed(c);
                    c = &c[n..];
                    got.extend(done);
                }
            }
            assert_eq!(got, vec![true, false, true, true], "pieces of {piece}");
        }
    }

    #[test]
    fn patterns_differ_between_requests() {
        let a: Vec<u8> = (0..64).map(|i| pattern(1, i)).collect();
        let b: Vec<u8> = (0..64).map(|i| pattern(2, i)).collect();
        assert_ne!(a, b);
    }
}
