// The seed's public API: `DDPM(model:imageSize:channels:timesteps:diffuser:clipDenoised:)`,
// `loss = ddpm(x)`, `loss.backward()`, `ddpm.sample(batchSize:)`; and entry points from a network
// configuration or a preset (`DDPM(preset: .demo)`). This file only wires parts together:
// the objective and the reverse chain live beside the equations (Sources/Diffusion).

@_exported import Diffusion
@_exported import HDF5
@_exported import Tensors
@_exported import TensorIO
@_exported import UNet

/// The U-Net takes labels when its configuration has classes (`label_emb`); an unconditional U-Net has
/// ``ConditionalNoisePredictor/classCount`` 0 and accepts only the null label 0 (which it ignores).
extension UNet: ConditionalNoisePredictor {
    public var classCount: Int { configuration.classes ?? 0 }
    public func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor { self(x, t) }
    public func predictNoise(_ x: Tensor, at t: [Int], labels: [Int]) -> Tensor {
        labelEmbedding == nil ? self(x, t) : self(x, t, labels: labels)
    }
}

/// A denoising diffusion probabilistic model: a noise predictor and a diffuser, wired as the seed wires them.
public final class DDPM {
    public let model: NoisePredictor
    public let diffuser: Diffuser
    /// Image side and channels; T (the number of diffusion steps).
    public let imageSize: Int, channels: Int, timesteps: Int
    /// The generator behind timesteps, noise and sampling; pass a seed for reproducible results.
    public var generator: RandomGenerator

    /// - Parameters:
    ///   - model: ε_θ(x_t, t); the seed's U-Net (`UNetConfiguration.seed(channels:)` at `imageSize`) when nil.
    ///   - imageSize: the side of the square images.
    ///   - channels: the images' channels.
    ///   - timesteps: T, the number of diffusion steps.
    ///   - diffuser: the diffusion process; a `GaussianDiffusion` with the linear schedule over `timesteps`
    ///     when nil. Its configuration decides what the model's output means and what the loss is.
    ///   - clipDenoised: the default diffuser's clipping of x̂_0 (on when nil). Give it only when `diffuser` is nil.
    ///   - dataRange: the default diffuser's data range ([0, 1], the seed's convention, when nil). Only when `diffuser` is nil.
    ///   - seed: seeds the default U-Net's weights and ``generator``.
    public init(model: NoisePredictor? = nil, imageSize: Int = 32, channels: Int = 3, timesteps: Int = 1000,
                diffuser: Diffuser? = nil, clipDenoised: Bool? = nil, dataRange: ClosedRange<Double>? = nil, seed: UInt64 = 0) throws {
        guard imageSize > 0 else { throw DDPMError(.invalidValue, "image size: expected a positive number, got \(imageSize)") }
        guard channels > 0 else { throw DDPMError(.invalidValue, "channels: expected a positive number, got \(channels)") }
        guard timesteps > 0 else { throw DDPMError(.invalidValue, "timesteps: expected a positive number, got \(timesteps)") }
        let diffuser = try Self.diffuser(diffuser, timesteps: timesteps, clipDenoised: clipDenoised, dataRange: dataRange)
        self.diffuser = diffuser
        if let model { self.model = model } else {
            var c = UNetConfiguration.seed(channels: channels)
            c.imageSize = imageSize
            self.model = try Self.network(c, for: diffuser, seed: seed)
        }
        self.imageSize = imageSize; self.channels = channels; self.timesteps = timesteps
        generator = RandomGenerator(seed: seed)
    }

    /// A DDPM whose U-Net is `network` (image size and channels from it), initialised from `seed`; the
    /// other arguments as in ``init(model:imageSize:channels:timesteps:diffuser:clipDenoised:dataRange:seed:)``.
    /// The network's output doubles its channels when the diffuser learns the variance.
    public convenience init(network: UNetConfiguration, timesteps: Int = 1000, diffuser: Diffuser? = nil,
                            clipDenoised: Bool? = nil, dataRange: ClosedRange<Double>? = nil, seed: UInt64 = 0) throws {
        guard timesteps > 0 else { throw DDPMError(.invalidValue, "timesteps: expected a positive number, got \(timesteps)") }
        let d = try Self.diffuser(diffuser, timesteps: timesteps, clipDenoised: clipDenoised, dataRange: dataRange)
        try self.init(model: Self.network(network, for: d, seed: seed), imageSize: network.imageSize, channels: network.channels,
                      timesteps: timesteps, diffuser: d, seed: seed)
    }

    /// A DDPM with a named network: `DDPM(preset: .demo, timesteps: 100)` is the demo's 16×16 grey U-Net.
    public convenience init(preset: NetworkPreset, timesteps: Int = 1000, diffuser: Diffuser? = nil,
                            clipDenoised: Bool? = nil, dataRange: ClosedRange<Double>? = nil, seed: UInt64 = 0) throws {
        try self.init(network: preset.configuration, timesteps: timesteps, diffuser: diffuser,
                      clipDenoised: clipDenoised, dataRange: dataRange, seed: seed)
    }

