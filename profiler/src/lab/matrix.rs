//! `chokepoint lab --matrix`: how the verdicts of a set of scenario runs line up with their
//! designed causes: a confusion matrix (expected kind × verdict), precision and recall per
//! kind, and the calibration of confidence (of the verdicts given at about 0.9, how many were
//! right).
use std::collections::BTreeMap;

use serde::Serialize;

/// One scenario's outcome, as the matrix needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub expected: String,
    pub got: String,
    pub confidence: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindScore {
    pub kind: String,
    /// Scenarios designed for this kind, verdicts of this kind, and both.
    pub expected: usize,
    pub given: usize,
    pub right: usize,
    /// right / given (None when never given) and right / expected (None when never expected).
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Confidence in [low, high).
    pub low: f64,
    pub high: f64,
    pub verdicts: usize,
    pub right: usize,
    /// right / verdicts, to compare with the bin's confidence.
    pub accuracy: f64,
    pub mean_confidence: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Matrix {
    /// Every kind that was expected or given, in a stable order.
    pub kinds: Vec<String>,
    /// counts[expected][got].
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    pub scores: Vec<KindScore>,
    pub calibration: Vec<CalibrationBin>,
    /// Right verdicts of all.
    pub accuracy: f64,
    /// Whether every verdict was the designed one.
    pub diagonal: bool,
}

/// Confidence bins: the verdicts come at 0.5 and above (a rule that fired) or lower.
const BINS: &[(f64, f64)] = &[(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)];

pub fn matrix(outcomes: &[Outcome]) -> Matrix {
    let mut kinds: Vec<String> = Vec::new();
    for o in outcomes {
        for k in [&o.expected, &o.got] {
            if !kinds.contains(k) {
                kinds.push(k.clone());
            }
        }
    }
    kinds.sort();
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for o in outcomes {
        *counts
            .entry(o.expected.clone())
            .or_default()
            .entry(o.got.clone())
            .or_default() += 1;
    }
    let scores = kinds
        .iter()
        .map(|k| {
            let expected = outcomes.iter().filter(|o| &o.expected == k).count();
            let given = outcomes.iter().filter(|o| &o.got == k).count();
            let right = outcomes
                .iter()
                .filter(|o| &o.got == k && &o.expected == k)
                .count();
            KindScore {
                kind: k.clone(),
                expected,
                given,
                right,
                precision: (given > 0).then(|| right as f64 / given as f64),
                recall: (expected > 0).then(|| right as f64 / expected as f64),
            }
        })
        .collect();
    let calibration = BINS
        .iter()
        .filter_map(|&(low, high)| {
            let inside: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.confidence >= low && o.confidence < high)
                .collect();
            if inside.is_empty() {
                return None;
            }
            let right = inside.iter().filter(|o| o.got == o.expected).count();
            Some(CalibrationBin {
                low,
                high: high.min(1.0),
                verdicts: inside.len(),
                right,
                accuracy: right as f64 / inside.len() as f64,
                mean_confidence: inside.iter().map(|o| o.confidence).sum::<f64>()
                    / inside.len() as f64,
            })
        })
        .collect();
    let right = outcomes.iter().filter(|o| o.got == o.expected).count();
    Matrix {
        kinds,
        counts,
        scores,
        calibration,
        accuracy: right as f64 / outcomes.len().max(1) as f64,
        diagonal: right == outcomes.len(),
    }
}

