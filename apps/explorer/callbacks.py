"""Dash callbacks: the wiring between the page (:mod:`apps.explorer.layout`) and the panels
(:class:`apps.explorer.panels.Explorer`).

Server callbacks run once per change of a control (file, window, coordinate, layer, harmonic,
selected token). The animation never calls the server: ``assets/explorer.js`` draws every frame in
the browser from the ``anim`` store (phases of every token at every stage for the chosen window and
coordinate) and the ``selection`` store (the selected token's couplings): scrubbing through a clientside
callback, playing through a ``requestAnimationFrame`` loop that calls ``Plotly.react`` directly.

:class:`Callbacks` keeps every handler as a plain method, so tests call them without a browser.
"""

from __future__ import annotations

import math
from typing import Any

from dash import MATCH, ClientsideFunction, Input, Output, State, callback_context, dcc, html, no_update

from apps.explorer.layout import gid
from apps.explorer.panels import Explorer, as_int, json_safe, message_figure
from fsnlab.errors import FsnlabError, one_line
from fsnlab.viz.common import display_char


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "–"
        if x == 0:
            return "0"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4):
            return f"{x:.{max(1, digits - 1)}e}"
        return f"{x:.{digits}f}"
    return str(x)


def html_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]] | None = None, digits: int = 4, class_name: str = "tbl") -> Any:
    """A plain HTML table from row dicts; ``columns`` as (key, header) pairs (default: every key)."""
    if not rows:
        return html.P("nothing to show", className="help")
    columns = columns or [(k, k) for k in rows[0]]
    head = html.Thead(html.Tr([html.Th(h) for _, h in columns]))
    body = html.Tbody([html.Tr([html.Td(_fmt(r.get(k), digits)) for k, _ in columns]) for r in rows])
    return html.Table([head, body], className=class_name)


