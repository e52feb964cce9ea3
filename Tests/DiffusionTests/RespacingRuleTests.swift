// The stated rules of respacing — which spacings keep the first step (0) and the last (T−1) — checked as
// independent statements against the spacings `Respacing` produces over a grid of (T, N). Each rule below
// is written out in Notes/14 (the table "Respacing: which steps to keep") and in the comments of
// `Sources/Diffusion/Respacing.swift`; the test computes the rule's side from T, N (and the offset or the
// section counts) alone, by integer arithmetic, and the code's side as membership in the kept set.
// The fixture tests (`RespacingTests`) pin a few spacings exactly; this suite pins the rules for every
// (T, N) of the grid, and the counterexamples that refuted the earlier wording (issue 25).

import Testing
import Diffusion

/// improved-diffusion's "ddimN" stride, by its definition alone: the smallest k in 1 ..< T with
/// ⌈T/k⌉ = N (the source's `range(1, num_timesteps)`, so ddim1 is refused for T ≥ 2), nil when none
/// exists; and k = 1 for N = T (the same for T ≥ 2; for T = 1 the library keeps [0] where the source
/// would refuse).
private func ddimStride(T: Int, N: Int) -> Int? {
    N == T ? 1 : (1..<max(T, 1)).first { (T + $0 - 1) / $0 == N }
}

/// Counts, over every case, how often each side of a rule held, so that a grid on which a rule's
/// condition never (or always) holds is noticed: a rule tested only on one side proves nothing.
private struct RuleTally {
    var cases = 0, held = 0, failures: [String] = []
    mutating func check(_ condition: Bool, _ observed: Bool, _ label: @autoclosure () -> String) {
        cases += 1
        if condition { held += 1 }
        if condition != observed, failures.count < 5 { failures.append(label()) }
    }
    func report(_ rule: String) {
        print("\(rule): \(cases) cases, condition true in \(held), \(failures.count == 0 ? "no" : "\(failures.count)+") mismatches \(failures)")
        #expect(failures.isEmpty, "\(rule): the stated rule and the code disagree: \(failures)")
        #expect(held > 0 && held < cases, "\(rule): the grid exercises only one side of the rule (\(held) of \(cases))")
    }
}

/// The grid: every T in 1…64 with every N in 1…T, and T ∈ {100, 250, 999, 1000} with every N in 1…T.
private let grid: [(T: Int, N: Int)] = (Array(1...64) + [100, 250, 999, 1000]).flatMap { T in (1...T).map { (T, $0) } }

@Suite("Respacing rules: which spacings keep 0 and T−1, over a grid of (T, N)")
struct RespacingRuleTests {
    @Test("improved-diffusion ddimN: keeps 0 always; keeps T−1 iff the stride k divides T−1; kept = {0, k, 2k, …} < T")
    func ddim() throws {
        var first = RuleTally(), last = RuleTally(), exists = RuleTally()
        for (T, N) in grid {
            let k = ddimStride(T: T, N: N)
            let kept = try? Respacing.improvedDiffusionTimesteps(timesteps: T, sectionCounts: "ddim\(N)")
            exists.check(k != nil, kept != nil, "T=\(T) ddim\(N): stride \(String(describing: k)), kept \(String(describing: kept))")
            guard let k, let kept else { continue }
            #expect(kept == Array(stride(from: 0, to: T, by: k)), "T=\(T) ddim\(N) stride \(k): \(kept)")
            first.check(true, kept.first == 0, "T=\(T) ddim\(N)")
            last.check((T - 1) % k == 0, kept.last == T - 1, "T=\(T) ddim\(N) stride \(k): last kept \(kept.last!)")
        }
        exists.report("ddimN exists iff some k has ⌈T/k⌉ = N")
        last.report("ddimN keeps T−1 iff k | T−1")
        #expect(first.failures.isEmpty, "ddimN keeps 0: \(first.failures)")
        // the counterexamples to the earlier wording "never T−1 unless k = 1"
        #expect(try Respacing.improvedDiffusionTimesteps(timesteps: 1000, sectionCounts: "ddim334").last == 999)   // k = 3
        #expect(try Respacing.improvedDiffusionTimesteps(timesteps: 10, sectionCounts: "ddim4") == [0, 3, 6, 9])
    }

