//! Minimal inline SVG charts (no scripts, no external resources): line charts
//! with optional markers, and grouped bar charts.

use std::fmt::Write;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 52.0;
const BOTTOM: f64 = 46.0;
/// Points drawn per line at most.
pub const MAX_POINTS: usize = 1_600;

/// One line.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    /// SVG `stroke-dasharray` ("" for a solid line).
    pub dash: &'a str,
    pub x: &'a [f64],
    pub y: &'a [f64],
}

/// Marks (x, y, radius) drawn over the lines, one shape per series so that overlapping marks of
/// different policies stay apart.
pub struct Markers<'a> {
    pub color: &'a str,
    pub shape: Shape,
    pub points: Vec<(f64, f64, f64)>,
}

/// The shape of a series' marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
}

fn mark(out: &mut String, shape: Shape, x: f64, y: f64, r: f64, color: &str) {
    let style = format!(r#"fill="{color}" fill-opacity="0.12" stroke="{color}" stroke-width="0.8""#);
    let _ = match shape {
        Shape::Circle => write!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" {style}/>"#),
        Shape::Square => {
            write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" {style}/>"#,
                x - r,
                y - r,
                2.0 * r,
                2.0 * r
            )
        }
        Shape::Triangle => write!(
            out,
            r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" {style}/>"#,
            x,
            y - r * 1.2,
            x - r * 1.1,
            y + r * 0.8,
            x + r * 1.1,
            y + r * 0.8
        ),
        Shape::Diamond => write!(
            out,
            r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" {style}/>"#,
            x,
            y - r * 1.3,
            x + r,
            y,
            x,
            y + r * 1.3,
            x - r,
            y
        ),
    };
}

/// One group of bars (one bar per bin).
pub struct BarGroup<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: &'a [f64],
}

/// Text escaped for XML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A "nice" tick step (1, 2 or 5 x 10^k) for about `target` ticks over `span`.
pub fn nice_step(span: f64, target: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    step.max(f64::MIN_POSITIVE)
}

/// A compact label: 1.2M, 35k, 0.025.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.0e}")
    }
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0).max(1e-12) * (WIDTH - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y0) / (self.y1 - self.y0).max(1e-12) * (HEIGHT - TOP - BOTTOM)
    }
}

fn open_svg(out: &mut String, class: &str, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart {class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img"><title>{t}</title><rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{LEFT}" y="20" font-size="14" font-family="sans-serif" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
}

fn axes(out: &mut String, f: &Frame, x_label: &str, y_label: &str, x_ticks: bool) {
    let font = r##"font-family="sans-serif" font-size="11" fill="#444""##;
    let y_step = nice_step(f.y1 - f.y0, 5.0);
    let mut y = (f.y0 / y_step).ceil() * y_step;
    while y <= f.y1 + 1e-9 * y_step {
        let py = f.py(y);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e4e4e4"/>"##,
            WIDTH - RIGHT
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" {font}>{}</text>"#,
            LEFT - 6.0,
            py + 4.0,
            tick_label(y, y_step)
        );
        y += y_step;
    }
    let x_step = nice_step(f.x1 - f.x0, 8.0);
    let mut x = (f.x0 / x_step).ceil() * x_step;
    while x_ticks && x <= f.x1 + 1e-9 * x_step {
        let px = f.px(x);
        let _ = write!(
            out,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle" {font}>{}</text>"#,
            HEIGHT - BOTTOM + 16.0,
            tick_label(x, x_step)
        );
        x += x_step;
    }
    let (bx, by) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{bx}" x2="{by}" y2="{bx}" stroke="#888"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bx}" stroke="#888"/>"##
    );
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" {font}>{}</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 8.0,
        escape(x_label)
    );
    let _ = write!(
        out,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" {font}>{}</text>"#,
        (TOP + bx) / 2.0,
        (TOP + bx) / 2.0,
        escape(y_label)
    );
}

