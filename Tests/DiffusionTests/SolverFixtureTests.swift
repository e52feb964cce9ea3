// The σ view, the σ schedules, σ ↔ t and one step of each solver against `Fixtures/solvers.h5`, written by
// `Fixtures/make_solver_fixtures.py` (numpy, from the papers and the peers' documented conventions; see the
// solvers.h5 section of Fixtures/README.md). Equations at rtol 1e-13, tables within 4 ULP.

import Foundation
import HDF5
import TestSupport
import Testing
import Diffusion
import Tensors

enum SolverFixture {
    static let file = FixtureFile("solvers.h5")
    nonisolated(unsafe) static let raw: HDF5File = try! HDF5File(path: fixturesFolder + "/solvers.h5")   // read-only
    static func members(_ group: String) -> [String] { (try? raw.members(ofGroup: group)) ?? [] }
    static func string(_ name: String, of object: String) -> String { try! raw.stringAttribute(name, of: object) }
    static func double(_ name: String, of object: String) -> Double { try! raw.doubleAttribute(name, of: object) }
    static func rows(_ dataset: String) -> [Tensor] {
        let t = file.tensor(dataset)
        return (0..<t.shape[0]).map { t.slice(axis: 0, start: $0, length: 1).reshaped(Array(t.shape.dropFirst())) }
    }
}

/// A model that answers its k-th call with row k of a case's `model_outputs` (of kind `denoised` or `eps`),
/// recording where each call was made.
final class ReplayDenoiser: SigmaDenoiser {
    let outputs: [Tensor], kind: String
    var calls: [(x: Tensor, sigma: Double)] = []
    private var answered = 0
    init(outputs: [Tensor], kind: String) { self.outputs = outputs; self.kind = kind }
    func denoise(model: NoisePredictor, _ x: Tensor, sigma s: Double) throws -> SigmaPrediction {
        let out = outputs[answered]
        answered += 1
        calls.append((x, s))
        return kind == "eps" ? SigmaPrediction(denoised: x - out * s, noise: out) : SigmaPrediction(denoised: out, noise: (x - out) / s)
    }
    func modelTimestep(sigma: Double) -> Int { 0 }
}

@Suite("σ view, σ schedules and σ ↔ t against the numpy oracle")
struct SigmaFixtureTests {
    let f = SolverFixture.file

    @Test("trained σ, log σ and λ tables within 4 ULP (T = 1000 and T = 10)")
    func tables() throws {
        for (T, end) in [(1000, 0.02), (10, 0.2)] {
            let d = try GaussianDiffusion(schedule: .linear(start: 1e-4, end: end), timesteps: T, dataRange: 0...1)
            expectULP(d.tables.alphasCumprod, f.values("schedule/T\(T)/alphas_cumprod"), "schedule/T\(T)/alphas_cumprod")
            let s = SigmaView.trainedSigmas(alphasCumprod: d.tables.alphasCumprod)
            expectULP(s, f.values("schedule/T\(T)/sigmas"), "schedule/T\(T)/sigmas")
            expectULP(s.map { SigmaView.lambda(sigma: $0) }, f.values("schedule/T\(T)/lambdas"), "schedule/T\(T)/lambdas")
        }
    }

