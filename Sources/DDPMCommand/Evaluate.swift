import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm evaluate`: the variational bound of a checkpoint on a data set, in bits per dimension.
struct Evaluate: FileCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute a checkpoint's variational bound in bits/dim on a data set (Ho et al. eq. 5, every t), with its standard error.",
        discussion: """
        For each image x_0: L_0 (the discretised decoder −log p(x_0 | x_1)), every KL L_1 … L_{T−1} with one draw of \
        x_t ~ q(x_t | x_0) each, and the prior L_T = KL(q(x_T | x_0) ‖ 𝒩(0, I)), summed and divided by D ln 2 \
        (D = C·H·W): improved-diffusion's calc_bpd_loop. The noise of image n comes from its own generator seeded \
        --seed + n, so an image's figure does not depend on --batch-size or --images. The cost is T network \
        evaluations per image (printed before the work starts). Prints the mean over images with its standard \
        error (s/√n), the same bound for a model whose output is all zeros (ε̂ = 0 for ε-prediction; no network), \
        and the terms; --out writes them as a Markdown report, --figure the mean L_t per t as an SVG (log scale). \
        The x̂_0 clipping is the checkpoint's (as its sampler uses it). A 'labels' dataset in --data is checked and not used.

        Then --samples N images are drawn from the checkpoint (the sampler options as `ddpm sample` takes them; \
        noise from --seed, so they are the images `ddpm sample --count N --seed S` draws) and compared with the \
        evaluated images by the statistics `ddpm demo` reports: mean pixel, ink fraction (pixels above the middle \
        of the data range), the total-variation distance of the 10-bin pixel histograms and the RMS distance of the \
        mean images; beside each distance, the same for the first N evaluated images (what N samples of a perfect \
        model score, a little lower as they are part of the data). The cost (N × the sampler's steps) is printed \
        first; --samples 0 skips them.
        """)

    @Option(help: "Checkpoint written by `ddpm train` or `ddpm demo`.") var checkpoint: String
    @Option(help: "HDF5 data file (N×C×H×W in the data range, e.g. from `ddpm data digits --split test`).") var data: String
    @Option(help: "Dataset in the file (default: 'images', or the only root dataset).") var dataset: String?
    @Flag(help: "Use the exponential moving average of the weights.") var ema = false
    @Option(name: .customLong("images"), parsing: .unconditional, help: "Number of images: evaluate only the first N of --data (default: all).") var count: Int?
    @Option(parsing: .unconditional, help: "Images per network evaluation.") var batchSize: Int = 32
    @Option(parsing: .unconditional, help: "Seed of the Monte-Carlo noise (image n uses seed + n).") var seed: Int = 0
    @Option(help: "Markdown report to write.") var out: String?
    @Option(help: "SVG of the mean term L_t per t to write.") var figure: String?
    @Flag(help: "Replace --out and --figure if they exist.") var force = false
    @Option(parsing: .unconditional, help: "Samples drawn for the sample statistics against --data (0: none).") var samples: Int = 16
    @OptionGroup(title: "Sampler (of --samples)") var sampling: SamplerOptions

    func checkOptions() throws {
        if let count { try requireRange("--images", count, 1...Int.max) }
        try requireRange("--batch-size", batchSize, 1...Int.max)
        try requireRange("--samples", samples, 0...Int.max, "0 or a positive number")
        _ = try seedValue(seed)
        _ = try sampling.choice()
        // The σ-view solvers' own options need a solver --sampler (`choice()` refuses them otherwise).
        let given = [("--sampler", sampling.sampler != "ancestral"), ("--sample-steps", sampling.steps != nil), ("--spacing", sampling.spacing != nil),
                     ("--eta", sampling.eta != nil), ("--threshold", sampling.threshold != nil), ("--epsilon", sampling.epsilon != nil),
                     ("--set-alpha-to-one/--no-set-alpha-to-one", sampling.setAlphaToOne != nil)].filter(\.1).map(\.0)
        try refuseIfGiven(samples == 0 && !given.isEmpty, given.joined(separator: ", "),
                          (given.count == 1 ? "applies" : "apply") + " to the samples, and --samples 0 draws none")
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--checkpoint", checkpoint)
        plan.input("--data", data)
        plan.output("--out", out, mayReplace: force)
        plan.output("--figure", figure, mayReplace: force)
        return plan
    }

    /// The images to evaluate, from the file's metadata: N (after --images) and the image shape.
    func dataShape() throws -> [Int] {
        try namingFile(data) {
            let file = try HDF5File(path: data)
            let name = dataset ?? (file.exists("/images") ? "/images" : nil)
            guard let name, file.exists(name) else { return [] }   // ImageData.load names what is missing
            return try file.shape(of: name)
        }
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        let config = try checkpointConfiguration(checkpoint, option: "--checkpoint", into: &f), c = config.network
        let shape = try dataShape()
        if let count, let n = shape.first, count > n { throw DDPMError(.invalidValue, "--images \(count): expected at most the \(n) images of \(data)") }
        let n = shape.first.map { min($0, count ?? $0) } ?? 1
        f.add("--data \(data): the images", doubles: [shape.first ?? 1, c.channels, c.imageSize, c.imageSize], copies: 2)
        f.add("--images \(n): one bound term per image and timestep", doubles: [n, config.timesteps], copies: 2)
        f.network(c, batch: min(batchSize, n), training: false, network: "the network of --checkpoint \(checkpoint)", images: "--batch-size \(min(batchSize, n))")
        if samples > 0 {
            if let steps = sampling.steps, steps > config.timesteps {
                throw DDPMError(.invalidValue, "--sample-steps: expected between 1 and \(config.timesteps) (the checkpoint's T), got \(steps)")
            }
            f.add("--samples \(samples) samples of \(c.channels)×\(c.imageSize)×\(c.imageSize)", doubles: [samples, c.channels, c.imageSize, c.imageSize], copies: 2)
            f.network(c, batch: min(samples, Sample.chunk), training: false, network: "the network of --checkpoint \(checkpoint) (samples)", images: "a batch of \(min(samples, Sample.chunk)) samples")
        }
        return f
    }

    func work() throws {
        let trainer = try loadCheckpoint(checkpoint)
        if ema { trainer.useAveragedWeights() }
        let c = trainer.config.network
        var images = try ImageData.load(path: data, dataset: dataset, channels: c.channels, imageSize: c.imageSize, range: trainer.config.diffusion.dataRange)
        if let count { images = images.slice(axis: 0, start: 0, length: count) }
        let seed = try seedValue(self.seed)
        let result = try Self.evaluate(trainer, images: images, seed: seed, batchSize: batchSize, label: "evaluate")
        let zero = try BoundEvaluator.evaluateZeroOutput(trainer.config, images: images, seed: seed, batchSize: batchSize)
        let weights = ema ? "EMA weights" : "trained weights"
        let lines = Self.summary(result, zero: zero, timesteps: trainer.config.timesteps)
        for line in lines { print(line) }
        var sampleLines: [String] = []
        if samples > 0 {
            let choice = try sampling.choice()
            let steps = try choice.makeSampler(for: trainer.config.makeDiffusion()).stepCount
            let batches = (samples + Sample.chunk - 1) / Sample.chunk
            note("evaluate: \(samples) samples × \(steps) sampler steps (\(choice)) = \(samples * steps) image-steps of at least one network evaluation each, as \(batches * steps) passes of batches of at most \(min(samples, Sample.chunk))")
            let drawn = try Sample.sample(trainer, count: samples, seed: seed, choice: choice)
            if let bad = drawn.data.first(where: { !$0.isFinite }) {
                throw DDPMError(.invalidData, "\(checkpoint): sampling produced a non-finite value (\(bad)); the checkpoint's weights are unusable")
            }
            sampleLines = ["samples: \(samples) from seed \(seed), \(weights), \(choice); against the \(images.shape[0]) evaluated images"]
                + Self.sampleSummary(drawn, data: images, range: trainer.config.diffusion.dataRange)
            for line in sampleLines { print(line) }
        }
        if let figure { try writeText(Self.figure(result, title: "L_t in bits/dim: \(images.shape[0]) images of \(URL(fileURLWithPath: data).lastPathComponent), \(weights)"), to: figure) }
        if let out {
            let d = trainer.config.diffusion
            let report = """
            # ddpm evaluate

            | | |
            |---|---|
            | checkpoint | \(checkpoint) (step \(trainer.step), \(weights)) |
            | data | \(data): the first \(images.shape[0]) images, \(c.channels)×\(c.imageSize)×\(c.imageSize) |
            | diffusion | T = \(d.timesteps), \(d.schedule.name) schedule, mean type \(d.meanType.rawValue), variance \(d.varianceType.rawValue), x̂_0 clipping \(d.clipDenoised ? "on" : "off") |
            | noise | image n from seed \(seed) + n, one draw per t |

            \((lines + sampleLines).map { "- " + $0 }.joined(separator: "\n"))

            """
            try writeText(report, to: out)
        }
        let written = [out, figure].compactMap { $0 }
        if !written.isEmpty { announce("wrote " + written.joined(separator: " and ") + ": \(images.shape[0]) images, \(weights)") }
    }

    /// The bound with its cost printed first and progress while it runs (shared with `ddpm demo`).
    static func evaluate(_ trainer: Trainer, images: Tensor, seed: UInt64, batchSize: Int, label: String) throws -> BoundEvaluation {
        let n = images.shape[0], T = trainer.config.timesteps
        let batches = (n + batchSize - 1) / batchSize
        note("\(label): \(n) images × T = \(T) steps = \(BoundEvaluator.networkEvaluations(images: n, timesteps: T)) network evaluations, as \(batches * T) passes of batches of at most \(min(batchSize, n))")
        let progress = Progress("\(label): bound, pass", total: batches * T)
        var done = 0
        return try BoundEvaluator.evaluate(trainer, images: images, seed: seed, batchSize: batchSize) { done += 1; progress.update(done) }
    }

    static func summary(_ r: BoundEvaluation, zero: BoundEvaluation, timesteps T: Int) -> [String] {
        let kl = r.perStep.dropFirst().reduce(0, +)
        return [
            String(format: "bound: %.4f ± %.4f bits/dim (mean ± standard error over %d images)", r.mean, r.standardError, r.perImage.count),
            String(format: "terms (means): L_0 decoder %.4f, L_1 … L_%d (KL) %.4f, prior L_T %.3e", r.perStep[0], T - 1, kl, r.prior),
            String(format: "a model whose output is all zeros (ε̂ = 0 for ε-prediction): %.4f ± %.4f bits/dim", zero.mean, zero.standardError),
        ]
    }

    /// The demo's sample statistics (``PixelStatistics``) of `samples` against `data`, one line each, with the
    /// distances of the first N data images (N = the number of samples) beside them when the data has more.
    static func sampleSummary(_ samples: Tensor, data: Tensor, range: ClosedRange<Double>) -> [String] {
        let n = samples.shape[0]
        let d = PixelStatistics(data, range: range), s = PixelStatistics(samples, range: range)
        let real = n < data.shape[0] ? PixelStatistics(data.slice(axis: 0, start: 0, length: n), range: range) : nil
        let f4 = { (v: Double) in String(format: "%.4f", v) }
        let reference = { (v: Double) in real == nil ? "" : "; the first \(n) evaluated images: \(f4(v))" }
        return [
            "mean pixel: data \(f4(d.mean)), samples \(f4(s.mean))",
            "ink fraction (pixels above the middle of the range): data \(f4(d.inkFraction)), samples \(f4(s.inkFraction))",
            "histogram distance to the data (total variation, 10 bins; 0 identical, 1 disjoint): samples \(f4(d.histogramDistance(to: s)))" + reference(real.map(d.histogramDistance) ?? 0),
            "mean-image distance to the data (RMS): samples \(f4(d.meanImageDistance(to: s)))" + reference(real.map(d.meanImageDistance) ?? 0),
        ]
    }

    static func figure(_ r: BoundEvaluation, title: String) -> String {
        LogChart(title: title, xLabel: "t", series: [("L_t (t = 0: decoder −log p(x_0|x_1)); prior " + String(format: "%.2e", r.prior), "#1f77b4", r.perStep)]).svg()
    }
}
