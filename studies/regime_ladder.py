"""Regime ladder (issue 16): the FSN, the unfrustrated base layer (KA), FSN-MF and the matched
transformer at the tiny rung, trained 1, 5, 15 and 50 epochs of the embedded corpus (about 85, 425,
1,275 and 4,250 tokens per parameter; the paper's 1M runs see 2,700–4,500), each budget a run of its
own with the schedule fitted to its length, evaluated on the whole validation split at every epoch.
Report: the gap arm − transformer against tokens per parameter with seed CIs, where its sign
changes, and loss by copy depth on the final checkpoints of the 15- and 50-epoch runs.

The runs (paper scale, i.e. this study's CPU protocol: T = 64, batch 32 = 2,048 tokens per step, one
epoch = one pass over the train split = 1,889 steps; the presets' defaults, 10x angle LR and score
offset on):

* 1 and 5 epochs: FSN and transformer, 2 seeds each, at each arm's default LR (1e-2);
* 15 epochs: FSN, transformer, KA and FSN-MF, 2 seeds each, at 1e-2; and the network reading of the
  kernel (``fsn-net``: a cross-coupling matrix at harmonic 1, OQ-9, FFN width re-solved), the screen of
  issue 16 item 5, with 3 seeds, and so a third FSN seed to pair it with;
* the LR check at 15 epochs: FSN, transformer and KA, seed 0, at 2.5e-3, 5e-3, 1e-2 and 2e-2 (the
  1e-2 run is the ladder's own seed 0). The issue's grid was 5e-3 … 2e-2; 2.5e-3 was added on
  2026-12-02, when the FSN's 5e-3 run led its 1e-2 run at each of its first 9 epochs, so that no
  arm's optimum could sit at the grid's lower edge (it fell behind from epoch 11 and finished at
  2.192 against 2.173; the smoke scale keeps three LRs);
* 50 epochs: FSN, transformer and KA, 3 seeds each, at each arm's better LR of its check.

The 50-epoch runs of an arm join the manifest when every run of its LR check has finished (or
failed); until then the script says that they wait, and once a pass has finished the check it
trains them in a second pass. ``--long-lr ARM=LR`` sets that LR by hand. Runs are in the shared
pool, resumable (every epoch is a checkpoint), so the ladder can span several sittings; rerun the
same command to continue. ``--report-only`` writes ``study.nc`` and the report from the runs as
they stand, training nothing (e.g. while another process trains); every pass also writes
``summary.md``, the answer as markdown tables for docs/quality.md.

    python studies/regime_ladder.py --scale smoke
    OMP_NUM_THREADS=1 python studies/regime_ladder.py --scale paper --jobs 2 --threads 1
    python studies/regime_ladder.py --scale paper --report-only
"""

# No `from __future__ import annotations`: the Options dataclass needs real field types, since
# dataclasses cannot resolve string annotations in a script loaded by path (as the tests load it).

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from fsnlab.study import Manifest
from fsnlab.study.driver import (
    StudyContext, StudyResult, arm_lrs, entry_points, make_context, split_list, study_arguments, study_parser,
)
from fsnlab.study.manifest import StudyError
from fsnlab.study.protocol import normalize_data_spec
from fsnlab.study.regime import KIND, LADDER, LR_CHECK, choose_lr, lr_message, regime_analysis
from fsnlab.train import TrainConfig

ARMS = ("fsn", "transformer", "ka", "fsn-mf", "fsn-net")
#: arms that are a preset's family with model overrides, the FFN width re-solved to the rung's budget: the
#: network reading of the kernel (OQ-9, issue 16 item 5), a full cross-coupling at harmonic 1 (it led the
#: tiny-long screen: docs/quality.md)
ARM_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"fsn-net": ("fsn", {"kernel_form": "network1"})}
SCREEN_ARMS = ("fsn", "fsn-net")  # at the check budget: the network kernel's screen (paired by seed)
BUDGETS = (1.0, 5.0, 15.0, 50.0)
CHECK_BUDGET = 15.0
CHECK_LRS = (5e-3, 1e-2, 2e-2)  # the smoke scale's; the paper scale's are its protocol's check_lrs
LONG_ARMS = ("fsn", "transformer", "ka")  # the arms of the budgets above the check budget (and of the check)
RUNG = "tiny"

