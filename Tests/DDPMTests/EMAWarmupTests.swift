import TestSupport
import Testing
@testable import DDPM

/// The EMA's warm-up (TensorFlow's `ExponentialMovingAverage(decay, num_updates=n)`: d_n = min(d, (1 + n)/(10 + n)))
/// and its place in a training step, against values worked out by hand in the comments.
@Suite("The EMA's warm-up and its place in a training step")
struct EMAWarmupTests {
    @Test("warm-up decays by hand: 1/10, 2/11, 3/12, 9/18, 9991/10000, then d = 0.9999 from n = 89,991 on")
    func warmupDecays() {
        let w = EMAWarmup.numUpdates
        // (n, d_n) with d = 0.9999: (1 + n)/(10 + n) while that is below d.
        let cases: [(Int, Double)] = [(0, 1.0 / 10), (1, 2.0 / 11), (2, 3.0 / 12), (8, 9.0 / 18), (9990, 9991.0 / 10000),
                                      // (1 + n)/(10 + n) ≥ 0.9999 ⇔ 1 + n ≥ 0.9999·(10 + n) ⇔ 0.0001·n ≥ 8.999 ⇔ n ≥ 89,990
                                      (89_989, 89_990.0 / 89_999), (89_991, 0.9999), (1_000_000, 0.9999)]
        for (n, want) in cases {
            let got = w.decay(0.9999, afterUpdates: n)
            print("hand EMA warm-up d_\(n): \(got) (expected \(want), difference \(got - want))")
            #expect(got == want, "d_\(n)")
        }
        // A small maximum decay is reached at once: min(0.05, 1/10) = 0.05.
        #expect(w.decay(0.05, afterUpdates: 0) == 0.05)
        #expect(EMAWarmup.none.decay(0.9999, afterUpdates: 0) == 0.9999)
        #expect(TrainingOptions().emaWarmup == .numUpdates, "the warm-up is on unless asked otherwise")
    }

    @Test("three warm-up updates of θ̄ = 0 toward θ = 1 (d = 0.9): 0.9, 10.8/11, 1 − 6/1320")
    func threeUpdates() {
        // θ̄₁ = 0.1·0 + 0.9·1 = 0.9; θ̄₂ = (2/11)·0.9 + 9/11 = 10.8/11; θ̄₃ = (3/12)·(10.8/11) + 9/12 = 1 − (1·2·3)/(10·11·12).
        let expected = [0.9, 10.8 / 11, 1 - 6.0 / 1320]
        var average = [0.0]
        for (n, want) in expected.enumerated() {
            Trainer.updateAverage(&average, toward: [1], decay: EMAWarmup.numUpdates.decay(0.9, afterUpdates: n))
            let c = Comparison("EMA after \(n + 1) warm-up updates", actual: average, expected: [want], tolerance: Tolerance(rtol: 1e-15, atol: 0))
            print("hand \(c)")
            #expect(c.passed, "\(c)")
        }
    }

    @Test("one whole training step: Adam first, then ema = d₀·θ₀ + (1 − d₀)·θ₁ exactly, d₀ = min(0.999, 1/10) = 0.1; the second d₁ = 2/11")
    func averageFollowsTheUpdate() throws {
        let data = digits8(16)
        var options = TrainingOptions(); options.batchSize = 2; options.learningRate = 1e-2; options.emaDecay = 0.999
        let trainer = try Trainer(config: microConfiguration(), options: options, seed: 2)
        let theta0 = trainer.network.parameters.map(\.data)
        #expect(trainer.ema == theta0 && trainer.emaUpdates == 0)
        for (step, d) in [(1, 1.0 / 10), (2, 2.0 / 11)] {
            let before = trainer.ema
            try trainer.trainStep(on: data)
            let theta = trainer.network.parameters.map(\.data)
            var worst = 0.0, moved = 0, total = 0
            for k in theta.indices {
                for i in theta[k].indices {
                    let want = d * before[k][i] + (1 - d) * theta[k][i]
                    worst = max(worst, abs(trainer.ema[k][i] - want))
                    if theta[k][i] != before[k][i] { moved += 1 }
                    total += 1
                }
            }
            print("hand EMA after training step \(step): worst |ema − (d·ema_prev + (1 − d)·θ_\(step))| = \(worst) with d = \(d); \(moved) of \(total) weights moved")
            #expect(worst == 0, "step \(step): the average is d·θ̄ + (1 − d)·θ of the weights after the update")
            #expect(moved > total / 2, "the step moves the weights, so averaging toward the old ones would differ")
            #expect(trainer.emaUpdates == step)
        }
    }

    @Test("checkpoints record the EMA's age and warm-up; a checkpoint without them loads as warm-up none, age = step")
    func checkpointRecordsTheAge() throws {
        let data = digits8(16)
        var options = TrainingOptions(); options.batchSize = 2
        let trainer = try Trainer(config: microConfiguration(), options: options, seed: 2)
        for _ in 0..<3 { try trainer.trainStep(on: data) }
        let dir = scratchFolder()
        try trainer.save(to: dir + "/new.h5")
        let file = try HDF5File(path: dir + "/new.h5")
        #expect(try file.int64Attribute("ema_updates", of: "/training") == 3)
        #expect(try file.stringAttribute("ema_warmup", of: "/training") == "num-updates")
        let loaded = try Trainer.load(from: dir + "/new.h5")
        #expect(loaded.emaUpdates == 3 && loaded.options.emaWarmup == .numUpdates)
        #expect(loaded.emaNextDecay == 4.0 / 13)

        try trainer.save(to: dir + "/old.h5", omitting: Set(Trainer.emaAgeAttributes))
        #expect(try !HDF5File(path: dir + "/old.h5").attributeNames(of: "/training").contains("ema_updates"))
        let old = try Trainer.load(from: dir + "/old.h5")
        #expect(old.emaUpdates == 3 && old.options.emaWarmup == .none && old.emaNextDecay == options.emaDecay)
        #expect(old.ema == trainer.ema)
    }
}
