import TestSupport
import Testing
import DDPM

/// Adam and the weight average against values computed by hand (a five-line Python loop of the
/// formulas in Kingma & Ba 2015, Algorithm 1; not this code), so that an inverted EMA decay or a
/// missing bias correction fails here rather than passing a run-against-itself comparison.
@Suite("Adam and the EMA pinned to hand-computed values")
struct OptimizerTests {
    @Test("Adam with bias correction: three steps on one parameter (θ₀ = 1, g = 0.5, −0.25, 2; lr 0.1)")
    func adamSteps() {
        var options = TrainingOptions(); options.learningRate = 0.1
        let theta = Tensor(shape: [1], data: [1], requiresGrad: true)
        let adam = Adam(shapes: [1], options: options)
        // θ_s, m_s, v_s after each step, from Python: m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
        // θ −= lr·(m/(1−β₁ˢ))/(√(v/(1−β₂ˢ)) + ε). Without bias correction step 1 would give 0.6837724339830356.
        let expected: [(Double, Double, Double)] = [(0.900000002, 0.04999999999999999, 0.0002500000000000002),
                                                    (0.8733662987078463, 0.019999999999999997, 0.0003122500000000003),
                                                    (0.8063015345291531, 0.21799999999999994, 0.004311937750000004)]
        for (step, (g, want)) in zip([0.5, -0.25, 2.0], expected).enumerated() {
            theta.zeroGrad()
            (g * theta).sum().backward()
            adam.update([theta])
            let c = Comparison("Adam step \(step + 1) θ, m, v", actual: [theta.data[0], adam.m[0][0], adam.v[0][0]],
                               expected: [want.0, want.1, want.2], tolerance: Tolerance(rtol: 1e-14, atol: 0))
            print("hand \(c)")
            #expect(c.passed, "\(c)")
        }
        #expect(adam.step == 3)
    }

    @Test("EMA: θ̄ ← d·θ̄ + (1 − d)·θ with d = 0.9 from 2 toward 1 then 3 gives 1.9 then 2.01")
    func averageUpdate() {
        var average = [2.0]
        Trainer.updateAverage(&average, toward: [1.0], decay: 0.9)
        #expect(abs(average[0] - 1.9) < 1e-15, "\(average)")
        Trainer.updateAverage(&average, toward: [3.0], decay: 0.9)
        #expect(abs(average[0] - 2.01) < 1e-15, "\(average)")
    }

    @Test("gradient clipping rescales to the maximum norm: g = (3, 4) with max 1 becomes (0.6, 0.8)·5/(5 + 1e-6)")
    func clipping() {
        let a = Tensor(shape: [2], data: [0, 0], requiresGrad: true)
        (Tensor(shape: [2], data: [3, 4]) * a).sum().backward()
        let norm = clipGradientNorm([a], maxNorm: 1)
        #expect(norm == 5)
        let scale = 1 / (5 + 1e-6)
        #expect(a.gradValues! == [3 * scale, 4 * scale])
    }
}
