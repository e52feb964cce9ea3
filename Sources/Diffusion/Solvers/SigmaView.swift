// ─── The σ view of the same model (Karras, Aittala, Aila & Laine 2022, Table 1 "VP" row; §2, App. C) ─────
//
// The trained VP diffusion x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, divided by √ᾱ_t, is x = x_0 + σ ε with
//
//     σ_t = √((1 − ᾱ_t)/ᾱ_t),   x = x_t / √ᾱ_t = x_t √(1 + σ²),   ᾱ = 1/(1 + σ²),   λ = −log σ
//
// (λ is the half log-SNR of Lu et al.: λ_t = log(α_t/σ_t) with α_t = √ᾱ_t, σ_t = √(1−ᾱ_t)). The probability-
// flow ODE in σ is dx/dσ = (x − D(x; σ))/σ = ε̂ (Karras eq. 3 with s = 1), where D(x; σ) = x̂_0 is the same
// network read as a denoiser. Every solver in this folder works on x and σ; the one reverse chain keeps the
// VP state x_t, so a solver step converts in (x = x_t √(1+σ_i²)) and out (x_t = x / √(1+σ_{i+1}²); x itself at
// σ = 0).
//
// Shapes: x, x_t, D, ε̂ and model outputs are N×C×H×W (any rank with the batch first); σ is one value for
// the whole batch (a solver's schedule).

import Foundation
import Tensors

/// The scalar conversions of the σ view, one function each.
public enum SigmaView {
    /// σ_t from ᾱ_t (Karras Table 1, VP: σ(t) = √(e^{½β_d t² + β_min t} − 1), which is √(1/ᾱ_t − 1)):
    ///
    ///     σ = √((1 − ᾱ)/ᾱ)
    public static func sigma(alphaBar a: Double) -> Double { ((1 - a) / a).squareRoot() }

    /// ᾱ from σ (the inverse of ``sigma(alphaBar:)``):  ᾱ = 1/(1 + σ²).
    public static func alphaBar(sigma s: Double) -> Double { 1 / (1 + s * s) }

    /// λ = −log σ, the half log-SNR log(α_t/σ_t) of Lu et al. 2022a (§3.1); +∞ at σ = 0.
    public static func lambda(sigma s: Double) -> Double { -Foundation.log(s) }

    /// σ from λ:  σ = e^{−λ}.
    public static func sigma(lambda l: Double) -> Double { Foundation.exp(-l) }

    /// The trained σ table, ascending in t:  σ_t = √((1 − ᾱ_t)/ᾱ_t) for t = 0 … T−1.
    public static func trainedSigmas(alphasCumprod: [Double]) -> [Double] { alphasCumprod.map { sigma(alphaBar: $0) } }

    /// x in the σ view from the VP state (Karras c_in = 1/√(σ² + 1) inverted):
    ///
    ///     x = x_t · √(1 + σ²)          (N×C×H×W)
    public static func scaled(vp xt: Tensor, sigma s: Double) -> Tensor { xt * (1 + s * s).squareRoot() }

    /// The VP state from x (Karras c_in):
    ///
    ///     x_t = x / √(1 + σ²)          (N×C×H×W; x itself at σ = 0)
    public static func vp(_ x: Tensor, sigma s: Double) -> Tensor { s == 0 ? x : x / (1 + s * s).squareRoot() }

    /// D(x; σ) and ε̂ from a network output F read by `meanType` — Karras Table 1 with σ_data = 1
    /// (D = c_skip·x + c_out·F) and x_t = x/√(1+σ²):
    ///
    ///     ε-prediction:  D = x − σ F,                                 ε̂ = F
    ///     x_0-prediction: D = F,                                      ε̂ = (x − F)/σ
    ///     v-prediction:  D = x/(1 + σ²) − σ F/√(1 + σ²),              ε̂ = σ x/(1 + σ²) + F/√(1 + σ²)
    ///
    /// (the v row is Salimans & Ho's x̂_0 = √ᾱ x_t − √(1−ᾱ) v̂, ε̂ = √(1−ᾱ) x_t + √ᾱ v̂ written in x and σ).
    /// x_{t−1}-prediction has no D at a single σ and is refused by ``NetworkDenoiser``.
    public static func denoised(modelOutput f: Tensor, x: Tensor, sigma s: Double, meanType: ModelMeanType) -> (denoised: Tensor, noise: Tensor) {
        switch meanType {
        case .epsilon: return (x - s * f, f)
        case .startX: return (f, (x - f) / s)
        case .velocity:
            let q = 1 + s * s, r = q.squareRoot()
            return (x / q - f * (s / r), x * (s / q) + f / r)
        case .previousX: preconditionFailure("SigmaView.denoised: x_{t−1}-prediction has no D(x; σ); output shape \(f.shape)")
        }
    }
}

