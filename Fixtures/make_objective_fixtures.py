"""Reference tensors for every parameterisation, variance and training objective of issue 9.

An independent oracle written from the papers, never from the Swift code it checks:

- Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models" (eqs. 4, 5, 6–7, 11, 13, 14);
- Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models" (eq. 15, the learned
  range; §3.1, the hybrid objective L_hybrid = L_simple + λ L_vlb with λ = 0.001; §3.3, importance
  sampling of t with p_t ∝ √E[L_t²]);
- Salimans & Ho (2022), "Progressive Distillation for Fast Sampling of Diffusion Models" (§4 and App. D,
  the v-parameterisation);
- Hang et al. (2023), "Efficient Diffusion Training via Min-SNR Weighting Strategy" (min-SNR-γ).

Equation numbers: Ho eq. 4 (q(x_t|x_0)), 5 (the bound's terms), 6–7 (posterior), 11 (μ_θ from ε), 13 (the
decoder), 14 (L_simple); N&D eq. 15 (learned range), §3.1 (hybrid), §3.3 (importance sampling).

Where the papers leave a choice open the conventions follow the public reference code the field ports
from (Ho et al.'s `diffusion_utils_2.py`, improved-diffusion's `gaussian_diffusion.py` and `resample.py`);
each such choice is named in the function's docstring and in Fixtures/README.md.

Conventions shared with make_diffusion_fixtures.py (and checked against it below): 0-based timesteps
t = 0 … T−1; the linear schedule β = linspace(1e-4, 0.02, T); data range [0, 1]; the posterior log
variance clipped by putting β̃_1 at t = 0; the discretised Gaussian decoder on 256 levels of [0, 1] with
half-bin (1 − 0)/255/2, the open edges at x < lo + half and x > hi − half, and probabilities floored at
1e-12 before the log. Every quantity is float64. Fixed seeds, no timestamps: running the generator twice
gives identical datasets.

Run:  python3 Fixtures/make_objective_fixtures.py      (writes Fixtures/objectives.h5)
Layout: see Fixtures/README.md, section "objectives.h5".
"""
import math
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "objectives.h5")
LN2 = math.log(2.0)
SEED = 20210218  # Nichol & Dhariwal's arXiv date

MEAN_TYPES = ("eps", "x0", "xprev", "v")
LEARNED_TYPES = ("learned", "learned_range")
BOUND_VAR_TYPES = ("fixed_small", "fixed_large", "learned", "learned_range")
SNR_MEAN_TYPES = ("eps", "x0", "v")  # min-SNR-γ is not defined for x_{t−1}-prediction
GAMMAS = (5.0, 1.0)
HYBRID_LAMBDA = 0.001


# ============================================================================ schedule
def linear_tables(T, start=1e-4, end=0.02):
    """The linear schedule of Ho et al. (2020, §4: β_1 = 1e-4 … β_T = 0.02, here 0-based) and its tables.

    β_t = linspace(start, end, T)[t];  ᾱ_t = ∏_{s≤t} (1 − β_s);  ᾱ_prev_t = ᾱ_{t−1} (1 at t = 0);
    β̃_t = β_t (1 − ᾱ_prev_t)/(1 − ᾱ_t)   (Ho eq. 7; exactly 0 at t = 0);
    log β̃_t clipped = log(β̃_1) at t = 0, log β̃_t otherwise (Ho's and improved-diffusion's code);
    posterior mean coefficients c1 = β_t √ᾱ_prev/(1 − ᾱ_t), c2 = (1 − ᾱ_prev) √α_t/(1 − ᾱ_t) (eq. 7);
    SNR_t = ᾱ_t/(1 − ᾱ_t) (Kingma et al. 2021; Hang et al. 2023).
    """
    betas = np.linspace(start, end, T, dtype=np.float64)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.concatenate([[1.0], ac[:-1]])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    return {
        "betas": betas,
        "log_betas": np.log(betas),
        "alphas": alphas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.concatenate([[post_var[1]], post_var[1:]])),
        "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
        "snr": ac / (1.0 - ac),
    }


def at(tb, name, t, ndim=4):
    """Table `name` at the per-sample timesteps t, shaped (N, 1, …) to broadcast against (N, C, H, W)."""
    return tb[name][t].reshape((-1,) + (1,) * (ndim - 1))


# ============================================================================ forward process and targets
def q_sample(tb, x0, t, eps):
    """x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε   (Ho eq. 4, reparameterised; Algorithm 1).  Shapes (N, C, H, W)."""
    return at(tb, "sqrt_alphas_cumprod", t) * x0 + at(tb, "sqrt_one_minus_alphas_cumprod", t) * eps


def posterior_mean(tb, x0, xt, t):
    """μ̃_t(x_0, x_t) = c1_t x_0 + c2_t x_t   (Ho eq. 7).  The target of x_{t−1}-prediction (Ho §3.2)."""
    return at(tb, "posterior_mean_coef1", t) * x0 + at(tb, "posterior_mean_coef2", t) * xt


def v_from_eps_x0(tb, t, eps, x0):
    """v = √ᾱ_t ε − √(1−ᾱ_t) x_0   (Salimans & Ho 2022, §4 and App. D).  The v-prediction target."""
    return at(tb, "sqrt_alphas_cumprod", t) * eps - at(tb, "sqrt_one_minus_alphas_cumprod", t) * x0


def targets(tb, x0, xt, t, eps):
    """The regression target per mean type: ε (Ho eq. 14), x_0, μ̃_t(x_0, x_t) (Ho §3.2), v (S&H §4)."""
    return {"eps": eps, "x0": x0, "xprev": posterior_mean(tb, x0, xt, t), "v": v_from_eps_x0(tb, t, eps, x0)}


# ============================================================================ conversions (given x_t and t)
def x0_from_eps(tb, xt, t, eps):
    """x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t   (inverse of Ho eq. 4; the x̂_0 inside Ho eq. 11).

    Form used: this quotient (as make_diffusion_fixtures.py); Ho's code writes √(1/ᾱ) x_t − √(1/ᾱ − 1) ε̂,
    which is algebraically equal and differs by rounding.  Conditioning: 1/√ᾱ_t, 157.4 at t = 999.
    """
    return (xt - at(tb, "sqrt_one_minus_alphas_cumprod", t) * eps) / at(tb, "sqrt_alphas_cumprod", t)


def eps_from_x0(tb, xt, t, x0):
    """ε̂ = (x_t − √ᾱ_t x̂_0)/√(1−ᾱ_t)   (inverse of Ho eq. 4).  Conditioning 1/√(1−ᾱ_t): 100.005 at t = 0."""
    return (xt - at(tb, "sqrt_alphas_cumprod", t) * x0) / at(tb, "sqrt_one_minus_alphas_cumprod", t)


