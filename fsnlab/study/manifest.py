"""A study is a manifest of independent training runs: name → :class:`~fsnlab.train.TrainConfig`
plus tags (arm, seed, corpus, ...) that say what each run stands for in the study.

Run names are derived from the configs alone (a readable prefix and a digest of every field that
shapes the run), so two studies that ask for the same run share one run directory when they share
a run pool, and two different runs can never collide. Runtime fields (device, compile, keep, checkpoint_minutes) are
not part of a run's identity: the same run may be finished on another device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from fsnlab.errors import CheckpointError, FsnlabError
from fsnlab.train import TrainConfig, load_checkpoint
from fsnlab.train.config import RUNTIME_FIELDS

SCALES = ("smoke", "paper")
FAILURE_FILE = "study-failure.json"  # written into a run directory when its training raised


class StudyError(FsnlabError):
    """A study cannot run or be reported (bad manifest, clashing run directory, missing dataset)."""


def identity(config: TrainConfig) -> dict[str, Any]:
    """The fields that make a run what it is: every TrainConfig field but the runtime ones."""
    data = config.to_dict()
    for name in RUNTIME_FIELDS:
        data.pop(name, None)
    return data


def config_digest(config: TrainConfig) -> str:
    """8 hex digits of SHA-256 over the canonical JSON of :func:`identity`."""
    text = json.dumps(identity(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _data_label(spec: str) -> str:
    kind, _, rest = spec.partition(":")
    if not rest:
        return kind
    stem = Path(rest.split(",")[0]).name.split(".")[0] or "files"
    return kind if kind == "enwik8" else f"{kind}-{stem}"


def run_name(config: TrainConfig) -> str:
    """``<preset>[.k<kernel>].<data>.lr<lr>.<length>.s<seed>-<digest>``, e.g.
    ``fsn-tiny.embedded.lr0.01.30st.s0-1a2b3c4d``; the digest covers every other field."""
    parts = [config.preset]
    for key in sorted(config.model_overrides):
        value = str(config.model_overrides[key]).replace("+", "").replace("/", "_")
        parts.append(("k" if key == "kernel" else f"{key}=") + value)
    parts.append(_data_label(config.data))
    parts.append(f"lr{config.lr:g}")
    parts.append(f"{config.max_steps}st" if config.max_steps is not None else f"{config.epochs:g}ep")
    parts.append(f"s{config.seed}")
    return ".".join(parts) + "-" + config_digest(config)


@dataclass(frozen=True)
class StudyRun:
    """One run of a study: its directory name, its config and what it stands for."""

    name: str
    config: TrainConfig
    tags: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.to_dict(), "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StudyRun":
        return cls(data["name"], TrainConfig.from_dict(data["config"]), dict(data.get("tags", {})))


@dataclass
class Manifest:
    """The runs of one study at one scale, plus the study's settings (recorded in its dataset)."""

    study: str  # the kind: matched_budget, baseline_tuning, copy_depth, ablation_ladder, scale_ladder, kernel_reading
    title: str
    scale: str
    runs: list[StudyRun] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise StudyError(f"unknown scale {self.scale!r}; use one of {', '.join(SCALES)}")

    def add(self, config: TrainConfig, **tags: Any) -> StudyRun:
        """Add a run (validated); adding the same config twice with the same tags is a no-op."""
        config.validate()
        run = StudyRun(run_name(config), config, tags)
        for existing in self.runs:
            if existing.name == run.name:
                if existing.tags != run.tags:
                    raise StudyError(f"run {run.name} is in the manifest twice with different tags")
                return existing
        self.runs.append(run)
        return run

    def __iter__(self) -> Iterator[StudyRun]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def get(self, name: str) -> StudyRun:
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "title": self.title,
            "scale": self.scale,
            "settings": self.settings,
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        return cls(
            data["study"], data["title"], data["scale"],
            [StudyRun.from_dict(r) for r in data["runs"]], dict(data.get("settings", {})),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Manifest":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class RunState:
    """Where a run directory stands: ``new`` (no checkpoint), ``partial`` (a checkpoint short of
    the total steps: resume it), ``done`` (the checkpoint reached its total steps) or ``failed``
    (its training raised; see :data:`FAILURE_FILE`)."""

    status: str
    step: int = 0
    total_steps: int | None = None
    error: str | None = None


def run_state(run_dir: str | os.PathLike[str]) -> RunState:
    run_dir = Path(run_dir)
    step, total = 0, None
    if (run_dir / "checkpoint.pt").is_file():
        try:
            ckpt = load_checkpoint(run_dir / "checkpoint.pt")
            step, total = int(ckpt["step"]), int(ckpt["total_steps"])
            del ckpt
        except CheckpointError as exc:
            return RunState("failed", error=str(exc))
        if step >= total:
            return RunState("done", step, total)
    failure = run_dir / FAILURE_FILE
    if failure.is_file():
        try:
            error = json.loads(failure.read_text(encoding="utf-8")).get("error", "failed")
        except (OSError, ValueError):
            error = "failed"
        return RunState("failed", step, total, error)
    return RunState("partial" if total is not None else "new", step, total)


def check_run_dir(run_dir: str | os.PathLike[str], config: TrainConfig) -> None:
    """Refuse a run directory that holds a different run than ``config`` (runtime fields aside)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    try:
        saved = TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["train"])
    except (OSError, ValueError, KeyError, FsnlabError) as exc:
        raise StudyError(f"{path} is not a readable run config ({exc})") from None
    if identity(saved) != identity(config):
        diff = sorted(k for k, v in identity(config).items() if identity(saved).get(k) != v)
        raise StudyError(f"run directory {run_dir} holds a different run (fields differ: {', '.join(diff)})")


def replace_config(config: TrainConfig, **changes: Any) -> TrainConfig:
    """``dataclasses.replace`` for a TrainConfig, validated."""
    return dataclasses.replace(config, **changes).validate()
