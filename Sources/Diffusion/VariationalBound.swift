// ─── The variational bound (Ho et al. eq. 5) in bits per dimension ───────────────────────────────────

import Foundation
import Tensors

extension GaussianDiffusion {
    /// KL(𝒩(μ₁, e^{v₁}) ‖ 𝒩(μ₂, e^{v₂})) elementwise, for diagonal Gaussians with log-variances v:
    ///
    ///     KL = ½ (−1 + v₂ − v₁ + e^{v₁ − v₂} + (μ₁ − μ₂)² e^{−v₂})
    ///
    /// All arguments broadcast against each other (log-variances are typically N×1×1×1).
    public static func normalKL(mean1: Tensor, logVariance1: Tensor, mean2: Tensor, logVariance2: Tensor) -> Tensor {
        0.5 * (-1 + logVariance2 - logVariance1 + (logVariance1 - logVariance2).exp() + (mean1 - mean2).square() * (-logVariance2).exp())
    }

    /// Φ(x) = ½ (1 + erf(x/√2)), the standard normal CDF (exact, through erf).
    public static func standardNormalCDF(_ x: Tensor) -> Tensor { 0.5 * ((x / 2.0.squareRoot()).erf() + 1) }

    /// The discretised Gaussian decoder (Ho et al. eq. 13): log p(x_0 | μ, σ) for data on 256 levels of
    /// [lo, hi], with bin half-width δ = (hi − lo)/(2·255):
    ///
    ///     log p = log Φ((x + δ − μ)/σ)                        for the lowest level (edge open to −∞)
    ///           = log(1 − Φ((x − δ − μ)/σ))                   for the highest level (edge open to +∞)
    ///           = log(Φ((x + δ − μ)/σ) − Φ((x − δ − μ)/σ))    otherwise
    ///
    /// Probabilities are floored at 1e-12 before the log (as in Ho et al.'s code). The lowest level is
    /// any x < lo + δ, the highest any x > hi − δ. `logScales` = log σ = ½ log σ²; all N×C×H×W.
    /// The exact Φ is used; Ho et al.'s code uses a tanh approximation of it.
    public static func discretizedGaussianLogLikelihood(_ x: Tensor, means: Tensor, logScales: Tensor,
                                                        dataRange: ClosedRange<Double>) -> Tensor {
        let (lo, hi) = (dataRange.lowerBound, dataRange.upperBound)
        let half = (hi - lo) / 255 / 2
        let centered = x - means, inverseScale = (-logScales).exp()
        let cdfPlus = standardNormalCDF(inverseScale * (centered + half))
        let cdfMinus = standardNormalCDF(inverseScale * (centered - half))
        let logCdfPlus = cdfPlus.clamp(min: 1e-12).log()
        let logOneMinusCdfMinus = (1 - cdfMinus).clamp(min: 1e-12).log()
        let logDelta = (cdfPlus - cdfMinus).clamp(min: 1e-12).log()
        // Select by constant masks so that each branch gets the gradient of the branch it chose.
        let lowMask = Tensor(shape: x.shape, data: x.data.map { $0 < lo + half ? 1 : 0 })
        let highMask = Tensor(shape: x.shape, data: x.data.map { $0 > hi - half ? 1 : 0 })
        let midMask = 1 - lowMask - highMask
        return lowMask * logCdfPlus + highMask * logOneMinusCdfMinus + midMask * logDelta
    }

    /// The mean over every axis but the first: N×… → N.
    static func meanFlat(_ x: Tensor) -> Tensor { x.rank <= 1 ? x : x.reshaped([x.shape[0], x.count / x.shape[0]]).mean(alongAxes: [1]) }

    /// The per-step terms of the bound (Ho et al. eq. 5), in bits per dimension, one per sample (N):
    ///
    /// The code's step t is the paper's step t + 1 (the noisy input at code t is the paper's x_{t+1}).
    /// In the paper's indices, the term returned for code step t is
    ///
    ///     code t ≥ 1:  L_t = KL(q(x_t | x_{t+1}, x_0) ‖ p_θ(x_t | x_{t+1})) / (D ln 2)
    ///     code t = 0:  L_0 = −log p_θ(x_0 | x_1) / (D ln 2)  (the discretised decoder, not a KL)
    ///
    /// D = C·H·W. The KL uses the clipped log-variances of both Gaussians. Returns the chosen terms and
    /// both candidates for every sample.
    public func variationalBoundTerms(modelOutput out: Tensor, start x0: Tensor, noisy xt: Tensor, t: [Int], clip: Bool) throws
        -> (terms: Tensor, kl: Tensor, decoderNLL: Tensor) {
        let q = try qPosteriorMeanVariance(start: x0, noisy: xt, t: t)
        let p = try pMeanVariance(modelOutput: out, noisy: xt, t: t, clip: clip)
        let kl = Self.meanFlat(Self.normalKL(mean1: q.mean, logVariance1: q.logVariance, mean2: p.mean, logVariance2: p.logVariance)) / Foundation.log(2.0)
        let nll = -Self.meanFlat(Self.discretizedGaussianLogLikelihood(x0, means: p.mean, logScales: 0.5 * p.logVariance, dataRange: dataRange)) / Foundation.log(2.0)
        let atZero = Self.broadcastPerSample(t.map { $0 == 0 ? 1 : 0 }, rank: 1)
        return (atZero * nll + (1 - atZero) * kl, kl, nll)
    }

    /// The prior term L_T = KL(q(x_T | x_0) ‖ 𝒩(0, I)) / (D ln 2), per sample (N). It has no parameters.
    public func priorBitsPerDimension(start x0: Tensor) throws -> Tensor {
        let t = [Int](repeating: timesteps - 1, count: x0.shape[0])
        let q = try qMeanVariance(start: x0, t: t)
        let zero = Tensor(0)
        return Self.meanFlat(Self.normalKL(mean1: q.mean, logVariance1: q.logVariance, mean2: zero, logVariance2: zero)) / Foundation.log(2.0)
    }

    /// The full bound for a batch, in bits per dimension: `Σ_{t=0}^{T−1} L_t + L_T` per sample, with
    /// x_t drawn by ``qSample`` using `noise(t)` for each t. This calls the model T times.
    /// Returns the total (N) and the per-step terms (N × T).
    public func fullBound(start x0: Tensor, clip: Bool, noise: (Int) -> Tensor,
                          model: (Tensor, [Int]) throws -> Tensor) throws -> (total: [Double], terms: [[Double]], prior: [Double]) {
        try withoutGradients {
            let n = x0.shape[0]
            var terms = [[Double]](repeating: [Double](repeating: 0, count: timesteps), count: n)
            for step in 0..<timesteps {
                let t = [Int](repeating: step, count: n)
                let xt = try qSample(start: x0, t: t, noise: noise(step))
                let out = try model(xt, t)
                let v = try variationalBoundTerms(modelOutput: out, start: x0, noisy: xt, t: t, clip: clip).terms
                for i in 0..<n { terms[i][step] = v.data[i] }
            }
            let prior = try priorBitsPerDimension(start: x0).data
            return (zip(terms, prior).map { $0.reduce(0, +) + $1 }, terms, prior)
        }
    }
}