    @Test("improved-diffusion sections c1,…,cm: keeps 0 always; keeps T−1 iff c_m ≥ 2 or the last section has one step")
    func sections() throws {
        var first = RuleTally(), last = RuleTally()
        for T in 1...64 {
            // one section "N", and two sections "a,b" with every count each section allows
            var rules: [[Int]] = (1...T).map { [$0] }
            if T >= 2 {
                let n0 = (T + 1) / 2, n1 = T / 2          // the first T mod 2 sections are one step longer
                for a in 1...n0 { for b in 1...n1 { rules.append([a, b]) } }
            }
            for counts in rules {
                let lastSize = T / counts.count     // the last section is never one of the longer ones
                let kept = try Respacing.improvedDiffusionTimesteps(timesteps: T, sectionCounts: counts.map(String.init).joined(separator: ","))
                let label = "T=\(T) \(counts): last kept \(kept.last!)"
                first.check(true, kept.first == 0, label)
                last.check(counts.last! >= 2 || lastSize == 1, kept.last == T - 1, label)
            }
        }
        last.report("sections keep T−1 iff c_m ≥ 2 or n_m = 1")
        #expect(first.failures.isEmpty, "sections keep 0: \(first.failures)")
        #expect(try Respacing.improvedDiffusionTimesteps(timesteps: 1000, sectionCounts: "10,1").last == 500)
    }

    @Test("diffusers linspace: keeps 0 always; keeps T−1 iff N ≥ 2 or T = 1")
    func linspace() throws {
        var first = RuleTally(), last = RuleTally()
        for (T, N) in grid {
            let kept = try TimestepSpacing.diffusersLinspace.keptTimesteps(timesteps: T, steps: N)
            #expect(kept.count == N, "T=\(T) N=\(N): \(kept.count) kept")
            first.check(true, kept.first == 0, "T=\(T) N=\(N)")
            last.check(N >= 2 || T == 1, kept.last == T - 1, "T=\(T) N=\(N): last kept \(kept.last!)")
        }
        last.report("linspace keeps T−1 iff N ≥ 2 or T = 1")
        #expect(first.failures.isEmpty, "linspace keeps 0: \(first.failures)")
    }

    @Test("diffusers leading: keeps 0 iff offset = 0; keeps T−1 iff (N−1)⌊T/N⌋ + offset = T−1; refused iff it exceeds T−1")
    func leading() throws {
        var first = RuleTally(), last = RuleTally(), refused = RuleTally()
        for (T, N) in grid {
            for offset in 0...2 {
                let top = (N - 1) * (T / N) + offset
                let kept = try? TimestepSpacing.diffusersLeading(stepsOffset: offset).keptTimesteps(timesteps: T, steps: N)
                refused.check(top > T - 1, kept == nil, "T=\(T) N=\(N) offset \(offset): top \(top), kept \(String(describing: kept?.last))")
                guard let kept else { continue }
                #expect(kept == (0..<N).map { $0 * (T / N) + offset }, "T=\(T) N=\(N) offset \(offset)")
                first.check(offset == 0, kept.first == 0, "T=\(T) N=\(N) offset \(offset)")
                last.check(top == T - 1, kept.last == T - 1, "T=\(T) N=\(N) offset \(offset): last kept \(kept.last!)")
            }
        }
        first.report("leading keeps 0 iff offset = 0")
        last.report("leading keeps T−1 iff (N−1)⌊T/N⌋ + offset = T−1")
        refused.report("leading is refused iff (N−1)⌊T/N⌋ + offset > T−1")
        // the counterexample to the earlier wording "never keeps T−1": N = T, offset 0
        #expect(try TimestepSpacing.diffusersLeading(stepsOffset: 0).keptTimesteps(timesteps: 1000, steps: 1000).last == 999)
    }

    @Test("diffusers trailing: keeps T−1 always; keeps 0 iff round(T/N) = 1, i.e. 2T < 3N (ties to even)")
    func trailing() throws {
        var first = RuleTally(), last = RuleTally()
        for (T, N) in grid {
            let kept = try TimestepSpacing.diffusersTrailing.keptTimesteps(timesteps: T, steps: N)
            #expect(kept.count == N, "T=\(T) N=\(N): \(kept.count) kept")
            // round(T/N) = 1 ⟺ T/N < 1.5 (T/N ≥ 1; 1.5 itself rounds to 2, ties to even) ⟺ 2T < 3N
            first.check(2 * T < 3 * N, kept.first == 0, "T=\(T) N=\(N): first kept \(kept.first!)")
            last.check(true, kept.last == T - 1, "T=\(T) N=\(N)")
        }
        first.report("trailing keeps 0 iff round(T/N) = 1")
        #expect(last.failures.isEmpty, "trailing keeps T−1: \(last.failures)")
        // the counterexamples to the earlier wording "keeps 0 only when N = T"
        for N in [700, 800] {
            #expect(try TimestepSpacing.diffusersTrailing.keptTimesteps(timesteps: 1000, steps: N).first == 0, "T=1000 N=\(N)")
        }
    }
}
