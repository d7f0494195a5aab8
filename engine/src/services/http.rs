//! The HTTP/1.1 responder: every request gets the service's configured
//! answer (status, Content-Type, body), with keep-alive and pipelining
//! (answers in order), HEAD (no body), `100 Continue`, and a status and a
//! close for a request that is malformed (400) or over a limit (413, 414,
//! 431), uses a coding we do not know (501) or another HTTP version (505).
//!
//! Requests are parsed in place in the receive queue's frames
//! ([`super::http_parse`]); answers are prepared once per service and
//! copied into fresh frames, one segment each, which the emitter then sends
//! without another copy.
//!
//! Every connection has a deadline, so none holds its slot forever: a
//! request must arrive whole within `request_timeout_s` of its first byte
//! (else 408 and close); an idle keep-alive connection, or one whose peer
//! does not take its answer, is closed after `idle_timeout_s`; and after
//! an answer that closes, the input is drained for at most [`LINGER_IDLE`]
//! without data and [`LINGER_MAX`] in all (nginx's lingering close) before
//! the connection is closed for good.
use super::http_parse::{Event, Limits, Parser, Request};
use super::AppCx;
use crate::config::HttpSettings;
use sluice_tcp::buf::Chunk;
use sluice_tcp::Conn;

/// Lingering close: the longest wait for more input (or the peer's FIN)
/// after the closing answer, µs.
pub const LINGER_IDLE: u64 = 5_000_000;
/// Lingering close: the longest drain in all, µs.
pub const LINGER_MAX: u64 = 30_000_000;

/// The prepared answers of one HTTP service.
#[derive(Debug)]
pub struct HttpService {
    lim: Limits,
    keep_alive: bool,
    /// [head][variant]: variant 0 closes, 1 keeps an HTTP/1.1 connection,
    /// 2 keeps an HTTP/1.0 one (which must be told).
    answers: [[Vec<u8>; 3]; 2],
    errors: Vec<(u16, Vec<u8>)>,
    continue_: Vec<u8>,
    idle_timeout: u64,
    request_timeout: u64,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        408 => "Request Timeout",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

fn answer(status: u16, content_type: &str, body: &[u8], connection: Option<&str>, with_body: bool) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 {status} {}\r\nServer: sluice\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if let Some(c) = connection {
        a.extend_from_slice(format!("Connection: {c}\r\n").as_bytes());
    }
    a.extend_from_slice(b"\r\n");
    if with_body {
        a.extend_from_slice(body);
    }
    a
}

impl HttpService {
    /// The answers of a service configured with `s`.
    pub fn new(s: &HttpSettings) -> Self {
        let ct = &s.content_type;
        let variants = |with_body: bool| {
            [
                answer(s.status, ct, &s.body, Some("close"), with_body),
                answer(s.status, ct, &s.body, None, with_body),
                answer(s.status, ct, &s.body, Some("keep-alive"), with_body),
            ]
        };
        let errors = [400u16, 408, 413, 414, 431, 501, 505]
            .into_iter()
            .map(|st| {
                let body = format!("{st} {}\n", reason(st));
                (st, answer(st, "text/plain; charset=utf-8", body.as_bytes(), Some("close"), true))
            })
            .collect();
        HttpService {
            lim: Limits { max_head: s.max_header_bytes, max_body: s.max_body_bytes },
            keep_alive: s.keep_alive,
            answers: [variants(true), variants(false)],
            errors,
            continue_: b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            idle_timeout: u64::from(s.idle_timeout_s) * 1_000_000,
            request_timeout: u64::from(s.request_timeout_s) * 1_000_000,
        }
    }

    fn for_request(&self, r: Request) -> (&[u8], bool) {
        let keep = r.keep_alive && self.keep_alive;
        let variant = match (keep, r.http10) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        (&self.answers[usize::from(r.head)][variant], !keep)
    }

    fn error(&self, status: u16) -> &[u8] {
        self.errors.iter().find(|(s, _)| *s == status).map_or(&self.errors[0].1, |(_, a)| a)
    }
}

/// What is owed to the peer next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owed {
    Nothing,
    Answer(Request),
    Continue,
    Error(u16),
}

/// One connection's HTTP state: the parser, the answer being sent and how
/// far, whether the connection ends after it, and its deadline.
#[derive(Clone, Copy, Debug)]
pub struct Http {
    parser: Parser,
    owed: Owed,
    /// Bytes of the owed answer already queued.
    sent: u32,
    /// No more requests are read: the connection closes once the answer is
    /// out (input is drained and dropped meanwhile).
    closing: bool,
    closed: bool,
    /// When the current wait began, engine µs: the last input, or the last
    /// answer queued (0: not run yet).
    mark: u64,
    /// When the current request's first byte came, or the lingering close began.
    since: u64,
    /// When the connection gives up waiting (0: no deadline).
    deadline: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            parser: Parser::default(),
            owed: Owed::Nothing,
            sent: 0,
            closing: false,
            closed: false,
            mark: 0,
            since: 0,
            deadline: 0,
        }
    }
}

impl Http {
    /// When the service wants to run again with nothing happening (engine µs).
    pub fn deadline(&self) -> Option<u64> {
        (self.deadline != 0).then_some(self.deadline)
    }

