//! The AF_XDP layer: UMEM, the four rings, socket set-up with a shared UMEM,
//! need_wakeup kicks, and the eventfd that wakes a sleeping core.
//!
//! This is the only module of the engine with `unsafe` code (mmap'd rings and
//! frames, raw socket options); every block carries a `// SAFETY:` note. What
//! it exports is safe to use: rings copy descriptors in and out, and a frame's
//! bytes are reached only through an [`Owned`] token from the [`FrameTable`],
//! of which at most one exists per frame.
#![allow(unsafe_code)]

pub mod frames;
pub mod ring;
pub mod socket;
pub mod umem;
pub mod wake;

pub use frames::{FrameTable, Owned, Place};
pub use ring::{ConsumerRing, Desc, ProducerRing};
pub use socket::{open_queues, BindMode, SocketMode, XskConfig, XskError, XskSocket, XskStatistics};
pub use umem::UmemArea;
pub use wake::{poll_fds, EventFd};
