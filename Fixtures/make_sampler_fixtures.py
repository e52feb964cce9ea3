"""Reference tensors for the fast and exact samplers (respacing, DDIM with eta, inversion, slerp, dynamic
thresholding, zero terminal SNR, and closed-form output laws for Gaussian data), written with numpy.

This file is an independent oracle: it is written from the papers and from the documented conventions of
the two reference code bases (improved-diffusion, diffusers), not from the Swift code it checks.
Every quantity is float64, timesteps are 0-based (t = 0 ... T-1), the default schedule is the linear one
(beta from 1e-4 to 0.02 over T steps, NOT rescaled by 1000/T), data live in [0, 1] unless said otherwise.
Running it twice gives identical datasets (fixed seeds, no timestamps).

Sources:
  [DDIM]   Song, Meng & Ermon (2021), "Denoising Diffusion Implicit Models": eq. 12 (the step), eq. 16
           (sigma_t(eta)), sec. 4.3 (ODE, inversion), sec. 5.3 (slerp between latents).
  [IDDPM]  Nichol & Dhariwal (2021), "Improved DDPM", sec. 4 and its code improved-diffusion
           (respace.space_timesteps, SpacedDiffusion, gaussian_diffusion.ddim_sample / ddim_reverse_sample).
  [HF]     diffusers' DDIMScheduler / DDPMScheduler: timestep_spacing linspace / leading / trailing,
           steps_offset, set_alpha_to_one, use_clipped_model_output, _threshold_sample.
  [Imagen] Saharia et al. (2022), sec. 2.3, dynamic thresholding.
  [ZSNR]   Lin, Liu, Li & Yang (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed",
           Algorithm 1 (rescale to zero terminal SNR) and Table 2 (the three spacings).
  [Ho]     Ho, Jain & Abbeel (2020), eqs. 4, 6, 7 (the house's GaussianDiffusion tables).

Run:  python3 Fixtures/make_sampler_fixtures.py      (writes Fixtures/samplers.h5)
Layout and every convention: see Fixtures/README.md, section "samplers.h5".
"""
import math
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "samplers.h5")
BETA_START, BETA_END = 1e-4, 0.02


# ============================================================================= schedule and tables
def linear_betas(T, start=BETA_START, end=BETA_END):
    """Ho et al. (2020) sec. 4: beta_t = linspace(1e-4, 0.02, T), t = 0 ... T-1 (the house's default; unlike
    improved-diffusion's "linear" it is not scaled by 1000/T)."""
    return np.linspace(start, end, T, dtype=np.float64)


def tables(betas):
    """Every table the house derives from a beta sequence [Ho eqs. 4, 6, 7; IDDPM gaussian_diffusion]:
        alphas = 1 - beta,  abar = cumprod(alphas),  abar_prev = [1, abar[:-1]],  abar_next = [abar[1:], 0],
        posterior_variance = beta (1 - abar_prev) / (1 - abar)                      (Ho eq. 7, beta-tilde)
        posterior_log_variance_clipped = log([posterior_variance[1], posterior_variance[1:]])
        posterior_mean_coef1 = beta sqrt(abar_prev) / (1 - abar)
        posterior_mean_coef2 = (1 - abar_prev) sqrt(alphas) / (1 - abar)
    Shapes: all (N,) for N betas (N >= 2)."""
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.concatenate([[1.0], ac[:-1]])
    ac_next = np.concatenate([ac[1:], [0.0]])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    with np.errstate(divide="ignore"):
        return {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "alphas_cumprod_next": ac_next,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1.0),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": np.log(np.concatenate([[post_var[1]], post_var[1:]])),
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
        }


def ulp_distance(a, b):
    """Distance in units in the last place between two float64 arrays of the same sign (0 where equal)."""
    ia = np.asarray(a, dtype=np.float64).view(np.int64)
    ib = np.asarray(b, dtype=np.float64).view(np.int64)
    return np.abs(ia - ib)


# ============================================================================= respacing
def py_round(x):
    """Python's round(): to the nearest integer, ties to even (round(6.5) = 6, round(7.5) = 8). numpy's
    np.round uses the same rule. Swift: x.rounded(.toNearestOrEven)."""
    return int(round(x))


def space_timesteps_improved(T, section_counts):
    """improved-diffusion respace.space_timesteps [IDDPM], re-derived from its documented behaviour:

    "ddimN": the smallest integer stride k in 1 ... T-1 with len(range(0, T, k)) = ceil(T / k) = N; kept
             steps are 0, k, 2k, ... (never T-1 unless k = 1). No such k is an error.
    "c_1,c_2,...,c_m": the T steps are cut into m consecutive sections; section j has
             size_j = T // m + (1 if j < T % m else 0) steps starting at start_j = size_0 + ... + size_{j-1};
             c_j > size_j is an error. Within a section, stride = (size_j - 1)/(c_j - 1) (stride 1 if c_j <= 1);
             idx is ACCUMULATED by repeated float64 addition idx += stride starting at 0.0, and the kept
             steps are start_j + round(idx) for the c_j values of idx, round = ties-to-even (py_round).
    Returns the kept original timesteps sorted ascending (the code returns a set; SpacedDiffusion walks
    0 ... T-1 so its timestep_map is ascending)."""
    if section_counts.startswith("ddim"):
        n = int(section_counts[len("ddim"):])
        for k in range(1, T):
            if len(range(0, T, k)) == n:
                return sorted(range(0, T, k))
        raise ValueError(f"cannot create exactly {n} steps with an integer stride")
    counts = [int(c) for c in section_counts.split(",")]
    size_per, extra = T // len(counts), T % len(counts)
    start, kept = 0, []
    for j, c in enumerate(counts):
        size = size_per + (1 if j < extra else 0)
        if size < c:
            raise ValueError(f"cannot divide section of {size} steps into {c}")
        stride = 1.0 if c <= 1 else (size - 1) / (c - 1)
        idx = 0.0
        for _ in range(c):
            kept.append(start + py_round(idx))
            idx += stride
        start += size
    return sorted(set(kept))


