// The precision tiers of the golden check, against Fixtures/golden-tiers.h5 (make_golden_tier_fixtures.py):
// a numpy float64 golden file of a very small network, with honest float32/bfloat16/float16 recomputations
// and planted bugs computed in float32 by the same independent numpy code.

import DDPM
import Foundation
import HDF5
import Testing
import TestSupport

/// Writes a golden file whose outputs are those of `/variants/<variant>` of the fixture (nil: the float64 ones).
func tierVariant(_ variant: String?) throws -> String {
    let fixture = fixturesFolder + "/golden-tiers.h5"
    let path = scratchFolder("golden-tiers") + "/\(variant ?? "reference").h5"
    let f = try HDF5File(path: fixture)
    // The variant's gradients are one flat dataset in the sorted order of the parameter keys.
    var slices: [String: [Double]] = [:]
    if let variant {
        let flat = try f.readDoubles("/variants/\(variant)/gradients").values
        var offset = 0
        for key in try f.members(ofGroup: "/outputs/grad").sorted() {
            let n = try f.readDoubles("/outputs/grad/" + key).values.count
            slices["/outputs/grad/" + key] = Array(flat[offset..<offset + n]); offset += n
        }
        #expect(offset == flat.count)
    }
    try copyGolden(from: fixture, to: path) { name, values in
        if name.hasPrefix("/variants/") { return nil }
        guard let variant, name.hasPrefix("/outputs/") else { return values }
        if let g = slices[name] { return g }
        return try? f.readDoubles("/variants/\(variant)/" + name.dropFirst("/outputs/".count)).values
    }
    return path
}

func tier(_ p: Precision) -> GoldenCheckRule { .tier(GoldenTier(storage: p)) }

