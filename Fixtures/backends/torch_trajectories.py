"""A backend's float32 (or other dtype) run of a golden file's stored trajectories, worked in PyTorch.

Reads a golden file written by `ddpm golden export --trajectories`, builds the network with
`torch_round_trip.py`'s U-Net and weights, reruns the ancestral chains (full and respaced) and DDIM
(η = 0 and 0.5) from the file's x_T and per-step noise in the chosen dtype, and writes a copy of the file
whose `/trajectories/<name>/x` and `pred_x0` are this run's (float64 on disk). Then

    ddpm golden check OUT.h5 --report OUT.md     # the per-step table is the error's growth along the chain

The σ-view solvers (euler, heun, dpm++2m, euler-ancestral) are not ported here; their stored states are
left as they were. Everything is written from Notes/09 (the trajectory schema), Ho et al. Algorithm 2,
improved-diffusion's space_timesteps ("ddimN") and DDIM eq. 12/16. Needs torch, numpy, h5py.

    python Fixtures/backends/torch_trajectories.py IN.h5 OUT.h5 --dtype float32
"""
import argparse
import os
import shutil
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_round_trip as rt  # noqa: E402


def chain_tables(ab_full, kept):
    """ᾱ at the kept timesteps, the respaced β' = 1 − ᾱ_{s_i}/ᾱ_{s_{i−1}} and the posterior tables from β'."""
    ab = ab_full[kept]
    ab_prev = np.append(1.0, ab[:-1])
    betas = 1 - ab / ab_prev
    return dict(ab=ab, ab_prev=ab_prev, sqrt_recip_ab=np.sqrt(1 / ab), sqrt_recipm1_ab=np.sqrt(1 / ab - 1),
                post_var=betas * (1 - ab_prev) / (1 - ab), coef1=betas * np.sqrt(ab_prev) / (1 - ab),
                coef2=(1 - ab_prev) * np.sqrt(1 - betas) / (1 - ab))


def ddim_kept(T, n):
    """improved-diffusion space_timesteps(T, "ddimN"): the smallest stride i with len(range(0, T, i)) == N."""
    for i in range(1, T):
        if len(range(0, T, i)) == n:
            return list(range(0, T, i))
    return list(range(T))


def run(net, cfg, kind, kept, eta, xT, noise, dtype):
    betas = np.linspace(cfg["beta_start"], cfg["beta_end"], cfg["timesteps"], dtype=np.float64)
    tb = {k: torch.from_numpy(v).to(dtype) for k, v in chain_tables(np.cumprod(1 - betas), np.array(kept)).items()}
    lo, hi = cfg["data_min"], cfg["data_max"]
    x = torch.from_numpy(xT).to(dtype)
    states, starts = [], []
    n = len(kept)
    for k in range(n):
        i = n - 1 - k
        t = torch.full((x.shape[0],), kept[i], dtype=torch.long)
        with torch.no_grad():
            eps = net(x, t)
        x0 = tb["sqrt_recip_ab"][i] * x - tb["sqrt_recipm1_ab"][i] * eps
        if cfg["clip_denoised"]:
            x0 = x0.clamp(lo, hi)
        z = torch.from_numpy(noise[k]).to(dtype)
        if kind == "ancestral":
            mean = tb["coef1"][i] * x0 + tb["coef2"][i] * x
            x = mean + (tb["post_var"][i].sqrt() * z if i > 0 else 0)
        else:
            ab, ap = tb["ab"][i], tb["ab_prev"][i]
            e = (x - ab.sqrt() * x0) / (1 - ab).sqrt()                          # ε re-derived from the clipped x̂_0
            sigma = eta * ((1 - ap) / (1 - ab)).sqrt() * (1 - ab / ap).sqrt()   # DDIM eq. 16
            x = ap.sqrt() * x0 + (1 - ap - sigma ** 2).clamp(min=0).sqrt() * e + sigma * z
        states.append(x.to(torch.float64).numpy())
        starts.append(x0.to(torch.float64).numpy())
    return np.stack(states), np.stack(starts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--dtype", default="float32", choices=list(rt.DTYPES))
    a = ap.parse_args()
    dtype = rt.DTYPES[a.dtype]
    shutil.copyfile(a.src, a.dst)
    with h5py.File(a.dst, "r+") as f:
        cfg = rt.read_config(f)
        if cfg["beta_schedule"] != "linear":
            sys.exit("this example implements the linear schedule only")
        for k in ["beta_start", "beta_end"]:
            cfg[k] = float(cfg[k])
        net = rt.UNet(cfg).to(torch.float64)
        state = {}
        f["weights"].visititems(lambda k, v: state.__setitem__(k.replace("/", "."), torch.from_numpy(np.asarray(v)))
                                if isinstance(v, h5py.Dataset) else None)
        net.load_state_dict(state, strict=True)
        net = net.to(dtype).eval()
        T = cfg["timesteps"]
        done = []
        for name, g in f["trajectories"].items():
            if name == "ancestral_full":
                kind, kept, eta = "ancestral", list(range(T)), 0.0
            elif name.startswith("ancestral_"):
                kind, kept, eta = "ancestral", ddim_kept(T, int(name.split("_")[1])), 0.0
            elif name.startswith("ddim_eta"):
                e, n = name[len("ddim_eta"):].split("_")
                kind, kept, eta = "ddim", ddim_kept(T, int(n)), float(e)
            else:
                continue
            xs, x0s = run(net, cfg, kind, kept, eta, np.asarray(g["x_T"]), np.asarray(g["noise"]), dtype)
            g["x"][...] = xs
            g["pred_x0"][...] = x0s
            done.append(name)
    print(f"wrote {a.dst}: {', '.join(done)} rerun in {a.dtype} (torch {torch.__version__}, {torch.get_num_threads()} threads); "
          "the solvers' trajectories are left as stored")


if __name__ == "__main__":
    main()
