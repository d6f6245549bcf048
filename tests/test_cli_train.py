"""The train, eval, sample and export commands through ``fsnlab.cli.main``: output on a trained tiny
checkpoint, ``--help``, and one clear line (never a traceback) for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_model

from fsnlab.cli import main
from fsnlab.models import build_model, config_from_dict
from fsnlab.train import load_checkpoint, model_from_checkpoint

TINY = ["--context-length", "32", "--batch-size", "4", "--eval-bytes", "1000", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 4-step fsn-tiny run made by the CLI."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--preset", "fsn-tiny", "--max-steps", "4", "--out", str(out), *TINY]) == 0
    return out


def test_train_prints_val_bpc_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "transformer-tiny", "--max-steps", "2", "--out", str(out), *TINY]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    last = next(line for line in lines if line.startswith("val bpc "))
    assert last.endswith(str(out / "checkpoint.pt"))
    # then the next commands for this run, and <parent>/latest names it (tests/test_user_path.py runs them)
    assert lines[-4].startswith("next (") and [l.split()[:2] for l in lines[-3:]] == [["fsnlab", c] for c in ("probe", "verify", "explore")]
    assert all(l.split()[2] == str(out) for l in lines[-3:])
    assert (out.parent / "latest").resolve() == out.resolve()


def test_progress_bar_without_quiet(tmp_path, capsys):
    args = ["train", "--preset", "transformer-tiny", "--max-steps", "2", "--out", str(tmp_path / "r"), *TINY[:-1]]
    assert main(args) == 0
    assert "2/2" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "eval", "sample", "export"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    expected = {
        "train": ["--preset", "--data", "--epochs", "--max-steps", "--out", "--seed", "--device", "--batch-size",
                  "--context-length", "--lr", "--eval-interval", "--eval-bytes", "--grad-accum", "--compile",
                  "--quiet", "--resume", "--keep"],
        "eval": ["CKPT", "--data", "--split", "--json"],
        "sample": ["CKPT", "--prompt", "--length", "--temperature", "--seed"],
        "export": ["CKPT", "--safetensors", "--out"],
    }[command]
    assert all(option in text for option in expected)


def test_optimizer_flags_reach_the_recorded_config_and_the_optimizer(tmp_path):
    """Flags the hand-written parser lacked (issue 17): the run's config.json, its checkpoint's
    train_config and the optimizer's param groups all hold the values given."""
    out = tmp_path / "run"
    flags = ["--weight-decay", "0.05", "--beta2", "0.99", "--grad-clip", "0.5", "--warmup-frac", "0.25",
             "--min-lr-ratio", "0.2", "--beta1", "0.8", "--eps", "1e-6"]
    assert main(["train", "--preset", "fsn-tiny", "--max-steps", "2", "--out", str(out), *flags, *TINY]) == 0
    given = {"weight_decay": 0.05, "beta2": 0.99, "grad_clip": 0.5, "warmup_frac": 0.25, "min_lr_ratio": 0.2,
             "beta1": 0.8, "eps": 1e-6}
    recorded = json.loads((out / "config.json").read_text())["train"]
    ckpt = load_checkpoint(out)
    for name, value in given.items():
        assert recorded[name] == value and ckpt["train_config"][name] == value, name
    groups = ckpt["optimizer"]["param_groups"]
    assert {g["weight_decay"] for g in groups} == {0.05, 0.0}
    assert all(tuple(g["betas"]) == (0.8, 0.99) and g["eps"] == 1e-6 for g in groups)


def test_max_steps_overrides_epochs(tmp_path):
    """``--epochs`` replaces the default step count; an explicit ``--max-steps`` still wins (its help)."""
    out = tmp_path / "run"
    assert main(["train", "--preset", "transformer-tiny", "--epochs", "50", "--max-steps", "2", "--out", str(out), *TINY]) == 0
    recorded = json.loads((out / "config.json").read_text())["train"]
    assert recorded["max_steps"] == 2 and recorded["epochs"] == 50 and load_checkpoint(out)["step"] == 2


