//! One TCP connection: the transmission control block of RFC 9293, after
//! the way Linux structures it.
//!
//! The connection does no I/O and never reads a clock. The caller feeds it
//! received segments ([`Conn::on_segment`], with the payload as the
//! caller's chunk) and expired timers ([`Conn::on_timer`] at the time
//! [`Conn::poll_at`] named), and asks it what to send
//! ([`Conn::transmit`], which calls the caller's [`Emit`] for each segment).
//! Every call takes an [`Env`]: the time, the core's chunk arena, its
//! counters and limits, and where released chunks go.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the block, its constructors, the application side |
//! | `input.rs` | "segment arrives": SYN-SENT first, then RFC 9293's order |
//! | `output.rs` | what to send now: SYN, retransmissions, data, FIN, ACKs, probes |
//! | `recovery.rs` | SACK scoreboard, loss detection (RFC 6675, 8985), recovery |
//! | `timers.rs` | RTO, delayed ACK, persist, keepalive, TLP, TIME-WAIT |
mod input;
mod output;
pub use output::reset_for;
mod recovery;
mod time_wait;
mod timers;
pub use time_wait::{TimeWait, TwVerdict};

use crate::buf::{Arena, Chunk, Queue, NIL};
use crate::cc::{Cc, CongestionControl};
use crate::config::TcpConfig;
use crate::rtt::Rtt;
use crate::segment::{OutSegment, SackBlock};
use crate::seq::Seq;
use crate::stats::{TcpCounter, TcpStats};
use std::sync::Arc;

/// RFC 9293's states (LISTEN lives in the listener, not here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection (before an open, after the end).
    Closed,
    /// Our SYN is out.
    SynSent,
    /// A SYN came in and our SYN-ACK is out.
    SynReceived,
    /// Open both ways.
    Established,
    /// We closed; our FIN is out.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's.
    FinWait2,
    /// The peer closed; we may still send.
    CloseWait,
    /// Both closed at once; waiting for our FIN's ACK.
    Closing,
    /// The peer closed, then we did; waiting for our FIN's ACK.
    LastAck,
    /// Both closed; lingering 2 MSL for stray segments.
    TimeWait,
}

impl State {
    /// Every state, in RFC 9293's order.
    pub const ALL: [State; 10] = [
        State::Closed,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    /// The stable lowercase name (`sluicectl conns`).
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::SynSent => "syn-sent",
            State::SynReceived => "syn-received",
            State::Established => "established",
            State::FinWait1 => "fin-wait-1",
            State::FinWait2 => "fin-wait-2",
            State::CloseWait => "close-wait",
            State::Closing => "closing",
            State::LastAck => "last-ack",
            State::TimeWait => "time-wait",
        }
    }

    /// Whether a SYN has been exchanged both ways.
    pub fn synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent | State::SynReceived)
    }
}

/// What happened since the caller last asked ([`Conn::take_events`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events(u8);

impl Events {
    /// The handshake completed.
    pub const ESTABLISHED: Events = Events(1);
    /// In-order data arrived for the application.
    pub const READABLE: Events = Events(2);
    /// Send buffer space was freed (data acknowledged).
    pub const WRITABLE: Events = Events(4);
    /// The peer sent FIN: no more data will come.
    pub const PEER_CLOSED: Events = Events(8);
    /// The connection is gone (CLOSED): the caller frees it.
    pub const CLOSED: Events = Events(16);
    /// It ended by a reset or a timeout rather than a close.
    pub const ABORTED: Events = Events(32);

    /// Whether all of `e` happened.
    pub fn has(self, e: Events) -> bool {
        self.0 & e.0 == e.0
    }

    /// Nothing happened.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn set(&mut self, e: Events) {
        self.0 |= e.0;
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, o: Events) -> Events {
        Events(self.0 | o.0)
    }
}

/// The rate limits a core shares between its connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Challenge ACKs left in the current second (RFC 5961 7).
    challenge_tokens: u32,
    challenge_second: u64,
    /// Challenge ACKs per second per core.
    pub challenge_per_s: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { challenge_tokens: 1000, challenge_second: 0, challenge_per_s: 1000 }
    }
}

