#!/usr/bin/env bash
# Refresh the regime ladder's committed state while (or after) it trains: the dataset and report from
# the runs as they stand (--report-only, the record standing in for runs this pool lacks), the
# dataset copied to studies/results/regime_ladder.nc, the docs' generated tables, the snapshot of
# the runs in progress; then one commit of those files. A new machine resumes from that commit
# (scripts/ladder_from_worktree.sh).
#   scripts/ladder_commit.sh ["commit message"]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
args=(); [ -f runs/regime_ladder.args ] && mapfile -t args < runs/regime_ladder.args
OMP_NUM_THREADS=1 .venv/bin/python studies/regime_ladder.py --scale paper --report-only --threads 1 --quiet \
    --record studies/results/regime_ladder.nc "${args[@]}" || [ $? -eq 3 ]  # 3: not finished yet
cp runs/studies/paper/regime_ladder/study.nc studies/results/regime_ladder.nc
.venv/bin/python -m fsnlab.study.docs
scripts/ladder_snapshot.sh
git add studies/results/regime_ladder.nc studies/results/regime_ladder.pool.tar docs/quality.md
git commit -q -m "${1:-regime ladder: interim dataset and snapshot of the runs in progress}" && git log --oneline -1
