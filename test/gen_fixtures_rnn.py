#!/usr/bin/python3
"""Generates the fixtures of test/runtime/test_kernels_rnn.c in
test/runtime/fixtures_rnn/ (same layout as test/gen_fixtures.py: NAME.<arg>.npy,
NAME.<arg>.str, NAME.out<i>.npy, and a MANIFEST of "<op> <case>" lines).

References are computed in float64 from the (already rounded) inputs and cast
once to the result dtype:
  lstm / rnn      torch.nn.LSTM / torch.nn.RNN (weights reordered from Core ML's
                  i,f,o,z gate layout to PyTorch's i,f,g,o), plus a NumPy
                  transcription of coremltools' reference for clip / peephole /
                  other activations, itself checked against torch first;
  gru             NumPy transcription of coremltools' reference (Core ML's gru
                  applies the reset gate to h before the W_ho matmul, which
                  torch.nn.GRU does not);
  einsum          torch.einsum;  upsample_bilinear  F.interpolate(bilinear);
  l2_pool         sqrt(avg_pool2d(x^2) * window size) == F.lp_pool2d(p=2);
  sliding_windows torch.Tensor.unfold.

Run:  /usr/bin/python3 test/gen_fixtures_rnn.py
"""
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtime", "fixtures_rnn")
rng = np.random.default_rng(4321)
f16, f32, i32 = np.float16, np.float32, np.int32
MANIFEST = []


