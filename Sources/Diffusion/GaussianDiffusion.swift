// ─── The equations of Ho, Jain & Abbeel (2020), one function each ─────────────────────────────────────
//
// Shapes: x_0, x_t, ε and model outputs are N×C×H×W (any rank ≥ 1 with the batch first works);
// t is an array of N integer timesteps in 0 ..< T. Per-sample coefficients are gathered from the
// tables at t and broadcast over the other axes. These functions take the model's output as an
// argument and never call a model, which is what lets the fixtures pin them.

import Foundation
import Tensors

/// Mean and variance of a diagonal Gaussian over a batch. `mean` is N×C×H×W; `variance` and
/// `logVariance` broadcast against it: N×1×1×1 for the fixed variances (one value per sample),
/// N×C×H×W when a network predicts them per element.
public struct GaussianParameters {
    public var mean: Tensor
    public var variance: Tensor
    public var logVariance: Tensor
}

/// The reverse-process distribution p_θ(x_{t−1} | x_t) and the x̂_0 it implies (shapes as in
/// ``GaussianParameters``).
public struct ReverseParameters {
    public var mean: Tensor
    public var variance: Tensor
    public var logVariance: Tensor
    public var predictedStart: Tensor

    public init(mean: Tensor, variance: Tensor, logVariance: Tensor, predictedStart: Tensor) {
        self.mean = mean; self.variance = variance; self.logVariance = logVariance; self.predictedStart = predictedStart
    }
}

/// The Gaussian diffusion process of DDPM over a fixed schedule: the equations of Ho et al., one
/// function each, and the seed's ``Diffuser`` interface built on them.
public struct GaussianDiffusion: Sendable {
    /// Everything this diffusion is: schedule, T, mean/variance/loss types, data range, clipping.
    public let configuration: DiffusionConfiguration
    public let tables: DiffusionTables

    public var timesteps: Int { tables.timesteps }
    public var schedule: BetaSchedule { configuration.schedule }
    public var dataRange: ClosedRange<Double> { configuration.dataRange }
    public var meanType: ModelMeanType { configuration.meanType }
    public var varianceType: ModelVarianceType { configuration.varianceType }
    public var lossType: LossType { configuration.lossType }

    /// Builds the tables of `configuration`; throws ``DDPMError`` naming whatever cannot be built.
    public init(_ configuration: DiffusionConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        tables = try DiffusionTables(schedule: configuration.schedule, timesteps: configuration.timesteps)
    }

    public init(schedule: BetaSchedule = .default, timesteps: Int = 1000, dataRange: ClosedRange<Double> = 0...1,
                meanType: ModelMeanType = .epsilon, varianceType: ModelVarianceType = .fixedSmall, lossType: LossType = .simple,
                clipDenoised: Bool = true) throws {
        try self.init(DiffusionConfiguration(schedule: schedule, timesteps: timesteps, meanType: meanType, varianceType: varianceType,
                                             lossType: lossType, dataRange: dataRange, clipDenoised: clipDenoised))
    }

    // MARK: helpers

    /// Throws unless every t is in 0 ..< T and there is one per sample.
    public func validate(_ t: [Int], batch: Int) throws {
        guard t.count == batch else { throw DDPMError(.invalidValue, "timesteps: expected one per sample (\(batch)), got \(t.count)") }
        if let bad = t.first(where: { $0 < 0 || $0 >= timesteps }) {
            throw DDPMError(.invalidValue, "timestep \(bad): outside [0, \(timesteps)); timesteps are 0-based")
        }
    }

    /// The one per-sample broadcast: `table[t_n]` for each sample n, shaped N×1×…×1 so that it
    /// broadcasts against a tensor of rank `rank`. Every coefficient of every equation goes through here.
    public func perSample(_ table: [Double], _ t: [Int], rank: Int) -> Tensor {
        Self.broadcastPerSample(t.map { table[$0] }, rank: rank)
    }

    /// One value per sample (N), shaped N×1×…×1 to broadcast against a tensor of rank `rank`.
    public static func broadcastPerSample(_ values: [Double], rank: Int) -> Tensor {
        Tensor(shape: [values.count] + Array(repeating: 1, count: max(rank, 1) - 1), data: values)
    }