# scale -> protocol of this study (the framework's paper protocol is the 1M enwik8 GPU one)
PROTOCOLS: dict[str, dict[str, Any]] = {
    "paper": {"batch_size": 32, "context_length": 64, "lr": 1e-2, "eval_bytes": None, "log_interval": 50,
              "seeds": 2, "long_seeds": 3, "screen_seeds": 3, "check_lrs": (2.5e-3, 5e-3, 1e-2, 2e-2)},
    # smoke: a few steps per budget (steps = ceil(2 sqrt(epochs))), 4 sequences, 1,024 val bytes
    "smoke": {"batch_size": 4, "context_length": 64, "lr": 1e-2, "eval_bytes": 1024, "log_interval": 1,
              "seeds": 2, "long_seeds": 2, "screen_seeds": 2},
}


def smoke_steps(epochs: float) -> int:
    return max(2, math.ceil(2 * math.sqrt(epochs)))


def arms_at(budget: float, arms: Sequence[str], check_budget: float) -> list[str]:
    """FSN and transformer at every budget; KA from the check budget on; FSN-MF and the network kernel
    (``fsn-net``, a screen until it holds there) at the check budget."""
    out = []
    for arm in arms:
        if arm in ("fsn", "transformer") or (arm == "ka" and budget >= check_budget) or (
                arm in ("fsn-mf", "fsn-net") and math.isclose(budget, check_budget)):
            out.append(arm)
    return out


def model_overrides(arm: str) -> dict[str, Any]:
    """The model overrides of an arm: none for a preset's arm; for an :data:`ARM_VARIANTS` arm its switches
    and the FFN width that keeps it on the rung's budget (:func:`fsnlab.models.match_budget`)."""
    if arm not in ARM_VARIANTS:
        return {}
    from fsnlab.models import RUNG_TARGETS, get_preset, match_budget, replace_config

    family, overrides = ARM_VARIANTS[arm]
    matched = match_budget(replace_config(get_preset(f"{family}-{RUNG}"), **overrides), RUNG_TARGETS[RUNG])
    return {**overrides, "ffn_hidden": matched.ffn_hidden}


def _floats(text: str | None, default: Sequence[float], what: str) -> list[float]:
    if not text:
        return [float(x) for x in default]
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise StudyError(f"{what} wants comma-separated numbers, got {text!r}") from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise StudyError(f"{what} wants positive numbers, got {text!r}")
    return values


def _long_lr_overrides(items: Sequence[str], arms: Sequence[str]) -> dict[str, float]:
    out = {}
    for item in items or []:
        arm, sep, value = item.partition("=")
        try:
            lr = float(value)
        except ValueError:
            lr = math.nan
        if not sep or arm not in arms or not (math.isfinite(lr) and lr > 0):
            raise StudyError(f"--long-lr wants ARM=LR with ARM one of {', '.join(arms)}, got {item!r}")
        out[arm] = lr
    return out


