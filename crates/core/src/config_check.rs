//! Every problem of a configuration file at once, each with its field's path
//! (`markets[1] (ETH-PERP).sources[2]: ...`), for when serde refuses the file: serde stops at
//! the first problem and, for a value of several accepted shapes, names only the Rust type.
//!
//! It checks what the deserializer checks (known keys, required keys, each value's type), one
//! field at a time, so one wrong field does not hide the next; [`crate::Config::from_toml`]
//! then validates the meaning (tier order, quorum, weights) market by market.

use crate::config::{
    CliffRange, RawAsset, RawConfig, RawMarket, RawTier, SourceTable, TierBasis, TierMode, MAX_MARKETS,
};
use crate::num::{Rate, Size};
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// The field names serde's derive gives `T`, so the unknown-field check always agrees with the
/// real structs, whatever fields they gain.
fn serde_fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<T>()
}

/// Most problems listed; the rest are counted.
pub const MAX_PROBLEMS: usize = 64;

type Check = fn(&Value) -> Result<(), String>;

fn of<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    T::deserialize(value.clone()).map(|_| ()).map_err(|e| e.message().trim().to_string())
}

fn source(value: &Value) -> Result<(), String> {
    match value {
        Value::String(_) => Ok(()),
        Value::Table(table) => {
            let mut problems = Vec::new();
            check_table(table, "", SOURCE_FIELDS, serde_fields::<SourceTable>(), &mut problems);
            match problems.is_empty() {
                true => Ok(()),
                false => Err(problems.join("; ")),
            }
        }
        other => Err(format!(
            "a source is a name (\"s1\") or a table {{ name = \"s1\", public_key = \"<64 hex digits>\" }}, not {}",
            other.type_str()
        )),
    }
}

/// (key, required, check) of the fields whose type is checked one by one; a field serde knows
/// but this list does not is accepted here (serde's own error still names it).
type Fields = &'static [(&'static str, bool, Check)];

const TOP_FIELDS: Fields = &[
    ("settlement_asset", true, of::<String>),
    ("max_accounts", true, of::<u64>),
    ("max_clock_jump_ms", false, of::<u64>),
    ("assets", false, of::<Vec<Table>>),
    ("markets", true, of::<Vec<Table>>),
];

const ASSET_FIELDS: Fields = &[
    ("name", true, of::<String>),
    ("weight", true, of::<Rate>),
    ("index_market", true, of::<String>),
    ("collateral_haircut", false, of::<Rate>),
    ("chain", false, of::<String>),
    ("token", false, of::<String>),
    ("bridge_haircut", false, of::<Rate>),
    ("halted_weight", false, of::<Rate>),
    ("depeg_weight", false, of::<Rate>),
    ("weight_phase_ms", false, of::<u64>),
];

const SOURCE_FIELDS: Fields = &[("name", true, of::<String>), ("public_key", false, of::<String>)];

const MARKET_FIELDS: Fields = &[
    ("name", true, of::<String>),
    ("tier_basis", true, of::<TierBasis>),
    ("tier_mode", true, of::<TierMode>),
    ("im_factor", true, of::<Rate>),
    ("liquidation_buffer", true, of::<Rate>),
    ("sources", true, of::<Vec<Value>>),
    ("quorum", true, of::<u32>),
    ("max_age_ms", true, of::<u64>),
    ("max_deviation", true, of::<Rate>),
    ("max_jump", true, of::<Rate>),
    ("max_future_ms", false, of::<u64>),
    ("max_conf", false, of::<Rate>),
    ("mark_ema_ms", false, of::<u64>),
    ("auction_start_premium", false, of::<Rate>),
    ("auction_floor_discount", false, of::<Rate>),
    ("auction_duration_ms", false, of::<u64>),
    ("adl_enabled", false, of::<bool>),
    ("max_trade_deviation", false, of::<Rate>),
    ("tiers", true, of::<Vec<Value>>),
    ("im_addon_rate", false, of::<Rate>),
    ("mm_phase_in_ms", false, of::<u64>),
    ("oi_cap", false, of::<Size>),
    ("cliff_ranges", false, of::<Vec<CliffRange>>),
    ("concentration_addon_rate", false, of::<Rate>),
    ("incentive_rebate_rate", false, of::<Rate>),
    ("funding_enabled", false, of::<bool>),
    ("funding_interval_ms", false, of::<u64>),
    ("funding_interest_rate", false, of::<Rate>),
    ("funding_clamp", false, of::<Rate>),
    ("funding_cap", false, of::<Rate>),
    ("skew_scale", false, of::<Size>),
    ("max_funding_velocity", false, of::<Rate>),
    ("skew_alert", false, of::<Size>),
    ("protocol_delta_alert", false, of::<crate::num::Quote>),
    ("min_liquidation_notional", false, of::<crate::num::Quote>),
    ("liquidation_chunk_notional", false, of::<crate::num::Quote>),
    ("liquidation_chunk_rate", false, of::<Rate>),
    ("liquidation_cooldown_ms", false, of::<u64>),
    ("backstop_mm_fraction", false, of::<Rate>),
    ("dust_equity", false, of::<crate::num::Quote>),
    ("max_account_liquidation_notional", false, of::<crate::num::Quote>),
    ("max_event_liquidation_notional", false, of::<crate::num::Quote>),
    ("pm_range", false, of::<Rate>),
    ("pm_buckets", false, of::<u32>),
    ("pm_correlation", false, of::<Rate>),
    ("pm_mm_factor", false, of::<Rate>),
    ("pm_im_factor", false, of::<Rate>),
    ("pm_floor", false, of::<Rate>),
];

