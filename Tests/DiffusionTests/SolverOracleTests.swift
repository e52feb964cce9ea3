// The σ-view solvers against oracles that need no fixture: exact identities (DPM-Solver-1 = DDIM η = 0,
// Euler ancestral η = 0 = Euler, Euler on Dirac data lands on x*, a multistep solver's first step is its
// one-step method), convergence orders on Gaussian data where the probability-flow ODE has a closed form,
// and the stochastic solvers' output law, which is Gaussian in closed form for Gaussian data.

import Foundation
import TestSupport
import Testing
import Diffusion
import Tensors

// `GaussianDenoiser` (Sources/Diffusion/Solvers/GaussianCase.swift): the exact denoiser of 𝒩(μ, s²) data and the
// probability-flow ODE's closed-form solution, pinned by hand in `gaussianCase` below.

/// Dirac data at x*: D(x; σ) = x* for every x and σ; ε̂ = (x − x*)/σ.
struct DiracDenoiser: SigmaDenoiser {
    var target: Tensor
    func denoise(model: NoisePredictor, _ x: Tensor, sigma s: Double) throws -> SigmaPrediction {
        SigmaPrediction(denoised: target, noise: (x - target) / s)
    }
    func modelTimestep(sigma: Double) -> Int { 0 }
}

/// A network that is never called (the test denoisers ignore it).
var unusedNetwork: AffineNoisePredictor { AffineNoisePredictor(channels: 1, timesteps: 10) }

/// Runs `sampler` through the one reverse chain from the σ-view state `x` at σ_0; returns the σ-view result
/// at the schedule's last σ.
func runSigma(_ sampler: SigmaSampler, from x: Tensor, noise: [Tensor]? = nil, seed: UInt64 = 0,
              onStep: ((ReverseChainStep) -> Void)? = nil) throws -> Tensor {
    var g = RandomGenerator(seed: seed)
    let out = try runReverseChain(model: unusedNetwork, from: SigmaView.vp(x, sigma: sampler.sigmas[0]), sampler: sampler,
                                  generator: &g, noise: noise, onStep: onStep)
    return SigmaView.scaled(vp: out, sigma: sampler.sigmas.last!)
}

func relativeWorst(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { abs($0 - $1) / max(abs($1), 1e-300) }.max() ?? 0
}

