"""Reference tensors for the samplers on sigma schedules (issue 18): the sigma view of the trained schedule, sigma
schedules (Karras, exponential, respaced trained sigmas), sigma <-> t conversions, one step of every solver from a
stored state and stored model outputs, and whole trajectories on an analytic Gaussian model with the closed-form
probability-flow ODE solution and the measured convergence orders. Written with numpy only.

This file is an independent oracle: it is written from the papers and from the documented conventions of
k-diffusion (sampling.py, external.DiscreteSchedule) and diffusers (the Euler / DPMSolverMultistep / UniPC / PNDM
schedulers), read to learn their conventions, never copied, and never from the Swift code it checks.
Every quantity is float64; trained timesteps are 0-based (t = 0 ... T-1), the schedule is the house's linear one.
Running it twice gives a byte-identical file (fixed seeds, no timestamps).

Sources:
  [EDM]    Karras, Aittala, Aila & Laine (2022), "Elucidating the Design Space of Diffusion-Based Generative Models":
           eq. 5 (the sigma schedule), Algorithm 1 (Euler / Heun, last step Euler), Algorithm 2 (S_churn, S_tmin,
           S_tmax, S_noise), Table 1 (VP / iDDPM rows: sigma_t = sqrt((1 - abar_t) / abar_t), x = x_t / sqrt(abar_t)).
  [DPM]    Lu et al. (2022a), "DPM-Solver": Algorithms 1 (DPM-Solver-2, r1 = 1/2) and 2 (DPM-Solver-3, r1 = 1/3,
           r2 = 2/3), eq. 3.7 (DPM-Solver-1 = DDIM), noise prediction, lambda = log(alpha / sigma).
  [DPM++]  Lu et al. (2022b), "DPM-Solver++": Algorithm 1 (2S), Algorithm 2 (2M), and the SDE variant 2M-SDE as
           k-diffusion's sample_dpmpp_2m_sde / diffusers' "sde-dpmsolver++" run it (midpoint and heun).
  [UniPC]  Zhao, Bai, Rao, Zhou & Lu (2023), "UniPC": UniP-p (predictor) and UniC-p (corrector), B(h) = h (bh1) or
           e^h - 1 (bh2), data prediction, with the two shortcuts of the authors' code (also diffusers'): the
           order-2 predictor uses rho = 1/2 and the order-1 corrector uses rho = 1/2 instead of solving.
  [PNDM]   Liu, Ren, Lin & Zhao (2022), "Pseudo Numerical Methods for Diffusion Models": eq. 11 (the transfer phi),
           eq. 12 (PLMS), eq. 13 (pseudo Runge-Kutta); diffusers' PNDMScheduler (plain PLMS warm-up with
           skip_prk_steps = True, PRK warm-up otherwise).
  [KD]     k-diffusion: get_sigmas_karras / _exponential / _polyexponential, get_ancestral_step, to_d,
           sample_euler / _euler_ancestral / _heun / _dpmpp_2s_ancestral / _dpmpp_2m / _dpmpp_2m_sde,
           DiscreteSchedule.sigma_to_t (quantize or log-linear) / t_to_sigma.
  [HF]     diffusers: timestep_spacing linspace / leading / trailing (per scheduler), final_sigmas_type,
           lower_order_final, euler_at_final.

Run:  python3 Fixtures/make_solver_fixtures.py      (writes Fixtures/solvers.h5)
Layout and every convention: Fixtures/README.md, section "solvers.h5".
"""
import math
import os
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "solvers.h5")
SHAPE = (2, 3)  # every solver state: 2 samples x 3 values


# ============================================================================= schedule, sigma view
def linear_betas(T, start, end):
    """beta_t = linspace(start, end, T), t = 0 ... T-1 (numpy linspace; the house's linear schedule)."""
    return np.linspace(start, end, T, dtype=np.float64)


def sigma_view(betas):
    """[EDM Table 1, VP / iDDPM]: abar = cumprod(1 - beta); sigma_t = sqrt((1 - abar_t) / abar_t);
    lambda_t = -log sigma_t (half log-SNR, = log(alpha_t / sigma_vp_t) of [DPM]). Shapes (T,)."""
    abar = np.cumprod(1.0 - betas)
    sigmas = np.sqrt((1.0 - abar) / abar)
    return abar, sigmas, -np.log(sigmas)


def alpha_of_sigma(sigma):
    """alpha = sqrt(abar) = 1 / sqrt(1 + sigma^2) [EDM Table 1]: x_t = alpha * x, x = the sigma-space state."""
    return 1.0 / np.sqrt(1.0 + np.asarray(sigma, dtype=np.float64) ** 2)


