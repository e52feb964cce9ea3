// ─── Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis", §4) ─────
//
// A noisy classifier p_φ(y | x_t, t) steers an unconditional model toward class y by the gradient
// g = ∇_{x_t} log p_φ(y | x_t, t), in one of two forms (guided-diffusion's names):
//
//   condition_mean  (Algorithm 1, ancestral sampling):   μ ← μ + s Σ g
//   condition_score (Algorithm 2, DDIM and every ε-based solver):   ε̂ ← ε̂ − √(1 − ᾱ_t) s g
//
// Both follow from one score: ∇ log p(x_t | y) = ∇ log p(x_t) + ∇ log p(y | x_t), with ε̂ = −√(1 − ᾱ_t) ∇ log p(x_t)
// (Notes/03, Tweedie) for the second, and a first-order expansion of log p_φ around μ for the first (§4.1).
// Notes/20 writes both beside these functions. Shapes: x_t, μ, ε̂, g N×C×H×W; Σ N×C×H×W or N×1×1×1; ᾱ per sample.

import Tensors

/// A classifier of noisy images p_φ(y | x_t, t): N × K logits for x_t (N×C×H×W) at N integer timesteps — the
/// original timesteps of the T-step schedule, the same integers a ``NoisePredictor`` is called with.
/// Like a noise predictor it knows nothing of schedules.
public protocol NoisyClassifier: ParameterContainer, ModeSwitching {
    /// K, the number of classes.
    var classes: Int { get }
    func classifierLogits(_ x: Tensor, at t: [Int]) -> Tensor
}

/// The classifier-guidance equations and the classifier's input gradient, one function each.
public enum ClassifierGuidance {
    /// log p_φ(y_n | x_n) for each row n of N × K logits: the log-softmax's entry at the label, as the sum of
    /// the row times the one-hot row of y_n (differentiable; N values).
    public static func logProbabilities(logits: Tensor, labels y: [Int]) -> Tensor {
        precondition(logits.rank == 2 && logits.shape[0] == y.count, "logProbabilities: logits \(logits.shape) for \(y.count) labels")
        let k = logits.shape[1]
        precondition(y.allSatisfy { $0 >= 0 && $0 < k }, "logProbabilities: labels \(y) outside 0 ..< \(k)")
        var oneHot = [Double](repeating: 0, count: y.count * k)
        for (n, c) in y.enumerated() { oneHot[n * k + c] = 1 }
        return (logits.logSoftmax() * Tensor(shape: [y.count, k], data: oneHot)).sum(alongAxes: [1])
    }

    /// The classifier's input gradient, by the library's reverse mode (guided-diffusion's `cond_fn` without the scale):
    ///
    ///     g_n = ∇_{x_n} log p_φ(y_n | x_n, t_n)        (N×C×H×W; samples are independent, so ∇ of Σ_n log p_φ(y_n | x_n))
    ///
    /// Records a graph for this one call even inside `withoutGradients` (the reverse chain runs without one), with
    /// the classifier in evaluation mode and its parameters held constant (no parameter gradient is computed or
    /// left behind). Returns log p_φ(y_n | x_n, t_n) (N values) beside g. Pinned by finite differences:
    /// `ClassifierGradientTests` (Tests/UNetTests/ClassifierTests.swift), with a planted wrong gradient rejected.
    public static func logProbabilityGradient(_ classifier: NoisyClassifier, noisy x: Tensor, t: [Int], labels y: [Int])
        -> (logProbabilities: [Double], gradient: Tensor) {
        precondition(x.rank >= 1 && t.count == x.shape[0] && y.count == x.shape[0],
                     "logProbabilityGradient: \(t.count) timesteps and \(y.count) labels for x of shape \(x.shape)")
        let parameters = classifier.parameters, wanted = parameters.map(\.requiresGrad)
        for p in parameters { p.setRequiresGrad(false) }
        defer { for (p, w) in zip(parameters, wanted) { p.setRequiresGrad(w) } }
        return classifier.withMode(training: false) {
            GradientRecording.$isEnabled.withValue(true) {
                let input = Tensor(shape: x.shape, data: x.data, requiresGrad: true)
                let selected = logProbabilities(logits: classifier.classifierLogits(input, at: t), labels: y)
                selected.sum().backward()
                return (selected.data, Tensor(shape: x.shape, data: input.gradValues ?? [Double](repeating: 0, count: x.count)))
            }
        }
    }