    @Test("Karras (ρ = 7, 3), exponential and polyexponential σ for N = 5, 20, 50 within 4 ULP")
    func parametricSchedules() throws {
        let lo = SolverFixture.double("sigma_min", of: "/sigma_schedules"), hi = SolverFixture.double("sigma_max", of: "/sigma_schedules")
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1)
        for n in [5, 20, 50] {
            let cases: [(String, SigmaSchedule)] = [("karras_rho7", .karras(sigmaMin: lo, sigmaMax: hi, rho: 7)), ("karras_rho3", .karras(sigmaMin: lo, sigmaMax: hi, rho: 3)),
                                                    ("exponential", .exponential(sigmaMin: lo, sigmaMax: hi)),
                                                    ("polyexponential_rho2", .polyexponential(sigmaMin: lo, sigmaMax: hi, rho: 2))]
            for (name, schedule) in cases {
                let s = try schedule.sigmas(steps: n, diffusion: d)
                #expect(s.last == 0 && s.count == n + 1)
                expectULP(Array(s.dropLast()), f.values("sigma_schedules/\(name)/N\(n)/sigmas"), "sigma_schedules/\(name)/N\(n)/sigmas")
                if f.exists("sigma_schedules/\(name)/N\(n)/t_log_linear") {
                    let t = s.dropLast().map { SigmaToTimestep.logLinear.fractionalTimestep(sigma: $0, trainedSigmas: SigmaView.trainedSigmas(alphasCumprod: d.tables.alphasCumprod)) }
                    f.expectMatches(t, "sigma_schedules/\(name)/N\(n)/t_log_linear", tolerance: Tolerance(rtol: 1e-13, atol: 1e-12))
                }
                if f.exists("sigma_schedules/\(name)/N\(n)/t_log_linear_rounded") {
                    let t = s.dropLast().map { SigmaToTimestep.logLinear.timestep(sigma: $0, trainedSigmas: SigmaView.trainedSigmas(alphasCumprod: d.tables.alphasCumprod)) }
                    #expect(t == f.ints("sigma_schedules/\(name)/N\(n)/t_log_linear_rounded"), "\(name) N\(n) rounded t")
                }
            }
        }
    }

    @Test("trained σ respaced by the spacings this package has (ddim, linspace, leading, trailing): timesteps exactly, σ within 4 ULP")
    func trainedSchedules() throws {
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1)
        let rules: [(String, TimestepSpacing)] = [("trained_ddim", .improvedDiffusion("ddim")), ("trained_linspace_ddim", .diffusersLinspace),
                                                  ("trained_leading_offset0", .diffusersLeading(stepsOffset: 0)),
                                                  ("trained_leading_offset1", .diffusersLeading(stepsOffset: 1)), ("trained_trailing", .diffusersTrailing)]
        for n in [5, 20, 50] {
            for (name, rule) in rules {
                let spacing: TimestepSpacing = if case .improvedDiffusion = rule { .improvedDiffusion("ddim\(n)") } else { rule }
                let path = "sigma_schedules/\(name)/N\(n)"
                let kept = try spacing.keptTimesteps(timesteps: 1000, steps: n)
                #expect(Array(kept.reversed()) == f.ints(path + "/timesteps"), "\(path) timesteps")
                let s = try SigmaSchedule.trained(spacing).sigmas(steps: n, diffusion: d)
                expectULP(Array(s.dropLast()), f.values(path + "/sigmas"), path + "/sigmas")
            }
        }
    }

    @Test("D(x; σ) from an ε-, x_0- or v-model (Karras Table 1), the network input x_t and ε̂ from the D of a v-model; the network's timestep")
    func denoiser() throws {
        let sigmas = f.values("denoiser/sigmas"), x = SolverFixture.rows("denoiser/x"), out = SolverFixture.rows("denoiser/model_output")
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1)
        let table = SigmaView.trainedSigmas(alphasCumprod: d.tables.alphasCumprod)
        func stack(_ f: (Int) -> Tensor) -> Tensor { Tensor.concatenate((0..<sigmas.count).map { f($0).reshaped([1, 2, 3]) }, axis: 0) }
        f.expectMatches(stack { SigmaView.vp(x[$0], sigma: sigmas[$0]) }, "denoiser/x_t")
        f.expectMatches(stack { SigmaView.denoised(modelOutput: out[$0], x: x[$0], sigma: sigmas[$0], meanType: .epsilon).denoised }, "denoiser/D_from_eps")
        f.expectMatches(stack { SigmaView.denoised(modelOutput: out[$0], x: x[$0], sigma: sigmas[$0], meanType: .startX).denoised }, "denoiser/D_from_x0")
        f.expectMatches(stack { SigmaView.denoised(modelOutput: out[$0], x: x[$0], sigma: sigmas[$0], meanType: .velocity).denoised }, "denoiser/D_from_v")
        // The fixture's ε is (x − D)/σ, which cancels at small σ; `SigmaView.denoised` returns ε̂ = σx/(1 + σ²) + v̂/√(1 + σ²)
        // without the cancellation (the two differ by 4e-11 relative at σ_1): the route through D is what is pinned here,
        // the direct form against it within the cancellation's size, |ε_direct − ε_fixture| ≤ 1e-15 · |x|/σ.
        f.expectMatches(stack { (x[$0] - SigmaView.denoised(modelOutput: out[$0], x: x[$0], sigma: sigmas[$0], meanType: .velocity).denoised) / sigmas[$0] },
                        "denoiser/eps_from_D_of_v")
        let expectedEps = SolverFixture.rows("denoiser/eps_from_D_of_v")
        for r in 0..<sigmas.count {
            let direct = SigmaView.denoised(modelOutput: out[r], x: x[r], sigma: sigmas[r], meanType: .velocity).noise
            let bound = 1e-15 * x[r].data.map { abs($0) }.max()! / sigmas[r]
            let worst = zip(direct.data, expectedEps[r].data).map { abs($0 - $1) }.max()!
            #expect(worst <= bound, "row \(r): direct ε̂ differs by \(worst), bound \(bound)")
        }
        f.expectMatches(sigmas.map { SigmaToTimestep.logLinear.fractionalTimestep(sigma: $0, trainedSigmas: table) }, "denoiser/t_log_linear",
                        tolerance: Tolerance(rtol: 1e-13, atol: 1e-12))
    }

    @Test("σ → t (nearest, log-linear, linear in σ) and t → σ on T = 1000 and T = 10")
    func sigmaToT() throws {
        for (T, end) in [(1000, 0.02), (10, 0.2)] {
            let d = try GaussianDiffusion(schedule: .linear(start: 1e-4, end: end), timesteps: T, dataRange: 0...1)
            let table = SigmaView.trainedSigmas(alphasCumprod: d.tables.alphasCumprod)
            let p = "sigma_to_t/T\(T)/"
            let q = f.values(p + "query_sigmas"), qt = f.values(p + "query_t")
            #expect(q.map { Int(SigmaToTimestep.nearest.fractionalTimestep(sigma: $0, trainedSigmas: table)) } == f.ints(p + "nearest"), "\(p)nearest")
            let tol = Tolerance(rtol: 1e-13, atol: 1e-12)
            f.expectMatches(q.map { SigmaToTimestep.logLinear.fractionalTimestep(sigma: $0, trainedSigmas: table) }, p + "log_linear", tolerance: tol)
            #expect(q.map { SigmaToTimestep.logLinear.timestep(sigma: $0, trainedSigmas: table) } == f.ints(p + "log_linear_rounded"), "\(p)log_linear_rounded")
            f.expectMatches(q.map { SigmaToTimestep.linear.fractionalTimestep(sigma: $0, trainedSigmas: table) }, p + "sigma_linear", tolerance: tol)
            f.expectMatches(qt.map { SigmaToTimestep.logLinear.sigma(timestep: $0, trainedSigmas: table) }, p + "t_to_sigma_log_linear")
            f.expectMatches(qt.map { SigmaToTimestep.linear.sigma(timestep: $0, trainedSigmas: table) }, p + "t_to_sigma_linear")
        }
    }
}