@Suite("Golden-file precision tiers")
struct GoldenTierTests {
    @Test("the numpy float64 reference (outputs and gradients) checks at 1e-10, so the fixture is a golden file of this network")
    func referenceChecks() throws {
        let r = try GoldenFile.check(path: try tierVariant(nil), rule: .elementwise(.independentImplementation))
        print(r.summaryLine)
        #expect(r.passed && r.rows.count == 7 + 98)
        // Base 4, 4 groups: the level-0 blocks' conv1 and time_proj biases feed a group norm with one channel
        // per group, so their gradients are zero in exact arithmetic (4 blocks at width 4: 8 tensors).
        let zeros = r.rows.filter(\.zeroInExactArithmetic).map(\.name).sorted()
        print("zero in exact arithmetic:", zeros)
        #expect(zeros == ["conv1.bias", "time_proj.bias"].flatMap { p in ["down_resblocks.0.0", "up_resblocks.1.0"].map { "grad/\($0).\(p)" } }.sorted()
                || zeros.count == 8, "\(zeros)")
    }

    @Test("honest recomputations pass their own tier and every coarser one", arguments: [
        ("honest_float32", [Precision.float32, .bfloat16, .float16]),
        ("honest_float16", [.float16, .bfloat16]),
        ("honest_bfloat16", [.bfloat16]),
    ])
    func honestPasses(variant: String, tiers: [Precision]) throws {
        let path = try tierVariant(variant)
        for p in tiers {
            let r = try GoldenFile.check(path: path, rule: tier(p))
            print(variant, "at", p.rawValue + ":", r.summaryLine)
            #expect(r.passed, "\(variant) at \(p): \(r.failedRows.map(r.failureLine))")
        }
    }

    @Test("honest recomputations fail the finer tiers: the tiers tell float16 from float32")
    func honestFailsFinerTiers() throws {
        for (variant, p) in [("honest_float16", Precision.float32), ("honest_bfloat16", .float32), ("honest_bfloat16", .float16)] {
            let r = try GoldenFile.check(path: try tierVariant(variant), rule: tier(p))
            print(variant, "at", p.rawValue + ":", r.summaryLine)
            #expect(!r.passed, "\(variant) passes the \(p) tier")
        }
    }

    /// Which tiers see each planted bug (measured with this fixture; the float32 column is the requirement).
    static let bugs: [(variant: String, seenAt: [Precision], hiddenAt: [Precision])] = [
        ("bug_attention_transposed", [.float32, .float16, .bfloat16], []),
        ("bug_sin_cos_swapped", [.float32, .float16, .bfloat16], []),
        ("bug_skip_order", [.float32, .float16, .bfloat16], []),
        ("bug_gradient_sign", [.float32, .float16, .bfloat16], []),
        ("bug_groupnorm_eps", [.float32], [.float16, .bfloat16]),
    ]

    @Test("planted bugs fail at float32; which coarser tiers see them", arguments: bugs.indices)
    func plantedBugs(index: Int) throws {
        let bug = Self.bugs[index]
        let path = try tierVariant(bug.variant)
        for p in bug.seenAt {
            let r = try GoldenFile.check(path: path, rule: tier(p))
            print(bug.variant, "at", p.rawValue + ":", r.summaryLine)
            #expect(!r.passed, "\(bug.variant) passes the \(p) tier")
        }
        for p in bug.hiddenAt {
            let r = try GoldenFile.check(path: path, rule: tier(p))
            print(bug.variant, "at", p.rawValue + ":", r.summaryLine)
            #expect(r.passed, "\(bug.variant) is expected below the honest error of the \(p) tier")
        }
    }

    @Test("a sign error in one gradient fails that gradient alone, and names its layer")
    func gradientSignIsLocal() throws {
        let r = try GoldenFile.check(path: try tierVariant("bug_gradient_sign"), rule: tier(.float32))
        #expect(r.failedRows.map(\.name) == ["grad/mid_attn.proj.weight"])
        let row = try #require(r.rows.first { $0.name == "grad/mid_attn.proj.weight" })
        // ‖−g − g‖ / s = 2‖g‖ / s, s = max(‖g‖, the network floor), up to float32 rounding.
        let g = FixtureFile("golden-tiers.h5").values("/outputs/grad/mid_attn.proj.weight")
        let norm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
        print("sign flip: normwise error \(row.normwiseError), ‖g‖ \(norm), scale \(row.scale)")
        #expect(abs(row.normwiseError - 2 * norm / row.scale) < 1e-6 && row.normwiseError > 1000 * (row.normwiseBound ?? 1))
        #expect(r.firstFailingLayerInBackwardOrder == "mid_attn.proj")
        #expect(r.layers.filter { !$0.passed }.map(\.layer) == ["mid_attn.proj"])
    }

    /// The elementwise rule between the honest recomputations (far inside it) and the planted bugs (far
    /// outside): in an honest float32 file, one element of an output is moved to ours + c·b, b that element's
    /// own bound λ_m·τ·(|e| + s/√m) (λ_m = √(2 ln 2m), written out here; τ and s are the row's), while every
    /// other element keeps its honest error. At c = 2 the output must fail on that element alone although its
    /// normwise error stays below τ (checked, per output, before it counts); at c = 1/2 it must pass. So the
    /// per-element tolerance is pinned between ½ and 2 times the stated one: made √m times looser (≈ 14× for
    /// the m = 192 outputs) it lets every moved element through, and this test fails (tried, issue 25).
    @Test("one element moved by 2× its own bound fails (normwise error below τ); moved by ½× it passes")
    func oneElementBetweenHonestAndPlanted() throws {
        let path = try tierVariant("honest_float32")
        let honest = try GoldenFile.recompute(path: path)
        let rule = tier(.float32)
        let base = GoldenFile.judge(honest, path: path, rule: rule)
        #expect(base.passed, "\(base.failedRows.map(base.failureLine))")
        let rows = Dictionary(uniqueKeysWithValues: base.rows.map { ($0.name, $0) })
        var tried: [String] = []
        for (k, o) in honest.outputs.enumerated() where o.ours.count >= 128 {
            let row = try #require(rows[o.name]), tau = try #require(row.normwiseBound)
            let m = o.ours.count, s = row.scale
            let i = o.ours.indices.min { abs(o.ours[$0]) < abs(o.ours[$1]) }!     // the element whose bound is mostly s/√m
            let bound = (2 * log(2 * Double(m))).squareRoot() * tau * (abs(o.ours[i]) + s / Double(m).squareRoot())
            func moved(_ c: Double) -> (GoldenCheckResult, normwise: Double) {
                var edited = honest
                edited.outputs[k].stored[i] = o.ours[i] + c * bound
                let d = zip(edited.outputs[k].stored, o.ours).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
                return (GoldenFile.judge(edited, path: path, rule: rule), d / s)
            }
            let (outside, normwise) = moved(2), (inside, _) = moved(0.5)
            guard normwise < tau else { continue }   // this output is too small for a 2b move to stay below τ
            tried.append(o.name)
            let r = try #require(outside.rows.first { $0.name == o.name })
            print("\(o.name) (m = \(m)): element \(i) moved by 2 b = \(2 * bound); normwise \(normwise) < τ = \(tau); worst ratio \(r.comparison.worstRatio)")
            #expect(!r.passed && r.normwiseError <= tau && r.comparison.countBeyondTolerance == 1 && r.comparison.worstIndex == i,
                    "\(o.name): an element at 2× its bound passes (worst ratio \(r.comparison.worstRatio), normwise \(r.normwiseError) / τ \(tau))")
            #expect(outside.failedRows.map(\.name) == [o.name], "\(o.name): \(outside.failedRows.map(\.name))")
            #expect(inside.passed, "\(o.name): an element at ½ its bound fails: \(inside.failedRows.map(inside.failureLine))")
        }
        print("outputs tried:", tried.count, tried.prefix(4))
        #expect(tried.contains("eps_pred") && tried.contains { $0.hasPrefix("grad/") }, "\(tried)")
    }

    @Test("the float64 tier is today's rule: honest float32 fails it")
    func float64TierIsElementwise() throws {
        let r = try GoldenFile.check(path: try tierVariant("honest_float32"), rule: .elementwise(.independentImplementation))
        #expect(!r.passed && r.rows.allSatisfy { $0.normwiseBound == nil })
    }

    @Test("an empty check is a failure")
    func emptyCheckFails() throws {
        let dir = scratchFolder(), path = dir + "/empty.h5"
        try copyGolden(from: fixturesFolder + "/golden-tiers.h5", to: path, { name, v in name.hasPrefix("/outputs/") || name.hasPrefix("/variants/") ? nil : v },
                       extra: { try $0.createGroup("/outputs") })
        let r = try GoldenFile.check(path: path, rule: tier(.float32))
        #expect(r.rows.isEmpty && !r.passed && r.summaryLine.contains("nothing was checked"))
        let cli = try runDDPM(["golden", "check", path, "--tier", "float32"])
        #expect(cli.status != 0 && cli.stderr.contains("holds no outputs"), "\(cli)")
    }

    @Test("the command: short terminal output, the whole table with --report, tier options checked")
    func command() throws {
        let path = try tierVariant("bug_attention_transposed"), report = scratchFolder() + "/r.md"
        let r = try runDDPM(["golden", "check", path, "--tier", "float32", "--report", report])
        #expect(r.status != 0 && r.stderr.contains("differ beyond the float32 tier"), "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        let failing = lines.filter { $0.hasPrefix("FAIL ") }
        #expect(failing.count >= 1 && lines.count == failing.count + 2, "\(r.stdout)")  // + summary + "wrote"
        let md = try String(contentsOfFile: report, encoding: .utf8)
        #expect(md.contains("| grad/mid_attn.qkv.weight |") && md.contains("## Gradients per layer") && md.contains("| mid_attn.qkv |")
                && md.contains("zero in exact arithmetic"))
        let honest = try runDDPM(["golden", "check", try tierVariant("honest_float16"), "--tier", "float16"])
        #expect(honest.status == 0 && honest.stdout.hasPrefix("105 passed, 0 failed (tier float16"), "\(honest.stdout)")
        try expectUserError(["golden", "check", path, "--tier", "float8"], "--tier 'float8': expected one of float64, float32, bfloat16, float16")
        try expectUserError(["golden", "check", path, "--tier", "float32", "--rtol", "1e-3"], "--rtol/--atol apply to the float64 tier")
        try expectUserError(["golden", "check", path, "--accumulation", "float32"], "--accumulation applies to the float32, bfloat16 and float16 tiers")
        try expectUserError(["golden", "check", path, "--tier", "float16", "--accumulation", "half"], "--accumulation 'half': expected one of")
    }
}

