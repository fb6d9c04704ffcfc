//! Proof of liabilities: a Merkle-sum tree over the accounts' equity.
//!
//! - Leaf: `BLAKE3("solvent-pol-leaf-v1" || u64 name length || name || salt (32) || balance u128 LE)`
//!   with `balance = max(0, equity)` in raw settlement units (16 decimals). The salt is
//!   `BLAKE3-keyed(salt key, "solvent-pol-salt-v1" || seq u64 LE || name)`, given only to the
//!   account's owner, so a leaf reveals neither name nor balance.
//! - Node: `BLAKE3("solvent-pol-node-v1" || left hash || left sum u128 LE || right hash || right sum u128 LE)`,
//!   its sum `left + right`, added without wrapping (a sum that does not fit is refused by prover
//!   and verifier alike). Every balance and sum is unsigned, so no leaf or subtree can be negative
//!   and offset another account's balance: each checked path shows that the root's total is at
//!   least the account's balance plus every sibling sum on the way.
//! - Leaves are sorted by account name; a level with an odd count carries its last node up
//!   unchanged. A proof lists the siblings bottom-up with their side.
//! - Root statement, signed with ed25519: `"solvent-pol-root-v1" || seq u64 || state hash (32) ||
//!   accounts u64 || total u128 || root hash (32)`, all LE.

use crate::keys::{hex32, strict_hex};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

pub const LEAF_DOMAIN: &[u8] = b"solvent-pol-leaf-v1";
pub const NODE_DOMAIN: &[u8] = b"solvent-pol-node-v1";
pub const SALT_DOMAIN: &[u8] = b"solvent-pol-salt-v1";
pub const ROOT_DOMAIN: &[u8] = b"solvent-pol-root-v1";
/// Context of the BLAKE3 key derivation from the engine's secret key to the salt key.
pub const SALT_KEY_CONTEXT: &str = "solvent proof of liabilities salt key v1";
/// Levels above the leaves at most: 2^40 accounts.
pub const MAX_DEPTH: usize = 40;

/// A tree node: hash and the sum of the balances below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub hash: [u8; 32],
    pub sum: u128,
}

/// The salt key: derived from the engine's secret key, so the engine can give each owner its salt
/// again for any seq without storing them.
pub fn salt_key(engine_key: &SigningKey) -> [u8; 32] {
    blake3::derive_key(SALT_KEY_CONTEXT, &engine_key.to_bytes())
}

pub fn salt(salt_key: &[u8; 32], seq: u64, name: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(salt_key);
    hasher.update(SALT_DOMAIN);
    hasher.update(&seq.to_le_bytes());
    hasher.update(name.as_bytes());
    *hasher.finalize().as_bytes()
}

pub fn leaf(name: &str, salt: &[u8; 32], balance: u128) -> Node {
    let mut hasher = blake3::Hasher::new();
    hasher.update(LEAF_DOMAIN);
    hasher.update(&(name.len() as u64).to_le_bytes());
    hasher.update(name.as_bytes());
    hasher.update(salt);
    hasher.update(&balance.to_le_bytes());
    Node { hash: *hasher.finalize().as_bytes(), sum: balance }
}

/// The parent of two nodes; `None` when the sum does not fit in 128 bits.
pub fn parent(left: &Node, right: &Node) -> Option<Node> {
    let sum = left.sum.checked_add(right.sum)?;
    let mut buffer = [0u8; 19 + 96];
    buffer[..19].copy_from_slice(NODE_DOMAIN);
    buffer[19..51].copy_from_slice(&left.hash);
    buffer[51..67].copy_from_slice(&left.sum.to_le_bytes());
    buffer[67..99].copy_from_slice(&right.hash);
    buffer[99..115].copy_from_slice(&right.sum.to_le_bytes());
    Some(Node { hash: *blake3::hash(&buffer).as_bytes(), sum })
}

/// Every level of the tree, leaves first.
pub struct Tree {
    levels: Vec<Vec<Node>>,
}

impl Tree {
    pub fn build(leaves: Vec<Node>) -> Result<Tree, String> {
        if leaves.is_empty() {
            return Err("no accounts: nothing to prove".into());
        }
        let mut levels = vec![leaves];
        while levels.last().map_or(0, Vec::len) > 1 {
            assert!(levels.len() <= MAX_DEPTH, "at most 2^{MAX_DEPTH} leaves");
            let below = levels.last().expect("non-empty");
            let mut above = Vec::with_capacity(below.len().div_ceil(2));
            for pair in below.chunks(2) {
                above.push(match pair {
                    [left, right] => parent(left, right).ok_or("the total of the balances does not fit in 128 bits")?,
                    [single] => *single,
                    _ => unreachable!("chunks of two"),
                });
            }
            levels.push(above);
        }
        Ok(Tree { levels })
    }

