//! Zero-knowledge margin health: an account shows that its equity covers its maintenance margin
//! at the public marks and tier tables without revealing its collateral, sizes or cost basis.
//!
//! Hidden, each in a Pedersen commitment (Ristretto, the dalek `bulletproofs` generators):
//! the collateral value `c` (settlement balance plus weighted collateral, 10^-24 units), and per
//! public market the long size `l`, short size `s`, cost basis `k` (10^-16) and the split of the
//! exposure into the tier brackets `x_i`. Public: seq, state hash, the liabilities root and the
//! account's leaf, and per market the mark, the tier basis and the marginal tier table.
//!
//! The verifier checks, on the commitments alone:
//! - `sum x_i = l + s` (size basis) or `= mark * (l + s)` (notional basis), as a point equality;
//! - one aggregated range proof (64-bit each) that `l, s, x_i >= 0`, `width_i - x_i >= 0` for
//!   every bounded bracket, and the two 64-bit limbs of the margin `m` are in range, with
//!   `m = c + 10^8 * sum (mark * (l - s) - k) - sum_i coef_i * x_i` (coef = rate * mark, or rate
//!   in notional basis) checked as a point equality; so `m >= 0`: equity - MM' >= 0 at 10^-24.
//!
//! Because tier rates rise with exposure, any valid split gives MM' >= the true marginal MM, so a
//! prover gains nothing by splitting differently. The commitments, the public values and the
//! leaf are signed by the engine key together with seq and state hash, so a proof for a state the
//! engine never signed fails, and the range proof's transcript starts from that signed message.

use crate::keys::{hex32, strict_hex};
use crate::liabilities::Root;
use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use merlin::Transcript;
use solvent_core::config::{TierBasis, TierMode};
use solvent_core::Engine;

pub const HEALTH_DOMAIN: &[u8] = b"solvent-health-v1";
/// Bits of every range proof.
pub const RANGE_BITS: usize = 64;
/// Most values in one aggregated proof (markets x brackets bounded by this).
pub const MAX_VALUES: usize = 256;
const FINE_PER_QUOTE: i128 = 100_000_000;

/// One public market of the statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicMarket {
    pub name: String,
    pub mark_raw: i64,
    pub notional_basis: bool,
    /// (from_raw, mm_rate raw) per tier, marginal mode.
    pub tiers: Vec<(i128, i64)>,
}

impl PublicMarket {
    fn width(&self, i: usize) -> Option<i128> {
        self.tiers.get(i + 1).map(|next| next.0 - self.tiers[i].0)
    }
    /// MM' per unit of bracket `i`, in 10^-24 units per raw exposure unit.
    fn coefficient(&self, i: usize) -> i128 {
        let rate = i128::from(self.tiers[i].1);
        if self.notional_basis {
            rate
        } else {
            rate * i128::from(self.mark_raw)
        }
    }
}

/// What the verifier sees besides the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub seq: u64,
    pub state_hash: [u8; 32],
    pub root: [u8; 32],
    pub leaf: [u8; 32],
    pub markets: Vec<PublicMarket>,
}

/// The hidden values of one account (the openings' values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hidden {
    pub collateral_fine: i128,
    /// Per public market: long, short, cost raw, bracket amounts.
    pub positions: Vec<(u64, u64, i128, Vec<u64>)>,
}

/// Commitments, in statement order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitments {
    pub collateral: CompressedRistretto,
    /// Per market: long, short, cost, brackets.
    pub markets: Vec<(CompressedRistretto, CompressedRistretto, CompressedRistretto, Vec<CompressedRistretto>)>,
}

/// Values and blindings behind the commitments.
#[derive(Clone, Debug)]
pub struct Openings {
    pub hidden: Hidden,
    /// Equity - MM' in 10^-24 units (negative for an unhealthy account).
    pub margin: i128,
    /// The blinding of the margin commitment the verifier derives.
    pub blind_margin: Scalar,
    pub blind_collateral: Scalar,
    pub blind_markets: Vec<(Scalar, Scalar, Scalar, Vec<Scalar>)>,
}

