//! Zero-copy buffers: the bytes a connection holds stay in the caller's
//! chunks (in the engine, a UMEM frame and a byte range), linked into
//! per-connection queues through one preallocated arena per core, so the
//! packet path never allocates and an idle connection holds no memory but
//! three queue heads.
//!
//! A chunk is never dropped by this crate: it is stored, given back to the
//! application (`recv`), or released through the caller's release callback
//! (acknowledged send data, duplicate or out-of-window receive data, a
//! connection's queues when it is closed). The engine's chunks hold frame
//! tokens, and a dropped token would lose its frame.
use crate::seq::Seq;

/// A run of payload bytes the caller owns.
pub trait Chunk {
    /// Bytes in the chunk.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Drops the first `n` bytes (`n <= len`).
    fn advance(&mut self, n: usize);
    /// Keeps the first `n` bytes (`n <= len`).
    fn truncate(&mut self, n: usize);
}

/// No node.
pub const NIL: u32 = u32::MAX;

/// What a send-queue node knows about its bytes (RFC 6675 scoreboard,
/// RFC 8985 send times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Sequence number of the first byte.
    pub seq: Seq,
    /// When it was last sent, µs (0: never).
    pub sent_at: u64,
    /// Scoreboard bits ([`Meta::SACKED`], ...).
    pub bits: u8,
    /// Times it was sent.
    pub xmits: u8,
    /// Bytes from the chunk's start sent at least once (a chunk may be
    /// sent in pieces: the window or the MSS cuts it).
    pub sent: u32,
    /// While [`Meta::LOST`]: the bytes from the start deemed lost (what had
    /// been sent when it was marked).
    pub lost_to: u32,
    /// While [`Meta::LOST`]: the bytes from the start retransmitted since.
    pub resent: u32,
}

impl Meta {
    /// Covered by a SACK block.
    pub const SACKED: u8 = 1;
    /// Deemed lost, waiting to be retransmitted.
    pub const LOST: u8 = 2;
    /// Every lost byte was retransmitted and none is acknowledged or deemed
    /// lost again yet.
    pub const RETRANS: u8 = 4;
    /// Retransmitted at least once (no RTT sample from it: Karn).
    pub const EVER_RETRANS: u8 = 8;

    /// Whether bit `b` is set.
    #[inline]
    pub fn is(&self, b: u8) -> bool {
        self.bits & b != 0
    }
}

/// One chunk and its place in a queue.
#[derive(Debug)]
pub struct Node<C> {
    chunk: Option<C>,
    next: u32,
    /// What the queue keeps about the chunk.
    pub meta: Meta,
}

impl<C> Node<C> {
    /// The chunk (every node in a queue has one).
    #[inline]
    pub fn chunk(&self) -> &C {
        self.chunk.as_ref().expect("a queued node holds a chunk")
    }

    /// The chunk, mutably (the engine lends its frame to the tx ring through
    /// this).
    #[inline]
    pub fn chunk_mut(&mut self) -> &mut C {
        self.chunk.as_mut().expect("a queued node holds a chunk")
    }

    /// The next node of the queue, or [`NIL`].
    #[inline]
    pub fn next(&self) -> u32 {
        self.next
    }
}

/// A singly linked queue of chunks in an [`Arena`]: 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    head: u32,
    tail: u32,
    count: u32,
    bytes: u32,
}

impl Default for Queue {
    fn default() -> Self {
        Queue { head: NIL, tail: NIL, count: 0, bytes: 0 }
    }
}

impl Queue {
    /// Bytes in the queue.
    #[inline]
    pub fn bytes(&self) -> u32 {
        self.bytes
    }

    /// Chunks in the queue.
    #[inline]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// No chunks.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first node, or [`NIL`].
    #[inline]
    pub fn head(&self) -> u32 {
        self.head
    }

    /// The last node, or [`NIL`].
    #[inline]
    pub fn tail(&self) -> u32 {
        self.tail
    }
}

