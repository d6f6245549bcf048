"""Ablation ladder (spec §6, OQ-32): the FSN layer with the unfrustrated base kernel, with each kind
of frustration alone (+harmonics, +sakaguchi, +delay) and with the full kernel, same preset, budget
and seeds (``model_overrides={"kernel": ...}``; the full kernel is the preset itself, so its runs
are shared with the matched-budget study).

    python studies/ablation_ladder.py --scale smoke
    python studies/ablation_ladder.py --scale paper --data enwik8:data/enwik8.zip
"""

# No `from __future__ import annotations`: the Options dataclass needs real field types, since
# dataclasses cannot resolve string annotations in a script loaded by path (as the tests load it).

from dataclasses import dataclass

from fsnlab.study import Manifest
from fsnlab.study.driver import LrOptions, StudyContext, arm_lrs, entry_points, split_list, study_arguments

KIND = "ablation_ladder"
KERNELS = ("base", "+harmonics", "+sakaguchi", "+delay", "full")


def build_manifest(ctx: StudyContext) -> Manifest:
    p = ctx.protocol
    kernels = split_list(ctx.args.kernels, KERNELS)
    lr = arm_lrs(ctx, ["fsn"])["fsn"]
    data = ctx.text_data()
    manifest = Manifest(KIND, f"Ablation ladder of the FSN kernel at the {p.rung} rung ({p.scale} scale)", p.scale,
                        settings={"kernels": kernels, "lr": lr, "data_text": data})
    for seed in range(p.seeds):
        for kernel in kernels:
            config = p.train_config(f"fsn-{p.rung}", data=data, seed=seed, lr=lr,
                                    kernel=None if kernel == "full" else kernel)
            manifest.add(config, arm="fsn", kernel=kernel, seed=seed, corpus="text", lr=lr, rung=p.rung)
    return manifest


@dataclass
class Options(LrOptions):
    """The ablation ladder's options besides the shared ones (one flag per field)."""

    kernels: str = ",".join(KERNELS)  # comma-separated kernel settings


add_arguments = study_arguments(options=Options)
run, main = entry_points(KIND, __doc__, build_manifest, (), add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