    /// Algorithm 1's shifted mean (guided-diffusion `condition_mean`):
    ///
    ///     μ̃ = μ + s · Σ · g,     x_{t−1} ~ 𝒩(μ̃, Σ)
    ///
    /// μ, g N×C×H×W; Σ the reverse variance, N×C×H×W (learned) or N×1×1×1 (fixed; β̃_t for fixed-small, so 0 at
    /// t = 0, as in guided-diffusion, whose `p_mean_variance` returns the same table); s the scale. g already
    /// carries no scale. Fixture: `guidance.h5 /classifier_mean/mean_shifted` (`ClassifierGuidanceFixtureTests`).
    public static func conditionMean(mean mu: Tensor, variance sigma: Tensor, gradient g: Tensor, scale s: Double) -> Tensor {
        precondition(mu.shape == g.shape, "conditionMean: mean \(mu.shape) and gradient \(g.shape) differ")
        return mu + s * sigma * g
    }

    /// Algorithm 2's guided ε̂ (guided-diffusion `condition_score`), per sample:
    ///
    ///     ε̂' = ε̂ − √(1 − ᾱ_t) · s · g         (N×C×H×W; ᾱ_t one value per sample)
    ///
    /// then x̂_0 and the DDIM step from ε̂' as from any ε̂. Fixture: `guidance.h5 /classifier_score/eps_guided`
    /// (`ClassifierGuidanceFixtureTests`).
    public static func conditionScore(noise eps: Tensor, alphaBar: [Double], gradient g: Tensor, scale s: Double) -> Tensor {
        precondition(eps.shape == g.shape && alphaBar.count == eps.shape[0],
                     "conditionScore: ε̂ \(eps.shape), gradient \(g.shape), \(alphaBar.count) ᾱ values")
        return eps - GaussianDiffusion.broadcastPerSample(alphaBar.map { (1 - $0).squareRoot() * s }, rank: eps.rank) * g
    }

    /// The labels for a batch of `n`: one label for every sample, or one per sample.
    static func labels(_ y: [Int], batch n: Int) -> [Int] {
        precondition(y.count == 1 || y.count == n, "classifier guidance: \(y.count) labels for a batch of \(n)")
        return y.count == 1 ? [Int](repeating: y[0], count: n) : y
    }
}

/// Algorithm 2 as a noise predictor: the model's ε̂ shifted by ``ClassifierGuidance/conditionScore(noise:alphaBar:gradient:scale:)``,
/// with ᾱ_t read from `alphasCumprod` at the timestep the network is called with. Every sampler that takes a
/// noise predictor (DDIM, the σ-view solvers, and the ancestral chain too, which is then Algorithm 2's score
/// form rather than Algorithm 1) gets guidance through it with no change. ε-prediction only; with a learned
/// variance the mean half (the first C channels) is shifted and the variance half passed through.
///
/// On a respaced chain ᾱ is the original table at the kept step, which equals the respaced ᾱ' there up to
/// rounding (guided-diffusion reads the respaced table). The σ-view solvers call the network at a rounded
/// timestep; ᾱ is that timestep's (the classifier sees the same t).
public final class ClassifierScoreGuidance: NoisePredictor {
    public let model: NoisePredictor
    public let classifier: NoisyClassifier
    /// One label for every sample, or one per sample of every batch.
    public let labels: [Int]
    public let scale: Double
    /// ᾱ of the T-step schedule, indexed by the network's timestep.
    public let alphasCumprod: [Double]

