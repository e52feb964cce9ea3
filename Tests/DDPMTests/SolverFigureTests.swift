// The solver figures of Notes/18 (`ddpm sampler-figures`) and the solvers' cost check of `ddpm bench`.

import Foundation
import TestSupport
import Testing
import DDPM

@Suite("ddpm sampler-figures: the solver figures; ddpm bench --solver-steps")
struct SolverFigureTests {
    @Test("solver-convergence.tsv holds every deterministic solver at N = 5 … 80 with its evaluations, the library's errors, and the SVG a line per solver")
    func convergenceFigure() throws {
        let dir = scratchFolder()
        let r = try runDDPM(["sampler-figures", "--out", dir])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try String(contentsOfFile: dir + "/solver-convergence.tsv", encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.dropFirst()
        #expect(rows.count == SolverConvergence.cases.count * SolverConvergence.steps.count)
        var worst = 0.0
        for c in SolverConvergence.cases {
            let e = try SolverConvergence.errors(c.solver)
            let mine = rows.filter { $0.hasPrefix(c.name + "\t") }.map { $0.split(separator: "\t") }
            #expect(mine.map { Int($0[2])! } == e.map(\.n) && mine.map { Int($0[3])! } == e.map(\.evaluations), "\(c.name)")
            for (row, p) in zip(mine, e) { worst = max(worst, abs(Double(row[4])! - p.error) / p.error) }
        }
        print("solver-convergence.tsv against SolverConvergence.errors: worst relative difference \(worst) (6 significant digits written)")
        #expect(worst <= 5e-7)
        // Heun's evaluations are 2N − 1 (no correction into the last σ when it is 0; here the last σ is σ_min > 0: 2N)
        #expect(rows.contains { $0.hasPrefix("heun\t2.0\t5\t10\t") } && rows.contains { $0.hasPrefix("dpm++2m\t2.0\t80\t80\t") })
        let svg = try String(contentsOfFile: dir + "/solver-convergence.svg", encoding: .utf8)
        #expect(svg.components(separatedBy: "<polyline").count - 1 == SolverConvergence.cases.count)
    }

    @Test("solver-steps.png: DDIM, Euler, Heun and DPM-Solver++(2M) at 5, 10, 20 steps, 12 rows of the same x_T; the last row is the library's DPM-Solver++(2M) in 20 steps")
    func stepsFigure() throws {
        let (dir, path, trainer) = try microSamplingCheckpoint()
        let out = dir + "/figs"
        let r = try runDDPM(["sampler-figures", "--checkpoint", path, "--out", out, "--count", "2", "--seed", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let png = try PNGImage.read(path: out + "/solver-steps.png")
        let side = trainer.config.network.imageSize * 3 + 1   // scale 3 and a 1-pixel gap
        let top = png.height - (12 * side + 1)
        print("solver-steps.png: \(png.width)×\(png.height), caption \(top) rows")
        #expect(png.width == 2 * side + 1 && top >= 24 && (top - 4) % 20 == 0)
        // the last row, pixel by pixel: DPM-Solver++(2M), Karras σ, 20 steps from the --seed 3 starts, EMA weights
        trainer.useAveragedWeights()
        let c = trainer.config.network
        var g = RandomGenerator(seed: 3)
        let xT = Tensor.randomNormal([2, c.channels, c.imageSize, c.imageSize], generator: &g)
        let d = try trainer.config.makeDiffusion()
        var unused = RandomGenerator(seed: 0)
        let expected = try runReverseChain(model: trainer.network, from: xT, sampler: SolverChoice(solver: .dpmpp2M).makeSampler(for: d, steps: 20), generator: &unused)
        var mismatches = 0
        for i in 0..<2 { for y in 0..<c.imageSize { for x in 0..<c.imageSize {
            let v = PNGWriter.pixel(expected.data[(i * c.imageSize + y) * c.imageSize + x], range: trainer.config.diffusion.dataRange)
            let p = png.pixel(x: 1 + i * side + 3 * x + 1, y: top + 1 + 11 * side + 3 * y + 1)
            if p.first! != v { mismatches += 1 }
        } } }
        #expect(mismatches == 0, "\(mismatches) pixels of the last row differ from the library's DPM-Solver++(2M) 20 steps")
        #expect(r.stdout.contains("DPM-Solver++(2M) 20 steps: 20 evaluations") && r.stdout.contains("Heun 5 steps: 9 evaluations"), "\(r.stdout)")
    }

    @Test("bench --solver-steps: DPM-Solver++(2M) counts N network evaluations and Heun 2N − 1, each against its budget")
    func benchSolvers() throws {
        let r = try runDDPM(["bench", "--preset", "golden", "--batches", "1", "--runs", "1", "--gemm-size", "8", "--solver-steps", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        print(lines.filter { $0.contains("steps (Karras") }.joined(separator: "\n"))
        #expect(lines.contains { $0.hasPrefix("DPM-Solver++(2M) 3 steps (Karras σ), batch 8: 3 network evaluations (as counted)") })
        #expect(lines.contains { $0.hasPrefix("Heun 3 steps (Karras σ), batch 8: 5 network evaluations (as counted)") })
        #expect(lines.contains { $0.hasPrefix("DPM-Solver++(2M) 3 steps (Karras σ), batch 8:") && $0.contains("budget 3 evaluations × forward") })
        try expectUserError(["bench", "--preset", "golden", "--solver-steps", "2000"], "--solver-steps")
    }
}
