//! A request path drawn as a diagram: the client, each hop in order (device, bridge, veth,
//! NAT, namespace, proxy) and the server, top to bottom, each box with its kind and name and,
//! beside it, what the hop costs (connect time, CPU per request, CPU share, traffic, drops).
//! The path's one-line text is the diagram's `<desc>`; the list under it stays the text
//! alternative. Shapes differ by kind (proxies rounded, devices square, namespaces dashed),
//! so no meaning rests on colour.
use std::fmt::Write;

use super::svg::esc;
use crate::{
    analysis::{Hop, HopKind, NetPath},
    report::text::units::{bytes_parts, num, percent},
};

const W: f64 = 780.0;
const ROW: f64 = 46.0;
const BOX_W: f64 = 330.0;
const BOX_H: f64 = 30.0;
const X: f64 = 8.0;

fn kind_name(k: HopKind) -> &'static str {
    match k {
        HopKind::Loopback => "loopback",
        HopKind::Proxy => "proxy",
        HopKind::Bridge => "bridge",
        HopKind::Veth => "veth",
        HopKind::Nat => "NAT",
        HopKind::Netns => "namespace",
        HopKind::Device => "device",
    }
}

/// What a hop costs, as short phrases (empty when nothing was measured at it).
pub fn costs(h: &Hop) -> Vec<String> {
    let mut c = Vec::new();
    if let Some(ms) = h.connect_ms {
        c.push(format!("connect {ms:.2} ms"));
    }
    if let Some(us) = h.cpu_us_per_request {
        c.push(format!("{us:.0} µs CPU/request"));
    }
    if let Some(share) = h.cpu_share.filter(|s| *s > 0.0) {
        let what = if h.kind == HopKind::Proxy {
            "of the host's CPU"
        } else {
            "softirq (est.)"
        };
        c.push(format!("{} {what}", percent(share)));
    }
    if let Some(b) = h.bytes_per_s.filter(|b| *b > 0.0) {
        let (n, u) = bytes_parts(b);
        c.push(format!("{n} {u}/s"));
    } else if let Some(p) = h.packets_per_s.filter(|p| *p > 0.0) {
        c.push(format!("{} packets/s", num(p)));
    }
    if let Some(d) = h.drops.filter(|d| *d > 0) {
        c.push(format!("{d} drops"));
    }
    c
}

/// One box and the costs beside it.
fn node(s: &mut String, y: f64, label: &str, sub: &str, costs: &[String], kind: Option<HopKind>) {
    let (rx, dash) = match kind {
        Some(HopKind::Proxy) => (10.0, ""),
        Some(HopKind::Netns) => (0.0, " stroke-dasharray=\"5 3\""),
        None => (15.0, ""),
        Some(_) => (0.0, ""),
    };
    let fill = if kind == Some(HopKind::Proxy) || kind.is_none() {
        "#e8f1f8"
    } else {
        "#fff"
    };
    let _ = write!(
        s,
        "<rect x=\"{X}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"#111\"{dash}/>"
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"13\"><tspan font-weight=\"700\">{}</tspan> <tspan fill=\"#555\">{}</tspan></text>",
        X + 8.0,
        y + 20.0,
        esc(label),
        esc(sub)
    );
    if !costs.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            X + BOX_W + 14.0,
            y + 20.0,
            esc(&costs.join(" · "))
        );
    }
}

/// The path as an inline SVG; `id` makes its title and description ids unique on the page.
pub fn render(p: &NetPath, id: &str) -> String {
    let rows = p.hops.len() + 2;
    let h = rows as f64 * ROW;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"path\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\"><title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(&format!("Request path from {} to {}", p.client, p.server)),
        esc(&p.text)
    );
    let cx = X + BOX_W / 2.0;
    for i in 0..rows - 1 {
        let (y0, y1) = (i as f64 * ROW + 4.0 + BOX_H, (i + 1) as f64 * ROW + 4.0);
        let _ = write!(
            s,
            "<line x1=\"{cx}\" y1=\"{y0}\" x2=\"{cx}\" y2=\"{}\" stroke=\"#111\"/><polygon points=\"{},{} {},{} {cx},{y1}\" fill=\"#111\"/>",
            y1 - 6.0,
            cx - 5.0,
            y1 - 7.0,
            cx + 5.0,
            y1 - 7.0
        );
    }
    let client = [format!("{} new connections/s", num(p.connections_per_s))];
    node(&mut s, 4.0, &p.client, "client", &client, None);
    for (i, hop) in p.hops.iter().enumerate() {
        let y = (i + 1) as f64 * ROW + 4.0;
        node(
            &mut s,
            y,
            &hop.name,
            kind_name(hop.kind),
            &costs(hop),
            Some(hop.kind),
        );
    }
    let server_port = [format!("port {}", p.port)];
    node(
        &mut s,
        (rows - 1) as f64 * ROW + 4.0,
        &p.server,
        "server",
        &server_port,
        None,
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn every_hop_of_a_two_proxy_path_is_a_box_with_its_costs() {
        let a = fixture("two-hop-proxy");
        let p = a.paths.iter().max_by_key(|p| p.hops.len()).expect("a path");
        assert!(p.hops.len() >= 3, "{}", p.text);
        let svg = render(p, "path-1");
        assert_eq!(svg.matches("<rect").count(), p.hops.len() + 2, "{svg}");
        assert_eq!(svg.matches("<line").count(), p.hops.len() + 1);
        for h in &p.hops {
            assert!(svg.contains(&esc(&h.name)), "{}: {svg}", h.name);
            for c in costs(h) {
                assert!(svg.contains(&esc(&c)), "{c}: {svg}");
            }
        }
        let proxies = p.hops.iter().filter(|h| h.kind == HopKind::Proxy).count();
        assert!(proxies >= 1, "{}", p.text);
        assert!(svg.contains(&format!("<desc id=\"path-1-d\">{}</desc>", esc(&p.text))));
        assert!(
            p.hops.iter().any(|h| !costs(h).is_empty()),
            "no hop of {} has a measured cost",
            p.text
        );
    }
}