fn scalar(v: i128) -> Scalar {
    if v >= 0 {
        Scalar::from(v as u128)
    } else {
        -Scalar::from(v.unsigned_abs())
    }
}

fn random_scalar() -> Scalar {
    let mut wide = [0u8; 64];
    getrandom::fill(&mut wide).expect("the operating system's random source");
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// The statement's public part and the hidden values of `account` in `engine`, with the split of
/// each exposure into brackets as the engine's marginal table does it.
pub fn account_values(engine: &Engine, account: &str) -> Result<(Vec<PublicMarket>, Hidden), String> {
    let record = engine.account(account).ok_or_else(|| format!("no account {account:?} in the state"))?;
    if !record.margin_model.is_tiered() {
        return Err(format!("account {account:?}: the health proof covers tiered margin only"));
    }
    let collateral = solvent_core::margin::collateral_fine(record, engine.assets(), engine.markets());
    let collateral_fine = i128::try_from(collateral).map_err(|_| "collateral value does not fit in 128 bits")?;
    let mut markets = Vec::new();
    let mut positions = Vec::new();
    for (id, market) in engine.markets().iter().enumerate() {
        if market.params.tier_mode == TierMode::Whole {
            return Err(format!("market {}: tier_mode whole is not covered (marginal tables only)", market.name));
        }
        // A market without a mark yet holds no position (trades need a mark): left out.
        let Some(mark) = market.mark_price else { continue };
        let public = PublicMarket {
            name: market.name.to_string(),
            mark_raw: mark.raw(),
            notional_basis: market.params.tier_basis == TierBasis::Notional,
            tiers: market.params.tiers.iter().map(|t| (t.from_raw, t.mm_rate.raw())).collect(),
        };
        if (0..public.tiers.len()).filter_map(|i| public.width(i)).any(|w| u64::try_from(w).is_err()) {
            return Err(format!("market {}: a tier bracket is wider than a 64-bit range proof covers", market.name));
        }
        let position = record.positions.iter().find(|p| p.market.0 as usize == id);
        let (size, cost) = position.map_or((0i64, 0i128), |p| (p.size.raw(), p.cost.raw()));
        let magnitude = i128::from(size).abs();
        let exposure = if public.notional_basis { magnitude * i128::from(mark.raw()) } else { magnitude };
        let mut brackets = Vec::with_capacity(public.tiers.len());
        for (i, tier) in public.tiers.iter().enumerate() {
            let upper = public.tiers.get(i + 1).map_or(i128::MAX, |next| next.0);
            let portion = exposure.min(upper).saturating_sub(tier.0).max(0);
            brackets
                .push(u64::try_from(portion).map_err(|_| format!("market {}: exposure exceeds 64 bits", market.name))?);
        }
        let (long, short) = if size >= 0 { (size as u64, 0) } else { (0, size.unsigned_abs()) };
        positions.push((long, short, cost, brackets));
        markets.push(public);
    }
    Ok((markets, Hidden { collateral_fine, positions }))
}

/// The margin `c + 10^8 * sum (mark * (l - s) - k) - sum coef_i * x_i`, exactly; `None` on overflow.
pub fn margin_of(markets: &[PublicMarket], hidden: &Hidden) -> Option<i128> {
    let mut margin = hidden.collateral_fine;
    for (market, (long, short, cost, brackets)) in markets.iter().zip(&hidden.positions) {
        let size = i128::from(*long) - i128::from(*short);
        let pnl = size.checked_mul(i128::from(market.mark_raw))?.checked_sub(*cost)?;
        margin = margin.checked_add(pnl.checked_mul(FINE_PER_QUOTE)?)?;
        for (i, x) in brackets.iter().enumerate() {
            margin = margin.checked_sub(market.coefficient(i).checked_mul(i128::from(*x))?)?;
        }
    }
    Some(margin)
}

/// The engine's part: choose blindings and commit to the true values, healthy or not (the range
/// proof is what only a healthy account can make).
pub fn commit(markets: &[PublicMarket], hidden: Hidden) -> Result<(Commitments, Openings), String> {
    if markets.len() != hidden.positions.len() {
        return Err("one set of hidden values per public market".into());
    }
    let margin = margin_of(markets, &hidden).ok_or("the margin does not fit in 128 bits")?;
    let gens = PedersenGens::default();
    let blind_collateral = random_scalar();
    let mut margin_blind = blind_collateral;
    let mut blind_markets = Vec::with_capacity(markets.len());
    let mut committed = Vec::with_capacity(markets.len());
    for (market, (long, short, cost, brackets)) in markets.iter().zip(&hidden.positions) {
        if brackets.len() != market.tiers.len() {
            return Err(format!("market {}: one bracket amount per tier", market.name));
        }
        let (rl, rs, rk) = (random_scalar(), random_scalar(), random_scalar());
        // The bracket blindings add up to the exposure's, so the sum check is a point equality.
        let exposure_blind =
            if market.notional_basis { scalar(i128::from(market.mark_raw)) * (rl + rs) } else { rl + rs };
        let mut rx: Vec<Scalar> = (1..brackets.len()).map(|_| random_scalar()).collect();
        rx.insert(0, exposure_blind - rx.iter().sum::<Scalar>());
        let fine = scalar(FINE_PER_QUOTE);
        margin_blind += fine * scalar(i128::from(market.mark_raw)) * (rl - rs) - fine * rk;
        for (i, r) in rx.iter().enumerate() {
            margin_blind -= scalar(market.coefficient(i)) * r;
        }
        let c = |v: i128, r: &Scalar| gens.commit(scalar(v), *r).compress();
        committed.push((
            c(i128::from(*long), &rl),
            c(i128::from(*short), &rs),
            c(*cost, &rk),
            brackets.iter().zip(&rx).map(|(x, r)| c(i128::from(*x), r)).collect(),
        ));
        blind_markets.push((rl, rs, rk, rx));
    }
    let commitments = Commitments {
        collateral: gens.commit(scalar(hidden.collateral_fine), blind_collateral).compress(),
        markets: committed,
    };
    let openings = Openings { hidden, margin, blind_margin: margin_blind, blind_collateral, blind_markets };
    Ok((commitments, openings))
}

/// The bytes the engine signs: the statement and every commitment.
pub fn message(statement: &Statement, commitments: &Commitments) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1024);
    bytes.extend_from_slice(HEALTH_DOMAIN);
    bytes.extend_from_slice(&statement.seq.to_le_bytes());
    bytes.extend_from_slice(&statement.state_hash);
    bytes.extend_from_slice(&statement.root);
    bytes.extend_from_slice(&statement.leaf);
    bytes.extend_from_slice(&(statement.markets.len() as u64).to_le_bytes());
    for (market, (l, s, k, xs)) in statement.markets.iter().zip(&commitments.markets) {
        bytes.extend_from_slice(&(market.name.len() as u64).to_le_bytes());
        bytes.extend_from_slice(market.name.as_bytes());
        bytes.extend_from_slice(&market.mark_raw.to_le_bytes());
        bytes.push(u8::from(market.notional_basis));
        bytes.extend_from_slice(&(market.tiers.len() as u64).to_le_bytes());
        for (from, rate) in &market.tiers {
            bytes.extend_from_slice(&from.to_le_bytes());
            bytes.extend_from_slice(&rate.to_le_bytes());
        }
        for point in [l, s, k].into_iter().chain(xs) {
            bytes.extend_from_slice(point.as_bytes());
        }
    }
    bytes.extend_from_slice(commitments.collateral.as_bytes());
    bytes
}

