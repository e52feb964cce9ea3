import Foundation
import TestSupport
import Testing
import DDPM

/// The sampler options of golden files (GoldenSamplerOptions.swift, Notes/09 "Sampler options"): recorded at export,
/// the outputs they add pinned by hand, recomputed by the check, and files without them still checking.
@Suite("Golden files: sampler options")
struct GoldenSamplerOptionsTests {
    /// ᾱ_t of the linear schedule written out (β_t = start + (end − start)·t/(T − 1), t = 0 … T − 1).
    static func alphasCumprod(start: Double, end: Double, T: Int) -> [Double] {
        var acc = 1.0
        return (0..<T).map { t in acc *= 1 - (start + (end - start) * Double(t) / Double(T - 1)); return acc }
    }

    @Test("export records the options; sampler_ddim_x_prev is DDIM eq. 12 with their η and ε rule, by hand from the file's x_t, ε̂ and z; the chain keeps diffusers' leading timesteps")
    func recordedAndPinned() throws {
        let dir = scratchFolder(), p = dir + "/o.h5"
        let config = microConfiguration()   // linear 1e-3 … 0.2, T = 20, clipped to [0, 1]
        let options = GoldenSamplerOptions(steps: 5, spacing: .diffusersLeading(stepsOffset: 1), eta: 0.3, rederivation: .original, setAlphaToOne: false)
        try GoldenFile.export(to: p, config: config, seed: 5, batch: 3, samplerOptions: options)
        let f = try HDF5File(path: p)
        #expect(try f.int64Attribute("sampler_steps", of: "/outputs") == 5)
        #expect(try f.stringAttribute("sampler_spacing", of: "/outputs") == "diffusers:leading+1")
        #expect(try f.doubleAttribute("sampler_eta", of: "/outputs") == 0.3)
        #expect(try f.stringAttribute("sampler_epsilon", of: "/outputs") == "original")
        #expect(try f.int64Attribute("sampler_set_alpha_to_one", of: "/outputs") == 0)
        // By hand: x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t clipped to [0, 1]; ε the network's own (original);
        // σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev); x_prev = √ᾱ_prev x̂_0 + √(1−ᾱ_prev−σ²) ε + σ z, ᾱ_prev(0) = 1.
        let ab = Self.alphasCumprod(start: 1e-3, end: 0.2, T: 20)
        let xt = try f.readDoubles("/outputs/x_t").values, eps = try f.readDoubles("/outputs/eps_pred").values
        let z = try f.readDoubles("/inputs/z").values, t = try f.readInt64s("/inputs/t").values.map(Int.init)
        let stored = try f.readDoubles("/outputs/sampler_ddim_x_prev").values
        let m = xt.count / t.count
        var worst = 0.0
        for i in xt.indices {
            let a = ab[t[i / m]], ap = t[i / m] == 0 ? 1 : ab[t[i / m] - 1]
            let x0 = min(max((xt[i] - (1 - a).squareRoot() * eps[i]) / a.squareRoot(), 0), 1)
            let sigma = 0.3 * ((1 - ap) / (1 - a)).squareRoot() * (1 - a / ap).squareRoot()
            let expected = ap.squareRoot() * x0 + (1 - ap - sigma * sigma).squareRoot() * eps[i] + sigma * z[i]
            worst = max(worst, abs(expected - stored[i]))
        }
        print("sampler_ddim_x_prev against DDIM eq. 12 by hand: worst |difference| \(worst)")
        #expect(worst < 1e-12)
        // diffusers' leading spacing, N = 5 of T = 20, offset 1: step ratio 4, timesteps 4k + 1, run from the top.
        #expect(try f.readInt64s("/trajectories/ddim_options/timesteps").values == [17, 13, 9, 5, 1])
        // set_alpha_to_one false: the last step targets ᾱ_0 < 1, so its σ > 0 and it draws z too.
        #expect(try f.readInt64s("/trajectories/ddim_options/draws_noise").values == [1, 1, 1, 1, 1])
        #expect(!f.exists("/sigma_tables"))   // only the options' chain: no --trajectories
        let rows = try GoldenFile.check(path: p, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
        #expect(rows.contains { $0.name == "sampler_ddim_x_prev" } && rows.allSatisfy(\.comparison.passed))
        let chains = try GoldenTrajectories.check(path: p, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
        #expect(chains.passed && chains.trajectories.map(\.name) == ["ddim_options"])
    }

    @Test("check recomputes with the recorded options: a file whose recorded η or ε rule was edited fails")
    func recomputedFromTheRecord() throws {
        let dir = scratchFolder(), p = dir + "/o.h5"
        try GoldenFile.export(to: p, config: microConfiguration(), seed: 2, batch: 2,
                              samplerOptions: GoldenSamplerOptions(steps: 4, eta: 0.5))
        for (attribute, value) in [("sampler_eta", 0.25 as Any), ("sampler_epsilon", "original" as Any)] {
            let q = dir + "/\(attribute).h5"
            try copyHDF5(p, to: q, attributes: ["/outputs " + attribute: value])
            let rows = try GoldenFile.check(path: q, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
            let failed = rows.filter { !$0.comparison.passed }.map(\.name)
            print("\(attribute) edited: failing outputs \(failed)")
            #expect(failed == ["sampler_ddim_x_prev"])
            // The chain is rebuilt from the record too: its description no longer matches the stored one.
            expectError(.invalidConfiguration, mentioning: ["ddim_options", "sampler"]) { _ = try GoldenTrajectories.check(path: q, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)) }
        }
        // A record that names no spacing is refused by name.
        let bad = dir + "/bad.h5"
        try copyHDF5(p, to: bad, attributes: ["/outputs sampler_spacing": "every other"])
        expectError(.invalidConfiguration, mentioning: ["sampler_spacing", "every other"]) { _ = try GoldenFile.check(path: bad, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)) }
    }

    @Test("files without sampler options still check: version 3 exported without them, and the same file stamped version 2")
    func withoutOptionsStillChecks() throws {
        let dir = scratchFolder(), p = dir + "/plain.h5", v2 = dir + "/v2.h5"
        try GoldenFile.export(to: p, config: microConfiguration(), seed: 4, batch: 2)
        #expect(!(try HDF5File(path: p).attributeNames(of: "/outputs")).contains { $0.hasPrefix("sampler_") })
        #expect(try GoldenFile.check(path: p, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)).allSatisfy(\.comparison.passed))
        try copyHDF5(p, to: v2, attributes: ["/ version": Int64(2)])
        #expect(try HDF5File(path: v2).int64Attribute("version") == 2)
        #expect(try GoldenFile.check(path: v2, tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)).allSatisfy(\.comparison.passed))
    }

    @Test("ddpm golden export takes the sampler options as ddpm sample spells them, refusing what cannot apply with one error line")
    func commandLine() throws {
        let dir = scratchFolder(), p = dir + "/c.h5"
        let r = try runDDPM(["golden", "export", "--out", p, "--timesteps", "20", "--sample-steps", "5", "--spacing", "trailing", "--eta", "1", "--epsilon", "original"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("the sampler options (ddim, 5 steps, spacing diffusers:trailing, η = 1.0, ε original)"))
        let c = try runDDPM(["golden", "check", p])
        #expect(c.status == 0 && c.stdout.contains("trajectory ddim_options: 5 steps pass"), "\(c.stdout)\(c.stderr)")
        #expect(try HDF5File(path: p).readInt64s("/trajectories/ddim_options/timesteps").values == [19, 15, 11, 7, 3])   // diffusers trailing: T − 1 − 4k
        for (args, words) in [(["--sample-steps", "30"], "--sample-steps"), (["--spacing", "linspace"], "--spacing needs --sample-steps"),
                              (["--set-alpha-to-one"], "diffusers spacing"), (["--eta", "-1"], "--eta"), (["--epsilon", "maybe"], "--epsilon")] {
            let e = try runDDPM(["golden", "export", "--out", dir + "/x.h5", "--timesteps", "20"] + args)
            let lines = e.stderr.split(separator: "\n")
            #expect(e.status != 0 && lines.count == 1 && lines[0].hasPrefix("error:") && e.stderr.contains(words), "\(args): \(e.stderr)")
        }
    }
}
