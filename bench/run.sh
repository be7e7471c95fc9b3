#!/bin/sh
# make bench: every benchmark program, figures to stdout.  The machine is
# shared and noisy: benchmarks report CPU time or ratios against a peer
# measured in the same run, next to absolute figures.
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${MILC_CORPUS_DIR:-$ROOT/../shared/corpus/real}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export MILC_SOURCE_DIR="$ROOT" MILC_CORPUS_DIR="$CORPUS"

LARGEST=$(ls -S "$CORPUS"/*.mil 2>/dev/null | head -1 || true)
python3 "$ROOT/bench/gen_transformer.py" --layers 12 --dim 768 --seq 256 --heads 12 --ffn 2048 \
    --zeros --out "$TMP/t12.mlmodelc" > /dev/null

echo "== bench_parse (issue 2: parse + verify + print throughput)"
"$BUILD/bench/bench_parse" "${LARGEST:-$ROOT/examples/mil/ffn_block.mil}"
echo "== bench_dispatch (issue 3: per-op dispatch overhead on tiny tensors)"
"$BUILD/bench/bench_dispatch"
if [ -n "$LARGEST" ]; then
  echo "== bench_corpus (issue 3: the largest corpus program on the CPU device, synthetic weights)"
  "$BUILD/bench/bench_corpus" "$LARGEST" 5
fi
echo "== bench_compile (issue 4: -O2 compile time, ops before/after)"
"$BUILD/bench/bench_compile" --per-pass ${LARGEST:+"$LARGEST"} "$TMP/t12.mlmodelc"
"$BUILD/bench/bench_compile" --target=ane ${LARGEST:+"$LARGEST"} "$TMP/t12.mlmodelc"
echo "== bench_grad (issue 9: --grad + -O2 on the 12-layer D=768 transformer, ops, tap bytes)"
"$BUILD/bench/bench_grad" "$TMP/t12.mlmodelc" 12 256 768 2048
echo "== .milb sizes (issue 5)"
for n in 128 1024; do
  cat > "$TMP/mm$n.mil" <<MIL
program(1.3)
[buildInfo = dict<string, string>({})]
{
    func main<ios18>(tensor<fp16, [1, $n, $n]> a, tensor<fp16, [1, $n, $n]> b) {
            tensor<fp16, [1, $n, $n]> c = matmul(x = a, y = b)[name = string("c")];
        } -> (c);
}
MIL
  "$BUILD/tools/milc" -O2 --emit=milb --stats -o "$TMP/mm$n.milb" "$TMP/mm$n.mil" 2>&1 | grep 'bytes ('
  "$BUILD/tools/milc" -O2 --emit=milb --strip --stats -o "$TMP/mm${n}s.milb" "$TMP/mm$n.mil" 2>&1 | grep 'bytes ('
done
for lvl in 0 2; do
  "$BUILD/tools/milc" -O$lvl --emit=milb --stats -o "$TMP/layer$lvl.milb" "$ROOT/test/backend/data/transformer_layer.mil" 2>&1 | grep 'bytes ('
  "$BUILD/tools/milc" -O$lvl --emit=milb --strip --stats -o "$TMP/layer${lvl}s.milb" "$ROOT/test/backend/data/transformer_layer.mil" 2>&1 | grep 'bytes ('
done

echo "== mil-train (issue 10: training step vs PyTorch)"
"$ROOT/bench/bench_train.sh" "$BUILD"

echo "== blas_compare (issue 11: how the CPU device's BLAS was chosen: sgemm on the seed's shapes, one run)"
"$BUILD/bench/blas_compare" 5

echo "== bench_layer (issue 11: seed-size layer forward on the CPU device vs PyTorch, FMA peak)"
# Peers (PyTorch forward of the same layer, the FMA peak loop) come from
# MILC_BENCH_PEERS (default ../shared/bench).  PyTorch: $MILC_VENV/bin/python when
# MILC_VENV is set, else a bench-only venv (torch + numpy from PyPI, made once
# in MILC_BENCH_VENV, default BUILD/bench-venv) when the network allows, else
# Debian's python3-torch.  All figures are best-of-N from ONE run,
# interleaved (the machine is shared: compare ratios, not absolute times).
PEERS=${MILC_BENCH_PEERS:-$ROOT/../shared/bench}
LAYER="--layers 1 --dim 768 --seq 512 --heads 12 --ffn 2048"
for dt in fp16 fp32; do
  python3 "$ROOT/bench/gen_transformer.py" $LAYER --dtype $dt --out "$TMP/layer_$dt.mlmodelc" > /dev/null
  "$BUILD/tools/milc" -O2 --emit=milb -o "$TMP/layer_$dt.milb" "$TMP/layer_$dt.mlmodelc/model.mil"
done
PY=""
if [ -n "${MILC_VENV:-}" ] && "$MILC_VENV/bin/python" -c 'import torch' 2>/dev/null; then
  PY="$MILC_VENV/bin/python"; PYWHO="MILC_VENV=$MILC_VENV"
else
  BV=${MILC_BENCH_VENV:-$(cd "$BUILD" && pwd)/bench-venv}
  if ! "$BV/bin/python" -c 'import torch' 2>/dev/null; then
    (python3 -m venv "$BV" && "$BV/bin/pip" install -q torch numpy) > "$TMP/venv.log" 2>&1 || true
  fi
  if "$BV/bin/python" -c 'import torch' 2>/dev/null; then PY="$BV/bin/python"; PYWHO="bench venv $BV (PyPI)"
  elif python3 -c 'import torch' 2>/dev/null; then PY=python3; PYWHO="Debian python3-torch (PyPI not reachable)"
  fi
fi
PEAK=""
if [ -f "$PEERS/peak.c" ] && cc -O2 -mavx512f -fopenmp "$PEERS/peak.c" -o "$TMP/peak" 2>/dev/null; then
  PEAK=$(OMP_NUM_THREADS=${MILC_THREADS:-$(nproc)} "$TMP/peak" | sed -n 's/.*: \([0-9.]*\) GFLOP.*/\1/p')
fi
best() { sort -n | head -1; }
: > "$TMP/m16"; : > "$TMP/m32"; : > "$TMP/pt"
for round in 1 2 3; do
  "$BUILD/bench/bench_layer" "$TMP/layer_fp16.milb" 7 | tee -a "$TMP/m16.log" | sed -n 's/.*best \([0-9.]*\) ms.*/\1/p' >> "$TMP/m16"
  "$BUILD/bench/bench_layer" "$TMP/layer_fp32.milb" 7 | tee -a "$TMP/m32.log" | sed -n 's/.*best \([0-9.]*\) ms.*/\1/p' >> "$TMP/m32"
  if [ -n "$PY" ] && [ -f "$PEERS/torch_layer_fwd.py" ]; then
    THREADS=${MILC_THREADS:-$(nproc)} "$PY" "$PEERS/torch_layer_fwd.py" 2>/dev/null | tee -a "$TMP/pt.log" |
      sed -n 's/.*best \([0-9.]*\) ms.*/\1/p' >> "$TMP/pt"
  fi
done
tail -1 "$TMP/m16.log"; tail -1 "$TMP/m32.log"
GF=$(sed -n 's/.*, \([0-9.]*\) GFLOP ->.*/\1/p' "$TMP/m16.log" | head -1)
M16=$(best < "$TMP/m16"); M32=$(best < "$TMP/m32"); PT=$(best < "$TMP/pt")
[ -n "$PT" ] && echo "peer: $(head -1 "$TMP/pt.log")  [$PYWHO]" || echo "peer: PyTorch not available"
[ -n "$PEAK" ] && echo "FMA peak (peak.c, same run): $PEAK GFLOP/s" || echo "FMA peak: peak.c not built (no AVX-512 or no $PEERS/peak.c)"
awk -v gf="$GF" -v m16="$M16" -v m32="$M32" -v pt="${PT:-0}" -v pk="${PEAK:-0}" 'BEGIN {
  split("fp16 fp32", n, " "); t[1] = m16; t[2] = m32;
  for (i = 1; i <= 2; i++) {
    g = gf / t[i] * 1e3;
    printf "layer forward %s storage: best %.1f ms, %.1f GFLOP/s", n[i], t[i], g;
    if (pt > 0) printf ", %.2fx PyTorch (%.1f ms)", t[i] / pt, pt;
    if (pk > 0) printf ", %.0f%% of FMA peak", 100 * g / pk;
    printf "\n";
  } }'
