#!/usr/bin/python3
"""Generates the end-to-end fixtures of test/runtime/test_e2e.c: small
transformer blocks written as MIL text with BLOBFILE weights, their inputs,
and their expected outputs computed with NumPy.

    /usr/bin/python3 test/runtime/gen_transformer.py

Writes test/runtime/data/transformer/<name>/{model.mil, weights/weight.bin,
x.npy, y.npy}.  Everything it writes is committed; the tests never run Python.
The weight.bin writer below is an independent implementation of
docs/mil-format.md section 5 (so the C reader is checked against it).

Programs (one pre-norm block: LN -> MHA (causal) -> residual -> LN -> GELU
FFN -> residual; S=8 tokens, D=16, H=2 heads, F=32):
  sd        [1, S, D] layout: layer_norm(axes=[-1]), linear, reshape/transpose,
            matmul(transpose_y), softmax, additive mask (fp32)
  sdpa      [1, S, D] layout with scaled_dot_product_attention and a bool mask
  c1s       [1, C, 1, S] (ANE) layout: layer_norm(axes=[1]), 1x1 conv,
            matmul(transpose_x / transpose_y) (fp32)
  c1s_fp16  the c1s program in fp16 end to end (fp16 weights and input);
            the reference rounds every op's output to fp16 (the runtime's
            fp16 rule), so it matches up to accumulation order.
"""
import math
import os
import struct

import numpy as np

S, D, H, F = 8, 16, 2, 32
HD = D // H
EPS = 1e-5
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "transformer")

BLOB_CODES = {np.dtype(np.float16): 1, np.dtype(np.float32): 2, np.dtype(np.uint8): 3, np.dtype(np.int8): 4}


class BlobWriter:
    """MILBlob v2: 64-byte header {count, version=2}, then per blob a 64-byte
    metadata record {0xDEADBEEF, dtype, size, data offset, padding, reserved}
    at a 64-aligned offset, followed by the payload."""

    def __init__(self):
        self.buf = bytearray(64)
        self.count = 0

    def append(self, a):
        a = np.ascontiguousarray(a)
        m = (len(self.buf) + 63) // 64 * 64
        self.buf += bytes(m - len(self.buf))
        payload = a.tobytes()
        self.buf += struct.pack("<IIQQQ32x", 0xDEADBEEF, BLOB_CODES[a.dtype], len(payload), m + 64, 0)
        self.buf += payload
        self.count += 1
        return m

    def data(self):
        return bytes(struct.pack("<II56x", self.count, 2)) + bytes(self.buf[64:])


def hexf(v):
    return float(v).hex()


class Prog:
    def __init__(self, dt):
        self.dt = dt  # "fp32" / "fp16"
        self.lines = []
        self.blob = BlobWriter()
        self.n = 0

    def ty(self, shape, dt=None):
        return "tensor<%s, [%s]>" % (dt or self.dt, ", ".join(str(s) for s in shape))

    def const_blob(self, name, a):
        off = self.blob.append(a)
        dt = {np.dtype(np.float16): "fp16", np.dtype(np.float32): "fp32"}[a.dtype]
        t = self.ty(a.shape, dt)
        self.lines.append('%s %s = const()[name = string("%s"), val = %s(BLOBFILE(path = string('
                          '"@model_path/weights/weight.bin"), offset = uint64(%d)))];' % (t, name, name, t, off))
        return name

    def const_inline(self, name, t, lit):
        self.lines.append('%s %s = const()[name = string("%s"), val = %s(%s)];' % (t, name, name, t, lit))
        return name

    def ints(self, name, vals):
        return self.const_inline(name, "tensor<int32, [%d]>" % len(vals), "[%s]" % ", ".join(map(str, vals)))

    def op(self, t, name, op, **args):
        a = ", ".join("%s = %s" % (k, args[k]) for k in sorted(args))
        self.lines.append('%s %s = %s(%s)[name = string("%s")];' % (t, name, op, a, name))
        return name

    def text(self, inp_t, outs):
        body = "\n".join("            " + l for l in self.lines)
        return ("program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n"
                "    func main<ios18>(%s x) {\n%s\n        } -> (%s);\n}\n" % (inp_t, body, outs))


def weights(seed=1234):
    r = np.random.RandomState(seed)
    w = {
        "ln1_g": 1 + 0.1 * r.randn(D), "ln1_b": 0.1 * r.randn(D),
        "ln2_g": 1 + 0.1 * r.randn(D), "ln2_b": 0.1 * r.randn(D),
        "wq": r.randn(D, D) / math.sqrt(D), "bq": 0.1 * r.randn(D),
        "wk": r.randn(D, D) / math.sqrt(D), "bk": 0.1 * r.randn(D),
        "wv": r.randn(D, D) / math.sqrt(D), "bv": 0.1 * r.randn(D),
        "wo": r.randn(D, D) / math.sqrt(D), "bo": 0.1 * r.randn(D),
        "w1": r.randn(F, D) / math.sqrt(D), "b1": 0.1 * r.randn(F),
        "w2": r.randn(D, F) / math.sqrt(F), "b2": 0.1 * r.randn(D),
    }
    return {k: v.astype(np.float32) for k, v in w.items()}


