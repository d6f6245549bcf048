"""Matched budget (spec §9.2, §9.3): FSN against a parameter-matched RoPE-SwiGLU transformer, with
the unfrustrated base layer (KA) and the mean-field FSN-MF, at the same token budget, on text and
on code. Within a seed every arm sees the same batches in the same order and initialises from the
same distributions. Report: per-evaluation validation curves with seed bands; final bpc with
mean ± sd, median, a t-distribution 95% CI, and paired t / Wilcoxon tests against the transformer.

    python studies/matched_budget.py --scale smoke
    python studies/matched_budget.py --scale paper --data enwik8:data/enwik8.zip [--epochs 50] [--tuned runs/studies/paper/baseline_tuning]
"""

# No `from __future__ import annotations`: the Options dataclass needs real field types, since
# dataclasses cannot resolve string annotations in a script loaded by path (as the tests load it).

from dataclasses import dataclass

from fsnlab.study import Manifest
from fsnlab.study.driver import (
    LrOptions, StudyContext, add_arm_runs, arm_lrs, entry_points, split_list, study_arguments,
)

KIND = "matched_budget"
ARMS = ("fsn", "transformer", "ka", "fsn-mf")
CORPORA = ("text", "code")


def build_manifest(ctx: StudyContext) -> Manifest:
    p = ctx.protocol
    arms = split_list(ctx.args.arms, ARMS)
    lrs = arm_lrs(ctx, arms)
    corpora = split_list(ctx.args.corpora, CORPORA)
    manifest = Manifest(KIND, f"Matched budget: FSN vs transformer at the {p.rung} rung ({p.scale} scale)", p.scale,
                        settings={"arms": arms, "lrs": lrs, "corpora": corpora})
    for corpus in corpora:
        data = ctx.text_data() if corpus == "text" else ctx.code_data()
        seeds = p.headline_seeds if corpus == "text" else p.seeds  # 5 headline, 3 elsewhere (paper scale)
        manifest.settings[f"data_{corpus}"] = data
        add_arm_runs(manifest, ctx, arms, lrs, data, seeds, corpus=corpus)
    return manifest


@dataclass
class Options(LrOptions):
    """The matched-budget study's options besides the shared ones and --arms (one flag per field)."""

    corpora: str = ",".join(CORPORA)  # comma-separated corpora of the runs, text and/or code


add_arguments = study_arguments(ARMS, Options)
run, main = entry_points(KIND, __doc__, build_manifest, (), add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
