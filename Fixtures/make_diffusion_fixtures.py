"""Reference tensors for the DDPM equations, written from Ho, Jain & Abbeel (2020) with numpy.

This file is an independent oracle: it is written from the paper (and Nichol & Dhariwal 2021 for the
cosine schedule), not from the Swift code it checks. Every quantity is float64. Running it twice gives
identical datasets (fixed seeds, no timestamps).

Run:  python3 Fixtures/make_diffusion_fixtures.py      (writes Fixtures/diffusion.h5)
Layout: see Fixtures/README.md.
"""
import math
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "diffusion.h5")
LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- schedules
def schedule(name, T, start=1e-4, end=0.02):
    if name == "linear":
        return np.linspace(start, end, T, dtype=np.float64)
    if name == "quadratic":
        return np.linspace(start ** 0.5, end ** 0.5, T, dtype=np.float64) ** 2
    if name in ("warmup10", "warmup50"):
        frac = 0.1 if name == "warmup10" else 0.5
        b = end * np.ones(T, dtype=np.float64)
        w = int(T * frac)
        b[:w] = np.linspace(start, end, w, dtype=np.float64)
        return b
    if name == "constant":
        return end * np.ones(T, dtype=np.float64)
    if name == "jsd":
        return 1.0 / np.linspace(T, 1, T, dtype=np.float64)
    if name == "cosine":
        s = 0.008
        f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        return np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=np.float64)
    if name == "sigmoid":  # GeoDiff (Xu et al. 2022): sigmoid(linspace(-6, 6, T)) * (end - start) + start
        x = np.linspace(-6, 6, T, dtype=np.float64)
        return 1 / (1 + np.exp(-x)) * (end - start) + start
    raise ValueError(name)


def tables(betas):
    T = len(betas)
    alphas = 1 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.concatenate([[1.0], ac[:-1]])
    post_var = betas * (1 - ac_prev) / (1 - ac)
    if T >= 2:
        post_logvar = np.log(np.concatenate([[post_var[1]], post_var[1:]]))
    else:
        with np.errstate(divide="ignore"):
            post_logvar = np.log(post_var)
    with np.errstate(divide="ignore"):
        return {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - ac),
            "log_one_minus_alphas_cumprod": np.log(1 - ac),
            "sqrt_recip_alphas_cumprod": np.sqrt(1 / ac),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / ac - 1),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": post_logvar,
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1 - ac),
            "posterior_mean_coef2": (1 - ac_prev) * np.sqrt(alphas) / (1 - ac),
        }


# ----------------------------------------------------------------------------- equations
def per_sample(v, t, ndim):
    """The table entries at t, shaped (N, 1, 1, 1) for broadcasting."""
    return v[t].reshape((-1,) + (1,) * (ndim - 1))


def q_mean_variance(tb, x0, t):  # eq. 4
    return per_sample(tb["sqrt_alphas_cumprod"], t, x0.ndim) * x0, 1 - tb["alphas_cumprod"][t], tb["log_one_minus_alphas_cumprod"][t]


def q_sample(tb, x0, t, eps):  # eq. 4, reparameterised
    return per_sample(tb["sqrt_alphas_cumprod"], t, x0.ndim) * x0 + per_sample(tb["sqrt_one_minus_alphas_cumprod"], t, x0.ndim) * eps


def q_posterior(tb, x0, xt, t):  # eqs. 6-7
    mean = per_sample(tb["posterior_mean_coef1"], t, x0.ndim) * x0 + per_sample(tb["posterior_mean_coef2"], t, x0.ndim) * xt
    return mean, tb["posterior_variance"][t], tb["posterior_log_variance_clipped"][t]


def x0_from_eps(tb, xt, t, eps):
    # invert x_t = sqrt(abar) x0 + sqrt(1-abar) eps
    ab = per_sample(tb["alphas_cumprod"], t, xt.ndim)
    return (xt - np.sqrt(1 - ab) * eps) / np.sqrt(ab)


def x0_from_xprev(tb, xt, t, xprev):
    # invert mu = c1 x0 + c2 x_t
    return (xprev - per_sample(tb["posterior_mean_coef2"], t, xt.ndim) * xt) / per_sample(tb["posterior_mean_coef1"], t, xt.ndim)


