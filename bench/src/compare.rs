//! `sluice-bench compare OLD.json NEW.json`: what changed per figure, and
//! whether the change is beyond the noise the two runs show across rounds.
use crate::results::{Phase, Results, Summary};
use crate::summary::thousands;
use serde::Serialize;
use std::fmt::Write as _;

/// One figure of one target, old against new.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Change {
    /// Phase (and the rate, for open loop and sweep steps).
    pub phase: String,
    /// Target.
    pub target: String,
    /// `per_s`, `cpu_us` or `p99_us`.
    pub figure: String,
    /// Old median.
    pub old: f64,
    /// New median.
    pub new: f64,
    /// new ÷ old − 1.
    pub change: f64,
    /// The larger relative min–max range over rounds of the two runs, at
    /// least [`NOISE_FLOOR`]; `None` when either run had a single round.
    pub noise: Option<f64>,
    /// `better`, `worse`, `within noise`, `noise unknown`, `rate differs`
    /// (open-loop figures at different offered rates are not compared) or
    /// `n/a` (the old value is zero).
    pub verdict: String,
}

/// The least noise assumed: rounds that agree exactly (an open loop that
/// met its rate, a latency bucket) do not make every change significant.
pub const NOISE_FLOOR: f64 = 0.02;

/// Whether a larger value of the figure is better.
fn higher_is_better(figure: &str) -> bool {
    figure == "per_s"
}

/// Summaries keyed by (phase, index of the rate within the phase, target):
/// open-loop rates chosen as "half the slowest" differ from run to run, and
/// the n-th rate of one run is compared with the n-th of the other.
fn keyed(r: &Results) -> Vec<((Phase, usize, String), &Summary)> {
    let mut rates: Vec<(Phase, Option<u64>)> = Vec::new();
    let mut out = Vec::new();
    for s in &r.summary {
        let k = (s.phase, s.rate.map(f64::to_bits));
        let idx = match rates.iter().filter(|x| x.0 == s.phase).position(|x| *x == k) {
            Some(i) => i,
            None => {
                rates.push(k);
                rates.iter().filter(|x| x.0 == s.phase).count() - 1
            }
        };
        out.push(((s.phase, idx, s.target.clone()), s));
    }
    out
}

/// p99 of every ok round, for the noise of the p99 median.
fn p99_rounds(r: &Results, s: &Summary) -> Vec<f64> {
    r.measurements
        .iter()
        .filter(|m| m.ok && m.phase == s.phase && m.rate == s.rate && m.target == s.target)
        .filter_map(|m| m.latency.map(|l| l.p99_us as f64))
        .collect()
}

fn rel_range(xs: &[f64]) -> Option<f64> {
    crate::results::Spread::of(xs).filter(|s| s.n > 1).map(|s| s.relative_range())
}

