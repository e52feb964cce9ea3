import TestSupport
import Testing
import Diffusion
import Tensors

/// The default diffusion of the fixture: linear schedule, T = 1000, data in [0, 1].
func fixtureDiffusion(meanType: ModelMeanType = .epsilon, varianceType: ModelVarianceType = .fixedSmall) -> GaussianDiffusion {
    try! GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1, meanType: meanType, varianceType: varianceType)
}

enum Inputs {
    static var x0: Tensor { DiffusionFixture.tensor("equations/inputs/x0") }
    static let t = DiffusionFixture.ints("equations/inputs/t")
    static var noise: Tensor { DiffusionFixture.tensor("equations/inputs/noise") }
    static var output: Tensor { DiffusionFixture.tensor("equations/inputs/model_output") }
    static var z: Tensor { DiffusionFixture.tensor("equations/inputs/z") }
    static var xt: Tensor { try! fixtureDiffusion().qSample(start: x0, t: t, noise: noise) }
}

@Suite("Each equation against its fixture (rtol 1e-13)")
struct EquationTests {
    let d = fixtureDiffusion()

    @Test func fixtureTimestepsIncludeBothEnds() {
        #expect(Inputs.t.contains(0) && Inputs.t.contains(999))
    }

    @Test("q(x_t | x_0), eq. 4: fixtures equations/q_mean, q_variance, q_log_variance, q_sample")
    func forwardProcess() throws {
        let q = try d.qMeanVariance(start: Inputs.x0, t: Inputs.t)
        expectMatches(q.mean, "equations/q_mean")
        expectMatches(q.variance.data, "equations/q_variance")
        expectMatches(q.logVariance.data, "equations/q_log_variance")
        expectMatches(try d.qSample(start: Inputs.x0, t: Inputs.t, noise: Inputs.noise), "equations/q_sample")
    }

    @Test("q(x_{t-1} | x_t, x_0), eqs. 6-7: fixtures equations/posterior_*")
    func posterior() throws {
        let q = try d.qPosteriorMeanVariance(start: Inputs.x0, noisy: Inputs.xt, t: Inputs.t)
        expectMatches(q.mean, "equations/posterior_mean")
        expectMatches(q.variance.data, "equations/posterior_variance")
        expectMatches(q.logVariance.data, "equations/posterior_log_variance_clipped")
    }

    @Test("x̂_0 from ε and from x_{t-1}: fixtures equations/pred_x0_from_eps, pred_x0_from_xprev")
    func startPredictions() throws {
        expectMatches(try d.predictStartFromNoise(noisy: Inputs.xt, t: Inputs.t, noise: Inputs.output), "equations/pred_x0_from_eps")
        expectMatches(try d.predictStartFromPrevious(noisy: Inputs.xt, t: Inputs.t, previous: Inputs.output), "equations/pred_x0_from_xprev")
    }

    @Test("p_θ(x_{t-1} | x_t) for every parameterisation × variance × clipping: fixtures equations/p/…",
          arguments: [ModelMeanType.epsilon, .startX, .previousX], [ModelVarianceType.fixedSmall, .fixedLarge])  // the types diffusion.h5 holds; v and learned variances: ObjectiveTests
    func reverseProcess(_ mean: ModelMeanType, _ variance: ModelVarianceType) throws {
        let d = fixtureDiffusion(meanType: mean, varianceType: variance)
        for clip in [true, false] {
            let p = try d.pMeanVariance(modelOutput: Inputs.output, noisy: Inputs.xt, t: Inputs.t, clip: clip)
            let base = "equations/p/\(mean.rawValue)/\(variance.rawValue)/\(clip ? "clip" : "noclip")"
            expectMatches(p.mean, base + "/mean")
            expectMatches(p.variance.data, base + "/variance")
            expectMatches(p.logVariance.data, base + "/log_variance")
            expectMatches(p.predictedStart, base + "/pred_x0")
        }
    }

    @Test("one reverse step with stored z (no noise at t = 0): fixture equations/p_sample")
    func reverseStep() throws {
        expectMatches(try d.pSample(modelOutput: Inputs.output, noisy: Inputs.xt, t: Inputs.t, noise: Inputs.z, clip: true).sample, "equations/p_sample")
    }

    @Test("L_simple, eq. 14: fixture equations/loss_simple")
    func simpleLoss() {
        expectMatches(d.simpleLoss(predictedNoise: Inputs.output, noise: Inputs.noise), "equations/loss_simple")
    }

