"""Values PyTorch's CPU generator produced: torch.manual_seed(s), then torch.randn / torch.rand / torch.randint.

Unlike every other generator in Fixtures/, this one needs PyTorch (it records what PyTorch itself does, which
is the thing to be reproduced): run it in a virtual environment of your own, outside the repository,

    python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch numpy h5py
    /tmp/venv-torch/bin/python Fixtures/make_torch_rng_fixtures.py      # writes Fixtures/torch-rng.h5

The .h5 is committed, so `swift test` (Tests/TensorsTests/TorchRandomTests.swift) needs no PyTorch. The root
attributes record the torch, numpy and h5py versions that wrote it. Regenerating with the same PyTorch gives
byte-identical files (fixed seeds, no timestamps).

Layout: one group per stream, /streams/<name>, with attribute `seed` (the argument of torch.manual_seed);
its datasets (`seed` is decimal text) "00", "01", ... are successive calls on that one generator, in order, each with attributes
`op` (randn | rand | randint), `dtype` (float64 | float32 | int64), `shape`, and `high` for randint(0, high).
float32 results are stored as float32, int64 as int64, float64 as float64.
"""
import os

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "torch-rng.h5")

F64, F32 = torch.float64, torch.float32

# Each stream: (seed, [calls]); a call is (op, shape, dtype[, high]).
STREAMS = {
    # Every element count around the vectorised path's threshold (16) and its 16-blocks (17, 31, 33, 47:
    # the last 16 values recomputed from fresh uniforms).
    "sizes": (0, [("randn", (n,), F64) for n in (1, 2, 15, 16, 17, 31, 32, 33, 47, 100)]),
    # The scalar path caches r·sin θ: randn(3) leaves one cached, randn(20) neither uses nor clears it,
    # randn(1) returns it; a rand in between does not clear it either.
    "cache": (0, [("randn", (3,), F64), ("randn", (20,), F64), ("randn", (1,), F64), ("randn", (5,), F64),
                  ("rand", (4,), F64), ("randn", (15,), F64), ("randn", (1,), F64)]),
    # The shapes the samplers draw: x_T and two steps' z for `ddpm sample --count 16` on a 1×16×16 preset
    # (one randn of N×C×H×W each), a 3-channel batch, and a 2×2 image (fewer than 16 values: scalar path).
    "sampler-shapes": (0, [("randn", (16, 1, 16, 16), F64), ("randn", (16, 1, 16, 16), F64),
                           ("randn", (16, 1, 16, 16), F64), ("randn", (4, 3, 8, 8), F64),
                           ("randn", (1, 1, 2, 2), F64), ("randn", (2, 1, 2, 2), F64)]),
    # Seeding: manual_seed keeps the low 32 bits for the engine (2**32 + 5 gives seed 5's stream).
    "seed-42": (42, [("randn", (40,), F64), ("rand", (8,), F64)]),
    "seed-5": (5, [("randn", (40,), F64), ("rand", (8,), F64)]),
    "seed-2^32+5": (2**32 + 5, [("randn", (40,), F64), ("rand", (8,), F64)]),
    "seed-2^64-1": (2**64 - 1, [("randn", (40,), F64), ("rand", (8,), F64)]),
    # Uniforms (53 bits of a 64-bit draw) and integers (a 32-bit draw modulo the bound).
    "rand": (0, [("rand", (5,), F64), ("rand", (17,), F64), ("rand", (2, 3, 4), F64)]),
    "randint": (0, [("randint", (8,), torch.int64, 1000), ("randint", (5,), torch.int64, 10), ("rand", (3,), F64)]),
    # float32: randn of fewer than 16 values is the float64 draw rounded; from 16 on another stream
    # (one 32-bit word per uniform, a vector log/sin/cos); rand float32 takes 24 bits of one 32-bit word.
    "float32": (0, [("randn", (5,), F32), ("randn", (20,), F32), ("rand", (6,), F32)]),
}


def call(op, shape, dtype, high=None):
    if op == "randn":
        return torch.randn(shape, dtype=dtype)
    if op == "rand":
        return torch.rand(shape, dtype=dtype)
    if op == "randint":
        return torch.randint(0, high, shape, dtype=dtype)
    raise ValueError(op)


def main():
    torch.set_num_threads(1)
    with h5py.File(OUT, "w", libver=("v110", "v110"), track_order=True) as f:
        f.attrs["generator"] = "Fixtures/make_torch_rng_fixtures.py"
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["numpy_version"] = np.__version__
        f.attrs["h5py_version"] = h5py.__version__
        streams = f.create_group("streams", track_order=True)
        for name, (seed, calls) in STREAMS.items():
            g = streams.create_group(name, track_order=True)
            g.attrs["seed"] = str(seed)   # decimal text: 2**64 - 1 fits no signed attribute
            torch.manual_seed(seed)
            for k, c in enumerate(calls):
                op, shape, dtype = c[:3]
                high = c[3] if len(c) > 3 else None
                values = call(op, shape, dtype, high).numpy()
                d = g.create_dataset(f"{k:02d}", data=values, track_times=False)
                d.attrs["op"] = op
                d.attrs["dtype"] = str(dtype).replace("torch.", "")
                d.attrs["shape"] = np.array(shape, dtype=np.int64)
                if high is not None:
                    d.attrs["high"] = np.int64(high)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
