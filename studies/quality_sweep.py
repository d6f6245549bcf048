"""Quality work (issue 9): why the FSN trails the matched transformer, and which switch closes the gap.

Every idea is a config switch (a model override or a training option); every number comes from a
run this script made, with several seeds. Runs are independent and resumable: a finished run
(its metrics hold the final evaluation) is read back, not retrained.

    python studies/quality_sweep.py lr        --protocol tiny   # LR sweep, both arms
    python studies/quality_sweep.py variants  --protocol tiny   # FSN switches at the FSN's best LR
    python studies/quality_sweep.py confirm   --protocol small  # the best switches vs both baselines
    python studies/quality_sweep.py table     --protocol tiny   # print the results table again
    python studies/quality_sweep.py curves    --protocol tiny-long  # learning curves (val bpc per eval)

Protocols (CPU, embedded KJV corpus, validation bpc on the first ``eval_bytes`` of the val split):

* ``tiny``: rung ``tiny`` (~45k parameters), T = 64, batch 32, 400 steps, eval 50,000 bytes.
* ``small``: rung ``small`` (~0.2M parameters), T = 128, batch 16, 500 steps, eval 100,000 bytes.
* ``tiny-long`` / ``small-long``: the same rungs for 3,000 / 2,000 steps (6.1M / 4.1M tokens, about 135 / 20
  tokens per parameter), evaluated every 500 / 250 steps for learning curves.

Variants that change the parameter count (a tied readout, more layers, a vector embedding) get their
SwiGLU width re-solved (:func:`fsnlab.models.match_budget`) so every arm stays on the rung's budget.

Each protocol has its LR grid and seeds; ``--lrs`` and ``--arms`` restrict a sweep to part of it.

Results: ``studies/results/quality-<protocol>.jsonl`` (one line per run) and the table printed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsnlab.train import TrainConfig, read_metrics, train

ROOT = Path(__file__).resolve().parent
RUNS = ROOT.parent / "runs" / "quality"


@dataclass(frozen=True)
class Protocol:
    rung: str
    context_length: int
    batch_size: int
    max_steps: int
    eval_bytes: int
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    eval_interval: int = 0  # > 0: also evaluate every N steps (learning curves)


PROTOCOLS = {
    "tiny": Protocol("tiny", 64, 32, 400, 50_000, (0, 1), (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
    "small": Protocol("small", 128, 16, 500, 100_000, (0, 1), (3e-3, 1e-2, 3e-2)),
    # the long budgets: many tokens per parameter, where capacity rather than early speed decides
    "tiny-long": Protocol("tiny", 64, 32, 3000, 50_000, (0, 1), (3e-3, 1e-2, 3e-2), eval_interval=500),
    "small-long": Protocol("small", 128, 16, 2000, 100_000, (0, 1), (3e-3, 1e-2), eval_interval=250),
}


# The FSN family's layer as the sweeps began: the presets have since turned the score offset on (it won
# here), so the protocol pins it off and a variant that wants it says so; every recorded run keeps its meaning.
PINNED_MODEL: dict[str, Any] = {"score_offset": False}


@dataclass(frozen=True)
class Variant:
    """A named arm: a family plus model overrides and training options."""

    family: str  # fsn | ka | fsn-mf | transformer
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    matched: bool = True  # False: a diagnostic off the rung's budget, its overrides used as given


VARIANTS: dict[str, Variant] = {
    "transformer": Variant("transformer", note="RoPE-SwiGLU baseline"),
    "transformer:scalar-lr10": Variant("transformer", train={"scalar_lr_scale": 10.0},
                                       note="10x LR on the norm gains (the same switch the FSN gets)"),
    "fsn": Variant("fsn", note="full kernel, spec defaults"),
    "ka": Variant("ka", note="unfrustrated base layer"),
    "fsn:coord": Variant("fsn", {"kernel_sharing": "coord"}, note="one kernel per coordinate (OQ-9)"),
    "fsn:natfreq": Variant("fsn", {"natural_frequency": True}, note="learned natural frequencies (OQ-12)"),
    "fsn:angle-lr10": Variant("fsn", train={"angle_lr_scale": 10.0}, note="10x LR on phase tables (OQ-25)"),
    "fsn:query-gate": Variant("fsn", {"gate": "query"}, note="query-conditioned gate (OQ-4)"),
    "fsn:beta2x": Variant("fsn", {"temperature_init": None}, note="temperature init 2/sqrt(D_h) (OQ-6)"),
    "fsn:eta0.5": Variant("fsn", {"step_size_init": 0.5}, note="coupling strength init 0.5 (OQ-11)"),
    "fsn:eta2": Variant("fsn", {"step_size_init": 2.0}, note="coupling strength init 2 (OQ-11)"),
    "fsn:N2": Variant("fsn", {"n_harmonics": 2}, note="2 harmonics (OQ-9)"),
    "fsn:N8": Variant("fsn", {"n_harmonics": 8}, note="8 harmonics (OQ-9)"),
    "fsn:tied": Variant("fsn", {"readout": "tied"}, note="readout tied to the embedding phases (OQ-16)"),
    "fsn:tanh-embed": Variant("fsn", {"embedding": "tanh"}, note="pi tanh(W) embedding (OQ-3)"),
    "fsn:ffn-norm": Variant("fsn", {"ffn_norm": True}, note="RMSNorm on the SwiGLU hidden layer (OQ-13)"),
    "fsn:separate-strict": Variant("fsn", {"delay_mask": "separate_strict"}, note="own softmax for the delay (OQ-8)"),
    # learning-rate structure: angles are O(1) quantities while matrices start at std 0.02, so one
    # Adam LR moves them at relative rates ~100x apart (meant to be run at the transformer's LR)
    "fsn:angle-lr30": Variant("fsn", train={"angle_lr_scale": 30.0}, note="30x LR on phase tables"),
    "fsn:angle-lr100": Variant("fsn", train={"angle_lr_scale": 100.0}, note="100x LR on phase tables"),
    "fsn:scalar-lr10": Variant("fsn", train={"scalar_lr_scale": 10.0}, note="10x LR on gates, kernels, eta, beta"),
    "fsn:angle30-scalar10": Variant("fsn", train={"angle_lr_scale": 30.0, "scalar_lr_scale": 10.0},
                                    note="30x LR on phase tables, 10x on scalars"),
    "fsn:vector-embed": Variant("fsn", {"embedding": "vector"}, note="embedding = atan2 of learned 2-D vectors (OQ-3)"),
    "fsn:vector-r0.03": Variant("fsn", {"embedding": "vector", "vector_init_radius": 0.03},
                                note="vector embedding of radius 0.03: angular LR about 30x at first, self-annealing"),
    # combinations of the switches that helped one at a time
    "fsn:qgate-angle10": Variant("fsn", {"gate": "query"}, {"angle_lr_scale": 10.0}, note="query gate + 10x angle LR"),
    "fsn:qgate-beta2x-angle10": Variant("fsn", {"gate": "query", "temperature_init": None}, {"angle_lr_scale": 10.0},
                                        note="query gate + temperature 2/sqrt(D_h) + 10x angle LR"),
    "fsn:tied-angle10": Variant("fsn", {"readout": "tied"}, {"angle_lr_scale": 10.0}, note="tied readout + 10x angle LR"),
    "fsn:tied-qgate-angle10": Variant("fsn", {"readout": "tied", "gate": "query"}, {"angle_lr_scale": 10.0},
                                      note="tied readout + query gate + 10x angle LR"),
    "fsn:score-offset": Variant("fsn", {"score_offset": True}, note="learned score offset phi (OQ-4)"),
    "fsn:offset-angle10": Variant("fsn", {"score_offset": True}, {"angle_lr_scale": 10.0},
                                  note="learned score offset phi (OQ-4) + 10x angle LR"),
    "fsn:qgate-offset-angle10": Variant("fsn", {"gate": "query", "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="query gate + score offset + 10x angle LR"),
    "fsn:qoffset-angle10": Variant("fsn", {"query_offset": True}, {"angle_lr_scale": 10.0},
                                   note="query-conditioned score offset phi_t = W [cos; sin] theta_t + b (OQ-4) + 10x angle LR"),
    "fsn:qgate-qoffset-angle10": Variant("fsn", {"gate": "query", "query_offset": True}, {"angle_lr_scale": 10.0},
                                         note="query gate + query-conditioned score offset + 10x angle LR"),
    "fsn:H4-offset-angle10": Variant("fsn", {"n_head": 4, "score_offset": True}, {"angle_lr_scale": 10.0},
                                     note="4 heads of half the width (more coupling patterns, same parameters) + offset + 10x angle LR"),
    "fsn:L3-offset-angle10": Variant("fsn", {"n_layer": 3, "score_offset": True}, {"angle_lr_scale": 10.0},
                                     note="3 layers, FFN width re-solved (OQ-2) + offset + 10x angle LR"),
    "fsn:steps2-offset-angle10": Variant("fsn", {"attn_steps": 2, "score_offset": True}, {"angle_lr_scale": 10.0},
                                         note="2 weight-tied coupling steps per block (AKOrN, OQ-15) + offset + 10x angle LR"),
    # a DIAGNOSTIC, not a candidate default: it lets a sender's broadcast phase depend on all its coordinates
    "fsn:value-offset-angle10": Variant("fsn", {"value_offset": True, "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="DIAGNOSTIC: senders broadcast theta + W[cos; sin]theta (value routing) + offset + 10x angle LR"),
    # DIAGNOSTICS off the budget: how many parameters is the FSN's gap worth?
    "fsn:h128-offset-angle10": Variant("fsn", {"score_offset": True, "ffn_hidden": 128}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="OFF BUDGET (1.45x parameters): FFN width 128 + offset + 10x angle LR"),
    "fsn:h256-offset-angle10": Variant("fsn", {"score_offset": True, "ffn_hidden": 256}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="OFF BUDGET (2.3x parameters): FFN width 256 + offset + 10x angle LR"),
    "transformer:h76": Variant("transformer", {"ffn_hidden": 76}, matched=False,
                               note="OFF BUDGET (0.68x parameters): transformer with half the FFN width"),
    "transformer:h38": Variant("transformer", {"ffn_hidden": 38}, matched=False,
                               note="OFF BUDGET (0.52x parameters): transformer with a quarter of the FFN width"),
    # DIAGNOSTIC: the transformer's attention sublayer on the phase state, against the Kuramoto coupling
    "fsn:dotattn-angle10": Variant("fsn", {"attention": "dot_product"}, {"angle_lr_scale": 10.0},
                                   note="DIAGNOSTIC: transformer attention (W_q, W_k, W_v, W_o, RoPE) on [cos; sin] theta, FFN re-solved"),
    "fsn:dotattn-h64-angle10": Variant("fsn", {"attention": "dot_product"}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="DIAGNOSTIC, OFF BUDGET (57.6k): transformer attention on the phase state, FFN width 64"),
    "fsn:h102-offset-angle10": Variant("fsn", {"score_offset": True, "ffn_hidden": 102}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="OFF BUDGET (57.7k): Kuramoto coupling with FFN width 102, the hybrid's parameter count"),
    "fsn:phase-scores-angle10": Variant("fsn", {"attention": "phase_scores", "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="DIAGNOSTIC: the FSN's score map (with offset), a transformer's W_v, W_o values; FFN re-solved"),
    "fsn:dot-scores-angle10": Variant("fsn", {"attention": "dot_scores"}, {"angle_lr_scale": 10.0},
                                      note="DIAGNOSTIC: a transformer's W_q, W_k scores (RoPE), the Kuramoto kernel values; FFN re-solved"),
    "fsn:coord-offset-angle10": Variant("fsn", {"kernel_sharing": "coord", "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="one kernel per coordinate (OQ-9) + offset + 10x angle LR"),
    "fsn:eta2-offset-angle10": Variant("fsn", {"step_size_init": 2.0, "score_offset": True}, {"angle_lr_scale": 10.0},
                                       note="coupling strength eta = 2 at init (the force's bound doubled, OQ-11) + offset + 10x angle LR"),
    "fsn:N8-offset-angle10": Variant("fsn", {"n_harmonics": 8, "score_offset": True}, {"angle_lr_scale": 10.0},
                                     note="8 harmonics (a richer coupling function, OQ-9) + offset + 10x angle LR"),
    "fsn-mf": Variant("fsn-mf", note="mean-field variant, no MLP (spec 5)"),
    "fsn-mf:angle10": Variant("fsn-mf", train={"angle_lr_scale": 10.0}, note="mean-field variant + 10x angle LR (mode phases too)"),
    "ka:angle10": Variant("ka", train={"angle_lr_scale": 10.0}, note="base layer + 10x angle LR"),
    "fsn:L3": Variant("fsn", {"n_layer": 3}, note="3 layers, FFN width re-solved (OQ-2)"),
    "fsn:L4": Variant("fsn", {"n_layer": 4}, note="4 layers, FFN width re-solved (OQ-2)"),
}


def resolve(variant: Variant, protocol: Protocol) -> Variant:
    """Fill per-rung values (the doubled temperature needs the head width)."""
    if variant.model.get("temperature_init", 0) is None:
        from fsnlab.models import get_preset

        head_dim = get_preset(f"fsn-{protocol.rung}").head_dim
        model = {**variant.model, "temperature_init": 2 / head_dim**0.5}
        return Variant(variant.family, model, variant.train, variant.note, variant.matched)
    return variant


def budget_matched(variant: Variant, rung: str) -> dict[str, Any]:
    """The variant's model overrides plus the re-solved FFN width that keeps it on the rung's budget."""
    from fsnlab.models import RUNG_TARGETS, get_preset, match_budget, replace_config

    preset = get_preset(f"{variant.family}-{rung}")
    if variant.family == "transformer":
        return dict(variant.model)
    model = {**PINNED_MODEL, **variant.model}
    if not variant.model or not variant.matched:
        return model
    matched = match_budget(replace_config(preset, **model), RUNG_TARGETS[rung])
    width = "n_modes" if matched.ffn == "mean_field" else "ffn_hidden"
    extra = {width: getattr(matched, width)} if getattr(matched, width) != getattr(preset, width) else {}
    return {**model, **extra}


def run_one(name: str, protocol_name: str, lr: float, seed: int) -> dict[str, Any]:
    """Train (or read back) one run; returns its record."""
    protocol = PROTOCOLS[protocol_name]
    variant = resolve(VARIANTS[name], protocol)
    variant = Variant(variant.family, budget_matched(variant, protocol.rung), variant.train, variant.note, variant.matched)
    run_dir = RUNS / protocol_name / f"{name.replace(':', '_')}-lr{lr:g}-s{seed}"
    final = _final_eval(run_dir, protocol.max_steps)
    if final is None:
        config = TrainConfig(
            preset=f"{variant.family}-{protocol.rung}",
            seed=seed,
            lr=lr,
            max_steps=protocol.max_steps,
            batch_size=protocol.batch_size,
            context_length=protocol.context_length,
            eval_bytes=protocol.eval_bytes,
            eval_interval=protocol.eval_interval,
            model_overrides=dict(variant.model),
            # the protocol pins the angle LR at 1x (the trainer's default was 1x when the sweeps began):
            # a variant that wants another scale says so, so every recorded run keeps its meaning
            **{"angle_lr_scale": 1.0, **variant.train},
        )
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # an unfinished run from an interrupted sweep: start it again
        train(config, run_dir, quiet=True)
        final = _final_eval(run_dir, protocol.max_steps)
    return {"variant": name, "protocol": protocol_name, "lr": lr, "seed": seed, "val_bpc": final,
            "model": variant.model, "train": variant.train, "run_dir": str(run_dir.relative_to(ROOT.parent))}


def _final_eval(run_dir: Path, steps: int) -> float | None:
    if not (run_dir / "metrics.jsonl").exists():
        return None
    evals = [m for m in read_metrics(run_dir / "metrics.jsonl") if m.get("event") == "eval" and m["step"] == steps]
    return evals[-1]["val_bpc"] if evals else None


def record(protocol: str, rec: dict[str, Any]) -> None:
    out = ROOT / "results" / f"quality-{protocol}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = load(protocol)
    key = (rec["variant"], rec["lr"], rec["seed"])
    if any((r["variant"], r["lr"], r["seed"]) == key for r in existing):
        return
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")


def load(protocol: str) -> list[dict[str, Any]]:
    path = ROOT / "results" / f"quality-{protocol}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def table(protocol: str, markdown: bool = False, only: list[str] | None = None) -> str:
    rows: dict[tuple[str, float], list[float]] = {}
    for r in load(protocol):
        if only and r["variant"] not in only and r["variant"] != "transformer":
            continue
        rows.setdefault((r["variant"], r["lr"]), []).append(r["val_bpc"])
    ref = {lr: statistics.mean(v) for (name, lr), v in rows.items() if name == "transformer"}
    best_ref = min(ref.values()) if ref else None
    ordered = sorted(rows.items(), key=lambda kv: statistics.mean(kv[1]))
    if markdown:
        lines = ["| variant | what it changes | lr | seeds | val bpc | gap to best transformer |",
                 "|---|---|---|---|---|---|"]
        for (name, lr), v in ordered:
            sd = f" ± {statistics.stdev(v):.3f}" if len(v) > 1 else ""
            gap = f"{statistics.mean(v) - best_ref:+.3f}" if best_ref is not None else "-"
            note = VARIANTS[name].note if name in VARIANTS else ""
            lines.append(f"| `{name}` | {note} | {lr:g} | {len(v)} | {statistics.mean(v):.3f}{sd} | {gap} |")
        return "\n".join(lines)
    lines = [f"protocol {protocol}: {PROTOCOLS[protocol]}",
             f"{'variant':<22} {'lr':>7} {'n':>2} {'val bpc mean':>13} {'sd':>7} {'gap to best transformer':>24}"]
    for (name, lr), v in ordered:
        sd = statistics.stdev(v) if len(v) > 1 else float("nan")
        gap = f"{statistics.mean(v) - best_ref:+.3f}" if best_ref is not None else "-"
        lines.append(f"{name:<22} {lr:>7g} {len(v):>2} {statistics.mean(v):>13.4f} {sd:>7.4f} {gap:>24}")
    return "\n".join(lines)


def curves(protocol: str, markdown: bool = False, only: list[str] | None = None) -> str:
    """Learning curves: mean val bpc over seeds at every evaluation, per (variant, lr)."""
    runs: dict[tuple[str, float], list[dict[int, float]]] = {}
    for r in load(protocol):
        if only and r["variant"] not in only:
            continue
        path = ROOT.parent / r["run_dir"] / "metrics.jsonl"
        if path.exists():
            points = {m["step"]: m["val_bpc"] for m in read_metrics(path) if m.get("event") == "eval"}
            runs.setdefault((r["variant"], r["lr"]), []).append(points)
    steps = sorted({s for curves_ in runs.values() for c in curves_ for s in c})
    ordered = sorted(runs.items(), key=lambda kv: statistics.mean(c[max(c)] for c in kv[1]))
    if markdown:
        lines = ["| variant | lr | seeds | " + " | ".join(f"step {s}" for s in steps) + " |",
                 "|---|---|---|" + "---|" * len(steps)]
    else:
        lines = [f"{'variant':<22} {'lr':>7} {'n':>2} " + " ".join(f"{s:>7}" for s in steps)]
    for (name, lr), cs in ordered:
        cells = []
        for s in steps:
            values = [c[s] for c in cs if s in c]
            if not values:
                cells.append("-")
            elif markdown and s == steps[-1] and len(values) > 1:
                cells.append(f"**{statistics.mean(values):.3f}** ± {statistics.stdev(values):.3f}")
            else:
                cells.append(f"{statistics.mean(values):.3f}")
        if markdown:
            lines.append(f"| `{name}` | {lr:g} | {len(cs)} | " + " | ".join(cells) + " |")
        else:
            lines.append(f"{name:<22} {lr:>7g} {len(cs):>2} " + " ".join(f"{c:>7}" for c in cells))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("lr", "variants", "confirm", "table", "curves"))
    ap.add_argument("--protocol", choices=tuple(PROTOCOLS), default="tiny")
    ap.add_argument("--variants", help="comma-separated variant names (default: all for `variants`); "
                    "`table`/`curves`: show only these (`table` keeps the transformer's rows as the reference)")
    ap.add_argument("--lr", type=float, help="FSN learning rate for `variants`/`confirm` (default: best FSN LR so far)")
    ap.add_argument("--lrs", help="comma-separated learning rates for `lr` (default: the protocol's grid)")
    ap.add_argument("--arms", default="transformer,fsn", help="variants swept by `lr` (default: transformer,fsn)")
    ap.add_argument("--seeds", help="comma-separated seeds (default: the protocol's)")
    ap.add_argument("--markdown", action="store_true", help="`table`/`curves`: print a Markdown table")
    args = ap.parse_args()
    protocol = PROTOCOLS[args.protocol]
    lrs = tuple(float(x) for x in args.lrs.split(",")) if args.lrs else protocol.lrs
    seeds = tuple(int(x) for x in args.seeds.split(",")) if args.seeds else protocol.seeds
    asked = (args.variants.split(",") if args.variants else []) + (args.arms.split(",") if args.what == "lr" else [])
    unknown = [name for name in asked if name not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; choose from: {', '.join(VARIANTS)}")
    jobs: list[tuple[str, float, int]] = []
    if args.what == "lr":
        for name in args.arms.split(","):
            jobs += [(name, lr, s) for lr in lrs for s in seeds]
    elif args.what in ("variants", "confirm"):
        names = args.variants.split(",") if args.variants else [n for n in VARIANTS if n.startswith("fsn:") or n == "ka"]
        lr = args.lr or _best_lr(args.protocol, "fsn")
        jobs += [(name, lr, s) for name in names for s in seeds]
        if args.what == "confirm":
            for base in ("transformer", "fsn"):
                jobs += [(base, lr_, s) for lr_ in lrs for s in seeds]
    only = args.variants.split(",") if args.variants else None
    if args.what == "curves":
        print(curves(args.protocol, args.markdown, only))
        return 0
    if args.what == "table":
        print(table(args.protocol, args.markdown, only))
        return 0
    for name, lr, seed in jobs:
        rec = run_one(name, args.protocol, lr, seed)
        record(args.protocol, rec)
        print(f"{name:<22} lr {lr:<7g} seed {seed}: val bpc {rec['val_bpc']:.4f}", flush=True)
    print(table(args.protocol))
    return 0


def _best_lr(protocol: str, variant: str) -> float:
    by_lr: dict[float, list[float]] = {}
    for r in load(protocol):
        if r["variant"] == variant:
            by_lr.setdefault(r["lr"], []).append(r["val_bpc"])
    if not by_lr:
        sys.exit(f"no `{variant}` runs for protocol {protocol} yet: run the `lr` sweep first, or pass --lr")
    return min(by_lr, key=lambda lr: statistics.mean(by_lr[lr]))


if __name__ == "__main__":
    raise SystemExit(main())
