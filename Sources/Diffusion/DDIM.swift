// ─── DDIM (Song, Meng & Ermon 2021): the non-Markovian reverse step, its σ_t(η), and the chain it runs on ─
//
// Shapes: x_t, x̂_0, ε̂, z are N×C×H×W (any rank ≥ 1 with the batch first); ᾱ_t, ᾱ_prev and σ are per-sample
// arrays (N), broadcast through ``GaussianDiffusion/broadcastPerSample(_:rank:)``. "t − 1" is the step's
// target: the next kept step on a respaced chain, t − ⌊T/N⌋ under diffusers' DDIM.

import Foundation
import Tensors

/// Which ε̂ eq. 12 uses after x̂_0 was clipped or thresholded (a convention; without processing both agree).
public enum NoiseRederivation: String, Sendable, CaseIterable {
    /// ε re-derived from the processed x̂_0: ε = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t) (improved-diffusion, always;
    /// diffusers with `use_clipped_model_output=True`). The house default.
    case rederive
    /// The model's own ε̂ (diffusers' default, `use_clipped_model_output=False`).
    case original
}

/// The DDIM equations, one function each.
public enum DDIM {
    /// σ_t(η) — Song et al. eq. 16:
    ///
    ///     σ_t(η) = η · √((1 − ᾱ_prev)/(1 − ᾱ_t)) · √(1 − ᾱ_t/ᾱ_prev)
    ///
    /// η = 0 is deterministic DDIM; η = 1 on the full chain is √β̃_t, Ho's fixed-small standard deviation.
    public static func sigma(alphaBar at: Double, alphaBarPrev ap: Double, eta: Double) -> Double {
        eta * ((1 - ap) / (1 - at)).squareRoot() * (1 - at / ap).squareRoot()
    }

    /// x̂_0 from ε̂ (the "predicted x_0" of eq. 12), per sample:
    ///
    ///     x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t        (N×C×H×W)
    public static func predictStart(noisy x: Tensor, alphaBar: [Double], noise eps: Tensor) -> Tensor {
        let r = x.rank
        return (x - GaussianDiffusion.broadcastPerSample(alphaBar.map { (1 - $0).squareRoot() }, rank: r) * eps)
            / GaussianDiffusion.broadcastPerSample(alphaBar.map { $0.squareRoot() }, rank: r)
    }

    /// ε re-derived from a (processed) x̂_0, per sample:
    ///
    ///     ε = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t)         (N×C×H×W)
    public static func noise(noisy x: Tensor, alphaBar: [Double], start x0: Tensor) -> Tensor {
        let r = x.rank
        return (x - GaussianDiffusion.broadcastPerSample(alphaBar.map { $0.squareRoot() }, rank: r) * x0)
            / GaussianDiffusion.broadcastPerSample(alphaBar.map { (1 - $0).squareRoot() }, rank: r)
    }

    /// One generative DDIM step — Song et al. eq. 12:
    ///
    ///     x_{t−1} = √ᾱ_prev · x̂_0 + √(1 − ᾱ_prev − σ_t²) · ε̂ + σ_t · z        (N×C×H×W)
    ///
    /// `z` may be nil when every σ is 0. 1 − ᾱ_prev − σ² is ≥ 0 in exact arithmetic (it is
    /// (1 − ᾱ_prev)² ᾱ_t/(ᾱ_prev(1 − ᾱ_t)) at η = 1); a rounding-negative value is taken as 0.
    public static func step(predictedStart x0: Tensor, noise eps: Tensor, alphaBarPrev ap: [Double], sigma: [Double], z: Tensor?) -> Tensor {
        let r = x0.rank
        let direction = zip(ap, sigma).map { max(0, 1 - $0 - $1 * $1).squareRoot() }
        var x = GaussianDiffusion.broadcastPerSample(ap.map { $0.squareRoot() }, rank: r) * x0
            + GaussianDiffusion.broadcastPerSample(direction, rank: r) * eps
        if sigma.contains(where: { $0 != 0 }) {
            guard let z else { preconditionFailure("DDIM.step: σ is \(sigma) but no z was given for x̂_0 of shape \(x0.shape)") }
            x = x + GaussianDiffusion.broadcastPerSample(sigma, rank: r) * z
        }
        return x
    }