/// The matrix as text: rows the expected kinds, columns the verdicts (abbreviated), then the
/// scores and the calibration.
pub fn render(m: &Matrix) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    // Columns by number (kind names are too long for columns, and initials collide).
    let short = |k: &str| -> String {
        m.kinds
            .iter()
            .position(|x| x == k)
            .map_or("?".into(), |i| (i + 1).to_string())
    };
    let name_w = m.kinds.iter().map(String::len).max().unwrap_or(8).max(8);
    let _ = writeln!(
        s,
        "confusion matrix (rows: designed cause; columns: verdict):"
    );
    let _ = write!(s, "  {:name_w$}   ", "");
    for k in &m.kinds {
        let _ = write!(s, " {:>4}", short(k));
    }
    let _ = writeln!(s);
    for e in &m.kinds {
        let Some(row) = m.counts.get(e) else { continue };
        let _ = write!(s, "  {e:name_w$}");
        let _ = write!(s, " {:>2}", short(e));
        for g in &m.kinds {
            let n = row.get(g).copied().unwrap_or(0);
            let cell = if n == 0 {
                ".".to_string()
            } else {
                n.to_string()
            };
            let _ = write!(s, " {cell:>4}");
        }
        let _ = writeln!(s);
    }
    let legend: Vec<String> = m
        .kinds
        .iter()
        .map(|k| format!("{} {k}", short(k)))
        .collect();
    // Rows carry their number too, so the diagonal reads at a glance.
    let _ = writeln!(s, "  ({})", legend.join(", "));
    let _ = writeln!(s, "per kind:");
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.0}%", v * 100.0));
    for k in &m.scores {
        let _ = writeln!(
            s,
            "  {:name_w$}  precision {:>4} ({}/{})  recall {:>4} ({}/{})",
            k.kind,
            f(k.precision),
            k.right,
            k.given,
            f(k.recall),
            k.right,
            k.expected
        );
    }
    let _ = writeln!(s, "confidence calibration:");
    for b in &m.calibration {
        let _ = writeln!(
            s,
            "  {:.1}-{:.1}: {} verdicts, mean confidence {:.2}, right {} ({:.0}%)",
            b.low,
            b.high,
            b.verdicts,
            b.mean_confidence,
            b.right,
            b.accuracy * 100.0
        );
    }
    let _ = writeln!(
        s,
        "accuracy {:.0}% ({}); the matrix is {}diagonal",
        m.accuracy * 100.0,
        m.scores.iter().map(|k| k.right).sum::<usize>(),
        if m.diagonal { "" } else { "not " }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(expected: &str, got: &str, confidence: f64) -> Outcome {
        Outcome {
            expected: expected.into(),
            got: got.into(),
            confidence,
        }
    }

    #[test]
    fn precision_recall_and_calibration_count_what_happened() {
        let m = matrix(&[
            o("cpu-saturated", "cpu-saturated", 0.95),
            o("cpu-saturated", "cpu-saturated", 0.92),
            o("lock-contention", "cpu-saturated", 0.91),
            o("lock-contention", "lock-contention", 0.75),
            o("not-saturated", "not-saturated", 0.6),
        ]);
        assert!(!m.diagonal);
        assert_eq!(m.counts["lock-contention"]["cpu-saturated"], 1);
        let cpu = m
            .scores
            .iter()
            .find(|k| k.kind == "cpu-saturated")
            .expect("cpu");
        assert_eq!((cpu.given, cpu.right, cpu.expected), (3, 2, 2));
        assert!((cpu.precision.expect("p") - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(cpu.recall, Some(1.0));
        let lock = m
            .scores
            .iter()
            .find(|k| k.kind == "lock-contention")
            .expect("lock");
        assert_eq!(lock.recall, Some(0.5));
        let top = m.calibration.last().expect("a 0.9 bin");
        assert_eq!((top.verdicts, top.right), (3, 2));
        assert!((m.accuracy - 0.8).abs() < 1e-9);
        let text = render(&m);
        assert!(text.contains("not diagonal"), "{text}");
        assert!(text.contains("precision  67% (2/3)"), "{text}");
    }

    #[test]
    fn all_right_is_diagonal() {
        let m = matrix(&[
            o("io-bound", "io-bound", 0.8),
            o("cpu-saturated", "cpu-saturated", 0.9),
        ]);
        assert!(m.diagonal);
        assert!(render(&m).contains("the matrix is diagonal"));
    }
}