/// Most values of a proof whose generators are kept (3 markets of 4 tiers need 32).
const CACHED_PARTIES: usize = 64;

/// The Bulletproofs generators for `parties` values: made once (deriving them costs more than a
/// verification) and kept for proofs of up to [`CACHED_PARTIES`] values.
fn generators(parties: usize) -> std::borrow::Cow<'static, BulletproofGens> {
    static CACHED: std::sync::OnceLock<BulletproofGens> = std::sync::OnceLock::new();
    if parties <= CACHED_PARTIES {
        std::borrow::Cow::Borrowed(CACHED.get_or_init(|| BulletproofGens::new(RANGE_BITS, CACHED_PARTIES)))
    } else {
        std::borrow::Cow::Owned(BulletproofGens::new(RANGE_BITS, parties))
    }
}

fn transcript(signed_message: &[u8]) -> Transcript {
    let mut transcript = Transcript::new(HEALTH_DOMAIN);
    transcript.append_message(b"statement", blake3::hash(signed_message).as_bytes());
    transcript
}

/// The commitments the range proof covers, in order, derived from the committed values the way
/// the verifier derives them; padded with the identity (0 with blinding 0) to a power of two.
fn range_commitments(
    statement: &Statement,
    commitments: &Commitments,
    limbs: [CompressedRistretto; 2],
) -> Result<Vec<CompressedRistretto>, String> {
    let gens = PedersenGens::default();
    let mut out = Vec::new();
    for (market, (l, s, _, xs)) in statement.markets.iter().zip(&commitments.markets) {
        out.push(*l);
        out.push(*s);
        out.extend_from_slice(xs);
        for (i, x) in xs.iter().enumerate() {
            if let Some(width) = market.width(i) {
                let x = x.decompress().ok_or("a bracket commitment is not a valid point")?;
                out.push((scalar(width) * gens.B - x).compress());
            }
        }
    }
    out.extend(limbs);
    if out.len() > MAX_VALUES {
        return Err(format!("{} range values, at most {MAX_VALUES}", out.len()));
    }
    out.resize(out.len().next_power_of_two(), RistrettoPoint::identity().compress());
    Ok(out)
}

