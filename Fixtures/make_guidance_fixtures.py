"""Reference tensors for classifier-free and classifier guidance (issue 20), written with numpy.

An independent oracle: written from the papers and the documented conventions of the reference code bases,
never from the Swift code it checks. Every quantity is float64; timesteps are 0-based indices into the tables
of Ho's linear schedule (beta = linspace(1e-4, 0.02, 1000), alpha_bar = cumprod(1 - beta)). Fixed seed, no
timestamps: running the generator twice gives identical datasets (and an identical file).

Sources and the conventions they use (named, never mixed):
  [CFG]   Ho & Salimans (2022), "Classifier-Free Diffusion Guidance", eq. 6 -- the PAPER convention
              eps~ = (1 + w) eps_c - w eps_u,       w = 0 is the plain conditional model.
  [HF]    GLIDE (Nichol et al. 2022), latent diffusion, diffusers, k-diffusion -- the SCALE convention
              eps~ = eps_u + s (eps_c - eps_u),    s = 1 + w   (the same numbers up to rounding).
  [Lin]   Lin, Liu, Li & Yang (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed", sec. 3.4,
          eqs. 15-16 (Algorithm 2); diffusers `rescale_noise_cfg`: per sample (std over every axis but the batch
          axis) eps_rescaled = eps~ std(eps_c)/std(eps~), out = phi eps_rescaled + (1 - phi) eps~. The std's
          normalisation cancels in the ratio; this file uses the population std (ddof = 0; diffusers' torch.std
          is ddof = 1) and checks that ddof = 1 gives the same numbers.
  [DDIM]  Song, Meng & Ermon (2021), eq. 12 with eta = 0: x0^ = (x_t - sqrt(1 - ab_t) eps)/sqrt(ab_t),
          x_prev = sqrt(ab_prev) x0^ + sqrt(1 - ab_prev) eps (no clipping).
  [D&N]   Dhariwal & Nichol (2021), "Diffusion Models Beat GANs on Image Synthesis", Algorithm 1 (guided-diffusion
          `condition_mean`: mu + s Sigma grad_x log p_phi(y | x_t), then x_prev = that + sqrt(Sigma) z) and
          Algorithm 2 (guided-diffusion `condition_score`: eps^ - sqrt(1 - ab_t) s grad_x log p_phi(y | x_t),
          then the DDIM step from that eps).
  [Mix]   The exact oracle: data = a mixture of two Gaussians with a shared isotropic variance; the noised
          marginals q(x_t | c) and q(x_t) are closed forms, the exact eps-prediction is
          -sqrt(1 - ab) grad_x log p_t (Song et al. 2021 "Score-based generative modeling", the eps/score
          identity eps = -sigma_t score), and guidance is the score of p_t(x|c)^(1+w) / p_t(x)^w.

Self-checks (asserted before the file is written, worst discrepancies printed):
  * /cfg: the paper and scale conventions agree (rtol 1e-14); w = 0, phi = 0 returns eps_c bit for bit;
    ddof = 0 and ddof = 1 rescale agree (rtol 1e-14); after a full rescale (phi = 1) std(out) = std(eps_c).
  * the schedule: alpha_bar at t = 500 and 450 equals diffusion.h5's schedules/linear/T1000/alphas_cumprod
    (make_diffusion_fixtures.py) bit for bit, when that file is present.
  * /ddim_step, /classifier_score: the step agrees with its closed form in x_t and eps,
    x_prev = sqrt(ab_prev/ab_t) x_t + (sqrt(1 - ab_prev) - sqrt(ab_prev (1 - ab_t)/ab_t)) eps (rtol 1e-12).
  * /mixture: every analytic gradient against central finite differences of the log density (h = 1e-5,
    loose tolerance 1e-6 relative to the largest entry); the guided eps computed from the implicit-classifier
    form (Bayes: p(x|c)^(1+w)/p(x)^w is proportional to p(x|c) p(c|x)^w) against both guidance conventions
    applied to eps_cond/eps_uncond (rtol 1e-12); log p_t(x) against the density written out without logsumexp
    (rtol 1e-13); eps from the score against eps from Tweedie's posterior mean E[x_0 | x_t] (the route the
    Swift side takes; rtol 1e-12).

Run:  python3 Fixtures/make_guidance_fixtures.py      (writes Fixtures/guidance.h5)
Layout and every convention: Fixtures/README.md, section "guidance.h5" (the layout agreed for issue 20).
"""
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "guidance.h5")
SEED = 20220726  # Ho & Salimans' arXiv date (2207.12598)
T = 1000
T_STEP, T_PREV = 500, 450
SHAPE = (2, 1, 4, 4)