def diffusers_timesteps(T, N, spacing, steps_offset=0):
    """diffusers set_timesteps for DDIMScheduler and DDPMScheduler [HF; ZSNR Table 2], in SAMPLING order
    (descending), as scheduler.timesteps:
      linspace: round(linspace(0, T-1, N)) (ties to even), reversed.       Keeps 0 and T-1.
                linspace's values are i * ((T-1)/(N-1)) with the last set to T-1 exactly (asserted); ties
                happen: T = 40, N = 7 has 6.5 -> 6, 19.5 -> 20, 32.5 -> 32.
      leading:  (arange(N) * (T // N)) + steps_offset, reversed.           Never keeps T-1 (unless offset
                pushes it there); keeps 0 only when steps_offset = 0.
      trailing: round(T - i * (T / N)) - 1 for i = 0 ... N-1 (ties to even). Keeps T-1; its last step is
                round(T/N) - 1, so it keeps 0 only when N = T.
    The trailing values are computed here as T - i*(T/N) and asserted equal to diffusers' own
    np.round(np.arange(T, 0, -T/N)) - 1 after rounding."""
    if spacing == "linspace":
        ts = np.round(np.linspace(0, T - 1, N))[::-1].astype(np.int64)
        mine = np.array([i * ((T - 1) / (N - 1)) for i in range(N - 1)] + [float(T - 1)])
        assert np.array_equal(mine, np.linspace(0, T - 1, N)), (T, N)
    elif spacing == "leading":
        ts = (np.arange(0, N) * (T // N))[::-1].astype(np.int64) + steps_offset
    elif spacing == "trailing":
        ratio = T / N
        ts = np.array([np.round(T - i * ratio) for i in range(N)], dtype=np.int64) - 1
        ref = np.round(np.arange(T, 0, -ratio)).astype(np.int64) - 1
        assert np.array_equal(ts, ref), (T, N, ts, ref)
    else:
        raise ValueError(spacing)
    assert len(ts) == N and np.all(np.diff(ts) < 0) and ts[0] <= T - 1 and ts[-1] >= 0, (T, N, spacing, ts)
    return ts


def respaced_betas(ac, kept):
    """Respacing [IDDPM sec. 4; SpacedDiffusion]: over the kept steps s_0 < s_1 < ... < s_{N-1},
        beta'_i = 1 - abar_{s_i} / abar_{s_{i-1}},   abar_{s_{-1}} = 1  (so beta'_0 = 1 - abar_{s_0}).
    The respaced chain's tables are then tables(beta') and its abar' = cumprod(1 - beta') equals abar at the
    kept steps up to rounding. The network is called with the ORIGINAL timestep timestep_map[i] = s_i."""
    out, last = [], 1.0
    for s in kept:
        out.append(1.0 - ac[s] / last)
        last = ac[s]
    return np.array(out, dtype=np.float64)


# ============================================================================= DDIM
def ddim_sigma(abar_t, abar_prev, eta):
    """[DDIM eq. 16]: sigma_t(eta) = eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev),
    where abar_prev is the alpha-bar of the step's target. eta = 1 gives sqrt(beta-tilde) on the full chain
    (Ho's fixed-small variance); eta = 0 is the deterministic DDIM."""
    return eta * np.sqrt((1.0 - abar_prev) / (1.0 - abar_t)) * np.sqrt(1.0 - abar_t / abar_prev)


def x0_from_eps(x, abar, eps):
    """x0-hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)  (inverse of Ho eq. 4 / DDIM eq. 12's 'predicted x0')."""
    return (x - np.sqrt(1.0 - abar) * eps) / np.sqrt(abar)


def eps_from_x0(x, abar, x0):
    """eps = (x_t - sqrt(abar_t) x0-hat) / sqrt(1 - abar_t): the noise re-derived from a (clipped) x0-hat."""
    return (x - np.sqrt(abar) * x0) / np.sqrt(1.0 - abar)


def quantile_linear(a, p):
    """Quantile with linear interpolation (numpy's default method "linear", torch.quantile's default):
    sort the n values a_(0) <= ... <= a_(n-1); h = (n - 1) p; k = floor(h); g = h - k;
        q = a_(k) + g (a_(k+1) - a_(k))          (q = a_(n-1) when k = n - 1).
    numpy evaluates the same interpolation as a_(k+1) - (1 - g)(a_(k+1) - a_(k)) when g >= 0.5; the two
    agree to an ULP or so (asserted in main against np.quantile)."""
    s = np.sort(np.asarray(a, dtype=np.float64).ravel())
    n = s.size
    h = (n - 1) * p
    k = int(math.floor(h))
    if k >= n - 1:
        return s[-1]
    g = h - k
    return s[k] + g * (s[k + 1] - s[k])


def dynamic_threshold(x0, p, s_max):
    """Dynamic thresholding [Imagen sec. 2.3; HF _threshold_sample], on x0-hat in [-1, 1] units, per sample
    (over all C*H*W values of each sample):
        s = clamp(quantile_p(|x0|), 1, s_max),   x0 <- clamp(x0, -s, s) / s.
    s_max = 1 (diffusers' default sample_max_value) makes it static clipping to [-1, 1]; Imagen has no upper
    limit (s_max = inf). Returns (thresholded x0, s of shape (B,))."""
    B = x0.shape[0]
    s = np.array([min(max(quantile_linear(np.abs(x0[b]), p), 1.0), s_max) for b in range(B)])
    sb = s.reshape((B,) + (1,) * (x0.ndim - 1))
    return np.clip(x0, -sb, sb) / sb, s


def to_pm1(x, lo, hi):
    """Data range [lo, hi] -> [-1, 1]: y = (2 x - (lo + hi)) / (hi - lo)."""
    return (2.0 * x - (lo + hi)) / (hi - lo)


def from_pm1(y, lo, hi):
    """[-1, 1] -> data range [lo, hi]: x = (y (hi - lo) + (lo + hi)) / 2."""
    return (y * (hi - lo) + (lo + hi)) / 2.0


def process_x0(x0, mode, lo, hi, p=0.995, s_max=math.inf):
    """x0-hat post-processing: "none"; "clip" = clamp(x0, lo, hi) (static clipping to the data range);
    "dynamic" = map to [-1, 1], dynamic_threshold(p, s_max), map back to [lo, hi]."""
    if mode == "none":
        return x0
    if mode == "clip":
        return np.clip(x0, lo, hi)
    if mode == "dynamic":
        y, _ = dynamic_threshold(to_pm1(x0, lo, hi), p, s_max)
        return from_pm1(y, lo, hi)
    raise ValueError(mode)


def ddim_step(x, eps_model, abar_t, abar_prev, eta, z, mode, rederive, lo, hi, p=0.995, s_max=math.inf):
    """One DDIM step [DDIM eq. 12] from x_t to the step's target ("t-1"):
        x0-hat = x0_from_eps(x_t, abar_t, eps_model), post-processed (process_x0);
        eps    = eps_from_x0(x_t, abar_t, x0-hat)  if rederive   (improved-diffusion: always;
                                                                   diffusers: use_clipped_model_output=True)
                 eps_model                          otherwise     (diffusers' default);
        sigma  = ddim_sigma(abar_t, abar_prev, eta)                                    [DDIM eq. 16]
        x_prev = sqrt(abar_prev) x0-hat + sqrt(1 - abar_prev - sigma^2) eps + sigma z.
    abar_t, abar_prev are per-sample (B,) arrays. With abar_prev = 1 (the last step under improved-diffusion or
    set_alpha_to_one) sigma = 0 and x_prev = x0-hat, so improved-diffusion's "no noise at t = 0" mask changes
    nothing. Returns (x_prev, x0-hat, eps used, sigma)."""
    sh = (-1,) + (1,) * (x.ndim - 1)
    at, ap = abar_t.reshape(sh), abar_prev.reshape(sh)
    x0 = process_x0(x0_from_eps(x, at, eps_model), mode, lo, hi, p, s_max)
    eps = eps_from_x0(x, at, x0) if rederive else eps_model
    sig = ddim_sigma(abar_t, abar_prev, eta)
    sg = sig.reshape(sh)
    xp = np.sqrt(ap) * x0 + np.sqrt(1.0 - ap - sg ** 2) * eps + sg * z
    return xp, x0, eps, sig


def ddim_reverse_step(x, eps_model, abar_t, abar_next, mode, lo, hi):
    """One deterministic DDIM inversion step [DDIM sec. 4.3; IDDPM ddim_reverse_sample], eta = 0:
    the state x at chain index i (alpha-bar abar_i) goes to index i+1 (abar_next = alphas_cumprod_next[i],
    which is 0 at the last index):
        x0-hat = x0_from_eps(x, abar_i, eps_model) (post-processed),  eps = eps_from_x0(x, abar_i, x0-hat) when
        processed (improved-diffusion re-derives always; unprocessed, the two are equal and eps_model is used),
        x_next = sqrt(abar_next) x0-hat + sqrt(1 - abar_next) eps.
    Index convention (improved-diffusion): the image is the state AT INDEX 0 (alpha-bar abar_0 = 1 - beta_0,
    not 1); the network is evaluated at index i (original timestep timestep_map[i] on a respaced chain)."""
    sh = (-1,) + (1,) * (x.ndim - 1)
    at, an = abar_t.reshape(sh), abar_next.reshape(sh)
    x0 = process_x0(x0_from_eps(x, at, eps_model), mode, lo, hi)
    eps = eps_model if mode == "none" else eps_from_x0(x, at, x0)
    return np.sqrt(an) * x0 + np.sqrt(1.0 - an) * eps, x0, eps


def ancestral_step(tb, i, x, eps_model, z, mode, var_type, lo, hi):
    """One ancestral step of Ho's sampler on a (possibly respaced) chain with tables tb [Ho eqs. 6-7, 11]:
        x0-hat = x0_from_eps(x, abar_i, eps_model) (post-processed),
        mean = posterior_mean_coef1[i] x0-hat + posterior_mean_coef2[i] x,
        x_prev = mean + [i > 0] sqrt(var_i) z,   var = posterior_variance ("small") or
                 [posterior_variance[1], beta'[1:]] ("large", improved-diffusion's fixed-large)."""
    ab = tb["alphas_cumprod"][i]
    x0 = process_x0(x0_from_eps(x, ab, eps_model), mode, lo, hi)
    mean = tb["posterior_mean_coef1"][i] * x0 + tb["posterior_mean_coef2"][i] * x
    if var_type == "small":
        var = tb["posterior_variance"][i]
    else:
        var = tb["posterior_variance"][1] if i == 0 else tb["betas"][i]
    return (mean + np.sqrt(var) * z if i > 0 else mean), x0


# ============================================================================= zero terminal SNR, slerp
def rescale_zero_terminal_snr(betas):
    """[ZSNR Algorithm 1]: shift and scale sqrt(abar) so that the last value is 0 and the first unchanged:
        a = sqrt(cumprod(1 - beta));  a0 = a[0];  aT = a[-1];
        a <- a0 * ((a - aT) / (a0 - aT))              (this operation order makes a[0] == a0 and a[-1] == 0 exact;
                                                       Algorithm 1 writes (a - aT) * (a0 / (a0 - aT)), the same
                                                       number up to rounding: 1 ULP off at a[0] for T = 1000)
        abar = a^2;  alphas = [abar[0], abar[1:] / abar[:-1]];  beta = 1 - alphas   (the last beta is exactly 1).
    Returns (rescaled betas, the rescaled sqrt(abar) a, a in Algorithm 1's literal operation order)."""
    a = np.sqrt(np.cumprod(1.0 - betas))
    a0, aT = a[0], a[-1]
    literal = (a - aT) * (a0 / (a0 - aT))
    a = a0 * ((a - aT) / (a0 - aT))
    abar = a ** 2
    alphas = np.concatenate([abar[:1], abar[1:] / abar[:-1]])
    return 1.0 - alphas, a, literal


def log_snr(abar):
    """log SNR_t = log(abar_t / (1 - abar_t)) (-inf where abar = 0)."""
    with np.errstate(divide="ignore"):
        return np.log(abar) - np.log1p(-abar)


def slerp(z0, z1, alpha):
    """Spherical interpolation [DDIM sec. 5.3], per sample over all C*H*W values:
        theta = arccos(clamp(<z0, z1> / (|z0| |z1|), -1, 1)),
        slerp = sin((1 - alpha) theta) / sin(theta) z0 + sin(alpha theta) / sin(theta) z1.
    z0, z1: (B, C, H, W); returns (B, C, H, W) and theta (B,)."""
    B = z0.shape[0]
    a, b = z0.reshape(B, -1), z1.reshape(B, -1)
    cos = np.clip(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)), -1.0, 1.0)
    theta = np.arccos(cos)
    sh = (-1,) + (1,) * (z0.ndim - 1)
    w0 = (np.sin((1.0 - alpha) * theta) / np.sin(theta)).reshape(sh)
    w1 = (np.sin(alpha * theta) / np.sin(theta)).reshape(sh)
    return w0 * z0 + w1 * z1, theta


