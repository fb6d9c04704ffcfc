//! The terminal table: key figures per scenario, policies side by side.

use crate::policy::PolicyKind;
use crate::report::{Figures, PolicyFigures, StressReport};
use std::fmt::Write;

/// Figures shown for a single run; the protocol's net position (its solvency) first.
const RUN_ROWS: [&str; 16] = [
    "protocol_net_min",
    "protocol_net_end",
    "fund_draw",
    "fund_bankruptcy_cover",
    "socialized_loss",
    "uncovered_deficit",
    "adl_count",
    "bankrupt_accounts",
    "liquidated_notional",
    "unsold_inventory_end",
    "avg_margin",
    "peak_margin",
    "calm_avg_mm_rate",
    "margin_changes",
    "worst_move_15min",
    "lead_time",
];

/// Figures shown for the Monte Carlo set; the protocol's solvency first.
const MC_ROWS: [&str; 18] = [
    "protocol_insolvent_probability",
    "protocol_net_min_mean",
    "socialized_loss_probability",
    "socialized_loss_mean",
    "fund_draw_mean",
    "fund_draw_p99",
    "fund_draw_max",
    "uncovered_deficit_probability",
    "adl_count_mean",
    "bankruptcy_probability",
    "liquidated_notional_mean",
    "avg_margin_mean",
    "peak_margin_max",
    "avg_mm_rate_mean",
    "calm_avg_mm_rate_mean",
    "margin_changes_mean",
    "raised_before_worst_move_share",
    "lead_time_mean_given_raised",
];

/// `1234567.8` as `1,234,568`; fractions as percentages; small numbers with decimals.
pub fn format_value(value: f64, unit: &str) -> String {
    if unit == "fraction" {
        return format!("{:.3}%", value * 100.0);
    }
    if value.abs() < 100.0 && value.fract() != 0.0 {
        return format!("{value:.2}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if value < 0.0 && digits != "0" {
        grouped.insert(0, '-');
    }
    grouped
}

fn block(out: &mut String, title: &str, results: &[PolicyFigures], rows: &[&str]) {
    let _ = writeln!(out, "\n{title}");
    for name in rows {
        let Some(unit) = results.first().and_then(|r| unit_of(&r.figures, name)) else { continue };
        let _ = write!(out, "  {:<34}", format!("{name} ({unit})"));
        for policy in PolicyKind::ALL {
            let cell = results
                .iter()
                .find(|r| r.policy == policy)
                .and_then(|r| r.figures.get(name))
                .map_or("-".to_string(), |v| format_value(v, unit));
            let _ = write!(out, " {cell:>16}");
        }
        out.push('\n');
    }
}

fn unit_of(figures: &Figures, name: &str) -> Option<&'static str> {
    figures.0.iter().find(|(n, _)| *n == name).map(|(_, f)| f.unit)
}

/// The whole table.
pub fn render(report: &StressReport) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<36}", "solvent stress");
    for policy in PolicyKind::ALL {
        let _ = write!(out, " {:>16}", policy.name());
    }
    let _ = writeln!(out, "\nscale multiplier (dynamic average MM / static): {:.4}", report.scale_multiplier.value);
    for s in &report.scenarios {
        block(&mut out, &s.name, &s.results, &RUN_ROWS);
    }
    if let Some(mc) = &report.monte_carlo {
        let title = format!("monte carlo: {} SVJD paths x {} steps of {} s", mc.paths, mc.steps_per_path, mc.step_s);
        block(&mut out, &title, &mc.results, &MC_ROWS);
    }
    out.push_str("\nadvised vs static (fund draw, socialized loss, calm MM rate -> claim)\n");
    for c in &report.comparisons {
        let _ = writeln!(
            out,
            "  {:<11} {:<40} {:>6} {:>6} {:>6} -> {}",
            c.policy.name(),
            c.scope,
            c.fund_draw,
            c.socialized,
            c.calm_margin,
            c.claim
        );
    }
    frontier(&mut out, report);
    congestion(&mut out, report);
    if let Some(p) = &report.predictor {
        let _ = writeln!(
            out,
            "\ncascade predictor (fall >= {:.1}% within {} steps; {} paths, train {} / test {} samples, {} / {} cascades)",
            p.options.fall * 100.0,
            p.options.horizon_steps,
            p.options.paths,
            p.train_samples,
            p.test_samples,
            p.train_cascades,
            p.test_cascades
        );
        let _ = writeln!(out, "  model (4 features): AUC {:.3}  Brier {:.5}", p.model.auc, p.model.brier);
        let _ = writeln!(
            out,
            "  volatility only:    AUC {:.3}  Brier {:.5}",
            p.volatility_only.auc, p.volatility_only.brier
        );
        let _ = writeln!(out, "  base rate:                     Brier {:.5}", p.base_rate_brier);
    }
    out
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{:+.1}%", -v * 100.0))
}

/// The static frontier per scope and the predictive policy against it at the same calm MM rate.
fn frontier(out: &mut String, report: &StressReport) {
    if report.frontier.scopes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nstatic frontier (static table x k): calm MM rate / fund draw / socialized");
    for s in &report.frontier.scopes {
        let unit = if s.aggregate { "fraction" } else { "USDC" };
        let _ = writeln!(out, "  {}", s.scope);
        for p in &s.points {
            let _ = writeln!(
                out,
                "    k {:<5} {:>9} {:>16} {:>14}",
                p.k.map_or("-".to_string(), |k| format!("{k:.2}")),
                format_value(p.calm_mm_rate, "fraction"),
                format_value(p.fund_draw, "USDC"),
                format_value(p.socialized, unit)
            );
        }
        let q = &s.predictive;
        let _ = writeln!(
            out,
            "    predictive {:>9} {:>16} {:>14}   vs frontier at the same calm rate: draw {}, socialized {}",
            format_value(q.calm_mm_rate, "fraction"),
            format_value(q.fund_draw, "USDC"),
            format_value(q.socialized, unit),
            percent(s.fund_draw_reduction),
            percent(s.socialized_reduction)
        );
    }
}

/// Figures shown per congestion scope, without and with congestion.
const CONGESTION_ROWS: [(&str, &str); 7] = [
    ("protocol_net_min", "protocol_insolvent_probability"),
    ("fund_draw", "fund_draw_mean"),
    ("fund_draw_marked", "fund_draw_marked_mean"),
    ("window_peak_inventory", "window_peak_inventory_mean"),
    ("window_peak_inventory_loss", "window_peak_inventory_loss_mean"),
    ("no_bid_auctions", "no_bid_auctions_total"),
    ("missed_takes", "missed_takes_total"),
];

/// Congested makers: each scope without / with congestion.
fn congestion(out: &mut String, report: &StressReport) {
    let Some(c) = &report.congestion else { return };
    let _ = writeln!(
        out,
        "\ncongestion (window {}, answers {} ms late, {:.0}% of auctions no bid): without / with",
        c.window,
        c.delay_ms,
        c.no_bid_fraction * 100.0
    );
    for scope in &c.scopes {
        let _ = writeln!(out, "  {} ({})", scope.scope, scope.policy.name());
        for (single, aggregate) in CONGESTION_ROWS {
            let name = if scope.without.get(single).is_some() { single } else { aggregate };
            let (Some(a), Some(b), Some(unit)) =
                (scope.without.get(name), scope.with.get(name), unit_of(&scope.with, name))
            else {
                continue;
            };
            let _ = writeln!(
                out,
                "    {:<40} {:>16} {:>16}",
                format!("{name} ({unit})"),
                format_value(a, unit),
                format_value(b, unit)
            );
        }
    }
}
