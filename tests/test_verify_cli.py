"""``fsnlab verify`` on real trained checkpoints (made by ``fsnlab train``): the table, ``--json``,
the loud control failure, tolerance failures, and one clean line for unusable input."""

from __future__ import annotations

import json

import pytest

from fsnlab.cli import main

TINY = ["--context-length", "32", "--batch-size", "4", "--eval-bytes", "1000", "--quiet"]


def _train(root, preset: str, steps: int) -> str:
    out = root / preset
    assert main(["train", "--preset", preset, "--max-steps", str(steps), "--out", str(out), *TINY]) == 0
    return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A few-step fsn-tiny run (full kernel) and runs without a delay kernel, all made by the CLI."""
    root = tmp_path_factory.mktemp("verify")
    return {"fsn": _train(root, "fsn-tiny", 6), "ka": _train(root, "ka-tiny", 1), "transformer": _train(root, "transformer-tiny", 1)}


def test_verify_passes_and_prints_a_table(runs, capsys):
    capsys.readouterr()
    assert main(["verify", runs["fsn"]]) == 0
    out = capsys.readouterr().out
    assert "identity residuals" in out and "b-a max" in out and "shuffled transitions" in out
    assert "identity: PASS" in out and "controls: PASS" in out
    assert "embedded val[0:32]" in out  # default: one context window of the run's corpus
    rows = [line for line in out.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert len(rows) == 2 * 4 * 2  # (layer, harmonic) rows in the identity and control tables


def test_verify_json(runs, capsys):
    capsys.readouterr()
    assert main(["verify", runs["fsn"], "--data", "embedded", "--split", "test", "--start", "100", "--length", "150", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] and result["identity_passed"] and result["controls_discriminate"]
    assert result["max_float64_identity_residual"] < 1e-12 and result["min_float64_control_residual"] > 1e-4
    assert result["tokens"] == 4 * 32 and result["text"] == "embedded test[100:250]"
    assert len(result["residuals"]) == 2 * 2 * 4 * 6  # precision x layer x harmonic x comparison
    assert {r["precision"] for r in result["residuals"]} == {"float64", "float32"}
    assert len(result["checkpoint_sha256"]) == 64 and result["step"] == 6


def test_verify_text_and_text_file(runs, tmp_path, capsys):
    capsys.readouterr()
    assert main(["verify", runs["fsn"], "--text", "In the beginning God created the heaven and the earth.", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 32  # 55 bytes -> one full window, tail dropped
    f = tmp_path / "t.txt"
    f.write_bytes("fsnlab: phases on a torus\n".encode())
    assert main(["verify", runs["fsn"], "--text-file", str(f)]) == 0
    assert "identity: PASS" in capsys.readouterr().out


def test_control_that_does_not_fail_fails_loudly(runs, capsys):
    capsys.readouterr()
    assert main(["verify", runs["fsn"], "--text", "a" * 32]) == 1
    captured = capsys.readouterr()
    assert "CONTROL DID NOT FAIL" in captured.err and "THE CHECK IS VACUOUS" in captured.out


def test_residual_above_tolerance_fails(runs, capsys):
    capsys.readouterr()
    assert main(["verify", runs["fsn"], "--tolerance", "1e-30"]) == 1
    captured = capsys.readouterr()
    assert "identity: FAIL" in captured.out and "exceeds tolerance" in captured.err


@pytest.mark.parametrize("kind", ["ka", "transformer"])
def test_checkpoint_without_delay_is_one_line(runs, kind, capsys):
    capsys.readouterr()
    assert main(["verify", runs[kind]]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fsnlab verify: error:") and "delay" in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize("extra", [["--text", "ab"], ["--text", ""], ["--text-file", "/nonexistent/file.txt"], ["--start", "-1"],
                                   ["--data", "text:/nonexistent"], ["--data", "embedded", "--length", "100000000"]])
def test_bad_input_is_one_line(runs, extra, capsys):
    capsys.readouterr()
    assert main(["verify", runs["fsn"], *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fsnlab verify: error:")


def test_windows_tile_the_text_and_drop_a_short_tail():
    """verify cuts text as the probe does (fsnlab.probe.text.window_starts), without the probe's
    end-aligned last window: non-overlapping windows of the context length."""
    import numpy as np
    import torch

    from fsnlab.commands.verify import windows

    ids = windows(np.arange(150, dtype=np.uint8), 32)
    assert ids.shape == (4, 32) and torch.equal(ids.flatten(), torch.arange(128))
    assert windows(np.arange(20, dtype=np.uint8), 32).shape == (1, 20)


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--tolerance" in out and "--json" in out and "Controls" in out