/// A complete health proof.
#[derive(Clone, Debug)]
pub struct HealthProof {
    pub statement: Statement,
    pub commitments: Commitments,
    pub engine_sig: Signature,
    /// The margin's two 64-bit limbs: margin = lo + 2^64 hi.
    pub margin_lo: CompressedRistretto,
    pub margin_hi: CompressedRistretto,
    pub range_proof: RangeProof,
}

/// What the account's owner adds: the limb commitments and the aggregated range proof.
#[derive(Clone, Debug)]
pub struct RangePart {
    pub margin_lo: CompressedRistretto,
    pub margin_hi: CompressedRistretto,
    pub range_proof: RangeProof,
}

/// The engine's part: commit and sign. The account's owner would receive these with the openings.
pub fn engine_sign(statement: &Statement, commitments: &Commitments, key: &SigningKey) -> Signature {
    key.sign(&message(statement, commitments))
}

/// The prover's part: refuses an unhealthy account, else the range proof over the openings.
pub fn prove_ranges(
    statement: &Statement,
    commitments: &Commitments,
    openings: &Openings,
) -> Result<RangePart, String> {
    if openings.margin < 0 {
        return Err(format!(
            "equity is below the maintenance margin by {} (10^-24 units): no health proof",
            -openings.margin
        ));
    }
    let blind_lo = random_scalar();
    let blind_hi = (openings.blind_margin - blind_lo) * Scalar::from(1u128 << 64).invert();
    prove_ranges_claiming(statement, commitments, openings, openings.margin as u128, [blind_lo, blind_hi])
}

