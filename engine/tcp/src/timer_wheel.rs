//! One timer wheel per core: every connection's next deadline, in O(1) to
//! arm, re-arm and cancel, with no allocation after start.
//!
//! The shape is Linux's non-cascading wheel (kernel/time/timer.c): eight
//! levels of 64 slots; level 0 has 1 ms slots, each level's slots are 8
//! times coarser (so level 7 reaches about 37 hours). A timer goes to the
//! first level whose range covers it, in the slot its deadline rounds *up*
//! to, and fires when that slot comes round: never early, late by at most
//! 8/63 of its delay (a level is used only for delays the finer one cannot
//! reach: a 200 ms RTO by up to 8 ms, a 2 h keepalive by minutes), and
//! never moved between levels. Entries are linked through an
//! array indexed by the timer's id (the connection's slot).

const LEVELS: usize = 8;
const SLOTS: usize = 64;
const LVL_SHIFT: u32 = 3;
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    /// Deadline, ms.
    expires: u64,
    /// level * 64 + slot, while armed.
    at: u16,
    armed: bool,
}

/// Bytes the wheel keeps per timer id.
pub const BYTES_PER_TIMER: usize = std::mem::size_of::<Link>();

/// The wheel of one core.
pub struct TimerWheel {
    heads: [[u32; SLOTS]; LEVELS],
    bitmap: [u64; LEVELS],
    links: Vec<Link>,
    /// The next millisecond to process.
    now_ms: u64,
    armed: u32,
}

#[inline]
fn gran_shift(level: usize) -> u32 {
    LVL_SHIFT * level as u32
}

impl TimerWheel {
    /// A wheel for timer ids `0..capacity`, its clock at `now_us`.
    pub fn new(capacity: u32, now_us: u64) -> Self {
        TimerWheel {
            heads: [[NIL; SLOTS]; LEVELS],
            bitmap: [0; LEVELS],
            // Reserved now, made as ids are first armed: the memory in use
            // grows with the connections, not with the capacity.
            links: Vec::with_capacity(capacity as usize),
            now_ms: now_us / 1000,
            armed: 0,
        }
    }

    /// Timers armed.
    pub fn armed(&self) -> u32 {
        self.armed
    }

    /// Whether timer `id` is armed.
    pub fn is_armed(&self, id: u32) -> bool {
        self.links.get(id as usize).is_some_and(|l| l.armed)
    }

    /// Arms (or re-arms) timer `id` for `at_us`; `None` cancels it.
    pub fn set(&mut self, id: u32, at_us: Option<u64>) {
        match at_us {
            None => self.cancel(id),
            Some(t) => self.arm(id, t),
        }
    }

    /// Arms timer `id` to fire at `at_us` (µs), replacing any deadline it had.
    /// A deadline already past fires with the next millisecond processed.
    pub fn arm(&mut self, id: u32, at_us: u64) {
        let i = id as usize;
        if i >= self.links.len() {
            // Within the capacity reserved at start: no reallocation.
            assert!(i < self.links.capacity(), "timer {id} beyond the wheel's {} timers", self.links.capacity());
            self.links.resize(i + 1, Link { prev: NIL, next: NIL, expires: 0, at: 0, armed: false });
        }
        let expires = at_us.div_ceil(1000);
        if self.links[id as usize].armed {
            if self.links[id as usize].expires == expires {
                return;
            }
            self.unlink(id);
        }
        let (level, slot) = self.place(expires);
        let at = (level * SLOTS + slot) as u16;
        let head = self.heads[level][slot];
        self.links[id as usize] = Link { prev: NIL, next: head, expires, at, armed: true };
        if head != NIL {
            self.links[head as usize].prev = id;
        }
        self.heads[level][slot] = id;
        self.bitmap[level] |= 1 << slot;
        self.armed += 1;
    }

    /// The level and slot of a deadline: the first level whose 64 slots,
    /// counted from now, reach the deadline rounded up to the level's
    /// granularity.
    fn place(&self, expires: u64) -> (usize, usize) {
        let expires = expires.max(self.now_ms);
        for level in 0..LEVELS {
            let s = gran_shift(level);
            let g = 1u64 << s;
            let idx = expires.div_ceil(g);
            let now_idx = self.now_ms.div_ceil(g);
            if idx - now_idx < SLOTS as u64 || level == LEVELS - 1 {
                let idx = idx.min(now_idx + SLOTS as u64 - 1);
                return (level, (idx % SLOTS as u64) as usize);
            }
        }
        unreachable!("the last level takes every deadline")
    }

    /// Cancels timer `id` (nothing if it is not armed).
    pub fn cancel(&mut self, id: u32) {
        if self.links.get(id as usize).is_some_and(|l| l.armed) {
            self.unlink(id);
        }
    }

    fn unlink(&mut self, id: u32) {
        let l = self.links[id as usize];
        let (level, slot) = (l.at as usize / SLOTS, l.at as usize % SLOTS);
        if l.prev == NIL {
            self.heads[level][slot] = l.next;
        } else {
            self.links[l.prev as usize].next = l.next;
        }
        if l.next != NIL {
            self.links[l.next as usize].prev = l.prev;
        }
        if self.heads[level][slot] == NIL {
            self.bitmap[level] &= !(1 << slot);
        }
        self.links[id as usize].armed = false;
        self.armed -= 1;
    }