/// The keys a `[[markets]]` entry accepts (the config struct's, by serde introspection).
pub fn market_keys() -> &'static [&'static str] {
    serde_fields::<RawMarket>()
}

/// The keys an `[[assets]]` entry accepts (the config struct's, by serde introspection).
pub fn asset_keys() -> &'static [&'static str] {
    serde_fields::<RawAsset>()
}

/// The asset keys whose value types are checked one by one here.
pub fn asset_checked_keys() -> Vec<&'static str> {
    ASSET_FIELDS.iter().map(|(key, _, _)| *key).collect()
}

/// The market keys whose value types are checked one by one here.
pub fn market_checked_keys() -> Vec<&'static str> {
    MARKET_FIELDS.iter().map(|(key, _, _)| *key).collect()
}

fn check_table(table: &Table, path: &str, fields: Fields, known: &[&str], problems: &mut Vec<String>) {
    let at = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    for (key, required, check) in fields.iter().filter(|(key, _, _)| known.contains(key)) {
        match table.get(*key) {
            Some(value) => {
                if let Err(message) = check(value) {
                    problems.push(format!("{}: {message}", at(key)));
                }
            }
            None if *required => problems.push(format!("{}: missing (required)", at(key))),
            None => {}
        }
    }
    for key in table.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.push(format!("{}: unknown field (known: {})", at(key), known.join(", ")));
    }
}

/// `markets[1] (ETH-PERP)`: the index, and the name when the entry has one.
fn entry_path(list: &str, index: usize, table: &Table) -> String {
    match table.get("name").and_then(Value::as_str) {
        Some(name) => format!("{list}[{index}] ({name})"),
        None => format!("{list}[{index}]"),
    }
}

fn check_market(table: &Table, path: &str, problems: &mut Vec<String>) {
    check_table(table, path, MARKET_FIELDS, serde_fields::<RawMarket>(), problems);
    if let Some(Value::Array(sources)) = table.get("sources") {
        for (j, value) in sources.iter().enumerate() {
            if let Err(message) = source(value) {
                problems.push(format!("{path}.sources[{j}]: {message}"));
            }
        }
    }
    if let Some(Value::Array(tiers)) = table.get("tiers") {
        for (j, value) in tiers.iter().enumerate() {
            if let Err(message) = of::<RawTier>(value) {
                problems.push(format!("{path}.tiers[{j}]: {message}"));
            }
        }
    }
}

/// Every structural problem of `text` (empty when serde would accept it).
pub fn problems(text: &str) -> Vec<String> {
    let table: Table = match text.parse() {
        Ok(table) => table,
        Err(error) => return vec![format!("not valid TOML: {}", error.to_string().trim())],
    };
    let mut problems = Vec::new();
    check_table(&table, "", TOP_FIELDS, serde_fields::<RawConfig>(), &mut problems);
    let tables = |key: &str| match table.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_table).take(MAX_MARKETS).collect(),
        _ => Vec::new(),
    };
    for (i, asset) in tables("assets").into_iter().enumerate() {
        check_table(asset, &entry_path("assets", i, asset), ASSET_FIELDS, serde_fields::<RawAsset>(), &mut problems);
    }
    for (i, market) in tables("markets").into_iter().enumerate() {
        check_market(market, &entry_path("markets", i, market), &mut problems);
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG_TOML;

    #[test]
    fn the_field_lists_are_serde_s() {
        let market = serde_fields::<RawMarket>();
        assert!(market.contains(&"quorum") && market.contains(&"tiers"), "{market:?}");
        for (key, _, _) in MARKET_FIELDS.iter().chain(TOP_FIELDS).chain(ASSET_FIELDS) {
            let known = [serde_fields::<RawMarket>(), serde_fields::<RawConfig>(), serde_fields::<RawAsset>()];
            assert!(known.iter().any(|k| k.contains(key)), "{key} is checked but no longer a field");
        }
    }

    #[test]
    fn the_default_has_no_problems() {
        assert_eq!(problems(DEFAULT_CONFIG_TOML), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let text = DEFAULT_CONFIG_TOML
            .replacen("sources = [\"s1\", \"s2\", \"s3\", \"s4\", \"s5\"]", "sources = [\"s1\", 2, \"s3\"]", 1)
            .replacen("quorum = 3", "quorum = \"three\"", 2)
            .replacen("max_jump = \"0.10\"", "max_jmp = \"0.10\"", 1)
            .replace("weight = \"0.9\"", "weight = 0.9");
        let found = problems(&text);
        let expect = [
            "markets[0] (BTC-PERP).sources[1]: a source is a name",
            "markets[0] (BTC-PERP).quorum: invalid type: string \"three\"",
            "markets[1] (ETH-PERP).quorum: invalid type",
            "markets[0] (BTC-PERP).max_jump: missing (required)",
            "markets[0] (BTC-PERP).max_jmp: unknown field",
            "assets[0] (BTC).weight:",
        ];
        for needle in expect {
            assert!(found.iter().any(|p| p.starts_with(needle)), "{needle} not in {found:#?}");
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }
}