    pub(super) fn run(&mut self, conn: &mut Conn, cx: &mut AppCx<'_>) {
        let Some(svc) = cx.http else { return };
        let now = cx.now;
        if self.closed {
            self.deadline = 0;
            return;
        }
        if self.mark == 0 {
            self.mark = now;
        }
        if self.deadline != 0 && now >= self.deadline {
            self.deadline = 0;
            self.expire(conn, cx);
            if self.closed {
                return;
            }
        }
        let mut progress = false;
        loop {
            if self.owed != Owed::Nothing {
                let (bytes, close) = match self.owed {
                    Owed::Answer(r) => svc.for_request(r),
                    Owed::Continue => (&svc.continue_[..], false),
                    Owed::Error(s) => (svc.error(s), true),
                    Owed::Nothing => unreachable!("checked"),
                };
                let before = self.sent;
                let done = self.queue(bytes, conn, cx);
                progress |= self.sent != before;
                if !done {
                    // The send buffer (or the pool) is full: the rest waits
                    // for the peer's ACKs, and reading waits with it.
                    break;
                }
                self.owed = Owed::Nothing;
                self.sent = 0;
                progress = true;
                if close {
                    self.closing = true;
                    self.since = now;
                    conn.shutdown();
                }
            }
            if self.closing {
                // Nothing more is answered: what still comes is dropped.
                let n = conn.recv_queue().bytes();
                progress |= n > 0;
                conn.consume(n, cx.arena, cx.release);
                break;
            }
            let q = conn.recv_queue();
            if q.is_empty() {
                break;
            }
            let head = q.head();
            let idle = !self.parser.in_request();
            let (used, ev) = {
                let Some(bytes) = cx.arena.node_mut(head).chunk_mut().bytes(cx.table) else { break };
                self.parser.feed(bytes, &svc.lim)
            };
            conn.consume(used as u32, cx.arena, cx.release);
            if used > 0 {
                progress = true;
                if idle {
                    self.since = now;
                }
            }
            match ev {
                None => {}
                Some(Event::Request(r)) => self.owed = Owed::Answer(r),
                Some(Event::Continue) => self.owed = Owed::Continue,
                Some(Event::Bad(s)) => self.owed = Owed::Error(s),
            }
        }
        if !self.closed && conn.read_closed() && self.owed == Owed::Nothing {
            // The peer is done (a request it cut short gets no answer).
            self.closed = true;
            conn.close(cx.arena, cx.release);
        }
        if progress {
            self.mark = now;
        }
        self.deadline = if self.closed {
            0
        } else if self.closing {
            (self.mark + LINGER_IDLE).min(self.since + LINGER_MAX)
        } else if self.owed != Owed::Nothing || !self.parser.in_request() {
            self.mark + svc.idle_timeout
        } else {
            self.since + svc.request_timeout
        };
    }

    /// The deadline passed: what was waited for did not come.
    fn expire(&mut self, conn: &mut Conn, cx: &mut AppCx<'_>) {
        if self.closing || self.owed == Owed::Nothing && !self.parser.in_request() {
            // The lingering close is over, or the connection sat idle: close
            // (a FIN, or a RST if input came meanwhile); FIN-WAIT-2 ends by
            // the stack's own linger.
            self.closed = true;
            conn.close(cx.arena, cx.release);
        } else if self.owed != Owed::Nothing {
            // The peer does not take its answer.
            self.closed = true;
            conn.abort();
        } else {
            // A request too slow to arrive.
            self.owed = Owed::Error(408);
            self.sent = 0;
        }
    }

    /// Queues what is left of `bytes` for sending, a segment's worth per
    /// chunk; false when it did not all fit yet.
    fn queue(&mut self, bytes: &[u8], conn: &mut Conn, cx: &mut AppCx<'_>) -> bool {
        let piece_max = (conn.send_mss() as usize).min(cx.chunk_room).max(1);
        while (self.sent as usize) < bytes.len() {
            let rest = &bytes[self.sent as usize..];
            let n = rest.len().min(piece_max);
            if (conn.send_space() as usize) < n {
                return false;
            }
            if cx.arena.available() == 0 {
                cx.starved = true;
                return false;
            }
            let Some(c) = (cx.write)(&rest[..n]) else {
                cx.starved = true;
                return false;
            };
            let len = c.len() as u32;
            if let Err(c) = conn.send(c, cx.arena) {
                (cx.release)(c);
                cx.starved = true;
                return false;
            }
            self.sent += len;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HttpSettings {
        HttpSettings {
            status: 200,
            body: b"hi\n".to_vec(),
            content_type: "text/plain".into(),
            max_header_bytes: 8192,
            max_body_bytes: 1024,
            keep_alive: true,
            idle_timeout_s: 60,
            request_timeout_s: 30,
        }
    }

    #[test]
    fn answers_are_exact_http() {
        let s = HttpService::new(&settings());
        let r = |head, keep_alive, http10| Request { head, keep_alive, http10 };
        let (a, close) = s.for_request(r(false, true, false));
        assert_eq!(
            std::str::from_utf8(a).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: sluice\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nhi\n"
        );
        assert!(!close);
        let (a, close) = s.for_request(r(true, false, false));
        assert!(close);
        assert!(
            std::str::from_utf8(a).unwrap().ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"),
            "HEAD: no body"
        );
        let (a, _) = s.for_request(r(false, true, true));
        assert!(std::str::from_utf8(a).unwrap().contains("Connection: keep-alive\r\n"), "1.0 is told");
        let e = std::str::from_utf8(s.error(431)).unwrap();
        assert!(e.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n") && e.contains("Connection: close"));
        let no_keep = HttpService::new(&HttpSettings { keep_alive: false, ..settings() });
        assert!(no_keep.for_request(r(false, true, false)).1, "keep_alive = false closes after every answer");
    }
}
