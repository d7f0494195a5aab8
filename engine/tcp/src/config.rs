//! Per-connection settings, from the engine's configuration.
use crate::cc::Algorithm;

/// How a connection behaves. Times in µs, sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// MSS we advertise (MTU − 40).
    pub mss: u16,
    /// Receive buffer: the most data we hold for the application.
    pub rcv_buf: u32,
    /// Send buffer: the most data the application may queue.
    pub snd_buf: u32,
    /// The most chunks (frames) received data may hold, so a connection's
    /// frames are capped whatever the bytes (small segments share a chunk,
    /// receive coalescing; larger ones take one each).
    pub rcv_chunks: u32,
    /// The most out-of-order segments held.
    pub ooo_chunks: u32,
    /// The most chunks queued for sending: with small writes each takes a
    /// frame too, so this caps the send side's frames whatever the bytes.
    pub snd_chunks: u32,
    /// Offer window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Nagle's algorithm (RFC 9293 3.7.4); off: send small segments at once.
    pub nagle: bool,
    /// Delayed ACK timeout (0: ACK every segment at once).
    pub delayed_ack: u64,
    /// RTO floor.
    pub rto_min: u32,
    /// RTO ceiling.
    pub rto_max: u32,
    /// RTO before the first sample.
    pub rto_initial: u32,
    /// SYN / SYN-ACK retransmissions before giving up.
    pub syn_retries: u8,
    /// Data retransmissions (consecutive timeouts) before giving up.
    pub retries: u8,
    /// TIME-WAIT length (2 MSL).
    pub time_wait: u64,
    /// How long an orphaned connection waits in FIN-WAIT-2.
    pub fin_wait2: u64,
    /// Idle time before keepalive probes (0: off).
    pub keepalive_idle: u64,
    /// Between keepalive probes.
    pub keepalive_interval: u64,
    /// Unanswered probes before the connection is dropped.
    pub keepalive_probes: u8,
    /// Congestion control.
    pub cc: Algorithm,
    /// Initial window, segments (RFC 6928: 10).
    pub initial_window: u32,
    /// Tail loss probes (RFC 8985 7).
    pub tlp: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            rcv_buf: 256 * 1024,
            snd_buf: 256 * 1024,
            rcv_chunks: 256,
            ooo_chunks: 128,
            snd_chunks: 256,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nagle: false,
            delayed_ack: 40_000,
            rto_min: 200_000,
            rto_max: 120_000_000,
            rto_initial: 1_000_000,
            syn_retries: 6,
            retries: 15,
            time_wait: 60_000_000,
            fin_wait2: 60_000_000,
            keepalive_idle: 7_200_000_000,
            keepalive_interval: 75_000_000,
            keepalive_probes: 9,
            cc: Algorithm::Cubic,
            initial_window: 10,
            tlp: true,
        }
    }
}

impl TcpConfig {
    /// The window scale we offer: the smallest shift that lets the window
    /// field say `rcv_buf` (RFC 7323 2.3), at most 14.
    pub fn wscale(&self) -> u8 {
        let mut s = 0u8;
        while s < 14 && (self.rcv_buf >> s) > u16::MAX as u32 {
            s += 1;
        }
        s
    }
}
