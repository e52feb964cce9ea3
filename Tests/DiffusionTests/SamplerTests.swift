// The samplers (respacing, DDIM, inversion, thresholding, zero terminal SNR) against `Fixtures/samplers.h5`,
// written by `Fixtures/make_sampler_fixtures.py` (numpy, from the papers and the sources' documented
// conventions; see the samplers section of Fixtures/README.md), plus the exact and statistical oracles.

import Foundation
import HDF5
import TestSupport
import Testing
import Diffusion
import Tensors

enum SamplerFixture {
    static let file = FixtureFile("samplers.h5")
    nonisolated(unsafe) static let raw: HDF5File = try! HDF5File(path: fixturesFolder + "/samplers.h5")   // read-only
    static func members(_ group: String) -> [String] { (try? raw.members(ofGroup: group)) ?? [] }
    static func intArrayAttribute(_ name: String, of object: String) -> [Int] { try! raw.int64ArrayAttribute(name, of: object).map { Int($0) } }
}

/// The house's linear schedule on T steps, data range [0, 1], ε-prediction.
func linearDiffusion(_ T: Int, variance: ModelVarianceType = .fixedSmall, clip: Bool = false) throws -> GaussianDiffusion {
    try GaussianDiffusion(schedule: .linear(), timesteps: T, dataRange: 0...1, varianceType: variance, clipDenoised: clip)
}

/// Worst ULP distance between two arrays, printed; expects ≤ `bound`.
@Suite("Respacing against the numpy oracle")
struct RespacingTests {
    let f = SamplerFixture.file

    @Test("improved-diffusion space_timesteps: sections and ddimN, exactly")
    func improvedDiffusion() throws {
        for T in [1000, 40] {
            for rule in SamplerFixture.members("/timesteps/improved_diffusion/T\(T)") {
                let path = "timesteps/improved_diffusion/T\(T)/\(rule)"
                let kept = try Respacing.improvedDiffusionTimesteps(timesteps: T, sectionCounts: rule)
                #expect(Array(kept.reversed()) == f.ints(path), "\(path): \(kept)")
                // step targets: the next kept step, −1 = final (ᾱ = 1)
                let target = SamplerFixture.intArrayAttribute("step_target", of: "/" + path)
                #expect(target == Array(kept.reversed().dropFirst()) + [-1], "\(path) step targets")
            }
        }
        // the tie: T = 40, "5,3,2" rounds idx 6.5 to 6 (ties to even)
        #expect(try Respacing.improvedDiffusionTimesteps(timesteps: 40, sectionCounts: "5,3,2").prefix(5) == [0, 3, 6, 10, 13])
        expectError(.invalidValue, mentioning: ["ddim6", "stride"]) { try Respacing.improvedDiffusionTimesteps(timesteps: 10, sectionCounts: "ddim6") }
        expectError(.invalidValue, mentioning: ["section 0", "asked for 30"]) { try Respacing.improvedDiffusionTimesteps(timesteps: 40, sectionCounts: "30,1") }
        expectError(.invalidValue, mentioning: ["x,2"]) { try Respacing.improvedDiffusionTimesteps(timesteps: 40, sectionCounts: "x,2") }
    }

    @Test("diffusers linspace / leading / trailing and the DDIM step targets, exactly")
    func diffusers() throws {
        for spacing in ["linspace", "leading", "trailing"] {
            for name in SamplerFixture.members("/timesteps/diffusers/\(spacing)") {
                let path = "timesteps/diffusers/\(spacing)/\(name)"
                let T = Int(f.int64Attribute("T", of: "/" + path)), N = Int(f.int64Attribute("N", of: "/" + path))
                let offset = name.hasSuffix("_offset1") ? 1 : 0
                let ts = try Respacing.diffusersTimesteps(timesteps: T, steps: N, spacing: spacing, stepsOffset: offset)
                #expect(ts == f.ints(path), "\(path): \(ts)")
                // DDIM targets t − ⌊T/N⌋ and both final ᾱ
                let base = try linearDiffusion(T)
                for one in [true, false] {
                    let chain = try DDIMChain(diffusers: base, timesteps: ts, setAlphaToOne: one)
                    let prev = SamplerFixture.intArrayAttribute("ddim_prev_timestep", of: "/" + path)
                    let final = f.doubleAttribute("ddim_final_alpha_cumprod_set_alpha_to_one_\(one ? "true" : "false")", of: "/" + path)
                    let expected = prev.map { $0 >= 0 ? base.tables.alphasCumprod[$0] : final }
                    #expect(chain.steps.map(\.alphaBarPrev) == expected, "\(path) set_alpha_to_one \(one)")
                }
            }
        }
    }

