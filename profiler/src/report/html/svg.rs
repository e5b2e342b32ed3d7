//! A small SVG writer for the HTML report: line charts and stacked areas over time, with nice
//! axis ticks, a shaded band (the analysis window), an optional reference line (capacity),
//! dash patterns as well as colours (meaning never by colour alone), and a `<title>`/`<desc>`
//! for screen readers. Sharp at any zoom and a few KB a chart; no dependency.
use std::fmt::Write;

use crate::report::text::units::num;

/// Okabe-Ito: told apart with the common colour-vision deficiencies.
const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#999933",
];
/// Dash patterns, so that lines also differ without colour.
const DASHES: [&str; 8] = [
    "", "6 3", "2 3", "8 3 2 3", "12 4", "4 2 1 2", "1 2", "10 2 2 2",
];

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;

/// One series: its points in order; `None` breaks the line.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, Option<f64>)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    /// What the y values are in (`cores`, `/s`, `ms`).
    pub unit: &'a str,
    pub lines: Vec<Line>,
    /// Stack the lines as areas (their sum is the top).
    pub stacked: bool,
    /// A shaded span of x (the analysis window) and its label.
    pub band: Option<(f64, f64, &'a str)>,
    /// A horizontal reference (`capacity`), value and label.
    pub reference: Option<(f64, String)>,
    /// The x axis's span, the same for every chart of a page (else the data's own).
    pub x_range: Option<(f64, f64)>,
    /// What x is (`seconds from the start`).
    pub x_label: &'a str,
}