    /// Validates the timesteps (thrown) and checks that `others` have `x`'s shape: user-reachable
    /// mismatches are thrown errors naming the operation, the argument and both shapes.
    func checkBatch(_ x: Tensor, _ t: [Int], _ op: String, _ others: (String, Tensor)...) throws {
        guard x.rank >= 1 else { throw DDPMError(.shapeMismatch, "\(op): input needs a batch axis, got a scalar") }
        try validate(t, batch: x.shape[0])
        for (name, other) in others where other.shape != x.shape {
            throw DDPMError(.shapeMismatch, "\(op): \(name) has shape \(other.shape), expected \(x.shape)")
        }
    }

    // MARK: The forward process q

    /// q(x_t | x_0) = 𝒩(x_t; √ᾱ_t x_0, (1 − ᾱ_t) I)  — Ho et al. eq. 4.
    ///
    ///     mean = √ᾱ_t · x_0        (N×C×H×W)
    ///     variance = 1 − ᾱ_t,  logVariance = log(1 − ᾱ_t)   (N×1×1×1)
    public func qMeanVariance(start x0: Tensor, t: [Int]) throws -> GaussianParameters {
        try checkBatch(x0, t, "qMeanVariance")
        return GaussianParameters(mean: perSample(tables.sqrtAlphasCumprod, t, rank: x0.rank) * x0,
                                  variance: perSample(tables.alphasCumprod.map { 1 - $0 }, t, rank: x0.rank),
                                  logVariance: perSample(tables.logOneMinusAlphasCumprod, t, rank: x0.rank))
    }

    /// Sampling eq. 4 with given noise (the seed's `add_noise`):
    ///
    ///     x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,    ε ~ 𝒩(0, I)     (all N×C×H×W)
    public func qSample(start x0: Tensor, t: [Int], noise: Tensor) throws -> Tensor {
        try checkBatch(x0, t, "qSample", ("noise", noise))
        return perSample(tables.sqrtAlphasCumprod, t, rank: x0.rank) * x0
            + perSample(tables.sqrtOneMinusAlphasCumprod, t, rank: x0.rank) * noise
    }

    // MARK: The forward-process posterior

    /// q(x_{t−1} | x_t, x_0) = 𝒩(x_{t−1}; μ̃_t(x_t, x_0), β̃_t I)  — Ho et al. eqs. 6–7.
    ///
    ///     μ̃_t = (√ᾱ_{t−1} β_t / (1 − ᾱ_t)) · x_0 + (√α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)) · x_t   (N×C×H×W)
    ///     β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t),  log β̃_t clipped at t = 0                  (N×1×1×1)
    public func qPosteriorMeanVariance(start x0: Tensor, noisy xt: Tensor, t: [Int]) throws -> GaussianParameters {
        try checkBatch(x0, t, "qPosteriorMeanVariance", ("x_t", xt))
        let mean = perSample(tables.posteriorMeanCoef1, t, rank: x0.rank) * x0 + perSample(tables.posteriorMeanCoef2, t, rank: x0.rank) * xt
        return GaussianParameters(mean: mean, variance: perSample(tables.posteriorVariance, t, rank: x0.rank),
                                  logVariance: perSample(tables.posteriorLogVarianceClipped, t, rank: x0.rank))
    }

    // MARK: Recovering x_0

    /// x̂_0 from a predicted ε, inverting eq. 4:
    ///
    ///     x̂_0 = (x_t − √(1−ᾱ_t) · ε̂) / √ᾱ_t      (N×C×H×W)
    ///
    /// Written as this quotient (as the fixtures state it), not as Ho et al.'s code's algebraically equal
    /// √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε̂, which rounds differently. Fixtures: `diffusion.h5 equations/pred_x0_from_eps`,
    /// `objectives.h5 conversions/x0_from_eps`.
    public func predictStartFromNoise(noisy xt: Tensor, t: [Int], noise eps: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictStartFromNoise", ("ε", eps))
        return DDIM.predictStart(noisy: xt, alphaBar: t.map { tables.alphasCumprod[$0] }, noise: eps)
    }

