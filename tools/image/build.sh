#!/usr/bin/env bash
# Builds the cora image from the repository's Dockerfile with whichever builder can run here (docker, podman, buildah), then
# smoke-tests it: `cora doctor` and `cora --help` inside the image.
#   tools/image/build.sh [TAG]      (default cora:dev)
# Where no builder can run (no daemon, no rootless support), it says so and exits 3; tests/Cora.Tests/Deploy/ImageLayoutTests.cs
# then checks the layout the Dockerfile publishes, with the same publish command.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-cora:dev}"
builder=""
for b in docker podman buildah; do
  if command -v "$b" > /dev/null; then
    case "$b" in
      docker) docker info > /dev/null 2>&1 && builder=docker ;;
      podman) podman info > /dev/null 2>&1 && builder=podman ;;
      buildah) buildah info > /dev/null 2>&1 && builder=buildah ;;
    esac
  fi
  [ -n "$builder" ] && break
done
if [ -z "$builder" ]; then
  echo "tools/image/build.sh: no container builder can run here (docker without a daemon, no podman or buildah); nothing built" >&2
  exit 3
fi
echo "building $tag with $builder"
if [ "$builder" = buildah ]; then buildah bud -t "$tag" .; else "$builder" build -t "$tag" .; fi
run="$builder"; [ "$builder" = buildah ] && run=podman
"$run" run --rm "$tag" doctor --help > /dev/null
"$run" run --rm --read-only --tmpfs /tmp "$tag" doctor
echo "built and smoke-tested $tag"
