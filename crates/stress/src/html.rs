//! The self-contained HTML report: tables and inline SVG charts (a price path
//! with its liquidations, the insurance fund over time, loss distributions per
//! policy). No scripts, no stylesheets or fonts from the network.

use crate::policy::PolicyKind;
use crate::report::{ChartSet, Figures, PolicyFigures, StressReport};
use crate::svg::{bar_chart, escape, heat_map, line_chart, short_number, BarGroup, Grid, Markers, Series};
use std::fmt::Write;

/// Dash pattern of a policy's lines (the scaled policy often sits on the static one).
pub fn dash(policy: PolicyKind) -> &'static str {
    match policy {
        PolicyKind::StaticScaled => "6 4",
        _ => "",
    }
}

/// Line and marker colour of a policy.
pub fn color(policy: PolicyKind) -> &'static str {
    match policy {
        PolicyKind::Static => "#1f77b4",
        PolicyKind::Dynamic => "#d62728",
        PolicyKind::StaticScaled => "#2ca02c",
        PolicyKind::Predictive => "#9467bd",
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:24px auto;color:#222}\
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}h2{margin-top:32px}svg.chart{display:block;margin:12px 0}.note{color:#555;font-size:13px}";

/// The whole page.
pub fn render(report: &StressReport) -> String {
    let mut out = String::new();
    let _ = write!(out, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>solvent stress report</title><style>{STYLE}</style></head><body>");
    out.push_str("<h1>solvent stress report</h1>");
    let settings = serde_json::to_string_pretty(&report.settings).unwrap_or_default();
    let _ = write!(out, "<p class=\"note\">Settings</p><pre>{}</pre>", escape(&settings));
    let _ = write!(
        out,
        "<p>Scale multiplier (dynamic policy's average MM over the static tables' on the same book): <b>{:.4}</b></p>",
        report.scale_multiplier.value
    );
    out.push_str(&figures_table("Population", &[("value", &report.population)]));
    out.push_str(&comparison_table(report));
    for scenario in &report.scenarios {
        out.push_str(&policy_table(&scenario.name, &scenario.results));
    }
    if let Some(mc) = &report.monte_carlo {
        let title = format!("Monte Carlo: {} SVJD paths of {} steps of {} s", mc.paths, mc.steps_per_path, mc.step_s);
        out.push_str(&policy_table(&title, &mc.results));
    }
    out.push_str("<h2>Charts</h2>");
    for set in &report.charts {
        out.push_str(&price_chart(set));
        out.push_str(&fund_chart(set));
    }
    out.push_str(&loss_chart(report));
    out.push_str(&frontier_section(report));
    for set in &report.charts {
        out.push_str(&map_heat_map(set));
    }
    out.push_str("</body></html>\n");
    out
}

fn figures_table(title: &str, columns: &[(&str, &Figures)]) -> String {
    let mut out = format!("<h2>{}</h2><table><tr><th>figure</th><th>unit</th>", escape(title));
    for (name, _) in columns {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr>");
    let Some((_, first)) = columns.first() else { return out + "</table>" };
    for (name, figure) in &first.0 {
        let _ = write!(out, "<tr><td>{name}</td><td>{}</td>", figure.unit);
        for (_, figures) in columns {
            let v = figures.get(name).unwrap_or(f64::NAN);
            let text = if figure.unit == "fraction" { format!("{:.4}%", v * 100.0) } else { short_number(v) };
            let _ = write!(out, "<td>{text}</td>");
        }
        out.push_str("</tr>");
    }
    out + "</table>"
}

fn policy_table(title: &str, results: &[PolicyFigures]) -> String {
    let columns: Vec<(&str, &Figures)> = results.iter().map(|r| (r.policy.name(), &r.figures)).collect();
    figures_table(title, &columns)
}

fn comparison_table(report: &StressReport) -> String {
    let mut out = String::from("<h2>Dynamic against static tiers</h2><table><tr><th>scope</th><th>fund draw (dyn / static, USDC)</th><th>socialized (dyn / static)</th><th>calm MM rate (dyn / static)</th><th>claim</th></tr>");
    for c in &report.comparisons {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{} / {} ({})</td><td>{} / {} {} ({})</td><td>{:.4}% / {:.4}% ({})</td><td>{}</td></tr>",
            escape(&c.scope),
            short_number(c.fund_draw_usdc.dynamic),
            short_number(c.fund_draw_usdc.static_tiers),
            c.fund_draw,
            short_number(c.socialized_loss.dynamic),
            short_number(c.socialized_loss.static_tiers),
            c.socialized_loss_unit,
            c.socialized,
            c.calm_avg_mm_rate.dynamic * 100.0,
            c.calm_avg_mm_rate.static_tiers * 100.0,
            c.calm_margin,
            c.claim
        );
    }
    out + "</table>"
}

fn hours(t_s: &[f64]) -> Vec<f64> {
    t_s.iter().map(|t| t / 3_600.0).collect()
}

/// Price per policy with its liquidations (circle area ~ liquidated notional).
pub fn price_chart(set: &ChartSet) -> String {
    let xs: Vec<Vec<f64>> = set.traces.iter().map(|(_, t)| hours(&t.t_s)).collect();
    let series: Vec<Series> = set
        .traces
        .iter()
        .zip(&xs)
        .map(|((p, t), x)| Series { name: p.name(), color: color(*p), dash: dash(*p), x, y: &t.price })
        .collect();
    let largest = set.traces.iter().flat_map(|(_, t)| &t.liquidations).map(|l| l.notional_usdc).fold(0.0, f64::max);
    let markers: Vec<Markers> = set
        .traces
        .iter()
        .map(|(p, t)| Markers {
            color: color(*p),
            points: t
                .liquidations
                .iter()
                .map(|l| (l.t_s / 3_600.0, l.price, 1.5 + 8.0 * (l.notional_usdc / largest.max(1e-9)).sqrt()))
                .collect(),
        })
        .collect();
    let title = format!("{}: price and liquidations", set.scenario);
    line_chart("price-liquidations", &title, "hours from start", "price (USDC)", &series, &markers)
}

/// Insurance fund balance per policy.
pub fn fund_chart(set: &ChartSet) -> String {
    let xs: Vec<Vec<f64>> = set.traces.iter().map(|(_, t)| hours(&t.t_s)).collect();
    let series: Vec<Series> = set
        .traces
        .iter()
        .zip(&xs)
        .map(|((p, t), x)| Series { name: p.name(), color: color(*p), dash: dash(*p), x, y: &t.fund_usdc })
        .collect();
    let title = format!("{}: insurance fund", set.scenario);
    line_chart("insurance-fund", &title, "hours from start", "fund (USDC)", &series, &[])
}

/// Histogram of the Monte Carlo fund draw per policy, or, without Monte Carlo,
/// the fund draw of each fixed scenario per policy.
pub fn loss_chart(report: &StressReport) -> String {
    if let Some(mc) = &report.monte_carlo {
        let h = &mc.fund_draw_histogram;
        let bins: Vec<String> = (0..h.edges.len().saturating_sub(1))
            .map(|i| {
                if i == 0 && h.zero_bin {
                    "0".to_string()
                } else {
                    format!("{}-{}", short_number(h.edges[i]), short_number(h.edges[i + 1]))
                }
            })
            .collect();
        let values: Vec<Vec<f64>> = h.counts.iter().map(|(_, c)| c.iter().map(|v| *v as f64).collect()).collect();
        let groups: Vec<BarGroup> = h
            .counts
            .iter()
            .zip(&values)
            .map(|((p, _), v)| BarGroup { name: p.name(), color: color(*p), values: v })
            .collect();
        let title = "Loss distribution: insurance-fund draw per Monte Carlo path";
        return bar_chart(
            "loss-distribution",
            title,
            "fund draw per path (USDC, one decade per bin)",
            "paths",
            &bins,
            &groups,
        );
    }
    let bins: Vec<String> = report.scenarios.iter().map(|s| s.name.clone()).collect();
    let values: Vec<Vec<f64>> = PolicyKind::ALL
        .iter()
        .map(|p| {
            report
                .scenarios
                .iter()
                .map(|s| {
                    s.results.iter().find(|r| r.policy == *p).and_then(|r| r.figures.get("fund_draw")).unwrap_or(0.0)
                })
                .collect()
        })
        .collect();
    let groups: Vec<BarGroup> = PolicyKind::ALL
        .iter()
        .zip(&values)
        .map(|(p, v)| BarGroup { name: p.name(), color: color(*p), values: v })
        .collect();
    bar_chart("loss-distribution", "Loss per scenario: insurance-fund draw", "scenario", "USDC", &bins, &groups)
}

/// The static frontier of the Monte Carlo set (or the first scope): calm MM rate
/// against fund draw and against socialized loss, the predictive point beside it.
fn frontier_section(report: &StressReport) -> String {
    let scopes = &report.frontier.scopes;
    let Some(scope) = scopes.iter().find(|s| s.aggregate).or(scopes.first()) else { return String::new() };
    let mut out = format!("<h2>Static frontier ({})</h2>", escape(&scope.scope));
    let xs: Vec<f64> = scope.points.iter().map(|p| p.calm_mm_rate * 100.0).collect();
    let draw: Vec<f64> = scope.points.iter().map(|p| p.fund_draw).collect();
    let social: Vec<f64> =
        scope.points.iter().map(|p| if scope.aggregate { p.socialized * 100.0 } else { p.socialized }).collect();
    let q = &scope.predictive;
    let px = [q.calm_mm_rate * 100.0];
    let marker = |y: f64| Markers { color: color(PolicyKind::Predictive), points: vec![(px[0], y, 6.0)] };
    let line = |name: &'static str, y: &[f64]| -> String {
        let series = [Series { name, color: color(PolicyKind::Static), dash: "", x: &xs, y }];
        let value = if name.starts_with("fund") {
            q.fund_draw
        } else if scope.aggregate {
            q.socialized * 100.0
        } else {
            q.socialized
        };
        line_chart(
            "frontier",
            &format!("{name} against calm MM rate (static x k; dot: predictive)"),
            "calm MM rate (%)",
            name,
            &series,
            &[marker(value)],
        )
    };
    out.push_str(&line("fund draw (USDC)", &draw));
    let social_name = if scope.aggregate { "socialized-loss probability (%)" } else { "socialized loss (USDC)" };
    out.push_str(&line(social_name, &social));
    out.push_str("<table><tr><th>scope</th><th>predictive calm MM rate</th><th>fund draw: predictive / frontier</th><th>socialized: predictive / frontier</th></tr>");
    for s in scopes {
        let at = s.at_same_calm;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.3}%</td><td>{} / {}</td><td>{} / {}</td></tr>",
            escape(&s.scope),
            s.predictive.calm_mm_rate * 100.0,
            short_number(s.predictive.fund_draw),
            at.map_or("outside".to_string(), |f| short_number(f.fund_draw)),
            short_number(s.predictive.socialized),
            at.map_or("outside".to_string(), |f| short_number(f.socialized))
        );
    }
    out + "</table>"
}

