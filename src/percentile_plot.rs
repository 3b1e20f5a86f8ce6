//! The percentile plot `dlrm-he bench serve --plot` draws from its latency histograms.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// A percentile plot of latency histograms (one line per series), as a standalone SVG: the x
/// axis is the percentile on the usual `1 / (1 - q)` scale (50%, 90%, 99%, 99.9%), the y axis
/// the latency in milliseconds.
pub(crate) fn percentile_plot(series: &[(&str, &Histogram<u64>)], title: &str) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 420.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    const COLOURS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    ];
    // x: log10(1 / (1 - q)) from q = 0 to q = 0.999.
    let max_x = 3.0;
    let max_ms = series
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.1;
    let px = |x: f64| LEFT + x / max_x * (WIDTH - LEFT - RIGHT);
    let py = |ms: f64| HEIGHT - BOTTOM - ms / max_ms * (HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Axes, grid and labels.
    for (x, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (std::f64::consts::LOG10_2, "50%"),
    ] {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{label}</text>",
            px(x),
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 16.0
        );
    }
    for k in 0..=5 {
        let ms = max_ms * k as f64 / 5.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            py(ms),
            WIDTH - RIGHT,
            LEFT - 6.0,
            py(ms) + 4.0,
            format_ms(ms)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{0}" text-anchor="middle" transform="rotate(-90 16 {0})">latency (ms)</text>"#,
        (TOP + HEIGHT - BOTTOM) / 2.0
    );
    for (k, (name, histogram)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = (0..=300)
            .map(|step| {
                let x = max_x * step as f64 / 300.0;
                let q = 1.0 - 10f64.powf(-x);
                let ms = histogram.value_at_quantile(q) as f64 / 1000.0;
                format!("{:.1},{:.1}", px(x), py(ms))
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{colour}">{} (n = {})</text>"#,
            LEFT + 10.0,
            TOP + 16.0 * (k as f64 + 1.0),
            escape(name),
            histogram.len()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_ms(ms: f64) -> String {
    if ms == 0.0 {
        "0".into()
    } else if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.3}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plot_names_its_series_and_percentiles() {
        let mut histogram = serve::latency_histogram();
        for micros in 1000..2000 {
            histogram.record(micros).unwrap();
        }
        let svg = super::percentile_plot(&[("uci", &histogram)], "latency");
        assert!(svg.starts_with("<svg") && svg.contains("uci") && svg.contains("99.9%"));
    }
}
