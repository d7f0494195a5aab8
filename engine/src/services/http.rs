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
use super::http_parse::{Event, Limits, Parser, Request};
use super::AppCx;
use crate::config::HttpSettings;
use sluice_tcp::buf::Chunk;
use sluice_tcp::Conn;

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
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
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
        let errors = [400u16, 413, 414, 431, 501, 505]
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
/// far, and whether the connection ends after it.
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
}

impl Default for Http {
    fn default() -> Self {
        Http { parser: Parser::default(), owed: Owed::Nothing, sent: 0, closing: false, closed: false }
    }
}

impl Http {
    pub(super) fn run(&mut self, conn: &mut Conn, cx: &mut AppCx<'_>) {
        let Some(svc) = cx.http else { return };
        loop {
            if self.owed != Owed::Nothing {
                let (bytes, close) = match self.owed {
                    Owed::Answer(r) => svc.for_request(r),
                    Owed::Continue => (&svc.continue_[..], false),
                    Owed::Error(s) => (svc.error(s), true),
                    Owed::Nothing => unreachable!("checked"),
                };
                if !self.queue(bytes, conn, cx) {
                    // The send buffer (or the pool) is full: the rest waits
                    // for the peer's ACKs, and reading waits with it.
                    return;
                }
                self.owed = Owed::Nothing;
                self.sent = 0;
                if close {
                    self.closing = true;
                    conn.shutdown();
                }
            }
            if self.closing {
                // Nothing more is answered: what still comes is dropped.
                let n = conn.recv_queue().bytes();
                conn.consume(n, cx.arena, cx.release);
                break;
            }
            let q = conn.recv_queue();
            if q.is_empty() {
                break;
            }
            let head = q.head();
            let (used, ev) = {
                let Some(bytes) = cx.arena.node_mut(head).chunk_mut().bytes(cx.table) else { break };
                self.parser.feed(bytes, &svc.lim)
            };
            conn.consume(used as u32, cx.arena, cx.release);
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
    }

    /// Queues what is left of `bytes` for sending, a segment's worth per
    /// chunk; false when it did not all fit yet.
    fn queue(&mut self, bytes: &[u8], conn: &mut Conn, cx: &mut AppCx<'_>) -> bool {
        let piece_max = (conn.send_mss() as usize).min(cx.chunk_room).max(1);
        while (self.sent as usize) < bytes.len() {
            let rest = &bytes[self.sent as usize..];
            let n = rest.len().min(piece_max);
            if (conn.send_space() as usize) < n || cx.arena.available() == 0 {
                return false;
            }
            let Some(c) = (cx.write)(&rest[..n]) else { return false };
            let len = c.len() as u32;
            if let Err(c) = conn.send(c, cx.arena) {
                (cx.release)(c);
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
