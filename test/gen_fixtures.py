#!/usr/bin/python3
"""Generates the CPU kernel test fixtures in test/runtime/fixtures/.

Every case NAME writes its operands as NAME.<argument>.npy (variadic arguments
as NAME.<argument>.<i>.npy, strings as NAME.<argument>.str) and its expected
results as NAME.out<i>.npy.  References are computed independently of the
kernels: with NumPy in float64 from the (already rounded) inputs, or with
PyTorch for convolution/pooling/attention, then cast once to the result dtype
(the fp16 storage rule: compute wide, round once).

Run:  /usr/bin/python3 test/gen_fixtures.py     (NumPy; PyTorch optional)
The fixtures are committed; the tests never need Python.
"""
import math
import os
import shutil

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtime", "fixtures")
rng = np.random.default_rng(1234)
f16, f32, i32 = np.float16, np.float32, np.int32


def rnd(shape, dt=f32, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(dt)


def case(name, outs, **args):
    for k, v in args.items():
        if isinstance(v, str):
            with open(os.path.join(OUT, f"{name}.{k}.str"), "w") as f:
                f.write(v)
        elif isinstance(v, (list, tuple)):
            for i, a in enumerate(v):
                np.save(os.path.join(OUT, f"{name}.{k}.{i}.npy"), np.array(a, order="C"))
        else:
            np.save(os.path.join(OUT, f"{name}.{k}.npy"), np.array(v, order="C"))
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    for i, o in enumerate(outs):
        np.save(os.path.join(OUT, f"{name}.out{i}.npy"), np.array(o, order="C"))


def s(v, dt=i32):
    return np.array(v, dtype=dt)


def d(x):
    return np.asarray(x).astype(np.float64)


# ----------------------------------------------------------------- element-wise

def np_floordiv(a, b):
    return np.floor_divide(a, b)


BIN = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide,
    "maximum": np.maximum, "minimum": np.minimum, "floor_div": np_floordiv, "mod": np.mod,
    "pow": np.power,
}
CMP = {"equal": np.equal, "not_equal": np.not_equal, "greater": np.greater,
       "greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal}


def gen_eltwise():
    for op, fn in BIN.items():
        for dt in (f16, f32):
            x = rnd((2, 3, 4), dt)
            y = rnd((3, 1), dt)
            if op in ("real_div", "floor_div", "mod"):
                y = np.where(np.abs(y) < 0.25, 0.5, y).astype(dt)
            if op == "pow":
                x = rnd((2, 3, 4), dt, 0.1, 2.0)
            case(f"{op}_{np.dtype(dt).name}", fn(d(x), d(y)).astype(dt), x=x, y=y)
        xi = rng.integers(-20, 20, (4, 5)).astype(i32)
        yi = rng.integers(1, 6, (5,)).astype(i32) * np.where(rng.random(5) < 0.5, -1, 1).astype(i32)
        if op == "pow":
            xi = rng.integers(-4, 5, (4, 5)).astype(i32)
            yi = rng.integers(0, 4, (5,)).astype(i32)
        if op == "real_div":
            ref = np.trunc(d(xi) / d(yi)).astype(i32)
        else:
            ref = fn(xi.astype(np.int64), yi.astype(np.int64)).astype(i32)
        case(f"{op}_int32", ref, x=xi, y=yi)
    # scalar broadcast, rank 0 with rank 3
    x = rnd((2, 1, 3), f16)
    case("add_scalar_f16", (d(x) + 0.5).astype(f16), x=x, y=np.array(0.5, f16))
    # broadcast both ways
    x = rnd((4, 1, 3), f32)
    y = rnd((1, 5, 1), f32)
    case("mul_bcast2_f32", (d(x) * d(y)).astype(f32), x=x, y=y)
    # mixed fp16 / fp32 promotes to fp32
    x = rnd((3,), f16)
    y = rnd((3,), f32)
    case("add_mixed", (d(x) + d(y)).astype(f32), x=x, y=y)
    for op, fn in CMP.items():
        x = rnd((3, 4), f16).round(0)
        y = rnd((4,), f16).round(0)
        case(f"{op}_f16", fn(x.astype(f32), y.astype(f32)), x=x, y=y)
        xi = rng.integers(-3, 3, (2, 3)).astype(i32)
        yi = rng.integers(-3, 3, (2, 1)).astype(i32)
        case(f"{op}_int32", fn(xi, yi), x=xi, y=yi)
    a = rng.random((2, 3)) < 0.5
    b = rng.random((3,)) < 0.5
    case("logical_and", np.logical_and(a, b), x=a, y=b)
    case("logical_or", np.logical_or(a, b), x=a, y=b)
    case("logical_xor", np.logical_xor(a, b), x=a, y=b)
    case("logical_not", np.logical_not(a), x=a)

    def sig(v):
        return 1 / (1 + np.exp(-v))

    erf = np.vectorize(math.erf)
    UN = {
        "abs": np.abs, "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "atanh": np.arctanh,
        "ceil": np.ceil, "cos": np.cos, "cosh": np.cosh, "erf": erf, "exp": np.exp, "exp2": np.exp2,
        "floor": np.floor, "relu": lambda v: np.maximum(v, 0), "relu6": lambda v: np.minimum(np.maximum(v, 0), 6),
        "round": np.round, "sigmoid": sig, "sign": np.sign, "silu": lambda v: v * sig(v), "sin": np.sin,
        "sinh": np.sinh, "softplus": lambda v: np.log1p(np.exp(v)), "softsign": lambda v: v / (1 + np.abs(v)),
        "sqrt": np.sqrt, "square": np.square, "tan": np.tan, "tanh": np.tanh,
    }
    for op, fn in UN.items():
        for dt in (f16, f32):
            lo, hi = -3.0, 3.0
            if op in ("acos", "asin", "atanh"):
                lo, hi = -0.95, 0.95
            if op == "sqrt":
                lo = 0.0
            if op == "tan":
                lo, hi = -1.2, 1.2
            x = rnd((3, 5), dt, lo, hi)
            if op == "round":
                x = np.array([[-2.5, -1.5, -0.5, 0.5], [1.5, 2.5, 0.4, -0.6]], dt)
            case(f"{op}_{np.dtype(dt).name}", fn(d(x)).astype(dt), x=x)
    xi = rng.integers(-9, 9, (2, 5)).astype(i32)
    for op in ("abs", "square", "sign", "relu"):
        case(f"{op}_int32", UN[op](xi.astype(np.int64)).astype(i32), x=xi)
    # epsilon ops
    x = rnd((4, 4), f16, 0.05, 3.0)
    case("inverse_f16", (1 / (d(x) + 1e-4)).astype(f16), x=x)
    case("inverse_eps", (1 / (d(x) + 0.5)).astype(f16), x=x, epsilon=np.array(0.5, f32))
    case("log_f16", np.log(d(x) + d(np.float32(2.0 ** -149))).astype(f16), x=x)
    case("log_eps_f32", np.log(d(x.astype(f32)) + 0.25).astype(f32), x=x.astype(f32), epsilon=np.array(0.25, f32))
    case("rsqrt_f32", (1 / np.sqrt(d(x.astype(f32)) + 1e-12)).astype(f32), x=x.astype(f32))
    case("rsqrt_eps_f16", (1 / np.sqrt(d(x) + 0.125)).astype(f16), x=x, epsilon=np.array(0.125, f16))
    # activations with parameters
    x = rnd((2, 3, 4), f16, -4, 4)
    xd = d(x)
    case("elu_f16", np.where(xd > 0, xd, 0.7 * np.expm1(xd)).astype(f16), x=x, alpha=np.array(0.7, f32))
    case("elu_default", np.where(xd > 0, xd, np.expm1(xd)).astype(f16), x=x)
    case("gelu_exact", (0.5 * xd * (1 + erf(xd / math.sqrt(2)))).astype(f16), x=x)
    case("gelu_exact_str", (0.5 * xd * (1 + erf(xd / math.sqrt(2)))).astype(f16), x=x, mode="EXACT")
    case("gelu_tanh", (0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)))).astype(f16),
         x=x, mode="TANH_APPROXIMATION")
    case("gelu_sigmoid", (xd * sig(1.702 * xd)).astype(f16), x=x, mode="SIGMOID_APPROXIMATION")
    case("leaky_relu", np.where(xd >= 0, xd, 0.2 * xd).astype(f16), x=x, alpha=np.array(0.2, f32))
    case("leaky_relu_default", np.where(xd >= 0, xd, d(np.float32(0.01)) * xd).astype(f16), x=x)
    case("linear_activation", (1.5 * xd - 0.25).astype(f16), x=x, alpha=np.array(1.5, f32),
         beta=np.array(-0.25, f32))
    case("scaled_tanh", (1.5 * np.tanh(0.5 * xd)).astype(f16), x=x, alpha=np.array(1.5, f32),
         beta=np.array(0.5, f32))
    case("sigmoid_hard", np.clip(0.3 * xd + 0.4, 0, 1).astype(f16), x=x, alpha=np.array(0.3, f32),
         beta=np.array(0.4, f32))
    case("thresholded_relu", np.where(xd >= 0.5, xd, 0).astype(f16), x=x, alpha=np.array(0.5, f32))
    case("clip_f16", np.clip(xd, -1.0, 2.5).astype(f16), x=x, alpha=np.array(-1.0, f32), beta=np.array(2.5, f32))
    xi = rng.integers(-9, 9, (7,)).astype(i32)
    case("clip_int32", np.clip(xi, -3, 4).astype(i32), x=xi, alpha=np.array(-3, i32), beta=np.array(4, i32))
    x = rnd((2, 3, 2, 2), f16)
    al = rnd((3,), f32)
    case("prelu", np.where(d(x) >= 0, d(x), al.reshape(1, 3, 1, 1) * d(x)).astype(f16), x=x, alpha=al)
    be = rnd((3,), f32, 0.5, 2)
    case("softplus_parametric",
         (al.reshape(1, 3, 1, 1) * np.log1p(np.exp(be.reshape(1, 3, 1, 1) * d(x)))).astype(f16),
         x=x, alpha=al, beta=be)
    # select
    c = rng.random((2, 1, 4)) < 0.5
    a = rnd((3, 4), f16)
    b = rnd((2, 3, 1), f16)
    case("select_f16", np.where(c, a, b), cond=c, a=a, b=b)
    ai = rng.integers(0, 9, (4,)).astype(i32)
    bi = rng.integers(0, 9, (4,)).astype(i32)
    case("select_int32", np.where(c[0, 0], ai, bi), cond=c[0, 0], a=ai, b=bi)
    # cast
    x = np.array([-2.7, -1.5, -0.2, 0.0, 0.49, 1.5, 2.5, 100.9], f32)
    case("cast_f32_int32", x.astype(i32), x=x, dtype="int32")
    case("cast_f32_f16", x.astype(f16), x=x, dtype="fp16")
    case("cast_f32_bool", x.astype(bool), x=x, dtype="bool")
    case("cast_f32_int8", x.astype(np.int8), x=x, dtype="int8")
    case("cast_f32_uint8", np.abs(x).astype(np.uint8), x=np.abs(x), dtype="uint8")
    case("cast_f32_int16", x.astype(np.int16), x=x, dtype="int16")
    case("cast_f32_uint16", np.abs(x).astype(np.uint16), x=np.abs(x), dtype="uint16")
    xi = np.array([-300, -1, 0, 1, 255, 70000], i32)
    case("cast_int32_f16", xi.astype(f16), x=xi, dtype="fp16")
    case("cast_int32_int8", xi.astype(np.int8), x=xi, dtype="int8")
    case("cast_int32_uint16", xi.astype(np.uint16), x=xi, dtype="uint16")
    case("cast_int32_bool", xi.astype(bool), x=xi, dtype="bool")
    b = np.array([True, False, True])
    case("cast_bool_f32", b.astype(f32), x=b, dtype="fp32")
    h = rnd((5,), f16)
    case("cast_f16_f32", h.astype(f32), x=h, dtype="fp32")


