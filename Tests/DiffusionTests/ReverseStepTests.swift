import Foundation
import TestSupport
import Testing
import Diffusion
import Tensors

/// The reverse step's "no noise at t = 0" rule (Ho et al. Algorithm 2, line 4: z = 0 when t = 1 in the
/// paper's 1-based count). σ_0 = exp(½ log σ_0²) is not zero for any variance type here (the log is
/// clipped to log β̃_1), so without the mask the last step would add noise: this pins the mask.
@Suite("The reverse step adds no noise at t = 0, for every variance type")
struct ReverseStepTests {
    @Test("pSample at t = 0 returns the mean exactly, whatever z is", arguments: ModelVarianceType.allCases)
    func noNoiseAtZero(_ variance: ModelVarianceType) throws {
        // Learned variances need the hybrid (or a bound) loss, and a network output of 2C channels.
        let d = try GaussianDiffusion(timesteps: 1000, varianceType: variance, lossType: variance.isLearned ? .hybrid : .simple)
        let xt = randomTensor([2, 1, 2, 2], seed: 1), out = randomTensor([2, variance.isLearned ? 2 : 1, 2, 2], seed: 2)
        let z = Tensor.full([2, 1, 2, 2], 1000)
        let step = try d.pSample(modelOutput: out, noisy: xt, t: [0, 0], noise: z, clip: false)
        let mean = try d.pMeanVariance(modelOutput: out, noisy: xt, t: [0, 0], clip: false).mean
        #expect(step.sample.data == mean.data, "t = 0 with \(variance): \(step.sample.data) vs mean \(mean.data)")
        // σ_0 itself is not 0 (at least √β̃_1 ≈ 7e-3 for the fixed types), so it is the mask, not a zero
        // variance, that removes the noise.
        let sigma0 = try d.pMeanVariance(modelOutput: out, noisy: xt, t: [0, 0], clip: false).logVariance.data.map { Foundation.exp($0 / 2) }
        #expect(sigma0.allSatisfy { $0 > 1e-4 }, "σ_0 with \(variance): \(sigma0)")
    }

    @Test("pSample at t ≥ 1 adds σ_t z with σ_t from the tables: √β̃_t (small) or √β_t (large)", arguments: [ModelVarianceType.fixedSmall, .fixedLarge])
    func noiseAtPositiveT(_ variance: ModelVarianceType) throws {
        let d = try GaussianDiffusion(timesteps: 1000, varianceType: variance)
        let xt = randomTensor([2, 1, 1, 1], seed: 3), out = randomTensor([2, 1, 1, 1], seed: 4)
        let z = Tensor.full([2, 1, 1, 1], 1)
        let t = [1, 700]
        let step = try d.pSample(modelOutput: out, noisy: xt, t: t, noise: z, clip: false)
        let mean = try d.pMeanVariance(modelOutput: out, noisy: xt, t: t, clip: false).mean
        let sigma = t.map { variance == .fixedSmall ? d.tables.posteriorVariance[$0].squareRoot() : d.tables.betas[$0].squareRoot() }
        let c = Comparison("σ_t at t = \(t), \(variance)", actual: (step.sample - mean).data, expected: sigma, tolerance: Tolerance(rtol: 1e-12, atol: 0))
        print("oracle \(c)")
        #expect(c.passed, "\(c)")
    }
}
