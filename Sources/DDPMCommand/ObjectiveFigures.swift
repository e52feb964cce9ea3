import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// A minimal SVG line chart with a log₁₀ y axis (the figures of Notes/11 and Notes/12).
struct LogChart {
    var title: String, xLabel: String
    var series: [(name: String, colour: String, values: [Double])]
    /// Sparse series: (x, value) points on the same axes, each drawn as a circle, joined by a line.
    var points: [(name: String, colour: String, values: [(x: Int, y: Double)])] = []

    func svg(width w: Double = 640, height h: Double = 340) -> String {
        let pad = 50.0
        let finite = (series.flatMap { $0.values } + points.flatMap { $0.values.map(\.y) }).filter { $0 > 0 && $0.isFinite }
        let lo = Foundation.floor(Foundation.log10(finite.min() ?? 1)), hi = Foundation.ceil(Foundation.log10(finite.max() ?? 10))
        let n = max(series.map(\.values.count).max() ?? 1, (points.flatMap { $0.values.map(\.x) }.max() ?? 0) + 1)
        let legend = series.map { ($0.name, $0.colour) } + points.map { ($0.name, $0.colour) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h + 24 * Double((legend.count + 2) / 3))\" font-family=\"sans-serif\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<rect x=\"\(pad)\" y=\"\(pad)\" width=\"\(w - 2 * pad)\" height=\"\(h - 2 * pad)\" fill=\"none\" stroke=\"#888\"/>\n"
        s += "<text x=\"\(w / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(title)</text>\n"
        func y(_ v: Double) -> Double { h - pad - (h - 2 * pad) * (Foundation.log10(v) - lo) / max(hi - lo, 1) }
        var e = lo
        while e <= hi {
            let py = y(Foundation.pow(10, e))
            s += "<line x1=\"\(pad)\" x2=\"\(w - pad)\" y1=\"\(py)\" y2=\"\(py)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(pad - 4)\" y=\"\(py + 4)\" text-anchor=\"end\" font-size=\"10\">1e\(Int(e))</text>\n"
            e += 1
        }
        s += "<text x=\"\(pad)\" y=\"\(h - pad + 16)\" font-size=\"11\">0</text>"
        s += "<text x=\"\(w - pad)\" y=\"\(h - pad + 16)\" text-anchor=\"end\" font-size=\"11\">\(xLabel) = \(n - 1)</text>\n"
        for (name, colour, values) in series {
            var segments: [[String]] = [[]]
            for (i, v) in values.enumerated() {
                guard v > 0, v.isFinite else { segments.append([]); continue }
                let px = pad + (w - 2 * pad) * Double(i) / Double(max(n - 1, 1))
                segments[segments.count - 1].append(String(format: "%.1f,%.1f", px, y(v)))
            }
            for seg in segments where !seg.isEmpty {
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(seg.joined(separator: " "))\"><title>\(name)</title></polyline>\n"
            }
        }
        for (name, colour, values) in points {
            let drawn = values.filter { $0.y > 0 && $0.y.isFinite }
            let xy = drawn.map { String(format: "%.1f,%.1f", pad + (w - 2 * pad) * Double($0.x) / Double(max(n - 1, 1)), y($0.y)) }
            if xy.count > 1 {
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1\" stroke-dasharray=\"4 3\" points=\"\(xy.joined(separator: " "))\"><title>\(name)</title></polyline>\n"
            }
            for (p, c) in zip(drawn, xy) {
                let cxy = c.split(separator: ",")
                s += "<circle cx=\"\(cxy[0])\" cy=\"\(cxy[1])\" r=\"3.5\" fill=\"\(colour)\"><title>\(name) at \(xLabel) \(p.x): \(String(format: "%.6g", p.y))</title></circle>\n"
            }
        }
        for (k, item) in legend.enumerated() {
            s += "<text x=\"\(20 + Double(k % 3) * 205)\" y=\"\(h + 8 + 20 * Double(k / 3))\" font-size=\"12\" fill=\"\(item.1)\">■ \(item.0)</text>\n"
        }
        return s + "</svg>\n"
    }
}

