//! Portfolio margin: the worked example of docs/margin.md section 6, the targets (offsets at
//! high correlation, none at zero, never less than tiers without offsets), the risk index's box
//! and the liquidation of a portfolio-margined account.
