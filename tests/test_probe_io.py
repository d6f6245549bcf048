"""``fsnlab probe`` on a checkpoint trained by ``fsnlab train``: zarr and netCDF outputs round-trip
exactly (and equal the in-memory ``probe()``), runs are deterministic, and every kind of bad input is
one clear line on stderr with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from fsnlab.cli import main
from fsnlab.models import build_model, config_to_dict
from fsnlab.probe import open_probe, probe, probe_to_file
from fsnlab.train import TrainConfig, load_checkpoint, model_from_checkpoint, train

TEXT = "In the beginning God created the heaven and the earth. Und die Erde war wüst und leer. 🌍\n" * 2
PROVENANCE = ("history", "checkpoint_sha256", "checkpoint_step", "checkpoint_fsnlab_version", "seed", "train_data")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 2-step fsn-tiny run (context 32) made by the trainer."""
    out = tmp_path_factory.mktemp("probe") / "run"
    train(TrainConfig(preset="fsn-tiny", context_length=32, max_steps=2, batch_size=2, eval_bytes=200, log_interval=1), out, quiet=True)
    return out


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def outputs(run, text_file, tmp_path_factory) -> dict[str, Path]:
    """The same probe written by the CLI as zarr and as netCDF (several appended batches)."""
    out = tmp_path_factory.mktemp("out")
    paths = {}
    for ext in ("zarr", "nc"):
        paths[ext] = out / f"p.{ext}"
        args = ["probe", str(run), "--text-file", str(text_file), "--out", str(paths[ext]), "--stride", "32",
                "--attention", "--batch-size", "2", "--identity-positions", "all", "--quiet"]
        assert main(args) == 0
    return paths


def _without(ds: xr.Dataset, keys=("history",)) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in keys}
    return ds


def test_cli_writes_zarr_and_netcdf_that_round_trip_exactly(run, text_file, outputs):
    with open_probe(outputs["zarr"]) as z, open_probe(outputs["nc"]) as n:
        z, n = z.load(), n.load()
    n_bytes = len(TEXT.encode())
    assert z.sizes["sample"] == len(range(0, n_bytes - 32 + 1, 32)) + 1 and z.sizes["pos"] == 32
    xr.testing.assert_identical(_without(z), _without(n))
    # exactly what the in-memory API computes, values and dtypes
    model = model_from_checkpoint(load_checkpoint(run))
    mem = probe(model, text_file.read_bytes(), stride=32, attention=True, batch_size=2, identity_positions=None)
    xr.testing.assert_identical(_without(z, PROVENANCE + ("corpus",)), _without(mem, PROVENANCE + ("corpus",)))
    for name in mem.variables:
        assert z[name].dtype == mem[name].dtype == n[name].dtype, name
    # provenance from the checkpoint
    ckpt = load_checkpoint(run)
    assert z.attrs["checkpoint_step"] == ckpt["step"] == 2
    assert z.attrs["seed"] == ckpt["train_config"]["seed"]
    assert len(z.attrs["checkpoint_sha256"]) == 64 and z.attrs["corpus"] == f"file:{text_file.resolve()}"
    assert z.attrs["history"].split(": ", 1)[1].startswith("fsnlab probe ")
    assert json.loads(z.attrs["model_config"])["context_length"] == 32
    # the identity check travels with the file
    assert z.delay_identity_residual.values.max() < 1e-10 and z.delay_force_check.values.max() < 1e-4


