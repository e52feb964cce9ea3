// ─── The seed's pluggable parts: a noise predictor and a diffuser; and the one reverse chain ──────────

import Tensors

/// Any network ε_θ(x_t, t) (the seed's `forward(x, t)`): `x` is N×C×H×W, `t` holds N integer timesteps
/// in 0 ..< T, and the result has x's shape. What the output means (ε̂, x̂_0 or μ_θ) is the diffuser's
/// mean type, not the network's business. Parameters are exposed by name for optimisers and weight files.
/// Training mode (``ModeSwitching/isTraining``) turns on stochastic layers (dropout); evaluation mode turns them off.
public protocol NoisePredictor: ParameterContainer, ModeSwitching {
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor
}

/// A noise predictor that also takes class labels: ε_θ(x_t, t, y) with y ∈ 0 ..< K for the K classes and
/// y = K (``nullClass``) for "no label", the unconditional prediction ε_θ(x_t, t, ∅) (row K of the label
/// embedding, as k-diffusion's and improved-diffusion's class-conditional models reserve it).
///
/// **How a custom model declares that it takes labels:** conform to this protocol instead of
/// ``NoisePredictor`` and implement ``classCount`` and ``predictNoise(_:at:labels:)``. The seed's
/// unconditional call ``NoisePredictor/predictNoise(_:at:)`` then means "every label null" (the default
/// below), so every sampler, loss and command that takes a plain ``NoisePredictor`` still works; the
/// wrappers ``ClassConditionedPredictor`` (fixed labels, no guidance) and ``ClassifierFreeGuidedPredictor``
/// (Ho & Salimans 2022) turn a conditional model back into a ``NoisePredictor`` for the one reverse chain.
/// A model that conforms with `classCount == 0` is unconditional: its only label is the null class 0.
public protocol ConditionalNoisePredictor: NoisePredictor {
    /// K, the number of real classes (labels 0 ..< K); label K is the null class.
    var classCount: Int { get }
    /// ε_θ(x, t, y): `x` N×C×H×W, `t` and `labels` N entries each, labels in 0 ... K (K: null).
    func predictNoise(_ x: Tensor, at t: [Int], labels: [Int]) -> Tensor
}

extension ConditionalNoisePredictor {
    /// The label of the unconditional prediction: K (``classCount``).
    public var nullClass: Int { classCount }

    /// The unconditional prediction ε_θ(x_t, t, ∅): every label the null class.
    public func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        predictNoise(x, at: t, labels: [Int](repeating: nullClass, count: x.shape[0]))
    }

    /// Throws unless `labels` has `batch` entries, each a class 0 ..< K (or K, the null class, when
    /// `allowNull`); the messages name the label, the expected range and what was found.
    public func validate(labels: [Int], batch: Int, allowNull: Bool = false) throws {
        guard labels.count == batch else {
            throw DDPMError(.shapeMismatch, "class labels: \(labels.count) for a batch of \(batch)")
        }
        let top = allowNull ? classCount : classCount - 1
        if let bad = labels.first(where: { $0 < 0 || $0 > top }) {
            throw DDPMError(.invalidValue, classCount == 0
                ? "class \(bad): the model is unconditional (trained without classes)"
                : "class \(bad): expected a class in 0 ..< \(classCount)\(allowNull ? " or \(classCount) (the null class)" : "") (the model was trained with \(classCount) classes)")
        }
    }
}

/// A conditional model with its labels fixed, as a plain ``NoisePredictor``: ε_θ(x, t, y) for the given
/// y (one label per sample of every batch it is called with; no guidance). Parameters and mode are the model's.
public final class ClassConditionedPredictor: NoisePredictor {
    public let model: ConditionalNoisePredictor
    public let labels: [Int]
    public init(_ model: ConditionalNoisePredictor, labels: [Int]) { self.model = model; self.labels = labels }
    public var isTraining: Bool { get { model.isTraining } set { model.isTraining = newValue } }
    public func namedParameters() -> [(name: String, tensor: Tensor)] { model.namedParameters() }
    public func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        precondition(x.shape[0] == labels.count, "ClassConditionedPredictor: input \(x.shape) for \(labels.count) labels")
        return model.predictNoise(x, at: t, labels: labels)
    }
}

/// One step of a reverse chain, as the per-step callback of ``runReverseChain(model:from:sampler:generator:noise:onStep:)`` sees it.
public struct ReverseChainStep {
    /// The **original** timestep of this step: the index into the full T-step schedule that the network is
    /// called with (T−1 first, 0 last on the full chain; the kept steps, descending, on a respaced chain).
    public var t: Int
    /// The position of this step on the chain that is being run: the **respaced** index i (N−1 first, 0 last)
    /// for a reverse chain of N kept steps; equal to `t` on the full chain. For an inversion (which runs
    /// upwards) it is the index the step starts from.
    public var index: Int
    /// The input of the step, x_t (N×C×H×W).
    public var noisy: Tensor
    /// x̂_0 as the step used it (after clipping or thresholding).
    public var predictedStart: Tensor
    /// The output of the step, x_{t−1} (x_0 after the last step; x_{next} for an inversion).
    public var next: Tensor

