//! A human-readable table of accounts and margin (`solvent replay --report`).

use solvent_core::Engine;
use std::fmt::Write;

pub fn accounts_table(engine: &Engine) -> String {
    let dump = engine.dump();
    let mut text = String::new();
    let _ = writeln!(text, "\nmarkets:");
    for (name, market) in &dump.markets {
        let show = |p: Option<solvent_core::Price>| p.map_or("-".to_string(), |p| p.to_string());
        let _ = writeln!(
            text,
            "  {name:<10} mark {:>14}  index {:>14}  open interest {:>12}  frozen {}",
            show(market.mark_price),
            show(market.index_price),
            market.open_interest.to_string(),
            market.frozen
        );
    }
    let _ = writeln!(text, "accounts:");
    let _ = writeln!(
        text,
        "  {:<12} {:>16} {:>16} {:>16} {:>16}  positions",
        "account", "equity", "maint. margin", "initial margin", "free"
    );
    for (name, account) in &dump.accounts {
        let positions: Vec<String> = account
            .positions
            .iter()
            .map(|(market, p)| {
                let liq = p.liquidation_price.map_or("none".to_string(), |l| l.to_string());
                format!("{market} {} @ {} (liq {liq})", p.size, p.entry_price.map_or("-".into(), |e| e.to_string()))
            })
            .collect();
        let _ = writeln!(
            text,
            "  {:<12} {:>16} {:>16} {:>16} {:>16}  {}",
            name,
            account.equity.to_string(),
            account.maintenance_margin.to_string(),
            account.initial_margin.to_string(),
            account.free_collateral.to_string(),
            positions.join("; ")
        );
    }
    let _ = writeln!(text, "insurance fund {}  fees collected {}", dump.insurance_fund, dump.fees_collected);
    match &dump.protocol {
        Some(book) => protocol_section(&mut text, book),
        None => {
            let _ = writeln!(text, "protocol: the book overflows");
        }
    }
    text
}

/// The protocol's own book: its liquidation inventory per market at mark, and the net position
/// (fund + inventory PnL - bad debt) as the headline solvency figure.
fn protocol_section(text: &mut String, book: &solvent_core::protocol_book::ProtocolBook) {
    let _ = writeln!(text, "protocol:");
    if book.inventory.is_empty() {
        let _ = writeln!(text, "  inventory  none");
    }
    for (market, inventory) in &book.inventory {
        let show = |p: Option<solvent_core::Price>| p.map_or("-".to_string(), |p| p.to_string());
        let auction = inventory.auction.as_deref().map_or(String::new(), |a| format!("  (auction {a})"));
        let _ = writeln!(
            text,
            "  inventory  {market:<10} size {:>14} @ {:>12}  cost {:>16}  mark {:>12}  notional {:>16}  PnL {:>16}{auction}",
            inventory.size.to_string(),
            show(inventory.entry_price),
            inventory.cost_basis.to_string(),
            show(inventory.mark_price),
            inventory.notional_at_mark.to_string(),
            inventory.unrealized_pnl.to_string(),
        );
    }
    for (asset, holding) in &book.collateral {
        let index = holding.index_price.map_or("-".to_string(), |p| p.to_string());
        let _ = writeln!(
            text,
            "  collateral {asset:<10} size {:>14}  cost {:>16}  index {:>12}  value {:>16}  PnL {:>16}",
            holding.size.to_string(),
            holding.cost.to_string(),
            index,
            holding.value.to_string(),
            holding.unrealized_pnl.to_string(),
        );
    }
    let verdict = if book.solvent { "solvent".to_string() } else { "INSOLVENT".to_string() };
    let _ = writeln!(
        text,
        "  net position {} = insurance fund {} + inventory PnL {} + collateral PnL {} - bad debt {}  ({verdict})",
        book.net_position,
        book.insurance_fund,
        book.inventory_unrealized_pnl,
        book.collateral_unrealized_pnl,
        book.bad_debt
    );
}
