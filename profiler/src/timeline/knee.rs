//! Where throughput stopped growing: the plateau of one run, the knee of a sweep (several
//! runs at rising concurrency, or one run ramping its virtual users) and a Universal
//! Scalability Law fit, `X(N) = λN / (1 + σ(N−1) + κN(N−1))`.
use serde::{Deserialize, Serialize};

use super::{Clock, Point, Timeline};

/// The analysis window for the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub start_unix_s: f64,
    pub end_unix_s: f64,
    pub throughput_per_s: f64,
    pub reason: String,
}

/// One concurrency level of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub concurrency: f64,
    pub throughput_per_s: f64,
    pub latency_mean_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// `configured`, `measured` or `littles-law`.
    pub concurrency_source: String,
    /// Where it comes from: a file, or `intervals` of one run.
    pub source: String,
    pub start_unix_s: Option<f64>,
    pub end_unix_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usl {
    /// Contention (serialised fraction).
    pub sigma: f64,
    /// Coherency (crosstalk) cost.
    pub kappa: f64,
    /// Throughput of one unit of concurrency.
    pub lambda: f64,
    /// Coefficient of determination of the fit on throughput.
    pub r2: f64,
    /// `sqrt((1 − σ) / κ)`: where the model's throughput peaks (None when κ = 0).
    pub peak_concurrency: Option<f64>,
    pub peak_throughput: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    pub concurrency: f64,
    pub throughput: f64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrograde {
    /// The first level past the peak where throughput fell more than 10% below it.
    pub concurrency: f64,
    pub throughput: f64,
    /// Fraction lost from the peak at the highest level measured.
    pub drop_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub points: Vec<SweepPoint>,
    pub usl: Option<Usl>,
    pub knee: Option<Knee>,
    pub retrograde: Option<Retrograde>,
}

/// A step of load counts as "followed" when throughput grows by at least this share of the
/// step's relative concurrency growth.
const FOLLOW: f64 = 0.25;
/// Within this fraction of the peak counts as the plateau.
const NEAR_PEAK: f64 = 0.9;

fn run_concurrency(t: &Timeline) -> Option<(f64, String)> {
    if let Some(o) = &t.offered
        && let Some(c) = o.concurrency
        && c > 0.0
    {
        return Some((c, o.source.clone()));
    }
    // Closed-loop tools: in flight = throughput x mean latency (Little's law).
    let mean = t.latency_ms.as_ref()?.mean? / 1000.0;
    let c = t.throughput_per_s * mean;
    (c > 0.0).then(|| (c, "littles-law".to_string()))
}

fn p95(l: Option<&super::Latency>) -> Option<f64> {
    l.and_then(|l| l.p95.or(l.p99).or(l.p90))
}

/// The sweep the timelines describe: one point per run when there are several runs with a
/// concurrency, else one point per concurrency level within one ramping run. None when fewer
/// than three levels are known.
pub fn sweep(timelines: &[Timeline]) -> Option<Sweep> {
    let runs: Vec<SweepPoint> = timelines
        .iter()
        .filter(|t| t.requests > 0 && t.throughput_per_s > 0.0)
        .filter_map(|t| {
            let (c, src) = run_concurrency(t)?;
            let span = t.span_unix_s();
            Some(SweepPoint {
                concurrency: c,
                throughput_per_s: t.throughput_per_s,
                latency_mean_ms: t.latency_ms.as_ref().and_then(|l| l.mean),
                latency_p95_ms: p95(t.latency_ms.as_ref()),
                concurrency_source: src,
                source: t.source.display().to_string(),
                start_unix_s: span.map(|s| s.0),
                end_unix_s: span.map(|s| s.1),
            })
        })
        .collect();
    let mut points = if runs.len() >= 2 {
        runs
    } else {
        timelines
            .iter()
            .map(levels_within)
            .max_by_key(Vec::len)
            .unwrap_or_default()
    };
    points.sort_by(|a, b| a.concurrency.total_cmp(&b.concurrency));
    if points.len() < 3 {
        return None;
    }
    let usl = fit_usl(&points);
    let (knee, retrograde) = knee_of(&points);
    Some(Sweep {
        points,
        usl,
        knee,
        retrograde,
    })
}

/// Interior intervals grouped by their offered concurrency (rounded to a whole VU).
fn levels_within(t: &Timeline) -> Vec<SweepPoint> {
    let interior = interior(&t.points);
    let mut levels: Vec<(f64, Vec<&Point>)> = Vec::new();
    for p in interior {
        let Some(c) = p.offered.as_ref().and_then(|o| o.concurrency) else {
            continue;
        };
        if c <= 0.0 {
            continue;
        }
        let c = if c >= 1.0 { c.round() } else { c };
        match levels.iter_mut().find(|(l, _)| *l == c) {
            Some((_, v)) => v.push(p),
            None => levels.push((c, vec![p])),
        }
    }
    let wall = t.clock != Clock::Offset;
    levels
        .into_iter()
        .map(|(c, ps)| {
            let secs: f64 = ps.iter().map(|p| p.seconds).sum();
            let reqs: u64 = ps.iter().map(|p| p.requests).sum();
            let lat: Vec<f64> = ps
                .iter()
                .filter_map(|p| p95(p.latency_ms.as_ref()))
                .collect();
            let mean: Vec<f64> = ps
                .iter()
                .filter_map(|p| p.latency_ms.as_ref().and_then(|l| l.mean))
                .collect();
            let avg = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            SweepPoint {
                concurrency: c,
                throughput_per_s: reqs as f64 / secs.max(1e-9),
                latency_mean_ms: avg(&mean),
                latency_p95_ms: avg(&lat),
                concurrency_source: ps
                    .first()
                    .and_then(|p| p.offered.as_ref())
                    .map_or_else(String::new, |o| o.source.clone()),
                source: format!("{} intervals", t.source.display()),
                start_unix_s: wall
                    .then(|| ps.iter().map(|p| p.start_s).fold(f64::INFINITY, f64::min)),
                end_unix_s: wall.then(|| {
                    ps.iter()
                        .map(|p| p.start_s + p.seconds)
                        .fold(f64::NEG_INFINITY, f64::max)
                }),
            }
        })
        .collect()
}

/// Points without the first and last (partial, ramp-edge) intervals when enough remain.
fn interior(points: &[Point]) -> &[Point] {
    if points.len() >= 5 {
        &points[1..points.len() - 1]
    } else {
        points
    }
}

/// The knee: the first level within 15% of the best throughput after which one more step of
/// load bought less than a quarter of the proportional gain. Retrograde: past the peak,
/// throughput fell more than 10%.
pub fn knee_of(points: &[SweepPoint]) -> (Option<Knee>, Option<Retrograde>) {
    let Some((imax, best)) = points
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.throughput_per_s.total_cmp(&b.1.throughput_per_s))
    else {
        return (None, None);
    };
    let xmax = best.throughput_per_s;
    let mut knee = None;
    for w in points.windows(2).enumerate() {
        let (i, [a, b]) = w else { continue };
        if a.throughput_per_s < 0.85 * xmax || a.concurrency <= 0.0 || a.throughput_per_s <= 0.0 {
            continue;
        }
        let load_gain = b.concurrency / a.concurrency - 1.0;
        let tput_gain = b.throughput_per_s / a.throughput_per_s - 1.0;
        if load_gain > 0.0 && tput_gain < FOLLOW * load_gain {
            let lat = match (
                a.latency_p95_ms.or(a.latency_mean_ms),
                points
                    .last()
                    .and_then(|l| l.latency_p95_ms.or(l.latency_mean_ms)),
            ) {
                (Some(x), Some(y)) => format!("; latency went from {x:.2} to {y:.2} ms"),
                _ => String::new(),
            };
            knee = Some(Knee {
                concurrency: a.concurrency,
                throughput: a.throughput_per_s,
                reason: format!(
                    "from concurrency {:.0} to {:.0} (+{:.0}%) throughput changed {:+.0}%{lat}",
                    a.concurrency,
                    b.concurrency,
                    load_gain * 100.0,
                    tput_gain * 100.0
                ),
            });
            let _ = i;
            break;
        }
    }
    let retro = points[imax + 1..]
        .iter()
        .find(|p| p.throughput_per_s < NEAR_PEAK * xmax)
        .map(|p| Retrograde {
            concurrency: p.concurrency,
            throughput: p.throughput_per_s,
            drop_fraction: points
                .last()
                .map_or(0.0, |l| 1.0 - l.throughput_per_s / xmax),
        });
    (knee, retro)
}

