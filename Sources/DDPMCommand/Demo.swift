import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm demo`: draw a digits data set, train a small DDPM on it, sample, and write pictures and a report.
struct Demo: FileCommand {
    /// The files the demo writes into --out; nothing else there is touched.
    static let files = ["data.png", "samples.png", "samples-ddim.png", "chain.png", "checkpoint.h5", "report.md"]

    static let configuration = CommandConfiguration(
        abstract: "Train a small DDPM on procedurally drawn 16×16 digits and sample from it (the default command).",
        discussion: """
        Writes into the folder --out: data.png (training images), samples.png (samples of the averaged weights, full \
        reverse chain), samples-ddim.png (the same starts through DDIM, η = 0, 50 steps), chain.png (one sample's \
        reverse chain x_T … x_0), checkpoint.h5, and report.md. The files are made in a temporary folder and moved \
        into place together only when everything succeeded. --out may be a new folder or an existing one: other files \
        in it are never touched, and any of the six that exists already is replaced only with --force. An existing \
        file (not a folder) at --out is refused.
        """)

    @Option(help: "Folder to write the results into (created if missing).") var out: String = "demo-out"
    @Option(parsing: .unconditional, help: "Optimisation steps.") var steps: Int = 900
    @Option(parsing: .unconditional, help: "Images per step.") var batchSize: Int = 32
    @Option(parsing: .unconditional, help: "Adam learning rate, in (0, 1].") var lr: Double = 1e-3
    @Option(parsing: .unconditional, help: "Decay of the exponential moving average of the weights.") var emaDecay: Double = 0.995
    @Option(parsing: .unconditional, help: "Diffusion steps T (β from 1e-4·1000/T to 0.02·1000/T, linear).") var timesteps: Int = 250
    @Option(parsing: .unconditional, help: "Number of training images to draw.") var images: Int = 4096
    @Option(parsing: .unconditional, help: "Number of samples in samples.png.") var count: Int = 36
    @Option(parsing: .unconditional, help: "Seed of everything.") var seed: Int = 0
    @Flag(help: "Replace demo files (data.png, samples.png, samples-ddim.png, chain.png, checkpoint.h5, report.md) already in --out.") var force = false
    @OptionGroup var objective: ObjectiveOptions

    func checkOptions() throws {
        for (name, v) in [("--steps", steps), ("--batch-size", batchSize), ("--timesteps", timesteps), ("--images", images), ("--count", count)] {
            try requireRange(name, v, 1...Int.max)
        }
        guard count <= images else { throw DDPMError(.invalidValue, "--count \(count): expected at most --images (\(images)), the pictures show training images too") }
        try naming(Train.flagNames) { try trainingOptions.validate() }
        _ = try seedValue(self.seed)
    }

    var trainingOptions: TrainingOptions {
        var options = TrainingOptions()
        options.batchSize = batchSize; options.learningRate = lr; options.emaDecay = emaDecay
        return options
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.output("--out", out, kind: .folder(files: Self.files), mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        f.add("--images \(images) training images", doubles: [images + 256, 1, 16, 16], copies: 2)
        f.add("--count \(count) samples", doubles: [count, 1, 16, 16], copies: 3)
        f.diffusion(timesteps: timesteps, "--timesteps \(timesteps) diffusion tables")
        f.network(try Presets.network("small"), batch: batchSize, training: true, network: "the small network", images: "--batch-size \(batchSize)")
        return f
    }

    func work() throws {
        let started = Date()
        try produce(in: out, options: trainingOptions, seed: try seedValue(self.seed), started: started)
        announce("wrote \(out)/: \(Self.files.joined(separator: ", ")) (\(String(format: "%.0f", Date().timeIntervalSince(started))) s)")
    }

    func produce(in dir: String, options: TrainingOptions, seed: UInt64, started: Date) throws {
        var g = RandomGenerator(seed: seed)
        let train = DigitImages.make(count: images, generator: &g).images
        let heldOut = DigitImages.make(count: 256, generator: &g).images
        let scale = 1000 / Double(timesteps)
        let (betaStart, betaEnd) = (1e-4 * scale, min(0.02 * scale, 0.999))
        var diffusion = DiffusionConfiguration(schedule: .linear(start: betaStart, end: betaEnd), timesteps: timesteps)
        try objective.apply(to: &diffusion)
        let config = ModelConfiguration(network: try Presets.network("small"), diffusion: diffusion)
        let trainer = try Trainer(config: config, options: options, seed: seed)
        note("demo: \(train.shape[0]) digit images 16×16, network \(trainer.network.parameterCount) parameters, T = \(timesteps), \(steps) steps of \(batchSize)")
        try PNGWriter.writeGrid(train.slice(axis: 0, start: 0, length: count), range: 0...1, path: dir + "/data.png")
        let lossBefore = try trainer.heldOutLoss(heldOut, seed: seed &+ 7)
        let trainStart = Date()
        try Train.loop(trainer, images: train, until: steps, checkpointEvery: 0, out: nil, label: "demo train")
        try trainer.save(to: dir + "/checkpoint.h5")
        let trainSeconds = Date().timeIntervalSince(trainStart)
        let lossAfter = try trainer.heldOutLoss(heldOut, seed: seed &+ 7)
        trainer.useAveragedWeights()
        let lossEMA = try trainer.heldOutLoss(heldOut, seed: seed &+ 7)
        // One sample's reverse chain: 11 snapshots from x_T to x_0.
        var chain: [Tensor] = []
        let snapshots = Set((0...10).map { timesteps - 1 - $0 * (timesteps - 1) / 10 } + [-1])
        let sampleStart = Date()
        let samples = try Sample.sample(trainer, count: count, seed: seed &+ 11) { step in
            if snapshots.contains(step.t) && step.t != 0 { chain.append(step.noisy.slice(axis: 0, start: 0, length: 1)) }
            if step.t == 0 { chain.append(step.next.slice(axis: 0, start: 0, length: 1)) }
        }
        let sampleSeconds = Date().timeIntervalSince(sampleStart)
        // The same seed through DDIM (η = 0) in 50 steps (improved-diffusion's "ddim50"; evenly spaced sections when no stride fits).
        let ddimSteps = min(50, timesteps)
        let ddimRule = (try? Respacing.improvedDiffusionTimesteps(timesteps: timesteps, sectionCounts: "ddim\(ddimSteps)")) != nil ? "ddim\(ddimSteps)" : "\(ddimSteps)"
        let ddimChoice = SamplerChoice(kind: .ddim, steps: ddimSteps, spacing: .improvedDiffusion(ddimRule), eta: 0)
        let ddimStart = Date()
        let ddimSamples = try Sample.sample(trainer, count: count, seed: seed &+ 11, choice: ddimChoice)
        let ddimSeconds = Date().timeIntervalSince(ddimStart)
        try PNGWriter.writeGrid(ddimSamples, range: 0...1, path: dir + "/samples-ddim.png")
        try PNGWriter.writeGrid(samples, range: 0...1, path: dir + "/samples.png")
        // x_T is N(0, I): show the chain on [−1, 2] so that noise and the [0, 1] image are both visible.
        try PNGWriter.writeGrid(Tensor.concatenate(chain, axis: 0), range: -1...2, columns: chain.count, scale: 3, path: dir + "/chain.png")
        let data = PixelStatistics(heldOut, range: 0...1), generated = PixelStatistics(samples, range: 0...1)
        let ddimStats = PixelStatistics(ddimSamples, range: 0...1)
        let report = """
        # ddpm demo report

        | figure | value |
        |---|---|
        | seed | \(seed) |
        | training images | \(train.shape[0]) procedurally drawn digits, 1×16×16, values 0 and 1 |
        | network | preset `small`, \(trainer.network.parameterCount) parameters |
        | diffusion | T = \(timesteps), linear β from \(betaStart) to \(betaEnd), mean type \(diffusion.meanType.rawValue), variance \(diffusion.varianceType.rawValue), loss \(diffusion.lossType.rawValue), weighting \(diffusion.weighting.name), clipping to [0, 1] |
        | optimisation | \(steps) Adam steps of \(batchSize) images, lr \(lr), gradient norm clipped at 1, EMA decay \(emaDecay) |
        | training time | \(String(format: "%.1f", trainSeconds)) s |
        | held-out loss (256 images, fixed t and ε), before training | \(String(format: "%.4f", lossBefore)) |
        | held-out loss after training (trained weights) | \(String(format: "%.4f", lossAfter)) |
        | held-out loss after training (EMA weights) | \(String(format: "%.4f", lossEMA)) |
        | sampling | \(count) samples with the EMA weights, full \(timesteps)-step reverse chain, \(String(format: "%.1f", sampleSeconds)) s |
        | mean pixel: data / samples | \(String(format: "%.4f", data.mean)) / \(String(format: "%.4f", generated.mean)) |
        | ink fraction (> 0.5): data / samples | \(String(format: "%.4f", data.inkFraction)) / \(String(format: "%.4f", generated.inkFraction)) |
        | histogram distance (total variation, 10 bins) | \(String(format: "%.4f", data.histogramDistance(to: generated))) |
        | mean-image distance (RMS) | \(String(format: "%.4f", data.meanImageDistance(to: generated))) |
        | DDIM sampling | same \(count) starts x_T, DDIM η = 0 on the '\(ddimRule)' chain (\(ddimSteps) steps), \(String(format: "%.1f", ddimSeconds)) s (ancestral: \(String(format: "%.1f", sampleSeconds)) s) |
        | DDIM: mean pixel / ink fraction | \(String(format: "%.4f", ddimStats.mean)) / \(String(format: "%.4f", ddimStats.inkFraction)) |
        | DDIM: histogram distance / mean-image distance to the data | \(String(format: "%.4f", data.histogramDistance(to: ddimStats))) / \(String(format: "%.4f", data.meanImageDistance(to: ddimStats))) |
        | total time | \(String(format: "%.1f", Date().timeIntervalSince(started))) s |

        Files: `data.png` (training images), `samples.png` (samples), `samples-ddim.png` (DDIM samples), `chain.png` (one sample's chain,
        x_T on the left to x_0 on the right, shown on the range [−1, 2]), `checkpoint.h5` (for `ddpm sample`).
        """
        try OutputFile.write(to: dir + "/report.md") { try report.write(toFile: $0, atomically: false, encoding: .utf8) }
        print(report)
    }
}
