//! Listing the TCP connections: each lives on its core, in memory only that
//! core's worker touches, so the control thread asks and the workers
//! answer.
//!
//! The control thread bumps a generation and wakes every core; a worker
//! sees the new generation with one relaxed load per pass, writes its
//! connections into its own answer slot (a mutex only the two of them
//! take, and only for a question) and goes on. The control thread waits a
//! bounded time for the answers; a core that does not answer is named in
//! the reply rather than holding it up.
use super::protocol::{ConnEntry, ConnsSnapshot};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a listing is restricted to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnFilter {
    /// A service id.
    pub service: Option<u32>,
    /// A state name.
    pub state: Option<String>,
    /// Whether to fill in `detail`.
    pub detail: bool,
}

#[derive(Default)]
struct Answer {
    generation: u64,
    conns: Vec<ConnEntry>,
    total: u64,
}

/// The question and the answer slots.
pub struct ConnQuery {
    asked: AtomicU64,
    limit: AtomicU32,
    filter: Mutex<ConnFilter>,
    answers: Vec<Mutex<Answer>>,
    /// One question at a time.
    asking: Mutex<()>,
}

impl ConnQuery {
    /// Slots for `cores` cores.
    pub fn new(cores: usize) -> Self {
        ConnQuery {
            asked: AtomicU64::new(0),
            limit: AtomicU32::new(0),
            filter: Mutex::new(ConnFilter::default()),
            answers: (0..cores).map(|_| Mutex::new(Answer::default())).collect(),
            asking: Mutex::new(()),
        }
    }

    /// The generation of the current question (a worker answers when it
    /// differs from the last one it answered).
    #[inline]
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::Acquire)
    }

    /// The most connections the current question wants.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed) as usize
    }

    /// Which connections the current question wants.
    pub fn filter(&self) -> ConnFilter {
        self.filter.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Core `core`'s answer to question `generation`.
    pub fn answer(&self, core: usize, generation: u64, conns: Vec<ConnEntry>, total: u64) {
        if let Some(slot) = self.answers.get(core) {
            let mut a = slot.lock().unwrap_or_else(|p| p.into_inner());
            *a = Answer { generation, conns, total };
        }
    }

    /// Asks every core for at most `limit` connections, waking each with
    /// `wake(core)`, and waits up to `timeout` for the answers.
    pub fn ask(&self, limit: u32, filter: ConnFilter, timeout: Duration, wake: impl Fn(usize)) -> ConnsSnapshot {
        let _one = self.asking.lock().unwrap_or_else(|p| p.into_inner());
        self.limit.store(limit, Ordering::Relaxed);
        *self.filter.lock().unwrap_or_else(|p| p.into_inner()) = filter;
        let generation = self.asked.fetch_add(1, Ordering::AcqRel) + 1;
        for core in 0..self.answers.len() {
            wake(core);
        }
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<usize> = (0..self.answers.len()).collect();
        let mut snap = ConnsSnapshot::default();
        let mut parts: Vec<Option<Answer>> = (0..self.answers.len()).map(|_| None).collect();
        while !pending.is_empty() && Instant::now() < deadline {
            pending.retain(|&core| {
                let mut a = self.answers[core].lock().unwrap_or_else(|p| p.into_inner());
                if a.generation == generation {
                    parts[core] = Some(std::mem::take(&mut *a));
                    false
                } else {
                    true
                }
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for a in parts.into_iter().flatten() {
            snap.total += a.total;
            let room = (limit as usize).saturating_sub(snap.conns.len());
            snap.conns.extend(a.conns.into_iter().take(room));
        }
        snap.cores_missing = pending.iter().map(|&c| c as u32).collect();
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn entry(core: u32, port: u16) -> ConnEntry {
        ConnEntry { core, remote: format!("198.18.0.1:{port}"), ..ConnEntry::default() }
    }

    #[test]
    fn every_core_answers_its_generation_and_the_limit_holds() {
        let q = Arc::new(ConnQuery::new(2));
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || {
                // A worker: answers each new generation it sees, once.
                let mut answered = 0;
                for _ in 0..4000 {
                    let g = q.asked();
                    if g != answered {
                        let n = q.limit().min(3);
                        q.answer(0, g, (0..n as u16).map(|p| entry(0, p)).collect(), 3);
                        q.answer(1, g, vec![entry(1, 9)], 1);
                        answered = g;
                    }
                    std::thread::sleep(Duration::from_micros(250));
                }
            })
        };
        let s = q.ask(2, ConnFilter::default(), Duration::from_secs(5), |_| {});
        assert_eq!((s.total, s.conns.len(), s.cores_missing.len()), (4, 2, 0), "{s:?}");
        let s = q.ask(10, ConnFilter::default(), Duration::from_secs(5), |_| {});
        assert_eq!(s.conns.iter().map(|c| c.core).collect::<Vec<_>>(), vec![0, 0, 0, 1]);
        worker.join().unwrap();
        // Nobody answers now: both cores are named missing, in bounded time.
        let t = Instant::now();
        let s = q.ask(10, ConnFilter::default(), Duration::from_millis(50), |_| {});
        assert_eq!(s.cores_missing, vec![0, 1]);
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
