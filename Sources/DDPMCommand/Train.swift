import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// The rules every command follows for the files it writes, as `--help` states them.
let outputRules = """
Outputs are written atomically (a temporary file `.NAME.ddpm-tmp-PID-RANDOM` beside the output, renamed into \
place when complete; temporary files of dead processes are removed by the next run that writes there). An \
existing file is replaced only with --force; an output is never one of the command's inputs; a symbolic link \
is written through to its target and a replaced file keeps its mode. Output folders are checked before any work.
"""

/// Checks an output before any work, adding the option's name to the library's message.
func checkOutput(_ option: String, _ path: String, force: Bool, inputs: [String] = []) throws {
    do { try OutputFile.check(path, mayReplace: force, inputs: inputs) } catch let e as DDPMError {
        let hint = e.message.contains("was not written by this run") ? "; pass --force to replace it" : ""
        throw DDPMError(e.kind, (e.message.hasPrefix(path + ":") ? "\(option) " : "\(option): ") + e.message + hint)
    }
}

/// Runs a library check and names the option behind each quantity in its message ("learning rate: …" → "--lr: …").
func naming(_ options: [String: String], _ body: () throws -> Void) throws {
    do { try body() } catch let e as DDPMError {
        for (quantity, flag) in options where e.message.hasPrefix(quantity + ":") {
            throw DDPMError(e.kind, flag + e.message.dropFirst(quantity.count))
        }
        throw e
    }
}

/// A rough upper estimate of one training step's memory: the weights with their gradient, Adam moments
/// and average (5 copies), plus the activations kept for the backward pass, counted as `activationFactor`
/// arrays of every level's size (blocks·width·side²) per image.
func trainingStepBytes(_ c: UNetConfiguration, parameters: Int, batch: Int) -> Double {
    var perImage = 0.0
    for (l, m) in c.channelMultipliers.enumerated() {
        let side = Double(c.imageSize >> l)
        perImage += Double(2 * c.residualBlocksPerLevel + 1) * Double(c.baseChannels * m) * side * side
    }
    return 8 * (5 * Double(parameters) + activationFactor * perImage * Double(batch))
}

