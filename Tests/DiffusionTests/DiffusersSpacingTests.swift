// diffusers' σ-scheduler timesteps (`DiffusersSigmaSpacing`): the Euler family's fractional `linspace` with σ
// interpolated linearly, and the DPM-Solver family's N + 1-point rules. Expected timesteps are numpy's, computed
// once with the source's expressions and written here:
//
//     euler     linspace:  np.linspace(0, T-1, N)[::-1]
//               leading:   (np.arange(0, N) * (T // N)).round()[::-1] + steps_offset
//               trailing:  np.arange(T, 0, -T / N).round() - 1
//     dpmsolver linspace:  np.linspace(0, T-1, N+1).round()[::-1][:-1]
//               leading:   (np.arange(0, N+1) * (T // (N+1))).round()[::-1][:-1] + steps_offset
//               trailing:  as euler's
//
// σ at the timesteps against np.interp(t, arange(T), σ) evaluated from `solvers.h5 schedule/T10/sigmas` in
// numpy's own form fp[j] + (t − j)(fp[j+1] − fp[j]).

import Foundation
import TestSupport
import Testing
import Diffusion
import Tensors

/// A network that records the timesteps it is called at and returns zeros.
final class RecordingPredictor: NoisePredictor {
    var isTraining = false
    private(set) var calls: [Int] = []
    func namedParameters() -> [(name: String, tensor: Tensor)] { [] }
    func predictNoise(_ x: Tensor, at t: [Int]) -> Tensor { calls.append(t[0]); return Tensor.zeros(x.shape) }
}

@Suite("diffusers' σ-scheduler timesteps: fractional linspace (Euler family) and the DPM-Solver family's rules")
struct DiffusersSpacingTests {
    @Test("timesteps of every rule against numpy's (T = 10 and T = 1000), and the refused ones")
    func timesteps() throws {
        let cases: [(DiffusersSigmaSpacing, Int, Int, [Double])] = [
            (.euler(.linspace), 10, 5, [9, 6.75, 4.5, 2.25, 0]),
            (.euler(.linspace), 1000, 8, [999.0, 856.2857142857143, 713.5714285714287, 570.8571428571429, 428.14285714285717, 285.42857142857144, 142.71428571428572, 0.0]),
            (.euler(.linspace), 10, 1, [0]),
            (.euler(.leading(stepsOffset: 1)), 10, 3, [7, 4, 1]),
            (.euler(.trailing), 10, 3, [9, 6, 2]),
            (.euler(.trailing), 1000, 7, [999, 856, 713, 570, 428, 285, 142]),
            (.dpmSolver(.linspace), 10, 4, [9, 7, 4, 2]),
            (.dpmSolver(.linspace), 1000, 10, [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]),
            (.dpmSolver(.leading(stepsOffset: 1)), 10, 3, [7, 5, 3]),
            (.dpmSolver(.leading(stepsOffset: 0)), 1000, 7, [875, 750, 625, 500, 375, 250, 125]),
            (.dpmSolver(.trailing), 10, 3, [9, 6, 2]),
        ]
        for (rule, T, N, expected) in cases {
            let got = try rule.timesteps(timesteps: T, steps: N)
            print("diffusers \(rule), T = \(T), N = \(N): \(got)")
            #expect(got == expected, "\(rule) T = \(T) N = \(N): \(got), numpy \(expected)")
        }
        // ⌊10/11⌋ = 0: every timestep would be the offset
        expectError(.invalidValue, mentioning: ["dpmsolver:leading", "not distinct"]) { _ = try DiffusersSigmaSpacing.dpmSolver(.leading(stepsOffset: 0)).timesteps(timesteps: 10, steps: 10) }
        expectError(.invalidValue, mentioning: ["euler:linspace", "11"]) { _ = try DiffusersSigmaSpacing.euler(.linspace).timesteps(timesteps: 10, steps: 11) }
    }

    @Test("Euler linspace on T = 10, N = 5: σ linear in σ at t = 6.75, 4.5, 2.25 (np.interp) then 0, and the network called at 9, 7, 4, 2, 0")
    func fractionalLinspace() throws {
        let d = try GaussianDiffusion(schedule: .linear(start: 1e-4, end: 0.2), timesteps: 10, dataRange: 0...1, clipDenoised: false)
        let fp = SolverFixture.file.values("schedule/T10/sigmas")
        let ts = [9, 6.75, 4.5, 2.25, 0.0]
        let numpyInterp = ts.map { t -> Double in
            let j = min(Int(t), 8)
            return fp[j] + (t - Double(j)) * (fp[j + 1] - fp[j])
        } + [0]
        let sigmas = try SigmaSchedule.diffusers(.euler(.linspace)).sigmas(steps: 5, diffusion: d)
        expectULP(sigmas, numpyInterp, "euler:linspace σ, T = 10, N = 5")
        // the network's timesteps: the rule's own t rounded (ties to even: 4.5 → 4), not a t recovered from σ
        let choice = SolverChoice(solver: .euler, sigmas: .diffusers(.euler(.linspace)), timestepConvention: .logLinear)
        let sampler = try choice.makeSampler(for: d, steps: 5)
        #expect(sampler.sigmas == sigmas)
        let net = RecordingPredictor()
        var g = RandomGenerator(seed: 0)
        var recorded: [Int] = []
        _ = try runReverseChain(model: net, from: randomTensor([1, 1, 2, 2], seed: 1), sampler: sampler, generator: &g) { recorded.append($0.t) }
        print("euler:linspace T = 10, N = 5: σ \(sigmas), network timesteps \(net.calls)")
        #expect(net.calls == [9, 7, 4, 2, 0] && recorded == net.calls)
        // log-linear σ → t would call the network at 5 for σ(4.5) (log σ is concave in t here): the named t wins
        #expect(SigmaToTimestep.logLinear.timestep(sigma: sigmas[2], trainedSigmas: fp) == 5)
        // Heun's second evaluation at σ_{k+1} of the schedule: also at the named t
        let heun = try SolverChoice(solver: .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1), sigmas: .diffusers(.euler(.linspace))).makeSampler(for: d, steps: 5)
        let net2 = RecordingPredictor()
        _ = try runReverseChain(model: net2, from: randomTensor([1, 1, 2, 2], seed: 1), sampler: heun, generator: &g)
        #expect(net2.calls == [9, 7, 7, 4, 4, 2, 2, 0, 0], "\(net2.calls)")
    }

    @Test("DPM-Solver linspace on T = 1000, N = 10: the trained σ at 999, 899, …, 100 exactly, then 0")
    func dpmSolverLinspace() throws {
        let d = try GaussianDiffusion(schedule: .linear(), timesteps: 1000, dataRange: 0...1)
        let trained = SigmaView.trainedSigmas(alphasCumprod: d.tables.alphasCumprod)
        let sigmas = try SigmaSchedule.diffusers(.dpmSolver(.linspace)).sigmas(steps: 10, diffusion: d)
        #expect(sigmas == [999, 899, 799, 699, 599, 500, 400, 300, 200, 100].map { trained[$0] } + [0])
    }
}