/// How a σ that is not a trained σ is turned back into the network's timestep (each named after its source).
/// The network here takes integer timesteps, so a fractional t is rounded to the nearest integer (ties to
/// even); the rounded t is what ``ReverseChainStep/t`` records.
public enum SigmaToTimestep: String, Sendable, CaseIterable {
    /// The timestep of the nearest trained σ in log σ (k-diffusion `DiscreteSchedule.sigma_to_t(quantize=True)`).
    case nearest
    /// Linear interpolation in log σ between the two neighbouring trained σ (k-diffusion `sigma_to_t`,
    /// diffusers' `_sigma_to_t`), then rounded.
    case logLinear = "log-linear"
    /// Linear interpolation in σ (numpy `interp(σ, sigmas, arange(T))`), then rounded.
    case linear

    /// The fractional timestep of σ on the ascending trained table `sigmas` (σ_0 < … < σ_{T−1}), clamped to
    /// [0, T−1]. `.nearest` returns an integer.
    ///
    ///     nearest:     argmin_j |log σ − log σ_j|
    ///     log-linear:  j + w,  w = (log σ_j − log σ)/(log σ_j − log σ_{j+1}) clamped to [0, 1], j the last index with log σ_j ≤ log σ (≤ T−2)
    ///     linear:      j + (σ − σ_j)/(σ_{j+1} − σ_j),  σ_j ≤ σ < σ_{j+1}
    public func fractionalTimestep(sigma s: Double, trainedSigmas sigmas: [Double]) -> Double {
        let T = sigmas.count
        precondition(T >= 1, "SigmaToTimestep: an empty σ table")
        if T == 1 { return 0 }
        switch self {
        case .nearest:
            let ls = Foundation.log(s)
            var best = 0
            for j in 1..<T where abs(ls - Foundation.log(sigmas[j])) < abs(ls - Foundation.log(sigmas[best])) { best = j }
            return Double(best)
        case .logLinear:
            let ls = Foundation.log(s)
            let logs = sigmas.map { Foundation.log($0) }
            let low = min(max((logs.lastIndex(where: { ls >= $0 }) ?? 0), 0), T - 2)
            let w = min(max((logs[low] - ls) / (logs[low] - logs[low + 1]), 0), 1)
            return (1 - w) * Double(low) + w * Double(low + 1)
        case .linear:
            if s <= sigmas[0] { return 0 }
            if s >= sigmas[T - 1] { return Double(T - 1) }
            let j = sigmas.lastIndex(where: { s >= $0 })!
            return Double(j) + (s - sigmas[j]) / (sigmas[j + 1] - sigmas[j])
        }
    }

    /// The integer timestep the network is called with: ``fractionalTimestep(sigma:trainedSigmas:)`` rounded
    /// to the nearest integer, ties to even.
    public func timestep(sigma s: Double, trainedSigmas sigmas: [Double]) -> Int {
        Int(fractionalTimestep(sigma: s, trainedSigmas: sigmas).rounded(.toNearestOrEven))
    }

    /// σ at a fractional timestep t (the inverse direction; k-diffusion `t_to_sigma` for `.logLinear` and
    /// `.nearest`, numpy `interp(t, arange(T), sigmas)` for `.linear`):
    ///
    ///     log-linear:  log σ = (1 − w) log σ_⌊t⌋ + w log σ_⌈t⌉,  w = t − ⌊t⌋
    ///     linear:      σ = (1 − w) σ_⌊t⌋ + w σ_⌈t⌉
    public func sigma(timestep t: Double, trainedSigmas sigmas: [Double]) -> Double {
        let T = sigmas.count
        let c = min(max(t, 0), Double(T - 1))
        let lo = Int(c.rounded(.down)), hi = min(lo + 1, T - 1), w = c - Double(lo)
        switch self {
        case .nearest, .logLinear: return Foundation.exp((1 - w) * Foundation.log(sigmas[lo]) + w * Foundation.log(sigmas[hi]))
        case .linear: return (1 - w) * sigmas[lo] + w * sigmas[hi]
        }
    }
}