WORST = {}  # name -> worst discrepancy of a self-check, printed at the end


def check(name, got, want, rtol, atol=0.0):
    """Assert |got - want| <= atol + rtol * max|want| and record the worst relative discrepancy."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    scale = max(float(np.abs(want).max()), 1e-300)
    err = float(np.abs(got - want).max())
    assert err <= atol + rtol * scale, f"{name}: worst |diff| {err:.3e} (max|ref| {scale:.3e}, rtol {rtol})"
    WORST[name] = max(WORST.get(name, 0.0), err / scale)


# ============================================================================= schedule
def linear_alpha_bar(T=T, start=1e-4, end=0.02):
    """Ho et al. (2020) sec. 4: beta_t = linspace(1e-4, 0.02, T), alpha_bar_t = prod_{s <= t} (1 - beta_s),
    t = 0 ... T-1 (0-based; not rescaled by 1000/T). Shape (T,)."""
    return np.cumprod(1.0 - np.linspace(start, end, T, dtype=np.float64))


# ============================================================================= classifier-free guidance
def cfg_paper(eps_c, eps_u, w):
    """PAPER convention, Ho & Salimans (2022) eq. 6: eps~ = (1 + w) eps_c - w eps_u. w = 0 gives eps_c exactly."""
    return (1.0 + w) * eps_c - w * eps_u


def cfg_scale(eps_c, eps_u, s):
    """SCALE convention (GLIDE, latent diffusion, diffusers, k-diffusion): eps~ = eps_u + s (eps_c - eps_u),
    s = 1 + w. Used only as a cross-check of cfg_paper; the stored numbers are cfg_paper's."""
    return eps_u + s * (eps_c - eps_u)


def rescale(guided, eps_c, phi, ddof=0):
    """Lin et al. (2024) sec. 3.4, eqs. 15-16; diffusers `rescale_noise_cfg`. Per sample n (std over every axis
    except axis 0): eps_rescaled = guided * (std(eps_c[n]) / std(guided[n])); out = phi eps_rescaled +
    (1 - phi) guided. Population std (ddof = 0) by default; the normalisation cancels in the ratio.
    Shapes: guided, eps_c [N, ...] -> [N, ...]."""
    axes = tuple(range(1, guided.ndim))
    ratio = np.std(eps_c, axis=axes, ddof=ddof, keepdims=True) / np.std(guided, axis=axes, ddof=ddof, keepdims=True)
    return phi * (guided * ratio) + (1.0 - phi) * guided


# ============================================================================= DDIM (eta = 0) and classifier guidance
def ddim_step(x_t, eps, ab_t, ab_prev):
    """Song et al. (2021) eq. 12, eta = 0, no clipping: x0^ = (x_t - sqrt(1 - ab_t) eps)/sqrt(ab_t);
    x_prev = sqrt(ab_prev) x0^ + sqrt(1 - ab_prev) eps. Returns (x0_pred, x_prev)."""
    x0 = (x_t - np.sqrt(1.0 - ab_t) * eps) / np.sqrt(ab_t)
    return x0, np.sqrt(ab_prev) * x0 + np.sqrt(1.0 - ab_prev) * eps


def ddim_step_closed_form(x_t, eps, ab_t, ab_prev):
    """The same step with x0^ eliminated (cross-check only):
    x_prev = sqrt(ab_prev/ab_t) x_t + (sqrt(1 - ab_prev) - sqrt(ab_prev (1 - ab_t)/ab_t)) eps."""
    return np.sqrt(ab_prev / ab_t) * x_t + (np.sqrt(1.0 - ab_prev) - np.sqrt(ab_prev * (1.0 - ab_t) / ab_t)) * eps


