import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm sampler-figures`: the figures of Notes/14–16 (respacing and DDIM, interpolation, terminal SNR).
struct SamplerFigures: FileCommand {
    static let configuration = CommandConfiguration(commandName: "sampler-figures",
        abstract: "Write the sampler figures of the Notes: zero-terminal-snr.svg, and with --checkpoint ddim-steps.png and interpolation.png.",
        discussion: """
        zero-terminal-snr.svg: ᾱ_t and log SNR_t of the linear schedule (T = 1000) before and after Lin et al.'s rescaling.

        ddim-steps.png: the same starts x_T sampled with DDIM (η = 0) in 10, 25, 50 and T steps (one row each; \
        improved-diffusion 'ddimN' spacing, evenly spaced sections when no stride fits).

        interpolation.png: DDIM η = 0 in 50 steps along the slerp between the latents of seeds --from and --to.
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

    var names: [String] { ["zero-terminal-snr.svg"] + (checkpoint == nil ? [] : ["ddim-steps.png", "interpolation.png"]) }

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
        f.add("--count \(count): the PNG grid", Double(4 * count * c.channels) * Double((3 * c.imageSize + 1) * (3 * c.imageSize + 1)))
        f.network(c, batch: max(count, 8), training: false, network: "the network of --checkpoint \(checkpoint)", images: "--count \(count) images per row")
        return f
    }

    func work() throws {
        try writeTerminalSNR(outDir + "/zero-terminal-snr.svg")
        guard let checkpoint else {
            announce("wrote \(outDir)/zero-terminal-snr.svg")
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
        announce(rowsLine)
        announce("wrote \(outDir)/interpolation.png (seeds \(from) → \(to), 8 frames)")
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
