"""The user's path with no options (issue 18), at tiny scale: `fsnlab train` into the default run
directory (a few steps of fsn-tiny), then the commands it prints, typed bare: `fsnlab probe
runs/latest`, `fsnlab verify RUN`, and `fsnlab explore runs/latest` serving that probe, checked over
HTTP always and in the headless browser when chromium is there (as tests/test_explore_browser.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import urllib.request
from pathlib import Path

import pytest

from fsnlab.cli import main
from fsnlab.data import load_corpus
from fsnlab.probe import open_probe
from fsnlab.probe.options import DEFAULT_WINDOWS

TRAIN = ["train", "--preset", "fsn-tiny", "--max-steps", "5", "--batch-size", "4", "--eval-bytes", "2000", "--quiet"]
CONTEXT = 64  # fsn-tiny's
WAIT = 60


@contextlib.contextmanager
def _in(folder: Path):
    old = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def _fsnlab(*args: str) -> tuple[int, str, str]:
    """``fsnlab ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    """train -> (explore before a probe) -> bare probe -> bare verify, in a fresh folder, as a user would."""
    root = tmp_path_factory.mktemp("user_path")
    seen: dict = {"root": root}
    with _in(root):
        code, out, err = _fsnlab(*TRAIN)
        assert code == 0, err
        seen["train"] = out.strip().splitlines()
        nexts = [line.split("#")[0].strip() for line in seen["train"] if line.startswith("  fsnlab ")]
        seen["next"] = {shlex.split(c)[1]: shlex.split(c) for c in nexts}
        seen["explore_first"] = _fsnlab("explore", "runs/latest", "--no-browser", "--port", "0")
        seen["probe"] = _fsnlab("probe", "runs/latest")
        seen["probe_again"] = _fsnlab(*seen["next"]["probe"][1:])  # the printed command: the real run dir
        seen["verify"] = _fsnlab(*seen["next"]["verify"][1:])
    return seen


def test_train_prints_the_next_commands_and_points_latest_at_the_run(chain):
    lines, root = chain["train"], chain["root"]
    runs = [p for p in (root / "runs").iterdir() if p.name != "latest"]
    assert len(runs) == 1 and runs[0].name.startswith("fsn-tiny-")
    run = Path("runs") / runs[0].name
    assert lines[-5].startswith("val bpc ") and lines[-5].endswith(str(run / "checkpoint.pt"))
    assert lines[-4] == "next (runs/latest now names this run):"
    assert sorted(chain["next"]) == ["explore", "probe", "verify"]
    assert all(words == ["fsnlab", cmd, str(run)] for cmd, words in chain["next"].items())
    latest = root / "runs" / "latest"
    assert latest.is_symlink() and os.readlink(latest) == runs[0].name


def test_explore_before_a_probe_names_the_command_that_makes_one(chain):
    code, out, err = chain["explore_first"]
    assert code == 2 and err.count("\n") == 1
    assert "make one with: fsnlab probe runs/latest" in err


def test_bare_probe_reads_the_runs_val_split_into_the_run_dir(chain):
    code, out, err = chain["probe"]
    assert code == 0, err
    assert out.strip().endswith("-> runs/latest/probe.zarr")
    assert f"{DEFAULT_WINDOWS} window(s) of {CONTEXT} bytes" in out
    path = chain["root"] / "runs" / "latest" / "probe.zarr"
    with open_probe(path) as ds:
        assert ds.sizes["sample"] == DEFAULT_WINDOWS and ds.sizes["pos"] == CONTEXT
        assert (ds.attrs["corpus"], ds.attrs["split"], ds.attrs["start"]) == ("embedded", "val", 0)
        assert ds.attrs["stride"] == CONTEXT  # non-overlapping windows
        assert json.loads(ds.attrs["options"])["attention"] is True and "attn_topk_weight" in ds
        val = bytes(load_corpus("embedded").split("val")[: DEFAULT_WINDOWS * CONTEXT])
        assert bytes(ds["byte"].values.reshape(-1).tolist()) == val
    # the same probe again (the printed command names the real run dir): nothing to do
    code, out, err = chain["probe_again"]
    assert code == 0 and "up to date" in out


