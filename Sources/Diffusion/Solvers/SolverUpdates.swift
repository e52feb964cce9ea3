// ─── The solvers' updates, one function per equation, in the σ view (x = x_0 + σ ε; λ = −log σ) ─────────
//
// Notation: a step goes from σ (now) to σ' (next); h = λ' − λ = log(σ/σ'); D = D(x; σ) = x̂_0 and
// ε̂ = (x − D)/σ; x, D, ε̂, z are N×C×H×W. In the σ view the VP factors α_t of the DPM-Solver papers cancel:
// their x_t = (α_t/α_s) x_s − σ_t(e^h − 1) ε̂ (VP) is x' = x − σ'(e^h − 1) ε̂ here, and (σ_t/σ_s) x_s − α_t(e^{−h} − 1) D
// is x' = (σ'/σ) x − (e^{−h} − 1) D. At σ' = 0, h = +∞: e^{−h} − 1 = −1 and σ'/σ = 0, so the data-prediction
// first-order step lands on D (the IEEE values of −log 0 and expm1(−∞) give this without a branch).

import Foundation
import Tensors

/// The update equations of the σ-view solvers.
public enum SolverUpdate {
    /// h = λ' − λ = log σ − log σ' (+∞ when σ' = 0; the k-diffusion form t = −log σ, h = t' − t).
    public static func logStep(sigma s: Double, next sn: Double) -> Double { (-Foundation.log(sn)) - (-Foundation.log(s)) }

    /// The derivative of the probability-flow ODE — Karras et al. 2022 eq. 3 (σ(t) = t, s(t) = 1), k-diffusion `to_d`:
    ///
    ///     d = (x − D(x; σ)) / σ
    public static func derivative(_ x: Tensor, denoised d: Tensor, sigma s: Double) -> Tensor { (x - d) / s }

    /// One Euler step — Karras et al. 2022 Algorithm 1 line 5 (S_churn = 0):
    ///
    ///     x' = x + (σ' − σ) d
    public static func euler(_ x: Tensor, derivative d: Tensor, sigma s: Double, next sn: Double) -> Tensor { x + d * (sn - s) }

    /// Heun's correction — Karras et al. 2022 Algorithm 1 lines 7–8, d' = (x_Euler − D(x_Euler; σ'))/σ':
    ///
    ///     x' = x + (σ' − σ) · ½ (d + d')
    public static func heun(_ x: Tensor, derivative d: Tensor, nextDerivative d2: Tensor, sigma s: Double, next sn: Double) -> Tensor {
        x + ((d + d2) / 2) * (sn - s)
    }

    /// The ancestral split of a step σ → σ' (k-diffusion `get_ancestral_step`; η = 1 is the DDPM posterior's
    /// variance in the σ view):
    ///
    ///     σ_up = min(σ', η √(σ'² (σ² − σ'²)/σ²)),   σ_down = √(σ'² − σ_up²)
    ///
    /// η = 0 gives (σ', 0) exactly.
    public static func ancestralSplit(sigma s: Double, next sn: Double, eta: Double) -> (down: Double, up: Double) {
        if eta == 0 { return (sn, 0) }
        let up = min(sn, eta * (sn * sn * (s * s - sn * sn) / (s * s)).squareRoot())
        return ((sn * sn - up * up).squareRoot(), up)
    }

    /// One Euler ancestral step (k-diffusion `sample_euler_ancestral`): Euler to σ_down, then fresh noise:
    ///
    ///     x' = x + (σ_down − σ) d + σ_up · s_noise · z          (no noise term when σ' = 0 or σ_up = 0)
    public static func eulerAncestral(_ x: Tensor, derivative d: Tensor, sigma s: Double, down: Double, up: Double,
                                      noiseScale: Double, z: Tensor?) -> Tensor {
        let y = euler(x, derivative: d, sigma: s, next: down)
        guard up > 0, let z else { return y }
        return y + z * (up * noiseScale)
    }

    /// The churn of Karras et al. 2022 Algorithm 2 (lines 4–6): γ = min(S_churn/N, √2 − 1) when
    /// S_tmin ≤ σ ≤ S_tmax (else 0), σ̂ = σ(1 + γ), and
    ///
    ///     x̂ = x + √(σ̂² − σ²) · S_noise · z
    public static func churn(_ x: Tensor, sigma s: Double, gamma: Double, noiseScale: Double, z: Tensor) -> (x: Tensor, sigma: Double) {
        let sh = s * (gamma + 1)
        return (x + z * ((sh * sh - s * s).squareRoot() * noiseScale), sh)
    }

