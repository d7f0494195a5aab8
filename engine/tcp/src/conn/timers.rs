//! The connection's timers, each an absolute deadline (µs, 0 = off): the
//! retransmission timer (RFC 6298), the delayed ACK (RFC 9293 3.8.6.3),
//! the persist timer (3.8.6.1), keepalive (3.8.4), the tail loss probe
//! (RFC 8985 7) and the linger of TIME-WAIT and orphaned FIN-WAIT-2. The
//! caller asks for the earliest with [`Conn::poll_at`] and calls
//! [`Conn::on_timer`] when it passes; what a timer wants sent goes out with
//! the next [`Conn::transmit`].
use super::{Conn, Emit, Env, State, Transmitted};
use crate::buf::{Chunk, NIL};
use crate::stats::TcpCounter;

/// The smallest tail loss probe timeout (Linux's TCP_TIMEOUT_MIN is 2
/// jiffies; RFC 8985 7.2 leaves it to the implementation).
const TLP_MIN: u64 = 10_000;
/// Longest persist interval (RFC 9293: back off exponentially; Linux caps
/// at TCP_RTO_MAX).
const PERSIST_MAX_BACKOFF: u8 = 10;

/// A probe a timer asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Probe {
    /// None.
    #[default]
    None,
    /// A zero-window probe.
    Window,
    /// A keepalive.
    Keepalive,
    /// A tail loss probe.
    Tail,
}

impl Conn {
    /// The earliest deadline of the connection, µs, or `None`.
    pub fn poll_at(&self) -> Option<u64> {
        [self.t_rto, self.t_delack, self.t_persist, self.t_keepalive, self.t_linger, self.t_tlp]
            .into_iter()
            .filter(|&t| t != 0)
            .min()
    }