/// Every figure the two runs share.
pub fn compare(old: &Results, new: &Results) -> Vec<Change> {
    let olds = keyed(old);
    let mut out = Vec::new();
    for (k, n) in keyed(new) {
        let Some((_, o)) = olds.iter().find(|(ok, _)| *ok == k) else { continue };
        let phase = match (n.phase, o.rate, n.rate) {
            (Phase::Closed, _, _) => "closed".to_string(),
            (p, Some(a), Some(b)) if a == b => format!("{} {}/s", p.as_str(), thousands(a)),
            (p, a, b) => format!(
                "{} {}/s → {}/s",
                p.as_str(),
                a.map(thousands).unwrap_or_else(|| "-".into()),
                b.map(thousands).unwrap_or_else(|| "-".into())
            ),
        };
        // (figure, old median, new median, noise)
        let mut figures: Vec<(&str, f64, f64, Option<f64>)> = Vec::new();
        let noise2 = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b).max(NOISE_FLOOR)),
            _ => None,
        };
        let same_rate = match (o.rate, n.rate) {
            (Some(a), Some(b)) => (a - b).abs() <= 0.01 * a.abs().max(b.abs()),
            (None, None) => true,
            _ => false,
        };
        if let (Some(a), Some(b)) = (o.per_s, n.per_s) {
            let noise = noise2((a.n > 1).then(|| a.relative_range()), (b.n > 1).then(|| b.relative_range()));
            figures.push(("per_s", a.median, b.median, noise));
        }
        if let (Some(a), Some(b)) = (o.cpu_us, n.cpu_us) {
            let noise = noise2((a.n > 1).then(|| a.relative_range()), (b.n > 1).then(|| b.relative_range()));
            figures.push(("cpu_us", a.median, b.median, noise));
        }
        if let (Some(a), Some(b)) = (o.latency, n.latency) {
            let noise = noise2(rel_range(&p99_rounds(old, o)), rel_range(&p99_rounds(new, n)));
            figures.push(("p99_us", a.p99_us as f64, b.p99_us as f64, noise));
        }
        for (figure, a, b, noise) in figures {
            let change = if a != 0.0 { b / a - 1.0 } else { 0.0 };
            let verdict = match noise {
                _ if a == 0.0 => "n/a".to_string(),
                _ if !same_rate => "rate differs".to_string(),
                None => "noise unknown".to_string(),
                Some(x) if change.abs() <= x => "within noise".to_string(),
                Some(_) => {
                    let up = change > 0.0;
                    if up == higher_is_better(figure) { "better" } else { "worse" }.to_string()
                }
            };
            out.push(Change {
                phase: phase.clone(),
                target: k.2.clone(),
                figure: figure.into(),
                old: a,
                new: b,
                change,
                noise,
                verdict,
            });
        }
    }
    out
}

/// Targets (per phase) one run measured and the other did not, or that
/// failed every round in one of them.
pub fn missing(old: &Results, new: &Results) -> Vec<String> {
    let mut out = Vec::new();
    let olds = keyed(old);
    let news = keyed(new);
    for (k, s) in &olds {
        match news.iter().find(|(nk, _)| nk == k) {
            None => out.push(format!("{} {}: measured in old, not in new", k.2, s.phase.as_str())),
            Some((_, n)) if n.rounds_ok == 0 && s.rounds_ok > 0 => {
                out.push(format!("{} {}: every round failed in new", k.2, s.phase.as_str()))
            }
            _ => {}
        }
    }
    for (k, s) in &news {
        if !olds.iter().any(|(ok, _)| ok == k) {
            out.push(format!("{} {}: new, not in old", k.2, s.phase.as_str()));
        }
    }
    out
}

/// What `compare` prints.
pub fn render(old: &Results, new: &Results, changes: &[Change]) -> String {
    let mut o = String::new();
    let _ =
        writeln!(o, "old: {} {} ({})", old.scenario, old.commit.as_deref().unwrap_or("?"), old.command_line.join(" "));
    let _ =
        writeln!(o, "new: {} {} ({})", new.scenario, new.commit.as_deref().unwrap_or("?"), new.command_line.join(" "));
    if old.scenario != new.scenario {
        let _ = writeln!(o, "warning: different scenarios ({} and {})", old.scenario, new.scenario);
    }
    if old.machine.cpus != new.machine.cpus || old.machine.kernel != new.machine.kernel {
        let _ = writeln!(
            o,
            "warning: different machines ({} CPUs, {} and {} CPUs, {})",
            old.machine.cpus, old.machine.kernel, new.machine.cpus, new.machine.kernel
        );
    }
    if old.generator != new.generator {
        let _ = writeln!(o, "warning: different generators ({} and {})", old.generator, new.generator);
    }
    if old.options != new.options {
        let _ = writeln!(o, "warning: different options (see the files' \"options\")");
    }
    for m in missing(old, new) {
        let _ = writeln!(o, "warning: {m}");
    }
    if changes.is_empty() {
        let _ = writeln!(o, "no figures in common");
        return o;
    }
    let _ = writeln!(
        o,
        "{:<26} {:<18} {:<7} {:>12} {:>12} {:>8} {:>8}  verdict",
        "phase", "target", "figure", "old", "new", "change", "noise"
    );
    for c in changes {
        let _ = writeln!(
            o,
            "{:<26} {:<18} {:<7} {:>12} {:>12} {:>+7.1}% {:>8}  {}",
            c.phase,
            c.target,
            c.figure,
            fmt(c.old),
            fmt(c.new),
            c.change * 100.0,
            c.noise.map(|x| format!("±{:.1}%", x * 100.0)).unwrap_or_else(|| "?".into()),
            c.verdict
        );
    }
    let beyond = changes.iter().filter(|c| c.verdict == "better" || c.verdict == "worse").count();
    let _ = writeln!(o, "{beyond} of {} figures changed beyond the noise across rounds", changes.len());
    o
}

