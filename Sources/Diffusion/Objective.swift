// ─── The training objective, beside the equations (Ho et al.'s `training_losses`) ─────────────────────

import Foundation
import Tensors

/// The per-sample terms of the training objective for one batch (each N).
public struct TrainingTerms {
    /// Mean squared error between the model output and ``GaussianDiffusion/regressionTarget(start:noisy:t:noise:)``,
    /// averaged over C·H·W (Ho et al. eq. 14 for ε-prediction).
    public var regression: Tensor
    /// The bound term L_t in bits per dimension (``GaussianDiffusion/variationalBoundTerms(modelOutput:start:noisy:t:clip:)``);
    /// nil when the loss type does not use it.
    public var bound: Tensor?
    /// What the loss type minimises: `regression` for `.simple`, `bound` for `.kl`.
    public var total: Tensor
}

extension GaussianDiffusion {
    /// The regression target the mean type implies (what the network is trained to output):
    ///
    ///     ε-prediction:       ε                                   (Ho et al. eq. 14)
    ///     x_0-prediction:     x_0
    ///     x_{t−1}-prediction: μ̃_t(x_t, x_0) = coef1_t x_0 + coef2_t x_t   (eq. 7)
    ///
    /// Shapes: all N×C×H×W.
    public func regressionTarget(start x0: Tensor, noisy xt: Tensor, t: [Int], noise eps: Tensor) throws -> Tensor {
        try checkBatch(x0, t, "regressionTarget", ("x_t", xt), ("the noise", eps))
        switch meanType {
        case .epsilon: return eps
        case .startX: return x0
        case .previousX: return try qPosteriorMeanVariance(start: x0, noisy: xt, t: t).mean
        }
    }

    /// The per-sample training terms for a batch whose x_t was drawn with noise ε (Ho et al. Algorithm 1,
    /// line 5, generalised over the mean and loss types as in their `training_losses`):
    ///
    ///     regression_n = mean over C·H·W of (target − output)²            (target: ``regressionTarget(start:noisy:t:noise:)``)
    ///     bound_n      = L_t in bits/dim, x̂_0 not clipped (so the gradient never meets the clamp)
    ///     total_n      = regression_n (simple) or bound_n (kl)
    ///
    /// Shapes: output, x_0, x_t, ε N×C×H×W; every term N. The batch loss is `total.mean()`.
    public func trainingLosses(modelOutput out: Tensor, start x0: Tensor, noisy xt: Tensor, t: [Int], noise eps: Tensor) throws -> TrainingTerms {
        try checkBatch(x0, t, "trainingLosses", ("x_t", xt), ("the noise", eps), ("the model output", out))
        let target = try regressionTarget(start: x0, noisy: xt, t: t, noise: eps)
        let regression = Self.meanFlat((out - target).square())
        switch lossType {
        case .simple:
            return TrainingTerms(regression: regression, bound: nil, total: regression)
        case .kl:
            let bound = try variationalBoundTerms(modelOutput: out, start: x0, noisy: xt, t: t, clip: false).terms
            return TrainingTerms(regression: regression, bound: bound, total: bound)
        }
    }

    /// L_simple (Ho et al. eq. 14) for ε-prediction: `E ‖ε − ε_θ(x_t, t)‖²`, the mean over every element
    /// of the batch (as the seed's MSE). Shapes: both N×C×H×W; result a scalar. Equal to
    /// `trainingLosses(…).total.mean()` for ε-prediction with the simple loss.
    public func simpleLoss(predictedNoise: Tensor, noise: Tensor) -> Tensor {
        Tensor.meanSquaredError(predictedNoise, noise)
    }
}
