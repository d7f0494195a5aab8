//! Human-friendly numbers for the tables (`--json` always prints exact ones).

/// Shown for a value the daemon did not send or that cannot be computed.
pub const MISSING: &str = "-";

const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];

/// Three significant digits with an SI suffix above 9999, exact below:
/// `950` → "950", `12345` → "12.3K", `1234567` → "1.23M".
pub fn count(n: u64) -> String {
    if n < 10_000 {
        return n.to_string();
    }
    scaled(n as f64, "")
}

/// A value that may be missing.
pub fn opt_count(n: Option<u64>) -> String {
    n.map(count).unwrap_or_else(|| MISSING.to_string())
}

/// A per-second rate: "0.5/s", "950/s", "1.23M/s".
pub fn rate(per_s: f64) -> String {
    if !per_s.is_finite() || per_s < 0.0 {
        return MISSING.to_string();
    }
    if per_s < 10.0 {
        format!("{per_s:.1}/s")
    } else if per_s < 10_000.0 {
        format!("{per_s:.0}/s")
    } else {
        scaled(per_s, "/s")
    }
}

/// Bytes per second as megabits per second: "0.08 Mbit/s", "123.5 Mbit/s".
pub fn mbit(bytes_per_s: f64) -> String {
    if !bytes_per_s.is_finite() || bytes_per_s < 0.0 {
        return MISSING.to_string();
    }
    let m = bytes_per_s * 8.0 / 1e6;
    if m < 10.0 {
        format!("{m:.2} Mbit/s")
    } else if m < 1000.0 {
        format!("{m:.1} Mbit/s")
    } else {
        format!("{m:.0} Mbit/s")
    }
}

/// A byte size in binary units: "512 B", "8.0 MiB".
pub fn bytes(n: u64) -> String {
    const B: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < B.len() {
        x /= 1024.0;
        u += 1;
    }
    format!("{x:.1} {}", B[u])
}

/// An uptime: "42s", "3m05s", "1h02m", "2d03h".
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return MISSING.to_string();
    }
    let s = secs.floor() as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A fraction (0..1) as a percentage: "12.5%".
pub fn percent(frac: f64) -> String {
    if frac.is_finite() {
        format!("{:.1}%", frac * 100.0)
    } else {
        MISSING.to_string()
    }
}

/// `x` (at least 1000) with three significant digits and a suffix.
fn scaled(mut x: f64, tail: &str) -> String {
    let mut u = 0;
    while x >= 1000.0 && u + 1 < UNITS.len() {
        x /= 1000.0;
        u += 1;
    }
    loop {
        let decimals = if x < 10.0 {
            2
        } else if x < 100.0 {
            1
        } else {
            0
        };
        let p = 10f64.powi(decimals);
        let r = (x * p).round() / p;
        // 9.996 rounds to 10.00: show it as 10.0; 999.6K rounds to 1000K: 1.00M.
        if r >= 1000.0 && u + 1 < UNITS.len() {
            x /= 1000.0;
            u += 1;
            continue;
        }
        let decimals = if r < 10.0 {
            2
        } else if r < 100.0 {
            1
        } else {
            0
        };
        return format!("{r:.prec$}{}{tail}", UNITS[u], prec = decimals as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(count(0), "0");
        assert_eq!(count(9999), "9999");
        assert_eq!(count(10_000), "10.0K");
        assert_eq!(count(12_345), "12.3K");
        assert_eq!(count(123_456), "123K");
        assert_eq!(count(1_234_567), "1.23M");
        assert_eq!(count(999_600), "1.00M");
        assert_eq!(count(9_996_000), "10.0M");
        assert_eq!(count(99_960_000), "100M");
        assert_eq!(count(u64::MAX), "18.4E");
        assert_eq!(opt_count(None), "-");
    }

    #[test]
    fn rates_and_bits() {
        assert_eq!(rate(0.5), "0.5/s");
        assert_eq!(rate(950.2), "950/s");
        assert_eq!(rate(1_234_567.0), "1.23M/s");
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(mbit(10_000.0), "0.08 Mbit/s");
        assert_eq!(mbit(15_437_500.0), "123.5 Mbit/s");
        assert_eq!(mbit(1.25e9), "10000 Mbit/s");
        assert_eq!(mbit(-1.0), "-");
    }

    #[test]
    fn durations_sizes_percents() {
        assert_eq!(duration(42.9), "42s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(duration(2.0 * 86_400.0 + 3.0 * 3600.0 + 59.0), "2d03h");
        assert_eq!(duration(-1.0), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096 * 2048), "8.0 MiB");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(f64::INFINITY), "-");
    }
}
