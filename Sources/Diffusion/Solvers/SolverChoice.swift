// ─── A σ-view solver as plain values (what the command line, the demo and golden files describe) ────────

import Foundation
import Tensors

/// Which σ table a solver runs on; σ_min and σ_max are the trained σ_0 and σ_{T−1} (diffusers' and
/// k-diffusion's default for a discrete VP model), and a final σ = 0 is appended.
public enum SigmaScheduleKind: Sendable, Equatable, CustomStringConvertible {
    case karras(rho: Double)
    case exponential
    /// The trained σ at the kept timesteps of a spacing (nil: improved-diffusion's "ddimN").
    case trained(TimestepSpacing?)
    /// diffusers' σ schedulers' timesteps (possibly fractional) with σ interpolated linearly; the network
    /// is called at those timesteps (rounded).
    case diffusers(DiffusersSigmaSpacing)

    public var description: String {
        switch self {
        case let .karras(rho): "karras (ρ = \(rho))"
        case .exponential: "exponential"
        case let .trained(s): "trained (\(s.map { "\($0)" } ?? "ddimN"))"
        case let .diffusers(s): "diffusers \(s)"
        }
    }
}

/// A solver, its σ table and the σ → t convention, as values.
public struct SolverChoice: Sendable, Equatable, CustomStringConvertible {
    public var solver: SigmaSolver
    public var sigmas: SigmaScheduleKind
    public var timestepConvention: SigmaToTimestep
    public var lowerOrderFinal: Bool

    public init(solver: SigmaSolver, sigmas: SigmaScheduleKind = .karras(rho: 7), timestepConvention: SigmaToTimestep = .logLinear,
                lowerOrderFinal: Bool = false) {
        self.solver = solver; self.sigmas = sigmas; self.timestepConvention = timestepConvention; self.lowerOrderFinal = lowerOrderFinal
    }

    public var description: String {
        "\(solver), σ \(sigmas), σ→t \(timestepConvention.rawValue)" + (lowerOrderFinal ? ", lower_order_final" : "")
    }

    /// The σ table of N steps on `diffusion` (N + 1 values, the last 0).
    public func sigmaTable(steps n: Int, diffusion: GaussianDiffusion) throws -> [Double] {
        let trained = SigmaView.trainedSigmas(alphasCumprod: diffusion.tables.alphasCumprod)
        let (lo, hi) = (trained.first!, trained.last!)
        switch sigmas {
        case let .karras(rho): return try SigmaSchedule.karras(sigmaMin: lo, sigmaMax: hi, rho: rho).sigmas(steps: n, diffusion: diffusion)
        case .exponential: return try SigmaSchedule.exponential(sigmaMin: lo, sigmaMax: hi).sigmas(steps: n, diffusion: diffusion)
        case let .trained(spacing):
            return try SigmaSchedule.trained(spacing ?? .improvedDiffusion("ddim\(n)")).sigmas(steps: n, diffusion: diffusion)
        case let .diffusers(spacing): return try SigmaSchedule.diffusers(spacing).sigmas(steps: n, diffusion: diffusion)
        }
    }

    /// The sampler of N steps over `diffusion`'s trained network (``NetworkDenoiser``).
    public func makeSampler(for diffusion: GaussianDiffusion, steps n: Int, thresholding: Thresholding? = nil) throws -> SigmaSampler {
        guard n >= 1, n <= diffusion.timesteps else {
            throw DDPMError(.invalidValue, "sampling steps: expected between 1 and \(diffusion.timesteps), got \(n)")
        }
        let table = try sigmaTable(steps: n, diffusion: diffusion)
        var named: [(sigma: Double, timestep: Double)] = []
        if case let .diffusers(spacing) = sigmas { named = Array(zip(table, try spacing.timesteps(timesteps: diffusion.timesteps, steps: n))) }
        let denoiser = try NetworkDenoiser(diffusion: diffusion, timestepConvention: timestepConvention, thresholding: thresholding, scheduleTimesteps: named)
        return try SigmaSampler(sigmas: table, solver: solver, denoiser: denoiser, lowerOrderFinal: lowerOrderFinal)
    }
}
