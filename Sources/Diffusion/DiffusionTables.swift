// ─── Derived tables: every per-timestep quantity, computed once in float64, named after its formula ──

import Errors

import Foundation

/// All per-timestep constants of a schedule (Ho et al.'s `diffusion_utils_2.py` names).
/// Index t = 0 … T−1. `ᾱ_{−1} := 1`.
public struct DiffusionTables: Sendable, Equatable {
    /// β_t
    public let betas: [Double]
    /// α_t = 1 − β_t
    public let alphas: [Double]
    /// ᾱ_t = Π_{s ≤ t} α_s
    public let alphasCumprod: [Double]
    /// ᾱ_{t−1}, with ᾱ_{−1} = 1
    public let alphasCumprodPrev: [Double]
    /// √ᾱ_t
    public let sqrtAlphasCumprod: [Double]
    /// √(1 − ᾱ_t)
    public let sqrtOneMinusAlphasCumprod: [Double]
    /// log(1 − ᾱ_t)
    public let logOneMinusAlphasCumprod: [Double]
    /// √(1/ᾱ_t)
    public let sqrtRecipAlphasCumprod: [Double]
    /// √(1/ᾱ_t − 1)
    public let sqrtRecipm1AlphasCumprod: [Double]
    /// β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)  (eq. 7); exactly 0 at t = 0.
    public let posteriorVariance: [Double]
    /// log β̃_t with the t = 0 entry (log 0) replaced by the t = 1 value; when T = 1 there is no
    /// t = 1 value and the entry stays log 0 = −∞.
    public let posteriorLogVarianceClipped: [Double]
    /// √ᾱ_{t−1} β_t / (1 − ᾱ_t), the coefficient of x_0 in μ̃_t (eq. 7).
    public let posteriorMeanCoef1: [Double]
    /// √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the coefficient of x_t in μ̃_t (eq. 7).
    public let posteriorMeanCoef2: [Double]

    public var timesteps: Int { betas.count }

    /// Derives every table from β. Throws if T < 1 or a β lies outside (0, 1].
    public init(betas: [Double]) throws {
        guard !betas.isEmpty else { throw DDPMError(.invalidValue, "schedule: timesteps must be at least 1, got 0") }
        if let (t, b) = betas.enumerated().first(where: { !($0.element > 0 && $0.element <= 1) }) {
            throw DDPMError(.invalidValue, "schedule: β at t = \(t) is \(b), expected a value in (0, 1]")
        }
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        var product = 1.0
        alphasCumprod = alphas.map { product *= $0; return product }
        alphasCumprodPrev = [1] + alphasCumprod.dropLast()
        sqrtAlphasCumprod = alphasCumprod.map { $0.squareRoot() }
        sqrtOneMinusAlphasCumprod = alphasCumprod.map { (1 - $0).squareRoot() }
        logOneMinusAlphasCumprod = alphasCumprod.map { Foundation.log(1 - $0) }
        sqrtRecipAlphasCumprod = alphasCumprod.map { (1 / $0).squareRoot() }
        sqrtRecipm1AlphasCumprod = alphasCumprod.map { (1 / $0 - 1).squareRoot() }
        let (b, ac, acPrev, a) = (betas, alphasCumprod, alphasCumprodPrev, alphas)
        posteriorVariance = b.indices.map { b[$0] * (1 - acPrev[$0]) / (1 - ac[$0]) }
        let logv = posteriorVariance.map { Foundation.log($0) }
        posteriorLogVarianceClipped = b.count >= 2 ? [logv[1]] + logv.dropFirst() : logv
        posteriorMeanCoef1 = b.indices.map { b[$0] * acPrev[$0].squareRoot() / (1 - ac[$0]) }
        posteriorMeanCoef2 = b.indices.map { (1 - acPrev[$0]) * a[$0].squareRoot() / (1 - ac[$0]) }
    }

    /// The tables of a named schedule over T steps.
    public init(schedule: BetaSchedule, timesteps T: Int) throws {
        try self.init(betas: schedule.betas(timesteps: T))
    }

    /// Every table by its snake_case name (as in the fixtures and Ho et al.'s code).
    public var byName: [(String, [Double])] {
        [("betas", betas), ("alphas", alphas), ("alphas_cumprod", alphasCumprod), ("alphas_cumprod_prev", alphasCumprodPrev),
         ("sqrt_alphas_cumprod", sqrtAlphasCumprod), ("sqrt_one_minus_alphas_cumprod", sqrtOneMinusAlphasCumprod),
         ("log_one_minus_alphas_cumprod", logOneMinusAlphasCumprod), ("sqrt_recip_alphas_cumprod", sqrtRecipAlphasCumprod),
         ("sqrt_recipm1_alphas_cumprod", sqrtRecipm1AlphasCumprod), ("posterior_variance", posteriorVariance),
         ("posterior_log_variance_clipped", posteriorLogVarianceClipped), ("posterior_mean_coef1", posteriorMeanCoef1),
         ("posterior_mean_coef2", posteriorMeanCoef2)]
    }
}
