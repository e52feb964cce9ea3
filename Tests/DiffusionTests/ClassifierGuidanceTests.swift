// Classifier guidance (Dhariwal & Nichol 2021, Algorithms 1 and 2) against Fixtures/guidance.h5 (numpy,
// Fixtures/make_guidance_fixtures.py), and through the one reverse chain.

import Diffusion
import TestSupport
import Tensors
import Testing

// `guidanceFixture` (Fixtures/guidance.h5) is declared in GuidanceTests.swift.

/// A network that outputs a fixed tensor (whatever x and t are).
final class FixedPredictor: NoisePredictor {
    let output: Tensor
    var isTraining = false
    var calls: [[Int]] = []
    init(_ output: Tensor) { self.output = output }
    func namedParameters() -> [(name: String, tensor: Tensor)] { [] }
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor { calls.append(t); return output }
}

/// A classifier whose input gradient is a given g exactly: logits (⟨g_n, x_n⟩, 1000) for each sample n. For
/// class 0, log p = a − log(e^a + e^1000) and ∇ = g (1 − p_0), where p_0 = e^{a − 1000}/(…) is 0 in float64
/// for |a| ≪ 255 (e^{−745} is below the smallest subnormal), so ∇ log p_φ(0 | x) = g bit for bit.
final class LinearClassifier: NoisyClassifier {
    let g: Tensor
    var isTraining = false
    var seen: [[Int]] = []
    init(gradient: Tensor) { g = gradient }
    var classes: Int { 2 }
    func namedParameters() -> [(name: String, tensor: Tensor)] { [] }
    func classifierLogits(_ x: Tensor, at t: [Int]) -> Tensor {
        seen.append(t)
        let n = x.shape[0]
        let a = (x * g).sum(alongAxes: Array(1..<x.rank)).reshaped([n, 1])
        return Tensor.concatenate([a, Tensor.full([n, 1], 1000)], axis: 1)
    }
}

@Suite("Classifier guidance: Algorithms 1 and 2 against guidance.h5 (rtol 1e-13)")
struct ClassifierGuidanceFixtureTests {
    func t(_ name: String) -> Tensor { guidanceFixture.tensor(name) }

    @Test("/classifier_mean: μ + s Σ g (conditionMean), by the function and by the ancestral hook; x_{t−1} through pSample's hook")
    func conditionMean() throws {
        let g = "/classifier_mean/"
        let s = guidanceFixture.doubleAttribute("scale", of: "/classifier_mean")
        #expect(s == 2)
        let shifted = ClassifierGuidance.conditionMean(mean: t(g + "mean"), variance: t(g + "variance"), gradient: t(g + "grad"), scale: s)
        guidanceFixture.expectMatches(shifted, g + "mean_shifted")
        // The hook: the stand-in classifier's reverse-mode gradient is the stored g exactly.
        let hook = try ClassifierMeanGuidance(classifier: LinearClassifier(gradient: t(g + "grad")), labels: [0], scale: s)
        let variance = t(g + "variance")
        let p = ReverseParameters(mean: t(g + "mean"), variance: variance, logVariance: variance.log(), predictedStart: t(g + "x_t"))
        guidanceFixture.expectMatches(withoutGradients { hook.conditionMean(noisy: t(g + "x_t"), modelTimesteps: [5, 5], p) }, g + "mean_shifted")
        // x_{t−1} = μ̃ + √Σ z through the ancestral step with a learned variance (log σ² = the output's second half).
        let d = try GaussianDiffusion(timesteps: 10, varianceType: .learned, lossType: .hybrid, clipDenoised: false)
        let out = Tensor.concatenate([Tensor.zeros([2, 1, 4, 4]), variance.log()], axis: 1)
        let step = try d.pSample(modelOutput: out, noisy: t(g + "x_t"), t: [5, 5], noise: t(g + "noise"), clip: false,
                                 conditionMean: { _ in shifted })
        guidanceFixture.expectMatches(step.sample, g + "x_prev")
    }

