"""Fixtures: the repository's examples and the `solvent` binary to compare against.

The binary is `$SOLVENT_BIN` when set; otherwise `cargo build -p solvent-cli` is run at the
repository root (a no-op when it is up to date) and its debug binary is used, so the Python
package is always compared with the CLI of the same source tree.
"""

import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def _build_cli() -> pathlib.Path:
    subprocess.run(["cargo", "build", "-q", "-p", "solvent-cli"], cwd=REPO, check=True)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    binary = pathlib.Path(json.loads(meta.stdout)["target_directory"]) / "debug" / "solvent"
    assert binary.is_file(), f"cargo built no {binary}"
    return binary


@pytest.fixture(scope="session")
def solvent_bin() -> pathlib.Path:
    given = os.environ.get("SOLVENT_BIN")
    if given:
        path = pathlib.Path(given)
        assert path.is_file(), f"SOLVENT_BIN={given} is not a file"
        return path
    return _build_cli()


@pytest.fixture(scope="session")
def cli_replay(solvent_bin, tmp_path_factory):
    """`solvent replay --events FILE --state-out S` of an example, cached per file: effects
    (parsed JSON lines), the state dump (parsed JSON) and the summary line's numbers."""
    cache = {}

    def run(name: str):
        if name in cache:
            return cache[name]
        state = tmp_path_factory.mktemp("cli") / "state.json"
        done = subprocess.run(
            [str(solvent_bin), "replay", "--events", str(EXAMPLES / name), "--state-out", str(state)],
            check=True,
            capture_output=True,
            text=True,
        )
        summary = next(line for line in done.stderr.splitlines() if line.startswith("replayed "))
        words = summary.replace(";", "").replace("(", "").split()
        result = {
            "effects": [json.loads(line) for line in done.stdout.splitlines() if line.strip()],
            "state": json.loads(state.read_text()),
            "state_hash": words[words.index("state_hash") + 1],
            "events": int(words[1]),
            "rejected": int(words[3]),
            "lines": int(words[words.index("lines") - 1]),
            "effect_count": int(words[words.index("effects") - 1]),
        }
        cache[name] = result
        return result

    return run
