//! Passive opens, after Linux's `tcp_conn_request`: a SYN gets a SYN-ACK
//! and a light half-open entry in a bounded SYN queue (not a connection
//! block); the ACK that completes the handshake finds the entry and the
//! connection is created. A full SYN queue switches to SYN cookies (RFC
//! 4987): the SYN-ACK's ISN encodes what the entry would have held (the
//! MSS, and with timestamps the window scale and SACK in the TSval), so no
//! state is kept and a flood of SYNs costs no memory. A retransmitted SYN
//! gets an identical SYN-ACK.
//!
//! Keys are per engine (shared by its cores: a cookie sent by one core is
//! checked by another), from the caller's random source.
use crate::config::TcpConfig;
use crate::conn::{HalfOpen, Negotiated};
use crate::segment::{Flags, OutSegment, Segment, Timestamp};
use crate::seq::Seq;
use crate::siphash::{siphash, SipKey};
use crate::stats::{TcpCounter, TcpDrop, TcpStats};

/// The four-tuple of a connection, as seen from sluice (IPv4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Our address.
    pub local_addr: [u8; 4],
    /// Our port.
    pub local_port: u16,
    /// The peer's address.
    pub remote_addr: [u8; 4],
    /// The peer's port.
    pub remote_port: u16,
}

impl Tuple {
    fn bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.local_addr);
        b[4..6].copy_from_slice(&self.local_port.to_be_bytes());
        b[6..10].copy_from_slice(&self.remote_addr);
        b[10..12].copy_from_slice(&self.remote_port.to_be_bytes());
        b
    }
}

/// The keys of the hashes (ISNs, cookies, timestamp offsets). Debug output
/// shows none of them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    isn: SipKey,
    cookie: [SipKey; 2],
    ts: SipKey,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Keys from 64 random bytes (the caller's entropy).
    pub fn from_random(r: [u64; 8]) -> Self {
        Secrets { isn: SipKey(r[0], r[1]), cookie: [SipKey(r[2], r[3]), SipKey(r[4], r[5])], ts: SipKey(r[6], r[7]) }
    }

    /// An initial sequence number for `t` at `now` µs (RFC 6528: a keyed
    /// hash of the tuple plus a clock ticking every 4 µs).
    pub fn isn(&self, t: &Tuple, now: u64) -> Seq {
        Seq((siphash(self.isn, &t.bytes()) as u32).wrapping_add((now / 4) as u32))
    }

    /// The timestamp offset of `t` (RFC 7323 5.4; per tuple, so a cookie
    /// connection gets the same one without state).
    pub fn ts_offset(&self, t: &Tuple) -> u32 {
        siphash(self.ts, &t.bytes()) as u32
    }

    fn cookie_hash(&self, i: usize, t: &Tuple, count: u32) -> u32 {
        let mut m = [0u8; 16];
        m[..12].copy_from_slice(&t.bytes());
        m[12..].copy_from_slice(&count.to_le_bytes());
        siphash(self.cookie[i], if i == 0 { &m[..12] } else { &m }) as u32
    }
}

/// MSS values a cookie can carry (3 bits), as Linux's msstab for IPv4.
const COOKIE_MSS: [u16; 4] = [536, 1300, 1440, 1460];
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// The cookie clock ticks every 64 s; cookies up to 2 ticks old are taken
/// (Linux's MAX_SYNCOOKIE_AGE).
const COOKIE_TICK_US: u64 = 64_000_000;
const COOKIE_MAX_AGE: u32 = 2;
/// Low TSval bits carrying the cookie's options (Linux's TSBITS): window
/// scale (4 bits, 0xf = none) and SACK (1 bit).
const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;

/// One half-open connection.
#[derive(Clone, Copy, Debug)]
struct Entry {
    tuple: Tuple,
    /// The caller's word for it (the engine: the peer's MAC).
    ctx: u64,
    half: HalfOpen,
    /// When its SYN-ACK was last sent, µs.
    sent_at: u64,
    /// SYN-ACKs sent.
    xmits: u8,
    used: bool,
}

/// What the listener wants done with a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Listen {
    /// Send this SYN-ACK; `kept` when a SYN queue entry holds the handshake
    /// (false for a cookie: no state anywhere).
    SynAck {
        /// The segment.
        seg: OutSegment,
        /// Whether state was kept.
        kept: bool,
    },
    /// The handshake completed: create the connection from this, then give
    /// it the segment (it may carry data).
    Accept(HalfOpen),
    /// Send this RST.
    Reset(OutSegment),
    /// Ignore the segment.
    Drop,
}

/// What [`Listener::on_timer`] reports of a SYN queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynTimer {
    /// Its SYN-ACK is due again: send this.
    Resend(OutSegment),
    /// It ran out of retransmissions and is gone.
    Expired,
}

/// A listening service's half-open connections on one core.
pub struct Listener {
    cfg: TcpConfig,
    secrets: Secrets,
    table: Vec<Entry>,
    used: u32,
    /// SYN-ACK retransmissions before an entry is dropped (Linux's
    /// tcp_synack_retries, 5).
    pub synack_retries: u8,
    /// Whether cookies are used when the queue is full (Linux's
    /// tcp_syncookies = 1).
    pub cookies: bool,
    /// Last time a cookie was sent, µs: ACKs are checked for cookies only
    /// for a while after (Linux's tcp_synq_no_recent_overflow).
    last_cookie: u64,
    /// Challenges (our SYN-ACK sent again for a doubtful RST or SYN) in
    /// the current second: (second, count), at most [`CHALLENGES_PER_S`].
    challenges: (u64, u32),
}

/// Challenges a listener sends a second at most (RFC 5961 7's rate
/// limit): a doubtful segment must not make us a reflector.
pub const CHALLENGES_PER_S: u32 = 100;