def rnd(shape, dt=f32, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(dt)


def case(op, name, outs, **args):
    MANIFEST.append(f"{op} {name}")
    for k, v in args.items():
        if v is None:
            continue
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


def d(x):
    return np.asarray(x).astype(np.float64)


def t64(x):
    return torch.from_numpy(d(x))


# ----------------------------------------------------------------- recurrent

def ifoz_to_ifgo(w):
    i, f, o, z = np.split(w, 4)
    return np.concatenate([i, f, z, o])


def act(name, x):
    if name in ("tanh", "scaled_tanh"):
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "relu":
        return np.maximum(x, 0)
    if name in ("sigmoid_hard", "hard_sigmoid"):
        return np.clip(0.2 * x + 0.5, 0, 1)
    if name == "linear":
        return x
    raise ValueError(name)


def np_lstm_dir(x, h, c, wih, whh, b, p, rev, ract, cact, oact, clip):
    """One direction in float64; returns per-step outputs in input-time order
    (index t = hidden state after consuming x[t]), final h, final c."""
    T, H = x.shape[0], whh.shape[1]
    outs = [None] * T
    steps = range(T - 1, -1, -1) if rev else range(T)
    for t in steps:
        g = x[t] @ wih.T + h @ whh.T + b
        gi, gf, go, gz = np.split(g, 4, axis=1)
        pi, pf, po = np.split(p, 3)
        i = act(ract, gi + pi * c)
        f = act(ract, gf + pf * c)
        z = act(cact, gz)
        c = f * c + i * z
        if clip is not None:
            c = np.clip(c, -clip, clip)
        o = act(ract, go + po * c)
        h = o * act(oact, c)
        outs[t] = h
    return np.stack(outs), h, c


def torch_lstm(x, h0, c0, wih, whh, b, bidir, wih_b=None, whh_b=None, b_b=None):
    I, H = x.shape[2], whh.shape[1]
    m = torch.nn.LSTM(I, H, 1, bidirectional=bidir).double()
    with torch.no_grad():
        m.weight_ih_l0.copy_(t64(ifoz_to_ifgo(d(wih))))
        m.weight_hh_l0.copy_(t64(ifoz_to_ifgo(d(whh))))
        m.bias_ih_l0.copy_(t64(ifoz_to_ifgo(d(b))))
        m.bias_hh_l0.zero_()
        if bidir:
            m.weight_ih_l0_reverse.copy_(t64(ifoz_to_ifgo(d(wih_b))))
            m.weight_hh_l0_reverse.copy_(t64(ifoz_to_ifgo(d(whh_b))))
            m.bias_ih_l0_reverse.copy_(t64(ifoz_to_ifgo(d(b_b))))
            m.bias_hh_l0_reverse.zero_()
    nd = 2 if bidir else 1
    h0t = t64(h0).reshape(x.shape[1], nd, H).permute(1, 0, 2).contiguous()
    c0t = t64(c0).reshape(x.shape[1], nd, H).permute(1, 0, 2).contiguous()
    with torch.no_grad():
        y, (hn, cn) = m(t64(x), (h0t, c0t))
    hn = hn.permute(1, 0, 2).reshape(x.shape[1], nd * H)
    cn = cn.permute(1, 0, 2).reshape(x.shape[1], nd * H)
    return y.numpy(), hn.numpy(), cn.numpy()


def gen_lstm():
    T, B, I, H = 5, 2, 4, 3
    for dt, tag in ((f32, "f32"), (f16, "f16")):
        for direction in ("forward", "reverse", "bidirectional"):
            for seq in (True, False):
                nd = 2 if direction == "bidirectional" else 1
                x = rnd((T, B, I), dt, -2, 2)
                h0, c0 = rnd((B, nd * H), dt), rnd((B, nd * H), dt)
                wih, whh, b = rnd((4 * H, I), dt), rnd((4 * H, H), dt), rnd((4 * H,), dt)
                extra = {}
                if nd == 2:
                    wih_b, whh_b, b_b = rnd((4 * H, I), dt), rnd((4 * H, H), dt), rnd((4 * H,), dt)
                    y, hn, cn = torch_lstm(x, h0, c0, wih, whh, b, True, wih_b, whh_b, b_b)
                    extra = dict(weight_ih_back=wih_b, weight_hh_back=whh_b, bias_back=b_b)
                    # final states for output_sequence = false (coremltools)
                    out = y if seq else hn[None]
                    # cross-check the NumPy reference against torch
                    yf, hf, cf = np_lstm_dir(d(x), d(h0[:, :H]), d(c0[:, :H]), d(wih), d(whh), d(b),
                                             np.zeros(3 * H), False, "sigmoid", "tanh", "tanh", None)
                    yb, hb, cb = np_lstm_dir(d(x), d(h0[:, H:]), d(c0[:, H:]), d(wih_b), d(whh_b), d(b_b),
                                             np.zeros(3 * H), True, "sigmoid", "tanh", "tanh", None)
                    assert np.allclose(np.concatenate([yf, yb], 2), y, atol=1e-12)
                    assert np.allclose(np.concatenate([hf, hb], 1), hn, atol=1e-12)
                    assert np.allclose(np.concatenate([cf, cb], 1), cn, atol=1e-12)
                else:
                    xin = x[::-1].copy() if direction == "reverse" else x
                    y, hn, cn = torch_lstm(xin, h0, c0, wih, whh, b, False)
                    out = y if seq else y[-1:]
                name = f"lstm_{direction[:3]}_{'seq' if seq else 'last'}_{tag}"
                case("lstm", name, [out.astype(dt), hn.astype(dt), cn.astype(dt)], x=x, initial_h=h0,
                     initial_c=c0, weight_ih=wih, weight_hh=whh, bias=b, direction=direction,
                     output_sequence=np.array(seq), **extra)
    # clip + peephole + other activations (NumPy reference), no bias
    for dt, tag in ((f32, "f32"), (f16, "f16")):
        for ract, cact, oact in (("sigmoid", "tanh", "tanh"), ("sigmoid_hard", "relu", "linear"),
                                 ("sigmoid", "scaled_tanh", "relu")):
            x = rnd((6, 2, 3), dt, -2, 2)
            h0, c0 = rnd((2, 4), dt), rnd((2, 4), dt, -2, 2)
            wih, whh, p = rnd((16, 3), dt), rnd((16, 4), dt), rnd((12,), dt)
            clip = 0.4
            y, hn, cn = np_lstm_dir(d(x), d(h0), d(c0), d(wih), d(whh), np.zeros(16), d(p), False, ract, cact,
                                    oact, clip)
            name = f"lstm_clip_{ract}_{cact}_{oact}_{tag}"
            case("lstm", name, [y.astype(dt), hn.astype(dt), cn.astype(dt)], x=x, initial_h=h0, initial_c=c0,
                 weight_ih=wih, weight_hh=whh, peephole=p, clip=np.array(clip, dtype=dt),
                 recurrent_activation=ract, cell_activation=cact, activation=oact,
                 output_sequence=np.array(True))
    # bidirectional with peepholes on both directions, no clip
    x = rnd((4, 3, 2), f32, -2, 2)
    h0, c0 = rnd((3, 4)), rnd((3, 4))
    w = [rnd((8, 2)), rnd((8, 2)), rnd((8,)), rnd((6,)), rnd((8, 2)), rnd((8, 2)), rnd((8,)), rnd((6,))]
    yf, hf, cf = np_lstm_dir(d(x), d(h0[:, :2]), d(c0[:, :2]), d(w[0]), d(w[1]), d(w[2]), d(w[3]), False,
                             "sigmoid", "tanh", "tanh", None)
    yb, hb, cb = np_lstm_dir(d(x), d(h0[:, 2:]), d(c0[:, 2:]), d(w[4]), d(w[5]), d(w[6]), d(w[7]), True,
                             "sigmoid", "tanh", "tanh", None)
    case("lstm", "lstm_bid_peep_f32", [np.concatenate([yf, yb], 2).astype(f32),
                                       np.concatenate([hf, hb], 1).astype(f32),
                                       np.concatenate([cf, cb], 1).astype(f32)],
         x=x, initial_h=h0, initial_c=c0, weight_ih=w[0], weight_hh=w[1], bias=w[2], peephole=w[3],
         weight_ih_back=w[4], weight_hh_back=w[5], bias_back=w[6], peephole_back=w[7],
         direction="bidirectional", output_sequence=np.array(True))


def np_gru(x, h, wih, whh, b, rev, ract, oact):
    """Core ML gru (coremltools' reference): gates r, o, z."""
    T = x.shape[0]
    Wr, Wo, Wz = np.split(wih, 3)
    Rr, Ro, Rz = np.split(whh, 3)
    br, bo, bz = np.split(b, 3)
    outs = []
    for k in range(T):
        xt = x[T - 1 - k] if rev else x[k]
        z = act(ract, xt @ Wz.T + h @ Rz.T + bz)
        r = act(ract, xt @ Wr.T + h @ Rr.T + br)
        o = act(oact, xt @ Wo.T + (h * r) @ Ro.T + bo)
        h = (1 - z) * o + z * h
        outs.append(h)
    return np.stack(outs), h


def gen_gru():
    T, B, I, H = 5, 2, 3, 4
    for dt, tag in ((f32, "f32"), (f16, "f16")):
        for direction in ("forward", "reverse"):
            for seq in (True, False):
                for ract, oact, hasb in (("sigmoid", "tanh", True), ("sigmoid_hard", "relu", False)):
                    x = rnd((T, B, I), dt, -2, 2)
                    h0 = rnd((B, H), dt)
                    wih, whh, b = rnd((3 * H, I), dt), rnd((3 * H, H), dt), rnd((3 * H,), dt)
                    y, hn = np_gru(d(x), d(h0), d(wih), d(whh), d(b) if hasb else np.zeros(3 * H),
                                   direction == "reverse", ract, oact)
                    out = y if seq else y[-1:]
                    name = f"gru_{direction[:3]}_{'seq' if seq else 'last'}_{ract}_{tag}"
                    case("gru", name, [out.astype(dt), hn.astype(dt)], x=x, initial_h=h0, weight_ih=wih,
                         weight_hh=whh, bias=b if hasb else None, direction=direction,
                         output_sequence=np.array(seq), recurrent_activation=ract, activation=oact)
    # sanity of np_gru: with r == 1 (huge reset bias) it equals torch GRU with b_hn = 0
    x = rnd((3, 1, 2)).astype(np.float64)
    h0 = rnd((1, 2)).astype(np.float64)
    wih, whh, b = d(rnd((6, 2))), d(rnd((6, 2))), d(rnd((6,)))
    b[:2] = 60.0
    y, _ = np_gru(x, h0, wih, whh, b, False, "sigmoid", "tanh")
    m = torch.nn.GRU(2, 2).double()
    r_, o_, z_ = np.split(wih, 3)
    rh, oh, zh = np.split(whh, 3)
    rb, ob, zb = np.split(b, 3)
    with torch.no_grad():
        m.weight_ih_l0.copy_(t64(np.concatenate([r_, z_, o_])))
        m.weight_hh_l0.copy_(t64(np.concatenate([rh, zh, oh])))
        m.bias_ih_l0.copy_(t64(np.concatenate([rb, zb, ob])))
        m.bias_hh_l0.zero_()
        yt, _ = m(t64(x), t64(h0)[None])
    assert np.allclose(y, yt.numpy(), atol=1e-9)


def gen_rnn():
    T, B, I, H = 6, 3, 4, 5
    for dt, tag in ((f32, "f32"), (f16, "f16")):
        for direction in ("forward", "reverse"):
            for seq in (True, False):
                for nl in ("tanh", "relu"):
                    x = rnd((T, B, I), dt, -2, 2)
                    h0 = rnd((B, H), dt)
                    wih, whh, b = rnd((H, I), dt), rnd((H, H), dt), rnd((H,), dt)
                    m = torch.nn.RNN(I, H, 1, nonlinearity=nl).double()
                    with torch.no_grad():
                        m.weight_ih_l0.copy_(t64(wih))
                        m.weight_hh_l0.copy_(t64(whh))
                        m.bias_ih_l0.copy_(t64(b))
                        m.bias_hh_l0.zero_()
                        xin = x[::-1].copy() if direction == "reverse" else x
                        y, hn = m(t64(xin), t64(h0)[None])
                    y, hn = y.numpy(), hn[0].numpy()
                    out = y if seq else y[-1:]
                    name = f"rnn_{direction[:3]}_{'seq' if seq else 'last'}_{nl}_{tag}"
                    case("rnn", name, [out.astype(dt), hn.astype(dt)], x=x, initial_h=h0, weight_ih=wih,
                         weight_hh=whh, bias=b, direction=direction, output_sequence=np.array(seq),
                         activation=nl)


# ------------------------------------------------------------------- einsum

def gen_einsum():
    specs = [
        ("nchw,nwhu->nchu", [(2, 3, 4, 5), (2, 5, 4, 3)]),
        ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
        ("ij,jk", [(3, 4), (4, 2)]),             # implicit output "ik"
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
        ("i,j->ij", [(3,), (4,)]),                # outer product
        ("ij->ji", [(3, 4)]),                     # transpose
        ("ii->", [(4, 4)]),                       # trace
        ("ii->i", [(3, 3)]),                      # diagonal
        ("abc->b", [(2, 3, 4)]),                  # reduction
        ("ij,ij->", [(3, 4), (3, 4)]),            # full contraction
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ]
    for idx, (eq, shapes) in enumerate(specs):
        for dt, tag in ((f32, "f32"), (f16, "f16")):
            vals = [rnd(sh, dt, -2, 2) for sh in shapes]
            ref = torch.einsum(eq, *[t64(v) for v in vals]).numpy()
            case("einsum", f"einsum_{idx}_{tag}", np.asarray(ref).astype(dt), equation=eq, values=vals)


# -------------------------------------------------------- upsample_bilinear

def np_grid(n_in, n_out, ac, hp):
    i = np.arange(n_out, dtype=np.float64)
    if ac:
        g = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    elif hp:
        g = (i + 0.5) * n_in / n_out - 0.5
    else:
        g = i * n_in / n_out
    return np.clip(g, 0, n_in - 1)


def np_bilinear(x, ho, wo, ac, hp):
    x = d(x)
    H, W = x.shape[-2:]
    gy, gx = np_grid(H, ho, ac, hp), np_grid(W, wo, ac, hp)
    y0 = np.floor(gy).astype(int); y1 = np.minimum(y0 + 1, H - 1); fy = gy - y0
    x0 = np.floor(gx).astype(int); x1 = np.minimum(x0 + 1, W - 1); fx = gx - x0
    top = x[..., y0, :][..., x0] * (1 - fx) + x[..., y0, :][..., x1] * fx
    bot = x[..., y1, :][..., x0] * (1 - fx) + x[..., y1, :][..., x1] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]