@Suite("One step of each solver against the numpy oracle (stored state, model outputs and noise)")
struct SolverStepFixtureTests {
    let f = SolverFixture.file
    let sigmas = SolverFixture.file.values("steps/karras10")

    /// Runs step k of `solver` on the karras10 table (or `table`) from the case's x, replaying its model
    /// outputs; earlier steps `warm` (for history) are run first from an arbitrary state with the history rows.
    func run(_ solver: SigmaSolver, _ path: String, table: [Double]? = nil, lowerOrderFinal: Bool = false) throws -> (Tensor, ReplayDenoiser) {
        let table = table ?? sigmas
        let g = "/steps/" + path
        let s = SolverFixture.double("sigma", of: g)
        let k = table.firstIndex(of: s)!
        var outputs = SolverFixture.rows("steps/\(path)/model_outputs")
        let history = f.exists("steps/\(path)/history") ? SolverFixture.rows("steps/\(path)/history") : []
        outputs = history + outputs
        let replay = ReplayDenoiser(outputs: outputs, kind: SolverFixture.string("output_kind", of: g))
        let sampler = try SigmaSampler(sigmas: table, solver: solver, denoiser: replay, lowerOrderFinal: lowerOrderFinal)
        let x = f.tensor("steps/\(path)/x")
        let noise = f.exists("steps/\(path)/noise") ? f.tensor("steps/\(path)/noise") : nil
        if !history.isEmpty {
            let hs = f.values("steps/\(path)/history_sigmas")
            for (j, h) in hs.enumerated() {
                let kh = table.firstIndex(of: h)!
                #expect(kh == k - hs.count + j, "\(path): history σ \(h) is not step \(k - hs.count + j)")
                _ = try sampler.step(kh, model: unusedNetwork, SigmaView.vp(x, sigma: h), noise: nil)
            }
            replay.calls.removeFirst(history.count)
        }
        let out = try sampler.step(k, model: unusedNetwork, SigmaView.vp(x, sigma: s), noise: noise)
        return (SigmaView.scaled(vp: out.next, sigma: table[k + 1]), replay)
    }

