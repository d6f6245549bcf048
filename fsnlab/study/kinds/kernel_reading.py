"""Kernel reading (spec §10): the learned coupling kernel of trained FSNs read as a coupling
function (Kuramoto–Sakaguchi angles α, signed Daido amplitudes K, delay coefficients) per layer,
head and harmonic, and how reproducible it is across seeds.

Heads are interchangeable across seeds, so each seed is summarised by statistics invariant to a
permutation of its heads; angles α are defined modulo π (α + π with −K is the same coupling), so
their means and spreads are axial: the circular statistics of :mod:`fsnlab.dynamics.circular` on
the doubled angles, halved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from fsnlab.dynamics.circular import circular_mean, circular_std
from fsnlab.study import claims as C
from fsnlab.study.align import select, tag_values
from fsnlab.study.formatting import fmt
from fsnlab.study.labels import ARM_ORDER, label
from fsnlab.study.page import Page, verdict
from fsnlab.study.sections import claim_row, curves, header, paper_table
from fsnlab.study.stats import describe

KIND = "kernel_reading"


def axial_mean(angles: np.ndarray, weights: np.ndarray | None = None, axis: int = -1) -> np.ndarray:
    """Circular mean of angles modulo π along ``axis`` (NaN angles and weights count as 0)."""
    a = np.nan_to_num(np.asarray(angles, dtype=np.float64))
    w = None if weights is None else np.nan_to_num(np.asarray(weights, dtype=np.float64))
    return circular_mean(2 * a, axis=axis, weights=w) / 2


def axial_sd(angles: np.ndarray) -> float:
    """Circular standard deviation of the finite angles modulo π (NaN with fewer than 2)."""
    a = np.asarray(angles, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size < 2:
        return math.nan
    return float(circular_std(2 * a)) / 2


@dataclass(frozen=True)
class Coefficient:
    """One kernel coefficient of one head of one run."""

    arm: str
    layer: int
    delay: int
    harmonic: int
    seed: int
    head: int
    alpha: float
    K: float


def group_dim(ds: xr.Dataset) -> str:
    """The kernel's group dimension (``head``, or ``osc`` for per-coordinate kernels)."""
    return [d for d in ds["sakaguchi_alpha"].dims if d not in ("run", "layer", "delay", "harmonic")][0]


def read(sub: xr.Dataset, arms: list) -> tuple[list[list], list[Coefficient]]:
    """Per arm, layer, delay and harmonic with a non-zero K: the summary row over seeds, and every
    coefficient."""
    g = group_dim(sub)
    summary, coefficients = [], []
    for arm in arms:
        a = select(sub, arm=arm)
        alpha, K = a["sakaguchi_alpha"], a["daido_K"]  # run, layer, delay, group, harmonic
        for layer in alpha["layer"].values:
            for delay in alpha["delay"].values:
                for n in alpha["harmonic"].values:
                    al = alpha.sel(layer=layer, delay=delay, harmonic=n).transpose("run", g).values
                    kk = K.sel(layer=layer, delay=delay, harmonic=n).transpose("run", g).values
                    if not np.isfinite(kk).any() or np.nanmax(np.abs(kk)) == 0:
                        continue
                    seed_alpha = axial_mean(al, np.abs(kk), axis=1)  # |K|-weighted: α of K ≈ 0 is ill-defined
                    seed_K = np.nanmean(kk, axis=1)
                    seed_rep = np.nanmean(kk < 0, axis=1)
                    sk = describe(seed_K)
                    a_mean = float(axial_mean(seed_alpha))
                    within = float(np.nanmean(np.nanstd(kk, axis=1, ddof=1))) if kk.shape[1] > 1 else math.nan
                    summary.append([label(arm), int(layer), int(delay), int(n), fmt(a_mean, 3), fmt(axial_sd(seed_alpha), 3),
                                    fmt(sk["mean"], 3), fmt(sk["sd"], 3), fmt(within, 3), fmt(float(np.nanmean(seed_rep)), 2)])
                    for r, seed in enumerate(a["seed"].values):
                        for h in range(al.shape[1]):
                            coefficients.append(Coefficient(arm, int(layer), int(delay), int(n), int(seed), h, al[r, h], kk[r, h]))
    return summary, coefficients


def claim_rows(ds: xr.Dataset, coefficients: list[Coefficient]) -> list[list]:
    n_rep = sum(1 for c in coefficients if c.K < 0)
    first = [abs(c.alpha) for c in coefficients if c.harmonic == 1 and c.delay == 0]
    return [
        claim_row(C.NAMED_COEFFICIENTS, f"{len(coefficients)} coefficients read; {n_rep} with K < 0 (repulsive Daido terms)",
                  verdict(None), "no paper numbers"),
        claim_row(C.SMALL_RANDOM_ANGLES,
                  f"median |α| (harmonic 1, delay 0): {fmt(float(np.nanmedian(first)) if coefficients else math.nan, 3)} rad",
                  verdict(None), "not comparable" if ds.attrs.get("scale") != "paper" else "no paper numbers"),
    ]


