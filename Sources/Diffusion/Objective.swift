// ─── The training objective, beside the equations (Ho et al.'s `training_losses`) ─────────────────────

import Foundation
import Tensors

/// The per-sample terms of the training objective for one batch (each N).
public struct TrainingTerms {
    /// Mean squared error between the model output's mean part and ``GaussianDiffusion/regressionTarget(start:noisy:t:noise:)``,
    /// averaged over C·H·W (Ho et al. eq. 14 for ε-prediction), before any weighting.
    public var regression: Tensor
    /// The weight of each sample's regression term (min-SNR-γ); nil when every weight is 1.
    public var weight: Tensor?
    /// The bound term L_t in bits per dimension (``GaussianDiffusion/variationalBoundTerms(modelOutput:start:noisy:t:clip:)``,
    /// with the mean part frozen for the hybrid loss); nil when the loss type does not use it.
    public var bound: Tensor?
    /// The bound term as it enters the total: L_t (kl), T·L_t (rescaled-kl), (T/1000)·L_t (hybrid); nil without a bound.
    public var boundTerm: Tensor?
    /// What the loss type minimises per sample: weight·regression (simple), boundTerm (kl, rescaled-kl),
    /// weight·regression + boundTerm (hybrid).
    public var total: Tensor
}

extension GaussianDiffusion {
    /// The regression target the mean type implies (what the network's mean part is trained to output):
    ///
    ///     ε-prediction:       ε                                              (Ho et al. eq. 14)
    ///     x_0-prediction:     x_0
    ///     x_{t−1}-prediction: μ̃_t(x_t, x_0) = coef1_t x_0 + coef2_t x_t          (eq. 7, §3.2)
    ///     v-prediction:       v = √ᾱ_t ε − √(1−ᾱ_t) x_0                        (Salimans & Ho 2022 §4)
    ///
    /// Shapes: all N×C×H×W. Fixtures: `objectives.h5 targets/{eps,x0,xprev,v}`.
    public func regressionTarget(start x0: Tensor, noisy xt: Tensor, t: [Int], noise eps: Tensor) throws -> Tensor {
        try checkBatch(x0, t, "regressionTarget", ("x_t", xt), ("the noise", eps))
        switch meanType {
        case .epsilon: return eps
        case .startX: return x0
        case .previousX: return try qPosteriorMeanVariance(start: x0, noisy: xt, t: t).mean
        case .velocity: return try velocity(start: x0, noise: eps, t: t)
        }
    }

    /// The scale of the bound term in the total: 1 (kl), T (rescaled-kl, improved-diffusion's RESCALED_KL),
    /// T/1000 (hybrid: λ L_vlb with λ = 0.001 and L_vlb ≈ T·L_t for a uniform t, Nichol & Dhariwal §3.1);
    /// nil for the simple loss.
    public var boundScale: Double? {
        switch lossType {
        case .simple: return nil
        case .kl: return 1
        case .rescaledKL: return Double(timesteps)
        case .hybrid: return Double(timesteps) / 1000
        }
    }

    /// The per-sample training terms for a batch whose x_t was drawn with noise ε (Ho et al. Algorithm 1,
    /// line 5, generalised over the mean, variance and loss types as in improved-diffusion's `training_losses`):
    ///
    ///     regression_n = mean over C·H·W of (target − mean part of the output)²   (Ho eq. 14 and analogues)
    ///     weight_n     = min-SNR-γ weight of t_n (Hang et al. 2023), or 1
    ///     bound_n      = L_t in bits/dim, x̂_0 not clipped (so the gradient never meets the clamp);
    ///                    for the hybrid loss from [stop-gradient(mean part), variance part]
    ///     total_n      = weight_n·regression_n                        (simple)
    ///                  = bound_n, T·bound_n                           (kl, rescaled-kl)
    ///                  = weight_n·regression_n + (T/1000)·bound_n     (hybrid, Nichol & Dhariwal §3.1)
    ///
    /// In the hybrid loss no gradient of the bound term reaches the mean part: the mean is trained by the
    /// regression alone, the variance by the bound alone. Shapes: x_0, x_t, ε N×C×H×W; the output N×C×H×W
    /// or N×2C×H×W (learned variance, mean part first); every term N. The batch loss is `total.mean()`.
    /// Fixtures: `objectives.h5 losses/{simple,vb,hybrid,min_snr}/…` and `T20/losses/…`.
    public func trainingLosses(modelOutput out: Tensor, start x0: Tensor, noisy xt: Tensor, t: [Int], noise eps: Tensor) throws -> TrainingTerms {
        try checkBatch(x0, t, "trainingLosses", ("x_t", xt), ("the noise", eps))
        let (meanOut, varianceOut) = try splitOutput(out, noisy: xt, "trainingLosses")
        let target = try regressionTarget(start: x0, noisy: xt, t: t, noise: eps)
        let regression = Self.meanFlat((meanOut - target).square())
        var weight: Tensor? = nil
        if case .minSNR = configuration.weighting { weight = Tensor(shape: [t.count], data: try regressionWeights(t)) }
        let weighted = weight.map { $0 * regression } ?? regression
        guard let scale = boundScale else {
            return TrainingTerms(regression: regression, weight: weight, bound: nil, boundTerm: nil, total: weighted)
        }
        // The hybrid loss freezes the mean part (improved-diffusion: th.cat([mean.detach(), var], dim=1)).
        let boundInput = lossType == .hybrid && varianceOut != nil ? Tensor.concatenate([meanOut.detached(), varianceOut!], axis: 1) : out
        let bound = try variationalBoundTerms(modelOutput: boundInput, start: x0, noisy: xt, t: t, clip: false).terms
        let boundTerm = scale == 1 ? bound : bound * scale
        let total = lossType == .hybrid ? weighted + boundTerm : boundTerm
        return TrainingTerms(regression: regression, weight: weight, bound: bound, boundTerm: boundTerm, total: total)
    }

    /// L_simple (Ho et al. eq. 14) for ε-prediction: `E ‖ε − ε_θ(x_t, t)‖²`, the mean over every element
    /// of the batch (as the seed's MSE). Shapes: both N×C×H×W; result a scalar. Equal to
    /// `trainingLosses(…).total.mean()` for ε-prediction with the simple loss.
    public func simpleLoss(predictedNoise: Tensor, noise: Tensor) -> Tensor {
        Tensor.meanSquaredError(predictedNoise, noise)
    }
}