impl Listener {
    /// A listener whose SYN queue holds `capacity` entries (a power of
    /// two is not needed; the table is probed linearly).
    pub fn new(cfg: TcpConfig, secrets: Secrets, capacity: u32) -> Self {
        let blank = Entry {
            tuple: Tuple::default(),
            ctx: 0,
            half: HalfOpen {
                irs: Seq(0),
                iss: Seq(0),
                neg: Negotiated::default(),
                ts_recent: 0,
                ts_offset: 0,
                wnd: 0,
                synack_at: 0,
            },
            sent_at: 0,
            xmits: 0,
            used: false,
        };
        Listener {
            cfg,
            secrets,
            table: vec![blank; capacity.max(1) as usize],
            used: 0,
            synack_retries: 5,
            cookies: true,
            last_cookie: 0,
            challenges: (0, 0),
        }
    }

    /// A challenge for half-open entry `i`: our SYN-ACK again, unchanged
    /// (the peer's SYN-SENT or ESTABLISHED answers it with the ACK that
    /// completes the handshake, a peer without the connection with a RST
    /// at exactly IRS + 1), within the rate limit.
    fn challenge(&mut self, i: usize, now: u64, stats: &mut TcpStats) -> Listen {
        let sec = now / 1_000_000;
        if self.challenges.0 != sec {
            self.challenges = (sec, 0);
        }
        if self.challenges.1 >= CHALLENGES_PER_S {
            stats.add(TcpCounter::ChallengeAcksLimited, 1);
            return Listen::Drop;
        }
        self.challenges.1 += 1;
        stats.add(TcpCounter::ChallengeAcks, 1);
        let half = self.table[i].half;
        Listen::SynAck { seg: self.syn_ack(&half, now, None), kept: true }
    }

    /// Half-open entries now.
    pub fn half_open(&self) -> u32 {
        self.used
    }

    /// Whether a new SYN would get an entry (else a cookie, or nothing).
    pub fn has_room(&self) -> bool {
        (self.used as usize) < self.table.len() * 3 / 4
    }

    /// Ends every entry (the core stops), reporting each.
    pub fn clear(&mut self, gone: &mut dyn FnMut(&Tuple)) {
        for e in self.table.iter_mut().filter(|e| e.used) {
            e.used = false;
            gone(&e.tuple);
        }
        self.used = 0;
    }

    /// Whether a SYN queue entry holds a handshake of `t`. Only
    /// [`on_segment`](Self::on_segment) with a SYN of `t` makes one, and
    /// only `on_segment` with a segment of `t` and
    /// [`on_timer`](Self::on_timer) (as [`SynTimer::Expired`]) end one: a
    /// caller keeping something per entry (the engine pins the flow's
    /// owner) asks before and after.
    pub fn holds(&self, t: &Tuple) -> bool {
        self.find(t).is_some()
    }

    /// When this listener last answered with a SYN cookie, µs (0: never).
    pub fn last_cookie(&self) -> u64 {
        self.last_cookie
    }

    /// Whether an ACK for no entry would be checked for a SYN cookie now
    /// (cookies on, and sent lately): only then can such an ACK complete a
    /// handshake ([`Listen::Accept`]), and a caller keeping something per
    /// connection (the engine pins the flow's owner) takes it first, since
    /// the open is counted when the listener accepts.
    pub fn checks_cookies(&self, now: u64) -> bool {
        self.cookies && self.last_cookie != 0 && now.saturating_sub(self.last_cookie) < 2 * COOKIE_TICK_US
    }

    /// Another listener of the same service (another core) sent a cookie at
    /// `at`: ACKs that reach this one are checked for cookies too, since
    /// the cookie's final ACK may arrive on any core.
    pub fn cookies_sent_at(&mut self, at: u64) {
        self.last_cookie = self.last_cookie.max(at);
    }

    fn slot_of(&self, t: &Tuple) -> usize {
        (siphash(self.secrets.isn, &t.bytes()) % self.table.len() as u64) as usize
    }

    fn find(&self, t: &Tuple) -> Option<usize> {
        let n = self.table.len();
        let start = self.slot_of(t);
        for k in 0..n {
            let i = (start + k) % n;
            let e = &self.table[i];
            if !e.used {
                return None;
            }
            if e.tuple == *t {
                return Some(i);
            }
        }
        None
    }

    fn insert(&mut self, e: Entry) -> bool {
        if !self.has_room() {
            return false;
        }
        let n = self.table.len();
        let start = self.slot_of(&e.tuple);
        for k in 0..n {
            let i = (start + k) % n;
            if !self.table[i].used {
                self.table[i] = e;
                self.used += 1;
                return true;
            }
        }
        false
    }

    fn remove(&mut self, i: usize) {
        // Backward-shift deletion keeps linear probing's chains intact.
        let n = self.table.len();
        self.table[i].used = false;
        self.used -= 1;
        let mut hole = i;
        let mut j = (i + 1) % n;
        while self.table[j].used {
            let home = self.slot_of(&self.table[j].tuple);
            let dist_j = (j + n - home) % n;
            let dist_hole = (hole + n - home) % n;
            if dist_hole < dist_j {
                self.table[hole] = self.table[j];
                self.table[j].used = false;
                hole = j;
            }
            j = (j + 1) % n;
        }
    }

    /// What the SYN offered, within what we do.
    fn negotiate(&self, seg: &Segment) -> Negotiated {
        let o = &seg.opts;
        let ws = self.cfg.window_scaling && o.wscale.is_some();
        Negotiated {
            peer_mss: o.mss.unwrap_or(536).max(64),
            rcv_wscale: if ws { self.cfg.wscale() } else { 0 },
            snd_wscale: if ws { o.wscale.unwrap_or(0) } else { 0 },
            window_scaling: ws,
            timestamps: self.cfg.timestamps && o.timestamp.is_some(),
            sack: self.cfg.sack && o.sack_permitted,
        }
    }