    /// x̂_0 from a predicted x_{t−1} (taken as the posterior mean), inverting eq. 7:
    ///
    ///     x̂_0 = (x_{t−1} − coef2_t · x_t) / coef1_t,   coef1_t = √ᾱ_{t−1} β_t/(1−ᾱ_t), coef2_t = √α_t (1−ᾱ_{t−1})/(1−ᾱ_t)
    public func predictStartFromPrevious(noisy xt: Tensor, t: [Int], previous xPrev: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictStartFromPrevious", ("x_{t−1}", xPrev))
        return (xPrev - perSample(tables.posteriorMeanCoef2, t, rank: xt.rank) * xt) / perSample(tables.posteriorMeanCoef1, t, rank: xt.rank)
    }

    // MARK: The reverse process p_θ

    /// The fixed reverse variance σ_t² and its log, per sample (Ho et al. §3.2), shaped N×1×…×1 for a
    /// tensor of rank `rank`:
    ///
    ///     small: σ_t² = β̃_t, log σ_t² = log β̃_t clipped (log β̃_1 at t = 0)
    ///     large: σ_t² = β_t for t ≥ 1, and β̃_1 at t = 0 for both σ_0² and log σ_0² (improved-diffusion's
    ///            convention; see ``ModelVarianceType/fixedLarge`` for Ho et al.'s, which differs in σ_0² only)
    ///
    /// Fixtures: `objectives.h5 variance/fixed_small/…`, `variance/fixed_large/…`. A learned variance has no
    /// fixed value: use ``modelVariance(varianceOutput:t:rank:)``.
    public func reverseVariance(t: [Int], rank: Int) -> (variance: Tensor, logVariance: Tensor) {
        switch varianceType {
        case .fixedSmall:
            return (perSample(tables.posteriorVariance, t, rank: rank), perSample(tables.posteriorLogVarianceClipped, t, rank: rank))
        case .fixedLarge:
            let large = [tables.posteriorVariance[1]] + tables.betas.dropFirst()
            return (perSample(large, t, rank: rank), perSample(large.map { Foundation.log($0) }, t, rank: rank))
        case .learned, .learnedRange:
            preconditionFailure("reverseVariance: variance type '\(varianceType.rawValue)' is learned; use modelVariance(varianceOutput:t:rank:)")
        }
    }

    /// A learned variance whose network output is log σ² itself (Ho et al.'s code, "learned"):
    ///
    ///     log σ² = output,   σ² = exp(output)        (both N×C×H×W)
    ///
    /// Fixture: `objectives.h5 variance/learned/{variance,log_variance}`.
    public static func learnedVariance(output: Tensor) -> (variance: Tensor, logVariance: Tensor) {
        (output.exp(), output)
    }

    /// The learned-range variance (Nichol & Dhariwal 2021, eq. 15), with improved-diffusion's map of the raw
    /// output to the interpolation weight (the paper's v is the raw output; improved-diffusion's is this):
    ///
    ///     v = (output + 1)/2
    ///     log σ² = v · log β_t + (1 − v) · log β̃_t,   log β̃_t clipped (log β̃_1 at t = 0)
    ///     σ² = exp(log σ²)                                                   (all N×C×H×W)
    ///
    /// No clamping of v: outputs outside [−1, 1] extrapolate. At output −1 the result is exactly log β̃_t
    /// (clipped), at +1 exactly log β_t — at t = 0 that is log β_0, not fixed-large's β̃_1.
    /// Fixtures: `objectives.h5 variance/learned_range/{frac,variance,log_variance}`, `variance/learned_range_endpoints/…`.
    public func learnedRangeVariance(output: Tensor, t: [Int]) -> (variance: Tensor, logVariance: Tensor) {
        let frac = (output + 1) / 2
        let maxLog = perSample(tables.betas.map { Foundation.log($0) }, t, rank: output.rank)
        let minLog = perSample(tables.posteriorLogVarianceClipped, t, rank: output.rank)
        let logVariance = frac * maxLog + (1 - frac) * minLog
        return (logVariance.exp(), logVariance)
    }