def test_bare_verify_passes(chain):
    code, out, err = chain["verify"]
    assert code == 0, err
    assert "embedded val[0:64]" in out and "identity: PASS" in out and "controls: PASS" in out


@pytest.fixture(scope="module")
def server(chain):
    """`fsnlab explore runs/latest --no-browser --port 0` in a subprocess; yields its URL; always stopped."""
    pytest.importorskip("dash")
    from explorer_process import running_explorer

    with running_explorer(Path("runs/latest"), chain["root"], wait=WAIT) as url:
        yield url


def test_explore_serves_the_runs_probe(server):
    with urllib.request.urlopen(server + "_dash-layout", timeout=WAIT) as r:
        layout = r.read().decode()
    assert '"probe.zarr"' in layout  # the run's probe is the file on show


# --- the same in the headless browser (skips itself without chromium, chromedriver or selenium) ---

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser_page(server):
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            pytest.skip(f"browser check needs {exe} (apt-get install chromium chromium-driver)")
    pytest.importorskip("dash")
    pytest.importorskip("selenium", reason="browser check needs selenium (pip install selenium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--window-size=1280,1080"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(WAIT)
        driver.get(server)
        yield driver
    finally:
        driver.quit()


def test_browser_shows_the_trained_run(browser_page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser_page, WAIT)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#text-panel [data-pos]")))
    wait.until(lambda d: "selected: t =" in d.find_element(By.ID, "selected-label").text)
    chars = browser_page.find_elements(By.CSS_SELECTOR, "#text-panel [data-pos]")
    assert len(chars) == CONTEXT  # window 0: the first context window of the val split
    shown = "".join(c.text for c in chars)
    val = bytes(load_corpus("embedded").split("val")[:CONTEXT]).decode("utf-8", "replace")
    assert shown.split() == val.split()  # the text panel shows the run's own val text
    assert "probe.zarr" in browser_page.find_element(By.TAG_NAME, "body").text
    severe = [e for e in browser_page.get_log("browser") if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")]
    assert not severe, severe


def test_bare_probe_never_silently_replaces_another_probe(chain):
    """Last: it replaces the run's probe. An existing <run>/probe.zarr of other text or options is kept
    (one line naming --overwrite); --overwrite replaces it."""
    with _in(chain["root"]):
        code, out, err = _fsnlab("probe", "runs/latest", "--text", "In the beginning", "--quiet")
        assert code == 2 and err.count("\n") == 1 and "--overwrite" in err
        assert _fsnlab("probe", "runs/latest", "--text", "In the beginning", "--quiet", "--overwrite")[0] == 0
        code, out, err = _fsnlab("probe", "runs/latest")
        assert code == 2 and err.count("\n") == 1 and "--overwrite" in err
    with open_probe(chain["root"] / "runs" / "latest" / "probe.zarr") as ds:
        assert ds.sizes["sample"] == 1 and ds.attrs["corpus"] == "inline"


def test_latest_is_a_pointer_file_where_symlinks_fail(tmp_path, monkeypatch):
    from apps.cli import explore_target
    from fsnlab.train.checkpoint import resolve_checkpoint
    from fsnlab.train.latest import follow_latest, point_latest

    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
        (runs / name / "checkpoint.pt").write_bytes(b"")
    assert point_latest(runs / "a") == (runs / "latest", "") and os.readlink(runs / "latest") == "a"

    def no_symlinks(*args, **kwargs):
        raise OSError("symbolic links are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    assert point_latest(runs / "b") == (runs / "latest", "")  # replaces the link by a pointer file
    assert not (runs / "latest").is_symlink() and (runs / "latest").read_text() == "b\n"
    assert follow_latest(runs / "latest") == runs / "b"
    assert resolve_checkpoint(runs / "latest") == runs / "b" / "checkpoint.pt"
    with pytest.raises(Exception, match="make one with: fsnlab probe .*latest"):
        explore_target(str(runs / "latest"))
    assert point_latest(runs / "a")[0] == runs / "latest" and follow_latest(runs / "latest") == runs / "a"
    # something else called latest is left alone, with the reason (training never fails on it)
    (runs / "latest").unlink()
    (runs / "latest").mkdir()
    link, why = point_latest(runs / "b")
    assert link is None and "not a link or pointer file" in why
    assert not list(runs.glob(".latest*"))  # no temporary left behind