class Callbacks:
    """Every server-side handler of the page, as plain methods over one :class:`Explorer`."""

    def __init__(self, explorer: Explorer) -> None:
        self.ex = explorer

    # -- controls --------------------------------------------------------------------------

    def on_file(self, key: str) -> tuple:
        """New file: options (and defaults) of every selector, the description, any error."""
        try:
            c = self.ex.controls(key)
        except FsnlabError as exc:
            return ([], None, [], None, [], None, [], None, [], None, "", str(exc))
        first = lambda opts: opts[0]["value"] if opts else None  # noqa: E731
        return (c["samples"], first(c["samples"]), c["oscs"], first(c["oscs"]), c["layers"], first(c["layers"]),
                c["harmonics"], first(c["harmonics"]), c["groups"], first(c["groups"]), c["info"], "")

    def default_pos(self, key: str, sample: Any, pos: Any) -> int:
        """The selected token, clamped to the window; the middle of the window when none is selected."""
        T = int(self.ex.window(key, sample).sizes["pos"])
        if pos is None:
            return T // 2
        return min(max(as_int(pos, "token"), 0), T - 1)

    def on_click(self, phase_click: Any, loss_click: Any, local_click: Any) -> Any:
        """A click on a token in the phase circle, the loss plot or the heatmap selects it."""
        name = triggered_name()
        data = {"phases": phase_click, "loss": loss_click, "local-order": local_click}.get(name)
        return token_from_click(data, use_customdata=name == "phases")

    # -- text and animation ----------------------------------------------------------------

    def on_window(self, key: str, sample: Any) -> Any:
        try:
            tokens = self.ex.text_tokens(key, sample)
        except FsnlabError as exc:
            return html.P(str(exc), className="help")
        return text_spans(tokens)

    def on_anim(self, key: str, sample: Any, osc: Any) -> tuple:
        """The animation's arrays and the scrubber's range and stage marks."""
        try:
            anim = self.ex.animation(key, sample, osc)
        except FsnlabError as exc:
            return {"error": str(exc)}, 1, None
        except Exception as exc:
            return {"error": internal_error(exc)}, 1, None
        stages = anim["stages"]
        marks = {i: {"label": short_stage(s)} for i, s in enumerate(stages)}
        return anim, max(1, len(stages) - 1), marks

    def on_selection(self, key: str, sample: Any, osc: Any, pos: Any) -> tuple:
        try:
            t = self.default_pos(key, sample, pos)
            sel = self.ex.selection(key, sample, osc, t)
            ds = self.ex.window(key, sample)
            c = display_char(str(ds["char"].values[0, t]))
            return sel, f"selected: t = {t} '{c}'"
        except FsnlabError as exc:
            return None, str(exc)

    # -- figures ---------------------------------------------------------------------------

    def _guard(self, fn, *args, height: int = 260) -> Any:
        try:
            return fn(*args)
        except FsnlabError as exc:
            return message_figure(str(exc), height)
        except Exception as exc:  # a bug must not leave a blank panel: say so, log the traceback
            return message_figure(internal_error(exc), height)

    def on_loss(self, key, sample, pos):
        return self._guard(lambda: self.ex.loss(key, sample, self.default_pos(key, sample, pos)), height=220)

    def on_local_order(self, key, sample, osc, mode, pos):
        return self._guard(lambda: self.ex.local_order(key, sample, osc, mode, self.default_pos(key, sample, pos)))

    def on_global_order(self, key, sample, osc):
        return self._guard(lambda: self.ex.global_order(key, sample, osc), height=330)

    def on_daido(self, key, sample, osc, pos, mode):
        return self._guard(lambda: self.ex.daido(key, sample, osc, self.default_pos(key, sample, pos), mode), height=300)

    def on_frustration(self, key, sample, layer, osc, mode, pos):
        return self._guard(lambda: self.ex.frustration(key, sample, layer, osc, mode, self.default_pos(key, sample, pos)), height=360)

    def on_kernel(self, key: str, layer: Any, group: Any) -> tuple:
        try:
            gamma, polar, rows = self.ex.kernel(key, layer, group)
        except Exception as exc:
            msg = str(exc) if isinstance(exc, FsnlabError) else internal_error(exc)
            return message_figure(msg, 340), message_figure(msg, 340), html.P(msg, className="help")
        cols = [("term", "term"), ("re", "Re"), ("im", "Im"), ("abs", "|·|"), ("arg", "arg"), ("alpha", "α (KS angle)"),
                ("K", "K (signed)"), ("slope_at_0", "n·Re (Γ'(0) part)"), ("reading", "reading")]
        return gamma, polar, html_table(rows, cols)

    def on_kernel_matrix(self, key: str, layer: Any, harmonic: Any) -> tuple:
        """The network kernel's heatmaps and the card's style: hidden for a diagonal kernel."""
        try:
            fig = self.ex.kernel_matrix(key, layer, harmonic)
        except Exception as exc:
            msg = str(exc) if isinstance(exc, FsnlabError) else internal_error(exc)
            return message_figure(msg, 340), {}
        if fig is None:
            return message_figure("diagonal kernel: no cross-coupling", 200), {"display": "none"}
        return fig, {}

    def on_identity(self, key: str, sample: Any, layer: Any, harmonic: Any, osc: Any, pos: Any) -> tuple:
        """The identity panel for the selected token: the two figures, the term table, the summary."""
        try:
            out = self.ex.identity(key, sample, layer, harmonic, osc, self.default_pos(key, sample, pos))
        except Exception as exc:
            msg = str(exc) if isinstance(exc, FsnlabError) else internal_error(exc)
            return message_figure(msg, 360), message_figure(msg, 420), html.P(msg, className="help"), html.P(msg, className="help")
        cols = [("k", "k"), ("u", "u"), ("chars", "u→u+1"), ("A", "A_tu"), ("W", "W_tu"), ("Δ_u", "Δ_u"), ("α_u", "α_u"),
                ("successor", "successor form"), ("sakaguchi", "KS form"), ("difference", "difference"),
                ("Σ successor", "Σ successor"), ("Σ sakaguchi", "Σ KS")]
        return out["terms_figure"], out["circle_figure"], html_table(out["rows"], cols, digits=6), identity_summary(out["identity"])

    def on_residuals(self, key: str, sample: Any) -> Any:
        """The probe's whole-run identity check, one row per layer: the residual per harmonic in this
        window, the zero-frustration control (smallest over n), the network-force check, and the
        worst residual over every window of the file."""
        try:
            window_rows, all_rows = self.ex.residuals(key, sample)
        except FsnlabError as exc:
            return html.P(str(exc), className="help")
        if not window_rows:
            return html.P("this probe has no delay identity check (no delay kernel, or not an FSN)", className="help")
        return html_table(residual_pivot(window_rows, all_rows), digits=3)

    def on_export(self, n_clicks: Any, figure: Any) -> Any:
        """Download the figure (as the browser holds it) as one self-contained HTML page."""
        if not n_clicks:
            return no_update
        name = triggered_name() or "figure"
        try:
            page = self.ex.export_html(figure)
        except FsnlabError:
            return no_update
        return dcc.send_string(page, filename=f"fsnlab-{name}.html", type="text/html")


