#!/usr/bin/env bash
# Counts the libtorch calls of one step of `cora bench train-step` (or one repeat of `score`) with uprobes: every entry
# point of libLibTorchSharp (each thing TorchSharp asks libtorch for) and libtorch's autograd Engine::evaluate_function
# (one call per backward node). Per step = (count with --repeats 12 - count with --repeats 2) / 10, so loading, the warm-up
# step and the model build cancel out. On a GPU each operation is at least one kernel launch; with --gpu-code-path a CPU
# counts what a GPU step issues. Needs perf and root (uprobes); removes its probes when it ends.
#
# Usage: tools/libtorch-calls.sh CORA BENCH-ARGUMENTS...
#   e.g. tools/libtorch-calls.sh src/Cora.Cli/bin/Release/net10.0/cora train-step --gpu-code-path --batch 16 --threads 1
#        (add --baseline per-parameter-optimizer to count both ways: the figures are then the sum of the two runs)
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
cora="$1"; shift
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "uprobes need root: run this as root (sudo -E keeps CORA_SHARED)" >&2; exit 1; }

# The libraries the CLI really loads (a bundled libtorch or CORA_LIBTORCH's), from the dynamic loader's log.
libs=$(LD_DEBUG=files "$cora" doctor 2>&1 | sed -n 's/.*calling init: \(.*\(libLibTorchSharp\|libtorch_cpu\)\.so\)$/\1/p' | sort -u)
lts=$(grep LibTorchSharp <<<"$libs" | head -1); tcpu=$(grep libtorch_cpu <<<"$libs" | head -1)
[ -n "$lts" ] && [ -n "$tcpu" ] || { echo "could not tell which libtorch '$cora doctor' loads" >&2; exit 1; }

remove_probes() { perf probe -q -d 'probe_libLibTorchSharp:*' 2>/dev/null || true; perf probe -q -d 'probe_libtorch_cpu:*' 2>/dev/null || true; }
remove_probes                                  # left over from an interrupted run
work=$(mktemp -d)
trap 'remove_probes; rm -rf "$work"' EXIT
# perf probe takes at most 128 probes a call: 100 at a time.
nm -D "$lts" | awk '$2 == "T" && $3 ~ /^THS/ { print "-a " $3 }' | xargs -n 200 perf probe -q -x "$lts" ||
  { echo "perf probe could not add uprobes to $lts (a kernel without uprobes, or tracefs not mounted?)" >&2; exit 1; }
node=$(nm -D "$tcpu" | awk '$2 == "T" && $3 ~ /^_ZN5torch8autograd6Engine17evaluate_function/ && !found { print $1; found = 1 }')
perf probe -q -x "$tcpu" -a "autograd_node=0x$node"
echo "probes: $(perf probe -l 2>/dev/null | wc -l) ($lts, $tcpu)"

for n in 2 12; do
  perf stat -x, -o "$work/n$n.csv" -e 'probe_libLibTorchSharp:*' -e probe_libtorch_cpu:autograd_node \
    "$cora" bench "$@" --repeats "$n" > "$work/out$n.txt"
done
tail -n +2 "$work/out12.txt" | grep -v '^ ' | head -4

# Calls that only touch the host (metadata, views, handles, error checks, scalar conversions, gradient handles, the CUDA
# availability query of the bench's memory sampling) are counted apart from operations. THSTensor_mm is left out: the bench's one-second matmul peak loop calls it a varying number of times
# (Cora's steps use linear and bmm).
awk -F, '
  BEGIN {
    split("dispose get_and_reset_last_err dispose_scalar float64_to_scalar float32_to_scalar int64_to_scalar bool_to_scalar grad set_grad type sizes strides stride " \
          "Module_is_training transpose view narrow reshape expand unsqueeze squeeze permute select slice alias detach device_type device_index numel ndimension " \
          "is_contiguous data requires_grad set_requires_grad Embedding_weight setGrad isGradEnabled element_size is_leaf is_available", h, " ")
    for (i in h) host[h[i]] = 1
  }
  FNR == 1 { file++ }
  $1 ~ /^[0-9]+$/ { split($3, e, ":"); name = e[2]; sub(/^THS(TorchCuda|Tensor|NN|Torch|Autograd|Generator)_/, "", name); c[file, name] = $1; names[name] = 1 }
  END {
    for (n in names) {
      d = (c[2, n] - c[1, n]) / 10
      if (n == "mm" || d == 0) continue
      if (n == "autograd_node") nodes = d
      else if (n in host) hostCalls += d
      else { ops += d; op[n] = d }
    }
    printf "per step: %.0f operations, %.0f backward nodes, %.0f host-only calls\n", ops, nodes, hostCalls
    printf "operations:"
    while (1) { best = ""; for (n in op) if (best == "" || op[n] > op[best]) best = n; if (best == "" || shown++ == 20) break; printf " %s %g,", best, op[best]; delete op[best] }
    printf "\n"
  }' "$work/n2.csv" "$work/n12.csv"