/// Heat map of the predictive run's liquidation maps: time against price move
/// from the mark, shade ~ notional liquidated at that level.
fn map_heat_map(set: &ChartSet) -> String {
    let Some((_, trace)) = set.traces.iter().find(|(p, _)| *p == PolicyKind::Predictive) else { return String::new() };
    if trace.maps.is_empty() {
        return String::new();
    }
    let buckets = (crate::liqmap::BUCKET_RANGE / crate::liqmap::BUCKET_STEP).round() as usize;
    let ys: Vec<f64> =
        (0..2 * buckets).map(|j| (j as f64 - buckets as f64) * crate::liqmap::BUCKET_STEP * 100.0).collect();
    let xs: Vec<f64> = trace.maps.iter().map(|(t, _)| t / 3_600.0).collect();
    let values: Vec<Vec<f64>> = trace
        .maps
        .iter()
        .map(|(_, map)| {
            let mut column = vec![0.0; 2 * buckets];
            for l in map.down.iter().chain(&map.up) {
                let mv = l.price / map.mark - 1.0;
                let j = ((mv / crate::liqmap::BUCKET_STEP).floor() as i64 + buckets as i64)
                    .clamp(0, 2 * buckets as i64 - 1);
                column[j as usize] += l.notional;
            }
            column
        })
        .collect();
    let title = format!("{}: liquidation map over time (predictive run)", set.scenario);
    let grid = Grid { x: &xs, y: &ys, values: &values, color: "#d62728" };
    heat_map("liquidation-map", &title, "hours", "move from mark (%)", &grid)
}