def condition_mean(mean, variance, grad, s):
    """Dhariwal & Nichol (2021) Algorithm 1 (guided-diffusion `condition_mean`): mu + s Sigma grad_x log p_phi(y|x_t)."""
    return mean + s * variance * grad


def condition_score(eps, grad, ab_t, s):
    """Dhariwal & Nichol (2021) Algorithm 2 (guided-diffusion `condition_score`): eps^ - sqrt(1 - ab_t) s grad."""
    return eps - np.sqrt(1.0 - ab_t) * s * grad


# ============================================================================= the two-Gaussian mixture
def logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def component_log_densities(x, means, s2, a):
    """log p_t(x | k) for every component k: p_t(x|k) = N(sqrt(a) mu_k, v I), v = a s^2 + 1 - a
    (x_t = sqrt(a) x_0 + sqrt(1 - a) eps with x_0 ~ N(mu_k, s^2 I)). x [N, D], means [K, D] -> [N, K]."""
    v = a * s2 + 1.0 - a
    d = x[:, None, :] - np.sqrt(a) * means[None, :, :]
    D = x.shape[1]
    return -0.5 * np.sum(d * d, axis=2) / v - 0.5 * D * np.log(2.0 * np.pi * v)


def log_p_uncond(x, weights, means, s2, a):
    """log p_t(x) = logsumexp_k (log pi_k + log p_t(x|k)). [N, D] -> [N]."""
    return logsumexp(np.log(weights)[None, :] + component_log_densities(x, means, s2, a), axis=1)


def log_p_guided(x, c, w, weights, means, s2, a):
    """log of p_t(x|c)^(1+w) / p_t(x)^w (unnormalised): (1 + w) log p_t(x|c) - w log p_t(x). [N, D] -> [N]."""
    return (1.0 + w) * component_log_densities(x, means, s2, a)[:, c] - w * log_p_uncond(x, weights, means, s2, a)


def posterior_weights(x, weights, means, s2, a):
    """p(c = k | x_t) = pi_k p_t(x|k) / sum_j pi_j p_t(x|j), by a softmax of the log terms. [N, D] -> [N, K]."""
    lt = np.log(weights)[None, :] + component_log_densities(x, means, s2, a)
    return np.exp(lt - logsumexp(lt, axis=1)[:, None])


def score_cond(x, c, means, s2, a):
    """grad_x log p_t(x|c) = -(x - sqrt(a) mu_c)/v. [N, D]."""
    return -(x - np.sqrt(a) * means[c]) / (a * s2 + 1.0 - a)


def score_uncond(x, weights, means, s2, a):
    """grad_x log p_t(x) = sum_k r_k(x) grad_x log p_t(x|k), r = posterior_weights (logsumexp-weighted). [N, D]."""
    r = posterior_weights(x, weights, means, s2, a)
    return sum(r[:, k:k + 1] * score_cond(x, k, means, s2, a) for k in range(len(weights)))


def score_guided(x, c, w, weights, means, s2, a):
    """grad_x log( p_t(x|c)^(1+w) / p_t(x)^w ), derived through Bayes' rule rather than the guidance formula:
    p_t(x|c)^(1+w) / p_t(x)^w = p_t(x|c) (p_t(x|c)/p_t(x))^w  is proportional to  p_t(x|c) p(c|x)^w, and
    grad_x log p(c|x) = grad log p_t(x|c) - sum_k r_k grad log p_t(x|k) = sqrt(a) (mu_c - sum_k r_k mu_k) / v, so
        score = -(x - sqrt(a) mu_c)/v + w sqrt(a) (mu_c - mu_bar(x))/v,   mu_bar(x) = sum_k r_k(x) mu_k.  [N, D]."""
    v = a * s2 + 1.0 - a
    r = posterior_weights(x, weights, means, s2, a)
    mu_bar = r @ means
    return -(x - np.sqrt(a) * means[c]) / v + w * np.sqrt(a) * (means[c] - mu_bar) / v


