// Issue 9 end to end: training toward each parameterisation's target, learned variances through
// checkpoints and sampling, importance-sampled timesteps with exact resume, golden files of the new
// outputs, and the command's refusals of bad combinations.

import Foundation
import TestSupport
import Testing
import DDPM

/// A tiny per-timestep affine predictor that can represent the exact predictor of a one-point data set
/// for every mean type (each is a_t·x_t + b_t for constant data): mean part = scale[t]·x + shift[t];
/// with `learnsVariance`, a second channel block = logVariance[t] (the raw variance output).
final class TablePredictor: NoisePredictor {
    let scale: Tensor, shift: Tensor, varianceOutput: Tensor?
    var isTraining = true
    init(timesteps: Int, learnsVariance: Bool) {
        scale = Tensor.zeros([timesteps], requiresGrad: true)
        shift = Tensor.zeros([timesteps], requiresGrad: true)
        varianceOutput = learnsVariance ? Tensor.zeros([timesteps], requiresGrad: true) : nil
    }
    func namedParameters() -> [(name: String, tensor: Tensor)] {
        [("scale", scale), ("shift", shift)] + (varianceOutput.map { [("variance", $0)] } ?? [])
    }
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor {
        let perSample = [t.count] + Array(repeating: 1, count: x.rank - 1)
        let mean = scale.gather(t).reshaped(perSample) * x + shift.gather(t).reshaped(perSample)
        guard let v = varianceOutput else { return mean }
        return Tensor.concatenate([mean, v.gather(t).reshaped(perSample) + Tensor.zeros(x.shape)], axis: 1)
    }
}

@Suite("Training toward each parameterisation (tiny per-timestep model, one-point data)")
struct ObjectiveTrainingTests {
    static let star = 0.7
    static let schedule = BetaSchedule.linear(start: 0.05, end: 0.5)
    static let timesteps = 10

    /// Trains on the one-point data set x* and returns the worst |x̂_0 − x*| over probes at every t, before
    /// and after (x̂_0 implied by the mean part, read as the mean type).
    static func train(_ m: ModelMeanType, _ v: ModelVarianceType = .fixedSmall, _ loss: LossType = .simple,
                      weighting: LossWeighting = .uniform, steps: Int = 300) throws -> (before: Double, after: Double, model: TablePredictor, diffusion: GaussianDiffusion) {
        let d = try GaussianDiffusion(DiffusionConfiguration(schedule: schedule, timesteps: timesteps, meanType: m, varianceType: v,
                                                             lossType: loss, weighting: weighting, clipDenoised: false))
        let model = TablePredictor(timesteps: timesteps, learnsVariance: v.isLearned)
        let ddpm = try DDPM(model: model, imageSize: 2, channels: 1, timesteps: timesteps, diffuser: d, seed: 3)
        var probe = RandomGenerator(seed: 11)
        let tProbe = (0..<(4 * timesteps)).map { $0 % timesteps }
        let x0 = Tensor.full([tProbe.count, 1, 2, 2], star)
        let xt = try d.qSample(start: x0, t: tProbe, noise: Tensor.randomNormal(x0.shape, generator: &probe))
        func worst() throws -> Double {
            let mean = try d.splitOutput(withoutGradients { model.predictNoise(xt, at: tProbe) }, noisy: xt, "probe").mean
            return try d.predictStart(meanOutput: mean, noisy: xt, t: tProbe).data.map { abs($0 - star) }.max()!
        }
        let before = try worst()
        var options = TrainingOptions(); options.learningRate = 0.05
        let adam = Adam(shapes: model.parameters.map(\.count), options: options)
        let x = Tensor.full([16, 1, 2, 2], star)
        for _ in 0..<steps {
            model.zeroGradients()
            try ddpm(x).backward()
            adam.update(model.parameters)
        }
        return (before, try worst(), model, d)
    }

    @Test("each mean type drives the implied x̂_0 to the data point (the test the ε-only bug fails)",
          arguments: ModelMeanType.allCases)
    func meanTypeTrainsTowardTheData(_ m: ModelMeanType) throws {
        let r = try Self.train(m)
        print("oracle one-point data, mean type \(m.rawValue): worst |x̂_0 − x*| over every t \(r.before) → \(r.after) after 300 steps")
        #expect(r.after < 0.08 && r.after < r.before / 5, "mean type \(m.rawValue): \(r.before) → \(r.after)")
    }