    /// The given diffuser (checked against `timesteps`; clipping and data range belong to its configuration),
    /// or the default: a `GaussianDiffusion` with the linear schedule over `timesteps`.
    static func diffuser(_ given: Diffuser?, timesteps: Int, clipDenoised: Bool?, dataRange: ClosedRange<Double>?) throws -> Diffuser {
        if let given {
            guard given.timesteps == timesteps else {
                throw DDPMError(.invalidConfiguration, "diffuser: has \(given.timesteps) timesteps, expected \(timesteps)")
            }
            guard clipDenoised == nil, dataRange == nil else {
                throw DDPMError(.invalidConfiguration, "clipping and data range: set them in the diffuser's configuration, not beside a given diffuser")
            }
            return given
        }
        return try GaussianDiffusion(DiffusionConfiguration(timesteps: timesteps, dataRange: dataRange ?? 0...1, clipDenoised: clipDenoised ?? true))
    }

    /// The U-Net of `configuration`, with twice the output channels when `diffuser` learns the variance.
    static func network(_ configuration: UNetConfiguration, for diffuser: Diffuser, seed: UInt64) throws -> UNet {
        var c = configuration
        c.outputsVariance = diffuser.outputChannels(forDataChannels: c.channels) == 2 * c.channels
        return try UNet(c, seed: seed)
    }

    /// Throws unless `x` is N × channels × imageSize × imageSize with N ≥ 1.
    public func validateBatch(_ x: Tensor) throws {
        guard x.rank == 4, x.shape[0] > 0, x.shape[1] == channels, x.shape[2] == imageSize, x.shape[3] == imageSize else {
            throw DDPMError(.shapeMismatch, "batch of shape \(x.shape): expected [N, \(channels), \(imageSize), \(imageSize)] with N ≥ 1")
        }
    }

    /// The training loss for a batch with given timesteps and noise (deterministic): the mean over the
    /// batch of the diffuser's per-sample `TrainingTerms/total` — L_simple against the target the mean
    /// type implies, or the bound terms in bits/dim (see `GaussianDiffusion/trainingLosses(modelOutput:start:noisy:t:noise:)`).
    /// With `labels` (a ``ConditionalNoisePredictor`` model only), the prediction is ε_θ(x_t, t, y).
    public func loss(_ x: Tensor, at t: [Int], noise: Tensor, labels: [Int]? = nil) throws -> Tensor {
        try validateBatch(x)
        guard noise.shape == x.shape else {
            throw DDPMError(.shapeMismatch, "noise of shape \(noise.shape): expected the batch's shape \(x.shape)")
        }
        let xt = try diffuser.addNoise(x, at: t, noise: noise)
        let out: Tensor
        if let labels {
            guard let m = model as? ConditionalNoisePredictor, m.classCount > 0 else {
                throw DDPMError(.invalidValue, "class labels: the model is unconditional; labels cannot be used")
            }
            try m.validate(labels: labels, batch: x.shape[0], allowNull: true)
            out = m.predictNoise(xt, at: t, labels: labels)
        } else {
            out = model.predictNoise(xt, at: t)
        }
        return try diffuser.trainingLosses(modelOutput: out, start: x, noisy: xt, t: t, noise: noise).total.mean()
    }

    /// `loss = ddpm(x)`: draws t uniformly and ε ~ 𝒩(0, I) from ``generator`` (t first, then ε), and
    /// returns the scalar loss whose `backward()` fills the model's gradients.
    /// `labels` as in ``loss(_:at:noise:labels:)``.
    public func callAsFunction(_ x: Tensor, labels: [Int]? = nil) throws -> Tensor {
        try validateBatch(x)
        let t = diffuser.sampleTimesteps(batchSize: x.shape[0], generator: &generator)
        let noise = Tensor.randomNormal(x.shape, generator: &generator)
        return try loss(x, at: t, noise: noise, labels: labels)
    }

    /// The full reverse chain (`Diffuser.sampleLoop(model:shape:generator:sampler:onStep:)`, the full ancestral chain) from x_T ~ 𝒩(0, I)
    /// for `batchSize` images, with the model in evaluation mode. `onStep` sees t, x_t, x̂_0 and x_{t−1} after
    /// every step (T of them: a progress hook). At the defaults (T = 1000, the 20.9 M-parameter network)
    /// this is 1000 forward passes of the big network; `sample(batchSize:sampler:onStep:)` with `.ddim(steps: 50)` runs 50.
    public func sample(batchSize: Int, onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        guard batchSize > 0 else { throw DDPMError(.invalidValue, "batch size: expected a positive number, got \(batchSize)") }
        return try diffuser.sampleLoop(model: model, shape: [batchSize, channels, imageSize, imageSize],
                                       generator: &generator, onStep: onStep)
    }
}
