"""The engine from Python against `solvent replay` on the same files."""

import decimal
import json
import pathlib

import pytest

import solvent

from conftest import EXAMPLES

EXAMPLE_FILES = ["quickstart.jsonl", "black_thursday.jsonl"]

# Fields whose values are names or text, never amounts.
TEXT_FIELDS = {
    "type", "error", "message", "market", "source", "reason", "alert", "account", "counterparty",
    "bankrupt", "auction", "side", "bidder", "state_hash", "status", "id", "index_market", "chain",
    "token", "asset",
}


def plain(value):
    """Python objects back to the JSON the CLI writes: Decimal as its decimal string."""
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def check_amounts(python, cli, key=None):
    """Walk both trees side by side: every amount is a Decimal equal to the CLI's decimal
    string, there is no float anywhere, and text stays text. Returns the number of Decimals."""
    if isinstance(python, dict):
        assert isinstance(cli, dict) and set(python) == set(cli), key
        return sum(check_amounts(python[k], cli[k], k) for k in python)
    if isinstance(python, list):
        assert isinstance(cli, list) and len(python) == len(cli), key
        return sum(check_amounts(a, b, key) for a, b in zip(python, cli))
    assert not isinstance(python, float), f"{key}: float {python!r}"
    if isinstance(python, decimal.Decimal):
        assert isinstance(cli, str) and format(python, "f") == cli, (key, python, cli)
        return 1
    if isinstance(python, str):
        assert python == cli
        assert key in TEXT_FIELDS, f"{key}: {python!r} is a str but is not a text field"
    else:
        assert python == cli, key
    return 0


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_replay_matches_cli(name, cli_replay):
    cli = cli_replay(name)
    engine = solvent.Engine()
    result = engine.replay(EXAMPLES / name)
    assert result["state_hash"] == cli["state_hash"]
    assert engine.state_hash() == cli["state_hash"]
    assert len(engine.state_hash()) == 64 and int(engine.state_hash(), 16) >= 0
    for field in ("lines", "events", "rejected", "effect_count"):
        assert result[field] == cli[field], field
    assert sum(result["rejected_by_kind"].values()) == result["rejected"]
    assert len(result["effects"]) == result["effect_count"] == len(cli["effects"])
    assert [plain(e) for e in result["effects"]] == cli["effects"]
    for mine in result["effects"]:
        assert list(mine)[:3] == ["type", "seq", "ts"]
    assert engine.seq == cli["lines"]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_dump_matches_state_out(name, cli_replay):
    cli = cli_replay(name)
    engine = solvent.Engine()
    engine.replay(str(EXAMPLES / name))
    dump = engine.dump()
    assert plain(dump) == cli["state"]
    assert dump["state_hash"] == cli["state_hash"]
    assert check_amounts(dump, cli["state"]) > 20


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_amounts_are_decimal(name, cli_replay):
    cli = cli_replay(name)
    engine = solvent.Engine()
    effects = engine.replay(EXAMPLES / name)["effects"]
    assert check_amounts(effects, cli["effects"]) > 0
    if name == "black_thursday.jsonl":
        kinds = {e["type"] for e in effects}
        assert {"liquidation", "insurance", "auction_fill"} <= kinds
        fund = [e["balance"] for e in effects if e["type"] == "insurance"]
        assert fund and all(isinstance(b, decimal.Decimal) for b in fund)
        liquidations = [e for e in effects if e["type"] == "liquidation"]
        for field in ("closed_size", "price", "penalty", "equity_before", "maintenance_margin_after"):
            assert all(isinstance(e[field], decimal.Decimal) for e in liquidations), field


def test_apply_line_by_line_equals_replay(cli_replay):
    """Lines applied one at a time give the effects and state hash of the file's replay."""
    cli = cli_replay("black_thursday.jsonl")
    engine = solvent.Engine()
    effects = []
    for line in (EXAMPLES / "black_thursday.jsonl").read_text().split("\n")[:-1]:
        effects.extend(engine.apply(line, raise_on_reject=False))
    assert [plain(e) for e in effects] == cli["effects"]
    assert engine.state_hash() == cli["state_hash"]


QUICK = [
    '{"type":"clock","ts":1000}',
    *[f'{{"type":"price","ts":1000,"market":"BTC-PERP","source":"s{i}","price":"10000"}}' for i in range(1, 6)],
    '{"type":"deposit","ts":2000,"account":"1001","asset":"USDC","amount":"1000"}',
    '{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"1000000"}',
]


def started():
    engine = solvent.Engine()
    for line in QUICK:
        engine.apply(line)
    return engine


def test_refusal_raises_with_kind_and_changes_nothing():
    engine = started()
    before = engine.state_hash()
    trade = '{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"1001","seller":"bob","size":"50","price":"10000"}'
    with pytest.raises(solvent.EngineError) as caught:
        engine.apply(trade)
    error = caught.value
    assert isinstance(error, solvent.SolventError)
    assert error.kind == "insufficient_margin"
    assert "1001" in error.message and "initial margin" in error.message
    assert error.seq == len(QUICK) + 1
    assert error.effect == {"type": "rejected", "seq": error.seq, "ts": 3000, "error": "insufficient_margin",
                            "message": error.message}
    assert engine.state_hash() == before
    # Without raising, the refusal is the `rejected` effect the CLI prints.
    effects = engine.apply(trade, raise_on_reject=False)
    assert [e["type"] for e in effects] == ["rejected"] and effects[0]["error"] == "insufficient_margin"
    assert engine.state_hash() == before


