import Foundation
import TestSupport
import Tensors
import Testing
@testable import Diffusion

/// `Fixtures/guidance.h5`, written by `Fixtures/make_guidance_fixtures.py` (numpy, independent of this code).
let guidanceFixture = FixtureFile("guidance.h5")

/// A conditional model that returns stored outputs: out_c[n] for a real label, out_u[n] for the null
/// class, where n is the sample's index modulo `out_c`'s batch (so [x; x] of a guided call finds both).
/// Counts its calls and records the batches and labels it saw.
final class StoredConditionalModel: ConditionalNoisePredictor {
    let conditional: Tensor, unconditional: Tensor
    let classCount: Int
    var isTraining = false
    var calls = 0
    var seen: [(batch: Int, labels: [Int], t: [Int])] = []
    init(conditional: Tensor, unconditional: Tensor, classCount: Int = 2) {
        self.conditional = conditional; self.unconditional = unconditional; self.classCount = classCount
    }
    func namedParameters() -> [(name: String, tensor: Tensor)] { [] }
    func predictNoise(_ x: Tensor, at t: [Int], labels: [Int]) -> Tensor {
        calls += 1
        seen.append((x.shape[0], labels, t))
        let n = conditional.shape[0], per = conditional.count / n
        var out: [Double] = []
        for (i, y) in labels.enumerated() {
            let source = y == classCount ? unconditional : conditional
            out += source.data[((i % n) * per)..<((i % n + 1) * per)]
        }
        return Tensor(shape: [labels.count] + Array(conditional.shape.dropFirst()), data: out)
    }
}

@Suite("Classifier-free guidance (Ho & Salimans 2022 eq. 6; Lin et al. 2024 §3.4) against guidance.h5")
struct GuidanceTests {
    static let cfgNames = ["w0_phi0", "w0_phi0.7", "w1_phi0", "w1_phi0.7", "w3_phi0", "w3_phi0.7"]

    @Test("/cfg: both conventions and the rescale at rtol 1e-13; w = 0 and s = 1 are ε_c bit for bit")
    func cfg() throws {
        let c = guidanceFixture.tensor("/cfg/eps_c"), u = guidanceFixture.tensor("/cfg/eps_u")
        for name in Self.cfgNames {
            let group = "/cfg/guided_" + name
            let w = guidanceFixture.doubleAttribute("w", of: group), s = guidanceFixture.doubleAttribute("s", of: group)
            let phi = guidanceFixture.doubleAttribute("phi", of: group)
            let byW = ClassifierFreeGuidance.rescaled(guided: ClassifierFreeGuidance.guided(conditional: c, unconditional: u, w: w), conditional: c, phi: phi)
            let byS = ClassifierFreeGuidance.rescaled(guided: ClassifierFreeGuidance.guided(conditional: c, unconditional: u, scale: s), conditional: c, phi: phi)
            guidanceFixture.expectMatches(byW, group)
            guidanceFixture.expectMatches(byS, group)
            #expect(byW.data == byS.data, "\(name): the same arithmetic inside both entry points")
            let whole = ClassifierFreeGuidance.guidedOutput(conditional: c, unconditional: u, .scale(s: s), rescale: phi, meanChannels: 1)
            #expect(whole.data == byS.data)
        }
        #expect(ClassifierFreeGuidance.guided(conditional: c, unconditional: u, w: 0).data == c.data, "w = 0: ε_c bit for bit")
        #expect(ClassifierFreeGuidance.guided(conditional: c, unconditional: u, scale: 1).data == c.data, "s = 1: ε_c bit for bit")
        #expect(GuidanceStrength.scale(s: 4).w == 3 && GuidanceStrength.paper(w: 3).s == 4)
        #expect(GuidanceStrength.paper(w: 3).convention == "paper-w" && GuidanceStrength.scale(s: 4).convention == "diffusers-s")
    }