    pub fn root(&self) -> Node {
        self.levels.last().expect("at least the leaf level")[0]
    }

    pub fn leaves(&self) -> usize {
        self.levels[0].len()
    }

    /// The siblings of leaf `index`, bottom-up: (sibling, sibling is on the left).
    pub fn path(&self, mut index: usize) -> Vec<(Node, bool)> {
        let mut path = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = index ^ 1;
            if sibling < level.len() {
                path.push((level[sibling], sibling < index));
            }
            index /= 2;
        }
        path
    }
}

/// Fold a path from `leaf` (at `index` of `count` leaves) to the root; checks that the path has
/// exactly the shape the index and count imply.
pub fn fold_path(leaf: Node, mut index: u64, mut count: u64, path: &[(Node, bool)]) -> Result<Node, String> {
    if index >= count {
        return Err(format!("index {index} is not below the account count {count}"));
    }
    let mut node = leaf;
    let mut steps = path.iter();
    let mut level = 0;
    while count > 1 {
        let sibling = index ^ 1;
        if sibling < count {
            let Some((other, on_left)) = steps.next() else {
                return Err(format!("path: level {level} has no sibling, the tree has one there"));
            };
            if *on_left != (sibling < index) {
                return Err(format!("path: level {level}: the sibling is on the wrong side"));
            }
            let (left, right) = if *on_left { (other, &node) } else { (&node, other) };
            node = parent(left, right).ok_or_else(|| format!("path: level {level}: the sum overflows"))?;
        }
        index /= 2;
        count = count.div_ceil(2);
        level += 1;
    }
    if steps.next().is_some() {
        return Err("path: more siblings than the tree has levels".into());
    }
    Ok(node)
}

/// The signed root statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub seq: u64,
    pub state_hash: [u8; 32],
    pub accounts: u64,
    pub total: u128,
    pub root: [u8; 32],
}

impl Root {
    pub fn message(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(19 + 8 + 32 + 8 + 16 + 32);
        bytes.extend_from_slice(ROOT_DOMAIN);
        bytes.extend_from_slice(&self.seq.to_le_bytes());
        bytes.extend_from_slice(&self.state_hash);
        bytes.extend_from_slice(&self.accounts.to_le_bytes());
        bytes.extend_from_slice(&self.total.to_le_bytes());
        bytes.extend_from_slice(&self.root);
        bytes
    }

    /// The root file: the statement and its signature, one JSON object.
    pub fn to_json(&self, key: &SigningKey) -> String {
        let signature = key.sign(&self.message());
        format!("{}{}\"}}\n", self.to_json_unsigned(), hex::encode(signature.to_bytes()))
    }

    /// Parse a root file and check its signature; the file must be byte for byte what
    /// [`Root::to_json`] writes.
    pub fn from_json_verified(text: &str, key: &VerifyingKey) -> Result<Root, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("root: not JSON: {e}"))?;
        let field = |name: &str| value.get(name).ok_or_else(|| format!("root: field `{name}` is missing"));
        let string = |name: &str| field(name)?.as_str().ok_or_else(|| format!("root: `{name}` is not a string"));
        let number = |name: &str| field(name)?.as_u64().ok_or_else(|| format!("root: `{name}` is not a count"));
        if number("version")? != 1 {
            return Err("root: `version` is not 1".into());
        }
        let root = Root {
            seq: number("seq")?,
            state_hash: hex32(string("state_hash")?, "root: `state_hash`")?,
            accounts: number("accounts")?,
            total: parse_u128(string("total_raw")?).ok_or("root: `total_raw` is not a canonical unsigned integer")?,
            root: hex32(string("root")?, "root: `root`")?,
        };
        let sig = strict_hex(string("sig")?).ok_or("root: `sig` is not lowercase hex")?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| "root: `sig` is not 64 bytes".to_string())?;
        key.verify(&root.message(), &Signature::from_bytes(&sig))
            .map_err(|_| "root: the signature does not verify under the public key".to_string())?;
        let canonical_head = root.to_json_unsigned();
        if !text.starts_with(&canonical_head) || text.trim_end() != format!("{canonical_head}{}\"}}", hex::encode(sig))
        {
            return Err("root: the fields verify but the bytes differ from the canonical root file".into());
        }
        Ok(root)
    }

    fn to_json_unsigned(&self) -> String {
        format!(
            "{{\"version\":1,\"seq\":{},\"state_hash\":\"{}\",\"accounts\":{},\"total_raw\":\"{}\",\"root\":\"{}\",\"sig\":\"",
            self.seq,
            hex::encode(self.state_hash),
            self.accounts,
            self.total,
            hex::encode(self.root)
        )
    }
}

