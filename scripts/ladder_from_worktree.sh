#!/usr/bin/env bash
# Run (or resume) the regime ladder from a pinned git worktree, so that edits to this checkout
# while the ladder trains for hours never reach its processes. Runs and reports stay in this
# checkout's runs/ (the paths are resolved from the current directory).
#   scripts/ladder_from_worktree.sh [COMMIT] [ARGS...]   start or resume (default: HEAD); ARGS go to
#       regime_ladder.py (e.g. --check-lrs 2.5e-3,5e-3,1e-2,2e-2) and are kept in runs/regime_ladder.args:
#       without ARGS, a resume reuses the kept ones (so every sitting runs the same manifest)
#   kill -TERM $(cat runs/regime_ladder.pid)        stop; every running run checkpoints
#   scripts/ladder_snapshot.sh                       pack the runs in progress for a commit (a new machine resumes them)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
commit="$(git -C "$root" rev-parse "${1:-HEAD}")"; shift $(( $# > 0 ? 1 : 0 ))  # resolved in this checkout, not in the worktree
tree="${LADDER_WORKTREE:-$root/../ladder}"
cd "$root"
if [ -d "$tree" ]; then git -C "$tree" checkout --quiet --detach "$commit"; else git worktree add --detach "$tree" "$commit"; fi
mkdir -p runs
if [ $# -gt 0 ]; then printf '%s\n' "$@" > runs/regime_ladder.args
elif [ -f runs/regime_ladder.args ]; then mapfile -t kept < runs/regime_ladder.args; set -- "${kept[@]}"; fi
# the committed dataset is the record of the finished runs: a run it holds that has no checkpoint in this
# pool (a new machine, a fresh clone) is taken from it, not trained again (fsnlab/study/record.py)
record=(); [ -f studies/results/regime_ladder.nc ] && record=(--record studies/results/regime_ladder.nc)
# and the committed snapshot holds the runs in progress (scripts/ladder_snapshot.sh): unpacked where the pool lacks them
if [ -f studies/results/regime_ladder.pool.tar ]; then
    PYTHONPATH="$tree" "$root/.venv/bin/python" -m fsnlab.study.snapshot restore studies/results/regime_ladder.pool.tar runs/studies/paper/runs
fi
set -- "$@" "${record[@]}"
echo "$(date -u +%FT%TZ) ladder_from_worktree.sh $commit $*" >> runs/regime_ladder.log
OMP_NUM_THREADS=1 PYTHONPATH="$tree" setsid "$root/.venv/bin/python" "$tree/studies/regime_ladder.py" \
    --scale paper --jobs 2 --threads 1 --quiet "$@" >> runs/regime_ladder.log 2>&1 &
echo $! > runs/regime_ladder.pid
echo "regime ladder from $(git -C "$tree" rev-parse --short HEAD) in $tree: pid $(cat runs/regime_ladder.pid), log runs/regime_ladder.log"