    @Test("/ddim_step: one guided DDIM step through DDIMSampler and the guided wrapper (one 2N call), rtol 1e-13")
    func ddimStep() throws {
        let g = "/ddim_step"
        let x = guidanceFixture.tensor(g + "/x_t"), c = guidanceFixture.tensor(g + "/eps_c"), u = guidanceFixture.tensor(g + "/eps_u")
        let t = Int(guidanceFixture.doubleAttribute("t", of: g)), tPrev = Int(guidanceFixture.doubleAttribute("t_prev", of: g))
        let w = guidanceFixture.doubleAttribute("w", of: g)
        let diffusion = try GaussianDiffusion(DiffusionConfiguration(schedule: .linear(start: 1e-4, end: 0.02), timesteps: 1000))
        // diffusers' chain of 20 steps: …, 500 → 450, …
        let chain = try DDIMChain(diffusers: diffusion, timesteps: Array(stride(from: 950, through: 0, by: -50)), setAlphaToOne: false)
        let k = try #require(chain.steps.firstIndex { $0.t == t })
        #expect(chain.steps[k].alphaBarPrev == diffusion.tables.alphasCumprod[tPrev])
        let ab = guidanceFixture.doubleAttribute("alpha_bar_t", of: g), abPrev = guidanceFixture.doubleAttribute("alpha_bar_prev", of: g)
        print("ᾱ_500 = \(chain.steps[k].alphaBar) (fixture \(ab)), ᾱ_450 = \(chain.steps[k].alphaBarPrev) (fixture \(abPrev))")
        #expect(Tolerance.equation.ratio(actual: chain.steps[k].alphaBar, expected: ab) <= 1)
        #expect(Tolerance.equation.ratio(actual: chain.steps[k].alphaBarPrev, expected: abPrev) <= 1)
        let sampler = try DDIMSampler(chain: chain, eta: 0, meanType: .epsilon, thresholding: .unchanged, dataRange: -1...1)
        let model = StoredConditionalModel(conditional: c, unconditional: u)
        for strength in [GuidanceStrength.paper(w: w), .scale(s: 1 + w)] {
            model.calls = 0; model.seen = []
            let guided = try ClassifierFreeGuidedPredictor(model, labels: [0, 1], strength: strength, meanChannels: 1)
            guidanceFixture.expectMatches(guided.predictNoise(x, at: [t, t]), g + "/eps_guided")
            let step = try sampler.step(k, model: guided, x, noise: nil)
            guidanceFixture.expectMatches(step.predictedStart, g + "/x0_pred")
            guidanceFixture.expectMatches(step.next, g + "/x_prev")
            #expect(model.calls == 2, "one network call per evaluation (two evaluations here)")
            #expect(model.seen.allSatisfy { $0.batch == 4 && $0.labels == [0, 1, 2, 2] && $0.t == [t, t, t, t] }, "[x; x] with [y; ∅]: \(model.seen)")
        }
    }