def eps_from_tweedie(x, r, means, s2, a):
    """Cross-check route: E[eps | x_t] = (x_t - sqrt(a) E[x_0 | x_t]) / sqrt(1 - a), with the Gaussian posterior
    mean per component E[x_0 | x_t, k] = mu_k + (sqrt(a) s^2 / v)(x_t - sqrt(a) mu_k) and E[x_0|x_t] = sum_k r_k
    E[x_0|x_t,k] (r = one-hot for a conditional model, the posterior weights for the unconditional one)."""
    v = a * s2 + 1.0 - a
    post = means[None, :, :] + (np.sqrt(a) * s2 / v) * (x[:, None, :] - np.sqrt(a) * means[None, :, :])
    x0 = np.einsum("nk,nkd->nd", r, post)
    return (x - np.sqrt(a) * x0) / np.sqrt(1.0 - a)


def log_p_uncond_direct(x, weights, means, s2, a):
    """Cross-check of log_p_uncond without logsumexp: log sum_k pi_k prod_j n(x_j; sqrt(a) mu_kj, v), with the
    1-D normal density n(y; m, v) = exp(-(y - m)^2 / (2 v)) / sqrt(2 pi v) (fine at these magnitudes). [N]."""
    v = a * s2 + 1.0 - a
    n1 = np.exp(-(x[:, None, :] - np.sqrt(a) * means[None, :, :]) ** 2 / (2.0 * v)) / np.sqrt(2.0 * np.pi * v)
    return np.log(np.sum(weights[None, :] * np.prod(n1, axis=2), axis=1))


def fd_grad(f, x, h=1e-5):
    """Central finite differences of a per-row scalar function f: [N, D] -> [N]. Returns [N, D]."""
    g = np.zeros_like(x)
    for j in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, j] = h
        g[:, j] = (f(x + e) - f(x - e)) / (2.0 * h)
    return g


# ============================================================================= the file
def put(g, name, data, **attrs):
    d = g.create_dataset(name, data=np.asarray(data, dtype=np.float64))
    for k, v in attrs.items():
        d.attrs[k] = v
    return d


def group(f, name, source, attrs, datasets):
    """One group: string attribute `source`, float64 scalar attributes, then the datasets in the given order."""
    g = f.create_group(name)
    g.attrs["source"] = source
    for k, v in attrs.items():
        g.attrs[k] = v
    for k, v in datasets.items():
        put(g, k, v)
    return g


def checked_ddim_step(name, x_t, eps, ab_t, ab_prev):
    """ddim_step, asserted against its closed form (rtol 1e-12). Returns (x0_pred, x_prev)."""
    x0, x_prev = ddim_step(x_t, eps, ab_t, ab_prev)
    check(f"{name}: x_prev vs closed form", x_prev, ddim_step_closed_form(x_t, eps, ab_t, ab_prev), 1e-12)
    return x0, x_prev


def fmt(x):
    """0 -> '0', 0.7 -> '0.7', 3.0 -> '3' (dataset and group names)."""
    return f"{x:g}"


