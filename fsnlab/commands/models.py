"""``fsnlab params`` and ``fsnlab presets``: the component-wise parameter budgets."""

from __future__ import annotations

import argparse
import json

from fsnlab.models import RUNG_TARGETS, get_preset, list_presets, parameter_breakdown, preset_rung
from fsnlab.models.build import COMPONENTS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "params",
        help="component-wise parameter count of a preset",
        description="Print the parameter count of PRESET by component: embedding, score map, kernel "
        "(the value pathway), feed-forward or modes (FSN-MF), norms, readout and total.",
    )
    p.add_argument("preset", metavar="PRESET", help="a preset name; `fsnlab presets` lists them")
    p.add_argument("--json", action="store_true", help="print JSON (with the resolved config) instead of a table")
    p.set_defaults(handler=run_params)

    p = subparsers.add_parser(
        "presets",
        help="list every preset with its parameter count",
        description="List the presets: each rung (tiny, small, 1m, 2m, 4m, 8m) has fsn (full kernel), "
        "ka (unfrustrated base layer), fsn-mf (mean-field, no MLP) and transformer at the same budget.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run_presets)


def run_params(args: argparse.Namespace) -> int:
    config = get_preset(args.preset)
    counts = parameter_breakdown(config)
    if args.json:
        from fsnlab.models import config_to_dict

        print(json.dumps({"preset": args.preset, "parameters": counts, "config": config_to_dict(config)}, indent=2))
        return 0
    target = RUNG_TARGETS[preset_rung(args.preset)]
    print(f"{args.preset} ({config.family})")
    for component in COMPONENTS:
        if counts[component]:
            print(f"  {component:<13} {counts[component]:>12,}")
    print(f"  {'total':<13} {counts['total']:>12,}   ({100 * (counts['total'] - target) / target:+.2f}% of {target:,})")
    return 0


def run_presets(args: argparse.Namespace) -> int:
    rows = []
    for name in list_presets():
        config = get_preset(name)
        rows.append(
            {
                "preset": name,
                "family": config.family,
                "kernel": getattr(config, "kernel", "-") if config.family == "fsn" else "-",
                "ffn": getattr(config, "ffn", "swiglu"),
                "context_length": config.context_length,
                "parameters": parameter_breakdown(config)["total"],
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'preset':<18} {'family':<12} {'kernel':<8} {'ffn':<11} {'T':>5} {'parameters':>12}")
    for r in rows:
        print(f"{r['preset']:<18} {r['family']:<12} {r['kernel']:<8} {r['ffn']:<11} {r['context_length']:>5} {r['parameters']:>12,}")
    return 0