    @Test("every sampler gets guidance through the one reverse chain: one call of 2N per step, w = 0 is the conditional chain bit for bit")
    func oneCallPerStep() throws {
        let c = randomTensor([2, 1, 2, 2], seed: 1), u = randomTensor([2, 1, 2, 2], seed: 2)
        let model = StoredConditionalModel(conditional: c, unconditional: u)
        let diffusion = try GaussianDiffusion(DiffusionConfiguration(schedule: .linear(start: 1e-3, end: 0.2), timesteps: 10, dataRange: -1...1))
        let spaced = try SpacedDiffusion(base: diffusion, spacing: .improvedDiffusion("4"), steps: 4)
        let sigmas = try SigmaSchedule.trained(.improvedDiffusion("4")).sigmas(steps: 4, diffusion: diffusion)
        func solver(_ s: SigmaSolver) throws -> ReverseSampler {
            try SigmaSampler(sigmas: sigmas, solver: s, denoiser: NetworkDenoiser(diffusion: diffusion, timestepConvention: .nearest))
        }
        let samplers: [(String, ReverseSampler)] = [("ancestral", AncestralSampler(diffusion)), ("respaced", AncestralSampler(spaced)),
                                                     ("DDIM", try DDIMSampler(spaced, eta: 0)), ("dpm++2m", try solver(.dpmpp2M)),
                                                     ("heun", try solver(.heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1)))]
        for (name, sampler) in samplers {
            // The unguided conditional chain's evaluations: one call of N per evaluation.
            model.calls = 0; model.seen = []
            var g0 = RandomGenerator(seed: 5)
            _ = try runReverseChain(model: ClassConditionedPredictor(model, labels: [1, 0]), from: randomTensor([2, 1, 2, 2], seed: 3), sampler: sampler, generator: &g0)
            let evaluations = model.calls
            model.calls = 0; model.seen = []
            let guided = try ClassifierFreeGuidedPredictor(model, labels: [1, 0], strength: .paper(w: 2), meanChannels: 1)
            var g1 = RandomGenerator(seed: 5)
            _ = try runReverseChain(model: guided, from: randomTensor([2, 1, 2, 2], seed: 3), sampler: sampler, generator: &g1)
            print("\(name): \(sampler.stepCount) steps, \(evaluations) evaluations unguided, \(model.calls) network calls guided, batches \(Set(model.seen.map(\.batch)))")
            #expect(model.calls == evaluations && evaluations >= sampler.stepCount, "\(name): one call per evaluation")
            #expect(model.seen.allSatisfy { $0.batch == 4 && $0.labels == [1, 0, 2, 2] }, "\(name): one batch of 2N")
            if name != "heun" { #expect(model.calls == sampler.stepCount, "\(name): one call per step") }
            // w = 0: the guided chain is the unguided conditional chain, bit for bit.
            let zero = try ClassifierFreeGuidedPredictor(model, labels: [1, 0], strength: .paper(w: 0), meanChannels: 1)
            var g2 = RandomGenerator(seed: 5), g3 = RandomGenerator(seed: 5)
            let a = try runReverseChain(model: zero, from: randomTensor([2, 1, 2, 2], seed: 3), sampler: sampler, generator: &g2)
            let b = try runReverseChain(model: ClassConditionedPredictor(model, labels: [1, 0]), from: randomTensor([2, 1, 2, 2], seed: 3), sampler: sampler, generator: &g3)
            #expect(a.data == b.data, "\(name): w = 0 is the conditional chain bit for bit")
        }
    }

    @Test("guidance interval (Kynkäänniemi et al. 2024): guided at the t inside, the conditional output bit for bit outside (one call of N there), per sample when t differ")
    func interval() throws {
        let c = randomTensor([2, 1, 2, 2], seed: 1), u = randomTensor([2, 1, 2, 2], seed: 2), x = randomTensor([2, 1, 2, 2], seed: 3)
        let model = StoredConditionalModel(conditional: c, unconditional: u)
        let full = try ClassifierFreeGuidedPredictor(model, labels: [1, 0], strength: .paper(w: 2), meanChannels: 1)
        let limited = try ClassifierFreeGuidedPredictor(model, labels: [1, 0], strength: .paper(w: 2), meanChannels: 1, interval: 3...6)
        let guided = full.predictNoise(x, at: [5, 5]).data
        model.calls = 0; model.seen = []
        #expect(limited.predictNoise(x, at: [5, 5]).data == guided)
        #expect(limited.predictNoise(x, at: [2, 2]).data == c.data, "outside: ε_c")
        #expect(limited.predictNoise(x, at: [7, 7]).data == c.data)
        #expect(model.seen.map(\.batch) == [4, 2, 2], "\(model.seen.map(\.batch))")
        let mixed = limited.predictNoise(x, at: [5, 9]).data
        #expect(Array(mixed[0..<4]) == Array(guided[0..<4]) && Array(mixed[4..<8]) == Array(c.data[4..<8]))
        // Through DDIM on T = 10, 4 steps (t = 9, 6, 3, 0): guided at 6 and 3 only.
        let diffusion = try GaussianDiffusion(DiffusionConfiguration(schedule: .linear(start: 1e-3, end: 0.2), timesteps: 10, dataRange: -1...1))
        let sampler = try DDIMSampler(try SpacedDiffusion(base: diffusion, spacing: .improvedDiffusion("4"), steps: 4), eta: 0)
        model.calls = 0; model.seen = []
        var g = RandomGenerator(seed: 5)
        _ = try runReverseChain(model: limited, from: x, sampler: sampler, generator: &g)
        #expect(model.seen.map(\.t[0]) == [9, 6, 3, 0] && model.seen.map(\.batch) == [2, 4, 4, 2], "\(model.seen.map { ($0.t[0], $0.batch) })")
    }