/// A decimal u128 in canonical form (no sign, no leading zero).
pub fn parse_u128(text: &str) -> Option<u128> {
    let value: u128 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

/// One account's inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub account: String,
    pub salt: [u8; 32],
    pub balance: u128,
    pub index: u64,
    pub accounts: u64,
    pub path: Vec<(Node, bool)>,
}

impl Inclusion {
    pub fn to_json(&self) -> String {
        let path: Vec<String> = self
            .path
            .iter()
            .map(|(node, left)| {
                format!(
                    "{{\"side\":\"{}\",\"hash\":\"{}\",\"sum_raw\":\"{}\"}}",
                    if *left { "left" } else { "right" },
                    hex::encode(node.hash),
                    node.sum
                )
            })
            .collect();
        format!(
            "{{\"version\":1,\"account\":{},\"salt\":\"{}\",\"balance_raw\":\"{}\",\"index\":{},\"accounts\":{},\"path\":[{}]}}\n",
            serde_json::Value::String(self.account.clone()),
            hex::encode(self.salt),
            self.balance,
            self.index,
            self.accounts,
            path.join(",")
        )
    }

    /// Parse a proof file; it must be byte for byte what [`Inclusion::to_json`] writes.
    pub fn from_json(text: &str) -> Result<Inclusion, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("proof: not JSON: {e}"))?;
        let field = |name: &str| value.get(name).ok_or_else(|| format!("proof: field `{name}` is missing"));
        let string = |name: &str| field(name)?.as_str().ok_or_else(|| format!("proof: `{name}` is not a string"));
        let number = |name: &str| field(name)?.as_u64().ok_or_else(|| format!("proof: `{name}` is not a count"));
        if number("version")? != 1 {
            return Err("proof: `version` is not 1".into());
        }
        let steps = field("path")?.as_array().ok_or("proof: `path` is not a list")?;
        if steps.len() > MAX_DEPTH {
            return Err(format!("proof: `path` has more than {MAX_DEPTH} steps"));
        }
        let mut path = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let get = |name: &str| {
                step.get(name)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| format!("proof: path step {i}: `{name}` is missing"))
            };
            let left = match get("side")? {
                "left" => true,
                "right" => false,
                other => return Err(format!("proof: path step {i}: side {other:?} is neither left nor right")),
            };
            let hash = hex32(get("hash")?, &format!("proof: path step {i}: `hash`"))?;
            let sum = parse_u128(get("sum_raw")?)
                .ok_or_else(|| format!("proof: path step {i}: `sum_raw` is not canonical"))?;
            path.push((Node { hash, sum }, left));
        }
        let proof = Inclusion {
            account: string("account")?.to_string(),
            salt: hex32(string("salt")?, "proof: `salt`")?,
            balance: parse_u128(string("balance_raw")?)
                .ok_or("proof: `balance_raw` is not a canonical unsigned integer")?,
            index: number("index")?,
            accounts: number("accounts")?,
            path,
        };
        if proof.to_json().trim_end() != text.trim_end() {
            return Err("proof: the fields parse but the bytes differ from the canonical proof file".into());
        }
        Ok(proof)
    }

    /// Check this proof against a verified root.
    pub fn verify(&self, root: &Root) -> Result<(), String> {
        if self.accounts != root.accounts {
            return Err(format!("proof is for a tree of {} accounts, the root has {}", self.accounts, root.accounts));
        }
        let leaf = leaf(&self.account, &self.salt, self.balance);
        let top = fold_path(leaf, self.index, self.accounts, &self.path)?;
        if top.hash != root.root {
            return Err("the path does not lead to the signed root hash".into());
        }
        if top.sum != root.total {
            return Err(format!("the path sums to {}, the signed total is {}", top.sum, root.total));
        }
        Ok(())
    }
}

/// What a proof of liabilities is made from: one balance per account at one state.
pub struct Statement {
    pub seq: u64,
    pub state_hash: [u8; 32],
    /// (account, balance in raw settlement units), sorted by account name.
    pub balances: Vec<(String, u128)>,
}

