"""Scale ladder (spec §9.4, OQ-31): FSN and the transformer at each rung of matched parameter
counts (paper: 1M, 2M, 4M; add 8M with ``--rungs 1m,2m,4m,8m``), the schedule and context kept
fixed. Smoke: the tiny and small rungs.

    python studies/scale_ladder.py --scale smoke
    python studies/scale_ladder.py --scale paper --data enwik8:data/enwik8.zip [--rungs 1m,2m,4m,8m]
"""

# No `from __future__ import annotations`: the Options dataclass needs real field types, since
# dataclasses cannot resolve string annotations in a script loaded by path (as the tests load it).

from dataclasses import dataclass

from fsnlab.study import Manifest
from fsnlab.study.driver import (
    LrOptions, StudyContext, add_arm_runs, arm_lrs, entry_points, split_list, study_arguments,
)

KIND = "scale_ladder"
ARMS = ("fsn", "transformer")


def build_manifest(ctx: StudyContext) -> Manifest:
    p = ctx.protocol
    arms = split_list(ctx.args.arms, ARMS)
    rungs = split_list(ctx.args.rungs, p.ladder_rungs)
    lrs = arm_lrs(ctx, arms)
    data = ctx.text_data()
    manifest = Manifest(KIND, f"Scale ladder: {', '.join(rungs)} ({p.scale} scale)", p.scale,
                        settings={"arms": arms, "rungs": rungs, "lrs": lrs, "data_text": data})
    for rung in rungs:
        add_arm_runs(manifest, ctx, arms, lrs, data, p.seeds, rung=rung)
    return manifest


@dataclass
class Options(LrOptions):
    """The scale ladder's options besides the shared ones and --arms (one flag per field)."""

    rungs: str | None = None  # comma-separated rungs (default: smoke tiny,small; paper 1m,2m,4m)


add_arguments = study_arguments(ARMS, Options)
run, main = entry_points(KIND, __doc__, build_manifest, (), add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
