#!/usr/bin/env bash
# The GPU check of issue 14 (item 5) in one go: bench/gpu_check.sh OUTDIR
#
# Ends within 8 minutes on one H100/H200 (every stage has its own cap, they sum to 445 s,
# plus a few seconds of bookkeeping) and writes
# into OUTDIR (created if needed):
#   summary.jsonl        one line per stage: rc, seconds, timed_out, log file, command
#   env.jsonl            torch, CUDA, triton, GPU; nvidia-smi.txt
#   pytest_gpu.xml/.jsonl  pytest -m gpu over the test files that have GPU tests (junit and one line per test)
#   kernel.jsonl         the fused Triton kernel against the torch path: errors and timings
#                        (bench/gpu_kernel_check.py; one "skipped" line without triton/CUDA)
#   throughput.jsonl/.md the 1M rung at T = 512 and 2048, bf16, compile off and on (bench/throughput.py)
#   train.jsonl          fsn-1m and transformer-1m on the code corpus, ~80 s of training each
#                        (tokens/s, val bpc); the runs are under train/
#   <stage>.log          each stage's output
# A failing or timed-out stage does not stop the others. Append throughput.jsonl to
# bench/results/throughput.jsonl to keep the rows; `python bench/throughput.py --markdown` makes the table.
#
# The trainer has no wall-time option, so each training run gets a step count sized from the
# throughput this script has just measured (eager, bf16, T = 512, 65,536 tokens per step, x 0.75 for
# the trainer's own work); SIGINT at the stage's cap stops a run at a step boundary with a checkpoint.
#
# Environment: PYTHON (default python), the caps T_ENV T_PYTEST T_KERNEL T_THROUGHPUT T_TRAIN (seconds),
# TRAIN_SECONDS (training time each run is sized for), TRAIN_LR (default 3e-3).
set -u -o pipefail

if [ $# -ne 1 ] || [ "${1:0:1}" = "-" ]; then
    echo "usage: bench/gpu_check.sh OUTDIR" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}  # deterministic cuBLAS for the exact-resume test
export PYTHONUNBUFFERED=1

T_ENV=${T_ENV:-10}
T_PYTEST=${T_PYTEST:-60}
T_KERNEL=${T_KERNEL:-45}
T_THROUGHPUT=${T_THROUGHPUT:-130}
T_TRAIN=${T_TRAIN:-100}
TRAIN_SECONDS=${TRAIN_SECONDS:-80}
TRAIN_LR=${TRAIN_LR:-3e-3}
TRAIN_BATCH=128  # x T = 512: 65,536 tokens per step, as bench/throughput.py on CUDA
SUMMARY="$OUT/summary.jsonl"
START=$(date +%s)

json_str() {  # a JSON string literal of $1
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/ }
    s=${s//$'\t'/ }
    printf '"%s"' "$s"
}

LAST_RC=0
LAST_SECONDS=0
# stage NAME CAP [--signal SIG] COMMAND...: run COMMAND under its cap, log to NAME.log, one summary line
stage() {
    local name=$1 cap=$2 sig=TERM
    shift 2
    if [ "${1:-}" = "--signal" ]; then
        sig=$2
        shift 2
    fi
    local t0 t1 rc timed_out=false
    t0=$(date +%s)
    echo "== $name (cap ${cap} s): $*"
    timeout -s "$sig" -k 5 "$cap" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    t1=$(date +%s)
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then timed_out=true; fi
    LAST_RC=$rc
    LAST_SECONDS=$((t1 - t0))
    printf '{"stage": %s, "rc": %d, "seconds": %d, "cap_s": %d, "timed_out": %s, "log": %s, "command": %s, "date": %s}\n' \
        "$(json_str "$name")" "$rc" "$LAST_SECONDS" "$cap" "$timed_out" "$(json_str "$name.log")" \
        "$(json_str "$*")" "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" >>"$SUMMARY"
    echo "   rc $rc, ${LAST_SECONDS} s$([ "$timed_out" = true ] && echo ', TIMED OUT')"
    return 0
}

