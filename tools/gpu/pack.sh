#!/usr/bin/env bash
# Packs everything the GPU checks need into one git-ignored folder (out/gpu, under 60 MiB) for a machine that has an
# NVIDIA GPU and PyTorch but no .NET SDK: a framework-dependent publish of the cora CLI without libtorch natives
# (-p:CoraLibTorchPackage=none; PyTorch's libtorch is used at run time through CORA_LIBTORCH), the .NET runtime of
# this machine, the data (ML-1M CoLLM split, stories260K) and run.sh.
# Usage: tools/gpu/pack.sh [shared-folder]    then, on the GPU machine: bash out/gpu/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
shared="${1:-${CORA_SHARED:-$root/../shared}}"
out="$root/out/gpu"
dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
[ -d "$shared/data/ml-1m-collm" ] || { echo "pack.sh: no $shared/data/ml-1m-collm; pass the shared folder as the first argument" >&2; exit 2; }
rm -rf "$out.tmp"; mkdir -p "$out.tmp"
dotnet publish "$root/src/Cora.Cli" -c Release -r linux-x64 --self-contained false -p:CoraLibTorchPackage=none -p:CoraServe=false \
  -p:DebugType=none -o "$out.tmp/app" -v quiet -nologo
rm -f "$out.tmp"/app/*.dbg "$out.tmp"/app/*.pdb "$out.tmp"/app/*.xml
tar -cJf "$out.tmp/runtime.tar.xz" -C "$dotnet_root" dotnet host shared/Microsoft.NETCore.App
mkdir -p "$out.tmp/data"
tar -cJf "$out.tmp/data.tar.xz" -C "$shared" data/ml-1m-collm/train.tsv data/ml-1m-collm/valid.tsv data/ml-1m-collm/items.tsv \
  models/stories260K/stories260K.bin models/stories260K/tok512.bin models/stories260K/tok512.model
rmdir "$out.tmp/data"
cp "$root/tools/gpu/run.sh" "$out.tmp/run.sh"
git -C "$root" rev-parse HEAD > "$out.tmp/commit.txt" 2>/dev/null || true
rm -rf "$out"; mv "$out.tmp" "$out"
size=$(du -sm "$out" | cut -f1)
echo "packed $out: ${size} MiB (limit 60)"
[ "$size" -le 60 ] || { echo "pack.sh: $out is over 60 MiB" >&2; exit 1; }
