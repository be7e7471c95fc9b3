#!/usr/bin/env python3
"""bench/gen_transformer.py -- writes an N-layer pre-norm transformer (RMSNorm,
causal attention, SwiGLU) as a .mlmodelc bundle: model.mil + weights/weight.bin
(MIL blob storage v2, docs/mil-format.md section 5).

Two spellings of the same network:
  --form=linear  activations [1, S, D]; projections are `linear`; RMSNorm as
                 reduce_mean(square) -> add -> rsqrt -> mul -> mul (even layers)
                 and x / sqrt(mean(x^2) + eps) * w (odd layers)
  --form=ane     activations [1, D, 1, S] (docs/ane-notes.md section 13);
                 projections are matmul(W, x) on [D, S]; RMSNorm as
                 mul(x,x) -> reduce_sum -> mul(1/D) -> add -> pow(-0.5) -> mul -> mul;
                 attention decomposed per section 13.3 with a constant causal mask

  gen_transformer.py --layers 2 --dim 64 --seq 32 --heads 4 --ffn 128 --form linear --out m.mlmodelc
  --zeros writes sparse all-zero weights (fast; for compile-time benchmarks).
  --dtype fp32 stores activations and weights in fp32 (default fp16).
"""
import argparse
import math
import os
import random
import struct


def hexf(v):
    """Canonical-ish hex float: 0x1.8p+1, 0x0p+0."""
    if v == 0:
        return "0x0p+0"
    s = float(v).hex()          # e.g. '0x1.8000000000000p+1'
    mant, exp = s.split("p")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return "%sp%s" % (mant, exp if exp.startswith("-") else "+" + exp.lstrip("+"))


