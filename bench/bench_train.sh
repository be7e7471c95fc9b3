#!/bin/sh
# mil-train step time (issue 10): ms/step and tokens/s of a full training step
# (embedding, layers, head, loss, backward, AdamW) next to PyTorch doing the
# same layers' step (/work/shared/bench/torch_layer_step.py: fwd + bwd + Adam,
# fp32, 2 threads) in the same run, and the FMA peak of the machine.
#   (a) the seed's config: 1 layer, D=768, FFN 2048, 12 heads, S=512, batch 1
#   (b) a Stories-like body: 12 layers, D=768, FFN 2048, 12 heads, S=256, batch 1
# PyTorch: $MILC_VENV if it has torch, else a venv created here from PyPI when
# the network allows, else Debian's python3-torch; the script prints which.
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${MILC_BENCH_PEERS:-$ROOT/../shared/bench}
STEPS=${TRAIN_BENCH_STEPS:-6}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

PY=""
for cand in "${MILC_VENV:-}/bin/python" "$BUILD/bench-venv/bin/python"; do
  if [ -x "$cand" ] && "$cand" -c 'import torch' 2>/dev/null; then PY=$cand; break; fi
done
if [ -z "$PY" ] && python3 -m venv "$BUILD/bench-venv" >/dev/null 2>&1 &&
   "$BUILD/bench-venv/bin/pip" install -q torch numpy >/dev/null 2>&1; then PY="$BUILD/bench-venv/bin/python"; fi
if [ -z "$PY" ] && python3 -c 'import torch' 2>/dev/null; then PY=python3; fi
if [ -n "$PY" ]; then
  echo "peer: PyTorch $("$PY" -c 'import torch; print(torch.__version__)') ($PY)"
else
  echo "peer: no PyTorch available (no network for PyPI, no python3-torch): mil-train figures only"
fi

if [ -f "$PEERS/peak.c" ] && gcc -O2 -mavx512f -fopenmp "$PEERS/peak.c" -o "$TMP/peak" 2>/dev/null; then
  PEAK=$(OMP_NUM_THREADS=2 "$TMP/peak" | sed -n 's/.*: \([0-9.]*\) GFLOP.*/\1/p')
  echo "fp32 FMA peak (2 threads): $PEAK GFLOP/s"
else
  PEAK=""
fi

head -c 400000 /dev/urandom > "$TMP/data.bin"
run() { # name layers seq [precision]
  name=$1 L=$2 S=$3 P=${4:-fp32}
  "$BUILD/tools/mil-train" --data "$TMP/data.bin" --run-dir "$TMP/$name" --bench --quiet --precision "$P" \
      --dim 768 --ffn 2048 --heads 12 --layers "$L" --seq "$S" --batch 1 --steps "$STEPS" > "$TMP/$name.out"
  # median ms/step over the steps after the first
  ms=$(awk -F, 'NR > 2 { print $5 }' "$TMP/$name/log.csv" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  flops=$(awk -v L="$L" -v S="$S" 'BEGIN { D = 768; H = 2048; print L * (6 * S * (4 * D * D + 3 * D * H) + 12 * S * S * D) }')
  eval "ms_$name=$ms"
  line="($name) L=$L S=$S $P: mil-train $ms ms/step, $(awk -v s="$S" -v m="$ms" 'BEGIN { printf "%.0f", s / m * 1000 }') tokens/s, $(awk -v f="$flops" -v m="$ms" 'BEGIN { printf "%.1f", f / m / 1e6 }') GFLOP/s"
  [ -n "$PEAK" ] && line="$line ($(awk -v f="$flops" -v m="$ms" -v p="$PEAK" 'BEGIN { printf "%.1f", 100 * f / m / 1e6 / p }')% of peak)"
  if [ -n "$PY" ]; then
    tms=$(THREADS=2 "$PY" "$PEERS/torch_layer_step.py" 768 2048 12 "$S" "$L" 0 "$STEPS" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
    line="$line | torch $tms ms/step | mil-train/torch = $(awk -v a="$ms" -v b="$tms" 'BEGIN { printf "%.2f", a / b }')x time"
  fi
  echo "$line"
}
run a 1 512
run a16 1 512 fp16
run b 12 256
echo "fp16 storage / fp32 (seed config, same run): $(awk -v a="$ms_a16" -v b="$ms_a" 'BEGIN { printf "%.2f", a / b }')x time"
echo "(model GFLOP/s count the layers' GEMMs and full attention as the peer does; mil-train's step also runs"
echo " the byte embedding, head and AdamW, which the peer's MSE step does not)"
