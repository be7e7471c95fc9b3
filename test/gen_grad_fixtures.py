#!/usr/bin/env python3
"""test/gen_grad_fixtures.py -- PyTorch autograd references for milc --grad
(test/passes/test_grad_torch.c).  Not needed at test time: its output is
committed under test/passes/data/grad/.

Three programs, each written as MIL for fp32 (and the two layers also for
fp16), with every weight a function input so that its gradient is checked:
  layer_sd   pre-norm transformer layer in [1, S, D]: RMSNorm spelled
             square/reduce_mean/add/rsqrt/mul/mul, projections as
             matmul(transpose_y = true) (= linear with weight inputs), causal
             scaled_dot_product_attention, rms_norm, SwiGLU FFN, residuals
  layer_cf   the same layer in the ANE's [1, D, 1, S]: RMSNorm spelled
             mul/reduce_sum/mul(1/D)/add/pow(-0.5)/mul/mul, 1x1 convs,
             attention decomposed (reshape, transpose, matmul, scale, causal
             mask add, softmax), sigmoid-spelled SiLU
  head       loss head: embedding gather, final rms_norm, classifier matmul,
             softmax cross-entropy via reduce_log_sum_exp - gather_along_axis,
             reduce_mean to a scalar loss
For each: <name>.mil (+ <name>_fp16.mil), and grad/<name>/<input>.npy,
d_<output>.npy (the cotangent; none for the head: --loss) and
grad_<input>.npy (the reference gradient, fp32, computed in fp64).

  MILC_VENV=/work/venv python3 test/gen_grad_fixtures.py   (or any python with torch + numpy)
"""
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "passes", "data", "grad")


def ensure_torch():
    try:
        import torch  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        venv = os.environ.get("MILC_VENV", os.path.join(HERE, "..", "build", "venv"))
        py = os.path.join(venv, "bin", "python")
        if os.path.abspath(sys.executable) == os.path.abspath(py):
            sys.exit("gen_grad_fixtures.py: torch/numpy missing in " + venv)
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", venv])
            subprocess.check_call([py, "-m", "pip", "install", "-q", "torch", "numpy"])
        os.execv(py, [py] + sys.argv)


ensure_torch()
import numpy as np  # noqa: E402
import torch  # noqa: E402

S, D, NH, H, V = 8, 16, 2, 32, 24
HD = D // NH
EPS = 2.0 ** -10


def hexf(v):
    if v == 0:
        return "0x0p+0"
    s = float(v).hex()
    mant, exp = s.split("p")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return "%sp%s" % (mant, exp if exp.startswith("-") else "+" + exp.lstrip("+"))


def mask_literal(dt):
    rows = []
    for i in range(S):
        rows.append("[" + ", ".join("0x0p+0" if j <= i else "-0x1.388p+13" for j in range(S)) + "]")
    return "tensor<%s, [1, 1, %d, %d]>([[[%s]]])" % (dt, S, S, ", ".join(rows))


def causal_mask():
    m = torch.zeros(S, S, dtype=torch.float64)
    m[torch.triu(torch.ones(S, S, dtype=torch.bool), 1)] = -10000.0
    return m.view(1, 1, S, S)


def T(dt, *dims):
    return "tensor<%s, [%s]>" % (dt, ", ".join(str(d) for d in dims))


def I(*v):
    return "tensor<int32, [%d]>([%s])" % (len(v), ", ".join(str(x) for x in v))


# ------------------------------------------------------------------ layer_sd