# ============================================================================= Gaussian data
def gaussian_eps(x, abar, mu, s2):
    """The optimal (MMSE) noise predictor for data x0 ~ N(mu, s2) per coordinate: x_t ~ N(sqrt(abar) mu,
    abar s2 + 1 - abar) and
        eps-hat(x_t) = E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar s2 + 1 - abar)."""
    return np.sqrt(1.0 - abar) * (x - np.sqrt(abar) * mu) / (abar * s2 + 1.0 - abar)


def gaussian_affine(abar, mu, s2):
    """With gaussian_eps, eps-hat = a x + b and x0-hat = c x + d are affine in x_t:
        v = abar s2 + 1 - abar, a = sqrt(1 - abar)/v, b = -sqrt(1 - abar) sqrt(abar) mu / v,
        c = (1 - sqrt(1 - abar) a)/sqrt(abar), d = -sqrt(1 - abar) b / sqrt(abar)."""
    v = abar * s2 + 1.0 - abar
    a = np.sqrt(1.0 - abar) / v
    b = -np.sqrt(1.0 - abar) * np.sqrt(abar) * mu / v
    c = (1.0 - np.sqrt(1.0 - abar) * a) / np.sqrt(abar)
    d = -np.sqrt(1.0 - abar) * b / np.sqrt(abar)
    return a, b, c, d


