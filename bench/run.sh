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