    @Test("/classifier_score: ε̂ − √(1 − ᾱ_t) s g (conditionScore), then x̂_0 and the DDIM step (η = 0); the wrapper predictor in a DDIM sampler step")
    func conditionScore() throws {
        let g = "/classifier_score/", attrs = "/classifier_score"
        let s = guidanceFixture.doubleAttribute("scale", of: attrs), ab = guidanceFixture.doubleAttribute("alpha_bar_t", of: attrs)
        let abPrev = guidanceFixture.doubleAttribute("alpha_bar_prev", of: attrs)
        let eps = ClassifierGuidance.conditionScore(noise: t(g + "eps"), alphaBar: [ab, ab], gradient: t(g + "grad"), scale: s)
        guidanceFixture.expectMatches(eps, g + "eps_guided")
        let x0 = DDIM.predictStart(noisy: t(g + "x_t"), alphaBar: [ab, ab], noise: eps)
        guidanceFixture.expectMatches(x0, g + "x0_pred")
        guidanceFixture.expectMatches(DDIM.step(predictedStart: x0, noise: eps, alphaBarPrev: [abPrev, abPrev], sigma: [0, 0], z: nil), g + "x_prev")

        // The same through the library: Ho's linear schedule (T = 1000), ᾱ from its tables, DDIM from 500 to 450
        // (diffusers' chain of 20 steps, jump 50), the wrapper calling the stand-ins inside withoutGradients.
        let base = try GaussianDiffusion(timesteps: 1000, clipDenoised: false)
        #expect(base.tables.alphasCumprod[500] == ab && base.tables.alphasCumprod[450] == abPrev, "the fixture's schedule is the library's")
        let model = FixedPredictor(t(g + "eps")), classifier = LinearClassifier(gradient: t(g + "grad"))
        let guided = try ClassifierScoreGuidance(model: model, classifier: classifier, diffusion: base, labels: [0], scale: s)
        let chain = try DDIMChain(diffusers: base, timesteps: Array(stride(from: 950, through: 0, by: -50)), setAlphaToOne: true)
        let k = chain.steps.firstIndex { $0.t == 500 }!
        #expect(chain.steps[k].alphaBarPrev == abPrev)
        let sampler = try DDIMSampler(chain: chain, eta: 0, meanType: .epsilon, thresholding: .unchanged, dataRange: 0...1)
        let r = try withoutGradients { try sampler.step(k, model: guided, t(g + "x_t"), noise: nil) }
        guidanceFixture.expectMatches(r.predictedStart, g + "x0_pred")
        guidanceFixture.expectMatches(r.next, g + "x_prev")
        #expect(classifier.seen == [[500, 500]] && model.calls == [[500, 500]], "the classifier sees the network's timestep")
    }
}

@Suite("Classifier guidance through the one reverse chain")
struct ClassifierGuidanceChainTests {
    let x = randomTensor([2, 1, 4, 4], seed: 21)
    let grad = randomTensor([2, 1, 4, 4], seed: 22)

    @Test("scale 0 gives the unguided chain bit for bit: ancestral with the mean hook, respaced ancestral, DDIM with the score wrapper")
    func scaleZero() throws {
        let base = try GaussianDiffusion(timesteps: 20)
        let model = AffineNoisePredictor(channels: 1, timesteps: 20, seed: 3)
        let classifier = LinearClassifier(gradient: grad)
        let spaced = try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim5"), steps: 5)
        let samplers: [(String, ReverseSampler, ReverseSampler, NoisePredictor)] = [
            ("full ancestral", AncestralSampler(base), AncestralSampler(base, meanCondition: try ClassifierMeanGuidance(classifier: classifier, labels: [0], scale: 0)), model),
            ("respaced ancestral", AncestralSampler(spaced), AncestralSampler(spaced, meanCondition: try ClassifierMeanGuidance(classifier: classifier, labels: [0], scale: 0)), model),
            ("DDIM", try DDIMSampler(spaced, eta: 0), try DDIMSampler(spaced, eta: 0),
             try ClassifierScoreGuidance(model: model, classifier: classifier, diffusion: base, labels: [0], scale: 0)),
        ]
        for (name, plain, guided, guidedModel) in samplers {
            var g1 = RandomGenerator(seed: 4), g2 = RandomGenerator(seed: 4)
            let a = try runReverseChain(model: model, from: x, sampler: plain, generator: &g1)
            let b = try runReverseChain(model: guidedModel, from: x, sampler: guided, generator: &g2)
            #expect(a.data == b.data, "\(name): scale 0 differs from the unguided chain")
        }
        #expect(!classifier.seen.isEmpty, "the classifier was called")
    }

