//! TCP echo (RFC 862): every byte read is sent back, in order, from the
//! frame it arrived in (small segments coalesced on receipt share one);
//! the peer's FIN is answered with ours once all of
//! its data went back. Reading stops while the send buffer is full, so a
//! peer that does not read its echo sees our window close: nothing is lost.
use crate::tcp::chunk::FrameChunk;
use sluice_tcp::buf::{Arena, Chunk};
use sluice_tcp::Conn;

/// An echo connection's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Echo {
    closed: bool,
}

impl Echo {
    pub(super) fn run(&mut self, conn: &mut Conn, arena: &mut Arena<FrameChunk>, release: &mut dyn FnMut(FrameChunk)) {
        loop {
            let q = conn.recv_queue();
            if q.is_empty() {
                break;
            }
            let head = arena.node(q.head()).chunk().len() as u32;
            if conn.send_space() < head {
                // Back-pressure: the data waits in the receive queue.
                break;
            }
            // The move needs no spare arena node: taking the chunk off the
            // receive queue frees the node that queueing it takes.
            let Some(c) = conn.recv(arena) else { break };
            if let Err(c) = conn.send(c, arena) {
                // send_space was checked and a node freed; a connection that
                // stopped sending (reset meanwhile) gets nothing back.
                release(c);
            }
        }
        if !self.closed && conn.read_closed() {
            // Everything read was queued back: FIN after it.
            self.closed = true;
            conn.close(arena, release);
        }
    }
}