impl Limits {
    /// Takes a challenge-ACK token at `now` (µs); false when the second's
    /// budget is spent.
    pub fn challenge_ack(&mut self, now: u64) -> bool {
        let sec = now / 1_000_000;
        if sec != self.challenge_second {
            self.challenge_second = sec;
            self.challenge_tokens = self.challenge_per_s;
        }
        if self.challenge_tokens == 0 {
            return false;
        }
        self.challenge_tokens -= 1;
        true
    }
}

/// What every call gets from the caller.
pub struct Env<'a, C> {
    /// Now, µs on the caller's monotonic clock.
    pub now: u64,
    /// The core's chunk arena.
    pub arena: &'a mut Arena<C>,
    /// The core's counters.
    pub stats: &'a mut TcpStats,
    /// The core's rate limits.
    pub limits: &'a mut Limits,
    /// Where chunks the connection no longer needs go (acknowledged send
    /// data, duplicate or unwanted receive data).
    pub release: &'a mut dyn FnMut(C),
    /// Receive coalescing: appends the second chunk's bytes to the first's
    /// if the first's storage has room after them (small segments then
    /// share one frame instead of holding one each); false leaves both as
    /// they were. The connection releases the second when it returns true.
    pub absorb: &'a mut dyn FnMut(&mut C, &C) -> bool,
}

/// Where a segment's payload is: `len` bytes starting `offset` bytes into
/// node `node` of the send queue, continuing into the following nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadRef {
    /// The first node.
    pub node: u32,
    /// Offset within its chunk.
    pub offset: u32,
    /// Bytes.
    pub len: u32,
}

/// The caller cannot send a segment now (no frame, or its payload is still
/// on a tx ring): the connection tries again on the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked;

/// Sends segments: the engine builds frames, the tests a byte vector.
pub trait Emit<C> {
    /// Sends `seg`, with `payload` (from the send queue, in `arena`) when
    /// `seg.data` is set.
    fn emit(&mut self, seg: &OutSegment, payload: Option<PayloadRef>, arena: &mut Arena<C>) -> Result<(), Blocked>;
}

/// What [`Conn::transmit`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transmitted {
    /// Segments emitted.
    pub segments: u32,
    /// The caller refused one: call again later.
    pub blocked: bool,
}

/// Negotiated at the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's MSS option (536 without one, RFC 9293 3.7.1).
    pub peer_mss: u16,
    /// Our shift for the windows we advertise (0 without scaling).
    pub rcv_wscale: u8,
    /// The peer's shift for the windows it advertises.
    pub snd_wscale: u8,
    /// Both sides offered window scaling (the shifts may still be 0).
    pub window_scaling: bool,
    /// Both sides use timestamps.
    pub timestamps: bool,
    /// Both sides use SACK.
    pub sack: bool,
}

/// Engine µs as whole seconds (u32: 136 years).
pub fn secs(now_us: u64) -> u32 {
    (now_us / 1_000_000).min(u64::from(u32::MAX)) as u32
}

/// A connection's numbers for `sluicectl conns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow start threshold, bytes (`u32::MAX`: not yet set).
    pub ssthresh: u32,
    /// Smoothed RTT, µs.
    pub srtt_us: u32,
    /// The RTO now, µs.
    pub rto_us: u32,
    /// Bytes received for the application.
    pub bytes_in: u64,
    /// Bytes of data acknowledged by the peer.
    pub bytes_out: u64,
    /// Segments retransmitted.
    pub retransmits: u32,
    /// Bytes sent and not acknowledged.
    pub unacked: u32,
    /// The peer's receive window, bytes.
    pub snd_wnd: u32,
    /// Send MSS (payload per segment).
    pub mss: u32,
}

/// The transmission control block.
pub struct Conn {
    /// Shared by every connection made with the same settings (a pointer,
    /// not a copy per connection).
    pub(crate) cfg: Arc<TcpConfig>,
    pub(crate) state: State,
    pub(crate) events: Events,

    // Send sequence space (RFC 9293 3.3.1).
    pub(crate) iss: Seq,
    pub(crate) snd_una: Seq,
    pub(crate) snd_nxt: Seq,
    /// The highest sequence number sent (snd_nxt falls back after an RTO).
    pub(crate) snd_max: Seq,
    pub(crate) snd_wnd: u32,
    pub(crate) snd_wl1: Seq,
    pub(crate) snd_wl2: Seq,
    pub(crate) max_snd_wnd: u32,

