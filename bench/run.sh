#!/bin/sh
# make bench: every benchmark program, figures to stdout.  The machine is
# shared and noisy: each benchmark reports ratios against a peer measured in
# the same run, next to absolute figures.
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${MILC_CORPUS_DIR:-$ROOT/../shared/corpus/real}
for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  MILC_SOURCE_DIR="$ROOT" MILC_CORPUS_DIR="$CORPUS" "$b"
done
