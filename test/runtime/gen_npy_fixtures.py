#!/usr/bin/python3
"""Writes the .npy fixtures of test/runtime/test_npy.c with NumPy itself, so
the reader is checked against the reference writer (format versions 1.0, 2.0
and 3.0, both byte orders, Fortran order).  Run from the repository root:
    /usr/bin/python3 test/runtime/gen_npy_fixtures.py
The outputs are committed; the tests never run Python."""
import os
import numpy as np
from numpy.lib import format as fmt

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "npy")
os.makedirs(out, exist_ok=True)

base = np.arange(6).reshape(2, 3)
arrays = {
    "f2": (base * 0.5 - 1).astype(np.float16),
    "f4": (base * 0.25 - 0.5).astype(np.float32),
    "f8": (base * 0.125 + 1e-9).astype(np.float64),
    "i1": (base * 40 - 100).astype(np.int8),
    "i2": (base * 10000 - 30000).astype(np.int16),
    "i4": (base * 1000000 - 2000000).astype(np.int32),
    "i8": (base * 3000000000 - 6000000000).astype(np.int64),
    "u1": (base * 50).astype(np.uint8),
    "u2": (base * 13000).astype(np.uint16),
    "b1": (base % 2 == 1),
}
for name, a in arrays.items():
    np.save(os.path.join(out, name + ".npy"), a)

np.save(os.path.join(out, "scalar_f4.npy"), np.float32(3.5))
np.save(os.path.join(out, "empty_f4.npy"), np.zeros((0, 4), np.float32))
np.save(os.path.join(out, "rank1_i4.npy"), np.array([7, -8, 9], np.int32))
np.save(os.path.join(out, "be_f4.npy"), arrays["f4"].astype(">f4"))
np.save(os.path.join(out, "fortran_f4.npy"), np.asfortranarray(arrays["f4"]))
for ver in [(2, 0), (3, 0)]:
    with open(os.path.join(out, "v%d_f4.npy" % ver[0]), "wb") as f:
        fmt.write_array(f, arrays["f4"], version=ver)
np.save(os.path.join(out, "c8.npy"), np.zeros(2, np.complex64))
