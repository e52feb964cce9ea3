"""A backend's float32 (or other dtype) run of a golden file's stored trajectories, worked in PyTorch.

Reads a golden file written by `ddpm golden export --trajectories`, builds the network with
`torch_round_trip.py`'s U-Net and weights, reruns the ancestral chains (full and respaced) and DDIM
(η = 0 and 0.5) from the file's x_T and per-step noise in the chosen dtype, and writes a copy of the file
whose `/trajectories/<name>/x` and `pred_x0` are this run's (float64 on disk). Then

    ddpm golden check OUT.h5 --report OUT.md     # the per-step table is the error's growth along the chain

The σ-view solvers (euler, heun, dpm++2m, euler-ancestral) are not ported here; their stored states are
left as they were. Everything is written from Notes/09 (the trajectory schema), Ho et al. Algorithm 2,
improved-diffusion's space_timesteps ("ddimN") and DDIM eq. 12/16. Every table (DDIM's √(1 − ᾱ) and σ too) is
computed in float64 and rounded to the dtype once, as a backend's tables are. Needs torch, numpy, h5py.

    python Fixtures/backends/torch_trajectories.py IN.h5 OUT.h5 --dtype float32
    python Fixtures/backends/torch_trajectories.py IN.h5 BUG.h5 --plant noise-reused     # a per-step bug
    python Fixtures/backends/torch_trajectories.py IN.h5 --measure growth.json            # the chains' amplification

`--measure` runs each chain in the dtype and in float64 and appends, per trajectory, the normwise error
‖x_dtype − x_64‖/‖x_64‖ of every step's state and x̂_0 and their growth (largest over first) to a JSON file,
with the torch version: Fixtures/backends/trajectory-growth.json is three such runs (tiny preset, T = 20,
seeds 0, 1, 2), the measurement the trajectory tiers of `ddpm golden check` are derived from (Notes/09).
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


def ddim_tables(t, eta):
    """DDIM's per-step coefficients in float64 (rounded to the dtype once, as a backend's tables are: 1 − ᾱ_0 is
    0 in bfloat16 and float16 if formed there): √ᾱ, √(1 − ᾱ), σ (eq. 16), √ᾱ_prev and √(1 − ᾱ_prev − σ²)."""
    ab, ap = t["ab"], t["ab_prev"]
    sigma = eta * np.sqrt((1 - ap) / (1 - ab)) * np.sqrt(1 - ab / ap)
    return dict(sqrt_ab=np.sqrt(ab), sqrt_1mab=np.sqrt(1 - ab), sigma=sigma, sqrt_ap=np.sqrt(ap),
                dir=np.sqrt(np.maximum(1 - ap - sigma ** 2, 0)))


def ddim_kept(T, n):
    """improved-diffusion space_timesteps(T, "ddimN"): the smallest stride i with len(range(0, T, i)) == N."""
    for i in range(1, T):
        if len(range(0, T, i)) == n:
            return list(range(0, T, i))
    return list(range(T))


# --plant: a per-step bug a sampler port really makes, to see the check name the step where it first shows.
#   noise-reused       the z of step 0 is used at every step (drawn once outside the loop): first wrong at step 1
#   alpha-prev-final   DDIM's last step uses ᾱ_prev = ᾱ_0 instead of 1 (diffusers' set_alpha_to_one=False):
#                      first wrong at the last step
PLANTS = ["noise-reused", "alpha-prev-final"]


def run(net, cfg, kind, kept, eta, xT, noise, dtype, plant=None):
    betas = np.linspace(cfg["beta_start"], cfg["beta_end"], cfg["timesteps"], dtype=np.float64)
    ct = chain_tables(np.cumprod(1 - betas), np.array(kept))
    if plant == "alpha-prev-final" and kind == "ddim":
        ct["ab_prev"][0] = ct["ab"][0]
    ct.update(ddim_tables(ct, eta))
    tb = {k: torch.from_numpy(v).to(dtype) for k, v in ct.items()}
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
        z = torch.from_numpy(noise[0 if plant == "noise-reused" else k]).to(dtype)
        if kind == "ancestral":
            mean = tb["coef1"][i] * x0 + tb["coef2"][i] * x
            x = mean + (tb["post_var"][i].sqrt() * z if i > 0 else 0)
        else:
            e = (x - tb["sqrt_ab"][i] * x0) / tb["sqrt_1mab"][i]                  # ε re-derived from the clipped x̂_0
            x = tb["sqrt_ap"][i] * x0 + tb["dir"][i] * e + tb["sigma"][i] * z      # DDIM eq. 12, σ from eq. 16
        states.append(x.to(torch.float64).numpy())
        starts.append(x0.to(torch.float64).numpy())
    return np.stack(states), np.stack(starts)


def chain_of(name, T):
    """(kind, kept timesteps, η) of a stored trajectory name, or None for a chain this example does not port."""
    if name == "ancestral_full":
        return "ancestral", list(range(T)), 0.0
    if name.startswith("ancestral_"):
        return "ancestral", ddim_kept(T, int(name.split("_")[1])), 0.0
    if name.startswith("ddim_eta"):
        e, n = name[len("ddim_eta"):].split("_")
        return "ddim", ddim_kept(T, int(n)), float(e)
    return None


def load(f):
    """The file's configuration and its network (float64; weights loaded by state-dict name)."""
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
    return cfg, net.eval()