    /// One deterministic inversion step — the ODE of §4.3 run from x_0 toward x_T (improved-diffusion's
    /// `ddim_reverse_sample`), from chain index i to i + 1:
    ///
    ///     x_{i+1} = √ᾱ_next · x̂_0 + √(1 − ᾱ_next) · ε̂                  (N×C×H×W)
    ///
    /// with x̂_0, ε̂ from the network at index i (ε̂ re-derived when x̂_0 was processed).
    public static func inversionStep(predictedStart x0: Tensor, noise eps: Tensor, alphaBarNext an: [Double]) -> Tensor {
        let r = x0.rank
        return GaussianDiffusion.broadcastPerSample(an.map { $0.squareRoot() }, rank: r) * x0
            + GaussianDiffusion.broadcastPerSample(an.map { (1 - $0).squareRoot() }, rank: r) * eps
    }

    /// x̂_0 and ε̂ from a model output read by `meanType`, with x̂_0 processed by `thresholding` on `range`
    /// and ε̂ re-derived from the processed x̂_0 or not (`rederivation`). ε-prediction: x̂_0 by
    /// ``predictStart(noisy:alphaBar:noise:)``; x_0-prediction: ε by ``noise(noisy:alphaBar:start:)``;
    /// v-prediction (Salimans & Ho 2022, App. D), per sample:
    ///
    ///     x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂,    ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂          (N×C×H×W)
    ///
    /// An output with twice x_t's channels (a learned variance) contributes its mean half, channels 0 ..< C,
    /// as improved-diffusion splits it; DDIM does not use the variance half. Throws for x_{t−1}-prediction
    /// (DDIM needs x̂_0 and ε̂ at t) and for ε-prediction where ᾱ_t = 0 (zero terminal SNR: x̂_0 cannot be
    /// recovered from ε̂; v-prediction can).
    public static func startAndNoise(modelOutput output: Tensor, noisy x: Tensor, alphaBar: [Double], meanType: ModelMeanType,
                                     thresholding: Thresholding, range: ClosedRange<Double>, rederivation: NoiseRederivation) throws
        -> (start: Tensor, noise: Tensor) {
        var out = output
        if out.rank == x.rank, out.rank >= 2, out.shape[0] == x.shape[0], out.shape[1] == 2 * x.shape[1],
           Array(out.shape.dropFirst(2)) == Array(x.shape.dropFirst(2)) {
            out = out.split(into: 2, axis: 1)[0]
        }
        guard out.shape == x.shape else {
            throw DDPMError(.shapeMismatch, "DDIM step: the model output has shape \(output.shape), expected \(x.shape)")
        }
        let raw: Tensor, eps: Tensor
        switch meanType {
        case .epsilon:
            try TerminalSNR.requireRecoverableStart(meanType: meanType, alphaBar: alphaBar)
            eps = out
            raw = predictStart(noisy: x, alphaBar: alphaBar, noise: out)
        case .startX:
            raw = out
            eps = noise(noisy: x, alphaBar: alphaBar, start: out)
        case .velocity:
            raw = GaussianDiffusion.startFromVelocity(noisy: x, alphaBar: alphaBar, velocity: out)
            eps = GaussianDiffusion.noiseFromVelocity(noisy: x, alphaBar: alphaBar, velocity: out)
        case .previousX:
            throw DDPMError(.invalidConfiguration, "DDIM: mean type '\(meanType.rawValue)' gives no x̂_0 and ε̂ at t; expected eps, x0 or v")
        }
        let x0 = thresholding.apply(raw, range: range)
        if thresholding == .unchanged || rederivation == .original { return (x0, eps) }
        return (x0, noise(noisy: x, alphaBar: alphaBar, start: x0))
    }
}