    /// DPM-Solver++ first-order (data-prediction) step — Lu et al. 2022b eq. 8 / Algorithm 1 with k = 1
    /// (this is DDIM with η = 0):
    ///
    ///     x' = (σ'/σ) x − (e^{−h} − 1) D
    public static func dpmppFirstOrder(_ x: Tensor, denoised d: Tensor, sigma s: Double, next sn: Double) -> Tensor {
        let h = logStep(sigma: s, next: sn)
        return x * (sn / s) - d * Foundation.expm1(-h)
    }

    /// DPM-Solver++(2M) — Lu et al. 2022b Algorithm 2, with r = h_last/h (h_last the previous step's h) and
    /// D_prev the denoised value of the previous step:
    ///
    ///     D̄ = (1 + 1/(2r)) D − (1/(2r)) D_prev,     x' = (σ'/σ) x − (e^{−h} − 1) D̄
    public static func dpmpp2M(_ x: Tensor, denoised d: Tensor, previous dPrev: Tensor, sigma s: Double, next sn: Double, lastStep hLast: Double) -> Tensor {
        let h = logStep(sigma: s, next: sn), r = hLast / h
        let dBar = d * (1 + 1 / (2 * r)) - dPrev * (1 / (2 * r))
        return x * (sn / s) - dBar * Foundation.expm1(-h)
    }

    /// Which second-order correction DPM-Solver++(2M) SDE uses (k-diffusion `solver_type`).
    public enum SDECorrection: String, Sendable, CaseIterable { case midpoint, heun }

    /// SDE-DPM-Solver++(2M) — Lu et al. 2022b §5 eq. (the SDE solver with η; k-diffusion
    /// `sample_dpmpp_2m_sde`), η h = ηh, and D_prev nil on the first step:
    ///
    ///     x' = (σ'/σ) e^{−ηh} x + (1 − e^{−h−ηh}) D
    ///          + [midpoint] ½ (1 − e^{−h−ηh}) (D − D_prev)/r       | [heun] ((1 − e^{−h−ηh})/(−h−ηh) + 1)(D − D_prev)/r
    ///          + σ' √(1 − e^{−2ηh}) · s_noise · z
    public static func dpmpp2MSDE(_ x: Tensor, denoised d: Tensor, previous dPrev: Tensor?, sigma s: Double, next sn: Double, lastStep hLast: Double?,
                                  eta: Double, noiseScale: Double, correction: SDECorrection, z: Tensor?) -> Tensor {
        let h = logStep(sigma: s, next: sn), etaH = eta * h
        let c = -Foundation.expm1(-h - etaH)
        var y = x * (sn / s * Foundation.exp(-etaH)) + d * c
        if let dPrev, let hLast {
            let r = hLast / h
            switch correction {
            case .midpoint: y = y + (d - dPrev) * (0.5 * c * (1 / r))
            case .heun: y = y + (d - dPrev) * ((c / (-h - etaH) + 1) * (1 / r))
            }
        }
        if eta != 0, let z { y = y + z * (sn * (-Foundation.expm1(-2 * etaH)).squareRoot() * noiseScale) }
        return y
    }

    /// DPM-Solver-1 (noise prediction) — Lu et al. 2022a eq. 3.7 in the σ view (this is DDIM with η = 0):
    ///
    ///     x' = x − σ' (e^h − 1) ε̂
    ///
    /// σ' = 0 (h = ∞) is its limit x' = x − σ ε̂ = D.
    public static func dpmSolver1(_ x: Tensor, noise e: Tensor, sigma s: Double, next sn: Double) -> Tensor {
        if sn == 0 { return x - e * s }
        return x - e * (sn * Foundation.expm1(logStep(sigma: s, next: sn)))
    }

    /// The intermediate σ of a singlestep method: σ_r = e^{−(λ + r h)} (Lu et al. 2022a, s_i = t_{i−1} + r h in λ).
    public static func intermediateSigma(sigma s: Double, logStep h: Double, fraction r: Double) -> Double {
        Foundation.exp(-((-Foundation.log(s)) + r * h))
    }

    /// DPM-Solver-2 — Lu et al. 2022a Algorithm 4 (r_1 = ½), with u = x − σ_{r1}(e^{r1 h} − 1) ε̂ (``dpmSolver1`` to
    /// σ_{r1}) and ε̂_{r1} = ε̂(u; σ_{r1}):
    ///
    ///     x' = x − σ'(e^h − 1) ε̂ − (σ'/(2 r_1)) (e^h − 1)(ε̂_{r1} − ε̂)
    public static func dpmSolver2(_ x: Tensor, noise e: Tensor, intermediateNoise e1: Tensor, sigma s: Double, next sn: Double, r1: Double = 0.5) -> Tensor {
        let em = Foundation.expm1(logStep(sigma: s, next: sn))
        return x - e * (sn * em) - (e1 - e) * (sn / (2 * r1) * em)
    }

