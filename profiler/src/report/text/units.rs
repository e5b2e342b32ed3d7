//! Pure number formatting for the human summary: counts and rates (k/M/G), durations
//! (ns/µs/ms/s), bytes (KB/MB/GB), shares (%), and log2 histogram bucket bounds (`< 2.1 ms`).

/// `x` to three significant digits, trailing zeros dropped: 0.128 → "0.128", 9.801 → "9.8",
/// 42 → "42", 352 → "352". Meant for |x| < 1000 (larger values print as integers).
fn sig3(x: f64) -> String {
    sig3_with(x, false)
}

/// As `sig3`, rounding the magnitude up instead of to the nearest (for upper bounds).
fn sig3_up(x: f64) -> String {
    sig3_with(x, true)
}

fn sig3_with(x: f64, up: bool) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x.is_nan() { "-".into() } else { "0".into() };
    }
    let a = x.abs();
    let decimals = if a >= 100.0 {
        0
    } else {
        // Digits after the point for three significant ones (at most 6: 0.000123).
        (2 - a.log10().floor() as i32).clamp(0, 6) as usize
    };
    let v = if up {
        let scale = 10f64.powi(decimals as i32);
        // The epsilon keeps an exact value (2.1 stored as 2.1000000000000001) from rounding up.
        x.signum() * ((a * scale) - 1e-9).ceil() / scale
    } else {
        x
    };
    trim(format!("{v:.decimals$}"))
}

