"""Baseline tuning (spec §7.2, review request §0.1): the peak-LR sweep that makes the transformer
baseline "tuned", and the same sweep for the FSN, on text, at the budget being compared. The chosen
LRs feed the other studies through ``--tuned STUDY_DIR``.

    python studies/baseline_tuning.py --scale smoke                       # LRs 1e-2, 3e-3
    python studies/baseline_tuning.py --scale paper --data enwik8:data/enwik8.zip   # {1e-3, 2e-3, 3e-3, 5e-3}
"""

# No `from __future__ import annotations`: the Options dataclass needs real field types, since
# dataclasses cannot resolve string annotations in a script loaded by path (as the tests load it).

from dataclasses import dataclass

from fsnlab.study import Manifest
from fsnlab.study.driver import StudyContext, entry_points, float_list, split_list, study_arguments

KIND = "baseline_tuning"
ARMS = ("transformer", "fsn")


def build_manifest(ctx: StudyContext) -> Manifest:
    p = ctx.protocol
    arms = split_list(ctx.args.arms, ARMS)
    lrs = float_list(ctx.args.lrs, p.lr_sweep, "--lrs")
    data = ctx.text_data()
    manifest = Manifest(KIND, f"Baseline tuning: peak-LR sweep at the {p.rung} rung ({p.scale} scale)", p.scale,
                        settings={"arms": arms, "lrs": lrs, "data_text": data})
    for seed in range(p.seeds):
        for arm in arms:
            for lr in lrs:
                config = p.train_config(f"{arm}-{p.rung}", data=data, seed=seed, lr=lr)
                manifest.add(config, arm=arm, seed=seed, corpus="text", lr=lr, rung=p.rung)
    return manifest


@dataclass
class Options:
    """The baseline tuning's options besides the shared ones and --arms (one flag per field)."""

    lrs: str | None = None  # comma-separated peak LRs (default: smoke 1e-2,3e-3; paper 1e-3,2e-3,3e-3,5e-3)


add_arguments = study_arguments(ARMS, Options)
run, main = entry_points(KIND, __doc__, build_manifest, (), add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
