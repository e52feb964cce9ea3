"""Golden-file variants for the precision tiers: honest low-precision recomputations and planted bugs.

Independent of the Swift code: a numpy U-Net (the network of make_unet_fixtures.py, written from the
prose specification) with a small tape-based reverse mode, and the DDPM equations of Ho et al. (2020).
Every operation can round its result to a storage format (float32, bfloat16, float16) while computing
in float32, which is how GPU backends work: store in low precision, accumulate in float32.

Writes Fixtures/golden-tiers.h5, a complete golden file (schema `ddpm-golden` version 1) of a very
small network (1 channel, base 4, multipliers [1, 2], 4 norm groups, attention at 4×4, 8×8 images):
  /config, /weights/<key>, /inputs/{x0,t,noise,z}, /outputs/...   the float64 reference (all outputs, all
                                                                    parameter gradients)
  /variants/<name>/<output>                                        the forward outputs recomputed another
                                                                    way, stored as float32 (exact for every
                                                                    variant's values)
  /variants/<name>/gradients                                       every parameter gradient of the variant,
                                                                    flattened and concatenated in the sorted
                                                                    order of the parameter keys (one dataset
                                                                    keeps the file small)
Variants:
  honest_float32, honest_bfloat16, honest_float16   every operation rounded to the format (accumulation float32)
  bug_attention_transposed                          out = v·A instead of v·Aᵀ, float32
  bug_sin_cos_swapped                               time embedding [cos, sin], float32
  bug_skip_order                                    up path concatenates (skip, features), float32
  bug_groupnorm_eps                                 every group norm with ε = 1e-6 instead of 1e-5, float32
  bug_gradient_sign                                 honest float32 with grad/mid_attn.proj.weight negated
Run: python3 Fixtures/make_golden_tier_fixtures.py
"""
import math
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden-tiers.h5")

CFG = dict(channels=1, base_channels=4, channel_mults=[1, 2], num_res_blocks=1, attention_resolutions=[4],
           image_size=8, time_emb_dim=8, norm_groups=4, timesteps=1000)