# 0. environment
(nvidia-smi || echo "nvidia-smi: not available") >"$OUT/nvidia-smi.txt" 2>&1
stage env "$T_ENV" "$PY" bench/gpu_check_report.py env "$OUT/env.jsonl"

# 1. the GPU tests (only the files that have any: the others may import what the device lacks)
GPU_TEST_FILES=$(grep -l 'mark\.gpu' tests/test_*.py 2>/dev/null | tr '\n' ' ')
# shellcheck disable=SC2086  # the file list is meant to split
stage pytest_gpu "$T_PYTEST" "$PY" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors \
    --junitxml="$OUT/pytest_gpu.xml" $GPU_TEST_FILES
timeout 30 "$PY" bench/gpu_check_report.py junit "$OUT/pytest_gpu.xml" "$OUT/pytest_gpu.jsonl" >/dev/null 2>>"$OUT/pytest_gpu.log"

# 2. the fused kernel against the torch path
stage kernel "$T_KERNEL" "$PY" bench/gpu_kernel_check.py --out "$OUT/kernel.jsonl"

# 3. the throughput table of the 1M rung (rows are appended as each group finishes)
stage throughput "$T_THROUGHPUT" "$PY" bench/throughput.py --device cuda --dtype bf16 --compile both --rungs 1m \
    --contexts 512 2048 --steps 5 --out "$OUT/throughput.jsonl"
if [ -s "$OUT/throughput.jsonl" ]; then
    timeout 30 "$PY" bench/throughput.py --markdown --out "$OUT/throughput.jsonl" >"$OUT/throughput.md" 2>>"$OUT/throughput.log"
fi

# 4. fsn-1m against transformer-1m on the code corpus, equal wall time
mkdir -p "$OUT/train"
for preset in fsn-1m transformer-1m; do
    case $preset in
        fsn-*) default_steps=800 ;;  # guesses for an H200, used only without a throughput row
        *) default_steps=3000 ;;
    esac
    steps=$(timeout 30 "$PY" bench/gpu_check_report.py steps "$OUT/throughput.jsonl" "$preset" "$TRAIN_SECONDS" \
        $((TRAIN_BATCH * 512)) "$default_steps" 2>>"$OUT/train_plan.log" | tail -n 1)
    case $steps in
        '' | *[!0-9]*) steps=$default_steps ;;
    esac
    echo "$preset: $steps steps" >>"$OUT/train_plan.log"
    eval_every=$(( steps / 4 > 0 ? steps / 4 : 1 ))
    log_every=$(( steps / 20 > 0 ? steps / 20 : 1 ))
    run_dir="$OUT/train/$preset"
    [ -e "$run_dir" ] && run_dir="$run_dir-$(date +%Y%m%d-%H%M%S)"
    stage "train_$preset" "$T_TRAIN" --signal INT "$PY" -m fsnlab train --preset "$preset" --data code --device cuda \
        --batch-size "$TRAIN_BATCH" --context-length 512 --lr "$TRAIN_LR" --max-steps "$steps" \
        --eval-interval "$eval_every" --log-interval "$log_every" --keep 0 --seed 0 --out "$run_dir" --quiet
    timeout 30 "$PY" bench/gpu_check_report.py train "$run_dir" "$OUT/train.jsonl" --preset "$preset" \
        --planned-steps "$steps" --rc "$LAST_RC" --wall "$LAST_SECONDS" >/dev/null 2>>"$OUT/train_$preset.log"
done

END=$(date +%s)
printf '{"stage": "total", "seconds": %d, "out": %s}\n' $((END - START)) "$(json_str "$OUT")" >>"$SUMMARY"
echo "== done in $((END - START)) s; results in $OUT"
cat "$SUMMARY"
exit 0