    /// The window a SYN-ACK offers (never scaled, RFC 7323 2.2).
    fn syn_ack_window(&self) -> u32 {
        self.cfg.rcv_buf.min(u32::from(u16::MAX))
    }

    /// The SYN-ACK of `h`, at `now`.
    fn syn_ack(&self, h: &HalfOpen, now: u64, tsval: Option<u32>) -> OutSegment {
        let mut seg = OutSegment {
            seq: h.iss,
            ack: h.irs + 1,
            flags: Flags::SYN | Flags::ACK,
            wnd: self.syn_ack_window() as u16,
            ..OutSegment::default()
        };
        seg.opts.mss = Some(self.cfg.mss);
        if h.neg.window_scaling {
            seg.opts.wscale = Some(h.neg.rcv_wscale);
        }
        seg.opts.sack_permitted = h.neg.sack;
        if h.neg.timestamps {
            let val = tsval.unwrap_or_else(|| ((now / 1000) as u32).wrapping_add(h.ts_offset));
            seg.opts.timestamp = Some(Timestamp { val, ecr: h.ts_recent });
        }
        seg
    }

    /// A segment for the listening port that matched no connection; `ctx`
    /// is kept with a SYN queue entry and given back by
    /// [`on_timer`](Self::on_timer).
    pub fn on_segment(&mut self, t: &Tuple, seg: &Segment, now: u64, stats: &mut TcpStats, ctx: u64) -> Listen {
        let f = seg.flags;
        if f.rst() {
            // A RST for a half-open entry removes it if its sequence number
            // is right; in the window but not exact, it is challenged (RFC
            // 5961 3.2, SYN-RECEIVED included); else dropped.
            if let Some(i) = self.find(t) {
                let rcv_nxt = self.table[i].half.irs + 1;
                if seg.seq == rcv_nxt {
                    self.remove(i);
                } else if seg.seq.in_range(rcv_nxt, rcv_nxt + self.syn_ack_window()) {
                    return self.challenge(i, now, stats);
                }
            }
            return Listen::Drop;
        }
        if f.syn() && !f.ack() {
            if f.fin() {
                // SYN+FIN is no way to open a connection (a scan): dropped,
                // as Linux does.
                return Listen::Drop;
            }
            return self.on_syn(t, seg, now, stats, ctx);
        }
        if f.syn() || !f.ack() {
            // SYN-ACK to a listener, or a segment with neither: reset / drop.
            return if f.ack() {
                crate::conn::reset_for(seg).map_or(Listen::Drop, Listen::Reset)
            } else {
                Listen::Drop
            };
        }
        // An ACK: the end of a handshake?
        if let Some(i) = self.find(t) {
            let e = self.table[i];
            // RFC 9293 3.10.7.4: acceptable if it acknowledges our SYN and
            // lies in the window the SYN-ACK offered (Linux's tcp_in_window:
            // a segment with no payload may sit on the right edge). Its
            // sequence number is past irs + 1 when the handshake's ACK
            // (with data) was lost and this is the peer's next segment
            // (say, its challenge ACK to our retransmitted SYN-ACK); the
            // connection then waits for the missing bytes.
            let rcv_nxt = e.half.irs + 1;
            let right = rcv_nxt + self.syn_ack_window();
            let in_window = seg.seq.in_range(rcv_nxt, right) || (seg.seq == right && seg.len == 0);
            if seg.ack == e.half.iss + 1 {
                if !in_window {
                    // "first" check: not acceptable, dropped (the peer
                    // retransmits; our SYN-ACK timer runs). Not a RST: with
                    // SEG.ACK right it would abort an established peer.
                    stats.drop(TcpDrop::OutOfWindow);
                    return Listen::Drop;
                }
                self.remove(i);
                stats.add(TcpCounter::PassiveOpens, 1);
                let mut half = e.half;
                half.synack_at = if e.xmits == 1 { e.sent_at } else { 0 };
                return Listen::Accept(half);
            }
            // The peer may be answering a cookie SYN-ACK sent to an earlier
            // copy of this entry's SYN while the queue was full (the entry
            // came from a retransmission after room was made): the cookie's
            // handshake stands, and the entry goes. Only for the same SYN
            // (the ACK's IRS is the entry's), so a stale ACK of an older
            // connection cannot displace a live handshake.
            if seg.seq == rcv_nxt {
                if let Some(h) = self.cookie_handshake(t, seg, now, stats) {
                    self.remove(i);
                    return Listen::Accept(h);
                }
            }
            // RFC 9293 3.10.7.4 SYN-RECEIVED, step 5: an unacceptable ACK
            // gets a RST and the entry stays.
            return crate::conn::reset_for(seg).map_or(Listen::Drop, Listen::Reset);
        }
        if let Some(h) = self.cookie_handshake(t, seg, now, stats) {
            return Listen::Accept(h);
        }
        // No connection and no handshake: RST (RFC 9293 3.10.7.2, LISTEN:
        // "any acknowledgment is bad").
        crate::conn::reset_for(seg).map_or(Listen::Drop, Listen::Reset)
    }

    /// The handshake an ACK completes by its cookie, when cookies were sent
    /// lately (counted valid or failed).
    fn cookie_handshake(&self, t: &Tuple, seg: &Segment, now: u64, stats: &mut TcpStats) -> Option<HalfOpen> {
        if !self.checks_cookies(now) {
            return None;
        }
        let h = self.check_cookie(t, seg, now);
        match h {
            Some(_) => {
                stats.add(TcpCounter::SynCookiesValid, 1);
                stats.add(TcpCounter::PassiveOpens, 1);
            }
            None => stats.add(TcpCounter::SynCookiesFailed, 1),
        }
        h
    }