/// The nodes of every queue of a core, allocated once.
#[derive(Debug)]
pub struct Arena<C> {
    nodes: Vec<Node<C>>,
    free: u32,
    used: u32,
}

impl<C: Chunk> Arena<C> {
    /// An arena of `capacity` nodes: at most that many chunks queued at
    /// once over all connections (in the engine, at most one per frame).
    pub fn new(capacity: u32) -> Self {
        let mut nodes = Vec::with_capacity(capacity as usize);
        for i in 0..capacity {
            nodes.push(Node { chunk: None, next: if i + 1 < capacity { i + 1 } else { NIL }, meta: Meta::default() });
        }
        Arena { nodes, free: if capacity > 0 { 0 } else { NIL }, used: 0 }
    }

    /// Nodes in use.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Nodes free.
    pub fn available(&self) -> u32 {
        self.nodes.len() as u32 - self.used
    }

    /// Node `i`.
    #[inline]
    pub fn node(&self, i: u32) -> &Node<C> {
        &self.nodes[i as usize]
    }

    /// Node `i`, mutably.
    #[inline]
    pub fn node_mut(&mut self, i: u32) -> &mut Node<C> {
        &mut self.nodes[i as usize]
    }

    /// The chunk in node `i` if that node is in use (`None` for a free or
    /// out-of-range node): for a caller holding a node number from outside,
    /// such as a completed frame's route.
    #[inline]
    pub fn chunk_at(&mut self, i: u32) -> Option<&mut C> {
        self.nodes.get_mut(i as usize)?.chunk.as_mut()
    }

    /// Nodes in all (the capacity).
    pub fn capacity(&self) -> u32 {
        self.nodes.len() as u32
    }

    fn alloc(&mut self, chunk: C, meta: Meta) -> Result<u32, C> {
        if self.free == NIL {
            return Err(chunk);
        }
        let i = self.free;
        let n = &mut self.nodes[i as usize];
        self.free = n.next;
        n.chunk = Some(chunk);
        n.next = NIL;
        n.meta = meta;
        self.used += 1;
        Ok(i)
    }

    fn dealloc(&mut self, i: u32) -> C {
        let n = &mut self.nodes[i as usize];
        let c = n.chunk.take().expect("a queued node holds a chunk");
        n.next = self.free;
        self.free = i;
        self.used -= 1;
        c
    }

    /// Appends `chunk` (its first byte at `seq`); gives it back when the
    /// arena is full.
    pub fn push_back(&mut self, q: &mut Queue, chunk: C, seq: Seq) -> Result<(), C> {
        let len = chunk.len() as u32;
        let i = self.alloc(chunk, Meta { seq, ..Meta::default() })?;
        if q.tail == NIL {
            q.head = i;
        } else {
            self.nodes[q.tail as usize].next = i;
        }
        q.tail = i;
        q.count += 1;
        q.bytes += len;
        Ok(())
    }

    /// Inserts `chunk` after node `prev` (or at the front with [`NIL`]).
    pub fn insert_after(&mut self, q: &mut Queue, prev: u32, chunk: C, seq: Seq) -> Result<u32, C> {
        let len = chunk.len() as u32;
        let i = self.alloc(chunk, Meta { seq, ..Meta::default() })?;
        if prev == NIL {
            self.nodes[i as usize].next = q.head;
            q.head = i;
        } else {
            let next = self.nodes[prev as usize].next;
            self.nodes[i as usize].next = next;
            self.nodes[prev as usize].next = i;
        }
        if self.nodes[i as usize].next == NIL {
            q.tail = i;
        }
        q.count += 1;
        q.bytes += len;
        Ok(i)
    }

    /// Takes the first chunk and its metadata.
    pub fn pop_front(&mut self, q: &mut Queue) -> Option<(C, Meta)> {
        if q.head == NIL {
            return None;
        }
        let i = q.head;
        let meta = self.nodes[i as usize].meta;
        q.head = self.nodes[i as usize].next;
        if q.head == NIL {
            q.tail = NIL;
        }
        q.count -= 1;
        let c = self.dealloc(i);
        q.bytes -= c.len() as u32;
        Some((c, meta))
    }