@Suite("Error statistics and tier bounds, by hand")
struct ErrorStatisticsTests {
    @Test func statisticsOfFourElements() {
        // errors |a − e| = 0, 0.5, 0, 4; beyond rtol 0.1, atol 0.01: 0.5 > 0.26 and 4 > 0.01.
        let c = Comparison("x", actual: [1, 2, 3, 4], expected: [1, 2.5, 3, 0], tolerance: Tolerance(rtol: 0.1, atol: 0.01))
        #expect(c.meanAbsoluteError == 1.125 && c.absoluteError99 == 4 && c.countBeyondTolerance == 2)
        #expect(c.maxAbsoluteError == 4 && c.maxRelativeError == 0.2 && c.worstIndex == 3)
        #expect(abs(c.normwiseRelativeError - 1) < 1e-15)  // ‖(0, 0.5, 0, 4)‖ = ‖(1, 2.5, 3, 0)‖ = √16.25
        #expect(Comparison("z", actual: [0, 0], expected: [0, 0], tolerance: .equation).normwiseRelativeError == 0)
        #expect(Comparison("z", actual: [1, 0], expected: [0, 0], tolerance: .equation).normwiseRelativeError == .infinity)
    }

    @Test func percentileIsNearestRank() {
        // errors 1…200: the ⌈0.99·200⌉ = 198th smallest is 198.
        let c = Comparison("p", actual: (1...200).map(Double.init), expected: [Double](repeating: 0, count: 200), tolerance: Tolerance(rtol: 0, atol: 1000))
        #expect(c.absoluteError99 == 198 && c.countBeyondTolerance == 0 && c.meanAbsoluteError == 100.5)
    }

