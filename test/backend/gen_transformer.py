#!/usr/bin/env python3
"""Writes test/backend/data/transformer_layer.mil and data/weights/weight.bin:
a pre-norm transformer layer (RMSNorm, 4-head causal attention, SwiGLU FFN)
in fp16 with D=32, S=8, F=64, weights in MILBlob v2.  Deterministic."""
import os, random, struct

D, S, H, F = 32, 8, 4, 64
HD = D // H
here = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(5)

blobs = bytearray(64)
struct.pack_into("<II", blobs, 0, 0, 2)
count = 0

def blob(vals):
    global count
    m = (len(blobs) + 63) // 64 * 64
    blobs.extend(b"\0" * (m - len(blobs)))
    payload = b"".join(struct.pack("<e", v) for v in vals)
    meta = bytearray(64)
    struct.pack_into("<IIQQQ", meta, 0, 0xDEADBEEF, 1, len(payload), m + 64, 0)
    blobs.extend(meta)
    blobs.extend(payload)
    count += 1
    struct.pack_into("<I", blobs, 0, count)
    return m

def mat(r, c, scale):
    return blob([rng.uniform(-scale, scale) for _ in range(r * c)])

W = "@model_path/weights/weight.bin"
def bf(shape, off):
    t = "tensor<fp16, [%s]>" % ", ".join(map(str, shape))
    return '%s(BLOBFILE(path = string("%s"), offset = uint64(%d)))' % (t, W, off)

g1 = blob([1.0 + rng.uniform(-0.1, 0.1) for _ in range(D)])
g2 = blob([1.0 + rng.uniform(-0.1, 0.1) for _ in range(D)])
wq, wk, wv, wo = (mat(D, D, 0.3) for _ in range(4))
w1, w3 = mat(D, F, 0.3), mat(D, F, 0.3)
w2 = mat(F, D, 0.2)
mask = blob([0.0 if j <= i else -65504.0 for i in range(S) for j in range(S)])

def T(*shape):
    return "tensor<fp16, [%s]>" % ", ".join(map(str, shape))

L = []
def op(line):
    L.append("            " + line)

def const(typ, name, val):
    op('%s %s = const()[name = string("%s"), val = %s];' % (typ, name, name, val))

const("tensor<int32, [1]>", "ax", "tensor<int32, [1]>([-1])")
const("bool", "kd", "bool(true)")
const("fp16", "eps", "fp16(0x1.5p-17)")
const(T(D), "g1", bf([D], g1))
const(T(D), "g2", bf([D], g2))
for n, off, shp in (("wq", wq, (D, D)), ("wk", wk, (D, D)), ("wv", wv, (D, D)), ("wo", wo, (D, D)),
                    ("w1", w1, (D, F)), ("w3", w3, (D, F)), ("w2", w2, (F, D))):
    const(T(*shp), n, bf(shp, off))
const(T(1, 1, S, S), "mask", bf([1, 1, S, S], mask))
const("tensor<int32, [4]>", "hs", "tensor<int32, [4]>([1, %d, %d, %d])" % (S, H, HD))
const("tensor<int32, [3]>", "ds", "tensor<int32, [3]>([1, %d, %d])" % (S, D))
const("tensor<int32, [4]>", "pm", "tensor<int32, [4]>([0, 2, 1, 3])")
const("bool", "fl", "bool(false)")
const("bool", "tr", "bool(true)")
const("fp16", "sc", "fp16(0x1.6a1p-2)")
const("int32", "am", "int32(-1)")

def rms(x, g, p):
    op('%s %s_sq = mul(x = %s, y = %s)[name = string("%s_sq")];' % (T(1, S, D), p, x, x, p))
    op('%s %s_ms = reduce_mean(axes = ax, keep_dims = kd, x = %s_sq)[name = string("%s_ms")];' % (T(1, S, 1), p, p, p))
    op('%s %s_r = rsqrt(epsilon = eps, x = %s_ms)[name = string("%s_r")];' % (T(1, S, 1), p, p, p))
    op('%s %s_n = mul(x = %s, y = %s_r)[name = string("%s_n")];' % (T(1, S, D), p, x, p, p))
    op('%s %s = mul(x = %s_n, y = %s)[name = string("%s")];' % (T(1, S, D), p, p, g, p))

def mm(out, shape, x, y, tx="fl", ty="fl"):
    op('%s %s = matmul(transpose_x = %s, transpose_y = %s, x = %s, y = %s)[name = string("%s")];'
       % (T(*shape), out, tx, ty, x, y, out))

rms("x", "g1", "xn")
for n in "qkv":
    mm(n, (1, S, D), "xn", "w" + n)
    op('%s %s_h = reshape(shape = hs, x = %s)[name = string("%s_h")];' % (T(1, S, H, HD), n, n, n))
    op('%s %s_t = transpose(perm = pm, x = %s_h)[name = string("%s_t")];' % (T(1, H, S, HD), n, n, n))
mm("att", (1, H, S, S), "q_t", "k_t", ty="tr")
op('%s att_s = mul(x = att, y = sc)[name = string("att_s")];' % T(1, H, S, S))
op('%s att_m = add(x = att_s, y = mask)[name = string("att_m")];' % T(1, H, S, S))
op('%s att_p = softmax(axis = am, x = att_m)[name = string("att_p")];' % T(1, H, S, S))
mm("o", (1, H, S, HD), "att_p", "v_t")
op('%s o_t = transpose(perm = pm, x = o)[name = string("o_t")];' % T(1, S, H, HD))
op('%s o_r = reshape(shape = ds, x = o_t)[name = string("o_r")];' % T(1, S, D))
mm("ao", (1, S, D), "o_r", "wo")
op('%s h = add(x = x, y = ao)[name = string("h")];' % T(1, S, D))
rms("h", "g2", "hn")
mm("f1", (1, S, F), "hn", "w1")
mm("f3", (1, S, F), "hn", "w3")
op('%s f1_a = silu(x = f1)[name = string("f1_a")];' % T(1, S, F))
op('%s f_g = mul(x = f1_a, y = f3)[name = string("f_g")];' % T(1, S, F))
mm("f2", (1, S, D), "f_g", "w2")
op('%s y = add(x = h, y = f2)[name = string("y")];' % T(1, S, D))

text = ("program(1.3)\n[buildInfo = dict<string, string>({{\"milc-test\", \"transformer_layer\"}})]\n{\n"
        "    func main<ios18>(%s x) {\n" % T(1, S, D) + "\n".join(L) + "\n        } -> (y);\n}\n")
with open(os.path.join(here, "data", "transformer_layer.mil"), "w") as f:
    f.write(text)
with open(os.path.join(here, "data", "weights", "weight.bin"), "wb") as f:
    f.write(blobs)
