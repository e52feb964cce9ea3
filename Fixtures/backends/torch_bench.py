"""PyTorch float64 timing of the demo preset (535,265 parameters, 1×16×16) or the default network, for `ddpm bench`.

Not part of the project (torch is never a dependency; `swift test` never runs it). Builds the U-Net with Fixtures/backends/torch_round_trip.py's
module (the golden-file port), asserts its parameter count, and prints the minimum over --runs of
  forward (torch.no_grad), forward+backward (F.mse_loss(net(x,t), noise).backward()),
  training step (zero_grad + forward + backward + torch.optim.Adam step).
"""
import argparse, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # torch_round_trip.py beside this file
import torch
import torch.nn.functional as F
from torch_round_trip import UNet

p = argparse.ArgumentParser()
p.add_argument("--runs", type=int, default=5)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--preset", default="demo")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
if a.preset == "demo":
    cfg = dict(base_channels=32, channel_mults=[1, 2], num_res_blocks=1, attention_resolutions=[8], image_size=16,
               time_emb_dim=64, channels=1, norm_groups=32, output_activation="identity")
    expected = 535265
else:
    cfg = dict(base_channels=128, channel_mults=[1, 2, 2, 2], num_res_blocks=2, attention_resolutions=[16], image_size=32,
               time_emb_dim=128, channels=3, norm_groups=32, output_activation="identity")
    expected = 20912259
net = UNet(cfg).double()
count = sum(p.numel() for p in net.parameters())
assert count == expected, count
g = torch.Generator().manual_seed(0)
n, c, s = a.batch, cfg["channels"], cfg["image_size"]
x = torch.randn(n, c, s, s, generator=g, dtype=torch.float64)
noise = torch.randn(n, c, s, s, generator=g, dtype=torch.float64)
t = torch.randint(0, 1000, (n,), generator=g)
opt = torch.optim.Adam(net.parameters(), lr=2e-4)


def fwd():
    with torch.no_grad():
        net(x, t)


def fwdbwd():
    net.zero_grad(set_to_none=True)
    F.mse_loss(net(x, t), noise).backward()


def step():
    opt.zero_grad(set_to_none=True)
    F.mse_loss(net(x, t), noise).backward()
    opt.step()


def best(f):
    f()
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter(); f(); times.append(time.perf_counter() - t0)
    return min(times)


a_ = torch.randn(1024, 1024, dtype=torch.float64); b_ = torch.randn(1024, 1024, dtype=torch.float64)
mm = best(lambda: a_ @ b_)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")
print(f"matmul 1024^3 float64: {2 * 1024**3 / mm / 1e9:.2f} GFLOP/s")
print(f"params {count} batch {n}: forward {best(fwd):.3f} s; forward+backward {best(fwdbwd):.3f} s; training step (Adam) {best(step):.3f} s")
# Usage (a virtual environment of your own):
#   python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch numpy h5py
#   /tmp/venv-torch/bin/python Fixtures/backends/torch_bench.py --runs 5              # demo preset, batch 32
#   /tmp/venv-torch/bin/python Fixtures/backends/torch_bench.py --preset default --batch 8
# Compare with: .build/release/ddpm bench --preset demo --batches 32 --runs 10 --gemm-size 1024, alternating.