def gen_upsample_bilinear():
    cases = [((1, 2, 3, 4), 2.0, 2.0), ((2, 3, 5, 3), 1.5, 2.5), ((3, 4, 4), 3.0, 1.0), ((1, 1, 4, 6), 0.5, 0.75)]
    for idx, (shape, sh, sw) in enumerate(cases):
        for dt, tag in ((f32, "f32"), (f16, "f16")):
            for ac, hp, mode in ((False, None, "default"), (True, None, "ac"), (False, True, "hp"),
                                 (False, False, "asym")):
                x = rnd(shape, dt, -2, 2)
                ho, wo = int(np.floor(shape[-2] * sh)), int(np.floor(shape[-1] * sw))
                ref = np_bilinear(x, ho, wo, ac, (not ac) if hp is None else hp)
                if mode in ("default", "hp", "ac"):
                    xt = t64(x) if len(shape) == 4 else t64(x)[None]
                    tr = F.interpolate(xt, size=(ho, wo), mode="bilinear", align_corners=ac).numpy()
                    tr = tr if len(shape) == 4 else tr[0]
                    assert np.allclose(tr, ref, atol=1e-12), (shape, mode)
                args = dict(x=x, scale_factor_height=np.array(sh, dtype=f32),
                            scale_factor_width=np.array(sw, dtype=f32))
                if mode != "default":
                    args["align_corners"] = np.array(ac)
                if hp is not None:
                    args["half_pixel_centers"] = np.array(hp)
                case("upsample_bilinear", f"upbil_{idx}_{mode}_{tag}", ref.astype(dt), **args)
    # integer scale factors
    x = rnd((1, 2, 2, 3))
    case("upsample_bilinear", "upbil_int_scale", np_bilinear(x, 6, 6, False, True).astype(f32), x=x,
         scale_factor_height=np.array(3, dtype=i32), scale_factor_width=np.array(2, dtype=i32))


