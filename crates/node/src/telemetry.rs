//! Metrics (Prometheus text at `GET /metrics`) and structured logs (`tracing`, level from
//! `RUST_LOG`, default `info`). The metric names are listed in `docs/serve.md`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const EVENTS_TOTAL: &str = "solvent_events_total";
pub const EVENTS_PER_SECOND: &str = "solvent_events_per_second";
pub const APPLY_LATENCY: &str = "solvent_apply_latency_seconds";
pub const FSYNC_LATENCY: &str = "solvent_fsync_latency_seconds";
pub const COMMIT_BATCH_EVENTS: &str = "solvent_group_commit_batch_events";
pub const JOURNAL_SEQ: &str = "solvent_journal_seq";
pub const EFFECTS_TOTAL: &str = "solvent_effects_total";
pub const LIQUIDATIONS_TOTAL: &str = "solvent_liquidations_total";
pub const ORACLE_REJECTIONS_TOTAL: &str = "solvent_oracle_rejections_total";
pub const INSURANCE_FUND: &str = "solvent_insurance_fund";
pub const MARKET_SKEW: &str = "solvent_market_skew";
pub const PROTOCOL_DELTA: &str = "solvent_protocol_delta";
pub const PROTOCOL_NET_POSITION: &str = "solvent_protocol_net_position";
pub const BAD_DEBT: &str = "solvent_bad_debt";
pub const INVENTORY_COST_BASIS: &str = "solvent_inventory_cost_basis";
pub const INVENTORY_UNREALIZED_PNL: &str = "solvent_inventory_unrealized_pnl";
pub const ACCOUNTS_NEAR_LIQUIDATION: &str = "solvent_accounts_near_liquidation";
pub const ACCOUNTS_BELOW_MAINTENANCE: &str = "solvent_accounts_below_maintenance";
pub const ACCOUNTS_TOTAL: &str = "solvent_accounts";
pub const SNAPSHOT_SEQ: &str = "solvent_snapshot_seq";
pub const SNAPSHOT_DURATION: &str = "solvent_snapshot_duration_seconds";
pub const SNAPSHOT_BYTES: &str = "solvent_snapshot_bytes";
pub const HTTP_REJECTIONS_TOTAL: &str = "solvent_http_rejections_total";
pub const JOURNAL_FAILED: &str = "solvent_journal_failed";
pub const VIEW_COPY_DURATION: &str = "solvent_view_copy_seconds";
pub const SIGNED_SEQ: &str = "solvent_signed_seq";
pub const ORDERS_SIGNED_TOTAL: &str = "solvent_orders_signed_total";
pub const SIGNER_FAILED: &str = "solvent_signer_failed";

const LATENCY_BUCKETS_SECONDS: [f64; 16] =
    [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 1.0];
const BATCH_BUCKETS_EVENTS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. `None` if another recorder was
/// installed first (then `/metrics` says so instead of rendering).
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(COMMIT_BATCH_EVENTS.into()), &BATCH_BUCKETS_EVENTS)
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    metrics::describe_gauge!(SIGNED_SEQ, "Last event whose effects are signed and durable in signed-effects.jsonl.");
    metrics::describe_counter!(
        ORDERS_SIGNED_TOTAL,
        "Orders (liquidation, adl, socialized_loss, auction_fill) signed by the server."
    );
    metrics::describe_gauge!(
        SIGNER_FAILED,
        "1 once signing stopped on an error (the server goes on; a restart resumes signing)."
    );
    metrics::describe_counter!(EVENTS_TOTAL, "Journaled events applied, by outcome (accepted, rejected).");
    metrics::describe_gauge!(EVENTS_PER_SECOND, "Events applied over the last second.");
    metrics::describe_histogram!(APPLY_LATENCY, "Time to apply one event to the engine.");
    metrics::describe_histogram!(FSYNC_LATENCY, "Time of one journal fdatasync.");
    metrics::describe_histogram!(COMMIT_BATCH_EVENTS, "Events made durable by one group commit.");
    metrics::describe_gauge!(JOURNAL_SEQ, "Sequence number of the last durable, applied event.");
    metrics::describe_counter!(EFFECTS_TOTAL, "Effects emitted, by type.");
    metrics::describe_counter!(LIQUIDATIONS_TOTAL, "Liquidation effects emitted.");
    metrics::describe_counter!(ORACLE_REJECTIONS_TOTAL, "oracle_rejected effects, by reason.");
    metrics::describe_gauge!(INSURANCE_FUND, "Insurance fund balance (settlement asset).");
    metrics::describe_gauge!(MARKET_SKEW, "Traders' long - short open interest per market (base units).");
    metrics::describe_gauge!(PROTOCOL_DELTA, "The protocol's own net position (liquidation inventory) per market.");
    metrics::describe_gauge!(
        PROTOCOL_NET_POSITION,
        "Insurance fund + inventory unrealized PnL at mark - bad debt (settlement asset): below zero, the venue is insolvent."
    );
    metrics::describe_gauge!(BAD_DEBT, "Protocol losses the fund could not pay and nobody has absorbed yet.");
    metrics::describe_gauge!(INVENTORY_COST_BASIS, "Signed cost basis of the liquidation inventory per market.");
    metrics::describe_gauge!(
        INVENTORY_UNREALIZED_PNL,
        "Unrealized PnL at mark of the liquidation inventory per market."
    );
    metrics::describe_gauge!(ACCOUNTS_NEAR_LIQUIDATION, "Accounts with equity below 1.2 x maintenance margin.");
    metrics::describe_gauge!(ACCOUNTS_BELOW_MAINTENANCE, "Accounts with equity below maintenance margin.");
    metrics::describe_gauge!(ACCOUNTS_TOTAL, "Accounts in the engine.");
    metrics::describe_gauge!(SNAPSHOT_SEQ, "Sequence number of the newest durable snapshot.");
    metrics::describe_histogram!(SNAPSHOT_DURATION, "Time to encode and write one snapshot.");
    metrics::describe_gauge!(SNAPSHOT_BYTES, "Size of the newest snapshot.");
    metrics::describe_counter!(HTTP_REJECTIONS_TOTAL, "Requests refused before the sequencer, by error kind.");
    metrics::describe_histogram!(VIEW_COPY_DURATION, "Time to copy the engine into a new read view.");
    metrics::describe_gauge!(JOURNAL_FAILED, "1 once a journal write or fsync failed (writes are refused).");
}

/// Install the `tracing` subscriber (stderr; `RUST_LOG` filter, default `info`). Idempotent.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
