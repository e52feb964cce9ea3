// ─── Zero terminal SNR (Lin, Liu, Li & Yang 2024, "Common diffusion noise schedules and sample steps are flawed") ─

import Foundation
import Tensors

/// The zero-terminal-SNR rescaling and the rule it imposes on the parameterisation.
public enum TerminalSNR {
    /// Lin et al. 2024, Algorithm 1: shift and scale √ᾱ so that its last value is 0 and its first unchanged,
    ///
    ///     a = √cumprod(1 − β);  a ← a_0 · ((a − a_{T−1}) / (a_0 − a_{T−1}));  ᾱ = a²;
    ///     α = [ᾱ_0, ᾱ_1/ᾱ_0, …, ᾱ_{T−1}/ᾱ_{T−2}];  β = 1 − α                       (T values; the last β is 1)
    ///
    /// This operation order makes a_0 and a_{T−1} = 0 exact; Algorithm 1's literal (a − a_T)·(a_0/(a_0 − a_T))
    /// is the same number up to rounding. Throws for T < 2 (there is no first and last to pin).
    public static func rescaledBetas(_ betas: [Double]) throws -> [Double] {
        guard betas.count >= 2 else { throw DDPMError(.invalidValue, "zero terminal SNR: needs at least 2 timesteps, got \(betas.count)") }
        var product = 1.0
        let a = betas.map { b -> Double in product *= 1 - b; return product.squareRoot() }
        let (a0, aT) = (a[0], a[a.count - 1])
        let abar = a.map { v -> Double in let s = a0 * ((v - aT) / (a0 - aT)); return s * s }
        return abar.indices.map { i in 1 - (i == 0 ? abar[0] : abar[i] / abar[i - 1]) }
    }

    /// log SNR_t = log(ᾱ_t / (1 − ᾱ_t)) = log ᾱ_t − log1p(−ᾱ_t) (−∞ where ᾱ_t = 0), for figures.
    public static func logSNR(_ alphasCumprod: [Double]) -> [Double] {
        alphasCumprod.map { Foundation.log($0) - Foundation.log1p(-$0) }
    }

    /// Throws where ε-prediction meets ᾱ_t = 0: x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t has no value there, so a zero-
    /// terminal-SNR schedule needs v-prediction (or x_0-prediction).
    public static func requireRecoverableStart<C: Collection>(meanType: ModelMeanType, alphaBar: C) throws where C.Element == Double {
        if meanType == .epsilon, alphaBar.contains(where: { $0 <= 0 }) {
            throw DDPMError(.invalidConfiguration,
                            "zero terminal SNR: ε-prediction cannot recover x̂_0 where ᾱ_t = 0; use v-prediction (Lin et al. 2024 §3.2) or x_0-prediction")
        }
    }
}

extension GaussianDiffusion {
    /// The same diffusion over the zero-terminal-SNR rescaling of its schedule (``TerminalSNR/rescaledBetas(_:)``).
    /// Throws for ε-prediction (use v-prediction) and for T < 2.
    public func zeroTerminalSNR() throws -> GaussianDiffusion {
        try TerminalSNR.requireRecoverableStart(meanType: meanType, alphaBar: [0])
        return try GaussianDiffusion(configuration, betas: TerminalSNR.rescaledBetas(tables.betas))
    }
}
