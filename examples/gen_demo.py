#!/usr/bin/python3
"""Writes examples/mil/ffn_block.mil: a pre-norm SwiGLU feed-forward block in the
ANE's [1, C, 1, S] layout (RMSNorm spelled as the ANE projects write it, 1x1
convs, SiLU gate, residual), with small deterministic inline fp16 weights.
Run once; the output is committed."""
import numpy as np

D, H, S = 16, 32, 8
rng = np.random.default_rng(7)
w1 = (rng.standard_normal((H, D, 1, 1)) / np.sqrt(D)).astype(np.float16)
w3 = (rng.standard_normal((H, D, 1, 1)) / np.sqrt(D)).astype(np.float16)
w2 = (rng.standard_normal((D, H, 1, 1)) / np.sqrt(H)).astype(np.float16)
g = (1.0 + 0.1 * rng.standard_normal((1, D, 1, 1))).astype(np.float16)

def lit(a):
    def rec(x):
        if x.ndim == 0:
            return float(x).hex().replace('0x1.0000000000000p', '0x1p')
        return '[' + ', '.join(rec(v) for v in x) + ']'
    return rec(a)

def ty(a):
    return 'tensor<fp16, [%s]>' % ', '.join(str(s) for s in a.shape)

X = f'tensor<fp16, [1, {D}, 1, {S}]>'
Hh = f'tensor<fp16, [1, {H}, 1, {S}]>'
R = 'tensor<fp16, [1, 1, 1, %d]>' % S
out = f'''program(1.3)
[buildInfo = dict<string, string>({{{{"milc-example", "ffn_block"}}}})]
{{
    func main<ios18>({X} x) {{
            tensor<int32, [1]> ax = const()[name = string("ax"), val = tensor<int32, [1]>([1])];
            bool kd = const()[name = string("kd"), val = bool(true)];
            fp16 invd = const()[name = string("invd"), val = fp16({float(np.float16(1.0 / D)).hex()})];
            fp16 eps = const()[name = string("eps"), val = fp16({float(np.float16(1e-5)).hex()})];
            fp16 nhalf = const()[name = string("nhalf"), val = fp16(-0x1p-1)];
            {ty(g)} g = const()[name = string("g"), val = {ty(g)}({lit(g)})];
            {ty(w1)} w1 = const()[name = string("w1"), val = {ty(w1)}({lit(w1)})];
            {ty(w3)} w3 = const()[name = string("w3"), val = {ty(w3)}({lit(w3)})];
            {ty(w2)} w2 = const()[name = string("w2"), val = {ty(w2)}({lit(w2)})];
            string pt = const()[name = string("pt"), val = string("valid")];
            tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];
            tensor<int32, [4]> pd = const()[name = string("pd"), val = tensor<int32, [4]>([0, 0, 0, 0])];
            tensor<int32, [2]> dl = const()[name = string("dl"), val = tensor<int32, [2]>([1, 1])];
            int32 gr = const()[name = string("gr"), val = int32(1)];
            {X} sq = mul(x = x, y = x)[name = string("sq")];
            {R} ss = reduce_sum(axes = ax, keep_dims = kd, x = sq)[name = string("ss")];
            {R} ms = mul(x = ss, y = invd)[name = string("ms")];
            {R} mse = add(x = ms, y = eps)[name = string("mse")];
            {R} rr = pow(x = mse, y = nhalf)[name = string("rr")];
            {X} xr = mul(x = x, y = rr)[name = string("xr")];
            {X} xn = mul(x = xr, y = g)[name = string("xn")];
            {Hh} h1 = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = w1, x = xn)[name = string("h1")];
            {Hh} h3 = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = w3, x = xn)[name = string("h3")];
            {Hh} a1 = silu(x = h1)[name = string("a1")];
            {Hh} gate = mul(x = a1, y = h3)[name = string("gate")];
            {X} f = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = w2, x = gate)[name = string("f")];
            {X} y = add(x = x, y = f)[name = string("y")];
        }} -> (y);
}}'''
open('mil/ffn_block.mil', 'w').write(out)