    // Receive sequence space.
    pub(crate) irs: Seq,
    pub(crate) rcv_nxt: Seq,
    /// The right edge of the window last advertised (never moves left).
    pub(crate) rcv_adv: Seq,
    /// rcv_nxt when the window was last advertised (Linux's rcv_wup).
    pub(crate) rcv_wup: Seq,

    pub(crate) neg: Negotiated,
    /// Payload bytes per segment we send.
    pub(crate) mss: u32,
    /// Payload of the largest segment received (for ACK pacing).
    pub(crate) rcv_mss: u32,
    pub(crate) ts_recent: u32,
    /// When TS.Recent was last set, engine seconds (PAWS's 24-day rule).
    pub(crate) ts_recent_at: u32,
    pub(crate) ts_offset: u32,

    pub(crate) sndq: Queue,
    pub(crate) rcvq: Queue,
    pub(crate) ooo: Queue,
    /// First unsent byte of the send queue: node and offset (NIL: none).
    pub(crate) send_cursor: (u32, u32),

    /// The application will write no more: send FIN after the data.
    pub(crate) fin_queued: bool,
    /// The application closed: it reads no more either.
    pub(crate) orphan: bool,
    /// Our FIN's sequence number, once sent.
    pub(crate) fin_seq: Option<Seq>,
    /// The peer's FIN, seen out of order: its sequence number.
    pub(crate) peer_fin: Option<Seq>,
    /// A RST is to be sent and the connection closed.
    pub(crate) rst_pending: bool,
    /// A RST `<SEQ=x><CTL=RST>` answers an unacceptable ACK; the connection
    /// goes on (RFC 9293 3.10.7.3, SYN-RECEIVED step 5).
    pub(crate) reset_for: Option<Seq>,
    /// Our FIN must be sent again (the RTO fired while it was out).
    pub(crate) fin_lost: bool,
    /// What a timer asked to send.
    pub(crate) probe: timers::Probe,
    /// A tail loss probe is out (one per episode, RFC 8985 7.2).
    pub(crate) tlp_out: bool,
    /// The tail loss probe sends a new segment beyond the congestion window.
    pub(crate) tlp_new_data: bool,
    /// `t_tlp` is RACK's reordering timer (RFC 8985 6.3), not the probe's:
    /// the two share a slot, as Linux's share one timer.
    pub(crate) reo_armed: bool,
    /// The persist timer lets a segment smaller than the silly-window rule
    /// allows go out.
    pub(crate) sws_override: bool,

    pub(crate) rtt: Rtt,
    pub(crate) cc: Cc,
    pub(crate) rec: recovery::Recovery,

    // ACK state.
    pub(crate) ack_now: bool,
    /// Out-of-order segments received since the last ACK: a peer without
    /// SACK needs one duplicate ACK each (RFC 5681 4.2) to count to three,
    /// even when they arrived in one batch.
    pub(crate) dupacks_owed: u32,
    pub(crate) segs_unacked: u32,
    pub(crate) quickacks: u8,
    pub(crate) last_oow_ack: u64,
    /// The SACK blocks to report, most recent first (RFC 2018 4).
    pub(crate) sack_report: [SackBlock; 4],
    pub(crate) sack_report_len: u8,

    // Timers: absolute µs, 0 when off.
    pub(crate) t_rto: u64,
    pub(crate) t_delack: u64,
    pub(crate) t_persist: u64,
    pub(crate) t_keepalive: u64,
    pub(crate) t_linger: u64,
    pub(crate) t_tlp: u64,
    /// The handshake's SYN (or SYN-ACK) must be (re)sent.
    pub(crate) syn_pending: bool,
    /// When the SYN went, engine µs mod 2^32 (for its RTT sample: wrapping
    /// differences are right below 71 minutes).
    pub(crate) syn_sent_at: u32,
    pub(crate) syn_xmits: u8,
    pub(crate) persist_backoff: u8,
    pub(crate) keepalive_sent: u8,
    pub(crate) last_rx: u64,

    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) retransmits: u32,
    /// The application took data since the last ACK (a window update may
    /// be due, as Linux's tcp_cleanup_rbuf decides).
    pub(crate) rcv_consumed: bool,
}

