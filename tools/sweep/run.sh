#!/usr/bin/env bash
# One run of the quality sweep (docs/results.md): `cora train` on the CoLLM MovieLens-1M split, selected and reported on the
# validation split only (the test split is never read), then one row appended to docs/results/sweep.tsv.
#
#   tools/sweep/run.sh NAME [cora train options...]      e.g. tools/sweep/run.sh cora-recipe --batch-size 8 --min-lr 8e-5
#
# Each run lives in $CORA_SWEEP_DIR/NAME (default ../runs/NAME beside the checkout): model, JSON, curve PNG, log and
# checkpoints. Rerunning the same NAME with the same options resumes from its checkpoints (a stopped run loses at most one
# validation interval). The CLI runs from a copy made at the first run ($CORA_SWEEP_DIR/bin), so builds during a long run
# cannot change the program under it.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: tools/sweep/run.sh NAME [cora train options...]" >&2; exit 2; }
name=$1; shift
case "$name" in *[!A-Za-z0-9._-]*|"") echo "tools/sweep/run.sh: NAME '$name' must be letters, digits, '.', '_' or '-'" >&2; exit 2;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${CORA_SHARED:-$root/../shared}
data=$shared/data/ml-1m-collm
llm=$shared/models/stories260K/stories260K.bin
for f in "$data/train.tsv" "$data/valid.tsv" "$data/items.tsv" "$llm"; do
  [ -f "$f" ] || { echo "tools/sweep/run.sh: $f is missing (set CORA_SHARED to the shared folder)" >&2; exit 2; }
done
command -v jq > /dev/null || { echo "tools/sweep/run.sh: needs jq (apt-get install jq)" >&2; exit 2; }
sweep=${CORA_SWEEP_DIR:-$root/../runs}
dir=$sweep/$name
mkdir -p "$dir"
if [ ! -f "$sweep/bin/cora.dll" ]; then
  dotnet build "$root/src/Cora.Cli" -c Release -o "$sweep/bin.tmp" > "$sweep/build.log" 2>&1 || { echo "tools/sweep/run.sh: build failed, see $sweep/build.log" >&2; exit 1; }
  mv "$sweep/bin.tmp" "$sweep/bin"
fi
start=$(date +%s)
dotnet "$sweep/bin/cora.dll" train --train "$data/train.tsv" --valid "$data/valid.tsv" --items "$data/items.tsv" --llm "$llm" \
  --out "$dir/model.zip" --json "$dir/result.json" --plot "$dir/curve.png" --checkpoint-dir "$dir/ckpt" "$@" 2>&1 | tee "$dir/train.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit "${PIPESTATUS[0]}"
tsv=$root/docs/results/sweep.tsv
[ -f "$tsv" ] || printf 'name\tdate\tcommit\tcpu\toptions\tvalid_auc\tvalid_uauc\twarm_auc\tcold_auc\tsteps\tbest_step\twall_s\tpeak_mib\n' > "$tsv"
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
commit=$(git -C "$root" rev-parse --short HEAD)
jq -r --arg name "$name" --arg date "$(date -u +%Y-%m-%d)" --arg commit "$commit" --arg cpu "$cpu" --arg options "$*" \
  'def r4: if . == null then "" else (. * 10000 | round / 10000) end;
   [$name, $date, $commit, $cpu, $options, (.auc | r4), (.uauc | r4), (.warm.auc | r4), (.cold.auc | r4), (.steps // ""), (.best_step // ""), (.wall_seconds | floor), .peak_mib] | @tsv' \
  "$dir/result.json" >> "$tsv"
echo "tools/sweep/run.sh: $name done in $(( $(date +%s) - start )) s; row appended to docs/results/sweep.tsv"