    /// Throws unless the diffusion predicts ε, the labels are classes of the classifier and the scale is finite.
    public init(model: NoisePredictor, classifier: NoisyClassifier, diffusion: GaussianDiffusion, labels: [Int], scale: Double) throws {
        guard diffusion.meanType == .epsilon else {
            throw DDPMError(.invalidConfiguration, "classifier guidance (condition_score): expected an ε-predicting model, got mean type '\(diffusion.meanType.rawValue)'")
        }
        try ClassifierMeanGuidance.check(classifier: classifier, labels: labels, scale: scale)
        self.model = model; self.classifier = classifier; self.labels = labels; self.scale = scale
        alphasCumprod = diffusion.tables.alphasCumprod
    }

    public func namedParameters() -> [(name: String, tensor: Tensor)] { model.namedParameters() }
    public var isTraining: Bool {
        get { model.isTraining }
        set { model.isTraining = newValue }
    }

    public func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        let out = model.predictNoise(x, at: t)
        let y = ClassifierGuidance.labels(labels, batch: x.shape[0])
        let g = ClassifierGuidance.logProbabilityGradient(classifier, noisy: x, t: t, labels: y).gradient
        let alphaBar = t.map { alphasCumprod[$0] }
        if out.shape == x.shape { return ClassifierGuidance.conditionScore(noise: out, alphaBar: alphaBar, gradient: g, scale: scale) }
        precondition(out.rank == x.rank && out.shape[1] == 2 * x.shape[1], "ClassifierScoreGuidance: model output \(out.shape) for x \(x.shape)")
        let halves = out.split(into: 2, axis: 1)
        return Tensor.concatenate([ClassifierGuidance.conditionScore(noise: halves[0], alphaBar: alphaBar, gradient: g, scale: scale), halves[1]], axis: 1)
    }
}

/// Algorithm 1 as the ancestral step's hook (``AncestralSampler/meanCondition``): the mean of p_θ(x_{t−1} | x_t)
/// shifted by ``ClassifierGuidance/conditionMean(mean:variance:gradient:scale:)``, the classifier called at x_t
/// and the network's timestep; the step then adds √Σ z as usual.
public struct ClassifierMeanGuidance: AncestralMeanCondition {
    public let classifier: NoisyClassifier
    public let labels: [Int]
    public let scale: Double

    public init(classifier: NoisyClassifier, labels: [Int], scale: Double) throws {
        try Self.check(classifier: classifier, labels: labels, scale: scale)
        self.classifier = classifier; self.labels = labels; self.scale = scale
    }

    static func check(classifier: NoisyClassifier, labels: [Int], scale: Double) throws {
        guard !labels.isEmpty else { throw DDPMError(.invalidValue, "classifier guidance: expected at least one class label, got none") }
        if let bad = labels.first(where: { $0 < 0 || $0 >= classifier.classes }) {
            throw DDPMError(.invalidValue, "classifier guidance: class \(bad) is not one of the classifier's classes 0 ..< \(classifier.classes)")
        }
        guard scale.isFinite else { throw DDPMError(.invalidValue, "classifier guidance: expected a finite scale, got \(scale)") }
    }

    public func conditionMean(noisy x: Tensor, modelTimesteps t: [Int], _ p: ReverseParameters) -> Tensor {
        let y = ClassifierGuidance.labels(labels, batch: x.shape[0])
        let g = ClassifierGuidance.logProbabilityGradient(classifier, noisy: x, t: t, labels: y).gradient
        return ClassifierGuidance.conditionMean(mean: p.mean, variance: p.variance, gradient: g, scale: scale)
    }
}

/// The ancestral step's one optional hook (Algorithm 1 of Dhariwal & Nichol): replaces the mean μ_θ of
/// p_θ(x_{t−1} | x_t) before the step adds its noise, x_{t−1} = μ̃ + [t > 0] √Σ z. It sees x_t, the timesteps the
/// network was called with, and the step's ``ReverseParameters`` (after clipping or thresholding of x̂_0).
public protocol AncestralMeanCondition {
    func conditionMean(noisy x: Tensor, modelTimesteps t: [Int], _ p: ReverseParameters) -> Tensor
}