@Suite("σ-view solvers: exact identities")
struct SolverIdentityTests {
    @Test("DPM-Solver-1 (and Euler) on the trained σ of ddim10 = DDIM η = 0 on the same timesteps, step by step")
    func dpmSolver1IsDDIM() throws {
        let base = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1, clipDenoised: false)
        let spaced = try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim10"), steps: 10)
        let net = AffineNoisePredictor(channels: 2, timesteps: 1000, seed: 7)
        let xT = randomTensor([3, 2, 2, 2], seed: 11, in: -2...2)
        var g = RandomGenerator(seed: 1)
        var ddimSteps: [Tensor] = []
        let ddim = try runReverseChain(model: net, from: xT, sampler: DDIMSampler(spaced, eta: 0), generator: &g) { ddimSteps.append($0.next) }
        let sigmas = try SigmaSchedule.trained(.improvedDiffusion("ddim10")).sigmas(steps: 10, diffusion: base)
        for (solver, bound) in [(SigmaSolver.dpmSolver(order: 1), 1e-12), (.euler, 1e-12), (.dpmpp2M, 0.0)] {
            let denoiser = try NetworkDenoiser(diffusion: base, timestepConvention: .nearest)
            let s = try SigmaSampler(sigmas: sigmas, solver: solver, denoiser: denoiser)
            var steps: [Tensor] = [], ts: [Int] = []
            let out = try runReverseChain(model: net, from: xT, sampler: s, generator: &g) { steps.append($0.next); ts.append($0.t) }
            #expect(ts == spaced.timestepMap.reversed(), "\(solver): network timesteps \(ts)")
            if solver == .dpmpp2M {
                // only the first step is first order: it must equal DDIM's; later steps differ (second order)
                let w = relativeWorst(steps[0].data, ddimSteps[0].data)
                print("identity dpm++2m step 0 vs DDIM: worst relative \(w)")
                #expect(w <= 1e-12)
                continue
            }
            let worst = zip(steps, ddimSteps).map { relativeWorst($0.data, $1.data) }.max()!
            print("identity \(solver) vs DDIM η = 0, 10 steps: worst relative error over every step \(worst) (bound \(bound)); final \(relativeWorst(out.data, ddim.data))")
            #expect(worst <= bound)
        }
    }

    @Test("Euler ancestral with η = 0 is Euler, bit for bit; DPM++(2S) with η = 0 draws no noise")
    func ancestralEtaZero() throws {
        let sigmas = SigmaSchedule.karras(steps: 12, sigmaMin: 0.02, sigmaMax: 20, rho: 7) + [0]
        let d = GaussianDenoiser(mean: 0.3, std: 0.5)
        let x = randomTensor([50, 1], seed: 3, in: -30...30)
        let a = try runSigma(SigmaSampler(sigmas: sigmas, solver: .euler, denoiser: d), from: x)
        let eta0 = try SigmaSampler(sigmas: sigmas, solver: .eulerAncestral(eta: 0, noiseScale: 1), denoiser: d)
        #expect((0..<eta0.stepCount).allSatisfy { !eta0.drawsNoise(atStep: $0) })
        let b = try runSigma(eta0, from: x, seed: 99)
        print("identity euler-ancestral η = 0 vs euler: \(zip(a.data, b.data).filter { $0 != $1 }.count) of \(a.count) values differ")
        #expect(a.data == b.data)
        let s2 = try SigmaSampler(sigmas: sigmas, solver: .dpmpp2S(eta: 0, noiseScale: 1), denoiser: d)
        #expect((0..<s2.stepCount).allSatisfy { !s2.drawsNoise(atStep: $0) })
    }

    @Test("Euler with the exact ε̂ of Dirac data lands on x* from any start in any number of steps", arguments: [1, 2, 7, 30])
    func diracEuler(_ n: Int) throws {
        let target = randomTensor([4, 1, 2, 2], seed: 5)
        let d = DiracDenoiser(target: target)
        for (j, sigmas) in [SigmaSchedule.karras(steps: n, sigmaMin: 0.01, sigmaMax: 80, rho: 7) + [0],
                            SigmaSchedule.exponential(steps: n, sigmaMin: 0.1, sigmaMax: 5) + [0]].enumerated() {
            let x = randomTensor([4, 1, 2, 2], seed: UInt64(10 + j), in: -200...200)
            let out = try runSigma(SigmaSampler(sigmas: sigmas, solver: .euler, denoiser: d), from: x)
            let worst = zip(out.data, target.data).map { abs($0 - $1) }.max()!
            print("identity euler on Dirac data, \(n) steps, schedule \(j): worst |x − x*| = \(worst)")
            #expect(worst <= 1e-12)
        }
    }

    @Test("multistep first steps: UniPC and DPM++(2M) SDE (η = 0) start with DPM-Solver++(1); diffusers' PLMS starts with Heun")
    func multistepFirstSteps() throws {
        let sigmas = SigmaSchedule.karras(steps: 8, sigmaMin: 0.05, sigmaMax: 10, rho: 7)
        let d = GaussianDenoiser(mean: -0.2, std: 0.7)
        let x = randomTensor([20, 1], seed: 8, in: -15...15)
        func firstStep(_ solver: SigmaSolver) throws -> [Double] {
            var first: [Double] = []
            _ = try runSigma(SigmaSampler(sigmas: sigmas, solver: solver, denoiser: d), from: x) { if first.isEmpty { first = $0.next.data } }
            return first
        }
        let one = try firstStep(.dpmSolver(order: 1))
        for solver in [SigmaSolver.dpmpp2M, .uniPC(order: 3, variant: .bh1, corrector: true), .uniPC(order: 2, variant: .bh2, corrector: true),
                       .dpmpp2MSDE(eta: 0, noiseScale: 1, correction: .midpoint)] {
            let w = relativeWorst(try firstStep(solver), one)
            print("identity first step of \(solver) vs DPM-Solver-1: worst relative \(w)")
            #expect(w <= 1e-13)
        }
        let w = relativeWorst(try firstStep(.plms(warmUp: .plms)), try firstStep(.heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1)))
        print("identity first step of PLMS (diffusers warm-up) vs Heun: worst relative \(w)")
        #expect(w <= 1e-13)
    }
}

