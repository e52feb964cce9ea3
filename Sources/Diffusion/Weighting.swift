// ─── Per-timestep weights of the regression term: the SNR and min-SNR-γ (Hang et al. 2023) ─────────────

import Errors
import Foundation

extension GaussianDiffusion {
    /// The signal-to-noise ratio of x_t (Kingma et al. 2021; Hang et al. 2023), one per timestep given:
    ///
    ///     SNR_t = ᾱ_t / (1 − ᾱ_t)        ([Int] of N → [Double] of N)
    ///
    /// Fixtures: `objectives.h5 tables/snr` (every t), `losses/min_snr/snr`.
    public func signalToNoiseRatio(_ t: [Int]) -> [Double] {
        t.map { tables.alphasCumprod[$0] / (1 - tables.alphasCumprod[$0]) }
    }

    /// The min-SNR-γ weight of each timestep (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
    /// Weighting Strategy", eq. 8 and §3.4): the x_0-space weight min(SNR_t, γ), divided by the factor the
    /// mean type's squared error carries relative to x_0's (from eq. 4: ‖ε̂ − ε‖² = SNR_t ‖x̂_0 − x_0‖²,
    /// ‖v̂ − v‖² = (SNR_t + 1) ‖x̂_0 − x_0‖²):
    ///
    ///     ε-prediction:   min(SNR_t, γ) / SNR_t
    ///     x_0-prediction: min(SNR_t, γ)
    ///     v-prediction:   min(SNR_t, γ) / (SNR_t + 1)
    ///
    /// So all three weigh the x̂_0 error alike. Not defined for x_{t−1}-prediction (a thrown error).
    /// Shapes: t of N → N weights. Fixtures: `objectives.h5 losses/min_snr/gamma_<γ>/weight/{eps,x0,v}`,
    /// `tables/min_snr_gamma_5/{eps,x0,v}`.
    public func minSNRWeights(_ t: [Int], gamma: Double) throws -> [Double] {
        guard gamma > 0 else { throw DDPMError(.invalidValue, "min-SNR γ: expected a positive number, got \(gamma)") }
        let snr = signalToNoiseRatio(t)
        switch meanType {
        case .epsilon: return snr.map { Swift.min($0, gamma) / $0 }
        case .startX: return snr.map { Swift.min($0, gamma) }
        case .velocity: return snr.map { Swift.min($0, gamma) / ($0 + 1) }
        case .previousX:
            throw DDPMError(.invalidConfiguration, "min-SNR-γ weighting: not defined for mean type 'xprev' (x_{t−1}-prediction); expected 'eps', 'x0' or 'v'")
        }
    }

    /// The configuration's weight of the regression term for each timestep (N): 1 for uniform weighting,
    /// ``minSNRWeights(_:gamma:)`` for min-SNR-γ.
    public func regressionWeights(_ t: [Int]) throws -> [Double] {
        switch configuration.weighting {
        case .uniform: return [Double](repeating: 1, count: t.count)
        case .minSNR(let gamma): return try minSNRWeights(t, gamma: gamma)
        }
    }
}