# ------------------------------------------------------------------ l2_pool

def np_l2_pool(x, k, s, pb, pa, out):
    x = d(x)
    S = len(k)
    res = np.zeros(x.shape[:2] + tuple(out))
    for o in np.ndindex(*out):
        sl = []
        for a in range(S):
            st = o[a] * s[a] - pb[a]
            sl.append(slice(max(st, 0), min(st + k[a], x.shape[2 + a])))
        res[(slice(None), slice(None)) + tuple(o)] = np.sqrt((x[(slice(None), slice(None)) + tuple(sl)] ** 2)
                                                             .reshape(x.shape[0], x.shape[1], -1).sum(-1))
    return res


def gen_l2_pool():
    for dt, tag in ((f32, "f32"), (f16, "f16")):
        # valid, 2-D, checked against torch lp_pool2d
        x = rnd((2, 3, 6, 7), dt, -2, 2)
        ref = np_l2_pool(x, [2, 3], [2, 2], [0, 0], [0, 0], [3, 3])
        tr = F.lp_pool2d(t64(x), 2, (2, 3), stride=(2, 2)).numpy()
        assert np.allclose(tr, ref, atol=1e-12)
        case("l2_pool", f"l2_valid2d_{tag}", ref.astype(dt), x=x, kernel_sizes=np.array([2, 3], dtype=i32),
             strides=np.array([2, 2], dtype=i32), pad_type="valid")
        # 1-D, checked against lp_pool1d
        x = rnd((1, 2, 9), dt, -2, 2)
        ref = np_l2_pool(x, [3], [3], [0], [0], [3])
        assert np.allclose(F.lp_pool1d(t64(x), 2, 3, stride=3).numpy(), ref, atol=1e-12)
        case("l2_pool", f"l2_valid1d_{tag}", ref.astype(dt), x=x, kernel_sizes=np.array([3], dtype=i32),
             strides=np.array([3], dtype=i32), pad_type="valid")
        # same padding (total 2 on H: 1 before, 1 after; W: 7 -> ceil(7/2)=4, total 1: 0 before, 1 after)
        x = rnd((1, 2, 5, 7), dt, -2, 2)
        ref = np_l2_pool(x, [3, 2], [1, 2], [1, 0], [1, 1], [5, 4])
        case("l2_pool", f"l2_same_{tag}", ref.astype(dt), x=x, kernel_sizes=np.array([3, 2], dtype=i32),
             strides=np.array([1, 2], dtype=i32), pad_type="same")
        # custom padding + ceil_mode: H 5 + 1, k 2, s 2 -> 3; W 6, k 3, s 2 -> 3 (2 without ceil_mode)
        x = rnd((2, 1, 5, 6), dt, -2, 2)
        ref = np_l2_pool(x, [2, 3], [2, 2], [1, 0], [0, 0], [3, 3])
        case("l2_pool", f"l2_custom_ceil_{tag}", ref.astype(dt), x=x, kernel_sizes=np.array([2, 3], dtype=i32),
             strides=np.array([2, 2], dtype=i32), pad_type="custom", pad=np.array([1, 0, 0, 0], dtype=i32),
             ceil_mode=np.array(True))
    # 3-D valid
    x = rnd((1, 2, 4, 4, 4))
    case("l2_pool", "l2_valid3d_f32", np_l2_pool(x, [2, 2, 2], [2, 2, 2], [0] * 3, [0] * 3, [2, 2, 2]).astype(f32),
         x=x, kernel_sizes=np.array([2, 2, 2], dtype=i32), strides=np.array([2, 2, 2], dtype=i32), pad_type="valid")


