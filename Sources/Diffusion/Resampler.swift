// ─── Importance sampling of t: improved-diffusion's LossSecondMomentResampler (Nichol & Dhariwal §3.3) ──
//
// L_vlb = E_{t∼p_t}[L_t / p_t] for any p_t > 0; choosing p_t ∝ √E[L_t²] lowers the variance of the
// one-sample estimate. The history of losses per timestep is state: it is saved in checkpoints so that a
// resumed run samples exactly as an uninterrupted one.

import Errors
import Foundation
import Tensors

/// How training draws its timesteps.
public enum TimestepSampler: String, Sendable, CaseIterable {
    /// t uniform over 0 ..< T (Ho et al. Algorithm 1).
    case uniform
    /// ``LossSecondMomentResampler``.
    case lossSecondMoment = "loss-second-moment"
}

/// improved-diffusion's `LossSecondMomentResampler`: keeps the last `historyPerTerm` losses of every
/// timestep; until every t has that many, t is uniform; then
///
///     w_t = √(mean_k L_{t,k}²),  w ← w/Σw,  w ← w (1 − uniformProbability) + uniformProbability/T
///     p_t = w_t / Σ_s w_s,       each sample's loss is weighted by 1/(T p_t)
///
/// Fixtures: `objectives.h5 resampler/{warm,cold,stream}/…`.
public struct LossSecondMomentResampler: Sendable, Equatable {
    public let timesteps: Int
    public let historyPerTerm: Int
    public let uniformProbability: Double
    /// T × historyPerTerm, row-major, oldest first in each row.
    public private(set) var lossHistory: [Double]
    /// How many losses each timestep holds (≤ historyPerTerm).
    public private(set) var lossCounts: [Int]

    public init(timesteps: Int, historyPerTerm: Int = 10, uniformProbability: Double = 0.001) {
        precondition(timesteps > 0 && historyPerTerm > 0, "LossSecondMomentResampler: timesteps \(timesteps) and history \(historyPerTerm) must be positive")
        self.timesteps = timesteps; self.historyPerTerm = historyPerTerm; self.uniformProbability = uniformProbability
        lossHistory = [Double](repeating: 0, count: timesteps * historyPerTerm)
        lossCounts = [Int](repeating: 0, count: timesteps)
    }

    /// Restores a saved state; throws unless the shapes and counts fit.
    public init(timesteps: Int, historyPerTerm: Int = 10, uniformProbability: Double = 0.001, lossHistory: [Double], lossCounts: [Int]) throws {
        self.init(timesteps: timesteps, historyPerTerm: historyPerTerm, uniformProbability: uniformProbability)
        guard lossHistory.count == timesteps * historyPerTerm, lossCounts.count == timesteps else {
            throw DDPMError(.shapeMismatch, "loss-second-moment resampler state: expected a \(timesteps)×\(historyPerTerm) history and \(timesteps) counts, got \(lossHistory.count) values and \(lossCounts.count) counts")
        }
        if let bad = lossCounts.first(where: { $0 < 0 || $0 > historyPerTerm }) {
            throw DDPMError(.invalidValue, "loss-second-moment resampler state: a count of \(bad), expected 0 … \(historyPerTerm)")
        }
        self.lossHistory = lossHistory; self.lossCounts = lossCounts
    }

    /// Whether every timestep holds `historyPerTerm` losses (only then is sampling non-uniform).
    public var isWarmedUp: Bool { lossCounts.allSatisfy { $0 == historyPerTerm } }

    /// The unnormalised weights w (T): all 1 until warmed up, then as in the type's description
    /// (improved-diffusion `weights()`). Fixture: `resampler/<warm,cold>/weights`.
    public func weights() -> [Double] {
        guard isWarmedUp else { return [Double](repeating: 1, count: timesteps) }
        let h = historyPerTerm
        var w = (0..<timesteps).map { t in
            ((0..<h).reduce(0.0) { $0 + lossHistory[t * h + $1] * lossHistory[t * h + $1] } / Double(h)).squareRoot()
        }
        let total = w.reduce(0, +)
        w = w.map { $0 / total }
        w = w.map { $0 * (1 - uniformProbability) }
        return w.map { $0 + uniformProbability / Double(timesteps) }
    }

    /// p_t = w_t / Σ_s w_s (T). Fixture: `resampler/<warm,cold>/probabilities`.
    public func probabilities() -> [Double] {
        let w = weights(), total = w.reduce(0, +)
        return w.map { $0 / total }
    }

    /// The importance weight 1/(T p_t) of each given timestep (N), which keeps the weighted loss an unbiased
    /// estimate of the uniform one. Fixture: `resampler/<warm,cold>/sample_weights`.
    public func importanceWeights(_ t: [Int]) -> [Double] {
        let p = probabilities()
        return t.map { 1 / (Double(timesteps) * p[$0]) }
    }

    /// Draws N timesteps and their importance weights. Before warm-up: t uniform (one `nextInt(below: T)`
    /// per sample, as uniform sampling draws). After: one uniform u per sample, t = the first index whose
    /// cumulative probability exceeds u.
    public func sample(batchSize: Int, generator: inout RandomGenerator) -> (t: [Int], weights: [Double]) {
        guard isWarmedUp else {
            return ((0..<batchSize).map { _ in generator.nextInt(below: timesteps) }, [Double](repeating: 1, count: batchSize))
        }
        let p = probabilities()
        var cumulative = [Double](); cumulative.reserveCapacity(timesteps)
        var running = 0.0
        for q in p { running += q; cumulative.append(running) }
        let t = (0..<batchSize).map { _ -> Int in
            let u = generator.nextUniform() * running
            return cumulative.firstIndex(where: { u < $0 }) ?? (timesteps - 1)
        }
        return (t, importanceWeights(t))
    }

    /// Records one loss per sample, in order (improved-diffusion `update_with_all_losses`): while t holds
    /// fewer than `historyPerTerm` losses the loss goes into the next free slot; once full, the oldest is
    /// shifted out and the loss goes into the last slot. Fixture: `resampler/stream/…`.
    public mutating func update(t: [Int], losses: [Double]) {
        precondition(t.count == losses.count, "LossSecondMomentResampler.update: \(t.count) timesteps, \(losses.count) losses")
        let h = historyPerTerm
        for (s, loss) in zip(t, losses) {
            precondition(s >= 0 && s < timesteps, "LossSecondMomentResampler.update: timestep \(s) outside [0, \(timesteps))")
            if lossCounts[s] == h {
                for k in 0..<(h - 1) { lossHistory[s * h + k] = lossHistory[s * h + k + 1] }
                lossHistory[s * h + h - 1] = loss
            } else {
                lossHistory[s * h + lossCounts[s]] = loss
                lossCounts[s] += 1
            }
        }
    }
}
