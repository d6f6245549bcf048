"""Per-token loss over the text (bits per byte): where the dynamics pays off in prediction."""

from __future__ import annotations

from typing import Any

import numpy as np

from fsnlab.viz.common import VizError, base_layout, display_char, go, sample_index, sample_label, values


def loss_figure(ds: Any, sample: int = 0, selected: int | None = None) -> Any:
    """``loss_bits`` per position of one window (−log₂ p of the next byte), with the window's mean;
    hover shows the character and the byte it predicts."""
    if "loss_bits" not in ds.variables:
        raise VizError("this probe holds no loss_bits")
    s = sample_index(ds, sample)
    loss = values(ds["loss_bits"].isel(sample=s)).astype(np.float64)
    chars = [str(c) for c in values(ds["char"].isel(sample=s))]
    T = loss.size
    nxt = [display_char(chars[i + 1]) if i + 1 < T else "…" for i in range(T)]
    custom = np.stack([np.array([display_char(c) for c in chars], dtype=object), np.array(nxt, dtype=object)], axis=-1)
    Bar = go.Bar
    fig = go.Figure(Bar(
        x=np.arange(T), y=loss, customdata=custom, name="loss", marker={"color": loss, "colorscale": "OrRd", "cmin": 0},
        hovertemplate="t=%{x} '%{customdata[0]}' → '%{customdata[1]}'<br>%{y:.2f} bit<extra></extra>",
    ))
    finite = loss[np.isfinite(loss)]
    if finite.size:
        fig.add_hline(y=float(finite.mean()), line={"color": "#000000", "dash": "dot", "width": 1},
                      annotation_text=f"mean {finite.mean():.3f} bit/byte", annotation_position="top right")
    if selected is not None:
        fig.add_vline(x=int(selected), line={"color": "#D55E00", "width": 2})
    fig.update_layout(**base_layout(f"next-byte loss · sample {sample_label(ds, s)}"), height=220, bargap=0, showlegend=False)
    fig.update_xaxes(title_text="position")
    fig.update_yaxes(title_text="bits", rangemode="tozero")
    return fig