# ============================================================================= sigma schedules
def karras_sigmas(n, sigma_min, sigma_max, rho):
    """[EDM eq. 5; KD get_sigmas_karras]: sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) -
    sigma_max^(1/rho)))^rho, i = 0 ... n-1 (ramp = linspace(0, 1, n)); descending, WITHOUT the final 0."""
    ramp = np.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def exponential_sigmas(n, sigma_min, sigma_max):
    """[KD get_sigmas_exponential]: exp(linspace(log sigma_max, log sigma_min, n)) (uniform in log sigma)."""
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n))


def polyexponential_sigmas(n, sigma_min, sigma_max, rho):
    """[KD get_sigmas_polyexponential]: exp(linspace(1, 0, n)^rho (log sigma_max - log sigma_min) + log sigma_min)."""
    ramp = np.linspace(1.0, 0.0, n) ** rho
    return np.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))


def respaced_timesteps(T, N, rule):
    """Kept timesteps in SAMPLING order (descending). float64 for linspace_euler (fractional), int64 otherwise.
      linspace_euler      diffusers EulerDiscreteScheduler / HeunDiscrete / LMSDiscrete: linspace(0, T-1, N), NOT
                          rounded (fractional t; sigma by linear interpolation in sigma, np.interp)
      linspace_ddim       diffusers DDIMScheduler / DDPMScheduler: round(linspace(0, T-1, N)) (ties to even)
      linspace_dpmsolver  diffusers DPMSolverMultistep / UniPCMultistep: round(linspace(0, T-1, N+1)), reversed,
                          the last (0) dropped
      leading_offset<k>   diffusers DDIM / Euler / PNDM: arange(N) * (T // N) + k
      leading_dpmsolver   diffusers DPMSolverMultistep / UniPC: arange(N+1) * (T // (N+1)), reversed, last dropped
      trailing            diffusers (all): round(arange(T, 0, -T/N)) - 1
      ddim                improved-diffusion space_timesteps("ddimN"): the smallest stride k with ceil(T/k) = N"""
    if rule == "linspace_euler":
        return np.linspace(0.0, T - 1.0, N)[::-1].copy()
    if rule == "linspace_ddim":
        ts = np.round(np.linspace(0.0, T - 1.0, N))[::-1]
    elif rule == "linspace_dpmsolver":
        ts = np.round(np.linspace(0.0, T - 1.0, N + 1))[::-1][:-1]
    elif rule.startswith("leading_offset"):
        ts = (np.arange(N) * (T // N))[::-1] + int(rule[len("leading_offset"):])
    elif rule == "leading_dpmsolver":
        ts = (np.arange(N + 1) * (T // (N + 1)))[::-1][:-1]
    elif rule == "trailing":
        ts = np.round(np.arange(T, 0, -T / N)) - 1
    elif rule == "ddim":
        k = next(k for k in range(1, T) if len(range(0, T, k)) == N)
        ts = np.arange(0, T, k)[::-1]
    else:
        raise ValueError(rule)
    ts = np.asarray(ts).astype(np.int64)
    assert len(ts) == N and np.all(np.diff(ts) < 0) and ts[0] <= T - 1 and ts[-1] >= 0, (rule, ts)
    return ts


RULE_SOURCES = {
    "linspace_euler": "diffusers EulerDiscreteScheduler (also Heun/LMS discrete): linspace(0, T-1, N), fractional t, "
                      "sigma = np.interp in sigma",
    "linspace_ddim": "diffusers DDIMScheduler / DDPMScheduler: round(linspace(0, T-1, N)), ties to even",
    "linspace_dpmsolver": "diffusers DPMSolverMultistepScheduler / UniPCMultistepScheduler: "
                          "round(linspace(0, T-1, N+1)) reversed, the last (0) dropped",
    "leading_offset0": "diffusers DDIM / Euler / PNDM timestep_spacing='leading', steps_offset=0: arange(N) * (T // N)",
    "leading_offset1": "diffusers DDIM / Euler / PNDM timestep_spacing='leading', steps_offset=1: arange(N) * (T // N) + 1",
    "leading_dpmsolver": "diffusers DPMSolverMultistep / UniPC 'leading' (steps_offset=0): arange(N+1) * (T // (N+1)) "
                         "reversed, the last (0) dropped",
    "trailing": "diffusers timestep_spacing='trailing': round(arange(T, 0, -T/N)) - 1",
    "ddim": "improved-diffusion space_timesteps('ddimN'): 0, k, 2k, ... with the smallest k such that ceil(T/k) = N",
}


# ============================================================================= sigma <-> t
def sigma_to_t_nearest(sigma, log_sigmas):
    """[KD DiscreteSchedule.sigma_to_t, quantize=True]: argmin_i |log sigma - log sigma_i| (the first on a tie).
    Returns int64 indices."""
    d = np.abs(np.log(np.asarray(sigma))[None, :] - log_sigmas[:, None])
    return np.argmin(d, axis=0).astype(np.int64)


def sigma_to_t_log_linear(sigma, log_sigmas):
    """[KD DiscreteSchedule.sigma_to_t, quantize=False; HF _sigma_to_t]: low = the last i with log sigma_i <=
    log sigma, clamped to T-2 (0 when none); w = (log sigma_low - log sigma)/(log sigma_low - log sigma_low+1)
    clamped to [0, 1]; t = (1 - w) low + w (low + 1). Outside the trained range t clamps to 0 or T-1."""
    ls = np.log(np.asarray(sigma, dtype=np.float64))
    n = len(log_sigmas)
    out = []
    for v in ls:
        below = np.nonzero(log_sigmas <= v)[0]
        low = min(int(below[-1]) if len(below) else 0, n - 2)
        w = (log_sigmas[low] - v) / (log_sigmas[low] - log_sigmas[low + 1])
        w = min(max(w, 0.0), 1.0)
        out.append((1.0 - w) * low + w * (low + 1))
    return np.array(out)


def sigma_to_t_linear(sigma, sigmas):
    """Linear interpolation in sigma (the inverse of diffusers' np.interp(t, arange(T), sigmas)): low as above
    but on sigma itself; t = low + (sigma - sigma_low)/(sigma_low+1 - sigma_low), clamped to [0, T-1]."""
    n = len(sigmas)
    out = []
    for v in np.asarray(sigma, dtype=np.float64):
        below = np.nonzero(sigmas <= v)[0]
        low = min(int(below[-1]) if len(below) else 0, n - 2)
        w = min(max((v - sigmas[low]) / (sigmas[low + 1] - sigmas[low]), 0.0), 1.0)
        out.append((1.0 - w) * low + w * (low + 1))
    return np.array(out)


def t_to_sigma_log_linear(t, log_sigmas):
    """[KD DiscreteSchedule.t_to_sigma]: low = floor(t), high = ceil(t), w = t - floor(t);
    sigma = exp((1 - w) log sigma_low + w log sigma_high)."""
    t = np.asarray(t, dtype=np.float64)
    lo, hi = np.floor(t).astype(np.int64), np.ceil(t).astype(np.int64)
    w = t - np.floor(t)
    return np.exp((1.0 - w) * log_sigmas[lo] + w * log_sigmas[hi])


def t_to_sigma_linear(t, sigmas):
    """[HF EulerDiscreteScheduler]: np.interp(t, arange(T), sigmas) = (1 - w) sigma_low + w sigma_high."""
    return np.interp(np.asarray(t, dtype=np.float64), np.arange(len(sigmas), dtype=np.float64), sigmas)


# ============================================================================= solver steps (sigma space)
# The state x is the sigma-space state x = x_t / sqrt(abar) [EDM Table 1]. A "denoised" output is
# D(x; sigma) = x0-hat; an "eps" output is eps-hat; they are related by eps = (x - D)/sigma.
def to_d(x, sigma, denoised):
    """[EDM Alg. 1; KD to_d]: dx/dsigma = (x - D(x; sigma)) / sigma."""
    return (x - denoised) / sigma


def ancestral_split(sigma_from, sigma_to, eta):
    """[KD get_ancestral_step]: sigma_up = min(sigma_to, eta sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) /
    sigma_from^2)), sigma_down = sqrt(sigma_to^2 - sigma_up^2); eta = 0 gives (sigma_to, 0)."""
    if eta == 0.0:
        return sigma_to, 0.0
    up = min(sigma_to, eta * math.sqrt(sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2))
    return math.sqrt(sigma_to ** 2 - up ** 2), up


def churn(sigma, num_steps, s_churn, s_tmin, s_tmax, s_noise, x, z):
    """[EDM Alg. 2 lines 4-6; KD sample_euler / sample_heun]: gamma = min(S_churn / N, sqrt(2) - 1) if
    S_tmin <= sigma <= S_tmax else 0 (N = the number of steps = len(sigmas incl. the final 0) - 1);
    sigma_hat = sigma (1 + gamma); x_hat = x + sqrt(sigma_hat^2 - sigma^2) S_noise z (only when gamma > 0)."""
    gamma = min(s_churn / num_steps, math.sqrt(2.0) - 1.0) if s_tmin <= sigma <= s_tmax else 0.0
    sigma_hat = sigma * (gamma + 1.0)
    if gamma > 0:
        x = x + z * s_noise * math.sqrt(sigma_hat ** 2 - sigma ** 2)
    return x, sigma_hat, gamma


def euler_step(x, sigma, sigma_next, denoised):
    """[EDM Alg. 1 lines 4-5, S_churn = 0]: x' = x + (sigma_next - sigma) (x - D)/sigma."""
    return x + to_d(x, sigma, denoised) * (sigma_next - sigma)


def euler_ancestral_step(x, sigma, sigma_next, denoised, z, eta, s_noise=1.0):
    """[KD sample_euler_ancestral]: Euler to sigma_down, then + S_noise sigma_up z (no noise when sigma_next = 0)."""
    down, up = ancestral_split(sigma, sigma_next, eta)
    x = x + to_d(x, sigma, denoised) * (down - sigma)
    if sigma_next > 0:
        x = x + z * s_noise * up
    return x


def lam(sigma):
    """lambda = -log sigma (= +inf at sigma = 0)."""
    with np.errstate(divide="ignore"):
        return -np.log(sigma) if sigma > 0 else math.inf


def sig(l):
    """sigma = exp(-lambda)."""
    return math.exp(-l)


def dpmpp_first_order(x, sigma, sigma_next, denoised):
    """[DPM++ eq. (first-order data prediction) = DDIM in sigma space]: h = lambda_next - lambda;
    x' = (sigma_next/sigma) x - expm1(-h) D. At sigma_next = 0: x' = D exactly."""
    if sigma_next == 0:
        return denoised.copy()
    h = lam(sigma_next) - lam(sigma)
    return (sigma_next / sigma) * x - math.expm1(-h) * denoised


def dpmpp_2m_kdiffusion(x, sigma, sigma_next, denoised, sigma_prev, old_denoised):
    """[DPM++ Alg. 2; KD sample_dpmpp_2m]: first order when there is no history or sigma_next = 0; otherwise
    h = lambda_next - lambda, r = (lambda - lambda_prev)/h, D' = (1 + 1/(2r)) D - (1/(2r)) D_old,
    x' = (sigma_next/sigma) x - expm1(-h) D'."""
    if old_denoised is None or sigma_next == 0:
        return dpmpp_first_order(x, sigma, sigma_next, denoised)
    h = lam(sigma_next) - lam(sigma)
    r = (lam(sigma) - lam(sigma_prev)) / h
    dd = (1.0 + 1.0 / (2.0 * r)) * denoised - (1.0 / (2.0 * r)) * old_denoised
    return (sigma_next / sigma) * x - math.expm1(-h) * dd


def dpmpp_2m_diffusers(x, sigma, sigma_next, denoised, sigma_prev, old_denoised, order):
    """[HF DPMSolverMultistepScheduler, dpmsolver++, solver_type midpoint], in sigma space (diffusers runs the same
    update on x_t = alpha x; dividing by alpha_next gives this): order 1: x' = (sigma_next/sigma) x - expm1(-h) D0;
    order 2: D1 = (D0 - D_old)/r0, r0 = h_0/h, x' = (sigma_next/sigma) x - expm1(-h) D0 - 0.5 expm1(-h) D1.
    The caller picks the order (first step, lower_order_final, euler_at_final, final_sigmas_type)."""
    h = lam(sigma_next) - lam(sigma)
    if order == 1:
        return dpmpp_first_order(x, sigma, sigma_next, denoised)
    r0 = (lam(sigma) - lam(sigma_prev)) / h
    d1 = (1.0 / r0) * (denoised - old_denoised)
    return (sigma_next / sigma) * x - math.expm1(-h) * denoised - 0.5 * math.expm1(-h) * d1


# ============================================================================= the file
def put(g, name, data, **attrs):
    d = g.create_dataset(name, data=np.asarray(data))
    for k, v in attrs.items():
        d.attrs[k] = v
    return d


def rng_for(name):
    """A numpy Generator (PCG64) seeded by crc32 of the case name: each case's draws are independent of the others'
    (adding a case changes no other)."""
    return np.random.default_rng(zlib.crc32(name.encode()))


class Step:
    """Collects one step case: the model outputs in evaluation order with the (x, sigma) each was requested at."""

    def __init__(self, root, name, kind, x, **attrs):
        self.g = root.create_group(name)
        self.rng = rng_for(name)
        self.kind = kind
        self.x = x
        self.outputs, self.points, self.at = [], [], []
        self.g.attrs["output_kind"] = kind
        for k, v in attrs.items():
            self.g.attrs[k] = v

    def model(self, x, sigma):
        """A 'model' call: returns a fresh random output (standard normal) and records where it was asked."""
        out = self.rng.standard_normal(SHAPE)
        self.outputs.append(out)
        self.points.append(np.array(x, dtype=np.float64))
        self.at.append(sigma)
        return out

    def done(self, expected, **more):
        g = self.g
        put(g, "x", self.x)
        if self.outputs:
            put(g, "model_outputs", np.stack(self.outputs))
            put(g, "eval_points", np.stack(self.points))
            put(g, "eval_sigmas", np.array(self.at, dtype=np.float64))
        for k, v in more.items():
            put(g, k, v)
        put(g, "expected", expected)
        return expected


def main():
    T = 1000
    betas = linear_betas(T, 1e-4, 0.02)
    abar, sigmas, lambdas = sigma_view(betas)
    log_sigmas = np.log(sigmas)
    s_min, s_max = float(sigmas[0]), float(sigmas[-1])
    T10 = 10
    betas10 = linear_betas(T10, 1e-4, 0.2)
    abar10, sigmas10, lambdas10 = sigma_view(betas10)

    with h5py.File(OUT, "w", libver=("v108", "v108")) as f:
        f.attrs["generator"] = "Fixtures/make_solver_fixtures.py"
        f.attrs["timestep_origin"] = "0-based: t = 0 ... T-1"
        f.attrs["state_space"] = ("sigma space: x = x_t / sqrt(abar) (EDM Table 1), except the PLMS/PNDM steps, "
                                  "whose sample is x_t itself (each such group says so)")
        f.attrs["state_shape"] = np.array(SHAPE, dtype=np.int64)

        # ------------------------------------------------------------------ 1. the base schedules
        for name, (b, a, s, l), desc in (("T1000", (betas, abar, sigmas, lambdas), "beta = linspace(1e-4, 0.02, 1000)"),
                                         ("T10", (betas10, abar10, sigmas10, lambdas10), "beta = linspace(1e-4, 0.2, 10)")):
            g = f.create_group(f"schedule/{name}")
            g.attrs["betas_rule"] = desc
            g.attrs["T"] = len(b)
            put(g, "betas", b)
            put(g, "alphas_cumprod", a, formula="cumprod(1 - beta)")
            put(g, "sigmas", s, formula="sqrt((1 - abar) / abar), ascending in t")
            put(g, "log_sigmas", np.log(s), formula="log(sigmas)")
            put(g, "lambdas", l, formula="-log(sigmas) (half log-SNR)")

        # ------------------------------------------------------------------ 2. sigma schedules
        sg = f.create_group("sigma_schedules")
        sg.attrs["sigma_min"] = s_min
        sg.attrs["sigma_max"] = s_max
        sg.attrs["final_zero"] = ("stored WITHOUT the final sigma = 0; every sampler appends one sigma = 0 "
                                  "(k-diffusion append_zero; diffusers final_sigmas_type='zero')")
        for N in (5, 20, 50):
            for rho in (7.0, 3.0):
                ks = karras_sigmas(N, s_min, s_max, rho)
                g = sg.create_group(f"karras_rho{int(rho)}/N{N}")
                g.attrs.update(source="EDM eq. 5 / k-diffusion get_sigmas_karras", rho=rho, sigma_min=s_min,
                               sigma_max=s_max, appended_final_zero=True)
                put(g, "sigmas", ks)
                put(g, "t_log_linear", sigma_to_t_log_linear(ks, log_sigmas),
                    meaning="k-diffusion sigma_to_t of each sigma (fractional)")
                put(g, "t_log_linear_rounded", np.round(sigma_to_t_log_linear(ks, log_sigmas)).astype(np.int64),
                    meaning="diffusers use_karras_sigmas: round(_sigma_to_t) (ties to even), the network's timestep")
            es = exponential_sigmas(N, s_min, s_max)
            g = sg.create_group(f"exponential/N{N}")
            g.attrs.update(source="k-diffusion get_sigmas_exponential", sigma_min=s_min, sigma_max=s_max,
                           appended_final_zero=True)
            put(g, "sigmas", es)
            put(g, "t_log_linear", sigma_to_t_log_linear(es, log_sigmas))
            ps = polyexponential_sigmas(N, s_min, s_max, 2.0)
            g = sg.create_group(f"polyexponential_rho2/N{N}")
            g.attrs.update(source="k-diffusion get_sigmas_polyexponential", rho=2.0, sigma_min=s_min,
                           sigma_max=s_max, appended_final_zero=True)
            put(g, "sigmas", ps)
            assert np.allclose(polyexponential_sigmas(N, s_min, s_max, 1.0), es, rtol=1e-14, atol=0)
            for rule in ("linspace_euler", "linspace_ddim", "linspace_dpmsolver", "leading_offset0",
                         "leading_offset1", "leading_dpmsolver", "trailing", "ddim"):
                ts = respaced_timesteps(T, N, rule)
                g = sg.create_group(f"trained_{rule}/N{N}")
                g.attrs.update(source=RULE_SOURCES[rule], rule=rule, T=T, N=N, appended_final_zero=True)
                put(g, "timesteps", ts, order="descending (sampling order)")
                if rule == "linspace_euler":
                    put(g, "sigmas", t_to_sigma_linear(ts, sigmas),
                        meaning="np.interp(t, arange(T), sigmas): linear in sigma between trained sigmas")
                else:
                    put(g, "sigmas", sigmas[ts], meaning="trained sigma_t at the kept timesteps")
        # small hand checks of the rules
        assert list(respaced_timesteps(T, 5, "leading_offset1")) == [801, 601, 401, 201, 1]
        assert list(respaced_timesteps(T, 5, "trailing")) == [999, 799, 599, 399, 199]
        assert list(respaced_timesteps(T, 5, "ddim")) == [800, 600, 400, 200, 0]
        assert list(respaced_timesteps(T, 5, "linspace_dpmsolver")) == [999, 799, 599, 400, 200]
        k5 = karras_sigmas(5, s_min, s_max, 7.0)
        assert abs(k5[0] / s_max - 1) < 1e-15 and abs(k5[-1] / s_min - 1) < 1e-13

        # ------------------------------------------------------------------ 3. sigma <-> t
        for name, s, ls in (("T1000", sigmas, log_sigmas), ("T10", sigmas10, np.log(sigmas10))):
            n = len(s)
            mid = lambda i, w: s[i] ** (1.0 - w) * s[i + 1] ** w  # log-linear t = i + w (no .5 ties to round)
            q = np.array([s[0], s[1], s[n // 2], s[n - 2], s[n - 1],          # at trained values
                          mid(0, 0.4), mid(n // 2, 0.6), 0.25 * s[3] + 0.75 * s[4],     # between
                          s[2] * (s[3] / s[2]) ** 0.3,
                          0.5 * s[0], 2.0 * s[n - 1], 1e-6, 1e3])              # outside
            g = f.create_group(f"sigma_to_t/{name}")
            g.attrs["schedule"] = f"schedule/{name}"
            put(g, "query_sigmas", q, meaning="5 at trained sigma_0, 1, T/2, T-2, T-1; 4 between; 4 outside")
            put(g, "nearest", sigma_to_t_nearest(q, ls),
                meaning="k-diffusion quantize: argmin |log sigma - log sigma_i| (int64)")
            put(g, "log_linear", sigma_to_t_log_linear(q, ls),
                meaning="k-diffusion sigma_to_t: linear in log sigma, clamped to [0, T-1]")
            put(g, "sigma_linear", sigma_to_t_linear(q, s),
                meaning="linear in sigma (inverse of np.interp), clamped to [0, T-1]")
            put(g, "log_linear_rounded", np.round(sigma_to_t_log_linear(q, ls)).astype(np.int64),
                meaning="round (ties to even) of log_linear: what an integer-t network gets (diffusers)")
            qt = np.array([0.0, 0.5, 1.25, n / 2 - 0.5, n - 2.0, n - 1.5, n - 1.0, 0.1, 3.9])
            put(g, "query_t", qt)
            put(g, "t_to_sigma_log_linear", t_to_sigma_log_linear(qt, ls),
                meaning="k-diffusion t_to_sigma: exp((1-w) log sigma_floor + w log sigma_ceil)")
            put(g, "t_to_sigma_linear", t_to_sigma_linear(qt, s), meaning="np.interp in sigma (diffusers)")
            # round trips must be exact at the integers and close elsewhere
            assert np.array_equal(sigma_to_t_log_linear(s, ls), np.arange(n, dtype=np.float64))
            back = t_to_sigma_log_linear(sigma_to_t_log_linear(q[:9], ls), ls)
            assert np.allclose(back, q[:9], rtol=1e-12), back / q[:9] - 1

        # ------------------------------------------------------------------ 4. solver steps
        K = np.concatenate([karras_sigmas(10, s_min, s_max, 7.0), [0.0]])  # the step cases' sigma table
        steps = f.create_group("steps")
        steps.attrs["sigma_table"] = "Karras rho = 7, N = 10, sigma_min = trained sigma_0, sigma_max = trained sigma_999, final 0"
        put(steps, "karras10", K, meaning="the sigma table the step cases take their sigmas from (11 values, last 0)")
        x0 = rng_for("state").standard_normal(SHAPE)

        def start(i):
            return x0 * math.sqrt(1.0 + K[i] ** 2)  # a state of the size a sigma-space x has at sigma

        # Euler: a middle step and the last step (into sigma = 0: x' = D exactly)
        for case, i in (("euler/middle", 4), ("euler/last", 9)):
            s = Step(steps, case, "denoised", start(i), sigma=K[i], sigma_next=K[i + 1],
                     source="EDM Alg. 1 (S_churn = 0) / k-diffusion sample_euler")
            D = s.model(s.x, K[i])
            s.done(euler_step(s.x, K[i], K[i + 1], D))
        # Euler with churn (EDM Alg. 2 applied to Euler, k-diffusion sample_euler)
        for case, i, sc, tmin, tmax in (("euler_churn/middle", 4, 2.0, 0.05, 50.0),):
            s = Step(steps, case, "denoised", start(i), sigma=K[i], sigma_next=K[i + 1], s_churn=sc, s_tmin=tmin,
                     s_tmax=tmax, s_noise=1.003, num_steps=10,
                     source="k-diffusion sample_euler with s_churn: churn then Euler from sigma_hat")
            z = s.rng.standard_normal(SHAPE)
            xh, sh, gamma = churn(K[i], 10, sc, tmin, tmax, 1.003, s.x, z)
            D = s.model(xh, sh)
            s.g.attrs["gamma"] = gamma
            s.g.attrs["sigma_hat"] = sh
            s.done(euler_step(xh, sh, K[i + 1], D), noise=z, x_hat=xh)
        # Euler ancestral
        for case, i, eta in (("euler_ancestral/eta1", 4, 1.0), ("euler_ancestral/eta0.5", 4, 0.5),
                             ("euler_ancestral/eta0", 4, 0.0), ("euler_ancestral/last", 9, 1.0)):
            s = Step(steps, case, "denoised", start(i), sigma=K[i], sigma_next=K[i + 1], eta=eta, s_noise=1.0,
                     source="k-diffusion sample_euler_ancestral with get_ancestral_step")
            z = s.rng.standard_normal(SHAPE)
            down, up = ancestral_split(K[i], K[i + 1], eta)
            s.g.attrs["sigma_down"], s.g.attrs["sigma_up"] = down, up
            D = s.model(s.x, K[i])
            out = euler_ancestral_step(s.x, K[i], K[i + 1], D, z, eta)
            if eta == 0.0:
                assert np.array_equal(out, euler_step(s.x, K[i], K[i + 1], D))
            s.done(out, noise=z)
        # Heun: a middle step (2 evaluations) and the last step into 0 (Euler, 1 evaluation)
        def heun(s, x, sigma, sigma_next):
            D = s.model(x, sigma)
            d = to_d(x, sigma, D)
            dt = sigma_next - sigma
            if sigma_next == 0:
                return x + d * dt
            x2 = x + d * dt
            D2 = s.model(x2, sigma_next)
            d2 = to_d(x2, sigma_next, D2)
            return x + (d + d2) / 2.0 * dt

        for case, i in (("heun/middle", 4), ("heun/last", 9)):
            s = Step(steps, case, "denoised", start(i), sigma=K[i], sigma_next=K[i + 1],
                     source="EDM Alg. 1 / k-diffusion sample_heun (the correction is skipped when sigma_next = 0)")
            s.done(heun(s, s.x, K[i], K[i + 1]))
        for case, sc, tmin, tmax in (("heun_churn/active", 2.0, 0.05, 50.0), ("heun_churn/capped", 80.0, 0.05, 50.0),
                                     ("heun_churn/outside", 2.0, 0.05, 1.0)):
            i = 4
            s = Step(steps, case, "denoised", start(i), sigma=K[i], sigma_next=K[i + 1], s_churn=sc, s_tmin=tmin,
                     s_tmax=tmax, s_noise=1.003, num_steps=10,
                     source="EDM Alg. 2 / k-diffusion sample_heun with s_churn")
            z = s.rng.standard_normal(SHAPE)
            xh, sh, gamma = churn(K[i], 10, sc, tmin, tmax, 1.003, s.x, z)
            s.g.attrs["gamma"], s.g.attrs["sigma_hat"] = gamma, sh
            s.done(heun(s, xh, sh, K[i + 1]), noise=z, x_hat=xh)

        # DPM-Solver++(2M): first, middle and final steps in each source's convention
        def dpm2m_case(case, i, with_history, fn, sigma_next=None, sigma_from=None, sigma_prev=None, extra=None, **attrs):
            sf = K[i] if sigma_from is None else sigma_from
            sn = K[i + 1] if sigma_next is None else sigma_next
            sp = K[i - 1] if sigma_prev is None else sigma_prev
            s = Step(steps, case, "denoised", x0 * math.sqrt(1.0 + sf ** 2), sigma=sf, sigma_next=sn, **attrs)
            more = {}
            old = None
            if with_history:
                old = s.rng.standard_normal(SHAPE)
                s.g.attrs["sigma_prev"] = sp
                more = {"history": old[None], "history_sigmas": np.array([sp])}
            D = s.model(s.x, sf)
            for k, g in (extra or {}).items():
                more[k] = g(s.x, sf, sn, D, sp, old)
            return s, s.done(fn(s.x, sf, sn, D, sp, old), **more), D

        src_k = "k-diffusion sample_dpmpp_2m"
        dpm2m_case("dpmpp_2m/first", 0, False, dpmpp_2m_kdiffusion, source=src_k + " (no history: first order; diffusers the same)")
        s, mid_k, _ = dpm2m_case("dpmpp_2m/middle", 4, True, dpmpp_2m_kdiffusion,
                                 extra={"expected_diffusers": lambda x, a, b, D, p, o: dpmpp_2m_diffusers(x, a, b, D, p, o, 2)},
                                 source=src_k + "; expected_diffusers = diffusers DPMSolverMultistepScheduler "
                                                "dpmsolver++ midpoint order 2 (same algebra, other rounding)")
        assert np.allclose(mid_k, s.g["expected_diffusers"][()], rtol=1e-13, atol=1e-15)
        _, fin_k, D = dpm2m_case("dpmpp_2m/final_kdiffusion", 9, True, dpmpp_2m_kdiffusion,
                                 source=src_k + ": sigma_next = 0 -> first order, x' = D")
        assert np.array_equal(fin_k, D)
        _, fin_z, D = dpm2m_case("dpmpp_2m/final_diffusers_zero", 9, True,
                                 lambda x, a, b, D, p, o: dpmpp_2m_diffusers(x, a, b, D, p, o, 1),
                                 source="diffusers final_sigmas_type='zero': the last step is first order whatever "
                                        "lower_order_final says, x' = D", final_sigmas_type="zero")
        assert np.array_equal(fin_z, D)
        # diffusers final_sigmas_type = 'sigma_min' on trailing timesteps (N = 10: ... 199, 99 -> sigma_0)
        for case, order, desc in (("dpmpp_2m/final_diffusers_sigma_min_lower_order_final", 1,
                                   "lower_order_final=True and N < 15 (or euler_at_final=True): first order"),
                                  ("dpmpp_2m/final_diffusers_sigma_min_second_order", 2,
                                   "lower_order_final=False or N >= 15: second order")):
            dpm2m_case(case, 0, True, lambda x, a, b, D, p, o, order=order: dpmpp_2m_diffusers(x, a, b, D, p, o, order),
                       sigma_from=float(sigmas[99]), sigma_next=s_min, sigma_prev=float(sigmas[199]),
                       source="diffusers DPMSolverMultistepScheduler, timestep_spacing='trailing', N = 10, "
                              "final_sigmas_type='sigma_min': the last step goes from sigma(t=99) to "
                              "sigma_last = trained sigma_0 (history at t = 199); " + desc,
                       final_sigmas_type="sigma_min", timesteps=np.array([199, 99], dtype=np.int64))
        # Karras sigmas + final_sigmas_type='sigma_min': the last Karras sigma and sigma_last are both sigma_min,
        # a (nearly) zero-size step that returns x (not D): the sample keeps its sigma_min noise
        s, fin_r, _ = dpm2m_case("dpmpp_2m/final_diffusers_sigma_min_karras_repeated", 9, True,
                                 lambda x, a, b, D, p, o: dpmpp_2m_diffusers(x, a, b, D, p, o, 1),
                                 sigma_from=float(K[9]), sigma_next=s_min,
                                 source="diffusers use_karras_sigmas=True with final_sigmas_type='sigma_min': the last "
                                        "step goes from the last Karras sigma to trained sigma_0 (equal up to rounding "
                                        "of eq. 5), first order: x' ~= x, NOT D", final_sigmas_type="sigma_min")
        assert np.allclose(fin_r, s.x, rtol=1e-13)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