class Blob:
    def __init__(self, path, zeros, dtype="fp16"):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<II", 0, 2) + b"\0" * 56)
        self.count = 0
        self.zeros = zeros
        # weight.bin dtype code and element format
        self.code, self.size, self.fmt = (1, 2, "<e") if dtype == "fp16" else (2, 4, "<f")

    def add_fp16(self, values_or_count, gen=None):
        """Adds a blob of the bundle's float dtype (fp16 unless --dtype fp32)."""
        end = self.f.seek(0, 2)
        meta = (end + 63) // 64 * 64
        n = values_or_count if isinstance(values_or_count, int) else len(values_or_count)
        self.f.seek(meta)
        self.f.write(struct.pack("<IIQQQ", 0xDEADBEEF, self.code, self.size * n, meta + 64, 0) + b"\0" * 32)
        if self.zeros:
            self.f.seek(meta + 64 + self.size * n - 1)
            self.f.write(b"\0")
        else:
            vals = values_or_count if not isinstance(values_or_count, int) else [gen() for _ in range(n)]
            self.f.write(b"".join(struct.pack(self.fmt, v) for v in vals))
        self.count += 1
        return meta

    def close(self):
        self.f.seek(0)
        self.f.write(struct.pack("<I", self.count))
        self.f.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--form", choices=["linear", "ane"], default="linear")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--zeros", action="store_true")
    ap.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    D, S, H, F = a.dim, a.seq, a.heads, a.ffn
    HD = D // H
    os.makedirs(os.path.join(a.out, "weights"), exist_ok=True)
    blob = Blob(os.path.join(a.out, "weights", "weight.bin"), a.zeros, a.dtype)
    DT = a.dtype
    BP = 'string("@model_path/weights/weight.bin")'
    L = []

    def emit(s):
        L.append("            " + s + ";")

    def wconst(name, shape, fan_in=None, values=None, gamma=False):
        n = 1
        for d in shape:
            n *= d
        if values is not None:
            off = blob.add_fp16(values)
        elif gamma:
            off = blob.add_fp16(n, lambda: 1.0 + rnd.uniform(-0.1, 0.1))
        else:
            sc = 1.0 / math.sqrt(fan_in)
            off = blob.add_fp16(n, lambda: rnd.uniform(-sc, sc))
        ty = "tensor<%s, [%s]>" % (DT, ", ".join(map(str, shape)))
        emit('%s %s = const()[name = string("%s"), val = %s(BLOBFILE(path = %s, offset = uint64(%d)))]'
             % (ty, name, name, ty, BP, off))
        return name

    def T(*shape):
        return "tensor<%s, [%s]>" % (DT, ", ".join(map(str, shape)))

    def ints(*v):
        return "tensor<int32, [%d]>([%s])" % (len(v), ", ".join(map(str, v)))

    eps = "%s(%s)" % (DT, hexf(float(struct.unpack("<e", struct.pack("<e", 1e-5))[0])))
    mask_vals = [0.0 if j <= i else -65504.0 for i in range(S) for j in range(S)]
    if a.zeros:
        mask_vals = len(mask_vals)
    wconst("causal_mask", [1, 1, S, S], values=mask_vals) if not a.zeros else \
        wconst("causal_mask", [1, 1, S, S], fan_in=1)
    scale = "%s(%s)" % (DT, hexf(1.0 / math.sqrt(HD)))

    if a.form == "linear":
        x = "x"
        for l in range(a.layers):
            p = "l%d_" % l
            for W, shp in (("wq", [D, D]), ("wk", [D, D]), ("wv", [D, D]), ("wo", [D, D]),
                           ("w1", [F, D]), ("w3", [F, D]), ("w2", [D, F])):
                wconst(p + W, shp, fan_in=shp[1])
            wconst(p + "g1", [D], gamma=True)
            wconst(p + "g2", [D], gamma=True)

            def rms(src, g, tag, spelling):
                if spelling == 0:
                    emit("%s %s_sq = square(x = %s)" % (T(1, S, D), tag, src))
                    emit("%s %s_ms = reduce_mean(axes = %s, keep_dims = bool(true), x = %s_sq)" % (T(1, S, 1), tag, ints(-1), tag))
                    emit("%s %s_v = add(x = %s_ms, y = %s)" % (T(1, S, 1), tag, tag, eps))
                    emit("%s %s_r = rsqrt(x = %s_v)" % (T(1, S, 1), tag, tag))
                    emit("%s %s_n = mul(x = %s, y = %s_r)" % (T(1, S, D), tag, src, tag))
                else:
                    emit("%s %s_sq = mul(x = %s, y = %s)" % (T(1, S, D), tag, src, src))
                    emit("%s %s_ms = reduce_mean(axes = %s, keep_dims = bool(true), x = %s_sq)" % (T(1, S, 1), tag, ints(-1), tag))
                    emit("%s %s_v = add(x = %s_ms, y = %s)" % (T(1, S, 1), tag, tag, eps))
                    emit("%s %s_s = sqrt(x = %s_v)" % (T(1, S, 1), tag, tag))
                    emit("%s %s_n = real_div(x = %s, y = %s_s)" % (T(1, S, D), tag, src, tag))
                emit("%s %s = mul(x = %s_n, y = %s)" % (T(1, S, D), tag, tag, g))
                return tag

            xn = rms(x, p + "g1", p + "xn", l % 2)
            for nm in ("q", "k", "v"):
                emit("%s %s%s = linear(weight = %sw%s, x = %s)" % (T(1, S, D), p, nm, p, nm, xn))
                emit("%s %s%s_r = reshape(shape = %s, x = %s%s)" % (T(1, S, H, HD), p, nm, ints(1, S, H, HD), p, nm))
                emit("%s %s%s_h = transpose(perm = %s, x = %s%s_r)" % (T(1, H, S, HD), p, nm, ints(0, 2, 1, 3), p, nm))
            emit("%s %ssc = matmul(transpose_x = bool(false), transpose_y = bool(true), x = %sq_h, y = %sk_h)" % (T(1, H, S, S), p, p, p))
            emit("%s %sscs = mul(x = %ssc, y = %s)" % (T(1, H, S, S), p, p, scale))
            emit("%s %sscm = add(x = %sscs, y = causal_mask)" % (T(1, H, S, S), p, p))
            emit("%s %sprobs = softmax(axis = int32(-1), x = %sscm)" % (T(1, H, S, S), p, p))
            emit("%s %sattn = matmul(transpose_x = bool(false), transpose_y = bool(false), x = %sprobs, y = %sv_h)" % (T(1, H, S, HD), p, p, p))
            emit("%s %sattn_t = transpose(perm = %s, x = %sattn)" % (T(1, S, H, HD), p, ints(0, 2, 1, 3), p))
            emit("%s %sattn_out = reshape(shape = %s, x = %sattn_t)" % (T(1, S, D), p, ints(1, S, D), p))
            emit("%s %so = linear(weight = %swo, x = %sattn_out)" % (T(1, S, D), p, p, p))
            emit("%s %sx2 = add(x = %s, y = %so)" % (T(1, S, D), p, x, p))
            xn2 = rms(p + "x2", p + "g2", p + "xn2", (l + 1) % 2)
            emit("%s %sh1 = linear(weight = %sw1, x = %s)" % (T(1, S, F), p, p, xn2))
            emit("%s %sh3 = linear(weight = %sw3, x = %s)" % (T(1, S, F), p, p, xn2))
            emit("%s %ssilu = silu(x = %sh1)" % (T(1, S, F), p, p))
            emit("%s %sgate = mul(x = %ssilu, y = %sh3)" % (T(1, S, F), p, p, p))
            emit("%s %sffn = linear(weight = %sw2, x = %sgate)" % (T(1, S, D), p, p, p))
            emit("%s %sx3 = add(x = %sx2, y = %sffn)" % (T(1, S, D), p, p, p))
            x = p + "x3"
        sig = T(1, S, D) + " x"
    else:
        x = "x"
        invD = "%s(%s)" % (DT, hexf(float(struct.unpack("<e", struct.pack("<e", 1.0 / D))[0])))
        for l in range(a.layers):
            p = "l%d_" % l
            for W, shp in (("wq", [D, D]), ("wk", [D, D]), ("wv", [D, D]), ("wo", [D, D]),
                           ("w1", [F, D]), ("w3", [F, D]), ("w2", [D, F])):
                wconst(p + W, shp, fan_in=shp[1])
            wconst(p + "g1", [1, D, 1, 1], gamma=True)
            wconst(p + "g2", [1, D, 1, 1], gamma=True)

            def rms(src, g, tag):
                emit("%s %s_sq = mul(x = %s, y = %s)" % (T(1, D, 1, S), tag, src, src))
                emit("%s %s_ss = reduce_sum(axes = %s, keep_dims = bool(true), x = %s_sq)" % (T(1, 1, 1, S), tag, ints(1), tag))
                emit("%s %s_ms = mul(x = %s_ss, y = %s)" % (T(1, 1, 1, S), tag, tag, invD))
                emit("%s %s_v = add(x = %s_ms, y = %s)" % (T(1, 1, 1, S), tag, tag, eps))
                emit("%s %s_r = pow(x = %s_v, y = %s(-0x1p-1))" % (T(1, 1, 1, S), tag, tag, DT))
                emit("%s %s_n = mul(x = %s, y = %s_r)" % (T(1, D, 1, S), tag, src, tag))
                emit("%s %s = mul(x = %s_n, y = %s)" % (T(1, D, 1, S), tag, tag, g))
                return tag

            def proj(src, W, out, oc, ic):
                emit("%s %s_in = reshape(shape = %s, x = %s)" % (T(ic, S), out, ints(ic, S), src))
                emit("%s %s_mm = matmul(transpose_x = bool(false), transpose_y = bool(false), x = %s, y = %s_in)" % (T(oc, S), out, W, out))
                emit("%s %s = reshape(shape = %s, x = %s_mm)" % (T(1, oc, 1, S), out, ints(1, oc, 1, S), out))
                return out

            xn = rms(x, p + "g1", p + "xn")
            for nm in ("q", "k", "v"):
                proj(xn, p + "w" + nm, p + nm, D, D)
                emit("%s %s%s_r = reshape(shape = %s, x = %s%s)" % (T(1, H, HD, S), p, nm, ints(1, H, HD, S), p, nm))
                emit("%s %s%s_h = transpose(perm = %s, x = %s%s_r)" % (T(1, H, S, HD), p, nm, ints(0, 1, 3, 2), p, nm))
            emit("%s %ssc = matmul(transpose_x = bool(false), transpose_y = bool(true), x = %sq_h, y = %sk_h)" % (T(1, H, S, S), p, p, p))
            emit("%s %sscs = mul(x = %ssc, y = %s)" % (T(1, H, S, S), p, p, scale))
            emit("%s %sscm = add(x = %sscs, y = causal_mask)" % (T(1, H, S, S), p, p))
            emit("%s %sprobs = softmax(axis = int32(-1), x = %sscm)" % (T(1, H, S, S), p, p))
            emit("%s %sattn = matmul(transpose_x = bool(false), transpose_y = bool(false), x = %sprobs, y = %sv_h)" % (T(1, H, S, HD), p, p, p))
            emit("%s %sattn_t = transpose(perm = %s, x = %sattn)" % (T(1, H, HD, S), p, ints(0, 1, 3, 2), p))
            emit("%s %sattn_out = reshape(shape = %s, x = %sattn_t)" % (T(1, D, 1, S), p, ints(1, D, 1, S), p))
            proj(p + "attn_out", p + "wo", p + "o", D, D)
            emit("%s %sx2 = add(x = %s, y = %so)" % (T(1, D, 1, S), p, x, p))
            xn2 = rms(p + "x2", p + "g2", p + "xn2")
            proj(xn2, p + "w1", p + "h1", F, D)
            proj(xn2, p + "w3", p + "h3", F, D)
            emit("%s %ssig = sigmoid(x = %sh1)" % (T(1, F, 1, S), p, p))
            emit("%s %ssilu = mul(x = %sh1, y = %ssig)" % (T(1, F, 1, S), p, p, p))
            emit("%s %sgate = mul(x = %ssilu, y = %sh3)" % (T(1, F, 1, S), p, p, p))
            proj(p + "gate", p + "w2", p + "ffn", D, F)
            emit("%s %sx3 = add(x = %sx2, y = %sffn)" % (T(1, D, 1, S), p, p, p))
            x = p + "x3"
        sig = T(1, D, 1, S) + " x"
    blob.close()
    with open(os.path.join(a.out, "model.mil"), "w") as f:
        f.write("program(1.3)\n{\n    func main<ios18>(%s) {\n" % sig)
        f.write("\n".join(L) + "\n")
        f.write("        } -> (%s);\n}\n" % x)


if __name__ == "__main__":
    main()
