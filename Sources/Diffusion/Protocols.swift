// ─── The seed's pluggable parts: a noise predictor and a diffuser ─────────────────────────────────────

import Tensors

/// Any network ε_θ(x_t, t): `x` is N×C×H×W, `t` holds N integer timesteps, the result has x's shape.
/// (The seed's `forward(x, t)`.) Parameters are exposed by name for optimisers and weight files.
public protocol NoisePredictor: ParameterContainer {
    func predictNoise(_ x: Tensor, timesteps t: [Int]) -> Tensor
    /// Training mode turns on stochastic layers (dropout); evaluation mode turns them off.
    var isTraining: Bool { get set }
}

/// The seed's diffuser interface: `sample_timesteps`, `add_noise`, `denoise`.
public protocol Diffuser {
    var timesteps: Int { get }
    /// Timesteps for a training batch, uniform over 0 ..< T.
    func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int]
    /// x_t from x_0 and ε (eq. 4).
    func addNoise(_ xStart: Tensor, timesteps t: [Int], noise: Tensor) throws -> Tensor
    /// One reverse step x_t → x_{t−1} with the model's prediction.
    func denoise(model: NoisePredictor, _ x: Tensor, timesteps t: [Int], clipDenoised: Bool, generator: inout RandomGenerator) throws -> Tensor
}

/// The default diffuser: the equations of ``GaussianDiffusion`` behind the seed's three methods.
public struct GaussianDiffuser: Diffuser, Sendable {
    public let diffusion: GaussianDiffusion
    public var timesteps: Int { diffusion.timesteps }

    public init(diffusion: GaussianDiffusion) { self.diffusion = diffusion }
    public init(timesteps: Int = 1000, schedule: BetaSchedule = .default, dataRange: ClosedRange<Double> = 0...1) throws {
        diffusion = try GaussianDiffusion(schedule: schedule, timesteps: timesteps, dataRange: dataRange)
    }

    public func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int] {
        (0..<batchSize).map { _ in generator.nextInt(below: timesteps) }
    }

    public func addNoise(_ xStart: Tensor, timesteps t: [Int], noise: Tensor) throws -> Tensor {
        try diffusion.qSample(start: xStart, t: t, noise: noise)
    }

    /// Predicts with the model, then ``GaussianDiffusion/pSample(modelOutput:noisy:t:noise:clip:)`` with a
    /// fresh z from `generator`.
    public func denoise(model: NoisePredictor, _ x: Tensor, timesteps t: [Int], clipDenoised: Bool, generator: inout RandomGenerator) throws -> Tensor {
        try diffusion.validate(t, batch: x.shape[0])
        let out = model.predictNoise(x, timesteps: t)
        let z = Tensor.randomNormal(x.shape, generator: &generator)
        return try diffusion.pSample(modelOutput: out, noisy: x, t: t, noise: z, clip: clipDenoised)
    }
}

/// A tiny differentiable stand-in noise predictor, useful as a test double and for the Notes:
///
///     ε̂[n, c, …] = w_c · x[n, c, …] + v_c · (t_n / T) + b_c
///
/// 3·C parameters (`weight`, `time_weight`, `bias`, each of shape C).
public final class AffineNoisePredictor: NoisePredictor {
    public let weight: Tensor, timeWeight: Tensor, bias: Tensor
    public let timesteps: Int
    public var isTraining = true

    public init(channels: Int, timesteps: Int, seed: UInt64 = 0) {
        var rng = RandomGenerator(seed: seed)
        weight = Tensor(shape: [channels], data: (0..<channels).map { _ in 0.1 * (rng.nextUniform() - 0.5) }, requiresGrad: true)
        timeWeight = Tensor(shape: [channels], data: (0..<channels).map { _ in 0.1 * (rng.nextUniform() - 0.5) }, requiresGrad: true)
        bias = Tensor.zeros([channels], requiresGrad: true)
        self.timesteps = timesteps
    }

    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        [("weight", weight), ("time_weight", timeWeight), ("bias", bias)]
    }

    public func predictNoise(_ x: Tensor, timesteps t: [Int]) -> Tensor {
        let c = weight.count
        precondition(x.rank >= 2 && x.shape[1] == c, "AffineNoisePredictor: input \(x.shape) does not have \(c) channels")
        let trailing = Array(repeating: 1, count: x.rank - 2)
        let perChannel = [1, c] + trailing
        let time = Tensor(shape: [t.count, 1] + trailing, data: t.map { Double($0) / Double(timesteps) })
        return weight.reshaped(perChannel) * x + timeWeight.reshaped(perChannel) * time + bias.reshaped(perChannel)
    }
}
