"""Copy depth (spec §9.5): the copy depth and copy distance of every validation target are computed
from the data alone (:func:`fsnlab.study.copydepth.copy_depth_windows`: the longest k-gram ending
at the target's input that occurred earlier in the same context window with the correct
continuation, capped at 32), then each trained model's per-target losses are pooled into the depth
bins 0–1, 2–3, 4–7, 8–15, 16–23, 24–32 and the distance bins 1–16, 17–64, 65–256, 257+. Report:
per-bin mean loss of each model and its difference from the transformer, with seed CIs.

The runs are the matched-budget study's text runs (same configs, so a shared run pool trains
them once).

    python studies/copy_depth.py --scale smoke
    python studies/copy_depth.py --scale paper --data enwik8:data/enwik8.zip [--epochs 50]
"""

from __future__ import annotations

from fsnlab.study import Manifest
from fsnlab.study.analyses import copy_depth_analysis
from fsnlab.study.driver import (
    LrOptions, StudyContext, add_arm_runs, arm_lrs, entry_points, split_list, study_arguments,
)

KIND = "copy_depth"
ARMS = ("transformer", "fsn", "ka", "fsn-mf")


def build_manifest(ctx: StudyContext) -> Manifest:
    p = ctx.protocol
    arms = split_list(ctx.args.arms, ARMS)
    lrs = arm_lrs(ctx, arms)
    data = ctx.text_data()
    manifest = Manifest(KIND, f"Copy depth: loss by copy depth and distance at the {p.rung} rung ({p.scale} scale)",
                        p.scale, settings={"arms": arms, "lrs": lrs, "data_text": data})
    add_arm_runs(manifest, ctx, arms, lrs, data, p.headline_seeds)
    return manifest


def analyse(ds, manifest: Manifest, ctx: StudyContext):  # noqa: ANN001, ANN201
    return copy_depth_analysis(
        ds, manifest, ctx.runs_dir, ctx.study_dir, eval_bytes=ctx.protocol.eval_bytes,
        batch_size=ctx.protocol.batch_size, device=ctx.args.analysis_device, log=ctx.log,
    )


add_arguments = study_arguments(ARMS, LrOptions)
run, main = entry_points(KIND, __doc__, build_manifest, (analyse,), add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
