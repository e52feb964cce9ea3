import Foundation
import TestSupport
import Testing
import DDPM

/// The precision tiers of whole trajectories (GoldenTrajectoryTiers.swift, Notes/09 "Tiers for trajectories"):
/// the amplification table is the committed measurement, an honest float32 port passes its tier, and a planted
/// per-step sampler bug fails at exactly the step where the port's values first change. The float32 values are
/// PyTorch's (Fixtures/golden-trajectory-tiers.h5, Fixtures/backends/make_trajectory_tier_fixture.py).
@Suite("Golden files: trajectory tiers")
struct GoldenTrajectoryTierTests {
    static let fixture = fixturesFolder + "/golden-trajectory-tiers.h5"

    @Test("the amplification table is the committed measurement: per kind, the per-step maximum over the runs of max_{j≤k} e_j/e_0")
    func tableIsTheMeasurement() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturesFolder + "/backends/trajectory-growth.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let runs = try #require(json["runs"] as? [[String: Any]])
        #expect(runs.count == 3)
        var profiles: [String: (states: [Double], starts: [Double])] = [:]
        func cumulative(_ e: [Double]) -> [Double] {
            var m = 0.0
            return e.map { m = max(m, $0 / e[0]); return m }
        }
        for run in runs {
            #expect(run["dtype"] as? String == "float32" && run["plant"] is NSNull)
            let trajectories = try #require(run["trajectories"] as? [String: [String: Any]])
            for (name, t) in trajectories {
                let s = cumulative(try #require(t["state_errors"] as? [Double])), p = cumulative(try #require(t["pred_x0_errors"] as? [Double]))
                let kind = GoldenTrajectories.kind(ofTrajectory: name)
                let old = profiles[kind] ?? (s, p)
                profiles[kind] = (zip(old.states, s).map { max($0, $1) }, zip(old.starts, p).map { max($0, $1) })
            }
        }
        #expect(Set(profiles.keys) == Set(GoldenTrajectories.measuredAmplification.keys))
        var worst = 0.0
        for (kind, p) in profiles {
            let table = try #require(GoldenTrajectories.measuredAmplification[kind])
            #expect(table.states.count == p.states.count && table.predictedStarts.count == p.starts.count, "\(kind)")
            for (a, b) in zip(table.states + table.predictedStarts, p.states + p.starts) { worst = max(worst, abs(a - b) / b) }
        }
        print("amplification table against trajectory-growth.json: worst relative difference \(worst) (4 significant digits written)")
        #expect(worst < 5e-4)
    }

    /// The fixture's chains recomputed by our code; `stored` are PyTorch's float32 values.
    static func chains() throws -> [GoldenTrajectories.Recomputed] {
        let (chains, tables) = try GoldenTrajectories.recompute(path: fixture)
        #expect(tables.isEmpty && chains.count == 4)
        return chains
    }

    @Test("the fixture's float64 PyTorch run agrees with ours to the float64 tolerance (the port computes the same chains)")
    func float64RunAgrees() throws {
        let f = try HDF5File(path: Self.fixture)
        var chains = try Self.chains()
        for i in chains.indices {
            chains[i].stored = (try f.readDoubles("/float64_run/\(chains[i].name)/x").values, try f.readDoubles("/float64_run/\(chains[i].name)/pred_x0").values)
        }
        let c = GoldenTrajectories.judge(chains, sigmaTables: [], path: Self.fixture, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
        for line in c.lines { print(line) }
        #expect(c.passed)
    }

    @Test("the honest float32 PyTorch port passes its float32 tier at every step of every chain, and fails the float64 tolerance")
    func honestFloat32Passes() throws {
        let chains = try Self.chains()
        let c = GoldenTrajectories.judge(chains, sigmaTables: [], path: Self.fixture, rule: .tier(GoldenTier(storage: .float32)))
        for line in c.lines { print(line) }
        #expect(c.passed && c.judged.count == 4)
        let worst = c.trajectories.flatMap(\.steps).map(\.worstRatio).max() ?? .infinity
        print("largest error/bound over every step: \(worst)")
        #expect(worst < 1)
        #expect(!GoldenTrajectories.judge(chains, sigmaTables: [], path: Self.fixture, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)).passed)
        // The bound of a step is τ_net·A_k, A_0 = 1: the first step's bound is the network budget's τ.
        let r = try #require(c.trajectories.first { $0.name == "ddim_eta0_10" })
        #expect(r.steps[0].stateBound == GoldenTier(storage: .float32).normwiseBound(chains[0].budget))
    }

    @Test("a planted per-step sampler bug of the float32 port fails at exactly the step where its values first change",
          arguments: [("noise-reused", "ancestral_full"), ("noise-reused", "ancestral_10"), ("noise-reused", "ddim_eta0.5_10"),
                      ("alpha-prev-final", "ddim_eta0_10"), ("alpha-prev-final", "ddim_eta0.5_10")])
    func plantedStep(plant: String, name: String) throws {
        let f = try HDF5File(path: Self.fixture)
        var chains = try Self.chains()
        let i = try #require(chains.firstIndex { $0.name == name })
        let g = "/variants/\(plant)/\(name)"
        let expected = Int(try f.int64Attribute("first_wrong_step", of: g))
        chains[i].stored = (try f.readDoubles(g + "/x").values, try f.readDoubles(g + "/pred_x0").values)
        let c = GoldenTrajectories.judge(chains, sigmaTables: [], path: Self.fixture, rule: .tier(GoldenTier(storage: .float32)))
        for line in c.lines { print(line) }
        #expect(!c.passed)
        #expect(c.trajectories[i].firstFailingStep == expected, "\(plant) in \(name): expected step \(expected)")
        #expect(c.trajectories.filter { !$0.passed }.map(\.name) == [name])
        #expect(c.lines.contains { $0.hasPrefix("FAIL trajectory \(name): first step beyond its float32 tier \(expected) of ") })
        // The per-tier summary names the same step at float32 and nothing for the other chains at any tier.
        let perTier = GoldenTrajectories.firstFailingStepPerTier(chains)
        #expect(perTier.map(\.tier) == [.float32, .bfloat16, .float16])
        #expect(perTier[0].steps.filter { $0.step != nil }.map { "\($0.name) \($0.step!)" } == ["\(name) \(expected)"])
        #expect(perTier.allSatisfy { $0.steps.allSatisfy { $0.name == name || $0.step == nil } })
    }

    @Test("at a tier a trajectory without a measured amplification is reported, not judged; a file of only such fails")
    func unmeasuredNotJudged() throws {
        let steps = 3, m = 4
        let ours = (states: (0..<steps * m).map { Double($0) + 1 }, predictedStarts: (0..<steps * m).map { Double($0) + 1 })
        let heun = GoldenTrajectories.Recomputed(name: "heun_karras_10", sampler: "", timesteps: [2, 1, 0], elementsPerStep: m, ours: ours, stored: ours)
        let c = GoldenTrajectories.judge([heun], sigmaTables: [], path: "x.h5", rule: .tier(GoldenTier(storage: .float32)))
        #expect(c.judged.isEmpty && !c.passed)
        #expect(c.lines.first?.hasPrefix("trajectory heun_karras_10: no measured amplification") == true)
        #expect(GoldenTrajectories.judge([heun], sigmaTables: [], path: "x.h5", tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)).passed)
    }
}
