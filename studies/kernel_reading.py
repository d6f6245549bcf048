"""Kernel reading (spec §10): for trained FSNs (and FSN-MF, which has the same kernel), the learned
Kuramoto–Sakaguchi angles, signed Daido amplitudes and delay coefficients per layer, head and
harmonic, read with :func:`fsnlab.probe.probe`, across seeds: is the learned coupling function
reproducible? Heads are interchangeable between seeds, so the report compares
permutation-invariant summaries. The runs are the matched-budget study's text runs.

    python studies/kernel_reading.py --scale smoke
    python studies/kernel_reading.py --scale paper --data enwik8:data/enwik8.zip
"""

from __future__ import annotations

from fsnlab.study import Manifest
from fsnlab.study.analyses import kernel_analysis
from fsnlab.study.driver import (
    LrOptions, StudyContext, add_arm_runs, arm_lrs, entry_points, split_list, study_arguments,
)

KIND = "kernel_reading"
ARMS = ("fsn", "fsn-mf")


def build_manifest(ctx: StudyContext) -> Manifest:
    p = ctx.protocol
    arms = split_list(ctx.args.arms, ARMS)
    lrs = arm_lrs(ctx, arms)
    data = ctx.text_data()
    manifest = Manifest(KIND, f"Kernel reading of trained FSNs at the {p.rung} rung ({p.scale} scale)", p.scale,
                        settings={"arms": arms, "lrs": lrs, "data_text": data})
    add_arm_runs(manifest, ctx, arms, lrs, data, p.seeds)
    return manifest


def analyse(ds, manifest: Manifest, ctx: StudyContext):  # noqa: ANN001, ANN201
    return kernel_analysis(ds, manifest, ctx.runs_dir, ctx.study_dir, log=ctx.log)


add_arguments = study_arguments(ARMS, LrOptions)
run, main = entry_points(KIND, __doc__, build_manifest, (analyse,), add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
