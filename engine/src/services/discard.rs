//! TCP discard (RFC 863): read and drop; close when the peer closes.
use crate::tcp::chunk::FrameChunk;
use sluice_tcp::buf::Arena;
use sluice_tcp::Conn;

/// A discard connection's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Discard {
    closed: bool,
}

impl Discard {
    pub(super) fn run(&mut self, conn: &mut Conn, arena: &mut Arena<FrameChunk>, release: &mut dyn FnMut(FrameChunk)) {
        while let Some(c) = conn.recv(arena) {
            release(c);
        }
        if !self.closed && conn.read_closed() {
            self.closed = true;
            conn.close(arena, release);
        }
    }
}