    @Test("the mean part in any parameterisation: guiding v (or x̂_0) equals guiding the ε it implies; a learned variance's half is the conditional one's")
    func parameterisations() throws {
        let x = randomTensor([2, 1, 3, 3], seed: 11), vc = randomTensor([2, 1, 3, 3], seed: 12), vu = randomTensor([2, 1, 3, 3], seed: 13)
        let ab = [0.3, 0.8]
        let w = 3.0
        let guidedV = ClassifierFreeGuidance.guided(conditional: vc, unconditional: vu, w: w)
        let viaV = GaussianDiffusion.noiseFromVelocity(noisy: x, alphaBar: ab, velocity: guidedV)
        let viaEps = ClassifierFreeGuidance.guided(conditional: GaussianDiffusion.noiseFromVelocity(noisy: x, alphaBar: ab, velocity: vc),
                                                   unconditional: GaussianDiffusion.noiseFromVelocity(noisy: x, alphaBar: ab, velocity: vu), w: w)
        let cv = Comparison("ε of guided v vs guided ε of v", actual: viaV, expected: viaEps, tolerance: .equation)
        print(cv); #expect(cv.passed, "\(cv)")
        let x0c = DDIM.predictStart(noisy: x, alphaBar: ab, noise: vc), x0u = DDIM.predictStart(noisy: x, alphaBar: ab, noise: vu)
        let viaX0 = DDIM.noise(noisy: x, alphaBar: ab, start: ClassifierFreeGuidance.guided(conditional: x0c, unconditional: x0u, w: w))
        let cx = Comparison("ε of guided x̂_0 vs guided ε", actual: viaX0, expected: ClassifierFreeGuidance.guided(conditional: vc, unconditional: vu, w: w),
                            tolerance: Tolerance(rtol: 1e-12, atol: 1e-14))
        print(cx); #expect(cx.passed, "\(cx)")
        // Weights that do not sum to 1 (a planted (1 + w) ε_c − w ε_u + 0.01 ε_u) break the equivalence.
        let planted = GaussianDiffusion.noiseFromVelocity(noisy: x, alphaBar: ab, velocity: guidedV + 0.01 * vu)
        #expect(!Comparison("planted", actual: planted, expected: viaEps, tolerance: .equation).passed)
        // Learned variance: channels 1 ..< 2 come from the conditional output unchanged.
        let c2 = randomTensor([2, 2, 3, 3], seed: 14), u2 = randomTensor([2, 2, 3, 3], seed: 15)
        let out = ClassifierFreeGuidance.guidedOutput(conditional: c2, unconditional: u2, .paper(w: w), rescale: 0.7, meanChannels: 1)
        #expect(out.slice(axis: 1, start: 1, length: 1).data == c2.slice(axis: 1, start: 1, length: 1).data)
        let mean = ClassifierFreeGuidance.rescaled(guided: ClassifierFreeGuidance.guided(conditional: c2.slice(axis: 1, start: 0, length: 1),
                                                                                         unconditional: u2.slice(axis: 1, start: 0, length: 1), w: w),
                                                   conditional: c2.slice(axis: 1, start: 0, length: 1), phi: 0.7)
        #expect(out.slice(axis: 1, start: 0, length: 1).data == mean.data)
    }

