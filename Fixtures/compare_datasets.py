"""Checks that regenerating the fixtures changed no dataset: compares every dataset and attribute of each
fixture file in the working tree with the version committed at git HEAD. Exit status 1 on any difference.

Run: python3 Fixtures/compare_datasets.py
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ["h5py-sample.h5", "diffusion.h5", "unet.h5", "objectives.h5", "samplers.h5", "golden-tiers.h5", "guidance.h5"]


def items(f):
    out = {}
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out["D " + name] = obj[()]
        for k, v in obj.attrs.items():
            out[f"A {name}@{k}"] = v
    visit("/", f)
    f.visititems(visit)
    return out


def same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and (np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else np.array_equal(a, b))
    return a == b


bad = 0
for name in FILES:
    committed = subprocess.run(["git", "show", f"HEAD:Fixtures/{name}"], cwd=HERE, capture_output=True).stdout
    with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
        tmp.write(committed); tmp.flush()
        old, new = items(h5py.File(tmp.name, "r")), items(h5py.File(os.path.join(HERE, name), "r"))
    diff = [k for k in sorted(set(old) | set(new)) if k not in old or k not in new or not same(old[k], new[k])]
    print(f"{name}: {len(new)} datasets and attributes, {len(diff)} differ" + (f": {diff[:5]}" if diff else ""))
    bad += len(diff)
sys.exit(1 if bad else 0)
