// The σ-view solvers end to end through `NetworkDenoiser`: a network called at x_t and t, its output read as
// ε, x_0 or v, and x̂_0 thresholded inside the solver. Two oracles that share no code with `SigmaView`:
// the exact predictor of Gaussian data written in the VP variables (Ho et al. eq. 4, Salimans & Ho 2022),
// whose three parameterisations must give one sample; and diffusers' `DPMSolverMultistepScheduler` with
// `thresholding=True`, its VP-form update written out by hand below.

import Foundation
import TestSupport
import Testing
import Diffusion
import Tensors

/// The exact predictor of data 𝒩(μ, s²) per element at the trained timestep t (ᾱ = ᾱ_t), in the VP
/// variables, output as the network of `parameterisation` would:
///
///     x̂_0 = E[x_0 | x_t] = μ + √ᾱ s² (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ)
///     ε̂ = (x_t − √ᾱ x̂_0)/√(1 − ᾱ),    v̂ = √ᾱ ε̂ − √(1 − ᾱ) x̂_0           (Salimans & Ho 2022 §4)
///
/// With `learnedVariance` the output has 2C channels, the second half a constant the samplers must ignore.
final class GaussianPredictor: NoisePredictor {
    let alphasCumprod: [Double], mean: Double, std: Double, parameterisation: ModelMeanType, learnedVariance: Bool
    var isTraining = false
    private(set) var calls: [Int] = []
    init(alphasCumprod: [Double], mean: Double, std: Double, parameterisation: ModelMeanType, learnedVariance: Bool = false) {
        self.alphasCumprod = alphasCumprod; self.mean = mean; self.std = std
        self.parameterisation = parameterisation; self.learnedVariance = learnedVariance
    }
    func namedParameters() -> [(name: String, tensor: Tensor)] { [] }

    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        calls.append(t[0])
        let per = x.count / x.shape[0], v = std * std
        var out: [Double] = []
        for n in 0..<x.shape[0] {
            let a = alphasCumprod[t[n]], ra = a.squareRoot(), rb = (1 - a).squareRoot()
            let row = x.data[(n * per)..<((n + 1) * per)].map { xt -> Double in
                let x0 = mean + ra * v * (xt - ra * mean) / (a * v + 1 - a)
                let eps = (xt - ra * x0) / rb
                switch parameterisation {
                case .epsilon: return eps
                case .startX: return x0
                case .velocity: return ra * eps - rb * x0
                case .previousX: preconditionFailure("GaussianPredictor: no x_{t−1} output")
                }
            }
            out += row
            if learnedVariance { out += [Double](repeating: 0.25, count: per) }
        }
        var shape = x.shape
        if learnedVariance { shape[1] *= 2 }   // [N, 2C, …]: each sample's C channels of output, then C of variance values
        return Tensor(shape: shape, data: out)
    }
}

@Suite("σ-view solvers end to end through NetworkDenoiser: ε, x_0 and v models, dynamic thresholding")
struct NetworkDenoiserTests {
    static let (mu, std) = (0.3, 0.5)

