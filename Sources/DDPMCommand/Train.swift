import ArgumentParser
import DDPM
import FileOutput
import Foundation

/// Arrays kept per level element in a training step (see `Footprint.network`). Measured peak resident memory
/// per extra image of one step (`/usr/bin/time -f %M ddpm train --steps 1 --timesteps 10`, debug build, batch
/// sizes 4 and 64 for `--preset tiny` (now golden), 1 and 4 for the default preset): tiny 7.9 MiB per image = 27.6 level
/// arrays, default 65 MB per image = 7.6 level arrays. 32 covers both.
let activationFactor = 32.0

struct Train: FileCommand {
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

        The loss figure (SVG, log scale; default: --out with '.h5' replaced by '.loss.svg'; --no-loss-figure: none): \
        the loss of every step, its running mean over 50 steps and, with --held-out, the held-out loss at the start \
        and at every checkpoint. It is rewritten (atomically) after each checkpoint from the loss history the \
        checkpoint itself holds, so a resumed run draws the whole curve. Resuming in place replaces the default \
        figure beside the checkpoint as it replaces the checkpoint; any other existing figure needs --force.

        --held-out FILE: the training objective (uniform t) on every image of FILE with t and ε drawn once from seed \
        0 (the same draws at every checkpoint and in every run on that file, so the points differ only by the \
        weights), the trained (not averaged) weights, in batches of --batch-size; evaluated before each checkpoint \
        is saved, so the checkpoint holds its point (one network evaluation per held-out image per checkpoint). \
        A class-conditional network (--classes) is scored with the null class: its unconditional prediction.
        """)

    @Option(help: "HDF5 file of training images.") var data: String
    @Option(help: "Dataset in the file (default: 'images', or the only root dataset).") var dataset: String?
    @Option(help: "Checkpoint to write (atomically; periodically and at the end).") var out: String
    @Option(name: .customLong("train-steps"), parsing: .unconditional, help: "Total optimisation steps to reach (a resumed run continues up to this step).") var steps: Int = 1000
    @Option(parsing: .unconditional, help: "Images per step. (default: 32)") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Adam learning rate, in (0, 1]. (default: 0.0002)") var lr: Double?
    @Option(parsing: .unconditional, help: "Seed of the weights and of all training randomness. (default: 0)") var seed: Int?
    @Option(parsing: .unconditional, help: "Decay of the exponential moving average of the weights. (default: 0.9999)") var emaDecay: Double?
    @Option(parsing: .unconditional, help: "Write the checkpoint every this many steps (0: only at the end).") var checkpointEvery: Int = 500
    @Option(help: "Continue from this checkpoint (its configuration and options are used).") var resume: String?
    @Option(help: "HDF5 file of held-out images (same layout as --data): their loss is recorded at the start and at every checkpoint.") var heldOut: String?
    @Option(help: "SVG of the training loss (and held-out loss) per step, rewritten with each checkpoint. (default: --out with '.h5' replaced by '.loss.svg')") var lossFigure: String?
    @Flag(help: "Write no loss figure.") var noLossFigure = false
    @Option(parsing: .unconditional, help: "With --classes K: the probability p that a training label is replaced by the null class K (Ho & Salimans 2022, p_uncond; p = 1 trains the unconditional model). The data file needs a dataset 'labels'. (default: 0.1)") var labelDropout: Double?
    @Flag(help: "Replace --out and the loss figure if they exist (and --out is not the checkpoint being resumed).") var force = false
    @OptionGroup var network: NetworkOptions
    @OptionGroup var diffusion: DiffusionOptions

    static let flagNames = ["learning rate": "--lr", "batch size": "--batch-size", "EMA decay": "--ema-decay", "label dropout": "--label-dropout"]

    var trainingOptions: TrainingOptions {
        var options = TrainingOptions()
        if let batchSize { options.batchSize = batchSize }
        if let lr { options.learningRate = lr }
        if let emaDecay { options.emaDecay = emaDecay }
        if let labelDropout { options.labelDropout = labelDropout }
        return options
    }

    func checkOptions() throws {
        try refuseIfGiven(noLossFigure && lossFigure != nil, "--loss-figure", "and --no-loss-figure contradict each other; give one")
        try requireRange("--train-steps", steps, 1...Int.max)
        try requireRange("--checkpoint-every", checkpointEvery, 0...Int.max, "0 or a positive number")
        if let t = diffusion.timesteps { try requireRange("--timesteps", t, 1...Int.max) }
        try naming(Self.flagNames) { try trainingOptions.validate() }
        if labelDropout != nil, resume == nil, network.classes == nil {
            throw DDPMError(.invalidValue, "--label-dropout: only for a class-conditional network (give --classes K)")
        }
        _ = try seedValue(self.seed ?? 0)
        _ = try diffusion.sampler()
    }

    /// Resuming into the checkpoint itself is the one allowed replacement of an input.
    var resumesInPlace: Bool { resume.map { OutputFile.sameFile($0, out) } ?? false }

    /// The loss figure's path: --loss-figure, else beside --out (nil with --no-loss-figure).
    var figurePath: String? {
        if noLossFigure { return nil }
        if let lossFigure { return lossFigure }
        return (out.hasSuffix(".h5") ? String(out.dropLast(3)) : out) + ".loss.svg"
    }

    /// Both outputs are committed at each write: the checkpoint periodically, the figure after each checkpoint.
    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--data", data)
        plan.input("--held-out", heldOut)
        plan.input("--resume", resume, replacedInPlace: resumesInPlace)
        plan.output("--out", out, mayReplace: force || resumesInPlace, atEachWrite: true)
        // The default figure of a checkpoint resumed in place is that checkpoint's own, replaced with it.
        // About 30 bytes per step for the two lines, 2 KB for the rest.
        plan.output("--loss-figure", figurePath, mayReplace: force || (resumesInPlace && lossFigure == nil),
                    bytes: 2048 + 30 * Double(steps), atEachWrite: true)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        if let resume {
            let config = try checkpointConfiguration(resume, option: "--resume", into: &f)
            let batch = Int(clamping: try namingFile(resume) { try HDF5File(path: resume).int64Attribute("batch_size", of: "/training") })
            f.network(config.network, batch: batch, training: true, network: "the network of --resume \(resume)", images: "the checkpoint's batch size \(batch)")
        } else {
            f.diffusion(timesteps: diffusion.timesteps ?? 1000, "--timesteps \(diffusion.timesteps ?? 1000) diffusion tables")
            try f.check()   // before building the schedule, which allocates T values
            let options = trainingOptions
            f.network(try network.configuration(), batch: options.batchSize, training: true, network: "the network", images: "--batch-size \(options.batchSize)")
        }
        return f
    }

    func work() throws {
        var options = trainingOptions
        let trainer: Trainer
        if let resume {
            trainer = try loadCheckpoint(resume)
            try checkResumeOptions(trainer, path: resume)
        } else {
            options.timestepSampler = try diffusion.sampler()
            let config = ModelConfiguration(network: try network.configuration(), diffusion: try diffusion.configuration())
            trainer = try Trainer(config: config, options: options, seed: try seedValue(self.seed ?? 0))
        }
        let c = trainer.config.network
        let images: Tensor
        do {
            images = try ImageData.load(path: data, dataset: dataset, channels: c.channels, imageSize: c.imageSize, range: trainer.config.diffusion.dataRange)
        } catch let e as DDPMError where e.kind == .malformedFile && e.message.hasSuffix("name the dataset to use") {
            throw DDPMError(e.kind, e.message + " with --dataset")
        }
        let labels = try Self.labels(for: trainer, data: data, count: images.shape[0])
        let heldOutImages = try heldOut.map { path in
            try ImageData.load(path: path, dataset: nil, channels: c.channels, imageSize: c.imageSize, range: trainer.config.diffusion.dataRange)
        }
        guard trainer.step < steps else { throw DDPMError(.invalidValue, "--train-steps \(steps): the checkpoint is already at step \(trainer.step)") }
        note("training \(trainer.network.parameterCount) parameters on \(images.shape[0]) images from step \(trainer.step) to \(steps)"
             + (heldOutImages.map { "; held-out loss on \($0.shape[0]) images at the start and at every checkpoint" } ?? ""))
        let schedule = heldOutImages.map { HeldOutSchedule(images: $0, seed: Self.heldOutSeed, every: checkpointEvery, batchSize: trainer.options.batchSize) }
        let figure = figurePath
        let title = "training loss per step (\(trainer.config.diffusion.lossType.rawValue), batch \(trainer.options.batchSize))"
            + (heldOut.map { "; held-out: \(heldOutImages!.shape[0]) images of \(URL(fileURLWithPath: $0).lastPathComponent)" } ?? "")
        try Self.loop(trainer, images: images, labels: labels, until: steps, checkpointEvery: checkpointEvery, out: out, heldOut: schedule) { t in
            if let figure { try writeText(LossCurve.svg(t.lossHistory, heldOut: t.heldOutHistory, title: title), to: figure) }
        }
        let last = trainer.heldOutHistory.last.map { String(format: "; held-out loss %.4f", $0.loss) } ?? ""
        announce("wrote \(out)" + (figure.map { " and \($0)" } ?? "") + " at step \(trainer.step)" + last)
    }

    /// The seed of the held-out loss's t and ε (fixed, so every checkpoint and run on one file draws the same).
    static let heldOutSeed: UInt64 = 0

    /// The data file's `labels` for a class-conditional network (each below its K), nil for an unconditional one.
    static func labels(for trainer: Trainer, data: String, count: Int) throws -> [Int]? {
        guard let k = trainer.config.network.classes else { return nil }
        guard let labels = try ImageData.loadLabels(path: data, count: count) else {
            throw DDPMError(.malformedFile, "--data \(data): a class-conditional network (\(k) classes) needs a dataset 'labels' (one class per image), found none")
        }
        if let i = labels.firstIndex(where: { $0 >= k }) {
            throw DDPMError(.invalidData, "--data \(data) dataset 'labels': expected classes 0 ..< \(k) (--classes \(k)), found \(labels[i]) at element \(i)")
        }
        return labels
    }

    /// Options given together with --resume: a value that differs from the checkpoint's is an error; --seed is announced as unused.
    func checkResumeOptions(_ trainer: Trainer, path: String) throws {
        var conflicts: [String] = []
        let o = trainer.options, k = trainer.config
        if let batchSize, batchSize != o.batchSize { conflicts.append("--batch-size \(batchSize) (checkpoint: \(o.batchSize))") }
        if let lr, lr != o.learningRate { conflicts.append("--lr \(lr) (checkpoint: \(o.learningRate))") }
        if let emaDecay, emaDecay != o.emaDecay { conflicts.append("--ema-decay \(emaDecay) (checkpoint: \(o.emaDecay))") }
        if let labelDropout {
            if k.network.classes == nil { conflicts.append("--label-dropout \(labelDropout) (checkpoint: an unconditional network)") }
            else if labelDropout != o.labelDropout { conflicts.append("--label-dropout \(labelDropout) (checkpoint: \(o.labelDropout))") }
        }
        if let t = diffusion.timesteps, t != k.timesteps { conflicts.append("--timesteps \(t) (checkpoint: \(k.timesteps))") }
        conflicts += try diffusion.objective.conflicts(with: k.diffusion)
        if diffusion.timestepSampler != nil, try diffusion.sampler() != o.timestepSampler {
            conflicts.append("--timestep-sampler \(diffusion.timestepSampler!) (checkpoint: \(o.timestepSampler.rawValue))")
        }
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

    /// The library's training loop with a progress bar; checkpoints at `out` (periodically and at the end),
    /// each followed by `afterSave`; held-out losses on `heldOut`'s schedule (recorded in the trainer).
    static func loop(_ trainer: Trainer, images: Tensor, labels: [Int]? = nil, until: Int, checkpointEvery: Int, out: String?, label: String = "train",
                     heldOut: HeldOutSchedule? = nil, afterSave: (Trainer) throws -> Void = { _ in }) throws {
        let progress = Progress(label, total: until)
        try TrainingLoop.run(trainer, images: images, labels: labels, until: until, checkpointEvery: checkpointEvery, checkpoint: out, heldOut: heldOut,
                             onProgress: { p in progress.update(p.step, loss: p.smoothedLoss, heldOut: trainer.heldOutHistory.last?.loss) },
                             afterSave: afterSave)
    }
}

struct Sample: FileCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample images from a checkpoint: ancestral (full or respaced chain) or DDIM.",
        discussion: """
        Samples are drawn in batches of at most \(Sample.chunk) images, so --count is bounded by time; the memory \
        the results need is estimated first and a request beyond what the process may use is refused.
        """)

    @Option(help: "Checkpoint written by `ddpm train`.") var checkpoint: String
    @Option(parsing: .unconditional, help: "Number of samples (per class with --class).") var count: Int = 16
    @Option(parsing: .unconditional, help: "Seed of the sampling noise.") var seed: Int = 0
    @Flag(help: "Use the exponential moving average of the weights.") var ema = false
    @Option(help: "PNG grid to write.") var out: String
    @Option(help: "Also write the samples (N×C×H×W float64, dataset 'samples') and their starting noise (dataset 'x_T') to this HDF5 file.") var h5: String?
    @Flag(help: "Replace --out and --h5 if they exist.") var force = false
    @OptionGroup(title: "Sampler") var sampling: SamplerOptions
    @OptionGroup(title: "Class conditioning and classifier-free guidance") var conditioning: ConditioningOptions
    @OptionGroup(title: "Classifier guidance") var classifierGuidance: ClassifierGuidanceOptions
    @OptionGroup var random: RandomOption

    /// Images per reverse chain (memory per chain is bounded by this; more images means more chains).
    static let chunk = 32

    func checkOptions() throws {
        try requireRange("--count", count, 1...Int.max)
        _ = try seedValue(seed)
        _ = try sampling.choice()
        _ = try random.kind()
        try conditioning.check()
        try classifierGuidance.check(sampler: try sampling.choice(), classes: conditioning.classList)
    }

    func files() throws -> OutputPlan {
        var plan = OutputPlan()
        plan.input("--checkpoint", checkpoint)
        plan.input("--classifier", classifierGuidance.classifier)
        plan.output("--out", out, mayReplace: force)
        plan.output("--h5", h5, mayReplace: force)
        return plan
    }

    func footprint() throws -> Footprint {
        var f = Footprint()
        let config = try checkpointConfiguration(checkpoint, option: "--checkpoint", into: &f), c = config.network
        if let steps = sampling.steps, steps > config.timesteps {
            throw DDPMError(.invalidValue, "--sample-steps: expected between 1 and \(config.timesteps) (the checkpoint's T), got \(steps)")
        }
        try conditioning.check(against: c, classifierGuided: classifierGuidance.classifier != nil)
        let count = self.count * max(1, conditioning.classList.count)
        // The samples twice (the batches and the joined tensor) and the grid's bytes.
        f.add("--count \(count) samples of \(c.channels)×\(c.imageSize)×\(c.imageSize)", doubles: [count, c.channels, c.imageSize, c.imageSize], copies: h5 == nil ? 2 : 4)
        f.add("--count \(count): the PNG grid", Double(count * c.channels) * Double((2 * c.imageSize + 1) * (2 * c.imageSize + 1)))
        let batch = min(count, Self.chunk) * (conditioning.strength == nil ? 1 : 2)
        f.network(c, batch: batch, training: false, network: "the network of --checkpoint \(checkpoint)", images: "a batch of \(batch)")
        try classifierGuidance.footprint(into: &f, config: config, batch: min(max(count, 1), Self.chunk))
        return f
    }

    func work() throws {
        let seed = try seedValue(self.seed)
        let choice = try sampling.choice()
        let rng = try random.kind()
        let trainer = try loadCheckpoint(checkpoint)
        if ema { trainer.useAveragedWeights() }
        try conditioning.check(against: trainer.config.network, classifierGuided: classifierGuidance.classifier != nil)
        let labels = conditioning.labels(perClass: count)
        let classifier = try classifierGuidance.load(classes: conditioning.classList, against: trainer.config)
        var starts: [Tensor] = []
        // The denoiser sees the labels only when it is class-conditional (an unconditional one is guided by the classifier alone).
        let networkLabels = trainer.config.network.classes == nil ? nil : labels
        let samples = try Self.sample(trainer, count: labels?.count ?? count, seed: seed, choice: choice, rng: rng,
                                      conditioning: networkLabels.map { (labels: $0, strength: conditioning.strength, rescale: conditioning.rescale,
                                                                         interval: try? conditioning.guidance.interval()) },
                                      classifierGuidance: try classifier.map { (classifier: $0, labels: labels!, scale: classifierGuidance.scale,
                                                                                form: try classifierGuidance.form(for: choice)) },
                                      onStart: { if h5 != nil { starts.append($0) } })
        if let bad = samples.data.first(where: { !$0.isFinite }) {
            throw DDPMError(.invalidData, "\(checkpoint): sampling produced a non-finite value (\(bad)); the checkpoint's weights are unusable")
        }
        // A row per class when several are asked for.
        try PNGWriter.writeGrid(samples, range: trainer.config.diffusion.dataRange,
                                columns: conditioning.classList.count > 1 ? count : nil, path: out)
        if let h5 {
            let xT = starts.count == 1 ? starts[0] : Tensor.concatenate(starts, axis: 0)
            try HDF5Writer.write(to: h5) {
                try $0.write(samples.data, shape: samples.shape, to: "/samples")
                try $0.write(xT.data, shape: xT.shape, to: "/x_T")
                if let labels { try conditioning.record(labels: labels, to: $0) }
                if classifier != nil { try classifierGuidance.record(to: $0, form: try classifierGuidance.form(for: choice)) }
            }
        }
        announce("wrote \(out)" + (h5.map { " and \($0)" } ?? "") + ": \(samples.shape[0]) samples, seed \(seed)\(rng == .torch ? " (torch)" : "")\(ema ? ", EMA weights" : ""), \(choice)"
                 + (classifier == nil ? conditioning.summary : conditioning.summary.replacingOccurrences(of: ", no guidance", with: ", no classifier-free guidance"))
                 + classifierGuidance.summary)
    }

    /// The reverse chain `choice` describes (default: the full ancestral chain), in batches of at most ``chunk``
    /// images, one generator (of kind `rng`) throughout, with progress; `onStart` sees each batch's x_T,
    /// `onStep` every step of the first batch.
    /// With `conditioning`, image i has class `labels[i]` (count = labels.count), sampled with
    /// classifier-free guidance of the given strength and rescale (``ClassifierFreeGuidedPredictor``: one
    /// network call on 2N per step), or with no guidance when the strength is nil (``ClassConditionedPredictor``).
    /// With `classifierGuidance`, image i is also steered toward `labels[i]` by the classifier (Dhariwal & Nichol):
    /// the score form wraps the predictor (``ClassifierScoreGuidance``), the mean form sets the ancestral
    /// sampler's hook (``ClassifierMeanGuidance``).
    static func sample(_ trainer: Trainer, count: Int, seed: UInt64, choice: SamplerChoice = SamplerChoice(),
                       rng: RandomSourceKind = .ddpm,
                       conditioning: (labels: [Int], strength: GuidanceStrength?, rescale: Double, interval: ClosedRange<Int>?)? = nil,
                       classifierGuidance guidance: (classifier: NoisyClassifier, labels: [Int], scale: Double, form: ClassifierGuidanceForm)? = nil,
                       onStep: ((ReverseChainStep) -> Void)? = nil,
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
            var predictor: NoisePredictor? = try conditioning.map { k in
                let labels = Array(k.labels[(b * chunk)..<(b * chunk + n)])
                guard let strength = k.strength else { return ClassConditionedPredictor(trainer.network, labels: labels) }
                return try ClassifierFreeGuidedPredictor(trainer.network, labels: labels, strength: strength, rescale: k.rescale,
                                                         meanChannels: trainer.config.network.channels, interval: k.interval ?? nil)
            }
            var batchSampler = sampler
            if let g = guidance {
                let labels = Array(g.labels[(b * chunk)..<(b * chunk + n)])
                switch g.form {
                case .score:
                    predictor = try ClassifierScoreGuidance(model: predictor ?? (trainer.network as NoisePredictor), classifier: g.classifier,
                                                            diffusion: trainer.config.makeDiffusion(), labels: labels, scale: g.scale)
                case .mean:
                    guard var ancestral = sampler as? AncestralSampler else {
                        throw DDPMError(.invalidConfiguration, "classifier guidance, mean form: needs the ancestral sampler, got \(choice)")
                    }
                    ancestral.meanCondition = try ClassifierMeanGuidance(classifier: g.classifier, labels: labels, scale: g.scale)
                    batchSampler = ancestral
                }
            }
            parts.append(try trainer.ddpm.sample(batchSize: n, sampler: batchSampler, generator: &source, predictor: predictor) { step in
                if first { onStart?(step.noisy); first = false }
                if b == 0 { onStep?(step) }
                done += 1
                progress.update(done)
            })
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }
}
