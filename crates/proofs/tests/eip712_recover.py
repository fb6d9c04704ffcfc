#!/usr/bin/env python3
"""Recover the signer of every EIP-712 order in a solvent effects file with eth-account, as an
EVM contract would with ecrecover. usage: eip712_recover.py EFFECTS -> prints the one address."""
import json
import sys

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

ORDER = [("kind", "string"), ("account", "string"), ("market", "string"), ("size", "int256"),
         ("price", "int256"), ("seq", "uint256"), ("stateHash", "bytes32"), ("chainHash", "bytes32"),
         ("effectHash", "bytes32")]
# type -> (account field, size field, market field)
SIGNED = {"liquidation": ("account", "closed_size", "market"), "adl": ("account", "size", "market"),
          "auction_fill": ("bidder", "size", "market"), "socialized_loss": ("bankrupt", None, None),
          "collateral_conversion": ("account", "size", "asset"), "collateral_fill": ("bidder", "size", "asset")}


def raw(text):  # Size and Price: 8 decimals, exactly
    whole, _, frac = text.lstrip("-").partition(".")
    value = int(whole) * 10**8 + int((frac + "0" * 8)[:8] or 0)
    return -value if text.startswith("-") else value


def main(path, encodings_path):
    encodings = [bytes.fromhex(line.strip()) for line in open(encodings_path)]
    addresses, n = set(), 0
    for line in open(path):
        e = json.loads(line)
        if e["type"] not in SIGNED:
            continue
        who, size, market = SIGNED[e["type"]]
        message = {
            "kind": e["type"], "account": e[who], "market": e[market] if market else "",
            "size": raw(e[size]) if size else 0, "price": raw(e["price"]) if size else 0, "seq": e["seq"],
            "stateHash": bytes.fromhex(e["state_hash"]), "chainHash": bytes.fromhex(e["chain"]),
            "effectHash": keccak(encodings[n]),
        }
        n += 1
        typed = {
            "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}],
                      "Order": [{"name": k, "type": t} for k, t in ORDER]},
            "primaryType": "Order", "domain": {"name": "solvent", "version": "1"}, "message": message,
        }
        addresses.add(Account.recover_message(encode_typed_data(full_message=typed),
                                              signature=bytes.fromhex(e["eip712_sig"])))
    print(" ".join(sorted(addresses)), n)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