    fn on_syn(&mut self, t: &Tuple, seg: &Segment, now: u64, stats: &mut TcpStats, ctx: u64) -> Listen {
        // A retransmitted SYN: the same SYN-ACK again.
        if let Some(i) = self.find(t) {
            let e = self.table[i];
            if e.half.irs == seg.seq {
                let slot = &mut self.table[i];
                slot.xmits = slot.xmits.saturating_add(1);
                slot.sent_at = now;
                slot.ctx = ctx;
                stats.add(TcpCounter::RetransSyn, 1);
                return Listen::SynAck { seg: self.syn_ack(&e.half, now, None), kept: true };
            }
            // A new SYN from the same tuple in the window our SYN-ACK
            // offered (the old attempt gave up and the peer starts over):
            // the entry goes and the new SYN is answered (RFC 9293
            // 3.10.7.4 drops the entry). Outside that window the entry
            // stays, as Linux's tcp_check_req keeps it (else anyone who
            // knows the four-tuple could displace a handshake and have the
            // client's ACK answered with a RST), and the SYN is answered
            // with our SYN-ACK again, as Linux answers with an ACK of it: a
            // peer that restarted with a new ISN answers that with a RST at
            // IRS + 1, which ends the entry, and its next SYN gets in.
            let rcv_nxt = e.half.irs + 1;
            if !seg.seq.in_range(rcv_nxt, rcv_nxt + self.syn_ack_window()) {
                stats.drop(TcpDrop::OutOfWindow);
                return self.challenge(i, now, stats);
            }
            self.remove(i);
        }
        let neg = self.negotiate(seg);
        let ts_offset = self.secrets.ts_offset(t);
        let ts_recent = seg.opts.timestamp.map_or(0, |ts| ts.val);
        let half = HalfOpen {
            irs: seg.seq,
            iss: self.secrets.isn(t, now),
            neg,
            ts_recent,
            ts_offset,
            wnd: seg.wnd,
            synack_at: 0,
        };
        let entry = Entry { tuple: *t, ctx, half, sent_at: now, xmits: 1, used: true };
        if self.insert(entry) {
            return Listen::SynAck { seg: self.syn_ack(&half, now, None), kept: true };
        }
        if !self.cookies {
            stats.add(TcpCounter::ListenOverflows, 1);
            return Listen::Drop;
        }
        // The SYN queue is full: answer with a cookie, keep nothing.
        self.last_cookie = now.max(1);
        stats.add(TcpCounter::SynCookiesSent, 1);
        let (iss, mss) = self.make_cookie(t, seg.seq, neg.peer_mss, now);
        let mut neg = neg;
        neg.peer_mss = mss;
        let mut h = HalfOpen { irs: seg.seq, iss, neg, ts_recent, ts_offset, wnd: seg.wnd, synack_at: 0 };
        let tsval = neg.timestamps.then(|| self.cookie_tsval(&h, now));
        if !neg.timestamps {
            // Without timestamps the options cannot be encoded: none.
            h.neg.sack = false;
            h.neg.rcv_wscale = 0;
            h.neg.snd_wscale = 0;
            h.neg.window_scaling = false;
        }
        Listen::SynAck { seg: self.syn_ack(&h, now, tsval), kept: false }
    }

    /// The cookie ISN (Linux's secure_tcp_syn_cookie) and the MSS it
    /// encodes (the largest of the table not above the peer's).
    fn make_cookie(&self, t: &Tuple, peer_isn: Seq, peer_mss: u16, now: u64) -> (Seq, u16) {
        let idx = COOKIE_MSS.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
        let count = (now / COOKIE_TICK_US) as u32;
        let c = self
            .secrets
            .cookie_hash(0, t, 0)
            .wrapping_add(peer_isn.0)
            .wrapping_add(count << COOKIE_BITS)
            .wrapping_add(self.secrets.cookie_hash(1, t, count).wrapping_add(idx as u32) & COOKIE_MASK);
        (Seq(c), COOKIE_MSS[idx])
    }

    /// Our TSval on a cookie SYN-ACK: the clock with its low bits replaced
    /// by the options (window scale, SACK), as Linux's cookie_init_timestamp.
    fn cookie_tsval(&self, h: &HalfOpen, now: u64) -> u32 {
        let ws = if h.neg.window_scaling { h.neg.snd_wscale as u32 & 0xf } else { 0xf };
        let opts = ws | (u32::from(h.neg.sack) << 4);
        let ts = ((now / 1000) as u32).wrapping_add(h.ts_offset);
        let mut v = (ts & !TS_MASK) | opts;
        // Never ahead of the clock: step back a tick if the bits made it so.
        if v.wrapping_sub(ts) as i32 > 0 {
            v = v.wrapping_sub(TS_MASK + 1);
        }
        v
    }

