// ─── What the network predicts: ε, x_0, x_{t−1} or v, and the conversions between them ───────────────
//
// x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (Ho et al. eq. 4) ties ε and x_0 together at a given x_t; the velocity
// v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, §4 and App. D) is the derivative of x_t along the
// angle φ = atan(√(1−ᾱ_t)/√ᾱ_t), and (x_t, v) is a rotation of (x_0, ε). Each conversion below is one
// function, in the floating-point form the fixture `objectives.h5 conversions/…` states; x̂_0 from
// x_{t−1} is ``GaussianDiffusion/predictStartFromPrevious(noisy:t:previous:)`` and x_{t−1} from x̂_0 is
// the posterior mean ``GaussianDiffusion/qPosteriorMeanVariance(start:noisy:t:)``.
//
// Conditioning (why round trips lose digits): dividing by √ᾱ_t multiplies the rounding of x_t by
// 1/√ᾱ_t (157 at t = 999 of the linear schedule), dividing by √(1−ᾱ_t) by up to 100 (t = 0).
// Shapes: every tensor N×C×H×W (any rank with the batch first); t holds N timesteps.

import Errors
import Tensors

extension GaussianDiffusion {
    /// The v-prediction target (Salimans & Ho 2022, §4 and App. D), also v̂ from an (ε̂, x̂_0) pair:
    ///
    ///     v = √ᾱ_t ε − √(1−ᾱ_t) x_0        (N×C×H×W)
    ///
    /// Fixtures: `objectives.h5 targets/v` and `conversions/v_from_eps_x0`.
    public func velocity(start x0: Tensor, noise eps: Tensor, t: [Int]) throws -> Tensor {
        try checkBatch(x0, t, "velocity", ("ε", eps))
        return perSample(tables.sqrtAlphasCumprod, t, rank: x0.rank) * eps - perSample(tables.sqrtOneMinusAlphasCumprod, t, rank: x0.rank) * x0
    }

    /// ε̂ from a predicted x̂_0, inverting eq. 4:
    ///
    ///     ε̂ = (x_t − √ᾱ_t x̂_0) / √(1−ᾱ_t)        (N×C×H×W)
    ///
    /// Fixture: `objectives.h5 conversions/eps_from_x0`.
    public func predictNoiseFromStart(noisy xt: Tensor, t: [Int], start x0: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictNoiseFromStart", ("x̂_0", x0))
        return DDIM.noise(noisy: xt, alphaBar: t.map { tables.alphasCumprod[$0] }, start: x0)
    }

    /// x̂_0 from a predicted v̂ (Salimans & Ho 2022, §4: the rotation back):
    ///
    ///     x̂_0 = √ᾱ_t x_t − √(1−ᾱ_t) v̂        (N×C×H×W)
    ///
    /// Fixture: `objectives.h5 conversions/x0_from_v`.
    public func predictStartFromVelocity(noisy xt: Tensor, t: [Int], velocity v: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictStartFromVelocity", ("v̂", v))
        return Self.startFromVelocity(noisy: xt, alphaBar: t.map { tables.alphasCumprod[$0] }, velocity: v)
    }

    /// ``predictStartFromVelocity(noisy:t:velocity:)`` for per-sample ᾱ values (any chain, respaced or not):
    /// x̂_0 = √ᾱ x_t − √(1−ᾱ) v̂, ᾱ one value per sample (N).
    public static func startFromVelocity(noisy xt: Tensor, alphaBar: [Double], velocity v: Tensor) -> Tensor {
        broadcastPerSample(alphaBar.map { $0.squareRoot() }, rank: xt.rank) * xt
            - broadcastPerSample(alphaBar.map { (1 - $0).squareRoot() }, rank: xt.rank) * v
    }

    /// ``predictNoiseFromVelocity(noisy:t:velocity:)`` for per-sample ᾱ values: ε̂ = √(1−ᾱ) x_t + √ᾱ v̂.
    public static func noiseFromVelocity(noisy xt: Tensor, alphaBar: [Double], velocity v: Tensor) -> Tensor {
        broadcastPerSample(alphaBar.map { (1 - $0).squareRoot() }, rank: xt.rank) * xt
            + broadcastPerSample(alphaBar.map { $0.squareRoot() }, rank: xt.rank) * v
    }

    /// ε̂ from a predicted v̂ (Salimans & Ho 2022, App. D):
    ///
    ///     ε̂ = √(1−ᾱ_t) x_t + √ᾱ_t v̂        (N×C×H×W)
    ///
    /// Fixture: `objectives.h5 conversions/eps_from_v`.
    public func predictNoiseFromVelocity(noisy xt: Tensor, t: [Int], velocity v: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictNoiseFromVelocity", ("v̂", v))
        return Self.noiseFromVelocity(noisy: xt, alphaBar: t.map { tables.alphasCumprod[$0] }, velocity: v)
    }

