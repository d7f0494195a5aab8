//! The engine's TCP chunk: payload bytes that stay in their UMEM frame.
//!
//! A chunk is `Held` while this core has the frame's token (received data
//! not yet consumed, send data between transmissions) and `Lent` while its
//! frame is on a tx ring as a segment: then only the frame's index and the
//! payload range are kept, and the token comes back with the completion
//! (the port's route names the connection), which makes the chunk `Held`
//! again: the transmitted frame is the retransmission copy.
use crate::afxdp::{Frame, FrameTable, Packet};

/// Payload in a frame.
#[derive(Debug)]
pub enum FrameChunk {
    /// The frame is here: its payload is `packet`'s range.
    Held(Packet),
    /// The frame is on a tx ring: the payload will be `off .. off + len` of
    /// frame `index` when it comes back.
    Lent {
        /// The frame's index.
        index: u32,
        /// Offset of the payload in the frame.
        off: u16,
        /// Payload bytes.
        len: u16,
    },
}

impl FrameChunk {
    /// The payload `off .. off + len` of `frame`.
    pub fn new(frame: Frame, off: u16, len: u16) -> Self {
        FrameChunk::Held(Packet::new(frame, off, len))
    }

    /// Offset of the payload in its frame.
    pub fn off(&self) -> u16 {
        match self {
            FrameChunk::Held(p) => p.off(),
            FrameChunk::Lent { off, .. } => *off,
        }
    }

    /// The frame's index.
    pub fn index(&self) -> u32 {
        match self {
            FrameChunk::Held(p) => p.frame.index(),
            FrameChunk::Lent { index, .. } => *index,
        }
    }

    /// The payload bytes, if the frame is here.
    pub fn bytes<'a>(&'a mut self, table: &'a FrameTable) -> Option<&'a mut [u8]> {
        match self {
            FrameChunk::Held(p) => table.packet_mut(p),
            FrameChunk::Lent { .. } => None,
        }
    }

    /// Takes the frame out to send it (the chunk becomes `Lent`); `None` if
    /// it is already out.
    pub fn lend(&mut self) -> Option<Packet> {
        let FrameChunk::Held(p) = self else { return None };
        let lent = FrameChunk::Lent { index: p.frame.index(), off: p.off(), len: p.len() };
        match std::mem::replace(self, lent) {
            FrameChunk::Held(p) => Some(p),
            FrameChunk::Lent { .. } => unreachable!("matched Held above"),
        }
    }

    /// The frame came back from the tx ring: the chunk holds it again.
    /// Gives the frame back if this chunk is not waiting for it.
    pub fn restore(&mut self, frame: Frame) -> Result<(), Frame> {
        match *self {
            FrameChunk::Lent { index, off, len } if index == frame.index() => {
                *self = FrameChunk::Held(Packet::new(frame, off, len));
                Ok(())
            }
            _ => Err(frame),
        }
    }

    /// Receive coalescing: copies `other`'s payload right behind this
    /// chunk's in its frame, if both frames are here and this one has room
    /// (the connection then frees `other`'s frame).
    pub fn absorb(&mut self, other: &FrameChunk, table: &FrameTable) -> bool {
        let (FrameChunk::Held(p), FrameChunk::Held(o)) = (&mut *self, other) else { return false };
        let end = p.off() as usize + p.len() as usize;
        let n = o.len() as usize;
        let Ok(new_len) = u16::try_from(p.len() as usize + n) else { return false };
        if end + n > table.frame_size() as usize {
            return false;
        }
        let src = &table.frame(&o.frame)[o.off() as usize..o.off() as usize + n];
        table.frame_mut(&mut p.frame)[end..end + n].copy_from_slice(src);
        let off = p.off();
        p.set_range(off, new_len);
        true
    }

    /// The frame, if it is here (the chunk is done with).
    pub fn into_frame(self) -> Option<Frame> {
        match self {
            FrameChunk::Held(p) => Some(p.into_frame()),
            FrameChunk::Lent { .. } => None,
        }
    }
}

