#!/usr/bin/env python3
"""Generates the Core ML package fixtures of test/coreml/data (committed; not
run at test time).

Each model is a small PyTorch module converted by coremltools into an ML
Program package NAME.mlpackage, with NAME.<input>.npy inputs and
NAME.<output>.npy PyTorch reference outputs (fp32), plus data/MANIFEST (one
line per model: name, tolerance, inputs, outputs) that the tests read.

Run:  test/coreml/gen_packages.py           (creates a venv in
      build/venv-coreml unless MILC_VENV names one with torch, numpy and
      coremltools; e.g. MILC_VENV=/work/venv)
      test/coreml/gen_packages.py --interop BUILD_DIR
                                      (`make interop`: extra models in
                                      BUILD_DIR/interop, the tools of
                                      BUILD_DIR, a table on stdout)

Compressed weights are chosen to be exactly representable (16 distinct fp16
values for 4-bit palettisation; multiples of 1/64 up to 127/64 for int8
linear quantisation), so PyTorch on the same weights is an exact reference.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def ensure_venv():
    """Re-executes this script inside a venv that has the packages."""
    try:
        import coremltools  # noqa: F401
        import numpy  # noqa: F401
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.environ.get("MILC_VENV") or os.path.join(ROOT, "build", "venv-coreml")
    py = os.path.join(venv, "bin", "python")
    if os.environ.get("MILC_GEN_IN_VENV"):
        sys.exit("gen_packages.py: %s lacks torch, numpy or coremltools" % venv)
    if not os.path.exists(py):
        print("creating venv", venv, file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "numpy", "torch", "coremltools"])
    env = dict(os.environ, MILC_GEN_IN_VENV="1")
    os.execve(py, [py] + sys.argv, env)


ensure_venv()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import coremltools as ct  # noqa: E402

torch.manual_seed(0)
np.random.seed(0)


class MLP(torch.nn.Module):
    def __init__(self, d_in=16, d_hid=32, d_out=8):
        super().__init__()
        self.l1 = torch.nn.Linear(d_in, d_hid)
        self.l2 = torch.nn.Linear(d_hid, d_out)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 4, 3, stride=2)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv1(x)))
        y = torch.nn.functional.max_pool2d(y, 2)
        y = self.conv2(y)
        return torch.nn.functional.avg_pool2d(y, 1) + 0.5


class Block(torch.nn.Module):
    """Pre-norm transformer block: single-head-per-split attention + GELU MLP."""

    def __init__(self, d=32, heads=2, seq=8):
        super().__init__()
        self.h, self.s, self.d = heads, seq, d  # fixed sizes: tracing x.shape trips coremltools
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc1 = torch.nn.Linear(d, 2 * d)
        self.fc2 = torch.nn.Linear(2 * d, d)

    def forward(self, x):
        b, s, d = 1, self.s, self.d
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        hd = d // self.h
        q = q.reshape(b, s, self.h, hd).transpose(1, 2)
        k = k.reshape(b, s, self.h, hd).transpose(1, 2)
        v = v.reshape(b, s, self.h, hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


def randomise_bn(m):
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m


def convert(model, example, inputs, precision, target=None, outputs=None):
    traced = torch.jit.trace(model.eval(), example)
    kw = {}
    if target is not None:
        kw["minimum_deployment_target"] = target
    return ct.convert(traced, inputs=inputs, outputs=outputs, convert_to="mlprogram",
                      compute_precision=precision, **kw)


def save(outdir, name, mlmodel, model, feeds, tol, manifest):
    """Saves the package, the inputs and PyTorch's outputs (named after the
    Core ML outputs)."""
    path = os.path.join(outdir, name + ".mlpackage")
    mlmodel.save(path)
    spec = mlmodel.get_spec()
    in_names = [i.name for i in spec.description.input]
    out_names = [o.name for o in spec.description.output]
    f16 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT16
    for i in spec.description.input:  # fp16 inputs (iOS16+ fp16 models): the reference sees the rounded values
        if i.type.multiArrayType.dataType == f16:
            feeds[i.name] = feeds[i.name].astype(np.float16)
    with torch.no_grad():
        ref = model.eval()(*[torch.from_numpy(feeds[n].astype(np.float32)) for n in in_names])
    if not isinstance(ref, (tuple, list)):
        ref = [ref]
    for n in in_names:
        np.save(os.path.join(outdir, "%s.%s.npy" % (name, n)), feeds[n])
    for n, r in zip(out_names, ref):
        np.save(os.path.join(outdir, "%s.%s.npy" % (name, n)), r.numpy().astype(np.float32))
    manifest.append("%s %g %s %s" % (name, tol, ",".join(in_names), ",".join(out_names)))
    print("wrote", path, file=sys.stderr)


def exact_palette(lin, levels=16):
    """Weights drawn from `levels` fp16-exact values: 4-bit palettisation is lossless."""
    vals = (np.arange(levels) - levels // 2) / 16.0
    w = np.random.choice(vals, size=lin.weight.shape).astype(np.float32)
    w.flat[:levels] = vals  # every level present
    lin.weight.data = torch.from_numpy(w)


def exact_int8(lin):
    """Weights k/64, k in [-127, 127] with 127 present per row: symmetric
    per-channel int8 quantisation (scale 1/64) is lossless."""
    k = np.random.randint(-127, 128, size=lin.weight.shape)
    k[:, 0] = 127
    lin.weight.data = torch.from_numpy((k / 64.0).astype(np.float32))


def fixtures(outdir):
    os.makedirs(outdir, exist_ok=True)
    man = []
    fp32, fp16 = ct.precision.FLOAT32, ct.precision.FLOAT16
    x_mlp = np.random.uniform(-1, 1, (2, 16)).astype(np.float32)
    x_cnn = np.random.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    x_tr = np.random.uniform(-1, 1, (1, 8, 32)).astype(np.float32)

    mlp, cnn, blk = MLP(), randomise_bn(CNN()), Block()
    for prec, suffix, tol in ((fp32, "", 1e-4), (fp16, "_fp16", 3e-2)):
        ml = convert(mlp, torch.from_numpy(x_mlp), [ct.TensorType(name="x", shape=x_mlp.shape)], prec)
        save(outdir, "mlp" + suffix, ml, mlp, {"x": x_mlp}, tol, man)
        ml = convert(cnn, torch.from_numpy(x_cnn), [ct.TensorType(name="image", shape=x_cnn.shape)], prec)
        save(outdir, "cnn" + suffix, ml, cnn, {"image": x_cnn}, tol, man)
        ml = convert(blk, torch.from_numpy(x_tr), [ct.TensorType(name="tokens", shape=x_tr.shape)], prec)
        save(outdir, "transformer" + suffix, ml, blk, {"tokens": x_tr}, tol * 2, man)

    # flexible shapes: the batch dim as a RangeDim; enumerated shapes
    x3 = np.random.uniform(-1, 1, (3, 16)).astype(np.float32)
    ml = convert(mlp, torch.from_numpy(x_mlp),
                 [ct.TensorType(name="x", shape=(ct.RangeDim(1, 8, default=2), 16))], fp32)
    save(outdir, "mlp_range", ml, mlp, {"x": x3}, 1e-4, man)
    ml = convert(mlp, torch.from_numpy(x_mlp),
                 [ct.TensorType(name="x", shape=ct.EnumeratedShapes(shapes=[(1, 16), (3, 16)], default=(1, 16)))],
                 fp32)
    save(outdir, "mlp_enum", ml, mlp, {"x": x3}, 1e-4, man)

    # compressed weights (coremltools.optimize): constexpr ops
    import coremltools.optimize.coreml as cto
    big = MLP(64, 64, 16)
    exact_palette(big.l1)
    exact_palette(big.l2)
    x_big = np.random.uniform(-1, 1, (2, 64)).astype(np.float32)
    for target, tag in ((ct.target.iOS16, "ios16"), (ct.target.iOS18, "ios18")):
        ml = convert(big, torch.from_numpy(x_big), [ct.TensorType(name="x", shape=x_big.shape)], fp16, target)
        cfg = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="unique", weight_threshold=512))
        save(outdir, "mlp_palettized_" + tag, cto.palettize_weights(ml, cfg), big, {"x": x_big}, 3e-2, man)
    q = MLP(64, 64, 16)
    exact_int8(q.l1)
    exact_int8(q.l2)
    for target, tag in ((ct.target.iOS16, "ios16"), (ct.target.iOS18, "ios18")):
        ml = convert(q, torch.from_numpy(x_big), [ct.TensorType(name="x", shape=x_big.shape)], fp32, target)
        cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=512))
        save(outdir, "mlp_int8_" + tag, cto.linear_quantize_weights(ml, cfg), q, {"x": x_big}, 1e-3, man)

    multifunction(outdir, man, mlp, x_mlp)
    with open(os.path.join(outdir, "MANIFEST"), "w") as f:
        f.write("# name tolerance inputs outputs (written by gen_packages.py)\n")
        f.write("\n".join(man) + "\n")


def multifunction(outdir, man, mlp, x_mlp):
    """Two functions (main = the MLP, 'half' = the MLP of x / 2) in one package."""
    import shutil
    import tempfile
    from coremltools.models.utils import MultiFunctionDescriptor, save_multifunction

    class Half(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x * 0.5)

    tmp = tempfile.mkdtemp()
    try:
        a = convert(mlp, torch.from_numpy(x_mlp), [ct.TensorType(name="x", shape=x_mlp.shape)],
                    ct.precision.FLOAT32, ct.target.iOS18, [ct.TensorType(name="y")])
        b = convert(Half(mlp), torch.from_numpy(x_mlp), [ct.TensorType(name="x", shape=x_mlp.shape)],
                    ct.precision.FLOAT32, ct.target.iOS18, [ct.TensorType(name="y")])
        a.save(os.path.join(tmp, "a.mlpackage"))
        b.save(os.path.join(tmp, "b.mlpackage"))
        desc = MultiFunctionDescriptor()
        desc.add_function(os.path.join(tmp, "a.mlpackage"), "main", "main")
        desc.add_function(os.path.join(tmp, "b.mlpackage"), "main", "half")
        desc.default_function_name = "main"
        path = os.path.join(outdir, "multifunction.mlpackage")
        if os.path.exists(path):
            shutil.rmtree(path)
        save_multifunction(desc, path)
    finally:
        shutil.rmtree(tmp)
    with torch.no_grad():
        np.save(os.path.join(outdir, "multifunction.x.npy"), x_mlp)
        np.save(os.path.join(outdir, "multifunction.y.npy"), mlp(torch.from_numpy(x_mlp)).numpy())
        np.save(os.path.join(outdir, "multifunction.half.y.npy"), mlp(torch.from_numpy(x_mlp) * 0.5).numpy())
    man.append("multifunction 1e-4 x y")
    print("wrote", path, file=sys.stderr)


def interop(outdir):
    """Extra models for `make interop` (not committed)."""
    os.makedirs(outdir, exist_ok=True)
    man = []

    class Convs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv1d(4, 8, 5, padding=2)
            self.c2 = torch.nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)

        def forward(self, x):
            return torch.tanh(self.c2(torch.sigmoid(self.c1(x))))

    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(24, 48)
            self.b = torch.nn.Linear(24, 48)
            self.o = torch.nn.Linear(48, 24)
            self.n = torch.nn.LayerNorm(24)

        def forward(self, x):
            h = torch.nn.functional.silu(self.a(x)) * self.b(x)
            return self.n(self.o(h) + x).mean(dim=-1, keepdim=True) + self.o(h)

    class Deep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.Sequential(Block(48, 4, 12), Block(48, 4, 12))

        def forward(self, x):
            return self.blocks(x)

    cases = [
        ("convs", Convs(), {"x": (1, 4, 32)}, 1e-4, ct.precision.FLOAT32),
        ("gated", Gated(), {"x": (3, 24)}, 1e-4, ct.precision.FLOAT32),
        ("gated_fp16", Gated(), {"x": (3, 24)}, 3e-2, ct.precision.FLOAT16),
        ("deep", Deep(), {"x": (1, 12, 48)}, 2e-4, ct.precision.FLOAT32),
        ("deep_fp16", Deep(), {"x": (1, 12, 48)}, 6e-2, ct.precision.FLOAT16),
        ("cnn_big", randomise_bn(CNN()), {"x": (1, 3, 32, 32)}, 1e-4, ct.precision.FLOAT32),
    ]
    for name, model, shapes, tol, prec in cases:
        feeds = {k: np.random.uniform(-1, 1, s).astype(np.float32) for k, s in shapes.items()}
        ex = [torch.from_numpy(v) for v in feeds.values()]
        ml = convert(model, ex[0] if len(ex) == 1 else tuple(ex),
                     [ct.TensorType(name=k, shape=s) for k, s in shapes.items()], prec)
        save(outdir, name, ml, model, feeds, tol, man)
    with open(os.path.join(outdir, "MANIFEST"), "w") as f:
        f.write("\n".join(man) + "\n")


def read_manifest(d):
    rows = []
    for line in open(os.path.join(d, "MANIFEST")):
        if line.strip() and not line.startswith("#"):
            name, tol, ins, outs = line.split()
            rows.append((d, name, float(tol), ins.split(","), outs.split(",")))
    return rows


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def coreml_load(path):
    """coremltools' own reading of a package: the spec, then its MIL program."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
    m = ct.models.MLModel(path, skip_model_load=True)
    spec = m.get_spec()
    prog = milproto_load(spec, spec.specificationVersion, m.weights_dir)
    return sum(len(list(f.operations)) for f in prog.functions.values())