def test_probe_is_deterministic(run, text_file, outputs, tmp_path):
    again = probe_to_file(run, text_file.read_bytes(), tmp_path / "again.zarr", stride=32, attention=True,
                          batch_size=2, identity_positions=None)
    with open_probe(outputs["zarr"]) as a, open_probe(again) as b:
        xr.testing.assert_identical(_without(a.load(), PROVENANCE[:1] + ("corpus",)), _without(b.load(), PROVENANCE[:1] + ("corpus",)))
    # byte-identical chunks: only the attribute files (history, corpus) may differ
    files = sorted(p.relative_to(outputs["zarr"]) for p in outputs["zarr"].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        if rel.name not in (".zattrs", ".zmetadata"):
            assert (outputs["zarr"] / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_corpus_slice_overwrite_and_progress(run, tmp_path, capsys):
    out = tmp_path / "val.nc"
    args = ["probe", str(run), "--data", "embedded", "--split", "val", "--start", "100", "--length", "50",
            "--stride", "32", "--out", str(out), "--identity-positions", "0"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "2/2" in captured.err  # tqdm progress bar on stderr
    assert captured.out.strip().endswith(str(out))
    with open_probe(out) as ds:
        assert ds.attrs["corpus"] == "embedded" and ds.attrs["split"] == "val" and ds.attrs["start"] == 100
        assert ds.attrs["length"] == 50
        np.testing.assert_array_equal(ds.window_start.values, [100, 118])
        assert "delay_identity_residual" not in ds
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def _one_line_error(capsys, args: list[str], expected: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fsnlab probe: error: "), err
    assert expected in err, err


def test_bad_input_is_one_clear_line(run, text_file, tmp_path, capsys):
    out = str(tmp_path / "p.zarr")
    _one_line_error(capsys, ["probe", str(tmp_path / "missing"), "--text", "a", "--out", out], "no checkpoint")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    _one_line_error(capsys, ["probe", str(corrupt), "--text", "a", "--out", out], "cannot read checkpoint")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((run / "checkpoint.pt").read_bytes()[:1000])
    _one_line_error(capsys, ["probe", str(truncated), "--text", "a", "--out", out], "cannot read checkpoint")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format_version": 1, "model": {}, "payload": Path("x")}, unsafe)  # needs unpickling an object
    _one_line_error(capsys, ["probe", str(unsafe), "--text", "a", "--out", out], "cannot read checkpoint")
    future = tmp_path / "future.pt"
    ckpt = load_checkpoint(run)
    torch.save({**ckpt, "format_version": 99}, future)
    _one_line_error(capsys, ["probe", str(future), "--text", "a", "--out", out], "format 99")
    _one_line_error(capsys, ["probe", str(run), "--text", "", "--out", out], "empty")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    _one_line_error(capsys, ["probe", str(run), "--text-file", str(empty), "--out", out], "empty")
    _one_line_error(capsys, ["probe", str(run), "--text-file", str(tmp_path / "nope.txt"), "--out", out], "not found")
    _one_line_error(capsys, ["probe", str(run), "--text", "abc", "--out", str(tmp_path / "p.csv")], "unknown output extension")
    _one_line_error(capsys, ["probe", str(run), "--text", "abc", "--stride", "99", "--out", out], "stride")
    _one_line_error(capsys, ["probe", str(run), "--text", "abc", "--start", "3", "--out", out], "--start goes with --data")
    _one_line_error(capsys, ["probe", str(run), "--data", "embedded", "--start", "10000000", "--out", out], "past its end")
    not_zarr = tmp_path / "dir.zarr"
    (not_zarr / "precious").mkdir(parents=True)
    _one_line_error(capsys, ["probe", str(run), "--text", "abc", "--out", str(not_zarr), "--overwrite"], "not a zarr store")
    assert (not_zarr / "precious").is_dir() and not Path(out).exists()


def test_longer_text_without_stride_gets_windows_that_do_not_overlap(run, text_file, tmp_path, capsys):
    out = tmp_path / "p.zarr"
    assert main(["probe", str(run), "--text-file", str(text_file), "--out", str(out), "--quiet"]) == 0
    n = text_file.stat().st_size
    with open_probe(out) as ds:
        assert ds.attrs["stride"] == 32  # the context length
        expected = list(range(0, n - 32 + 1, 32)) + ([n - 32] if n % 32 else [])
        np.testing.assert_array_equal(ds.window_start.values, expected)
        assert "attn_topk_weight" in ds  # --attention is on unless --no-attention


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["probe", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("CKPT", "--text", "--text-file", "--data", "--split", "--start", "--length", "--out", "--stride",
                   "--attention", "--top-k", "--overwrite", "--batch-size", "--quiet", "--identity-positions", ".zarr", ".nc"):
        assert option in text, option
    # and every option's default (argparse folds lines: compare without the line breaks)
    flat = " ".join(text.split())
    for default in ("default: the corpus the checkpoint was trained on", "default: val", "default: 0", "default: 8 x the model's context",
                    "default: <run dir>/probe.zarr", "default: the context length", "default: on", "default: 8", "default: 2",
                    "default: 32", "default: 256", "default: off"):
        assert default in flat, default


def test_transformer_checkpoint_says_what_does_not_apply(tmp_path, capsys):
    """A transformer checkpoint (written here in the trainer's format) gets loss, characters, norms, top-k."""
    torch.manual_seed(0)
    model = build_model("transformer-tiny")
    ckpt = {"format_version": 1, "fsnlab_version": "0.1.0", "model": model.state_dict(), "model_config": config_to_dict(model.config),
            "train_config": {"seed": 7, "data": "embedded"}, "step": 0}
    torch.save(ckpt, tmp_path / "t.pt")
    out = tmp_path / "t.nc"
    assert main(["probe", str(tmp_path / "t.pt"), "--text", "hello transformer", "--out", str(out), "--attention", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "do not apply" in err[0]
    with open_probe(out) as ds:
        assert ds.attrs["phase_quantities"].startswith("not applicable") and ds.attrs["seed"] == 7
        assert {"loss_bits", "resid_norm", "attn_topk_weight", "attn_topk_index"} == set(ds.data_vars)