/// What a solver gets from one network evaluation at σ: D(x; σ) = x̂_0 and ε̂ = (x − D)/σ (N×C×H×W each).
public struct SigmaPrediction {
    public var denoised: Tensor
    public var noise: Tensor
    public init(denoised: Tensor, noise: Tensor) { self.denoised = denoised; self.noise = noise }
}

/// A model seen as a denoiser D(x; σ) in the σ view. Solvers call it once per network evaluation.
public protocol SigmaDenoiser {
    /// D(x; σ) and ε̂ at σ > 0 for the σ-view state x (N×C×H×W), with at most one call of `model`.
    func denoise(model: NoisePredictor, _ x: Tensor, sigma: Double) throws -> SigmaPrediction
    /// The network timestep σ maps to (recorded per chain step).
    func modelTimestep(sigma: Double) -> Int
}

/// The trained network as a denoiser: x_t = x/√(1 + σ²) (c_in), the network at the integer timestep of σ
/// by `timestepConvention`, then ``SigmaView/denoised(modelOutput:x:sigma:meanType:)`` with the continuous
/// σ of the schedule (k-diffusion's convention: the scalings use σ, only the network's t is rounded), and
/// x̂_0 processed by `thresholding` (ε̂ re-derived from the processed D, improved-diffusion's rule).
/// A schedule that names its own timesteps (``DiffusersSigmaSpacing``) passes them as `scheduleTimesteps`:
/// at exactly those σ the network is called at the schedule's t (rounded), as diffusers calls it at
/// `scheduler.timesteps`; every other σ (intermediate points, churned σ̂) goes through `timestepConvention`.
public struct NetworkDenoiser: SigmaDenoiser, Sendable {
    /// σ_t of the trained schedule, ascending in t.
    public let trainedSigmas: [Double]
    public let meanType: ModelMeanType
    public let timestepConvention: SigmaToTimestep
    public let thresholding: Thresholding
    public let dataRange: ClosedRange<Double>
    /// The timestep a schedule names for each of its σ (σ → t), used before `timestepConvention`.
    public let scheduleTimesteps: [Double: Double]

    /// Throws for x_{t−1}-prediction, for a trained table with ᾱ = 0 under ε-prediction, and an invalid thresholding.
    public init(diffusion: GaussianDiffusion, timestepConvention: SigmaToTimestep = .logLinear, thresholding: Thresholding? = nil,
                scheduleTimesteps: [(sigma: Double, timestep: Double)] = []) throws {
        guard diffusion.meanType != .previousX else {
            throw DDPMError(.invalidConfiguration, "σ-view solvers: mean type 'xprev' gives no D(x; σ); expected eps, x0 or v")
        }
        let t = thresholding ?? (diffusion.configuration.clipDenoised ? .clip : .unchanged)
        try t.validate()
        try TerminalSNR.requireRecoverableStart(meanType: diffusion.meanType, alphaBar: diffusion.tables.alphasCumprod)
        trainedSigmas = SigmaView.trainedSigmas(alphasCumprod: diffusion.tables.alphasCumprod)
        meanType = diffusion.meanType; self.timestepConvention = timestepConvention
        self.thresholding = t; dataRange = diffusion.dataRange
        self.scheduleTimesteps = Dictionary(scheduleTimesteps.map { ($0.sigma, $0.timestep) }, uniquingKeysWith: { a, _ in a })
    }

    public func modelTimestep(sigma: Double) -> Int {
        if let t = scheduleTimesteps[sigma] { return Int(t.rounded(.toNearestOrEven)) }
        return timestepConvention.timestep(sigma: sigma, trainedSigmas: trainedSigmas)
    }

    public func denoise(model: NoisePredictor, _ x: Tensor, sigma s: Double) throws -> SigmaPrediction {
        let n = x.shape[0]
        var out = model.predictNoise(SigmaView.vp(x, sigma: s), at: [Int](repeating: modelTimestep(sigma: s), count: n))
        if out.rank == x.rank, out.rank >= 2, out.shape[1] == 2 * x.shape[1] { out = out.split(into: 2, axis: 1)[0] }
        guard out.shape == x.shape else {
            throw DDPMError(.shapeMismatch, "σ-view denoiser: the model output has shape \(out.shape), expected \(x.shape)")
        }
        let (d, eps) = SigmaView.denoised(modelOutput: out, x: x, sigma: s, meanType: meanType)
        if thresholding == .unchanged { return SigmaPrediction(denoised: d, noise: eps) }
        let dt = thresholding.apply(d, range: dataRange)
        return SigmaPrediction(denoised: dt, noise: (x - dt) / s)
    }
}