    /// σ² and log σ² of p_θ(x_{t−1} | x_t) for the configuration's variance type: the fixed tables
    /// (``reverseVariance(t:rank:)``, N×1×…×1) or the network's variance part (N×C×H×W; nil for fixed types).
    public func modelVariance(varianceOutput: Tensor?, t: [Int], rank: Int) -> (variance: Tensor, logVariance: Tensor) {
        switch varianceType {
        case .fixedSmall, .fixedLarge: return reverseVariance(t: t, rank: rank)
        case .learned: return Self.learnedVariance(output: varianceOutput!)
        case .learnedRange: return learnedRangeVariance(output: varianceOutput!, t: t)
        }
    }

    /// p_θ(x_{t−1} | x_t) = 𝒩(x_{t−1}; μ_θ(x_t, t), Σ_θ)  — Ho et al. eq. 1 with §3.2's choices.
    ///
    ///     ε-prediction:      x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t,        μ_θ = μ̃_t(x_t, x̂_0)   (eq. 11 in its eq. 7 form)
    ///     x_0-prediction:    x̂_0 = model output,                      μ_θ = μ̃_t(x_t, x̂_0)
    ///     v-prediction:      x̂_0 = √ᾱ_t x_t − √(1−ᾱ_t) v_θ,           μ_θ = μ̃_t(x_t, x̂_0)   (Salimans & Ho §4)
    ///     x_{t−1}-prediction: μ_θ = model output, x̂_0 from inverting eq. 7 (reported only)
    ///     Σ_θ: fixed small/large (``reverseVariance(t:rank:)``), or from the output's second C channels
    ///          (``learnedVariance(output:)``, ``learnedRangeVariance(output:t:)``).
    ///
    /// With `clip`, x̂_0 is clamped to ``dataRange`` before μ_θ is formed (for x_{t−1}-prediction the
    /// clamp applies to the reported x̂_0 only). Shapes: x_t N×C×H×W; the output N×C×H×W, or N×2C×H×W
    /// (mean part first) for a learned variance; variances N×1×1×1 fixed, N×C×H×W learned.
    public func pMeanVariance(modelOutput out: Tensor, noisy xt: Tensor, t: [Int], clip: Bool) throws -> ReverseParameters {
        try checkBatch(xt, t, "pMeanVariance")
        let (meanOut, varianceOut) = try splitOutput(out, noisy: xt, "pMeanVariance")
        let (variance, logVariance) = modelVariance(varianceOutput: varianceOut, t: t, rank: xt.rank)
        func clipped(_ x: Tensor) -> Tensor { clip ? x.clamp(min: dataRange.lowerBound, max: dataRange.upperBound) : x }
        let x0 = clipped(try predictStart(meanOutput: meanOut, noisy: xt, t: t))
        let mean = meanType == .previousX ? meanOut : try qPosteriorMeanVariance(start: x0, noisy: xt, t: t).mean
        return ReverseParameters(mean: mean, variance: variance, logVariance: logVariance, predictedStart: x0)
    }

    /// One reverse step (Ho et al. Algorithm 2, line 4), as Ho et al.'s code computes it:
    ///
    ///     x_{t−1} = μ_θ(x_t, t) + [t > 0] · exp(½ log σ_t²) · z,   z ~ 𝒩(0, I)     (all N×C×H×W)
    ///
    /// The mask [t > 0] matters: exp(½ log σ_0²) is not 0 for any variance type (the log is clipped to
    /// log β̃_1 at t = 0), so without it the last step would add noise. Returns x_{t−1} and the x̂_0 that
    /// the step used. `conditionMean`, when given, replaces μ_θ before the noise is added (classifier guidance's
    /// Algorithm 1, ``AncestralMeanCondition``); nil is the step above.
    public func pSample(modelOutput out: Tensor, noisy xt: Tensor, t: [Int], noise z: Tensor, clip: Bool,
                        conditionMean: ((ReverseParameters) -> Tensor)? = nil) throws -> (sample: Tensor, predictedStart: Tensor) {
        try checkBatch(xt, t, "pSample", ("the noise z", z))
        let p = try pMeanVariance(modelOutput: out, noisy: xt, t: t, clip: clip)
        let notLast = Self.broadcastPerSample(t.map { $0 == 0 ? 0 : 1 }, rank: xt.rank)
        return ((conditionMean?(p) ?? p.mean) + notLast * (0.5 * p.logVariance).exp() * z, p.predictedStart)
    }
}