    /// DPM-Solver-3's second intermediate state — Lu et al. 2022a Algorithm 5 (r_1 = ⅓, r_2 = ⅔):
    ///
    ///     u_2 = x − σ_{r2}(e^{r2 h} − 1) ε̂ − σ_{r2} (r_2/r_1) ((e^{r2 h} − 1)/(r_2 h) − 1)(ε̂_{r1} − ε̂)
    public static func dpmSolver3Intermediate(_ x: Tensor, noise e: Tensor, intermediateNoise e1: Tensor, sigma s: Double, logStep h: Double,
                                              r1: Double = 1.0 / 3, r2: Double = 2.0 / 3) -> Tensor {
        let s2 = intermediateSigma(sigma: s, logStep: h, fraction: r2), em = Foundation.expm1(r2 * h)
        return x - e * (s2 * em) - (e1 - e) * (s2 * (r2 / r1) * (em / (r2 * h) - 1))
    }

    /// DPM-Solver-3 — Lu et al. 2022a Algorithm 5, with ε̂_{r2} = ε̂(u_2; σ_{r2}):
    ///
    ///     x' = x − σ'(e^h − 1) ε̂ − (σ'/r_2) ((e^h − 1)/h − 1)(ε̂_{r2} − ε̂)
    public static func dpmSolver3(_ x: Tensor, noise e: Tensor, secondIntermediateNoise e2: Tensor, sigma s: Double, next sn: Double,
                                  r2: Double = 2.0 / 3) -> Tensor {
        let h = logStep(sigma: s, next: sn), em = Foundation.expm1(h)
        return x - e * (sn * em) - (e2 - e) * (sn / r2 * (em / h - 1))
    }

    /// UniPC's B(h) (Zhao et al. 2023 §3.2, with hh = −h for data prediction): bh1 is B(h) = hh, bh2 is B(h) = e^{hh} − 1.
    public enum UniPCVariant: String, Sendable, CaseIterable { case bh1, bh2 }

    /// The order conditions of UniPC — Zhao et al. 2023 eq. (4)/Theorem 3.1, data prediction (hh = −h):
    ///
    ///     R_{ik} = r_k^{i−1},   b_i = h φ_{i+1}(hh) · i! / B(h),   i, k = 1 … p
    ///     φ_1 = (e^{hh} − 1)/hh − 1 (written h φ_k in diffusers), φ_{i+1} = φ_i/hh − 1/(i+1)!
    ///
    /// `rks` are r_k = (λ_{s_k} − λ_{s_0})/h for the p − 1 earlier points, then 1. Returns R (p×p, row-major) and b (p).
    public static func uniPCConditions(rks: [Double], logStep h: Double, variant: UniPCVariant) -> (R: [[Double]], b: [Double]) {
        let p = rks.count, hh = -h
        let hPhi1 = Foundation.expm1(hh)
        var hPhiK = hPhi1 / hh - 1
        var factorial = 1.0
        let bh = variant == .bh1 ? hh : Foundation.expm1(hh)
        var R: [[Double]] = [], b: [Double] = []
        for i in 1...p {
            R.append(rks.map { Foundation.pow($0, Double(i - 1)) })
            b.append(hPhiK * factorial / bh)
            factorial *= Double(i + 1)
            hPhiK = hPhiK / hh - 1 / factorial
        }
        return (R, b)
    }

