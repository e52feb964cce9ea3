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
    /// diffusers' σ schedulers' `timestep_spacing` (``DiffusersSigmaSpacing``): σ at possibly fractional
    /// timesteps, linear in σ between the trained σ (numpy `interp`).
    case diffusers(DiffusersSigmaSpacing)

    /// Recorded in golden files.
    public var description: String {
        switch self {
        case let .karras(a, b, r): "karras(sigma_min=\(a), sigma_max=\(b), rho=\(r))"
        case let .exponential(a, b): "exponential(sigma_min=\(a), sigma_max=\(b))"
        case let .polyexponential(a, b, r): "polyexponential(sigma_min=\(a), sigma_max=\(b), rho=\(r))"
        case let .trained(s): "trained(\(s))"
        case let .diffusers(s): "diffusers(\(s))"
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
        case let .diffusers(spacing):
            let trained = SigmaView.trainedSigmas(alphasCumprod: diffusion.tables.alphasCumprod)
            s = try spacing.timesteps(timesteps: diffusion.timesteps, steps: n).map { SigmaToTimestep.linear.sigma(timestep: $0, trainedSigmas: trained) }
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

/// Where diffusers' σ-based schedulers put their N steps (`set_timesteps` with `timestep_spacing`), two
/// families with different rules, each named after its scheduler. The timesteps are descending and, for the
/// Euler family's `linspace`, fractional; σ at each is numpy's `interp(t, arange(T), σ_trained)` (linear in σ,
/// ``SigmaToTimestep/sigma(timestep:trainedSigmas:)`` with `.linear`), then a final σ = 0 (`final_sigmas_type="zero"`).
/// The network is called at the rule's own timestep (rounded to the nearest integer, ties to even: the network
/// here is defined at integer t, where diffusers hands a fractional t to a network that embeds any real t).
public enum DiffusersSigmaSpacing: Sendable, Equatable, CustomStringConvertible {
    /// `EulerDiscreteScheduler` and the schedulers that share its `set_timesteps` (EulerAncestral, Heun, LMS, KDPM2).
    case euler(Rule)
    /// `DPMSolverMultistepScheduler` and the schedulers that share its `set_timesteps` (DPMSolverSinglestep,
    /// UniPCMultistep, DEIS): N + 1 points of which the last (t = 0) is dropped, integer timesteps.
    case dpmSolver(Rule)

    /// diffusers' `timestep_spacing` values.
    public enum Rule: Sendable, Equatable, CustomStringConvertible {
        case linspace
        case leading(stepsOffset: Int)
        case trailing
        public var description: String {
            switch self {
            case .linspace: "linspace"
            case let .leading(k): k == 0 ? "leading" : "leading+\(k)"
            case .trailing: "trailing"
            }
        }
    }

    /// `euler:linspace`, `dpmsolver:leading+1`, … (recorded in golden files).
    public var description: String {
        switch self {
        case let .euler(r): "euler:\(r)"
        case let .dpmSolver(r): "dpmsolver:\(r)"
        }
    }

    /// The N timesteps in sampling order (descending), on T trained steps:
    ///
    ///     euler     linspace:  t_i = linspace(0, T−1, N)_{N−1−i}  (fractional: i(T−1)/(N−1), the last T−1)
    ///               leading:   t_i = (N−1−i)⌊T/N⌋ + offset
    ///               trailing:  t_i = round(T − i T/N) − 1, ties to even
    ///     dpmsolver linspace:  t_i = round(linspace(0, T−1, N+1)_{N−i}), ties to even (i = 0 … N−1: t = 0 dropped)
    ///               leading:   t_i = (N−i)⌊T/(N+1)⌋ + offset
    ///               trailing:  as euler's
    ///
    /// Throws unless 1 ≤ N ≤ T and the timesteps are distinct values in [0, T − 1].
    public func timesteps(timesteps T: Int, steps N: Int) throws -> [Double] {
        guard N >= 1, N <= T else { throw DDPMError(.invalidValue, "diffusers spacing \(self): expected between 1 and \(T) steps, got \(N)") }
        var ts: [Double]
        switch self {
        case .euler(.linspace): ts = SigmaSchedule.linspace(0, Double(T - 1), N).reversed()
        case let .euler(.leading(k)): ts = try Respacing.diffusersTimesteps(timesteps: T, steps: N, spacing: "leading", stepsOffset: k).map(Double.init)
        case .euler(.trailing), .dpmSolver(.trailing): ts = try Respacing.diffusersTimesteps(timesteps: T, steps: N, spacing: "trailing").map(Double.init)
        case .dpmSolver(.linspace):
            ts = SigmaSchedule.linspace(0, Double(T - 1), N + 1).reversed().dropLast().map { $0.rounded(.toNearestOrEven) }
        case let .dpmSolver(.leading(k)):
            guard k >= 0 else { throw DDPMError(.invalidValue, "diffusers spacing \(self): steps offset must be 0 or positive, got \(k)") }
            let ratio = T / (N + 1)
            ts = (1...N).reversed().map { Double($0 * ratio + k) }
        }
        guard ts.first! <= Double(T - 1), ts.last! >= 0, zip(ts, ts.dropFirst()).allSatisfy({ $0 > $1 }) else {
            throw DDPMError(.invalidValue, "diffusers spacing \(self) with \(N) steps: timesteps \(ts) are not distinct values in [0, \(T - 1)]")
        }
        return ts
    }
}
