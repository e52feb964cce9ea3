// ─── What a sampler does to x̂_0 before using it: nothing, static clipping, or dynamic thresholding ────

import Foundation
import Tensors

/// Processing of x̂_0 inside a reverse step.
public enum Thresholding: Sendable, Equatable, CustomStringConvertible {
    /// x̂_0 as predicted (named `none` on the command line and in golden files; not `.none`, which would read as Optional.none).
    case unchanged
    /// Static clipping: clamp(x̂_0, min, max) to the data range (Ho et al.'s code).
    case clip
    /// Dynamic thresholding (Saharia et al. 2022 §2.3; diffusers' `_threshold_sample`) with quantile
    /// `percentile` p and upper limit `maxScale` s_max (∞ is Imagen's rule; diffusers' default s_max = 1 makes
    /// it static clipping to the data range).
    case dynamic(percentile: Double, maxScale: Double)

    /// Imagen's rule with p = 0.995 and no upper limit.
    public static let imagen = Thresholding.dynamic(percentile: 0.995, maxScale: .infinity)

    /// `none`, `clip`, `dynamic:<p>:<s_max>` (recorded in golden files).
    public var description: String {
        switch self {
        case .unchanged: "none"
        case .clip: "clip"
        case let .dynamic(p, s): "dynamic:\(p):\(s)"
        }
    }

    /// Throws unless p ∈ (0, 1] and s_max ≥ 1.
    public func validate() throws {
        if case let .dynamic(p, s) = self {
            guard p > 0, p <= 1 else { throw DDPMError(.invalidValue, "dynamic thresholding: percentile must be in (0, 1], got \(p)") }
            guard s >= 1 else { throw DDPMError(.invalidValue, "dynamic thresholding: maximum scale must be at least 1, got \(s)") }
        }
    }

    /// x̂_0 processed for data in `range` (N×C×H×W in, N×C×H×W out). Dynamic thresholding works on x̂_0 mapped
    /// to [−1, 1] by y = (2x − (lo + hi))/(hi − lo) and maps back by x = (y(hi − lo) + lo + hi)/2.
    public func apply(_ x0: Tensor, range: ClosedRange<Double>) -> Tensor {
        switch self {
        case .unchanged: return x0
        case .clip: return x0.clamp(min: range.lowerBound, max: range.upperBound)
        case let .dynamic(p, s):
            let (lo, hi) = (range.lowerBound, range.upperBound)
            let y = Tensor(shape: x0.shape, data: x0.data.map { (2 * $0 - (lo + hi)) / (hi - lo) })
            let t = Thresholding.dynamicThreshold(y, percentile: p, maxScale: s).thresholded
            return Tensor(shape: x0.shape, data: t.data.map { ($0 * (hi - lo) + (lo + hi)) / 2 })
        }
    }

    /// The p-quantile of `values` with linear interpolation (numpy's and torch's default):
    ///
    ///     a_(0) ≤ … ≤ a_(n−1) sorted;  h = (n − 1) p;  k = ⌊h⌋;  q = a_(k) + (h − k)(a_(k+1) − a_(k))   (a_(n−1) when k = n − 1)
    public static func quantile(_ values: [Double], _ p: Double) -> Double {
        precondition(!values.isEmpty, "quantile: no values")
        let a = values.sorted()
        let h = Double(a.count - 1) * p
        let k = Int(h.rounded(.down))
        if k >= a.count - 1 { return a[a.count - 1] }
        return a[k] + (h - Double(k)) * (a[k + 1] - a[k])
    }

    /// Dynamic thresholding on x̂_0 in [−1, 1] units (Saharia et al. 2022 §2.3), per sample n over all C·H·W values:
    ///
    ///     s_n = clamp(quantile_p |x̂_0[n]|, 1, s_max),   x̂_0[n] ← clamp(x̂_0[n], −s_n, s_n) / s_n
    ///
    /// Returns the thresholded tensor (x's shape) and s (N).
    public static func dynamicThreshold(_ x: Tensor, percentile p: Double, maxScale sMax: Double) -> (thresholded: Tensor, scale: [Double]) {
        precondition(x.rank >= 1 && x.shape[0] > 0, "dynamicThreshold: input \(x.shape) needs a batch axis")
        let n = x.shape[0], per = x.count / n
        var out = x.data
        var scales: [Double] = []
        for b in 0..<n {
            let range = b * per ..< (b + 1) * per
            let s = min(max(quantile(x.data[range].map { abs($0) }, p), 1), sMax)
            scales.append(s)
            for i in range { out[i] = min(max(out[i], -s), s) / s }
        }
        return (Tensor(shape: x.shape, data: out), scales)
    }
}

extension GaussianDiffusion {
    /// One ancestral reverse step (Ho et al. Algorithm 2, line 4) with x̂_0 processed by `thresholding`:
    ///
    ///     x̂_0 = process(x̂_0 from the model output),  μ = μ̃_t(x_t, x̂_0)  (eq. 7),
    ///     x_{t−1} = μ + [t > 0] · exp(½ log σ_t²) · z                        (all N×C×H×W)
    ///
    /// For `.unchanged` and `.clip` this is ``pSample(modelOutput:noisy:t:noise:clip:)``. Dynamic thresholding
    /// needs x̂_0-based mean types (ε or x_0); for x_{t−1}-prediction it processes the reported x̂_0 only.
    public func pSample(modelOutput out: Tensor, noisy xt: Tensor, t: [Int], noise z: Tensor, thresholding: Thresholding,
                        conditionMean: ((ReverseParameters) -> Tensor)? = nil) throws -> (sample: Tensor, predictedStart: Tensor) {
        switch thresholding {
        case .unchanged: return try pSample(modelOutput: out, noisy: xt, t: t, noise: z, clip: false, conditionMean: conditionMean)
        case .clip: return try pSample(modelOutput: out, noisy: xt, t: t, noise: z, clip: true, conditionMean: conditionMean)
        case .dynamic:
            try checkBatch(xt, t, "pSample", ("the noise z", z))
            var p = try pMeanVariance(modelOutput: out, noisy: xt, t: t, clip: false)
            p.predictedStart = thresholding.apply(p.predictedStart, range: dataRange)
            if meanType != .previousX { p.mean = try qPosteriorMeanVariance(start: p.predictedStart, noisy: xt, t: t).mean }
            let notLast = Self.broadcastPerSample(t.map { $0 == 0 ? 0 : 1 }, rank: xt.rank)
            return ((conditionMean?(p) ?? p.mean) + notLast * (0.5 * p.logVariance).exp() * z, p.predictedStart)
        }
    }
}