/// "2.50" → "2.5", "3.00" → "3", "120" → "120".
fn trim(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A count or a rate with an SI suffix above a thousand: 65 → "65", 2723 → "2.72k",
/// 262144 → "262k", 1702801 → "1.7M", 0.2 → "0.2", 262144.0 never "262144.000".
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a < 999.5 {
        return sig3(x);
    }
    let (scale, suffix) = scaled(x, &[(1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")]);
    format!("{}{suffix}", sig3(x / scale))
}

/// The first of `units` (ascending) that shows `x` below 1000 after rounding (999.96k is
/// "1M", not "1000k"), or the last.
fn scaled(x: f64, units: &[(f64, &'static str)]) -> (f64, &'static str) {
    let mut i = 0;
    while i + 1 < units.len() && (x / units[i].0).abs() >= 999.5 {
        i += 1;
    }
    units[i]
}

/// An integer count: `num` of it.
pub fn count(n: u64) -> String {
    num(n as f64)
}

/// Cores with two decimals; some use below 0.005 is "<0.01", not "0.00".
pub fn cores(c: f64) -> String {
    if c > 0.0 && c < 0.005 {
        "<0.01".into()
    } else {
        format!("{c:.2}")
    }
}

/// A share (0..1, or above for over-use) as a percentage: 0.998 → "100%", 0.062 → "6.2%",
/// 0.003 → "0.3%", 0 → "0%".
pub fn percent(fraction: f64) -> String {
    if !fraction.is_finite() {
        return "-".into();
    }
    let p = fraction * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p.abs() >= 10.0 {
        format!("{p:.0}%")
    } else if p.abs() >= 0.1 {
        trim(format!("{p:.1}")) + "%"
    } else {
        // Not zero, but too small to show at this precision.
        "<0.1%".into()
    }
}

/// A duration in seconds split into a number and its unit: 0.00025 → ("250", "µs"),
/// 6.341 → ("6.34", "s"), 3600 → ("3600", "s").
pub fn duration_parts(seconds: f64) -> (String, &'static str) {
    duration_parts_with(seconds, false)
}

fn duration_parts_with(seconds: f64, up: bool) -> (String, &'static str) {
    if !seconds.is_finite() {
        return ("-".into(), "");
    }
    let a = seconds.abs();
    let (v, unit) = if a == 0.0 {
        return ("0".into(), "s");
    } else if a < 1e-6 {
        (seconds * 1e9, "ns")
    } else if a < 1e-3 {
        (seconds * 1e6, "µs")
    } else if a < 1.0 {
        (seconds * 1e3, "ms")
    } else {
        (seconds, "s")
    };
    // Rounding can reach the next unit: 999.96 µs is "1 ms".
    let text = if up { sig3_up(v) } else { sig3(v) };
    if text.trim_start_matches('-') == "1000" && unit != "s" {
        let next = match unit {
            "ns" => "µs",
            "µs" => "ms",
            _ => "s",
        };
        return (if v < 0.0 { "-1" } else { "1" }.into(), next);
    }
    (text, unit)
}

/// A duration in seconds as text: "250 µs", "6.34 s".
pub fn duration(seconds: f64) -> String {
    let (n, u) = duration_parts(seconds);
    if u.is_empty() { n } else { format!("{n} {u}") }
}

/// A duration given in milliseconds.
pub fn duration_ms(ms: f64) -> String {
    duration(ms / 1e3)
}

/// Bytes split into a number and a decimal unit: 1_800_000 → ("1.8", "MB").
pub fn bytes_parts(bytes: f64) -> (String, &'static str) {
    if !bytes.is_finite() {
        return ("-".into(), "");
    }
    let (scale, unit) = scaled(bytes, &[(1.0, "B"), (1e3, "KB"), (1e6, "MB"), (1e9, "GB")]);
    (sig3(bytes / scale), unit)
}

/// Bytes per second: "1.8 MB/s".
pub fn bytes_per_s(bytes: f64) -> String {
    let (n, u) = bytes_parts(bytes);
    format!("{n} {u}/s")
}

/// The upper bound, in nanoseconds, of the log2 bucket (`[2^i, 2^(i+1))` ns, see
/// `recording::histogram`) that a quantile interpolated inside it lies in. The quantiles are
/// interpolated within their bucket and the maximum is already the bucket's upper bound, so
/// the bound of the bucket is what the figure really says: "below this".
pub fn bucket_upper_ns(ns: f64) -> f64 {
    if ns.is_nan() || ns <= 2.0 {
        // Bucket 0 holds [0, 2) ns.
        return 2.0;
    }
    let l = ns.log2();
    // A bound read back from milliseconds (2^21 ns as 2.097152 ms) must stay on its power.
    let i = if (l - l.round()).abs() < 1e-9 {
        l.round()
    } else {
        l.ceil()
    };
    2f64.powf(i)
}

/// A quantile of a log2 histogram in milliseconds as the bound it is: 1.4 → "< 2.1 ms",
/// None → "-".
pub fn bound_ms(ms: Option<f64>) -> String {
    match ms {
        Some(v) => bound_s(bucket_upper_ns(v * 1e6) / 1e9),
        None => "-".into(),
    }
}

/// As `bound_ms`, for a figure in microseconds.
pub fn bound_us(us: Option<f64>) -> String {
    match us {
        Some(v) => bound_s(bucket_upper_ns(v * 1e3) / 1e9),
        None => "-".into(),
    }
}

/// "< 2.1 ms": rounded up, so the printed bound is never below the real one.
fn bound_s(seconds: f64) -> String {
    let (n, u) = duration_parts_with(seconds, true);
    format!("< {n} {u}")
}

/// An evidence value with its unit, split into the number and the unit to print after it:
/// fractions become percentages, seconds scaled durations, counts k/M.
pub fn value_parts(value: f64, unit: &str) -> (String, String) {
    match unit {
        "fraction" | "ratio" => (percent(value).trim_end_matches('%').into(), "%".into()),
        "s" => {
            let (n, u) = duration_parts(value);
            (n, u.into())
        }
        "ms" => {
            let (n, u) = duration_parts(value / 1e3);
            (n, u.into())
        }
        "B/s" => {
            let (n, u) = bytes_parts(value);
            (n, format!("{u}/s"))
        }
        "B" | "bytes" => {
            let (n, u) = bytes_parts(value);
            (n, u.into())
        }
        // A plain count needs no word after it.
        "count" => (num(value), String::new()),
        "cores" => (cores(value), "cores".into()),
        "s/s" => (format!("{value:.2}"), "s/s".into()),
        "1/s" => (num(value), "/s".into()),
        _ => (num(value), unit.into()),
    }
}

/// An evidence threshold in the unit its value is printed in: for a fraction printed as a
/// percentage, ">= 0.90 (single hot thread)" → ">= 90% (single hot thread)". Only the first
/// number is rewritten (">= 0.01 and >= 5 events" → ">= 1% and >= 5 events"); thresholds of
/// other units, or already in percent, are returned as they are.
pub fn threshold(text: &str, unit: &str) -> String {
    if !matches!(unit, "fraction" | "ratio") {
        return text.to_string();
    }
    let Some(start) = text.find(|c: char| c.is_ascii_digit()) else {
        return text.to_string();
    };
    let end = text[start..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(text.len(), |e| start + e);
    let number = &text[start..end];
    let already_percent = text[end..].trim_start().starts_with('%');
    match number.parse::<f64>() {
        Ok(v) if number.contains('.') && v <= 1.0 && !already_percent => {
            format!("{}{}{}", &text[..start], percent(v), &text[end..])
        }
        _ => text.to_string(),
    }
}

/// An integer range in words: (3, 12) → "3–12", (4, 4) → "4".
pub fn range(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}–{b}")
    }
}

/// Rust's inclusive range syntax in a sentence made for people: "intervals 0..=6" →
/// "intervals 0–6".
pub fn ranges_in_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("..=") {
        let (before, after) = rest.split_at(i);
        let after = &after[3..];
        let digit_before = before.ends_with(|c: char| c.is_ascii_digit());
        let digit_after = after.starts_with(|c: char| c.is_ascii_digit());
        out.push_str(before);
        out.push_str(if digit_before && digit_after {
            "–"
        } else {
            " to "
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_scale_and_carry_no_decimals_when_whole() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(65.0), "65");
        assert_eq!(num(352.0), "352");
        assert_eq!(num(2723.0), "2.72k");
        assert_eq!(num(262144.0), "262k");
        assert_eq!(num(55310.4), "55.3k");
        assert_eq!(num(1_702_801.0), "1.7M");
        assert_eq!(num(999_960.0), "1M", "rounds into the next suffix");
        assert_eq!(num(3_000_000_000.0), "3G");
        assert_eq!(count(1000), "1k");
        assert_eq!(count(80), "80");
        assert_eq!(num(0.2), "0.2");
        assert_eq!(num(9.801), "9.8");
        assert_eq!(num(0.128), "0.128");
        assert_eq!(num(-1500.0), "-1.5k");
        assert_eq!(num(f64::NAN), "-");
    }

    #[test]
    fn shares_are_percentages() {
        assert_eq!(percent(0.998), "100%");
        assert_eq!(percent(0.36), "36%");
        assert_eq!(percent(0.062), "6.2%");
        assert_eq!(percent(0.05), "5%");
        assert_eq!(percent(0.003), "0.3%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.000_01), "<0.1%");
        assert_eq!(percent(80.0), "8000%");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(0.0), "0 s");
        assert_eq!(duration(0.000_000_188), "188 ns");
        assert_eq!(duration(0.000_25), "250 µs");
        assert_eq!(duration(0.320), "320 ms");
        assert_eq!(duration(0.0042), "4.2 ms");
        assert_eq!(duration(6.341), "6.34 s");
        assert_eq!(duration(12.473), "12.5 s");
        assert_eq!(duration(3600.0), "3600 s");
        assert_eq!(duration(0.000_999_96), "1 ms", "rounds into the next unit");
        assert_eq!(duration_ms(1.5), "1.5 ms");
        assert_eq!(duration_ms(0.013), "13 µs");
    }

    #[test]
    fn bytes_pick_their_unit() {
        assert_eq!(bytes_parts(512.0), ("512".into(), "B"));
        assert_eq!(bytes_parts(1_800_000.0), ("1.8".into(), "MB"));
        assert_eq!(bytes_parts(125_000.0), ("125".into(), "KB"));
        assert_eq!(bytes_per_s(12_500_000_000.0), "12.5 GB/s");
        assert_eq!(bytes_per_s(0.0), "0 B/s");
    }

    #[test]
    fn bucket_bounds_are_the_power_of_two_above() {
        // 1.4 ms lies in [2^20, 2^21) ns: below 2.097 ms.
        assert_eq!(bucket_upper_ns(1.4e6), 2_097_152.0);
        // The upper bound itself, read back from milliseconds, stays where it is.
        assert_eq!(bucket_upper_ns(2.097_152e6), 2_097_152.0);
        assert_eq!(bucket_upper_ns(1.0), 2.0);
        assert_eq!(bound_ms(Some(1.4)), "< 2.1 ms");
        assert_eq!(bound_ms(Some(3.0)), "< 4.2 ms");
        assert_eq!(
            bound_ms(Some(0.131_072)),
            "< 132 µs",
            "2^17 ns is 131.072 µs: rounded up, never down"
        );
        assert_eq!(bound_ms(Some(0.044)), "< 65.6 µs", "65.536 µs rounded up");
        assert_eq!(bound_us(Some(1584.0)), "< 2.1 ms");
        assert_eq!(bound_us(Some(25.0)), "< 32.8 µs");
        assert_eq!(bound_ms(None), "-");
    }

    #[test]
    fn evidence_values_in_their_units() {
        let v = |x, u| {
            let (n, u) = value_parts(x, u);
            format!("{n}{u}")
        };
        assert_eq!(v(0.998, "fraction"), "100%");
        assert_eq!(v(80.0, "ratio"), "8000%");
        assert_eq!(v(262144.0, "entries"), "262kentries");
        assert_eq!(v(2723.0, "sockets"), "2.72ksockets");
        assert_eq!(v(81.0, "count"), "81");
        assert_eq!(v(6.341, "s"), "6.34s");
        assert_eq!(v(0.121, "ms"), "121µs");
        assert_eq!(v(0.648, "cores"), "0.65cores");
        assert_eq!(v(0.004, "cores"), "<0.01cores");
        assert_eq!(v(2.0, "cores"), "2.00cores");
        assert_eq!(v(9.801, "1/s"), "9.8/s");
        assert_eq!(v(1_250_000.0, "B/s"), "1.25MB/s");
    }

    #[test]
    fn fraction_thresholds_in_percent() {
        assert_eq!(threshold(">= 0.90", "fraction"), ">= 90%");
        assert_eq!(
            threshold(">= 0.90 (single hot thread)", "fraction"),
            ">= 90% (single hot thread)"
        );
        assert_eq!(
            threshold(">= 0.01 and >= 5 events", "ratio"),
            ">= 1% and >= 5 events"
        );
        assert_eq!(threshold(">= 90% used", "fraction"), ">= 90% used");
        assert_eq!(threshold(">= 0.50", "s/s"), ">= 0.50");
        assert_eq!(threshold(">= 100", "1/s"), ">= 100");
    }

    #[test]
    fn ranges_read_as_words() {
        assert_eq!(
            ranges_in_words("active intervals 0..=6 without the first and last"),
            "active intervals 0–6 without the first and last"
        );
        assert_eq!(ranges_in_words("a..=b"), "a to b");
        assert_eq!(ranges_in_words("no range"), "no range");
        assert_eq!(range(3, 12), "3–12");
        assert_eq!(range(4, 4), "4");
    }
}
