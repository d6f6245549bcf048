"""The quality sweep's bookkeeping: budget matching of variants, per-rung values, tables and curves."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fsnlab.models import RUNG_TARGETS, build_model, get_preset, match_budget, parameter_breakdown, replace_config

ROOT = Path(__file__).resolve().parent.parent


def _sweep():
    spec = importlib.util.spec_from_file_location("fsnlab_quality_sweep", ROOT / "studies" / "quality_sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("overrides", [
    {"readout": "tied"}, {"gate": "query"}, {"embedding": "vector"}, {"n_layer": 3}, {"kernel_sharing": "coord"},
])
@pytest.mark.parametrize("rung", ["tiny", "small"])
def test_match_budget_keeps_a_variant_on_its_rung(rung, overrides):
    config = replace_config(get_preset(f"fsn-{rung}"), **overrides)
    unmatched = parameter_breakdown(config)["total"]
    matched = match_budget(config, RUNG_TARGETS[rung])
    total = parameter_breakdown(matched)["total"]
    assert abs(total - RUNG_TARGETS[rung]) / RUNG_TARGETS[rung] < 0.01
    assert sum(p.numel() for p in build_model(matched).parameters()) == total
    if abs(unmatched - RUNG_TARGETS[rung]) / RUNG_TARGETS[rung] > 0.02:  # the width really moved
        assert matched.ffn_hidden != config.ffn_hidden


def test_variants_resolve_per_rung_and_stay_matched():
    q = _sweep()
    tiny = q.PROTOCOLS["tiny"]
    v = q.resolve(q.VARIANTS["fsn:qgate-beta2x-angle10"], tiny)
    assert v.model == {"gate": "query", "temperature_init": pytest.approx(2 / 16**0.5)}  # D_h = 16 at tiny
    assert v.train == {"angle_lr_scale": 10.0}
    overrides = q.budget_matched(q.VARIANTS["fsn:tied"], "tiny")
    assert overrides["readout"] == "tied" and overrides["ffn_hidden"] > get_preset("fsn-tiny").ffn_hidden
    assert q.budget_matched(q.VARIANTS["transformer"], "tiny") == {}
    # a training-only switch runs the layer as the sweeps began: the presets' score offset pinned off
    assert q.budget_matched(q.VARIANTS["fsn:angle-lr10"], "tiny") == {"score_offset": False}
    assert q.budget_matched(q.VARIANTS["fsn:offset-angle10"], "tiny") == {"score_offset": True}
    # the pinned layer keeps the parameter count every recorded run had (h 64 at tiny)
    pinned = q.budget_matched(q.VARIANTS["fsn:qgate-angle10"], "tiny")
    assert pinned == {"score_offset": False, "gate": "query", "ffn_hidden": 51}


def test_table_and_curves_read_the_records(tmp_path, monkeypatch):
    q = _sweep()
    monkeypatch.setattr(q, "ROOT", tmp_path / "studies")
    (tmp_path / "studies" / "results").mkdir(parents=True)
    for name, seed, curve in [("transformer", 0, {500: 2.5, 1000: 2.2}), ("transformer", 1, {500: 2.7, 1000: 2.4}),
                              ("fsn", 0, {500: 2.6, 1000: 2.5})]:
        run = tmp_path / "runs" / f"{name}-{seed}"
        run.mkdir(parents=True)
        events = [{"event": "eval", "step": s, "val_bpc": b} for s, b in curve.items()]
        (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        q.record("tiny-long", {"variant": name, "protocol": "tiny-long", "lr": 0.01, "seed": seed,
                               "val_bpc": curve[1000], "model": {}, "train": {}, "run_dir": f"runs/{name}-{seed}"})
    q.record("tiny-long", {"variant": "fsn", "lr": 0.01, "seed": 0, "val_bpc": 9.9})  # a duplicate is ignored
    text = q.table("tiny-long")
    assert "transformer" in text and "+0.200" in text  # fsn 2.5 against the transformer's mean 2.3
    md = q.curves("tiny-long", markdown=True).splitlines()
    assert md[0].startswith("| variant | lr | seeds | step 500 | step 1000")
    assert md[2].startswith("| `transformer` | 0.01 | 2 | 2.600 | **2.300** ± 0.141")
    assert md[3] == "| `fsn` | 0.01 | 1 | 2.600 | 2.500 |"


def test_unknown_variant_is_a_one_line_error(monkeypatch):
    q = _sweep()
    monkeypatch.setattr(sys, "argv", ["quality_sweep.py", "variants", "--variants", "fsn:nope", "--lr", "1e-2"])
    with pytest.raises(SystemExit) as exc:
        q.main()
    assert str(exc.value).startswith("unknown variant(s) fsn:nope; choose from: transformer")


def test_a_sweep_runs_in_the_study_run_pool_and_is_recorded(tmp_path, monkeypatch, capsys):
    """The smoke protocol end to end: the runs train through fsnlab.study (run pool, dataset, report),
    each finished run is one record line, and a rerun trains nothing and records nothing twice."""
    from fsnlab.study import open_study
    from fsnlab.study.quality import PROTOCOLS, train_config
    from fsnlab.study.report import build_html

    q = _sweep()
    monkeypatch.setattr(q, "ROOT", tmp_path / "studies")
    argv = ["lr", "--protocol", "smoke", "--arms", "transformer,fsn", "--runs", str(tmp_path / "runs" / "pool"),
            "--out", str(tmp_path / "study")]
    assert q.main(argv) == 0
    records = q.load("smoke")
    assert [(r["variant"], r["lr"], r["seed"]) for r in records] == [("transformer", 0.01, 0), ("fsn", 0.01, 0)]
    fsn = records[1]
    assert fsn["model"] == {"score_offset": False} and fsn["train"] == {}
    assert fsn["run_dir"].startswith("runs/pool/fsn-tiny.score_offset=False.embedded.lr0.01.6st.s0-")
    config = json.loads((tmp_path / fsn["run_dir"] / "config.json").read_text())["train"]
    assert config == train_config("fsn", PROTOCOLS["smoke"], 0.01, 0).to_dict()
    assert config["angle_lr_scale"] == 1.0  # the protocol's pinned angle LR
    assert "transformer" in capsys.readouterr().out
    ds = open_study(tmp_path / "study")
    assert ds.attrs["study"] == "quality_sweep" and sorted(ds["variant"].values.tolist()) == ["fsn", "transformer"]
    assert ds["final_val_bpc"].values.tolist() == [r["val_bpc"] for r in records]
    assert "Final validation bpc per variant and learning rate" in build_html(ds)
    md = q.curves("smoke", markdown=True).splitlines()  # the run directories hold the curves
    assert md[0] == "| variant | lr | seeds | step 3 | step 6 |"
    assert q.main(argv) == 0
    assert len(q.load("smoke")) == 2
    assert "skipped" in capsys.readouterr().out