fn fmt(x: f64) -> String {
    if x.abs() >= 1000.0 {
        thousands(x)
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{summarize, Measurement};

    fn run(per_s: &[f64], cpu: &[f64]) -> Results {
        let mut r = crate::publish::tests::sample();
        let mut ms: Vec<Measurement> = Vec::new();
        for (i, (&p, &c)) in per_s.iter().zip(cpu).enumerate() {
            let mut m = r.measurements[0].clone();
            m.round = i as u32 + 1;
            m.per_s = Some(p);
            m.cpu.as_mut().unwrap().busy_s_per_m = c;
            ms.push(m);
        }
        r.summary = summarize(&ms, &[]);
        r.measurements = ms;
        r
    }

    #[test]
    fn beyond_noise_is_better_or_worse_within_is_not() {
        let old = run(&[100.0, 104.0, 102.0], &[5.0, 5.2, 5.1]);
        let new = run(&[150.0, 152.0, 151.0], &[5.05, 5.1, 5.15]);
        // Identical rounds: the noise floor still applies.
        let flat = run(&[100.0, 100.0], &[5.0, 5.0]);
        let flat2 = run(&[101.0, 101.0], &[5.0, 5.0]);
        let c = compare(&flat, &flat2);
        assert_eq!(c.iter().find(|c| c.figure == "per_s").unwrap().verdict, "within noise", "1 % < the 2 % floor");
        let c = compare(&old, &new);
        let per_s = c.iter().find(|c| c.figure == "per_s").unwrap();
        assert_eq!(per_s.verdict, "better");
        assert!((per_s.change - (151.0 / 102.0 - 1.0)).abs() < 1e-12);
        let cpu = c.iter().find(|c| c.figure == "cpu_us").unwrap();
        assert_eq!(cpu.verdict, "within noise", "{cpu:?}");
        let worse = compare(&new, &old);
        assert_eq!(worse.iter().find(|c| c.figure == "per_s").unwrap().verdict, "worse");
        let text = render(&old, &new, &c);
        assert!(text.contains("better") && text.contains("1 of 3 figures"), "{text}");
    }

    #[test]
    fn open_loops_at_different_rates_get_no_verdict_and_missing_targets_are_named() {
        let mut a = run(&[100.0, 101.0], &[5.0, 5.1]);
        let mut b = run(&[150.0, 151.0], &[5.0, 5.1]);
        for (r, rate) in [(&mut a, 100.0), (&mut b, 150.0)] {
            for m in &mut r.measurements {
                m.phase = Phase::Open;
                m.rate = Some(rate);
            }
            r.summary = crate::results::summarize(&r.measurements, &[]);
        }
        assert!(compare(&a, &b).iter().all(|c| c.verdict == "rate differs"));
        let mut gone = b.clone();
        gone.measurements.clear();
        gone.summary.clear();
        let text = render(&a, &gone, &compare(&a, &gone));
        assert!(text.contains("measured in old, not in new"), "{text}");
        let mut zero = a.clone();
        zero.summary[0].per_s.as_mut().unwrap().median = 0.0;
        assert!(compare(&zero, &a).iter().any(|c| c.verdict == "n/a"));
    }

    #[test]
    fn higher_cpu_is_worse_and_one_round_is_unknown() {
        let old = run(&[100.0, 100.0], &[5.0, 5.1]);
        let new = run(&[100.0, 100.0], &[7.0, 7.1]);
        assert_eq!(compare(&old, &new).iter().find(|c| c.figure == "cpu_us").unwrap().verdict, "worse");
        let one = run(&[100.0], &[5.0]);
        assert!(compare(&one, &one).iter().all(|c| c.verdict == "noise unknown"));
    }
}
