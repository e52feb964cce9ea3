"""A numpy float64 forward pass of a reduced U-Net, written from the prose specification of the seed system
(the architecture as Notes/08-network.md describes it).

Independent of the Swift code: it follows the prose specification of the seed's network (sinusoidal
embedding -> MLP, residual blocks with time projection, single-head attention, down path with one skip
per level, up path that concatenates (features, skip), nearest x2 upsampling + conv, GN-SiLU-conv out).

Writes Fixtures/unet.h5:
  /config            attributes of the reduced configuration
  /weights/<key>     one float64 dataset per parameter, PyTorch state-dict key and layout
  /inputs/x, /inputs/t
  /outputs/identity, /outputs/sigmoid    the network output with each output activation
Run: python3 Fixtures/make_unet_fixtures.py
"""
import math
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "unet.h5")

CFG = dict(channels=3, base_channels=32, channel_mults=[1, 2], num_res_blocks=1, attention_resolutions=[8],
           image_size=16, time_emb_dim=64, groups=32, timesteps=1000)


# ----------------------------------------------------------------------------- weights
class Weights:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.params = {}  # insertion order = state-dict order

    def conv(self, key, cin, cout, k):
        b = 1 / math.sqrt(cin * k * k)
        self.params[key + ".weight"] = self.rng.uniform(-b, b, (cout, cin, k, k))
        self.params[key + ".bias"] = self.rng.uniform(-b, b, (cout,))

    def linear(self, key, fin, fout):
        b = 1 / math.sqrt(fin)
        self.params[key + ".weight"] = self.rng.uniform(-b, b, (fout, fin))
        self.params[key + ".bias"] = self.rng.uniform(-b, b, (fout,))

    def norm(self, key, c):
        # Not the identity, so that the affine part is exercised.
        self.params[key + ".weight"] = 1 + 0.1 * self.rng.standard_normal(c)
        self.params[key + ".bias"] = 0.1 * self.rng.standard_normal(c)

    def resblock(self, key, cin, cout, temb):
        self.norm(key + ".norm1", cin)
        self.conv(key + ".conv1", cin, cout, 3)
        self.linear(key + ".time_proj", temb, cout)
        self.norm(key + ".norm2", cout)
        self.conv(key + ".conv2", cout, cout, 3)
        if cin != cout:
            self.conv(key + ".residual", cin, cout, 1)

    def attn(self, key, c):
        self.norm(key + ".norm", c)
        self.conv(key + ".qkv", c, 3 * c, 1)
        self.conv(key + ".proj", c, c, 1)


def build_weights(cfg, seed=7):
    w = Weights(seed)
    base, mults, nres, temb = cfg["base_channels"], cfg["channel_mults"], cfg["num_res_blocks"], cfg["time_emb_dim"]
    res = [cfg["image_size"] // 2 ** i for i in range(len(mults))]
    w.linear("time_mlp.0", temb, 4 * temb)
    w.linear("time_mlp.2", 4 * temb, temb)
    w.conv("init_conv", cfg["channels"], base, 3)
    cur = base
    for i, m in enumerate(mults):
        for j in range(nres):
            w.resblock(f"down_resblocks.{i}.{j}", cur if j == 0 else base * m, base * m, temb)
        cur = base * m
    for i in range(len(mults) - 1):
        w.conv(f"downsample.{i}", base * mults[i], base * mults[i], 3)
    for i, r in enumerate(res):
        if r in cfg["attention_resolutions"]:
            w.attn(f"down_attn.{i}", base * mults[i])
    w.resblock("mid_block1", cur, cur, temb)
    w.attn("mid_attn", cur)
    w.resblock("mid_block2", cur, cur, temb)
    rev = list(reversed(mults))
    for k in range(len(mults) - 1):
        w.conv(f"upsample.{k}.1", base * rev[k], base * rev[k], 3)
    for i, m in enumerate(rev):
        for j in range(nres):
            w.resblock(f"up_resblocks.{i}.{j}", cur + base * m if j == 0 else base * m, base * m, temb)
        cur = base * m
    for i, r in enumerate(reversed(res)):
        if r in cfg["attention_resolutions"]:
            w.attn(f"up_attn.{i}", base * rev[i])
    w.norm("final_norm", cur)
    w.conv("final_conv", cur, cfg["channels"], 3)
    return w.params


# ----------------------------------------------------------------------------- forward
def conv2d(x, w, b, stride=1, pad=0):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]  # n, c, oh, ow
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y + b[None, :, None, None]


def group_norm(x, gamma, beta, groups, eps=1e-5):
    n, c, h, w = x.shape
    g = x.reshape(n, groups, -1)
    mu = g.mean(axis=2, keepdims=True)
    var = ((g - mu) ** 2).mean(axis=2, keepdims=True)
    y = ((g - mu) / np.sqrt(var + eps)).reshape(n, c, h, w)
    return y * gamma[None, :, None, None] + beta[None, :, None, None]