def layer_sd_mil(dt):
    t = lambda *d: T(dt, *d)  # noqa: E731
    sc = hexf(1.0 / math.sqrt(HD))
    ins = [("x", t(1, S, D)), ("g1", t(D)), ("wq", t(D, D)), ("wk", t(D, D)), ("wv", t(D, D)), ("wo", t(D, D)),
           ("g2", t(D)), ("w1", t(H, D)), ("w3", t(H, D)), ("w2", t(D, H))]
    b = []
    a = b.append
    a("%s sq = square(x = x);" % t(1, S, D))
    a("%s ms = reduce_mean(axes = %s, keep_dims = bool(true), x = sq);" % (t(1, S, 1), I(-1)))
    a("%s mse = add(x = ms, y = %s(%s));" % (t(1, S, 1), dt, hexf(EPS)))
    a("%s r = rsqrt(epsilon = %s(0x0p+0), x = mse);" % (t(1, S, 1), dt))
    a("%s xr = mul(x = x, y = r);" % t(1, S, D))
    a("%s xn = mul(x = xr, y = g1);" % t(1, S, D))
    for n in "qkv":
        a("%s %s = matmul(transpose_x = bool(false), transpose_y = bool(true), x = xn, y = w%s);" % (t(1, S, D), n, n))
        a("%s %s_r = reshape(shape = %s, x = %s);" % (t(1, S, NH, HD), n, I(1, S, NH, HD), n))
        a("%s %s_h = transpose(perm = %s, x = %s_r);" % (t(1, NH, S, HD), n, I(0, 2, 1, 3), n))
    # scaled_dot_product_attention scales by 1/sqrt(HD) itself
    del sc
    a("%s att = scaled_dot_product_attention(attn_mask = %s, key = k_h, query = q_h, value = v_h);" %
      (t(1, NH, S, HD), mask_literal(dt)))
    a("%s att_t = transpose(perm = %s, x = att);" % (t(1, S, NH, HD), I(0, 2, 1, 3)))
    a("%s att_o = reshape(shape = %s, x = att_t);" % (t(1, S, D), I(1, S, D)))
    a("%s o = matmul(transpose_x = bool(false), transpose_y = bool(true), x = att_o, y = wo);" % t(1, S, D))
    a("%s x2 = add(x = x, y = o);" % t(1, S, D))
    a("%s xn2 = rms_norm(axes = %s, epsilon = %s(%s), gamma = g2, x = x2);" % (t(1, S, D), I(-1), dt, hexf(EPS)))
    a("%s h1 = matmul(transpose_x = bool(false), transpose_y = bool(true), x = xn2, y = w1);" % t(1, S, H))
    a("%s h3 = matmul(transpose_x = bool(false), transpose_y = bool(true), x = xn2, y = w3);" % t(1, S, H))
    a("%s sl = silu(x = h1);" % t(1, S, H))
    a("%s gate = mul(x = sl, y = h3);" % t(1, S, H))
    a("%s f = matmul(transpose_x = bool(false), transpose_y = bool(true), x = gate, y = w2);" % t(1, S, D))
    a("%s y = add(x = x2, y = f);" % t(1, S, D))
    return ins, b, ["y"]


def rms(x, g, dim):
    return x * torch.rsqrt((x * x).mean(dim, keepdim=True) + EPS) * g


def layer_sd_torch(p):
    x = p["x"]
    xn = rms(x, p["g1"], -1)
    heads = lambda z: z.view(1, S, NH, HD).transpose(1, 2)  # noqa: E731
    q, k, v = (heads(xn @ p["w" + n].T) for n in "qkv")
    sc = q @ k.transpose(-1, -2) / math.sqrt(HD) + causal_mask()
    att = torch.softmax(sc, -1) @ v
    att = att.transpose(1, 2).reshape(1, S, D)
    x2 = x + att @ p["wo"].T
    xn2 = rms(x2, p["g2"], -1)
    h1, h3 = xn2 @ p["w1"].T, xn2 @ p["w3"].T
    return {"y": x2 + (torch.nn.functional.silu(h1) * h3) @ p["w2"].T}


def layer_sd_shapes():
    return {"x": (1, S, D), "g1": (D,), "wq": (D, D), "wk": (D, D), "wv": (D, D), "wo": (D, D), "g2": (D,),
            "w1": (H, D), "w3": (H, D), "w2": (D, H)}


# ------------------------------------------------------------------ layer_cf