    func check(_ solver: SigmaSolver, _ path: String, expected: String = "expected", table: [Double]? = nil, lowerOrderFinal: Bool = false) throws {
        let (out, replay) = try run(solver, path, table: table, lowerOrderFinal: lowerOrderFinal)
        f.expectMatches(out, "steps/\(path)/\(expected)")
        let points = SolverFixture.rows("steps/\(path)/eval_points"), es = f.values("steps/\(path)/eval_sigmas")
        #expect(replay.calls.count == points.count, "\(path): \(replay.calls.count) model calls, expected \(points.count)")
        for (j, c) in zip(replay.calls, zip(points, es)).enumerated() {
            let cmp = Comparison("steps/\(path)/eval_points[\(j)]", actual: c.0.x, expected: c.1.0, tolerance: .equation)
            print("fixture \(cmp)")
            #expect(cmp.passed, "\(cmp)")
            #expect(abs(c.0.sigma - c.1.1) <= 1e-13 * c.1.1, "\(path): call \(j) at σ = \(c.0.sigma), expected \(c.1.1)")
        }
    }

    @Test("Euler (middle, last) and Euler with churn")
    func euler() throws {
        try check(.euler, "euler/middle")
        try check(.euler, "euler/last")
        // k-diffusion's sample_euler with churn is Heun's churn followed by an Euler step: here the Heun solver's
        // churn with its correction skipped is not available, so the churn and the step are checked as equations.
        let g = "/steps/euler_churn/middle"
        let (s, sn) = (SolverFixture.double("sigma", of: g), SolverFixture.double("sigma_next", of: g))
        let (x, z) = (f.tensor("steps/euler_churn/middle/x"), f.tensor("steps/euler_churn/middle/noise"))
        let (xh, sh) = SolverUpdate.churn(x, sigma: s, gamma: SolverFixture.double("gamma", of: g), noiseScale: SolverFixture.double("s_noise", of: g), z: z)
        f.expectMatches(xh, "steps/euler_churn/middle/x_hat")
        #expect(abs(sh - SolverFixture.double("sigma_hat", of: g)) <= 1e-15 * sh)
        let d = f.tensor("steps/euler_churn/middle/model_outputs").reshaped(x.shape)
        f.expectMatches(SolverUpdate.euler(xh, derivative: SolverUpdate.derivative(xh, denoised: d, sigma: sh), sigma: sh, next: sn), "steps/euler_churn/middle/expected")
    }

    @Test("Euler ancestral: η = 1, 0.5, 0 and the last step")
    func eulerAncestral() throws {
        for c in ["eta1", "eta0.5", "eta0", "last"] {
            let g = "/steps/euler_ancestral/\(c)"
            let eta = SolverFixture.double("eta", of: g)
            let split = SolverUpdate.ancestralSplit(sigma: SolverFixture.double("sigma", of: g), next: SolverFixture.double("sigma_next", of: g), eta: eta)
            if SolverFixture.double("sigma_next", of: g) > 0 {
                let c = Comparison("\(g) σ_down, σ_up", actual: [split.down, split.up],
                                   expected: [SolverFixture.double("sigma_down", of: g), SolverFixture.double("sigma_up", of: g)], tolerance: .equation)
                print("fixture \(c)")
                #expect(c.passed, "\(c)")
            }
            try check(.eulerAncestral(eta: eta, noiseScale: SolverFixture.double("s_noise", of: g)), "euler_ancestral/\(c)")
        }
    }

