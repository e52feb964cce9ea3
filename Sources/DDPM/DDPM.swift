// The seed's public API: `DDPM(model:imageSize:channels:timesteps:diffuser:clipDenoised:)`,
// `loss = ddpm(x)`, `loss.backward()`, `ddpm.sample(batchSize:)`.

@_exported import Diffusion
@_exported import HDF5
@_exported import Tensors
@_exported import UNet

extension UNet: NoisePredictor {
    public func predictNoise(_ x: Tensor, timesteps t: [Int]) -> Tensor { self(x, t) }
}

/// A denoising diffusion probabilistic model: a noise predictor and a diffuser, wired as the seed wires them.
public final class DDPM {
    public let model: NoisePredictor
    public let diffuser: Diffuser
    public let imageSize: Int, channels: Int, timesteps: Int
    public let clipDenoised: Bool
    /// The generator behind timesteps, noise and sampling; pass a seed for reproducible results.
    public var generator: RandomGenerator

    /// - Parameters:
    ///   - model: ε_θ(x_t, t); the seed's U-Net (``UNetConfiguration/seed(channels:)`` at `imageSize`) when nil.
    ///   - diffuser: the diffusion process; a ``GaussianDiffuser`` with the linear schedule over `timesteps` when nil.
    ///   - dataRange: [0, 1] by default (the seed's convention); clipping follows it. Used only when `diffuser` is nil.
    public init(model: NoisePredictor? = nil, imageSize: Int = 32, channels: Int = 3, timesteps: Int = 1000,
                diffuser: Diffuser? = nil, clipDenoised: Bool = true, dataRange: ClosedRange<Double> = 0...1, seed: UInt64 = 0) throws {
        guard imageSize > 0 else { throw DDPMError(.invalidValue, "image size: expected a positive number, got \(imageSize)") }
        guard channels > 0 else { throw DDPMError(.invalidValue, "channels: expected a positive number, got \(channels)") }
        guard timesteps > 0 else { throw DDPMError(.invalidValue, "timesteps: expected a positive number, got \(timesteps)") }
        if let diffuser, diffuser.timesteps != timesteps {
            throw DDPMError(.invalidConfiguration, "diffuser: has \(diffuser.timesteps) timesteps, expected \(timesteps)")
        }
        if let model { self.model = model } else {
            var c = UNetConfiguration.seed(channels: channels)
            c.imageSize = imageSize
            self.model = try UNet(c, seed: seed)
        }
        self.diffuser = try diffuser ?? GaussianDiffuser(timesteps: timesteps, dataRange: dataRange)
        self.imageSize = imageSize; self.channels = channels; self.timesteps = timesteps
        self.clipDenoised = clipDenoised
        generator = RandomGenerator(seed: seed)
    }

    /// Throws unless `x` is N × channels × imageSize × imageSize with N ≥ 1.
    public func validateBatch(_ x: Tensor) throws {
        guard x.rank == 4, x.shape[0] > 0, x.shape[1] == channels, x.shape[2] == imageSize, x.shape[3] == imageSize else {
            throw DDPMError(.shapeMismatch, "batch of shape \(x.shape): expected [N, \(channels), \(imageSize), \(imageSize)] with N ≥ 1")
        }
    }

    /// The training loss for a batch with given timesteps and noise (deterministic):
    /// L_simple = mean (ε − ε_θ(x_t, t))² with x_t = √ᾱ_t x + √(1 − ᾱ_t) ε; or, when the diffuser is a
    /// ``GaussianDiffuser`` whose loss type is `.kl`, the mean of the bound terms L_t in bits/dim (x̂_0 not clipped,
    /// so that the gradient never meets the clamp).
    public func loss(_ x: Tensor, timesteps t: [Int], noise: Tensor) throws -> Tensor {
        try validateBatch(x)
        guard noise.shape == x.shape else { throw DDPMError(.shapeMismatch, "noise of shape \(noise.shape): expected the batch's shape \(x.shape)") }
        let xt = try diffuser.addNoise(x, timesteps: t, noise: noise)
        let out = model.predictNoise(xt, timesteps: t)
        if let g = diffuser as? GaussianDiffuser, g.diffusion.lossType == .kl {
            return try g.diffusion.variationalBoundTerms(modelOutput: out, start: x, noisy: xt, t: t, clip: false).terms.mean()
        }
        return Tensor.meanSquaredError(out, noise)
    }

    /// `loss = ddpm(x)`: draws t uniformly and ε ~ 𝒩(0, I) from ``generator`` (t first, then ε), and
    /// returns the scalar loss whose `backward()` fills the model's gradients.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try validateBatch(x)
        let t = diffuser.sampleTimesteps(batchSize: x.shape[0], generator: &generator)
        let noise = Tensor.randomNormal(x.shape, generator: &generator)
        return try loss(x, timesteps: t, noise: noise)
    }

    /// The full reverse chain from x_T ~ 𝒩(0, I) through `diffuser.denoise` for t = T−1 … 0, with the model in
    /// evaluation mode and no graph recorded. `onStep(t, x_t)` sees every intermediate (t = −1 for x_0).
    public func sample(batchSize: Int, onStep: ((Int, Tensor) -> Void)? = nil) throws -> Tensor {
        guard batchSize > 0 else { throw DDPMError(.invalidValue, "batch size: expected a positive number, got \(batchSize)") }
        let wasTraining = model.isTraining
        model.isTraining = false
        defer { model.isTraining = wasTraining }
        return try withoutGradients {
            var x = Tensor.randomNormal([batchSize, channels, imageSize, imageSize], generator: &generator)
            for step in stride(from: timesteps - 1, through: 0, by: -1) {
                onStep?(step, x)
                x = try diffuser.denoise(model: model, x, timesteps: [Int](repeating: step, count: batchSize),
                                         clipDenoised: clipDenoised, generator: &generator)
            }
            onStep?(-1, x)
            return x
        }
    }
}