/// The convergence measurement (`SolverConvergence`: data 𝒩(0.3, 0.5²), Karras σ 10 → 0.05, nine starts).
typealias GaussianConvergence = SolverConvergence
let convergenceCases = SolverConvergence.cases

@Suite("σ-view solvers: convergence order on Gaussian data (closed-form probability-flow ODE)")
struct SolverConvergenceTests {
    /// Margins on the observed order (slope over N = 20, 40, 80): at most 0.3 below the method's order and at
    /// most 0.5 above it (on Gaussian data DPM-Solver-3's leading error term is small: 3.4 is observed at N ≤ 80).
    static let below = 0.3, above = 0.5

    static func measure(_ cases: [(name: String, solver: SigmaSolver, order: Double)], steps: [Int] = GaussianConvergence.steps,
                        grid: (Int) -> [Double], title: String) throws {
        var table = "solver | order | " + steps.map { "N=\($0)" }.joined(separator: " | ") + " | observed | NFE at N=\(steps.last!)\n"
        var failures: [String] = []
        for c in cases {
            let e = try GaussianConvergence.errors(c.solver, steps: steps, grid: grid)
            let o = GaussianConvergence.order(e)
            table += "\(c.name) | \(c.order) | " + e.map { String(format: "%.3e", $0.error) }.joined(separator: " | ")
                + String(format: " | %.2f | %d\n", o, e.last!.evaluations)
            if o < c.order - below || o > c.order + above { failures.append("\(c.name): observed \(o), expected \(c.order) − \(below) … + \(above)") }
        }
        print("convergence (data 𝒩(0.3, 0.5²), \(title), max error over 9 starts):\n" + table)
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test("the Gaussian case by hand: D(2; 1) = (0.25·2 + 0.3)/1.25 = 0.64, ε̂ = 1.36, and x(0) from x(1) = 2 is 0.3 + 1.7/√5")
    func gaussianCase() throws {
        let d = GaussianDenoiser(mean: 0.3, std: 0.5)
        let p = try d.denoise(model: unusedNetwork, Tensor(shape: [1, 1], data: [2]), sigma: 1)
        print("Gaussian case: D = \(p.denoised.data[0]), ε̂ = \(p.noise.data[0]), x(0) = \(d.exact(2, from: 1, to: 0))")
        #expect(abs(p.denoised.data[0] - 0.64) <= 1e-15 && abs(p.noise.data[0] - 1.36) <= 1e-15)
        #expect(abs(d.exact(2, from: 1, to: 0) - (0.3 + 1.7 / 5.0.squareRoot())) <= 1e-15)
        // the order fit: errors C·N^{-2} exactly give slope 2
        #expect(abs(SolverConvergence.order([20, 40, 80].map { SolverConvergence.Point(n: $0, error: 3 / Double($0 * $0), evaluations: $0) }) - 2) <= 1e-12)
    }

    @Test("terminal error at N = 5 … 80 and the observed order of every deterministic solver, Karras σ (ρ = 7)")
    func orders() throws {
        try Self.measure(convergenceCases, grid: GaussianConvergence.karras, title: "Karras ρ = 7, σ 10 → 0.05")
    }

    /// On this grid Adams–Bashforth 4 itself is still approaching its order at N = 80 (slope 3.67 over 40 → 80
    /// with an exact warm-up; 3.96 over 160 → 320), so the fit uses N = 80, 160, 320.
    @Test("PLMS on a grid uniform in σ (N = 20 … 320): order 4 with either warm-up")
    func plmsUniform() throws {
        try Self.measure([("euler", .euler, 1), ("heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1), 2),
                          ("plms (prk warm-up)", .plms(warmUp: .pseudoRungeKutta), 4), ("plms (diffusers warm-up)", .plms(warmUp: .plms), 4)],
                         steps: [20, 40, 80, 160, 320], grid: { SigmaSchedule.linspace(2, GaussianConvergence.sigmaMin, $0 + 1) }, title: "σ uniform 2 → 0.05")
    }
}

/// The law of a linear-Gaussian chain on (x_k, x_{k−1}): mean m and covariance C, pushed through
/// x' = a x + c x_prev + b + g z with z ~ 𝒩(0, 1). Scalar arithmetic from the solvers' published step
/// formulas with the affine denoiser of 𝒩(μ, s²) data, D(x; σ) = α(σ) x + β(σ), α = s²/(s² + σ²), β = σ²μ/(s² + σ²).
struct GaussianLaw {
    var m = [0.0, 0.0], c = [[0.0, 0.0], [0.0, 0.0]]
    init(mean: Double, variance: Double) { m = [mean, 0]; c = [[variance, 0], [0, 0]] }
    mutating func push(a: Double, prev: Double = 0, b: Double, g: Double) {
        let v = a * a * c[0][0] + 2 * a * prev * c[0][1] + prev * prev * c[1][1] + g * g
        let cov = a * c[0][0] + prev * c[0][1]
        m = [a * m[0] + prev * m[1] + b, m[0]]
        c = [[v, cov], [cov, c[0][0]]]
    }
    var mean: Double { m[0] }
    var variance: Double { c[0][0] }
}

@Suite("σ-view solvers: the stochastic samplers' output law on Gaussian data (closed form, 5 standard errors)")
struct SolverLawTests {
    static let (mu, std) = (0.3, 0.5)
    static let sigmas = SigmaSchedule.karras(steps: 10, sigmaMin: 0.05, sigmaMax: 10, rho: 7) + [0]
    static func alpha(_ s: Double) -> Double { std * std / (std * std + s * s) }
    static func beta(_ s: Double) -> Double { s * s * mu / (std * std + s * s) }

    /// The closed-form law of the output for each solver (per element; the start is 𝒩(0, 1 + σ_0²)).
    static func law(_ solver: SigmaSolver) -> GaussianLaw {
        var law = GaussianLaw(mean: 0, variance: 1 + sigmas[0] * sigmas[0])
        var hLast: Double? = nil
        for k in 0..<(sigmas.count - 1) {
            let (s, sn) = (sigmas[k], sigmas[k + 1])
            let (al, be) = (alpha(s), beta(s))
            switch solver {
            case let .eulerAncestral(eta, _):
                // k-diffusion get_ancestral_step, then x' = x + (σ_down − σ)(x − D)/σ + σ_up z
                let up = sn == 0 ? 0 : min(sn, eta * (sn * sn * (s * s - sn * sn) / (s * s)).squareRoot())
                let down = (sn * sn - up * up).squareRoot()
                law.push(a: 1 + (down - s) * (1 - al) / s, b: -(down - s) * be / s, g: up)
            case let .dpmpp2S(eta, _):
                let up = sn == 0 ? 0 : min(sn, eta * (sn * sn * (s * s - sn * sn) / (s * s)).squareRoot())
                let down = (sn * sn - up * up).squareRoot()
                if down == 0 { law.push(a: al, b: be, g: 0); continue }
                // u = (σ_m/σ) x − (e^{−h/2} − 1) D(x; σ),  x' = (σ_down/σ) x − (e^{−h} − 1) D(u; σ_m) + σ_up z
                let h = log(s / down), sm = exp(log(s) - h / 2)
                let (pu, qu) = (sm / s - expm1(-h / 2) * al, -expm1(-h / 2) * be)
                let (am, bm) = (alpha(sm), beta(sm))
                law.push(a: down / s - expm1(-h) * am * pu, b: -expm1(-h) * (am * qu + bm), g: up)
            case let .dpmpp2MSDE(eta, _, _):
                if sn == 0 { law.push(a: al, b: be, g: 0); continue }
                // x' = (σ'/σ)e^{−ηh} x + c D(x) + ½ c (D(x) − D(x_prev; σ_prev))/r + σ'√(1 − e^{−2ηh}) z,  c = 1 − e^{−h−ηh}
                let h = log(s / sn), c = 1 - exp(-h - eta * h)
                var a = sn / s * exp(-eta * h) + c * al, prev = 0.0, b = c * be
                if let hl = hLast {
                    let r = hl / h, sp = sigmas[k - 1]
                    a += 0.5 * c / r * al; prev = -0.5 * c / r * alpha(sp); b += 0.5 * c / r * (be - beta(sp))
                }
                law.push(a: a, prev: prev, b: b, g: sn * (1 - exp(-2 * eta * h)).squareRoot())
                hLast = h
            case let .heun(churn, tMin, tMax, _):
                // x̂ = x + √(σ̂² − σ²) z, then Heun from σ̂ (Karras Alg. 2): x' = H x̂ + K
                let gamma = s >= tMin && s <= tMax ? min(churn / Double(sigmas.count - 1), 2.0.squareRoot() - 1) : 0
                let sh = s * (1 + gamma), g = (sh * sh - s * s).squareRoot()
                let (ah, bh) = (alpha(sh), beta(sh))
                let e = 1 + (sn - sh) * (1 - ah) / sh, f = -(sn - sh) * bh / sh
                var H = e, K = f
                if sn > 0 {
                    let (a2, b2) = (alpha(sn), beta(sn))
                    H = 1 + (sn - sh) / 2 * ((1 - ah) / sh + (1 - a2) * e / sn)
                    K = (sn - sh) / 2 * (-bh / sh + ((1 - a2) * f - b2) / sn)
                }
                law.push(a: H, b: K, g: H * g)
            default: preconditionFailure("no law for \(solver)")
            }
        }
        return law
    }

    @Test("Euler ancestral, DPM++(2S) ancestral, DPM++(2M) SDE and Heun with churn: sample mean and variance within 5 standard errors",
          arguments: [SigmaSolver.eulerAncestral(eta: 1, noiseScale: 1), .dpmpp2S(eta: 1, noiseScale: 1),
                      .dpmpp2MSDE(eta: 1, noiseScale: 1, correction: .midpoint), .heun(churn: 20, tMin: 0.05, tMax: 5, noiseScale: 1)])
    func law(_ solver: SigmaSolver) throws {
        let n = 20_000
        var g = RandomGenerator(seed: 2026)
        let x = Tensor.randomNormal([n, 1], generator: &g) * (1 + Self.sigmas[0] * Self.sigmas[0]).squareRoot()
        let sampler = try SigmaSampler(sigmas: Self.sigmas, solver: solver, denoiser: GaussianDenoiser(mean: Self.mu, std: Self.std))
        let out = try runSigma(sampler, from: x, seed: 7).data
        let mean = out.reduce(0, +) / Double(n)
        let variance = out.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)
        let law = Self.law(solver)
        let seMean = (law.variance / Double(n)).squareRoot(), seVar = law.variance * (2.0 / Double(n - 1)).squareRoot()
        let zm = (mean - law.mean) / seMean, zv = (variance - law.variance) / seVar
        print(String(format: "law \(solver): mean %.5f (closed form %.5f, %.2f SE), variance %.5f (closed form %.5f, %.2f SE); data 𝒩(%.2f, %.4f)",
                     mean, law.mean, zm, variance, law.variance, zv, Self.mu, Self.std * Self.std))
        #expect(abs(zm) <= 5 && abs(zv) <= 5)
        // the law is not the data's (a discretisation: Euler ancestral's variance is 0.138 at 10 steps), but its mean is close
        #expect(abs(law.mean - Self.mu) < 0.01)
    }
}
