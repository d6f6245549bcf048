"""fsnlab explore: the Dash app builds, its panels work as plain functions, it reads only the files it
was given, and the command starts a real server on 127.0.0.1 (bounded in time)."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("dash")
pytest.importorskip("plotly")

import fsnlab  # noqa: E402
from fsnlab.cli import main  # noqa: E402
from apps.cli import load_app_package  # noqa: E402
from fsnlab.probe.core import write_probe  # noqa: E402
from fsnlab.probe.options import ProbeOptions  # noqa: E402
from explorer_process import running_explorer  # noqa: E402

explorer_pkg = load_app_package()

from apps.explorer import create_app, make_server  # noqa: E402
from apps.explorer.callbacks import Callbacks, token_from_click  # noqa: E402
from apps.explorer.data import DatasetCache, ExplorerError, PathRefused, ProbeCatalog  # noqa: E402
from apps.explorer.panels import Explorer  # noqa: E402

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder with a zarr probe, a netCDF probe in a subfolder, and things that are not probes."""
    root = tmp_path_factory.mktemp("probes")
    model = fsnlab.build_model("fsn-tiny")
    write_probe(model, TEXT, root / "a.zarr", ProbeOptions(attention=True, stride=48, identity_positions=None))
    (root / "sub").mkdir()
    write_probe(model, TEXT[:50], root / "sub" / "b.nc", ProbeOptions(attention=True))
    (root / "notes.txt").write_text("not a probe")
    (root / ".hidden.zarr").mkdir()
    return root


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A real probe file outside the explored folder."""
    root = tmp_path_factory.mktemp("outside")
    write_probe(fsnlab.build_model("fsn-tiny"), TEXT[:30], root / "secret.nc", ProbeOptions())
    return root / "secret.nc"


@pytest.fixture(scope="module")
def app(folder):
    return create_app(folder)


@pytest.fixture(scope="module")
def cb(app):
    return app.fsn_callbacks


# -- path safety ---------------------------------------------------------------------------------


def test_catalog_lists_only_probes(folder):
    cat = ProbeCatalog.open(folder)
    assert cat.keys() == ["a.zarr", "sub/b.nc"]
    assert cat.resolve("a.zarr") == (folder / "a.zarr").resolve()
    assert cat.resolve("sub/b.nc") == (folder / "sub" / "b.nc").resolve()


def test_catalog_refuses_everything_else(folder, outside):
    cat = ProbeCatalog.open(folder)
    link = folder / "link.nc"
    if not link.exists():
        link.symlink_to(outside)  # a symlink out of the folder
    try:
        assert "link.nc" not in cat.keys()
        for bad in ["../outside/secret.nc", str(outside), os.path.relpath(outside, folder), "link.nc", "notes.txt",
                    ".hidden.zarr", "sub/../../x.nc", "", None, 3, "a.zarr\x00", "sub", "/etc/passwd", "a.zarr/../../../etc/passwd"]:
            with pytest.raises(PathRefused):
                cat.resolve(bad)
    finally:
        link.unlink()


def test_single_file_allows_only_that_file(folder):
    cat = ProbeCatalog.open(folder / "sub" / "b.nc")
    assert cat.keys() == ["b.nc"]
    with pytest.raises(PathRefused):
        cat.resolve("../a.zarr")


def test_a_request_outside_the_folder_is_refused_over_http(app, outside):
    """A crafted callback request naming a file outside the folder gets the refusal, not the data."""
    client = app.server.test_client()
    assert client.get("/").status_code == 200  # first request sets the server up
    body = {
        "output": '{"name":"loss","type":"fsn-graph"}.figure',
        "outputs": {"id": {"name": "loss", "type": "fsn-graph"}, "property": "figure"},
        "inputs": [{"id": "file", "property": "value", "value": str(outside)},
                   {"id": "sample", "property": "value", "value": 0},
                   {"id": "selected-token", "property": "data", "value": None}],
        "changedPropIds": ["file.value"],
        "state": [],
    }
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    assert "refused" in text and "outside the folder" in text
    assert "bits" not in text  # no loss figure of the outside file


def test_cache_is_keyed_by_path_and_mtime(folder):
    cache = DatasetCache(ProbeCatalog.open(folder), max_files=2, max_samples=2)
    a = cache.dataset("a.zarr")
    assert cache.dataset("a.zarr") is a
    w = cache.window("a.zarr", 1)
    assert w.sizes["sample"] == 1 and int(w.sample.values[0]) == 1 and cache.window("a.zarr", 1) is w
    meta = folder / "a.zarr" / ".zmetadata"
    st = meta.stat()
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "rewritten": reopened
    assert cache.dataset("a.zarr") is not a
    with pytest.raises(ExplorerError, match="out of range"):
        cache.window("a.zarr", 99)


# -- the app ---------------------------------------------------------------------------------------


def test_app_layout_and_callbacks(app):
    layout = app.layout() if callable(app.layout) else app.layout
    ids = set()

    def walk(c):
        if hasattr(c, "id") and getattr(c, "id", None) is not None:
            ids.add(json.dumps(c.id, sort_keys=True) if isinstance(c.id, dict) else c.id)
        for child in (c.children if isinstance(getattr(c, "children", None), list) else [getattr(c, "children", None)]):
            if child is not None and not isinstance(child, (str, int, float)):
                walk(child)

    walk(layout)
    for needed in ["file", "sample", "osc", "layer", "harmonic", "text-panel", "selected-token", "anim", "selection", "play", "frame"]:
        assert needed in ids
    outputs = " ".join(app.callback_map)
    for name in ["phases", "loss", "local-order", "global-order", "daido", "frustration", "gamma", "kernel-polar",
                 "identity-terms", "identity-circle"]:
        assert f'"name":"{name}"' in outputs.replace(" ", "")
    client = app.server.test_client()
    page = client.get("/")
    assert page.status_code == 200
    html_text = page.get_data(as_text=True)
    srcs = re.findall(r'src="([^"]+)"', html_text)
    assert srcs and all(s.startswith("/") for s in srcs), srcs  # everything served locally, no CDN
    assert "/assets/explorer.js" in html_text
    r = client.get("/_dash-layout")
    assert r.status_code == 200 and b"text-panel" in r.data
    deps = client.get("/_dash-dependencies").get_json()
    assert any(d.get("clientside_function", {}) and d["clientside_function"]["function_name"] == "render" for d in deps)
    assert client.get("/assets/explorer.js").status_code == 200


def test_controls_and_animation_data(cb):
    out = cb.on_file("a.zarr")
    samples, sample, oscs, osc, layers, layer, harmonics, harmonic, groups, group, info, message = out
    assert message == "" and len(samples) == 2 and len(oscs) == 32 and len(layers) == 2 and len(harmonics) == 4
    assert "L=2 D=32" in info and "attention top-8" in info
    anim, smax, marks = cb.on_anim("a.zarr", 1, 5)
    assert smax == 4 and marks[0]["label"] == "emb" and marks[3]["label"] == "1a"
    assert len(anim["theta"]) == 5 and len(anim["theta"][0]) == 64 and anim["layer_of_stage"] == [0, 0, 1, 1, None]
    assert not anim["webgl"]
    sel, label = cb.on_selection("a.zarr", 1, 5, 20)
    assert sel["pos"] == 20 and label.startswith("selected: t = 20")
    assert sel["attended"]["1"][0][0] >= 0 and len(sel["z"]["0"]) == 2
    bad = cb.on_file("../nope.zarr")
    assert "refused" in bad[-1]


def test_selecting_a_token_updates_the_identity_panel(cb):
    a = cb.on_identity("a.zarr", 0, 1, 2, 7, 20)
    b = cb.on_identity("a.zarr", 0, 1, 2, 7, 33)
    assert "t=20" in a[0]["layout"]["title"]["text"] and "t=33" in b[0]["layout"]["title"]["text"]
    ex = cb.ex
    for pos in (20, 33):
        out = ex.identity("a.zarr", 0, 1, 2, 7, pos)
        s = out["summary"]
        assert s["successor_sum"] == pytest.approx(s["sakaguchi_sum"], abs=1e-15)
        assert s["residual"] < 1e-15 and s["control_residual"] > 1e-9
        assert s["probe_residual"] < 1e-12
    # the default selection (none yet) is the middle of the window
    assert "t=32" in cb.on_identity("a.zarr", 0, 1, 1, 0, None)[0]["layout"]["title"]["text"]


def test_figure_callbacks(cb):
    assert cb.on_loss("a.zarr", 0, 5)["data"][0]["type"] == "bar"
    assert cb.on_local_order("a.zarr", 0, 3, "mean", 5)["data"][0]["type"] == "heatmap"
    assert len(cb.on_global_order("a.zarr", 0, 3)["data"]) >= 4
    assert len(cb.on_daido("sub/b.nc", 0, 3, 5, "token")["data"]) == 8
    assert cb.on_frustration("a.zarr", 0, 1, 3, "all", 20)["data"][0]["type"] == "barpolar"
    gamma, polar, table = cb.on_kernel("a.zarr", 1, 0)
    assert gamma["data"] and polar["data"] and table is not None
    assert cb.on_residuals("a.zarr", 0) is not None
    assert len(cb.on_window("sub/b.nc", 0)) == 50
    # an out-of-range request becomes a message in the panel, not a server error
    msg = cb.on_loss("a.zarr", 9, 0)
    assert msg["data"] == [] and "out of range" in msg["layout"]["annotations"][0]["text"]


def test_clicks_select_tokens():
    assert token_from_click({"points": [{"customdata": 12, "x": 0.3}]}, use_customdata=True) == 12
    assert token_from_click({"points": [{"x": 7, "customdata": ["a", "b"]}]}, use_customdata=False) == 7
    assert not isinstance(token_from_click(None, True), int)


def test_export_html(cb):
    fig = cb.on_loss("a.zarr", 0, 5)
    out = cb.on_export(1, fig)
    assert out["filename"].endswith(".html") and "Plotly.newPlot" in out["content"]
    assert '<script src="http' not in out["content"]


def test_transformer_probe_shows_text_and_loss(tmp_path):
    write_probe(fsnlab.build_model("transformer-tiny"), TEXT[:40], tmp_path / "t.zarr", ProbeOptions(attention=True))
    c = Callbacks(Explorer(tmp_path))
    out = c.on_file("t.zarr")
    assert out[-1] == "" and "transformer" in out[-2] and out[2] == []
    assert c.on_loss("t.zarr", 0, 3)["data"]
    anim, _, _ = c.on_anim("t.zarr", 0, 0)
    assert "no phases" in anim["error"]
    assert c.on_identity("t.zarr", 0, 0, 1, 0, 3)[0]["data"] == []


# -- the command -------------------------------------------------------------------------------


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["explore", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--no-browser" in out and "127.0.0.1" in out


@pytest.mark.parametrize("case", ["missing", "not_probe_file", "not_probe_zarr", "empty_folder", "text_file"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    target = {
        "missing": tmp_path / "nope.zarr",
        "not_probe_file": tmp_path / "x.nc",
        "not_probe_zarr": tmp_path / "x.zarr",
        "empty_folder": tmp_path / "empty",
        "text_file": tmp_path / "notes.txt",
    }[case]
    if case == "not_probe_file":
        target.write_bytes(b"garbage")
    elif case == "not_probe_zarr" or case == "empty_folder":
        target.mkdir()
    elif case == "text_file":
        target.write_text("hello")
    assert main(["explore", str(target), "--no-browser", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fsnlab explore: error:"), err


def test_port_in_use(folder, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["explore", str(folder / "a.zarr"), "--no-browser", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port in use" in err


def test_server_in_a_thread_binds_localhost(app):
    server = make_server(app, "127.0.0.1", 0)
    assert server.server_address[0] == "127.0.0.1"
    assert not app.server.debug and not app._dev_tools.ui  # never debug
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/", timeout=20) as r:
            assert r.status == 200 and b"_dash-config" in r.read()
        with urllib.request.urlopen(base + "/_dash-layout", timeout=20) as r:
            assert r.status == 200 and b"text-panel" in r.read()
    finally:
        server.shutdown()
        server.server_close()
        server.fsn_socket.close()
        t.join(timeout=10)


def test_command_serves_the_page(folder, tmp_path):
    """`fsnlab explore DIR --port 0 --no-browser` in a subprocess (outside the checkout, so `apps` is
    found through fsnlab): GET / and /_dash-layout on 127.0.0.1, then stop it."""
    with running_explorer(folder, tmp_path, wait=90, keep_pythonpath=False) as base:
        with urllib.request.urlopen(base, timeout=20) as r:
            assert r.status == 200 and b"fsnlab explore" in r.read()
        with urllib.request.urlopen(base + "_dash-layout", timeout=20) as r:
            assert r.status == 200 and json.loads(r.read())


def test_folder_with_a_broken_file(tmp_path, capsys):
    """A folder holding one good probe and one broken file starts; choosing the broken one says why."""
    write_probe(fsnlab.build_model("fsn-tiny"), TEXT[:20], tmp_path / "good.zarr", ProbeOptions())
    (tmp_path / "broken.nc").write_bytes(b"not hdf5")
    ex = Explorer(tmp_path)
    assert ex.check() == ["good.zarr"]  # the broken file (listed first) is skipped
    c = Callbacks(ex)
    assert "not a probe dataset" in c.on_file("broken.nc")[-1]
    assert c.on_file("good.zarr")[-1] == ""


# -- the network kernel (OQ-9) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def net_cb(tmp_path_factory):
    """The explorer on a probe of the network kernel (randomised cross-coupling)."""
    import torch

    root = tmp_path_factory.mktemp("network")
    torch.manual_seed(7)
    model = fsnlab.build_model("fsn-tiny", kernel_form="network1")
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    write_probe(model, TEXT[:64], root / "net.zarr", ProbeOptions(attention=True, identity_positions=None))
    return create_app(root).fsn_callbacks


def test_network_kernel_panel_and_identity(net_cb, cb):
    fig, style = net_cb.on_kernel_matrix("net.zarr", 1, 1)
    assert style == {} and [t["type"] for t in fig["data"]] == ["heatmap"] * 8
    assert "network kernel" in fig["layout"]["title"]["text"]
    assert "network kernel (network1)" in net_cb.on_file("net.zarr")[10]
    # a diagonal probe hides the panel; its other panels are as before
    _, hidden = cb.on_kernel_matrix("a.zarr", 1, 1)
    assert hidden == {"display": "none"}
    terms, circle, table, summary = net_cb.on_identity("net.zarr", 0, 1, 1, 7, 5)
    assert terms["data"] and circle["data"] and table is not None
    out = net_cb.ex.identity("net.zarr", 0, 1, 1, 7, 5)
    s = out["summary"]
    assert s["cross_coupling"] and s["complete"] and s["residual"] < 1e-14
    assert s["successor_sum"] == pytest.approx(s["network"], abs=2e-5)
    assert net_cb.on_residuals("net.zarr", 0) is not None