    /// Runs the clock to `now_us`, calling `fire(id)` for each timer whose
    /// slot came round (each is disarmed before its call, so `fire` may arm
    /// it again).
    pub fn advance(&mut self, now_us: u64, mut fire: impl FnMut(u32)) {
        let target = now_us / 1000;
        if self.armed == 0 {
            self.now_ms = self.now_ms.max(target + 1);
            return;
        }
        while self.now_ms <= target {
            // Skip the milliseconds in which no slot with timers comes round.
            match self.next_deadline() {
                Some(next_us) if next_us / 1000 > self.now_ms => {
                    self.now_ms = (next_us / 1000).min(target + 1);
                    continue;
                }
                None => {
                    self.now_ms = target + 1;
                    return;
                }
                _ => {}
            }
            let t = self.now_ms;
            for level in 0..LEVELS {
                let s = gran_shift(level);
                if t & ((1u64 << s) - 1) != 0 {
                    // Coarser levels turn only on their own boundaries.
                    break;
                }
                let slot = ((t >> s) % SLOTS as u64) as usize;
                if self.bitmap[level] & (1 << slot) == 0 {
                    continue;
                }
                let mut id = self.heads[level][slot];
                while id != NIL {
                    let next = self.links[id as usize].next;
                    self.unlink(id);
                    fire(id);
                    id = next;
                }
            }
            self.now_ms += 1;
            if self.armed == 0 {
                self.now_ms = self.now_ms.max(target + 1);
                return;
            }
        }
    }

    /// The earliest time a timer may fire, µs (a slot's time; the timer in
    /// it may be due a little earlier within the slot's granularity, never
    /// later), or `None` when nothing is armed.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.armed == 0 {
            return None;
        }
        let mut best: Option<u64> = None;
        for level in 0..LEVELS {
            let bm = self.bitmap[level];
            if bm == 0 {
                continue;
            }
            let s = gran_shift(level);
            let now_idx = self.now_ms.div_ceil(1u64 << s);
            let start = (now_idx % SLOTS as u64) as u32;
            // The first non-empty slot at or after the current one.
            let rotated = bm.rotate_right(start);
            let k = rotated.trailing_zeros() as u64;
            let t = (now_idx + k) << s;
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        best.map(|ms| ms * 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(w: &mut TimerWheel, to_us: u64) -> Vec<u32> {
        let mut v = vec![];
        w.advance(to_us, |id| v.push(id));
        v
    }

    #[test]
    fn timers_fire_at_their_slot_never_early() {
        let mut w = TimerWheel::new(8, 0);
        w.arm(1, 5_000);
        w.arm(2, 200_000);
        w.arm(3, 60_000_000);
        assert_eq!(w.next_deadline(), Some(5_000));
        assert!(run(&mut w, 4_999).is_empty());
        assert_eq!(run(&mut w, 5_000), vec![1]);
        assert!(run(&mut w, 199_000).is_empty());
        let fired = run(&mut w, 208_000);
        assert_eq!(fired, vec![2], "a 200 ms timer fires within 8 ms of its deadline");
        assert!(run(&mut w, 59_999_000).is_empty());
        assert_eq!(run(&mut w, 68_000_000), vec![3]);
        assert_eq!(w.armed(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn rearm_and_cancel() {
        let mut w = TimerWheel::new(4, 1_000_000);
        w.arm(0, 1_010_000);
        w.arm(0, 1_050_000);
        assert!(run(&mut w, 1_020_000).is_empty(), "re-armed later");
        w.arm(1, 1_030_000);
        w.cancel(1);
        w.cancel(1);
        assert_eq!(run(&mut w, 1_060_000), vec![0]);
        assert!(!w.is_armed(1));
        // A deadline in the past fires with the next millisecond processed.
        w.arm(2, 5);
        assert!(run(&mut w, 1_060_000).is_empty(), "this millisecond is done");
        assert_eq!(run(&mut w, 1_061_000), vec![2]);
        // Arming from inside fire.
        w.arm(3, 1_070_000);
        let mut again = 0;
        w.advance(1_070_000, |_| again += 1);
        assert_eq!(again, 1);
    }

    proptest! {
        /// Every armed timer fires exactly once, not before its deadline
        /// and no later than 8/63 of its delay (plus a millisecond)
        /// after it; cancelled ones never fire.
        #[test]
        fn every_timer_fires_once_on_time(
            ops in proptest::collection::vec((0u32..32, 1u64..3_600_000_000, any::<bool>()), 1..200),
            step in 1u64..50_000,
        ) {
            let mut w = TimerWheel::new(32, 0);
            let mut now = 0u64;
            let mut want: std::collections::HashMap<u32, (u64, u64)> = Default::default();
            for (id, delay, cancel) in ops {
                if cancel {
                    w.cancel(id);
                    want.remove(&id);
                } else {
                    w.arm(id, now + delay);
                    want.insert(id, (now, now + delay));
                }
                now += step;
                let mut fired = vec![];
                w.advance(now, |i| fired.push(i));
                for i in fired {
                    let (armed_at, due) = want.remove(&i).expect("fired once, and only if armed");
                    prop_assert!(now >= due.div_ceil(1000) * 1000 - 1000, "early: {} < {}", now, due);
                    let slack = (due - armed_at) * 8 / 63 + 1000 + step;
                    prop_assert!(now <= due + slack, "late: {} > {} + {}", now, due, slack);
                }
            }
            // Drain: jump to each next deadline in turn.
            while !want.is_empty() {
                let next = w.next_deadline().expect("armed timers remain");
                now = now.max(next);
                let mut fired = vec![];
                w.advance(now, |i| fired.push(i));
                for i in fired {
                    let (armed_at, due) = want.remove(&i).expect("fired once");
                    prop_assert!(now + 1000 >= due, "early: {} < {}", now, due);
                    let slack = (due - armed_at) * 8 / 63 + 1000 + step;
                    prop_assert!(now <= due + slack, "late: now {} due {} armed {} id {}", now, due, armed_at, i);
                }
            }
            prop_assert_eq!(w.armed(), 0);
        }
    }
}