def ddim_law(tb, mu, s2, eta, m=0.0, v=1.0):
    """The exact output law of DDIM (eta) with gaussian_eps on a respaced chain with tables tb (improved-
    diffusion convention: steps i = N-1 ... 0, target abar_prev[i], abar_prev[0] = 1; no clipping), from
    x ~ N(m, v) at index N-1. Each step is x_prev = A x + B + sigma z with
        A = sqrt(abar_prev) c + sqrt(1 - abar_prev - sigma^2) a,  B = sqrt(abar_prev) d + sqrt(...) b,
    so mean <- A mean + B and var <- A^2 var + sigma^2, exactly. Returns (mean, var) of the output."""
    ac, acp = tb["alphas_cumprod"], tb["alphas_cumprod_prev"]
    for i in reversed(range(len(ac))):
        a, b, c, d = gaussian_affine(ac[i], mu, s2)
        sig = ddim_sigma(ac[i], acp[i], eta)
        k = np.sqrt(1.0 - acp[i] - sig ** 2)
        A, B = np.sqrt(acp[i]) * c + k * a, np.sqrt(acp[i]) * d + k * b
        m, v = A * m + B, A * A * v + sig ** 2
    return m, v


def ancestral_law(tb, mu, s2, var_type, m=0.0, v=1.0, trace=False):
    """The exact output law of Ho's ancestral sampler (no clipping) with gaussian_eps on a chain with tables tb:
        x_prev = (coef1 c + coef2) x + coef1 d + [i > 0] sqrt(var_i) z   (var as in ancestral_step).
    Returns (mean, var), and with trace=True the variance of every state from index N-1 to the output."""
    ac = tb["alphas_cumprod"]
    vs = [v]
    for i in reversed(range(len(ac))):
        _, _, c, d = gaussian_affine(ac[i], mu, s2)
        c1, c2 = tb["posterior_mean_coef1"][i], tb["posterior_mean_coef2"][i]
        var = tb["posterior_variance"][i] if var_type == "small" else (tb["posterior_variance"][1] if i == 0 else tb["betas"][i])
        noise_var = var if i > 0 else 0.0
        A, B = c1 * c + c2, c1 * d
        m, v = A * m + B, A * A * v + noise_var
        vs.append(v)
    return (m, v, np.array(vs)) if trace else (m, v)


def round_trip_affine(tb, mu, s2):
    """DDIM inversion then DDIM (eta = 0) generation with gaussian_eps, both deterministic and affine:
    inversion runs N-1 reverse steps index 0 -> N-1 (ddim_reverse_step, the image is the state at index 0),
    generation runs N steps index N-1 -> output (abar_prev[0] = 1). The composite is x -> P x + Q."""
    ac, acp, acn = tb["alphas_cumprod"], tb["alphas_cumprod_prev"], tb["alphas_cumprod_next"]
    P, Q = 1.0, 0.0
    N = len(ac)
    for i in range(N - 1):
        a, b, c, d = gaussian_affine(ac[i], mu, s2)
        A = np.sqrt(acn[i]) * c + np.sqrt(1.0 - acn[i]) * a
        B = np.sqrt(acn[i]) * d + np.sqrt(1.0 - acn[i]) * b
        P, Q = A * P, A * Q + B
    for i in reversed(range(N)):
        a, b, c, d = gaussian_affine(ac[i], mu, s2)
        k = np.sqrt(1.0 - acp[i])
        A, B = np.sqrt(acp[i]) * c + k * a, np.sqrt(acp[i]) * d + k * b
        P, Q = A * P, A * Q + B
    return P, Q


def kl_normal(m, v, mu, s2):
    """KL(N(m, v) || N(mu, s2)) = 0.5 (log(s2 / v) + (v + (m - mu)^2) / s2 - 1), in nats."""
    return 0.5 * (math.log(s2 / v) + (v + (m - mu) ** 2) / s2 - 1.0)


# ============================================================================= the file
def put(g, name, data, **attrs):
    d = g.create_dataset(name, data=data)
    for k, v in attrs.items():
        d.attrs[k] = v
    return d


