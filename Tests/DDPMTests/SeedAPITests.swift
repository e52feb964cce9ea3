import TestSupport
import Testing
import DDPM

func stub(channels: Int = 1, timesteps: Int = 20) -> AffineNoisePredictor {
    AffineNoisePredictor(channels: channels, timesteps: timesteps, seed: 1)
}

@Suite("The seed's DDPM API")
struct SeedAPITests {
    @Test func lossBackwardFillsModelGradients() throws {
        let model = stub()
        let ddpm = try DDPM(model: model, imageSize: 4, channels: 1, timesteps: 20, seed: 5)
        var g = RandomGenerator(seed: 9)
        let x = Tensor.randomUniform([3, 1, 4, 4], generator: &g)
        let loss = try ddpm(x)
        #expect(loss.shape == [] && loss.scalar > 0)
        loss.backward()
        for (name, p) in model.namedParameters() { #expect(p.gradValues != nil, "\(name) has no gradient") }
    }

    @Test func sameSeedSameLossAndSamples() throws {
        func run(_ seed: UInt64) throws -> (Double, [Double]) {
            let ddpm = try DDPM(model: stub(), imageSize: 4, channels: 1, timesteps: 20, seed: seed)
            var g = RandomGenerator(seed: 9)
            let x = Tensor.randomUniform([2, 1, 4, 4], generator: &g)
            return (try ddpm(x).scalar, try ddpm.sample(batchSize: 2).data)
        }
        let a = try run(1), b = try run(1), c = try run(2)
        #expect(a.0 == b.0 && a.1 == b.1)
        #expect(a.1 != c.1)
    }

    @Test func samplingRecordsNoGraphAndHasTheRightShape() throws {
        let model = stub(channels: 2)
        let ddpm = try DDPM(model: model, imageSize: 3, channels: 2, timesteps: 20, seed: 1)
        var steps: [Int] = []
        let s = try ddpm.sample(batchSize: 4) { t, _ in steps.append(t) }
        #expect(s.shape == [4, 2, 3, 3] && !s.requiresGrad)
        #expect(steps == Array(stride(from: 19, through: -1, by: -1)))
        // At t = 0 the sample is coef1_0 · clip(x̂_0) with coef1_0 = β_0/(1 − ᾱ_0). In floating point
        // 1 − (1 − β_0) loses about 12 digits' worth of β_0 = 1e-4, so coef1_0 is 1 only to ~1e-12
        // (measured 1.0000000000001101 here, as in Ho et al.'s formulas).
        #expect(s.data.allSatisfy { $0 >= -1e-12 && $0 <= 1 + 1e-12 }, "clipDenoised keeps x̂_0, and so x_0, in [0, 1]: \(s.data)")
        #expect(model.isTraining, "training mode is restored after sampling")
    }

    @Test func badInputsThrowClearErrors() throws {
        let ddpm = try DDPM(model: stub(), imageSize: 4, channels: 1, timesteps: 20)
        expectError(.shapeMismatch, mentioning: ["[2, 3, 4, 4]", "[N, 1, 4, 4]"]) { _ = try ddpm(Tensor.zeros([2, 3, 4, 4])) }
        expectError(.shapeMismatch, mentioning: ["[4, 4]", "[N, 1, 4, 4]"]) { _ = try ddpm(Tensor.zeros([4, 4])) }
        expectError(.invalidValue, mentioning: ["batch size", "got 0"]) { _ = try ddpm.sample(batchSize: 0) }
        expectError(.invalidValue, mentioning: ["timesteps", "got 0"]) { _ = try DDPM(model: stub(), timesteps: 0) }
        expectError(.invalidConfiguration, mentioning: ["10 timesteps", "expected 20"]) {
            _ = try DDPM(model: stub(), imageSize: 4, channels: 1, timesteps: 20, diffuser: try GaussianDiffuser(timesteps: 10))
        }
        expectError(.invalidValue, mentioning: ["timestep 20"]) {
            _ = try ddpm.loss(Tensor.zeros([1, 1, 4, 4]), timesteps: [20], noise: Tensor.zeros([1, 1, 4, 4]))
        }
    }

    @Test func inputsOutsideTheDataRangeAreAcceptedForTheLoss() throws {
        let ddpm = try DDPM(model: stub(), imageSize: 2, channels: 1, timesteps: 20)
        #expect(try ddpm(Tensor.full([1, 1, 2, 2], 7)).scalar.isFinite)
    }

    @Test func klLossOption() throws {
        let diffusion = try GaussianDiffusion(schedule: .linear(), timesteps: 20, lossType: .kl)
        let model = stub()
        let ddpm = try DDPM(model: model, imageSize: 4, channels: 1, timesteps: 20, diffuser: GaussianDiffuser(diffusion: diffusion))
        let x = Tensor.full([2, 1, 4, 4], 0.5)
        let loss = try ddpm.loss(x, timesteps: [0, 7], noise: Tensor.full([2, 1, 4, 4], 0.1))
        let direct = try diffusion.variationalBoundTerms(modelOutput: model.predictNoise(try diffusion.qSample(start: x, t: [0, 7], noise: Tensor.full([2, 1, 4, 4], 0.1)), timesteps: [0, 7]),
                                                         start: x, noisy: try diffusion.qSample(start: x, t: [0, 7], noise: Tensor.full([2, 1, 4, 4], 0.1)), t: [0, 7], clip: false).terms.mean()
        #expect(loss.scalar == direct.scalar)
        loss.backward()
        #expect(model.weight.gradValues != nil)
    }
}
