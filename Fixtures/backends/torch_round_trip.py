"""A backend's round trip through a golden file, worked in PyTorch.

Reads a golden file that `ddpm golden export` wrote (schema `ddpm-golden`), builds the U-Net as a
PyTorch module whose state-dict names are the file's `/weights/<key>` names, loads the weights with
`load_state_dict(strict=True)`, recomputes every output the file holds in the chosen dtype on the CPU,
and writes a golden file with the same configuration, weights and inputs and the recomputed outputs
(stored as float64, as the schema asks). Check it with

    ddpm golden check OUT.h5 --tier float32        # or --tier bfloat16 / float16, matching --dtype

This is an example for backend authors, not part of the project: it needs torch, numpy and h5py in a
virtual environment of your own, and `swift test` never runs it. Everything is written from the schema
(Notes/09-golden-files.md) and the network's description (Notes/08-network.md).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch numpy h5py
    /tmp/venv/bin/python Fixtures/backends/torch_round_trip.py IN.h5 OUT.h5 --dtype float32
    /tmp/venv/bin/python Fixtures/backends/torch_round_trip.py IN.h5 BUG.h5 --plant skip-order   # see a bug fail

Storage is the chosen dtype everywhere (weights, inputs, activations, gradients); PyTorch's CPU kernels
accumulate float16 and bfloat16 products in float32, which is the model of the tiers (Notes/09).
The diffusion tables are computed in float64 and rounded to the dtype once, as a backend would.
"""
import argparse
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# --plant: a bug a port really makes, to see how the check reports it (Notes/09). None: the honest computation.
PLANTS = ["attention-transposed", "attention-no-scale", "sin-cos-swapped", "skip-order", "groupnorm-eps", "gradient-sign"]
PLANT = None
# Per-module activations (schema version 3): while a list, every recorded module output is appended to it
# as (state-dict path, tensor), in execution order (forward hooks, and the time embedding by hand).
RECORDED = None
RECORDED_TYPES = ()   # set below, once the module classes exist


# ----------------------------------------------------------------------------- the network
class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.residual = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(e)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))   # Dropout2d: the identity in evaluation mode
        return h + (self.residual(x) if self.residual is not None else x)


class Attention(nn.Module):
    def __init__(self, c, groups, eps):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=eps)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, hh, ww = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3 * c, hh * ww).chunk(3, dim=1)
        scores = torch.einsum("ncq,nck->nqk", q, k)
        a = torch.softmax(scores if PLANT == "attention-no-scale" else scores / math.sqrt(c), dim=2)  # over keys
        if PLANT == "attention-transposed":
            out = torch.einsum("nck,nkq->ncq", v, a).reshape(n, c, hh, ww)            # v A: the bug
        else:
            out = torch.einsum("nck,nqk->ncq", v, a).reshape(n, c, hh, ww)            # v Aᵀ
        return x + self.proj(out)


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        base, mults, nres, temb = cfg["base_channels"], cfg["channel_mults"], cfg["num_res_blocks"], cfg["time_emb_dim"]
        groups, eps = cfg["norm_groups"], (1e-6 if PLANT == "groupnorm-eps" else 1e-5)
        res = [cfg["image_size"] // 2 ** i for i in range(len(mults))]
        self.time_mlp = nn.Sequential(nn.Linear(temb, 4 * temb), nn.SiLU(), nn.Linear(4 * temb, temb))
        self.init_conv = nn.Conv2d(cfg["channels"], base, 3, padding=1)
        self.down_resblocks, self.downsample, self.down_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleDict()
        cur = base
        for i, m in enumerate(mults):
            self.down_resblocks.append(nn.ModuleList(
                [ResBlock(cur if j == 0 else base * m, base * m, temb, groups, eps) for j in range(nres)]))
            cur = base * m
            if res[i] in cfg["attention_resolutions"]:
                self.down_attn[str(i)] = Attention(cur, groups, eps)
            if i < len(mults) - 1:
                self.downsample.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
        self.mid_block1 = ResBlock(cur, cur, temb, groups, eps)
        self.mid_attn = Attention(cur, groups, eps)
        self.mid_block2 = ResBlock(cur, cur, temb, groups, eps)
        self.upsample, self.up_resblocks, self.up_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleDict()
        rev, rres = list(reversed(mults)), list(reversed(res))
        for i, m in enumerate(rev):
            if i > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cur, cur, 3, padding=1)))
            self.up_resblocks.append(nn.ModuleList(
                [ResBlock(cur + base * m if j == 0 else base * m, base * m, temb, groups, eps) for j in range(nres)]))
            cur = base * m
            if rres[i] in cfg["attention_resolutions"]:
                self.up_attn[str(i)] = Attention(cur, groups, eps)
        self.final_norm = nn.GroupNorm(groups, cur, eps=eps)
        self.final_conv = nn.Conv2d(cur, cfg["channels"], 3, padding=1)

    def embedding(self, t, dtype):
        half = self.cfg["time_emb_dim"] // 2
        # Computed in float32 (float64 for a float64 run) and rounded once: t·f reaches 999 rad, where
        # float16 and bfloat16 cannot resolve the phase (their spacing at 999 is 0.5 and 4).
        work = torch.float64 if dtype == torch.float64 else torch.float32
        freqs = torch.exp(-torch.arange(half, dtype=work) * math.log(10000.0) / (half - 1))
        args = t.to(work)[:, None] * freqs[None, :]
        parts = [torch.cos(args), torch.sin(args)] if PLANT == "sin-cos-swapped" else [torch.sin(args), torch.cos(args)]
        e = torch.cat(parts, dim=1).to(dtype)
        if RECORDED is not None:
            RECORDED.append(("time_embedding", e))
        return e

    def forward(self, x, t):
        e = self.time_mlp(self.embedding(t, x.dtype))
        h = self.init_conv(x)
        skips = []
        for i, blocks in enumerate(self.down_resblocks):
            for b in blocks:
                h = b(h, e)
            if str(i) in self.down_attn:
                h = self.down_attn[str(i)](h)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, e)), e)
        for i, blocks in enumerate(self.up_resblocks):
            if i > 0:
                h = self.upsample[i - 1](h)
            s = skips.pop()
            h = torch.cat([s, h] if PLANT == "skip-order" else [h, s], dim=1)   # current features first, skip second
            for b in blocks:
                h = b(h, e)
            if str(i) in self.up_attn:
                h = self.up_attn[str(i)](h)
        h = self.final_conv(F.silu(self.final_norm(h)))
        return torch.sigmoid(h) if self.cfg["output_activation"] == "sigmoid" else h


