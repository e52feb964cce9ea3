import DDPM
import Foundation
import TestSupport
import Testing

@Suite("Golden files of a class-conditional network: guided outputs and one guided DDIM step (cfg_*)")
struct GoldenConditionalTests {
    /// ᾱ_t of the micro configuration's schedule (linear β from 1e-3 to 0.2 over T = 20), by hand.
    static func alphaBar() -> [Double] {
        var prod = 1.0
        return (0..<20).map { i in prod *= 1 - (1e-3 + (0.2 - 1e-3) * Double(i) / 19); return prod }
    }

    func export(_ strength: GuidanceStrength, rescale: Double = 0.7, variance: ModelVarianceType = .fixedSmall) throws -> String {
        var config = conditionalMicroConfiguration()
        config.diffusion.varianceType = variance
        if variance.isLearned { config.diffusion.lossType = .hybrid }
        config = ModelConfiguration(network: config.network, diffusion: config.diffusion)
        let path = scratchFolder() + "/g.h5"
        try GoldenFile.export(to: path, config: config, seed: 3, batch: 3, conditional: GoldenConditional(strength: strength, rescale: rescale))
        return path
    }

    @Test("the guided outputs are (1 + w) ε_c − w ε_u rescaled by φ and the DDIM step of Song et al. eq. 12, by hand from the stored ε_c, ε_u; the file checks; the convention is recorded")
    func guidedOutputs() throws {
        let path = try export(.paper(w: 3))
        let f = try HDF5File(path: path)
        #expect(try f.stringAttribute("guidance_convention", of: "/outputs") == "paper-w")
        #expect(try f.doubleAttribute("guidance_w", of: "/outputs") == 3 && f.doubleAttribute("guidance_s", of: "/outputs") == 4)
        #expect(try f.int64Attribute("num_classes", of: "/config") == 3)
        let labels = try f.readInt64s("/inputs/labels").values
        #expect(labels.count == 3 && labels.allSatisfy { (0..<3).contains($0) })
        let c = try f.readDoubles("/outputs/cfg_eps_cond").values, u = try f.readDoubles("/outputs/cfg_eps_uncond").values
        let plain = try f.readDoubles("/outputs/eps_pred").values
        #expect(u == plain, "the plain outputs are the null class's")
        #expect(c != u)
        // By hand: eq. 6, then Lin et al.'s rescale per sample (population std over the 64 values of a sample).
        let per = 64
        var guided = [Double](repeating: 0, count: c.count)
        for n in 0..<3 {
            let r = (n * per)..<((n + 1) * per)
            let g = r.map { 4 * c[$0] - 3 * u[$0] }
            func std(_ a: [Double]) -> Double { let m = a.reduce(0, +) / Double(a.count); return (a.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(a.count)).squareRoot() }
            let ratio = std(r.map { c[$0] }) / std(g)
            for (k, i) in r.enumerated() { guided[i] = 0.7 * g[k] * ratio + 0.3 * g[k] }
        }
        let cmp = Comparison("cfg_eps_guided by hand", actual: try f.readDoubles("/outputs/cfg_eps_guided").values, expected: guided, tolerance: .equation)
        print(cmp); #expect(cmp.passed, "\(cmp)")
        // By hand: x̂_0 = (x_t − √(1−ᾱ_t) ε̃)/√ᾱ_t, x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1−ᾱ_{t−1}) ε̃ (ᾱ_{−1} = 1).
        let ab = Self.alphaBar(), t = try f.readInt64s("/inputs/t").values.map { Int($0) }, xt = try f.readDoubles("/outputs/x_t").values
        var x0 = [Double](repeating: 0, count: xt.count), prev = x0
        for i in 0..<xt.count {
            let a = ab[t[i / per]], ap = t[i / per] == 0 ? 1 : ab[t[i / per] - 1]
            x0[i] = (xt[i] - (1 - a).squareRoot() * guided[i]) / a.squareRoot()
            prev[i] = ap.squareRoot() * x0[i] + (1 - ap).squareRoot() * guided[i]
        }
        for (name, expected) in [("cfg_ddim_pred_x0", x0), ("cfg_ddim_x_prev", prev)] {
            let r = Comparison(name + " by hand", actual: try f.readDoubles("/outputs/" + name).values, expected: expected, tolerance: Tolerance(rtol: 1e-12, atol: 1e-14))
            print(r); #expect(r.passed, "\(r)")
        }
        let rows = try GoldenFile.check(path: path, tolerance: .equation)
        #expect(GoldenConditional.outputNames.allSatisfy { n in rows.contains { $0.name == n && $0.comparison.passed } })
        let failing = rows.filter { !$0.comparison.passed }.map(\.name)
        #expect(failing.isEmpty, "\(failing)")
    }

    @Test("diffusers' s = 4 writes the same cfg_* values as the paper's w = 3, bit for bit, and records 'diffusers-s'; a learned variance's half is the conditional one")
    func conventions() throws {
        let a = try HDF5File(path: try export(.paper(w: 3))), b = try HDF5File(path: try export(.scale(s: 4)))
        #expect(try b.stringAttribute("guidance_convention", of: "/outputs") == "diffusers-s")
        for n in GoldenConditional.outputNames {
            let x = try a.readDoubles("/outputs/" + n).values, y = try b.readDoubles("/outputs/" + n).values
            #expect(x == y, "\(n)")
        }
        let learned = try HDF5File(path: try export(.paper(w: 3), variance: .learnedRange))
        let c = try learned.readDoubles("/outputs/cfg_eps_cond"), g = try learned.readDoubles("/outputs/cfg_eps_guided")
        #expect(c.shape == [3, 2, 8, 8])
        for n in 0..<3 { #expect(Array(g.values[(n * 128 + 64)..<(n * 128 + 128)]) == Array(c.values[(n * 128 + 64)..<(n * 128 + 128)])) }
    }

    @Test("a recorded w that differs from the outputs' fails the check; an output without its attributes is a malformed file; the command writes and checks one")
    func checksFail() throws {
        let path = try export(.paper(w: 3))
        let dir = scratchFolder()
        try copyHDF5(path, to: dir + "/w2.h5", attributes: ["/outputs guidance_w": 2.0])
        let rows = try GoldenFile.check(path: dir + "/w2.h5", tolerance: .equation)
        let bad = rows.filter { !$0.comparison.passed }.map(\.name)
        print("w recorded as 2: failing rows \(bad)")
        #expect(bad == ["cfg_ddim_pred_x0", "cfg_ddim_x_prev", "cfg_eps_guided"])
        try copyHDF5(path, to: dir + "/noattr.h5", skip: ["/inputs/labels"])
        expectError(.malformedFile, mentioning: ["/inputs/labels"]) { _ = try GoldenFile.check(path: dir + "/noattr.h5", tolerance: .equation) }
        let r = try runDDPM(["golden", "export", "--out", dir + "/c.h5", "--classes", "3", "--guidance-scale", "2.5", "--guidance-rescale", "0.5"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try HDF5File(path: dir + "/c.h5").doubleAttribute("guidance_w", of: "/outputs") == 1.5)
        let c = try runDDPM(["golden", "check", dir + "/c.h5"])
        #expect(c.status == 0, "\(c.stdout)\(c.stderr)")
        try expectUserError(["golden", "export", "--out", dir + "/x.h5", "--classes", "3"], "--classes: a conditional golden file needs --guidance w or --guidance-scale s")
        try expectUserError(["golden", "export", "--out", dir + "/x.h5", "--guidance", "1"], "--guidance: guided golden outputs need a class-conditional network (--classes K)")
    }
}
