import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm figures`: the Notes' figures from a trained checkpoint (by default the demo's).
///
/// - `samples.png`: the samples, drawn exactly as `ddpm demo` draws them (same seed, same order of random
///   draws), so they equal the demo's `samples.png`.
/// - `chain-x0.png`: for two of those samples, x_t (on [−1, 2]) above the network's x̂_0 (on [0, 1], clipped
///   as the sampler uses it) at 11 steps from t = T−1 to t = 0.
/// - `bound-per-step.svg` and `bound-per-step.tsv`: the per-step terms of the variational bound in bits/dim,
///   averaged over held-out images drawn as the demo draws them (L_t for code t > 0, the decoder L_0 at t = 0).
struct Figures: FileCommand {
    static let configuration = CommandConfiguration(commandName: "figures",
        abstract: "Write the Notes' figures (samples, x_t and x̂_0 along the chain, the bound per timestep) from a checkpoint.")

    @Option(help: "Checkpoint written by `ddpm demo` or `ddpm train`.") var checkpoint: String = "demo-out/checkpoint.h5"
    @Option(help: "Folder to write the figures into (created if missing; the Notes' figures are Notes/figures).") var out: String
    @Option(help: "Seed the demo was run with (the samples use seed + 11 and the held-out images are drawn from seed, as in the demo).") var seed: Int = 0
    @Option(help: "Number of samples.") var count: Int = 36
    @Option(help: "Held-out images for the bound (digits drawn as the demo's held-out set).") var boundImages: Int = 64
    @Flag(help: "Replace figures already in --out.") var force = false

    static let files = ["samples.png", "chain-x0.png", "bound-per-step.svg", "bound-per-step.tsv"]

    func checkOptions() throws {
        try requireRange("--count", count, 2...Int.max)
        try requireRange("--bound-images", boundImages, 1...256)
        _ = try seedValue(seed)
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--checkpoint", checkpoint)
        plan.output("--out", out, kind: .folder(files: Self.files), mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        let config = try checkpointConfiguration(checkpoint, option: "--checkpoint", into: &f)
        let c = config.network
        f.add("--count \(count) samples of \(c.channels)×\(c.imageSize)×\(c.imageSize)", doubles: [count, c.channels, c.imageSize, c.imageSize], copies: 4)
        f.add("--bound-images \(boundImages) held-out digits", doubles: [4096 + 256, 1, 16, 16], copies: 2)
        f.network(c, batch: max(count, boundImages), training: false, network: "the network of --checkpoint \(checkpoint)", images: "--count \(count) samples")
        return f
    }

    func work() throws {
        let seed = try seedValue(self.seed)
        let trainer = try loadCheckpoint(checkpoint)
        trainer.useAveragedWeights()
        let diffusion = try trainer.config.makeDiffusion()
        let model = trainer.ddpm.model
        let T = diffusion.timesteps
        let range = trainer.config.diffusion.dataRange

        // 1. The reverse chain of DDPM.sample (the demo's draws: x_T, then per step the model and one z).
        trainer.ddpm.generator = RandomGenerator(seed: seed &+ 11)
        let snapshots = Set((0...10).map { T - 1 - $0 * (T - 1) / 10 })
        var xs: [Tensor] = [], x0s: [Tensor] = []
        let progress = Progress("figures: sample", total: T)
        let samples = try trainer.ddpm.sample(batchSize: count) { step in
            if snapshots.contains(step.t) {
                xs.append(step.noisy.slice(axis: 0, start: 0, length: 2)); x0s.append(step.predictedStart.slice(axis: 0, start: 0, length: 2))
            }
            progress.update(T - step.t)
        }
        try PNGWriter.writeGrid(samples, range: range, path: out + "/samples.png")
        // Rows: sample 0 x_t, sample 0 x̂_0, sample 1 x_t, sample 1 x̂_0; x_t mapped from [−1, 2] onto [0, 1].
        let lo = range.lowerBound, width = range.upperBound - lo
        func row(_ list: [Tensor], _ i: Int, from a: Double, to b: Double) -> [Tensor] {
            list.map { ($0.slice(axis: 0, start: i, length: 1) - a) * ((width) / (b - a)) + lo }
        }
        let rows = row(xs, 0, from: -1, to: 2) + row(x0s, 0, from: lo, to: lo + width) + row(xs, 1, from: -1, to: 2) + row(x0s, 1, from: lo, to: lo + width)
        try PNGWriter.writeGrid(Tensor.concatenate(rows, axis: 0), range: range, columns: snapshots.count, scale: 3,
                                path: out + "/chain-x0.png")

        // 2. The bound per timestep on held-out digits (drawn after the demo's 4096 training images).
        var dataGenerator = RandomGenerator(seed: seed)
        _ = DigitImages.make(count: 4096, generator: &dataGenerator)
        let heldOut = DigitImages.make(count: 256, generator: &dataGenerator).images.slice(axis: 0, start: 0, length: boundImages)
        var noiseGenerator = RandomGenerator(seed: seed &+ 13)
        var perStep = [Double](repeating: 0, count: T)
        let boundProgress = Progress("figures: bound", total: T)
        let clip = trainer.config.diffusion.clipDenoised
        try model.withMode(training: false) { try withoutGradients {
            for step in 0..<T {
                let t = [Int](repeating: step, count: boundImages)
                let noise = Tensor.randomNormal(heldOut.shape, generator: &noiseGenerator)
                let xt = try diffusion.qSample(start: heldOut, t: t, noise: noise)
                let terms = try diffusion.variationalBoundTerms(modelOutput: model.predictNoise(xt, at: t), start: heldOut, noisy: xt, t: t, clip: clip).terms
                perStep[step] = terms.data.reduce(0, +) / Double(boundImages)
                boundProgress.update(step + 1)
            }
        } }
        let prior = try diffusion.priorBitsPerDimension(start: heldOut).data.reduce(0, +) / Double(boundImages)
        let total = perStep.reduce(0, +) + prior
        var tsv = "# code t\tpaper t\tterm (bits/dim)\n"
        for (t, v) in perStep.enumerated() { tsv += "\(t)\t\(t + 1)\t\(v)\n" }
        tsv += "# prior L_T\t\t\(prior)\n# total\t\t\(total)\n"
        try writeText(tsv, to: out + "/bound-per-step.tsv")
        let svg = Self.boundSVG(perStep, prior: prior, total: total)
        try writeText(svg, to: out + "/bound-per-step.svg")
        let klSum = perStep.dropFirst().reduce(0, +)
        print(String(format: "bound on %d held-out digits: L_0 (decoder) %.4f, sum of L_1 … L_%d %.4f, prior L_T %.3e, total %.4f bits/dim",
                     boundImages, perStep[0], T - 1, klSum, prior, total))
        announce("wrote \(out)/samples.png, chain-x0.png, bound-per-step.svg, bound-per-step.tsv")
    }

    /// The per-step terms on a log scale, code t on the horizontal axis (paper t = code t + 1).
    static func boundSVG(_ v: [Double], prior: Double, total: Double) -> String {
        let (w, h, pad) = (640.0, 300.0, 56.0)
        let positive = v.filter { $0 > 0 }
        let lo = Foundation.floor(Foundation.log10(positive.min() ?? 1e-6)), hi = Foundation.ceil(Foundation.log10(positive.max() ?? 1))
        func y(_ value: Double) -> Double { h - pad - (h - 2 * pad) * (Foundation.log10(max(value, 1e-30)) - lo) / max(hi - lo, 1) }
        func x(_ t: Int) -> Double { pad + (w - 2 * pad) * Double(t) / Double(max(v.count - 1, 1)) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" font-family=\"sans-serif\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<rect x=\"\(pad)\" y=\"\(pad)\" width=\"\(w - 2 * pad)\" height=\"\(h - 2 * pad)\" fill=\"none\" stroke=\"#888\"/>\n"
        s += "<text x=\"\(w / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">bound term per step (bits/dim, log scale); total \(String(format: "%.3f", total)), prior \(String(format: "%.1e", prior))</text>\n"
        var e = lo
        while e <= hi {
            let yy = y(Foundation.pow(10, e))
            s += "<line x1=\"\(pad)\" x2=\"\(w - pad)\" y1=\"\(String(format: "%.1f", yy))\" y2=\"\(String(format: "%.1f", yy))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(pad - 4)\" y=\"\(String(format: "%.1f", yy + 4))\" text-anchor=\"end\" font-size=\"11\">1e\(Int(e))</text>\n"
            e += 1
        }
        s += "<text x=\"\(pad)\" y=\"\(h - pad + 16)\" font-size=\"11\">code t = 0 (paper 1): L_0, the decoder</text>"
        s += "<text x=\"\(w - pad)\" y=\"\(h - pad + 16)\" text-anchor=\"end\" font-size=\"11\">t = \(v.count - 1) (paper \(v.count))</text>\n"
        let points = v.enumerated().map { String(format: "%.1f,%.1f", x($0.offset), y($0.element)) }.joined(separator: " ")
        s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
        s += "<circle cx=\"\(String(format: "%.1f", x(0)))\" cy=\"\(String(format: "%.1f", y(v[0])))\" r=\"3\" fill=\"#d62728\"/>\n"
        return s + "</svg>\n"
    }
}