    @Test func tierBoundsByHand() throws {
        // τ = 3·√(49 + 1152)·2⁻²⁴ = 6.19688e-6 (python: 3*math.sqrt(1201)*2**-24 = 6.1968768e-06).
        let b = RoundingBudget(depth: 49, reduction: 1152)
        #expect(abs(GoldenTier(storage: .float32).normwiseBound(b) - 6.1968768e-06) < 1e-12)
        // float16 storage, float32 accumulation: 3·√(49·2⁻²² + 1152·2⁻⁴⁸) = 1.0253908e-2.
        #expect(abs(GoldenTier(storage: .float16).normwiseBound(b) - 1.0253908e-02) < 1e-9)
        #expect(GoldenTier(storage: .bfloat16).accumulation == .float32 && GoldenTier(storage: .float64).accumulation == .float64)
        // Accumulating in float16 too: 3·√((49 + 1152)·2⁻²²) = 0.0507648 (python: 3*math.sqrt(1201*2**-22)).
        #expect(abs(GoldenTier(storage: .float16, accumulation: .float16).normwiseBound(b) - 0.0507648) < 1e-7)
        #expect(GoldenTier.extremeValueFactor(count: 1) == (2 * log(2.0)).squareRoot() && GoldenTier.extremeValueFactor(count: 0) >= 1)
        // The golden preset at batch 2: 98 parameter tensors → 49 layers; the longest forward sum is the first up
        // block's conv1, 9·(64 + 64) = 1152; the backward's N·H·W = 2·256 = 512 is shorter.
        let tiny = RoundingBudgets(network: try Presets.network("golden"), batch: 2, parameterCount: 98)
        #expect(tiny.network == RoundingBudget(depth: 49, reduction: 1152) && tiny.gradient == RoundingBudget(depth: 98, reduction: 1152))
        #expect(tiny.elementwise == RoundingBudget(depth: 4, reduction: 1))
    }
}
