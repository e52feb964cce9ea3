// ─── The equations of Ho, Jain & Abbeel (2020), one function each ─────────────────────────────────────
//
// Shapes: x_0, x_t, ε and model outputs are N×C×H×W (any rank ≥ 1 with the batch first works);
// t is an array of N integer timesteps in 0 ..< T. Per-sample coefficients are gathered from the
// tables at t and broadcast over the other axes. These functions take the model's output as an
// argument and never call a model, which is what lets the fixtures pin them.

import Foundation
import Tensors

/// What the network's output means (Ho et al. §3.2; the seed predicts ε).
public enum ModelMeanType: String, Sendable, CaseIterable { case epsilon = "eps", startX = "x0", previousX = "xprev" }

/// Which fixed variance Σ_θ(x_t, t) = σ_t² I the reverse process uses (Ho et al. §3.2).
public enum ModelVarianceType: String, Sendable, CaseIterable {
    /// σ_t² = β̃_t, the posterior variance (the seed's choice and our default).
    case fixedSmall = "small"
    /// σ_t² = β_t, with β̃_1 standing in at t = 0 (as in Ho et al.'s code).
    case fixedLarge = "large"
}

/// The training objective.
public enum LossType: String, Sendable { case simple, kl }

/// Mean and variance of a diagonal Gaussian over a batch: `mean` N×…, `variance` and `logVariance` per sample (N).
public struct GaussianParameters {
    public var mean: Tensor
    public var variance: [Double]
    public var logVariance: [Double]
}

/// The reverse-process distribution p_θ(x_{t−1} | x_t) and the x̂_0 it implies.
public struct ReverseParameters {
    public var mean: Tensor
    public var variance: [Double]
    public var logVariance: [Double]
    public var predictedStart: Tensor
}

/// The Gaussian diffusion process of DDPM over a fixed schedule.
public struct GaussianDiffusion: Sendable {
    public let tables: DiffusionTables
    public let schedule: BetaSchedule?
    /// The range of the data, [0, 1] by default (the seed's convention) or [−1, 1] (the paper's).
    /// Clipping of x̂_0 and the decoder's 256 bins follow it.
    public let dataRange: ClosedRange<Double>
    public let meanType: ModelMeanType
    public let varianceType: ModelVarianceType
    public let lossType: LossType

    public var timesteps: Int { tables.timesteps }

    public init(schedule: BetaSchedule = .default, timesteps: Int = 1000, dataRange: ClosedRange<Double> = 0...1,
                meanType: ModelMeanType = .epsilon, varianceType: ModelVarianceType = .fixedSmall, lossType: LossType = .simple) throws {
        try self.init(tables: DiffusionTables(schedule: schedule, timesteps: timesteps), schedule: schedule, dataRange: dataRange,
                      meanType: meanType, varianceType: varianceType, lossType: lossType)
    }

    public init(tables: DiffusionTables, schedule: BetaSchedule? = nil, dataRange: ClosedRange<Double> = 0...1,
                meanType: ModelMeanType = .epsilon, varianceType: ModelVarianceType = .fixedSmall, lossType: LossType = .simple) throws {
        guard dataRange.lowerBound < dataRange.upperBound, dataRange.lowerBound.isFinite, dataRange.upperBound.isFinite else {
            throw DDPMError(.invalidValue, "data range: expected finite bounds with min < max, got \(dataRange)")
        }
        if varianceType == .fixedLarge && tables.timesteps < 2 {
            throw DDPMError(.invalidConfiguration, "variance type 'large': needs at least 2 timesteps (β̃_1 stands in at t = 0), got \(tables.timesteps)")
        }
        self.tables = tables; self.schedule = schedule; self.dataRange = dataRange
        self.meanType = meanType; self.varianceType = varianceType; self.lossType = lossType
    }

    // MARK: helpers

    /// Throws unless every t is in 0 ..< T and there is one per sample.
    public func validate(_ t: [Int], batch: Int) throws {
        guard t.count == batch else { throw DDPMError(.invalidValue, "timesteps: expected one per sample (\(batch)), got \(t.count)") }
        if let bad = t.first(where: { $0 < 0 || $0 >= timesteps }) {
            throw DDPMError(.invalidValue, "timestep \(bad): outside [0, \(timesteps)); timesteps are 0-based")
        }
    }

    /// `table[t_n]` for each sample, shaped N×1×…×1 to broadcast against a tensor of rank `rank`.
    func perSample(_ table: [Double], _ t: [Int], rank: Int) -> Tensor {
        Tensor(shape: [table.count], data: table).gather(t).reshaped([t.count] + Array(repeating: 1, count: rank - 1))
    }

    func checkBatch(_ x: Tensor, _ t: [Int], _ op: String) throws {
        precondition(x.rank >= 1, "\(op): input needs a batch axis, got a scalar")
        try validate(t, batch: x.shape[0])
    }