fn usl_x(n: f64, sigma: f64, kappa: f64) -> f64 {
    n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// Least squares on throughput: for each (σ, κ) the best λ is closed-form, so search
/// (σ, κ) on a log grid and refine around the best cell.
pub fn fit_usl(points: &[SweepPoint]) -> Option<Usl> {
    let data: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.concurrency > 0.0 && p.throughput_per_s.is_finite())
        .map(|p| (p.concurrency, p.throughput_per_s))
        .collect();
    if data.len() < 3 {
        return None;
    }
    let sse = |sigma: f64, kappa: f64| -> (f64, f64) {
        let (mut xg, mut gg) = (0.0, 0.0);
        for &(n, x) in &data {
            let g = usl_x(n, sigma, kappa);
            xg += x * g;
            gg += g * g;
        }
        let lambda = if gg > 0.0 { xg / gg } else { 0.0 };
        let e: f64 = data
            .iter()
            .map(|&(n, x)| (x - lambda * usl_x(n, sigma, kappa)).powi(2))
            .sum();
        (e, lambda)
    };
    let grid = |lo: f64, hi: f64, k: usize| -> Vec<f64> {
        let mut v = vec![0.0];
        v.extend((0..k).map(|i| lo * (hi / lo).powf(i as f64 / (k - 1) as f64)));
        v
    };
    let (mut best, mut bs, mut bk) = (f64::INFINITY, 0.0, 0.0);
    for &s in &grid(1e-4, 1.0, 60) {
        for &k in &grid(1e-8, 1.0, 80) {
            let (e, _) = sse(s, k);
            if e < best {
                (best, bs, bk) = (e, s, k);
            }
        }
    }
    // Pattern search: shrink steps around the best point.
    let (mut ds, mut dk) = (bs.max(1e-4) * 0.5, bk.max(1e-8) * 0.5);
    for _ in 0..200 {
        let mut improved = false;
        for (s, k) in [(bs + ds, bk), (bs - ds, bk), (bs, bk + dk), (bs, bk - dk)] {
            if !(0.0..=1.0).contains(&s) || k < 0.0 {
                continue;
            }
            let (e, _) = sse(s, k);
            if e < best {
                (best, bs, bk, improved) = (e, s, k, true);
            }
        }
        if !improved {
            ds *= 0.5;
            dk *= 0.5;
        }
    }
    let (_, lambda) = sse(bs, bk);
    let mean = data.iter().map(|d| d.1).sum::<f64>() / data.len() as f64;
    let sst: f64 = data.iter().map(|d| (d.1 - mean).powi(2)).sum();
    let r2 = if sst > 0.0 { 1.0 - best / sst } else { 0.0 };
    let peak = (bk > 0.0).then(|| ((1.0 - bs) / bk).sqrt());
    Some(Usl {
        sigma: bs,
        kappa: bk,
        lambda,
        r2,
        peak_concurrency: peak,
        peak_throughput: peak.map(|n| lambda * usl_x(n, bs, bk)),
    })
}