    /// Removes the node after `prev` (the head with [`NIL`]) and returns its
    /// chunk.
    pub fn remove_after(&mut self, q: &mut Queue, prev: u32) -> Option<(C, Meta)> {
        let i = if prev == NIL { q.head } else { self.nodes[prev as usize].next };
        if i == NIL {
            return None;
        }
        let next = self.nodes[i as usize].next;
        if prev == NIL {
            q.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if q.tail == i {
            q.tail = prev;
        }
        q.count -= 1;
        let meta = self.nodes[i as usize].meta;
        let c = self.dealloc(i);
        q.bytes -= c.len() as u32;
        Some((c, meta))
    }

    /// Drops the first `n` bytes of the first chunk (which keeps at least
    /// one byte); its sequence number moves on by `n`.
    pub fn advance_front(&mut self, q: &mut Queue, n: u32) {
        let i = q.head;
        assert!(i != NIL, "advance of an empty queue");
        let node = &mut self.nodes[i as usize];
        let c = node.chunk.as_mut().expect("a queued node holds a chunk");
        assert!((n as usize) < c.len(), "advance past the chunk");
        c.advance(n as usize);
        node.meta.seq += n;
        q.bytes -= n;
    }

    /// Keeps the first `n` bytes of node `i` of `q` (for trimming).
    pub fn truncate_node(&mut self, q: &mut Queue, i: u32, n: u32) {
        let c = self.nodes[i as usize].chunk.as_mut().expect("a queued node holds a chunk");
        let before = c.len() as u32;
        assert!(n <= before);
        c.truncate(n as usize);
        q.bytes -= before - n;
    }

    /// Appends `other`'s bytes to node `i` of `q` if `absorb` can (the
    /// node's storage has room after its bytes); `q` grows by them.
    pub fn append_into(
        &mut self,
        q: &mut Queue,
        i: u32,
        other: &C,
        absorb: &mut dyn FnMut(&mut C, &C) -> bool,
    ) -> bool {
        let c = self.nodes[i as usize].chunk.as_mut().expect("a queued node holds a chunk");
        let before = c.len();
        if !absorb(c, other) {
            return false;
        }
        assert_eq!(c.len(), before + other.len(), "absorb appends all of the other chunk");
        q.bytes += other.len() as u32;
        true
    }

    /// Gives every chunk of `q` to `release` and empties it.
    pub fn release_all(&mut self, q: &mut Queue, release: &mut dyn FnMut(C)) {
        while let Some((c, _)) = self.pop_front(q) {
            release(c);
        }
    }

    /// The node holding the byte `offset` bytes after the head of `q`, and
    /// the offset within it; `None` past the end.
    pub fn locate(&self, q: &Queue, mut offset: u32) -> Option<(u32, u32)> {
        let mut i = q.head;
        while i != NIL {
            let len = self.nodes[i as usize].chunk().len() as u32;
            if offset < len {
                return Some((i, offset));
            }
            offset -= len;
            i = self.nodes[i as usize].next;
        }
        None
    }

    /// The nodes of `q`, in order: (index, node).
    pub fn iter<'a>(&'a self, q: &Queue) -> impl Iterator<Item = (u32, &'a Node<C>)> + 'a {
        let mut i = q.head;
        std::iter::from_fn(move || {
            if i == NIL {
                return None;
            }
            let at = i;
            let n = &self.nodes[i as usize];
            i = n.next;
            Some((at, n))
        })
    }
}

/// A chunk of bytes in memory, for tests and simple users: a shared buffer
/// and a range of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecChunk {
    data: std::rc::Rc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl VecChunk {
    /// A chunk of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        let end = bytes.len();
        VecChunk { data: std::rc::Rc::new(bytes), start: 0, end }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Appends `other`'s bytes if they fit within `cap` bytes of this
    /// chunk's buffer, counted from the buffer's start (as a frame holds
    /// them: bytes read from the front do not make room at the back): the
    /// [`Env::absorb`](crate::conn::Env) of tests and simple users.
    pub fn absorb(&mut self, other: &VecChunk, cap: usize) -> bool {
        if self.end + other.len() > cap {
            return false;
        }
        let mut v = self.data[..self.end].to_vec();
        v.extend_from_slice(other.bytes());
        self.data = std::rc::Rc::new(v);
        self.end += other.len();
        true
    }
}

impl Chunk for VecChunk {
    fn len(&self) -> usize {
        self.end - self.start
    }
    fn advance(&mut self, n: usize) {
        assert!(n <= self.len());
        self.start += n;
    }
    fn truncate(&mut self, n: usize) {
        assert!(n <= self.len());
        self.end = self.start + n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(b: &[u8]) -> VecChunk {
        VecChunk::new(b.to_vec())
    }

    #[test]
    fn queues_share_one_arena_and_return_every_chunk() {
        let mut a: Arena<VecChunk> = Arena::new(4);
        let (mut q1, mut q2) = (Queue::default(), Queue::default());
        a.push_back(&mut q1, c(b"abc"), Seq(100)).unwrap();
        a.push_back(&mut q2, c(b"xy"), Seq(0)).unwrap();
        a.push_back(&mut q1, c(b"defg"), Seq(103)).unwrap();
        assert_eq!((q1.bytes(), q1.count(), q2.bytes()), (7, 2, 2));
        assert_eq!(a.locate(&q1, 4), Some((a.iter(&q1).nth(1).unwrap().0, 1)));
        assert_eq!(a.locate(&q1, 7), None);
        a.advance_front(&mut q1, 2);
        assert_eq!(a.node(q1.head()).meta.seq, Seq(102));
        assert_eq!(a.node(q1.head()).chunk().bytes(), b"c");
        a.push_back(&mut q2, c(b"z"), Seq(2)).unwrap();
        assert!(a.push_back(&mut q2, c(b"full"), Seq(3)).is_err(), "four nodes in all");
        let (ch, meta) = a.pop_front(&mut q1).unwrap();
        assert_eq!((ch.bytes(), meta.seq), (&b"c"[..], Seq(102)));
        let mut got = Vec::new();
        a.release_all(&mut q2, &mut |c: VecChunk| got.push(c.bytes().to_vec()));
        assert_eq!(got, vec![b"xy".to_vec(), b"z".to_vec()]);
        assert_eq!(a.used(), 1);
        assert!(q2.is_empty() && q2.head() == NIL && q2.tail() == NIL);
    }

    #[test]
    fn insert_and_remove_in_the_middle_keep_the_tail_right() {
        let mut a: Arena<VecChunk> = Arena::new(8);
        let mut q = Queue::default();
        let first = a.insert_after(&mut q, NIL, c(b"1"), Seq(1)).unwrap();
        let third = a.insert_after(&mut q, first, c(b"3"), Seq(3)).unwrap();
        a.insert_after(&mut q, first, c(b"2"), Seq(2)).unwrap();
        assert_eq!(q.tail(), third);
        let order: Vec<u32> = a.iter(&q).map(|(_, n)| n.meta.seq.0).collect();
        assert_eq!(order, vec![1, 2, 3]);
        let second = a.iter(&q).nth(1).unwrap().0;
        let (_, m) = a.remove_after(&mut q, second).unwrap();
        assert_eq!(m.seq, Seq(3));
        assert_eq!(q.tail(), a.iter(&q).nth(1).unwrap().0, "tail moved back");
        a.push_back(&mut q, c(b"4"), Seq(4)).unwrap();
        let order: Vec<u32> = a.iter(&q).map(|(_, n)| n.meta.seq.0).collect();
        assert_eq!(order, vec![1, 2, 4]);
        let head = q.head();
        a.truncate_node(&mut q, head, 0);
        assert_eq!(q.bytes(), 2);
        a.release_all(&mut q, &mut |_| {});
        assert_eq!(a.used(), 0);
    }
}