    /// Checks an ACK's cookie (Linux's check_tcp_syn_cookie) and rebuilds
    /// the half-open connection from it.
    fn check_cookie(&self, t: &Tuple, seg: &Segment, now: u64) -> Option<HalfOpen> {
        let cookie = (seg.ack - 1).0;
        let peer_isn = seg.seq - 1;
        let count = (now / COOKIE_TICK_US) as u32;
        let c = cookie.wrapping_sub(self.secrets.cookie_hash(0, t, 0).wrapping_add(peer_isn.0));
        let diff = count.wrapping_sub(c >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if diff > COOKIE_MAX_AGE {
            return None;
        }
        let idx = c.wrapping_sub(self.secrets.cookie_hash(1, t, count.wrapping_sub(diff))) & COOKIE_MASK;
        let mss = *COOKIE_MSS.get(idx as usize)?;
        let mut neg = Negotiated { peer_mss: mss, ..Negotiated::default() };
        let mut ts_recent = 0;
        if let Some(ts) = seg.opts.timestamp.filter(|_| self.cfg.timestamps) {
            // The options ride in the low bits of the TSval we sent (and the
            // peer echoes).
            let opts = ts.ecr & TS_MASK;
            let ws = opts & 0xf;
            neg.timestamps = true;
            neg.sack = self.cfg.sack && opts & 0x10 != 0;
            if ws != 0xf && self.cfg.window_scaling {
                neg.snd_wscale = ws as u8;
                neg.rcv_wscale = self.cfg.wscale();
                neg.window_scaling = true;
            }
            ts_recent = ts.val;
        }
        Some(HalfOpen {
            irs: peer_isn,
            iss: seg.ack - 1,
            neg,
            ts_recent,
            ts_offset: self.secrets.ts_offset(t),
            wnd: seg.wnd,
            synack_at: 0,
        })
    }

    /// SYN-ACKs due again at `now` (exponential backoff from the initial
    /// RTO, Linux's inet_csk_reqsk_queue_prune), through `out`; entries
    /// past their retries are dropped and reported so. Returns the next
    /// deadline.
    pub fn on_timer(
        &mut self,
        now: u64,
        stats: &mut TcpStats,
        out: &mut dyn FnMut(&Tuple, u64, SynTimer),
    ) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut i = 0;
        while i < self.table.len() {
            let e = self.table[i];
            if !e.used {
                i += 1;
                continue;
            }
            let due = e.sent_at + ((self.cfg.rto_initial as u64) << (e.xmits.saturating_sub(1)).min(16));
            if now >= due {
                if e.xmits > self.synack_retries {
                    self.remove(i);
                    out(&e.tuple, e.ctx, SynTimer::Expired);
                    // The slot may now hold a shifted entry: look again.
                    continue;
                }
                let seg = self.syn_ack(&e.half, now, None);
                out(&e.tuple, e.ctx, SynTimer::Resend(seg));
                stats.add(TcpCounter::RetransSyn, 1);
                let e = &mut self.table[i];
                e.xmits += 1;
                e.sent_at = now;
                let due = now + ((self.cfg.rto_initial as u64) << (e.xmits - 1).min(16));
                next = Some(next.map_or(due, |n| n.min(due)));
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            i += 1;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Options;

    const S: u64 = 1_000_000;

    fn tuple(port: u16) -> Tuple {
        Tuple { local_addr: [198, 18, 0, 2], local_port: 80, remote_addr: [198, 18, 0, 1], remote_port: port }
    }

    fn syn(seq: u32, ts: bool) -> Segment {
        let mut opts = Options { mss: Some(1460), wscale: Some(7), sack_permitted: true, ..Options::default() };
        if ts {
            opts.timestamp = Some(Timestamp { val: 1000, ecr: 0 });
        }
        Segment { seq: Seq(seq), flags: Flags::SYN, wnd: 64240, opts, ..Segment::default() }
    }

    fn ack_of(sa: &OutSegment, seq: u32, ts: bool) -> Segment {
        let mut s = Segment { seq: Seq(seq + 1), ack: sa.seq + 1, flags: Flags::ACK, wnd: 502, ..Segment::default() };
        if ts {
            s.opts.timestamp = Some(Timestamp { val: 1001, ecr: sa.opts.timestamp.unwrap().val });
        }
        s
    }

    fn listener(cap: u32) -> Listener {
        Listener::new(TcpConfig::default(), Secrets::from_random([1, 2, 3, 4, 5, 6, 7, 8]), cap)
    }

    #[test]
    fn a_handshake_through_the_syn_queue() {
        let mut l = listener(16);
        let mut st = TcpStats::default();
        let Listen::SynAck { seg: sa, .. } = l.on_segment(&tuple(1), &syn(100, true), 10, &mut st, 0) else { panic!() };
        assert_eq!((sa.ack, sa.flags), (Seq(101), Flags::SYN | Flags::ACK));
        assert_eq!(sa.opts.mss, Some(1460));
        assert!(sa.opts.sack_permitted && sa.opts.wscale.is_some() && sa.opts.timestamp.unwrap().ecr == 1000);
        assert_eq!(l.half_open(), 1);
        // A retransmitted SYN gets the identical SYN-ACK.
        let Listen::SynAck { seg: again, .. } = l.on_segment(&tuple(1), &syn(100, true), 10, &mut st, 0) else {
            panic!()
        };
        assert_eq!(again, sa);
        let Listen::Accept(h) = l.on_segment(&tuple(1), &ack_of(&sa, 100, true), 20, &mut st, 0) else { panic!() };
        assert_eq!((h.irs, h.iss, h.neg.snd_wscale, h.neg.sack), (Seq(100), sa.seq, 7, true));
        assert_eq!(l.half_open(), 0);
        assert_eq!(st.counter(TcpCounter::PassiveOpens), 1);
        // Now an ACK for nothing: RST <SEQ=SEG.ACK>.
        let Listen::Reset(r) = l.on_segment(&tuple(1), &ack_of(&sa, 100, true), 30, &mut st, 0) else { panic!() };
        assert_eq!((r.seq, r.flags), (sa.seq + 1, Flags::RST));
    }

    #[test]
    fn a_full_queue_answers_with_cookies_that_complete_on_any_core() {
        let mut l = listener(4); // three usable entries
        let mut st = TcpStats::default();
        for p in 0..3 {
            assert!(matches!(
                l.on_segment(&tuple(p), &syn(p as u32, true), 0, &mut st, 0),
                Listen::SynAck { kept: true, .. }
            ));
        }
        let Listen::SynAck { seg: sa, kept: false } = l.on_segment(&tuple(9), &syn(5000, true), 0, &mut st, 0) else {
            panic!()
        };
        assert_eq!(l.half_open(), 3, "no entry for the cookie SYN");
        assert_eq!(st.counter(TcpCounter::SynCookiesSent), 1);
        // Another core (same secrets, its own empty queue) checks the cookie.
        let mut other = listener(4);
        other.last_cookie = 1;
        let Listen::Accept(h) = other.on_segment(&tuple(9), &ack_of(&sa, 5000, true), 30_000_000, &mut st, 0) else {
            panic!("cookie refused")
        };
        assert_eq!((h.irs, h.iss, h.neg.peer_mss, h.neg.snd_wscale, h.neg.sack), (Seq(5000), sa.seq, 1460, 7, true));
        assert_eq!(st.counter(TcpCounter::SynCookiesValid), 1);
        // A forged or stale cookie is refused (and answered with a RST).
        let mut forged = ack_of(&sa, 5000, true);
        forged.ack += 1;
        assert!(matches!(other.on_segment(&tuple(9), &forged, 30_000_000, &mut st, 0), Listen::Reset(_)));
        assert!(matches!(
            other.on_segment(&tuple(10), &ack_of(&sa, 5000, true), 30_000_000, &mut st, 0),
            Listen::Reset(_)
        ));
        assert!(matches!(
            other.on_segment(&tuple(9), &ack_of(&sa, 5000, true), 4 * COOKIE_TICK_US, &mut st, 0),
            Listen::Reset(_)
        ));
        assert!(st.counter(TcpCounter::SynCookiesFailed) >= 2);
    }

    #[test]
    fn a_cookie_handshake_stands_over_an_entry_from_a_retransmitted_syn() {
        let mut l = listener(2); // one usable entry
        let mut st = TcpStats::default();
        let Listen::SynAck { seg: first, kept: true } = l.on_segment(&tuple(1), &syn(1, true), 0, &mut st, 0) else {
            panic!()
        };
        // The queue is full: tuple 9's first SYN gets a cookie.
        let Listen::SynAck { seg: cookie, kept: false } = l.on_segment(&tuple(9), &syn(900, true), 0, &mut st, 0)
        else {
            panic!()
        };
        // Tuple 1 completes, making room; tuple 9's retransmitted SYN is
        // queued (a SYN-ACK with another ISN).
        assert!(matches!(l.on_segment(&tuple(1), &ack_of(&first, 1, true), 10, &mut st, 0), Listen::Accept(_)));
        let Listen::SynAck { seg: queued, kept: true } =
            l.on_segment(&tuple(9), &syn(900, true), 1_000_000, &mut st, 0)
        else {
            panic!()
        };
        assert_ne!(queued.seq, cookie.seq);
        // The peer took the cookie SYN-ACK: its ACK (or its challenge ACK to
        // the second SYN-ACK) completes the handshake the cookie encodes.
        let Listen::Accept(h) = l.on_segment(&tuple(9), &ack_of(&cookie, 900, true), 1_000_100, &mut st, 0) else {
            panic!("a valid cookie was reset")
        };
        assert_eq!((h.irs, h.iss), (Seq(900), cookie.seq));
        assert_eq!(l.half_open(), 0, "the queued entry went");
        // An ACK for neither is still reset, and a third party's entry stays.
        let Listen::SynAck { seg: other, .. } = l.on_segment(&tuple(5), &syn(50, true), 2_000_000, &mut st, 0) else {
            panic!()
        };
        let mut bad = ack_of(&other, 50, true);
        bad.ack += 7;
        assert!(matches!(l.on_segment(&tuple(5), &bad, 2_000_100, &mut st, 0), Listen::Reset(_)));
        assert_eq!(l.half_open(), 1);
    }

    #[test]
    fn the_final_ack_is_checked_against_the_window_the_syn_ack_offered() {
        let mut l = listener(16);
        let mut st = TcpStats::default();
        let Listen::SynAck { seg: sa, .. } = l.on_segment(&tuple(1), &syn(100, false), 0, &mut st, 0) else { panic!() };
        let w = u32::from(sa.wnd);
        // Past the right edge with the right ACK: dropped, no RST (its
        // SEQ = SEG.ACK would abort an established peer), the entry stays.
        let mut far = ack_of(&sa, 100, false);
        far.seq = Seq(101) + w + 1;
        assert!(matches!(l.on_segment(&tuple(1), &far, 10, &mut st, 0), Listen::Drop));
        assert_eq!((l.half_open(), st.drops(TcpDrop::OutOfWindow)), (1, 1));
        // Data that would end past the edge but starts inside: taken.
        // A pure ACK exactly on the right edge: taken too (tcp_in_window).
        let mut edge = ack_of(&sa, 100, false);
        edge.seq = Seq(101) + w;
        let Listen::Accept(h) = l.on_segment(&tuple(1), &edge, 20, &mut st, 0) else { panic!("edge refused") };
        assert_eq!(h.irs, Seq(100));
        // ... but not with payload there.
        let Listen::SynAck { seg: sa2, .. } = l.on_segment(&tuple(2), &syn(200, false), 30, &mut st, 0) else {
            panic!()
        };
        let mut edge_data = ack_of(&sa2, 200, false);
        edge_data.seq = Seq(201) + u32::from(sa2.wnd);
        edge_data.len = 10;
        assert!(matches!(l.on_segment(&tuple(2), &edge_data, 40, &mut st, 0), Listen::Drop));
        // A wrong ACK still gets its RST (step 5), the entry staying.
        let mut wrong = ack_of(&sa2, 200, false);
        wrong.ack += 5;
        assert!(matches!(l.on_segment(&tuple(2), &wrong, 50, &mut st, 0), Listen::Reset(_)));
        assert_eq!(l.half_open(), 1);
    }

    #[test]
    fn a_stale_cookie_ack_of_another_syn_does_not_displace_an_entry() {
        let mut l = listener(2); // one usable entry
        let mut st = TcpStats::default();
        assert!(matches!(l.on_segment(&tuple(1), &syn(1, true), 0, &mut st, 0), Listen::SynAck { kept: true, .. }));
        // A cookie for tuple 9's SYN with ISN 900 ...
        let Listen::SynAck { seg: cookie, kept: false } = l.on_segment(&tuple(9), &syn(900, true), 0, &mut st, 0)
        else {
            panic!()
        };
        let Listen::SynAck { seg: first, .. } = l.on_segment(&tuple(1), &syn(1, true), 1, &mut st, 0) else { panic!() };
        assert!(matches!(l.on_segment(&tuple(1), &ack_of(&first, 1, true), 2, &mut st, 0), Listen::Accept(_)));
        // ... then a new SYN from tuple 9 with another ISN gets the entry.
        assert!(matches!(l.on_segment(&tuple(9), &syn(5000, true), 10, &mut st, 0), Listen::SynAck { kept: true, .. }));
        // The old cookie's ACK (valid for ISN 900) is reset; the entry stays.
        assert!(matches!(l.on_segment(&tuple(9), &ack_of(&cookie, 900, true), 20, &mut st, 0), Listen::Reset(_)));
        assert_eq!(l.half_open(), 1);
    }

    #[test]
    fn cookies_without_timestamps_carry_only_the_mss() {
        let mut l = listener(1);
        let mut st = TcpStats::default();
        l.cookies = true;
        let Listen::SynAck { seg: sa, .. } = l.on_segment(&tuple(3), &syn(77, false), 0, &mut st, 0) else { panic!() };
        assert!(!sa.opts.sack_permitted && sa.opts.wscale.is_none() && sa.opts.timestamp.is_none());
        let Listen::Accept(h) = l.on_segment(&tuple(3), &ack_of(&sa, 77, false), 1000, &mut st, 0) else { panic!() };
        assert_eq!((h.neg.peer_mss, h.neg.sack, h.neg.snd_wscale, h.neg.timestamps), (1460, false, 0, false));
    }

    #[test]
    fn synacks_are_retransmitted_with_backoff_then_given_up() {
        let mut l = listener(8);
        let mut st = TcpStats::default();
        let _ = l.on_segment(&tuple(1), &syn(1, false), 0, &mut st, 0);
        let (mut sent, mut expired) = (0, Vec::new());
        let mut now = 0;
        for _ in 0..200 {
            now += 500_000;
            l.on_timer(now, &mut st, &mut |t, _, ev| match ev {
                SynTimer::Resend(_) => sent += 1,
                SynTimer::Expired => expired.push(*t),
            });
        }
        assert_eq!(sent, 5, "five retransmissions (1, 2, 4, 8, 16 s)");
        assert_eq!(l.half_open(), 0, "then dropped");
        assert_eq!(expired, vec![tuple(1)], "and said so, once");
        assert!(!l.holds(&tuple(1)));
    }

    #[test]
    fn a_reset_at_exactly_irs_plus_1_returns_the_entry_to_listen() {
        let mut l = listener(16);
        let mut st = TcpStats::default();
        let Listen::SynAck { seg: sa, .. } = l.on_segment(&tuple(1), &syn(100, false), 0, &mut st, 0) else { panic!() };
        let rst = |seq: u32| Segment { seq: Seq(seq), flags: Flags::RST, ..Segment::default() };
        // In the window but not exact: challenged (RFC 5961 3.2; stricter
        // than Linux, whose tcp_check_req drops the request on any
        // in-window RST) with our SYN-ACK again, the entry kept: a peer
        // without the connection answers it with a RST at exactly IRS + 1.
        let v = l.on_segment(&tuple(1), &rst(150), 10, &mut st, 0);
        let Listen::SynAck { seg: again, kept: true } = v else { panic!("{v:?}") };
        assert_eq!((again.seq, again.ack), (sa.seq, Seq(101)));
        assert_eq!(st.counter(TcpCounter::ChallengeAcks), 1);
        assert_eq!(l.half_open(), 1);
        // Outside the window: dropped.
        assert_eq!(l.on_segment(&tuple(1), &rst(101 + 10_000_000), 15, &mut st, 0), Listen::Drop);
        // Another tuple's RST at the right number does not touch it.
        assert_eq!(l.on_segment(&tuple(2), &rst(101), 20, &mut st, 0), Listen::Drop);
        assert_eq!(l.half_open(), 1);
        // Exactly RCV.NXT: the entry goes (RFC 9293 3.10.7.4, SYN-RECEIVED
        // from a passive OPEN: back to LISTEN), silently.
        assert_eq!(l.on_segment(&tuple(1), &rst(101), 30, &mut st, 0), Listen::Drop);
        assert_eq!(l.half_open(), 0);
        // The handshake's ACK now finds LISTEN: <SEQ=SEG.ACK><CTL=RST>.
        let Listen::Reset(r) = l.on_segment(&tuple(1), &ack_of(&sa, 100, false), 40, &mut st, 0) else { panic!() };
        assert_eq!((r.seq, r.ack, r.flags), (sa.seq + 1, Seq(0), Flags::RST));
        assert_eq!(st.counter(TcpCounter::PassiveOpens), 0);
    }

    #[test]
    fn challenges_are_rate_limited_per_second() {
        let mut l = listener(16);
        let mut st = TcpStats::default();
        let _ = l.on_segment(&tuple(1), &syn(100, false), 0, &mut st, 0);
        let rst = Segment { seq: Seq(150), flags: Flags::RST, ..Segment::default() };
        let answered = (0..3 * CHALLENGES_PER_S)
            .filter(|&k| matches!(l.on_segment(&tuple(1), &rst, 1 + u64::from(k), &mut st, 0), Listen::SynAck { .. }))
            .count() as u32;
        assert_eq!(answered, CHALLENGES_PER_S);
        assert_eq!(st.counter(TcpCounter::ChallengeAcksLimited), u64::from(2 * CHALLENGES_PER_S));
        // The next second, answered again.
        assert!(matches!(l.on_segment(&tuple(1), &rst, S + 1, &mut st, 0), Listen::SynAck { .. }));
        assert_eq!(l.half_open(), 1, "no challenge removes the entry");
    }

    #[test]
    fn a_new_syn_in_the_window_replaces_the_half_open_entry() {
        // A SYN with another ISN from the same tuple, inside the window the
        // SYN-ACK offered (IRS + 1 .. + 65535): RFC 9293 3.10.7.4 ("fourth,
        // check the SYN bit", SYN-RECEIVED from a passive OPEN) returns to
        // LISTEN, and Linux (tcp_check_req, embryonic_reset) drops the
        // request too. The code then takes the SYN in LISTEN at once rather
        // than waiting for its retransmission: a defensible shortcut to the
        // same end state.
        let mut l = listener(16);
        let mut st = TcpStats::default();
        let Listen::SynAck { seg: old, .. } = l.on_segment(&tuple(1), &syn(100, false), 0, &mut st, 0) else {
            panic!()
        };
        let Listen::SynAck { seg: new, kept: true } = l.on_segment(&tuple(1), &syn(7000, false), S, &mut st, 0) else {
            panic!("the new SYN was not answered from a queue entry")
        };
        assert_eq!((new.flags, new.ack), (Flags::SYN | Flags::ACK, Seq(7001)));
        assert_ne!(new.seq, old.seq, "a fresh ISN");
        assert_eq!(l.half_open(), 1, "replaced, not added");
        assert_eq!(st.counter(TcpCounter::RetransSyn), 0, "not taken for a retransmission");
        // The old handshake's ACK is refused; the new one completes.
        let Listen::Reset(r) = l.on_segment(&tuple(1), &ack_of(&old, 100, false), S + 10, &mut st, 0) else { panic!() };
        assert_eq!((r.seq, r.flags), (old.seq + 1, Flags::RST));
        assert_eq!(l.half_open(), 1);
        let Listen::Accept(h) = l.on_segment(&tuple(1), &ack_of(&new, 7000, false), S + 20, &mut st, 0) else {
            panic!()
        };
        assert_eq!((h.irs, h.iss), (Seq(7000), new.seq));
        assert_eq!(l.half_open(), 0);
    }

    #[test]
    fn a_new_syn_outside_the_window_does_not_displace_the_half_open_entry() {
        // A SYN with another ISN from the same tuple, outside the window:
        // RFC 9293 3.10.7.4 ("first, check sequence number") and Linux
        // (tcp_check_req: "Out of window: send ACK and drop") both answer
        // <SEQ=ISS+1><ACK=IRS+1><CTL=ACK> and keep the half-open
        // connection. A peer that really started over answers that ACK with
        // a RST at exactly IRS + 1, which removes the entry. Replacing the
        // entry instead lets anyone who knows the tuple, blindly, kill a
        // handshake in progress: the client's ACK of the first SYN-ACK
        // then draws a RST at exactly its RCV.NXT.
        let mut l = listener(16);
        let mut st = TcpStats::default();
        let Listen::SynAck { seg: old, .. } = l.on_segment(&tuple(1), &syn(100, false), 0, &mut st, 0) else {
            panic!()
        };
        let far = 100 + 1 + u32::from(old.wnd) + 1_000_000;
        let v = l.on_segment(&tuple(1), &syn(far, false), S, &mut st, 0);
        // Answered with our SYN-ACK again (<SEQ=ISS><ACK=IRS+1>, what Linux's
        // ACK of it says), the entry unchanged.
        let Listen::SynAck { seg: again, kept: true } = v else { panic!("the out-of-window SYN: {v:?}") };
        assert_eq!((again.seq, again.ack, again.flags), (old.seq, Seq(101), Flags::SYN | Flags::ACK));
        assert_eq!(l.half_open(), 1);
        assert_eq!((st.drops(TcpDrop::OutOfWindow), st.counter(TcpCounter::ChallengeAcks)), (1, 1));
        // The original handshake still completes.
        let Listen::Accept(h) = l.on_segment(&tuple(1), &ack_of(&old, 100, false), S + 10, &mut st, 0) else {
            panic!("the original handshake's ACK was refused")
        };
        assert_eq!((h.irs, h.iss), (Seq(100), old.seq));
        assert_eq!(l.half_open(), 0);
    }

    #[test]
    fn removal_keeps_probe_chains_intact() {
        let mut l = listener(8);
        let mut st = TcpStats::default();
        for p in 0..6 {
            let _ = l.on_segment(&tuple(p), &syn(p as u32, false), 0, &mut st, 0);
        }
        for p in [1u16, 3] {
            let i = l.find(&tuple(p)).unwrap();
            l.remove(i);
        }
        for p in [0u16, 2, 4, 5] {
            assert!(l.find(&tuple(p)).is_some(), "{p} still found");
        }
        assert_eq!(l.half_open(), 4);
    }
}