    /// The solvers whose every evaluation is at a σ of the schedule (so at a trained σ on a trained table):
    /// the deterministic ones, the multistep ones, and two stochastic ones with replayed noise.
    static let solvers: [(String, SigmaSolver)] = [
        ("euler", .euler), ("heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1)), ("dpm++2m", .dpmpp2M),
        ("unipc-2 bh2", .uniPC(order: 2, variant: .bh2, corrector: true)), ("plms", .plms(warmUp: .plms)),
        ("euler-ancestral η=1", .eulerAncestral(eta: 1, noiseScale: 1)), ("dpm++2m-sde η=1", .dpmpp2MSDE(eta: 1, noiseScale: 1, correction: .midpoint)),
    ]

    /// On the trained σ of ddim10 (T = 1000) the network is called at exactly the trained t of each σ, so the
    /// exact predictor written as ε, x_0 or v is one denoiser D(x; σ): the three samples agree to rounding, and
    /// agree with the same solver run on the σ-form exact denoiser (s²x + σ²μ)/(s² + σ²) (`GaussianDenoiser`).
    /// Bound: 1e-13 absolute on samples of size about 1 (the conversions cancel digits of the σ-view state,
    /// σ·|x_t| ≈ 80 at t = 900; the worst seen is 9e-15, Heun's).
    @Test("the exact Gaussian predictor as ε, x_0, v (and ε with a learned-variance half) gives one sample, and the σ-form exact denoiser's",
          arguments: 0..<7)
    func parameterisations(_ which: Int) throws {
        let (name, solver) = Self.solvers[which]
        let T = 1000
        let xT = randomTensor([3, 1, 2, 2], seed: 21, in: -2...2)
        let sigmas = try SigmaSchedule.trained(.improvedDiffusion("ddim10")).sigmas(steps: 10, diffusion: GaussianDiffusion(schedule: .linear(), timesteps: T))
        func run(_ meanType: ModelMeanType, learned: Bool = false) throws -> (Tensor, [Int]) {
            let d = try GaussianDiffusion(schedule: .linear(), timesteps: T, meanType: meanType, varianceType: learned ? .learnedRange : .fixedSmall, lossType: learned ? .hybrid : .simple,
                                          clipDenoised: false)
            let net = GaussianPredictor(alphasCumprod: d.tables.alphasCumprod, mean: Self.mu, std: Self.std, parameterisation: meanType, learnedVariance: learned)
            let sampler = try SigmaSampler(sigmas: sigmas, solver: solver, denoiser: try NetworkDenoiser(diffusion: d))
            var g = RandomGenerator(seed: 5)
            return (try runReverseChain(model: net, from: xT, sampler: sampler, generator: &g), net.calls)
        }
        let (eps, epsCalls) = try run(.epsilon)
        // every call at a trained timestep of ddim10: 900, 800, …, 0 (Heun's second evaluations at the next one)
        #expect(Set(epsCalls).isSubset(of: Set(stride(from: 0, through: 900, by: 100))) && epsCalls.first == 900, "\(name): network timesteps \(epsCalls)")
        var g = RandomGenerator(seed: 5)
        let exact = SigmaView.scaled(vp: try runReverseChain(model: unusedNetwork, from: xT,
            sampler: try SigmaSampler(sigmas: sigmas, solver: solver, denoiser: GaussianDenoiser(mean: Self.mu, std: Self.std)), generator: &g), sigma: 0)
        let tol = Tolerance(rtol: 0, atol: 1e-13)
        for (label, (out, _)) in [("x0", try run(.startX)), ("v", try run(.velocity)), ("eps, learned variance", try run(.epsilon, learned: true))] {
            let c = Comparison("\(name): \(label)-model sample against the ε-model's", actual: out, expected: eps, tolerance: tol)
            print(c)
            #expect(c.passed, "\(c)")
        }
        let c = Comparison("\(name): ε-model sample against the σ-form exact denoiser's", actual: eps, expected: exact, tolerance: tol)
        print(c)
        #expect(c.passed, "\(c)")
    }

    /// diffusers' `DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, thresholding=True,
    /// dynamic_thresholding_ratio=p, sample_max_value=s_max, lower_order_final=False, final_sigmas_type="zero")`
    /// on given timesteps, written in its own VP variables (α_t = 1/√(1 + σ²), σ_t = σ α_t, λ = log α_t − log σ_t):
    ///
    ///     x̂_0 = (x − σ_t ε̂)/α_t (ε model)  or  α_t x − σ_t v̂ (v model);   then per sample
    ///     s = clamp(quantile_p |x̂_0|, 1, s_max),   x̂_0 ← clamp(x̂_0, −s, s)/s          (`_threshold_sample`)
    ///     first order:  x' = (σ_t'/σ_t) x − α_t' (e^{−h} − 1) x̂_0
    ///     2M:           x' = (σ_t'/σ_t) x − α_t' (e^{−h} − 1) m_0 − ½ α_t' (e^{−h} − 1)(m_0 − m_1)/r_0,   r_0 = h_0/h
    ///
    /// the first step and the step into σ = 0 first order. The quantile is torch's linear interpolation.
    static func diffusersDPMSolverThresholded(model: NoisePredictor, v: Bool, xT: Tensor, timesteps: [Int], alphasCumprod: [Double],
                                              percentile p: Double, maxScale: Double) -> (sample: [Double], scales: [Double]) {
        func quantile(_ values: [Double]) -> Double {
            let a = values.sorted(), h = Double(a.count - 1) * p, k = Int(h)
            return k + 1 < a.count ? a[k] + (h - Double(k)) * (a[k + 1] - a[k]) : a[k]
        }
        let n = xT.shape[0], per = xT.count / n
        let sig = timesteps.map { ((1 - alphasCumprod[$0]) / alphasCumprod[$0]).squareRoot() } + [0]
        func alpha(_ s: Double) -> Double { 1 / (1 + s * s).squareRoot() }
        func lambda(_ s: Double) -> Double { Foundation.log(alpha(s)) - Foundation.log(s * alpha(s)) }
        var x = xT.data, history: [[Double]] = [], scales: [Double] = []
        for (i, t) in timesteps.enumerated() {
            let (s, sn) = (sig[i], sig[i + 1])
            let (at, st) = (alpha(s), s * alpha(s))
            let out = model.predictNoise(Tensor(shape: xT.shape, data: x), at: [Int](repeating: t, count: n)).data
            var x0 = zip(x, out).map { v ? at * $0 - st * $1 : ($0 - st * $1) / at }
            for b in 0..<n {
                let r = (b * per)..<((b + 1) * per)
                let sc = min(max(quantile(x0[r].map(abs)), 1), maxScale)
                scales.append(sc)
                for j in r { x0[j] = min(max(x0[j], -sc), sc) / sc }
            }
            history.append(x0)
            if sn == 0 { x = x0; break }
            let (an, sgn) = (alpha(sn), sn * alpha(sn))
            let h = lambda(sn) - lambda(s), em = Foundation.expm1(-h)
            if i == 0 {
                x = zip(x, x0).map { sgn / st * $0 - an * em * $1 }
            } else {
                let r0 = (lambda(s) - lambda(sig[i - 1])) / h, m1 = history[history.count - 2]
                x = (0..<x.count).map { j in sgn / st * x[j] - an * em * x0[j] - 0.5 * an * em * (x0[j] - m1[j]) / r0 }
            }
        }
        return (x, scales)
    }

    @Test("DPM-Solver++(2M) with dynamic thresholding of x̂_0 (p = 0.9, s_max = 1.5), ε and v models: diffusers' thresholded update written by hand",
          arguments: [false, true])
    func dynamicThresholding(_ v: Bool) throws {
        let T = 1000
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: T, dataRange: -1...1, meanType: v ? .velocity : .epsilon, clipDenoised: false)
        // A model whose x̂_0 leaves [−1, 1] by a varying amount: the thresholding scales s fall below 1, between 1
        // and s_max, and at s_max over the run (checked below), so the test sees clamping and scaling.
        let net = ClosurePredictor { x, t in
            let c = Double(t[0]) / Double(T)
            return Tensor(shape: x.shape, data: x.data.enumerated().map { j, xv in (v ? -0.8 : 0.6) * xv + 0.7 * c * Foundation.sin(Double(j)) })
        }
        let xT = randomTensor([2, 1, 2, 2], seed: 31, in: -2.5...2.5)
        let kept = [900, 700, 500, 300, 100, 0]
        let sigmas = kept.map { SigmaView.sigma(alphaBar: d.tables.alphasCumprod[$0]) } + [0]
        let th = Thresholding.dynamic(percentile: 0.9, maxScale: 1.5)
        let sampler = try SigmaSampler(sigmas: sigmas, solver: .dpmpp2M, denoiser: NetworkDenoiser(diffusion: d, timestepConvention: .nearest, thresholding: th))
        var g = RandomGenerator(seed: 0)
        let out = try runReverseChain(model: net, from: xT, sampler: sampler, generator: &g)
        let oracle = Self.diffusersDPMSolverThresholded(model: net, v: v, xT: xT, timesteps: kept, alphasCumprod: d.tables.alphasCumprod,
                                                        percentile: 0.9, maxScale: 1.5)
        print("\(v ? "v" : "ε") model: thresholding scales s per step and sample \(oracle.scales.map { String(format: "%.4f", $0) })")
        #expect(oracle.scales.contains { $0 > 1 && $0 < 1.5 } && oracle.scales.contains(1.5) && oracle.scales.contains(1), "the run exercises every branch of s")
        let c = Comparison("dpm++2m + dynamic thresholding (\(v ? "v" : "ε") model) against diffusers' update by hand", actual: out.data, expected: oracle.sample, tolerance: .equation)
        print(c)
        #expect(c.passed, "\(c)")
        // and the thresholding matters: without it the sample differs
        let plain = try SigmaSampler(sigmas: sigmas, solver: .dpmpp2M, denoiser: NetworkDenoiser(diffusion: d, timestepConvention: .nearest, thresholding: .unchanged))
        let unthresholded = try runReverseChain(model: net, from: xT, sampler: plain, generator: &g)
        #expect(zip(unthresholded.data, oracle.sample).map { abs($0 - $1) }.max()! > 0.1)
    }
}