/// The range proof for a claimed margin with the given limb blindings. [`prove_ranges`] passes
/// the true margin; anything else (a forger's claim) yields a proof that does not verify.
pub fn prove_ranges_claiming(
    statement: &Statement,
    commitments: &Commitments,
    openings: &Openings,
    margin: u128,
    limb_blindings: [Scalar; 2],
) -> Result<RangePart, String> {
    let mut values: Vec<u64> = Vec::new();
    let mut blindings: Vec<Scalar> = Vec::new();
    for ((market, (long, short, _, xs)), (rl, rs, _, rx)) in
        statement.markets.iter().zip(&openings.hidden.positions).zip(&openings.blind_markets)
    {
        values.extend([*long, *short]);
        blindings.extend([*rl, *rs]);
        values.extend(xs);
        blindings.extend(rx);
        for (i, (x, r)) in xs.iter().zip(rx).enumerate() {
            if let Some(width) = market.width(i) {
                // A negative remainder wraps to a huge u64 here and cannot match its commitment.
                values.push((width - i128::from(*x)) as u64);
                blindings.push(-r);
            }
        }
    }
    let limbs = [(margin & u128::from(u64::MAX)) as u64, (margin >> 64) as u64];
    values.extend(limbs);
    blindings.extend(limb_blindings);
    let gens = PedersenGens::default();
    let margin_lo = gens.commit(Scalar::from(limbs[0]), limb_blindings[0]).compress();
    let margin_hi = gens.commit(Scalar::from(limbs[1]), limb_blindings[1]).compress();
    let padded = values.len().next_power_of_two();
    values.resize(padded, 0);
    blindings.resize(padded, Scalar::ZERO);
    let bp_gens = generators(padded);
    let mut transcript = transcript(&message(statement, commitments));
    let (range_proof, _) =
        RangeProof::prove_multiple(&bp_gens, &gens, &mut transcript, &values, &blindings, RANGE_BITS)
            .map_err(|e| format!("range proof: {e}"))?;
    Ok(RangePart { margin_lo, margin_hi, range_proof })
}

/// Make a health proof for `account` of `engine`, bound to the liabilities `root` of that state.
pub fn prove(
    engine: &Engine,
    account: &str,
    root: &Root,
    leaf: [u8; 32],
    key: &SigningKey,
) -> Result<HealthProof, String> {
    let state_hash = hex32(&engine.state_hash(), "state hash")?;
    if root.seq != engine.last_seq() || root.state_hash != state_hash {
        return Err("the liabilities root is not of this state".into());
    }
    let health = engine.health(account).map_err(|e| e.to_string())?;
    if health.below_maintenance() {
        return Err(format!(
            "{account} is below maintenance (equity {}, maintenance margin {}): no health proof",
            health.equity, health.maintenance_margin
        ));
    }
    let (markets, hidden) = account_values(engine, account)?;
    let statement = Statement { seq: root.seq, state_hash, root: root.root, leaf, markets };
    let (commitments, openings) = commit(&statement.markets, hidden)?;
    let engine_sig = engine_sign(&statement, &commitments, key);
    let part = prove_ranges(&statement, &commitments, &openings)?;
    Ok(HealthProof {
        statement,
        commitments,
        engine_sig,
        margin_lo: part.margin_lo,
        margin_hi: part.margin_hi,
        range_proof: part.range_proof,
    })
}

