#!/usr/bin/env bash
# Create .venv/ in the repository root and install fsnlab (editable) with its test extras.
#
# torch is installed first and on its own: on a CPU-only machine a plain `pip install torch`
# resolves the newest CUDA build (several GB of nvidia-* wheels). Set TORCH_SPEC to choose
# another build, e.g. TORCH_SPEC="torch>=2.4" on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/pip install -q -e ".[dev]"
