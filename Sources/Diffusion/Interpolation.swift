// ─── Latent interpolation (Song et al. 2021 §5.3) and encoding by inversion (§5.4) ──────────────────────

import Foundation
import Tensors

public enum Interpolation {
    /// Spherical interpolation between two latents (Song et al. §5.3), per sample n over all C·H·W values:
    ///
    ///     θ_n = arccos(clamp(⟨z0_n, z1_n⟩ / (|z0_n| |z1_n|), −1, 1))
    ///     slerp(z0, z1; α) = sin((1 − α) θ)/sin θ · z0 + sin(α θ)/sin θ · z1        (N×C×H×W)
    ///
    /// α = 0 gives z0 exactly. Returns the interpolant and θ (N). Throws for different shapes or parallel
    /// latents (θ = 0, where the formula is 0/0).
    public static func slerp(_ z0: Tensor, _ z1: Tensor, alpha: Double) throws -> (value: Tensor, theta: [Double]) {
        guard z0.shape == z1.shape, z0.rank >= 1, z0.shape[0] > 0 else {
            throw DDPMError(.shapeMismatch, "slerp: latents have shapes \(z0.shape) and \(z1.shape), expected the same shape with a batch axis")
        }
        let n = z0.shape[0], per = z0.count / n
        var theta: [Double] = []
        for b in 0..<n {
            var dot = 0.0, na = 0.0, nb = 0.0
            for i in b * per ..< (b + 1) * per { dot += z0.data[i] * z1.data[i]; na += z0.data[i] * z0.data[i]; nb += z1.data[i] * z1.data[i] }
            let th = Foundation.acos(min(max(dot / (na.squareRoot() * nb.squareRoot()), -1), 1))
            guard th > 0 else { throw DDPMError(.invalidValue, "slerp: sample \(b)'s latents are parallel (angle 0); interpolate linearly instead") }
            theta.append(th)
        }
        let w0 = theta.map { Foundation.sin((1 - alpha) * $0) / Foundation.sin($0) }
        let w1 = theta.map { Foundation.sin(alpha * $0) / Foundation.sin($0) }
        let value = GaussianDiffusion.broadcastPerSample(w0, rank: z0.rank) * z0 + GaussianDiffusion.broadcastPerSample(w1, rank: z0.rank) * z1
        return (value, theta)
    }

    /// Encodes images into DDIM latents (§5.4) by deterministic inversion over `diffusion`'s chain
    /// (``DDIMInversion``: the image is the state at index 0; N − 1 steps).
    public static func encode(_ images: Tensor, model: NoisePredictor, diffusion: SpacedDiffusion,
                              onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        var unused = RandomGenerator(seed: 0)
        return try runReverseChain(model: model, from: images, sampler: DDIMInversion(diffusion), generator: &unused, onStep: onStep)
    }

    /// Decodes latents (the state at index N − 1) by DDIM η = 0 generation over `diffusion`'s chain.
    public static func decode(_ latents: Tensor, model: NoisePredictor, diffusion: SpacedDiffusion,
                              rederivation: NoiseRederivation = .rederive) throws -> Tensor {
        var unused = RandomGenerator(seed: 0)
        return try runReverseChain(model: model, from: latents, sampler: DDIMSampler(diffusion, eta: 0, rederivation: rederivation), generator: &unused)
    }

    /// The latents of a strip between two latents (each 1×C×H×W or N×C×H×W): slerp at α = 0, 1/(count−1), …, 1,
    /// concatenated along the batch axis (count·N × C×H×W).
    public static func strip(from z0: Tensor, to z1: Tensor, count: Int) throws -> Tensor {
        guard count >= 2 else { throw DDPMError(.invalidValue, "interpolation strip: expected at least 2 frames, got \(count)") }
        return Tensor.concatenate(try (0..<count).map { try slerp(z0, z1, alpha: Double($0) / Double(count - 1)).value }, axis: 0)
    }
}
