// ─── The seed's pluggable parts: a noise predictor and a diffuser; and the one reverse chain ──────────

import Tensors

/// Any network ε_θ(x_t, t) (the seed's `forward(x, t)`): `x` is N×C×H×W, `t` holds N integer timesteps
/// in 0 ..< T, and the result has x's shape. What the output means (ε̂, x̂_0 or μ_θ) is the diffuser's
/// mean type, not the network's business. Parameters are exposed by name for optimisers and weight files.
/// Training mode (``ModeSwitching/isTraining``) turns on stochastic layers (dropout); evaluation mode turns them off.
public protocol NoisePredictor: ParameterContainer, ModeSwitching {
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor
}

/// One step of a reverse chain, as the per-step callback of ``Diffuser/sampleLoop(model:shape:generator:onStep:)`` sees it.
public struct ReverseChainStep {
    /// The timestep of this step (0-based: T−1 first, 0 last).
    public var t: Int
    /// The input of the step, x_t (N×C×H×W).
    public var noisy: Tensor
    /// x̂_0 as the step saw it (clipped when the diffuser clips).
    public var predictedStart: Tensor
    /// The output of the step, x_{t−1} (x_0 after the last step).
    public var next: Tensor
}

/// The seed's diffuser interface: `sample_timesteps`, `add_noise`, `denoise`; plus the training terms.
/// Every diffuser gets the one reverse chain, ``sampleLoop(model:shape:generator:onStep:)``, from these.
public protocol Diffuser {
    /// T, the number of diffusion steps.
    var timesteps: Int { get }
    /// Timesteps for a training batch, uniform over 0 ..< T.
    func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int]
    /// x_t from x_0 and ε (Ho et al. eq. 4).
    func addNoise(_ xStart: Tensor, at t: [Int], noise: Tensor) throws -> Tensor
    /// The per-sample training terms for a model output on x_t = addNoise(x_0, t, ε).
    func trainingLosses(modelOutput: Tensor, start: Tensor, noisy: Tensor, t: [Int], noise: Tensor) throws -> TrainingTerms
    /// One reverse step x_t → x_{t−1} with the model's output and fresh noise from `generator`;
    /// returns x_{t−1} and the x̂_0 the step used.
    func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], generator: inout RandomGenerator) throws
        -> (sample: Tensor, predictedStart: Tensor)
}

extension Diffuser {
    /// The reverse chain (Ho et al. Algorithm 2): x_T ~ 𝒩(0, I), then ``denoise(model:_:at:generator:)`` for
    /// t = T−1 … 0, with the model in evaluation mode (restored afterwards) and no graph recorded.
    /// `onStep` sees every step: t, x_t, x̂_0 and x_{t−1}. Randomness, in order: x_T, then each step's draws.
    /// This is the library's only reverse chain.
    public func sampleLoop(model: NoisePredictor, shape: [Int], generator: inout RandomGenerator,
                           onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        guard shape.count >= 1, shape[0] > 0, shape.allSatisfy({ $0 > 0 }) else {
            throw DDPMError(.invalidValue, "sample shape \(shape): expected positive sizes with the batch first")
        }
        return try model.withMode(training: false) { try withoutGradients {
            var x = Tensor.randomNormal(shape, generator: &generator)
            for step in stride(from: timesteps - 1, through: 0, by: -1) {
                let (next, x0) = try denoise(model: model, x, at: [Int](repeating: step, count: shape[0]), generator: &generator)
                onStep?(ReverseChainStep(t: step, noisy: x, predictedStart: x0, next: next))
                x = next
            }
            return x
        } }
    }
}

/// The default diffuser is the Gaussian diffusion itself: the seed's three methods are its equations.
extension GaussianDiffusion: Diffuser {
    public func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int] {
        (0..<batchSize).map { _ in generator.nextInt(below: timesteps) }
    }

    public func addNoise(_ xStart: Tensor, at t: [Int], noise: Tensor) throws -> Tensor {
        try qSample(start: xStart, t: t, noise: noise)
    }

    /// Predicts with the model, draws z ~ 𝒩(0, I) (N×C×H×W, also at t = 0 where it is masked), then
    /// ``pSample(modelOutput:noisy:t:noise:clip:)`` with the configuration's clipping.
    public func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], generator: inout RandomGenerator) throws
        -> (sample: Tensor, predictedStart: Tensor) {
        try validate(t, batch: x.shape[0])
        let out = model.predictNoise(x, at: t)
        let z = Tensor.randomNormal(x.shape, generator: &generator)
        return try pSample(modelOutput: out, noisy: x, t: t, noise: z, clip: configuration.clipDenoised)
    }
}

/// A tiny differentiable stand-in noise predictor, useful as a test double and for the Notes:
///
///     ε̂[n, c, …] = w_c · x[n, c, …] + v_c · (t_n / T) + b_c
///
/// 3·C parameters (`weight`, `time_weight`, `bias`, each of shape C).
public final class AffineNoisePredictor: NoisePredictor {
    public let weight: Tensor, timeWeight: Tensor, bias: Tensor
    /// T, used to scale t into [0, 1).
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

    public func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        let c = weight.count
        precondition(x.rank >= 2 && x.shape[1] == c, "AffineNoisePredictor: input \(x.shape) does not have \(c) channels")
        let trailing = Array(repeating: 1, count: x.rank - 2)
        let perChannel = [1, c] + trailing
        let time = Tensor(shape: [t.count, 1] + trailing, data: t.map { Double($0) / Double(timesteps) })
        return weight.reshaped(perChannel) * x + timeWeight.reshaped(perChannel) * time + bias.reshaped(perChannel)
    }
}