def silu(x):
    return x / (1 + np.exp(-x))


def resblock(P, key, x, temb, groups):
    h = conv2d(silu(group_norm(x, P[key + ".norm1.weight"], P[key + ".norm1.bias"], groups)), P[key + ".conv1.weight"], P[key + ".conv1.bias"], 1, 1)
    h = h + (temb @ P[key + ".time_proj.weight"].T + P[key + ".time_proj.bias"])[:, :, None, None]
    h = conv2d(silu(group_norm(h, P[key + ".norm2.weight"], P[key + ".norm2.bias"], groups)), P[key + ".conv2.weight"], P[key + ".conv2.bias"], 1, 1)
    # Dropout2d is the identity in evaluation mode.
    skip = conv2d(x, P[key + ".residual.weight"], P[key + ".residual.bias"]) if key + ".residual.weight" in P else x
    return h + skip


def attention(P, key, x, groups):
    n, c, hh, ww = x.shape
    h = group_norm(x, P[key + ".norm.weight"], P[key + ".norm.bias"], groups)
    qkv = conv2d(h, P[key + ".qkv.weight"], P[key + ".qkv.bias"]).reshape(n, 3 * c, hh * ww)
    q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]
    logits = np.einsum("ncq,nck->nqk", q, k) / math.sqrt(c)
    logits = logits - logits.max(axis=2, keepdims=True)
    a = np.exp(logits)
    a = a / a.sum(axis=2, keepdims=True)
    out = np.einsum("nck,nqk->ncq", v, a).reshape(n, c, hh, ww)
    return x + conv2d(out, P[key + ".proj.weight"], P[key + ".proj.bias"])


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = np.exp(-np.arange(half) * math.log(10000.0) / (half - 1))
    args = t.astype(np.float64)[:, None] * freqs[None, :]
    return np.concatenate([np.sin(args), np.cos(args)], axis=1)


def unet(P, cfg, x, t, activation):
    base, mults, nres, groups = cfg["base_channels"], cfg["channel_mults"], cfg["num_res_blocks"], cfg["groups"]
    res = cfg["image_size"]
    e = timestep_embedding(t, cfg["time_emb_dim"])
    e = silu(e @ P["time_mlp.0.weight"].T + P["time_mlp.0.bias"]) @ P["time_mlp.2.weight"].T + P["time_mlp.2.bias"]
    h = conv2d(x, P["init_conv.weight"], P["init_conv.bias"], 1, 1)
    skips = []
    for i, m in enumerate(mults):
        for j in range(nres):
            h = resblock(P, f"down_resblocks.{i}.{j}", h, e, groups)
        if res in cfg["attention_resolutions"]:
            h = attention(P, f"down_attn.{i}", h, groups)
        skips.append(h)
        if i < len(mults) - 1:
            h = conv2d(h, P[f"downsample.{i}.weight"], P[f"downsample.{i}.bias"], 2, 1)
            res //= 2
    h = resblock(P, "mid_block1", h, e, groups)
    h = attention(P, "mid_attn", h, groups)
    h = resblock(P, "mid_block2", h, e, groups)
    for i, m in enumerate(reversed(mults)):
        if i > 0:
            h = h.repeat(2, axis=2).repeat(2, axis=3)
            h = conv2d(h, P[f"upsample.{i - 1}.1.weight"], P[f"upsample.{i - 1}.1.bias"], 1, 1)
            res *= 2
        h = np.concatenate([h, skips.pop()], axis=1)
        for j in range(nres):
            h = resblock(P, f"up_resblocks.{i}.{j}", h, e, groups)
        if res in cfg["attention_resolutions"]:
            h = attention(P, f"up_attn.{i}", h, groups)
    h = conv2d(silu(group_norm(h, P["final_norm.weight"], P["final_norm.bias"], groups)), P["final_conv.weight"], P["final_conv.bias"], 1, 1)
    return 1 / (1 + np.exp(-h)) if activation == "sigmoid" else h


def main():
    cfg = CFG
    P = build_weights(cfg)
    rng = np.random.default_rng(1234)
    n = 3
    x = rng.standard_normal((n, cfg["channels"], cfg["image_size"], cfg["image_size"]))
    t = np.array([0, 500, cfg["timesteps"] - 1], dtype=np.int64)
    with h5py.File(OUT, "w") as f:
        c = f.create_group("config")
        for k, v in cfg.items():
            c.attrs[k] = np.array(v, dtype=np.int64)
        for k, v in P.items():
            f.create_dataset(f"weights/{k}", data=v)
        f.create_dataset("inputs/x", data=x)
        f.create_dataset("inputs/t", data=t)
        for act in ("identity", "sigmoid"):
            f.create_dataset(f"outputs/{act}", data=unet(P, cfg, x, t, act))
    print("wrote", OUT, "parameters:", sum(v.size for v in P.values()))


if __name__ == "__main__":
    main()
