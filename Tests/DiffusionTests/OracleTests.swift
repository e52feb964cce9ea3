import Foundation
import TestSupport
import Testing
import Diffusion
import Tensors

/// An exact noise predictor given as a closure (the optimal ε for a known data distribution).
final class ClosurePredictor: NoisePredictor {
    let body: (Tensor, [Int]) -> Tensor
    var isTraining = false
    init(_ body: @escaping (Tensor, [Int]) -> Tensor) { self.body = body }
    func namedParameters() -> [(name: String, tensor: Tensor)] { [] }
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor { body(x, t) }
}

@Suite("End to end without a network: exact optimal predictors")
struct OracleTests {
    @Test("single-point data: the reverse chain returns x* to rounding")
    func singlePoint() throws {
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1, clipDenoised: false)
        let star = Tensor(shape: [2, 1, 2, 2], data: [0.1, 0.25, 0.5, 0.9, 0.0, 1.0, 0.33, 0.77])
        var rng = RandomGenerator(seed: 11)
        // For data that is the single point x*, E[ε | x_t] = (x_t − √ᾱ_t x*)/√(1 − ᾱ_t) exactly.
        let exact = ClosurePredictor { x, t in
            let a = d.tables.alphasCumprod[t[0]]
            return (x - a.squareRoot() * star) / (1 - a).squareRoot()
        }
        let x0 = try d.sampleLoop(model: exact, shape: star.shape, generator: &rng)
        let c = Comparison("single point", actual: x0, expected: star, tolerance: Tolerance(rtol: 0, atol: 1e-12))
        print("oracle \(c)")
        #expect(c.passed, "\(c)")
    }

    @Test("Gaussian data N(μ, s²): samples have mean μ and variance s² within 5 standard errors")
    func gaussianData() throws {
        let (mu, s) = (0.3, 0.2)
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1, clipDenoised: false)
        let n = 4000
        var rng = RandomGenerator(seed: 12)
        // x_t ~ N(√ᾱ μ, ᾱ s² + 1 − ᾱ), so E[ε | x_t] = √(1−ᾱ) (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ).
        let optimal = ClosurePredictor { x, t in
            let a = d.tables.alphasCumprod[t[0]]
            return (1 - a).squareRoot() * (x - a.squareRoot() * mu) / (a * s * s + 1 - a)
        }
        let samples = try d.sampleLoop(model: optimal, shape: [n, 1, 1, 1], generator: &rng).data
        let mean = samples.reduce(0, +) / Double(n)
        let variance = samples.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        // Standard errors for n = 4000: mean s/√n ≈ 0.0032, variance s²·√(2/(n−1)) ≈ 0.00089.
        let seMean = s / Double(n).squareRoot(), seVar = s * s * (2 / Double(n - 1)).squareRoot()
        print("oracle gaussian: mean \(mean) (μ \(mu), \(abs(mean - mu) / seMean) SE), variance \(variance) (s² \(s * s), \(abs(variance - s * s) / seVar) SE)")
        #expect(abs(mean - mu) < 5 * seMean, "mean \(mean) vs \(mu)")
        #expect(abs(variance - s * s) < 5 * seVar, "variance \(variance) vs \(s * s)")
    }
}

@Suite("Gradients through the diffusion equations (finite differences)")
struct DiffusionGradientTests {
    let d = fixtureDiffusion()

    @Test("q-sampling w.r.t. x_0")
    func qSampleGradient() throws {
        let x0 = Tensor(shape: [2, 1, 2, 2], data: Array(Inputs.x0.data.prefix(8)))
        let noise = Tensor(shape: [2, 1, 2, 2], data: Array(Inputs.noise.data.prefix(8)))
        let r = GradientCheck.check("qSample", inputs: [x0]) { try! d.qSample(start: x0, t: [3, 700], noise: noise) }
        print("gradcheck \(r)"); #expect(r.passed, "\(r)")
    }

    @Test("L_simple w.r.t. the model output")
    func simpleLossGradient() {
        let out = Tensor(shape: Inputs.output.shape, data: Inputs.output.data)
        let r = GradientCheck.check("L_simple", inputs: [out]) { d.simpleLoss(predictedNoise: out, noise: Inputs.noise) }
        print("gradcheck \(r)"); #expect(r.passed, "\(r)")
    }

    @Test("bound terms w.r.t. the model output, through the mean (no clipping, so no clamp kink)")
    func boundGradient() throws {
        let out = Tensor(shape: Inputs.output.shape, data: Inputs.output.data)
        let xt = Inputs.xt
        let r = GradientCheck.check("variationalBoundTerms", inputs: [out]) {
            try! d.variationalBoundTerms(modelOutput: out, start: Inputs.x0, noisy: xt, t: Inputs.t, clip: false).terms
        }
        print("gradcheck \(r)"); #expect(r.passed, "\(r)")
    }

    @Test("KL and decoder w.r.t. the means")
    func klAndDecoderGradients() {
        let m2 = DiffusionFixture.tensor("bound/kl_inputs/mean2"), lv2 = DiffusionFixture.tensor("bound/kl_inputs/logvar2")
        let m1 = DiffusionFixture.tensor("bound/kl_inputs/mean1"), lv1 = DiffusionFixture.tensor("bound/kl_inputs/logvar1")
        let kl = GradientCheck.check("normalKL", inputs: [m2, lv2]) {
            GaussianDiffusion.normalKL(mean1: m1, logVariance1: lv1, mean2: m2, logVariance2: lv2)
        }
        print("gradcheck \(kl)"); #expect(kl.passed, "\(kl)")
        let g = "bound/decoder/range11"
        let x = DiffusionFixture.tensor(g + "/x"), means = DiffusionFixture.tensor(g + "/means"), ls = DiffusionFixture.tensor(g + "/log_scales")
        let dec = GradientCheck.check("discretizedGaussianLogLikelihood", inputs: [means, ls]) {
            GaussianDiffusion.discretizedGaussianLogLikelihood(x, means: means, logScales: ls, dataRange: -1...1)
        }
        print("gradcheck \(dec)"); #expect(dec.passed, "\(dec)")
    }
}
