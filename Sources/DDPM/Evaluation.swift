// The variational bound of a data set in bits per dimension (Ho et al. 2020, eq. 5 and Table 2), image by
// image, in batches: improved-diffusion's `calc_bpd_loop` over a data set.

import Diffusion
import Foundation

/// The bound of every image of a data set, and its per-step curve.
public struct BoundEvaluation: Sendable {
    /// The whole bound of each image, Σ_{t=0}^{T−1} L_t + L_T, in bits per dimension.
    public var perImage: [Double]
    /// The mean over images of the term at code step t (t = 0: the decoder −log p(x_0 | x_1); t ≥ 1: a KL).
    public var perStep: [Double]
    /// The mean over images of the prior term L_T = KL(q(x_T | x_0) ‖ 𝒩(0, I)).
    public var prior: Double

    /// The mean bound over images (bits/dim): the figure a data set is scored by.
    public var mean: Double { perImage.reduce(0, +) / Double(perImage.count) }

    /// The standard error of ``mean`` over images: s / √n with s the sample standard deviation (n − 1);
    /// 0 for one image. It covers both the spread between images and the Monte-Carlo noise of each term.
    public var standardError: Double {
        let n = Double(perImage.count)
        guard perImage.count > 1 else { return 0 }
        let m = mean
        return (perImage.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot() / n.squareRoot()
    }
}

public enum BoundEvaluator {
    /// The cost of ``evaluate(_:images:clip:seed:batchSize:onBatchStep:model:)``: one network evaluation per image and step t.
    public static func networkEvaluations(images: Int, timesteps: Int) -> Int { images * timesteps }

    /// The full bound of every image of `images` (N×C×H×W), by ``GaussianDiffusion/fullBound(start:clip:noise:model:)``
    /// on batches of at most `batchSize` images.
    ///
    /// The Monte-Carlo noise: image n (its index in `images`) has its own generator, seeded `seed + n`, which
    /// draws the C×H×W noise ε of x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for t = 0, 1, …, T − 1 in that order; one draw
    /// per term. An image's result therefore does not depend on the batch size or on the other images.
    /// `onBatchStep` is called after each of the T steps of each batch (progress); `model(x_t, t)` is the
    /// network's output (its channels as the diffusion's mean and variance types read them).
    public static func evaluate(_ diffusion: GaussianDiffusion, images: Tensor, clip: Bool, seed: UInt64, batchSize: Int = 32,
                                onBatchStep: () -> Void = {}, model: (Tensor, [Int]) throws -> Tensor) throws -> BoundEvaluation {
        precondition(images.rank == 4 && images.shape[0] > 0 && batchSize > 0, "BoundEvaluator.evaluate: images \(images.shape), batch size \(batchSize)")
        let n = images.shape[0], T = diffusion.timesteps, per = images.count / n
        var perImage: [Double] = [], perStep = [Double](repeating: 0, count: T), prior = 0.0
        var start = 0
        while start < n {
            let b = min(batchSize, n - start)
            let x0 = images.slice(axis: 0, start: start, length: b)
            var generators = (start..<(start + b)).map { RandomGenerator(seed: seed &+ UInt64($0)) }
            let result = try diffusion.fullBound(start: x0, clip: clip, noise: { _ in
                var values: [Double] = []; values.reserveCapacity(b * per)
                for k in 0..<b { values += generators[k].normals(per) }
                return Tensor(shape: x0.shape, data: values)
            }, model: { x, t in
                defer { onBatchStep() }
                return try model(x, t)
            })
            perImage += result.total
            for terms in result.terms { for t in 0..<T { perStep[t] += terms[t] } }
            prior += result.prior.reduce(0, +)
            start += b
        }
        return BoundEvaluation(perImage: perImage, perStep: perStep.map { $0 / Double(n) }, prior: prior / Double(n))
    }

    /// The bound of a trained model: its network in evaluation mode (no dropout), the configuration's
    /// diffusion and its x̂_0 clipping (`clipDenoised`, as the sampler uses it), with the weights the trainer
    /// holds now (call `useAveragedWeights()` first for the EMA).
    public static func evaluate(_ trainer: Trainer, images: Tensor, seed: UInt64, batchSize: Int = 32,
                                onBatchStep: () -> Void = {}) throws -> BoundEvaluation {
        let diffusion = try trainer.config.makeDiffusion()
        let net = trainer.network
        return try net.withMode(training: false) {
            try evaluate(diffusion, images: images, clip: trainer.config.diffusion.clipDenoised, seed: seed, batchSize: batchSize,
                         onBatchStep: onBatchStep) { x, t in net(x, t) }
        }
    }

    /// The same bound for the model whose output is all zeros (ε̂ = 0 for ε-prediction: it always predicts
    /// x̂_0 = x_t/√ᾱ_t): the reference figure a trained model should beat. No network is evaluated.
    public static func evaluateZeroOutput(_ config: ModelConfiguration, images: Tensor, seed: UInt64, batchSize: Int = 32) throws -> BoundEvaluation {
        let diffusion = try config.makeDiffusion()
        let channels = config.network.outputChannels
        return try evaluate(diffusion, images: images, clip: config.diffusion.clipDenoised, seed: seed, batchSize: batchSize) { x, _ in
            Tensor(shape: [x.shape[0], channels] + Array(x.shape.dropFirst(2)), data: [Double](repeating: 0, count: x.count / x.shape[1] * channels))
        }
    }
}
