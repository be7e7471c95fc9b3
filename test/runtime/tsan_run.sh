#!/bin/sh
# The ThreadSanitizer run (`make tsan`: ctest 'tsan' of a -DMILC_TSAN=ON build
# in build-tsan/).  Criterion cannot run under TSan (its inheritable arena
# fails to map: Snaipe/Criterion#274), so the threaded kernels are exercised
# through the tools instead, on sizes the pool splits (B=2, S=128, D=256):
#   - mil-run of a transformer layer's forward and its mil_grad backward
#     (-O2: fused attention, rms_norm, SwiGLU, GEMMs split over the pool),
#     fp32 and fp16 storage, 2 and 3 threads, each run twice on one plan;
#   - mil-train, 2 training steps in fp32 and in fp16 (every kernel of the
#     forward, backward and loss, the pool shared by all of the step's plans).
# Any report fails the run (TSAN_OPTIONS halt_on_error=1, set by the ctest).
#   sh test/runtime/tsan_run.sh BUILD_DIR SOURCE_DIR
set -eu
B=$1 S=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
WRT=x,attn_norm,wq,wk,wv,wo,ffn_norm,w1,w3,w2
for P in fp32 fp16; do
  "$B/tools/milc" --grad=layer --wrt=$WRT -O2 --emit=milb -o "$T/layer_$P.milb" "$S/test/runtime/data/steady/layer_$P.mil"
  for N in 2 3; do
    for F in layer_fwd layer_bwd; do
      echo "mil-run --function $F ($P, $N threads)"
      MILC_THREADS=$N "$B/tools/mil-run" --function $F --random-inputs 1 --repeat 2 "$T/layer_$P.milb" > /dev/null
    done
  done
done
yes "The quick brown fox jumps over the lazy dog." | head -c 30000 > "$T/data.txt"
for P in fp32 fp16; do
  echo "mil-train --precision $P (2 threads)"
  MILC_THREADS=2 "$B/tools/mil-train" --data "$T/data.txt" --run-dir "$T/run-$P" --bench --quiet --precision $P \
      --dim 256 --layers 1 --heads 4 --ffn 512 --seq 128 --batch 2 --steps 2 > /dev/null
done
echo "tsan: no reports"