def layer_cf_mil(dt):
    t = lambda *d: T(dt, *d)  # noqa: E731
    conv = ("conv(dilations = %s, groups = int32(1), pad = %s, pad_type = string(\"valid\"), strides = %s, "
            "weight = %%s, x = %%s)" % (I(1, 1), I(0, 0, 0, 0), I(1, 1)))
    ins = [("x", t(1, D, 1, S)), ("g1", t(1, D, 1, 1)), ("wq", t(D, D, 1, 1)), ("wk", t(D, D, 1, 1)),
           ("wv", t(D, D, 1, 1)), ("wo", t(D, D, 1, 1)), ("g2", t(D)), ("w1", t(H, D, 1, 1)),
           ("w3", t(H, D, 1, 1)), ("w2", t(D, H, 1, 1))]
    b = []
    a = b.append
    a("%s sq = mul(x = x, y = x);" % t(1, D, 1, S))
    a("%s ss = reduce_sum(axes = %s, keep_dims = bool(true), x = sq);" % (t(1, 1, 1, S), I(1)))
    a("%s ms = mul(x = ss, y = %s(%s));" % (t(1, 1, 1, S), dt, hexf(1.0 / D)))
    a("%s mse = add(x = ms, y = %s(%s));" % (t(1, 1, 1, S), dt, hexf(EPS)))
    a("%s r = pow(x = mse, y = %s(-0x1p-1));" % (t(1, 1, 1, S), dt))
    a("%s xr = mul(x = x, y = r);" % t(1, D, 1, S))
    a("%s xn = mul(x = xr, y = g1);" % t(1, D, 1, S))
    for n in "qkv":
        a("%s %s = %s;" % (t(1, D, 1, S), n, conv % ("w" + n, "xn")))
        a("%s %s_r = reshape(shape = %s, x = %s);" % (t(1, NH, HD, S), n, I(1, NH, HD, S), n))
        a("%s %s_h = transpose(perm = %s, x = %s_r);" % (t(1, NH, S, HD), n, I(0, 1, 3, 2), n))
    a("%s sc = matmul(transpose_x = bool(false), transpose_y = bool(true), x = q_h, y = k_h);" % t(1, NH, S, S))
    a("%s scs = mul(x = sc, y = %s(%s));" % (t(1, NH, S, S), dt, hexf(1.0 / math.sqrt(HD))))
    a("%s scm = add(x = scs, y = %s);" % (t(1, NH, S, S), mask_literal(dt)))
    a("%s pr = softmax(axis = int32(-1), x = scm);" % t(1, NH, S, S))
    a("%s att = matmul(transpose_x = bool(false), transpose_y = bool(false), x = pr, y = v_h);" % t(1, NH, S, HD))
    a("%s att_t = transpose(perm = %s, x = att);" % (t(1, NH, HD, S), I(0, 1, 3, 2)))
    a("%s att_o = reshape(shape = %s, x = att_t);" % (t(1, D, 1, S), I(1, D, 1, S)))
    a("%s o = %s;" % (t(1, D, 1, S), conv % ("wo", "att_o")))
    a("%s x2 = add(x = x, y = o);" % t(1, D, 1, S))
    a("%s xn2 = rms_norm(axes = %s, epsilon = %s(%s), gamma = g2, x = x2);" % (t(1, D, 1, S), I(1), dt, hexf(EPS)))
    a("%s h1 = %s;" % (t(1, H, 1, S), conv % ("w1", "xn2")))
    a("%s h3 = %s;" % (t(1, H, 1, S), conv % ("w3", "xn2")))
    a("%s sg = sigmoid(x = h1);" % t(1, H, 1, S))
    a("%s sl = mul(x = h1, y = sg);" % t(1, H, 1, S))
    a("%s gate = mul(x = sl, y = h3);" % t(1, H, 1, S))
    a("%s f = %s;" % (t(1, D, 1, S), conv % ("w2", "gate")))
    a("%s y = add(x = x2, y = f);" % t(1, D, 1, S))
    return ins, b, ["y"]


def layer_cf_torch(p):
    x = p["x"]
    cv = lambda z, w: torch.nn.functional.conv2d(z, w)  # noqa: E731
    xn = rms(x, p["g1"], 1)
    heads = lambda z: z.view(1, NH, HD, S).transpose(2, 3)  # noqa: E731
    q, k, v = (heads(cv(xn, p["w" + n])) for n in "qkv")
    pr = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + causal_mask(), -1)
    att = (pr @ v).transpose(2, 3).reshape(1, D, 1, S)
    x2 = x + cv(att, p["wo"])
    xn2 = rms(x2, p["g2"].view(1, D, 1, 1), 1)
    h1, h3 = cv(xn2, p["w1"]), cv(xn2, p["w3"])
    return {"y": x2 + cv(h1 * torch.sigmoid(h1) * h3, p["w2"])}


def layer_cf_shapes():
    return {"x": (1, D, 1, S), "g1": (1, D, 1, 1), "wq": (D, D, 1, 1), "wk": (D, D, 1, 1), "wv": (D, D, 1, 1),
            "wo": (D, D, 1, 1), "g2": (D,), "w1": (H, D, 1, 1), "w3": (H, D, 1, 1), "w2": (D, H, 1, 1)}


# ---------------------------------------------------------------------- head

def head_mil(dt):
    t = lambda *d: T(dt, *d)  # noqa: E731
    ins = [("tokens", "tensor<int32, [1, %d]>" % S), ("targets", "tensor<int32, [1, %d, 1]>" % S),
           ("emb", t(V, D)), ("gf", t(D)), ("wc", t(V, D))]
    b = []
    a = b.append
    a("%s x = gather(axis = int32(0), indices = tokens, x = emb);" % t(1, S, D))
    a("%s xn = rms_norm(axes = %s, epsilon = %s(%s), gamma = gf, x = x);" % (t(1, S, D), I(-1), dt, hexf(EPS)))
    a("%s logits = matmul(transpose_x = bool(false), transpose_y = bool(true), x = xn, y = wc);" % t(1, S, V))
    a("%s lse = reduce_log_sum_exp(axes = %s, keep_dims = bool(true), x = logits);" % (t(1, S, 1), I(-1)))
    a("%s tl = gather_along_axis(axis = int32(2), indices = targets, x = logits);" % t(1, S, 1))
    a("%s nll = sub(x = lse, y = tl);" % t(1, S, 1))
    a("%s loss = reduce_mean(axes = %s, keep_dims = bool(false), x = nll);" % (dt, I(0, 1, 2)))
    return ins, b, ["loss"]