/// The balances of a `solvent replay --state-out` dump: each account's `equity`, negative ones
/// counted as zero (an account that owes the venue is no liability of it).
pub fn statement_from_dump(text: &str) -> Result<Statement, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("state: not JSON: {e}"))?;
    let seq = value.get("seq").and_then(|v| v.as_u64()).ok_or("state: no `seq`")?;
    let hash = value.get("state_hash").and_then(|v| v.as_str()).ok_or("state: no `state_hash`")?;
    let accounts = value.get("accounts").and_then(|v| v.as_object()).ok_or("state: no `accounts`")?;
    let mut balances = Vec::with_capacity(accounts.len());
    for (name, account) in accounts {
        let equity =
            account.get("equity").and_then(|v| v.as_str()).ok_or_else(|| format!("state: {name}: no `equity`"))?;
        let equity = solvent_core::Quote::parse(equity).map_err(|e| format!("state: {name}: equity: {e}"))?;
        balances.push((name.clone(), u128::try_from(equity.raw().max(0)).expect("non-negative")));
    }
    balances.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(Statement { seq, state_hash: hex32(hash, "state: `state_hash`")?, balances })
}

/// The tree, its root statement and every account's inclusion proof (in name order).
pub fn prove(statement: &Statement, engine_key: &SigningKey) -> Result<(Root, Tree, Vec<Inclusion>), String> {
    let proven = Proven::new(statement, engine_key)?;
    let proofs = (0..statement.balances.len()).map(|i| proven.inclusion(statement, i)).collect();
    Ok((proven.root, proven.tree, proofs))
}

/// A built tree with its salts, handing out inclusion proofs one at a time (a million of them
/// do not fit in memory at once).
pub struct Proven {
    pub root: Root,
    pub tree: Tree,
    salts: Vec<[u8; 32]>,
}

impl Proven {
    pub fn new(statement: &Statement, engine_key: &SigningKey) -> Result<Proven, String> {
        let key = salt_key(engine_key);
        let salts: Vec<[u8; 32]> = statement.balances.iter().map(|(name, _)| salt(&key, statement.seq, name)).collect();
        let leaves =
            statement.balances.iter().zip(&salts).map(|((name, balance), salt)| leaf(name, salt, *balance)).collect();
        let tree = Tree::build(leaves)?;
        let top = tree.root();
        let root = Root {
            seq: statement.seq,
            state_hash: statement.state_hash,
            accounts: tree.leaves() as u64,
            total: top.sum,
            root: top.hash,
        };
        Ok(Proven { root, tree, salts })
    }

    /// The proof of account `index` (name order) of `statement`, the statement this was built from.
    pub fn inclusion(&self, statement: &Statement, index: usize) -> Inclusion {
        let (account, balance) = &statement.balances[index];
        Inclusion {
            account: account.clone(),
            salt: self.salts[index],
            balance: *balance,
            index: index as u64,
            accounts: self.root.accounts,
            path: self.tree.path(index),
        }
    }
}

/// A file name for an account's proof: the id with every byte outside `[A-Za-z0-9_-@]` as `%XX`.
pub fn proof_file_name(account: &str) -> String {
    let mut name = String::with_capacity(account.len() + 5);
    for byte in account.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'@') {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name.push_str(".json");
    name
}

/// The balances of an engine's state, as [`statement_from_dump`] reads them from its dump.
pub fn statement_from_engine(engine: &solvent_core::Engine) -> Result<Statement, String> {
    let mut balances = Vec::with_capacity(engine.accounts().len());
    for account in engine.accounts() {
        let health = engine.health(&account.name).map_err(|e| format!("{}: {e}", account.name))?;
        balances.push((account.name.to_string(), u128::try_from(health.equity.raw().max(0)).expect("non-negative")));
    }
    balances.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(Statement { seq: engine.last_seq(), state_hash: hex32(&engine.state_hash(), "state hash")?, balances })
}

impl Proven {
    /// The leaf of account `index` (name order).
    pub fn leaf_of(&self, statement: &Statement, index: usize) -> Node {
        let (account, balance) = &statement.balances[index];
        leaf(account, &self.salts[index], *balance)
    }
}

/// Solvency against published reserves: the signed total of liabilities does not exceed them.
/// `reserves` is a settlement amount in decimal (`"1250000.5"`).
pub fn check_solvency(root: &Root, reserves: &str) -> Result<u128, String> {
    let reserves = solvent_core::Quote::parse(reserves).map_err(|e| format!("reserves: {e}"))?;
    let reserves = u128::try_from(reserves.raw()).map_err(|_| "reserves: negative".to_string())?;
    if root.total > reserves {
        return Err(format!(
            "insolvent at seq {}: liabilities {} exceed reserves {} (raw units, 10^-16)",
            root.seq, root.total, reserves
        ));
    }
    Ok(reserves - root.total)
}