def _figures(page: Page, arm: str, coefficients: list[Coefficient]) -> None:
    from fsnlab.viz.study import SeedCoefficients, coefficients_figure

    mine = [c for c in coefficients if c.arm == arm]
    seeds = sorted({c.seed for c in mine})
    for attr, title, unit in (("alpha", "Kuramoto–Sakaguchi angle α", "radian"), ("K", "signed Daido amplitude K", "1")):
        per_seed = []
        for seed in seeds:
            pts = [c for c in mine if c.seed == seed]
            per_seed.append(SeedCoefficients(seed, [f"L{c.layer} {'d' if c.delay else 'c'}{c.harmonic}" for c in pts],
                                             [getattr(c, attr) for c in pts], [f"head {c.head}" for c in pts]))
        page.figure(coefficients_figure(per_seed, f"{label(arm)}: {title} per layer and coefficient (c_n: delay 0, d_n: delay 1); dots: heads",
                                        unit, zero_line=attr == "K"))


def _layer_rows(a: xr.Dataset, arm: str, g: str) -> list[list]:
    """Per layer: step size, gate and (head-mean) temperature, mean ± sd over seeds."""
    rows = []
    for layer in a["layer"].values:
        row = [label(arm), int(layer)]
        for var in ("step_size_mean", "gate_mean"):
            if var in a:
                s = describe(a[var].sel(layer=layer).values)
                row.append(f"{fmt(s['mean'], 3)} ± {fmt(s['sd'], 3)}")
            else:
                row.append("–")
        if "temperature" in a:
            s = describe(a["temperature"].sel(layer=layer).mean(g if g in a["temperature"].dims else "head").values)
            row.append(f"{fmt(s['mean'], 3)} ± {fmt(s['sd'], 3)}")
        else:
            row.append("–")
        rows.append(row)
    return rows


def section(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "The learned coupling kernel of trained FSNs read as a coupling function (spec §10): "
           "Kuramoto–Sakaguchi angles α = −arg c, signed Daido amplitudes K (c = K e^{−iα}; K < 0 is repulsive) and the "
           "delay (successor) coefficients d, per layer, head and harmonic, across seeds.")
    if "sakaguchi_alpha" not in ds:
        page.p("No kernel readings in this dataset.")
        return
    page.note("Sign convention: " + ds.attrs.get("kernel_sign_convention", "dθ_i/dt = Σ_j K_ij sin(θ_j − θ_i − α)"))
    sub = ds.isel(run=np.flatnonzero(ds["status"].values == "done"))
    g = group_dim(sub)
    arms = tag_values(sub, "arm", ARM_ORDER)
    summary, coefficients = read(sub, arms)
    paper_table(page, claim_rows(ds, coefficients))
    page.h(2, "Reproducibility across seeds")
    page.note("Heads are interchangeable, so head h of one seed need not be head h of another. Each seed is therefore "
              "summarised by permutation-invariant statistics over its heads (the |K|-weighted circular mean of α, the mean K "
              "and the fraction of repulsive heads); 'over seeds' is the spread of those summaries (for α the circular sd of "
              "angles modulo π, since α + π with −K is the same coupling), to be read against the spread of K across the heads "
              "of one seed. Angles of harmonics with K near 0 are ill-defined: hence the |K| weights.")
    page.table(["arm", "layer", "delay", "harmonic", "α mean over seeds", "α sd over seeds", "K mean over seeds", "K sd over seeds",
                "K sd across heads (mean over seeds)", "fraction repulsive"], summary, left=4)
    for arm in arms:
        _figures(page, arm, coefficients)
        page.table(["arm", "layer", "step size η (mean ± sd over seeds)", "gate", "temperature β (head mean)"],
                   _layer_rows(select(sub, arm=arm), arm, g), left=2)
    page.h(2, "All coefficients")
    page.details("every coefficient (arm, layer, delay, harmonic, seed, head, α, K)",
                 "\n".join(f"{c.arm}\t{c.layer}\t{c.delay}\t{c.harmonic}\t{c.seed}\t{c.head}\t{c.alpha:.5f}\t{c.K:.5f}" for c in coefficients))
    page.h(2, "Validation curves of the runs read")
    page.figure(curves(ds, "arm", "validation loss per evaluation"))