/// `ddpm weights`: the weight each parameterisation's L_simple puts on the x̂_0 error, per t (Notes/11).
struct WeightsFigure: FileCommand {
    static let configuration = CommandConfiguration(commandName: "weights",
        abstract: "Write an SVG of the per-t weight on ‖x̂_0 − x_0‖² that L_simple implies for each parameterisation, min-SNR-γ, and the bound.")
    @Option(help: "The SVG file to write (the Notes' figure is Notes/loss-weights.svg).") var out: String
    @Option(help: "Diffusion steps T (linear schedule, β from 1e-4 to 0.02).") var timesteps: Int = 1000
    @Option(name: .customLong("min-snr"), help: "The γ of the min-SNR-γ weighting curve (Hang et al. 2023).") var gamma: Double = 5
    @Flag(help: "Replace --out if it exists.") var force = false

    func checkOptions() throws {
        try requireRange("--timesteps", timesteps, 1...Int.max)
        guard gamma > 0, gamma.isFinite else { throw DDPMError(.invalidValue, "--min-snr: expected a positive finite number, got \(gamma)") }
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.output("--out", out, mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.add("--timesteps \(timesteps): two diffusions' tables, six curves and their SVG points", 8 * (2 * 24 + 6 * 4) * Double(timesteps))
        return f
    }

    func work() throws {
        let d = try GaussianDiffusion(DiffusionConfiguration(timesteps: timesteps))
        let t = Array(0..<timesteps)
        let snr = d.signalToNoiseRatio(t)
        // In x̂_0 units: ‖ε̂ − ε‖² = SNR ‖x̂_0 − x_0‖², ‖v̂ − v‖² = (SNR + 1) ‖x̂_0 − x_0‖², ‖μ_θ − μ̃‖² = coef1² ‖x̂_0 − x_0‖².
        let eps = snr, v = snr.map { $0 + 1 }, x0 = snr.map { _ in 1.0 }
        let minSNR = try GaussianDiffusion(DiffusionConfiguration(timesteps: timesteps, meanType: .startX)).minSNRWeights(t, gamma: gamma)
        let xprev = t.map { d.tables.posteriorMeanCoef1[$0] * d.tables.posteriorMeanCoef1[$0] }
        // L_t for fixed small σ² = β̃_t: KL = ‖μ̃ − μ_θ‖²/(2β̃_t) = coef1²/(2β̃_t) ‖x̂_0 − x_0‖² (t ≥ 1; per nat).
        let bound = t.map { $0 == 0 ? Double.nan : xprev[$0] / (2 * d.tables.posteriorVariance[$0]) }
        let chart = LogChart(title: "weight on ‖x̂_0 − x_0‖² per t (linear schedule, T = \(timesteps))", xLabel: "t", series: [
            ("ε: SNR_t", "#1f77b4", eps), ("v: SNR_t + 1", "#2ca02c", v), ("x_0: 1", "#ff7f0e", x0),
            ("x_{t−1}: coef1_t²", "#8c564b", xprev), ("min-SNR-\(gamma.formatted()): min(SNR_t, γ)", "#d62728", minSNR),
            ("bound L_t (small σ²): coef1²/(2β̃_t)", "#9467bd", bound)])
        try writeText(chart.svg(), to: out)
        announce("wrote \(out) (T = \(timesteps), γ = \(gamma))")
        print("t        SNR_t        ε: SNR       v: SNR+1     x0   xprev: coef1²   min-SNR   bound coef1²/(2β̃)")
        for s in [0, 1, 10, 100, 150, 250, 500, 750, 999] where s < timesteps {
            print(String(format: "%-6d %12.5g %12.5g %12.5g %6.0f %12.5g %10.5g %12.5g", s, snr[s], eps[s], v[s], x0[s], xprev[s], minSNR[s], bound[s]))
        }
        if let cross = snr.firstIndex(where: { $0 < gamma }) { print("SNR_t falls below γ = \(gamma.formatted()) at t = \(cross)") }
        if let one = snr.firstIndex(where: { $0 < 1 }) { print("SNR_t falls below 1 at t = \(one)") }
    }
}

/// `ddpm bound`: the bound term L_t per timestep in bits/dim for a checkpoint, on held-out digits (Notes/12).
struct BoundFigure: FileCommand {
    static let configuration = CommandConfiguration(commandName: "bound",
        abstract: "Compute the variational bound per timestep (L_t in bits/dim, Ho et al. eq. 5) of a checkpoint on freshly drawn 16×16 digits, and write an SVG.")
    @Option(help: "Checkpoint written by `ddpm train` or `ddpm demo` (a 1×16×16 network).") var checkpoint: String
    @Option(help: "The SVG file to write.") var out: String
    @Option(help: "Number of held-out digit images.") var images: Int = 64
    @Option(help: "Seed of the images and of the noise at each t.") var seed: Int = 1000
    @Flag(help: "Use the exponential moving average of the weights.") var ema = false
    @Flag(help: "Replace --out if it exists.") var force = false