    @Test("min-SNR-γ and the hybrid loss train the mean too", arguments: [
        (ModelMeanType.velocity, ModelVarianceType.fixedSmall, LossType.simple, LossWeighting.minSNR(gamma: 5)),
        (.epsilon, .learnedRange, .hybrid, .uniform), (.velocity, .learned, .hybrid, .minSNR(gamma: 5)),
    ])
    func weightedAndHybrid(_ m: ModelMeanType, _ v: ModelVarianceType, _ loss: LossType, _ w: LossWeighting) throws {
        let r = try Self.train(m, v, loss, weighting: w)
        print("oracle one-point data, \(m.rawValue)/\(v.rawValue)/\(loss.rawValue)/\(w.name): worst |x̂_0 − x*| \(r.before) → \(r.after)")
        #expect(r.after < 0.08 && r.after < r.before / 5)
    }

    /// With the exact mean, KL(q(x_{t−1}|x_t,x*) ‖ p_θ) is smallest at σ² = β̃_t, i.e. learned-range output −1:
    /// the hybrid loss's bound term drives the variance there (t ≥ 1; at t = 0 the decoder wants σ → 0).
    @Test("the hybrid loss drives a learned-range variance toward β̃_t on one-point data")
    func hybridLearnsThePosteriorVariance() throws {
        let r = try Self.train(.startX, .learnedRange, .hybrid, steps: 600)
        let out = r.model.varianceOutput!.data
        let worst = out[1...].map { abs($0 + 1) }.max()!
        print("oracle one-point data, learned range: variance outputs \(out.map { String(format: "%.3f", $0) }) (−1 is β̃_t); worst |out + 1| for t ≥ 1 = \(worst)")
        #expect(worst < 0.1)
    }
}

/// The micro network with a given objective (T = 4, so the resampler warms up after 40 losses).
func microConfiguration(_ m: ModelMeanType, _ v: ModelVarianceType, _ loss: LossType, weighting: LossWeighting = .uniform, timesteps: Int = 4) -> ModelConfiguration {
    var c = microConfiguration()
    c.diffusion.timesteps = timesteps
    c.diffusion.meanType = m; c.diffusion.varianceType = v; c.diffusion.lossType = loss; c.diffusion.weighting = weighting
    return ModelConfiguration(network: c.network, diffusion: c.diffusion)
}

@Suite("Objectives through checkpoints, sampling and golden files")
struct ObjectivePersistenceTests {
    @Test("a learned variance doubles final_conv's outputs and changes nothing else in the ledger")
    func ledger() throws {
        let plain = try UNet(microConfiguration().network), learned = try UNet(microConfiguration(.epsilon, .learnedRange, .hybrid).network)
        let a = plain.ledger, b = learned.ledger
        #expect(a.map(\.name) == b.map(\.name))
        for (x, y) in zip(a, b) where x.shape != y.shape {
            #expect(x.name.hasPrefix("final_conv."), "\(x.name): \(x.shape) → \(y.shape)")
            #expect(y.shape[0] == 2 * x.shape[0])
        }
        #expect(b.first { $0.name == "final_conv.weight" }!.shape[0] == 2)
        // The seed's default network (Fixtures/unet-parameters.tsv: total 20,912,259, final_conv.weight 3×128×3×3 =
        // 3456, final_conv.bias 3): with 6 outputs final_conv gains 3456 + 3, so 20,915,718 (by hand).
        var seed = UNetConfiguration.seed(channels: 3)
        seed.outputsVariance = true
        #expect(try UNet(seed).parameterCount == 20_915_718)
    }

    @Test("resampler + v + learned range + hybrid + min-SNR: N + M steps equal N, checkpoint, M resumed, bit for bit")
    func exactResumeWithTheResampler() throws {
        let data = digits8(32)
        let config = microConfiguration(.velocity, .learnedRange, .hybrid, weighting: .minSNR(gamma: 5))
        var options = TrainingOptions(); options.batchSize = 8; options.learningRate = 1e-3; options.emaDecay = 0.9
        options.timestepSampler = .lossSecondMoment
        let straight = try Trainer(config: config, options: options, seed: 5)
        for _ in 0..<8 { try straight.trainStep(on: data) }
        let first = try Trainer(config: config, options: options, seed: 5)
        for _ in 0..<6 { try first.trainStep(on: data) }
        #expect(first.resampler!.isWarmedUp, "4 timesteps × 10 losses need 5 steps of 8")
        let path = scratchFolder() + "/c.h5"
        try first.save(to: path)
        let resumed = try Trainer.load(from: path)
        #expect(resumed.config == config)
        #expect(resumed.options.timestepSampler == .lossSecondMoment)
        #expect(resumed.resampler == first.resampler)
        for _ in 0..<2 { try resumed.trainStep(on: data) }
        #expect(resumed.network.parameters.map(\.data) == straight.network.parameters.map(\.data))
        #expect(resumed.resampler == straight.resampler)
        #expect(resumed.ddpm.generator == straight.ddpm.generator)
        // Sampling obeys the checkpoint: the diffuser is the stored one and the chain runs on 2C outputs.
        #expect((resumed.ddpm.diffuser as? GaussianDiffusion)?.configuration == config.diffusion)
        let samples = try resumed.ddpm.sample(batchSize: 2)
        #expect(samples.shape == [2, 1, 8, 8] && samples.data.allSatisfy(\.isFinite))
    }

