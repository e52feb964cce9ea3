import Foundation
import TestSupport
import Testing
import DDPM

/// Whole sampling trajectories in golden files (GoldenTrajectories.swift, Notes/09 "Whole trajectories"):
/// the round trip through export and check, a planted error found at exactly its step, and an empty check failing.
@Suite("Golden files: whole sampling trajectories")
struct GoldenTrajectoryTests {
    static let names = ["ancestral_full", "ancestral_10", "ddim_eta0_10", "ddim_eta0.5_10", "euler_karras_10", "heun_karras_10",
                        "dpmpp_2m_karras_10", "euler_ancestral_karras_10"]

    @Test("export --trajectories then check passes, naming every trajectory; the file's chains, noise flags and Karras σ are as defined")
    func roundTrip() throws {
        let dir = scratchFolder(), p = dir + "/t.h5", small = dir + "/s.h5"
        let e = try runDDPM(["golden", "export", "--out", p, "--timesteps", "20", "--trajectories"])
        #expect(e.status == 0, "\(e.stderr)")
        let c = try runDDPM(["golden", "check", p, "--report", dir + "/r.md"])
        print(c.stdout)
        #expect(c.status == 0, "\(c.stderr)")
        for n in Self.names { #expect(c.stdout.contains("trajectory \(n): "), "\(n) not reported") }
        let md = try String(contentsOfFile: dir + "/r.md", encoding: .utf8)
        #expect(md.contains("### heun_karras_10: pass") && md.contains("| step | t |"))
        // The figure beside the report, through the declared plan, referenced from it: one chart per trajectory, with
        // the tier bounds where the chain's amplification is measured.
        let svg = try String(contentsOfFile: dir + "/r-trajectories.svg", encoding: .utf8)
        #expect(md.contains("](r-trajectories.svg)") && c.stdout.contains("wrote \(dir)/r.md and \(dir)/r-trajectories.svg"))
        #expect(svg.hasPrefix("<svg") && svg.components(separatedBy: "<g transform=").count - 1 == Self.names.count)
        #expect(svg.contains("ddim_eta0_10: ") && svg.contains("float16 bound τ·A_k") && svg.contains("heun_karras_10: ‖file − ours‖/‖ours‖ per step (no measured amplification"))
        // A second check refuses to replace the figure it did not create without --force.
        #expect(try runDDPM(["golden", "check", p, "--report", dir + "/r2.md"]).status == 0)
        try FileManager.default.removeItem(atPath: dir + "/r2.md")
        let again = try runDDPM(["golden", "check", p, "--report", dir + "/r2.md"])
        #expect(again.status != 0 && again.stderr.contains("r2-trajectories.svg"))
        let f = try HDF5File(path: p)
        #expect(try f.members(ofGroup: "/trajectories").sorted() == Self.names.sorted())
        // The full chain runs t = 19 … 0 and draws z at every step; DDIM η = 0 draws none, η = 0.5 draws at all but the last.
        #expect(try f.readInt64s("/trajectories/ancestral_full/timesteps").values == (0..<20).reversed().map(Int64.init))
        #expect(try f.readInt64s("/trajectories/ancestral_full/draws_noise").values.allSatisfy { $0 == 1 })
        #expect(try f.readInt64s("/trajectories/ddim_eta0_10/draws_noise").values.allSatisfy { $0 == 0 })
        #expect(try f.readDoubles("/trajectories/ddim_eta0_10/noise").values.allSatisfy { $0 == 0 })
        #expect(try f.readInt64s("/trajectories/ddim_eta0.5_10/draws_noise").values == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
        // Karras et al. 2022 eq. 5 written out here, σ_min/σ_max the trained σ_0, σ_19 of the linear schedule 1e-4 … 0.02 (T = 20).
        let betas = (0..<20).map { 1e-4 + (0.02 - 1e-4) * Double($0) / 19 }
        var ab = [Double](), acc = 1.0
        for b in betas { acc *= 1 - b; ab.append(acc) }
        let (lo, hi) = (((1 - ab[0]) / ab[0]).squareRoot(), ((1 - ab[19]) / ab[19]).squareRoot())
        let karras = (0..<5).map { i in pow(pow(hi, 1 / 7) + Double(i) / 4 * (pow(lo, 1 / 7) - pow(hi, 1 / 7)), 7) } + [0]
        let stored = try f.readDoubles("/sigma_tables/karras_rho7_5").values
        let worst = zip(karras, stored).map { abs($0 - $1) / max($0, 1e-300) }.max()!
        print("Karras σ (N = 5): stored \(stored), worst relative difference from eq. 5 \(worst)")
        #expect(worst < 1e-13)
        #expect(try f.members(ofGroup: "/sigma_tables").count == 6)   // N = 5, 20 under three schedules; N = 50 > T is absent
        // Small files stay small: without the flag no trajectories.
        #expect(try runDDPM(["golden", "export", "--out", small, "--timesteps", "20"]).status == 0)
        #expect(!(try HDF5File(path: small).exists("/trajectories")))
    }

    @Test("an error planted at one step of one stored trajectory is reported at exactly that step", arguments: [
        ("ddim_eta0.5_10", 4, false), ("heun_karras_10", 7, true), ("ancestral_full", 0, false), ("euler_ancestral_karras_10", 9, true),
    ])
    func plantedStep(name: String, step: Int, inPredictedStart: Bool) throws {
        let dir = scratchFolder(), p = dir + "/t.h5"
        try GoldenFile.export(to: p, config: microConfiguration(), seed: 3, batch: 2, trajectories: true)
        let (chains, tables) = try GoldenTrajectories.recompute(path: p)
        let tol = Tolerance(rtol: 1e-10, atol: 1e-12)
        #expect(GoldenTrajectories.judge(chains, sigmaTables: tables, path: p, tolerance: tol).passed)
        var edited = chains
        let i = edited.firstIndex { $0.name == name }!
        let at = step * edited[i].elementsPerStep + 5
        // 1e-8 (relative, at least absolute): far above the float64 tolerance, far below anything visible in a
        // picture. Additive, since a clipped x̂_0 is often exactly 0.
        let bump = { (v: Double) in v + 1e-8 * max(1, abs(v)) }
        if inPredictedStart { edited[i].stored.predictedStarts[at] = bump(edited[i].stored.predictedStarts[at]) } else { edited[i].stored.states[at] = bump(edited[i].stored.states[at]) }
        let check = GoldenTrajectories.judge(edited, sigmaTables: tables, path: p, tolerance: tol)
        for line in check.lines { print(line) }
        let t = check.trajectories[i]
        #expect(!check.passed)
        #expect(t.firstFailingStep == step)
        #expect(t.steps.filter { !$0.passed }.map(\.step) == [step])
        #expect(check.trajectories.filter { !$0.passed }.map(\.name) == [name])
        #expect(check.lines.contains { $0.hasPrefix("FAIL trajectory \(name): first step beyond tolerance \(step) of ") })
    }

    @Test("a failing check still writes its report and figure (committed before the failure is reported), and exits 1 with one error line")
    func failingCheckWritesReport() throws {
        let dir = scratchFolder(), p = dir + "/t.h5", bad = dir + "/bad.h5"
        try GoldenFile.export(to: p, config: microConfiguration(), seed: 3, batch: 2, trajectories: true)
        var x = try HDF5File(path: p).readDoubles("/trajectories/ancestral_10/x").values
        x[3 * x.count / 10 + 7] += 1e-3   // step 3 of 10
        try copyHDF5(p, to: bad, datasets: ["/trajectories/ancestral_10/x": x])
        let c = try runDDPM(["golden", "check", bad, "--report", dir + "/r.md"])
        #expect(c.status == 1 && c.stderr.split(separator: "\n").count == 1 && c.stderr.contains("ancestral_10 from step 3"), "\(c.stderr)")
        let md = try String(contentsOfFile: dir + "/r.md", encoding: .utf8)
        #expect(md.contains("### ancestral_10: **FAIL** at step 3") && FileManager.default.fileExists(atPath: dir + "/r-trajectories.svg"))
        #expect(c.stdout.contains("wrote \(dir)/r.md and \(dir)/r-trajectories.svg"))
    }

    @Test("a check that compares nothing fails: no trajectory, or a trajectory of no steps")
    func emptyFails() throws {
        let none = GoldenTrajectories.judge([], sigmaTables: [], path: "x.h5", tolerance: Tolerance(rtol: 1e-10, atol: 1e-12))
        #expect(!none.passed)
        #expect(none.lines == ["'/trajectories' holds no trajectory: nothing was checked"])
        let empty = GoldenTrajectories.Recomputed(name: "ddim_eta0_10", sampler: "", timesteps: [], elementsPerStep: 4, ours: ([], []), stored: ([], []))
        #expect(!GoldenTrajectories.judge([empty], sigmaTables: [], path: "x.h5", tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)).passed)
    }
}