    // MARK: The forward process q

    /// q(x_t | x_0) = 𝒩(x_t; √ᾱ_t x_0, (1 − ᾱ_t) I)  — Ho et al. eq. 4.
    ///
    ///     mean = √ᾱ_t · x_0        (N×C×H×W)
    ///     variance = 1 − ᾱ_t,  logVariance = log(1 − ᾱ_t)   (N)
    public func qMeanVariance(start x0: Tensor, t: [Int]) throws -> GaussianParameters {
        try checkBatch(x0, t, "qMeanVariance")
        return GaussianParameters(mean: perSample(tables.sqrtAlphasCumprod, t, rank: x0.rank) * x0,
                                  variance: t.map { 1 - tables.alphasCumprod[$0] },
                                  logVariance: t.map { tables.logOneMinusAlphasCumprod[$0] })
    }

    /// Sampling eq. 4 with given noise (the seed's `add_noise`):
    ///
    ///     x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,    ε ~ 𝒩(0, I)     (all N×C×H×W)
    public func qSample(start x0: Tensor, t: [Int], noise: Tensor) throws -> Tensor {
        try checkBatch(x0, t, "qSample")
        precondition(noise.shape == x0.shape, "qSample: noise \(noise.shape) and x0 \(x0.shape) differ")
        return perSample(tables.sqrtAlphasCumprod, t, rank: x0.rank) * x0
            + perSample(tables.sqrtOneMinusAlphasCumprod, t, rank: x0.rank) * noise
    }

    // MARK: The forward-process posterior

    /// q(x_{t−1} | x_t, x_0) = 𝒩(x_{t−1}; μ̃_t(x_t, x_0), β̃_t I)  — Ho et al. eqs. 6–7.
    ///
    ///     μ̃_t = (√ᾱ_{t−1} β_t / (1 − ᾱ_t)) · x_0 + (√α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)) · x_t   (N×C×H×W)
    ///     β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t),  log β̃_t clipped at t = 0                  (N)
    public func qPosteriorMeanVariance(start x0: Tensor, noisy xt: Tensor, t: [Int]) throws -> GaussianParameters {
        try checkBatch(x0, t, "qPosteriorMeanVariance")
        precondition(x0.shape == xt.shape, "qPosteriorMeanVariance: x0 \(x0.shape) and x_t \(xt.shape) differ")
        let mean = perSample(tables.posteriorMeanCoef1, t, rank: x0.rank) * x0 + perSample(tables.posteriorMeanCoef2, t, rank: x0.rank) * xt
        return GaussianParameters(mean: mean, variance: t.map { tables.posteriorVariance[$0] },
                                  logVariance: t.map { tables.posteriorLogVarianceClipped[$0] })
    }

    // MARK: Recovering x_0

    /// x̂_0 from a predicted ε, inverting eq. 4:
    ///
    ///     x̂_0 = √(1/ᾱ_t) · x_t − √(1/ᾱ_t − 1) · ε̂      (N×C×H×W)
    public func predictStartFromNoise(noisy xt: Tensor, t: [Int], noise eps: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictStartFromNoise")
        precondition(eps.shape == xt.shape, "predictStartFromNoise: ε \(eps.shape) and x_t \(xt.shape) differ")
        return perSample(tables.sqrtRecipAlphasCumprod, t, rank: xt.rank) * xt - perSample(tables.sqrtRecipm1AlphasCumprod, t, rank: xt.rank) * eps
    }

    /// x̂_0 from a predicted x_{t−1} (taken as the posterior mean), inverting eq. 7:
    ///
    ///     x̂_0 = (x_{t−1} − coef2_t · x_t) / coef1_t,   coef1_t = √ᾱ_{t−1} β_t/(1−ᾱ_t), coef2_t = √α_t (1−ᾱ_{t−1})/(1−ᾱ_t)
    public func predictStartFromPrevious(noisy xt: Tensor, t: [Int], previous xPrev: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictStartFromPrevious")
        precondition(xPrev.shape == xt.shape, "predictStartFromPrevious: x_{t−1} \(xPrev.shape) and x_t \(xt.shape) differ")
        return (xPrev - perSample(tables.posteriorMeanCoef2, t, rank: xt.rank) * xt) / perSample(tables.posteriorMeanCoef1, t, rank: xt.rank)
    }

    // MARK: The reverse process p_θ

    /// The fixed reverse variance σ_t² and its log, per sample (Ho et al. §3.2).
    ///
    ///     small: σ_t² = β̃_t (log clipped at t = 0)      large: σ_t² = β_t, with β̃_1 at t = 0
    public func reverseVariance(t: [Int]) -> (variance: [Double], logVariance: [Double]) {
        switch varianceType {
        case .fixedSmall:
            return (t.map { tables.posteriorVariance[$0] }, t.map { tables.posteriorLogVarianceClipped[$0] })
        case .fixedLarge:
            let v = t.map { $0 == 0 ? tables.posteriorVariance[1] : tables.betas[$0] }
            return (v, v.map { Foundation.log($0) })
        }
    }

