//! The self-contained HTML report: tables and inline SVG charts (a price path
//! with its liquidations, the insurance fund over time, loss distributions per
//! policy). No scripts, no stylesheets or fonts from the network.

use crate::policy::PolicyKind;
use crate::report::{ChartSet, Figures, PolicyFigures, StressReport};
use crate::svg::{bar_chart, escape, heat_map, line_chart, short_number, BarGroup, Grid, Markers, Series, Shape};
use std::fmt::Write;

/// Dash pattern of a policy's lines: lines that coincide (the scaled policy often sits on the
/// static one) stay distinguishable.
pub fn dash(policy: PolicyKind) -> &'static str {
    match policy {
        PolicyKind::Static => "",
        PolicyKind::Dynamic => "9 4",
        PolicyKind::StaticScaled => "2 3",
        PolicyKind::Predictive => "6 2 1 2",
    }
}

/// Shape of a policy's liquidation marks.
pub fn shape(policy: PolicyKind) -> Shape {
    match policy {
        PolicyKind::Static => Shape::Circle,
        PolicyKind::Dynamic => Shape::Triangle,
        PolicyKind::StaticScaled => Shape::Square,
        PolicyKind::Predictive => Shape::Diamond,
    }
}

fn shape_word(policy: PolicyKind) -> &'static str {
    match shape(policy) {
        Shape::Circle => "circles",
        Shape::Square => "squares",
        Shape::Triangle => "triangles",
        Shape::Diamond => "diamonds",
    }
}

/// A figure in plain words (every figure of the report has one: tested).
pub fn definition(name: &str) -> Option<&'static str> {
    Some(match name {
        "fund_draw" => "Money paid out of the insurance fund during the run: bankruptcy cover plus losses on the liquidated inventory it took over.",
        "fund_bankruptcy_cover" => "Part of the fund draw that covered accounts left with negative equity.",
        "fund_inventory_loss" => "Part of the fund draw lost selling liquidated positions below the price they were taken over at.",
        "fund_inflow" => "Money paid into the fund: liquidation penalties and inventory gains.",
        "fund_start" | "fund_end" | "fund_min" => "Insurance fund balance at the start, at the end, and at its lowest.",
        "socialized_loss" => "Loss that neither the fund nor auto-deleveraging covered, shared by every account with positive equity.",
        "socialized_loss_events" => "How many times a loss had to be socialized.",
        "uncovered_deficit" => "Negative equity left uncovered after the whole waterfall.",
        "bad_debt_end" => "Protocol debt outstanding at the end (what socialized loss has not repaid).",
        "adl_count" => "Positions closed by auto-deleveraging (profitable opposite-side traders closed at the bankruptcy price).",
        "adl_notional" => "Notional closed by auto-deleveraging.",
        "bankruptcies" => "Liquidations that ended with negative equity.",
        "bankrupt_accounts" => "Distinct accounts that went bankrupt.",
        "bankruptcy_deficit" => "Total negative equity of bankrupt accounts, before the fund covered it.",
        "liquidations" => "Liquidation steps (each partial or full close of a position).",
        "liquidated_notional" => "Notional closed by liquidations, at the price they happened.",
        "auction_filled_notional" => "Notional of liquidated inventory bought by backstop makers in the Dutch auctions.",
        "takes_refused" => "Auction takes refused (the taker would have fallen below initial margin).",
        "unsold_inventory_end" => "Liquidated inventory still held by the protocol at the end, at the final mark.",
        "protocol_net_end" | "protocol_net_min" => "The protocol's net position, the headline solvency figure: insurance fund + unrealized PnL of its liquidation inventory at mark - bad debt, at the end and at its lowest step. Below zero the venue owes its traders more than it holds.",
        "avg_margin" | "peak_margin" => "Total maintenance margin the book had to post, averaged over the run, and at its highest.",
        "avg_mm_rate" => "Average maintenance margin as a fraction of open notional.",
        "calm_avg_margin" | "calm_avg_mm_rate" => "The same averages over the calm part of the run only (before the stress), where a margin policy costs traders the most.",
        "margin_changes" => "Margin parameter changes the policy made (params events).",
        "oracle_freezes" => "Times a market froze for lack of a quorum of usable oracle sources.",
        "price_min" => "Lowest price of the path.",
        "steps" => "Time steps simulated.",
        "paths" => "Monte Carlo paths simulated.",
        "paths_with_jumps" => "Paths on which the jump-diffusion model drew at least one jump.",
        "worst_move_15min" => "Largest fall of the scenario's own price path within 15 minutes (fraction).",
        "lead_time" | "lead_time_mean_given_raised" => "How long before the worst move the policy had raised margin (seconds; 0 when it had not).",
        "raised_before_worst_move" => "1 when the policy raised margin before the worst move of the path, else 0.",
        "raised_before_worst_move_share" => "Share of Monte Carlo paths on which the policy raised margin before the worst move.",
        "accounts" | "accounts_with_positions" => "Accounts in the population, and those holding positions.",
        "fund_draw_marked" => "Fund draw plus the mark-to-market loss of the inventory still unsold at the end: what the fund has paid or still owes on what it carried.",
        "window_peak_inventory" => "Largest notional of liquidated positions the protocol itself held (its inventory, at mark) at any step of the congestion window: what the fund carried while nobody bid.",
        "window_peak_inventory_loss" => "Largest mark-to-market loss of that inventory (its cost minus its value at mark) at any step of the congestion window: the loss the fund was exposed to while nobody bid.",
        "window_inventory_carry" => "Inventory notional held during the congestion window times how long it was held (USDC x hours).",
        "window_auctions" => "Liquidation auctions that started inside the congestion window.",
        "no_bid_auctions" => "Of those, auctions nobody bid on (congested makers, drawn at the no-bid fraction).",
        "late_takes" => "Of those, auctions the makers answered late but before the auction ended (nearer its floor).",
        "missed_takes" => "Of those, auctions whose late answer would have arrived after the auction ended: no fill, the rest is re-auctioned.",
        "fills_below_floor" => "Auction fills below the auction's floor (the price the Dutch auction decays to, relative to the live mark). The makers never bid past the auction's end, so this is always 0.",
        _ => return aggregate_definition(name),
    })
}