/// What a listener learned from a SYN, to create the connection when the
/// handshake completes (a SYN queue entry, or a decoded SYN cookie).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalfOpen {
    /// The peer's ISN.
    pub irs: Seq,
    /// Our ISN (the SYN-ACK's sequence number).
    pub iss: Seq,
    /// What the SYN offered and we accepted.
    pub neg: Negotiated,
    /// The SYN's TSval (the first TS.Recent).
    pub ts_recent: u32,
    /// Our timestamp offset for the connection.
    pub ts_offset: u32,
    /// The peer's window on the SYN (unscaled, as SYN windows are).
    pub wnd: u16,
    /// When the one SYN-ACK was sent, µs: the handshake's RTT sample
    /// (0: none, the SYN-ACK was retransmitted or came from a cookie).
    pub synack_at: u64,
}

impl Conn {
    fn blank(cfg: Arc<TcpConfig>, iss: Seq, now: u64) -> Conn {
        let iw = cfg.initial_window.max(1) * cfg.mss.max(64) as u32;
        Conn {
            state: State::Closed,
            events: Events::default(),
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: Seq(0),
            max_snd_wnd: 0,
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_adv: Seq(0),
            rcv_wup: Seq(0),
            neg: Negotiated { peer_mss: 536, ..Negotiated::default() },
            mss: 536,
            rcv_mss: 536,
            ts_recent: 0,
            ts_recent_at: 0,
            ts_offset: 0,
            sndq: Queue::default(),
            rcvq: Queue::default(),
            ooo: Queue::default(),
            send_cursor: (NIL, 0),
            fin_queued: false,
            orphan: false,
            fin_seq: None,
            peer_fin: None,
            rst_pending: false,
            reset_for: None,
            fin_lost: false,
            probe: timers::Probe::None,
            tlp_out: false,
            tlp_new_data: false,
            reo_armed: false,
            sws_override: false,
            rtt: Rtt::new(),
            cc: Cc::new(cfg.cc, iw),
            cfg,
            rec: recovery::Recovery::default(),
            ack_now: false,
            dupacks_owed: 0,
            segs_unacked: 0,
            quickacks: 16,
            last_oow_ack: 0,
            sack_report: [SackBlock::default(); 4],
            sack_report_len: 0,
            t_rto: 0,
            t_delack: 0,
            t_persist: 0,
            t_keepalive: 0,
            t_linger: 0,
            t_tlp: 0,
            syn_pending: false,
            syn_sent_at: 0,
            syn_xmits: 0,
            persist_backoff: 0,
            keepalive_sent: 0,
            last_rx: now,
            bytes_in: 0,
            bytes_out: 0,
            retransmits: 0,
            rcv_consumed: false,
        }
    }

    /// An active open: SYN-SENT, the SYN to be sent by the next
    /// [`transmit`](Self::transmit). `iss` is the caller's ISN (RFC 6528),
    /// `ts_offset` its per-connection timestamp offset.
    pub fn connect(cfg: impl Into<Arc<TcpConfig>>, iss: Seq, ts_offset: u32, now: u64, stats: &mut TcpStats) -> Conn {
        let mut c = Conn::blank(cfg.into(), iss, now);
        c.ts_offset = ts_offset;
        c.state = State::SynSent;
        c.syn_pending = true;
        c.snd_nxt = iss;
        stats.add(TcpCounter::ActiveOpens, 1);
        c
    }

    /// The connection a listener's handshake produced: SYN-RECEIVED with
    /// our SYN-ACK already sent; feed it the ACK that completed the
    /// handshake with [`on_segment`](Self::on_segment).
    pub fn accept(cfg: impl Into<Arc<TcpConfig>>, h: &HalfOpen, now: u64) -> Conn {
        let mut c = Conn::blank(cfg.into(), h.iss, now);
        c.state = State::SynReceived;
        c.irs = h.irs;
        c.rcv_nxt = h.irs + 1;
        c.rcv_wup = c.rcv_nxt;
        c.snd_una = h.iss;
        c.snd_nxt = h.iss + 1;
        c.snd_max = c.snd_nxt;
        c.set_negotiated(h.neg);
        c.ts_recent = h.ts_recent;
        c.ts_recent_at = secs(now);
        c.ts_offset = h.ts_offset;
        // The SYN's window is never scaled (RFC 7323 2.2).
        c.snd_wnd = h.wnd as u32;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = h.irs;
        c.snd_wl2 = h.iss;
        // The right edge our SYN-ACK advertised.
        c.rcv_adv = c.rcv_nxt + c.rcv_space().min(u16::MAX as u32);
        // The handshake's round trip is the first RTT sample (Karn: only
        // when the SYN-ACK went once), so the first RTO is not the 1 s
        // initial one (as Linux samples it from the request sock).
        if h.synack_at != 0 && now > h.synack_at {
            c.rtt.sample((now - h.synack_at) as u32);
        }
        c
    }

