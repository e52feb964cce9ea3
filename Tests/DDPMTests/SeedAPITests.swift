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
        var last: Tensor?
        let s = try ddpm.sample(batchSize: 4) { step in steps.append(step.t); last = step.next }
        #expect(s.shape == [4, 2, 3, 3] && !s.requiresGrad)
        #expect(steps == Array(stride(from: 19, through: 0, by: -1)))
        #expect(last?.data == s.data, "the last step's output is the sample")
        // At t = 0 the sample is coef1_0 · clip(x̂_0) with coef1_0 = β_0/(1 − ᾱ_0). In floating point
        // 1 − (1 − β_0) rounds β_0 = 1e-4 with a relative error of 1.1e-13 (about 3 of 16 digits lost),
        // so coef1_0 is 1.0000000000001101, not 1, here as in Ho et al.'s formulas.
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
            _ = try DDPM(model: stub(), imageSize: 4, channels: 1, timesteps: 20, diffuser: try GaussianDiffusion(timesteps: 10))
        }
        expectError(.invalidValue, mentioning: ["timestep 20"]) {
            _ = try ddpm.loss(Tensor.zeros([1, 1, 4, 4]), at: [20], noise: Tensor.zeros([1, 1, 4, 4]))
        }
    }

    @Test func inputsOutsideTheDataRangeAreAcceptedForTheLoss() throws {
        let ddpm = try DDPM(model: stub(), imageSize: 2, channels: 1, timesteps: 20)
        #expect(try ddpm(Tensor.full([1, 1, 2, 2], 7)).scalar.isFinite)
    }

    @Test("the loss follows the diffuser's loss type: fixtures objectives.h5 losses/simple/eps and losses/vb/eps/fixed_small/vb_bpd")
    func lossTypes() throws {
        let f = FixtureFile("objectives.h5")
        let x0 = f.tensor("inputs/x0"), noise = f.tensor("inputs/noise"), t = f.ints("inputs/t")
        for (lossType, dataset) in [(LossType.simple, "losses/simple/eps"), (.kl, "losses/vb/eps/fixed_small/vb_bpd")] {
            let diffusion = try GaussianDiffusion(DiffusionConfiguration(timesteps: 1000, lossType: lossType))
            let model = FixedOutputPredictor(f.tensor("inputs/model_output/eps"))
            let ddpm = try DDPM(model: model, imageSize: 3, channels: 2, timesteps: 1000, diffuser: diffusion)
            let loss = try ddpm.loss(x0, at: t, noise: noise)
            let expected = f.values(dataset).reduce(0, +) / Double(t.count)
            let c = Comparison("DDPM.loss \(lossType) vs mean of \(dataset)", actual: [loss.scalar], expected: [expected], tolerance: .equation)
            print("fixture \(c)")
            #expect(c.passed, "\(c)")
            loss.backward()
            #expect(model.offset.gradValues != nil)
        }
    }

    @Test("the default U-Net doubles its output channels when the diffuser learns the variance (20,907,649 + 128·3·3 + 1)")
    func defaultNetworkFollowsTheDiffuser() throws {
        let diffusion = try GaussianDiffusion(DiffusionConfiguration(timesteps: 1000, varianceType: .learnedRange, lossType: .hybrid))
        let ddpm = try DDPM(imageSize: 32, channels: 1, timesteps: 1000, diffuser: diffusion)
        let net = try #require(ddpm.model as? UNet)
        #expect(net.configuration.outputChannels == 2)
        // final_conv grows from [1, 128, 3, 3] + [1] to [2, 128, 3, 3] + [2]: 128·3·3 + 1 = 1153 more parameters.
        #expect(net.parameterCount == 20_907_649 + 1153)
    }

    @Test("x0-prediction trains toward x_0, not ε: a one-point data set pulls the output to the point")
    func startXTrainsTowardTheData() throws {
        // The affine stand-in can output the constant x* exactly (weight 0, time weight 0, bias x*), so
        // with the x0 target its loss has a minimum at bias = x*; with the ε target (the old defect) the
        // bias would go to E[ε] = 0 instead.
        let star = 0.7
        let model = AffineNoisePredictor(channels: 1, timesteps: 20, seed: 4)
        let diffusion = try GaussianDiffusion(DiffusionConfiguration(timesteps: 20, meanType: .startX))
        let ddpm = try DDPM(model: model, imageSize: 2, channels: 1, timesteps: 20, diffuser: diffusion, seed: 3)
        var options = TrainingOptions(); options.learningRate = 0.02
        let adam = Adam(shapes: model.parameters.map(\.count), options: options)
        let x = Tensor.full([8, 1, 2, 2], star)
        for _ in 0..<400 {
            model.zeroGradients()
            try ddpm(x).backward()
            adam.update(model.parameters)
        }
        var g = RandomGenerator(seed: 11)
        let probe = Tensor.randomNormal([4, 1, 2, 2], generator: &g)
        let out = model.predictNoise(probe, at: [0, 5, 10, 19])
        let worst = out.data.map { abs($0 - star) }.max()!
        print("oracle x0-prediction on a one-point data set: output within \(worst) of x* = \(star) after 400 steps")
        #expect(worst < 0.05, "x0-prediction output \(out.data) should approach \(star)")
    }
}

/// A stand-in network whose output is a fixed tensor plus one trainable offset (so gradients flow).
final class FixedOutputPredictor: NoisePredictor {
    let output: Tensor
    let offset = Tensor.zeros([1], requiresGrad: true)
    var isTraining = true
    init(_ output: Tensor) { self.output = output }
    func namedParameters() -> [(name: String, tensor: Tensor)] { [("offset", offset)] }
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        precondition(x.shape == output.shape, "FixedOutputPredictor: input \(x.shape), stored output \(output.shape)")
        return output + offset
    }
}