/// Monte Carlo aggregates: "<figure>_mean", "_p95", "_probability"... over the paths.
fn aggregate_definition(name: &str) -> Option<&'static str> {
    let suffixes = [
        ("_probability", "Share of Monte Carlo paths on which this happened at least once."),
        ("_mean_given_any", "Average over the paths on which it happened at all."),
        ("_mean_paths_with_jumps", "Average over the paths with at least one price jump."),
        ("_mean", "Average over the Monte Carlo paths."),
        ("_total", "Sum over the Monte Carlo paths."),
        ("_max", "Largest value over the Monte Carlo paths."),
        ("_p50", "Median over the Monte Carlo paths."),
        ("_p95", "95th percentile over the Monte Carlo paths: 1 path in 20 was worse."),
        ("_p99", "99th percentile over the Monte Carlo paths: 1 path in 100 was worse."),
    ];
    suffixes.iter().find(|(suffix, _)| name.ends_with(suffix)).map(|(_, text)| *text)
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
th:first-child,td:first-child{text-align:left}h2{margin-top:32px}svg.chart{display:block;margin:12px 0}.note{color:#555;font-size:13px}\
.summary{background:#f5f7fa;border-left:4px solid #1f77b4;padding:8px 16px}.summary li{margin:4px 0}\
dl.defs dt{font-family:monospace;margin-top:6px}dl.defs dd{margin:0 0 0 24px;color:#333;font-size:14px}\
.holds{color:#1a7f37;font-weight:bold}.fails{color:#b42318;font-weight:bold}.weak{color:#9a6700;font-weight:bold}";

/// The whole page.
pub fn render(report: &StressReport) -> String {
    let mut out = String::new();
    let _ = write!(out, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>solvent stress report</title><style>{STYLE}</style></head><body>");
    out.push_str("<h1>solvent stress report</h1>");
    out.push_str(&summary(report));
    out.push_str(&claim(report));
    out.push_str(&comparison_table(report));
    out.push_str(&figures_table("Population", &[("value", &report.population)]));
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
    out.push_str(&congestion_section(report));
    out.push_str(&definitions(report));
    let settings = serde_json::to_string_pretty(&report.settings).unwrap_or_default();
    let _ = write!(out, "<h2>Settings</h2><p class=\"note\">Everything this run was given (the JSON report has the same).</p><pre>{}</pre>", escape(&settings));
    out.push_str("</body></html>\n");
    out
}

fn verdict(claim: &str) -> (&'static str, &'static str) {
    match claim {
        "holds" => ("holds", "holds"),
        "holds_weakly" => ("weak", "holds weakly (no socialized loss under either policy)"),
        _ => ("fails", "does not hold"),
    }
}

fn percent_change(new: f64, old: f64) -> String {
    if old.abs() < 1e-9 {
        return if new.abs() < 1e-9 { "both zero".into() } else { "from zero".into() };
    }
    format!("{:+.1}%", (new - old) / old.abs() * 100.0)
}

/// The opening paragraph: what was compared, what held, by how much.
fn summary(report: &StressReport) -> String {
    let scenarios: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    let mut out = String::from("<div class=\"summary\"><h2>Summary</h2>");
    let held = report.comparisons.iter().filter(|c| c.claim != "fails").count();
    let _ = write!(
        out,
        "<p>Three margin policies were run on the same book through {} scenario(s){}: the <b>static</b> tier table, \
         the <b>dynamic</b> policy (volatility add-on and jump premium sent as <code>params</code> events), and the static \
         table <b>scaled</b> by {:.4} so that it charges the same average margin as the dynamic one. The claim held in \
         <b>{held} of {}</b> comparisons.</p><ul>",
        scenarios.len(),
        if report.monte_carlo.is_some() { " and Monte Carlo paths" } else { "" },
        report.scale_multiplier.value,
        report.comparisons.len()
    );
    for c in &report.comparisons {
        let (class, text) = verdict(c.claim);
        let social = if c.socialized_loss_unit == "fraction" {
            format!(
                "socialized losses on {:.1}% of paths against {:.1}%",
                c.socialized_loss.dynamic * 100.0,
                c.socialized_loss.static_tiers * 100.0
            )
        } else {
            format!(
                "socialized losses {} against {} USDC",
                short_number(c.socialized_loss.dynamic),
                short_number(c.socialized_loss.static_tiers)
            )
        };
        let _ = write!(
            out,
            "<li><b>{}</b>: the claim <span class=\"{class}\">{text}</span>. The dynamic policy drew {} USDC from the \
             insurance fund against {} under the static tiers ({}); {social}; calm-period margin {:.3}% of notional \
             against {:.3}% ({}).</li>",
            escape(&c.scope),
            short_number(c.fund_draw_usdc.dynamic),
            short_number(c.fund_draw_usdc.static_tiers),
            percent_change(c.fund_draw_usdc.dynamic, c.fund_draw_usdc.static_tiers),
            c.calm_avg_mm_rate.dynamic * 100.0,
            c.calm_avg_mm_rate.static_tiers * 100.0,
            percent_change(c.calm_avg_mm_rate.dynamic, c.calm_avg_mm_rate.static_tiers),
        );
    }
    out + "</ul></div>"
}

fn claim(report: &StressReport) -> String {
    let _ = report;
    String::from(
        "<h2>The claim under test</h2><p>A dynamic margin policy should protect the venue better than a static tier \
         table <i>without</i> charging traders more in normal times: under the dynamic policy the insurance fund should \
         pay out less and fewer losses should be socialized, while the average maintenance margin in the calm part of \
         each run is no higher. It <span class=\"holds\">holds</span> when all three are true, <span class=\"weak\">holds \
         weakly</span> when neither policy socializes any loss (the fund draw and the calm margin decide), and otherwise \
         <span class=\"fails\">does not hold</span>. The scaled static table is the control: it charges what the dynamic \
         policy charges on average, so a difference between dynamic and scaled comes from <i>when</i> the margin is \
         charged, not how much.</p>",
    )
}

/// Every figure of the report in plain words.
fn definitions(report: &StressReport) -> String {
    let mut names: Vec<&str> = report.population.0.iter().map(|(n, _)| *n).collect();
    for scenario in &report.scenarios {
        for result in &scenario.results {
            names.extend(result.figures.0.iter().map(|(n, _)| *n));
        }
    }
    if let Some(mc) = &report.monte_carlo {
        for result in &mc.results {
            names.extend(result.figures.0.iter().map(|(n, _)| *n));
        }
    }
    if let Some(c) = &report.congestion {
        for scope in &c.scopes {
            names.extend(scope.with.0.iter().map(|(n, _)| *n));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::from("<h2>What each figure means</h2><p class=\"note\">Amounts are in USDC; a fraction is shown as a percentage.</p><dl class=\"defs\">");
    for name in names.into_iter().filter(|n| seen.insert(*n)) {
        let text = definition(name).unwrap_or("(not described yet)");
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(text));
    }
    out + "</dl>"
}

fn figures_table(title: &str, columns: &[(&str, &Figures)]) -> String {
    let mut out = format!("<h2>{}</h2><table><tr><th>figure</th><th>unit</th>", escape(title));
    for (name, _) in columns {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr>");
    let Some((_, first)) = columns.first() else { return out + "</table>" };
    for (name, figure) in &first.0 {
        let tip = definition(name).map(escape).unwrap_or_default();
        let _ = write!(out, "<tr><td title=\"{tip}\">{name}</td><td>{}</td>", figure.unit);
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

/// Congested makers: each scope's figures without and with congestion, and the
/// inventory the protocol carried per fixed scenario.
fn congestion_section(report: &StressReport) -> String {
    let Some(c) = &report.congestion else { return String::new() };
    let mut out = String::from("<h2>Congestion: what the fund carried while nobody bid</h2>");
    let _ = write!(
        out,
        "<p class=\"note\">Assumed behaviour, shown with and without: inside the congestion window (<code>{}</code>) \
         the backstop makers answer an auction {} ms later than usual, and {:.0}% of the auctions starting in it get \
         no bid at all (on Maker's Black Thursday auctions gas rose about 6x, keepers froze and 36% of the auctions \
         were won with zero bids). A late answer past the auction's end is missed. Every run measures the same \
         window; the columns differ only in the makers.</p>",
        escape(&c.window),
        c.delay_ms,
        c.no_bid_fraction * 100.0
    );
    for scope in &c.scopes {
        let window = scope
            .window_s
            .map_or(String::new(), |(a, b)| format!(", window {:.2} h to {:.2} h", a / 3_600.0, b / 3_600.0));
        let title = format!("{} ({}{})", scope.scope, scope.policy.name(), window);
        out.push_str(&figures_table(
            &title,
            &[("without congestion", &scope.without), ("with congestion", &scope.with)],
        ));
    }
    for chart in &report.congestion_charts {
        out.push_str(&inventory_chart(chart));
    }
    out
}

/// The protocol's inventory notional per policy, without (solid) and with congestion (dashed).
pub fn inventory_chart(chart: &crate::report::CongestionChart) -> String {
    let xs: Vec<Vec<f64>> = chart.traces.iter().map(|(_, t, _)| hours(&t.t_s)).collect();
    let names: Vec<(String, String)> =
        chart.traces.iter().map(|(p, _, _)| (p.name().to_string(), format!("{}, congested", p.name()))).collect();
    let mut series = Vec::new();
    for (((p, without, with), x), (a, b)) in chart.traces.iter().zip(&xs).zip(&names) {
        series.push(Series { name: a, color: color(*p), dash: "", x, y: &without.inventory_usdc });
        series.push(Series { name: b, color: color(*p), dash: "6,3", x, y: &with.inventory_usdc });
    }
    let window = chart
        .window_s
        .map_or("no window".to_string(), |(a, b)| format!("window {:.2} h to {:.2} h", a / 3_600.0, b / 3_600.0));
    let title = format!("{}: protocol inventory (USDC at mark), {window}", chart.scenario);
    line_chart("congestion-inventory", &title, "hours from start", "inventory (USDC)", &series, &[])
}

fn comparison_table(report: &StressReport) -> String {
    let mut out = String::from("<h2>Dynamic against static tiers, scope by scope</h2><table><tr><th>scope</th><th>fund draw (dyn / static, USDC)</th><th>socialized (dyn / static)</th><th>calm MM rate (dyn / static)</th><th>claim</th></tr>");
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
    // One path for every policy (the usual case): one grey line, the policies told apart by the
    // colour and shape of their liquidation marks.
    let same_path = set.traces.windows(2).all(|w| w[0].1.price == w[1].1.price && w[0].1.t_s == w[1].1.t_s);
    let series: Vec<Series> = match (same_path, set.traces.first(), xs.first()) {
        (true, Some((_, t)), Some(x)) => {
            vec![Series { name: "price (the same path for every policy)", color: "#777", dash: "", x, y: &t.price }]
        }
        _ => set
            .traces
            .iter()
            .zip(&xs)
            .map(|((p, t), x)| Series { name: p.name(), color: color(*p), dash: dash(*p), x, y: &t.price })
            .collect(),
    };
    let largest = set.traces.iter().flat_map(|(_, t)| &t.liquidations).map(|l| l.notional_usdc).fold(0.0, f64::max);
    let markers: Vec<Markers> = set
        .traces
        .iter()
        .map(|(p, t)| Markers {
            color: color(*p),
            shape: shape(*p),
            points: t
                .liquidations
                .iter()
                .map(|l| (l.t_s / 3_600.0, l.price, 1.2 + 5.0 * (l.notional_usdc / largest.max(1e-9)).sqrt()))
                .collect(),
        })
        .collect();
    let shapes: Vec<String> = set.traces.iter().map(|(p, _)| format!("{} {}", p.name(), shape_word(*p))).collect();
    let title = format!("{}: price and liquidations", set.scenario);
    let x_label = format!("hours from start; liquidations: {} (area ~ liquidated notional)", shapes.join(", "));
    line_chart("price-liquidations", &title, &x_label, "price (USDC)", &series, &markers)
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
    let marker = |y: f64| Markers {
        color: color(PolicyKind::Predictive),
        shape: shape(PolicyKind::Predictive),
        points: vec![(px[0], y, 6.0)],
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RunMetrics;
    use crate::report::{aggregate_figures, run_figures};

    #[test]
    fn every_figure_has_a_definition() {
        let runs = vec![RunMetrics::default()];
        for (name, _) in run_figures(&RunMetrics::default()).0.iter().chain(aggregate_figures(&runs).0.iter()) {
            assert!(definition(name).is_some(), "figure {name} has no plain-words definition");
        }
    }

    #[test]
    fn every_congestion_figure_has_a_definition() {
        let runs = vec![RunMetrics::default()];
        let single = crate::report::congestion_figures(&RunMetrics::default());
        for (name, _) in single.0.iter().chain(crate::report::congestion_aggregate(&runs).0.iter()) {
            assert!(definition(name).is_some(), "congestion figure {name} has no plain-words definition");
        }
    }

    #[test]
    fn policies_differ_in_colour_dash_and_shape() {
        let all = PolicyKind::ALL;
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(color(*a), color(*b));
                assert_ne!(dash(*a), dash(*b));
                assert_ne!(shape(*a), shape(*b));
            }
        }
    }
}
