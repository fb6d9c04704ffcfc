//! `solvent keygen`, `solvent sign`, `solvent verify`: thin wrappers over solvent-proofs.

use crate::replay::load_config;
use solvent_proofs::{keys, liabilities, signing, verify};
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
    Ok(())
}

/// `solvent sign`: replay and write the signed effects file.
pub fn sign(config: Option<&Path>, events: &Path, key: Option<&Path>, out: &Path) -> Result<(), String> {
    let config = load_config(config)?;
    let key = keys::load_signing_key(key)?;
    let events = read(events, "events")?;
    let file = std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut writer = BufWriter::new(file);
    let summary = signing::sign_events(&config, &events, &key, &mut writer)?;
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
    let summary = verify::verify_effects(&config, &read(&events, "events")?, &read(&effects, "effects")?, &key)
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
}

pub fn prove(what: &ProveWhat) -> Result<(), String> {
    let ProveWhat::Liabilities { state, out, key } = what;
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

/// `solvent verify inclusion ...`.
pub fn verify_proof(what: &VerifyWhat) -> Result<(), String> {
    let VerifyWhat::Inclusion { proof, root, pubkey } = what;
    let key = keys::load_verifying_key(pubkey)?;
    let text = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let root_statement =
        liabilities::Root::from_json_verified(&text(root)?, &key).map_err(|e| format!("{}: {e}", root.display()))?;
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
