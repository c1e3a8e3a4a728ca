#!/usr/bin/env bash
# Writes a variant of the CoLLM MovieLens-1M item catalog (same ids, other text) for tools/sweep/run.sh's CORA_SWEEP_ITEMS,
# to measure what the item text adds:
#
#   tools/sweep/items.sh alike OUT     every title "a movie"
#   tools/sweep/items.sh genres OUT    each title followed by its MovieLens genres, lower case:
#                                      "Sting, The (1973), comedy, crime" (genres from ml-1m-meta/movies.dat, matched by title)
#
# OUT must not exist; it is written whole or not at all.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: tools/sweep/items.sh alike|genres OUT" >&2; exit 2; }
kind=$1; out=$2
case "$kind" in alike|genres) ;; *) echo "tools/sweep/items.sh: unknown variant '$kind' (alike or genres)" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${CORA_SHARED:-$root/../shared}
items=$shared/data/ml-1m-collm/items.tsv
movies=$shared/data/ml-1m-meta/movies.dat
[ -f "$items" ] || { echo "tools/sweep/items.sh: $items is missing (set CORA_SHARED to the shared folder)" >&2; exit 2; }
[ ! -e "$out" ] || { echo "tools/sweep/items.sh: $out exists; give a new path" >&2; exit 2; }
[ -d "$(dirname "$out")" ] || { echo "tools/sweep/items.sh: the folder of $out does not exist; create it or give another path" >&2; exit 2; }
[ "$kind" = alike ] || [ -f "$movies" ] || { echo "tools/sweep/items.sh: $movies is missing (set CORA_SHARED to the shared folder)" >&2; exit 2; }
tmp=$(mktemp "$out.XXXXXX"); trap 'rm -f "$tmp"' EXIT
case "$kind" in
  alike) awk -F'\t' 'BEGIN { OFS = "\t" } NR == 1 { print; next } { print $1, "a movie" }' "$items" > "$tmp" ;;
  genres)
    # movies.dat is ISO-8859-1, items.tsv UTF-8; every one of the 3,255 titles has to match, or nothing is written.
    iconv -f latin1 -t utf-8 "$movies" | awk '
      NR == FNR { split($0, f, "::"); g = f[3]; gsub(/\|/, ", ", g); genres[f[2]] = tolower(g); next }
      FNR == 1 { print; next }
      { split($0, f, "\t"); if (!(f[2] in genres)) { print "tools/sweep/items.sh: no genres for item " f[1] " \"" f[2] "\"" > "/dev/stderr"; exit 1 }
        print f[1] "\t" f[2] ", " genres[f[2]] }' - "$items" > "$tmp" ;;
esac
mv "$tmp" "$out"; trap - EXIT
echo "tools/sweep/items.sh: wrote $out ($(($(wc -l < "$out") - 1)) items)"