    /// Runs the timers that are due at `env.now`; what they want sent is
    /// sent by the next [`transmit`](Self::transmit).
    pub fn on_timer<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        let now = env.now;
        let due = |t: u64| t != 0 && t <= now;
        if due(self.t_linger) {
            self.t_linger = 0;
            if matches!(self.state, State::TimeWait | State::FinWait2) {
                self.set_state_closed(false);
                return;
            }
        }
        if due(self.t_rto) {
            self.t_rto = 0;
            self.on_rto_expired(env);
            if self.state == State::Closed {
                return;
            }
        }
        if due(self.t_tlp) {
            self.t_tlp = 0;
            if std::mem::take(&mut self.reo_armed) {
                // RACK's reordering timer: what was within its reordering
                // window then may be lost now (the next transmit resends
                // it); else the probe's timer again.
                env.stats.add(TcpCounter::RackTimeouts, 1);
                self.detect_loss(env.arena, now, env.stats);
                if self.t_tlp == 0 {
                    self.arm_tlp(now);
                }
            } else if !self.rec.active && self.snd_una != self.snd_max {
                self.probe = Probe::Tail;
            }
        }
        if due(self.t_delack) {
            self.t_delack = 0;
            if self.segs_unacked > 0 || self.ack_now {
                self.ack_now = true;
                env.stats.add(TcpCounter::DelayedAcks, 1);
            }
        }
        if due(self.t_persist) {
            self.t_persist = 0;
            if self.snd_wnd == 0 || self.send_cursor.0 != NIL {
                self.probe = Probe::Window;
                env.stats.add(TcpCounter::WindowProbes, 1);
                self.persist_backoff = (self.persist_backoff + 1).min(PERSIST_MAX_BACKOFF);
                self.arm_persist(now);
            }
        }
        if due(self.t_keepalive) {
            self.t_keepalive = 0;
            self.on_keepalive(env);
        }
    }

    fn on_rto_expired<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        let now = env.now;
        env.stats.add(TcpCounter::RtoExpired, 1);
        match self.state {
            _ if self.syn_unacked() => {
                if self.syn_xmits > self.cfg.syn_retries {
                    env.stats.add(TcpCounter::Timeouts, 1);
                    self.set_state_closed(true);
                    return;
                }
                self.rtt.back_off();
                // The SYN-ACK of a simultaneous open, or our SYN, goes again
                // (send_syn always uses ISS; SND.NXT stays ISS + 1, so an
                // answer arriving before the resend finds the numbers right);
                // after a CLOSE in SYN-RECEIVED, the FIN behind it too.
                self.syn_pending = true;
                if self.state == State::FinWait1 {
                    self.enter_loss(env.arena, now);
                    self.fin_lost = true;
                }
                self.t_rto = now + self.rto() as u64;
            }
            State::Closed | State::TimeWait => {}
            _ => {
                if self.snd_una == self.snd_max {
                    return;
                }
                if self.rtt.backoffs() >= self.cfg.retries {
                    env.stats.add(TcpCounter::Timeouts, 1);
                    self.rst_pending = true;
                    return;
                }
                self.rtt.back_off();
                self.enter_loss(env.arena, now);
                self.fin_lost = self.fin_seq.is_some_and(|f| f >= self.snd_una);
                self.t_tlp = 0;
                self.t_rto = now + self.rto() as u64;
            }
        }
    }

    fn on_keepalive<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        if self.cfg.keepalive_idle == 0 || !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        let now = env.now;
        let idle = now.saturating_sub(self.last_rx);
        if idle < self.cfg.keepalive_idle {
            self.t_keepalive = self.last_rx + self.cfg.keepalive_idle;
            return;
        }
        if self.keepalive_sent >= self.cfg.keepalive_probes {
            env.stats.add(TcpCounter::Timeouts, 1);
            self.rst_pending = true;
            return;
        }
        // Only when nothing is outstanding: otherwise the RTO does the work.
        if self.snd_una == self.snd_max {
            self.probe = Probe::Keepalive;
            self.keepalive_sent += 1;
            env.stats.add(TcpCounter::KeepaliveProbes, 1);
        }
        self.t_keepalive = now + self.cfg.keepalive_interval;
    }

    /// Arms the keepalive timer from the last segment received.
    pub(crate) fn arm_keepalive(&mut self, now: u64) {
        if self.cfg.keepalive_idle > 0 {
            self.t_keepalive = now + self.cfg.keepalive_idle;
        }
    }

    /// Arms the persist timer: the RTO, backed off per probe.
    pub(crate) fn arm_persist(&mut self, now: u64) {
        let base = self.rtt.base_rto(self.rto_bounds()) as u64;
        let t = (base << self.persist_backoff).min(self.cfg.rto_max as u64);
        self.t_persist = now + t.max(self.cfg.rto_min as u64);
    }

    /// RACK's reordering timer has nothing left to judge: the slot it shares
    /// is the probe's again, armed now if a probe is wanted.
    pub(crate) fn release_reo_slot(&mut self, now: u64) {
        if self.reo_armed {
            self.reo_armed = false;
            self.t_tlp = 0;
        }
        self.arm_tlp(now);
    }

    /// Arms the tail loss probe after new data went out (RFC 8985 7.2):
    /// two smoothed RTTs, plus a delayed ACK's worth when one segment is
    /// outstanding, no later than the RTO.
    pub(crate) fn arm_tlp(&mut self, now: u64) {
        if self.reo_armed && self.t_tlp != 0 {
            // RACK's reordering timer holds the slot: it comes first, and
            // arms the probe when it has run.
            return;
        }
        self.reo_armed = false;
        if !self.cfg.tlp || self.rec.active || self.snd_una == self.snd_max || self.tlp_out {
            return;
        }
        let srtt = self.rtt.srtt() as u64;
        let mut pto = if srtt == 0 { 1_000_000 } else { (2 * srtt).max(TLP_MIN) };
        if self.snd_max.since(self.snd_una) <= self.mss {
            pto += self.cfg.delayed_ack.max(TLP_MIN);
        }
        let rto_at = if self.t_rto != 0 { self.t_rto } else { now + self.rto() as u64 };
        let at = (now + pto).min(rto_at);
        if at < rto_at {
            self.t_tlp = at;
        }
    }

    /// Sends what a timer asked for (called by transmit).
    pub(crate) fn send_probe_if_due<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        match std::mem::take(&mut self.probe) {
            Probe::None => Ok(()),
            Probe::Window if self.snd_wnd > 0 && self.send_cursor.0 != NIL => {
                // A window too small for the sender's silly-window rule: the
                // persist timer sends what fits (RFC 9293 3.8.6.2.1's
                // override timeout; Linux's tcp_write_wakeup).
                self.sws_override = true;
                Ok(())
            }
            p @ (Probe::Window | Probe::Keepalive) => self.send_probe(env, emit, t).inspect_err(|_| {
                self.probe = p;
            }),
            Probe::Tail => {
                // New data if the window takes a segment, else the last
                // segment sent again (RFC 8985 7.3).
                if self.send_cursor.0 != NIL && self.snd_nxt + self.mss <= self.snd_una + self.snd_wnd {
                    env.stats.add(TcpCounter::TlpProbes, 1);
                    self.tlp_out = true;
                    self.tlp_new_data = true;
                    return Ok(());
                }
                // A refused probe is tried again with the next transmit.
                self.retransmit_tail(env, emit, t).inspect_err(|_| self.probe = Probe::Tail)?;
                env.stats.add(TcpCounter::TlpProbes, 1);
                self.tlp_out = true;
                Ok(())
            }
        }
    }
}