def test_eval_matches_training_and_json(run, capsys):
    assert main(["eval", str(run), "--eval-bytes", "1000", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["split"] == "val" and record["targets"] == 999 and record["step"] == 4
    assert record["bpc"] == pytest.approx(load_checkpoint(run)["val"]["bpc"], rel=1e-6)
    assert main(["eval", str(run / "checkpoint.pt"), "--split", "test", "--eval-bytes", "500"]) == 0
    assert capsys.readouterr().out.startswith("test bpc ")


def test_sample_is_deterministic_and_crops_context(run, capsys):
    prompt = "In the beginning " * 4  # 68 bytes, longer than the context of 32
    args = ["sample", str(run), "--prompt", prompt, "--length", "20", "--seed", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and first.startswith(prompt)
    assert main(["sample", str(run), "--prompt", "A", "--length", "5", "--temperature", "0"]) == 0


def test_export_safetensors(run, tmp_path, capsys):
    out = tmp_path / "weights.safetensors"
    assert main(["export", str(run), "--safetensors", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    with safe_open(str(out), "pt") as f:
        config = config_from_dict(json.loads(f.metadata()["fsnlab_config"]))
    model = build_model(config)
    load_model(model, str(out))
    reference = model_from_checkpoint(load_checkpoint(run))
    x = torch.randint(0, 256, (2, 16))
    assert torch.equal(model.eval()(x), reference(x))
    assert main(["export", str(run), "--safetensors"]) == 0
    assert (run / "checkpoint.safetensors").is_file()


def write_bad_files(run, tmp):
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "tiny.txt").write_bytes(b"x" * 30)
    (tmp / "short.txt").write_bytes(b"x" * 60)
    (tmp / "enwik8").write_bytes(b"<mediawiki>" * 100)
    (tmp / "garbage.pt").write_bytes(b"\x00garbage" * 64)
    (tmp / "truncated.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:5000])


def bad_cases(run, tmp):
    """case -> (argv, text the one-line error must contain); files from :func:`write_bad_files`."""
    train = ["train", "--preset", "transformer-tiny", "--max-steps", "1", *TINY, "--out", str(tmp / "new")]
    return {
        "missing text file": (train + ["--data", f"text:{tmp / 'nope.txt'}"], "not found"),
        "wrong enwik8 size": (train + ["--data", f"enwik8:{tmp / 'enwik8'}"], "expected exactly"),
        "empty corpus": (train + ["--data", f"text:{tmp / 'empty.txt'}"], "empty"),
        "tiny corpus": (train + ["--data", f"text:{tmp / 'tiny.txt'}"], "too few"),
        "corpus shorter than context": (train + ["--data", f"text:{tmp / 'short.txt'}", "--context-length", "64"], "fewer than context_length+1"),
        "unknown corpus": (train + ["--data", "wikipedia"], "unknown corpus"),
        "unknown preset": (["train", "--preset", "fsn-huge", "--out", str(tmp / "x")], "unknown preset"),
        "bad batch size": (train + ["--batch-size", "0"], "--batch-size must be a positive integer"),
        "bad beta2": (train + ["--beta2", "1.5"], "betas must lie in [0, 1)"),
        "bad model override": (train + ["--model", "kernel"], "--model expects FIELD=VALUE"),
        "bad device": (train + ["--device", "tpu"], "device"),
        "missing checkpoint": (["eval", str(tmp / "nowhere.pt")], "no checkpoint"),
        "run dir without checkpoint": (["export", str(tmp), "--safetensors"], "has no checkpoint.pt"),
        "corrupt checkpoint": (["eval", str(tmp / "garbage.pt")], "corrupt"),
        "truncated checkpoint": (["sample", str(tmp / "truncated.pt"), "--prompt", "x"], "corrupt"),
        "resume as another family": (["train", "--resume", str(run), "--preset", "transformer-tiny"], "holds a fsn model"),
        "resume with changed lr": (["train", "--resume", str(run), "--lr", "0.5"], "--lr"),
        "resume into another dir": (["train", "--resume", str(run), "--out", str(tmp / "y")], "--out"),
        "resume missing run": (["train", "--resume", str(tmp / "gone")], "no checkpoint"),
        "train over a run": (["train", "--preset", "fsn-tiny", "--out", str(run)], "already holds a run"),
        "eval bad data": (["eval", str(run), "--data", "text:"], "needs a path"),
        "empty prompt": (["sample", str(run), "--prompt", ""], "prompt"),
    }


@pytest.mark.parametrize("case", list(bad_cases(Path("run"), Path("tmp"))))
def test_bad_input_is_one_line_and_exit_2(case, run, tmp_path, capsys):
    write_bad_files(run, tmp_path)
    argv, needle = bad_cases(run, tmp_path)[case]
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"fsnlab {argv[0]}: error: ") and needle in lines[0]
    assert "Traceback" not in captured.out + captured.err