    pub(crate) fn set_negotiated(&mut self, neg: Negotiated) {
        self.neg = neg;
        let opt = if neg.timestamps { 12 } else { 0 };
        // Our MSS is what we can receive; what we send is bounded by the
        // peer's option too. Options eat into it (Linux's mss_cache).
        self.mss = (neg.peer_mss.min(self.cfg.mss) as u32).saturating_sub(opt).max(64);
        self.rcv_mss = self.mss;
        let iw = self.cfg.initial_window.max(1) * self.mss;
        // RFC 6928: min(10 MSS, max(2 MSS, 14600)) for 10 segments.
        let iw = if self.cfg.initial_window == 10 { iw.min((2 * self.mss).max(14600)) } else { iw };
        self.cc = Cc::new(self.cfg.cc, iw);
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What happened since the last call, and clears it.
    pub fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    /// What was negotiated.
    pub fn negotiated(&self) -> Negotiated {
        self.neg
    }

    /// Numbers for display.
    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            srtt_us: self.rtt.srtt(),
            rto_us: self.rto(),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            retransmits: self.retransmits,
            unacked: self.snd_max.since(self.snd_una),
            snd_wnd: self.snd_wnd,
            mss: self.mss,
        }
    }

    /// The internals that explain a stuck connection (sequence space,
    /// scoreboard, timers), one line, for `sluicectl conns --json`.
    pub fn detail(&self, now: u64) -> String {
        let t = |at: u64| if at == 0 { "-".to_string() } else { format!("{}ms", at.saturating_sub(now) / 1000) };
        let r = &self.rec;
        format!(
            "snd una={} nxt={} max={} wnd={} wl1={} wl2={} | rcv nxt={} adv={} wup={} space={} | \
             rec active={} rto={} point={} sacked={} lost={} retrans={} pipe={} dupacks={} | \
             cwnd={} cursor={:?} fin_q={} fin={:?} | t rto={} delack={} persist={} tlp={} ka={} linger={} | \
             backoffs={} queues snd={}/{} rcv={}/{} ooo={}/{}",
            self.snd_una.0,
            self.snd_nxt.0,
            self.snd_max.0,
            self.snd_wnd,
            self.snd_wl1.0,
            self.snd_wl2.0,
            self.rcv_nxt.0,
            self.rcv_adv.0,
            self.rcv_wup.0,
            self.rcv_space(),
            r.active,
            r.after_rto,
            r.point.0,
            r.sacked,
            r.lost,
            r.retrans,
            self.pipe(),
            r.dupacks,
            self.cc.cwnd(),
            self.send_cursor,
            self.fin_queued,
            self.fin_seq.map(|s| s.0),
            t(self.t_rto),
            t(self.t_delack),
            t(self.t_persist),
            t(self.t_tlp),
            t(self.t_keepalive),
            t(self.t_linger),
            self.rtt.backoffs(),
            self.sndq.count(),
            self.sndq.bytes(),
            self.rcvq.count(),
            self.rcvq.bytes(),
            self.ooo.count(),
            self.ooo.bytes(),
        )
    }

    /// Payload bytes per segment we send.
    pub fn send_mss(&self) -> u32 {
        self.mss
    }

    /// Bytes the application may still queue (the send buffer's room).
    pub fn send_space(&self) -> u32 {
        if self.fin_queued
            || !matches!(self.state, State::Established | State::CloseWait | State::SynSent | State::SynReceived)
        {
            return 0;
        }
        if self.sndq.count() >= self.cfg.snd_chunks {
            return 0;
        }
        self.cfg.snd_buf.saturating_sub(self.sndq.bytes())
    }

    /// Queues `chunk` for sending; gives it back when the send buffer is
    /// full, the connection no longer sends, or the arena is full.
    pub fn send<C: Chunk>(&mut self, chunk: C, arena: &mut Arena<C>) -> Result<(), C> {
        if chunk.is_empty() || chunk.len() as u32 > self.send_space() {
            return Err(chunk);
        }
        let seq = self.data_start() + self.sndq.bytes();
        arena.push_back(&mut self.sndq, chunk, seq)?;
        if self.send_cursor.0 == NIL {
            self.send_cursor = (self.sndq.tail(), 0);
        }
        Ok(())
    }

    /// Our SYN is not acknowledged yet: SYN-SENT, SYN-RECEIVED, or the
    /// FIN-WAIT-1 a CLOSE in SYN-RECEIVED goes to: its FIN right behind the
    /// SYN, nothing acknowledged, and no data held. (A connection that sent
    /// a multiple of 2^32 bytes has its FIN at ISS + 1 too, and SND.UNA =
    /// ISS while its last byte is unacknowledged: but that byte is still in
    /// the send queue.)
    pub(crate) fn syn_unacked(&self) -> bool {
        match self.state {
            State::SynSent | State::SynReceived => true,
            State::FinWait1 => self.fin_seq == Some(self.iss + 1) && self.snd_una == self.iss && self.sndq.is_empty(),
            _ => false,
        }
    }

    /// The sequence number of the first byte of the send queue.
    pub(crate) fn data_start(&self) -> Seq {
        // Before the SYN is acknowledged, data starts after it. Said by the
        // state, not by SND.UNA = ISS alone: after 2^32 - 1 bytes
        // acknowledged SND.UNA is ISS again, and the queue would be read
        // one byte off.
        if self.syn_unacked() {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    /// Bytes of data queued and not yet acknowledged.
    pub fn send_queued(&self) -> u32 {
        self.sndq.bytes()
    }

    /// The next chunk of in-order received data, if any.
    pub fn recv<C: Chunk>(&mut self, arena: &mut Arena<C>) -> Option<C> {
        let (c, _) = arena.pop_front(&mut self.rcvq)?;
        self.rcv_consumed = true;
        Some(c)
    }

    /// The data queued for sending and not yet acknowledged (the engine
    /// finds a lent chunk here when its frame comes back).
    pub fn send_queue(&self) -> &Queue {
        &self.sndq
    }

    /// The received data not yet taken, for reading in place.
    pub fn recv_queue(&self) -> &Queue {
        &self.rcvq
    }

    /// Drops the first `n` bytes of the received data (consumed in place);
    /// the chunks emptied go to `release`.
    pub fn consume<C: Chunk>(&mut self, mut n: u32, arena: &mut Arena<C>, release: &mut dyn FnMut(C)) {
        self.rcv_consumed |= n > 0;
        while n > 0 && !self.rcvq.is_empty() {
            let head = arena.node(self.rcvq.head()).chunk().len() as u32;
            if n >= head {
                let (c, _) = arena.pop_front(&mut self.rcvq).expect("not empty");
                release(c);
                n -= head;
            } else {
                arena.advance_front(&mut self.rcvq, n);
                n = 0;
            }
        }
    }

    /// The peer has sent FIN and every byte before it was taken.
    pub fn read_closed(&self) -> bool {
        self.rcvq.is_empty() && self.peer_fin_received()
    }

    pub(crate) fn peer_fin_received(&self) -> bool {
        matches!(self.state, State::CloseWait | State::LastAck | State::Closing | State::TimeWait)
            || (self.state == State::Closed && self.peer_fin.is_some())
    }

    /// The application writes no more: FIN goes after the queued data
    /// (half-close; receiving goes on).
    pub fn shutdown(&mut self) {
        if matches!(self.state, State::Established | State::CloseWait | State::SynReceived) {
            self.fin_queued = true;
        } else if self.state == State::SynSent {
            // RFC 9293 3.10.4: CLOSE in SYN-SENT deletes the TCB (its SYN
            // timer with it).
            self.set_state_closed(false);
        }
    }

    /// The application is done with the connection: shut down, and read no
    /// more (data arriving after this resets the connection, RFC 2525 2.17,
    /// as Linux does; unread data resets it at once, RFC 9293 3.10.4).
    pub fn close<C: Chunk>(&mut self, arena: &mut Arena<C>, release: &mut dyn FnMut(C)) {
        self.orphan = true;
        if !self.rcvq.is_empty() {
            arena.release_all(&mut self.rcvq, release);
            // Unread data is lost: the peer hears of it by a RST in every
            // state it could have come in (CLOSING and LAST-ACK too, where
            // ABORT alone sends none), as Linux's tcp_close does.
            if matches!(self.state, State::Closing | State::LastAck) {
                self.rst_pending = true;
            } else {
                self.abort();
            }
            return;
        }
        self.shutdown();
    }

    /// Resets the connection: the connection is CLOSED, and a RST goes out
    /// with the next transmit where RFC 9293 3.10.5 sends one (SYN-RECEIVED,
    /// ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT: the peer may still send to us,
    /// as Linux's `tcp_need_reset`); in SYN-SENT, CLOSING, LAST-ACK and
    /// TIME-WAIT the TCB just goes (the peer has closed, or never knew us).
    pub fn abort(&mut self) {
        match self.state {
            State::Closed => {}
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                self.rst_pending = true;
            }
            State::SynSent | State::Closing | State::LastAck | State::TimeWait => self.set_state_closed(true),
        }
    }

    /// Gives every chunk the connection holds to `release` (when the caller
    /// frees it).
    pub fn release_all<C: Chunk>(&mut self, arena: &mut Arena<C>, release: &mut dyn FnMut(C)) {
        arena.release_all(&mut self.sndq, release);
        arena.release_all(&mut self.rcvq, release);
        arena.release_all(&mut self.ooo, release);
        self.send_cursor = (NIL, 0);
        self.rec = recovery::Recovery::default();
    }

    /// Chunks held (send, receive and out-of-order queues).
    pub fn chunks_held(&self) -> u32 {
        self.sndq.count() + self.rcvq.count() + self.ooo.count()
    }

    /// The RTO's bounds (the config's).
    pub(crate) fn rto_bounds(&self) -> crate::rtt::RtoBounds {
        crate::rtt::RtoBounds { min: self.cfg.rto_min, max: self.cfg.rto_max, initial: self.cfg.rto_initial }
    }

    /// The RTO to arm now.
    pub(crate) fn rto(&self) -> u32 {
        self.rtt.rto(self.rto_bounds())
    }

    /// Free receive buffer, bytes (what the window may offer).
    pub(crate) fn rcv_space(&self) -> u32 {
        let held = self.rcvq.bytes() + self.ooo.bytes();
        let chunks = self.rcvq.count() + self.ooo.count();
        // A segment takes a chunk (a frame) unless it is small enough to be
        // coalesced: the window offers no more full-sized segments than
        // chunks are left, or in-window data would have to be dropped.
        let by_chunks = self.cfg.rcv_chunks.saturating_sub(chunks).saturating_mul(self.rcv_mss.max(1));
        self.cfg.rcv_buf.saturating_sub(held).min(by_chunks)
    }

    pub(crate) fn set_state(&mut self, s: State) {
        self.state = s;
    }

    pub(crate) fn set_state_closed(&mut self, aborted: bool) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.events.set(Events::CLOSED);
        if aborted {
            self.events.set(Events::ABORTED);
        }
        self.t_rto = 0;
        self.t_delack = 0;
        self.t_persist = 0;
        self.t_keepalive = 0;
        self.t_linger = 0;
        self.t_tlp = 0;
    }

    /// Our TSval at `now`: milliseconds plus the connection's offset
    /// (RFC 7323 5.4, a random offset per connection as Linux does).
    pub(crate) fn tsval(&self, now: u64) -> u32 {
        ((now / 1000) as u32).wrapping_add(self.ts_offset)
    }

    /// The sequence number the connection's next RST or bare ACK carries.
    pub fn snd_nxt(&self) -> Seq {
        self.snd_nxt
    }

    /// RCV.NXT.
    pub fn rcv_nxt(&self) -> Seq {
        self.rcv_nxt
    }

    /// SND.UNA.
    pub fn snd_una(&self) -> Seq {
        self.snd_una
    }

    /// Our TSval at `now` (tests build segments with it).
    #[doc(hidden)]
    pub fn tsval_for_test(&self, now: u64) -> u32 {
        self.tsval(now)
    }

    /// TS.Recent (for a TIME-WAIT entry).
    pub fn ts_recent(&self) -> u32 {
        self.ts_recent
    }

    /// Whether the connection has anything to transmit right away (so a
    /// caller that batches can skip the call).
    pub fn wants_transmit(&self) -> bool {
        self.rst_pending
            || self.reset_for.is_some()
            || self.probe != timers::Probe::None
            || self.syn_pending
            || self.ack_now
            || self.rec.retransmit_pending(self)
            || (self.send_cursor.0 != NIL)
            || (self.fin_queued && self.fin_seq.is_none())
            || self.window_update_due()
    }
}

#[cfg(test)]
mod coalescing_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transitions;