/// A tick label with as many decimals as the tick step needs, in k/M/B above 10,000: two ticks
/// of one axis never get the same label (7.40M, 7.45M, not 7.4M twice).
pub fn tick_label(v: f64, step: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".to_string();
    }
    let (unit, suffix) = match v.abs().max(step) {
        a if a >= 1e9 => (1e9, "B"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e4 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let scaled_step = step / unit;
    let decimals = if scaled_step >= 1.0 { 0 } else { (-scaled_step.log10() - 1e-9).ceil().max(0.0) as usize };
    format!("{:.decimals$}{suffix}", v / unit)
}

/// One row under the title: a sample of each series' line (its colour and dash) or bar, and
/// its name.
fn legend(out: &mut String, items: &[(&str, &str, &str)], bars: bool) {
    let mut x = LEFT;
    for (name, color, dash) in items {
        if bars {
            let _ = write!(out, r#"<rect x="{x:.1}" y="29" width="14" height="12" fill="{color}"/>"#);
        } else {
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" y1="35" x2="{:.1}" y2="35" stroke="{color}" stroke-width="3" stroke-dasharray="{dash}"/>"#,
                x + 26.0
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="39" font-family="sans-serif" font-size="12">{}</text>"#,
            x + 32.0,
            escape(name)
        );
        x += 44.0 + 7.0 * name.len() as f64;
    }
}

fn bounds<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 1.0, hi + 1.0);
    }
    (lo, hi)
}

/// At most [`MAX_POINTS`] points: above that, the first, lowest, highest and last
/// point of each bucket, in time order (extremes survive).
fn thin(x: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let points: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).filter(|(_, v)| v.is_finite()).collect();
    if points.len() <= MAX_POINTS {
        return points;
    }
    let bucket = points.len().div_ceil(MAX_POINTS / 4);
    let mut out = Vec::with_capacity(MAX_POINTS);
    for chunk in points.chunks(bucket) {
        let lowest = chunk.iter().enumerate().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map_or(0, |(i, _)| i);
        let highest = chunk.iter().enumerate().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map_or(0, |(i, _)| i);
        let mut picks = vec![0, lowest, highest, chunk.len() - 1];
        picks.sort_unstable();
        picks.dedup();
        out.extend(picks.into_iter().map(|i| chunk[i]));
    }
    out
}

/// A line chart; `class` names it (e.g. `price-liquidations`).
pub fn line_chart(
    class: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    markers: &[Markers],
) -> String {
    let (x0, x1) = bounds(series.iter().flat_map(|s| s.x.iter()));
    let (mut y0, mut y1) = bounds(
        series.iter().flat_map(|s| s.y.iter()).chain(markers.iter().flat_map(|m| m.points.iter().map(|p| &p.1))),
    );
    let pad = (y1 - y0) * 0.05;
    (y0, y1) = (y0 - pad, y1 + pad);
    let frame = Frame { x0, x1, y0, y1 };
    let mut out = String::new();
    open_svg(&mut out, class, title);
    axes(&mut out, &frame, x_label, y_label, true);
    for s in series {
        let points: Vec<String> =
            thin(s.x, s.y).iter().map(|(x, y)| format!("{:.1},{:.1}", frame.px(*x), frame.py(*y))).collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" stroke-opacity="0.9" stroke-dasharray="{}" points="{}"/>"#,
            s.color,
            s.dash,
            points.join(" ")
        );
    }
    for m in markers {
        for (x, y, r) in &m.points {
            mark(&mut out, m.shape, frame.px(*x), frame.py(*y), *r, m.color);
        }
    }
    legend(&mut out, &series.iter().map(|s| (s.name, s.color, s.dash)).collect::<Vec<_>>(), false);
    out.push_str("</svg>");
    out
}