def p_mean_variance(tb, out, xt, t, param, var_type, clip, lo, hi):
    if var_type == "small":
        var, logvar = tb["posterior_variance"], tb["posterior_log_variance_clipped"]
    else:  # "large": beta_t, with the posterior variance at t=1 standing in at t=0 (improved-diffusion's convention, in both the variance and its log; Ho et al.'s code swaps it into the log only)
        var = np.concatenate([[tb["posterior_variance"][1]], tb["betas"][1:]])
        logvar = np.log(var)
    var, logvar = var[t], logvar[t]
    if param == "eps":
        x0 = x0_from_eps(tb, xt, t, out)
    elif param == "x0":
        x0 = out.copy()
    else:
        x0 = x0_from_xprev(tb, xt, t, out)
    if clip:
        x0 = np.clip(x0, lo, hi)
    if param == "xprev":
        mean = out
    else:
        mean, _, _ = q_posterior(tb, x0, xt, t)
    return mean, var, logvar, x0


def normal_kl(m1, lv1, m2, lv2):
    return 0.5 * (-1.0 + lv2 - lv1 + np.exp(lv1 - lv2) + (m1 - m2) ** 2 * np.exp(-lv2))


def std_normal_cdf(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def discretized_gaussian_loglik(x, mean, log_scale, lo, hi):
    half = (hi - lo) / 255.0 / 2.0  # half a bin of 256 levels
    inv = np.exp(-log_scale)
    cdf_plus = std_normal_cdf(inv * (x - mean + half))
    cdf_min = std_normal_cdf(inv * (x - mean - half))
    log_cdf_plus = np.log(np.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = np.log(np.maximum(1 - cdf_min, 1e-12))
    log_delta = np.log(np.maximum(cdf_plus - cdf_min, 1e-12))
    return np.where(x < lo + half, log_cdf_plus, np.where(x > hi - half, log_one_minus_cdf_min, log_delta))


def mean_flat(a):
    return a.reshape(a.shape[0], -1).mean(axis=1)


def vb_terms_bpd(tb, out, x0, xt, t, clip, lo, hi):
    true_mean, _, true_logvar = q_posterior(tb, x0, xt, t)
    mean, _, logvar, _ = p_mean_variance(tb, out, xt, t, "eps", "small", clip, lo, hi)
    lv = logvar.reshape(-1, 1, 1, 1)
    kl = mean_flat(normal_kl(true_mean, true_logvar.reshape(-1, 1, 1, 1), mean, lv)) / LN2
    nll = -mean_flat(discretized_gaussian_loglik(x0, mean, 0.5 * lv, lo, hi)) / LN2
    return np.where(t == 0, nll, kl), kl, nll


def prior_bpd(tb, x0):
    T = len(tb["betas"])
    t = np.full(x0.shape[0], T - 1)
    m, _, lv = q_mean_variance(tb, x0, t)
    return mean_flat(normal_kl(m, lv.reshape(-1, 1, 1, 1), 0.0, 0.0)) / LN2


# ----------------------------------------------------------------------------- the file
def main():
    rng = np.random.default_rng(20200619)  # the paper's arXiv date
    names = ["linear", "quadratic", "warmup10", "warmup50", "constant", "jsd", "cosine", "sigmoid"]
    with h5py.File(OUT, "w") as f:
        f.attrs["generator"] = "Fixtures/make_diffusion_fixtures.py"
        f.attrs["beta_start"] = 1e-4
        f.attrs["beta_end"] = 0.02
        for name in names:
            for T in (1, 2, 10, 1000):
                g = f.create_group(f"schedules/{name}/T{T}")
                for k, v in tables(schedule(name, T)).items():
                    g.create_dataset(k, data=v)

        # Equations on the default schedule (linear, T = 1000), data range [0, 1].
        T = 1000
        tb = tables(schedule("linear", T))
        lo, hi = 0.0, 1.0
        N, C, H, W = 4, 2, 3, 3
        t = np.array([0, 1, 500, T - 1], dtype=np.int64)
        x0 = rng.integers(0, 256, size=(N, C, H, W)).astype(np.float64) / 255.0  # on the 256-level lattice
        noise = rng.standard_normal((N, C, H, W))
        out = rng.standard_normal((N, C, H, W))  # a stored model output
        z = rng.standard_normal((N, C, H, W))
        e = f.create_group("equations")
        e.attrs["schedule"] = "linear"
        e.attrs["timesteps"] = T
        e.attrs["data_min"] = lo
        e.attrs["data_max"] = hi
        for k, v in dict(x0=x0, t=t, noise=noise, model_output=out, z=z).items():
            e.create_dataset(f"inputs/{k}", data=v)
        qm, qv, qlv = q_mean_variance(tb, x0, t)
        xt = q_sample(tb, x0, t, noise)
        e.create_dataset("q_mean", data=qm)
        e.create_dataset("q_variance", data=qv)
        e.create_dataset("q_log_variance", data=qlv)
        e.create_dataset("q_sample", data=xt)
        pm, pv, plv = q_posterior(tb, x0, xt, t)
        e.create_dataset("posterior_mean", data=pm)
        e.create_dataset("posterior_variance", data=pv)
        e.create_dataset("posterior_log_variance_clipped", data=plv)
        e.create_dataset("pred_x0_from_eps", data=x0_from_eps(tb, xt, t, out))
        e.create_dataset("pred_x0_from_xprev", data=x0_from_xprev(tb, xt, t, out))
        for param in ("eps", "x0", "xprev"):
            for var_type in ("small", "large"):
                for clip in (True, False):
                    m, v, lv, px0 = p_mean_variance(tb, out, xt, t, param, var_type, clip, lo, hi)
                    g = e.create_group(f"p/{param}/{var_type}/{'clip' if clip else 'noclip'}")
                    g.create_dataset("mean", data=m)
                    g.create_dataset("variance", data=v)
                    g.create_dataset("log_variance", data=lv)
                    g.create_dataset("pred_x0", data=px0)
        # One reverse step, eps / small / clip (the seed's defaults): no noise where t = 0.
        m, v, lv, _ = p_mean_variance(tb, out, xt, t, "eps", "small", True, lo, hi)
        nonzero = (t != 0).astype(np.float64).reshape(-1, 1, 1, 1)
        e.create_dataset("p_sample", data=m + nonzero * np.sqrt(v).reshape(-1, 1, 1, 1) * z)
        e.create_dataset("loss_simple", data=np.mean((out - noise) ** 2))

        # The variational bound.
        m1, m2 = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
        lv1, lv2 = rng.uniform(-3, 1, (3, 5)), rng.uniform(-3, 1, (3, 5))
        b = f.create_group("bound")
        for k, v in dict(mean1=m1, logvar1=lv1, mean2=m2, logvar2=lv2).items():
            b.create_dataset(f"kl_inputs/{k}", data=v)
        b.create_dataset("normal_kl", data=normal_kl(m1, lv1, m2, lv2))
        for lo2, hi2, tag in ((0.0, 1.0, "range01"), (-1.0, 1.0, "range11")):
            xq = lo2 + (hi2 - lo2) * rng.integers(0, 256, size=(2, 1, 4, 4)).astype(np.float64) / 255.0
            xq[0, 0, 0, 0], xq[0, 0, 0, 1] = lo2, hi2  # both open edges appear
            mu = xq + 0.02 * rng.standard_normal(xq.shape)
            ls = rng.uniform(-5, -2, xq.shape)
            g = b.create_group(f"decoder/{tag}")
            g.attrs["data_min"], g.attrs["data_max"] = lo2, hi2
            g.create_dataset("x", data=xq)
            g.create_dataset("means", data=mu)
            g.create_dataset("log_scales", data=ls)
            g.create_dataset("log_likelihood", data=discretized_gaussian_loglik(xq, mu, ls, lo2, hi2))
        terms, kl, nll = vb_terms_bpd(tb, out, x0, xt, t, True, lo, hi)
        b.create_dataset("vb_terms_bpd", data=terms)
        b.create_dataset("kl_bpd", data=kl)
        b.create_dataset("decoder_nll_bpd", data=nll)
        b.create_dataset("prior_bpd", data=prior_bpd(tb, x0))

        # The whole bound on a short chain (linear, T = 10) for a fixed analytic model
        # eps_hat(x_t, t) = 0.1 * x_t + 0.01 * t, with x_t from q_sample with stored noise per t.
        T10 = 10
        tb10 = tables(schedule("linear", T10))
        noise_all = rng.standard_normal((T10, N, C, H, W))
        per_t = np.zeros((N, T10))
        for s in range(T10):
            ts = np.full(N, s, dtype=np.int64)
            xts = q_sample(tb10, x0, ts, noise_all[s])
            eps_hat = 0.1 * xts + 0.01 * s
            per_t[:, s], _, _ = vb_terms_bpd(tb10, eps_hat, x0, xts, ts, True, lo, hi)
        fb = b.create_group("full_bound")
        fb.create_dataset("noise", data=noise_all)
        fb.create_dataset("terms_bpd", data=per_t)
        fb.create_dataset("prior_bpd", data=prior_bpd(tb10, x0))
        fb.create_dataset("total_bpd", data=per_t.sum(axis=1) + prior_bpd(tb10, x0))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
