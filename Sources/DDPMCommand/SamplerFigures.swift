import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm sampler-figures`: the figures of Notes/14–16 and 18 (respacing and DDIM, interpolation, terminal SNR,
/// the solvers' convergence and digits at few steps).
struct SamplerFigures: FileCommand {
    static let configuration = CommandConfiguration(commandName: "sampler-figures",
        abstract: "Write the sampler figures of the Notes: zero-terminal-snr.svg, solver-convergence.svg/.tsv, and with --checkpoint ddim-steps.png, interpolation.png and solver-steps.png.",
        discussion: """
        zero-terminal-snr.svg: ᾱ_t and log SNR_t of the linear schedule (T = 1000) before and after Lin et al.'s rescaling.

        ddim-steps.png: the same starts x_T sampled with DDIM (η = 0) in 10, 25, 50 and T steps (one row each; \
        improved-diffusion 'ddimN' spacing, evenly spaced sections when no stride fits).

        interpolation.png: DDIM η = 0 in 50 steps along the slerp between the latents of seeds --from and --to.

        solver-convergence.svg and .tsv: the terminal error of every deterministic σ-view solver against its network \
        evaluations on Gaussian data 𝒩(0.3, 0.5²), where the probability-flow ODE is solved exactly (Karras σ, ρ = 7, \
        10 → 0.05, N = 5 … 80 steps; log–log), with the observed orders.

        solver-steps.png: the same starts x_T through DDIM (η = 0), Euler, Heun and DPM-Solver++(2M) in 5, 10 and 20 \
        steps (one row each; Karras σ for the three σ-view solvers).
        """)
    @Option(name: .customLong("out"), help: "Folder to write the figures into (created if missing; the Notes' figures are regenerated with --out Notes).") var outDir: String
    @Option(help: "Checkpoint for the sample figures (e.g. the demo's checkpoint.h5); without it only the SVG is written.") var checkpoint: String?
    @Option(help: "Seed of the starts x_T of ddim-steps.png.") var seed: Int = 0
    @Option(help: "Number of samples per row of ddim-steps.png (one per start x_T).") var count: Int = 6
    @Option(help: "Seed of the first latent of interpolation.png.") var from: Int = 1
    @Option(help: "Seed of the second latent of interpolation.png.") var to: Int = 2
    @Flag(help: "Replace figures already in --out.") var force = false

    func checkOptions() throws {
        try requireRange("--count", count, 1...Int.max)
        for (option, v) in [("--seed", seed), ("--from", from), ("--to", to)] { _ = try seedValue(v, option: option) }
    }

    var names: [String] {
        ["zero-terminal-snr.svg", "solver-convergence.svg", "solver-convergence.tsv"] + (checkpoint == nil ? [] : ["ddim-steps.png", "interpolation.png", "solver-steps.png"])
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--checkpoint", checkpoint)
        plan.output("--out", outDir, kind: .folder(files: names), mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.diffusion(timesteps: 1000, "two T = 1000 schedules' tables")
        guard let checkpoint else { return f }
        let c = try checkpointConfiguration(checkpoint, option: "--checkpoint", into: &f).network
        f.add("--count \(count) images per row of ddim-steps.png", doubles: [count, c.channels, c.imageSize, c.imageSize], copies: 6)
        f.add("--count \(count): the PNG grids", Double(Self.solverRows.count * Self.solverSteps.count * count * c.channels) * Double((3 * c.imageSize + 1) * (3 * c.imageSize + 1)))
        f.network(c, batch: max(count, 8), training: false, network: "the network of --checkpoint \(checkpoint)", images: "--count \(count) images per row")
        return f
    }

    func work() throws {
        try writeTerminalSNR(outDir + "/zero-terminal-snr.svg")
        let orders = try writeSolverConvergence(svg: outDir + "/solver-convergence.svg", table: outDir + "/solver-convergence.tsv")
        let convergenceLine = "wrote \(outDir)/solver-convergence.svg and .tsv (observed orders: \(orders))"
        guard let checkpoint else {
            announce("wrote \(outDir)/zero-terminal-snr.svg")
            announce(convergenceLine)
            return
        }
        let trainer = try loadCheckpoint(checkpoint)
        trainer.useAveragedWeights()
        let d = try trainer.config.makeDiffusion()
        let c = trainer.config.network
        var g = RandomGenerator(seed: try seedValue(seed))
        let xT = Tensor.randomNormal([count, c.channels, c.imageSize, c.imageSize], generator: &g)
        var rows: [Tensor] = [], labels: [String] = []
        for n in [10, 25, 50, d.timesteps] where n <= d.timesteps {
            let rule = (try? Respacing.improvedDiffusionTimesteps(timesteps: d.timesteps, sectionCounts: "ddim\(n)")) != nil ? "ddim\(n)" : "\(n)"
            let sampler = try SamplerChoice(kind: .ddim, steps: n, spacing: .improvedDiffusion(rule)).makeSampler(for: d)
            var unused = RandomGenerator(seed: 0)
            let start = Date()
            rows.append(try runReverseChain(model: trainer.network, from: xT, sampler: sampler, generator: &unused))
            labels.append("\(rule): \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        }
        try PNGWriter.writeGrid(Tensor.concatenate(rows, axis: 0), range: trainer.config.diffusion.dataRange, columns: count, scale: 3,
                                path: outDir + "/ddim-steps.png")
        let rowsLine = "wrote \(outDir)/zero-terminal-snr.svg; \(outDir)/ddim-steps.png (rows: \(labels.joined(separator: "; ")))"
        let chain = try SpacedDiffusion(base: d, spacing: .improvedDiffusion(
            (try? Respacing.improvedDiffusionTimesteps(timesteps: d.timesteps, sectionCounts: "ddim50")) != nil ? "ddim50" : "\(min(50, d.timesteps))"), steps: 0)
        var g0 = RandomGenerator(seed: try seedValue(from, option: "--from")), g1 = RandomGenerator(seed: try seedValue(to, option: "--to"))
        let shape = [1, c.channels, c.imageSize, c.imageSize]
        let strip = try Interpolation.decode(Interpolation.strip(from: Tensor.randomNormal(shape, generator: &g0), to: Tensor.randomNormal(shape, generator: &g1), count: 8),
                                             model: trainer.network, diffusion: chain)
        try PNGWriter.writeGrid(strip, range: trainer.config.diffusion.dataRange, columns: 8, scale: 3, path: outDir + "/interpolation.png")
        let solverLine = try writeSolverSteps(trainer, diffusion: d, xT: xT, path: outDir + "/solver-steps.png")
        announce(rowsLine)
        announce("wrote \(outDir)/interpolation.png (seeds \(from) → \(to), 8 frames)")
        announce(convergenceLine)
        announce(solverLine)
    }

    /// The rows of solver-steps.png: DDIM (η = 0, improved-diffusion 'ddimN') and three σ-view solvers on Karras σ.
    static let solverRows: [(name: String, solver: SigmaSolver?)] = [
        ("DDIM", nil), ("Euler", .euler), ("Heun", .heun(churn: 0, tMin: 0, tMax: .infinity, noiseScale: 1)), ("DPM-Solver++(2M)", .dpmpp2M),
    ]
    static let solverSteps = [5, 10, 20]

    /// solver-steps.png: the starts `xT` through each of ``solverRows`` in each of ``solverSteps`` (N ≤ T) steps,
    /// one row each, the rows named in the caption. Returns the announcement (each row's evaluations and time).
    func writeSolverSteps(_ trainer: Trainer, diffusion d: GaussianDiffusion, xT: Tensor, path: String) throws -> String {
        var rows: [Tensor] = [], labels: [String] = [], captions: [String] = []
        for (name, solver) in Self.solverRows {
            var kept: [String] = []
            for n in Self.solverSteps where n <= d.timesteps {
                let sampler: ReverseSampler
                if let solver {
                    sampler = try SolverChoice(solver: solver, sigmas: .karras(rho: 7), timestepConvention: .logLinear).makeSampler(for: d, steps: n)
                } else {
                    let rule = (try? Respacing.improvedDiffusionTimesteps(timesteps: d.timesteps, sectionCounts: "ddim\(n)")) != nil ? "ddim\(n)" : "\(n)"
                    sampler = try SamplerChoice(kind: .ddim, steps: n, spacing: .improvedDiffusion(rule)).makeSampler(for: d)
                }
                var unused = RandomGenerator(seed: 0)
                let start = Date()
                rows.append(try runReverseChain(model: trainer.network, from: xT, sampler: sampler, generator: &unused))
                let evaluations = (sampler as? SigmaSampler)?.evaluations ?? n
                labels.append("\(name) \(n) steps: \(evaluations) evaluations, \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
                kept.append("\(n)")
            }
            captions.append("\(name) \(kept.joined(separator: "/"))")
        }
        try PNGWriter.writeGrid(Tensor.concatenate(rows, axis: 0), range: trainer.config.diffusion.dataRange, columns: xT.shape[0], scale: 3,
                                caption: "same x_T, rows: " + captions.joined(separator: ", ") + " steps (Karras sigmas; DDIM eta 0)", path: path)
        return "wrote \(path) (rows: \(labels.joined(separator: "; ")))"
    }

    /// solver-convergence.svg (log–log: terminal error against network evaluations, one line per solver of
    /// ``SolverConvergence/cases``) and its table (.tsv: solver, expected order, N, evaluations, error, observed
    /// order). Returns the observed orders, "name order" joined.
    func writeSolverConvergence(svg path: String, table tablePath: String) throws -> String {
        let runs = try SolverConvergence.cases.map { c in (c, try SolverConvergence.errors(c.solver)) }
        var tsv = "# terminal error max|x_N − x(σ_min)| over 9 starts, data N(0.3, 0.5²), Karras σ (ρ = 7) 10 → 0.05, no final 0 (ddpm sampler-figures)\n"
        tsv += "solver\texpected_order\tsteps\tevaluations\terror\tobserved_order\n"
        for (c, e) in runs {
            let o = SolverConvergence.order(e)
            for p in e { tsv += "\(c.name)\t\(c.order)\t\(p.n)\t\(p.evaluations)\t\(String(format: "%.6e", p.error))\t\(String(format: "%.3f", o))\n" }
        }
        let all = runs.flatMap { $0.1 }
        let (xLo, xHi) = (Foundation.log10(Double(all.map(\.evaluations).min()!)), Foundation.log10(Double(all.map(\.evaluations).max()!)))
        let (yLo, yHi) = (Foundation.log10(all.map(\.error).min()!).rounded(.down), Foundation.log10(all.map(\.error).max()!).rounded(.up))
        let (w, h, pad, legend) = (560.0, 420.0, 50.0, 230.0)
        func px(_ v: Int) -> Double { pad + (w - 2 * pad) * (Foundation.log10(Double(v)) - xLo) / (xHi - xLo) }
        func py(_ e: Double) -> Double { h - pad - (h - 2 * pad) * (Foundation.log10(e) - yLo) / (yHi - yLo) }
        let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w + legend)\" height=\"\(h)\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(w / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"13\">terminal error on Gaussian data (exact ODE solution) against network evaluations</text>\n"
        svg += "<rect x=\"\(pad)\" y=\"\(pad)\" width=\"\(w - 2 * pad)\" height=\"\(h - 2 * pad)\" fill=\"none\" stroke=\"#888\"/>\n"
        for k in Int(yLo)...Int(yHi) {
            let y = py(Foundation.pow(10, Double(k)))
            svg += "<line x1=\"\(pad)\" y1=\"\(y)\" x2=\"\(w - pad)\" y2=\"\(y)\" stroke=\"#eee\"/><text x=\"\(pad - 4)\" y=\"\(y + 4)\" text-anchor=\"end\" font-size=\"10\">1e\(k)</text>\n"
        }
        for v in [5, 10, 20, 40, 80, 160, 320] where Foundation.log10(Double(v)) >= xLo - 1e-9 && Foundation.log10(Double(v)) <= xHi + 1e-9 {
            svg += "<text x=\"\(px(v))\" y=\"\(h - pad + 14)\" text-anchor=\"middle\" font-size=\"10\">\(v)</text>\n"
        }
        svg += "<text x=\"\(w / 2)\" y=\"\(h - 12)\" text-anchor=\"middle\" font-size=\"11\">network evaluations (log)</text>\n"
        svg += "<text x=\"14\" y=\"\(h / 2)\" transform=\"rotate(-90 14 \(h / 2))\" text-anchor=\"middle\" font-size=\"11\">max |x_N − x(σ_min)| (log)</text>\n"
        svg += "<text x=\"\(w)\" y=\"\(pad - 12)\" font-size=\"10\">observed order, N = 20…80 (method's)</text>\n"
        for (i, (c, e)) in runs.enumerated() {
            let colour = colours[i % colours.count], dash = i < colours.count ? "" : " stroke-dasharray=\"5,3\""
            let points = e.map { String(format: "%.1f,%.1f", px($0.evaluations), py($0.error)) }
            svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"\(dash) points=\"\(points.joined(separator: " "))\"/>\n"
            for p in points { let xy = p.split(separator: ","); svg += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"2.2\" fill=\"\(colour)\"/>" }
            let ly = pad + 14 * Double(i)
            svg += "\n<line x1=\"\(w)\" y1=\"\(ly)\" x2=\"\(w + 18)\" y2=\"\(ly)\" stroke=\"\(colour)\" stroke-width=\"2\"\(dash)/>"
            svg += "<text x=\"\(w + 22)\" y=\"\(ly + 4)\" font-size=\"10\">\(c.name): \(String(format: "%.2f", SolverConvergence.order(e))) (\(Int(c.order)))</text>\n"
        }
        try writeText(svg + "</svg>\n", to: path)
        try writeText(tsv, to: tablePath)
        return runs.map { "\($0.0.name) \(String(format: "%.2f", SolverConvergence.order($0.1)))" }.joined(separator: ", ")
    }

    /// Two panels: ᾱ_t and log SNR_t, linear schedule before (blue) and after (orange) the zero-terminal-SNR rescaling.
    func writeTerminalSNR(_ path: String) throws {
        let T = 1000
        let before = try DiffusionTables(schedule: .linear(), timesteps: T)
        let after = try DiffusionTables(betas: TerminalSNR.rescaledBetas(before.betas))
        let series = [(before.alphasCumprod, "#1f77b4", "linear"), (after.alphasCumprod, "#ff7f0e", "linear, zero terminal SNR")]
        let (w, h, pad) = (420.0, 260.0, 40.0)
        func panel(_ x0: Double, _ title: String, _ f: ([Double]) -> [Double], _ lo: Double, _ hi: Double) -> String {
            var s = "<g transform=\"translate(\(x0),0)\">\n<rect x=\"\(pad)\" y=\"\(pad)\" width=\"\(w - 2 * pad)\" height=\"\(h - 2 * pad)\" fill=\"none\" stroke=\"#888\"/>\n"
            s += "<text x=\"\(w / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(title)</text>\n"
            s += "<text x=\"\(pad)\" y=\"\(h - pad + 16)\" font-size=\"11\">0</text><text x=\"\(w - pad)\" y=\"\(h - pad + 16)\" text-anchor=\"end\" font-size=\"11\">t = \(T - 1)</text>\n"
            s += "<text x=\"\(pad - 4)\" y=\"\(pad + 4)\" text-anchor=\"end\" font-size=\"11\">\(String(format: "%g", hi))</text>"
            s += "<text x=\"\(pad - 4)\" y=\"\(h - pad)\" text-anchor=\"end\" font-size=\"11\">\(String(format: "%g", lo))</text>\n"
            for (values, colour, _) in series {
                let v = f(values)
                let points = v.enumerated().map { i, y -> String in
                    let px = pad + (w - 2 * pad) * Double(i) / Double(v.count - 1)
                    let clamped = min(max(y.isFinite ? y : (y > 0 ? hi : lo), lo), hi)
                    return String(format: "%.1f,%.1f", px, h - pad - (h - 2 * pad) * (clamped - lo) / (hi - lo))
                }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
            }
            return s + "</g>\n"
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(2 * w)\" height=\"\(h + 30)\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += panel(0, "ᾱ_t", { $0 }, 0, 1)
        svg += panel(w, "log SNR_t (−∞ at t = T−1 after rescaling, drawn at the floor)", TerminalSNR.logSNR, -20, 10)
        for (k, s) in series.enumerated() { svg += "<text x=\"\(40 + Double(k) * 200)\" y=\"\(h + 20)\" font-size=\"12\" fill=\"\(s.1)\">■ \(s.2)</text>\n" }
        try writeText(svg + "</svg>\n", to: path)
    }
}
