// ─── The solvers' closed-form test problem: Gaussian data, where the probability-flow ODE is solved exactly ──
//
// For data 𝒩(μ, s²) per element the exact denoiser is affine in x, and the probability-flow ODE
// dx/dσ = (x − D(x; σ))/σ has a closed-form solution from any start, so a solver's terminal error is known
// exactly at every number of steps. `SolverConvergenceTests` measures the order of every deterministic solver
// on it, and `ddpm sampler-figures` draws the same measurements (Notes/18, `solver-convergence.svg`).

import Foundation
import Tensors

/// The exact denoiser of data 𝒩(μ, s²) per element (Karras et al. 2022 eq. 2 for a Gaussian p_data):
///
///     D(x; σ) = E[x_0 | x_0 + σ ε = x] = (s² x + σ² μ)/(s² + σ²),    ε̂ = (x − D)/σ = σ (x − μ)/(s² + σ²)
///
/// The network passed to ``denoise(model:_:sigma:)`` is not called.
public struct GaussianDenoiser: SigmaDenoiser, Sendable {
    public var mean: Double, std: Double
    public init(mean: Double, std: Double) { self.mean = mean; self.std = std }

    public func denoise(model: NoisePredictor, _ x: Tensor, sigma s: Double) throws -> SigmaPrediction {
        let v = std * std, q = v + s * s
        return SigmaPrediction(denoised: Tensor(shape: x.shape, data: x.data.map { (v * $0 + s * s * mean) / q }),
                               noise: Tensor(shape: x.shape, data: x.data.map { s * ($0 - mean) / q }))
    }
    public func modelTimestep(sigma: Double) -> Int { 0 }

    /// The probability-flow ODE's solution from x at σ_a to σ_b (dx/dσ = σ(x − μ)/(s² + σ²)):
    ///
    ///     x(σ_b) = μ + (x − μ) √((s² + σ_b²)/(s² + σ_a²))
    public func exact(_ x: Double, from a: Double, to b: Double) -> Double {
        mean + (x - mean) * ((std * std + b * b) / (std * std + a * a)).squareRoot()
    }
}

/// The convergence measurement on Gaussian data 𝒩(0.3, 0.5²): Karras σ (ρ = 7) from 10 to 0.05 without a final
/// 0 (the final jump to 0 is a fixed-size step that does not shrink with N), nine starts from −12 to 12.
public enum SolverConvergence {
    /// The deterministic solvers with the order each is expected to show on a smooth σ grid. PLMS combines ε̂
    /// with fixed Adams–Bashforth weights, exact for steps of equal size in σ; on the Karras grid the steps
    /// differ and it is second order (order 4 on a grid uniform in σ).
    public static let cases: [(name: String, solver: SigmaSolver, order: Double)] = [
        ("euler", .euler, 1),
        ("heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1), 2),
        ("dpm-solver-1", .dpmSolver(order: 1), 1),
        ("dpm-solver-2", .dpmSolver(order: 2), 2),
        ("dpm-solver-3", .dpmSolver(order: 3), 3),
        ("dpm++2s", .dpmpp2S(eta: 0, noiseScale: 1), 2),
        ("dpm++2m", .dpmpp2M, 2),
        ("dpm++2m-sde η=0", .dpmpp2MSDE(eta: 0, noiseScale: 1, correction: .midpoint), 2),
        ("unip-2 bh2 (no corrector)", .uniPC(order: 2, variant: .bh2, corrector: false), 2),
        ("unipc-1 bh2", .uniPC(order: 1, variant: .bh2, corrector: true), 2),
        ("unipc-2 bh1", .uniPC(order: 2, variant: .bh1, corrector: true), 3),
        ("unipc-2 bh2", .uniPC(order: 2, variant: .bh2, corrector: true), 3),
        ("unipc-3 bh2", .uniPC(order: 3, variant: .bh2, corrector: true), 4),
        ("plms (prk warm-up)", .plms(warmUp: .pseudoRungeKutta), 2),
        ("plms (diffusers warm-up)", .plms(warmUp: .plms), 2),
    ]
    public static let denoiser = GaussianDenoiser(mean: 0.3, std: 0.5)
    public static let (sigmaMin, sigmaMax) = (0.05, 10.0)
    public static var start: Tensor { Tensor(shape: [9, 1], data: (0..<9).map { -12 + 3 * Double($0) }) }
    public static let steps = [5, 10, 20, 40, 80]

    /// One measurement: N steps, the terminal error max over the starts of |x_N − x(σ_last)|, network evaluations.
    public struct Point: Sendable {
        public var n: Int, error: Double, evaluations: Int
        public init(n: Int, error: Double, evaluations: Int) { self.n = n; self.error = error; self.evaluations = evaluations }
    }

    /// The N + 1 Karras σ (ρ = 7) from σ_max to σ_min, no final 0.
    public static func karras(_ n: Int) -> [Double] { SigmaSchedule.karras(steps: n + 1, sigmaMin: sigmaMin, sigmaMax: sigmaMax, rho: 7) }

    /// The terminal error and network evaluations of `solver` for each N on `grid(N)`, through the one reverse chain.
    public static func errors(_ solver: SigmaSolver, steps: [Int] = steps, grid: (Int) -> [Double] = karras) throws -> [Point] {
        try steps.map { n in
            let sigmas = grid(n)
            let s = try SigmaSampler(sigmas: sigmas, solver: solver, denoiser: denoiser)
            var g = RandomGenerator(seed: 0)
            let out = SigmaView.scaled(vp: try runReverseChain(model: AffineNoisePredictor(channels: 1, timesteps: 10),
                                                               from: SigmaView.vp(start, sigma: sigmas[0]), sampler: s, generator: &g),
                                       sigma: sigmas.last!)
            let e = zip(out.data, start.data).map { abs($0 - denoiser.exact($1, from: sigmas.first!, to: sigmas.last!)) }.max()!
            return Point(n: n, error: e, evaluations: s.evaluations)
        }
    }

    /// The observed order: the least-squares slope of log error against log N over the last three N (the
    /// asymptotic range), sign flipped.
    public static func order(_ e: [Point]) -> Double {
        let pts = e.suffix(3).map { (Foundation.log(Double($0.n)), Foundation.log($0.error)) }
        let mx = pts.map(\.0).reduce(0, +) / Double(pts.count), my = pts.map(\.1).reduce(0, +) / Double(pts.count)
        let num = pts.map { ($0.0 - mx) * ($0.1 - my) }.reduce(0, +), den = pts.map { ($0.0 - mx) * ($0.0 - mx) }.reduce(0, +)
        return -num / den
    }
}