    @Test("respaced tables ≤ 4 ULP; respaced ᾱ within 8 ULP of the original at the kept steps")
    func respacedTables() throws {
        var worstVsOriginal: UInt64 = 0
        for T in [1000, 40] {
            let base = try linearDiffusion(T)
            for rule in SamplerFixture.members("/respaced/T\(T)") {
                let path = "respaced/T\(T)/\(rule)"
                let s = try SpacedDiffusion(base: base, spacing: .improvedDiffusion(rule), steps: 0)
                #expect(s.timestepMap == f.ints(path + "/timestep_map"))
                let tb = s.spaced.tables
                for (name, table) in [("betas", tb.betas), ("alphas_cumprod", tb.alphasCumprod), ("alphas_cumprod_prev", tb.alphasCumprodPrev),
                                      ("alphas_cumprod_next", s.alphasCumprodNext), ("posterior_variance", tb.posteriorVariance),
                                      ("posterior_log_variance_clipped", tb.posteriorLogVarianceClipped),
                                      ("posterior_mean_coef1", tb.posteriorMeanCoef1), ("posterior_mean_coef2", tb.posteriorMeanCoef2)] {
                    expectULP(table, f.values(path + "/" + name), path + "/" + name)
                }
                let u = zip(tb.alphasCumprod, s.timestepMap).map { ulpDistance($0, base.tables.alphasCumprod[$1]) }.max()!
                #expect(Int64(u) == f.int64Attribute("max_ulp_alphas_cumprod_vs_original", of: "/" + path), "\(path): \(u) ULP from the original ᾱ")
                worstVsOriginal = max(worstVsOriginal, u)
            }
        }
        // every improved-diffusion rule of the fixture, incl. ddim250 (the README's measured maximum, 7 ULP)
        let base = try linearDiffusion(1000)
        for rule in ["10", "25", "50", "10,15,20", "ddim10", "ddim25", "ddim50", "ddim250"] {
            let s = try SpacedDiffusion(base: base, spacing: .improvedDiffusion(rule), steps: 0)
            worstVsOriginal = max(worstVsOriginal, zip(s.spaced.tables.alphasCumprod, s.timestepMap).map { ulpDistance($0, base.tables.alphasCumprod[$1]) }.max()!)
        }
        print("respaced ᾱ' vs original ᾱ at the kept steps: worst \(worstVsOriginal) ULP (bound 8)")
        #expect(worstVsOriginal <= 8)
    }
}

@Suite("DDIM, inversion, thresholding, zero SNR and slerp against the numpy oracle")
struct DDIMFixtureTests {
    let f = SamplerFixture.file

    @Test("σ_t(η), DDIM eq. 16, on the full chain and on ddim50")
    func sigma() throws {
        let base = try linearDiffusion(1000)
        let full = try SpacedDiffusion(base: base, kept: Array(0..<1000))
        let d50 = try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim50"), steps: 0)
        for (name, s) in [("full_T1000", full), ("respaced_T1000_ddim50", d50)] {
            let etas = f.values("sigma/\(name)/eta")
            let tb = s.spaced.tables
            let sig = etas.flatMap { eta in (0..<s.timesteps).map { DDIM.sigma(alphaBar: tb.alphasCumprod[$0], alphaBarPrev: tb.alphasCumprodPrev[$0], eta: eta) } }
            expectULP(sig, f.values("sigma/\(name)/sigma"), "sigma/\(name)/sigma")
        }
    }