/// Arrays kept per level element in a training step (see `trainingStepBytes`). Measured peak resident memory
/// per extra image of one step (`/usr/bin/time -f %M ddpm train --steps 1 --timesteps 10`, debug build, batch
/// sizes 4 and 64 for `--preset tiny`, 1 and 4 for the default preset): tiny 7.9 MiB per image = 27.6 level
/// arrays, default 65 MB per image = 7.6 level arrays. 32 covers both.
let activationFactor = 32.0

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a DDPM on images in an HDF5 file (N×C×H×W; float64, float32 or uint8).",
        discussion: """
        Data must lie in the model's data range [0, 1] (uint8 is scaled by 1/255 first); other data is refused.

        Ctrl-C or SIGTERM saves a checkpoint at the current step and exits with status 130 (143 for SIGTERM); \
        a second Ctrl-C exits at once without saving. A non-finite loss or weight stops training with an error \
        naming the step; the last checkpoint written is kept.

        With --resume, the checkpoint fixes the network, diffusion and training options: giving any of them \
        with a different value is an error (the same value is accepted); --seed is not used. Resuming into \
        the checkpoint itself (--out equal to --resume) is the one case where an input is replaced.

        \(outputRules)
        """)

    @Option(help: "HDF5 file of training images.") var data: String
    @Option(help: "Dataset in the file (default: 'images', or the only root dataset).") var dataset: String?
    @Option(help: "Checkpoint to write (atomically; periodically and at the end).") var out: String
    @Option(parsing: .unconditional, help: "Total optimisation steps to reach (a resumed run continues up to this step).") var steps: Int = 1000
    @Option(parsing: .unconditional, help: "Images per step. (default: 32)") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Adam learning rate, in (0, 1]. (default: 0.0002)") var lr: Double?
    @Option(parsing: .unconditional, help: "Seed of the weights and of all training randomness. (default: 0)") var seed: Int?
    @Option(parsing: .unconditional, help: "Decay of the exponential moving average of the weights. (default: 0.9999)") var emaDecay: Double?
    @Option(parsing: .unconditional, help: "Write the checkpoint every this many steps (0: only at the end).") var checkpointEvery: Int = 500
    @Option(help: "Continue from this checkpoint (its configuration and options are used).") var resume: String?
    @Flag(help: "Replace --out if it exists and is not the checkpoint being resumed.") var force = false
    @OptionGroup var network: NetworkOptions
    @OptionGroup var diffusion: DiffusionOptions

    static let flagNames = ["learning rate": "--lr", "batch size": "--batch-size", "EMA decay": "--ema-decay"]

    func run() throws {
        guard steps > 0 else { throw DDPMError(.invalidValue, "--steps: expected a positive number, got \(steps)") }
        guard checkpointEvery >= 0 else { throw DDPMError(.invalidValue, "--checkpoint-every: expected 0 or a positive number, got \(checkpointEvery)") }
        var options = TrainingOptions()
        if let batchSize { options.batchSize = batchSize }
        if let lr { options.learningRate = lr }
        if let emaDecay { options.emaDecay = emaDecay }
        try naming(Self.flagNames) { try options.validate() }
        let seed = try seedValue(self.seed ?? 0)
        // Outputs before any work: resuming into the checkpoint itself is the one allowed replacement of an input.
        let inPlace = resume.map { OutputFile.sameFile($0, out) } ?? false
        try checkOutput("--out", out, force: force || inPlace, inputs: [data] + (inPlace ? [] : resume.map { [$0] } ?? []))

        let trainer: Trainer
        if let resume {
            trainer = try Trainer.load(from: resume)
            try checkResumeOptions(trainer, path: resume)
        } else {
            options.timestepSampler = try diffusion.sampler()
            try naming(Self.flagNames) { try options.validate() }
            let config = ModelConfiguration(network: try network.configuration(), diffusion: try diffusion.configuration())
            trainer = try Trainer(config: config, options: options, seed: seed)
        }
        let c = trainer.config.network
        let estimate = trainingStepBytes(c, parameters: trainer.network.parameterCount, batch: trainer.options.batchSize)
        try MemoryBudget.check(bytes: estimate, for: "a training step with --batch-size \(trainer.options.batchSize) on this network")
        let images: Tensor
        do {
            images = try ImageData.load(path: data, dataset: dataset, channels: c.channels, imageSize: c.imageSize, range: trainer.config.diffusion.dataRange)
        } catch let e as DDPMError where e.kind == .malformedFile && e.message.hasSuffix("name the dataset to use") {
            throw DDPMError(e.kind, e.message + " with --dataset")
        }
        guard trainer.step < steps else { throw DDPMError(.invalidValue, "--steps \(steps): the checkpoint is already at step \(trainer.step)") }
        note("training \(trainer.network.parameterCount) parameters on \(images.shape[0]) images from step \(trainer.step) to \(steps)")
        try Self.loop(trainer, images: images, until: steps, checkpointEvery: checkpointEvery, out: out)
        print("wrote \(out) at step \(trainer.step)")
    }

    /// Options given together with --resume: a value that differs from the checkpoint's is an error; --seed is announced as unused.
    func checkResumeOptions(_ trainer: Trainer, path: String) throws {
        var conflicts: [String] = []
        let o = trainer.options, k = trainer.config
        if let batchSize, batchSize != o.batchSize { conflicts.append("--batch-size \(batchSize) (checkpoint: \(o.batchSize))") }
        if let lr, lr != o.learningRate { conflicts.append("--lr \(lr) (checkpoint: \(o.learningRate))") }
        if let emaDecay, emaDecay != o.emaDecay { conflicts.append("--ema-decay \(emaDecay) (checkpoint: \(o.emaDecay))") }
        if let t = diffusion.timesteps, t != k.timesteps { conflicts.append("--timesteps \(t) (checkpoint: \(k.timesteps))") }
        if !diffusion.givenSchedule.isEmpty, try diffusion.schedule(startingFrom: k.diffusion.schedule) != k.diffusion.schedule {
            conflicts.append(diffusion.givenSchedule.joined(separator: ", ") + " (checkpoint: \(k.diffusion.schedule.name) schedule, "
                             + k.diffusion.schedule.parameters.map { "\($0.name) \($0.value)" }.joined(separator: ", ") + ")")
        }
        if !network.given.isEmpty, try network.configuration(startingFrom: k.network) != k.network {
            conflicts.append(network.given.joined(separator: ", ") + " (a network other than the checkpoint's)")
        }
        guard conflicts.isEmpty else {
            throw DDPMError(.invalidConfiguration, "--resume \(path): the checkpoint fixes these options, and they differ from it: "
                            + conflicts.joined(separator: "; ") + "; drop them or start a new run")
        }
        if seed != nil { note("note: --seed is not used when resuming; the checkpoint holds the random state") }
    }

    /// The library's training loop with a progress bar; checkpoints at `out` (periodically and at the end).
    static func loop(_ trainer: Trainer, images: Tensor, until: Int, checkpointEvery: Int, out: String?, label: String = "train") throws {
        let progress = Progress(label, total: until)
        try TrainingLoop.run(trainer, images: images, until: until, checkpointEvery: checkpointEvery, checkpoint: out) { p in
            progress.update(p.step, loss: p.smoothedLoss)
        }
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample images from a checkpoint: ancestral (full or respaced chain) or DDIM.",
        discussion: """
        Samples are drawn in batches of at most \(Sample.chunk) images, so --count is bounded by time; the memory \
        the results need is estimated first and a request beyond what the process may use is refused.

        \(outputRules)
        """)

    @Option(help: "Checkpoint written by `ddpm train`.") var checkpoint: String
    @Option(parsing: .unconditional, help: "Number of images.") var count: Int = 16
    @Option(parsing: .unconditional, help: "Seed of the sampling noise.") var seed: Int = 0
    @Flag(help: "Use the exponential moving average of the weights.") var ema = false
    @Option(help: "PNG grid to write.") var out: String
    @Option(help: "Also write the samples (N×C×H×W float64, dataset 'samples') and their starting noise (dataset 'x_T') to this HDF5 file.") var h5: String?
    @Flag(help: "Replace --out and --h5 if they exist.") var force = false
    @OptionGroup(title: "Sampler") var sampling: SamplerOptions
    @OptionGroup var random: RandomOption

    /// Images per reverse chain (memory per chain is bounded by this; more images means more chains).
    static let chunk = 32

    func run() throws {
        guard count > 0 else { throw DDPMError(.invalidValue, "--count: expected a positive number, got \(count)") }
        let seed = try seedValue(self.seed)
        let choice = try sampling.choice()
        let rng = try random.kind()
        try checkOutput("--out", out, force: force, inputs: [checkpoint])
        if let h5 {
            try checkOutput("--h5", h5, force: force, inputs: [checkpoint])
            try OutputFile.checkDistinct(out, h5)
        }
        let trainer = try Trainer.load(from: checkpoint)
        let c = trainer.config.network
        // The samples twice (the batches and the joined tensor) and the grid's bytes.
        let bytes = MemoryBudget.bytes(ofDoubles: [count, c.channels, c.imageSize, c.imageSize], copies: h5 == nil ? 2 : 4)
            + Double(count * c.channels) * Double((2 * c.imageSize + 1) * (2 * c.imageSize + 1))
        try MemoryBudget.check(bytes: bytes, for: "--count \(count) samples of \(c.channels)×\(c.imageSize)×\(c.imageSize)")
        if ema { trainer.useAveragedWeights() }
        var starts: [Tensor] = []
        let samples = try Self.sample(trainer, count: count, seed: seed, choice: choice, rng: rng,
                                      onStart: { if h5 != nil { starts.append($0) } })
        if let bad = samples.data.first(where: { !$0.isFinite }) {
            throw DDPMError(.invalidData, "\(checkpoint): sampling produced a non-finite value (\(bad)); the checkpoint's weights are unusable")
        }
        try PNGWriter.writeGrid(samples, range: trainer.config.diffusion.dataRange, path: out)
        if let h5 {
            let xT = starts.count == 1 ? starts[0] : Tensor.concatenate(starts, axis: 0)
            try HDF5Writer.write(to: h5) {
                try $0.write(samples.data, shape: samples.shape, to: "/samples")
                try $0.write(xT.data, shape: xT.shape, to: "/x_T")
            }
        }
        print("wrote \(out)" + (h5.map { " and \($0)" } ?? "") + ": \(count) samples, seed \(seed)\(rng == .torch ? " (torch)" : "")\(ema ? ", EMA weights" : ""), \(choice)")
    }

    /// The reverse chain `choice` describes (default: the full ancestral chain), in batches of at most ``chunk``
    /// images, one generator (of kind `rng`) throughout, with progress; `onStart` sees each batch's x_T,
    /// `onStep` every step of the first batch.
    static func sample(_ trainer: Trainer, count: Int, seed: UInt64, choice: SamplerChoice = SamplerChoice(),
                       rng: RandomSourceKind = .ddpm, onStep: ((ReverseChainStep) -> Void)? = nil,
                       onStart: ((Tensor) -> Void)? = nil) throws -> Tensor {
        var source = rng.make(seed: seed)
        let sampler = try choice.makeSampler(for: trainer.config.makeDiffusion())
        let batches = (count + chunk - 1) / chunk
        // What the count counts: every step of every batch ("sample: 36 images, 250 steps × 2 batches, step 300/500").
        let progress = Progress("sample: \(count) images, \(sampler.stepCount) steps × \(batches) batch\(batches == 1 ? "" : "es"), step", total: sampler.stepCount * batches)
        var parts: [Tensor] = []
        var done = 0
        for b in 0..<batches {
            let n = min(chunk, count - b * chunk)
            var first = true
            parts.append(try trainer.ddpm.sample(batchSize: n, sampler: sampler, generator: &source) { step in
                if first { onStart?(step.noisy); first = false }
                if b == 0 { onStep?(step) }
                done += 1
                progress.update(done)
            })
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }
}
