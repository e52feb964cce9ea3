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
}

/// The training objective.
public enum LossType: String, Sendable, CaseIterable, Codable {
    /// L_simple (Ho et al. eq. 14): mean squared error to the target the mean type implies.
    case simple
    /// The bound terms L_t (Ho et al. eq. 5) in bits per dimension.
    case kl
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
    /// The range of the data: [0, 1] by default (the seed's convention) or [−1, 1] (the paper's).
    /// Clipping of x̂_0 and the decoder's 256 bins follow it.
    public var dataRange: ClosedRange<Double>
    /// Whether sampling clamps x̂_0 to ``dataRange`` (Ho et al.'s code; not part of Algorithm 2).
    public var clipDenoised: Bool

    public init(schedule: BetaSchedule = .default, timesteps: Int = 1000, meanType: ModelMeanType = .epsilon,
                varianceType: ModelVarianceType = .fixedSmall, lossType: LossType = .simple,
                dataRange: ClosedRange<Double> = 0...1, clipDenoised: Bool = true) {
        self.schedule = schedule; self.timesteps = timesteps; self.meanType = meanType
        self.varianceType = varianceType; self.lossType = lossType; self.dataRange = dataRange; self.clipDenoised = clipDenoised
    }

    /// Throws unless the diffusion can be built: T ≥ 1, every β in (0, 1], a finite data range with
    /// min < max, and T ≥ 2 for the fixed-large variance (β̃_1 stands in at t = 0).
    public func validate() throws {
        _ = try schedule.betas(timesteps: timesteps)
        try Self.validate(dataRange: dataRange)
        if varianceType == .fixedLarge && timesteps < 2 {
            throw DDPMError(.invalidConfiguration, "variance type 'large': needs at least 2 timesteps (β̃_1 stands in at t = 0), got \(timesteps)")
        }
    }

    static func validate(dataRange: ClosedRange<Double>) throws {
        guard dataRange.lowerBound < dataRange.upperBound, dataRange.lowerBound.isFinite, dataRange.upperBound.isFinite else {
            throw DDPMError(.invalidConfiguration, "data range: expected finite bounds with min < max, got \(dataRange)")
        }
    }
}
