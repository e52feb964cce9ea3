"""Writes Fixtures/h5py-sample.h5: a small file written by h5py, read back by the Swift HDF5 tests.

It exercises what users' files contain: float64/float32/int64/uint8 datasets, a scalar dataset,
nested groups, and attributes of every kind, including h5py's variable-length UTF-8 strings and a
fixed-length byte string. Run: python3 Fixtures/make_h5py_sample.py
"""
import os
import h5py
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "h5py-sample.h5")

with h5py.File(path, "w", track_order=False) as f:
    f.attrs["title"] = "ddpm fixture — ünïcode"           # variable-length UTF-8 (h5py default)
    f.attrs["fixed"] = np.bytes_(b"fixed-len")             # fixed-length ASCII string
    f.attrs["count"] = np.int64(42)
    f.attrs["scale"] = np.float64(0.125)
    f.attrs["sizes"] = np.array([1, 2, 3], dtype=np.int64)
    f.attrs["small_int"] = np.int32(-7)                    # converted to int64 on read
    f.create_dataset("matrix", data=np.arange(6, dtype=np.float64).reshape(2, 3) / 4)
    f.create_dataset("single", data=np.array([0.5, -1.25, 3.0], dtype=np.float32))
    f.create_dataset("ints", data=np.array([[-3, 0], [5, 2**40]], dtype=np.int64))
    f.create_dataset("bytes", data=np.array([0, 127, 255], dtype=np.uint8))
    f.create_dataset("scalar", data=np.float64(2.5))
    g = f.create_group("group/nested")
    g.create_dataset("cube", data=np.arange(24, dtype=np.float64).reshape(2, 3, 4))
    g.attrs["note"] = "inner"
    f.create_dataset("text", data="not numbers")           # a string dataset, for wrong-class errors
print("wrote", path)