    /// p_θ(x_{t−1} | x_t) = 𝒩(x_{t−1}; μ_θ(x_t, t), σ_t² I)  — Ho et al. eq. 1 with §3.2's choices.
    ///
    ///     ε-prediction:      x̂_0 = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε_θ,  μ_θ = μ̃_t(x_t, x̂_0)   (eq. 11 in its eq. 7 form)
    ///     x_0-prediction:    x̂_0 = model output,                     μ_θ = μ̃_t(x_t, x̂_0)
    ///     x_{t−1}-prediction: μ_θ = model output, x̂_0 from inverting eq. 7 (reported only)
    ///
    /// With `clip`, x̂_0 is clamped to ``dataRange`` before μ_θ is formed (for x_{t−1}-prediction the
    /// clamp applies to the reported x̂_0 only). Shapes: output, x_t N×C×H×W; variances per sample (N).
    public func pMeanVariance(modelOutput out: Tensor, noisy xt: Tensor, t: [Int], clip: Bool) throws -> ReverseParameters {
        try checkBatch(xt, t, "pMeanVariance")
        precondition(out.shape == xt.shape, "pMeanVariance: model output \(out.shape) and x_t \(xt.shape) differ (learned variances are not supported)")
        let (variance, logVariance) = reverseVariance(t: t)
        func clipped(_ x: Tensor) -> Tensor { clip ? x.clamp(min: dataRange.lowerBound, max: dataRange.upperBound) : x }
        switch meanType {
        case .epsilon, .startX:
            let x0 = clipped(meanType == .epsilon ? try predictStartFromNoise(noisy: xt, t: t, noise: out) : out)
            let mean = try qPosteriorMeanVariance(start: x0, noisy: xt, t: t).mean
            return ReverseParameters(mean: mean, variance: variance, logVariance: logVariance, predictedStart: x0)
        case .previousX:
            let x0 = clipped(try predictStartFromPrevious(noisy: xt, t: t, previous: out))
            return ReverseParameters(mean: out, variance: variance, logVariance: logVariance, predictedStart: x0)
        }
    }

    /// One reverse step (Ho et al. Algorithm 2, line 4):
    ///
    ///     x_{t−1} = μ_θ(x_t, t) + σ_t z,   z ~ 𝒩(0, I),  and no noise where t = 0
    public func pSample(modelOutput out: Tensor, noisy xt: Tensor, t: [Int], noise z: Tensor, clip: Bool) throws -> Tensor {
        precondition(z.shape == xt.shape, "pSample: noise \(z.shape) and x_t \(xt.shape) differ")
        let p = try pMeanVariance(modelOutput: out, noisy: xt, t: t, clip: clip)
        let sigma = t.indices.map { t[$0] == 0 ? 0 : p.variance[$0].squareRoot() }
        return p.mean + Tensor(shape: [t.count] + Array(repeating: 1, count: xt.rank - 1), data: sigma) * z
    }

    /// The whole reverse chain (Algorithm 2): x_T ~ 𝒩(0, I), then ``pSample`` for t = T−1 … 0.
    /// `model(x_t, t)` gives the network output; `onStep(t, x_{t})` (if given) sees every intermediate,
    /// with the final x_0 reported as t = −1. No graph is recorded. Randomness: first x_T, then one
    /// N×C×H×W draw of z per step (also at t = 0, where it is multiplied by 0), from `generator`.
    public func sampleLoop(shape: [Int], clip: Bool, generator: inout RandomGenerator,
                           model: (Tensor, [Int]) throws -> Tensor,
                           onStep: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        precondition(shape.count >= 1 && shape[0] > 0, "sampleLoop: shape \(shape) needs a positive batch axis")
        return try withoutGradients {
            var x = Tensor.randomNormal(shape, generator: &generator)
            for step in stride(from: timesteps - 1, through: 0, by: -1) {
                onStep?(step, x)
                let t = [Int](repeating: step, count: shape[0])
                let out = try model(x, t)
                let z = Tensor.randomNormal(shape, generator: &generator)
                x = try pSample(modelOutput: out, noisy: x, t: t, noise: z, clip: clip)
            }
            onStep?(-1, x)
            return x
        }
    }

    // MARK: The training objective

    /// L_simple (Ho et al. eq. 14): `E ‖ε − ε_θ(x_t, t)‖²`, here the mean over every element of the
    /// batch (as the seed's MSE). Shapes: both N×C×H×W; result a scalar.
    public func simpleLoss(predictedNoise: Tensor, noise: Tensor) -> Tensor {
        Tensor.meanSquaredError(predictedNoise, noise)
    }
}