# ----------------------------------------------------------------------------- rounding to a storage format
def to_bfloat16(x):
    """Round float32 values to the nearest bfloat16 (ties to even), returned as float32."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32)


ROUNDERS = {
    "float64": lambda x: np.asarray(x, dtype=np.float64),
    "float32": lambda x: np.asarray(x, dtype=np.float32),
    "float16": lambda x: np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32),
    "bfloat16": to_bfloat16,
}


# ----------------------------------------------------------------------------- a tape for reverse mode
class Tape:
    """Records operations; `backward` visits them in reverse. Values and gradients are rounded by `rnd`."""

    def __init__(self, storage):
        self.rnd = ROUNDERS[storage]
        self.work = np.float64 if storage == "float64" else np.float32
        self.nodes = []

    def leaf(self, value, grad=False):
        return V(self, self.rnd(np.asarray(value, dtype=self.work)), [], None, grad)

    def op(self, value, parents, back):
        v = V(self, self.rnd(value), parents, back, any(p.requires for p in parents))
        if v.requires:
            self.nodes.append(v)
        return v

    def backward(self, out):
        out.grad = np.ones_like(out.value)
        for v in reversed(self.nodes):
            if v.grad is None or v.back is None:
                continue
            for p, g in zip(v.parents, v.back(v.grad)):
                if p.requires and g is not None:
                    g = self.rnd(g)
                    p.grad = g if p.grad is None else self.rnd(p.grad + g)


class V:
    def __init__(self, tape, value, parents, back, requires):
        self.tape, self.value, self.parents, self.back, self.requires, self.grad = tape, value, parents, back, requires, None

    @property
    def shape(self):
        return self.value.shape

    def __add__(self, o):
        return add(self, o)

    def __sub__(self, o):
        return add(self, scale(o, -1.0))

    def __mul__(self, o):
        return mul(self, o)


def unbroadcast(g, shape):
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def add(a, b):
    return a.tape.op(a.value + b.value, [a, b], lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape)))


def mul(a, b):
    return a.tape.op(a.value * b.value, [a, b], lambda g: (unbroadcast(g * b.value, a.shape), unbroadcast(g * a.value, b.shape)))


def scale(a, c):
    c = a.value.dtype.type(c)
    return a.tape.op(a.value * c, [a], lambda g: (g * c,))


def einsum(spec, a, b):
    ins, out = spec.split("->")
    sa, sb = ins.split(",")
    return a.tape.op(np.einsum(spec, a.value, b.value), [a, b],
                     lambda g: (np.einsum(f"{out},{sb}->{sa}", g, b.value), np.einsum(f"{out},{sa}->{sb}", g, a.value)))


def reshape(a, shape):
    return a.tape.op(a.value.reshape(shape), [a], lambda g: (g.reshape(a.shape),))


def mean(a, axis):
    n = a.shape[axis]
    return a.tape.op(a.value.mean(axis=axis, keepdims=True), [a], lambda g: (np.broadcast_to(g / a.value.dtype.type(n), a.shape),))


def rsqrt(a):
    y = 1 / np.sqrt(a.value)
    return a.tape.op(y, [a], lambda g: (g * (-0.5) * y ** 3,))


def silu(a):
    s = 1 / (1 + np.exp(-a.value))
    return a.tape.op(a.value * s, [a], lambda g: (g * s * (1 + a.value * (1 - s)),))


def softmax_last(a):
    e = np.exp(a.value - a.value.max(axis=-1, keepdims=True))
    y = e / e.sum(axis=-1, keepdims=True)
    return a.tape.op(y, [a], lambda g: (y * (g - (g * y).sum(axis=-1, keepdims=True)),))


def concat(a, b):
    c = a.shape[1]
    return a.tape.op(np.concatenate([a.value, b.value], axis=1), [a, b], lambda g: (g[:, :c], g[:, c:]))


def split3(a):
    c = a.shape[1] // 3
    parts = []
    for i in range(3):
        def back(g, i=i):
            full = np.zeros_like(a.value)
            full[:, i * c:(i + 1) * c] = g
            return (full,)
        parts.append(a.tape.op(a.value[:, i * c:(i + 1) * c], [a], back))
    return parts


def upsample2(a):
    n, c, h, w = a.shape
    return a.tape.op(a.value.repeat(2, axis=2).repeat(2, axis=3), [a],
                     lambda g: (g.reshape(n, c, h, 2, w, 2).sum(axis=(3, 5)),))


def conv2d(x, w, b, stride=1, pad=0):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x.value, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((n, o, oh, ow), dtype=x.value.dtype)
    for i in range(k):
        for j in range(k):
            y += np.einsum("nchw,oc->nohw", xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride], w.value[:, :, i, j])
    y = y + b.value[None, :, None, None]

    def back(g):
        gx, gw = np.zeros_like(xp), np.zeros_like(w.value)
        for i in range(k):
            for j in range(k):
                patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                gx[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += np.einsum("nohw,oc->nchw", g, w.value[:, :, i, j])
                gw[:, :, i, j] = np.einsum("nohw,nchw->oc", g, patch)
        return gx[:, :, pad:pad + h, pad:pad + wd], gw, g.sum(axis=(0, 2, 3))
    return x.tape.op(y, [x, w, b], back)


def linear(x, w, b):
    return einsum("nf,of->no", x, w) + reshape(b, (1,) + b.shape)


# ----------------------------------------------------------------------------- the network
def group_norm(P, key, x, groups, eps):
    n, c, h, w = x.shape
    g = reshape(x, (n, groups, (c // groups) * h * w))
    centred = g - mean(g, 2)
    var = mean(centred * centred, 2)
    y = reshape(centred * rsqrt(add(var, P["_const"](eps))), (n, c, h, w))
    return y * reshape(P[key + ".weight"], (1, c, 1, 1)) + reshape(P[key + ".bias"], (1, c, 1, 1))


def resblock(P, key, x, e, bugs):
    g, eps = CFG["norm_groups"], bugs["eps"]
    h = conv2d(silu(group_norm(P, key + ".norm1", x, g, eps)), P[key + ".conv1.weight"], P[key + ".conv1.bias"], 1, 1)
    tp = linear(e, P[key + ".time_proj.weight"], P[key + ".time_proj.bias"])
    h = h + reshape(tp, tp.shape + (1, 1))
    h = conv2d(silu(group_norm(P, key + ".norm2", h, g, eps)), P[key + ".conv2.weight"], P[key + ".conv2.bias"], 1, 1)
    skip = conv2d(x, P[key + ".residual.weight"], P[key + ".residual.bias"]) if key + ".residual.weight" in P else x
    return h + skip


def attention(P, key, x, bugs):
    n, c, hh, ww = x.shape
    h = group_norm(P, key + ".norm", x, CFG["norm_groups"], bugs["eps"])
    qkv = reshape(conv2d(h, P[key + ".qkv.weight"], P[key + ".qkv.bias"]), (n, 3 * c, hh * ww))
    q, k, v = split3(qkv)
    a = softmax_last(scale(einsum("ncq,nck->nqk", q, k), 1 / math.sqrt(c)))
    out = einsum("nck,nkq->ncq", v, a) if bugs["attention_transposed"] else einsum("nck,nqk->ncq", v, a)
    return x + conv2d(reshape(out, (n, c, hh, ww)), P[key + ".proj.weight"], P[key + ".proj.bias"])


def embedding(t, dim, swapped):
    half = dim // 2
    freqs = np.exp(-np.arange(half) * math.log(10000.0) / (half - 1))
    args = t.astype(np.float64)[:, None] * freqs[None, :]
    parts = [np.cos(args), np.sin(args)] if swapped else [np.sin(args), np.cos(args)]
    return np.concatenate(parts, axis=1)


def unet(P, x, t, bugs):
    base, mults, nres = CFG["base_channels"], CFG["channel_mults"], CFG["num_res_blocks"]
    res = CFG["image_size"]
    tape = x.tape
    e = tape.leaf(embedding(t, CFG["time_emb_dim"], bugs["sin_cos_swapped"]).astype(np.float32 if tape.work == np.float32 else np.float64))
    e = linear(silu(linear(e, P["time_mlp.0.weight"], P["time_mlp.0.bias"])), P["time_mlp.2.weight"], P["time_mlp.2.bias"])
    h = conv2d(x, P["init_conv.weight"], P["init_conv.bias"], 1, 1)
    skips = []
    for i, m in enumerate(mults):
        for j in range(nres):
            h = resblock(P, f"down_resblocks.{i}.{j}", h, e, bugs)
        if res in CFG["attention_resolutions"]:
            h = attention(P, f"down_attn.{i}", h, bugs)
        skips.append(h)
        if i < len(mults) - 1:
            h = conv2d(h, P[f"downsample.{i}.weight"], P[f"downsample.{i}.bias"], 2, 1)
            res //= 2
    h = resblock(P, "mid_block1", h, e, bugs)
    h = attention(P, "mid_attn", h, bugs)
    h = resblock(P, "mid_block2", h, e, bugs)
    for i, m in enumerate(reversed(mults)):
        if i > 0:
            h = conv2d(upsample2(h), P[f"upsample.{i - 1}.1.weight"], P[f"upsample.{i - 1}.1.bias"], 1, 1)
            res *= 2
        s = skips.pop()
        h = concat(s, h) if bugs["skip_order"] else concat(h, s)
        for j in range(nres):
            h = resblock(P, f"up_resblocks.{i}.{j}", h, e, bugs)
        if res in CFG["attention_resolutions"]:
            h = attention(P, f"up_attn.{i}", h, bugs)
    return conv2d(silu(group_norm(P, "final_norm", h, CFG["norm_groups"], bugs["eps"])), P["final_conv.weight"], P["final_conv.bias"], 1, 1)


# ----------------------------------------------------------------------------- weights (as make_unet_fixtures.py)
def build_weights(seed=11):
    rng = np.random.default_rng(seed)
    p = {}

    def conv(key, cin, cout, k):
        b = 1 / math.sqrt(cin * k * k)
        p[key + ".weight"] = rng.uniform(-b, b, (cout, cin, k, k)); p[key + ".bias"] = rng.uniform(-b, b, (cout,))

    def lin(key, fin, fout):
        b = 1 / math.sqrt(fin)
        p[key + ".weight"] = rng.uniform(-b, b, (fout, fin)); p[key + ".bias"] = rng.uniform(-b, b, (fout,))

    def norm(key, c):
        p[key + ".weight"] = 1 + 0.1 * rng.standard_normal(c); p[key + ".bias"] = 0.1 * rng.standard_normal(c)

    def resblock_w(key, cin, cout):
        norm(key + ".norm1", cin); conv(key + ".conv1", cin, cout, 3); lin(key + ".time_proj", temb, cout)
        norm(key + ".norm2", cout); conv(key + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(key + ".residual", cin, cout, 1)

    def attn_w(key, c):
        norm(key + ".norm", c); conv(key + ".qkv", c, 3 * c, 1); conv(key + ".proj", c, c, 1)

    base, mults, nres, temb = CFG["base_channels"], CFG["channel_mults"], CFG["num_res_blocks"], CFG["time_emb_dim"]
    res = [CFG["image_size"] // 2 ** i for i in range(len(mults))]
    lin("time_mlp.0", temb, 4 * temb); lin("time_mlp.2", 4 * temb, temb)
    conv("init_conv", CFG["channels"], base, 3)
    cur = base
    for i, m in enumerate(mults):
        for j in range(nres):
            resblock_w(f"down_resblocks.{i}.{j}", cur if j == 0 else base * m, base * m)
        cur = base * m
    for i in range(len(mults) - 1):
        conv(f"downsample.{i}", base * mults[i], base * mults[i], 3)
    for i, r in enumerate(res):
        if r in CFG["attention_resolutions"]:
            attn_w(f"down_attn.{i}", base * mults[i])
    resblock_w("mid_block1", cur, cur); attn_w("mid_attn", cur); resblock_w("mid_block2", cur, cur)
    rev = list(reversed(mults))
    for k in range(len(mults) - 1):
        conv(f"upsample.{k}.1", base * rev[k], base * rev[k], 3)
    for i, m in enumerate(rev):
        for j in range(nres):
            resblock_w(f"up_resblocks.{i}.{j}", cur + base * m if j == 0 else base * m, base * m)
        cur = base * m
    for i, r in enumerate(reversed(res)):
        if r in CFG["attention_resolutions"]:
            attn_w(f"up_attn.{i}", base * rev[i])
    norm("final_norm", cur); conv("final_conv", cur, CFG["channels"], 3)
    return p


# ----------------------------------------------------------------------------- one golden computation
def tables():
    betas = np.linspace(1e-4, 0.02, CFG["timesteps"], dtype=np.float64)
    ab = np.cumprod(1 - betas)
    ab_prev = np.append(1.0, ab[:-1])
    return dict(sqrt_ab=np.sqrt(ab), sqrt_1mab=np.sqrt(1 - ab), sqrt_recip_ab=np.sqrt(1 / ab), sqrt_recipm1_ab=np.sqrt(1 / ab - 1),
                post_var=betas * (1 - ab_prev) / (1 - ab), coef1=betas * np.sqrt(ab_prev) / (1 - ab),
                coef2=(1 - ab_prev) * np.sqrt(1 - betas) / (1 - ab))


def compute(weights, inputs, storage="float64", eps=1e-5, attention_transposed=False, sin_cos_swapped=False, skip_order=False):
    """Every output of the schema (Notes/09), each operation rounded to `storage`, reductions in float32
    (float64 for the float64 reference)."""
    tape = Tape(storage)
    rnd, work = tape.rnd, tape.work
    bugs = dict(eps=eps, attention_transposed=attention_transposed, sin_cos_swapped=sin_cos_swapped, skip_order=skip_order)
    P = {k: tape.leaf(v, grad=True) for k, v in weights.items()}
    P["_const"] = lambda c: tape.leaf(np.asarray(c))
    t = inputs["t"]
    tb = {k: rnd(v[t].astype(work))[:, None, None, None] for k, v in tables().items()}
    x0, noise, z = (rnd(inputs[k].astype(work)) for k in ("x0", "noise", "z"))
    x_t = rnd(rnd(tb["sqrt_ab"] * x0) + rnd(tb["sqrt_1mab"] * noise))                     # eq. 4
    eps_v = unet(P, tape.leaf(x_t), t, bugs)
    d = eps_v - tape.leaf(noise)
    loss = mean(reshape(d * d, (1, -1)), 1)                                               # L_simple
    tape.backward(loss)
    eps_pred = eps_v.value
    post_mean = rnd(rnd(tb["coef1"] * x0) + rnd(tb["coef2"] * x_t))                        # eq. 7
    pred_x0 = rnd(rnd(tb["sqrt_recip_ab"] * x_t) - rnd(tb["sqrt_recipm1_ab"] * eps_pred))
    mean_c = rnd(rnd(tb["coef1"] * np.clip(pred_x0, 0, 1)) + rnd(tb["coef2"] * x_t))
    nonzero = (t != 0).astype(work)[:, None, None, None]
    x_prev = rnd(mean_c + rnd(nonzero * rnd(np.sqrt(tb["post_var"]) * z)))
    out = dict(x_t=x_t, eps_pred=eps_pred, loss=loss.value.reshape(()), posterior_mean=post_mean,
               posterior_variance=tb["post_var"].reshape(-1), pred_x0=pred_x0, x_prev=x_prev)
    for k in weights:
        out["grad/" + k] = P[k].grad if P[k].grad is not None else np.zeros_like(weights[k])
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def main():
    W = build_weights()
    rng = np.random.default_rng(2024)
    n, c, s = 3, CFG["channels"], CFG["image_size"]
    inputs = dict(x0=rng.uniform(0, 1, (n, c, s, s)), t=np.array([0, 500, CFG["timesteps"] - 1], dtype=np.int64),
                  noise=rng.standard_normal((n, c, s, s)), z=rng.standard_normal((n, c, s, s)))
    reference = compute(W, inputs)
    variants = {
        "honest_float32": compute(W, inputs, "float32"),
        "honest_bfloat16": compute(W, inputs, "bfloat16"),
        "honest_float16": compute(W, inputs, "float16"),
        "bug_attention_transposed": compute(W, inputs, "float32", attention_transposed=True),
        "bug_sin_cos_swapped": compute(W, inputs, "float32", sin_cos_swapped=True),
        "bug_skip_order": compute(W, inputs, "float32", skip_order=True),
        "bug_groupnorm_eps": compute(W, inputs, "float32", eps=1e-6),
    }
    flipped = dict(variants["honest_float32"])
    flipped["grad/mid_attn.proj.weight"] = -flipped["grad/mid_attn.proj.weight"]
    variants["bug_gradient_sign"] = flipped
    with h5py.File(OUT, "w") as f:
        f.attrs["format"], f.attrs["version"] = "ddpm-golden", np.int64(1)
        cfg = f.create_group("config")
        for k in ["image_size", "channels", "base_channels", "num_res_blocks", "time_emb_dim", "timesteps", "norm_groups"]:
            cfg.attrs[k] = np.int64(CFG[k])
        cfg.attrs["clip_denoised"] = np.int64(1)
        cfg.attrs["channel_mults"] = np.array(CFG["channel_mults"], dtype=np.int64)
        cfg.attrs["attention_resolutions"] = np.array(CFG["attention_resolutions"], dtype=np.int64)
        cfg.attrs["beta_schedule"], cfg.attrs["output_activation"] = "linear", "identity"
        cfg.attrs["beta_start"], cfg.attrs["beta_end"], cfg.attrs["dropout"] = 1e-4, 0.02, 0.0
        cfg.attrs["data_min"], cfg.attrs["data_max"] = 0.0, 1.0
        for k, v in W.items():
            f.create_dataset(f"weights/{k}", data=v)
        for k, v in inputs.items():
            f.create_dataset(f"inputs/{k}", data=v)
        for k, v in reference.items():
            f.create_dataset(f"outputs/{k}", data=v)
        keys = sorted(W)
        for name, outs in variants.items():
            for k, v in outs.items():
                if not k.startswith("grad/"):
                    f.create_dataset(f"variants/{name}/{k}", data=v.astype(np.float32))
            f.create_dataset(f"variants/{name}/gradients", data=np.concatenate([outs["grad/" + k].ravel() for k in keys]).astype(np.float32))
    summary = []
    for name, outs in variants.items():
        e = np.linalg.norm(outs["eps_pred"] - reference["eps_pred"]) / np.linalg.norm(reference["eps_pred"])
        summary.append(f"{name} ε̂ {e:.1e}")
    print("wrote", OUT, "parameters:", sum(v.size for v in W.values()), "|", "; ".join(summary))


if __name__ == "__main__":
    main()
