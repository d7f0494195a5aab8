//! sluice's TCP: a state machine after RFC 9293 and the way Linux
//! structures it, with no I/O and no clock.
//!
//! It takes the time and segments in, and gives segments to send and its
//! next deadline out, so the engine runs it over AF_XDP frames, the bench
//! runs the very same code as a load generator, and tests run it in memory
//! on a simulated clock against itself and against smoltcp.
//!
//! | module | for |
//! |---|---|
//! | `seq` | sequence-number arithmetic (wrapping compare) |
//! | `segment` | a segment's header fields and options, parsed and to send |
//! | `buf` | chunk arena and queues: zero-copy buffers that never allocate |
//! | `conn` | the connection: input, output, recovery, timers |
//! | `listener` | SYN queue of light half-open entries, SYN cookies |
//! | `rtt` | RTT estimation and RTO (RFC 6298) |
//! | `cc` | congestion control: NewReno, CUBIC |
//! | `timer_wheel` | one per core: every connection's next deadline |
//! | `stats` | counters and named drop reasons |
//! | `config` | per-connection settings |
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buf;
pub mod cc;
pub mod config;
pub mod conn;
pub mod listener;
pub mod rtt;
pub mod segment;
pub mod seq;
mod siphash;
pub mod stats;
#[doc(hidden)]
pub mod testkit;
pub mod timer_wheel;

pub use buf::{Arena, Chunk, Queue, VecChunk};
pub use config::TcpConfig;
pub use conn::{
    Blocked, Conn, ConnInfo, Emit, Env, Events, HalfOpen, Limits, Negotiated, PayloadRef, State, TimeWait, Transmitted,
    TwVerdict,
};
pub use listener::{Listen, Listener, Secrets, SynTimer, Tuple};
pub use segment::{Flags, OutSegment, Segment};
pub use seq::Seq;
pub use stats::{TcpCounter, TcpDrop, TcpStats};
pub use timer_wheel::TimerWheel;