    @Test("golden files of the new objectives export and check; /config carries every type",
          arguments: [(ModelMeanType.velocity, ModelVarianceType.learnedRange, LossType.hybrid, LossWeighting.minSNR(gamma: 5)),
                      (.startX, .learned, .rescaledKL, .uniform), (.previousX, .fixedLarge, .kl, .uniform)])
    func golden(_ m: ModelMeanType, _ v: ModelVarianceType, _ loss: LossType, _ w: LossWeighting) throws {
        var diffusion = DiffusionConfiguration()
        diffusion.meanType = m; diffusion.varianceType = v; diffusion.lossType = loss; diffusion.weighting = w
        let config = ModelConfiguration(network: try Presets.network("golden"), diffusion: diffusion)
        let path = scratchFolder() + "/g.h5"
        try GoldenFile.export(to: path, config: config, seed: 3, batch: 2)
        let rows = try GoldenFile.check(path: path, tolerance: .independentImplementation)
        for name in ["target", "model_variance", "model_log_variance", "mse", "loss_weight", "vb", "loss_terms"] {
            #expect(rows.contains { $0.name == name }, "no output \(name)")
        }
        for r in rows { #expect(r.comparison.passed, "\(r.comparison)") }
        let file = try HDF5File(path: path)
        #expect(try ModelConfiguration(reading: file) == config)
        #expect(try file.stringAttribute("mean_type", of: "/config") == m.rawValue)
        #expect(try file.int64Attribute("out_channels", of: "/config") == Int64(v.isLearned ? 2 : 1))
        #expect(try file.readDoubles("/outputs/eps_pred").shape[1] == (v.isLearned ? 2 : 1))
        #expect(try file.readDoubles("/outputs/model_log_variance").shape == (v.isLearned ? [2, 1, 16, 16] : [2]))
    }
}

@Suite("The command's objective options")
struct ObjectiveCommandTests {
    @Test func badCombinationsAreOneErrorLine() throws {
        let dir = scratchFolder()
        let base = ["train", "--data", dir + "/absent.h5", "--out", dir + "/c.h5", "--preset", "golden"]
        try expectUserError(base + ["--loss", "hybrid"], "hybrid")
        try expectUserError(base + ["--variance", "learned-range"], "simple")
        try expectUserError(base + ["--mean-type", "xprev", "--min-snr", "5"], "xprev")
        try expectUserError(base + ["--mean-type", "y"], "--mean-type 'y'")
        try expectUserError(base + ["--timestep-sampler", "fancy"], "--timestep-sampler 'fancy'")
        try expectUserError(["golden", "export", "--out", dir + "/g.h5", "--loss", "hybrid", "--variance", "large"], "hybrid")
        #expect(!FileManager.default.fileExists(atPath: dir + "/c.h5") && !FileManager.default.fileExists(atPath: dir + "/g.h5"))
    }

    @Test("ddpm golden export --mean-type v --variance learned-range --loss hybrid --min-snr 5, then ddpm golden check")
    func goldenThroughTheCommand() throws {
        let dir = scratchFolder()
        let export = try runDDPM(["golden", "export", "--out", dir + "/g.h5", "--mean-type", "v", "--variance", "learned-range",
                                  "--loss", "hybrid", "--min-snr", "5"])
        #expect(export.status == 0, "\(export.stderr)")
        let check = try runDDPM(["golden", "check", dir + "/g.h5"])
        // every output the schema defines plus one gradient per parameter tensor of the golden preset
        let expected = GoldenFile.outputNames.count + (try UNet(Presets.network("golden")).namedParameters().count)
        #expect(check.status == 0 && check.stdout.contains("\(expected) passed, 0 failed"), "\(check.stdout)\(check.stderr)")
    }
}