ERF = np.vectorize(math.erf)


def reference(x, w, rnd):
    """x: [S, D] float32.  rnd(a) rounds an op's output to the storage dtype."""
    f = np.float32

    def ln(a, g, b):
        mu = a.mean(-1, keepdims=True)
        var = ((a - mu) ** 2).mean(-1, keepdims=True)
        return rnd((a - mu) / np.sqrt(var + rnd(f(EPS))) * g + b)

    def lin(a, W, b):
        return rnd(a @ W.T + b)

    h = ln(x, w["ln1_g"], w["ln1_b"])
    q, k, v = lin(h, w["wq"], w["bq"]), lin(h, w["wk"], w["bk"]), lin(h, w["wv"], w["bv"])
    heads = []
    mask = np.triu(np.full((S, S), -1e4, np.float32), 1)
    for i in range(H):
        sl = slice(i * HD, (i + 1) * HD)
        sc = rnd(q[:, sl] @ k[:, sl].T)
        sc = rnd(sc * rnd(f(1 / math.sqrt(HD))))
        sc = rnd(sc + mask)
        e = np.exp(sc - sc.max(-1, keepdims=True))
        p = rnd(e / e.sum(-1, keepdims=True))
        heads.append(rnd(p @ v[:, sl]))
    att = np.concatenate(heads, -1)
    x1 = rnd(x + lin(att, w["wo"], w["bo"]))
    h2 = ln(x1, w["ln2_g"], w["ln2_b"])
    a = lin(h2, w["w1"], w["b1"])
    g = rnd(0.5 * a * (1 + ERF(a / math.sqrt(2)).astype(np.float32)))
    return rnd(x1 + lin(g, w["w2"], w["b2"]))


def prog_sd(w, sdpa=False):
    p = Prog("fp32")
    T = p.ty
    for k in ["ln1_g", "ln1_b", "ln2_g", "ln2_b", "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo", "w1", "b1", "w2", "b2"]:
        p.const_blob(k, w[k])
    p.ints("ax", [-1])
    p.const_inline("eps", "fp32", hexf(np.float32(EPS)))
    p.op(T([1, S, D]), "h1", "layer_norm", x="x", axes="ax", gamma="ln1_g", beta="ln1_b", epsilon="eps")
    for n in "qkv":
        p.op(T([1, S, D]), n, "linear", x="h1", weight="w" + n, bias="b" + n)
    p.ints("split_shape", [1, S, H, HD])
    p.ints("perm", [0, 2, 1, 3])
    for n in "qkv":
        p.op(T([1, S, H, HD]), n + "4", "reshape", x=n, shape="split_shape")
        p.op(T([1, H, S, HD]), n + "h", "transpose", x=n + "4", perm="perm")
    if sdpa:
        p.const_inline("causal", "tensor<bool, [%d, %d]>" % (S, S),
                       "[" + ", ".join("[" + ", ".join("true" if j <= i else "false" for j in range(S)) + "]"
                                       for i in range(S)) + "]")
        p.op(T([1, H, S, HD]), "ah", "scaled_dot_product_attention", query="qh", key="kh", value="vh",
             attn_mask="causal")
    else:
        p.const_blob("mask", np.triu(np.full((S, S), -1e4, np.float32), 1))
        p.const_inline("scale", "fp32", hexf(np.float32(1 / math.sqrt(HD))))
        p.const_inline("f", "bool", "false")
        p.const_inline("t", "bool", "true")
        p.op(T([1, H, S, S]), "sc", "matmul", x="qh", y="kh", transpose_x="f", transpose_y="t")
        p.op(T([1, H, S, S]), "scs", "mul", x="sc", y="scale")
        p.op(T([1, H, S, S]), "scm", "add", x="scs", y="mask")
        p.const_inline("sm_axis", "int32", "-1")
        p.op(T([1, H, S, S]), "pr", "softmax", x="scm", axis="sm_axis")
        p.op(T([1, H, S, HD]), "ah", "matmul", x="pr", y="vh", transpose_x="f", transpose_y="f")
    p.op(T([1, S, H, HD]), "a4", "transpose", x="ah", perm="perm")
    p.ints("merge_shape", [1, S, D])
    p.op(T([1, S, D]), "att", "reshape", x="a4", shape="merge_shape")
    p.op(T([1, S, D]), "o", "linear", x="att", weight="wo", bias="bo")
    p.op(T([1, S, D]), "x1", "add", x="x", y="o")
    p.op(T([1, S, D]), "h2", "layer_norm", x="x1", axes="ax", gamma="ln2_g", beta="ln2_b", epsilon="eps")
    p.op(T([1, S, F]), "a1", "linear", x="h2", weight="w1", bias="b1")
    p.const_inline("gmode", "string", '"EXACT"')
    p.op(T([1, S, F]), "g", "gelu", x="a1", mode="gmode")
    p.op(T([1, S, D]), "f2", "linear", x="g", weight="w2", bias="b2")
    p.op(T([1, S, D]), "y", "add", x="x1", y="f2")
    return p, p.text(T([1, S, D]), "y")