class _Planner:
    def __init__(self, ctx: StudyContext) -> None:
        args = ctx.args
        if args.epochs is not None or args.max_steps is not None:
            raise StudyError("the regime ladder sets each run's length from --budgets (epochs); --epochs and --max-steps do not apply")
        self.ctx = ctx
        self.scale = ctx.scale
        self.proto = dict(PROTOCOLS[self.scale])
        if args.eval_bytes is not None:
            self.proto["eval_bytes"] = args.eval_bytes
        if args.seeds is not None:
            self.proto["seeds"] = self.proto["long_seeds"] = args.seeds
        self.data = normalize_data_spec(args.data or "embedded")
        self.budgets = sorted(set(_floats(args.budgets, BUDGETS, "--budgets")))
        self.check_budget = float(args.check_budget) if args.check_budget is not None else CHECK_BUDGET
        self.check_lrs = sorted(set(_floats(args.check_lrs, self.proto.get("check_lrs", CHECK_LRS), "--check-lrs")))
        self.arms = split_list(args.arms, ARMS)
        # the arms' default LRs are this study's (1e-2), then --lr
        ctx.protocol = _with_lr(ctx.protocol, self.proto["lr"])
        self.lrs = arm_lrs(ctx, self.arms)
        self.long_lr_given = _long_lr_overrides(args.long_lr, self.arms)
        self._train_bytes: int | None = None
        self._params: dict[str, int] = {}

    def config(self, arm: str, budget: float, seed: int, lr: float) -> TrainConfig:
        p = self.proto
        if self.scale == "smoke":
            steps = smoke_steps(budget)
            length = {"max_steps": steps, "epochs": None, "eval_interval": max(1, steps // 3)}
        else:  # epochs: the trainer converts them to steps (ceil(E x train bytes / 2,048)) and evaluates at each boundary
            length = {"max_steps": None, "epochs": float(budget), "eval_interval": 0}
        family = ARM_VARIANTS.get(arm, (arm, {}))[0]
        return TrainConfig(
            preset=f"{family}-{RUNG}", model_overrides=model_overrides(arm), data=self.data, seed=seed,
            context_length=p["context_length"],
            batch_size=p["batch_size"], lr=lr, eval_bytes=p["eval_bytes"], log_interval=p["log_interval"], **length,
        ).validate()

    def tokens(self, config: TrainConfig) -> int:
        if self._train_bytes is None:
            from fsnlab.data import load_corpus

            self._train_bytes = len(load_corpus(self.data).split("train"))
        per_step = config.batch_size * config.grad_accum * (config.context_length or 0)
        return config.total_steps(self._train_bytes, per_step) * per_step

    def parameters(self, arm: str) -> int:
        if arm not in self._params:
            import fsnlab

            family = ARM_VARIANTS.get(arm, (arm, {}))[0]
            model = fsnlab.build_model(f"{family}-{RUNG}", context_length=self.proto["context_length"], **model_overrides(arm))
            self._params[arm] = int(fsnlab.parameter_breakdown(model)["total"])
        return self._params[arm]


def _with_lr(protocol: Any, lr: float) -> Any:
    import dataclasses

    return dataclasses.replace(protocol, lr=lr)


def build_manifest(ctx: StudyContext) -> Manifest:
    plan = _Planner(ctx)
    check_budget, budgets = plan.check_budget, plan.budgets
    short = [b for b in budgets if b <= check_budget]
    long = [b for b in budgets if b > check_budget]
    manifest = Manifest(KIND, f"Regime ladder: gap to the transformer against tokens per parameter ({plan.scale} scale)",
                        plan.scale)
    cells: list[dict[str, Any]] = []

    def add(arm: str, budget: float, seed: int, lr: float, role: str) -> str:
        config = plan.config(arm, budget, seed, lr)
        run = manifest.add(config, arm=arm, seed=seed, corpus="text", lr=lr, rung=RUNG, budget=budget, role=role)
        return run.name

    def cell(arm: str, budget: float, seeds: int, lr: float | None, status: str) -> None:
        config = plan.config(arm, budget, 0, lr or plan.lrs[arm])
        tokens = plan.tokens(config)
        params = plan.parameters(arm)
        cells.append({"budget": budget, "arm": arm, "seeds": seeds, "lr": lr, "status": status, "tokens": tokens,
                      "parameters": params, "tokens_per_parameter": tokens / params})

    def seeds_at(arm: str, budget: float) -> int:
        screen = "fsn-net" in plan.arms and arm in SCREEN_ARMS and math.isclose(budget, check_budget)
        return max(plan.proto["seeds"], plan.proto["screen_seeds"]) if screen else plan.proto["seeds"]

    # 1. the budgets up to the check budget, cheapest first; seed-major so each seed's arms finish together
    for budget in short:
        arms = arms_at(budget, plan.arms, check_budget)
        for seed in range(max(seeds_at(arm, budget) for arm in arms)):
            for arm in arms:
                if seed < seeds_at(arm, budget):
                    add(arm, budget, seed, plan.lrs[arm], LADDER)
        for arm in arms:
            cell(arm, budget, seeds_at(arm, budget), plan.lrs[arm], "planned")
    # 2. the LR check at the check budget (seed 0); the arm's default LR is the ladder's own seed-0 run
    long_arms = [a for a in plan.arms if a in LONG_ARMS] if long else []
    candidates: dict[str, dict[float, str]] = {}
    for arm in long_arms:
        candidates[arm] = {}
        for lr in sorted(set(plan.check_lrs)):
            default = math.isclose(lr, plan.lrs[arm]) and any(math.isclose(b, check_budget) for b in short)
            candidates[arm][lr] = add(arm, check_budget, 0, plan.lrs[arm] if default else lr, LADDER if default else LR_CHECK)
    # 3. the long budgets, each arm at the better LR of its check once the check has finished
    long_lr: dict[str, dict[str, Any]] = {}
    for arm in long_arms:
        if arm in plan.long_lr_given:
            long_lr[arm] = {"status": "given", "lr": plan.long_lr_given[arm], "check": {}, "finished": 0,
                            "of": len(candidates[arm])}
            long_lr[arm].update({k: v for k, v in choose_lr(ctx.runs_dir, candidates[arm], plan.lrs[arm], ctx.record).items()
                                 if k in ("check", "finished")})
        else:
            long_lr[arm] = choose_lr(ctx.runs_dir, candidates[arm], plan.lrs[arm], ctx.record)
    for budget in long:
        for seed in range(plan.proto["long_seeds"]):
            for arm in long_arms:
                if long_lr[arm]["lr"] is not None:
                    add(arm, budget, seed, long_lr[arm]["lr"], LADDER)
        for arm in long_arms:
            lr = long_lr[arm]["lr"]
            cell(arm, budget, plan.proto["long_seeds"], lr, "planned" if lr is not None else "waiting")
    waiting = [a for a in long_arms if long_lr[a]["lr"] is None]
    if long_arms:
        print(lr_message(long_lr, max(long), check_budget), flush=True)
    proto = {"scale": plan.scale, "rung": RUNG, "data": plan.data, "batch_size": plan.proto["batch_size"],
             "context_length": plan.proto["context_length"], "lr": plan.proto["lr"],
             "eval_bytes": plan.proto["eval_bytes"], "eval_interval": "every epoch" if plan.scale == "paper" else "steps // 3",
             "epochs": ", ".join(f"{b:g}" for b in budgets) if plan.scale == "paper" else None,
             "max_steps": ", ".join(str(smoke_steps(b)) for b in budgets) if plan.scale == "smoke" else None,
             "seeds": plan.proto["seeds"], "long_seeds": plan.proto["long_seeds"]}
    manifest.settings.update({
        "protocol": proto, "arms": plan.arms, "lrs": plan.lrs, "budgets": budgets, "check_budget": check_budget,
        "check_lrs": plan.check_lrs, "copy_budgets": [b for b in budgets if b >= check_budget], "long_lr": long_lr,
        "long_lr_waiting": waiting, "plan": cells, "data_text": plan.data,
        "schedule": "2% linear warmup, cosine to 10% of the peak over each run's own length (TrainConfig defaults)",
        "epoch": "one pass over the train split: ceil(epochs x train bytes / (batch x T)) steps",
    })
    return manifest


def analyse(ds, manifest: Manifest, ctx: StudyContext):  # noqa: ANN001, ANN201
    st = manifest.settings
    return regime_analysis(ds, manifest, ctx.runs_dir, ctx.study_dir, copy_budgets=st["copy_budgets"],
                           eval_bytes=st["protocol"]["eval_bytes"], batch_size=32, device=ctx.args.analysis_device,
                           log=ctx.log)


@dataclass
class Options:
    """The regime ladder's options besides the shared ones and --arms (one flag per field)."""

    lr: list[str] = field(default_factory=list)
    """default peak LR of one arm (fsn=5e-3) or of every arm, for the budgets up to the check budget
    (default 1e-2)"""
    long_lr: list[str] = field(default_factory=list)
    """peak LR of an arm's runs above the check budget (default: the best of its LR check; they wait
    for it)"""
    budgets: str | None = None  # training budgets in epochs, comma-separated (default 1,5,15,50)
    check_budget: float | None = None  # budget of the LR check, FSN-MF and the first KA runs (default 15)
    check_lrs: str | None = None  # LRs of the LR check, comma-separated (default: paper 2.5e-3,5e-3,1e-2,2e-2; smoke 5e-3,1e-2,2e-2)
    report_only: bool = False  # write study.nc and report.html from the runs as they stand; train nothing
    poll_s: float = 300.0
    """when the long runs wait for LR-check runs another process is training: check again every X
    seconds (default 300; 0: do not wait)"""


add_arguments = study_arguments(ARMS, Options, overrides={"long_lr": {"metavar": "ARM=LR"}})
_run_pass, _ = entry_points(KIND, __doc__, build_manifest, (analyse,), add_arguments)


def _parse(argv: Sequence[str] | None) -> Any:
    parser = study_parser(KIND, __doc__)
    add_arguments(parser)
    return parser.parse_args(argv)


def report_only(argv: Sequence[str] | None) -> StudyResult:
    """Assemble, analyse and report the runs as they stand; train nothing."""
    from fsnlab.errors import FsnlabError
    from fsnlab.study import write_dataset, write_report
    from fsnlab.study.driver import assemble_with_record

    start = time.perf_counter()
    args = _parse(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        ctx = make_context(KIND, args)
        manifest = build_manifest(ctx)
        manifest.settings.setdefault("argv", args.argv)
        manifest.save(ctx.study_dir / "manifest.json")
        ds = assemble_with_record(ctx, manifest, (analyse,))
        dataset_path = write_dataset(ds, ctx.study_dir)
        report_path = write_report(ds, ctx.study_dir / "report.html")
        write_summary(ds, ctx.study_dir)
    except (FsnlabError, OSError) as exc:
        print(f"{KIND}: error: {exc}", file=sys.stderr)
        return StudyResult(Manifest(KIND, KIND, "smoke"), [], None, None, 2, time.perf_counter() - start)
    done = int((ds["status"].values == "done").sum())
    waiting = manifest.settings["long_lr_waiting"]
    print(f"{KIND} ({ctx.scale}): report only | runs done {done}/{len(manifest)}"
          + (f", long runs of {', '.join(waiting)} wait for the LR check" if waiting else "")
          + f" | {dataset_path} | {report_path}", flush=True)
    code = 3 if done < len(manifest) or waiting else 0
    return StudyResult(manifest, [], dataset_path, report_path, code, time.perf_counter() - start, ds)


def run(argv: Sequence[str] | None = None) -> StudyResult:
    """Train the ladder: a pass over the manifest; when that pass finished an LR check that long
    runs were waiting for, another pass adds and trains them. While the check is being trained by
    another process (its runs come back ``locked``), wait ``--poll-s`` seconds and look again."""
    args = _parse(argv)
    if args.report_only:
        return report_only(argv)
    start = time.perf_counter()
    merged: dict[str, Any] = {}
    while True:
        result = _run_pass(argv)
        if result.dataset is not None and result.dataset_path is not None:
            write_summary(result.dataset, result.dataset_path.parent)
        for o in result.outcomes:
            if o.name not in merged or o.action != "skipped":
                merged[o.name] = o
        waiting = result.manifest.settings.get("long_lr_waiting") or []
        if args.dry_run or result.exit_code not in (0, 3) or not waiting:
            break
        now_waiting = _quiet_build(make_context(KIND, args)).settings["long_lr_waiting"]
        if len(now_waiting) < len(waiting):
            print(f"{KIND}: the LR check of {', '.join(a for a in waiting if a not in now_waiting)} finished: "
                  "a second pass trains the long runs", flush=True)
            continue
        if args.poll_s > 0 and any(o.action == "locked" for o in result.outcomes):
            print(f"{KIND}: runs are being trained by another process; looking again in {args.poll_s:g} s", flush=True)
            time.sleep(args.poll_s)
            continue
        break
    if result.outcomes:
        result.outcomes = [merged.get(o.name, o) for o in result.outcomes]
    if not args.dry_run and result.exit_code == 0 and result.manifest.settings.get("long_lr_waiting"):
        result.exit_code = 3  # the study is not finished while long runs wait
    result.seconds = time.perf_counter() - start
    return result


def write_summary(ds, study_dir) -> None:  # noqa: ANN001
    """``<study dir>/summary.md``: the answer as markdown, for docs/quality.md."""
    import os
    from pathlib import Path

    from fsnlab.study.regime import markdown_summary

    path = Path(study_dir) / "summary.md"
    tmp = path.with_name(".summary.md.partial")
    tmp.write_text(markdown_summary(ds), encoding="utf-8")
    os.replace(tmp, path)


def _quiet_build(ctx: StudyContext) -> Manifest:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return build_manifest(ctx)


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv).exit_code


__all__ = ["run", "main", "build_manifest"]


if __name__ == "__main__":
    raise SystemExit(main())