# ------------------------------------------------------------------ reductions

def gen_reduce():
    x = rnd((2, 3, 4), f16, 0.2, 2.0)
    xd = d(x)
    R = {
        "reduce_sum": lambda v, a, k: v.sum(a, keepdims=k),
        "reduce_mean": lambda v, a, k: v.mean(a, keepdims=k),
        "reduce_max": lambda v, a, k: v.max(a, keepdims=k),
        "reduce_min": lambda v, a, k: v.min(a, keepdims=k),
        "reduce_prod": lambda v, a, k: v.prod(a, keepdims=k),
        "reduce_sum_square": lambda v, a, k: (v * v).sum(a, keepdims=k),
        "reduce_l1_norm": lambda v, a, k: np.abs(v).sum(a, keepdims=k),
        "reduce_l2_norm": lambda v, a, k: np.sqrt((v * v).sum(a, keepdims=k)),
        "reduce_log_sum": lambda v, a, k: np.log(v.sum(a, keepdims=k)),
        "reduce_log_sum_exp": lambda v, a, k: np.log(np.exp(v).sum(a, keepdims=k)),
    }
    for op, fn in R.items():
        case(f"{op}_ax1", fn(xd, (1,), False).astype(f16), x=x, axes=s([1]))
        case(f"{op}_ax02_keep", fn(xd, (0, 2), True).astype(f16), x=x, axes=s([-3, -1]), keep_dims=np.array(True))
        case(f"{op}_all", fn(xd, None, False).astype(f16), x=x)
    y = rnd((3, 5), f32)
    case("reduce_sum_f32_neg", d(y).sum(-1).astype(f32), x=y, axes=s([-1]))
    xi = rng.integers(-5, 5, (3, 4)).astype(i32)
    case("reduce_sum_int32", xi.sum(0).astype(i32), x=xi, axes=s([0]))
    case("reduce_max_int32", xi.max(1).astype(i32), x=xi, axes=s([1]))
    # argmax / argmin with ties (first occurrence)
    a = np.array([[1, 3, 3, 0], [2, 2, 1, 2], [0, -1, -1, 5]], f16)
    case("argmax_default", np.argmax(a, -1).astype(i32), x=a)
    case("argmax_ax0_keep", np.argmax(a, 0)[None].astype(i32), x=a, axis=np.array(0, i32),
         keep_dims=np.array(True))
    case("argmin_ax1", np.argmin(a, 1).astype(i32), x=a, axis=np.array(1, i32))
    case("argmin_uint16", np.argmin(a, 1).astype(np.uint16), x=a, axis=np.array(1, i32), output_dtype="uint16")
    # cumsum
    x = rnd((3, 4), f16)
    xd = d(x)
    case("cumsum_default", np.cumsum(xd, 0).astype(f16), x=x)
    case("cumsum_ax1", np.cumsum(xd, 1).astype(f16), x=x, axis=np.array(-1, i32))
    ex = np.concatenate([np.zeros((3, 1)), np.cumsum(xd, 1)[:, :-1]], 1)
    case("cumsum_excl", ex.astype(f16), x=x, axis=np.array(1, i32), exclusive=np.array(True))
    rv = np.flip(np.cumsum(np.flip(xd, 1), 1), 1)
    case("cumsum_rev", rv.astype(f16), x=x, axis=np.array(1, i32), reverse=np.array(True))
    rvx = rv - xd
    case("cumsum_rev_excl", rvx.astype(f16), x=x, axis=np.array(1, i32), reverse=np.array(True),
         exclusive=np.array(True))
    xi = rng.integers(-5, 5, (6,)).astype(i32)
    case("cumsum_int32", np.cumsum(xi).astype(i32), x=xi)
    # topk / argsort (stable: ties by index)
    x = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 9, 3]], f16)
    idx = np.argsort(-x.astype(f32), -1, kind="stable")[:, :3]
    case("topk_k3", [np.take_along_axis(x, idx, -1), idx.astype(i32)], x=x, k=np.array(3, i32))
    idx = np.argsort(x.astype(f32), -1, kind="stable")[:, :4]
    case("topk_asc", [np.take_along_axis(x, idx, -1), idx.astype(np.uint16)], x=x, k=np.array(4, i32),
         ascending=np.array(True), output_indices_dtype="uint16")
    idx0 = np.argsort(-x.astype(f32), 0, kind="stable")[:1]
    case("topk_ax0", [np.take_along_axis(x, idx0, 0), idx0.astype(i32)], x=x, axis=np.array(0, i32))
    case("topk_noidx", [np.take_along_axis(x, np.argsort(-x.astype(f32), -1, kind="stable")[:, :2], -1)],
         x=x, k=np.array(2, i32), return_indices=np.array(False))
    xi = rng.integers(0, 5, (3, 5)).astype(i32)
    idx = np.argsort(-xi, 1, kind="stable")[:, :2]
    case("topk_int32", [np.take_along_axis(xi, idx, 1), idx.astype(i32)], x=xi, k=np.array(2, i32))
    case("argsort_default", np.argsort(-x.astype(f32), -1, kind="stable").astype(i32), x=x)
    case("argsort_asc_ax0", np.argsort(x.astype(f32), 0, kind="stable").astype(i32), x=x, axis=np.array(0, i32),
         ascending=np.array(True))