# -- helpers that build components ------------------------------------------------------------


def triggered_name() -> str | None:
    """The ``name`` of the pattern id that triggered the running callback (None outside a callback)."""
    try:
        trig = callback_context.triggered_id
    except Exception:  # called as a plain function (tests): there is no callback context
        return None
    return trig.get("name") if isinstance(trig, dict) else None


def internal_error(exc: BaseException) -> str:
    """Log an unexpected exception's traceback on stderr; the one line the page shows."""
    import sys
    import traceback

    traceback.print_exception(exc, file=sys.stderr)
    return f"internal error: {type(exc).__name__}: {one_line(exc)}"


def short_stage(name: str) -> str:
    """``embed`` / ``blocks.3.attn`` -> ``emb`` / ``3a`` (scrubber marks)."""
    if name == "embed":
        return "emb"
    parts = name.split(".")
    if len(parts) == 3:
        return f"{parts[1]}{parts[2][0]}"
    return name


def text_spans(tokens: list[dict[str, Any]]) -> list[Any]:
    """The text as clickable spans (``data-pos``); the background shows each token's loss."""
    spans = []
    for tok in tokens:
        c = tok["char"]
        cls = "tok"
        if c == "\n":
            shown = "↵\n"
            cls += " ctl"
        elif c == "\t":
            shown, cls = "⇥", cls + " ctl"
        elif c == "":
            shown, cls = "·", cls + " ctl"
        elif c == " ":
            shown = " "
        else:
            shown = display_char(c)
        loss = tok["loss"]
        title = f"t={tok['pos']}" + (f" · {loss:.2f} bit" if loss is not None else "")
        spans.append(html.Span(shown, className=cls, title=title, disable_n_clicks=True,
                               style={"backgroundColor": f"rgba(213,94,0,{0.6 * tok['alpha']:.3f})"},
                               **{"data-pos": str(tok["pos"])}))
    return spans


def token_from_click(data: Any, use_customdata: bool) -> Any:
    """The token position in a plotly ``clickData`` (``customdata`` for the phase circle, ``x`` otherwise)."""
    try:
        point = data["points"][0]
    except (TypeError, KeyError, IndexError):
        return no_update
    value = point.get("customdata") if use_customdata else point.get("x")
    if isinstance(value, list):
        return no_update
    try:
        return int(value)
    except (TypeError, ValueError):
        return no_update