/// Grouped bars: one group per series, one slot per bin labelled `bins[i]`.
pub fn bar_chart(
    class: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    bins: &[String],
    groups: &[BarGroup],
) -> String {
    let n = bins.len().max(1) as f64;
    let y1 = groups.iter().flat_map(|g| g.values.iter()).copied().fold(0.0, f64::max).max(1.0) * 1.08;
    let frame = Frame { x0: 0.0, x1: n, y0: 0.0, y1 };
    let mut out = String::new();
    open_svg(&mut out, class, title);
    axes(&mut out, &frame, x_label, y_label, false);
    let slot = (WIDTH - LEFT - RIGHT) / n;
    let bar = slot * 0.8 / groups.len().max(1) as f64;
    for (g, group) in groups.iter().enumerate() {
        for (i, v) in group.values.iter().enumerate() {
            let x = LEFT + i as f64 * slot + slot * 0.1 + g as f64 * bar;
            let top = frame.py(*v);
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                bar.max(0.5),
                (HEIGHT - BOTTOM - top).max(0.0),
                group.color,
                escape(group.name),
                v
            );
            if *v > 0.0 {
                // The value over the bar (a tail of one or two paths stays readable),
                // in a font that fits the bar.
                let label = short_number(*v);
                let font_size = (bar / (0.62 * label.len() as f64)).clamp(5.0, 9.0);
                let _ = write!(
                    out,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-family="sans-serif" font-size="{font_size:.1}" fill="#222">{label}</text>"##,
                    x + bar / 2.0,
                    top - 3.0,
                );
            }
        }
    }
    let every = (bins.len() / 10).max(1);
    for (i, label) in bins.iter().enumerate().step_by(every) {
        let x = LEFT + (i as f64 + 0.5) * slot;
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-family="sans-serif" font-size="10" fill="#444">{}</text>"##,
            HEIGHT - BOTTOM + 14.0,
            escape(label)
        );
    }
    legend(&mut out, &groups.iter().map(|g| (g.name, g.color, "")).collect::<Vec<_>>(), true);
    out.push_str("</svg>");
    out
}

/// A heat map: columns at `x[i]` (sorted), rows at `y[j]` (sorted), cell shade
/// ~ `values[i][j] / max` (white to `color`). Cells span to the next column / row.
/// The cells of a heat map: column and row positions, values per column, shade colour.
pub struct Grid<'a> {
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub values: &'a [Vec<f64>],
    pub color: &'a str,
}

pub fn heat_map(class: &str, title: &str, x_label: &str, y_label: &str, grid: &Grid) -> String {
    let Grid { x, y, values, color } = *grid;
    let (x0, mut x1) = bounds(x.iter());
    let (y0, mut y1) = bounds(y.iter());
    let dx = if x.len() > 1 { (x1 - x0) / (x.len() - 1) as f64 } else { 1.0 };
    let dy = if y.len() > 1 { (y1 - y0) / (y.len() - 1) as f64 } else { 1.0 };
    x1 += dx;
    y1 += dy;
    let frame = Frame { x0, x1, y0, y1 };
    let mut out = String::new();
    open_svg(&mut out, class, title);
    let max = values.iter().flatten().copied().fold(0.0, f64::max);
    for (i, column) in values.iter().enumerate().take(x.len()) {
        for (j, v) in column.iter().enumerate().take(y.len()) {
            if *v <= 0.0 || max <= 0.0 {
                continue;
            }
            let (px0, px1) = (frame.px(x[i]), frame.px(x[i] + dx));
            let (py0, py1) = (frame.py(y[j] + dy), frame.py(y[j]));
            let _ = write!(
                out,
                r#"<rect x="{px0:.1}" y="{py0:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="{:.3}"/>"#,
                (px1 - px0).max(0.5),
                (py1 - py0).max(0.5),
                (v / max).sqrt().clamp(0.03, 1.0)
            );
        }
    }
    axes(&mut out, &frame, x_label, y_label, true);
    legend(&mut out, &[("liquidated notional (darker = more; square-root shade)", color, "")], true);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_of_one_axis_are_distinct() {
        for (lo, hi) in [(7_380_000.0, 7_460_000.0), (0.0, 1.0), (9_990.0, 10_030.0), (1.2e9, 1.2004e9), (-50.0, 50.0)]
        {
            let step = nice_step(hi - lo, 5.0);
            let mut labels = Vec::new();
            let mut v = (lo / step).ceil() * step;
            while v <= hi + 1e-9 * step {
                labels.push(tick_label(v, step));
                v += step;
            }
            let mut unique = labels.clone();
            unique.dedup();
            assert_eq!(labels, unique, "{lo}..{hi}: {labels:?}");
            assert!(labels.len() >= 3, "{labels:?}");
        }
        assert_eq!(tick_label(7_400_000.0, 20_000.0), "7.40M");
        assert_eq!(tick_label(50_000.0, 10_000.0), "50k");
    }
}
