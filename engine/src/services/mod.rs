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
    /// Set by the service when it could not go on for want of a frame or
    /// an arena node (not for want of send space): the connection is
    /// served again on the next pass, since no ACK may come to wake it.
    pub starved: bool,
}

/// A connection's service state as its slot keeps it: the small states
/// inline, the big ones (HTTP's parser and timers, the rr client's send
/// log) in the core's [`AppStates`] at the connection's id, so an echo
/// connection does not carry an HTTP connection's bytes.
#[derive(Clone, Copy, Debug)]
pub enum App {
    /// Sends back what it reads.
    Echo(echo::Echo),
    /// Reads and drops.
    Discard(discard::Discard),
    /// Answers HTTP requests (state in [`AppStates`]).
    Http,
    /// Sends requests and checks their echoes (sluice-bench's client;
    /// state in [`AppStates`]).
    RrClient,
}

/// The state of a core's HTTP and rr-client connections, by connection id.
/// Reserved at start for the core's connection capacity, only for the kinds
/// the core serves, and made as ids are first used (no reallocation, so
/// nothing is allocated on the packet path).
#[derive(Debug)]
pub struct AppStates {
    http: Vec<http::Http>,
    rr: Vec<rr_client::RrClient>,
}

/// Slot `id` of `v`, made (with its default) if `id` was never used; within
/// the capacity reserved at start.
fn state_at<T: Default + Clone>(v: &mut Vec<T>, id: u32) -> &mut T {
    let i = id as usize;
    if i >= v.len() {
        assert!(i < v.capacity(), "connection {id} beyond the {} service states reserved", v.capacity());
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl AppStates {
    /// Room for `capacity` connections of the kinds in `kinds`.
    pub fn new(capacity: u32, kinds: impl IntoIterator<Item = ServiceKind>) -> Self {
        let (mut http, mut rr) = (false, false);
        for k in kinds {
            http |= k == ServiceKind::Http;
            rr |= k == ServiceKind::RrClient;
        }
        let room = |on: bool| if on { capacity as usize } else { 0 };
        AppStates { http: Vec::with_capacity(room(http)), rr: Vec::with_capacity(room(rr)) }
    }

    /// Bytes a connection of `kind` keeps here.
    pub const fn bytes_for(kind: ServiceKind) -> usize {
        match kind {
            ServiceKind::Http => std::mem::size_of::<http::Http>(),
            ServiceKind::RrClient => std::mem::size_of::<rr_client::RrClient>(),
            _ => 0,
        }
    }

    /// Connection `id` (new, made at `now`) of `app` starts from the
    /// service's first state. Every side table the core has grows with
    /// the ids, whatever the kind: one entry per new id, never a gap filled
    /// at once (a first HTTP connection at id 900 000 would otherwise write
    /// 900 000 states in one pass). On a core that serves HTTP, each
    /// connection slot so has HTTP state beside it.
    pub fn start(&mut self, id: u32, app: &App, now: u64) {
        if self.http.capacity() > 0 {
            state_at(&mut self.http, id);
        }
        if self.rr.capacity() > 0 {
            state_at(&mut self.rr, id);
        }
        match app {
            App::Http => *state_at(&mut self.http, id) = http::Http::default(),
            App::RrClient => *state_at(&mut self.rr, id) = rr_client::RrClient::opened_at(now),
            App::Echo(_) | App::Discard(_) => {}
        }
    }

    /// The rr client state of connection `id`.
    pub fn rr(&mut self, id: u32) -> &mut rr_client::RrClient {
        state_at(&mut self.rr, id)
    }
}

impl App {
    /// Whether `kind` accepts connections (a listener), as opposed to
    /// opening them.
    pub fn listens(kind: ServiceKind) -> bool {
        matches!(kind, ServiceKind::Echo | ServiceKind::Discard | ServiceKind::Http)
    }

    /// The state a new connection of a `kind` service starts in; its side
    /// state is set with [`AppStates::start`] once it has an id.
    pub fn new(kind: ServiceKind) -> Option<App> {
        match kind {
            ServiceKind::Echo => Some(App::Echo(echo::Echo::default())),
            ServiceKind::Discard => Some(App::Discard(discard::Discard::default())),
            ServiceKind::Http => Some(App::Http),
            ServiceKind::RrClient => Some(App::RrClient),
            _ => None,
        }
    }

    /// When connection `id`'s service wants to run again with nothing
    /// happening, engine µs.
    pub fn deadline(&self, id: u32, states: &AppStates) -> Option<u64> {
        match self {
            App::Http => states.http.get(id as usize).and_then(http::Http::deadline),
            _ => None,
        }
    }

    /// Does the service's work on connection `id` after an event.
    pub fn run(&mut self, id: u32, states: &mut AppStates, conn: &mut Conn, cx: &mut AppCx<'_>) {
        match self {
            App::Echo(e) => e.run(conn, cx.arena, cx.release),
            App::Discard(d) => d.run(conn, cx.arena, cx.release),
            App::Http => state_at(&mut states.http, id).run(conn, cx),
            App::RrClient => state_at(&mut states.rr, id).run(conn, cx),
        }
    }
}
