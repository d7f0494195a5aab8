//! What a TCP service does with a connection's bytes: echo (RFC 862),
//! discard (RFC 863) and the HTTP/1.1 responder. Each is called after
//! anything happened on the connection and moves data between its receive
//! and send queues in place: echo sends the received chunks themselves, so
//! the reply leaves from the frame the request came in; HTTP parses in
//! place and copies its prepared answer into fresh frames.
mod discard;
mod echo;
pub mod http;
pub mod http_parse;
pub mod rr_client;

use crate::afxdp::FrameTable;
use crate::config::ServiceKind;
use crate::tcp::chunk::FrameChunk;
use sluice_tcp::buf::Arena;
use sluice_tcp::Conn;

/// What a service gets for one call.
pub struct AppCx<'a> {
    /// The core's chunk arena.
    pub arena: &'a mut Arena<FrameChunk>,
    /// Where chunks the service drops go.
    pub release: &'a mut dyn FnMut(FrameChunk),
    /// The UMEM (to read received chunks in place).
    pub table: &'a FrameTable,
    /// Copies bytes into a fresh frame, as a chunk with room for headers in
    /// front (`None`: no frame free now).
    pub write: &'a mut dyn FnMut(&[u8]) -> Option<FrameChunk>,
    /// The most bytes `write` takes at once.
    pub chunk_room: usize,
    /// The HTTP service's answers, for an HTTP connection.
    pub http: Option<&'a http::HttpService>,
    /// For the load generator's connections: what to send, where to count.
    pub rr: Option<(&'a rr_client::RrSettings, &'a rr_client::RrSink)>,
    /// Now, engine µs.
    pub now: u64,
    /// When the connection was made (its SYN), engine µs.
    pub opened_at: u64,
    /// Set by the service when it could not go on for want of a frame or
    /// an arena node (not for want of send space): the connection is
    /// served again on the next pass, since no ACK may come to wake it.
    pub starved: bool,
}

/// A connection's service state.
#[derive(Clone, Copy, Debug)]
pub enum App {
    /// Sends back what it reads.
    Echo(echo::Echo),
    /// Reads and drops.
    Discard(discard::Discard),
    /// Answers HTTP requests.
    Http(http::Http),
    /// Sends requests and checks their echoes (sluice-bench's client).
    RrClient(rr_client::RrClient),
}

impl App {
    /// Whether `kind` accepts connections (a listener), as opposed to
    /// opening them.
    pub fn listens(kind: ServiceKind) -> bool {
        matches!(kind, ServiceKind::Echo | ServiceKind::Discard | ServiceKind::Http)
    }

    /// The state a new connection of a `kind` service starts in.
    pub fn new(kind: ServiceKind) -> Option<App> {
        match kind {
            ServiceKind::Echo => Some(App::Echo(echo::Echo::default())),
            ServiceKind::Discard => Some(App::Discard(discard::Discard::default())),
            ServiceKind::Http => Some(App::Http(http::Http::default())),
            ServiceKind::RrClient => Some(App::RrClient(rr_client::RrClient::default())),
            _ => None,
        }
    }

    /// When the service wants to run again with nothing happening, engine µs.
    pub fn deadline(&self) -> Option<u64> {
        match self {
            App::Http(h) => h.deadline(),
            _ => None,
        }
    }

    /// Does the service's work on `conn` after an event.
    pub fn run(&mut self, conn: &mut Conn, cx: &mut AppCx<'_>) {
        match self {
            App::Echo(e) => e.run(conn, cx.arena, cx.release),
            App::Discard(d) => d.run(conn, cx.arena, cx.release),
            App::Http(h) => h.run(conn, cx),
            App::RrClient(c) => c.run(conn, cx),
        }
    }
}
