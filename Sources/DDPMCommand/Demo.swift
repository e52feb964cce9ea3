import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// `ddpm demo`: draw a digits data set, train a small DDPM on it, sample, and write pictures and a report.
struct Demo: ParsableCommand {
    /// The files the demo writes into --out; nothing else there is touched.
    static let files = ["data.png", "samples.png", "samples-ddim.png", "chain.png", "checkpoint.h5", "report.md"]

    static let configuration = CommandConfiguration(
        abstract: "Train a small DDPM on procedurally drawn 16×16 digits and sample from it (the default command).",
        discussion: """
        Writes into the folder --out: data.png (training images), samples.png (samples of the averaged weights, full \
        reverse chain), samples-ddim.png (the same starts through DDIM, η = 0, 50 steps), chain.png (one sample's \
        reverse chain x_T … x_0), checkpoint.h5, and report.md. The files are made in a temporary folder and moved \
        into place only when everything succeeded. --out may be a new folder or an existing one: other files in it \
        are never touched, and any of the six that exists already is replaced only with --force. An existing file \
        (not a folder) at --out is refused.

        \(outputRules)
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
    @Flag(help: "Replace demo files (data.png, samples.png, chain.png, checkpoint.h5, report.md) already in --out.") var force = false
    @OptionGroup var objective: ObjectiveOptions

    func run() throws {
        for (name, v) in [("--steps", steps), ("--batch-size", batchSize), ("--timesteps", timesteps), ("--images", images), ("--count", count)] where v <= 0 {
            throw DDPMError(.invalidValue, "\(name): expected a positive number, got \(v)")
        }
        guard count <= images else { throw DDPMError(.invalidValue, "--count \(count): expected at most --images (\(images)), the pictures show training images too") }
        var options = TrainingOptions()
        options.batchSize = batchSize; options.learningRate = lr; options.emaDecay = emaDecay
        try naming(Train.flagNames) { try options.validate() }
        let seed = try seedValue(self.seed)
        try MemoryBudget.check(bytes: MemoryBudget.bytes(ofDoubles: [images + 256, 1, 16, 16], copies: 2), for: "--images \(images)")
        try MemoryBudget.check(bytes: MemoryBudget.bytes(ofDoubles: [count, 1, 16, 16], copies: 3), for: "--count \(count)")
        let started = Date()
        let fm = FileManager.default
        // Checks before work: a new folder in an existing, writable one, or an existing folder whose demo files may be replaced.
        guard !out.isEmpty else { throw DDPMError(.outputRefused, "--out: the output path is empty") }
        var isFolder: ObjCBool = false
        let exists = fm.fileExists(atPath: out, isDirectory: &isFolder)
        if exists && !isFolder.boolValue {
            throw DDPMError(.outputRefused, "--out \(out): is a file; the demo writes a folder (give a new or existing folder)")
        }
        if exists {
            for name in Self.files { try checkOutput("--out", out + "/" + name, force: force) }
        } else {
            try checkOutput("--out", out, force: false)
        }
        let work = OutputFile.temporaryPath(for: exists ? out + "/demo" : OutputFile.resolve(out))
        try fm.createDirectory(atPath: work, withIntermediateDirectories: false)
        do {
            try produce(in: work, options: options, seed: seed, started: started)
            if exists {
                for name in Self.files { try OutputFile.commit(work + "/" + name, to: out + "/" + name) }
                try fm.removeItem(atPath: work)
            } else {
                try OutputFile.commit(work, to: out)
            }
        } catch {
            try? fm.removeItem(atPath: work)
            throw error
        }
        print("wrote \(out)/: \(Self.files.joined(separator: ", ")) (\(String(format: "%.0f", Date().timeIntervalSince(started))) s)")
    }

    func produce(in dir: String, options: TrainingOptions, seed: UInt64, started: Date) throws {
        var g = RandomGenerator(seed: seed)
        let train = DigitImages.make(count: images, generator: &g).images
        let heldOut = DigitImages.make(count: 256, generator: &g).images
        // A second real set as large as the samples: its statistics against the held-out set are what a
        // perfect model's samples would score, sampling noise included (drawn after the training and held-out sets, which it leaves unchanged).
        let reference = DigitImages.make(count: count, generator: &g).images
        let scale = 1000 / Double(timesteps)
        let (betaStart, betaEnd) = (1e-4 * scale, min(0.02 * scale, 0.999))
        var diffusion = DiffusionConfiguration(schedule: .linear(start: betaStart, end: betaEnd), timesteps: timesteps)
        try objective.apply(to: &diffusion)
        let config = ModelConfiguration(network: try Presets.network("small"), diffusion: diffusion)
        let trainer = try Trainer(config: config, options: options, seed: seed)
        note("demo: \(train.shape[0]) digit images 16×16, network \(trainer.network.parameterCount) parameters, T = \(timesteps), \(steps) steps of \(batchSize)")
        try PNGWriter.writeGrid(train.slice(axis: 0, start: 0, length: count), range: 0...1,
                                caption: "training images: \(count) of \(train.shape[0])", path: dir + "/data.png")
        let lossBefore = try trainer.heldOutLoss(heldOut, seed: seed &+ 7)
        let trainStart = Date()
        try Train.loop(trainer, images: train, until: steps, checkpointEvery: 0, out: nil, label: "demo train")
        try trainer.save(to: dir + "/checkpoint.h5")
        let trainSeconds = Date().timeIntervalSince(trainStart)
        let lossAfter = try trainer.heldOutLoss(heldOut, seed: seed &+ 7)
        trainer.useAveragedWeights()
        let lossEMA = try trainer.heldOutLoss(heldOut, seed: seed &+ 7)
        // One sample's reverse chain: 11 snapshots from x_T to x_0.
        var chain: [Tensor] = [], chainLabels: [String] = []
        let snapshots = Set((0...10).map { timesteps - 1 - $0 * (timesteps - 1) / 10 } + [-1])
        let sampleStart = Date()
        let samples = try Sample.sample(trainer, count: count, seed: seed &+ 11) { step in
            if snapshots.contains(step.t) && step.t != 0 { chain.append(step.noisy.slice(axis: 0, start: 0, length: 1)); chainLabels.append("t=\(step.t)") }
            if step.t == 0 { chain.append(step.next.slice(axis: 0, start: 0, length: 1)); chainLabels.append("x0") }
        }
        let sampleSeconds = Date().timeIntervalSince(sampleStart)
        // The same seed through DDIM (η = 0) in 50 steps (improved-diffusion's "ddim50"; evenly spaced sections when no stride fits).
        let ddimSteps = min(50, timesteps)
        let ddimRule = (try? Respacing.improvedDiffusionTimesteps(timesteps: timesteps, sectionCounts: "ddim\(ddimSteps)")) != nil ? "ddim\(ddimSteps)" : "\(ddimSteps)"
        let ddimChoice = SamplerChoice(kind: .ddim, steps: ddimSteps, spacing: .improvedDiffusion(ddimRule), eta: 0)
        let ddimStart = Date()
        let ddimSamples = try Sample.sample(trainer, count: count, seed: seed &+ 11, choice: ddimChoice)
        let ddimSeconds = Date().timeIntervalSince(ddimStart)
        try PNGWriter.writeGrid(ddimSamples, range: 0...1, caption: "DDIM, eta 0, \(ddimSteps) steps: the same x_T as samples.png", path: dir + "/samples-ddim.png")
        try PNGWriter.writeGrid(samples, range: 0...1, caption: "samples: EMA weights, full \(timesteps)-step chain", path: dir + "/samples.png")
        // The chain on the data range [0, 1]: x_T ~ N(0, I) and the early states leave it, and those pixels are marked.
        try PNGWriter.writeStrip(Tensor.concatenate(chain, axis: 0), range: 0...1, labels: chainLabels,
                                 caption: "one sample's reverse chain on [0, 1]: red above 1, blue below 0", path: dir + "/chain.png")
        let data = PixelStatistics(heldOut, range: 0...1), generated = PixelStatistics(samples, range: 0...1)
        let ddimStats = PixelStatistics(ddimSamples, range: 0...1), real = PixelStatistics(reference, range: 0...1)
        let f4 = { (v: Double) in String(format: "%.4f", v) }
        let ceiling = "\(count) fresh real images score \(f4(data.histogramDistance(to: real))) (real data against real data at this count: a perfect model scores about this); 0 is identical, 1 disjoint"
        let rmsCeiling = "\(count) fresh real images score \(f4(data.meanImageDistance(to: real))) (sampling noise alone at this count: a perfect model scores about this)"
        let report = """
        # ddpm demo report

        | figure | value | guide |
        |---|---|---|
        | seed | \(seed) | |
        | training images | \(train.shape[0]) procedurally drawn digits, 1×16×16, values 0 and 1 | |
        | network | preset `small`, \(trainer.network.parameterCount) parameters | |
        | diffusion | T = \(timesteps), linear β from \(betaStart) to \(betaEnd), mean type \(diffusion.meanType.rawValue), variance \(diffusion.varianceType.rawValue), loss \(diffusion.lossType.rawValue), weighting \(diffusion.weighting.name), clipping to [0, 1] | |
        | optimisation | \(steps) Adam steps of \(batchSize) images, lr \(lr), gradient norm clipped at 1, EMA decay \(emaDecay) (warm-up \(options.emaWarmup.rawValue): min(d, (1 + n)/(10 + n)) at update n; last decay \(f4(options.emaWarmup.decay(emaDecay, afterUpdates: trainer.emaUpdates - 1)))) | |
        | training time | \(String(format: "%.1f", trainSeconds)) s | |
        | held-out loss (256 images, fixed t and ε), before training | \(f4(lossBefore)) | the objective on real images the model never saw; its scale depends on the objective |
        | held-out loss after training (trained weights) | \(f4(lossAfter)) | lower than before training means the model learnt |
        | held-out loss after training (EMA weights) | \(f4(lossEMA)) | the averaged weights that sampled the pictures |
        | sampling | \(count) samples with the EMA weights, full \(timesteps)-step reverse chain, \(String(format: "%.1f", sampleSeconds)) s | |
        | mean pixel: data / samples | \(f4(data.mean)) / \(f4(generated.mean)) | \(count) fresh real images: \(f4(real.mean)); samples should be as close to the data |
        | ink fraction (> 0.5): data / samples | \(f4(data.inkFraction)) / \(f4(generated.inkFraction)) | \(count) fresh real images: \(f4(real.inkFraction)) |
        | histogram distance (total variation, 10 bins) | \(f4(data.histogramDistance(to: generated))) | \(ceiling) |
        | mean-image distance (RMS) | \(f4(data.meanImageDistance(to: generated))) | \(rmsCeiling) |
        | DDIM sampling | same \(count) starts x_T, DDIM η = 0 on the '\(ddimRule)' chain (\(ddimSteps) steps), \(String(format: "%.1f", ddimSeconds)) s (ancestral: \(String(format: "%.1f", sampleSeconds)) s) | |
        | DDIM: mean pixel / ink fraction | \(f4(ddimStats.mean)) / \(f4(ddimStats.inkFraction)) | real: \(f4(real.mean)) / \(f4(real.inkFraction)) |
        | DDIM: histogram distance / mean-image distance to the data | \(f4(data.histogramDistance(to: ddimStats))) / \(f4(data.meanImageDistance(to: ddimStats))) | real: \(f4(data.histogramDistance(to: real))) / \(f4(data.meanImageDistance(to: real))) |
        | total time | \(String(format: "%.1f", Date().timeIntervalSince(started))) s | |

        Figures (each PNG carries its caption in a white strip on top; tiles are the 16×16 images upscaled
        \(PNGWriter.defaultScale(side: 16))× by nearest neighbour):

        - `data.png`: the first \(count) training images, for comparison with the samples.
        - `samples.png`: \(count) samples of the EMA weights through the full \(timesteps)-step ancestral chain
          (Ho et al.'s Algorithm 2), from starts x_T drawn with seed \(seed &+ 11).
        - `samples-ddim.png`: the same starts x_T through DDIM (η = 0, \(ddimSteps) steps). Only the start is
          shared: the ancestral chain adds fresh noise z at each of its \(timesteps) steps, while DDIM with η = 0 is a
          deterministic map from x_T, so the same tile usually shows a different digit in the two pictures.
        - `chain.png`: the first sample's reverse chain, x_T on the left to x_0 on the right, each frame labelled
          with the timestep t whose input it is (x0: the output of the last step). Shown on the data range
          [0, 1]: pixels above 1 are red and below 0 blue, so x_T (standard normal noise) is mostly coloured and
          the colour fades as the chain moves into the data range.
        - `checkpoint.h5`: the trained model, for `ddpm sample` (add `--ema` for the averaged weights).

        """
        try OutputFile.write(to: dir + "/report.md") { try report.write(toFile: $0, atomically: false, encoding: .utf8) }
        print(report)
    }
}
