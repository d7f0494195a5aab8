//! What a TCP service does with a connection's bytes: echo (RFC 862),
//! discard (RFC 863) and, with the next step, an HTTP responder. Each is
//! called after anything happened on the connection and moves data between
//! its receive and send queues in place: echo sends the received chunks
//! themselves, so the reply leaves from the frame the request came in.
mod discard;
mod echo;

use crate::config::ServiceKind;
use crate::tcp::chunk::FrameChunk;
use sluice_tcp::buf::Arena;
use sluice_tcp::Conn;

/// A connection's service state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// Sends back what it reads.
    Echo(echo::Echo),
    /// Reads and drops.
    Discard(discard::Discard),
}

impl App {
    /// The state a new connection of a `kind` service starts in.
    pub fn new(kind: ServiceKind) -> Option<App> {
        match kind {
            ServiceKind::Echo => Some(App::Echo(echo::Echo::default())),
            ServiceKind::Discard => Some(App::Discard(discard::Discard::default())),
            _ => None,
        }
    }

    /// Does the service's work on `conn` after an event; chunks it drops go
    /// to `release`.
    pub fn run(&mut self, conn: &mut Conn, arena: &mut Arena<FrameChunk>, release: &mut dyn FnMut(FrameChunk)) {
        match self {
            App::Echo(e) => e.run(conn, arena, release),
            App::Discard(d) => d.run(conn, arena, release),
        }
    }
}
