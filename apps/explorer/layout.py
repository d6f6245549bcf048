"""The page: controls, the text, the animation and the panels (component tree only, no logic).

Every graph has the id ``{"type": "fsn-graph", "name": NAME}`` and an "HTML" button next to it
(``{"type": "fsn-export", "name": NAME}``) that downloads the figure as a self-contained page; the
plotly modebar's camera button saves a PNG.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

GRAPH_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}


def _slider(**kw: Any) -> Any:
    """A dcc.Slider; Dash 4's number box next to it (``allow_direct_input``) is turned off where it exists."""
    if "allow_direct_input" in dcc.Slider().available_properties:
        kw["allow_direct_input"] = False
    return dcc.Slider(**kw)


def gid(name: str) -> dict[str, str]:
    """The id of graph ``name``."""
    return {"type": "fsn-graph", "name": name}


def graph_card(name: str, title: str, *extra: Any, height: int | None = None, help_text: str | None = None, wide: bool = False) -> html.Div:
    """A titled card with one graph, its export button and download."""
    style = {"height": f"{height}px"} if height else {}
    config = {**GRAPH_CONFIG, "toImageButtonOptions": {**GRAPH_CONFIG["toImageButtonOptions"], "filename": f"fsnlab-{name}"}}
    return html.Div(
        className="card wide" if wide else "card",
        children=[
            html.Div(className="card-head", children=[
                html.H3(title),
                html.Button("HTML", id={"type": "fsn-export", "name": name}, className="export", title="download this figure as a self-contained HTML page"),
                dcc.Download(id={"type": "fsn-download", "name": name}),
            ]),
            *( [html.P(help_text, className="help")] if help_text else [] ),
            *extra,
            dcc.Graph(id=gid(name), config=config, style=style, figure={"data": [], "layout": {"template": "plotly_white"}}),
        ],
    )


def _dropdown(id_: str, label: str, width: int = 160, **kw: Any) -> html.Div:
    return html.Div(className="control", style={"width": f"{width}px"}, children=[
        html.Label(label, htmlFor=id_), dcc.Dropdown(id=id_, clearable=False, searchable=True, **kw)])


