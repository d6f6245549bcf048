"""`fsnlab params` and `fsnlab presets` through the real entry point."""

import json

from fsnlab.cli import main
from fsnlab.models import parameter_breakdown


def test_params_prints_every_component_and_the_total(capsys):
    assert main(["params", "fsn-1m"]) == 0
    out = capsys.readouterr().out
    for component in ("embedding", "score_map", "kernel", "feed_forward", "readout", "total"):
        assert component in out
    assert f"{parameter_breakdown('fsn-1m')['total']:,}" in out


def test_params_json_matches_the_library(capsys):
    assert main(["params", "fsn-mf-1m", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameters"] == parameter_breakdown("fsn-mf-1m")
    assert data["parameters"]["modes"] > 0 and data["parameters"]["feed_forward"] == 0
    assert data["config"]["ffn"] == "mean_field"


def test_presets_lists_all_families(capsys):
    assert main(["presets", "--json"]) == 0
    names = {row["preset"] for row in json.loads(capsys.readouterr().out)}
    assert {"fsn-1m", "ka-1m", "fsn-mf-1m", "transformer-1m", "fsn-8m", "transformer-tiny"} <= names


def test_unknown_preset_is_one_line_and_exit_2(capsys):
    assert main(["params", "fsn-3m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown preset 'fsn-3m'" in err and "Traceback" not in err