def main():
    rng = np.random.default_rng(20201006)  # DDIM's arXiv date
    lo, hi = 0.0, 1.0
    T = 1000
    betas = linear_betas(T)
    tb = tables(betas)
    ac = tb["alphas_cumprod"]
    sizes = {}

    with h5py.File(OUT, "w", libver=("v110", "v110")) as f:
        f.attrs["generator"] = "Fixtures/make_sampler_fixtures.py"
        f.attrs["schedule"] = "linear"
        f.attrs["beta_start"] = BETA_START
        f.attrs["beta_end"] = BETA_END
        f.attrs["timestep_origin"] = "0-based: t = 0 ... T-1"

        # ------------------------------------------------------------------ respaced timesteps
        ts_g = f.create_group("timesteps")
        id_cases = {1000: ["10", "25", "50", "10,15,20", "ddim10", "ddim25", "ddim50", "ddim250"],
                    40: ["10", "5,3,2", "ddim10", "ddim7"]}
        kept_by, ulp_by = {}, {}
        for TT, rules in id_cases.items():
            acT = tables(linear_betas(TT))["alphas_cumprod"]
            for rule in rules:
                kept = np.array(space_timesteps_improved(TT, rule), dtype=np.int64)
                kept_by[(TT, rule)] = kept
                # respaced abar' = cumprod(1 - beta') equals the original abar at the kept steps to a few ULP
                ulp = int(ulp_distance(tables(respaced_betas(acT, kept))["alphas_cumprod"], acT[kept]).max())
                assert ulp <= 8, (TT, rule, ulp)
                ulp_by[(TT, rule)] = ulp
                order = kept[::-1].copy()
                target = np.concatenate([order[1:], [-1]])
                put(ts_g, f"improved_diffusion/T{TT}/{rule}", order,
                    order="descending: the kept steps in the order the sampler visits them",
                    source="improved-diffusion respace.space_timesteps + SpacedDiffusion",
                    section_counts=rule, T=TT, N=len(kept),
                    step_target=target, step_target_rule="the next kept step; -1 = the final step, whose target alpha-bar is 1",
                    final_alpha_cumprod=1.0)
        # the tie: T = 40, "5,3,2": section 0 has stride 13/4 = 3.25 and idx 6.5 rounds to 6 (ties to even)
        assert list(kept_by[(40, "5,3,2")][:5]) == [0, 3, 6, 10, 13], kept_by[(40, "5,3,2")]
        assert list(kept_by[(1000, "ddim10")]) == list(range(0, 1000, 100))

        hf_cases = [(1000, 10), (1000, 50), (40, 7)]
        for TT, N in hf_cases:
            acT = tables(linear_betas(TT))["alphas_cumprod"]
            for spacing, offsets in (("linspace", [0]), ("leading", [0, 1]), ("trailing", [0])):
                for off in offsets:
                    ts = diffusers_timesteps(TT, N, spacing, off)
                    name = f"T{TT}_N{N}" + (f"_offset{off}" if spacing == "leading" else "")
                    ddim_prev = ts - TT // N
                    ddpm_prev = np.concatenate([ts[1:], [-1]])
                    put(ts_g, f"diffusers/{spacing}/{name}", ts,
                        order="descending (scheduler.timesteps, sampling order)",
                        source="diffusers DDIMScheduler / DDPMScheduler set_timesteps",
                        timestep_spacing=spacing, steps_offset=off, T=TT, N=N,
                        ddim_prev_timestep=ddim_prev, ddim_step_target_rule="t - T // N, even when not a kept step; < 0 = the final alpha-bar",
                        ddim_final_alpha_cumprod_set_alpha_to_one_true=1.0,
                        ddim_final_alpha_cumprod_set_alpha_to_one_false=acT[0],
                        ddpm_prev_timestep=ddpm_prev, ddpm_step_target_rule="the next entry (DDPMScheduler.previous_timestep); -1 = final, alpha-bar 1",
                        ddpm_final_alpha_cumprod=1.0)
        # the documented differences
        lin = diffusers_timesteps(1000, 10, "linspace")
        assert lin[0] == 999 and lin[-1] == 0
        assert diffusers_timesteps(1000, 10, "leading")[0] == 900 and diffusers_timesteps(1000, 10, "trailing")[0] == 999
        assert list(diffusers_timesteps(40, 7, "linspace")) == [39, 32, 26, 20, 13, 6, 0]  # 32.5 -> 32, 19.5 -> 20, 6.5 -> 6

        # ------------------------------------------------------------------ respaced tables
        rs_g = f.create_group("respaced")
        respaced_tb = {}
        bounds = {}
        for TT, rule in ((1000, "ddim10"), (1000, "ddim50"), (1000, "10,15,20"), (40, "5,3,2")):
            acT = tables(linear_betas(TT))["alphas_cumprod"]
            kept = kept_by[(TT, rule)]
            tbr = tables(respaced_betas(acT, kept))
            respaced_tb[(TT, rule)] = tbr
            ulps = int(ulp_distance(tbr["alphas_cumprod"], acT[kept]).max())
            rel = float(np.max(np.abs(tbr["alphas_cumprod"] / acT[kept] - 1.0)))
            bounds[(TT, rule)] = (ulps, rel)
            assert ulps <= 8 and rel <= 1e-15, (TT, rule, ulps, rel)  # respaced abar = original abar at kept steps
            g = rs_g.create_group(f"T{TT}/{rule}")
            g.attrs["source"] = "improved-diffusion SpacedDiffusion: beta'_i = 1 - abar[s_i] / abar[s_{i-1}], abar[s_-1] = 1"
            g.attrs["section_counts"] = rule
            g.attrs["T"] = TT
            g.attrs["max_ulp_alphas_cumprod_vs_original"] = ulps
            g.attrs["max_rel_alphas_cumprod_vs_original"] = rel
            put(g, "timestep_map", kept)
            for k in ("betas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next", "posterior_variance",
                      "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"):
                put(g, k, tbr[k])

        # ------------------------------------------------------------------ sigma_t(eta)
        sg = f.create_group("sigma")
        for name, tbx in (("full_T1000", tb), ("respaced_T1000_ddim50", respaced_tb[(1000, "ddim50")])):
            # eta = 0 gives sigma = 0 everywhere (asserted); the full chain stores only eta = 0.5 and 1 to save space
            etas = np.array([0.5, 1.0]) if name == "full_T1000" else np.array([0.0, 0.5, 1.0])
            assert ddim_sigma(tbx["alphas_cumprod"], tbx["alphas_cumprod_prev"], 0.0).max() == 0.0
            s = np.stack([ddim_sigma(tbx["alphas_cumprod"], tbx["alphas_cumprod_prev"], e) for e in etas])
            g = sg.create_group(name)
            g.attrs["formula"] = "DDIM eq. 16: eta sqrt((1-abar_prev)/(1-abar)) sqrt(1-abar/abar_prev), abar_prev[0] = 1"
            put(g, "eta", etas)
            put(g, "sigma", s, shape="(eta, step index i = 0 ... N-1)")
            # eta = 1 is sqrt(beta-tilde), the fixed-small ancestral standard deviation
            assert np.allclose(s[-1], np.sqrt(tbx["posterior_variance"]), rtol=1e-12, atol=0), name
            assert s[-1][0] == 0.0

        # ------------------------------------------------------------------ one DDIM step
        B, C, H, W = 4, 2, 3, 3
        x0_data = rng.integers(0, 256, size=(B, C, H, W)).astype(np.float64) / 255.0
        noise = rng.standard_normal((B, C, H, W))
        model_out = 0.8 * noise + 0.6 * rng.standard_normal((B, C, H, W))  # a partly-right eps-hat
        z = rng.standard_normal((B, C, H, W))
        dg = f.create_group("ddim_step")
        dg.attrs["formula"] = ("DDIM eq. 12: x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z, "
                               "x0 = (x - sqrt(1-abar) eps_model)/sqrt(abar) then processed; eps = eps_model or re-derived")
        dg.attrs["data_min"], dg.attrs["data_max"] = lo, hi
        dg.attrs["dynamic_p"] = 0.995
        dg.attrs["dynamic_s_max"] = math.inf
        put(dg, "inputs/x0_data", x0_data)
        put(dg, "inputs/noise", noise)
        put(dg, "inputs/model_output", model_out)
        put(dg, "inputs/z", z)
        chains = {}
        # full chain: t -> t-1, abar_prev[0] = 1
        t_full = np.array([0, 1, 500, 999], dtype=np.int64)
        chains["full_T1000"] = (t_full, t_full, ac[t_full], tb["alphas_cumprod_prev"][t_full],
                                "full chain, t -> t-1, abar_prev(t=0) = 1")
        # improved-diffusion respaced chain ddim10: respaced index i -> i-1
        r10 = respaced_tb[(1000, "ddim10")]
        i_r = np.array([0, 1, 5, 9], dtype=np.int64)
        kept10 = kept_by[(1000, "ddim10")]
        chains["improved_diffusion_T1000_ddim10"] = (i_r, kept10[i_r], r10["alphas_cumprod"][i_r], r10["alphas_cumprod_prev"][i_r],
                                                     "improved-diffusion respaced ddim10: index i -> i-1 (original t = timestep_map[i]), abar'_prev[0] = 1")
        # diffusers DDIM, linspace N = 10: t -> t - 100 (not a kept step), both final conventions
        t_hf = np.array([999, 555, 111, 0], dtype=np.int64)
        prev_hf = t_hf - T // 10
        for tag, final in (("set_alpha_to_one", 1.0), ("alpha_zero", ac[0])):
            chains[f"diffusers_linspace_T1000_N10_{tag}"] = (t_hf, t_hf, ac[t_hf], np.where(prev_hf >= 0, ac[np.maximum(prev_hf, 0)], final),
                                                            f"diffusers DDIM, linspace, t -> t - T//N; final abar = {'1' if final == 1.0 else 'alphas_cumprod[0]'}")
        modes = [("none", "none", False), ("clip_rederive", "clip", True), ("clip_original", "clip", False),
                 ("dynamic_rederive", "dynamic", True), ("dynamic_original", "dynamic", False)]
        for cname, (idx, t_orig, at, ap, desc) in chains.items():
            g = dg.create_group(cname)
            g.attrs["chain"] = desc
            put(g, "index", idx, meaning="chain index of each sample (the step's 't')")
            put(g, "original_t", t_orig, meaning="original timestep the network sees")
            put(g, "alphas_cumprod_prev", ap, meaning="alpha-bar of the step target")
            x_t = np.sqrt(at).reshape(-1, 1, 1, 1) * x0_data + np.sqrt(1 - at).reshape(-1, 1, 1, 1) * noise
            put(g, "x_t", x_t, formula="sqrt(abar_t) x0_data + sqrt(1-abar_t) noise (Ho eq. 4)")
            put(g, "sigma", np.stack([ddim_sigma(at, ap, e) for e in (0.0, 0.5)]), shape="(eta in [0, 0.5], B)")
            for mname, mode, red in modes:
                if mname == "dynamic_original" and cname != "full_T1000":
                    continue
                for eta in (0.0, 0.5):
                    xp, x0h, eps_used, sig = ddim_step(x_t, model_out, at, ap, eta, z, mode, red, lo, hi)
                    put(g, f"x_prev_eta{eta}_{mname}", xp)
                if mname in ("none", "clip_rederive", "dynamic_rederive"):
                    put(g, f"pred_x0_{mode}", x0h)
                if red and mode != "none":
                    put(g, f"eps_rederived_{mode}", eps_used)
                if mode == "clip":
                    assert np.any((x0h == lo) | (x0h == hi)), "clipping must be active somewhere"
            # eta = 1 on the full chain with re-derived eps equals Ho's fixed-small ancestral step with the same z
            if cname == "full_T1000":
                for mode in ("none", "clip"):
                    xp1, _, _, _ = ddim_step(x_t, model_out, at, ap, 1.0, z, mode, True, lo, hi)
                    for b in range(B):
                        xa, _ = ancestral_step(tb, int(t_full[b]), x_t[b], model_out[b], z[b], mode, "small", lo, hi)
                        assert np.allclose(xp1[b], xa, rtol=1e-12, atol=1e-12), (mode, b, np.abs(xp1[b] - xa).max())

        # ------------------------------------------------------------------ one inversion step
        ig = f.create_group("inversion_step")
        ig.attrs["formula"] = ("DDIM sec. 4.3 / improved-diffusion ddim_reverse_sample: x_next = sqrt(abar_next) x0 + sqrt(1 - abar_next) eps, "
                               "x0 = (x - sqrt(1-abar_i) eps_model)/sqrt(abar_i), eps re-derived from x0 when clipped")
        ig.attrs["index_convention"] = ("state at chain index i -> index i+1; the image is the state at index 0 (abar_0 = 1 - beta_0); "
                                        "abar_next = alphas_cumprod_next[i], 0 at the last index")
        ig.attrs["data_min"], ig.attrs["data_max"] = lo, hi
        for cname, (idx, t_orig, at, an) in {
                "full_T1000": (t_full, t_full, ac[t_full], tb["alphas_cumprod_next"][t_full]),
                "improved_diffusion_T1000_ddim10": (i_r, kept10[i_r], r10["alphas_cumprod"][i_r], r10["alphas_cumprod_next"][i_r])}.items():
            g = ig.create_group(cname)
            put(g, "index", idx)
            put(g, "original_t", t_orig)
            put(g, "alphas_cumprod_next", an)
            x_t = np.sqrt(at).reshape(-1, 1, 1, 1) * x0_data + np.sqrt(1 - at).reshape(-1, 1, 1, 1) * noise
            put(g, "x", x_t, meaning="the state at index i; model output is ddim_step/inputs/model_output")
            for mode, mname in (("none", "noclip"), ("clip", "clip")):
                xn, x0h, eps_used = ddim_reverse_step(x_t, model_out, at, an, mode, lo, hi)
                put(g, f"x_next_{mname}", xn)
                put(g, f"pred_x0_{mname}", x0h)
                if mode != "none":
                    put(g, f"eps_rederived_{mname}", eps_used)

        # ------------------------------------------------------------------ dynamic thresholding
        tg = f.create_group("threshold")
        tg.attrs["formula"] = "Imagen sec. 2.3 / diffusers _threshold_sample: s = clamp(quantile_p(|x0|), 1, s_max) per sample; x0 <- clamp(x0, -s, s)/s"
        tg.attrs["quantile"] = "linear interpolation: h = (n-1) p, k = floor(h), q = a_(k) + (h-k)(a_(k+1) - a_(k)) (numpy/torch default)"
        tg.attrs["units"] = "x0 in [-1, 1] units (no mapping)"
        xb = np.empty((4, 3, 5, 5))
        xb[0] = 1.6 * rng.standard_normal((3, 5, 5))                              # well outside: s >> 1
        xb[1] = rng.uniform(-0.9, 0.9, (3, 5, 5))                                 # inside: s = 1, a no-op
        xb[2] = rng.uniform(-1.0, 1.0, (3, 5, 5)); xb[2].flat[:5] = [1.7, -2.4, 3.1, -1.2, 1.9]  # a few outliers
        xb[3] = 0.5 + 0.7 * rng.standard_normal((3, 5, 5))                        # shifted
        put(tg, "x0", xb)
        for p in (0.995, 0.9):
            q = np.array([quantile_linear(np.abs(xb[b]), p) for b in range(4)])
            qn = np.quantile(np.abs(xb).reshape(4, -1), p, axis=1)  # numpy's default method "linear"
            assert np.allclose(q, qn, rtol=4e-16, atol=0), (q, qn)
            put(tg, f"p{p}/quantile", q, meaning="quantile_p(|x0|) per sample, before clamping")
            for s_max, sname in ((1.0, "smax1"), (1.5, "smax1.5"), (math.inf, "smax_inf")):
                if p == 0.9 and s_max == 1.0:
                    continue
                y, s = dynamic_threshold(xb, p, s_max)
                h = tg.create_group(f"p{p}/{sname}")
                h.attrs["p"] = p
                h.attrs["s_max"] = s_max
                put(h, "s", s)
                put(h, "x0", y)
                if s_max == 1.0:
                    assert np.array_equal(y, np.clip(xb, -1, 1))  # diffusers' default = static clipping
        _, s_inf = dynamic_threshold(xb, 0.995, math.inf)
        assert s_inf[1] == 1.0 and s_inf[0] > 1.5 and s_inf[2] > 1.0, s_inf
        _, s_9 = dynamic_threshold(xb, 0.9, math.inf)
        assert s_9[2] == 1.0, s_9  # the outliers sit above the 0.9 quantile

        # ------------------------------------------------------------------ zero terminal SNR
        zg = f.create_group("zero_snr")
        zg.attrs["formula"] = ("Lin et al. 2024 Algorithm 1: a = sqrt(abar); a <- a[0] * ((a - a[-1]) / (a[0] - a[-1])); "
                               "abar = a^2; beta = 1 - [abar[0], abar[1:]/abar[:-1]]")
        for TT in (1000, 40):
            b0 = linear_betas(TT)
            tb0 = tables(b0)
            bz, a_direct, a_literal = rescale_zero_terminal_snr(b0)
            tbz = tables(bz)
            a_sqrt = np.sqrt(tbz["alphas_cumprod"])
            assert a_direct[0] == tb0["sqrt_alphas_cumprod"][0] and a_direct[-1] == 0.0
            assert a_sqrt[0] == tb0["sqrt_alphas_cumprod"][0] and tbz["alphas_cumprod"][-1] == 0.0 and bz[-1] == 1.0
            assert np.allclose(a_sqrt, a_direct, rtol=1e-13, atol=1e-15)
            g = zg.create_group(f"T{TT}")
            g.attrs["T"] = TT
            g.attrs["max_abs_sqrt_cumprod_vs_direct"] = float(np.abs(a_sqrt - a_direct).max())
            g.attrs["max_ulp_direct_vs_algorithm1_order"] = int(ulp_distance(a_direct, a_literal).max())
            assert ulp_distance(a_direct, a_literal).max() <= 4
            put(g, "betas", bz, meaning="rescaled betas; the last is exactly 1")
            put(g, "alphas_cumprod", tbz["alphas_cumprod"], meaning="cumprod(1 - betas); the last is exactly 0")
            put(g, "log_snr_before", log_snr(tb0["alphas_cumprod"]))
            put(g, "log_snr_after", log_snr(tbz["alphas_cumprod"]), meaning="log(abar/(1-abar)); the last is -inf")

        # ------------------------------------------------------------------ slerp
        lg = f.create_group("slerp")
        lg.attrs["formula"] = "DDIM sec. 5.3: sin((1-a) theta)/sin(theta) z0 + sin(a theta)/sin(theta) z1, theta = arccos(<z0,z1>/(|z0||z1|)) per sample"
        z0, z1 = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
        alphas_i = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
        outs = []
        for al in alphas_i:
            o, theta = slerp(z0, z1, al)
            outs.append(o)
        outs = np.stack(outs)
        assert np.array_equal(outs[0], z0) and np.allclose(outs[-1], z1, rtol=1e-14, atol=1e-15)
        put(lg, "z0", z0)
        put(lg, "z1", z1)
        put(lg, "alpha", alphas_i)
        put(lg, "theta", theta)
        put(lg, "slerp", outs, shape="(alpha, B, C, H, W)")

        # ------------------------------------------------------------------ Gaussian data: predictor and laws
        mu, s2 = 0.3, 0.04
        gg = f.create_group("gaussian")
        gg.attrs["mu"], gg.attrs["s2"] = mu, s2
        gg.attrs["predictor"] = "eps-hat = sqrt(1-abar_t)(x_t - sqrt(abar_t) mu)/(abar_t s2 + 1 - abar_t)"
        gg.attrs["start"] = "x at the first sampling step (index N-1) ~ N(0, 1); no clipping"
        t_g = np.array([0, 1, 100, 500, 999], dtype=np.int64)
        xg = rng.standard_normal((5, 6))
        put(gg, "eps_inputs/t", t_g)
        put(gg, "eps_inputs/x_t", xg)
        put(gg, "eps_hat", gaussian_eps(xg, ac[t_g].reshape(-1, 1), mu, s2))
        steps = [10, 50, 250, 1000]
        samplers = ["ddim_eta0", "ddim_eta1", "ancestral_small", "ancestral_large"]
        law, trips = {}, []
        for N in steps:
            rule = f"ddim{N}"
            tbr = tables(respaced_betas(ac, np.array(space_timesteps_improved(T, rule))))
            law[N] = dict(ddim_eta0=ddim_law(tbr, mu, s2, 0.0), ddim_eta1=ddim_law(tbr, mu, s2, 1.0),
                          ancestral_small=ancestral_law(tbr, mu, s2, "small"), ancestral_large=ancestral_law(tbr, mu, s2, "large"))
            # eta = 1 on any improved-diffusion chain is the fixed-small ancestral sampler
            assert np.allclose(law[N]["ddim_eta1"], law[N]["ancestral_small"], rtol=1e-12, atol=0), (N, law[N])
            P, Q = round_trip_affine(tbr, mu, s2)
            trips.append((P, Q, math.sqrt((P - 1) ** 2 * (s2 + mu ** 2) + 2 * (P - 1) * Q * mu + Q ** 2)))
        g = gg.create_group("laws")
        g.attrs["chain"] = "improved-diffusion 'ddimN' spacing on the linear T = 1000 chain (ddim1000 = the full chain)"
        g.attrs["samplers"] = ",".join(samplers)  # the columns of mean / variance / kl_to_data
        g.attrs["steps_meaning"] = "N; rows of every dataset"
        put(g, "steps", np.array(steps, dtype=np.int64))
        put(g, "mean", np.array([[law[N][k][0] for k in samplers] for N in steps]), shape="(steps, samplers)")
        put(g, "variance", np.array([[law[N][k][1] for k in samplers] for N in steps]), shape="(steps, samplers)")
        put(g, "kl_to_data", np.array([[kl_normal(*law[N][k], mu, s2) for k in samplers] for N in steps]),
            shape="(steps, samplers)", meaning="KL(law || N(mu, s2)) in nats")
        h = gg.create_group("round_trip")
        h.attrs["convention"] = ("DDIM inversion N-1 steps index 0 -> N-1 (image = state at index 0), then DDIM eta = 0 N steps "
                                 "to the output; the composite is x -> slope x + intercept")
        put(h, "steps", np.array(steps, dtype=np.int64))
        put(h, "slope", np.array([r[0] for r in trips]))
        put(h, "intercept", np.array([r[1] for r in trips]))
        put(h, "rms_error_over_data", np.array([r[2] for r in trips]), meaning="sqrt(E[((slope-1) x + intercept)^2]) for x ~ N(mu, s2)")
        # Ho sec. 3.2's exact case: fixed-large ancestral on N(0, 1) data on the full chain
        m_ex, v_ex, vs_ex = ancestral_law(tb, 0.0, 1.0, "large", trace=True)
        assert np.allclose(vs_ex[:-1], 1.0, rtol=1e-12, atol=0) and abs(v_ex - (1 - betas[0])) < 1e-12, (vs_ex[:3], v_ex)
        h = gg.create_group("exact_fixed_large_standard_normal_T1000")
        h.attrs["meaning"] = ("data N(0, 1), full T = 1000 chain, fixed-large ancestral: every state from index T-1 to 0 is N(0, 1); "
                              "the output (no noise at the last step) has variance alpha_0 = 1 - beta_0")
        put(h, "mean", m_ex)
        put(h, "variance", v_ex)
        h.attrs["state_variances_max_abs_deviation_from_1"] = float(np.abs(vs_ex[:-1] - 1.0).max())

        # ------------------------------------------------------------------ whole loops (a fixed analytic model)
        og = f.create_group("loops")
        og.attrs["model"] = "eps-hat(x, t) = 0.1 x + 0.001 t, t = the ORIGINAL timestep (timestep_map[i])"
        og.attrs["data_min"], og.attrs["data_max"] = lo, hi
        xT = rng.standard_normal((2, 1, 3, 3))
        put(og, "x_T", xT)
        model = lambda x, t: 0.1 * x + 0.001 * t
        loop_cases = [("ddim_ddim10_eta0_noclip", "ddim10", "ddim", 0.0, "none", True),
                      ("ddim_ddim10_eta0.5_clip_rederive", "ddim10", "ddim", 0.5, "clip", True),
                      ("ddim_ddim10_eta0.5_clip_original", "ddim10", "ddim", 0.5, "clip", False),
                      ("ancestral_10_small_clip", "10", "small", None, "clip", True),
                      ("ancestral_10_large_noclip", "10", "large", None, "none", True)]
        for name, rule, kind, eta, mode, red in loop_cases:
            kept = np.array(space_timesteps_improved(T, rule))
            tbr = tables(respaced_betas(ac, kept))
            N = len(kept)
            zs = rng.standard_normal((N,) + xT.shape)
            x, px = xT.copy(), []
            for i in reversed(range(N)):
                eps = model(x, kept[i])
                if kind == "ddim":
                    x, x0h, _, _ = ddim_step(x, eps, np.full(2, tbr["alphas_cumprod"][i]), np.full(2, tbr["alphas_cumprod_prev"][i]),
                                             eta, zs[N - 1 - i], mode, red, lo, hi)
                else:
                    x, x0h = ancestral_step(tbr, i, x, eps, zs[N - 1 - i], mode, kind, lo, hi)
                px.append(x0h)
            g = og.create_group(name)
            g.attrs["section_counts"] = rule
            g.attrs["sampler"] = "ddim" if kind == "ddim" else f"ancestral fixed-{kind}"
            if eta is not None:
                g.attrs["eta"] = eta
                g.attrs["eps_convention"] = "re-derived" if red else "model output"
            g.attrs["x0_processing"] = mode
            if eta != 0.0:
                put(g, "z", zs, meaning="z[k] is the noise of the k-th step in sampling order (index N-1-k); unused where sigma = 0")
            put(g, "pred_x0", np.stack(px), meaning="x0-hat at every step, in sampling order (progressive)")
            put(g, "sample", x)

        # ------------------------------------------------------------------ Dirac data: exact landing
        xs = rng.uniform(0.1, 0.9, (2, 1, 3, 3))
        dirac_eps = lambda x, abar: (x - np.sqrt(abar) * xs) / np.sqrt(1.0 - abar)
        dg2 = f.create_group("dirac")
        dg2.attrs["meaning"] = "data = the point x_star; exact eps(x, t) = (x - sqrt(abar_t) x_star)/sqrt(1 - abar_t); DDIM eta = 0, no clipping"
        put(dg2, "x_star", xs)
        put(dg2, "x_T", xT)
        for rule in ("ddim10", "ddim1000", "10,15,20"):
            kept = np.array(space_timesteps_improved(T, rule))
            tbr = tables(respaced_betas(ac, kept))
            x = xT.copy()
            for i in reversed(range(len(kept))):
                abar = tbr["alphas_cumprod"][i]
                x, _, _, _ = ddim_step(x, dirac_eps(x, abar), np.full(2, abar), np.full(2, tbr["alphas_cumprod_prev"][i]),
                                       0.0, 0.0 * x, "none", False, lo, hi)
            err = float(np.abs(x - xs).max())
            assert err < 1e-12, (rule, err)  # eta = 0 with the exact eps lands on the point
            # inversion of x_star (N-1 reverse steps) and generation return x_star
            y = xs.copy()
            for i in range(len(kept) - 1):
                abar = tbr["alphas_cumprod"][i]
                y, _, _ = ddim_reverse_step(y, dirac_eps(y, abar), np.full(2, abar), np.full(2, tbr["alphas_cumprod_next"][i]), "none", lo, hi)
            lat = y.copy()
            for i in reversed(range(len(kept))):
                abar = tbr["alphas_cumprod"][i]
                y, _, _, _ = ddim_step(y, dirac_eps(y, abar), np.full(2, abar), np.full(2, tbr["alphas_cumprod_prev"][i]),
                                       0.0, 0.0 * y, "none", False, lo, hi)
            rt = float(np.abs(y - xs).max())
            assert rt < 1e-12, (rule, rt)
            h = dg2.create_group(rule)
            h.attrs["max_abs_error_landing"] = err
            h.attrs["max_abs_error_round_trip"] = rt
            put(h, "sample", x)
            put(h, "inverted_latent", lat, meaning="x_star inverted by N-1 reverse steps (state at index N-1)")

    sizes["bytes"] = os.path.getsize(OUT)
    print("wrote", OUT, sizes["bytes"], "bytes")
    print("respaced abar' vs original abar at the kept steps, max ULP: " + ", ".join(f"T={k[0]} {k[1]}: {u}" for k, u in ulp_by.items()))
    print("round trip (inversion + DDIM eta=0) rms error over N(mu, s2): " + ", ".join(f"N={N}: {r[2]:.4g}" for N, r in zip(steps, trips)))
    for N in steps:
        print(f"N={N}: " + ", ".join(f"{k}: mean {m:.6f} var {v:.6f} (var/s2 - 1 = {v / s2 - 1:+.4f})" for k, (m, v) in law[N].items()))


if __name__ == "__main__":
    main()