    @Test("Heun (middle, last) and Heun with churn (active, capped at √2 − 1, outside [S_tmin, S_tmax])")
    func heun() throws {
        try check(.heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1), "heun/middle")
        try check(.heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1), "heun/last")
        for c in ["active", "capped", "outside"] {
            let g = "/steps/heun_churn/\(c)"
            #expect(Int(try SolverFixture.raw.int64Attribute("num_steps", of: g)) == sigmas.count - 1)
            try check(.heun(churn: SolverFixture.double("s_churn", of: g), tMin: SolverFixture.double("s_tmin", of: g),
                            tMax: SolverFixture.double("s_tmax", of: g), noiseScale: SolverFixture.double("s_noise", of: g)), "heun_churn/\(c)")
        }
    }

    @Test("DPM-Solver++(2M): first, middle (k-diffusion and diffusers forms), final steps of both peers")
    func dpmpp2M() throws {
        try check(.dpmpp2M, "dpmpp_2m/first")
        try check(.dpmpp2M, "dpmpp_2m/middle")
        try check(.dpmpp2M, "dpmpp_2m/middle", expected: "expected_diffusers")
        try check(.dpmpp2M, "dpmpp_2m/final_kdiffusion")
        try check(.dpmpp2M, "dpmpp_2m/final_diffusers_zero", lowerOrderFinal: true)
        // diffusers' trailing N = 10 with final σ = σ_min: the σ table is [σ(199), σ(99), σ_0]
        let g = "/steps/dpmpp_2m/final_diffusers_sigma_min_second_order"
        let table = [SolverFixture.double("sigma_prev", of: g), SolverFixture.double("sigma", of: g), SolverFixture.double("sigma_next", of: g)]
        try check(.dpmpp2M, "dpmpp_2m/final_diffusers_sigma_min_lower_order_final", table: table, lowerOrderFinal: true)
        try check(.dpmpp2M, "dpmpp_2m/final_diffusers_sigma_min_second_order", table: table, lowerOrderFinal: false)
        // The repeated last σ of use_karras_sigmas + sigma_min: a zero-size (here slightly upward) step. The
        // first-order equation gives x' ≈ x as diffusers does; the sampler refuses such a table up front.
        let r = "steps/dpmpp_2m/final_diffusers_sigma_min_karras_repeated"
        let (s, sn) = (SolverFixture.double("sigma", of: "/" + r), SolverFixture.double("sigma_next", of: "/" + r))
        f.expectMatches(SolverUpdate.dpmppFirstOrder(f.tensor(r + "/x"), denoised: f.tensor(r + "/model_outputs").reshaped([2, 3]), sigma: s, next: sn), r + "/expected")
        expectError(.invalidValue, mentioning: ["decrease strictly"]) {
            try SigmaSampler(sigmas: [SolverFixture.double("sigma_prev", of: "/" + r), s, sn, 0], solver: .dpmpp2M, denoiser: GaussianDenoiser(mean: 0, std: 1))
        }
    }

    @Test("DPM-Solver++(2S) (η = 0 and ancestral η = 1) and DPM-Solver++(2M) SDE (first, middle midpoint and heun, last)")
    func dpmpp2SAndSDE() throws {
        try check(.dpmpp2S(eta: 0, noiseScale: 1), "dpmpp_2s/middle")
        for c in ["middle", "last"] { try check(.dpmpp2S(eta: 1, noiseScale: 1), "dpmpp_2s_ancestral/\(c)") }
        for c in ["first", "middle", "middle_heun", "last"] {
            let g = "/steps/dpmpp_2m_sde/\(c)"
            let type = (try? SolverFixture.raw.stringAttribute("solver_type", of: g)) ?? "midpoint"
            try check(.dpmpp2MSDE(eta: SolverFixture.double("eta", of: g), noiseScale: SolverFixture.double("s_noise", of: g),
                                  correction: SolverUpdate.SDECorrection(rawValue: type)!), "dpmpp_2m_sde/\(c)")
        }
    }

    @Test("DPM-Solver-1, 2, 3 (noise prediction; middle and the first-order limit into σ = 0); DPM-Solver-1 = DDIM η = 0")
    func dpmSolver() throws {
        for k in 1...3 { for c in ["middle", "last"] { try check(.dpmSolver(order: k), "dpm_solver_\(k)/\(c)") } }
        try check(.dpmSolver(order: 1), "dpm_solver_1/middle", expected: "expected_ddim_eta0")
    }

    @Test("UniPC bh1/bh2, orders 1–3: the predictor UniP-p and the corrector UniC-p (ρ = ½ shortcuts), and the last step")
    func uniPC() throws {
        for v in SolverUpdate.UniPCVariant.allCases {
            for p in 1...3 {
                let path = "steps/unipc_\(v.rawValue)/order\(p)", g = "/" + path
                let (s, sn) = (SolverFixture.double("sigma", of: g), SolverFixture.double("sigma_next", of: g))
                let m = SolverFixture.rows(path + "/model_outputs")
                var history = [(sigma: s, denoised: m[0])]
                if f.exists(path + "/history") {
                    let hs = f.values(path + "/history_sigmas"), rows = SolverFixture.rows(path + "/history")
                    history += zip(hs, rows).reversed().map { (sigma: $0.0, denoised: $0.1) }
                }
                let x = f.tensor(path + "/x")
                f.expectMatches(SolverUpdate.uniP(x, history: history, next: sn, variant: v), path + "/expected")
                f.expectMatches(SolverUpdate.uniC(x, history: history, next: sn, nextDenoised: m[1], variant: v), path + "/expected_corrected")
                // the sampler's predictor at step k, with the history from earlier steps, calls the model where the fixture says
                let k = sigmas.firstIndex(of: s)!
                let replay = ReplayDenoiser(outputs: Array(history.reversed().map(\.denoised)), kind: "denoised")
                let sampler = try SigmaSampler(sigmas: sigmas, solver: .uniPC(order: p, variant: v, corrector: false), denoiser: replay)
                var out = Tensor.zeros(x.shape)
                for (j, h) in history.reversed().enumerated() {
                    out = try sampler.step(k - history.count + 1 + j, model: unusedNetwork, SigmaView.vp(x, sigma: h.sigma), noise: nil).next
                }
                f.expectMatches(SigmaView.scaled(vp: out, sigma: sn), path + "/expected")
            }
        }
        try check(.uniPC(order: 2, variant: .bh2, corrector: true), "unipc_bh2/last")
    }
}

