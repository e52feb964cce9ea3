// ─── Everything a Gaussian diffusion is, as one typed value ──────────────────────────────────────────
//
// Checkpoints and golden files store this value whole (`/config`, golden schema version 2), so a model
// trained with one parameterisation is always sampled with it.

import Errors

/// What the network's output means (Ho et al. §3.2; the seed predicts ε).
public enum ModelMeanType: String, Sendable, CaseIterable, Codable {
    /// ε̂: the noise that was added (Ho et al. eq. 11; the seed's and our default).
    case epsilon = "eps"
    /// x̂_0: the clean image.
    case startX = "x0"
    /// μ_θ: the mean of x_{t−1} directly (Ho et al. §3.2's first option).
    case previousX = "xprev"
    /// v̂ = √ᾱ_t ε − √(1−ᾱ_t) x_0, the "velocity" (Salimans & Ho 2022, §4 and App. D).
    case velocity = "v"
}

/// Which fixed variance Σ_θ(x_t, t) = σ_t² I the reverse process uses (Ho et al. §3.2).
public enum ModelVarianceType: String, Sendable, CaseIterable, Codable {
    /// σ_t² = β̃_t, the posterior variance (the seed's choice and our default); log clipped at t = 0.
    case fixedSmall = "small"
    /// σ_t² = β_t, except at t = 0 where β̃_1 stands in for both σ_0² and log σ_0². This is
    /// improved-diffusion's convention (Nichol & Dhariwal's code). Ho et al.'s own code swaps β̃_1 into
    /// the log only and keeps σ_0² = β_0; the two agree on every result this library computes, because
    /// no noise is added at t = 0 and the decoder L_0 reads only log σ_0².
    case fixedLarge = "large"
    /// log σ² is the network's own output (its second C channels; Ho et al.'s code offers it, Nichol &
    /// Dhariwal §3.1 found it unstable): σ² = exp(output), per element.
    case learned = "learned"
    /// log σ² = v log β_t + (1 − v) log β̃_t (Nichol & Dhariwal 2021 eq. 15) with v = (output + 1)/2, the map
    /// improved-diffusion applies to the network's second C channels (the paper's v is the raw output).
    /// log β̃_t is the clipped posterior log-variance, so at t = 0 the −1 end is log β̃_1 and the +1 end log β_0.
    case learnedRange = "learned-range"

    /// Whether the network predicts the variance (and so outputs 2C channels, the mean part first).
    public var isLearned: Bool { self == .learned || self == .learnedRange }
}

/// The training objective.
public enum LossType: String, Sendable, CaseIterable, Codable {
    /// L_simple (Ho et al. eq. 14): mean squared error to the target the mean type implies.
    case simple
    /// The bound terms L_t (Ho et al. eq. 5) in bits per dimension.
    case kl
    /// The bound terms × T (improved-diffusion's RESCALED_KL: the scale of L_vlb = Σ_t L_t).
    case rescaledKL = "rescaled-kl"
    /// L_simple + λ L_vlb (Nichol & Dhariwal §3.1), λ = 0.001, as improved-diffusion computes it:
    /// the per-step L_t in bits/dim with the mean frozen (no gradient reaches the mean output), × T/1000.
    /// Needs a learned variance.
    case hybrid

    /// Whether the loss contains the bound term L_t.
    public var usesBound: Bool { self != .simple }
    /// Whether the loss contains the regression (L_simple) term.
    public var usesRegression: Bool { self == .simple || self == .hybrid }
}

/// A per-timestep weight on the regression (L_simple) term.
public enum LossWeighting: Sendable, Equatable {
    /// Every timestep weighs 1 (Ho et al. eq. 14).
    case uniform
    /// Min-SNR-γ (Hang et al. 2023): the x_0-space weight min(SNR_t, γ), expressed for the target the
    /// mean type regresses (``GaussianDiffusion/minSNRWeights(t:gamma:)``). γ = 5 in the paper.
    case minSNR(gamma: Double)

    /// The name stored in `/config` (attribute `loss_weighting`).
    public var name: String {
        switch self { case .uniform: "uniform"; case .minSNR: "min-snr" }
    }
}

