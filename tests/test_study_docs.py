"""docs/quality.md's tables are generated from the committed records (``python -m fsnlab.study.docs``):
the committed page matches its data, the prose around the blocks is left alone, and the hand-kept
learning-curve tables end on the recorded final numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fsnlab.study import docs
from fsnlab.study.kinds.quality_sweep import final_rows
from fsnlab.study.manifest import StudyError
from fsnlab.study.records import RecordStore, records_dataset

ROOT = Path(__file__).resolve().parent.parent
QUALITY = ROOT / "docs" / "quality.md"


def test_the_committed_tables_match_the_data():
    text = QUALITY.read_text(encoding="utf-8")
    assert docs.regenerate(text, ROOT) == text, (
        "docs/quality.md differs from studies/results: run `python -m fsnlab.study.docs`; stale blocks: "
        + ", ".join(docs.stale(text, ROOT)))


def test_the_page_generates_its_run_tables():
    specs = [b.spec for b in docs.blocks(QUALITY.read_text(encoding="utf-8"))]
    assert "quality-lr-grid protocol=tiny" in specs
    for protocol in ("tiny", "small", "tiny-long"):
        assert f"quality-table protocol={protocol}" in specs
    assert any(s.startswith("quality-table protocol=tiny-long variants=") for s in specs)


def test_regenerating_rewrites_only_the_blocks(tmp_path):
    results = tmp_path / "studies" / "results"
    store = RecordStore(results)
    for variant, seed, bpc in [("transformer", 0, 2.5), ("transformer", 1, 2.7), ("fsn", 0, 2.55), ("fsn:tied", 0, 2.9)]:
        store.record("tiny", {"variant": variant, "protocol": "tiny", "lr": 0.01, "seed": seed, "val_bpc": bpc,
                              "model": {}, "train": {}, "run_dir": f"runs/{variant}-{seed}"})
    page = ("# Title\n\nProse 1.234 before.\n\n<!-- generated: quality-table protocol=tiny variants=fsn -->\n"
            "| stale |\n<!-- end generated -->\n\nProse after.\n")
    doc = tmp_path / "docs" / "quality.md"
    doc.parent.mkdir()
    doc.write_text(page)
    assert docs.main(["--root", str(tmp_path), "--check"]) == 1
    assert docs.main(["--root", str(tmp_path)]) == 0
    new = doc.read_text()
    assert new.startswith("# Title\n\nProse 1.234 before.\n\n<!-- generated: quality-table protocol=tiny variants=fsn -->\n")
    assert new.endswith("<!-- end generated -->\n\nProse after.\n")
    body = docs.blocks(new)[0].body.splitlines()
    assert body[0] == "| variant | what it changes | lr | seeds | val bpc | gap to best transformer |"
    assert body[2:] == ["| `fsn` | full kernel, spec defaults | 0.01 | 1 | 2.550 | -0.050 |",
                        "| `transformer` | RoPE-SwiGLU baseline | 0.01 | 2 | 2.600 ± 0.141 | +0.000 |"]  # fsn:tied left out
    assert docs.main(["--root", str(tmp_path), "--check"]) == 0
    assert docs.regenerate(new, tmp_path) == new


def test_bad_blocks_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(StudyError, match="unknown generated block 'nope'"):
        docs.regenerate("<!-- generated: nope -->\n<!-- end generated -->\n", ROOT)
    with pytest.raises(StudyError, match="unbalanced"):
        docs.blocks("<!-- generated: quality-table protocol=tiny -->\n| x |\n")
    with pytest.raises(StudyError, match="unknown protocol"):
        docs.regenerate("<!-- generated: quality-table protocol=huge -->\n<!-- end generated -->\n", ROOT)
    with pytest.raises(StudyError, match="regime_ladder.nc does not exist yet"):
        docs.regenerate("<!-- generated: regime-ladder -->\n<!-- end generated -->\n", tmp_path)
    doc = tmp_path / "page.md"
    doc.write_text("<!-- generated: quality-table -->\n<!-- end generated -->\n")
    assert docs.main(["--root", str(ROOT), str(doc)]) == 2
    assert capsys.readouterr().err.startswith("docs: error: generated block quality-table:")


_CURVE_ROW = re.compile(r"^\| `(?P<variant>[^`]+)` \| (?P<lr>[0-9.e-]+) \| (?P<n>\d+) \| .*\| (?P<last>[^|]+) \|$")


@pytest.mark.parametrize("protocol,heading", [("tiny-long", "## 1. "), ("small-long", "## 7. ")])
def test_the_learning_curve_tables_end_on_the_recorded_numbers(protocol, heading):
    """The curves need the run directories (not committed), so those tables are kept by hand; their
    last column is the final evaluation, which the records hold: it must agree."""
    text = QUALITY.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 1)]
    start = section.index("| variant | lr | seeds | step")
    table = section[start:].split("\n\n")[0].splitlines()[2:]
    ds = records_dataset(RecordStore(ROOT / "studies" / "results").load(protocol), ROOT, protocol)
    recorded = {(r.variant, r.lr): r.stats for r in final_rows(ds)}
    assert table
    for line in table:
        m = _CURVE_ROW.match(line)
        assert m, line
        stats = recorded[(m["variant"], float(m["lr"]))]
        assert int(m["n"]) == stats["n"], line
        assert m["last"].strip() == f"**{stats['mean']:.3f}** ± {stats['sd']:.3f}", line


def test_records_load_as_a_dataset_with_curves_where_run_directories_exist(tmp_path):
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"event": "eval", "step": s, "val_bpc": b}) + "\n"
                                               for s, b in [(5, 3.0), (10, 2.5)]))
    records = [{"variant": "fsn", "protocol": "tiny", "lr": 0.01, "seed": 0, "val_bpc": 2.5, "run_dir": "runs/a"},
               {"variant": "fsn", "protocol": "tiny", "lr": 0.01, "seed": 1, "val_bpc": 2.7, "run_dir": "runs/gone"}]
    ds = records_dataset(records, tmp_path, "tiny")
    assert ds.attrs["study"] == "quality_sweep"
    assert ds["final_val_bpc"].values.tolist() == [2.5, 2.7]
    assert ds["eval_step"].values[0].tolist() == [5, 10]
    assert ds["val_bpc"].values[0].tolist() == [3.0, 2.5]
    assert np.isnan(ds["val_bpc"].values[1]).all()  # no run directory: no curve, the record still counts


_DIAGNOSTIC_ROW = re.compile(r"^\| `(?P<variant>[^`]+)`[^|]* \|[^|]*\|[^|]*\| (?P<params>[\d,]+) \| (?P<h>\d+) \| "
                             r"(?:\*\*)?(?P<mean>\d\.\d{3}) ± (?P<sd>\d\.\d{3})(?:\*\*)?(?: \((?P<n>\d+)\))? \|$")


def test_the_value_pathway_table_holds_the_models_and_the_records():
    """§5's table is prose around numbers; its parameter counts, FFN widths and val bpc are checked
    against the budget-matched models and the tiny-long records."""
    from fsnlab.models import build_model, parameter_breakdown
    from fsnlab.study.quality import PROTOCOLS, train_config

    text = QUALITY.read_text(encoding="utf-8")
    section = text[text.index("## 5. "):]
    section = section[:section.index("\n## ", 1)]
    table = section[section.index("| arm | who couples"):].split("\n\n")[0].splitlines()[2:]
    ds = records_dataset(RecordStore(ROOT / "studies" / "results").load("tiny-long"), ROOT, "tiny-long")
    recorded = {r.variant: r.stats for r in final_rows(ds) if r.lr == 0.01}
    assert len(table) == 9
    for line in table:
        m = _DIAGNOSTIC_ROW.match(line)
        assert m, line
        config = train_config(m["variant"], PROTOCOLS["tiny-long"], 0.01, 0)
        model = build_model(config.preset, **config.model_overrides)
        assert f"{parameter_breakdown(model)['total']:,}" == m["params"], line
        assert model.config.ffn_hidden == int(m["h"]), line
        stats = recorded[m["variant"]]
        assert (f"{stats['mean']:.3f}", f"{stats['sd']:.3f}", stats["n"]) == (m["mean"], m["sd"], int(m["n"] or 2)), line


def test_the_protocols_table_holds_the_protocols():
    """The protocols table (hand-kept: its token counts are rounded by hand) against
    :data:`fsnlab.study.quality.PROTOCOLS` and the models' parameter counts."""
    from fsnlab.models import build_model, parameter_breakdown
    from fsnlab.study.quality import PROTOCOLS, train_config

    text = QUALITY.read_text(encoding="utf-8")
    section = text[text.index("## Protocols"):]
    table = section[section.index("| protocol | rung |"):].split("\n\n")[0].splitlines()[2:]
    assert [line.split("|")[1].strip(" `") for line in table] == ["tiny", "small", "tiny-long", "small-long"]
    for line in table:
        name, rung, params, t, batch, steps, tokens, per_param, scored = [c.strip(" `") for c in line.strip("|").split("|")]
        p = PROTOCOLS[name]
        counts = []
        for family in ("fsn", "transformer"):
            config = train_config(family, p, 0.01, 0)
            counts.append(parameter_breakdown(build_model(config.preset, **config.model_overrides))["total"])
        assert (rung, params, int(t), int(batch), int(steps.replace(",", ""))) == (
            p.rung, f"{counts[0]:,} / {counts[1]:,}", p.context_length, p.batch_size, p.max_steps), line
        assert abs(float(tokens.rstrip("M")) * 1e6 - p.tokens) / p.tokens < 0.01, line
        assert int(per_param) == p.tokens // counts[0], line  # rounded down (small-long: 20.5)
        every = f", every {p.eval_interval} steps" if p.eval_interval else ""
        assert scored == f"first {p.eval_bytes:,}{every}", line
