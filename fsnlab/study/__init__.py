"""Scripted studies over fsnlab's public API (``studies/``, ``docs/studies.md``).

A study is a :class:`Manifest` of independent training runs (name → TrainConfig plus tags);
:func:`execute` skips finished runs, resumes interrupted ones and trains the rest N at a time or
on SLURM; :func:`assemble` reads the run directories into one xarray dataset (runs × evaluations);
analyses add copy-depth losses (:mod:`fsnlab.study.copydepth`) or kernel readings; and
:func:`write_report` turns the dataset into a self-contained HTML report (``fsnlab report``).
"""

from fsnlab.study.copydepth import (
    DEPTH_BIN_LABELS,
    DEPTH_BINS,
    DISTANCE_BIN_LABELS,
    DISTANCE_BINS,
    copy_depth,
    copy_depth_windows,
    copy_table,
    depth_bin,
    distance_bin,
)
from fsnlab.study.dataset import DATASET_NAME, assemble, open_study, write_dataset
from fsnlab.study.manifest import Manifest, RunState, StudyError, StudyRun, run_name, run_state
from fsnlab.study.protocol import PAPER, SMOKE, Protocol, protocol
from fsnlab.study.runner import Outcome, execute, train_one
from fsnlab.study.stats import describe, paired, t_interval


def write_report(ds, path):  # noqa: ANN001 - imported lazily: plotly is only needed for reports
    from fsnlab.study.report import write_report as _write

    return _write(ds, path)


__all__ = [
    "DATASET_NAME", "DEPTH_BINS", "DEPTH_BIN_LABELS", "DISTANCE_BINS", "DISTANCE_BIN_LABELS",
    "Manifest", "StudyRun", "RunState", "StudyError", "Outcome", "Protocol", "SMOKE", "PAPER",
    "assemble", "copy_depth", "copy_depth_windows", "copy_table", "depth_bin", "distance_bin", "describe",
    "execute", "open_study", "paired", "protocol", "run_name", "run_state", "t_interval", "train_one",
    "write_dataset", "write_report",
]