    /// ᾱ_t and ᾱ_prev per sample for a `ddim_step` chain of the fixture, by this library's chain builders.
    func chainAlphas(_ chain: String, base: GaussianDiffusion, index: [Int], t: [Int]) throws -> (at: [Double], ap: [Double], original: [Int]) {
        switch chain {
        case "full_T1000":
            let steps = DDIMChain(improvedDiffusion: try SpacedDiffusion(base: base, kept: Array(0..<1000))).steps
            let byIndex = Dictionary(uniqueKeysWithValues: steps.map { ($0.index, $0) })
            return (index.map { byIndex[$0]!.alphaBar }, index.map { byIndex[$0]!.alphaBarPrev }, index.map { byIndex[$0]!.t })
        case "improved_diffusion_T1000_ddim10":
            let steps = DDIMChain(improvedDiffusion: try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim10"), steps: 0)).steps
            let byIndex = Dictionary(uniqueKeysWithValues: steps.map { ($0.index, $0) })
            return (index.map { byIndex[$0]!.alphaBar }, index.map { byIndex[$0]!.alphaBarPrev }, index.map { byIndex[$0]!.t })
        default:
            let one = chain.hasSuffix("set_alpha_to_one")
            let ts = try Respacing.diffusersTimesteps(timesteps: 1000, steps: 10, spacing: "linspace")
            let steps = try DDIMChain(diffusers: base, timesteps: ts, setAlphaToOne: one).steps
            let byT = Dictionary(uniqueKeysWithValues: steps.map { ($0.t, $0) })
            return (t.map { byT[$0]!.alphaBar }, t.map { byT[$0]!.alphaBarPrev }, t.map { byT[$0]!.t })
        }
    }

    @Test("one DDIM step (eq. 12): x̂_0, re-derived ε, σ and x_{t−1} for every chain, η ∈ {0, 0.5}, every x̂_0 convention")
    func ddimStep() throws {
        let base = try linearDiffusion(1000)
        let out = f.tensor("ddim_step/inputs/model_output"), z = f.tensor("ddim_step/inputs/z")
        let dynamic = Thresholding.imagen
        for chain in SamplerFixture.members("/ddim_step") where chain != "inputs" {
            let g = "ddim_step/\(chain)/"
            let (at, ap, original) = try chainAlphas(chain, base: base, index: f.ints(g + "index"), t: f.ints(g + "original_t"))
            #expect(original == f.ints(g + "original_t"), "\(chain): original timesteps")
            f.expectMatches(ap, g + "alphas_cumprod_prev")
            let x = f.tensor(g + "x_t")
            let sig = [0.0, 0.5].flatMap { eta in zip(at, ap).map { DDIM.sigma(alphaBar: $0, alphaBarPrev: $1, eta: eta) } }
            expectULP(sig, f.values(g + "sigma"), g + "sigma")
            for (mode, th) in [("none", Thresholding.unchanged), ("clip", .clip), ("dynamic", dynamic)] {
                let (x0, epsR) = try DDIM.startAndNoise(modelOutput: out, noisy: x, alphaBar: at, meanType: .epsilon, thresholding: th,
                                                        range: 0...1, rederivation: .rederive)
                f.expectMatches(x0, g + "pred_x0_\(mode)")
                if mode != "none" { f.expectMatches(epsR, g + "eps_rederived_\(mode)") }
                for (e, eta) in ["0.0", "0.5"].enumerated().map({ ($0.element, Double($0.element)!) }) {
                    _ = e
                    let sigma = zip(at, ap).map { DDIM.sigma(alphaBar: $0, alphaBarPrev: $1, eta: eta) }
                    for red in NoiseRederivation.allCases {
                        let variant = mode == "none" ? "none" : "\(mode)_\(red.rawValue)"
                        let path = g + "x_prev_eta\(e)_\(variant)"
                        if mode == "none" && red == .original { continue }
                        guard SamplerFixture.file.exists(path) else { continue }
                        let eps = red == .rederive ? epsR : out
                        let xp = DDIM.step(predictedStart: x0, noise: eps, alphaBarPrev: ap, sigma: sigma, z: z)
                        f.expectMatches(xp, path)
                    }
                }
            }
        }
    }

    @Test("ancestral step with dynamic thresholding: Ho's posterior mean at the fixture's thresholded x̂_0, plus σ z")
    func ancestralDynamic() throws {
        let base = try linearDiffusion(1000)
        let g = "ddim_step/full_T1000/"
        let t = f.ints(g + "original_t"), x = f.tensor(g + "x_t")
        let out = f.tensor("ddim_step/inputs/model_output"), z = f.tensor("ddim_step/inputs/z")
        let (sample, x0) = try base.pSample(modelOutput: out, noisy: x, t: t, noise: z, thresholding: .imagen)
        // pSample and the oracle both form x̂_0 as the quotient (x − √(1−ᾱ)ε̂)/√ᾱ: the house rtol 1e-13.
        let tol = Tolerance(rtol: 1e-13, atol: 1e-15)
        f.expectMatches(x0, g + "pred_x0_dynamic", tolerance: tol)
        let tb = base.tables, oracleX0 = f.tensor(g + "pred_x0_dynamic")
        let expected = GaussianDiffusion.broadcastPerSample(t.map { tb.posteriorMeanCoef1[$0] }, rank: 4) * oracleX0
            + GaussianDiffusion.broadcastPerSample(t.map { tb.posteriorMeanCoef2[$0] }, rank: 4) * x
            + GaussianDiffusion.broadcastPerSample(t.map { $0 == 0 ? 0 : tb.posteriorVariance[$0].squareRoot() }, rank: 4) * z
        let c = Comparison("ancestral dynamic step", actual: sample, expected: expected, tolerance: tol)
        print("fixture-composed \(c)"); #expect(c.passed, "\(c)")
    }

    @Test("one deterministic inversion step (improved-diffusion's ddim_reverse_sample), with and without clipping")
    func inversionStep() throws {
        let base = try linearDiffusion(1000)
        let out = f.tensor("ddim_step/inputs/model_output")
        for (chain, s) in [("full_T1000", try SpacedDiffusion(base: base, kept: Array(0..<1000))),
                           ("improved_diffusion_T1000_ddim10", try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim10"), steps: 0))] {
            let g = "inversion_step/\(chain)/"
            let index = f.ints(g + "index")
            #expect(index.map { s.timestepMap[$0] } == f.ints(g + "original_t"))
            let an = index.map { s.alphasCumprodNext[$0] }
            expectULP(an, f.values(g + "alphas_cumprod_next"), g + "alphas_cumprod_next")
            let at = index.map { s.spaced.tables.alphasCumprod[$0] }
            let x = f.tensor(g + "x")
            for (mode, th) in [("noclip", Thresholding.unchanged), ("clip", .clip)] {
                let (x0, eps) = try DDIM.startAndNoise(modelOutput: out, noisy: x, alphaBar: at, meanType: .epsilon, thresholding: th,
                                                       range: 0...1, rederivation: .rederive)
                f.expectMatches(x0, g + "pred_x0_\(mode)")
                if mode == "clip" { f.expectMatches(eps, g + "eps_rederived_clip") }
                f.expectMatches(DDIM.inversionStep(predictedStart: x0, noise: eps, alphaBarNext: an), g + "x_next_\(mode)")
            }
        }
    }

    @Test("dynamic thresholding: quantile (linear interpolation), s and x̂_0 for p ∈ {0.995, 0.9}, s_max ∈ {1, 1.5, ∞}")
    func thresholding() throws {
        let x = f.tensor("threshold/x0")
        let per = x.count / 4
        for p in ["0.995", "0.9"] {
            let q = (0..<4).map { b in Thresholding.quantile(x.data[b * per ..< (b + 1) * per].map { abs($0) }, Double(p)!) }
            f.expectMatches(q, "threshold/p\(p)/quantile", tolerance: Tolerance(rtol: 4.5e-16, atol: 0))
            for smax in SamplerFixture.members("/threshold/p\(p)") where smax.hasPrefix("smax") {
                let s = smax == "smax_inf" ? Double.infinity : Double(smax.dropFirst(4))!
                let (y, scale) = Thresholding.dynamicThreshold(x, percentile: Double(p)!, maxScale: s)
                f.expectMatches(scale, "threshold/p\(p)/\(smax)/s", tolerance: Tolerance(rtol: 4.5e-16, atol: 0))
                f.expectMatches(y, "threshold/p\(p)/\(smax)/x0", tolerance: Tolerance(rtol: 4.5e-16, atol: 0))
                // through the data-range mapping on [−1, 1] (exact there)
                #expect(Thresholding.dynamic(percentile: Double(p)!, maxScale: s).apply(x, range: -1...1).data == y.data)
            }
        }
        // s_max = 1 is static clipping to [−1, 1]
        #expect(Thresholding.dynamicThreshold(x, percentile: 0.995, maxScale: 1).thresholded.data == x.clamp(min: -1, max: 1).data)
        expectError(.invalidValue, mentioning: ["percentile", "1.5"]) { try Thresholding.dynamic(percentile: 1.5, maxScale: 1).validate() }
    }

    @Test("zero terminal SNR (Lin et al. Algorithm 1): β, ᾱ and log SNR; ε-prediction is refused")
    func zeroSNR() throws {
        for T in [1000, 40] {
            let g = "zero_snr/T\(T)/"
            let base = try linearDiffusion(T)
            let b = try TerminalSNR.rescaledBetas(base.tables.betas)
            expectULP(b, f.values(g + "betas"), g + "betas")
            let tb = try DiffusionTables(betas: b)
            expectULP(tb.alphasCumprod, f.values(g + "alphas_cumprod"), g + "alphas_cumprod")
            #expect(tb.alphasCumprod.last == 0 && b.last == 1 && tb.sqrtAlphasCumprod[0] == base.tables.sqrtAlphasCumprod[0])
            expectULP(TerminalSNR.logSNR(base.tables.alphasCumprod), f.values(g + "log_snr_before"), g + "log_snr_before")
            expectULP(TerminalSNR.logSNR(tb.alphasCumprod), f.values(g + "log_snr_after"), g + "log_snr_after")
            expectError(.invalidConfiguration, mentioning: ["zero terminal SNR", "ε-prediction", "v-prediction"]) { try base.zeroTerminalSNR() }
            // x_0-prediction is allowed, and DDIM on its trailing chain starts at ᾱ = 0
            let x0Model = try GaussianDiffusion(schedule: .linear(), timesteps: T, meanType: .startX).zeroTerminalSNR()
            let chain = try DDIMChain(diffusers: x0Model, timesteps: Respacing.diffusersTimesteps(timesteps: T, steps: 10, spacing: "trailing"), setAlphaToOne: true)
            #expect(chain.steps[0].alphaBar == 0)
            _ = try DDIMSampler(chain: chain, eta: 0, meanType: .startX, thresholding: .unchanged, dataRange: 0...1)
            expectError(.invalidConfiguration, mentioning: ["v-prediction"]) {
                try DDIMSampler(chain: chain, eta: 0, meanType: .epsilon, thresholding: .unchanged, dataRange: 0...1)
            }
        }
    }

    @Test("slerp (DDIM §5.3): θ and the interpolants; α = 0 is z0 exactly")
    func slerp() throws {
        let z0 = f.tensor("slerp/z0"), z1 = f.tensor("slerp/z1")
        var all: [Double] = [], theta: [Double] = []
        for a in f.values("slerp/alpha") {
            let (v, th) = try Interpolation.slerp(z0, z1, alpha: a)
            all += v.data; theta = th
            if a == 0 { #expect(v.data == z0.data) }
        }
        f.expectMatches(theta, "slerp/theta")
        f.expectMatches(Tensor(shape: [5] + z0.shape, data: all), "slerp/slerp")
        expectError(.shapeMismatch, mentioning: ["slerp"]) { try Interpolation.slerp(z0, Tensor.zeros([2, 3]), alpha: 0.5) }
    }
}

/// ε̂(x, t) = 0.1·x + 0.001·t with t the original timestep (the fixture's loop model).
var loopModel: ClosurePredictor { ClosurePredictor { x, t in 0.1 * x + GaussianDiffusion.broadcastPerSample(t.map { 0.001 * Double($0) }, rank: x.rank) } }

@Suite("Whole sample loops, exact oracles")
struct SamplerLoopTests {
    let f = SamplerFixture.file

    @Test("whole loops on ddim10 and on sections '10' (stored z): x̂_0 at every step and the sample")
    func loops() throws {
        let xT = f.tensor("loops/x_T")
        let cases: [(String, ModelVarianceType, Thresholding, Double?, NoiseRederivation)] = [
            ("ddim_ddim10_eta0_noclip", .fixedSmall, .unchanged, 0, .rederive),
            ("ddim_ddim10_eta0.5_clip_rederive", .fixedSmall, .clip, 0.5, .rederive),
            ("ddim_ddim10_eta0.5_clip_original", .fixedSmall, .clip, 0.5, .original),
            ("ancestral_10_small_clip", .fixedSmall, .clip, nil, .rederive),
            ("ancestral_10_large_noclip", .fixedLarge, .unchanged, nil, .rederive)]
        for (name, variance, th, eta, red) in cases {
            let base = try linearDiffusion(1000, variance: variance)
            let s = try SpacedDiffusion(base: base, spacing: .improvedDiffusion(eta == nil ? "10" : "ddim10"), steps: 0, thresholding: th)
            let sampler: ReverseSampler = try eta.map { try DDIMSampler(s, eta: $0, rederivation: red) } ?? AncestralSampler(s)
            let zs: [Tensor]? = f.exists("loops/\(name)/z") ? f.tensor("loops/\(name)/z").split(into: 10, axis: 0).map { $0.reshaped(xT.shape) } : nil
            var px: [Tensor] = [], ts: [Int] = []
            var g = RandomGenerator(seed: 0)
            let out = try runReverseChain(model: loopModel, from: xT, sampler: sampler, generator: &g, noise: zs) { px.append($0.predictedStart); ts.append($0.t) }
            #expect(ts == Array(s.timestepMap.reversed()), "\(name): the callback reports the original timesteps")
            // Both the code and the oracle form x̂_0 as the quotient (x − √(1−ᾱ)ε)/√ᾱ: rtol 1e-13 over 10 steps.
            let tol = Tolerance(rtol: 1e-13, atol: 1e-15)
            f.expectMatches(Tensor.concatenate(px.map { $0.reshaped([1] + xT.shape) }, axis: 0), "loops/\(name)/pred_x0", tolerance: tol)
            f.expectMatches(out, "loops/\(name)/sample", tolerance: tol)
        }
    }

    @Test("Dirac data: DDIM η = 0 with the exact ε lands on x*, and inverting x* then generating returns x*")
    func dirac() throws {
        let star = f.tensor("dirac/x_star"), xT = f.tensor("dirac/x_T")
        let base = try linearDiffusion(1000)
        for rule in ["ddim10", "ddim1000", "10,15,20"] {
            let s = try SpacedDiffusion(base: base, spacing: .improvedDiffusion(rule), steps: 0, thresholding: Thresholding.unchanged)
            // the exact ε(x, t) = (x − √ᾱ x*)/√(1 − ᾱ), with the chain's ᾱ' (as the oracle)
            let abar = Dictionary(uniqueKeysWithValues: zip(s.timestepMap, s.spaced.tables.alphasCumprod))
            let exact = ClosurePredictor { x, t in let a = abar[t[0]]!; return (x - a.squareRoot() * star) / (1 - a).squareRoot() }
            var g = RandomGenerator(seed: 0)
            let landed = try runReverseChain(model: exact, from: xT, sampler: DDIMSampler(s, eta: 0), generator: &g)
            let c = Comparison("dirac \(rule) landing", actual: landed, expected: star, tolerance: Tolerance(rtol: 0, atol: 1e-12))
            print("oracle \(c)"); #expect(c.passed, "\(c)")
            f.expectMatches(landed, "dirac/\(rule)/sample", tolerance: Tolerance(rtol: 1e-13, atol: 1e-15))
            let latent = try Interpolation.encode(star, model: exact, diffusion: s)
            f.expectMatches(latent, "dirac/\(rule)/inverted_latent", tolerance: Tolerance(rtol: 1e-13, atol: 1e-15))
            let back = try Interpolation.decode(latent, model: exact, diffusion: s)
            let r = Comparison("dirac \(rule) round trip", actual: back, expected: star, tolerance: Tolerance(rtol: 0, atol: 1e-12))
            print("oracle \(r)"); #expect(r.passed, "\(r)")
        }
    }

    @Test("zero terminal SNR with v-prediction: DDIM η = 0 on the trailing chain starts at ᾱ = 0 and lands on a Dirac point")
    func zeroSNRWithVelocity() throws {
        let star = f.tensor("dirac/x_star"), xT = f.tensor("dirac/x_T")
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, meanType: .velocity, clipDenoised: false).zeroTerminalSNR()
        let chain = try DDIMChain(diffusers: d, timesteps: Respacing.diffusersTimesteps(timesteps: 1000, steps: 10, spacing: "trailing"), setAlphaToOne: true)
        #expect(chain.steps[0].alphaBar == 0)
        // The exact v for data x*: ε = (x − √ᾱ x*)/√(1 − ᾱ) and v = √ᾱ ε − √(1 − ᾱ) x* (at ᾱ = 0: ε = x, v = −x*).
        let exact = ClosurePredictor { x, t in
            let a = d.tables.alphasCumprod[t[0]]
            let eps = (x - a.squareRoot() * star) / (1 - a).squareRoot()
            return a.squareRoot() * eps - (1 - a).squareRoot() * star
        }
        var g = RandomGenerator(seed: 0)
        let landed = try runReverseChain(model: exact, from: xT,
                                         sampler: DDIMSampler(chain: chain, eta: 0, meanType: .velocity, thresholding: .unchanged, dataRange: 0...1), generator: &g)
        let c = Comparison("zero-SNR v-prediction DDIM landing", actual: landed, expected: star, tolerance: Tolerance(rtol: 0, atol: 1e-12))
        print("oracle \(c)"); #expect(c.passed, "\(c)")
    }

    @Test("DDIM η = 1 on the full chain is the fixed-small ancestral sampler given the same z (rtol 1e-12)")
    func etaOneIsAncestral() throws {
        for clip in [false, true] {
            let base = try linearDiffusion(1000, clip: clip)
            let full = try SpacedDiffusion(base: base, kept: Array(0..<1000))
            let shape = [2, 1, 2, 2]
            var g = RandomGenerator(seed: 5)
            let xT = Tensor.randomNormal(shape, generator: &g)
            let zs = (0..<1000).map { _ in Tensor.randomNormal(shape, generator: &g) }
            var u = RandomGenerator(seed: 0)
            var ddimX0: [Tensor] = []
            let ddim = try runReverseChain(model: loopModel, from: xT, sampler: DDIMSampler(full, eta: 1), generator: &u, noise: zs) { ddimX0.append($0.predictedStart) }
            var ancX0: [Tensor] = []
            let anc = try runReverseChain(model: loopModel, from: xT, sampler: AncestralSampler(base), generator: &u, noise: zs) { ancX0.append($0.predictedStart) }
            let c = Comparison("DDIM η=1 vs ancestral fixed-small (clip \(clip))", actual: ddim, expected: anc, tolerance: Tolerance(rtol: 1e-12, atol: 0))
            print("oracle \(c)"); #expect(c.passed, "\(c)")
            // and the generator-driven loops draw the same stream: x_T then one z per step
            var g1 = RandomGenerator(seed: 9), g2 = RandomGenerator(seed: 9)
            let a = try base.sampleLoop(model: loopModel, shape: shape, generator: &g1, sampler: DDIMSampler(full, eta: 1))
            let b = try base.sampleLoop(model: loopModel, shape: shape, generator: &g2)
            let c2 = Comparison("η=1 vs ancestral, drawn noise (clip \(clip))", actual: a, expected: b, tolerance: Tolerance(rtol: 1e-12, atol: 0))
            print("oracle \(c2)"); #expect(c2.passed, "\(c2)")
        }
    }
}

/// The optimal ε̂ for data 𝒩(μ, s²): √(1−ᾱ_t)(x_t − √ᾱ_t μ)/(ᾱ_t s² + 1 − ᾱ_t), with ᾱ from `abar` at the original t.
func gaussianPredictor(mu: Double, s2: Double, abar: @escaping (Int) -> Double) -> ClosurePredictor {
    ClosurePredictor { x, t in
        let a = abar(t[0])
        return (1 - a).squareRoot() * (x - a.squareRoot() * mu) / (a * s2 + 1 - a)
    }
}

@Suite("Statistical oracles: Gaussian data, each sampler's own closed-form law")
struct GaussianLawTests {
    let f = SamplerFixture.file
    let mu = 0.3, s2 = 0.04

    @Test("the optimal ε̂ of the fixture")
    func predictor() throws {
        let base = try linearDiffusion(1000)
        let t = f.ints("gaussian/eps_inputs/t"), x = f.tensor("gaussian/eps_inputs/x_t")
        let p = gaussianPredictor(mu: mu, s2: s2) { base.tables.alphasCumprod[$0] }
        let rows = t.enumerated().map { r, tt in p.predictNoise(x.slice(axis: 0, start: r, length: 1), at: [tt]) }
        f.expectMatches(Tensor.concatenate(rows, axis: 0), "gaussian/eps_hat")
    }

    /// Sampled at N = 10, 50, 250 (the N = 1000 row is the full chain, which `OracleTests` samples for the
    /// ancestral sampler; its law is printed here from the fixture). 2000 samples of 1×1×1 per case keep it quick.
    @Test("DDIM η ∈ {0, 1} and ancestral small/large on ddim10/50/250: sample mean and variance within 5 SE of the exact law")
    func laws() throws {
        let steps = f.ints("gaussian/laws/steps")
        let mean = f.values("gaussian/laws/mean"), variance = f.values("gaussian/laws/variance"), kl = f.values("gaussian/laws/kl_to_data")
        let n = 2000
        var report: [String] = []
        for (r, N) in steps.enumerated() {
            if N > 250 {
                for (c, name) in ["ddim_eta0", "ddim_eta1", "ancestral_small", "ancestral_large"].enumerated() {
                    report.append(String(format: "N=%4d %-16@ law mean %.5f var %.6f (var/s²−1 %+.4f, KL to data %.3g nats); not sampled",
                                         N, name as NSString, mean[r * 4 + c], variance[r * 4 + c], variance[r * 4 + c] / s2 - 1, kl[r * 4 + c]))
                }
                continue
            }
            for (c, name) in ["ddim_eta0", "ddim_eta1", "ancestral_small", "ancestral_large"].enumerated() {
                let base = try linearDiffusion(1000, variance: name == "ancestral_large" ? .fixedLarge : .fixedSmall)
                let s = try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim\(N)"), steps: 0, thresholding: Thresholding.unchanged)
                let abar = Dictionary(uniqueKeysWithValues: zip(s.timestepMap, s.spaced.tables.alphasCumprod))
                let model = gaussianPredictor(mu: mu, s2: s2) { abar[$0]! }
                let sampler: ReverseSampler = name.hasPrefix("ddim") ? try DDIMSampler(s, eta: name == "ddim_eta0" ? 0 : 1) : AncestralSampler(s)
                var g = RandomGenerator(seed: UInt64(100 + 10 * r + c))
                let x = try s.sampleLoop(model: model, shape: [n, 1, 1, 1], generator: &g, sampler: sampler).data
                let m = x.reduce(0, +) / Double(n)
                let v = x.reduce(0.0) { $0 + ($1 - m) * ($1 - m) } / Double(n - 1)
                let (em, ev) = (mean[r * 4 + c], variance[r * 4 + c])
                let seM = (ev / Double(n)).squareRoot(), seV = ev * (2 / Double(n - 1)).squareRoot()
                let zm = (m - em) / seM, zv = (v - ev) / seV
                report.append(String(format: "N=%4d %-16@ law mean %.5f var %.6f (var/s²−1 %+.4f, KL to data %.3g nats); samples mean %.5f (%+.2f SE) var %.6f (%+.2f SE)",
                                     N, name as NSString, em, ev, ev / s2 - 1, kl[r * 4 + c], m, zm, v, zv))
                #expect(abs(zm) < 5 && abs(zv) < 5, "\(name) N=\(N): mean \(m) vs \(em) (\(zm) SE), variance \(v) vs \(ev) (\(zv) SE)")
            }
        }
        print("gaussian laws (n = \(n) samples each):\n" + report.joined(separator: "\n"))
    }

    @Test("Ho §3.2's exact case: fixed-large ancestral on 𝒩(0, 1) data gives mean 0, variance α_0")
    func exactFixedLarge() throws {
        let base = try linearDiffusion(1000, variance: .fixedLarge)
        let model = gaussianPredictor(mu: 0, s2: 1) { base.tables.alphasCumprod[$0] }
        let n = 2000
        var g = RandomGenerator(seed: 77)
        let x = try base.sampleLoop(model: model, shape: [n, 1, 1, 1], generator: &g).data
        let m = x.reduce(0, +) / Double(n), v = x.reduce(0.0) { $0 + ($1 - m) * ($1 - m) } / Double(n - 1)
        let em = f.scalar("gaussian/exact_fixed_large_standard_normal_T1000/mean"), ev = f.scalar("gaussian/exact_fixed_large_standard_normal_T1000/variance")
        let zm = (m - em) / (ev / Double(n)).squareRoot(), zv = (v - ev) / (ev * (2 / Double(n - 1)).squareRoot())
        print(String(format: "exact fixed-large on N(0,1): samples mean %.5f (%+.2f SE), var %.5f vs %.5f (%+.2f SE)", m, zm, v, ev, zv))
        #expect(abs(zm) < 5 && abs(zv) < 5)
    }

    @Test("round trip: DDIM inversion then η = 0 generation is x ↦ slope·x + intercept (the oracle's), error shrinking with N")
    func roundTrip() throws {
        let steps = f.ints("gaussian/round_trip/steps"), slope = f.values("gaussian/round_trip/slope")
        let intercept = f.values("gaussian/round_trip/intercept"), rms = f.values("gaussian/round_trip/rms_error_over_data")
        let base = try linearDiffusion(1000)
        var g = RandomGenerator(seed: 3)
        let x = Tensor(shape: [2000, 1, 1, 1], data: (0..<2000).map { _ in 0 }).data.map { _ in mu + s2.squareRoot() * g.normals(1)[0] }
        let data = Tensor(shape: [2000, 1, 1, 1], data: x)
        for (r, N) in steps.enumerated() where N <= 250 {
            let s = try SpacedDiffusion(base: base, spacing: .improvedDiffusion("ddim\(N)"), steps: 0, thresholding: Thresholding.unchanged)
            let abar = Dictionary(uniqueKeysWithValues: zip(s.timestepMap, s.spaced.tables.alphasCumprod))
            let model = gaussianPredictor(mu: mu, s2: s2) { abar[$0]! }
            let back = try Interpolation.decode(try Interpolation.encode(data, model: model, diffusion: s), model: model, diffusion: s)
            let expected = Tensor(shape: data.shape, data: x.map { slope[r] * $0 + intercept[r] })
            let c = Comparison("round trip ddim\(N)", actual: back, expected: expected, tolerance: Tolerance(rtol: 1e-11, atol: 1e-13))
            let err = (zip(back.data, x).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(x.count)).squareRoot()
            print("oracle \(c); rms error over data \(err) (exact law \(rms[r]))")
            #expect(c.passed, "\(c)")
        }
    }
}
