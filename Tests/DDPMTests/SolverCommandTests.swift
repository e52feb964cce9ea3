// `ddpm sample --sampler <solver>`: each name as users know it runs the solver it names (the mapping from
// names to solvers and options is written out here by hand), and solver options that cannot apply are refused.

import Foundation
import TestSupport
import Testing
import DDPM
import HDF5

@Suite("ddpm sample with the σ-view solvers")
struct SolverCommandTests {
    func checkpoint() throws -> (dir: String, path: String, trainer: Trainer) { try microSamplingCheckpoint() }

    static func solver(_ s: SigmaSolver, _ sigmas: SigmaScheduleKind = .karras(rho: 7), lowerOrderFinal: Bool = false,
                       steps: Int = 5) -> SamplerChoice {
        var c = SamplerChoice(kind: .ancestral, steps: steps)
        c.solver = SolverChoice(solver: s, sigmas: sigmas, timestepConvention: .logLinear, lowerOrderFinal: lowerOrderFinal)
        return c
    }

    @Test("every solver name runs the solver it names: the command's samples are the library's for the same choice and seed")
    func wiring() throws {
        let (dir, path, trainer) = try checkpoint()
        let cases: [([String], SamplerChoice)] = [
            (["--sampler", "euler"], Self.solver(.euler)),
            (["--sampler", "euler-ancestral", "--eta", "0.5"], Self.solver(.eulerAncestral(eta: 0.5, noiseScale: 1))),
            (["--sampler", "heun", "--s-churn", "0.3", "--sigmas", "exponential"],
             Self.solver(.heun(churn: 0.3, tMin: 0, tMax: .infinity, noiseScale: 1), .exponential)),
            (["--sampler", "dpm++2m", "--lower-order-final", "--rho", "3"], Self.solver(.dpmpp2M, .karras(rho: 3), lowerOrderFinal: true)),
            (["--sampler", "dpm++2s"], Self.solver(.dpmpp2S(eta: 1, noiseScale: 1))),
            (["--sampler", "dpm++2m-sde"], Self.solver(.dpmpp2MSDE(eta: 1, noiseScale: 1, correction: .midpoint))),
            (["--sampler", "dpm-solver-3", "--sigmas", "trained"], Self.solver(.dpmSolver(order: 3), .trained(nil))),
            (["--sampler", "unipc", "--solver-order", "3", "--unipc-variant", "bh1"], Self.solver(.uniPC(order: 3, variant: .bh1, corrector: true))),
            (["--sampler", "unip"], Self.solver(.uniPC(order: 2, variant: .bh2, corrector: false))),
            (["--sampler", "plms"], Self.solver(.plms(warmUp: .plms))),
            (["--sampler", "pndm"], Self.solver(.plms(warmUp: .pseudoRungeKutta))),
            (["--sampler", "euler", "--sigmas", "euler-linspace"], Self.solver(.euler, .diffusers(.euler(.linspace)))),
            (["--sampler", "dpm++2m", "--sigmas", "dpmsolver-leading:1"], Self.solver(.dpmpp2M, .diffusers(.dpmSolver(.leading(stepsOffset: 1))))),
        ]
        var distinct = Set<[Double]>()
        for (i, (args, choice)) in cases.enumerated() {
            let r = try runDDPM(["sample", "--checkpoint", path, "--count", "2", "--seed", "7", "--sample-steps", "5",
                                 "--out", dir + "/s\(i).png", "--h5", dir + "/s\(i).h5"] + args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            guard r.status == 0 else { continue }
            let stored = try HDF5File(path: dir + "/s\(i).h5").readDoubles("/samples")
            trainer.ddpm.generator = RandomGenerator(seed: 7)
            let expected = try trainer.ddpm.sample(batchSize: 2, sampler: choice.makeSampler(for: trainer.config.makeDiffusion()))
            let worst = zip(stored.values, expected.data).map { abs($0 - $1) }.max() ?? .infinity
            print("solver wiring \(args.joined(separator: " ")): worst difference \(worst)")
            let same = stored.values == expected.data   // a Bool, so a failure prints the worst difference, not both arrays
            #expect(same, "\(args): worst difference \(worst)")
            distinct.insert(stored.values)
        }
        // The names are not aliases of one another: thirteen different results.
        #expect(distinct.count == cases.count, "\(distinct.count) distinct results for \(cases.count) solver names")
    }

    @Test("solver options that cannot apply are one error line naming the option, before any work")
    func inapplicableOptions() throws {
        let (dir, path, _) = try checkpoint()
        let base = ["sample", "--checkpoint", path, "--out", dir + "/s.png", "--sample-steps", "5"]
        try expectUserError(base + ["--sampler", "euler", "--eta", "0.5"], "--eta: --sampler euler is deterministic")
        try expectUserError(base + ["--sampler", "heun", "--solver-order", "2"], "--solver-order: for unipc and unip")
        try expectUserError(base + ["--sampler", "euler", "--lower-order-final"], "--lower-order-final: for the multistep solvers")
        try expectUserError(base + ["--sampler", "dpm++2m", "--s-churn", "1"], "--s-churn: for --sampler heun")
        try expectUserError(base + ["--sampler", "euler", "--sigmas", "exponential", "--rho", "7"], "--rho: for --sigmas karras")
        try expectUserError(base + ["--sampler", "euler", "--sigmas", "cubic"], "--sigmas 'cubic'")
        try expectUserError(base + ["--sampler", "unipc", "--solver-order", "4"], "--solver-order: expected 1, 2 or 3, got 4")
        try expectUserError(base + ["--sampler", "euler", "--sigma-to-t", "round"], "--sigma-to-t 'round'")
        #expect(!FileManager.default.fileExists(atPath: dir + "/s.png"))
    }
}