def build_layout(file_options: list[dict[str, str]], initial_file: str) -> html.Div:
    """The whole page. ``file_options`` come from the catalog (rescanned on every page load)."""
    header = html.Div(className="header", children=[
        html.Div(className="brand", children=[html.H1("fsnlab · phase explorer"),
                                              html.Span("tokens as phases, attention as frustrated synchronization", className="sub")]),
        html.Div(className="controls", children=[
            _dropdown("file", "probe file", 260, options=file_options, value=initial_file),
            _dropdown("sample", "window", 170),
            _dropdown("osc", "oscillator (coordinate)", 170),
            _dropdown("layer", "layer", 110),
            _dropdown("harmonic", "harmonic", 100),
        ]),
        html.Div(id="info", className="info"),
        html.Div(id="message", className="message"),
    ])

    text = html.Div(className="card wide", children=[
        html.Div(className="card-head", children=[
            html.H3("text"),
            html.Span("click a character to select that token everywhere · background: next-byte loss (darker = higher, within this window)", className="help inline"),
            html.Span(id="selected-label", className="selected-label"),
        ]),
        html.Div(id="text-panel", className="text-panel"),
    ])

    animation_controls = html.Div(className="anim-controls", children=[
        html.Div(className="row", children=[
            html.Button("▶ play", id="play", n_clicks=0, className="play"),
            html.Div(className="slider-box grow", children=[
                html.Label("stage (scrub)"),
                _slider(id="frame", min=0, max=1, step=0.01, value=0, updatemode="drag", marks=None),
            ]),
        ]),
        html.Div(className="row", children=[
            html.Div(className="slider-box", children=[
                html.Label("speed (stages/s)"),
                _slider(id="speed", min=0.25, max=4, step=0.25, value=1, marks={0.25: "¼", 1: "1", 2: "2", 4: "4"}),
            ]),
            html.Div(className="slider-box", children=[
                html.Label("trail (stages)"),
                _slider(id="trail", min=0, max=4, step=1, value=1, marks={i: str(i) for i in range(5)}),
            ]),
            html.Div(className="control", children=[
                html.Label("colour"),
                dcc.RadioItems(id="color-by", options=[{"label": " position", "value": "position"}, {"label": " character", "value": "class"}],
                               value="position", inline=True),
            ]),
            html.Div(className="control", children=[
                html.Label("radius"),
                dcc.RadioItems(id="radius", options=[{"label": " unit", "value": "unit"}, {"label": " by position", "value": "position"}],
                               value="unit", inline=True),
            ]),
            dcc.Checklist(id="show", options=[{"label": " couplings", "value": "edges"}, {"label": " Z⁰/Z¹", "value": "fields"}],
                          value=["edges", "fields"], inline=True),
        ]),
    ])

    phases = graph_card(
        "phases", "phases on the circle", animation_controls, height=560,
        help_text=("One point per token at (cos θ, sin θ) of the chosen coordinate, stage by stage (embedding, then each "
                   "attention and feed-forward step). Selected token (ring): orange lines to its top-k attended tokens u "
                   "at the layer acting on these phases; green dashed arrows u → u+1 to their successors, which the delay "
                   "term pulls it toward; black/green vectors: the order parameters Z⁰ of the attended tokens and Z¹ of their successors."),
    )

    right = html.Div(className="stack", children=[
        graph_card("loss", "per-token loss", height=220),
        graph_card("local-order", "local order parameter R (layer × position)",
                   dcc.RadioItems(id="local-mode", options=[{"label": " mean over osc", "value": "mean"}, {"label": " chosen osc", "value": "osc"}],
                                  value="mean", inline=True), height=260),
        graph_card("global-order", "global R, ψ through depth", height=330),
    ])

    kernel = html.Div(className="card wide", children=[
        html.Div(className="card-head", children=[
            html.H3("the kernel as a coupling function"),
            _dropdown("group", "kernel group", 120),
        ]),
        html.P("Γ(φ) = Σ_n Im(c_n e^{inφ}) (attended tokens) and Γ⁺(φ) from the delay coefficients d_n; φ = θ_u − θ_t. "
               "Filled dots: stable locking offsets (Γ'(φ*) > 0). Each c_n = K e^{−iα}: α is the Kuramoto–Sakaguchi angle, "
               "K < 0 a repulsive Daido harmonic; each d_n is KS coupling with the data's frustration −(nΔ_u + arg d_n).", className="help"),
        html.Div(className="grid2", children=[
            graph_card("gamma", "Γ and Γ⁺", height=340),
            graph_card("kernel-polar", "coefficients in the complex plane", height=340),
        ]),
        html.Div(id="kernel-table", className="table-wrap"),
        # the network kernel (OQ-9): shown only when the probe holds its coupling matrices
        html.Div(id="kernel-matrix-card", style={"display": "none"}, children=[
            graph_card("kernel-matrix", "the network kernel K_ij: strength and frustration of every oscillator pair", height=940,
                       help_text=("Network reading of the kernel (spec §3.4, OQ-9): within each head oscillator j of the sender "
                                  "couples to oscillator i of the receiver with strength |K_ij| and frustration α_ij = −arg K_ij "
                                  "(layer and harmonic from the selectors; K⁰ the attended tokens, K¹ their successors, whose "
                                  "frustration in the delay identity is −(nΔ_u,j + arg K¹_ij)). The diagonal is c_n, d_n (the table above)."),
                       wide=True),
        ]),
    ])

    identity = html.Div(className="card wide", children=[
        html.Div(className="card-head", children=[html.H3("the delay identity, verified here")]),
        html.P(["For the selected token t, layer, coordinate (and the head that owns it) and harmonic n, each attended key u < t "
                "contributes to the delay term the network's way, ", html.B("W·Im(d_n e^{in(θ_{u+1} − θ_t)})"),
                " (coupling to the successor), and the Kuramoto–Sakaguchi way, ",
                html.B("W·|d_n| sin(n(θ_u − θ_t) − α_u)"), " with α_u = −(nΔ_u + arg d_n) and Δ_u = θ_{u+1} − θ_u "
                "(coupling to u itself, frustrated by the data's transition). Both are computed by fsnlab.models.kernel "
                "(successor_coupling, sakaguchi_coupling, delay_frustration, transitions) in float64 on the probe's phases. "
                "Weights come from the probe's top-k couplings, so the page shows the k strongest terms and their partial sums; "
                "the full sum as the network computed it (from Z¹) and the probe's exact whole-run residuals are shown alongside."],
               className="help"),
        html.Div(id="identity-summary", className="summary"),
        html.Div(className="grid2", children=[
            graph_card("identity-terms", "term by term", height=360),
            graph_card("identity-circle", "each term's frustration angle on the circle", height=420),
        ]),
        html.Div(id="identity-table", className="table-wrap"),
        html.H4("whole run: the probe's check (delay_identity_*), float64 over every edge of the first identity_positions queries"),
        html.Div(id="residual-table", className="table-wrap"),
    ])

    lower = html.Div(className="grid2", children=[
        graph_card("daido", "Daido order parameters |Z_n|",
                   dcc.RadioItems(id="daido-mode", options=[{"label": " mean over tokens", "value": "mean"}, {"label": " selected token", "value": "token"}],
                                  value="mean", inline=True), height=300),
        graph_card("frustration", "the data's frustration angles Δ_u",
                   dcc.RadioItems(id="frustration-mode", options=[{"label": " all osc", "value": "all"}, {"label": " chosen osc", "value": "osc"}],
                                  value="all", inline=True), height=360),
    ])

    return html.Div(className="page", children=[
        dcc.Store(id="selected-token", data=None),
        dcc.Store(id="anim"),
        dcc.Store(id="selection"),
        dcc.Store(id="highlight-dummy"),
        header,
        text,
        html.Div(className="grid-main", children=[phases, right]),
        lower,
        kernel,
        identity,
        html.Footer(className="footer", children=[
            "fsnlab explore · spec: Nunley, Attention as Frustrated Synchronization (arXiv 2606.18694) · sign convention: "
            "dθ_i/dt = Σ_j K_ij sin(θ_j − θ_i − α), c = K e^{−iα} · docs/explorer.md"]),
    ])