impl sluice_tcp::Chunk for FrameChunk {
    fn len(&self) -> usize {
        match self {
            FrameChunk::Held(p) => p.len() as usize,
            FrameChunk::Lent { len, .. } => *len as usize,
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            FrameChunk::Held(p) => {
                let (off, len) = (p.off(), p.len());
                let n = (n as u16).min(len);
                p.set_range(off + n, len - n);
            }
            FrameChunk::Lent { off, len, .. } => {
                let n = (n as u16).min(*len);
                *off += n;
                *len -= n;
            }
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            FrameChunk::Held(p) => {
                let (off, len) = (p.off(), p.len());
                p.set_range(off, len.min(n as u16));
            }
            FrameChunk::Lent { len, .. } => *len = (*len).min(n as u16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_tcp::Chunk;

    #[test]
    fn a_lent_chunk_takes_its_frame_back_with_the_range_it_was_left_at() {
        let t = FrameTable::create(2, 2048).unwrap();
        let mut fs = t.take_all();
        let other = fs.pop().unwrap();
        let f = fs.pop().unwrap();
        let idx = f.index();
        let mut c = FrameChunk::new(f, 300, 100);
        c.bytes(&t).unwrap().fill(7);
        let p = c.lend().expect("held");
        assert!(c.lend().is_none(), "already out");
        assert!(c.bytes(&t).is_none());
        // Acknowledged in part while out.
        c.advance(40);
        assert_eq!((c.off(), c.len()), (340, 60));
        let frame = p.into_frame();
        let other = c.restore(other).expect_err("not the frame it waits for");
        c.restore(frame).unwrap();
        assert_eq!(c.index(), idx);
        assert_eq!(c.bytes(&t).unwrap(), &[7u8; 60][..]);
        t.retire(c.into_frame().unwrap());
        t.retire(other);
    }

    #[test]
    fn absorb_copies_behind_the_payload_while_the_frame_has_room_and_both_are_here() {
        let t = FrameTable::create(3, 2048).unwrap();
        let mut fs = t.take_all();
        let (f3, f2, f1) = (fs.pop().unwrap(), fs.pop().unwrap(), fs.pop().unwrap());
        let mut a = FrameChunk::new(f1, 1000, 10);
        a.bytes(&t).unwrap().copy_from_slice(b"0123456789");
        let mut b = FrameChunk::new(f2, 66, 5);
        b.bytes(&t).unwrap().copy_from_slice(b"abcde");
        assert!(a.absorb(&b, &t));
        assert_eq!((a.off(), a.len()), (1000, 15));
        assert_eq!(a.bytes(&t).unwrap(), b"0123456789abcde");
        assert_eq!(b.bytes(&t).unwrap(), b"abcde", "the other chunk is left as it was");
        // 1015 + 1040 > 2048: no room.
        let mut big = FrameChunk::new(f3, 0, 1040);
        big.bytes(&t).unwrap().fill(1);
        assert!(!a.absorb(&big, &t));
        assert_eq!(a.len(), 15);
        // Read from the front: the room at the back is the same. 2048 -
        // 1015 = 1033 bytes fit exactly, one more does not.
        a.advance(5);
        assert_eq!((a.off(), a.len()), (1005, 10));
        let mut exact = FrameChunk::new(big.into_frame().unwrap(), 0, 1033);
        assert!(a.absorb(&exact, &t));
        assert_eq!((a.off(), a.len()), (1005, 1043));
        exact.truncate(1);
        assert!(!a.absorb(&exact, &t), "the frame is full");
        let mut big = exact;
        // A lent chunk takes nothing, nor gives.
        let lent = big.lend().unwrap();
        assert!(!a.absorb(&big, &t));
        assert!(!big.absorb(&b, &t));
        big.restore(lent.into_frame()).unwrap();
        for c in [a, b, big] {
            t.retire(c.into_frame().unwrap());
        }
    }
}
