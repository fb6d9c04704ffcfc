#!/usr/bin/env python3
"""Check the signed orders of a solvent effects file with a stock ed25519 library.

usage: verify_orders.py EFFECTS PUBKEY
EFFECTS: the file `solvent sign` writes; PUBKEY: the engine's public key file (64 hex digits).
Rebuilds each signed message from the line's own fields (docs/proofs.md, "Signed orders") and
checks it with the `cryptography` package. Exit 0: every order verifies; 1: names the line.
"""
import decimal
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

decimal.getcontext().prec = 80


def fixed(text, decimals, width):
    scaled = decimal.Decimal(text).scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text} has more than {decimals} decimals")
    return int(scaled).to_bytes(width, "little", signed=True)


def string(v):
    return len(v.encode()).to_bytes(8, "little") + v.encode()


def size(v):  # Size and Price: i64, 8 decimals
    return fixed(v, 8, 8)


def quote(v):  # Quote: i128, 16 decimals
    return fixed(v, 16, 16)


def count(v):
    return v.to_bytes(8, "little")


def flag(v):
    return bytes([1 if v else 0])


def optional(encode):  # absent (None): byte 0; present: byte 1 and the value
    return lambda v: bytes([0]) if v is None else bytes([1]) + encode(v)


FIELDS = {
    "liquidation": [("account", string), ("market", string), ("closed_size", size), ("price", size),
                    ("penalty", quote), ("full", flag), ("equity_before", quote),
                    ("maintenance_margin_before", quote), ("equity_after", quote),
                    ("maintenance_margin_after", quote)],
    "adl": [("account", string), ("counterparty", string), ("market", string), ("size", size),
            ("price", size), ("rank_score", string)],
    "socialized_loss": [("amount", quote), ("accounts", count), ("bankrupt", string)],
    "auction_fill": [("auction", string), ("market", string), ("bidder", string), ("size", size),
                     ("price", size), ("remaining", size), ("inventory_pnl", quote),
                     ("rebate", optional(quote))],
    "collateral_conversion": [("account", string), ("asset", string), ("reason", string),
                              ("size", size), ("price", size), ("proceeds", quote),
                              ("holdings", size)],
    "collateral_fill": [("asset", string), ("bidder", string), ("size", size), ("price", size),
                        ("cost", quote), ("realized_pnl", quote), ("remaining", size)],
}


def message(e):
    encoding = bytes([1]) + string(e["type"]) + count(e["seq"]) + count(e["ts"])
    for name, encode in FIELDS[e["type"]]:
        encoding += encode(e.get(name))
    return b"solvent-order-v1" + bytes.fromhex(e["state_hash"]) + bytes.fromhex(e["chain"]) + encoding


def main(effects_path, pubkey_path):
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(open(pubkey_path).read().strip()))
    checked = 0
    for number, line in enumerate(open(effects_path, encoding="utf-8"), start=1):
        try:
            effect = json.loads(line)
            if effect["type"] not in FIELDS:
                continue
            key.verify(bytes.fromhex(effect["sig"]), message(effect))
        except (InvalidSignature, ValueError, KeyError, TypeError) as error:
            print(f"line {number}: order does not verify ({type(error).__name__} {error})")
            return 1
        checked += 1
    print(f"ok: {checked} signed orders verify")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
