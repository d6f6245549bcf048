#!/usr/bin/env bash
# Pack the regime ladder's runs that its committed dataset does not hold (the runs in progress, and
# those finished since the dataset was last refreshed) into studies/results/regime_ladder.pool.tar,
# to commit with the dataset: a fresh clone on another machine unpacks them in
# scripts/ladder_from_worktree.sh and resumes them exactly. Safe while the ladder trains (each
# checkpoint.pt is replaced atomically); what a run trained after its last checkpoint is not carried.
#   scripts/ladder_snapshot.sh && git add studies/results/regime_ladder.pool.tar && git commit -m "..."
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
record=(); [ -f studies/results/regime_ladder.nc ] && record=(--record studies/results/regime_ladder.nc)
exec "$root/.venv/bin/python" -m fsnlab.study.snapshot save runs/studies/paper/runs studies/results/regime_ladder.pool.tar "${record[@]}"