    func checkOptions() throws {
        try requireRange("--images", images, 1...Int.max)
        _ = try seedValue(seed)
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--checkpoint", checkpoint)
        plan.output("--out", out, mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        let config = try checkpointConfiguration(checkpoint, option: "--checkpoint", into: &f)
        let c = config.network
        guard c.channels == 1, c.imageSize == 16 else {
            throw DDPMError(.shapeMismatch, "\(checkpoint): the digits are 1×16×16, the network takes \(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
        f.add("--images \(images) digits, their noisy copies and bound terms", doubles: [images, 1, 16, 16], copies: 6)
        f.add("--images \(images): one bound term per image and timestep", doubles: [images, config.timesteps], copies: 2)
        f.network(c, batch: images, training: false, network: "the network of --checkpoint \(checkpoint)", images: "--images \(images) digits")
        return f
    }

    func work() throws {
        let trainer = try loadCheckpoint(checkpoint)
        if ema { trainer.useAveragedWeights() }
        let d = try trainer.config.makeDiffusion()
        var g = RandomGenerator(seed: try seedValue(seed))
        let x0 = DigitImages.make(count: images, generator: &g).images
        let T = d.timesteps
        let noiseSeeds = (0..<T).map { _ in UInt64(g.nextInt(below: Int(Int32.max))) }
        let progress = Progress("bound", total: T)
        var done = 0
        let net = trainer.network
        let b = try net.withMode(training: false) {
            try d.fullBound(start: x0, clip: false, noise: { t in
                var r = RandomGenerator(seed: noiseSeeds[t])
                return Tensor.randomNormal(x0.shape, generator: &r)
            }, model: { x, t in
                done += 1; progress.update(done)
                return net(x, t)
            })
        }
        let perT = (0..<T).map { t in b.terms.reduce(0) { $0 + $1[t] } / Double(images) }
        let prior = b.prior.reduce(0, +) / Double(images), total = b.total.reduce(0, +) / Double(images)
        let dc = trainer.config.diffusion
        let chart = LogChart(title: "L_t in bits/dim (\(dc.meanType.rawValue), \(dc.varianceType.rawValue), \(dc.lossType.rawValue); \(images) held-out digits)",
                             xLabel: "t", series: [("L_t (t = 0: decoder −log p(x_0|x_1))", "#1f77b4", perT)])
        try writeText(chart.svg(), to: out)
        announce("wrote \(out): \(checkpoint)\(ema ? " (EMA weights)" : ""), \(images) digits, seed \(seed), T = \(T)")
        print(String(format: "total bound %.4f bits/dim = Σ_t L_t %.4f + L_T (prior) %.3g", total, perT.reduce(0, +), prior))
        let top = perT.indices.sorted { perT[$0] > perT[$1] }.prefix(3)
        print("largest terms: " + top.map { String(format: "L_%d = %.4f", $0, perT[$0]) }.joined(separator: ", "))
        let marks = [0, 1, 2, 5, 10, 25, 50, 100, 150, 200, T - 1].filter { $0 < T }
        print("t: " + marks.map { String(format: "%d: %.4g", $0, perT[$0]) }.joined(separator: ", "))
        let share = (perT[0] + perT[1..<min(T, 10)].reduce(0, +)) / perT.reduce(0, +)
        print(String(format: "share of Σ_t L_t in t < 10: %.1f%%", 100 * share))
    }
}