    public init(t: Int, index: Int, noisy: Tensor, predictedStart: Tensor, next: Tensor) {
        self.t = t; self.index = index; self.noisy = noisy; self.predictedStart = predictedStart; self.next = next
    }
}

/// The pluggable step of the one reverse chain: ancestral (Ho et al. Algorithm 2, on the full or a respaced
/// chain), DDIM (Song et al. eq. 12) or DDIM inversion (§4.3). A sampler knows its chain (which timesteps,
/// in which order) and how one step maps x to the next state; the loop
/// ``runReverseChain(model:from:sampler:generator:noise:onStep:)`` owns everything else.
public protocol ReverseSampler {
    /// The number of steps the chain runs.
    var stepCount: Int { get }
    /// Whether step `k` consumes a standard-normal z of x's shape (drawn by the loop, in step order).
    func drawsNoise(atStep k: Int) -> Bool
    /// Step `k` (0 = the first step, from x_T) on x with the model and, when ``drawsNoise(atStep:)``, z.
    func step(_ k: Int, model: NoisePredictor, _ x: Tensor, noise z: Tensor?) throws -> ReverseChainStep
}

/// The library's only reverse chain loop: runs `sampler`'s steps k = 0 ..< stepCount from `start`, with the
/// model in evaluation mode (restored afterwards) and no graph recorded. `onStep` sees every step (t, index,
/// x_t, x̂_0, next). Randomness: before each step that draws noise, z ~ 𝒩(0, I) of x's shape from `generator`,
/// or `noise[k]` when a list of per-step noises is given (for checking against stored z; entries for steps
/// that draw no noise are ignored).
public func runReverseChain(model: NoisePredictor, from start: Tensor, sampler: ReverseSampler, generator: inout some RandomSource,
                            noise given: [Tensor]? = nil, onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
    if let given, given.count != sampler.stepCount {
        throw DDPMError(.invalidValue, "reverse chain: \(given.count) stored noises for \(sampler.stepCount) steps")
    }
    return try model.withMode(training: false) { try withoutGradients {
        var x = start
        for k in 0..<sampler.stepCount {
            var z: Tensor? = nil
            if sampler.drawsNoise(atStep: k) {
                if let given {
                    guard given[k].shape == x.shape else {
                        throw DDPMError(.shapeMismatch, "reverse chain: stored noise \(k) has shape \(given[k].shape), expected \(x.shape)")
                    }
                    z = given[k]
                } else {
                    z = Tensor.randomNormal(x.shape, generator: &generator)
                }
            }
            let s = try sampler.step(k, model: model, x, noise: z)
            onStep?(s)
            x = s.next
        }
        return x
    } }
}

/// The seed's diffuser interface: `sample_timesteps`, `add_noise`, `denoise`; plus the training terms.
/// Every diffuser gets the one reverse chain, ``sampleLoop(model:shape:generator:sampler:onStep:)``, from these.
public protocol Diffuser {
    /// T, the number of diffusion steps of this chain (N for a respaced chain).
    var timesteps: Int { get }
    /// Timesteps for a training batch, uniform over 0 ..< T.
    func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int]
    /// x_t from x_0 and ε (Ho et al. eq. 4).
    func addNoise(_ xStart: Tensor, at t: [Int], noise: Tensor) throws -> Tensor
    /// The per-sample training terms for a model output on x_t = addNoise(x_0, t, ε).
    func trainingLosses(modelOutput: Tensor, start: Tensor, noisy: Tensor, t: [Int], noise: Tensor) throws -> TrainingTerms
    /// One ancestral reverse step x_t → x_{t−1} at chain indices t with the model's output and the given
    /// z ~ 𝒩(0, I) (x's shape; masked where t = 0); returns x_{t−1} and the x̂_0 the step used.
    func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor) throws -> (sample: Tensor, predictedStart: Tensor)
    /// The same step with the mean of p_θ(x_{t−1} | x_t) replaced by `condition` before the noise is added
    /// (classifier guidance, Algorithm 1). The default runs the plain step when `condition` is nil and throws
    /// otherwise: a diffuser without Gaussian reverse parameters has no mean to shift.
    func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor, condition: AncestralMeanCondition?) throws
        -> (sample: Tensor, predictedStart: Tensor)
    /// The original timestep the network is called with at chain index `index` (the index itself unless
    /// the chain is respaced).
    func modelTimestep(_ index: Int) -> Int
    /// The channels a network's output must have for images of `channels` channels (2C when it also
    /// predicts a variance). The default is `channels`.
    func outputChannels(forDataChannels channels: Int) -> Int
    /// The Gaussian diffusion whose tables (ᾱ_t, the posterior) this diffuser's chain runs on, for samplers
    /// that respace the chain or step by DDIM; nil (the default) when there is none, and then only the
    /// diffuser's own full ancestral chain can sample it.
    var gaussianDiffusion: GaussianDiffusion? { get }
}

