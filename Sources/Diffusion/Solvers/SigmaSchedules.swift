// ─── σ schedules: which noise levels a solver visits, in sampling order (σ_max first) ──────────────────
//
// Each rule returns N values σ_0 > σ_1 > … > σ_{N−1}, then (when `appendZero`) a final σ_N = 0 — the N + 1
// entries that k-diffusion's `get_sigmas_*` and diffusers' `scheduler.sigmas` hold. The ramps use numpy's
// `linspace` arithmetic (start + i·step, the last value set to stop) so that a numpy oracle can match them.

import Foundation
import Tensors

/// A σ schedule, named after its source.
public enum SigmaSchedule: Sendable, Equatable, CustomStringConvertible {
    /// Karras et al. 2022 eq. 5 (k-diffusion `get_sigmas_karras`).
    case karras(sigmaMin: Double, sigmaMax: Double, rho: Double)
    /// Uniform in log σ (k-diffusion `get_sigmas_exponential`).
    case exponential(sigmaMin: Double, sigmaMax: Double)
    /// k-diffusion `get_sigmas_polyexponential`: log σ uniform in a ramp raised to ρ.
    case polyexponential(sigmaMin: Double, sigmaMax: Double, rho: Double)
    /// The trained σ at the timesteps a spacing keeps (descending): σ_t = √((1−ᾱ_t)/ᾱ_t) at those t.
    case trained(TimestepSpacing)

    /// Recorded in golden files.
    public var description: String {
        switch self {
        case let .karras(a, b, r): "karras(sigma_min=\(a), sigma_max=\(b), rho=\(r))"
        case let .exponential(a, b): "exponential(sigma_min=\(a), sigma_max=\(b))"
        case let .polyexponential(a, b, r): "polyexponential(sigma_min=\(a), sigma_max=\(b), rho=\(r))"
        case let .trained(s): "trained(\(s))"
        }
    }

    /// The N (+1) σ of this rule on `diffusion`'s trained table, σ_max first.
    public func sigmas(steps n: Int, diffusion: GaussianDiffusion, appendZero: Bool = true) throws -> [Double] {
        guard n >= 1 else { throw DDPMError(.invalidValue, "σ schedule: expected at least 1 step, got \(n)") }
        var s: [Double]
        switch self {
        case let .karras(lo, hi, rho):
            try Self.validate(lo, hi); guard rho > 0, rho.isFinite else { throw DDPMError(.invalidValue, "Karras ρ: expected a finite value > 0, got \(rho)") }
            s = Self.karras(steps: n, sigmaMin: lo, sigmaMax: hi, rho: rho)
        case let .exponential(lo, hi):
            try Self.validate(lo, hi); s = Self.exponential(steps: n, sigmaMin: lo, sigmaMax: hi)
        case let .polyexponential(lo, hi, rho):
            try Self.validate(lo, hi); guard rho > 0, rho.isFinite else { throw DDPMError(.invalidValue, "polyexponential ρ: expected a finite value > 0, got \(rho)") }
            s = Self.polyexponential(steps: n, sigmaMin: lo, sigmaMax: hi, rho: rho)
        case let .trained(spacing):
            let kept = try spacing.keptTimesteps(timesteps: diffusion.timesteps, steps: n)
            let ac = diffusion.tables.alphasCumprod
            s = kept.reversed().map { SigmaView.sigma(alphaBar: ac[$0]) }
        }
        return appendZero ? s + [0] : s
    }

    static func validate(_ lo: Double, _ hi: Double) throws {
        guard lo > 0, hi >= lo, hi.isFinite else {
            throw DDPMError(.invalidValue, "σ schedule: expected 0 < σ_min ≤ σ_max < ∞, got σ_min = \(lo), σ_max = \(hi)")
        }
    }

    /// numpy's `linspace(a, b, n)`: a + i·(b − a)/(n − 1) for i < n − 1, and b; [a] when n = 1.
    public static func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
        if n == 1 { return [a] }
        let step = (b - a) / Double(n - 1)
        return (0..<n).map { i in i == n - 1 ? b : a + Double(i) * step }
    }

    /// Karras et al. 2022 eq. 5, i = 0 … N−1 (the ramp i/(N−1) as numpy's linspace(0, 1, N)):
    ///
    ///     σ_i = (σ_max^{1/ρ} + i/(N−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ
    public static func karras(steps n: Int, sigmaMin lo: Double, sigmaMax hi: Double, rho: Double) -> [Double] {
        let minInv = Foundation.pow(lo, 1 / rho), maxInv = Foundation.pow(hi, 1 / rho)
        return linspace(0, 1, n).map { Foundation.pow(maxInv + $0 * (minInv - maxInv), rho) }
    }

    /// Uniform in log σ:  σ_i = exp(linspace(log σ_max, log σ_min, N)_i).
    public static func exponential(steps n: Int, sigmaMin lo: Double, sigmaMax hi: Double) -> [Double] {
        linspace(Foundation.log(hi), Foundation.log(lo), n).map { Foundation.exp($0) }
    }

    /// k-diffusion's polyexponential:  σ_i = exp(r_i^ρ (log σ_max − log σ_min) + log σ_min),  r = linspace(1, 0, N).
    public static func polyexponential(steps n: Int, sigmaMin lo: Double, sigmaMax hi: Double, rho: Double) -> [Double] {
        let (l, h) = (Foundation.log(lo), Foundation.log(hi))
        return linspace(1, 0, n).map { Foundation.exp(Foundation.pow($0, rho) * (h - l) + l) }
    }
}
