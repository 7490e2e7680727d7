#!/usr/bin/env bash
# One GPU check: everything in this project that needs CUDA, in one run (planned to take
# under 8 minutes on one H100/H200-class GPU).
#
#   benchmarks/gpu_check.sh            on a GPU machine; writes benchmarks/results/*_cuda.{json,md}
#   benchmarks/gpu_check.sh --dry-run  anywhere: the same steps at tiny sizes on the CPU, the
#                                      CUDA-only tests skipped, results in a temporary folder
#
# 1. tests/gpu: bf16 autocast, fused AdamW, pinned batches, the sentiment model trained and
#    served on CUDA, and two-GPU data-parallel training (NCCL) when two GPUs are visible;
# 2. benchmarks/sft_bench.py: our loop against the default and the tuned HF Trainer on
#    20,000 reviews at max length 256, median of 3 rounds in alternating order, with MFU;
# 3. benchmarks/scoring_bench.py: the sentiment pyfunc against transformers.pipeline at every
#    batch size and precision it was given, on 5,000 reviews.
#
# Needs only the project's requirements (`make install`: the encoder and the reviews are
# packages) and no network. A failed step is reported and the others still run; the exit
# status is 1 if any failed, 3 if CUDA is absent without --dry-run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

if [ $dry = 0 ]; then
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: torch sees no CUDA device ($("$PY" -c 'import torch; print("torch", torch.__version__, "built for CUDA " + torch.version.cuda if torch.version.cuda else "CPU-only build")')): run it on a GPU machine, or with --dry-run for everything but the CUDA parts" >&2
    exit 3
  fi
  export GPU_CHECK_REQUIRE_CUDA=1  # tests/gpu fail, not skip, without CUDA
  export BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$PWD/benchmarks/results}
  device=cuda
  sft_args=(--train-rows 20000 --repeats 3)
  scoring_args=(--reviews 5000)
else
  export BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$(mktemp -d -t gpu-check-XXXX)}
  device=cpu
  sft_args=(--train-rows 48 --test-rows 32 --repeats 2 --max-length 64 --device cpu)
  scoring_args=(--reviews 48)
fi
mkdir -p "$BENCH_RESULTS_DIR"
start=$(date +%s)
failed=()
summary=()

step() {  # step NAME COMMAND...: run it, log its time and outcome
  local name=$1; shift
  local t0=$(date +%s)
  echo; echo "== gpu_check: $name ($(( t0 - start )) s in)"
  if "$@"; then local outcome=ok; else local outcome="FAILED (exit $?)"; failed+=("$name"); fi
  summary+=("| $name | $outcome | $(( $(date +%s) - t0 )) |")
}

step "CUDA paths (tests/gpu)" "$PY" -m pytest -p no:cacheprovider -q -rs tests/gpu
step "fine-tuning vs HF Trainer (sft_bench)" "$PY" benchmarks/sft_bench.py "${sft_args[@]}"
step "review scoring vs transformers.pipeline (scoring_bench)" "$PY" benchmarks/scoring_bench.py "${scoring_args[@]}"

machine=$("$PY" -c 'import sys; sys.path.insert(0, "benchmarks"); from common import machine; print(machine(sys.argv[1]))' $device)
{
  echo "GPU check$( [ $dry = 1 ] && echo ' (dry run: CPU, tiny sizes, CUDA tests skipped)' ) on $machine, $(date -u +%Y-%m-%d), $(( $(date +%s) - start )) s in all"
  echo
  echo "| step | outcome | seconds |"
  echo "|---|---|---:|"
  printf '%s\n' "${summary[@]}"
} > "$BENCH_RESULTS_DIR/gpu_check_$device.md"

echo; echo "== gpu_check: summary (results in $BENCH_RESULTS_DIR)"
cat "$BENCH_RESULTS_DIR/gpu_check_$device.md"
for table in sft scoring; do
  [ -f "$BENCH_RESULTS_DIR/${table}_$device.md" ] && { echo; cat "$BENCH_RESULTS_DIR/${table}_$device.md"; }
done
[ ${#failed[@]} -eq 0 ] || { echo; echo "gpu_check: failed: ${failed[*]}" >&2; exit 1; }