/// Check a proof against a verified liabilities root and the engine's key.
pub fn verify(proof: &HealthProof, root: &Root, key: &VerifyingKey) -> Result<(), String> {
    let st = &proof.statement;
    if st.seq != root.seq || st.state_hash != root.state_hash || st.root != root.root {
        return Err("proof: seq, state hash or root differ from the signed root".into());
    }
    if st.markets.len() != proof.commitments.markets.len() {
        return Err("proof: one commitment set per market".into());
    }
    let signed = message(st, &proof.commitments);
    key.verify(&signed, &proof.engine_sig)
        .map_err(|_| "proof: the engine's signature over the statement and commitments does not verify".to_string())?;
    let point = |c: &CompressedRistretto, what: &str| {
        c.decompress().ok_or_else(|| format!("proof: {what} is not a valid point"))
    };
    let mut margin = point(&proof.commitments.collateral, "collateral")?;
    for (market, (l, s, k, xs)) in st.markets.iter().zip(&proof.commitments.markets) {
        if xs.len() != market.tiers.len() {
            return Err(format!("proof: market {}: one bracket per tier", market.name));
        }
        let (l, s, k) = (point(l, "long")?, point(s, "short")?, point(k, "cost")?);
        let xs: Vec<RistrettoPoint> = xs.iter().map(|x| point(x, "bracket")).collect::<Result<_, _>>()?;
        let exposure = if market.notional_basis { scalar(i128::from(market.mark_raw)) * (l + s) } else { l + s };
        if xs.iter().sum::<RistrettoPoint>() != exposure {
            return Err(format!("proof: market {}: the brackets do not add up to the position", market.name));
        }
        let fine = scalar(FINE_PER_QUOTE);
        margin += fine * scalar(i128::from(market.mark_raw)) * (l - s) - fine * k;
        for (i, x) in xs.iter().enumerate() {
            margin -= scalar(market.coefficient(i)) * x;
        }
    }
    let limbs =
        point(&proof.margin_lo, "margin_lo")? + Scalar::from(1u128 << 64) * point(&proof.margin_hi, "margin_hi")?;
    if limbs != margin {
        return Err("proof: the margin commitment is not equity - MM' of the committed values".into());
    }
    let commitments = range_commitments(st, &proof.commitments, [proof.margin_lo, proof.margin_hi])?;
    let bp_gens = generators(commitments.len());
    let mut transcript = transcript(&signed);
    proof
        .range_proof
        .verify_multiple(&bp_gens, &PedersenGens::default(), &mut transcript, &commitments, RANGE_BITS)
        .map_err(|_| "proof: the range proof does not verify (a value is out of range: not healthy)".to_string())
}

// ---- the proof file ----

fn point_hex(c: &CompressedRistretto) -> String {
    hex::encode(c.as_bytes())
}

impl HealthProof {
    pub fn to_json(&self) -> String {
        let st = &self.statement;
        let markets: Vec<String> = st
            .markets
            .iter()
            .zip(&self.commitments.markets)
            .map(|(m, (l, s, k, xs))| {
                let tiers: Vec<String> = m.tiers.iter().map(|(f, r)| format!("[\"{f}\",\"{r}\"]")).collect();
                let xs: Vec<String> = xs.iter().map(|x| format!("\"{}\"", point_hex(x))).collect();
                format!(
                    "{{\"name\":{},\"mark_raw\":\"{}\",\"basis\":\"{}\",\"tiers\":[{}],\"long\":\"{}\",\"short\":\"{}\",\"cost\":\"{}\",\"brackets\":[{}]}}",
                    serde_json::Value::String(m.name.clone()),
                    m.mark_raw,
                    if m.notional_basis { "notional" } else { "size" },
                    tiers.join(","),
                    point_hex(l),
                    point_hex(s),
                    point_hex(k),
                    xs.join(",")
                )
            })
            .collect();
        format!(
            "{{\"version\":1,\"seq\":{},\"state_hash\":\"{}\",\"root\":\"{}\",\"leaf\":\"{}\",\"markets\":[{}],\"collateral\":\"{}\",\"margin_lo\":\"{}\",\"margin_hi\":\"{}\",\"engine_sig\":\"{}\",\"range_proof\":\"{}\"}}\n",
            st.seq,
            hex::encode(st.state_hash),
            hex::encode(st.root),
            hex::encode(st.leaf),
            markets.join(","),
            point_hex(&self.commitments.collateral),
            point_hex(&self.margin_lo),
            point_hex(&self.margin_hi),
            hex::encode(self.engine_sig.to_bytes()),
            hex::encode(self.range_proof.to_bytes())
        )
    }