/// A Gaussian diffusion process: the schedule with its parameters, how the network's output is read,
/// the objective, and the data's range.
public struct DiffusionConfiguration: Sendable, Equatable {
    /// β_0 … β_{T−1} as a value with all its parameters.
    public var schedule: BetaSchedule
    /// T, the number of diffusion steps (t = 0 … T−1 in the code; 1 … T in the paper).
    public var timesteps: Int
    public var meanType: ModelMeanType
    public var varianceType: ModelVarianceType
    public var lossType: LossType
    /// The weight of the regression term per timestep (uniform unless min-SNR-γ).
    public var weighting: LossWeighting
    /// The range of the data: [0, 1] by default (the seed's convention) or [−1, 1] (the paper's).
    /// Clipping of x̂_0 and the decoder's 256 bins follow it.
    public var dataRange: ClosedRange<Double>
    /// Whether sampling clamps x̂_0 to ``dataRange`` (Ho et al.'s code; not part of Algorithm 2).
    public var clipDenoised: Bool

    public init(schedule: BetaSchedule = .default, timesteps: Int = 1000, meanType: ModelMeanType = .epsilon,
                varianceType: ModelVarianceType = .fixedSmall, lossType: LossType = .simple, weighting: LossWeighting = .uniform,
                dataRange: ClosedRange<Double> = 0...1, clipDenoised: Bool = true) {
        self.schedule = schedule; self.timesteps = timesteps; self.meanType = meanType; self.weighting = weighting
        self.varianceType = varianceType; self.lossType = lossType; self.dataRange = dataRange; self.clipDenoised = clipDenoised
    }

    /// Throws unless the diffusion can be built: T ≥ 1, every β in (0, 1], a finite data range with
    /// min < max, T ≥ 2 for the fixed-large and learned-range variances (β̃_1 stands in at t = 0), and a
    /// consistent objective: a learned variance needs a loss with the bound term (L_simple gives it no
    /// gradient), the hybrid loss needs a learned variance (with a fixed one its bound term has no
    /// gradient), min-SNR-γ needs a regression term, a target it is defined for (not x_{t−1}) and γ > 0.
    public func validate() throws {
        _ = try schedule.betas(timesteps: timesteps)
        try Self.validate(dataRange: dataRange)
        if (varianceType == .fixedLarge || varianceType == .learnedRange) && timesteps < 2 {
            throw DDPMError(.invalidConfiguration, "variance type '\(varianceType.rawValue)': needs at least 2 timesteps (β̃_1 stands in at t = 0), got \(timesteps)")
        }
        if varianceType.isLearned && lossType == .simple {
            throw DDPMError(.invalidConfiguration, "variance type '\(varianceType.rawValue)' with loss 'simple': the simple loss gives a learned variance no gradient; expected loss 'hybrid', 'kl' or 'rescaled-kl'")
        }
        if lossType == .hybrid && !varianceType.isLearned {
            throw DDPMError(.invalidConfiguration, "loss 'hybrid' with variance type '\(varianceType.rawValue)': the hybrid loss's bound term trains only a learned variance; expected variance type 'learned' or 'learned-range'")
        }
        if case .minSNR(let gamma) = weighting {
            guard gamma > 0, gamma.isFinite else {
                throw DDPMError(.invalidConfiguration, "min-SNR γ: expected a positive finite number, got \(gamma)")
            }
            guard meanType != .previousX else {
                throw DDPMError(.invalidConfiguration, "min-SNR-γ weighting with mean type 'xprev': not defined for x_{t−1}-prediction; expected mean type 'eps', 'x0' or 'v'")
            }
            guard lossType.usesRegression else {
                throw DDPMError(.invalidConfiguration, "min-SNR-γ weighting with loss '\(lossType.rawValue)': it weights the simple term, which this loss does not have; expected loss 'simple' or 'hybrid'")
            }
        }
    }

    static func validate(dataRange: ClosedRange<Double>) throws {
        guard dataRange.lowerBound < dataRange.upperBound, dataRange.lowerBound.isFinite, dataRange.upperBound.isFinite else {
            throw DDPMError(.invalidConfiguration, "data range: expected finite bounds with min < max, got \(dataRange)")
        }
    }
}
