"""What each panel of the explorer shows, as plain functions of the controls' values.

:class:`Explorer` holds the file catalog and the dataset cache; each method takes the values of the
page's controls (file key, window, coordinate, layer, harmonic, selected token ...) and returns what
the panel displays (figures from :mod:`fsnlab.viz`, table rows, the arrays the client-side animation
plays). :mod:`apps.explorer.callbacks` wires them to Dash; tests call them directly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from apps.explorer.data import DatasetCache, ExplorerError, ProbeCatalog
from fsnlab import viz
from fsnlab.errors import FsnlabError
from fsnlab.viz import common as vc
from fsnlab.viz import phases as vp
from fsnlab.viz.kernel import has_kernel_matrix, kernel_matrix_figure

# Numbers sent to the browser for the animation are rounded: 1e-4 rad is far below a pixel.
PHASE_DECIMALS = 4


def message_figure(text: str, height: int = 260) -> dict[str, Any]:
    """An empty figure that says why a panel has nothing to show."""
    return {
        "data": [],
        "layout": {
            "height": height, "template": "plotly_white",
            "xaxis": {"visible": False}, "yaxis": {"visible": False},
            "annotations": [{"text": text, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
                             "font": {"size": 13, "color": "#666666"}}],
            "margin": {"l": 20, "r": 20, "t": 20, "b": 20},
        },
    }


def as_int(value: Any, name: str, default: int | None = None) -> int:
    """A control's value as an int (ExplorerError, one line, for anything else)."""
    if value is None and default is not None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ExplorerError(f"bad {name}: {value!r}") from None


def _fig(fig: Any) -> dict[str, Any]:
    return fig if isinstance(fig, dict) else fig.to_plotly_json()