/// The chain a DDIM sampler runs, in sampling order: for each step the original timestep the network sees,
/// the chain index, ᾱ at the step and ᾱ of its target. Built by one of two conventions (each names its source).
public struct DDIMChain: Sendable {
    public struct Step: Sendable, Equatable {
        /// The original timestep (network input).
        public var t: Int
        /// The chain index (respaced index for improved-diffusion; equal to t for diffusers).
        public var index: Int
        /// ᾱ at the step, and ᾱ of its target ("ᾱ_{t−1}").
        public var alphaBar: Double, alphaBarPrev: Double
    }
    public let steps: [Step]
    /// Which convention built the chain (recorded in golden files).
    public let convention: String

    /// improved-diffusion's: the respaced tables of `diffusion` (ᾱ'_i and ᾱ'_{i−1}, ᾱ'_{−1} = 1), indices
    /// N−1 … 0, the network at timestepMap[i]. On a full chain this is the original ᾱ.
    public init(improvedDiffusion diffusion: SpacedDiffusion) {
        let tb = diffusion.spaced.tables
        steps = (0..<diffusion.timesteps).reversed().map {
            Step(t: diffusion.timestepMap[$0], index: $0, alphaBar: tb.alphasCumprod[$0], alphaBarPrev: tb.alphasCumprodPrev[$0])
        }
        convention = "improved-diffusion (\(diffusion.spacingName)): target = next kept step, final ᾱ = 1"
    }

    /// diffusers' DDIMScheduler: original ᾱ at each of `timesteps` (descending), target t − ⌊T/N⌋ even when
    /// that is not a kept step; a negative target has the final ᾱ: 1 when `setAlphaToOne`, else ᾱ_0.
    public init(diffusers base: GaussianDiffusion, timesteps ts: [Int], setAlphaToOne: Bool) throws {
        let T = base.timesteps, N = ts.count
        guard N >= 1, N <= T, ts.allSatisfy({ $0 >= 0 && $0 < T }) else {
            throw DDPMError(.invalidValue, "DDIM chain: timesteps \(ts) must be 1 to \(T) values in [0, \(T))")
        }
        let ac = base.tables.alphasCumprod
        let final = setAlphaToOne ? 1 : ac[0]
        let jump = T / N
        steps = ts.map { t in Step(t: t, index: t, alphaBar: ac[t], alphaBarPrev: t - jump >= 0 ? ac[t - jump] : final) }
        convention = "diffusers DDIMScheduler: target = t − \(jump), set_alpha_to_one = \(setAlphaToOne)"
    }
}

/// DDIM generation (Song et al. eq. 12 with σ_t(η) of eq. 16) as the pluggable step of the one reverse chain.
public struct DDIMSampler: ReverseSampler, Sendable {
    public let chain: DDIMChain
    public let eta: Double
    public let meanType: ModelMeanType
    public let thresholding: Thresholding
    public let dataRange: ClosedRange<Double>
    public let rederivation: NoiseRederivation
    /// σ_t(η) per step, sampling order.
    public let sigmas: [Double]

    /// Throws for η < 0, an invalid thresholding, or ε-prediction on a chain with ᾱ_t = 0.
    public init(chain: DDIMChain, eta: Double, meanType: ModelMeanType, thresholding: Thresholding, dataRange: ClosedRange<Double>,
                rederivation: NoiseRederivation = .rederive) throws {
        guard eta >= 0, eta.isFinite else { throw DDPMError(.invalidValue, "DDIM η: expected a finite value ≥ 0, got \(eta)") }
        try thresholding.validate()
        try TerminalSNR.requireRecoverableStart(meanType: meanType, alphaBar: chain.steps.map(\.alphaBar))
        self.chain = chain; self.eta = eta; self.meanType = meanType; self.thresholding = thresholding
        self.dataRange = dataRange; self.rederivation = rederivation
        sigmas = chain.steps.map { DDIM.sigma(alphaBar: $0.alphaBar, alphaBarPrev: $0.alphaBarPrev, eta: eta) }
    }

