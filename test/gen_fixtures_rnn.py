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


GENS = [gen_lstm, gen_gru, gen_rnn]


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
