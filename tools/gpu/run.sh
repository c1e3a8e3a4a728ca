#!/usr/bin/env bash
# The GPU checks, run from the folder tools/gpu/pack.sh made (needs PyTorch with CUDA; no .NET SDK, no network).
# Writes everything it prints to $OUT/gpu-report.txt (or ./gpu-report.txt). At most about 8 minutes.
# DEVICE=cpu QUICK=1 runs the same steps on a CPU with small workloads (to check the script itself).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
results="${OUT:-$here}"; mkdir -p "$results"
report="$results/gpu-report.txt"
device="${DEVICE:-cuda}"
quick="${QUICK:-0}"
work="$(mktemp -d /tmp/cora-gpu.XXXXXX)"
exec > >(tee "$report") 2>&1
echo "== cora GPU checks, commit $(cat "$here/commit.txt" 2>/dev/null), $(date -u +%FT%TZ), device $device"
mkdir -p "$work/dotnet" "$work/shared"
tar -xJf "$here/runtime.tar.xz" -C "$work/dotnet"
tar -xJf "$here/data.tar.xz" -C "$work/shared"
export DOTNET_ROOT="$work/dotnet" DOTNET_CLI_TELEMETRY_OPTOUT=1
if [ -z "${CORA_LIBTORCH:-}" ]; then
  CORA_LIBTORCH="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
fi
export CORA_LIBTORCH
step() { local limit=$1; shift; echo; echo "\$ cora $*"; local t0; t0=$(date +%s%N);
         timeout "$limit" "$DOTNET_ROOT/dotnet" "$here/app/cora.dll" "$@"; local rc=$?;
         echo "(exit $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms)"; }
d="$work/shared/data/ml-1m-collm"; llm="$work/shared/models/stories260K/stories260K.bin"
valid="$d/valid.tsv"
if [ "$quick" = 1 ]; then
  # QUICK: the same steps, small enough for a CPU (400 training rows, 200 validation rows, tiny shapes).
  rows="--max-rows 400"; vrows=200; shapes_b=2; big=tiny; gen=compact; reps=2; rounds=1
  head -n 201 "$d/valid.tsv" > "$work/valid-small.tsv"; valid="$work/valid-small.tsv"
else rows=""; vrows=1000; shapes_b=0; big=vicuna-7b; gen=paper; reps=20; rounds=3; fi

step 60 doctor
step 60 bench golden --llm "$llm" --device "$device" --llm-dtype bf16
step 300 train --train "$d/train.tsv" --valid "$valid" --items "$d/items.tsv" --llm "$llm" --method cora \
  --batch-size 16 --epochs 1 --validate-every 100000 --max-valid-rows "$vrows" $rows --device "$device" \
  --out "$work/cora.zip" --json "$results/train.json"
# Where a training step's time goes on this device: by phase (each phase waits for its kernels), and against the same step
# with AdamW one parameter at a time (no single buffer).
step 120 bench train-step --llm "$llm" --data "$d" --generator "$gen" --batch 16 --repeats "$reps" --device "$device" \
  --baseline per-parameter-optimizer --rounds "$rounds" --profile --json "$results/bench-train-step.json"
step 120 evaluate --model "$work/cora.zip" --data "$valid" --batch-size 256 --device "$device" --json "$results/evaluate.json"
step 120 evaluate --model "$work/cora.zip" --data "$valid" --batch-size 256 --device "$device" --llm-dtype fp32 --json "$results/evaluate-fp32.json"
for shape in smollm2-135m tinyllama-1.1b; do
  b=$([ "$shape" = smollm2-135m ] && echo 64 || echo 16); [ "$shapes_b" != 0 ] && b=$shapes_b
  [ "$quick" = 1 ] && shape=tiny
  for dt in fp32 bf16; do step 90 bench forward --shape "$shape" --batch "$b" --tokens 256 --device "$device" --llm-dtype "$dt"; done
done
step 180 bench train-step --shape "$big" --batch 8 --tokens 200 --device "$device" --llm-dtype bf16 --repeats 5
rm -rf "$work"
echo "== done; report in $report"
