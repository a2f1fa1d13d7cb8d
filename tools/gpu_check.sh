#!/usr/bin/env bash
# Issue 28's GPU measurements in one run of under 8 minutes, for the first session that is lent a GPU:
#
#     bash tools/gpu_check.sh                 # results in $OUT (the device tool's folder), else out/gpu_check
#     ROWS="compiled-b128 seed-b16-cudagraphs" SDPA=0 BUDGET_S=250 bash tools/gpu_check.sh   # some rows only
#
# Each row is `python benchmark.py --device=cuda` (the bare loop and the Trainer with W&B disabled, one round)
# beside `python benchmark.py --roofline` for the same config, then, time left, the attention kernels
# (tools/sdpa_backends.py) and a table of all of it (tools/gpu_summary.py -> summary.md). Rows run in order of
# importance, each under a time limit, and a row that would end past the 8-minute budget is skipped, so the folder
# always holds what ran.
#
# benchmark.py needs wandb, which the device image lacks: if it cannot be imported, the wheels in .wheels/ (made
# here by tools/gpu_wheels.sh; name .wheels in the device tool's carry) are installed first. Without them only the
# wandb-free parts run (the roofline and the attention kernels). The FX graph cache is on, so a config compiled once
# compiles faster in the later rows that share its graphs. $OUT gets gpu_check.log (the console), results.jsonl,
# sdpa.json, summary.md and row_logs.tar.gz (every command's whole output).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu_check}"
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-470}  # under 8 minutes, with the summary's few seconds after the last row
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_FX_GRAPH_CACHE=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-cache
PY=${PY:-python3}
SECONDS=0
exec > >(tee "$OUT/gpu_check.log") 2>&1

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ', modified')"
$PY -c "import torch; print('torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())"

HAVE_WANDB=1
if ! $PY -c "import wandb" 2>/dev/null; then
    if ls .wheels/*.whl >/dev/null 2>&1 && $PY -m pip install -q --no-index --find-links .wheels wandb; then
        echo "wandb installed from .wheels"
    else
        HAVE_WANDB=0
        echo "no wandb and no usable .wheels (tools/gpu_wheels.sh): the benchmark.py rows are skipped"
    fi
fi

# Each row's full output goes to $WORK, packed into $OUT/row_logs.tar.gz at the end (the device tool brings back at
# most 8 files); its numbers go to $OUT/results.jsonl as soon as it ends.
WORK=$(mktemp -d)

# due LABEL LIMIT_S: whether the step runs: ROWS names it (or is empty) and its limit fits in what is left of the budget
due() {
    local label=$1 limit=$2
    if [[ -n "${ROWS:-}" && " $ROWS " != *" $label "* ]]; then
        return 1  # ROWS names the rows to run, e.g. ROWS="compiled-b128 seed-b16-cudagraphs"
    fi
    if (( SECONDS + limit > BUDGET_S )); then
        echo "== $label: skipped, ${limit} s would pass the ${BUDGET_S} s budget (${SECONDS} s used)"
        return 1
    fi
}

# row LABEL LIMIT_S ARGS...: the roofline's prediction (a few seconds, no GPU) and the benchmark.py measurement
row() {
    local label=$1 limit=$2
    shift 2
    due "$label" "$limit" || return
    echo "== $label ($*), at ${SECONDS} s"
    $PY benchmark.py --roofline "$@" > "$WORK/roofline-$label.txt" 2>&1
    grep -E "^H[0-9]+.*predicted" "$WORK/roofline-$label.txt"
    if (( HAVE_WANDB )); then
        timeout "$limit" $PY benchmark.py --device=cuda --variants=ab --rounds=1 --steps=40 "$@" \
            > "$WORK/bench-$label.txt" 2>&1
        local rc=$?
        grep -E "samples/s|MFU|first optimizer step|Attention kernels" "$WORK/bench-$label.txt" | head -8
        if (( rc != 0 )); then
            echo "   exit status $rc$( (( rc == 124 )) && echo ': timed out'), last lines:"
            tail -3 "$WORK/bench-$label.txt"
        fi
    fi
    $PY tools/gpu_summary.py --add "$label" "$WORK/bench-$label.txt" "$WORK/roofline-$label.txt" \
        >> "$OUT/results.jsonl"
}

# the default first, then the step before bf16_residual: the pair that says what the bf16 stream is worth
row compiled-b128 120
row compiled-b128-fp32-residual 120 --bf16_residual=False
row seed-b16-cudagraphs 100 --preset=seed  # CUDA graphs: the preset's compile_mode
# the seed preset end to end with its CUDA graphs: 100 steps, validation, checkpoints and the report
if (( HAVE_WANDB )) && due seed-e2e 120; then
    echo "== seed-e2e (python train_wandb.py --preset=seed --max_steps=100), at ${SECONDS} s"
    timeout 120 $PY train_wandb.py --preset=seed --max_steps=100 --mode=disabled --out_dir="$WORK/seed-e2e" \
        > "$WORK/seed-e2e.txt" 2>&1
    echo "   exit status $?"; grep -E "^Done in|Error|error" "$WORK/seed-e2e.txt" | tail -3
fi
row compiled-b256 110 --batch_size=256 --learning_rate=1.4e-3  # sqrt(2) x the batch-128 rate
row eager-b128 60 --compile=False
row seed-b16-eager 45 --preset=seed --compile=False
row autotune-b128 150 --compile_mode=max-autotune-no-cudagraphs
# the attention kernels, measured at 6cd5496 (BENCHMARKS.md), last; SDPA=0 leaves them out
if (( ${SDPA:-1} && SECONDS + 60 <= BUDGET_S )); then
    echo "== attention kernels, at ${SECONDS} s"
    timeout 60 $PY tools/sdpa_backends.py --batch=128 > "$WORK/sdpa.txt" 2>&1
    grep -v '^{' "$WORK/sdpa.txt"
    grep '^{' "$WORK/sdpa.txt" > "$OUT/sdpa.json"
fi

echo "== summary, at ${SECONDS} s"
$PY tools/gpu_summary.py "$OUT"
tar czf "$OUT/row_logs.tar.gz" -C "$WORK" .