/// Rolling median of three.
fn smooth(x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            if i == 0 || i + 1 == x.len() {
                return x[i];
            }
            let mut w = [x[i - 1], x[i], x[i + 1]];
            w.sort_by(f64::total_cmp);
            w[1]
        })
        .collect()
}

/// The analysis window for the verdict: for several runs at different concurrencies (a
/// sweep) the runs from the knee on; for one run the longest stretch of intervals within 10%
/// of its peak throughput. None when no timeline has intervals on the wall clock.
pub fn plateau(timelines: &[Timeline]) -> Option<Window> {
    let placed: Vec<&Timeline> = timelines
        .iter()
        .filter(|t| t.clock != Clock::Offset && t.requests > 0)
        .collect();
    // Several separate runs (spans that do not overlap): a sweep.
    let mut spans: Vec<(f64, f64)> = placed.iter().filter_map(|t| t.span_unix_s()).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let disjoint = spans.len() >= 2 && spans.windows(2).all(|w| w[1].0 >= w[0].1 - 0.5);
    if disjoint && let Some(w) = sweep_window(&placed) {
        return Some(w);
    }
    let t = placed
        .iter()
        .filter(|t| t.points.len() >= 3)
        .max_by_key(|t| (t.points.len(), t.requests))?;
    run_window(t)
}

