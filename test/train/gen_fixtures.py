#!/usr/bin/env python3
"""Fixtures for test/train (mil-train's parity with PyTorch).

The model of examples/train/model.h, written in PyTorch (float64, so the
reference is exact to well below the fp32 tolerances):
  x = emb[tokens] + pos; per layer, pre-norm:
    x = x + wo(attn(rms(x) * attn_norm))     causal MHA, additive mask -65504
    x = x + w2(silu(w1(h)) * w3(h)),  h = rms(x) * ffn_norm
  loss = cross_entropy(wcls(rms(x) * final_norm), targets)    mean over tokens
  rms(x) = x * rsqrt(mean(x^2, -1) + 1e-5)
Weights are nn.Linear-shaped [out, in]; the flat parameter order is the
trainer's (model_params): emb, pos; per layer attn_norm wq wk wv wo ffn_norm w1 w3
w2; final_norm; wcls.  Training: AdamW (decay on matrices except emb), linear
warmup + cosine schedule, global-norm clipping (coef = clip / (norm + 1e-6)),
as examples/train/trainer.c.

Writes test/train/data/: params.npy (flat fp32 initial weights), grads.npy
(flat fp64 gradients of step 0), tokens.npy / targets.npy (int32
[STEPS + 1, B, S]; target = (7 token + 3) mod V, a mapping the model learns), losses.npy (fp64 [STEPS + 1]: the loss of batch i after
i AdamW steps).

Run: test/train/gen_fixtures.py   (needs torch and numpy: without them the script
re-runs itself under $MILC_VENV/bin/python, or creates a virtual environment in
build/fixture-venv and installs them from PyPI)
"""
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError:
    if os.environ.get("MILC_FIXTURE_REEXEC"):
        sys.exit("gen_fixtures.py: torch and numpy are not available")
    venv = os.environ.get("MILC_VENV") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                       "build", "fixture-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "torch", "numpy"])
    os.environ["MILC_FIXTURE_REEXEC"] = "1"
    os.execv(py, [py] + sys.argv)

V, D, L, NH, F, S, B = 256, 32, 2, 4, 64, 16, 2
STEPS = 20
LR, WARMUP, MIN_FRAC, B1, B2, EPS, WD, CLIP = 1e-2, 5, 0.1, 0.9, 0.95, 1e-8, 0.1, 0.5

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261207)


def shapes():
    out = [("emb", (V, D), False), ("pos", (S, D), False)]
    for l in range(L):
        for name, shp in [("attn_norm", (D,)), ("wq", (D, D)), ("wk", (D, D)), ("wv", (D, D)), ("wo", (D, D)),
                          ("ffn_norm", (D,)), ("w1", (F, D)), ("w3", (F, D)), ("w2", (D, F))]:
            out.append((f"l{l}.{name}", shp, len(shp) == 2))
    out += [("final_norm", (D,), False), ("wcls", (V, D), True)]
    return out


def init():
    ps = []
    for name, shp, _ in shapes():
        if len(shp) == 1:
            a = 1.0 + 0.1 * rng.standard_normal(shp)      # not all ones: norm gradients matter
        else:
            a = 0.02 * rng.standard_normal(shp) * (4 if name in ("emb", "pos") else 1)
        ps.append(a.astype(np.float32))
    return ps


def rms(x, g):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * g


mask = torch.triu(torch.full((S, S), -65504.0), 1)


def loss_fn(P, tok, tgt):
    it = iter(P)
    emb, pos = next(it), next(it)
    x = emb[tok] + pos
    hd = D // NH
    for _ in range(L):
        an, wq, wk, wv, wo, fn, w1, w3, w2 = (next(it) for _ in range(9))
        h = rms(x, an)
        q, k, v = ((h @ w.T).view(B, S, NH, hd).transpose(1, 2) for w in (wq, wk, wv))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1) @ v
        x = x + att.transpose(1, 2).reshape(B, S, D) @ wo.T
        h = rms(x, fn)
        x = x + (torch.nn.functional.silu(h @ w1.T) * (h @ w3.T)) @ w2.T
    fnorm, wcls = next(it), next(it)
    logits = rms(x, fnorm) @ wcls.T
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))


def lr_at(step):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    prog = min(1.0, (step - WARMUP) / max(1, STEPS - WARMUP))
    lo = LR * MIN_FRAC
    return lo + 0.5 * (LR - lo) * (1 + math.cos(math.pi * prog))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    os.makedirs(out, exist_ok=True)
    init_ps = init()
    tokens = rng.integers(0, V, size=(STEPS + 1, B, S), dtype=np.int32)
    targets = ((tokens * 7 + 3) % V).astype(np.int32)    # learnable: the loss falls
    P = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in init_ps]
    decay = [d for _, _, d in shapes()]
    opt = torch.optim.AdamW([{"params": [p for p, d in zip(P, decay) if d], "weight_decay": WD},
                             {"params": [p for p, d in zip(P, decay) if not d], "weight_decay": 0.0}],
                            lr=LR, betas=(B1, B2), eps=EPS)
    losses, grads0 = [], None
    for i in range(STEPS + 1):
        opt.zero_grad()
        loss = loss_fn(P, torch.tensor(tokens[i], dtype=torch.long), torch.tensor(targets[i], dtype=torch.long))
        losses.append(loss.item())
        if i == STEPS:
            break
        loss.backward()
        if i == 0:
            grads0 = np.concatenate([p.grad.numpy().ravel() for p in P])
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in P))
        if norm > CLIP:
            for p in P:
                p.grad.mul_(CLIP / (norm + 1e-6))
        for g in opt.param_groups:
            g["lr"] = lr_at(i)
        opt.step()
    np.save(os.path.join(out, "params.npy"), np.concatenate([p.ravel() for p in init_ps]).astype(np.float32))
    np.save(os.path.join(out, "grads.npy"), grads0)
    np.save(os.path.join(out, "tokens.npy"), tokens)
    np.save(os.path.join(out, "targets.npy"), targets)
    np.save(os.path.join(out, "losses.npy"), np.array(losses))
    print(f"losses: first {losses[0]:.6f}, after {STEPS} steps {losses[-1]:.6f}", file=sys.stderr)


if __name__ == "__main__":
    main()