    /// Solves the small system A ρ = b (p ≤ 3) by Gaussian elimination with partial pivoting.
    public static func solve(_ a: [[Double]], _ b: [Double]) -> [Double] {
        let n = b.count
        var m = a.map { Array($0.prefix(n)) }, v = b
        for c in 0..<n {
            let piv = (c..<n).max(by: { abs(m[$0][c]) < abs(m[$1][c]) })!
            m.swapAt(c, piv); v.swapAt(c, piv)
            for r in (c + 1)..<max(n, c + 1) {
                let f = m[r][c] / m[c][c]
                for k in c..<n { m[r][k] -= f * m[c][k] }
                v[r] -= f * v[c]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = v[r]
            for k in (r + 1)..<n { s -= m[r][k] * x[k] }
            x[r] = s / m[r][r]
        }
        return x
    }

    /// UniP-p, the predictor — Zhao et al. 2023 Algorithm 2 (B(h) form, data prediction). `history` holds
    /// (σ_{s_k}, D_{s_k}) for k = 0 (now, σ) and then the p − 1 earlier points, newest first; D_k = (D_{s_k} − D_0)/r_k:
    ///
    ///     x' = (σ'/σ) x − (e^{−h} − 1) D_0 − B(h) Σ_{k<p} ρ_k D_k,   ρ = R_{:p−1,:p−1}⁻¹ b_{:p−1}  (ρ = ½ when p = 2)
    ///
    /// p = 1 is ``dpmppFirstOrder(_:denoised:sigma:next:)`` (also its limit at σ' = 0).
    public static func uniP(_ x: Tensor, history: [(sigma: Double, denoised: Tensor)], next sn: Double, variant: UniPCVariant) -> Tensor {
        let (s, m0) = history[0]
        let base = dpmppFirstOrder(x, denoised: m0, sigma: s, next: sn)
        let p = history.count
        if p == 1 { return base }
        let h = logStep(sigma: s, next: sn)
        let (rks, d1s) = uniPCDifferences(history, logStep: h)
        let (R, b) = uniPCConditions(rks: rks + [1], logStep: h, variant: variant)
        let rhos = p == 2 ? [0.5] : solve(Array(R.prefix(p - 1)), Array(b.prefix(p - 1)))
        let bh = variant == .bh1 ? -h : Foundation.expm1(-h)
        var res = d1s[0] * rhos[0]
        for k in 1..<(p - 1) { res = res + d1s[k] * rhos[k] }
        return base - res * bh
    }

    /// UniC-p, the corrector — Zhao et al. 2023 Algorithm 1 (B(h) form, data prediction): from the state x
    /// at σ (the previous one) with `history` as in ``uniP(_:history:next:variant:)`` (p entries) and the new
    /// evaluation D' = D(x̃'; σ') at the predicted x̃':
    ///
    ///     x'_c = (σ'/σ) x − (e^{−h} − 1) D_0 − B(h) (Σ_{k<p} ρ_k D_k + ρ_p (D' − D_0)),   ρ = R⁻¹ b  (ρ = [½] when p = 1)
    public static func uniC(_ x: Tensor, history: [(sigma: Double, denoised: Tensor)], next sn: Double, nextDenoised dNew: Tensor,
                            variant: UniPCVariant) -> Tensor {
        let (s, m0) = history[0]
        let p = history.count
        let h = logStep(sigma: s, next: sn)
        let base = dpmppFirstOrder(x, denoised: m0, sigma: s, next: sn)
        let (rks, d1s) = uniPCDifferences(history, logStep: h)
        let (R, b) = uniPCConditions(rks: rks + [1], logStep: h, variant: variant)
        let rhos = p == 1 ? [0.5] : solve(R, b)
        let bh = variant == .bh1 ? -h : Foundation.expm1(-h)
        var res = (dNew - m0) * rhos[p - 1]
        for k in 0..<(p - 1) { res = res + d1s[k] * rhos[k] }
        return base - res * bh
    }

    /// r_k = (λ_{s_k} − λ_{s_0})/h and D_k = (D_{s_k} − D_0)/r_k for the earlier points of `history`.
    static func uniPCDifferences(_ history: [(sigma: Double, denoised: Tensor)], logStep h: Double) -> ([Double], [Tensor]) {
        let l0 = -Foundation.log(history[0].sigma)
        var rks: [Double] = [], d1s: [Tensor] = []
        for (sk, dk) in history.dropFirst() {
            let rk = ((-Foundation.log(sk)) - l0) / h
            rks.append(rk); d1s.append((dk - history[0].denoised) / rk)
        }
        return (rks, d1s)
    }

    /// The transfer of PNDM — Liu et al. 2022 eq. (11), which in the σ view is the DDIM step:
    ///
    ///     φ(x, ε̂, σ → σ') = x + (σ' − σ) ε̂
    public static func pndmTransfer(_ x: Tensor, noise e: Tensor, sigma s: Double, next sn: Double) -> Tensor { x + e * (sn - s) }

    /// The linear multistep combination of PLMS — Liu et al. 2022 eq. (12) (Adams–Bashforth), `noises` newest
    /// first, with the lower orders diffusers uses while fewer are known:
    ///
    ///     1: ε̂_0;  2: (3ε̂_0 − ε̂_1)/2;  3: (23ε̂_0 − 16ε̂_1 + 5ε̂_2)/12;  4: (55ε̂_0 − 59ε̂_1 + 37ε̂_2 − 9ε̂_3)/24
    public static func plmsCombination(_ noises: [Tensor]) -> Tensor {
        let e = noises
        switch e.count {
        case 1: return e[0]
        case 2: return (e[0] * 3 - e[1]) / 2
        case 3: return (e[0] * 23 - e[1] * 16 + e[2] * 5) / 12
        default: return (e[0] * 55 - e[1] * 59 + e[2] * 37 - e[3] * 9) * (1.0 / 24)
        }
    }

    /// The Runge–Kutta combination of PNDM's pseudo warm-up — Liu et al. 2022 eq. (13):
    ///
    ///     ε̂' = (ε̂_1 + 2ε̂_2 + 2ε̂_3 + ε̂_4)/6
    public static func pseudoRungeKutta(_ e1: Tensor, _ e2: Tensor, _ e3: Tensor, _ e4: Tensor) -> Tensor {
        (e1 + e2 * 2 + e3 * 2 + e4) / 6
    }
}
