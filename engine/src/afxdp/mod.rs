//! The AF_XDP layer: UMEM, the four rings, socket set-up with a shared UMEM,
//! need_wakeup kicks, and the eventfd that wakes a sleeping core.
//!
//! This is the only module of the engine with `unsafe` code (mmap'd rings and
//! frames, raw socket options); every block carries a `// SAFETY:` note. What
//! it exports is safe to use: the rings are reached only through socket
//! methods that move [`Frame`] tokens on and off them, and a frame's bytes
//! only through its token, of which at most one exists per frame.
#![allow(unsafe_code)]

#[cfg(any(test, feature = "fake-kernel"))]
pub mod fake;
pub mod frames;
pub(crate) mod ring;
pub mod socket;
pub mod umem;
pub mod wake;

pub use frames::{frames_leaked, Census, Frame, FrameTable, Packet};
pub use ring::Desc;
pub use socket::{open_queues, BindMode, RxBatch, SocketMode, XskConfig, XskError, XskSocket, XskStatistics};
pub use umem::UmemArea;
pub use wake::{poll_fds, EventFd};
