"""Whether PyTorch's float32 `randn` is its float64 stream rounded: the evidence behind TorchGenerator's scope.

`TorchGenerator` (Sources/Tensors/TorchRandom.swift) reproduces `torch.randn(..., dtype=torch.float64)`. This
prints, for a few sizes n, the largest |difference| between `torch.randn(n, dtype=torch.float32)` and
`torch.randn(n, dtype=torch.float64)` after the same `torch.manual_seed(0)`: below 16 values float32 is the
float64 stream rounded (differences of float32's rounding); from 16 on it is another stream (a different path
in ATen, not investigated here), which TorchGenerator does not reproduce. Needs torch.

    /work/venv-torch/bin/python Fixtures/backends/torch_randn_float32.py
"""
import torch

for n in [8, 15, 16, 100]:
    torch.manual_seed(0)
    a = torch.randn(n, dtype=torch.float32)
    torch.manual_seed(0)
    b = torch.randn(n, dtype=torch.float64)
    d = (a.double() - b).abs()
    print(f"n = {n:3d}: float32 against float64, worst |difference| {d.max().item():.3g}, {int((d > 1e-6).sum())} of {n} beyond 1e-6")
print(f"torch {torch.__version__}")