# ---------------------------------------------------------- sliding_windows

def gen_sliding_windows():
    cases = [((10,), 0, 3, 1), ((2, 9, 3), 1, 4, 2), ((4, 5, 6), -1, 2, 3), ((7, 2), 0, 7, 1), ((3, 8), 1, 3, 5)]
    for idx, (shape, axis, size, stride) in enumerate(cases):
        for dt, tag in ((f32, "f32"), (f16, "f16"), (i32, "i32")):
            x = (rnd(shape, f32, -10, 10)).astype(dt)
            ax = axis % len(shape)
            ref = torch.from_numpy(x.astype(np.float64)).unfold(ax, size, stride)  # windows at ax, size last
            ref = torch.movedim(ref, -1, ax + 1).numpy().astype(dt)
            args = dict(x=x, axis=np.array(axis, dtype=i32), size=np.array(size, dtype=i32))
            if stride != 1 or idx % 2:
                args["stride"] = np.array(stride, dtype=i32)
            case("sliding_windows", f"sw_{idx}_{tag}", ref, **args)


GENS = [gen_lstm, gen_gru, gen_rnn, gen_einsum, gen_upsample_bilinear, gen_l2_pool, gen_sliding_windows]


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for g in GENS:
        g()
    with open(os.path.join(OUT, "MANIFEST"), "w") as f:
        f.write("\n".join(MANIFEST) + "\n")
    print(f"{len(MANIFEST)} cases in {OUT}")


if __name__ == "__main__":
    main()
