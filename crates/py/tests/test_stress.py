"""solvent.stress against `solvent stress --json` for a small run."""

import json
import subprocess

import pytest

import solvent

SMALL = {"accounts": 40, "paths": 4, "seed": 7, "scenarios": "shocks,monte-carlo", "horizon_s": 3600}


def cli_flags(options):
    flags = []
    for name, value in options.items():
        flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


def test_stress_matches_cli_json(solvent_bin, tmp_path):
    out = tmp_path / "report.json"
    subprocess.run(
        [str(solvent_bin), "stress", *cli_flags(SMALL), "--json", str(out)],
        check=True,
        capture_output=True,
    )
    cli = json.loads(out.read_text())
    report = solvent.stress(SMALL)
    assert report == cli
    assert report["settings"]["paths"] == 4
    assert report["settings"]["population"]["accounts"] == 40
    # The same options spelled as flags, and the scenario sets as a list, give the same report.
    spelled = {"--accounts": 40, "paths": 4, "seed": 7, "scenarios": ["shocks", "monte_carlo"], "horizon-s": 3600}
    assert solvent.stress(spelled) == report
    # Another seed gives other figures.
    assert solvent.stress({**SMALL, "seed": 8}) != report


@pytest.mark.parametrize(
    "options, option",
    [
        ({"accounts": 0}, "accounts"),
        ({"paths": -1}, "paths"),
        ({"colour": "blue"}, "colour"),
        ({"scenarios": "weekends"}, "scenarios"),
        ({"impact_y": "high"}, "impact_y"),
    ],
)
def test_stress_refuses_bad_options(options, option):
    with pytest.raises(solvent.StressError) as caught:
        solvent.stress({**SMALL, **options})
    assert caught.value.kind == "invalid_option"
    assert caught.value.option == option
    assert isinstance(caught.value, solvent.SolventError)