class Explorer:
    """The explorer's state on the server: which files it may read, and the opened datasets."""

    def __init__(self, target: Any, max_files: int = 4, max_samples: int = 3) -> None:
        self.catalog = target if isinstance(target, ProbeCatalog) else ProbeCatalog.open(target)
        self.cache = DatasetCache(self.catalog, max_files=max_files, max_samples=max_samples)

    # -- files and controls -----------------------------------------------------------------

    def check(self) -> list[str]:
        """Open the listed files until one is a probe dataset and return its key (a list of one). Raise
        (one line) if none is: the explorer would have nothing to show. Files that fail later show
        their error in the page when chosen."""
        good, first_error = [], None
        for key in self.catalog.keys():
            try:
                self.cache.dataset(key)
            except FsnlabError as exc:
                first_error = first_error or exc
                continue
            good.append(key)
            break
        if not good:
            if self.catalog.single is not None and first_error is not None:
                raise first_error
            raise ExplorerError(f"no probe dataset could be read in {self.catalog.root}" + (f" ({first_error})" if first_error else ""))
        return good

    def file_options(self) -> list[dict[str, str]]:
        return [{"label": k, "value": k} for k in self.catalog.keys()]

    def controls(self, key: str) -> dict[str, Any]:
        """Options for the window, coordinate, layer, harmonic and kernel-group selectors of a file, and
        a one-paragraph description of the probe."""
        ds = self.cache.dataset(key)
        n_sample = int(ds.sizes["sample"])
        starts = ds["window_start"].values if "window_start" in ds.coords else np.zeros(n_sample, dtype=int)
        out: dict[str, Any] = {
            "samples": [{"label": f"window {i} (byte {int(starts[i])})", "value": i} for i in range(n_sample)],
            "phases": viz.has_phases(ds),
            "T": int(ds.sizes["pos"]),
        }
        if out["phases"]:
            heads = ds["osc_head"].values
            out["oscs"] = [{"label": f"osc {i} · head {int(heads[i])}", "value": i} for i in range(int(ds.sizes["osc"]))]
            out["layers"] = [{"label": f"layer {int(v)}", "value": int(v)} for v in ds["layer"].values]
            out["harmonics"] = [{"label": f"n = {int(v)}", "value": int(v)} for v in ds["harmonic"].values]
            gdim = vc.kernel_group_dim(ds) if "kernel_real" in ds.variables else "head"
            out["group_dim"] = gdim
            out["groups"] = [{"label": f"{gdim} {i}", "value": i} for i in range(int(ds.sizes[gdim]))]
        else:
            out.update(oscs=[], layers=[], harmonics=[], groups=[], group_dim="head")
        out["info"] = self.describe(ds)
        return out

    @staticmethod
    def describe(ds: Any) -> str:
        a = ds.attrs
        cfg = vc.model_config(ds)
        parts = [str(a.get("title", "probe"))]
        parts.append(f"{int(ds.sizes['sample'])} window(s) × {int(ds.sizes['pos'])} tokens")
        if viz.has_phases(ds):
            parts.append(f"L={ds.sizes.get('layer')} D={ds.sizes.get('osc')} H={ds.sizes.get('head')} N={ds.sizes.get('harmonic')}")
            if cfg.get("delay_mask") and int(ds.sizes.get("delay", 1)) > 1:
                parts.append(f"delay_mask={cfg['delay_mask']}")
            if has_kernel_matrix(ds):
                parts.append(f"network kernel ({cfg.get('kernel_form', 'network')}): K_ij within each head")
        parts.append(f"attention top-{ds.sizes['k']}" if "k" in ds.sizes else "no --attention (no couplings per token)")
        parts.append(f"checkpoint step {a.get('checkpoint_step', '?')}")
        if not viz.has_phases(ds):
            parts.append("a transformer probe: no phases, order parameters or kernel; loss and text only")
        return " · ".join(str(p) for p in parts)

    def window(self, key: str, sample: Any) -> Any:
        return self.cache.window(key, as_int(sample, "sample", 0))

    # -- text ------------------------------------------------------------------------------------

    def text_tokens(self, key: str, sample: Any) -> list[dict[str, Any]]:
        """Per token: its character and a background alpha from its loss, scaled between the window's
        1st and 99th percentile (light = low loss, dark = high loss, relative to this window)."""
        ds = self.window(key, sample)
        chars = [str(c) for c in ds["char"].values[0]]
        loss = np.asarray(ds["loss_bits"].values[0], dtype=np.float64)
        finite = loss[np.isfinite(loss)]
        lo, hi = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        out = []
        for i, c in enumerate(chars):
            a = 0.05 + 0.95 * float(np.clip((loss[i] - lo) / span, 0, 1)) if np.isfinite(loss[i]) else 0.0
            out.append({"pos": i, "char": c, "loss": float(loss[i]) if np.isfinite(loss[i]) else None, "alpha": round(a, 3)})
        return out

    # -- the animation ---------------------------------------------------------------------------

    def animation(self, key: str, sample: Any, osc: Any) -> dict[str, Any]:
        """Everything the browser needs to animate one window and coordinate: phases per stage and
        token (rounded), labels, class colours, the attention layer of each stage, and the layout."""
        ds = self.window(key, sample)
        if not viz.has_phases(ds):
            raise ExplorerError("this probe has no phases to animate (a transformer probe)")
        o = as_int(osc, "osc", 0)
        stages, theta = viz.token_phases(ds, 0, o)
        chars = [str(c) for c in ds["char"].values[0]]
        base = vc.go.Figure(layout=vp.circle_layout()).to_plotly_json()["layout"]
        return {
            "key": key, "sample": int(ds["sample"].values[0]), "osc": o,
            "stages": stages,
            "theta": np.round(theta, PHASE_DECIMALS).tolist(),
            "labels": [viz.display_char(c) for c in chars],
            "classes": viz.char_classes(chars),
            "class_colors": dict(vc.CLASS_COLORS),
            "class_order": list(vc.CLASS_ORDER),
            "layer_of_stage": [vp.attention_layer(ds, i) for i in range(len(stages))],
            "webgl": len(chars) > vp.WEBGL_THRESHOLD,
            "layout": base,
        }

    def selection(self, key: str, sample: Any, osc: Any, pos: Any) -> dict[str, Any]:
        """The selected token's couplings per layer (top-k ``(u, A)`` of the head owning ``osc``) and
        its order parameters Z⁰, Z¹ (n = 1) per layer, for the animation's arrows."""
        ds = self.window(key, sample)
        T = int(ds.sizes["pos"])
        t = min(max(as_int(pos, "token", 0), 0), T - 1)
        out: dict[str, Any] = {"pos": t, "attended": {}, "z": {}}
        if not viz.has_phases(ds):
            return out
        o = as_int(osc, "osc", 0)
        head = vc.osc_head(ds, o)
        out["head"] = head
        for layer in range(int(ds.sizes["layer"])):
            out["attended"][str(layer)] = [[u, round(w, 5)] for u, w in vp.attended_tokens(ds, 0, layer, head, t)]
            if "Z_real" in ds.variables:
                at = {"sample": 0, "layer": layer, "pos": t, "osc": o, "harmonic": 0}
                zr = ds["Z_real"].isel(at).transpose("delay").values
                zi = ds["Z_imag"].isel(at).transpose("delay").values
                out["z"][str(layer)] = [[round(float(a), 5), round(float(b), 5)] for a, b in zip(zr, zi)]
        return out

    def static_phase_figure(self, key: str, sample: Any, osc: Any, stage: Any, pos: Any, color_by: str = "position",
                            radius: str = "unit", trail: int = 0) -> dict[str, Any]:
        """The phase figure of one stage, server-side (the initial figure; the browser animates)."""
        ds = self.window(key, sample)
        stages = [str(s) for s in ds["stage"].values]
        i = min(max(int(math.floor(float(stage or 0))), 0), len(stages) - 1)
        return _fig(viz.phase_figure(ds, 0, as_int(osc, "osc", 0), i, color_by=color_by, radius=radius,
                                     selected=None if pos is None else as_int(pos, "token"), trail=int(trail or 0)))

    # -- figures ---------------------------------------------------------------------------------

    def loss(self, key: str, sample: Any, pos: Any) -> dict[str, Any]:
        return _fig(viz.loss_figure(self.window(key, sample), 0, selected=pos))

    def local_order(self, key: str, sample: Any, osc: Any, mode: str, pos: Any) -> dict[str, Any]:
        which = "mean" if mode == "mean" else as_int(osc, "osc", 0)
        return _fig(viz.local_order_heatmap(self.window(key, sample), 0, which, selected=pos))

    def global_order(self, key: str, sample: Any, osc: Any) -> dict[str, Any]:
        return _fig(viz.global_order_figure(self.window(key, sample), 0, as_int(osc, "osc", 0)))

    def daido(self, key: str, sample: Any, osc: Any, pos: Any, mode: str) -> dict[str, Any]:
        p = None if mode == "mean" or pos is None else as_int(pos, "token")
        return _fig(viz.daido_figure(self.window(key, sample), 0, as_int(osc, "osc", 0), p))

    def kernel(self, key: str, layer: Any, group: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        ds = self.cache.dataset(key)
        layer, group = as_int(layer, "layer", 0), as_int(group, "group", 0)
        return (_fig(viz.coupling_function_figure(ds, layer, group)), _fig(viz.kernel_polar_figure(ds, layer, group)),
                viz.kernel_table(ds, layer, group))

    def kernel_matrix(self, key: str, layer: Any, harmonic: Any) -> dict[str, Any] | None:
        """The network kernel's heatmaps (|K_ij| and −arg K_ij per head and delay) of one layer and harmonic, or
        None when the probe's kernel is diagonal (the panel is then hidden)."""
        ds = self.cache.dataset(key)
        if not has_kernel_matrix(ds):
            return None
        return _fig(kernel_matrix_figure(ds, as_int(layer, "layer", 0), as_int(harmonic, "harmonic", 1)))

    def frustration(self, key: str, sample: Any, layer: Any, osc: Any, mode: str, pos: Any) -> dict[str, Any]:
        """Histogram of the data's transitions at the layer's input; the selected token's attended keys'
        transitions are marked on the rim."""
        ds = self.window(key, sample)
        layer, o = as_int(layer, "layer", 0), as_int(osc, "osc", 0)
        highlight = None
        if pos is not None and "attn_topk_index" in ds.variables and "transition" in ds.variables:
            keys = [u for u, _ in vp.attended_tokens(ds, 0, layer, vc.osc_head(ds, o), as_int(pos, "token")) if u < int(pos)]
            if keys:
                highlight = ds["transition"].isel(sample=0, layer=layer, osc=o, pos=keys).values.tolist()
        return _fig(viz.frustration_histogram(ds, 0, layer, None if mode == "all" else o, highlight=highlight))

    def identity(self, key: str, sample: Any, layer: Any, harmonic: Any, osc: Any, pos: Any) -> dict[str, Any]:
        """The identity panel: both figures, the term table and the summary for the selected token."""
        ds = self.window(key, sample)
        ti = viz.token_identity(ds, 0, as_int(layer, "layer", 0), as_int(pos, "token", 0), as_int(harmonic, "harmonic", 1), as_int(osc, "osc", 0))
        return {
            "terms_figure": _fig(viz.identity_terms_figure(ti)),
            "circle_figure": _fig(viz.identity_circle_figure(ti)),
            "rows": ti.rows(),
            "summary": ti.summary(),
            "identity": ti,
        }

    def residuals(self, key: str, sample: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The probe's whole-run identity table: this window, and the maximum over all windows."""
        full = self.cache.dataset(key)
        window = self.window(key, sample)
        return viz.identity_residual_table(window, 0), viz.identity_residual_table(full, None)

    def export_html(self, figure: Any) -> str:
        """A self-contained HTML page of a figure (as the browser holds it)."""
        if not isinstance(figure, dict) or "data" not in figure:
            raise ExplorerError("nothing to export")
        return vc.figure_html(vc.go.Figure(figure, skip_invalid=True))


def json_safe(x: Any) -> Any:
    """Replace NaN/inf by None recursively (JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


__all__ = ["Explorer", "as_int", "json_safe", "message_figure"]