    /// v̂ from a predicted ε̂ (v = √ᾱ ε̂ − √(1−ᾱ) x̂_0(ε̂), simplified):
    ///
    ///     v̂ = (ε̂ − √(1−ᾱ_t) x_t) / √ᾱ_t        (N×C×H×W)
    ///
    /// Fixture: `objectives.h5 conversions/v_from_eps`.
    public func predictVelocityFromNoise(noisy xt: Tensor, t: [Int], noise eps: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictVelocityFromNoise", ("ε̂", eps))
        return (eps - perSample(tables.sqrtOneMinusAlphasCumprod, t, rank: xt.rank) * xt) / perSample(tables.sqrtAlphasCumprod, t, rank: xt.rank)
    }

    /// v̂ from a predicted x̂_0 (v = √ᾱ ε̂(x̂_0) − √(1−ᾱ) x̂_0, simplified):
    ///
    ///     v̂ = (√ᾱ_t x_t − x̂_0) / √(1−ᾱ_t)        (N×C×H×W)
    ///
    /// Fixture: `objectives.h5 conversions/v_from_x0`.
    public func predictVelocityFromStart(noisy xt: Tensor, t: [Int], start x0: Tensor) throws -> Tensor {
        try checkBatch(xt, t, "predictVelocityFromStart", ("x̂_0", x0))
        return (perSample(tables.sqrtAlphasCumprod, t, rank: xt.rank) * xt - x0) / perSample(tables.sqrtOneMinusAlphasCumprod, t, rank: xt.rank)
    }

    /// x̂_{t−1} from a predicted x̂_0: the posterior mean of eq. 7 (what x_{t−1}-prediction regresses):
    ///
    ///     x̂_{t−1} = coef1_t x̂_0 + coef2_t x_t        (N×C×H×W)
    ///
    /// Fixture: `objectives.h5 conversions/xprev_from_x0`.
    public func predictPreviousFromStart(noisy xt: Tensor, t: [Int], start x0: Tensor) throws -> Tensor {
        try qPosteriorMeanVariance(start: x0, noisy: xt, t: t).mean
    }

    /// x̂_0 implied by a model output (its mean part) read as the configuration's mean type, not clipped:
    /// ``predictStartFromNoise(noisy:t:noise:)``, the output itself, ``predictStartFromPrevious(noisy:t:previous:)``
    /// or ``predictStartFromVelocity(noisy:t:velocity:)``. Shapes: N×C×H×W.
    public func predictStart(meanOutput out: Tensor, noisy xt: Tensor, t: [Int]) throws -> Tensor {
        switch meanType {
        case .epsilon: return try predictStartFromNoise(noisy: xt, t: t, noise: out)
        case .startX: try checkBatch(xt, t, "predictStart", ("x̂_0", out)); return out
        case .previousX: return try predictStartFromPrevious(noisy: xt, t: t, previous: out)
        case .velocity: return try predictStartFromVelocity(noisy: xt, t: t, velocity: out)
        }
    }

    /// The number of channels a network's output must have for data with `channels` channels: C, or 2C
    /// when the variance is learned (the mean part first, as improved-diffusion splits it).
    public func outputChannels(forDataChannels channels: Int) -> Int { varianceType.isLearned ? 2 * channels : channels }

    /// Splits a model output into its mean part and its variance part (nil for a fixed variance):
    /// channels 0 ..< C and C ..< 2C of an N×2C×H×W output (improved-diffusion's `th.split(out, C, dim=1)`).
    /// Throws unless the output has x_t's shape (fixed variance) or x_t's with twice the channels (learned).
    public func splitOutput(_ out: Tensor, noisy xt: Tensor, _ op: String) throws -> (mean: Tensor, variance: Tensor?) {
        guard xt.rank >= 2 else { throw DDPMError(.shapeMismatch, "\(op): x_t needs batch and channel axes, got shape \(xt.shape)") }
        var expected = xt.shape
        expected[1] = outputChannels(forDataChannels: xt.shape[1])
        guard out.shape == expected else {
            throw DDPMError(.shapeMismatch, "\(op): the model output has shape \(out.shape), expected \(expected)"
                            + (varianceType.isLearned ? " (mean and variance halves for variance type '\(varianceType.rawValue)')" : ""))
        }
        guard varianceType.isLearned else { return (out, nil) }
        let c = xt.shape[1]
        return (out.slice(axis: 1, start: 0, length: c), out.slice(axis: 1, start: c, length: c))
    }
}