/// Data 𝒩(μ_c, s_c²) per value along the last axis (the fixture's trajectories model).
struct ColumnGaussianDenoiser: SigmaDenoiser {
    var mean: [Double], std: [Double]
    func denoise(model: NoisePredictor, _ x: Tensor, sigma s: Double) throws -> SigmaPrediction {
        let c = mean.count
        let d = x.data.enumerated().map { i, v in (std[i % c] * std[i % c] * v + s * s * mean[i % c]) / (std[i % c] * std[i % c] + s * s) }
        let e = x.data.enumerated().map { i, v in s * (v - mean[i % c]) / (std[i % c] * std[i % c] + s * s) }
        return SigmaPrediction(denoised: Tensor(shape: x.shape, data: d), noise: Tensor(shape: x.shape, data: e))
    }
    func modelTimestep(sigma: Double) -> Int { 0 }
}

@Suite("Whole trajectories of every solver on the Gaussian model against the numpy oracle")
struct SolverTrajectoryFixtureTests {
    let f = SolverFixture.file

    static let cases: [(String, SigmaSolver, Bool)] = [
        ("euler", .euler, false), ("heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1), false),
        ("dpmpp_2s", .dpmpp2S(eta: 0, noiseScale: 1), false), ("dpmpp_2m", .dpmpp2M, false),
        ("dpm_solver_1", .dpmSolver(order: 1), false), ("dpm_solver_2", .dpmSolver(order: 2), false), ("dpm_solver_3", .dpmSolver(order: 3), false),
        ("plms", .plms(warmUp: .plms), false),
        ("unipc_bh1_order1", .uniPC(order: 1, variant: .bh1, corrector: true), true), ("unipc_bh1_order2", .uniPC(order: 2, variant: .bh1, corrector: true), true),
        ("unipc_bh1_order3", .uniPC(order: 3, variant: .bh1, corrector: true), true), ("unipc_bh2_order1", .uniPC(order: 1, variant: .bh2, corrector: true), true),
        ("unipc_bh2_order2", .uniPC(order: 2, variant: .bh2, corrector: true), true), ("unipc_bh2_order3", .uniPC(order: 3, variant: .bh2, corrector: true), true),
        ("euler_ancestral", .eulerAncestral(eta: 1, noiseScale: 1), false), ("dpmpp_2s_ancestral", .dpmpp2S(eta: 1, noiseScale: 1), false),
        ("dpmpp_2m_sde", .dpmpp2MSDE(eta: 1, noiseScale: 1, correction: .midpoint), false),
        ("heun_churn", .heun(churn: 2, tMin: 0.05, tMax: 50, noiseScale: 1.003), false),
    ]

    /// Runs a solver through the one loop from the stored x_T with the stored noises; the states after every step.
    func trajectory(_ solver: SigmaSolver, sigmas: [Double], lowerOrderFinal: Bool, start: Tensor, midpoints: [Double]? = nil) throws
        -> (states: [Tensor], nfe: Int) {
        let d = ColumnGaussianDenoiser(mean: f.values("trajectories/mu"), std: f.values("trajectories/s"))
        let sampler = try SigmaSampler(sigmas: sigmas, solver: solver, denoiser: d, lowerOrderFinal: lowerOrderFinal, midpoints: midpoints)
        var states = [start]
        let noises = SolverFixture.rows("trajectories/noises")
        _ = try runSigma(sampler, from: start, noise: Array(noises.prefix(sampler.stepCount))) { step in
            states.append(SigmaView.scaled(vp: step.next, sigma: sampler.sigmas[states.count]))
        }
        return (states, sampler.evaluations)
    }

    @Test("Karras ρ = 7, 10 steps then 0, from the stored x_T: every state of every solver, and its network evaluations")
    func trajectories() throws {
        let sigmas = f.values("trajectories/sigmas"), start = f.tensor("trajectories/x_T")
        for (name, solver, lowerOrderFinal) in Self.cases {
            let (states, nfe) = try trajectory(solver, sigmas: sigmas, lowerOrderFinal: lowerOrderFinal, start: start)
            let stacked = Tensor.concatenate(states.map { $0.reshaped([1] + $0.shape) }, axis: 0)
            if name == "plms" {
                // Adams–Bashforth's weights (55, −59, 37, −9)/24 carry the rounding of the large early states
                // (|x| up to hundreds at σ = 157) into small later values: each row is compared within 1e-13 of
                // its own largest value (the worst element is 0.0268 off by 8.5e-14 in a row of larger values).
                let expected = SolverFixture.rows("trajectories/plms/states")
                for (i, (a, e)) in zip(states, expected).enumerated() {
                    let scale = e.data.map { abs($0) }.max()!
                    let c = Comparison("trajectories/plms/states[\(i)]", actual: a, expected: e, tolerance: Tolerance(rtol: 1e-13, atol: 1e-13 * scale))
                    print("fixture \(c)")
                    #expect(c.passed, "\(c)")
                }
            } else {
                f.expectMatches(stacked, "trajectories/\(name)/states")
            }
            #expect(Int64(nfe) == (try SolverFixture.raw.int64Attribute("nfe", of: "/trajectories/\(name)")), "\(name): \(nfe) network evaluations")
        }
    }

    @Test("diffusers' PLMS (skip_prk_steps) and PNDM (pseudo Runge–Kutta, midpoints at t − 50) on the trained σ of leading+1 timesteps, final ᾱ = 1 and ᾱ_0")
    func discretePLMS() throws {
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1)
        let trained = SigmaView.trainedSigmas(alphasCumprod: d.tables.alphasCumprod)
        let ts = try SolverFixture.raw.int64ArrayAttribute("timesteps", of: "/trajectories/discrete").map { Int($0) }
        for (one, group) in [(true, "set_alpha_to_one_true"), (false, "set_alpha_to_one_false")] {
            let sigmas = ts.map { trained[$0] } + [one ? 0 : trained[0]]
            let (states, nfe) = try trajectory(.plms(warmUp: .plms), sigmas: sigmas, lowerOrderFinal: false, start: f.tensor("trajectories/discrete/x_start"))
            let path = "trajectories/discrete/plms_diffusers_skip_prk/\(group)"
            f.expectMatches(Tensor.concatenate(states.map { $0.reshaped([1] + $0.shape) }, axis: 0), path + "/states",
                            tolerance: Tolerance(rtol: 1e-13, atol: 1e-14))
            #expect(Int64(nfe) == (try SolverFixture.raw.int64Attribute("nfe", of: "/" + path)))
            let mid = ts.map { trained[max($0 - 50, 0)] }   // only the three warm-up steps use them
            let (pndm, nfe2) = try trajectory(.plms(warmUp: .pseudoRungeKutta), sigmas: sigmas, lowerOrderFinal: false,
                                              start: f.tensor("trajectories/discrete/x_start"), midpoints: mid)
            let path2 = "trajectories/discrete/pndm_diffusers_prk/\(group)"
            f.expectMatches(Tensor.concatenate(pndm.map { $0.reshaped([1] + $0.shape) }, axis: 0), path2 + "/states",
                            tolerance: Tolerance(rtol: 1e-13, atol: 1e-14))
            #expect(Int64(nfe2) == (try SolverFixture.raw.int64Attribute("nfe", of: "/" + path2)), "PNDM: \(nfe2) evaluations")
        }
    }
}