def x0_from_v(tb, xt, t, v):
    """x̂_0 = √ᾱ_t x_t − √(1−ᾱ_t) v̂   (Salimans & Ho 2022, §4 / App. D)."""
    return at(tb, "sqrt_alphas_cumprod", t) * xt - at(tb, "sqrt_one_minus_alphas_cumprod", t) * v


def eps_from_v(tb, xt, t, v):
    """ε̂ = √(1−ᾱ_t) x_t + √ᾱ_t v̂   (Salimans & Ho 2022, App. D)."""
    return at(tb, "sqrt_one_minus_alphas_cumprod", t) * xt + at(tb, "sqrt_alphas_cumprod", t) * v


def v_from_eps(tb, xt, t, eps):
    """v̂ = (ε̂ − √(1−ᾱ_t) x_t)/√ᾱ_t   (= √ᾱ ε̂ − √(1−ᾱ) x̂_0(ε̂); S&H §4 with x̂_0 from ε̂)."""
    return (eps - at(tb, "sqrt_one_minus_alphas_cumprod", t) * xt) / at(tb, "sqrt_alphas_cumprod", t)


def v_from_x0(tb, xt, t, x0):
    """v̂ = (√ᾱ_t x_t − x̂_0)/√(1−ᾱ_t)   (= √ᾱ ε̂(x̂_0) − √(1−ᾱ) x̂_0; S&H §4 with ε̂ from x̂_0)."""
    return (at(tb, "sqrt_alphas_cumprod", t) * xt - x0) / at(tb, "sqrt_one_minus_alphas_cumprod", t)


def x0_from_xprev(tb, xt, t, xprev):
    """x̂_0 = (x̂_{t−1} − c2_t x_t)/c1_t   (inverse of Ho eq. 7's mean)."""
    return (xprev - at(tb, "posterior_mean_coef2", t) * xt) / at(tb, "posterior_mean_coef1", t)


def pred_x0(tb, mean_type, out, xt, t):
    """x̂_0 implied by a model output read as `mean_type` (no clipping)."""
    if mean_type == "eps":
        return x0_from_eps(tb, xt, t, out)
    if mean_type == "x0":
        return out.copy()
    if mean_type == "xprev":
        return x0_from_xprev(tb, xt, t, out)
    if mean_type == "v":
        return x0_from_v(tb, xt, t, out)
    raise ValueError(mean_type)


# ============================================================================ variances of p_θ(x_{t−1} | x_t)
def fixed_small(tb, t):
    """σ²_t = β̃_t, log σ²_t = log β̃_t clipped (log β̃_1 at t = 0)   (Ho §3.2, the lower bound on σ²).

    Returns (variance (N,), log_variance (N,)); the variance itself is 0 at t = 0.
    """
    return tb["posterior_variance"][t], tb["posterior_log_variance_clipped"][t]


def fixed_large(tb, t):
    """σ²_t = β_t, improved-diffusion's convention: BOTH the variance and its log use β̃_1 at t = 0.

    variance = append(β̃_1, β_{1:})[t],  log_variance = log(append(β̃_1, β_{1:}))[t]
    (improved-diffusion gaussian_diffusion.py, ModelVarType.FIXED_LARGE; also what
    make_diffusion_fixtures.py's "large" is).  Returns ((N,), (N,)).
    """
    v = np.concatenate([[tb["posterior_variance"][1]], tb["betas"][1:]])
    return v[t], np.log(v)[t]


def fixed_large_ho(tb, t):
    """σ²_t = β_t, Ho et al.'s convention (diffusion_utils_2.py, model_var_type 'fixedlarge'): ONLY the log
    uses β̃_1 at t = 0; the variance column is plain β_t (β_0 = 1e-4 at t = 0).

    variance = β_t,  log_variance = log(append(β̃_1, β_{1:}))[t].
    Only the log variance enters the sampler (Ho's p_sample uses exp(½ log σ²) and adds no noise at t = 0)
    and the bound, so both conventions give the same samples and the same L_t; they differ only in the
    reported variance at t = 0.  Returns ((N,), (N,)).
    """
    lv = np.log(np.concatenate([[tb["posterior_variance"][1]], tb["betas"][1:]]))
    return tb["betas"][t], lv[t]


def learned(out_var):
    """Learned variance, Ho's 'learned' / improved-diffusion's LEARNED: the network's variance half IS
    log σ²_θ.   log_variance = out_var, variance = exp(out_var).  Shapes (N, C, H, W)."""
    return np.exp(out_var), out_var.copy()


def learned_range_frac(out_var):
    """v = (out + 1)/2: improved-diffusion's map of the raw output to the paper's interpolation weight
    (N&D eq. 15 writes v for the raw output; improved-diffusion feeds (out + 1)/2, so out = −1 gives β̃_t and
    out = +1 gives β_t).  No clamping: values of `out` outside [−1, 1] extrapolate, as in improved-diffusion."""
    return (out_var + 1.0) / 2.0


def learned_range(tb, t, out_var):
    """Learned range (Nichol & Dhariwal 2021, eq. 15):

    log σ²_θ = v log β_t + (1 − v) log β̃_t,  v = (out + 1)/2,  log β̃_t clipped (log β̃_1 at t = 0).
    At t = 0 the +1 end is log β_0 (= log 1e-4), NOT fixed-large's β̃_1 convention.
    Returns (variance, log_variance), both (N, C, H, W).
    """
    frac = learned_range_frac(out_var)
    lv = frac * at(tb, "log_betas", t) + (1.0 - frac) * at(tb, "posterior_log_variance_clipped", t)
    return np.exp(lv), lv


def model_variance(tb, var_type, t, out_var=None):
    """Dispatch: (variance, log_variance) for a variance type.  Fixed types give (N,), learned ones (N,C,H,W)."""
    if var_type == "fixed_small":
        return fixed_small(tb, t)
    if var_type == "fixed_large":
        return fixed_large(tb, t)
    if var_type == "fixed_large_ho":
        return fixed_large_ho(tb, t)
    if var_type == "learned":
        return learned(out_var)
    if var_type == "learned_range":
        return learned_range(tb, t, out_var)
    raise ValueError(var_type)


def split_2c(out2c):
    """Split a 2C-channel output into (mean half, variance half): mean part first (improved-diffusion's
    th.split(model_output, C, dim=1); Ho's tf.split(…, 2, axis=-1) in NHWC)."""
    C = out2c.shape[1] // 2
    return out2c[:, :C], out2c[:, C:]


