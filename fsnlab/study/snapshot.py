"""Carry a run pool's unfinished work across machines: a tar of the runs a study's record lacks.

A study that spans several sittings on machines that do not outlive a sitting keeps its finished
runs in its committed dataset (``--record``, :mod:`fsnlab.study.record`). What that leaves is the
runs in progress, and the runs finished since the dataset was last written: this module packs
them into one archive that can be committed next to the dataset, and unpacks them into a new
pool, where they resume exactly (:func:`fsnlab.train.resume`)::

    python -m fsnlab.study.snapshot save runs/studies/paper/runs studies/results/regime_ladder.pool.tar \\
        --record studies/results/regime_ladder.nc
    python -m fsnlab.study.snapshot restore studies/results/regime_ladder.pool.tar runs/studies/paper/runs

A run is packed with the files it resumes from: ``checkpoint.pt`` (the last one; the numbered and
best checkpoints are left out), ``config.json``, ``metrics.jsonl`` (records past the checkpoint's
step are dropped on resume) and ``environment*.json``. ``checkpoint.pt`` is replaced atomically by
the trainer, so a pool can be packed while it trains. ``restore`` never overwrites: a run that
already has a checkpoint in the pool is left as it is.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Sequence

from fsnlab.errors import FsnlabError, one_line
from fsnlab.study.manifest import StudyError, run_state

RUN_FILES = ("checkpoint.pt", "config.json", "metrics.jsonl")


def _run_files(run_dir: Path) -> list[Path]:
    files = [run_dir / f for f in RUN_FILES if (run_dir / f).is_file()]
    return files + sorted(run_dir.glob("environment*.json"))


def save(runs_dir: str | os.PathLike[str], archive: str | os.PathLike[str], record: str | os.PathLike[str] | None = None) -> list[str]:
    """Pack every run of ``runs_dir`` that has a checkpoint (finished or not) and that ``record``
    (a study dataset) does not hold as finished into ``archive``, written atomically. Returns the
    names packed (an archive with none is still written, so a stale one never survives)."""
    from fsnlab.study.record import StudyRecord

    runs_dir, archive = Path(runs_dir), Path(archive)
    if not runs_dir.is_dir():
        raise StudyError(f"no run pool at {runs_dir}")
    held = StudyRecord.load(record) if record is not None else None
    names = []
    tmp = archive.with_name(f".{archive.name}.partial")
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tmp, "w") as tar:
        for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
            state = run_state(run_dir)
            if state.status not in ("partial", "done") or (held is not None and run_dir.name in held):
                continue
            for path in _run_files(run_dir):
                data = path.read_bytes()  # one read: the file the trainer may replace meanwhile
                info = tarfile.TarInfo(f"{run_dir.name}/{path.name}")
                info.size, info.mtime, info.mode = len(data), int(path.stat().st_mtime), 0o644
                tar.addfile(info, io.BytesIO(data))
            names.append(run_dir.name)
    os.replace(tmp, archive)
    return names


def restore(archive: str | os.PathLike[str], runs_dir: str | os.PathLike[str]) -> list[str]:
    """Unpack the runs of ``archive`` into ``runs_dir``, each one whose directory there has no
    checkpoint; returns the names unpacked."""
    archive, runs_dir = Path(archive), Path(runs_dir)
    if not archive.is_file():
        raise StudyError(f"no snapshot at {archive}")
    restored = []
    with tarfile.open(archive, "r") as tar:
        members: dict[str, list[tarfile.TarInfo]] = {}
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) != 2 or parts[0] in ("..", ".") or parts[1] not in RUN_FILES and not (
                    parts[1].startswith("environment") and parts[1].endswith(".json")):
                raise StudyError(f"{archive}: unexpected member {m.name!r} (not a snapshot of a run pool)")
            members.setdefault(parts[0], []).append(m)
        for name, files in sorted(members.items()):
            run_dir = runs_dir / name
            if run_state(run_dir).status != "new":
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            for m in sorted(files, key=lambda m: m.name.endswith("checkpoint.pt")):  # the checkpoint last
                data = tar.extractfile(m).read()
                target = run_dir / Path(m.name).name
                tmp = target.with_name(f".{target.name}.partial")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            restored.append(name)
    return restored


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fsnlab.study.snapshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="pack the pool's runs that the record lacks")
    s.add_argument("runs_dir")
    s.add_argument("archive")
    s.add_argument("--record", metavar="STUDY_NC", help="the study's committed dataset: its finished runs are left out")
    r = sub.add_parser("restore", help="unpack the runs that have no checkpoint in the pool")
    r.add_argument("archive")
    r.add_argument("runs_dir")
    args = p.parse_args(argv)
    try:
        if args.command == "save":
            names = save(args.runs_dir, args.archive, args.record)
            print(f"snapshot: {len(names)} run(s) into {args.archive}" + "".join(f"\n  {n}" for n in names))
        else:
            names = restore(args.archive, args.runs_dir)
            print(f"snapshot: {len(names)} run(s) restored into {args.runs_dir}" + "".join(f"\n  {n}" for n in names))
    except (FsnlabError, OSError, tarfile.TarError) as exc:
        print(f"snapshot: error: {one_line(exc) if isinstance(exc, FsnlabError) else exc}", file=sys.stderr)
        return 2
    return 0


__all__ = ["RUN_FILES", "restore", "save"]

if __name__ == "__main__":
    raise SystemExit(main())