RECORDED_TYPES = (nn.Conv2d, nn.Linear, nn.GroupNorm, ResBlock, Attention)


def record_modules(net):
    """Forward hooks that append each module's output (keeping its gradient) to RECORDED under its name."""
    def hook(name):
        def keep(module, inputs, output):
            if RECORDED is not None:
                if output.requires_grad:
                    output.retain_grad()
                RECORDED.append((name, output))
        return keep
    return [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if isinstance(m, RECORDED_TYPES)]


# ----------------------------------------------------------------------------- the diffusion (Ho et al. 2020)
def tables(cfg):
    """β (linear schedule, 0-based t) and the derived float64 tables."""
    if cfg["beta_schedule"] != "linear":
        sys.exit(f"this example implements the linear schedule only, the file has '{cfg['beta_schedule']}'")
    betas = np.linspace(cfg["beta_start"], cfg["beta_end"], cfg["timesteps"], dtype=np.float64)
    ab = np.cumprod(1 - betas)
    ab_prev = np.append(1.0, ab[:-1])
    return dict(
        sqrt_ab=np.sqrt(ab), sqrt_1mab=np.sqrt(1 - ab),                                     # eq. 4
        sqrt_recip_ab=np.sqrt(1 / ab), sqrt_recipm1_ab=np.sqrt(1 / ab - 1),                 # x̂0 from ε (eq. 15)
        post_var=betas * (1 - ab_prev) / (1 - ab),                                          # β̃_t (eq. 7)
        coef1=betas * np.sqrt(ab_prev) / (1 - ab), coef2=(1 - ab_prev) * np.sqrt(1 - betas) / (1 - ab))


def read_config(f):
    cfg = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["config"].attrs.items()}
    for k in ["image_size", "channels", "base_channels", "num_res_blocks", "time_emb_dim", "timesteps", "clip_denoised"]:
        cfg[k] = int(cfg[k])
    cfg["norm_groups"] = int(cfg.get("norm_groups", 32))
    cfg["channel_mults"] = [int(v) for v in np.atleast_1d(cfg["channel_mults"])]
    cfg["attention_resolutions"] = [int(v) for v in np.atleast_1d(cfg["attention_resolutions"])]
    cfg["data_min"], cfg["data_max"] = float(cfg.get("data_min", 0.0)), float(cfg.get("data_max", 1.0))
    for k, expected in [("mean_type", "epsilon"), ("variance_type", "fixed_small"), ("loss_type", "mse")]:
        # Version-2 files state the diffusion; this example implements Ho's ε / fixed-small / L_simple only.
        if k in cfg and str(cfg[k]).lower() not in (expected, expected.replace("_", ""), "eps", "fixedsmall", "simple"):
            print(f"warning: /config {k} = '{cfg[k]}': this example computes {expected}; outputs may not match", file=sys.stderr)
    return cfg