# ============================================================================ p_θ(x_{t−1} | x_t)
def p_mean(tb, mean_type, out, xt, t, clip, lo=0.0, hi=1.0):
    """Mean of p_θ(x_{t−1} | x_t) for each parameterisation (Ho §3.2 and eq. 11; S&H §4 for v).

    eps, x0, v: x̂_0 from the output (optionally clipped to [lo, hi]), then μ = μ̃_t(x̂_0, x_t) (eq. 7).
      (For eps without clipping this equals Ho eq. 11, 1/√α_t (x_t − β_t/√(1−ᾱ_t) ε̂).)
    xprev: μ = the output itself; clipping touches only the reported x̂_0.
    Returns (mean, pred_x0), both (N, C, H, W).  The mean does not depend on the variance type.
    """
    x0 = pred_x0(tb, mean_type, out, xt, t)
    if clip:
        x0 = np.clip(x0, lo, hi)
    if mean_type == "xprev":
        return out.copy(), x0
    return posterior_mean(tb, x0, xt, t), x0


# ============================================================================ losses
def mean_flat(a):
    """Mean over every axis but the batch axis: (N, …) → (N,)."""
    return a.reshape(a.shape[0], -1).mean(axis=1)


def loss_simple(out, target):
    """L_simple per sample = mean over C·H·W of (output − target)²   (Ho eq. 14 for ε; the same MSE toward
    x_0, μ̃_t or v for the other mean types).  (N,).  The batch loss is the mean of these (= the mean over
    every element, since all samples have the same size)."""
    return mean_flat((out - target) ** 2)


def normal_kl(m1, lv1, m2, lv2):
    """KL(N(m1, e^{lv1}) ‖ N(m2, e^{lv2})) = ½(−1 + lv2 − lv1 + e^{lv1−lv2} + (m1 − m2)² e^{−lv2}), elementwise."""
    return 0.5 * (-1.0 + lv2 - lv1 + np.exp(lv1 - lv2) + (m1 - m2) ** 2 * np.exp(-lv2))