@Suite("Convergence runs and exact output laws against the numpy oracle")
struct SolverConvergenceFixtureTests {
    let f = SolverFixture.file

    @Test("the final states of every deterministic solver at N = 5 … 80 (Karras σ_max → σ_min, no final 0) and the oracle's errors")
    func convergenceRuns() throws {
        let d = ColumnGaussianDenoiser(mean: f.values("trajectories/mu"), std: f.values("trajectories/s"))
        let lo = SolverFixture.double("sigma_min", of: "/sigma_schedules"), hi = SolverFixture.double("sigma_max", of: "/sigma_schedules")
        let start = f.tensor("trajectories/x_T"), exact = f.tensor("convergence/exact_final")
        let cases: [(String, SigmaSolver)] = [
            ("euler", .euler), ("heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1)), ("dpmpp_2s", .dpmpp2S(eta: 0, noiseScale: 1)),
            ("dpmpp_2m", .dpmpp2M), ("dpm_solver_1", .dpmSolver(order: 1)), ("dpm_solver_2", .dpmSolver(order: 2)), ("dpm_solver_3", .dpmSolver(order: 3)),
            ("plms", .plms(warmUp: .plms)),
            ("unipc_bh1_order1", .uniPC(order: 1, variant: .bh1, corrector: true)), ("unipc_bh1_order2", .uniPC(order: 2, variant: .bh1, corrector: true)),
            ("unipc_bh1_order3", .uniPC(order: 3, variant: .bh1, corrector: true)), ("unipc_bh2_order1", .uniPC(order: 1, variant: .bh2, corrector: true)),
            ("unipc_bh2_order2", .uniPC(order: 2, variant: .bh2, corrector: true)), ("unipc_bh2_order3", .uniPC(order: 3, variant: .bh2, corrector: true)),
            ("unipc_bh2_order3_no_corrector", .uniPC(order: 3, variant: .bh2, corrector: false)),
        ]
        for (name, solver) in cases {
            var finals: [Tensor] = [], errors: [Double] = []
            for n in f.ints("convergence/N") {
                let s = try SigmaSampler(sigmas: SigmaSchedule.karras(steps: n + 1, sigmaMin: lo, sigmaMax: hi, rho: 7), solver: solver, denoiser: d)
                let out = try runSigma(s, from: start)
                finals.append(out.reshaped([1] + out.shape))
                errors.append(zip(out.data, exact.data).map { abs($0 - $1) }.max()!)
            }
            // final states at N up to 80 from σ = 157: compared within 1e-13 of each run's largest value (cf. PLMS above)
            let expected = SolverFixture.rows("convergence/\(name)/final_states")
            for (j, (a, e)) in zip(finals, expected).enumerated() {
                let c = Comparison("convergence/\(name)/final_states[\(j)]", actual: a.reshaped(e.shape), expected: e,
                                   tolerance: Tolerance(rtol: 1e-13, atol: 1e-13 * e.data.map { abs($0) }.max()!))
                print("fixture \(c)")
                #expect(c.passed, "\(c)")
            }
            f.expectMatches(errors, "convergence/\(name)/errors", tolerance: Tolerance(rtol: 1e-8, atol: 0))
        }
    }

    @Test("the stochastic solvers' output law (N = 10): 20,000 samples per value within 5 standard errors of the oracle's closed form",
          arguments: [("euler_ancestral", SigmaSolver.eulerAncestral(eta: 1, noiseScale: 1)), ("euler_ancestral_eta0.5", .eulerAncestral(eta: 0.5, noiseScale: 1)),
                      ("dpmpp_2s_ancestral", .dpmpp2S(eta: 1, noiseScale: 1)), ("dpmpp_2m_sde", .dpmpp2MSDE(eta: 1, noiseScale: 1, correction: .midpoint)),
                      ("heun_churn", .heun(churn: 2, tMin: 0.05, tMax: 50, noiseScale: 1.003))])
    func laws(_ c: (String, SigmaSolver)) throws {
        let (mu, sd) = (f.values("trajectories/mu"), f.values("trajectories/s"))
        let lo = SolverFixture.double("sigma_min", of: "/sigma_schedules"), hi = SolverFixture.double("sigma_max", of: "/sigma_schedules")
        let n = 20_000, cols = mu.count
        var g = RandomGenerator(seed: 99)
        let z = Tensor.randomNormal([n, cols], generator: &g)
        let x = Tensor(shape: [n, cols], data: z.data.enumerated().map { i, v in mu[i % cols] + (sd[i % cols] * sd[i % cols] + hi * hi).squareRoot() * v })
        let s = try SigmaSampler(sigmas: SigmaSchedule.karras(steps: 10, sigmaMin: lo, sigmaMax: hi, rho: 7) + [0], solver: c.1,
                                 denoiser: ColumnGaussianDenoiser(mean: mu, std: sd))
        let out = try runSigma(s, from: x, seed: 5).data
        let lawMean = f.tensor("laws/\(c.0)/mean").data.prefix(cols), lawVar = f.tensor("laws/\(c.0)/variance").data.prefix(cols)
        var worst = 0.0
        for j in 0..<cols {
            let v = stride(from: j, to: out.count, by: cols).map { out[$0] }
            let m = v.reduce(0, +) / Double(n), va = v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(n - 1)
            let (em, ev) = (lawMean[lawMean.startIndex + j], lawVar[lawVar.startIndex + j])
            let zm = (m - em) / (ev / Double(n)).squareRoot(), zv = (va - ev) / (ev * (2.0 / Double(n - 1)).squareRoot())
            worst = max(worst, abs(zm), abs(zv))
            print(String(format: "law \(c.0) value \(j): mean %.5f (oracle %.5f), variance %.5f (oracle %.5f); %.2f and %.2f SE", m, em, va, ev, zm, zv))
        }
        print("law \(c.0): worst \(worst) standard errors (bound 5)")
        #expect(worst <= 5)
    }
}