extension Diffuser {
    public func outputChannels(forDataChannels channels: Int) -> Int { channels }

    public var gaussianDiffusion: GaussianDiffusion? { nil }

    public func modelTimestep(_ index: Int) -> Int { index }

    public func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor, condition: AncestralMeanCondition?) throws
        -> (sample: Tensor, predictedStart: Tensor) {
        guard condition == nil else {
            throw DDPMError(.invalidConfiguration, "classifier guidance of the ancestral mean: the diffuser \(type(of: self)) has no Gaussian reverse step to shift")
        }
        return try denoise(model: model, x, at: t, noise: z)
    }

    /// One reverse step with fresh noise: draws z ~ 𝒩(0, I) (N×C×H×W, also at t = 0 where it is masked)
    /// from `generator`, then ``denoise(model:_:at:noise:)``.
    public func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], generator: inout RandomGenerator) throws
        -> (sample: Tensor, predictedStart: Tensor) {
        try denoise(model: model, x, at: t, noise: Tensor.randomNormal(x.shape, generator: &generator))
    }

    /// The reverse chain: x_T ~ 𝒩(0, I) of `shape`, then `sampler`'s steps through
    /// ``runReverseChain(model:from:sampler:generator:noise:onStep:)``. The default sampler is Ho et al.'s
    /// Algorithm 2 over every index of this diffuser (``AncestralSampler``). Randomness, in order: x_T, then
    /// each step's z.
    public func sampleLoop(model: NoisePredictor, shape: [Int], generator: inout some RandomSource, sampler: ReverseSampler? = nil,
                           onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
        guard shape.count >= 1, shape[0] > 0, shape.allSatisfy({ $0 > 0 }) else {
            throw DDPMError(.invalidValue, "sample shape \(shape): expected positive sizes with the batch first")
        }
        let x = Tensor.randomNormal(shape, generator: &generator)
        return try runReverseChain(model: model, from: x, sampler: sampler ?? AncestralSampler(self), generator: &generator, onStep: onStep)
    }
}

/// Ho et al.'s Algorithm 2 on any diffuser's chain: step k runs ``Diffuser/denoise(model:_:at:noise:)`` at
/// chain index T−1−k (a respaced diffuser maps it to the original timestep for the network itself).
/// Draws z at every step, also the last, where it is masked (so the random stream is that of Ho's code).
/// `meanCondition` is the step's one optional hook: classifier guidance's Algorithm 1 (``ClassifierMeanGuidance``)
/// shifts the mean before the noise is added; nil is Algorithm 2 unchanged.
public struct AncestralSampler: ReverseSampler {
    public let diffuser: Diffuser
    public var meanCondition: AncestralMeanCondition?
    public init(_ diffuser: Diffuser, meanCondition: AncestralMeanCondition? = nil) { self.diffuser = diffuser; self.meanCondition = meanCondition }
    public var stepCount: Int { diffuser.timesteps }
    public func drawsNoise(atStep k: Int) -> Bool { true }
    public func step(_ k: Int, model: NoisePredictor, _ x: Tensor, noise z: Tensor?) throws -> ReverseChainStep {
        let i = diffuser.timesteps - 1 - k
        let (next, x0) = try diffuser.denoise(model: model, x, at: [Int](repeating: i, count: x.shape[0]),
                                              noise: z ?? Tensor.zeros(x.shape), condition: meanCondition)
        return ReverseChainStep(t: diffuser.modelTimestep(i), index: i, noisy: x, predictedStart: x0, next: next)
    }
}

/// The default diffuser is the Gaussian diffusion itself: the seed's three methods are its equations.
extension GaussianDiffusion: Diffuser {
    public var gaussianDiffusion: GaussianDiffusion? { self }

    public func sampleTimesteps(batchSize: Int, generator: inout RandomGenerator) -> [Int] {
        (0..<batchSize).map { _ in generator.nextInt(below: timesteps) }
    }

    public func addNoise(_ xStart: Tensor, at t: [Int], noise: Tensor) throws -> Tensor {
        try qSample(start: xStart, t: t, noise: noise)
    }

    /// Predicts with the model, then ``pSample(modelOutput:noisy:t:noise:clip:)`` with z and the
    /// configuration's clipping.
    public func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor) throws
        -> (sample: Tensor, predictedStart: Tensor) {
        try denoise(model: model, x, at: t, noise: z, condition: nil)
    }

    /// The same with the mean shifted by `condition` (called with x_t and t, the network's timesteps).
    public func denoise(model: NoisePredictor, _ x: Tensor, at t: [Int], noise z: Tensor, condition: AncestralMeanCondition?) throws
        -> (sample: Tensor, predictedStart: Tensor) {
        try validate(t, batch: x.shape[0])
        let out = model.predictNoise(x, at: t)
        return try pSample(modelOutput: out, noisy: x, t: t, noise: z, clip: configuration.clipDenoised,
                           conditionMean: condition.map { c in { c.conditionMean(noisy: x, modelTimesteps: t, $0) } })
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
