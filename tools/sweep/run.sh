#!/usr/bin/env bash
# One run of the quality sweep (docs/results.md): `cora train` on the CoLLM MovieLens-1M split, selected and reported on the
# validation split only (the test split is never read), then one row appended to docs/results/sweep.tsv.
#
#   tools/sweep/run.sh NAME [cora train options...]      e.g. tools/sweep/run.sh cora-recipe --batch-size 8 --min-lr 8e-5
#
# Each run lives in $CORA_SWEEP_DIR/NAME (default ../runs/NAME beside the checkout): model, JSON, curve PNG, log and
# checkpoints. Rerunning the same NAME with the same options resumes from its checkpoints (a stopped run loses at most one
# validation interval); once the row is written the run is finished: its resume-only files (last weights, optimizer state) are
# removed and the NAME is refused from then on. The CLI runs from a copy built once per commit ($CORA_SWEEP_DIR/bin-COMMIT,
# from a clean checkout of HEAD), so builds during a long run cannot change the program under it, and the row records the
# commit that ran.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: tools/sweep/run.sh NAME [cora train options...]" >&2; exit 2; }
name=$1; shift
case "$name" in *[!A-Za-z0-9._-]*|"") echo "tools/sweep/run.sh: NAME '$name' must be letters, digits, '.', '_' or '-'" >&2; exit 2;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
tsv=$root/docs/results/sweep.tsv
# A finished run keeps its row, model, result and best weights; running it again would add a second row for the same name.
if [ -f "$tsv" ] && awk -F'\t' -v n="$name" '$1 == n { found = 1 } END { exit !found }' "$tsv"; then
  echo "tools/sweep/run.sh: $name is finished (its row is in docs/results/sweep.tsv); pick another NAME, or delete that row and its folder to run it again" >&2
  exit 2
fi
shared=${CORA_SHARED:-$root/../shared}
data=$shared/data/ml-1m-collm
llm=$shared/models/stories260K/stories260K.bin
# CORA_SWEEP_ITEMS: another item catalog (same ids), to measure what the item text adds (tools/sweep/items.sh writes two).
items=${CORA_SWEEP_ITEMS:-$data/items.tsv}
for f in "$data/train.tsv" "$data/valid.tsv" "$items" "$llm"; do
  [ -f "$f" ] || { echo "tools/sweep/run.sh: $f is missing (set CORA_SHARED to the shared folder)" >&2; exit 2; }
done
command -v jq > /dev/null || { echo "tools/sweep/run.sh: needs jq (apt-get install jq)" >&2; exit 2; }
sweep=${CORA_SWEEP_DIR:-$root/../runs}
dir=$sweep/$name
mkdir -p "$dir"
commit=$(git -C "$root" rev-parse --short HEAD)
bin=$sweep/bin-$commit
if [ ! -f "$bin/cora.dll" ]; then
  # Built from HEAD as committed (a clean worktree), not from uncommitted edits: the row's commit is what ran.
  src=$sweep/src-$commit
  rm -rf "$src" "$bin.tmp"; git -C "$root" worktree prune
  git -C "$root" worktree add --detach "$src" HEAD > "$sweep/build.log" 2>&1 \
    && dotnet build "$src/src/Cora.Cli" -c Release -o "$bin.tmp" >> "$sweep/build.log" 2>&1 \
    || { git -C "$root" worktree remove --force "$src" 2> /dev/null; echo "tools/sweep/run.sh: build failed, see $sweep/build.log" >&2; exit 1; }
  git -C "$root" worktree remove --force "$src"
  mv "$bin.tmp" "$bin"
fi
start=$(date +%s)
dotnet "$bin/cora.dll" train --train "$data/train.tsv" --valid "$data/valid.tsv" --items "$items" --llm "$llm" \
  --out "$dir/model.zip" --json "$dir/result.json" --plot "$dir/curve.png" --checkpoint-dir "$dir/ckpt" "$@" 2>&1 | tee "$dir/train.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit "${PIPESTATUS[0]}"
mkdir -p "$(dirname "$tsv")"
[ -f "$tsv" ] || printf 'name\tdate\tcommit\tcpu\toptions\tvalid_auc\tvalid_uauc\twarm_auc\tcold_auc\tsteps\tbest_step\twall_s\tpeak_mib\n' > "$tsv"
cpu="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1) (family $(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1) model $(sed -n 's/^model[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1))"
opts="$*"; [ "$items" = "$data/items.tsv" ] || opts="$opts (CORA_SWEEP_ITEMS=$(basename "$items"))"
jq -r --arg name "$name" --arg date "$(date -u +%Y-%m-%d)" --arg commit "$commit" --arg cpu "$cpu" --arg options "$opts" \
  'def r4: if . == null then "" else (. * 10000 | round / 10000) end;
   [$name, $date, $commit, $cpu, $options, (.auc | r4), (.uauc | r4), (.warm.auc | r4), (.cold.auc | r4), (.steps // ""), (.best_step // ""), (.wall_seconds | floor), .peak_mib] | @tsv' \
  "$dir/result.json" >> "$tsv"
# Only a resume needs the last weights and AdamW state (about 500 MiB with CoRA's full generator); the best weights and
# state.json (the validation curve that plot.cs draws) stay.
rm -f "$dir"/ckpt/current-* "$dir"/ckpt/optimizer-*
echo "tools/sweep/run.sh: $name done in $(( $(date +%s) - start )) s; row appended to docs/results/sweep.tsv"