fn sweep_window(runs: &[&Timeline]) -> Option<Window> {
    let owned: Vec<Timeline> = runs.iter().map(|t| (*t).clone()).collect();
    let s = sweep(&owned)?;
    let xmax = s
        .points
        .iter()
        .map(|p| p.throughput_per_s)
        .fold(0.0, f64::max);
    let from = s.knee.as_ref().map_or_else(
        || {
            s.points
                .iter()
                .find(|p| p.throughput_per_s >= xmax)
                .map_or(0.0, |p| p.concurrency)
        },
        |k| k.concurrency,
    );
    let sat: Vec<&SweepPoint> = s
        .points
        .iter()
        .filter(|p| p.concurrency >= from && p.start_unix_s.is_some())
        .collect();
    let start = sat
        .iter()
        .filter_map(|p| p.start_unix_s)
        .fold(f64::INFINITY, f64::min);
    let end = sat
        .iter()
        .filter_map(|p| p.end_unix_s)
        .fold(f64::NEG_INFINITY, f64::max);
    if !(start.is_finite() && end > start) {
        return None;
    }
    let tput = sat.iter().map(|p| p.throughput_per_s).sum::<f64>() / sat.len() as f64;
    let reason = match &s.knee {
        Some(k) => format!(
            "sweep of {} runs: knee at concurrency {:.0} ({:.0}/s): {}; window = runs at concurrency >= {:.0}",
            s.points.len(),
            k.concurrency,
            k.throughput,
            k.reason,
            k.concurrency
        ),
        None => format!(
            "sweep of {} runs: no knee (throughput still following load); window = the best run, at concurrency {from:.0}",
            s.points.len()
        ),
    };
    Some(Window {
        start_unix_s: start,
        end_unix_s: end,
        throughput_per_s: tput,
        reason,
    })
}

