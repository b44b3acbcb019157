//! The scenario chart: ops/s and p99 latency of the load per second, with the sync phases shaded. SVG,
//! written by hand (no plotting dependency for two lines and a few rectangles).

use crate::load::report::Second;
use std::fmt::Write;

pub struct Phase {
    pub name: String,
    /// Seconds since the load started.
    pub from: f64,
    pub to: f64,
}

pub fn svg(title: &str, seconds: &[Second], phases: &[Phase]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 360.0, 70.0, 70.0, 40.0, 40.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let tmax = seconds
        .iter()
        .map(|s| s.second as f64)
        .chain(phases.iter().map(|p| p.to))
        .fold(1.0, f64::max);
    let omax = seconds.iter().map(|s| s.ops as f64).fold(1.0, f64::max) * 1.1;
    let lmax = seconds.iter().map(|s| s.p99_ms).fold(0.1, f64::max) * 1.1;
    let x = |t: f64| left + t / tmax * pw;
    let yo = |o: f64| top + ph - o / omax * ph;
    let yl = |l: f64| top + ph - l / lmax * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{left}" y="20" font-size="14">{}</text>"#,
        esc(title)
    );
    let colors = ["#fde2b8", "#cfe8fc", "#d8f5d0", "#f5d0e8"];
    for (i, p) in phases.iter().enumerate() {
        let (a, b) = (x(p.from), x(p.to.max(p.from)));
        let _ = write!(
            s,
            r##"<rect x="{a:.1}" y="{top}" width="{:.1}" height="{ph}" fill="{}"/><text x="{:.1}" y="{}" fill="#555">{}</text>"##,
            (b - a).max(1.0),
            colors[i % colors.len()],
            a + 3.0,
            top + 14.0 + 14.0 * i as f64,
            esc(&p.name)
        );
    }
    let _ = write!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let line = |vals: Vec<(f64, f64)>, color: &str| {
        let pts: Vec<String> = vals.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            pts.join(" ")
        )
    };
    s.push_str(&line(
        seconds
            .iter()
            .map(|p| (x(p.second as f64), yo(p.ops as f64)))
            .collect(),
        "#1f77b4",
    ));
    s.push_str(&line(
        seconds
            .iter()
            .map(|p| (x(p.second as f64), yl(p.p99_ms)))
            .collect(),
        "#d62728",
    ));
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1f77b4">{:.0}</text><text x="{:.1}" y="{:.1}" fill="#d62728">{:.2}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0}</text>"##,
            left - 5.0,
            top + ph - f * ph + 4.0,
            f * omax,
            w - right + 5.0,
            top + ph - f * ph + 4.0,
            f * lmax,
            left + f * pw,
            h - bottom + 16.0,
            f * tmax
        );
    }
    let _ = write!(
        s,
        r##"<text x="{left}" y="{}" fill="#1f77b4">ops/s</text><text x="{}" y="{}" text-anchor="end" fill="#d62728">p99 ms</text><text x="{}" y="{}" text-anchor="middle">seconds</text></svg>"##,
        top - 6.0,
        w - 10.0,
        top - 6.0,
        left + pw / 2.0,
        h - 6.0
    );
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_lines_and_phases() {
        let secs: Vec<Second> = (1..=5)
            .map(|i| Second {
                second: i,
                ops: 1000 * i,
                errors: 0,
                p50_ms: 0.1,
                p99_ms: 0.5 * i as f64,
                p999_ms: 1.0,
                max_ms: 2.0,
            })
            .collect();
        let out = svg(
            "t <x>",
            &secs,
            &[Phase {
                name: "sync".into(),
                from: 1.5,
                to: 3.0,
            }],
        );
        assert!(out.starts_with("<svg") && out.ends_with("</svg>"));
        assert_eq!(out.matches("<polyline").count(), 2);
        assert!(out.contains(">sync<") && out.contains("t &lt;x&gt;"));
        // The phase starts 1.5/5 of the way along the 760-pixel plot.
        assert!(out.contains(r#"<rect x="298.0""#), "{out}");
    }
}
