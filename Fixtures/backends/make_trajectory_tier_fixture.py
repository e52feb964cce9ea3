"""The fixture of the trajectory tiers: a small golden file whose trajectories an honest float32 port computed,
and the same chains with two planted per-step sampler bugs.

Independent of the Swift code: the network is `torch_round_trip.py`'s U-Net (state-dict names of the schema,
PyTorch's default initialisation under torch.manual_seed(0)), x_T and the per-step noise are numpy draws, and
the chains are `torch_trajectories.py`'s (Ho et al. Algorithm 2; improved-diffusion's "ddim10" spacing; DDIM
eq. 12 and 16 with ε re-derived from the clipped x̂_0). Writes Fixtures/golden-trajectory-tiers.h5
(schema `ddpm-golden` version 3, Notes/09):

  /config, /weights/<key>                          a micro network: 1 channel, 8×8, base 8, multipliers [1, 2],
                                                   4 norm groups, attention at 4×4; T = 20, linear β, clipped to [0, 1]
  /trajectories/<name>/{x_T, noise, draws_noise, timesteps, x, pred_x0}
                                                   ancestral_full, ancestral_10, ddim_eta0_10, ddim_eta0.5_10:
                                                   x and pred_x0 from the honest float32 run (stored as float64)
  /variants/<plant>/<name>/{x, pred_x0}            the same run with a planted bug (torch_trajectories.PLANTS);
                                                   attribute first_wrong_step: the first step whose float32
                                                   values differ from the honest run's at all
  /float64_run/<name>/{x, pred_x0}                 this script's float64 run (the honest run's reference)

The sampler descriptions are the schema's words for these four chains. Needs torch, numpy, h5py:

    /work/venv-torch/bin/python Fixtures/backends/make_trajectory_tier_fixture.py
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_round_trip as rt  # noqa: E402
import torch_trajectories as tj  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden-trajectory-tiers.h5")
CFG = dict(image_size=8, channels=1, base_channels=8, num_res_blocks=1, time_emb_dim=16, channel_mults=[1, 2],
           attention_resolutions=[4], norm_groups=4, dropout=0.0, output_activation="identity", timesteps=20,
           beta_schedule="linear", beta_start=1e-4, beta_end=0.02, clip_denoised=1, data_min=0.0, data_max=1.0)
SAMPLERS = {"ancestral_full": "ancestral, full chain", "ancestral_10": "ancestral, 10 steps",
            "ddim_eta0_10": "ddim, 10 steps, η = 0.0, ε rederive", "ddim_eta0.5_10": "ddim, 10 steps, η = 0.5, ε rederive"}
N = 2


def main():
    torch.manual_seed(0)
    net64 = rt.UNet(CFG).to(torch.float64).eval()
    net32 = rt.UNet(CFG).to(torch.float64)
    net32.load_state_dict(net64.state_dict())
    net32 = net32.to(torch.float32).eval()
    rng = np.random.default_rng(21)
    shape = (N, CFG["channels"], CFG["image_size"], CFG["image_size"])
    T = CFG["timesteps"]
    with h5py.File(OUT, "w") as f:
        f.attrs["format"] = "ddpm-golden"
        f.attrs["version"] = np.int64(3)
        c = f.create_group("config")
        for k, v in CFG.items():
            if isinstance(v, list):
                c.attrs[k] = np.array(v, dtype=np.int64)
            elif isinstance(v, str):
                c.attrs[k] = v
            elif isinstance(v, int):
                c.attrs[k] = np.int64(v)
            else:
                c.attrs[k] = np.float64(v)
        c.attrs["mean_type"], c.attrs["variance_type"], c.attrs["loss_type"] = "eps", "small", "simple"
        c.attrs["loss_weighting"], c.attrs["out_channels"] = "uniform", np.int64(1)
        for k, v in net64.state_dict().items():
            f.create_dataset("weights/" + k, data=v.numpy())
        tr = f.create_group("trajectories")
        tr.attrs["network_mode"] = "evaluation (dropout off)"
        for name, text in SAMPLERS.items():
            kind, kept, eta = tj.chain_of(name, T)
            s = len(kept)
            xT = rng.standard_normal(shape)
            draws = np.array([1] * s if kind == "ancestral" else ([0] * s if eta == 0 else [1] * (s - 1) + [0]), dtype=np.int64)
            noise = np.stack([rng.standard_normal(shape) if d else np.zeros(shape) for d in draws])
            g = tr.create_group(name)
            g.attrs["sampler"] = text
            g.attrs["steps"] = np.int64(s)
            g["x_T"], g["noise"], g["draws_noise"] = xT, noise, draws
            g["timesteps"] = np.array(kept[::-1], dtype=np.int64)
            x32, p32 = tj.run(net32, CFG, kind, kept, eta, xT, noise, torch.float32)
            x64, p64 = tj.run(net64, CFG, kind, kept, eta, xT, noise, torch.float64)
            g["x"], g["pred_x0"] = x32, p32
            f[f"float64_run/{name}/x"], f[f"float64_run/{name}/pred_x0"] = x64, p64
            ex = tj.relative(x32, x64)
            print(f"{name}: float32 against float64 first step {ex[0]:.3e}, largest {ex.max():.3e}, growth x {ex.max() / ex[0]:.3g}")
            for plant in tj.PLANTS:
                xb, pb = tj.run(net32, CFG, kind, kept, eta, xT, noise, torch.float32, plant)
                wrong = [k for k in range(s) if not (np.array_equal(xb[k], x32[k]) and np.array_equal(pb[k], p32[k]))]
                if not wrong:
                    continue   # the bug does not touch this chain (no noise reused by DDIM η = 0, no ᾱ_prev in ancestral)
                v = f.create_group(f"variants/{plant}/{name}")
                v["x"], v["pred_x0"] = xb, pb
                v.attrs["first_wrong_step"] = np.int64(wrong[0])
                print(f"  {plant}: first wrong at step {wrong[0]}")
        f.attrs["torch_version"] = str(torch.__version__)
    print(f"wrote {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