fn run_window(t: &Timeline) -> Option<Window> {
    let pts = interior(&t.points);
    let x: Vec<f64> = pts.iter().map(|p| p.throughput_per_s).collect();
    let s = smooth(&x);
    let peak = s.iter().copied().fold(0.0, f64::max);
    if peak <= 0.0 {
        return None;
    }
    // Longest contiguous stretch within 10% of the peak.
    let (mut best, mut cur) = ((0, 0), None::<usize>);
    for i in 0..=s.len() {
        let ok = i < s.len() && s[i] >= NEAR_PEAK * peak;
        match (ok, cur) {
            (true, None) => cur = Some(i),
            (false, Some(a)) => {
                if i - a > best.1 - best.0 {
                    best = (a, i);
                }
                cur = None;
            }
            _ => {}
        }
    }
    let (a, b) = best;
    if b - a < 2 {
        return None;
    }
    let span = &pts[a..b];
    let reqs: u64 = span.iter().map(|p| p.requests).sum();
    let secs: f64 = span.iter().map(|p| p.seconds).sum();
    let start = span[0].start_s;
    let end = span[span.len() - 1].start_s + span[span.len() - 1].seconds;
    let load = |p: &Point| p.offered.as_ref().and_then(|o| o.concurrency);
    let lat = |p: &Point| p95(p.latency_ms.as_ref());
    let mut reason = format!(
        "{} ({}): {} intervals within 10% of the peak {:.0}/s",
        t.source.display(),
        t.format,
        b - a,
        peak
    );
    if let (Some(l0), Some(l1)) = (load(&span[0]), load(&span[span.len() - 1]))
        && l1 > l0 * 1.1
    {
        reason.push_str(&format!(
            " while offered load rose from {l0:.0} to {l1:.0}: throughput stopped following load"
        ));
    }
    if let (Some(p0), Some(p1)) = (lat(&pts[0]), lat(&span[span.len() - 1])) {
        reason.push_str(&format!("; p95 latency {p0:.2} -> {p1:.2} ms"));
    }
    Some(Window {
        start_unix_s: start,
        end_unix_s: end,
        throughput_per_s: reqs as f64 / secs.max(1e-9),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(n: f64, x: f64) -> SweepPoint {
        SweepPoint {
            concurrency: n,
            throughput_per_s: x,
            latency_mean_ms: Some(n / x * 1000.0),
            latency_p95_ms: None,
            concurrency_source: "configured".into(),
            source: "test".into(),
            start_unix_s: None,
            end_unix_s: None,
        }
    }

    #[test]
    fn usl_fit_recovers_known_parameters() {
        let (sigma, kappa, lambda) = (0.05, 0.0004, 1000.0);
        let pts: Vec<SweepPoint> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
            .iter()
            .map(|&n| level(n, lambda * usl_x(n, sigma, kappa)))
            .collect();
        let u = fit_usl(&pts).expect("fit");
        assert!((u.sigma - sigma).abs() < 0.005, "{u:?}");
        assert!((u.kappa - kappa).abs() < 0.0001, "{u:?}");
        assert!((u.lambda - lambda).abs() / lambda < 0.02, "{u:?}");
        assert!(u.r2 > 0.999, "{u:?}");
        let peak = ((1.0 - sigma) / kappa).sqrt();
        let got = u.peak_concurrency.expect("kappa > 0");
        assert!((got - peak).abs() / peak < 0.1, "{got} vs {peak}");
    }

    #[test]
    fn linear_scaling_has_no_knee_and_tiny_contention() {
        let pts: Vec<SweepPoint> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .map(|&n| level(n, 100.0 * n))
            .collect();
        let (knee, retro) = knee_of(&pts);
        assert!(knee.is_none());
        assert!(retro.is_none());
        let u = fit_usl(&pts).expect("fit");
        assert!(u.sigma < 0.01 && u.kappa < 1e-4, "{u:?}");
    }

    #[test]
    fn saturation_then_collapse_gives_knee_and_retrograde() {
        let xs = [
            (10.0, 1000.0),
            (20.0, 1900.0),
            (40.0, 2500.0),
            (80.0, 2550.0),
            (160.0, 2000.0),
        ];
        let pts: Vec<SweepPoint> = xs.iter().map(|&(n, x)| level(n, x)).collect();
        let (knee, retro) = knee_of(&pts);
        let knee = knee.expect("a knee");
        assert_eq!(knee.concurrency, 40.0);
        let retro = retro.expect("retrograde");
        assert_eq!(retro.concurrency, 160.0);
        assert!((retro.drop_fraction - (1.0 - 2000.0 / 2550.0)).abs() < 1e-9);
    }
}