    @Test("one guided ancestral step = the unguided step + s Σ g, with the classifier at the original timestep of a respaced chain")
    func ancestralStepShift() throws {
        let base = try GaussianDiffusion(timesteps: 20, clipDenoised: false)
        let spaced = try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim5"), steps: 5)
        let model = AffineNoisePredictor(channels: 1, timesteps: 20, seed: 3)
        let classifier = LinearClassifier(gradient: grad)
        let z = randomTensor([2, 1, 4, 4], seed: 23)
        let plain = try withoutGradients { try spaced.denoise(model: model, x, at: [3, 3], noise: z) }
        let guided = try withoutGradients {
            try spaced.denoise(model: model, x, at: [3, 3], noise: z, condition: try ClassifierMeanGuidance(classifier: classifier, labels: [0], scale: 1.5))
        }
        #expect(classifier.seen == [[spaced.timestepMap[3], spaced.timestepMap[3]]], "classifier called at \(classifier.seen), expected the original timestep \(spaced.timestepMap[3])")
        let variance = spaced.spaced.tables.posteriorVariance[3]
        let expected = plain.sample + (1.5 * variance) * grad
        let c = Comparison("guided ancestral step", actual: guided.sample, expected: expected, tolerance: .equation)
        print("check \(c)")
        #expect(c.passed, "\(c)")
        #expect(guided.predictedStart.data == plain.predictedStart.data, "x̂_0 is not guided")
    }

    @Test("the two forms on the ancestral chain (no clipping): Algorithm 1 shifts μ by s β̃_t g, Algorithm 2's ε̂ − √(1−ᾱ_t) s g shifts it by s (β_t/√α_t) g")
    func formsCompared() throws {
        let base = try GaussianDiffusion(timesteps: 1000, clipDenoised: false)
        let model = AffineNoisePredictor(channels: 1, timesteps: 1000, seed: 3)
        let classifier = LinearClassifier(gradient: grad)
        let z = randomTensor([2, 1, 4, 4], seed: 24), t = [500, 500], s = 2.0
        let plain = try withoutGradients { try base.denoise(model: model, x, at: t, noise: z) }.sample
        let mean = try withoutGradients {
            try base.denoise(model: model, x, at: t, noise: z, condition: try ClassifierMeanGuidance(classifier: classifier, labels: [0], scale: s))
        }.sample
        let score = try withoutGradients {
            try base.denoise(model: try ClassifierScoreGuidance(model: model, classifier: classifier, diffusion: base, labels: [0], scale: s), x, at: t, noise: z)
        }.sample
        let beta = base.tables.betas[500], tildeBeta = base.tables.posteriorVariance[500]
        // The difference of two O(1) steps carries their rounding: compare at rtol 1e-10 relative to the shift.
        let tol = Tolerance(rtol: 1e-10, atol: 1e-15)
        let c1 = Comparison("mean form − plain vs s β̃_t g", actual: (mean - plain).data, expected: (grad * (s * tildeBeta)).data, tolerance: tol)
        let c2 = Comparison("score form − plain vs s β_t/√α_t g", actual: (score - plain).data, expected: (grad * (s * beta / (1 - beta).squareRoot())).data, tolerance: tol)
        print("check \(c1)\ncheck \(c2)\nratio of the shifts at t = 500: \(beta / (1 - beta).squareRoot() / tildeBeta)")
        #expect(c1.passed, "\(c1)")
        #expect(c2.passed, "\(c2)")
    }

    @Test("refusals: an x_0-predicting model for condition_score, a class the classifier lacks, no labels, a non-finite scale")
    func refusals() throws {
        let classifier = LinearClassifier(gradient: grad)
        let x0Model = try GaussianDiffusion(timesteps: 10, meanType: .startX)
        let model = AffineNoisePredictor(channels: 1, timesteps: 10)
        expectError(.invalidConfiguration, mentioning: ["ε-predicting", "x0"]) {
            _ = try ClassifierScoreGuidance(model: model, classifier: classifier, diffusion: x0Model, labels: [0], scale: 1)
        }
        expectError(.invalidValue, mentioning: ["class 2", "0 ..< 2"]) { _ = try ClassifierMeanGuidance(classifier: classifier, labels: [0, 2], scale: 1) }
        expectError(.invalidValue, mentioning: ["at least one class"]) { _ = try ClassifierMeanGuidance(classifier: classifier, labels: [], scale: 1) }
        expectError(.invalidValue, mentioning: ["finite scale"]) { _ = try ClassifierMeanGuidance(classifier: classifier, labels: [0], scale: .nan) }
    }
}
