"""Checks that `ddpm sample --rng torch --seed S --h5 FILE` started from PyTorch's x_T for torch.manual_seed(S).

A PyTorch sampling loop in the command's order: batches of at most 32 images; per batch one
torch.randn(n, C, H, W, dtype=torch.float64) for x_T, then one torch.randn of the same shape per step that
draws noise (every step of an ancestral chain, also the last; none for DDIM with eta = 0). Prints, per batch,
the worst |difference| against the file's '/x_T' (it should be 0: bit for bit). Needs torch, numpy, h5py
in a virtual environment of your own; `swift test` never runs it.

    python torch_x_T.py FILE.h5 --seed 0 --steps-with-noise 10
"""
import argparse

import h5py
import numpy as np
import torch

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("file")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps-with-noise", type=int, required=True, help="noise draws per batch after x_T (T for the full ancestral chain, 0 for DDIM eta = 0)")
p.add_argument("--chunk", type=int, default=32)
a = p.parse_args()
with h5py.File(a.file, "r") as f:
    stored = np.asarray(f["x_T"])
count, shape = stored.shape[0], stored.shape[1:]
torch.manual_seed(a.seed)
worst, start = 0.0, 0
while start < count:
    n = min(a.chunk, count - start)
    x = torch.randn((n, *shape), dtype=torch.float64).numpy()
    for _ in range(a.steps_with_noise):
        torch.randn((n, *shape), dtype=torch.float64)
    d = np.abs(x - stored[start:start + n]).max()
    bits = int((x.view(np.uint64) != stored[start:start + n].view(np.uint64)).sum())
    print(f"batch at {start}: x_T {list(x.shape)}, worst |difference| {d}, {bits} of {x.size} values differ in any bit")
    worst = max(worst, d)
    start += n
print(f"torch {torch.__version__}, seed {a.seed}: {count} samples, worst |difference| {worst}")
