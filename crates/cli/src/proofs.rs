//! `solvent keygen`, `solvent sign`, `solvent verify`: thin wrappers over solvent-proofs.

use crate::replay::load_config;
use solvent_proofs::{health, keys, liabilities, signing, verify};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What `solvent verify` checks.
#[derive(clap::Subcommand)]
pub enum VerifyWhat {
    /// An inclusion proof of one account against a signed liabilities root.
    Inclusion {
        #[arg(long)]
        proof: PathBuf,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        pubkey: PathBuf,
    },
    /// Solvency: the signed total of liabilities does not exceed the published reserves.
    Solvency {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        pubkey: PathBuf,
        /// Published reserves in the settlement asset (decimal).
        #[arg(long)]
        reserves: String,
    },
    /// A zero-knowledge margin health proof against a signed liabilities root.
    Health {
        #[arg(long)]
        proof: PathBuf,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        pubkey: PathBuf,
    },
}

/// The arguments of `solvent verify` without a subcommand: an effects file against its events.
#[derive(clap::Args)]
pub struct VerifyEffectsArgs {
    /// The event file the engine applied.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// The signed effects file (`solvent sign`).
    #[arg(long)]
    pub effects: Option<PathBuf>,
    /// The engine's public key (64 hex digits, `solvent keygen`).
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// The engine configuration; the embedded default when omitted.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also check every order's EIP-712 signature against this EVM address (0x + 40 hex digits).
    #[arg(long)]
    pub eip712_address: Option<String>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// `solvent keygen --out PREFIX`: PREFIX.key (secret, mode 0600) and PREFIX.pub.
pub fn keygen(prefix: &Path) -> Result<(), String> {
    let key = keys::generate()?;
    let secret = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    keys::write_pair(&key, &secret, &public)?;
    println!("secret key {} (keep it out of the repository), public key {}", secret.display(), public.display());
    let evm = solvent_proofs::eip712::key(&key)?;
    println!("EIP-712 order address 0x{}", hex::encode(solvent_proofs::eip712::address(evm.verifying_key())));
    Ok(())
}

/// `solvent sign`: replay and write the signed effects file.
pub fn sign(config: Option<&Path>, events: &Path, key: Option<&Path>, out: &Path, eip712: bool) -> Result<(), String> {
    let config = load_config(config)?;
    let key = keys::load_signing_key(key)?;
    let events = read(events, "events")?;
    let file = std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut writer = BufWriter::new(file);
    let evm = if eip712 { Some(solvent_proofs::eip712::key(&key)?) } else { None };
    let summary = signing::sign_events_with(&config, &events, &key, evm.as_ref(), &mut writer)?;
    writer.flush().map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("lines {} effects {} signed {}", summary.lines, summary.effects, summary.signed);
    Ok(())
}

/// `solvent verify --events J --effects E --pubkey K [--config C]`.
pub fn verify_effects(args: &VerifyEffectsArgs) -> Result<(), String> {
    let need = |p: &Option<PathBuf>, flag: &str| p.clone().ok_or_else(|| format!("solvent verify needs --{flag}"));
    let (events, effects, pubkey) =
        (need(&args.events, "events")?, need(&args.effects, "effects")?, need(&args.pubkey, "pubkey")?);
    let config = load_config(args.config.as_deref())?;
    let key = keys::load_verifying_key(&pubkey)?;
    let address = match &args.eip712_address {
        None => None,
        Some(text) => {
            let bytes = text.strip_prefix("0x").and_then(keys::strict_hex).filter(|b| b.len() == 20);
            Some(
                <[u8; 20]>::try_from(bytes.ok_or("--eip712-address: expected 0x and 40 lowercase hex digits")?)
                    .expect("20"),
            )
        }
    };
    let summary =
        verify::verify_effects_with(&config, &read(&events, "events")?, &read(&effects, "effects")?, &key, address)
            .map_err(|failure| format!("{}: {failure}", effects.display()))?;
    println!("ok: {} events, {} effects, {} signatures verified", summary.events, summary.effects, summary.signatures);
    Ok(())
}

/// What `solvent prove` makes.
#[derive(clap::Subcommand)]
pub enum ProveWhat {
    /// The signed Merkle-sum root of all accounts' equity and one inclusion proof per account:
    /// DIR/root.json and DIR/inclusion/<account>.json.
    Liabilities {
        /// A `solvent replay --state-out` dump.
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The engine's secret key file; without it, the SOLVENT_ENGINE_KEY environment variable.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// A zero-knowledge proof that an account is above maintenance margin at the public marks
    /// and tier tables, bound to the signed liabilities root of the same state.
    Health {
        /// The state: a `solvent serve` snapshot file, or an event journal (JSON Lines) to replay.
        #[arg(long)]
        state: PathBuf,
        /// The engine configuration of a journal; the embedded default when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        account: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

pub fn prove(what: &ProveWhat) -> Result<(), String> {
    let (state, out, key) = match what {
        ProveWhat::Liabilities { state, out, key } => (state, out, key),
        ProveWhat::Health { state, config, account, out, key } => {
            return prove_health(state, config.as_deref(), account, out, key.as_deref())
        }
    };
    let key = keys::load_signing_key(key.as_deref())?;
    let text = std::fs::read_to_string(state).map_err(|e| format!("cannot read state {}: {e}", state.display()))?;
    let statement = liabilities::statement_from_dump(&text)?;
    let proven = liabilities::Proven::new(&statement, &key)?;
    let root = &proven.root;
    let dir = out.join("inclusion");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(out.join("root.json"), root.to_json(&key))?;
    for index in 0..statement.balances.len() {
        let proof = proven.inclusion(&statement, index);
        write(dir.join(liabilities::proof_file_name(&proof.account)), proof.to_json())?;
    }
    println!(
        "root {} over {} accounts at seq {}, total {} (raw units); proofs in {}",
        hex::encode(root.root),
        root.accounts,
        root.seq,
        root.total,
        dir.display()
    );
    Ok(())
}

/// The engine of a snapshot file (by its magic) or of a replayed journal.
fn load_engine(state: &Path, config: Option<&Path>) -> Result<solvent_core::Engine, String> {
    let bytes = read(state, "state")?;
    if bytes.starts_with(&solvent_node::snapshot::SNAPSHOT_MAGIC) {
        let loaded = solvent_node::snapshot::decode(state, &bytes).map_err(|e| e.to_string())?;
        return Ok(loaded.engine);
    }
    let mut engine = solvent_core::Engine::new(&load_config(config)?);
    let mut effects = Vec::new();
    for (i, line) in signing::lines(&bytes).enumerate() {
        effects.clear();
        engine.apply_line(i as u64 + 1, line, &mut effects);
    }
    Ok(engine)
}

fn prove_health(
    state: &Path,
    config: Option<&Path>,
    account: &str,
    out: &Path,
    key: Option<&Path>,
) -> Result<(), String> {
    let key = keys::load_signing_key(key)?;
    let engine = load_engine(state, config)?;
    let statement = liabilities::statement_from_engine(&engine)?;
    let proven = liabilities::Proven::new(&statement, &key)?;
    let index = statement
        .balances
        .binary_search_by(|(name, _)| name.as_str().cmp(account))
        .map_err(|_| format!("no account {account:?} in the state"))?;
    let leaf = proven.leaf_of(&statement, index).hash;
    let started = std::time::Instant::now();
    let proof = health::prove(&engine, account, &proven.root, leaf, &key)?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    std::fs::write(out, proof.to_json()).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "health proof for {account} at seq {} ({} markets, {} bytes of range proof, {elapsed_ms:.1} ms) in {}",
        proven.root.seq,
        proof.statement.markets.len(),
        proof.range_proof.to_bytes().len(),
        out.display()
    );
    Ok(())
}

/// `solvent verify inclusion ...` and `solvent verify health ...`.
pub fn verify_proof(what: &VerifyWhat) -> Result<(), String> {
    if let VerifyWhat::Solvency { root, pubkey, reserves } = what {
        let key = keys::load_verifying_key(pubkey)?;
        let text = std::fs::read_to_string(root).map_err(|e| format!("cannot read {}: {e}", root.display()))?;
        let statement =
            liabilities::Root::from_json_verified(&text, &key).map_err(|e| format!("{}: {e}", root.display()))?;
        let surplus = liabilities::check_solvency(&statement, reserves)?;
        println!(
            "ok: solvent at seq {}: liabilities {} of {} accounts, reserves exceed them by {surplus} (raw units, 10^-16)",
            statement.seq, statement.total, statement.accounts
        );
        return Ok(());
    }
    let (proof, root, pubkey) = match what {
        VerifyWhat::Solvency { .. } => unreachable!("handled above"),
        VerifyWhat::Inclusion { proof, root, pubkey } | VerifyWhat::Health { proof, root, pubkey } => {
            (proof, root, pubkey)
        }
    };
    let key = keys::load_verifying_key(pubkey)?;
    let text = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let root_statement =
        liabilities::Root::from_json_verified(&text(root)?, &key).map_err(|e| format!("{}: {e}", root.display()))?;
    if let VerifyWhat::Health { .. } = what {
        let parsed = health::HealthProof::from_json(&text(proof)?).map_err(|e| format!("{}: {e}", proof.display()))?;
        health::verify(&parsed, &root_statement, &key).map_err(|e| format!("{}: {e}", proof.display()))?;
        println!(
            "ok: the account of leaf {} is above maintenance margin at seq {} ({} markets at public marks)",
            hex::encode(parsed.statement.leaf),
            root_statement.seq,
            parsed.statement.markets.len()
        );
        return Ok(());
    }
    let inclusion =
        liabilities::Inclusion::from_json(&text(proof)?).map_err(|e| format!("{}: {e}", proof.display()))?;
    inclusion.verify(&root_statement).map_err(|e| format!("{}: {e}", proof.display()))?;
    println!(
        "ok: {} with balance {} (raw units) is counted in the root of {} accounts at seq {}, state hash {}",
        inclusion.account,
        inclusion.balance,
        root_statement.accounts,
        root_statement.seq,
        hex::encode(root_statement.state_hash)
    );
    Ok(())
}
