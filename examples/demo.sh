#!/bin/sh
# make demo: compile and run the bundled MIL program on the CPU device.
# (The transformer training example replaces this once it exists.)
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MILC="$BUILD/tools/milc"
RUN="$BUILD/tools/mil-run"
PROG="$ROOT/examples/mil/ffn_block.mil"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "== milc --check $PROG"
"$MILC" --check "$PROG" && echo "ok: parses, verifies, types check"

echo "== milc --spelling=1.0 (canonical MIL, program(1.0) spelling), first lines:"
"$MILC" -O0 --spelling=1.0 -o "$OUT/ffn_1_0.mil" "$PROG"
head -c 600 "$OUT/ffn_1_0.mil"; echo " ..."

echo "== milc -O2 --stats"
"$MILC" -O2 --stats -o "$OUT/ffn_O2.mil" "$PROG"

echo "== mil-run (CPU device, fp16 storage semantics), source and -O2 program"
"$RUN" --random-inputs 1 --summary -o "$OUT/src" "$PROG"
"$RUN" --random-inputs 1 --summary -o "$OUT/opt" "$OUT/ffn_O2.mil"

echo "== milc -O2 --emit=milb: a compact binary program, weights kept apart"
"$MILC" -O2 --emit=milb --stats -o "$OUT/ffn.milb" "$PROG" 2>&1 | grep '^milb'
ls -l "$OUT"/ffn.milb "$OUT"/ffn.weights.bin 2>/dev/null || ls -l "$OUT"
"$MILC" -O2 --emit=milb --strip --stats -o "$OUT/ffn_stripped.milb" "$PROG" 2>&1 | grep '^milb: .*bytes'
echo "== disassembled back to MIL (first lines)"
"$MILC" --emit=mil "$OUT/ffn.milb" | head -8
echo "== the same binary run by mil-run and by examples/embed (an app linking only the runtime)"
"$RUN" --random-inputs 1 --summary -o "$OUT/bin" "$OUT/ffn.milb"
mkdir -p "$OUT/emb"
"$BUILD/examples/embed" "$OUT/ffn.milb" "$OUT/emb" x="$OUT/bin/y.npy"
