#!/bin/sh
# Regenerates layer_fp32.mil and layer_fp16.mil (test/runtime/test_rt_steady.c):
# mil-train's forward `layer` function (RMSNorm, causal attention, SwiGLU FFN)
# at B=2, S=128, D=256, 4 heads, FFN 512, with its causal mask constant made a
# function input (the inline 128x128 constant would be 200 KB of text).
#   sh test/runtime/data/steady/gen.sh [BUILD_DIR]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$HERE/../../../../build}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
head -c 20000 /dev/zero | tr '\0' 'a' > "$TMP/data.txt"
for P in fp32 fp16; do
  "$BUILD/tools/mil-train" --data "$TMP/data.txt" --run-dir "$TMP/run" --dump-mil "$TMP/$P" --precision $P \
      --bench --quiet --dim 256 --layers 1 --heads 4 --ffn 512 --seq 128 --batch 2 --steps 1 > /dev/null
  awk -v P=$P '
    /^    func layer</ { on = 1; sub(/\) \{$/, ", tensor<" P ", [128, 128]> mask) {"); print "program(1.3)"; print "{" }
    on && / mask = const\(\)/ { next }
    on { print }
    on && /^        \} -> / { on = 0; print "}" }' "$TMP/$P/forward.mil" > "$HERE/layer_$P.mil"
done