    /// Parse a proof file; it must be byte for byte what [`HealthProof::to_json`] writes.
    pub fn from_json(text: &str) -> Result<HealthProof, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("proof: not JSON: {e}"))?;
        let get = |v: &serde_json::Value, name: &str| -> Result<serde_json::Value, String> {
            v.get(name).cloned().ok_or_else(|| format!("proof: field `{name}` is missing"))
        };
        let string = |v: &serde_json::Value, name: &str| -> Result<String, String> {
            get(v, name)?.as_str().map(str::to_string).ok_or_else(|| format!("proof: `{name}` is not a string"))
        };
        let point = |text: &str, name: &str| -> Result<CompressedRistretto, String> {
            Ok(CompressedRistretto(hex32(text, &format!("proof: `{name}`"))?))
        };
        if get(&value, "version")?.as_u64() != Some(1) {
            return Err("proof: `version` is not 1".into());
        }
        let list = get(&value, "markets")?;
        let list = list.as_array().ok_or("proof: `markets` is not a list")?;
        if list.len() > MAX_VALUES {
            return Err("proof: too many markets".into());
        }
        let (mut markets, mut committed) = (Vec::new(), Vec::new());
        for m in list {
            let number = |name: &str| -> Result<i128, String> {
                string(m, name)?.parse().map_err(|_| format!("proof: `{name}` is not an integer"))
            };
            let tiers = get(m, "tiers")?;
            let tiers = tiers.as_array().ok_or("proof: `tiers` is not a list")?;
            let mut parsed = Vec::new();
            for t in tiers.iter().take(MAX_VALUES) {
                let pair = |i: usize| t.get(i).and_then(|v| v.as_str()).and_then(|s| s.parse::<i128>().ok());
                let (Some(from), Some(rate)) = (pair(0), pair(1)) else {
                    return Err("proof: a tier is not [from, rate]".into());
                };
                parsed.push((from, i64::try_from(rate).map_err(|_| "proof: a rate does not fit")?));
            }
            let brackets = get(m, "brackets")?;
            let brackets = brackets.as_array().ok_or("proof: `brackets` is not a list")?;
            let xs = brackets
                .iter()
                .take(MAX_VALUES)
                .map(|b| point(b.as_str().unwrap_or(""), "brackets"))
                .collect::<Result<Vec<_>, _>>()?;
            markets.push(PublicMarket {
                name: string(m, "name")?,
                mark_raw: i64::try_from(number("mark_raw")?).map_err(|_| "proof: `mark_raw` does not fit")?,
                notional_basis: string(m, "basis")? == "notional",
                tiers: parsed,
            });
            committed.push((
                point(&string(m, "long")?, "long")?,
                point(&string(m, "short")?, "short")?,
                point(&string(m, "cost")?, "cost")?,
                xs,
            ));
        }
        let statement = Statement {
            seq: get(&value, "seq")?.as_u64().ok_or("proof: `seq` is not a count")?,
            state_hash: hex32(&string(&value, "state_hash")?, "proof: `state_hash`")?,
            root: hex32(&string(&value, "root")?, "proof: `root`")?,
            leaf: hex32(&string(&value, "leaf")?, "proof: `leaf`")?,
            markets,
        };
        let commitments =
            Commitments { collateral: point(&string(&value, "collateral")?, "collateral")?, markets: committed };
        let sig = strict_hex(&string(&value, "engine_sig")?).ok_or("proof: `engine_sig` is not lowercase hex")?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| "proof: `engine_sig` is not 64 bytes".to_string())?;
        let range = strict_hex(&string(&value, "range_proof")?).ok_or("proof: `range_proof` is not lowercase hex")?;
        let range_proof = RangeProof::from_bytes(&range).map_err(|e| format!("proof: `range_proof`: {e}"))?;
        let proof = HealthProof {
            statement,
            commitments,
            engine_sig: Signature::from_bytes(&sig),
            margin_lo: point(&string(&value, "margin_lo")?, "margin_lo")?,
            margin_hi: point(&string(&value, "margin_hi")?, "margin_hi")?,
            range_proof,
        };
        if proof.to_json().trim_end() != text.trim_end() {
            return Err("proof: the fields parse but the bytes differ from the canonical proof file".into());
        }
        Ok(proof)
    }
}

/// How many 64-bit values the aggregated range proof of `statement` covers (padded to a power of
/// two): per market the long and short sizes, every bracket and every bounded bracket's
/// remainder, then the margin's two limbs.
pub fn range_values(statement: &Statement) -> usize {
    let per_market: usize = statement.markets.iter().map(|m| 2 + m.tiers.len() + m.tiers.len().saturating_sub(1)).sum();
    (per_market + 2).next_power_of_two()
}