def round_trip(src, dst, dtype_name):
    dtype = DTYPES[dtype_name]
    with h5py.File(src, "r") as f:
        cfg = read_config(f)
        net = UNet(cfg).to(torch.float64)         # float64 first, so loading does not round the weights
        state = {}
        f["weights"].visititems(lambda k, v: state.__setitem__(k.replace("/", "."), torch.from_numpy(np.asarray(v)))
                                if isinstance(v, h5py.Dataset) else None)
        net.load_state_dict(state, strict=True)   # the file's names are exactly the module's, with their shapes
        inputs = {k: np.asarray(f["inputs"][k]) for k in f["inputs"]}
        wanted = []
        for k in f["outputs"]:
            wanted += [f"grad/{g}" for g in f["outputs/grad"]] if k == "grad" else [k]
        # Version 3: the module outputs (and output gradients) the file holds, with their order and kind.
        act_attrs = {k: dict(v.attrs) for k, v in f["activations"].items()} if "activations" in f else {}
        act_grads = set(f["activation_gradients"]) if "activation_gradients" in f else set()
    net = net.to(dtype).eval()
    tb = {k: torch.from_numpy(v).to(dtype) for k, v in tables(cfg).items()}
    t = torch.from_numpy(inputs["t"]).long()
    x0, noise, z = (torch.from_numpy(inputs[k]).to(dtype) for k in ("x0", "noise", "z"))
    per = lambda name: tb[name][t][:, None, None, None]

    x_t = per("sqrt_ab") * x0 + per("sqrt_1mab") * noise                        # q(x_t | x_0), eq. 4
    global RECORDED
    RECORDED = [] if act_attrs else None
    hooks = record_modules(net)
    eps = net(x_t, t)
    recorded, RECORDED = RECORDED or [], None
    for h in hooks:
        h.remove()
    loss = ((eps - noise) ** 2).mean()                                           # L_simple, eq. 14
    net.zero_grad()
    if any(w.startswith("grad/") for w in wanted) or act_grads:
        loss.backward()
    eps, x_t_d = eps.detach(), x_t.detach()
    post_mean = per("coef1") * x0 + per("coef2") * x_t_d                         # μ̃_t(x_t, x_0), eq. 7
    pred_x0 = per("sqrt_recip_ab") * x_t_d - per("sqrt_recipm1_ab") * eps       # x̂0 from ε̂
    x0c = pred_x0.clamp(cfg["data_min"], cfg["data_max"]) if cfg["clip_denoised"] else pred_x0
    mean = per("coef1") * x0c + per("coef2") * x_t_d
    nonzero = (t != 0).to(dtype)[:, None, None, None]
    x_prev = mean + nonzero * per("post_var").sqrt() * z                         # one reverse step, no noise at t = 0
    out = dict(x_t=x_t_d, eps_pred=eps, loss=loss.detach(), posterior_mean=post_mean,
               posterior_variance=tb["post_var"][t], pred_x0=pred_x0, x_prev=x_prev)
    params = dict(net.named_parameters())
    written, skipped = 0, []
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        f.copy("config", g)
        f.copy("weights", g)
        f.copy("inputs", g)
        for group in ["trajectories", "sigma_tables"]:   # kept as stored: torch_trajectories.py reruns the chains
            if group in f:
                f.copy(group, g)
        for name in wanted:
            if name.startswith("grad/"):
                p = params[name[5:]]
                value = p.grad if p.grad is not None else torch.zeros_like(p)
                if PLANT == "gradient-sign" and name == "grad/mid_attn.proj.weight":
                    value = -value
            elif name in out:
                value = out[name]
            else:
                skipped.append(name)
                continue
            g.create_dataset("outputs/" + name, data=value.detach().to(torch.float64).numpy())
            written += 1
        ours = dict(recorded)
        for name, attrs in act_attrs.items():
            if name not in ours:
                skipped.append("activations/" + name)
                continue
            d = g.create_dataset("activations/" + name, data=ours[name].detach().to(torch.float64).numpy())
            for k, v in attrs.items():
                d.attrs[k] = v   # index (execution order) and kind, as the source file has them
            if name in act_grads and ours[name].grad is not None:
                g.create_dataset("activation_gradients/" + name, data=ours[name].grad.to(torch.float64).numpy())
        if act_attrs:
            print(f"{len(recorded)} module outputs recorded, {sum(1 for n in act_attrs if n in ours)} written")
    print(f"wrote {dst}: {written} outputs recomputed in {dtype_name} (torch {torch.__version__}, {torch.get_num_threads()} threads)"
          + (f", with the planted bug {PLANT}" if PLANT else "")
          + (f"; not computed by this example: {', '.join(skipped)}" if skipped else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="a golden file written by `ddpm golden export`")
    p.add_argument("destination", help="the golden file to write, with the recomputed outputs")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--plant", choices=PLANTS, help="plant one bug a port really makes (to see how the check reports it)")
    a = p.parse_args()
    global PLANT
    PLANT = a.plant
    torch.manual_seed(0)
    round_trip(a.source, a.destination, a.dtype)


if __name__ == "__main__":
    main()
