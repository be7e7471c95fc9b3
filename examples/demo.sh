#!/bin/sh
# make demo: train the bundled byte-level transformer LM (examples/train,
# mil-train) on Debian's fortunes for a few minutes through milc-compiled
# kernels on the CPU device, show the loss curve and a sample; then a short
# tour of milc / mil-run on the bundled MIL program.
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MILC="$BUILD/tools/milc"
RUN="$BUILD/tools/mil-run"
TRAIN="$BUILD/tools/mil-train"
RUNDIR="$BUILD/demo-train"
PROG="$ROOT/examples/mil/ffn_block.mil"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "== mil-train: a byte-level transformer LM trained through milc-compiled MIL (default config)"
echo "   corpus: /usr/share/games/fortunes (Debian's fortunes, concatenated); run directory: $RUNDIR"
rm -rf "$RUNDIR"
"$TRAIN" --run-dir "$RUNDIR" --dump-mil "$RUNDIR/mil"
echo "== loss curve ($RUNDIR/loss.png; the terminal rendering below)"
if command -v gnuplot >/dev/null 2>&1; then
  gnuplot -e "set terminal dumb 100 28; set datafile separator ','; set key top right; \
    set xlabel 'step'; set ylabel 'nats/byte'; \
    plot '$RUNDIR/log.csv' using 1:2 skip 1 with lines title 'train', \
         '' using 1:(strcol(3) eq '' ? NaN : \$3) skip 1 with points pt 'o' title 'validation'"
fi
echo "== validation loss (nats/byte; ln 256 = 5.55 at the start):"
awk -F, 'NR > 1 && $3 != "" { printf "   step %5d  %.3f\n", $1, $3 }' "$RUNDIR/log.csv"
echo "== another sample from the checkpoint: mil-train --sample $RUNDIR/ckpt.bin --prompt 'Q: ' --tokens 200"
"$TRAIN" --sample "$RUNDIR/ckpt.bin" --prompt "Q: " --tokens 200 --seed 7
echo "== the generated MIL: $RUNDIR/mil/forward.mil ($(grep -c '' "$RUNDIR/mil/forward.mil") lines), grad.mil, kernels.mil"

echo "== milc / mil-run on $PROG"
"$MILC" --check "$PROG" && echo "ok: parses, verifies, types check"
"$MILC" -O2 --stats -o "$OUT/ffn_O2.mil" "$PROG" 2>&1 | tail -3
"$MILC" -O2 --emit=milb --stats -o "$OUT/ffn.milb" "$PROG" 2>&1 | grep '^milb'
"$RUN" --random-inputs 1 --summary -o "$OUT/bin" "$OUT/ffn.milb"
mkdir -p "$OUT/emb"
"$BUILD/examples/embed" "$OUT/ffn.milb" "$OUT/emb" x="$OUT/bin/y.npy"