def head_torch(p):
    x = p["emb"][p["tokens"].long()]
    xn = rms(x, p["gf"], -1)
    logits = xn @ p["wc"].T
    lse = torch.logsumexp(logits, -1, keepdim=True)
    tl = torch.gather(logits, 2, p["targets"].long())
    return {"loss": (lse - tl).mean()}


def head_shapes():
    return {"emb": (V, D), "gf": (D,), "wc": (V, D)}


def mil_text(ins, body, outs):
    return ("program(1.3)\n{\n    func main<ios18>(%s) {\n%s\n        } -> (%s);\n}\n" %
            (", ".join("%s %s" % (ty, n) for n, ty in ins), "\n".join("            " + l for l in body),
             ", ".join(outs)))


def two_layers_mil(dt):
    """layer_sd twice with the same weights: y = layer(layer(x)).  Checks
    that fwd+bwd of the stack equals chaining the one-layer fwd/bwd, and that
    the weight gradients of two uses are summed."""
    import re
    ins, body, outs = layer_sd_mil(dt)
    names = set(re.match(r".*? (\w+) = ", l).group(1) for l in body)
    second = []
    for l in body:
        m = re.match(r"(.*? )(\w+)( = )(.*)$", l)
        rest = re.sub(r"\b(\w+)\b(?! =)", lambda w: w.group(1) + "_b" if w.group(1) in names
                      else "y" if w.group(1) == "x" else w.group(1), m.group(4))
        second.append(m.group(1) + m.group(2) + "_b" + m.group(3) + rest)
    return ins, body + second, ["y_b"]


def gen(name, mil_fn, torch_fn, shapes, rng, fp16=True, extra=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for dt, suf in (("fp32", ""), ("fp16", "_fp16")) if fp16 else (("fp32", ""),):
        with open(os.path.join(OUT, name + suf + ".mil"), "w") as f:
            f.write(mil_text(*mil_fn(dt)))
    p = {}
    for n, shp in shapes.items():
        v = rng.standard_normal(shp) * (1.0 / math.sqrt(shp[-1] if len(shp) > 1 and shp[-1] > 1 else
                                                          shp[1] if len(shp) > 1 else 1))
        if n.startswith("g"):
            v = 1.0 + 0.1 * rng.standard_normal(shp)
        if n == "x":
            v = rng.standard_normal(shp)
        v = v.astype(np.float16).astype(np.float64)   # representable in fp16 too
        p[n] = torch.tensor(v, requires_grad=True)
    for n, v in (extra or {}).items():
        p[n] = torch.tensor(v)
    outs = torch_fn(p)
    total = 0
    for n, y in outs.items():
        if y.dim() == 0:
            total = total + y
            continue
        c = rng.standard_normal(tuple(y.shape)).astype(np.float16).astype(np.float64)
        np.save(os.path.join(d, "d_%s.npy" % n), c.astype(np.float32))
        total = total + (y * torch.tensor(c)).sum()
    total.backward()
    for n, v in p.items():
        arr = v.detach().numpy()
        np.save(os.path.join(d, n + ".npy"), arr.astype(np.int32 if n in (extra or {}) else np.float32))
        if v.grad is not None:
            np.save(os.path.join(d, "grad_%s.npy" % n), v.grad.numpy().astype(np.float32))


def main():
    rng = np.random.default_rng(9)
    with open(os.path.join(OUT, "layer_sd_x2.mil"), "w") as f:
        f.write(mil_text(*two_layers_mil("fp32")))
    gen("layer_sd", layer_sd_mil, layer_sd_torch, layer_sd_shapes(), rng)
    gen("layer_cf", layer_cf_mil, layer_cf_torch, layer_cf_shapes(), rng)
    toks = rng.integers(0, V, size=(1, S)).astype(np.int32)
    tg = rng.integers(0, V, size=(1, S, 1)).astype(np.int32)
    gen("head", head_mil, head_torch, head_shapes(), rng, fp16=True, extra={"tokens": toks, "targets": tg})


if __name__ == "__main__":
    main()