    /// DDIM on a spaced diffusion (improved-diffusion's chain), with its thresholding and mean type.
    public init(_ diffusion: SpacedDiffusion, eta: Double, rederivation: NoiseRederivation = .rederive) throws {
        try self.init(chain: DDIMChain(improvedDiffusion: diffusion), eta: eta, meanType: diffusion.base.meanType,
                      thresholding: diffusion.thresholding, dataRange: diffusion.base.dataRange, rederivation: rederivation)
    }

    public var stepCount: Int { chain.steps.count }
    public func drawsNoise(atStep k: Int) -> Bool { sigmas[k] != 0 }

    public func step(_ k: Int, model: NoisePredictor, _ x: Tensor, noise z: Tensor?) throws -> ReverseChainStep {
        let s = chain.steps[k], n = x.shape[0]
        let out = model.predictNoise(x, at: [Int](repeating: s.t, count: n))
        let (x0, eps) = try DDIM.startAndNoise(modelOutput: out, noisy: x, alphaBar: [Double](repeating: s.alphaBar, count: n), meanType: meanType,
                                               thresholding: thresholding, range: dataRange, rederivation: rederivation)
        let next = DDIM.step(predictedStart: x0, noise: eps, alphaBarPrev: [Double](repeating: s.alphaBarPrev, count: n),
                             sigma: [Double](repeating: sigmas[k], count: n), z: z)
        return ReverseChainStep(t: s.t, index: s.index, noisy: x, predictedStart: x0, next: next)
    }
}

/// Deterministic DDIM inversion (§4.3; improved-diffusion's `ddim_reverse_sample` loop) as a chain the one
/// loop runs upwards. **Index convention (improved-diffusion's):** the image is the state *at chain index 0*
/// (ᾱ'_0 = 1 − β_0, not 1); step k maps index k to k + 1 with ᾱ_next = ᾱ'_{k+1}, the network evaluated at
/// index k (original timestep timestepMap[k]). `stepCount` = N − 1, so the result is the state at index
/// N − 1, where DDIM generation over the same chain starts.
public struct DDIMInversion: ReverseSampler, Sendable {
    public let diffusion: SpacedDiffusion
    public let rederivation: NoiseRederivation = .rederive

    public init(_ diffusion: SpacedDiffusion) throws {
        try TerminalSNR.requireRecoverableStart(meanType: diffusion.base.meanType, alphaBar: diffusion.spaced.tables.alphasCumprod.dropLast())
        self.diffusion = diffusion
    }

    public var stepCount: Int { diffusion.timesteps - 1 }
    public func drawsNoise(atStep k: Int) -> Bool { false }

    public func step(_ k: Int, model: NoisePredictor, _ x: Tensor, noise z: Tensor?) throws -> ReverseChainStep {
        let n = x.shape[0]
        let out = model.predictNoise(x, at: [Int](repeating: diffusion.timestepMap[k], count: n))
        let (x0, eps) = try DDIM.startAndNoise(modelOutput: out, noisy: x, alphaBar: [Double](repeating: diffusion.spaced.tables.alphasCumprod[k], count: n),
                                               meanType: diffusion.base.meanType, thresholding: diffusion.thresholding,
                                               range: diffusion.base.dataRange, rederivation: rederivation)
        let next = DDIM.inversionStep(predictedStart: x0, noise: eps, alphaBarNext: [Double](repeating: diffusion.alphasCumprodNext[k], count: n))
        return ReverseChainStep(t: diffusion.timestepMap[k], index: k, noisy: x, predictedStart: x0, next: next)
    }
}