def residual_pivot(window_rows: list[dict[str, Any]], all_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (layer, n) of :func:`fsnlab.viz.identity_residual_table` -> one row per layer."""
    out: dict[int, dict[str, Any]] = {}
    for r in window_rows:  # the residual columns first, in harmonic order
        out.setdefault(r["layer"], {"layer": r["layer"]})[f"residual n={r['n']}"] = r["residual"]
    for r, a in zip(window_rows, all_rows):
        row = out[r["layer"]]
        row["control α=0 (min over n)"] = min(row.get("control α=0 (min over n)", math.inf), r["control"])
        row["max |successor term|"] = max(row.get("max |successor term|", 0.0), r["coupling_max"])
        row["network force vs per-edge sum"] = r["force_check"]
        row["residual, max over all windows"] = max(row.get("residual, max over all windows", 0.0), a["residual"])
    return [out[k] for k in sorted(out)]


def identity_summary(ti: Any) -> Any:
    """The headline numbers of the per-token identity."""
    s = json_safe(ti.summary())
    items = [
        ("Σ successor form (top-k)", _fmt(s["successor_sum"], 9)),
        ("Σ Kuramoto–Sakaguchi form (top-k)", _fmt(s["sakaguchi_sum"], 9)),
        ("|difference|", _fmt(s["residual"], 3)),
        ("max |term difference|", _fmt(s["max_term_residual"], 3)),
        ("control: |Σ successor − Σ with α = 0|", _fmt(s["control_residual"], 3)),
        ("full delay term (network, from Z¹)", _fmt(s["network"], 9)),
        ("coupling weight shown Σ W", _fmt(s["covered_weight"], 4)),
        ("probe residual (window, layer, n)", _fmt(s["probe_residual"], 3)),
    ]
    note = (f"the top-{ti.top_k} keys are every key this token sees: the partial sums are the full sums"
            if ti.complete else
            f"partial sums over the top-{ti.top_k} keys; the full sum (network, Z¹) includes the weaker keys too")
    if getattr(ti, "cross", False):
        note += ("; network kernel (OQ-9): each term sums over the head's senders j, W·Σ_j Im(K¹_ij e^{in(θ_u+1,j − θ_t,i)}), "
                 "with α_u,ij = −(nΔ_u,j + arg K¹_ij); Δ_u and α_u shown are the diagonal entry's (j = i)")
    if ti.approximate_weights:
        note += "; separate_strict weights renormalised over the shown keys (A_tt not among them)"
    if ti.skipped:
        note += " · " + "; ".join(ti.skipped)
    head = (f"t = {ti.pos} · layer {ti.layer} · osc {ti.osc} (head {ti.head}) · n = {ti.harmonic} · "
            f"d_n = {ti.d.real:+.4f}{ti.d.imag:+.4f}i · delay_mask {ti.delay_mask}")
    return html.Div([
        html.Div(head, className="summary-head"),
        html.Div(className="kv", children=[html.Div([html.Span(k, className="k"), html.Span(v, className="v")]) for k, v in items]),
        html.P(note, className="help"),
    ])


def register(app: Any, explorer: Explorer) -> Callbacks:
    """Register every callback of the page on ``app``; return the handlers (for tests)."""
    cb = Callbacks(explorer)
    key = Input("file", "value")
    sample = Input("sample", "value")
    osc = Input("osc", "value")
    layer = Input("layer", "value")
    harmonic = Input("harmonic", "value")
    pos = Input("selected-token", "data")

    app.callback(
        Output("sample", "options"), Output("sample", "value"), Output("osc", "options"), Output("osc", "value"),
        Output("layer", "options"), Output("layer", "value"), Output("harmonic", "options"), Output("harmonic", "value"),
        Output("group", "options"), Output("group", "value"), Output("info", "children"), Output("message", "children"),
        key,
    )(cb.on_file)
    app.callback(Output("selected-token", "data"),
                 Input(gid("phases"), "clickData"), Input(gid("loss"), "clickData"), Input(gid("local-order"), "clickData"),
                 prevent_initial_call=True)(cb.on_click)
    app.callback(Output("text-panel", "children"), key, sample)(cb.on_window)
    app.callback(Output("anim", "data"), Output("frame", "max"), Output("frame", "marks"), key, sample, osc)(cb.on_anim)
    app.callback(Output("selection", "data"), Output("selected-label", "children"), key, sample, osc, pos)(cb.on_selection)
    app.callback(Output(gid("loss"), "figure"), key, sample, pos)(cb.on_loss)
    app.callback(Output(gid("local-order"), "figure"), key, sample, osc, Input("local-mode", "value"), pos)(cb.on_local_order)
    app.callback(Output(gid("global-order"), "figure"), key, sample, osc)(cb.on_global_order)
    app.callback(Output(gid("daido"), "figure"), key, sample, osc, pos, Input("daido-mode", "value"))(cb.on_daido)
    app.callback(Output(gid("frustration"), "figure"), key, sample, layer, osc, Input("frustration-mode", "value"), pos)(cb.on_frustration)
    app.callback(Output(gid("gamma"), "figure"), Output(gid("kernel-polar"), "figure"), Output("kernel-table", "children"),
                 key, layer, Input("group", "value"))(cb.on_kernel)
    app.callback(Output(gid("kernel-matrix"), "figure"), Output("kernel-matrix-card", "style"),
                 key, layer, harmonic)(cb.on_kernel_matrix)
    app.callback(Output(gid("identity-terms"), "figure"), Output(gid("identity-circle"), "figure"),
                 Output("identity-table", "children"), Output("identity-summary", "children"),
                 key, sample, layer, harmonic, osc, pos)(cb.on_identity)
    app.callback(Output("residual-table", "children"), key, sample)(cb.on_residuals)
    app.callback(Output({"type": "fsn-download", "name": MATCH}, "data"),
                 Input({"type": "fsn-export", "name": MATCH}, "n_clicks"),
                 State({"type": "fsn-graph", "name": MATCH}, "figure"), prevent_initial_call=True)(cb.on_export)

    # -- in the browser (assets/explorer.js): no server round trip per frame ----------------
    app.clientside_callback(ClientsideFunction("fsn", "togglePlay"),
                            Output("play", "children"), Input("play", "n_clicks"), prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("fsn", "render"),
                            Output(gid("phases"), "figure"),
                            Input("frame", "value"), Input("anim", "data"), Input("selection", "data"),
                            Input("trail", "value"), Input("color-by", "value"), Input("radius", "value"), Input("show", "value"),
                            Input("speed", "value"))
    app.clientside_callback(ClientsideFunction("fsn", "highlight"),
                            Output("highlight-dummy", "data"), Input("selection", "data"))
    return cb