def interop_report(build):
    """`make interop`: extra models + the committed fixtures through mil-run
    (vs PyTorch) and milc (-O0 and -O2 --target=ane back to .mlpackage),
    milc's packages loaded by coremltools.  Prints a table; exit 1 on any
    failure."""
    out = os.path.join(build, "interop")
    interop(out)
    milc, milrun = os.path.join(build, "tools", "milc"), os.path.join(build, "tools", "mil-run")
    rows = read_manifest(out) + read_manifest(os.path.join(HERE, "data"))
    hdr = "| model | mil-run vs PyTorch (max err / max ref) | -O0 package: coremltools ops | -O2 --target=ane package: coremltools ops | its mil-run vs PyTorch |"
    print(hdr)
    print("|" + "---|" * 5)
    bad = 0
    for d, name, tol, ins, outs in rows:
        pkg = os.path.join(d, name + ".mlpackage")
        feeds = sum([["-i", "%s=%s" % (i, os.path.join(d, "%s.%s.npy" % (name, i)))] for i in ins], [])

        def check(model, tag):
            od = os.path.join(out, "run", name + tag)
            rc, msg = run([milrun] + feeds + ["-o", od, model])
            if rc:
                return None, msg.strip().splitlines()[-1]
            err, ref = 0.0, 1.0
            for o in outs:
                a = np.load(os.path.join(od, o + ".npy")).astype(np.float64)
                b = np.load(os.path.join(d, "%s.%s.npy" % (name, o))).astype(np.float64)
                err, ref = max(err, float(np.max(np.abs(a - b)))), max(ref, float(np.max(np.abs(b))))
            return err <= tol * ref, "%.2g / %.3g" % (err, ref)

        ok1, cell1 = check(pkg, "")
        cells = [cell1 + ("" if ok1 else " FAIL")]
        ok_all = bool(ok1)
        for flags, tag in ((["-O0"], "_O0"), (["-O2", "--target=ane"], "_O2")):
            mp = os.path.join(out, name + tag + ".mlpackage")
            rc, msg = run([milc] + flags + ["-o", mp, pkg])
            if rc:
                cells.append("milc failed: " + msg.strip().splitlines()[-1])
                ok_all = False
                continue
            try:
                cells.append("loads, %d ops" % coreml_load(mp))
            except Exception as ex:  # noqa: BLE001 -- report what coremltools said
                cells.append("coremltools: %s" % str(ex).splitlines()[0][:80])
                ok_all = False
            if tag == "_O2":
                ok2, cell2 = check(mp, tag)
                cells.append(cell2 + ("" if ok2 else " FAIL"))
                ok_all = ok_all and bool(ok2)
        bad += not ok_all
        print("| %s | %s |" % (name, " | ".join(cells)))
    print("\n%d of %d models passed every column" % (len(rows) - bad, len(rows)))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--interop":
        sys.exit(interop_report(sys.argv[2]))
    fixtures(os.path.join(HERE, "data"))