def std_normal_cdf(x):
    """Φ(x) = ½(1 + erf(x/√2)), elementwise with math.erf (as make_diffusion_fixtures.py)."""
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def decoder_log_likelihood(x, mean, log_scale, lo=0.0, hi=1.0):
    """Discretised Gaussian decoder log p(x_0 | x_1) (Ho §3.3, eq. 13) on 256 levels of [lo, hi].

    Convention of make_diffusion_fixtures.py (and of Ho's / improved-diffusion's code, rescaled from
    [−1, 1] to [lo, hi]): half = (hi − lo)/255/2; Φ± = Φ((x − μ ± half)/σ), σ = e^{log_scale};
    log Φ+ where x < lo + half (open lower edge), log(1 − Φ−) where x > hi − half (open upper edge),
    log(Φ+ − Φ−) otherwise; every probability floored at 1e-12 before the log.  Elementwise.
    """
    half = (hi - lo) / 255.0 / 2.0
    inv = np.exp(-log_scale)
    cdf_plus = std_normal_cdf(inv * (x - mean + half))
    cdf_min = std_normal_cdf(inv * (x - mean - half))
    log_cdf_plus = np.log(np.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = np.log(np.maximum(1.0 - cdf_min, 1e-12))
    log_delta = np.log(np.maximum(cdf_plus - cdf_min, 1e-12))
    return np.where(x < lo + half, log_cdf_plus, np.where(x > hi - half, log_one_minus_cdf_min, log_delta))


def bound_terms(tb, x0, xt, t, mean, log_var):
    """The bound term L_t in bits/dim (Ho eq. 5; units as improved-diffusion's _vb_terms_bpd):

    t > 0:  L_{t} = mean_flat KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t)) / ln 2, with q's log variance the
            clipped log β̃_t and p_θ = N(mean, e^{log_var});
    t = 0:  L_0 = −mean_flat log p_θ(x_0 | x_1) / ln 2, the discretised decoder with log-scale ½ log_var.
    `log_var` is (N,) for fixed variances or (N, C, H, W) for learned ones.
    Returns (term (N,), kl (N,), decoder_nll (N,)); kl and nll are given at every t.
    """
    lv = log_var.reshape(-1, 1, 1, 1) if log_var.ndim == 1 else log_var
    true_mean = posterior_mean(tb, x0, xt, t)
    true_lv = at(tb, "posterior_log_variance_clipped", t)
    kl = mean_flat(normal_kl(true_mean, true_lv, mean, lv)) / LN2
    nll = -mean_flat(decoder_log_likelihood(x0, mean, 0.5 * lv)) / LN2
    return np.where(t == 0, nll, kl), kl, nll


def vb_term_frozen_mean(tb, x0, xt, t, mean_type, var_type, out2c):
    """The hybrid objective's bound term with the mean FROZEN (Nichol & Dhariwal §3.1; improved-diffusion
    training_losses builds th.cat([mean_half.detach(), var_half]) and calls _vb_terms_bpd, no clipping).

    L_t(frozen) = bound_terms(x0, x_t, t, μ_θ(stop_gradient(mean half)), log σ²_θ(var half))[0].
    Value-wise it equals the bound term with the model's own mean; the freeze only stops the gradient
    reaching the mean half.  Here the mean half is an explicit copy (the numpy analogue of detach()).
    out2c (N, 2C, H, W) → (N,) bits/dim.
    """
    mean_half, var_half = split_2c(out2c)
    frozen = np.array(mean_half, copy=True)
    mean, _ = p_mean(tb, mean_type, frozen, xt, t, clip=False)
    _, lv = model_variance(tb, var_type, t, var_half)
    return bound_terms(tb, x0, xt, t, mean, lv)[0]


def hybrid_scale(T):
    """improved-diffusion's hybrid (LossType.RESCALED_MSE with a learned variance): vb × T/1000.

    N&D §3.1 write L_hybrid = L_simple + λ L_vlb with λ = 0.001 and L_vlb = Σ_t L_t; with t uniform,
    L_vlb ≈ T · L_t, so λ L_vlb ≈ 0.001 · T · L_t = (T/1000) · L_t.  Returns T/1000.
    """
    return T / 1000.0


def min_snr_weight(snr, gamma, mean_type):
    """Min-SNR-γ loss weights (Hang et al. 2023): the x_0-space weight is min(SNR_t, γ); the same weight
    expressed for the other targets divides by the factor their squared error carries relative to x_0's
    (from eq. 4: ‖ε̂ − ε‖² = SNR_t ‖x̂_0 − x_0‖², ‖v̂ − v‖² = (SNR_t + 1) ‖x̂_0 − x_0‖²):

    ε-prediction:   min(SNR_t, γ)/SNR_t
    x_0-prediction: min(SNR_t, γ)
    v-prediction:   min(SNR_t, γ)/(SNR_t + 1)
    with SNR_t = ᾱ_t/(1 − ᾱ_t).  Not defined for x_{t−1}-prediction (raises ValueError).  (N,) → (N,).
    """
    m = np.minimum(snr, gamma)
    if mean_type == "eps":
        return m / snr
    if mean_type == "x0":
        return m
    if mean_type == "v":
        return m / (snr + 1.0)
    raise ValueError(f"min-SNR-γ is not defined for mean type {mean_type}")


# ============================================================================ the loss-second-moment resampler
def resampler_weights(history, counts, history_per_term=10, uniform_prob=0.001):
    """improved-diffusion LossSecondMomentResampler.weights() (N&D §3.3: L_vlb = E_{t~p_t}[L_t/p_t],
    p_t ∝ √E[L_t²], resampling only once every term has 10 losses):

    until every t has `history_per_term` losses: w_t = 1 (uniform);
    then w_t = √(mean_k L_{t,k}²), w ← w/Σw, w ← w(1 − uniform_prob) + uniform_prob/T.
    history (T, H), counts (T,) → weights (T,).
    """
    T = history.shape[0]
    if not (counts == history_per_term).all():
        return np.ones(T, dtype=np.float64)
    w = np.sqrt(np.mean(history ** 2, axis=-1))
    w = w / np.sum(w)
    w = w * (1.0 - uniform_prob)
    w = w + uniform_prob / T
    return w


def resampler_probabilities(weights):
    """p_t = w_t/Σ_s w_s (ScheduleSampler.sample; Σw is already 1 up to rounding once warmed up)."""
    return weights / np.sum(weights)


def importance_weights(p, ts):
    """Per-sample loss weight 1/(T p_t) that keeps the importance-sampled loss unbiased (N&D §3.3)."""
    return 1.0 / (len(p) * p[ts])


def resampler_update(history, counts, ts, losses, history_per_term=10):
    """improved-diffusion update_with_all_losses, in order: while counts[t] < H the loss goes to slot
    counts[t] and counts[t] += 1; once full, the oldest (slot 0) is shifted out and the loss goes to the
    last slot.  Mutates history (T, H) and counts (T,)."""
    for t, loss in zip(ts, losses):
        if counts[t] == history_per_term:
            history[t, :-1] = history[t, 1:]
            history[t, -1] = loss
        else:
            history[t, counts[t]] = loss
            counts[t] += 1


# ============================================================================ writing
def put(g, name, data, **attrs):
    d = g.create_dataset(name, data=data)
    for k, v in attrs.items():
        d.attrs[k] = v
    return d


def make_inputs(rng, tb, t, C, H, W):
    """Fixed random inputs: x0 on the 256-level lattice of [0, 1], ε ~ N(0, I), and per mean type a model
    output = the true target + a fixed perturbation (so x̂_0 lands near the data and the decoder works away
    from its 1e-12 floor for most elements), plus the variance halves of learned and learned-range models."""
    N = len(t)
    x0 = rng.integers(0, 256, size=(N, C, H, W)).astype(np.float64) / 255.0
    noise = rng.standard_normal((N, C, H, W))
    xt = q_sample(tb, x0, t, noise)
    tg = targets(tb, x0, xt, t, noise)
    scale = {"eps": 0.3, "x0": 0.02, "xprev": 0.005, "v": 0.3}
    outs = {m: tg[m] + scale[m] * rng.standard_normal((N, C, H, W)) for m in MEAN_TYPES}
    lo_log = at(tb, "posterior_log_variance_clipped", t)
    hi_log = at(tb, "log_betas", t)
    var_learned = lo_log + (hi_log - lo_log) * rng.uniform(-0.25, 1.25, (N, C, H, W)) + 0.1 * rng.standard_normal((N, C, H, W))
    var_range = rng.uniform(-1.25, 1.25, (N, C, H, W))  # a few values outside [−1, 1]: no clamping
    return x0, noise, xt, tg, outs, {"learned": var_learned, "learned_range": var_range}, scale


def write_losses(g, tb, T, t, x0, xt, tg, outs, var_outs, full=True):
    """Per-sample losses for every mean type: simple, the bound term per variance type, rescaled KL,
    hybrid (learned variances), min-SNR-γ weights and weighted losses.  full=False (the T = 20 set) keeps
    only what depends on T: the learned-variance bound terms, rescaled KL and the hybrid terms."""
    simple = {}
    for m in MEAN_TYPES:
        simple[m] = loss_simple(outs[m], tg[m])
        put(g, f"simple/{m}", simple[m], formula="mean_flat((model_output - target)^2)", ref="Ho et al. 2020 eq. 14")
        put(g, f"simple_batch/{m}", np.mean(simple[m]), formula="mean over the batch of simple/<mean type>")
    for m in MEAN_TYPES:
        mean, _ = p_mean(tb, m, outs[m], xt, t, clip=False)
        for vt in (BOUND_VAR_TYPES if full else LEARNED_TYPES):
            _, lv = model_variance(tb, vt, t, var_outs.get(vt))
            term, kl, nll = bound_terms(tb, x0, xt, t, mean, lv)
            h = g.create_group(f"vb/{m}/{vt}")
            h.attrs["ref"] = "Ho et al. 2020 eq. 5 and §3.3; bits/dim as improved-diffusion _vb_terms_bpd; no clipping (training)"
            h.attrs["formula"] = ("vb_bpd = where(t == 0, decoder_nll_bpd, kl_bpd); kl_bpd = mean_flat(KL(q(x_{t-1}|x_t,x_0) || p_theta)) / ln 2; "
                                  "decoder_nll_bpd = -mean_flat(log p_theta(x_0|x_1)) / ln 2 (256 bins of [0, 1]); rescaled_kl = vb_bpd * T (improved-diffusion RESCALED_KL)")
            put(h, "vb_bpd", term)
            if full:
                put(h, "kl_bpd", kl)
                put(h, "decoder_nll_bpd", nll)
            put(h, "rescaled_kl", term * T)
    hybrid_vb = {}
    for m in MEAN_TYPES:
        for vt in LEARNED_TYPES:
            out2c = np.concatenate([outs[m], var_outs[vt]], axis=1)
            vb = vb_term_frozen_mean(tb, x0, xt, t, m, vt, out2c)
            mse = loss_simple(split_2c(out2c)[0], tg[m])
            scale = hybrid_scale(T)
            h = g.create_group(f"hybrid/{m}/{vt}")
            h.attrs["ref"] = "Nichol & Dhariwal 2021 §3.1; improved-diffusion training_losses with LossType.RESCALED_MSE"
            h.attrs["scale"] = scale
            h.attrs["formula"] = ("mse = mean_flat((mean_half - target)^2); vb_frozen_bpd = vb_bpd with the mean half detached "
                                  "(value equals vb/<m>/<vt>/vb_bpd); vb_term = vb_frozen_bpd * T/1000 (= lambda T L_t, lambda = 0.001); "
                                  "loss = mse + vb_term; loss_batch = mean(loss)")
            put(h, "mse", mse)
            put(h, "vb_frozen_bpd", vb)
            put(h, "vb_term", vb * scale)
            put(h, "loss", mse + vb * scale)
            put(h, "loss_batch", np.mean(mse + vb * scale))
            hybrid_vb[(m, vt)] = (mse, vb * scale)
    if not full:
        return simple
    snr = tb["snr"][t]
    put(g, "min_snr/snr", snr, formula="alphas_cumprod[t] / (1 - alphas_cumprod[t])")
    for gamma in GAMMAS:
        gg = g.create_group(f"min_snr/gamma_{gamma:g}")
        gg.attrs["gamma"] = gamma
        gg.attrs["ref"] = "Hang et al. 2023, min-SNR-gamma"
        for m in SNR_MEAN_TYPES:
            w = min_snr_weight(snr, gamma, m)
            put(gg, f"weight/{m}", w, formula={"eps": "min(SNR, gamma)/SNR", "x0": "min(SNR, gamma)", "v": "min(SNR, gamma)/(SNR + 1)"}[m])
            put(gg, f"simple/{m}", w * simple[m], formula="weight * simple")
            put(gg, f"simple_batch/{m}", np.mean(w * simple[m]), formula="mean over the batch of weight * simple")
            for vt in LEARNED_TYPES:
                mse, vbt = hybrid_vb[(m, vt)]
                put(gg, f"hybrid/{m}/{vt}", w * mse + vbt, formula="weight * mse + vb_term (the weight touches the simple term only)")
    return simple


def main():
    sys.path.insert(0, HERE)
    import make_diffusion_fixtures as mdf  # only to cross-check the shared conventions (asserts below)

    rng = np.random.default_rng(SEED)
    T = 1000
    tb = linear_tables(T)
    theirs = mdf.tables(mdf.schedule("linear", T))
    for k in theirs:
        if k in tb:
            assert np.array_equal(tb[k], theirs[k]), k
    N, C, H, W = 6, 2, 3, 3
    t = np.array([0, 1, 10, 150, 500, T - 1], dtype=np.int64)
    x0, noise, xt, tg, outs, var_outs, scale = make_inputs(rng, tb, t, C, H, W)

    with h5py.File(OUT, "w", libver=("v108", "v108")) as f:  # compact groups (HDF5 ≥ 1.8 format): keeps the file small
        f.attrs["generator"] = "Fixtures/make_objective_fixtures.py"
        f.attrs["description"] = "Parameterisations, variances and objectives of issue 9 (eps, x0, xprev, v; fixed/learned variances; simple, KL, rescaled KL, hybrid; min-SNR-gamma; loss-second-moment resampler)"
        f.attrs["schedule"] = "linear"
        f.attrs["timesteps"] = T
        f.attrs["beta_start"] = 1e-4
        f.attrs["beta_end"] = 0.02
        f.attrs["data_min"] = 0.0
        f.attrs["data_max"] = 1.0
        f.attrs["seed"] = SEED

        # ---------------------------------------------------------------- inputs
        i = f.create_group("inputs")
        put(i, "t", t, meaning="0-based timesteps")
        put(i, "x0", x0, meaning="data on the 256-level lattice of [0, 1]")
        put(i, "noise", noise, meaning="epsilon ~ N(0, I)")
        put(i, "x_t", xt, formula="sqrt(abar) x0 + sqrt(1 - abar) noise (Ho eq. 4)")
        for m in MEAN_TYPES:
            put(i, f"model_output/{m}", outs[m], meaning=f"a fixed C-channel model output read as {m}: targets/{m} + {scale[m]} * N(0, I)")
        put(i, "var_output/learned", var_outs["learned"], meaning="variance half of a learned model: log sigma^2 itself")
        put(i, "var_output/learned_range", var_outs["learned_range"], meaning="variance half of a learned-range model: raw output in about [-1.25, 1.25]")
        for m in MEAN_TYPES:
            for vt in LEARNED_TYPES:
                put(i, f"model_output_2c/{m}/{vt}", np.concatenate([outs[m], var_outs[vt]], axis=1),
                    meaning="2C-channel output: channels [0, C) = model_output/<m>, [C, 2C) = var_output/<vt>")

        # ---------------------------------------------------------------- whole-T tables
        tt = f.create_group("tables")
        tt.attrs["meaning"] = "full length-T tables of the linear schedule, indexed by 0-based t"
        put(tt, "snr", tb["snr"], formula="alphas_cumprod / (1 - alphas_cumprod)")
        for gamma in GAMMAS[:1]:
            for m in SNR_MEAN_TYPES:
                put(tt, f"min_snr_gamma_{gamma:g}/{m}", min_snr_weight(tb["snr"], gamma, m))

        # ---------------------------------------------------------------- targets
        g = f.create_group("targets")
        g.attrs["ref"] = "eps: Ho eq. 14; x0; xprev: Ho §3.2 / eq. 7; v: Salimans & Ho 2022 §4"
        put(g, "eps", tg["eps"], formula="noise")
        put(g, "x0", tg["x0"], formula="x0")
        put(g, "xprev", tg["xprev"], formula="posterior_mean_coef1 x0 + posterior_mean_coef2 x_t (Ho eq. 7)")
        put(g, "v", tg["v"], formula="sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022 §4, App. D)")

        # ---------------------------------------------------------------- conversions on the model outputs
        g = f.create_group("conversions")
        g.attrs["meaning"] = "conversions applied to inputs/model_output/<source> at inputs/x_t and inputs/t"
        put(g, "x0_from_eps", x0_from_eps(tb, xt, t, outs["eps"]), formula="(x_t - sqrt(1 - abar) eps) / sqrt(abar)")
        put(g, "v_from_eps", v_from_eps(tb, xt, t, outs["eps"]), formula="(eps - sqrt(1 - abar) x_t) / sqrt(abar)")
        put(g, "eps_from_x0", eps_from_x0(tb, xt, t, outs["x0"]), formula="(x_t - sqrt(abar) x0) / sqrt(1 - abar)")
        put(g, "v_from_x0", v_from_x0(tb, xt, t, outs["x0"]), formula="(sqrt(abar) x_t - x0) / sqrt(1 - abar)")
        put(g, "x0_from_v", x0_from_v(tb, xt, t, outs["v"]), formula="sqrt(abar) x_t - sqrt(1 - abar) v")
        put(g, "eps_from_v", eps_from_v(tb, xt, t, outs["v"]), formula="sqrt(1 - abar) x_t + sqrt(abar) v")
        put(g, "x0_from_xprev", x0_from_xprev(tb, xt, t, outs["xprev"]), formula="(xprev - coef2 x_t) / coef1")
        put(g, "xprev_from_x0", posterior_mean(tb, outs["x0"], xt, t), formula="coef1 x0 + coef2 x_t (Ho eq. 7)")
        put(g, "v_from_eps_x0", v_from_eps_x0(tb, t, outs["eps"], outs["x0"]),
            formula="sqrt(abar) eps - sqrt(1 - abar) x0 with eps = model_output/eps, x0 = model_output/x0 (no x_t)")

        # ---------------------------------------------------------------- variances
        g = f.create_group("variance")
        g.attrs["meaning"] = "variance and log-variance of p_theta(x_{t-1}|x_t) at inputs/t; fixed types (N,), learned types (N,C,H,W)"
        for vt in ("fixed_small", "fixed_large", "fixed_large_ho", "learned", "learned_range"):
            v, lv = model_variance(tb, vt, t, var_outs.get(vt))
            h = g.create_group(vt)
            h.attrs["ref"] = {
                "fixed_small": "Ho et al. 2020 §3.2: sigma^2 = beta-tilde_t, log clipped (log beta-tilde_1 at t = 0)",
                "fixed_large": "improved-diffusion FIXED_LARGE: variance and log both append(beta-tilde_1, betas[1:])",
                "fixed_large_ho": "Ho diffusion_utils_2 'fixedlarge': variance betas, log log(append(beta-tilde_1, betas[1:]))",
                "learned": "Ho 'learned' / improved-diffusion LEARNED: the variance half is log sigma^2",
                "learned_range": "Nichol & Dhariwal 2021 eq. 15 with v = (out + 1)/2 (improved-diffusion)",
            }[vt]
            put(h, "variance", v)
            put(h, "log_variance", lv)
            if vt == "learned_range":
                put(h, "frac", learned_range_frac(var_outs[vt]), formula="(out + 1)/2")
        ones = np.ones((N, C, H, W))
        _, lv_m1 = learned_range(tb, t, -ones)
        _, lv_p1 = learned_range(tb, t, ones)
        put(g, "learned_range_endpoints/log_variance_at_minus1", lv_m1[:, 0, 0, 0], formula="= posterior_log_variance_clipped[t] exactly")
        put(g, "learned_range_endpoints/log_variance_at_plus1", lv_p1[:, 0, 0, 0], formula="= log(betas[t]) exactly (log beta_0 at t = 0)")

        # ---------------------------------------------------------------- p_θ means
        g = f.create_group("p")
        g.attrs["meaning"] = "mean and x0-prediction of p_theta(x_{t-1}|x_t) from inputs/model_output/<mean type>; independent of the variance type (the learned types take the same mean half, checked by the generator); clip = clip x0-hat to [0, 1]"
        for m in MEAN_TYPES:
            for clip in (True, False):
                mean, px0 = p_mean(tb, m, outs[m], xt, t, clip)
                h = g.create_group(f"{m}/{'clip' if clip else 'noclip'}")
                put(h, "mean", mean)
                put(h, "pred_x0", px0)
                # The same mean from the 2C outputs (mean part first) for the learned types.
                for vt in LEARNED_TYPES:
                    mh, _ = split_2c(np.concatenate([outs[m], var_outs[vt]], axis=1))
                    assert np.array_equal(p_mean(tb, m, mh, xt, t, clip)[0], mean)

        # ---------------------------------------------------------------- losses (T = 1000)
        simple = write_losses(f.create_group("losses"), tb, T, t, x0, xt, tg, outs, var_outs)
        f["losses"].attrs["meaning"] = "per-sample losses (N,) on the T = 1000 inputs; bound terms without clipping, as in training"

        # ---------------------------------------------------------------- losses at T = 20 (T/1000 ≠ 1)
        T20 = 20
        tb20 = linear_tables(T20)
        t20 = np.array([0, 1, 10, 19], dtype=np.int64)
        s20 = make_inputs(rng, tb20, t20, C, H, W)
        x0b, noiseb, xtb, tgb, outsb, varb, _ = s20
        g = f.create_group("T20")
        g.attrs["meaning"] = "the same losses on a T = 20 linear schedule (linspace(1e-4, 0.02, 20)), where the hybrid scale T/1000 = 0.02 and rescaled KL = x20"
        g.attrs["timesteps"] = T20
        put(g, "inputs/t", t20)
        put(g, "inputs/x0", x0b)
        put(g, "inputs/noise", noiseb)
        put(g, "inputs/x_t", xtb)
        for m in MEAN_TYPES:
            put(g, f"inputs/model_output/{m}", outsb[m])
        for vt in LEARNED_TYPES:
            put(g, f"inputs/var_output/{vt}", varb[vt])
        for k, v in targets(tb20, x0b, xtb, t20, noiseb).items():
            put(g, f"targets/{k}", v)
        write_losses(g.create_group("losses"), tb20, T20, t20, x0b, xtb, tgb, outsb, varb, full=False)

        # ---------------------------------------------------------------- the resampler
        write_resampler(f.create_group("resampler"), rng)

        self_checks(tb, t, x0, noise, xt, tg, outs, var_outs, f, mdf)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


def write_resampler(g, rng):
    Tr, Hh, up = 20, 10, 0.001
    g.attrs["timesteps"] = Tr
    g.attrs["history_per_term"] = Hh
    g.attrs["uniform_prob"] = up
    g.attrs["ref"] = "Nichol & Dhariwal 2021 §3.3; improved-diffusion resample.py LossSecondMomentResampler"
    # A fixed, warmed-up loss history: positive losses whose scale falls with t (as L_t does).
    scale = np.exp(-np.arange(Tr) / 4.0)[:, None]
    history = scale * rng.lognormal(0.0, 0.5, (Tr, Hh))
    counts = np.full(Tr, Hh, dtype=np.int64)
    w = resampler_weights(history, counts, Hh, up)
    p = resampler_probabilities(w)
    ts = np.array([0, 1, 5, 10, 19, 19], dtype=np.int64)
    sample_losses = rng.uniform(0.5, 2.0, len(ts))
    h = g.create_group("warm")
    put(h, "loss_history", history, meaning="(T, history) losses, oldest first")
    put(h, "loss_counts", counts)
    put(h, "weights", w, formula="sqrt(mean(history^2, axis=-1)); /sum; *(1 - 0.001); + 0.001/T")
    put(h, "probabilities", p, formula="weights / sum(weights)")
    put(h, "t", ts)
    put(h, "sample_weights", importance_weights(p, ts), formula="1 / (T p_t)")
    put(h, "sample_losses", sample_losses, meaning="fixed per-sample losses to weight")
    put(h, "weighted_losses", importance_weights(p, ts) * sample_losses, formula="sample_weights * sample_losses")
    put(h, "weighted_loss_batch", np.mean(importance_weights(p, ts) * sample_losses), formula="mean of weighted_losses")
    # Not yet warmed up: one timestep has only 9 losses -> uniform.
    hist_cold = history.copy()
    counts_cold = counts.copy()
    counts_cold[7] = Hh - 1
    hist_cold[7, Hh - 1] = 0.0
    wc = resampler_weights(hist_cold, counts_cold, Hh, up)
    pc = resampler_probabilities(wc)
    h = g.create_group("cold")
    put(h, "loss_history", hist_cold)
    put(h, "loss_counts", counts_cold, meaning="t = 7 has 9 of 10 losses: not warmed up")
    put(h, "weights", wc, formula="ones(T)")
    put(h, "probabilities", pc, formula="1/T")
    put(h, "t", ts)
    put(h, "sample_weights", importance_weights(pc, ts), formula="1 / (T p_t) = 1")
    # A stream of updates from the empty state: pins the fill order, the shift-out of the oldest loss and
    # the moment warm-up ends.  Batches of 8 (t, loss) pairs applied in order.
    B, per = 40, 8
    up_t = rng.integers(0, Tr, size=(B, per)).astype(np.int64)
    up_l = rng.lognormal(0.0, 0.5, (B, per)) * np.exp(-up_t / 4.0)
    hist = np.zeros((Tr, Hh))
    cnt = np.zeros(Tr, dtype=np.int64)
    probs, warm = [], []
    for b in range(B):
        resampler_update(hist, cnt, up_t[b], up_l[b], Hh)
        probs.append(resampler_probabilities(resampler_weights(hist, cnt, Hh, up)))
        warm.append(int((cnt == Hh).all()))
    warm = np.array(warm, dtype=np.int64)
    assert warm[0] == 0 and warm[-1] == 1, "the update stream must cover both the cold and the warm state"
    assert (cnt == Hh).all() and np.bincount(up_t.ravel(), minlength=Tr).max() > Hh, "some t must shift out old losses"
    h = g.create_group("stream")
    h.attrs["meaning"] = "updates applied in order from an empty state (history zeros, counts zeros)"
    put(h, "t", up_t, meaning="(batches, 8) timesteps, applied row by row, left to right")
    put(h, "losses", up_l, meaning="(batches, 8) the losses recorded with them")
    put(h, "warmed_up_after_batch", warm, meaning="1 once every t has 10 losses")
    put(h, "probabilities_after_batch", np.array(probs), meaning="(batches, T) p_t after each batch")
    put(h, "final_loss_history", hist)
    put(h, "final_loss_counts", cnt)


# ============================================================================ self-checks (catch typos in this oracle)
def self_checks(tb, t, x0, noise, xt, tg, outs, var_outs, f, mdf):
    N = len(t)
    ab = at(tb, "alphas_cumprod", t)

    def close(a, b, rtol, atol, what):
        err = np.max(np.abs(a - b) / (atol + rtol * np.abs(b)))
        assert err <= 1.0, f"{what}: worst ratio {err}"
        return err

    # The v-target identities (S&H §4): x0 = √ᾱ x_t − √(1−ᾱ) v, ε = √(1−ᾱ) x_t + √ᾱ v, and v from (ε, x_t).
    v = tg["v"]
    close(x0_from_v(tb, xt, t, v), x0, 0, 1e-14, "x0 from the true v")
    close(eps_from_v(tb, xt, t, v), noise, 0, 1e-14, "eps from the true v")
    close(v_from_eps(tb, xt, t, noise), v, 1e-11, 1e-13, "v from the true eps")
    close(v_from_x0(tb, xt, t, x0), v, 1e-11, 1e-11, "v from the true x0")
    # v = dx_t/dφ with x_t = cos φ x0 + sin φ ε, cos φ = √ᾱ (S&H §4's angular form), central difference.
    phi = np.arctan2(np.sqrt(1 - ab), np.sqrt(ab))
    h = 1e-6
    dxdphi = ((np.cos(phi + h) * x0 + np.sin(phi + h) * noise) - (np.cos(phi - h) * x0 + np.sin(phi - h) * noise)) / (2 * h)
    close(dxdphi, v, 0, 1e-8, "v = dx_t/dphi")
    # |v|² + |x_t|² = |x0|² + |ε|² elementwise (a rotation by φ).
    close(v ** 2 + xt ** 2, x0 ** 2 + noise ** 2, 1e-13, 1e-13, "rotation preserves norm")
    # Conversions round-trip on the model outputs.  The bound scales with each conversion's conditioning:
    # through ε, x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ multiplies the rounding of |x_t| by 1/√ᾱ (157 at t = 999).
    eps_u = 2.0 ** -52
    for src, fwd, back in (("eps", x0_from_eps, eps_from_x0), ("x0", eps_from_x0, x0_from_eps),
                           ("eps", v_from_eps, eps_from_v), ("v", eps_from_v, v_from_eps),
                           ("x0", v_from_x0, x0_from_v), ("v", x0_from_v, v_from_x0)):
        a = outs[src]
        rt = back(tb, xt, t, fwd(tb, xt, t, a))
        cond = (1 / np.sqrt(ab) + 1 / np.sqrt(1 - ab)) ** 2 * (1 + np.abs(xt) + np.abs(a))
        close(rt, a, 0, 16 * eps_u * cond, f"round trip {src} via {fwd.__name__}")
        ulps = np.abs(rt - a) / (eps_u * (1 + np.abs(xt) + np.abs(a)))
        print(f"round trip {src:>3} -> {fwd.__name__:<11} -> back: worst |error| / (2^-52 (1 + |x_t| + |a|)) per t",
              dict(zip(t.tolist(), np.round(ulps.reshape(len(t), -1).max(axis=1), 1).tolist())))
    # x̂0 → μ̃ → x̂0.
    close(x0_from_xprev(tb, xt, t, posterior_mean(tb, outs["x0"], xt, t)), outs["x0"], 1e-9, 1e-9, "x0 -> xprev -> x0")
    # v_from_eps equals the composition √ᾱ ε̂ − √(1−ᾱ) x̂0(ε̂).
    close(v_from_eps(tb, xt, t, outs["eps"]), v_from_eps_x0(tb, t, outs["eps"], x0_from_eps(tb, xt, t, outs["eps"])), 1e-10, 1e-10, "v_from_eps composition")
    close(v_from_x0(tb, xt, t, outs["x0"]), v_from_eps_x0(tb, t, eps_from_x0(tb, xt, t, outs["x0"]), outs["x0"]), 1e-10, 1e-10, "v_from_x0 composition")
    # Exact predictors: each mean type's target gives the posterior mean (fixed-small p = q posterior).
    post = posterior_mean(tb, x0, xt, t)
    for m in MEAN_TYPES:
        mean, px0 = p_mean(tb, m, tg[m], xt, t, clip=False)
        close(mean, post, 1e-9, 1e-12, f"exact {m} predictor gives the posterior mean")
        assert np.all(loss_simple(tg[m], tg[m]) == 0.0)
    # Ho eq. 11 for ε without clipping.
    eq11 = (xt - at(tb, "betas", t) / at(tb, "sqrt_one_minus_alphas_cumprod", t) * outs["eps"]) / np.sqrt(at(tb, "alphas", t))
    close(p_mean(tb, "eps", outs["eps"], xt, t, clip=False)[0], eq11, 1e-10, 1e-12, "Ho eq. 11")
    # Learned range endpoints, exactly; midpoint is the geometric mean.
    ones = np.ones((N, 1, 1, 1))
    assert np.array_equal(learned_range(tb, t, -ones)[1][:, 0, 0, 0], tb["posterior_log_variance_clipped"][t])
    assert np.array_equal(learned_range(tb, t, ones)[1][:, 0, 0, 0], np.log(tb["betas"][t]))
    assert np.array_equal(f["variance/learned_range_endpoints/log_variance_at_minus1"][()], tb["posterior_log_variance_clipped"][t])
    assert np.array_equal(f["variance/learned_range_endpoints/log_variance_at_plus1"][()], np.log(tb["betas"][t]))
    mid = learned_range(tb, t, 0 * ones)[0][:, 0, 0, 0]
    close(mid, np.sqrt(np.exp(tb["posterior_log_variance_clipped"][t]) * tb["betas"][t]), 1e-14, 0, "learned range midpoint")
    # The +1 end at t = 0 is log β_0, distinct from fixed-large's log β̃_1.
    assert t[0] == 0 and learned_range(tb, t, ones)[1][0, 0, 0, 0] != fixed_large(tb, t)[1][0]
    # Fixed-large conventions: equal logs everywhere; variances differ only at t = 0.
    allt = np.arange(len(tb["betas"]))
    a, b = fixed_large(tb, allt), fixed_large_ho(tb, allt)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0][1:], b[0][1:]) and a[0][0] != b[0][0]
    assert np.array_equal(fixed_large(tb, t)[0], mdf.p_mean_variance(mdf.tables(mdf.schedule("linear", 1000)), outs["eps"], xt, t, "eps", "large", False, 0, 1)[1])
    # Learned with out = log β̃ (clipped) equals fixed small's log.
    assert np.array_equal(learned(at(tb, "posterior_log_variance_clipped", t))[1][:, 0, 0, 0], fixed_small(tb, t)[1])
    # Bound terms agree with make_diffusion_fixtures.py for ε / fixed small (its vb_terms_bpd, clip off).
    theirs, _, _ = mdf.vb_terms_bpd(mdf.tables(mdf.schedule("linear", 1000)), outs["eps"], x0, xt, t, False, 0.0, 1.0)
    assert np.array_equal(f["losses/vb/eps/fixed_small/vb_bpd"][()], theirs)
    # The decoder convention matches make_diffusion_fixtures.py's.
    ls = np.full(x0.shape, -4.0)
    assert np.array_equal(decoder_log_likelihood(x0, outs["x0"], ls), mdf.discretized_gaussian_loglik(x0, outs["x0"], ls, 0.0, 1.0))
    # The bound with the exact mean and fixed-small variance: KL = 0 for t > 0.
    term, kl, _ = bound_terms(tb, x0, xt, t, post, fixed_small(tb, t)[1])
    assert np.all(np.abs(kl[t > 0]) < 1e-12)
    # The frozen-mean term equals the unfrozen one value-wise; hybrid at T = 1000 has scale exactly 1.
    for m in MEAN_TYPES:
        for vt in LEARNED_TYPES:
            assert np.array_equal(f[f"losses/hybrid/{m}/{vt}/vb_frozen_bpd"][()], f[f"losses/vb/{m}/{vt}/vb_bpd"][()])
            assert np.array_equal(f[f"T20/losses/hybrid/{m}/{vt}/vb_term"][()], f[f"T20/losses/vb/{m}/{vt}/vb_bpd"][()] * 0.02)
            assert np.array_equal(f[f"losses/hybrid/{m}/{vt}/mse"][()], f[f"losses/simple/{m}"][()])
    # λ-equivalence: λ L_vlb with L_vlb ≈ T L_t (uniform t) is (T/1000) L_t.
    assert HYBRID_LAMBDA * 1000 == hybrid_scale(1000) and abs(HYBRID_LAMBDA * 20 - hybrid_scale(20)) < 1e-17
    # Min-SNR: weights at γ ≥ SNR are 1 (eps), SNR (x0), SNR/(SNR+1) (v); the three weight the same
    # x̂0 error equally: w_eps ‖ε̂−ε‖² = w_x0 ‖x̂0−x0‖² = w_v ‖v̂−v‖² when all come from one x̂0 (SNR identity).
    snr = tb["snr"][t]
    for gamma in GAMMAS:
        we, wx, wv = (min_snr_weight(snr, gamma, m) for m in SNR_MEAN_TYPES)
        d_x0 = outs["x0"] - x0
        e_eps = mean_flat((eps_from_x0(tb, xt, t, outs["x0"]) - noise) ** 2)
        e_v = mean_flat((v_from_x0(tb, xt, t, outs["x0"]) - v) ** 2)
        e_x0 = mean_flat(d_x0 ** 2)
        close(we * e_eps, wx * e_x0, 1e-9, 0, "min-SNR eps vs x0 weighting")
        close(wv * e_v, wx * e_x0, 1e-9, 0, "min-SNR v vs x0 weighting")
    try:
        min_snr_weight(snr, 5.0, "xprev")
        raise AssertionError("min-SNR for xprev must raise")
    except ValueError:
        pass
    # Resampler: probabilities sum to 1, floor uniform_prob/T, uniform when cold.
    p = f["resampler/warm/probabilities"][()]
    assert abs(p.sum() - 1) < 1e-15 and p.min() >= 0.001 / 20
    assert np.all(f["resampler/cold/probabilities"][()] == 1 / 20) and np.all(f["resampler/cold/sample_weights"][()] == 1.0)
    hist = f["resampler/warm/loss_history"][()]
    q = np.sqrt((hist ** 2).mean(axis=1))
    close(p, 0.999 * q / q.sum() + 0.001 / 20, 1e-15, 0, "resampler probabilities")
    # The stream's final history: each t's last 10 losses in order.
    st, sl = f["resampler/stream/t"][()].ravel(), f["resampler/stream/losses"][()].ravel()
    fh = f["resampler/stream/final_loss_history"][()]
    for s in range(20):
        assert np.array_equal(fh[s], sl[st == s][-10:])
    print("self-checks passed")


if __name__ == "__main__":
    main()
