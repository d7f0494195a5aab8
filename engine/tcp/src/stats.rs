//! What the TCP code counts: events and named drop reasons, per core. The
//! state machine bumps plain counters; the engine publishes them.

/// Declares an enum whose variants have stable snake_case names and doc
/// comments that double as help texts (used here and by the engine).
#[macro_export]
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[doc = $vd:literal])* $v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum $name { $($(#[doc = $vd])* $v,)* }
        impl $name {
            /// Every variant, in order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();
            /// The stable snake_case name used in stats output.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
            /// What it counts: its doc comment, for help texts.
            pub fn help(self) -> &'static str {
                match self { $($name::$v => concat!($($vd),*).trim_ascii(),)* }
            }
            /// The variant named `name`.
            pub fn by_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }
        }
    };
}

named_enum! {
    /// TCP events.
    TcpCounter {
        /// Connections opened by us (SYN sent).
        ActiveOpens = "tcp_active_opens",
        /// Active opens refused: the table was full, the tuple in use, or another core owns the flow.
        ConnectFailed = "tcp_connect_failed",
        /// Connections accepted (handshake completed on a listener).
        PassiveOpens = "tcp_passive_opens",
        /// Segments received (valid checksum, to a TCP service or connection).
        SegsIn = "tcp_segs_in",
        /// Segments sent.
        SegsOut = "tcp_segs_out",
        /// Resets received and accepted.
        ResetsIn = "tcp_resets_in",
        /// Resets sent.
        ResetsOut = "tcp_resets_out",
        /// Retransmissions after the retransmission timer expired.
        RetransRto = "tcp_retrans_rto",
        /// Retransmissions in fast recovery (duplicate ACKs or SACK).
        RetransFast = "tcp_retrans_fast",
        /// Tail loss probes sent (RFC 8985).
        TlpProbes = "tcp_tlp_probes",
        /// RACK reordering timer expiries (RFC 8985 6.3): losses looked for
        /// again without an ACK.
        RackTimeouts = "tcp_rack_timeouts",
        /// SYN or SYN-ACK retransmissions.
        RetransSyn = "tcp_retrans_syn",
        /// Retransmission timer expiries.
        RtoExpired = "tcp_rto_expired",
        /// Fast recoveries entered.
        FastRecoveries = "tcp_fast_recoveries",
        /// SYN cookies sent (the SYN queue was full).
        SynCookiesSent = "tcp_syncookies_sent",
        /// Handshakes completed by a valid SYN cookie.
        SynCookiesValid = "tcp_syncookies_valid",
        /// ACKs to a listener that carried no valid cookie.
        SynCookiesFailed = "tcp_syncookies_failed",
        /// Handshakes dropped because the accept queue was full.
        ListenOverflows = "tcp_listen_overflows",
        /// Challenge ACKs sent (RFC 5961).
        ChallengeAcks = "tcp_challenge_acks",
        /// Challenge ACKs suppressed by the rate limit.
        ChallengeAcksLimited = "tcp_challenge_acks_limited",
        /// Segments that arrived out of order and were kept.
        OutOfOrder = "tcp_out_of_order",
        /// Received segments whose payload was copied behind the data
        /// before it in that one's frame (receive coalescing).
        RcvCoalesced = "tcp_rcv_coalesced",
        /// Zero-window probes sent.
        WindowProbes = "tcp_window_probes",
        /// Keepalive probes sent.
        KeepaliveProbes = "tcp_keepalive_probes",
        /// Connections aborted because the peer stopped answering.
        Timeouts = "tcp_timeouts",
        /// Delayed ACKs sent by their timer.
        DelayedAcks = "tcp_delayed_acks",
        /// Connections that entered TIME-WAIT.
        TimeWaits = "tcp_time_waits",
        /// TIME-WAIT entries ended early because the core's table was full.
        TimeWaitOverflow = "tcp_time_wait_overflow",
        /// Connections closed (every way).
        Closed = "tcp_closed",
    }
}

named_enum! {
    /// Why a TCP segment was dropped (or its payload not kept).
    TcpDrop {
        /// Not acceptable: outside the receive window (RFC 9293 3.10.7.4).
        OutOfWindow = "tcp_out_of_window",
        /// PAWS: an old timestamp (RFC 7323 5).
        PawsRejected = "tcp_paws",
        /// A RST that did not match exactly (answered with a challenge ACK
        /// or ignored, RFC 5961 3).
        RstNotExact = "tcp_rst_not_exact",
        /// A SYN on a synchronized connection (RFC 5961 4).
        SynInSync = "tcp_syn_in_sync",
        /// An ACK for data never sent, or too old (RFC 5961 5).
        BadAck = "tcp_bad_ack",
        /// No ACK flag on a synchronized connection.
        NoAck = "tcp_no_ack",
        /// The receive buffer (bytes or frames) was full.
        RcvBufFull = "tcp_rcv_buf_full",
        /// Too many out-of-order segments held.
        OooFull = "tcp_ooo_full",
        /// The core's chunk arena was full.
        ArenaFull = "tcp_arena_full",
        /// A segment for a connection in a state that takes none (CLOSED).
        Closed = "tcp_closed_conn",
        /// A SYN-ACK that did not acknowledge our SYN.
        BadSynAck = "tcp_bad_synack",
    }
}

/// One core's TCP counters.
#[derive(Clone, Debug)]
pub struct TcpStats {
    counters: [u64; TcpCounter::COUNT],
    drops: [u64; TcpDrop::COUNT],
}

impl Default for TcpStats {
    fn default() -> Self {
        TcpStats { counters: [0; TcpCounter::COUNT], drops: [0; TcpDrop::COUNT] }
    }
}

impl TcpStats {
    /// Counts `n` of `c`.
    #[inline]
    pub fn add(&mut self, c: TcpCounter, n: u64) {
        self.counters[c as usize] += n;
    }

    /// Counts one drop for `r`.
    #[inline]
    pub fn drop(&mut self, r: TcpDrop) {
        self.drops[r as usize] += 1;
    }

    /// Counter `c`.
    pub fn counter(&self, c: TcpCounter) -> u64 {
        self.counters[c as usize]
    }

    /// Drops for `r`.
    pub fn drops(&self, r: TcpDrop) -> u64 {
        self.drops[r as usize]
    }
}