    /// ε_c and ε_u of the two-Gaussian mixture by Tweedie's route: the posterior mean of x_0 given x_t
    /// (per component, then weighted by the component posteriors p(k | x_t)), then ε = (x_t − √ā E[x_0|x_t]) / √(1 − ā).
    static func tweedie(x: [Double], means: [[Double]], weights: [Double], variance s2: Double, alphaBar a: Double)
        -> (conditional: [[Double]], unconditional: [Double]) {
        let d = x.count, v = a * s2 + 1 - a
        // E[x_0 | x_t, k] = μ_k + (√a s² / v)(x_t − √a μ_k)   (the Gaussian posterior of one component)
        let posteriorMeans = means.map { mu in (0..<d).map { mu[$0] + a.squareRoot() * s2 / v * (x[$0] - a.squareRoot() * mu[$0]) } }
        // p(k | x_t) ∝ π_k 𝒩(x_t; √a μ_k, v I), through the log weights (shift by the largest)
        let logs = zip(means, weights).map { mu, pi in
            Foundation.log(pi) - (0..<d).reduce(0) { $0 + (x[$1] - a.squareRoot() * mu[$1]) * (x[$1] - a.squareRoot() * mu[$1]) } / (2 * v)
        }
        let top = logs.max()!, e = logs.map { Foundation.exp($0 - top) }, r = e.map { $0 / e.reduce(0, +) }
        let mixtureMean = (0..<d).map { i in zip(r, posteriorMeans).reduce(0) { $0 + $1.0 * $1.1[i] } }
        func eps(_ m: [Double]) -> [Double] { (0..<d).map { (x[$0] - a.squareRoot() * m[$0]) / (1 - a).squareRoot() } }
        return (posteriorMeans.map(eps), eps(mixtureMean))
    }

    @Test("/mixture: exact ε_c, ε_u by Tweedie, guided by eq. 6, equal the oracle's score of p_t(x|c)^{1+w} / p_t(x)^w")
    func mixture() throws {
        let weights = guidanceFixture.doubleArrayAttribute("weights", of: "/mixture")
        let s2 = guidanceFixture.doubleAttribute("variance", of: "/mixture")
        let meansFlat = guidanceFixture.values("/mixture/means"), d = meansFlat.count / 2
        let means = [Array(meansFlat[0..<d]), Array(meansFlat[d...])]
        var worst = 0.0
        for group in ["a0.9", "a0.5", "a0.05"] {
            let g = "/mixture/" + group
            let a = guidanceFixture.doubleAttribute("alpha_bar", of: g)
            let xs = guidanceFixture.values(g + "/x_t"), rows = xs.count / d
            var cond: [[Double]] = [[], []], uncond: [Double] = []
            for r in 0..<rows {
                let e = Self.tweedie(x: Array(xs[(r * d)..<((r + 1) * d)]), means: means, weights: weights, variance: s2, alphaBar: a)
                cond[0] += e.conditional[0]; cond[1] += e.conditional[1]; uncond += e.unconditional
            }
            let shape = [rows, d]
            let tol = Tolerance.independentImplementation
            guidanceFixture.expectMatches(Tensor(shape: shape, data: uncond), g + "/eps_uncond", tolerance: tol)
            for c in 0..<2 {
                guidanceFixture.expectMatches(Tensor(shape: shape, data: cond[c]), g + "/eps_cond_c\(c)", tolerance: tol)
                for w in [1, 3] {
                    let guided = ClassifierFreeGuidance.guided(conditional: Tensor(shape: shape, data: cond[c]), unconditional: Tensor(shape: shape, data: uncond), w: Double(w))
                    let cmp = guidanceFixture.expectMatches(guided, g + "/eps_guided_w\(w)_c\(c)", tolerance: tol)
                    worst = max(worst, cmp.worstRatio)
                }
            }
        }
        print("mixture oracle: worst ratio over the guided ε (w = 1, 3; c = 0, 1; ᾱ = 0.9, 0.5, 0.05) \(worst) of \(Tolerance.independentImplementation)")
    }
}