def prog_c1s(w, dt):
    p = Prog(dt)
    T = p.ty
    npdt = np.float16 if dt == "fp16" else np.float32
    for k in ["ln1_g", "ln1_b", "ln2_g", "ln2_b", "bq", "bk", "bv", "bo", "b1", "b2"]:
        p.const_blob(k, w[k].astype(npdt))
    for k in ["wq", "wk", "wv", "wo", "w1", "w2"]:
        p.const_blob(k, w[k][:, :, None, None].astype(npdt))  # [Cout, Cin, 1, 1]
    p.ints("ax", [1])
    p.const_inline("eps", dt, hexf(np.float32(EPS)))
    p.ints("ones", [1, 1])
    p.ints("zeros4", [0, 0, 0, 0])
    p.const_inline("pad_type", "string", '"valid"')
    p.const_inline("groups", "int32", "1")

    def conv(name, x, wn, bn, cout):
        return p.op(T([1, cout, 1, S]), name, "conv", x=x, weight=wn, bias=bn, strides="ones", dilations="ones",
                    pad_type="pad_type", pad="zeros4", groups="groups")

    p.op(T([1, D, 1, S]), "h1", "layer_norm", x="x", axes="ax", gamma="ln1_g", beta="ln1_b", epsilon="eps")
    for n in "qkv":
        conv(n, "h1", "w" + n, "b" + n, D)
    p.ints("split_shape", [1, H, HD, S])
    for n in "qkv":
        p.op(T([1, H, HD, S]), n + "h", "reshape", x=n, shape="split_shape")
    p.const_blob("mask", np.triu(np.full((S, S), -1e4, np.float32), 1).astype(npdt))
    p.const_inline("scale", dt, hexf(np.float32(1 / math.sqrt(HD))))
    p.const_inline("f", "bool", "false")
    p.const_inline("t", "bool", "true")
    p.op(T([1, H, S, S]), "sc", "matmul", x="qh", y="kh", transpose_x="t", transpose_y="f")
    p.op(T([1, H, S, S]), "scs", "mul", x="sc", y="scale")
    p.op(T([1, H, S, S]), "scm", "add", x="scs", y="mask")
    p.const_inline("sm_axis", "int32", "-1")
    p.op(T([1, H, S, S]), "pr", "softmax", x="scm", axis="sm_axis")
    p.op(T([1, H, HD, S]), "ah", "matmul", x="vh", y="pr", transpose_x="f", transpose_y="t")
    p.ints("merge_shape", [1, D, 1, S])
    p.op(T([1, D, 1, S]), "att", "reshape", x="ah", shape="merge_shape")
    conv("o", "att", "wo", "bo", D)
    p.op(T([1, D, 1, S]), "x1", "add", x="x", y="o")
    p.op(T([1, D, 1, S]), "h2", "layer_norm", x="x1", axes="ax", gamma="ln2_g", beta="ln2_b", epsilon="eps")
    conv("a1", "h2", "w1", "b1", F)
    p.op(T([1, F, 1, S]), "g", "gelu", x="a1")
    conv("f2", "g", "w2", "b2", D)
    p.op(T([1, D, 1, S]), "y", "add", x="x1", y="f2")
    return p, p.text(T([1, D, 1, S]), "y")


def write(name, p, text, x, y):
    d = os.path.join(ROOT, name)
    os.makedirs(os.path.join(d, "weights"), exist_ok=True)
    with open(os.path.join(d, "model.mil"), "w") as f:
        f.write(text)
    with open(os.path.join(d, "weights", "weight.bin"), "wb") as f:
        f.write(p.blob.data())
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)


def main():
    w = weights()
    x = np.random.RandomState(7).randn(S, D).astype(np.float32)
    ident = lambda a: a.astype(np.float32)
    y = reference(x, w, ident)

    p, t = prog_sd(w)
    write("sd", p, t, x[None], y[None])
    p, t = prog_sd(w, sdpa=True)
    write("sdpa", p, t, x[None], y[None])
    p, t = prog_c1s(w, "fp32")
    write("c1s", p, t, x.T[None, :, None, :].copy(), y.T[None, :, None, :].copy())

    # fp16: fp16 weights and input; every op output rounded to fp16
    w16 = {k: v.astype(np.float16).astype(np.float32) for k, v in w.items()}
    x16 = x.astype(np.float16)
    r16 = lambda a: a.astype(np.float16).astype(np.float32)
    y16 = reference(x16.astype(np.float32), w16, r16).astype(np.float16)
    p, t = prog_c1s(w, "fp16")
    write("c1s_fp16", p, t, x16.T[None, :, None, :].copy(), y16.T[None, :, None, :].copy())
    print("wrote", ROOT)


if __name__ == "__main__":
    main()