    @Test func timestepsOutsideTheRangeThrow() {
        expectError(.invalidValue, mentioning: ["timestep 1000", "[0, 1000)"]) {
            _ = try d.qSample(start: Inputs.x0, t: [0, 1, 2, 1000], noise: Inputs.noise)
        }
        expectError(.invalidValue, mentioning: ["timestep -1"]) {
            _ = try d.pMeanVariance(modelOutput: Inputs.output, noisy: Inputs.x0, t: [-1, 0, 0, 0], clip: true)
        }
        expectError(.invalidValue, mentioning: ["(4)", "got 2"]) {
            _ = try d.qMeanVariance(start: Inputs.x0, t: [0, 1])
        }
        #expect(throws: DDPMError.self) { _ = try GaussianDiffusion(dataRange: 1...1) }
    }
}

@Suite("The variational bound against its fixtures (rtol 1e-13)")
struct BoundTests {
    let d = fixtureDiffusion()

    @Test("KL of diagonal Gaussians: fixture bound/normal_kl")
    func normalKL() {
        let r = { (name: String) -> Tensor in DiffusionFixture.tensor("bound/kl_inputs/" + name) }
        expectMatches(GaussianDiffusion.normalKL(mean1: r("mean1"), logVariance1: r("logvar1"), mean2: r("mean2"), logVariance2: r("logvar2")), "bound/normal_kl")
    }

    @Test("discretised Gaussian decoder, data in [0,1] and [-1,1]: fixtures bound/decoder/…", arguments: ["range01", "range11"])
    func decoder(_ tag: String) throws {
        let g = "bound/decoder/\(tag)"
        let lo = DiffusionFixture.file.doubleAttribute("data_min", of: g), hi = DiffusionFixture.file.doubleAttribute("data_max", of: g)
        let ll = GaussianDiffusion.discretizedGaussianLogLikelihood(DiffusionFixture.tensor(g + "/x"), means: DiffusionFixture.tensor(g + "/means"),
                                                                    logScales: DiffusionFixture.tensor(g + "/log_scales"), dataRange: lo...hi)
        expectMatches(ll, g + "/log_likelihood")
    }

    @Test("per-step terms L_{t-1} and L_0 in bits/dim, prior L_T: fixtures bound/vb_terms_bpd, kl_bpd, decoder_nll_bpd, prior_bpd")
    func terms() throws {
        // These compose x̂_0 with μ̃ − μ_θ = coef1·(x_0 − x̂_0) at t = 0, a cancellation that magnifies any
        // difference in x̂_0 (Notes/07). The code and the oracle now form x̂_0 by the same quotient
        // (x_t − √(1−ᾱ)ε)/√ᾱ, so the composed terms meet the usual rtol 1e-13 (measured worst 1.9e-16 relative);
        // with Ho's √(1/ᾱ)x_t − √(1/ᾱ−1)ε they were 2.8e-13 apart and needed 1e-12.
        let composed = Tolerance(rtol: 1e-13, atol: 0)
        let v = try d.variationalBoundTerms(modelOutput: Inputs.output, start: Inputs.x0, noisy: Inputs.xt, t: Inputs.t, clip: true)
        expectMatches(v.terms, "bound/vb_terms_bpd", tolerance: composed)
        expectMatches(v.kl, "bound/kl_bpd", tolerance: composed)
        expectMatches(v.decoderNLL, "bound/decoder_nll_bpd", tolerance: composed)
        expectMatches(try d.priorBitsPerDimension(start: Inputs.x0), "bound/prior_bpd")
    }

    @Test("the whole bound over T = 10 for the analytic model ε̂ = 0.1·x_t + 0.01·t: fixture bound/full_bound")
    func fullBound() throws {
        let d10 = try GaussianDiffusion(schedule: .linear(), timesteps: 10)
        let noise = DiffusionFixture.tensor("bound/full_bound/noise")
        let per = Inputs.x0.count
        let b = try d10.fullBound(start: Inputs.x0, clip: true,
                                  noise: { s in Tensor(shape: Inputs.x0.shape, data: Array(noise.data[(s * per)..<((s + 1) * per)])) },
                                  model: { x, t in 0.1 * x + 0.01 * Double(t[0]) })
        expectMatches(b.terms.flatMap { $0 }, "bound/full_bound/terms_bpd")
        expectMatches(b.prior, "bound/full_bound/prior_bpd")
        expectMatches(b.total, "bound/full_bound/total_bpd")
    }
}