# --------------------------------------------------------------- normalisation

def softmax(v, ax):
    m = v.max(ax, keepdims=True)
    e = np.exp(v - m)
    return e / e.sum(ax, keepdims=True)


def gen_norm():
    x = rnd((2, 3, 5), f16, -4, 4)
    xd = d(x)
    case("softmax_default", softmax(xd, -1).astype(f16), x=x)
    case("softmax_ax1", softmax(xd, 1).astype(f16), x=x, axis=np.array(1, i32))
    y = rnd((4, 6), f32, -30, 30)
    case("softmax_f32", softmax(d(y), -1).astype(f32), x=y)
    # layer_norm
    g = rnd((5,), f16, 0.5, 1.5)
    b = rnd((5,), f16)
    m = xd.mean(-1, keepdims=True)
    v = ((xd - m) ** 2).mean(-1, keepdims=True)
    case("layer_norm_last", ((xd - m) / np.sqrt(v + 1e-5) * d(g) + d(b)).astype(f16), x=x, axes=s([-1]),
         gamma=g, beta=b, epsilon=np.array(1e-5, f16))
    m = xd.mean((1, 2), keepdims=True)
    v = ((xd - m) ** 2).mean((1, 2), keepdims=True)
    g2 = rnd((3, 5), f32, 0.5, 1.5)
    case("layer_norm_12", ((xd - m) / np.sqrt(v + 1e-5) * d(g2)).astype(f16), x=x, axes=s([1, 2]), gamma=g2)
    m = xd.mean(keepdims=True)
    v = ((xd - m) ** 2).mean(keepdims=True)
    case("layer_norm_all", ((xd - m) / np.sqrt(v + 1e-5)).astype(f16), x=x)
    # rms_norm (milc extension)
    ms = (xd ** 2).mean(-1, keepdims=True)
    case("rms_norm", (xd / np.sqrt(ms + 1e-5) * d(g)).astype(f16), x=x, axes=s([-1]), gamma=g)
    ms = (xd ** 2).mean((0, 2), keepdims=True)
    case("rms_norm_nogamma", (xd / np.sqrt(ms + 1e-3)).astype(f16), x=x, axes=s([0, 2]),
         epsilon=np.array(1e-3, f32))
    # batch_norm
    x4 = rnd((2, 3, 2, 3), f16)
    mean = rnd((3,), f16)
    var = rnd((3,), f16, 0.5, 2)
    r = lambda t: d(t).reshape(1, 3, 1, 1)
    case("batch_norm", ((d(x4) - r(mean)) / np.sqrt(r(var) + 1e-5) * r(g[:3]) + r(b[:3])).astype(f16),
         x=x4, mean=mean, variance=var, gamma=g[:3], beta=b[:3])
    case("batch_norm_plain", ((d(x4) - r(mean)) / np.sqrt(r(var) + 1e-2)).astype(f16), x=x4, mean=mean,
         variance=var, epsilon=np.array(1e-2, f32))
    # instance_norm
    m = d(x4).mean((2, 3), keepdims=True)
    v = ((d(x4) - m) ** 2).mean((2, 3), keepdims=True)
    case("instance_norm", ((d(x4) - m) / np.sqrt(v + 1e-5) * r(g[:3]) + r(b[:3])).astype(f16), x=x4,
         gamma=g[:3], beta=b[:3])
    # l2_norm
    x5 = rnd((2, 2, 3, 2), f32)
    ss = (d(x5) ** 2).sum((1, 2, 3), keepdims=True)
    case("l2_norm_default", (d(x5) / np.sqrt(ss + 1e-6)).astype(f32), x=x5)
    ss = (d(x5) ** 2).sum(-1, keepdims=True)
    case("l2_norm_axes", (d(x5) / np.sqrt(ss + 1e-3)).astype(f32), x=x5, axes=s([-1]), epsilon=np.array(1e-3, f32))
    # local_response_norm: window [c - (size-1)//2, c + size//2]
    x6 = rnd((1, 6, 2, 2), f32)
    for size in (3, 4):
        out = np.zeros_like(d(x6))
        C = 6
        for c in range(C):
            lo, hi = max(0, c - (size - 1) // 2), min(C - 1, c + size // 2)
            sq = (d(x6)[:, lo:hi + 1] ** 2).sum(1)
            out[:, c] = d(x6)[:, c] / (2.0 + 0.5 / size * sq) ** 0.6
        case(f"lrn_size{size}", out.astype(f32), x=x6, size=np.array(size, i32), alpha=np.array(0.5, f32),
             beta=np.array(0.6, f32), k=np.array(2.0, f32))


def sdpa_ref(q, k, v, mask=None):
    sc = np.matmul(d(q), np.swapaxes(d(k), -1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        if mask.dtype == bool:
            sc = np.where(mask, sc, -np.inf)
        else:
            sc = sc + d(mask)
    p = softmax(sc, -1)
    return np.matmul(p, d(v)), p


def gen_attn():
    q = rnd((2, 2, 3, 4), f16)
    k = rnd((2, 2, 5, 4), f16)
    v = rnd((2, 2, 5, 6), f16)
    case("sdpa_nomask", sdpa_ref(q, k, v)[0].astype(f16), query=q, key=k, value=v)
    causal = np.tril(np.ones((3, 5), bool), 2)
    case("sdpa_boolmask", sdpa_ref(q, k, v, causal)[0].astype(f16), query=q, key=k, value=v, attn_mask=causal)
    fm = rnd((2, 1, 3, 5), f16, -3, 0)
    case("sdpa_floatmask", sdpa_ref(q, k, v, fm)[0].astype(f16), query=q, key=k, value=v, attn_mask=fm)
    # batch broadcast: key/value shared over the head dim
    k1 = rnd((2, 1, 5, 4), f32)
    v1 = rnd((2, 1, 5, 6), f32)
    q32 = q.astype(f32)
    case("sdpa_bcast_f32", sdpa_ref(q32, k1, v1)[0].astype(f32), query=q32, key=k1, value=v1)
    if torch is not None:
        tq = torch.tensor(q.astype(np.float64))
        tk = torch.tensor(k.astype(np.float64))
        tv = torch.tensor(v.astype(np.float64))
        ref = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(causal)) \
            if hasattr(F, "scaled_dot_product_attention") else None
        if ref is not None:
            case("sdpa_torch", ref.numpy().astype(f16), query=q, key=k, value=v, attn_mask=causal)
    # backward, checked against autograd (torch) or a NumPy derivation
    q = rnd((2, 3, 4), f32)
    k = rnd((2, 5, 4), f32)
    v = rnd((2, 5, 3), f32)
    dout = rnd((2, 3, 3), f32)
    mask = rnd((3, 5), f32, -2, 0)
    scale = 1 / math.sqrt(4)

    def bwd_np(scale_, mask_):
        sc = np.matmul(d(q), np.swapaxes(d(k), -1, -2)) * scale_
        if mask_ is not None:
            sc = sc + d(mask_)
        p = softmax(sc, -1)
        dv = np.matmul(np.swapaxes(p, -1, -2), d(dout))
        dp = np.matmul(d(dout), np.swapaxes(d(v), -1, -2))
        ds = p * (dp - (dp * p).sum(-1, keepdims=True))
        return np.matmul(ds, d(k)) * scale_, np.matmul(np.swapaxes(ds, -1, -2), d(q)) * scale_, dv, p

    if torch is not None:
        tq = torch.tensor(d(q), requires_grad=True)
        tk = torch.tensor(d(k), requires_grad=True)
        tv = torch.tensor(d(v), requires_grad=True)
        sc = tq @ tk.transpose(-1, -2) * scale + torch.tensor(d(mask))
        out = torch.softmax(sc, -1) @ tv
        out.backward(torch.tensor(d(dout)))
        refs = [tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()]
        np_refs = bwd_np(scale, mask)[:3]
        for a, b in zip(refs, np_refs):
            assert np.allclose(a, b, 1e-9, 1e-12), "torch and numpy disagree on sdpa backward"
    dq, dk, dv, p = bwd_np(scale, mask)
    case("sdpa_bwd_mask", [dq.astype(f32), dk.astype(f32), dv.astype(f32)], query=q, key=k, value=v,
         d_out=dout, attn_mask=mask)
    dq, dk, dv, p = bwd_np(0.3, None)
    case("sdpa_bwd_scale_probs", [dq.astype(f32), dk.astype(f32), dv.astype(f32)], query=q, key=k, value=v,
         d_out=dout, scale=np.array(0.3, f32), probs=p.astype(f32))


# --------------------------------------------------------------- linear algebra

def gen_linalg():
    x = rnd((2, 3, 4), f16)
    y = rnd((4, 5), f16)
    case("matmul_f16", np.matmul(d(x), d(y)).astype(f16), x=x, y=y)
    x = rnd((2, 1, 3, 4), f32)
    y = rnd((3, 5, 4), f32)
    case("matmul_bcast_ty", np.matmul(d(x), np.swapaxes(d(y), -1, -2)).astype(f32), x=x, y=y,
         transpose_y=np.array(True))
    x = rnd((4, 3), f32)
    y = rnd((2, 4, 5), f32)
    case("matmul_tx", np.matmul(d(x).T, d(y)).astype(f32), x=x, y=y, transpose_x=np.array(True))
    x = rnd((4,), f16)
    y = rnd((2, 4, 3), f16)
    case("matmul_vec_x", np.matmul(d(x), d(y)).astype(f16), x=x, y=y)
    x = rnd((2, 3, 4), f32)
    y = rnd((4,), f32)
    case("matmul_vec_y", np.matmul(d(x), d(y)).astype(f32), x=x, y=y)
    xi = rng.integers(-3, 4, (2, 3)).astype(i32)
    yi = rng.integers(-3, 4, (3, 2)).astype(i32)
    case("matmul_int32", (xi @ yi).astype(i32), x=xi, y=yi)
    x = rnd((2, 3, 6), f16)
    w = rnd((4, 6), f16)
    b = rnd((4,), f16)
    case("linear_f16", (np.matmul(d(x), d(w).T) + d(b)).astype(f16), x=x, weight=w, bias=b)
    x = rnd((6,), f32)
    w = rnd((3, 6), f32)
    case("linear_vec_f32", (d(w) @ d(x)).astype(f32), x=x, weight=w)


# ---------------------------------------------------------------- convolution

def tconv(x, w, b, stride, pad, dil, groups):
    dims = x.ndim - 2
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    tx = torch.tensor(d(x))
    if any(pad[2 * i] != pad[2 * i + 1] for i in range(dims)):
        pads = []
        for i in reversed(range(dims)):
            pads += [pad[2 * i], pad[2 * i + 1]]
        tx = F.pad(tx, pads)
        p = 0
    else:
        p = tuple(pad[2 * i] for i in range(dims))
    return fn(tx, torch.tensor(d(w)), None if b is None else torch.tensor(d(b)), stride=tuple(stride),
              padding=p, dilation=tuple(dil), groups=groups).numpy()


def same_pads(inp, k, s, dil, lower=False):
    pads = []
    for i, kk, ss, dd in zip(inp, k, s, dil):
        dk = (kk - 1) * dd + 1
        tot = max(0, (math.ceil(i / ss) - 1) * ss + dk - i)
        b = tot - tot // 2 if lower else tot // 2
        pads += [b, tot - b]
    return pads


def gen_conv():
    if torch is None:
        print("torch not available: conv/pool fixtures skipped")
        return
    x = rnd((2, 4, 7, 6), f16)
    w = rnd((6, 2, 3, 3), f16)
    b = rnd((6,), f16)
    case("conv2d_valid", tconv(x, w, b, (1, 1), [0] * 4, (1, 1), 2).astype(f16), x=x, weight=w, bias=b,
         groups=np.array(2, i32))
    pads = [1, 2, 0, 1]
    case("conv2d_custom_s2", tconv(x, w, None, (2, 1), pads, (1, 1), 2).astype(f16), x=x, weight=w,
         groups=np.array(2, i32), pad_type="custom", pad=s(pads), strides=s([2, 1]))
    w2 = rnd((3, 4, 2, 3), f32)
    x2 = x.astype(f32)
    p = same_pads((7, 6), (2, 3), (2, 2), (1, 2))
    case("conv2d_same", tconv(x2, w2, None, (2, 2), p, (1, 2), 1).astype(f32), x=x2, weight=w2, pad_type="same",
         strides=s([2, 2]), dilations=s([1, 2]))
    p = same_pads((7, 6), (2, 3), (2, 2), (1, 2), lower=True)
    case("conv2d_same_lower", tconv(x2, w2, None, (2, 2), p, (1, 2), 1).astype(f32), x=x2, weight=w2,
         pad_type="same_lower", strides=s([2, 2]), dilations=s([1, 2]))
    x1 = rnd((1, 3, 10), f32)
    w1 = rnd((3, 1, 4), f32)
    case("conv1d_dw_dil", tconv(x1, w1, None, (1,), [2, 1], (2,), 3).astype(f32), x=x1, weight=w1,
         groups=np.array(3, i32), pad_type="custom", pad=s([2, 1]), dilations=s([2]))
    x3 = rnd((1, 2, 4, 5, 3), f16)
    w3 = rnd((2, 2, 2, 3, 2), f16)
    b3 = rnd((2,), f16)
    case("conv3d", tconv(x3, w3, b3, (1, 2, 1), [1, 0, 1, 1, 0, 1], (1, 1, 1), 1).astype(f16), x=x3, weight=w3,
         bias=b3, pad_type="custom", pad=s([1, 0, 1, 1, 0, 1]), strides=s([1, 2, 1]))
    # conv_transpose
    xt = rnd((1, 4, 3, 4), f32)
    wt = rnd((4, 3, 3, 2), f32)
    bt = rnd((6,), f32)
    ref = F.conv_transpose2d(torch.tensor(d(xt)), torch.tensor(d(wt)), torch.tensor(d(bt)), stride=(2, 1),
                             padding=0, groups=2).numpy()
    case("conv_t_valid", ref.astype(f32), x=xt, weight=wt, bias=bt, groups=np.array(2, i32), strides=s([2, 1]))
    ref = F.conv_transpose2d(torch.tensor(d(xt)), torch.tensor(d(wt)), None, stride=(2, 2), padding=(1, 0),
                             dilation=(1, 2), groups=2).numpy()
    case("conv_t_custom", ref.astype(f32), x=xt, weight=wt, groups=np.array(2, i32), strides=s([2, 2]),
         dilations=s([1, 2]), pad_type="custom", pad=s([1, 1, 0, 0]))
    # output_shape: PyTorch output_padding adds trailing rows/cols
    ref = F.conv_transpose2d(torch.tensor(d(xt)), torch.tensor(d(wt)), None, stride=(2, 2), padding=(1, 0),
                             output_padding=(1, 1), groups=2).numpy()
    case("conv_t_outshape", ref.astype(f32), x=xt, weight=wt, groups=np.array(2, i32), strides=s([2, 2]),
         pad_type="custom", pad=s([1, 1, 0, 0]), output_shape=s(list(ref.shape)))
    # same: output = in * stride, crop total//2 before
    xs = rnd((1, 2, 3, 3), f16)
    ws = rnd((2, 2, 4, 3), f16)
    full = F.conv_transpose2d(torch.tensor(d(xs)), torch.tensor(d(ws)), stride=(2, 2)).numpy()
    oh, ow = 6, 6
    th, tw = full.shape[2] - oh, full.shape[3] - ow
    case("conv_t_same", full[:, :, th // 2:th // 2 + oh, tw // 2:tw // 2 + ow].astype(f16), x=xs, weight=ws,
         strides=s([2, 2]), pad_type="same")
    x1 = rnd((2, 3, 5), f16)
    w1 = rnd((3, 2, 3), f16)
    ref = F.conv_transpose1d(torch.tensor(d(x1)), torch.tensor(d(w1)), stride=2, padding=1).numpy()
    case("conv_t_1d", ref.astype(f16), x=x1, weight=w1, strides=s([2]), pad_type="custom", pad=s([1, 1]))
    # pooling
    xp = rnd((1, 2, 5, 6), f16)
    tx = torch.tensor(d(xp))
    case("max_pool_valid", F.max_pool2d(tx, (2, 3), (2, 2)).numpy().astype(f16), x=xp, kernel_sizes=s([2, 3]),
         strides=s([2, 2]), pad_type="valid")
    case("max_pool_custom", F.max_pool2d(tx, 3, 2, padding=1).numpy().astype(f16), x=xp, kernel_sizes=s([3, 3]),
         strides=s([2, 2]), pad_type="custom", pad=s([1, 1, 1, 1]))
    case("max_pool_ceil", F.max_pool2d(tx, 2, 2, ceil_mode=True).numpy().astype(f16), x=xp, kernel_sizes=s([2, 2]),
         strides=s([2, 2]), pad_type="valid", ceil_mode=np.array(True))
    case("avg_pool_custom_incl", F.avg_pool2d(tx, 3, 2, padding=1, count_include_pad=True).numpy().astype(f16),
         x=xp, kernel_sizes=s([3, 3]), strides=s([2, 2]), pad_type="custom", pad=s([1, 1, 1, 1]))
    case("avg_pool_custom_excl", F.avg_pool2d(tx, 3, 2, padding=1, count_include_pad=False).numpy().astype(f16),
         x=xp, kernel_sizes=s([3, 3]), strides=s([2, 2]), pad_type="custom", pad=s([1, 1, 1, 1]),
         exclude_padding_from_average=np.array(True))
    case("avg_pool_ceil", F.avg_pool2d(tx, 2, 2, padding=1, ceil_mode=True).numpy().astype(f16), x=xp,
         kernel_sizes=s([2, 2]), strides=s([2, 2]), pad_type="custom", pad=s([1, 1, 1, 1]), ceil_mode=np.array(True))
    # same (TF): pad total split with the extra at the end; padding excluded from the average
    p = same_pads((5, 6), (3, 3), (2, 2), (1, 1))
    tpad = F.pad(tx, [p[2], p[3], p[0], p[1]], value=-math.inf)
    case("max_pool_same", F.max_pool2d(tpad, 3, 2).numpy().astype(f16), x=xp, kernel_sizes=s([3, 3]),
         strides=s([2, 2]), pad_type="same")
    ones = F.pad(torch.ones_like(tx), [p[2], p[3], p[0], p[1]])
    num = F.avg_pool2d(F.pad(tx, [p[2], p[3], p[0], p[1]]), 3, 2) * 9
    cnt = F.avg_pool2d(ones, 3, 2) * 9
    case("avg_pool_same_excl", (num / cnt).numpy().astype(f16), x=xp, kernel_sizes=s([3, 3]), strides=s([2, 2]),
         pad_type="same", exclude_padding_from_average=np.array(True))
    x1 = rnd((2, 3, 7), f32)
    case("avg_pool_1d", F.avg_pool1d(torch.tensor(d(x1)), 3, 2).numpy().astype(f32), x=x1, kernel_sizes=s([3]),
         strides=s([2]), pad_type="valid")
    x3 = rnd((1, 1, 4, 4, 4), f32)
    case("max_pool_3d", F.max_pool3d(torch.tensor(d(x3)), 2, 2).numpy().astype(f32), x=x3,
         kernel_sizes=s([2, 2, 2]), strides=s([2, 2, 2]), pad_type="valid")


# ------------------------------------------------------------- shape/movement

def gen_shape():
    x = rnd((2, 3, 4), f16)
    case("reshape_neg1", x.reshape(4, -1), x=x, shape=s([4, -1]))
    case("reshape_zero", x.reshape(2, 3, 4), x=x, shape=s([0, 0, -1]))
    case("reshape_scalar", x.reshape(-1)[:1].reshape(()), x=x.reshape(-1)[:1], shape=np.zeros((0,), i32))
    case("transpose", np.transpose(x, (2, 0, 1)), x=x, perm=s([2, 0, -2]))
    xi = rng.integers(0, 9, (2, 3)).astype(i32)
    case("transpose_int32", xi.T, x=xi, perm=s([1, 0]))
    case("expand_dims", x.reshape(1, 2, 3, 1, 4), x=x, axes=s([0, -2]))
    y = x.reshape(1, 2, 1, 3, 4)
    case("squeeze_all", x, x=y)
    case("squeeze_axes", x.reshape(2, 1, 3, 4), x=y, axes=s([0]))
    case("flatten2d", x.reshape(2, 12), x=x)
    case("flatten2d_neg", x.reshape(6, 4), x=x, axis=np.array(-1, i32))
    a = rnd((2, 1, 4), f16)
    b = rnd((2, 3, 4), f16)
    case("concat_ax1", np.concatenate([a, b], 1), values=[a, b], axis=np.array(1, i32))
    c = rnd((2, 3, 4), f16)
    il = np.stack([b, c], 2).reshape(2, 6, 4)
    case("concat_interleave", il, values=[b, c], axis=np.array(-2, i32), interleave=np.array(True))
    bb = rng.random((3, 2)) < 0.5
    case("concat_bool", np.concatenate([bb, bb[:1]], 0), values=[bb, bb[:1]], axis=np.array(0, i32))
    case("stack_ax1", np.stack([b, c], 1), values=[b, c], axis=np.array(1, i32))
    case("stack_last", np.stack([b, c, b], -1), values=[b, c, b], axis=np.array(-1, i32))
    x = rnd((2, 6, 3), f32)
    case("split_num", np.split(x, 3, 1), x=x, axis=np.array(1, i32), num_splits=np.array(3, i32))
    case("split_sizes", np.split(x, [1, 4], 1), x=x, axis=np.array(-2, i32), split_sizes=s([1, 3, 2]))
    x = rnd((3, 5, 4), f16)
    case("slice_by_size", x[1:3, 2:, 0:3], x=x, begin=s([1, -3, 0]), size=s([2, -1, 3]))
    case("slice_by_index_basic", x[0:2, 1:4, 1:], x=x, begin=s([0, 1, 1]), end=s([2, 4, 4]))
    case("slice_by_index_stride", x[::2, 4:0:-2, -1:-4:-1], x=x, begin=s([0, 4, -1]), end=s([3, 0, -4]),
         stride=s([2, -2, -1]))
    case("slice_by_index_masks", x[:, 3, 1:], x=x, begin=s([1, 3, 1]), end=s([2, 4, 0]),
         begin_mask=np.array([True, False, False]), end_mask=np.array([True, False, True]),
         squeeze_mask=np.array([False, True, False]))
    case("slice_by_index_neg_clamp", x[-10:10, -2:, :-1], x=x, begin=s([-10, -2, 0]), end=s([10, 5, -1]))
    case("slice_by_index_squeeze_all", np.array(x[2, 4, 3]), x=x, begin=s([-1, -1, 3]), end=s([0, 0, 0]),
         squeeze_mask=np.array([True, True, True]))
    u = rnd((3, 2, 2), f16)
    ref = x.copy()
    ref[:, 1:5:2, 2:] = u
    case("slice_update", ref, x=x, update=u, begin=s([0, 1, 2]), end=s([3, 5, 4]), stride=s([1, 2, 1]))
    u2 = rnd((3, 4), f16)
    ref = x.copy()
    ref[:, 2, :] = u2
    case("slice_update_squeeze", ref, x=x, update=u2, begin=s([0, 2, 0]), end=s([0, 3, 0]),
         begin_mask=np.array([True, False, True]), end_mask=np.array([True, False, True]),
         squeeze_mask=np.array([False, True, False]))
    x = rnd((2, 3), f16)
    case("tile", np.tile(x, (2, 3)), x=x, reps=s([2, 3]))
    x = rnd((2, 3, 4), f16)
    case("pad_constant", np.pad(x, ((0, 0), (1, 2), (0, 1)), constant_values=1.5), x=x, pad=s([1, 2, 0, 1]),
         constant_val=np.array(1.5, f32))
    case("pad_reflect", np.pad(x, ((0, 0), (0, 0), (2, 3)), mode="reflect"), x=x, pad=s([2, 3]), mode="reflect")
    case("pad_replicate", np.pad(x, ((1, 0), (2, 1), (0, 5)), mode="edge"), x=x, pad=s([1, 0, 2, 1, 0, 5]),
         mode="replicate")
    case("reverse_all", x[::-1, ::-1, ::-1], x=x)
    case("reverse_axes", x[:, ::-1, ::-1], x=x, axes=s([1, -1]))
    x = rnd((2, 8, 2, 3), f16)
    bs = 2
    n, c, h, w = x.shape
    # DCR (TensorFlow): out[n, c, h*b+i, w*b+j] = x[n, (i*b+j)*C' + c, h, w]
    d2s = x.reshape(n, bs, bs, c // 4, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // 4, h * bs, w * bs)
    case("depth_to_space", d2s, x=x, block_size=np.array(2, i32))
    if torch is not None:
        case("pixel_shuffle", F.pixel_shuffle(torch.tensor(x.astype(f32)), 2).numpy().astype(f16), x=x,
             upscale_factor=np.array(2, i32))
    case("space_to_depth", x, x=d2s, block_size=np.array(2, i32))
    x = rnd((1, 2, 2, 3), f16)
    case("upsample_nn", x.repeat(2, 2).repeat(3, 3), x=x, scale_factor_height=np.array(2, i32),
         scale_factor_width=np.array(3, i32))
    ih = np.floor(np.arange(3) / 1.5).astype(int)
    iw = np.floor(np.arange(7) / 2.5).astype(int)
    case("upsample_nn_frac", x[:, :, ih][:, :, :, iw], x=x, scale_factor_height=np.array(1.5, f32),
         scale_factor_width=np.array(2.5, f32))
    x = rnd((1, 2, 5, 6), f16)
    case("crop", x[:, :, 1:4, 2:5], x=x, crop_height=s([1, 1]), crop_width=s([2, 1]))
    x = rnd((2, 4, 5), f16)
    M, N = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    for lo, up in ((-1, 0), (0, -1), (1, 2), (-1, -1)):
        band = ((lo < 0) | (M - N <= lo)) & ((up < 0) | (N - M <= up))
        case(f"band_part_{lo}_{up}".replace("-", "m"), np.where(band, x, 0).astype(f16), x=x,
             lower=np.array(lo, i32), upper=np.array(up, i32))


def gen_gather():
    x = rnd((3, 4, 5), f16)
    ind = np.array([[2, -1], [0, 3]], i32)
    case("gather_ax1", np.take(x, ind, 1), x=x, indices=ind, axis=np.array(1, i32))
    case("gather_ax0_scalar", x[1], x=x, indices=np.array(1, i32))
    ind16 = np.array([4, 0, -5], np.int16)
    case("gather_int16_idx", np.take(x, ind16, -1), x=x, indices=ind16, axis=np.array(-1, i32))
    bi = np.array([[1, 0, 3], [2, 2, 0], [3, 1, 1]], i32)
    ref = np.stack([np.take(x[b], bi[b], 0) for b in range(3)])
    case("gather_batch", ref, x=x, indices=bi, axis=np.array(1, i32), batch_dims=np.array(1, i32))
    ia = rng.integers(-4, 4, (3, 2, 5)).astype(i32)
    case("gather_along_axis", np.take_along_axis(x, np.where(ia < 0, ia + 4, ia), 1), x=x, indices=ia,
         axis=np.array(1, i32))
    nd = np.array([[0, 1], [2, 3], [1, -1]], i32)
    case("gather_nd", np.stack([x[0, 1], x[2, 3], x[1, 3]]), x=x, indices=nd)
    nd2 = np.array([[[1], [3]], [[0], [0]], [[2], [1]]], i32)
    ref = np.stack([np.stack([x[b, nd2[b, j, 0]] for j in range(2)]) for b in range(3)])
    case("gather_nd_batch", ref, x=x, indices=nd2, batch_dims=np.array(1, i32))
    # scatter (duplicates accumulate)
    data = rnd((4, 3), f16)
    idx = np.array([1, 3, 1], i32)
    upd = rnd((3, 3), f16)
    for mode in ("update", "add", "sub", "mul", "div", "max", "min"):
        ref = d(data).copy()
        u = d(upd)
        for i, j in enumerate(idx):
            if mode == "update": ref[j] = u[i]
            elif mode == "add": ref[j] += u[i]
            elif mode == "sub": ref[j] -= u[i]
            elif mode == "mul": ref[j] *= u[i]
            elif mode == "div": ref[j] /= u[i]
            elif mode == "max": ref[j] = np.maximum(ref[j], u[i])
            else: ref[j] = np.minimum(ref[j], u[i])
        case(f"scatter_{mode}", ref.astype(f16), data=data, indices=idx, updates=upd, mode=mode)
    upd1 = rnd((4, 2), f32)
    idx1 = np.array([0, -1], i32)
    ref = d(data.astype(f32)).copy()
    ref[:, 0] += upd1[:, 0]
    ref[:, 2] += upd1[:, 1]
    case("scatter_ax1_default", ref.astype(f32), data=data.astype(f32), indices=idx1, updates=upd1,
         axis=np.array(1, i32))
    di = rng.integers(0, 9, (4, 3)).astype(i32)
    ui = rng.integers(0, 9, (3, 3)).astype(i32)
    ref = di.copy()
    np.add.at(ref, idx, ui)
    case("scatter_int32", ref, data=di, indices=idx, updates=ui)
    ia = np.array([[1, 0, 1], [3, 3, 0]], i32)
    ua = rnd((2, 3), f16)
    ref = d(data).copy()
    np.add.at(ref, (ia, np.arange(3)[None, :].repeat(2, 0)), d(ua))
    case("scatter_along_axis", ref.astype(f16), data=data, indices=ia, updates=ua)
    ref = d(data).copy()
    for r in range(2):
        for cc in range(3):
            ref[ia[r, cc], cc] = d(ua)[r, cc]
    ia2 = np.array([[1, 0, 1], [3, 2, 0]], i32)
    ref = d(data).copy()
    for r in range(2):
        for cc in range(3):
            ref[ia2[r, cc], cc] = d(ua)[r, cc]
    case("scatter_along_axis_update", ref.astype(f16), data=data, indices=ia2, updates=ua, mode="update")
    ind = np.array([[0, 1], [3, 2], [0, 1]], i32)
    un = rnd((3,), f16)
    ref = d(data).copy()
    np.add.at(ref, (ind[:, 0], ind[:, 1]), d(un))
    case("scatter_nd", ref.astype(f16), data=data, indices=ind, updates=un)
    ind = np.array([[2], [0]], i32)
    un = rnd((2, 3), f16)
    ref = d(data).copy()
    ref[2] = d(un)[0]
    ref[0] = d(un)[1]
    case("scatter_nd_rows_update", ref.astype(f16), data=data, indices=ind, updates=un, mode="update")
    # one_hot
    ind = np.array([[0, 2], [3, 1]], i32)
    oh = np.eye(4, dtype=i32)[ind]
    case("one_hot_default", oh, indices=ind, one_hot_vector_size=np.array(4, i32))
    oh = np.where(np.eye(4)[ind].transpose(2, 0, 1) > 0, 2.5, -1.0).astype(f32)
    case("one_hot_ax0", oh, indices=ind, one_hot_vector_size=np.array(4, i32), axis=np.array(0, i32),
         on_value=np.array(2.5, f32), off_value=np.array(-1.0, f32))


def gen_misc():
    case("fill", np.full((2, 3), 1.5, f32), shape=s([2, 3]), value=np.array(1.5, f32))
    case("fill_default", np.zeros((4,), f32), shape=s([4]))
    case("fill_int", np.full((2, 2), 7, i32), shape=s([2, 2]), value=np.array(7, i32))
    r = rnd((3, 2), f16)
    case("fill_like", np.full((3, 2), -2, f16), ref_tensor=r, value=np.array(-2, f16))
    case("fill_like_bool", np.full((3, 2), True), ref_tensor=r, value=np.array(True))
    case("range_int", np.arange(2, 11, 3, dtype=i32), start=np.array(2, i32), end=np.array(11, i32),
         step=np.array(3, i32))
    case("range_neg", np.arange(5, -3, -2, dtype=i32), start=np.array(5, i32), end=np.array(-3, i32),
         step=np.array(-2, i32))
    case("range_f32", np.arange(0.5, 2.0, 0.25, dtype=f32), start=np.array(0.5, f32), end=np.array(2.0, f32),
         step=np.array(0.25, f32))
    case("shape", np.array([2, 0, 3], i32), x=np.zeros((2, 0, 3), f16))
    x = rnd((2, 3), f16)
    case("identity", x, x=x)
    # constexpr ops
    q = rng.integers(-128, 127, (3, 4)).astype(np.int8)
    sc = rnd((4,), f16, 0.01, 0.1)
    zp = rng.integers(-3, 3, (4,)).astype(np.int8)
    case("affine_deq", ((d(q) - d(zp)) * d(sc)).astype(f16), quantized_data=q, scale=sc, zero_point=zp,
         axis=np.array(1, i32))
    qu = rng.integers(0, 255, (3, 4)).astype(np.uint8)
    case("affine_deq_scalar", ((d(qu) - 128) * 0.05).astype(f32), quantized_data=qu, scale=np.array(0.05, f32),
         zero_point=np.array(128, np.uint8), axis=np.array(0, i32))
    h = rnd((2, 3), f16)
    case("constexpr_cast", h.astype(f32), source_val=h, output_dtype="fp32")
    # iOS16 LUT: 2-bit indices packed LSB first
    lut = rnd((4,), f16)
    idx = rng.integers(0, 4, (2, 5))
    flat = idx.reshape(-1)
    packed = np.zeros(((flat.size * 2 + 7) // 8,), np.uint8)
    for i, v in enumerate(flat):
        packed[(2 * i) // 8] |= v << ((2 * i) % 8)
    case("lut_ios16", lut[idx], indices=packed, lut=lut, shape=np.array([2, 5], np.uint32))
    # iOS18 LUT: per-group tables over axis 0, uint2 indices given unpacked (one byte each)
    idx = rng.integers(0, 4, (4, 3)).astype(np.uint8)
    lut = rnd((2, 1, 4, 1), f32)
    ref = np.stack([lut[i // 2, 0, idx[i], 0] for i in range(4)])
    np.save(os.path.join(OUT, "lut_ios18.indices.npy"), idx)
    case("lut_ios18", ref.astype(f32), lut=lut)
    # vector palettization (vector_axis=1): out[i, j*VS+v] = lut[idx[i,j]][v]
    idx = rng.integers(0, 2, (2, 2)).astype(np.uint8)
    lut = rnd((1, 1, 2, 3), f16)
    ref = np.zeros((2, 6), f16)
    for i in range(2):
        for j in range(2):
            ref[i, j * 3:(j + 1) * 3] = lut[0, 0, idx[i, j]]
    np.save(os.path.join(OUT, "lut_ios18_vec.indices.npy"), idx)
    case("lut_ios18_vec", ref, lut=lut, vector_axis=np.array(-1, i32))
    # sparse_to_dense
    dense = rnd((3, 4), f16) * (rng.random((3, 4)) < 0.5)
    mask = (dense != 0).reshape(-1)
    packed = np.packbits(mask, bitorder="little")
    case("sparse_ios16", dense.astype(f16), nonzero_data=dense.reshape(-1)[mask], mask=packed,
         shape=np.array([3, 4], np.uint32))
    case("sparse_ios18", dense.astype(f16), nonzero_data=dense.reshape(-1)[mask],
         mask=(dense != 0).astype(np.uint8))
    # blockwise shift scale: blocks of 2 along axis 1
    data = rng.integers(-8, 8, (2, 4)).astype(np.int8)
    scale = rnd((2, 2), f16, 0.1, 0.5)
    off = rng.integers(-2, 2, (2, 2)).astype(np.int8)
    ref = (d(data) - np.repeat(d(off), 2, 1)) * np.repeat(d(scale), 2, 1)
    case("blockwise", ref.astype(f16), data=data, scale=scale, offset=off)
    case("blockwise_nooff", (d(data) * np.repeat(d(scale), 2, 1)).astype(f16), data=data, scale=scale)


def gen_negative():
    # cases that must fail with a message (the expected output only fixes nout)
    x = rnd((2, 3), f16)
    y = rnd((4,), f16)
    case("neg_add_bcast", np.zeros(1, f16), x=x, y=y)
    case("neg_gather_oob", np.zeros((1,), f16), x=x, indices=np.array([0, 2], i32))
    case("neg_reshape", np.zeros(1, f16), x=x, shape=s([4, -1]))
    case("neg_matmul_inner", np.zeros(1, f16), x=x, y=rnd((2, 3), f16))
    case("neg_conv_groups", np.zeros(1, f16), x=rnd((1, 3, 4, 4), f16), weight=rnd((2, 2, 1, 1), f16),
         groups=np.array(2, i32))
    case("neg_cast_dtype", np.zeros(1, f16), x=x, dtype="complex64")
    case("neg_gelu_mode", np.zeros(1, f16), x=x, mode="FAST")
    case("neg_softmax_axis", np.zeros(1, f16), x=x, axis=np.array(2, i32))
    case("neg_split", np.zeros(1, f16), x=rnd((5,), f16), axis=np.array(0, i32), num_splits=np.array(2, i32))
    case("neg_int_div0", np.zeros(1, i32), x=np.array([1, 2], i32), y=np.array([1, 0], i32))
    case("neg_topk_k", np.zeros(1, f16), x=x, k=np.array(4, i32))
    case("neg_concat_shape", np.zeros(1, f16), values=[x, rnd((3, 3), f16)], axis=np.array(1, i32))
    case("neg_slice_squeeze", np.zeros(1, f16), x=x, begin=s([5, 0]), end=s([0, 0]),
         squeeze_mask=np.array([True, False]))
    case("neg_scatter_oob", np.zeros(1, f16), data=x, indices=np.array([2], i32), updates=rnd((1, 3), f16),
         mode="update")


ALIASES = [("sdpa_bwd", "sdpa_backward"), ("sdpa", "scaled_dot_product_attention"), ("argmax", "reduce_argmax"),
           ("argmin", "reduce_argmin"), ("lrn", "local_response_norm"), ("conv1d", "conv"), ("conv2d", "conv"),
           ("conv3d", "conv"), ("conv_t", "conv_transpose"), ("upsample_nn", "upsample_nearest_neighbor"),
           ("affine_deq", "constexpr_affine_dequantize"), ("lut", "constexpr_lut_to_dense"),
           ("sparse", "constexpr_sparse_to_dense"), ("blockwise", "constexpr_blockwise_shift_scale"),
           ("range", "range_1d")]
SPECIAL = {"lut_ios18", "lut_ios18_vec"}  # need a sub-byte dtype no .npy can carry: tested by name in C


def write_manifest():
    import re
    with open(os.path.join(os.path.dirname(OUT), "..", "..", "ir", "ops.def")) as f:
        spellings = re.findall(r'^OP\(\w+, "(\w+)"', f.read(), re.M)
    names = sorted({f.split(".")[0] for f in os.listdir(OUT)})
    lines = []
    for n in names:
        if n.startswith("neg_") or n in SPECIAL:
            continue
        op = None
        for pre, full in ALIASES:
            if n == pre or n.startswith(pre + "_"):
                op = full
                break
        if op is None:
            cands = [sp for sp in spellings if n == sp or n.startswith(sp + "_")]
            op = max(cands, key=len) if cands else None
        assert op, f"no op for case {n}"
        lines.append(f"{op} {n}\n")
    with open(os.path.join(OUT, "MANIFEST"), "w") as f:
        f.writelines(lines)
    return len(lines)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    gen_eltwise()
    gen_reduce()
    gen_norm()
    gen_attn()
    gen_linalg()
    gen_conv()
    gen_shape()
    gen_gather()
    gen_misc()
    gen_negative()
    n = write_manifest()
    print(f"{n} positive cases")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(os.listdir(OUT))} files, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