def main():
    rng = np.random.default_rng(SEED)
    ab = linear_alpha_bar()
    ab_t, ab_prev = float(ab[T_STEP]), float(ab[T_PREV])
    shared = os.path.join(HERE, "diffusion.h5")
    if os.path.exists(shared):  # the house's schedule table, written by make_diffusion_fixtures.py
        with h5py.File(shared, "r") as d:
            table = d["schedules/linear/T1000/alphas_cumprod"][()]
        assert table[T_STEP] == ab_t and table[T_PREV] == ab_prev, "alpha_bar differs from diffusion.h5"
        print("alpha_bar at t = 500, 450 equals diffusion.h5's linear T1000 table bit for bit")

    # ---------------------------------------------------------------- inputs, drawn in one fixed order
    cfg_eps_c = rng.standard_normal(SHAPE)
    cfg_eps_u = 0.8 * cfg_eps_c + 0.6 * rng.standard_normal(SHAPE)  # correlated, as real eps_c / eps_u are

    dd_x0 = rng.uniform(-1.0, 1.0, SHAPE)
    dd_noise = rng.standard_normal(SHAPE)
    dd_x_t = np.sqrt(ab_t) * dd_x0 + np.sqrt(1.0 - ab_t) * dd_noise  # a plausible x_t (Ho eq. 4)
    dd_eps_c = dd_noise + 0.3 * rng.standard_normal(SHAPE)
    dd_eps_u = 0.8 * dd_eps_c + 0.6 * rng.standard_normal(SHAPE)

    cm_x_t = rng.standard_normal(SHAPE)
    cm_mean = 0.9 * cm_x_t + 0.1 * rng.standard_normal(SHAPE)
    cm_var = np.exp(rng.uniform(np.log(0.05), np.log(0.5), SHAPE))  # per element, positive
    cm_grad = 1.5 * rng.standard_normal(SHAPE)
    cm_noise = rng.standard_normal(SHAPE)

    cs_x0 = rng.uniform(-1.0, 1.0, SHAPE)
    cs_noise = rng.standard_normal(SHAPE)
    cs_x_t = np.sqrt(ab_t) * cs_x0 + np.sqrt(1.0 - ab_t) * cs_noise
    cs_eps = cs_noise + 0.3 * rng.standard_normal(SHAPE)
    cs_grad = 1.5 * rng.standard_normal(SHAPE)

    mix_weights = np.array([0.3, 0.7])
    mix_s2 = 0.25
    mix_means = np.array([[1.0, -0.5, 0.25, 2.0],
                          [-1.5, 1.0, 0.5, -0.75]])
    mix_alphas = (0.9, 0.5, 0.05)
    mix_x = {}
    for a in mix_alphas:
        # two noised draws from each component, then a point between the noised means, 45 % of the way from
        # component 0's (posterior weights away from 0, 1 and the prior there, so the weighting matters)
        v = a * mix_s2 + 1.0 - a
        rows = [np.sqrt(a) * mix_means[k] + np.sqrt(v) * rng.standard_normal(4) for k in (0, 0, 1, 1)]
        rows.append(np.sqrt(a) * (0.55 * mix_means[0] + 0.45 * mix_means[1]))
        mix_x[a] = np.array(rows)

    with h5py.File(OUT, "w", libver=("v108", "v108")) as f:  # compact groups: keeps the file small
        f.attrs["generator"] = "Fixtures/make_guidance_fixtures.py"
        f.attrs["seed"] = SEED
        f.attrs["source"] = ("issue 20 guidance oracle: Ho & Salimans 2022 eq. 6 (paper w), GLIDE/diffusers/"
                             "k-diffusion s = 1 + w, Lin et al. 2024 sec. 3.4 rescale, Song et al. 2021 eq. 12, "
                             "Dhariwal & Nichol 2021 Algorithms 1-2, exact two-Gaussian mixture")

        # ------------------------------------------------------------ /cfg
        g = f.create_group("cfg")
        g.attrs["source"] = ("Ho & Salimans 2022 eq. 6 (paper): eps~ = (1 + w) eps_c - w eps_u; diffusers/GLIDE/"
                             "k-diffusion: eps_u + s (eps_c - eps_u), s = 1 + w (same numbers; stored values from the "
                             "paper form); rescale: Lin et al. 2024 sec. 3.4 eqs. 15-16 / diffusers rescale_noise_cfg, "
                             "per sample over axes 1..3, out = phi eps~ std(eps_c)/std(eps~) + (1 - phi) eps~, "
                             "population std (ddof = 0; cancels in the ratio)")
        put(g, "eps_c", cfg_eps_c)
        put(g, "eps_u", cfg_eps_u)
        for w in (0.0, 1.0, 3.0):
            guided = cfg_paper(cfg_eps_c, cfg_eps_u, w)
            check("cfg: paper vs scale convention", guided, cfg_scale(cfg_eps_c, cfg_eps_u, 1.0 + w), 1e-14)
            if w == 0.0:
                assert np.array_equal(guided, cfg_eps_c), "w = 0 must return eps_c bit for bit"
            full = rescale(guided, cfg_eps_c, 1.0)
            check("cfg: std(rescaled, phi = 1) vs std(eps_c)", np.std(full, axis=(1, 2, 3)), np.std(cfg_eps_c, axis=(1, 2, 3)), 1e-14)
            for phi in (0.0, 0.7):
                out = rescale(guided, cfg_eps_c, phi)
                check("cfg: rescale ddof 0 vs ddof 1", out, rescale(guided, cfg_eps_c, phi, ddof=1), 1e-14)
                if phi == 0.0:
                    assert np.array_equal(out, guided), "phi = 0 must return eps~ bit for bit"
                put(g, f"guided_w{fmt(w)}_phi{fmt(phi)}", out, w=w, s=1.0 + w, phi=phi)
        # a rescale that does something: phi = 0.7 moves w = 3's output (a scale test that can fail)
        assert np.abs(g["guided_w3_phi0.7"][()] - g["guided_w3_phi0"][()]).max() > 0.05

        # ------------------------------------------------------------ /ddim_step
        eps_g = cfg_paper(dd_eps_c, dd_eps_u, 3.0)
        check("ddim_step: paper vs scale convention", eps_g, cfg_scale(dd_eps_c, dd_eps_u, 4.0), 1e-14)
        x0, x_prev = checked_ddim_step("ddim_step", dd_x_t, eps_g, ab_t, ab_prev)
        group(f, "ddim_step",
              "Song et al. 2021 eq. 12 (DDIM, eta = 0, no clipping) from the classifier-free guided eps, paper "
              "convention Ho & Salimans 2022 eq. 6 with w = 3 (s = 4), phi = 0; Ho et al. 2020 linear beta = "
              "linspace(1e-4, 0.02, 1000), alpha_bar = cumprod(1 - beta), 0-based t = 500 -> 450",
              dict(t=float(T_STEP), t_prev=float(T_PREV), w=3.0, s=4.0, alpha_bar_t=ab_t, alpha_bar_prev=ab_prev),
              dict(x_t=dd_x_t, eps_c=dd_eps_c, eps_u=dd_eps_u, eps_guided=eps_g, x0_pred=x0, x_prev=x_prev))

        # ------------------------------------------------------------ /classifier_mean
        shifted = condition_mean(cm_mean, cm_var, cm_grad, 2.0)
        x_prev = shifted + np.sqrt(cm_var) * cm_noise
        # cross-check: the same draw as mu + Sigma (s grad) + exp(log Sigma / 2) z (guided-diffusion's form)
        check("classifier_mean: x_prev vs exp(log var / 2) form",
              x_prev, cm_mean + cm_var * (2.0 * cm_grad) + np.exp(0.5 * np.log(cm_var)) * cm_noise, 1e-14)
        group(f, "classifier_mean",
              "Dhariwal & Nichol 2021 Algorithm 1 (guided-diffusion condition_mean): mean_shifted = mu + s Sigma "
              "grad_x log p_phi(y|x_t); x_prev = mean_shifted + sqrt(Sigma) z; s stored as attributes s and scale",
              dict(s=2.0, scale=2.0),
              dict(x_t=cm_x_t, mean=cm_mean, variance=cm_var, grad=cm_grad, noise=cm_noise,
                   mean_shifted=shifted, x_prev=x_prev))

        # ------------------------------------------------------------ /classifier_score
        eps_g = condition_score(cs_eps, cs_grad, ab_t, 2.0)
        x0, x_prev = checked_ddim_step("classifier_score", cs_x_t, eps_g, ab_t, ab_prev)
        group(f, "classifier_score",
              "Dhariwal & Nichol 2021 Algorithm 2 (guided-diffusion condition_score): eps_guided = eps - "
              "sqrt(1 - alpha_bar_t) s grad_x log p_phi(y|x_t); then Song et al. 2021 eq. 12 (eta = 0, no "
              "clipping); schedule as /ddim_step; s stored as attributes s and scale",
              dict(t=float(T_STEP), t_prev=float(T_PREV), alpha_bar_t=ab_t, alpha_bar_prev=ab_prev, s=2.0, scale=2.0),
              dict(x_t=cs_x_t, eps=cs_eps, grad=cs_grad, eps_guided=eps_g, x0_pred=x0, x_prev=x_prev))

        # ------------------------------------------------------------ /mixture
        g = f.create_group("mixture")
        g.attrs["source"] = ("exact oracle: x_0 ~ sum_k pi_k N(mu_k, s^2 I), class = component; p_t(x|c) = "
                             "N(sqrt(a) mu_c, (a s^2 + 1 - a) I), p_t(x) = sum_k pi_k p_t(x|k); eps = -sqrt(1 - a) "
                             "grad_x log p_t (analytic, logsumexp-weighted); guided eps = -sqrt(1 - a) grad_x log "
                             "(p_t(x|c)^(1+w) / p_t(x)^w), derived via Bayes as p_t(x|c) p(c|x)^w, not via eq. 6")
        g.attrs["weights"] = mix_weights
        g.attrs["variance"] = mix_s2
        put(g, "means", mix_means)
        fd_worst = 0.0
        for a in mix_alphas:
            x = mix_x[a]
            h = g.create_group(f"a{fmt(a)}")
            h.attrs["alpha_bar"] = a
            h.attrs["source"] = (f"mixture at alpha_bar = {fmt(a)}: rows 0-1 noised draws of component 0, rows 2-3 of "
                                 "component 1, row 4 = sqrt(a) (0.55 mu_0 + 0.45 mu_1); posterior_weights = p(c|x_t) (extra, "
                                 "for reference)")
            sq = np.sqrt(1.0 - a)
            put(h, "x_t", x)
            r = posterior_weights(x, mix_weights, mix_means, mix_s2, a)
            eps_c = {}
            for c in (0, 1):
                sc = score_cond(x, c, mix_means, mix_s2, a)
                fd = fd_grad(lambda y: component_log_densities(y, mix_means, mix_s2, a)[:, c], x)
                check(f"mixture: FD vs analytic grad log p_t(x|c)", sc, fd, 1e-6)
                eps_c[c] = -sq * sc
                onehot = np.zeros_like(r)
                onehot[:, c] = 1.0
                check("mixture: eps_cond vs Tweedie route", eps_c[c], eps_from_tweedie(x, onehot, mix_means, mix_s2, a), 1e-12)
                put(h, f"eps_cond_c{c}", eps_c[c])
            su = score_uncond(x, mix_weights, mix_means, mix_s2, a)
            fd = fd_grad(lambda y: log_p_uncond(y, mix_weights, mix_means, mix_s2, a), x)
            check("mixture: FD vs analytic grad log p_t(x)", su, fd, 1e-6)
            fd_worst = max(fd_worst, float(np.abs(su - fd).max()))
            eps_u = -sq * su
            check("mixture: eps_uncond vs Tweedie route", eps_u, eps_from_tweedie(x, r, mix_means, mix_s2, a), 1e-12)
            put(h, "eps_uncond", eps_u)
            for w in (1.0, 3.0):
                for c in (0, 1):
                    sg = score_guided(x, c, w, mix_weights, mix_means, mix_s2, a)
                    fd = fd_grad(lambda y: log_p_guided(y, c, w, mix_weights, mix_means, mix_s2, a), x)
                    check("mixture: FD vs analytic guided score", sg, fd, 1e-6)
                    eg = -sq * sg
                    check("mixture: guided (Bayes form) vs paper eq. 6 on exact eps", eg, cfg_paper(eps_c[c], eps_u, w), 1e-12)
                    check("mixture: guided (Bayes form) vs scale form on exact eps", eg, cfg_scale(eps_c[c], eps_u, 1.0 + w), 1e-12)
                    put(h, f"eps_guided_w{fmt(w)}_c{c}", eg)
            lp = log_p_uncond(x, mix_weights, mix_means, mix_s2, a)
            check("mixture: log p_t(x) vs direct density", lp, log_p_uncond_direct(x, mix_weights, mix_means, mix_s2, a), 1e-13)
            put(h, "log_p_uncond", lp)
            put(h, "posterior_weights", r)
            print(f"mixture a = {fmt(a)}: posterior weight of component 0 per row: " + ", ".join(f"{p:.4f}" for p in r[:, 0]))

    print("wrote", OUT, os.path.getsize(OUT), "bytes")
    print("self-checks, worst |diff| / max|reference| (asserted below each tolerance):")
    for k, v in WORST.items():
        print(f"  {k}: {v:.3e}")


if __name__ == "__main__":
    main()