def relative(a, b):
    """‖a − b‖ / ‖b‖ per step (the first axis)."""
    d = (a - b).reshape(a.shape[0], -1)
    return np.linalg.norm(d, axis=1) / np.linalg.norm(b.reshape(b.shape[0], -1), axis=1)


def measure(src, dtype_name, plant=None):
    """Per trajectory: the normwise error of a `dtype_name` run against this script's float64 run, per step,
    and its growth (the largest over the first step's), for the states and for x̂_0."""
    import copy
    out = {}
    with h5py.File(src, "r") as f:
        cfg, net64 = load(f)
        net = copy.deepcopy(net64).to(DTYPES_T[dtype_name])
        for name, g in f["trajectories"].items():
            c = chain_of(name, cfg["timesteps"])
            if c is None:
                continue
            xT, noise = np.asarray(g["x_T"]), np.asarray(g["noise"])
            x64, p64 = run(net64, cfg, *c, xT, noise, torch.float64)
            xl, pl = run(net, cfg, *c, xT, noise, DTYPES_T[dtype_name], plant)
            ex, ep = relative(xl, x64), relative(pl, p64)
            out[name] = dict(steps=len(ex), state_errors=[float(v) for v in ex], pred_x0_errors=[float(v) for v in ep],
                             state_growth=float(ex.max() / ex[0]), pred_x0_growth=float(ep.max() / ep[0]))
    return cfg, out


DTYPES_T = rt.DTYPES


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst", nargs="?", help="the copy to write with this run's trajectories (omit with --measure)")
    ap.add_argument("--dtype", default="float32", choices=list(rt.DTYPES))
    ap.add_argument("--plant", choices=PLANTS + rt.PLANTS, help="plant one per-step sampler bug, or one of torch_round_trip.py's network bugs")
    ap.add_argument("--measure", metavar="JSON", help="append the growth of this dtype's error along each chain (against "
                    "this script's float64 run) to JSON, with the torch version and the file's configuration")
    a = ap.parse_args()
    dtype = rt.DTYPES[a.dtype]
    if a.plant in rt.PLANTS:
        rt.PLANT = a.plant   # a bug of the network itself (read by torch_round_trip's modules as they run)
    if a.measure:
        import json
        cfg, runs = measure(a.src, a.dtype, a.plant)
        record = dict(source=os.path.basename(a.src), dtype=a.dtype, torch=torch.__version__, threads=torch.get_num_threads(),
                      plant=a.plant, timesteps=cfg["timesteps"], base_channels=cfg["base_channels"],
                      channel_mults=cfg["channel_mults"], image_size=cfg["image_size"], trajectories=runs)
        data = json.load(open(a.measure)) if os.path.exists(a.measure) else dict(runs=[])
        data["runs"].append(record)
        with open(a.measure, "w") as f:
            json.dump(data, f, indent=1)
        for name, r in sorted(runs.items()):
            print(f"{name}: {a.dtype} error first step {r['state_errors'][0]:.3e}, largest {max(r['state_errors']):.3e}, "
                  f"growth x {r['state_growth']:.3g} (x_0-hat x {r['pred_x0_growth']:.3g})")
        print(f"appended to {a.measure} (torch {torch.__version__})")
        if not a.dst:
            return
    shutil.copyfile(a.src, a.dst)
    with h5py.File(a.dst, "r+") as f:
        cfg, net = load(f)
        net = net.to(dtype)
        done = []
        for name, g in f["trajectories"].items():
            c = chain_of(name, cfg["timesteps"])
            if c is None:
                continue
            xs, x0s = run(net, cfg, *c, np.asarray(g["x_T"]), np.asarray(g["noise"]), dtype, a.plant)
            g["x"][...] = xs
            g["pred_x0"][...] = x0s
            done.append(name)
    print(f"wrote {a.dst}: {', '.join(done)} rerun in {a.dtype} (torch {torch.__version__}, {torch.get_num_threads()} threads)"
          + (f" with the planted bug {a.plant}" if a.plant else "") + "; the solvers' trajectories are left as stored")


if __name__ == "__main__":
    main()