/// Escapes text for XML and HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Ticks at 1, 2 or 5 times a power of ten covering 0..=max, about `n` of them.
pub fn ticks(max: f64, n: usize) -> Vec<f64> {
    if !(max > 0.0 && max.is_finite()) {
        return vec![0.0, 1.0];
    }
    let raw = max / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

impl Chart<'_> {
    /// Whether any line has a value to draw.
    pub fn has_data(&self) -> bool {
        self.lines
            .iter()
            .any(|l| l.points.iter().any(|(_, y)| y.is_some()))
    }

    /// The lines as drawn: stacked lines carry the running sum.
    fn drawn(&self) -> Vec<Vec<(f64, Option<f64>)>> {
        if !self.stacked {
            return self.lines.iter().map(|l| l.points.clone()).collect();
        }
        let mut sum: Vec<f64> = Vec::new();
        self.lines
            .iter()
            .map(|l| {
                sum.resize(sum.len().max(l.points.len()), 0.0);
                l.points
                    .iter()
                    .enumerate()
                    .map(|(i, (x, y))| {
                        sum[i] += y.unwrap_or(0.0);
                        (*x, Some(sum[i]))
                    })
                    .collect()
            })
            .collect()
    }

    pub fn render(&self, id: &str, desc: &str) -> String {
        let drawn = self.drawn();
        let xs = drawn.iter().flatten().map(|(x, _)| *x);
        let (x_min, x_max) = match self.x_range {
            Some((a, b)) => (
                xs.clone().fold(a, f64::min),
                xs.fold(b, f64::max).max(a + 1.0),
            ),
            None => (
                xs.clone().fold(0.0, f64::min),
                xs.fold(self.band.map_or(0.0, |b| b.1), f64::max).max(1.0),
            ),
        };
        let y_top = drawn
            .iter()
            .flatten()
            .filter_map(|(_, y)| *y)
            .fold(self.reference.as_ref().map_or(0.0, |r| r.0), f64::max);
        let yt = ticks(y_top, 4);
        let y_max = yt.last().copied().unwrap_or(1.0).max(1e-9);
        let xt = ticks(x_max - x_min, 8);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min).max(1e-9) * pw;
        let py = |y: f64| TOP + ph - y / y_max * ph;

        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t {id}-d" class="chart"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
            esc(self.title),
            esc(desc)
        );
        if let Some((a, b, label)) = self.band {
            let _ = write!(
                s,
                r##"<rect class="band" x="{:.1}" y="{TOP}" width="{:.1}" height="{ph}" fill="#000" fill-opacity="0.07"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#444">{}</text>"##,
                px(a),
                (px(b) - px(a)).max(1.0),
                px(a) + 3.0,
                TOP + 10.0,
                esc(label)
            );
        }
        for y in &yt {
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                W - RIGHT,
                py(*y),
                py(*y),
                LEFT - 4.0,
                py(*y) + 3.0,
                esc(&num(*y))
            );
        }
        for x in xt.iter().map(|t| t + x_min).filter(|x| *x <= x_max + 1e-9) {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
                px(x),
                H - BOTTOM + 14.0,
                esc(&num(x))
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text><text x="12" y="{:.1}" font-size="10" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text><rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##,
            LEFT + pw / 2.0,
            H - 4.0,
            esc(self.x_label),
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(self.unit)
        );
        for (i, pts) in drawn.iter().enumerate().rev() {
            let colour = COLOURS[i % COLOURS.len()];
            let dash = DASHES[i % DASHES.len()];
            if self.stacked {
                // The band between this sum and the one below it.
                let below: Vec<(f64, f64)> = match i {
                    0 => pts.iter().map(|(x, _)| (*x, 0.0)).collect(),
                    _ => drawn[i - 1]
                        .iter()
                        .map(|(x, y)| (*x, y.unwrap_or(0.0)))
                        .collect(),
                };
                let mut d = String::new();
                for (x, y) in pts {
                    let _ = write!(d, "{:.1},{:.1} ", px(*x), py(y.unwrap_or(0.0)));
                }
                for (x, y) in below.iter().rev() {
                    let _ = write!(d, "{:.1},{:.1} ", px(*x), py(*y));
                }
                let _ = write!(
                    s,
                    r#"<polygon points="{}" fill="{colour}" fill-opacity="0.35" stroke="none"/>"#,
                    d.trim_end()
                );
            }
            for seg in pts.split(|(_, y)| y.is_none()).filter(|g| !g.is_empty()) {
                let d: Vec<String> = seg
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(y.unwrap_or(0.0))))
                    .collect();
                if d.len() == 1 {
                    let (x, y) = seg[0];
                    let _ = write!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                        px(x),
                        py(y.unwrap_or(0.0))
                    );
                    continue;
                }
                let _ = write!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.8" stroke-dasharray="{dash}"/>"#,
                    d.join(" ")
                );
            }
        }
        if let Some((v, label)) = &self.reference {
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="3 3"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                W - RIGHT,
                py(*v),
                py(*v),
                W - RIGHT - 4.0,
                py(*v) - 3.0,
                esc(label)
            );
        }
        s.push_str("</svg>");
        s
    }

    /// The legend: each line's swatch (colour and dash) and name, as HTML.
    pub fn legend(&self) -> String {
        let mut s = String::from(r#"<ul class="legend">"#);
        for (i, l) in self.lines.iter().enumerate() {
            let _ = write!(
                s,
                r#"<li><svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" stroke="{}" stroke-width="2.5" stroke-dasharray="{}"/></svg> {}</li>"#,
                COLOURS[i % COLOURS.len()],
                DASHES[i % DASHES.len()],
                esc(&l.name)
            );
        }
        s.push_str("</ul>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.97, 4);
        assert!(t.last().is_some_and(|m| *m >= 0.97), "{t:?}");
        assert_eq!(ticks(0.0, 4), vec![0.0, 1.0]);
    }

    #[test]
    fn a_chart_draws_its_lines_band_and_text_alternative() {
        let c = Chart {
            title: "t <1>",
            unit: "/s",
            lines: vec![Line {
                name: "a".into(),
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, None),
                    (2.0, Some(3.0)),
                    (3.0, Some(2.0)),
                ],
            }],
            stacked: false,
            band: Some((1.0, 2.0, "window")),
            reference: Some((4.0, "capacity".into())),
            x_range: None,
            x_label: "s",
        };
        assert!(c.has_data());
        let svg = c.render("c1", "desc & more");
        assert!(
            svg.contains("<title id=\"c1-t\">t &lt;1&gt;</title>"),
            "{svg}"
        );
        assert!(svg.contains("desc &amp; more"));
        assert_eq!(
            svg.matches("<polyline").count(),
            1,
            "the gap splits the line"
        );
        assert_eq!(svg.matches("<circle").count(), 1, "a lone point is a dot");
        assert!(svg.contains("class=\"band\"") && svg.contains("capacity"));
    }
}