@pytest.mark.parametrize(
    "line, kind",
    [
        ("not json", "invalid_json"),
        ('{"type":"deposit","ts":2500,"account":"bob","asset":"DOGE","amount":"1"}', "unknown_asset"),
        ('{"type":"trade","ts":2500,"market":"XYZ-PERP","buyer":"bob","seller":"1001","size":"1","price":"1"}',
         "unknown_market"),
        ('{"type":"clock","ts":10}', "time_backwards"),
        ('{"type":"withdraw","ts":2500,"account":"1001","asset":"USDC","amount":"5000"}', "insufficient_balance"),
        ('{"type":"price","ts":2500,"market":"BTC-PERP","source":"s9","price":"1"}', "unknown_source"),
        ('{"type":"deposit","ts":2500,"account":"bob","asset":"USDC","amount":"-1"}', "non_positive"),
    ],
)
def test_error_kinds(line, kind):
    engine = started()
    before = engine.state_hash()
    with pytest.raises(solvent.EngineError) as caught:
        engine.apply(line)
    assert caught.value.kind == kind
    assert engine.state_hash() == before


def test_names_stay_text_and_amounts_decimal():
    engine = started()
    effects = engine.apply(
        '{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"1001","seller":"bob","size":"0.5","price":"10000"}'
    )
    assert effects == []
    account = engine.dump()["accounts"]["1001"]
    assert account["collateral"] == {"USDC": decimal.Decimal("1000")}
    assert isinstance(account["equity"], decimal.Decimal)
    position = account["positions"]["BTC-PERP"]
    assert position["size"] == decimal.Decimal("0.5")
    assert position["entry_price"] == decimal.Decimal("10000")
    assert isinstance(position["liquidation_price"], decimal.Decimal)
    tiers = engine.dump()["markets"]["BTC-PERP"]["tiers"]
    assert all(isinstance(t["from"], decimal.Decimal) and isinstance(t["mm_rate"], decimal.Decimal) for t in tiers)


def test_apply_dict_and_bytes():
    engine = started()
    by_text = started()
    engine.apply({"type": "deposit", "ts": 2500, "account": "carol", "asset": "USDC", "amount": decimal.Decimal("12.5")})
    by_text.apply(b'{"type":"deposit","ts":2500,"account":"carol","asset":"USDC","amount":"12.5"}\n')
    assert engine.state_hash() == by_text.state_hash()
    assert engine.dump()["accounts"]["carol"]["collateral"]["USDC"] == decimal.Decimal("12.5")


def test_apply_refuses_several_lines_and_wrong_types():
    engine = solvent.Engine()
    with pytest.raises(ValueError):
        engine.apply('{"type":"clock","ts":1000}\n{"type":"clock","ts":2000}')
    with pytest.raises(TypeError):
        engine.apply(42)
    assert engine.seq == 0


def test_line_too_long_is_a_refusal():
    engine = solvent.Engine()
    with pytest.raises(solvent.EngineError) as caught:
        engine.apply("x" * (solvent.MAX_LINE_BYTES + 1))
    assert caught.value.kind == "line_too_long"


def test_config_text_path_and_default(tmp_path):
    default = solvent.Engine().state_hash()
    assert solvent.Engine(solvent.DEFAULT_CONFIG_TOML).state_hash() == default
    path = tmp_path / "config.toml"
    path.write_text(solvent.DEFAULT_CONFIG_TOML)
    assert solvent.Engine(path).state_hash() == default
    assert solvent.Engine(str(path)).state_hash() == default
    # The config given is the one used: with max_accounts = 1 a second account is refused.
    one = solvent.DEFAULT_CONFIG_TOML.replace("max_accounts = 10000000", "max_accounts = 1", 1)
    assert one != solvent.DEFAULT_CONFIG_TOML
    for engine, refused in ((solvent.Engine(one), True), (solvent.Engine(), False)):
        engine.apply('{"type":"deposit","ts":1,"account":"a","asset":"USDC","amount":"1"}')
        second = '{"type":"deposit","ts":1,"account":"b","asset":"USDC","amount":"1"}'
        if refused:
            with pytest.raises(solvent.EngineError) as caught:
                engine.apply(second)
            assert caught.value.kind == "too_many_accounts"
        else:
            engine.apply(second)


def test_bad_config_lists_problems(tmp_path):
    with pytest.raises(solvent.ConfigError) as caught:
        solvent.Engine('settlement_asset = 5\n[[markets]]\nname = "X"\nquorum = "three"\n')
    problems = caught.value.problems
    assert isinstance(caught.value, solvent.SolventError)
    assert len(problems) > 2
    assert any(p.startswith("settlement_asset") for p in problems)
    assert any("quorum" in p for p in problems)
    assert all(p in str(caught.value) for p in problems)
    with pytest.raises(solvent.ConfigError) as missing:
        solvent.Engine(tmp_path / "nope.toml")
    assert "cannot read config" in str(missing.value)
    with pytest.raises(TypeError):
        solvent.Engine(3.5)


def test_replay_missing_file():
    with pytest.raises(OSError):
        solvent.Engine().replay("/nonexistent/events.jsonl")


def test_replay_continues_sequence(tmp_path):
    """Two halves of a file replayed in turn give the whole file's state hash."""
    lines = (EXAMPLES / "quickstart.jsonl").read_text().splitlines(keepends=True)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(lines[:9]))
    second.write_text("".join(lines[9:]))
    whole = solvent.Engine()
    whole.replay(EXAMPLES / "quickstart.jsonl")
    halves = solvent.Engine()
    halves.replay(first)
    result = halves.replay(second)
    assert result["effects"][0]["seq"] > 9
    assert halves.state_hash() == whole.state_hash()
